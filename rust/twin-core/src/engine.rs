//! The twin engine: devices, their properties, sampling rings and twins.
//!
//! Configuration crosses once ([`Engine::upsert_device`] with [`PropertySpec`]s, compiled into a
//! shared *layout* that every device of the same shape reuses); the hot calls carry indices and
//! bytes: [`Engine::ingest_frame`] decodes a coalesced Modbus read into the rings,
//! [`Engine::report`] drains them through each property's change policy into a [`ChangeSet`].
//! The device-manager side applies reported values from mappers ([`Engine::apply_reported`]) and
//! desired values from users or the cloud ([`Engine::set_desired`], [`Engine::sync_desired`]).
//!
//! Every batch call validates its whole input before changing anything, so an error leaves the
//! engine as it was.
//!
//! The engine also measures device read → twin applied and device read → twin persisted
//! latency ([`Engine::latency`]): every reported value applied with a read time is recorded, and
//! [`Engine::take_dirty`] remembers the read times of the rows it hands out until the caller
//! confirms they are stored ([`Engine::mark_persisted`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::device::{compile, kind_slot, Desired, Device, Layout};
use crate::encode::dmi;
use crate::error::{Error, Result};
use crate::latency::{unix_now_ms, Latency};
use crate::modbus::{plan_reads, ReadRange, RegisterKind, Visitor, WriteOp};
use crate::planned::Planned;
use crate::queue::Sample;
use crate::spec::{PropertySpec, ReadLimits};
use crate::twin::{ChangeSet, TwinState, Version};
use crate::value::{PropertyType, Value};

/// One reply to a planned read, for [`Engine::ingest_planned`]: the device, which read of its
/// [`read plan`](Engine::read_plan), the reply's bytes and their read time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFrame<'a> {
    /// The device index.
    pub device: u32,
    /// The index of the read in the device's read plan.
    pub read: u16,
    /// The read response payload: exactly [`ReadRange::frame_len`] bytes.
    pub frame: &'a [u8],
    /// Read time, ms since the epoch.
    pub ts: i64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Devices configured.
    pub devices: usize,
    /// Properties over all devices.
    pub properties: usize,
    /// Distinct compiled layouts (shapes) shared by the devices.
    pub layouts: usize,
    /// Samples waiting in rings.
    pub queued: usize,
    /// Samples dropped (oldest first) by full rings, over the devices still configured.
    pub dropped: u64,
}

/// The twin engine. Not thread-safe by itself; the Python binding wraps it in a lock.
#[derive(Debug, Default)]
pub struct Engine {
    devices: Vec<Option<Device>>,
    free: Vec<u32>,
    index: HashMap<Arc<str>, u32>,
    layouts: HashMap<String, Arc<Layout>>,
    limits: ReadLimits,
    scratch: Vec<(u16, Value)>,
    /// What one planned frame gives each property it covers.
    planned: Vec<(u16, Planned)>,
    /// The properties of a device a report looks at.
    pending: Vec<u16>,
    track_dirty: bool,
    latency: Latency,
    /// Read times of the rows handed out by `take_dirty` and not yet marked persisted.
    unpersisted: Vec<i64>,
}

/// Most read times `take_dirty` keeps waiting for `mark_persisted` (8 MB). When flushes keep
/// failing, read times past this are dropped and counted nowhere: the persisted histogram then
/// under-counts, which an operator sees next to the `persist_errors` counter.
pub const MAX_UNPERSISTED: usize = 1_000_000;

impl Engine {
    /// An empty engine with default read limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty engine whose read plans use `limits`.
    pub fn with_read_limits(limits: ReadLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Adds a device, or reconfigures an existing one (twin state of properties that keep their
    /// name and type is kept; queued samples are dropped when the shape changes). Returns the
    /// device index used by the hot calls.
    pub fn upsert_device(&mut self, id: &str, specs: &[PropertySpec]) -> Result<u32> {
        if id.is_empty() {
            return Err(Error::spec("", "id", "a device id must not be empty"));
        }
        let layout = self.layout_for(specs).map_err(|e| e.with_device(id))?;
        if let Some(&idx) = self.index.get(id) {
            let dev = self.devices[idx as usize]
                .as_mut()
                .ok_or_else(|| unknown(id))?;
            if !Arc::ptr_eq(&dev.layout, &layout) {
                let old = std::mem::replace(dev, Device::new(dev.id.clone(), layout));
                dev.track_dirty = old.track_dirty;
                if dev.track_dirty {
                    dev.dirty = (0..dev.props.len() as u16).collect();
                }
                dev.adopt(&old);
                self.gc_layout(&old.layout);
            }
            return Ok(idx);
        }
        let id: Arc<str> = Arc::from(id);
        let mut device = Device::new(id.clone(), layout);
        device.track_dirty = self.track_dirty;
        let idx = if let Some(i) = self.free.pop() {
            self.devices[i as usize] = Some(device);
            i
        } else {
            self.devices.push(Some(device));
            (self.devices.len() - 1) as u32
        };
        self.index.insert(id, idx);
        Ok(idx)
    }

    /// Removes a device and its twins.
    pub fn remove_device(&mut self, id: &str) -> Result<()> {
        let idx = self.index.remove(id).ok_or_else(|| unknown(id))?;
        if let Some(dev) = self.devices[idx as usize].take() {
            self.free.push(idx);
            self.gc_layout(&dev.layout);
        }
        Ok(())
    }

    /// The index of a device.
    pub fn device_index(&self, id: &str) -> Result<u32> {
        self.index.get(id).copied().ok_or_else(|| unknown(id))
    }

    /// The id of a device index.
    pub fn device_id(&self, dev: u32) -> Result<&Arc<str>> {
        Ok(&self.device(dev)?.id)
    }

    /// The index of a property of a device.
    pub fn property_index(&self, dev: u32, name: &str) -> Result<u16> {
        let d = self.device(dev)?;
        d.layout
            .by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownProperty {
                device: d.id.to_string(),
                property: name.to_owned(),
            })
    }

    /// Names and types of a device's properties, in index order.
    pub fn properties(&self, dev: u32) -> Result<Vec<(Arc<str>, PropertyType)>> {
        let d = self.device(dev)?;
        Ok(d.layout
            .props
            .iter()
            .map(|p| (p.name.clone(), p.ty))
            .collect())
    }

    /// Device ids with their indices.
    pub fn devices(&self) -> impl Iterator<Item = (&Arc<str>, u32)> {
        self.index.iter().map(|(k, v)| (k, *v))
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no devices.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The coalesced reads that cover every Modbus property of a device.
    pub fn read_plan(&self, dev: u32) -> Result<&[ReadRange]> {
        Ok(&self.device(dev)?.layout.plan)
    }

    /// The coalesced reads that cover the Modbus properties `props` of a device, planned as
    /// [`Engine::read_plan`] plans all of them (a device whose properties have their own collect
    /// cycles reads one such subset per poll). A property without a visitor needs no read; an
    /// index given twice counts once.
    pub fn read_plan_of(&self, dev: u32, props: &[u16]) -> Result<Vec<ReadRange>> {
        let d = self.device(dev)?;
        let mut wanted = props.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut visitors = Vec::with_capacity(wanted.len());
        for p in wanted {
            if let Some(v) = &d.config(p)?.visitor {
                visitors.push(*v);
            }
        }
        let ReadLimits {
            max_registers,
            max_bits,
            max_gap,
        } = self.limits;
        Ok(plan_reads(&visitors, max_registers, max_bits, max_gap))
    }

    /// Decodes a read frame of `kind` starting at address `start` into the rings of every
    /// property whose visitor starts inside the frame (`count` registers or bits; `None`: as many
    /// as `frame` holds). Returns how many properties were sampled. A property that starts inside
    /// the frame but is not fully covered is an error, and then nothing is queued.
    pub fn ingest_frame(
        &mut self,
        dev: u32,
        kind: RegisterKind,
        start: u16,
        count: Option<u16>,
        frame: &[u8],
        ts: i64,
    ) -> Result<usize> {
        let Self {
            devices, scratch, ..
        } = self;
        let d = devices
            .get_mut(dev as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| unknown_idx(dev))?;
        if !kind.is_bit() && frame.len() % 2 != 0 {
            return Err(Error::ShortFrame {
                device: d.id.to_string(),
                property: String::new(),
                needed: frame.len() + 1,
                got: frame.len(),
            });
        }
        // A bit frame's byte length rounds the coil count up: with no explicit count, visitors
        // that start in the padding are not in the frame (skipped, not an error).
        let padded = count.is_none() && kind.is_bit() && !frame.is_empty();
        // The first bit that may be padding: the last byte holds at least one real bit.
        let first_padding = u32::from(start) + (frame.len().saturating_sub(1) * 8 + 1) as u32;
        let count = count.unwrap_or_else(|| frame_count(kind, frame.len()));
        let end = u32::from(start) + u32::from(count);
        let list = &d.layout.by_kind[kind_slot(kind)];
        let first = list.partition_point(|&(off, _)| off < start);
        scratch.clear();
        for &(off, p) in &list[first..] {
            if u32::from(off) >= end {
                break;
            }
            let cfg = &d.layout.props[usize::from(p)];
            if padded
                && cfg.visitor.as_ref().is_some_and(|v| {
                    u32::from(v.offset) >= first_padding && !v.covered_by(kind, start, count)
                })
            {
                continue;
            }
            let decoded = cfg
                .visitor
                .as_ref()
                .ok_or_else(|| unknown_idx(dev))
                .and_then(|v| {
                    if v.covered_by(kind, start, count) {
                        v.decode(cfg.ty, start, frame)
                    } else {
                        Err(short(v, kind, start, count))
                    }
                });
            scratch.push((
                p,
                decoded.map_err(|e| e.with_device(&d.id).with_property(&cfg.name))?,
            ));
        }
        let n = scratch.len();
        for (p, value) in scratch.drain(..) {
            d.push(p, Sample { ts, value });
        }
        Ok(n)
    }

    /// Decodes many replies to planned reads, of many devices, in one call (a loop tick's
    /// replies): each frame samples every property its read covers, as
    /// [`Engine::ingest_frame`] would. Returns how many properties were sampled.
    ///
    /// Every frame is checked first (the device exists, the read is in its plan, the frame has
    /// exactly the read's length); on error nothing is queued, and the error comes with the
    /// index of the frame.
    pub fn ingest_planned(
        &mut self,
        frames: &[PlannedFrame<'_>],
    ) -> std::result::Result<usize, (usize, Error)> {
        for (i, f) in frames.iter().enumerate() {
            self.check_planned(f).map_err(|e| (i, e))?;
        }
        let Self {
            devices, planned, ..
        } = self;
        let mut sampled = 0;
        for (i, f) in frames.iter().enumerate() {
            let Some(d) = devices.get_mut(f.device as usize).and_then(Option::as_mut) else {
                continue; // checked above
            };
            planned.clear();
            // A planned read covers its visitors and the length is checked: decoding fails
            // only for type combinations `Visitor::compile` rejects.
            let reply = d
                .decode_planned(f.read, f.frame, planned)
                .map_err(|e| (i, e.with_device(&d.id)))?;
            sampled += d.layout.plan_props[usize::from(f.read)].len();
            d.push_planned(f.read, f.frame, f.ts, reply, planned.drain(..));
        }
        Ok(sampled)
    }

    /// Checks one planned frame: the device, the read and the frame's length.
    fn check_planned(&self, f: &PlannedFrame<'_>) -> Result<()> {
        let d = self.device(f.device)?;
        let plan = &d.layout.plan;
        let Some(read) = plan.get(usize::from(f.read)) else {
            let n = plan.len();
            let message = format!("device {} has {n} planned reads; no read {}", d.id, f.read);
            return Err(Error::spec(&d.id, "read", message));
        };
        if f.frame.len() != read.frame_len() {
            return Err(Error::ShortFrame {
                device: d.id.to_string(),
                property: String::new(),
                needed: read.frame_len(),
                got: f.frame.len(),
            });
        }
        Ok(())
    }

    /// Queues values read by a driver that decodes them itself. Each value must have the
    /// property's type; on any error nothing is queued.
    pub fn ingest_values(&mut self, dev: u32, values: &[(u16, Value)], ts: i64) -> Result<()> {
        let d = self.device_mut(dev)?;
        for (p, v) in values {
            d.check_type(*p, v)?;
        }
        for (p, v) in values {
            d.push(
                *p,
                Sample {
                    ts,
                    value: v.clone(),
                },
            );
        }
        Ok(())
    }

    /// Drains every ring, reduces each property's samples to one value and applies it to the
    /// reported side through the property's change policy. Returns what changed.
    pub fn report(&mut self) -> ChangeSet {
        let mut set = ChangeSet::default();
        let Self {
            devices, pending, ..
        } = self;
        for d in devices.iter_mut().flatten() {
            let before = set.changes.len();
            d.report_into(&mut set.changes, pending);
            if set.changes.len() > before {
                d.delta_into(&mut set.deltas);
            }
        }
        set
    }

    /// Like [`Engine::report`] for some devices only.
    pub fn report_devices(&mut self, devs: &[u32]) -> Result<ChangeSet> {
        for &dev in devs {
            self.device(dev)?;
        }
        let mut set = ChangeSet::default();
        let Self {
            devices, pending, ..
        } = self;
        for &dev in devs {
            let Some(d) = devices.get_mut(dev as usize).and_then(Option::as_mut) else {
                continue; // checked above
            };
            let before = set.changes.len();
            d.report_into(&mut set.changes, pending);
            if set.changes.len() > before {
                d.delta_into(&mut set.deltas);
            }
        }
        Ok(set)
    }

    /// Applies reported values `(property, value, read time)` (a mapper's report), each through
    /// its change policy. All values are type-checked first. Each value's latency is recorded
    /// against the system clock (see [`Engine::apply_reported_at`]).
    pub fn apply_reported(&mut self, dev: u32, values: &[(u16, Value, i64)]) -> Result<ChangeSet> {
        self.apply_reported_at(dev, values, unix_now_ms())
    }

    /// [`Engine::apply_reported`] at `now_ms`: records `now_ms - read time` in the applied
    /// latency histogram for every value applied, changed or not (a read time <= 0 counts as
    /// none and is not recorded). Nothing is recorded on error.
    pub fn apply_reported_at(
        &mut self,
        dev: u32,
        values: &[(u16, Value, i64)],
        now_ms: i64,
    ) -> Result<ChangeSet> {
        let set = self.apply_values(dev, values)?;
        self.latency
            .applied
            .record_since(now_ms, values.iter().map(|v| v.2).filter(|&ts| ts > 0));
        Ok(set)
    }

    /// Applies a serialized DMI `ReportDeviceStatusRequest` received at `now_ms` (the device is
    /// `<deviceNamespace or "default">/<deviceName>`). Twins without a `reported` message are
    /// skipped; a value's time is its `reported.metadata["timestamp"]` (ms), or `now_ms` when
    /// that is absent, empty or not an integer. Each applied twin that carries a read time
    /// (> 0) records `now_ms - read time` in the applied latency histogram, changed or not.
    pub fn apply_dmi_report(&mut self, payload: &[u8], now_ms: i64) -> Result<ChangeSet> {
        let req = dmi::decode_report_device_status_request(payload)?;
        let namespace = if req.namespace.is_empty() {
            "default"
        } else {
            &req.namespace
        };
        let id = format!("{namespace}/{}", req.name);
        let dev = self.device_index(&id)?;
        let d = self.device(dev)?;
        let mut batch = Vec::with_capacity(req.twins.len());
        let mut read = Vec::with_capacity(req.twins.len());
        for t in &req.twins {
            let Some(text) = &t.reported else { continue };
            let p = d
                .layout
                .by_name
                .get(t.property.as_str())
                .copied()
                .ok_or_else(|| Error::UnknownProperty {
                    device: id.clone(),
                    property: t.property.clone(),
                })?;
            let ty = d.layout.props[usize::from(p)].ty;
            let v = Value::from_canonical(ty, text)
                .map_err(|e| e.with_device(&id).with_property(&t.property))?;
            let ts = t.reported_ts.as_deref().and_then(|s| s.parse::<i64>().ok());
            read.extend(ts.filter(|&ts| ts > 0));
            batch.push((p, v, ts.unwrap_or(now_ms)));
        }
        let set = self.apply_values(dev, &batch)?;
        self.latency.applied.record_since(now_ms, read);
        Ok(set)
    }

    /// Applies reported values through their change policies (no latency recorded).
    fn apply_values(&mut self, dev: u32, values: &[(u16, Value, i64)]) -> Result<ChangeSet> {
        let d = self.device_mut(dev)?;
        for (p, v, _) in values {
            d.check_type(*p, v)?;
        }
        let mut set = ChangeSet::default();
        for (p, v, ts) in values {
            d.settle(*p, v, *ts, &mut set.changes);
            crate::alarm::evaluate(d, *p, v, *ts, &mut set.alarms);
        }
        d.delta_into(&mut set.deltas);
        Ok(set)
    }

    /// Sets (or with `None` removes) desired values on the edge (KubeEdge's REST/MQTT update):
    /// each actual change bumps the desired side's edge version. Returns the changes and the
    /// device's delta.
    pub fn set_desired(
        &mut self,
        dev: u32,
        values: &[(u16, Option<Value>)],
        ts: i64,
    ) -> Result<ChangeSet> {
        let d = self.device_mut(dev)?;
        for (p, v) in values {
            if let Some(v) = v {
                d.check_type(*p, v)?;
            } else {
                d.config(*p)?;
            }
        }
        let mut set = ChangeSet::default();
        for (p, v) in values {
            d.set_desired(*p, v.clone(), ts, None, &mut set.changes);
        }
        d.delta_into(&mut set.deltas);
        Ok(set)
    }

    /// Applies desired values synced from the cloud with their versions (KubeEdge's sync rule):
    /// rejected with [`Error::VersionConflict`] when the local version is ahead on either
    /// counter; otherwise the local version becomes the cloud's.
    pub fn sync_desired(
        &mut self,
        dev: u32,
        values: &[(u16, Option<Value>, Version)],
        ts: i64,
    ) -> Result<ChangeSet> {
        let d = self.device_mut(dev)?;
        for (p, v, ver) in values {
            if let Some(v) = v {
                d.check_type(*p, v)?;
            }
            d.check_sync(*p, *ver)?;
        }
        let mut set = ChangeSet::default();
        for (p, v, ver) in values {
            d.set_desired(*p, v.clone(), ts, Some(*ver), &mut set.changes);
        }
        d.delta_into(&mut set.deltas);
        Ok(set)
    }

    /// Sets an alarm rule's state as persisted (restart recovery): `active` or not, its
    /// consecutive counters reset, so an alarm active before a restart is neither raised again
    /// nor forgotten. Emits nothing.
    pub fn restore_alarm(&mut self, dev: u32, rule: &str, active: bool) -> Result<()> {
        let d = self.device_mut(dev)?;
        if crate::alarm::restore(d, rule, active) {
            Ok(())
        } else {
            Err(Error::spec(
                &d.id,
                "alarms",
                format!("no alarm rule {rule:?}"),
            ))
        }
    }

    /// The active alarms of a device: `(rule, property)`.
    pub fn active_alarms(&self, dev: u32) -> Result<Vec<(Arc<str>, Arc<str>)>> {
        Ok(crate::alarm::active(self.device(dev)?))
    }

    /// The twin of one property.
    pub fn twin(&self, dev: u32, prop: u16) -> Result<TwinState> {
        let d = self.device(dev)?;
        d.config(prop)?;
        Ok(d.props[usize::from(prop)].snapshot())
    }

    /// Every twin of a device: name, type and state, in property order.
    pub fn twins(&self, dev: u32) -> Result<Vec<(Arc<str>, PropertyType, TwinState)>> {
        let d = self.device(dev)?;
        Ok(d.layout
            .props
            .iter()
            .zip(d.props.iter())
            .map(|(c, s)| (c.name.clone(), c.ty, s.snapshot()))
            .collect())
    }

    /// Replaces a twin's state as it was persisted (restart recovery); emits nothing.
    pub fn restore(&mut self, dev: u32, prop: u16, state: TwinState) -> Result<()> {
        let d = self.device_mut(dev)?;
        let ty = d.config(prop)?.ty;
        for side in state.desired.iter().chain(state.reported.iter()) {
            if side.value.property_type() != ty {
                return Err(d.mismatch(prop, &side.value));
            }
        }
        d.queue_repeats();
        d.quiet.moved = true;
        let st = &mut d.props[usize::from(prop)];
        let had = st.has_desired();
        st.reported = state.reported;
        st.reported_version = state.reported_version;
        st.desired =
            (state.desired.is_some() || state.desired_version != Version::default()).then(|| {
                Box::new(Desired {
                    side: state.desired,
                    version: state.desired_version,
                })
            });
        d.n_desired =
            d.n_desired + u32::from(d.props[usize::from(prop)].has_desired()) - u32::from(had);
        Ok(())
    }

    /// The write that sets a property to `value` over Modbus.
    pub fn encode_write(&self, dev: u32, prop: u16, value: &Value) -> Result<WriteOp> {
        let d = self.device(dev)?;
        let cfg = d.config(prop)?;
        if value.property_type() != cfg.ty {
            return Err(d.mismatch(prop, value));
        }
        let visitor = cfg.visitor.as_ref().ok_or_else(|| {
            Error::spec(
                &d.id,
                format!("properties[{prop}].visitors"),
                format!("property {} has no Modbus visitor", cfg.name),
            )
        })?;
        visitor
            .encode(value)
            .map_err(|e| e.with_device(&d.id).with_property(&cfg.name))
    }

    /// Records changed properties from now on (for devices added later too), so
    /// [`Engine::take_dirty`] can hand them to persistence.
    pub fn set_track_dirty(&mut self, on: bool) {
        self.track_dirty = on;
        for d in self.devices.iter_mut().flatten() {
            d.track_dirty = on;
            if !on {
                d.dirty = Vec::new();
            }
        }
    }

    /// The twins changed since the last call, each once, as `(device id, property, persisted
    /// JSON)` (see [`crate::encode::state::twin_json`]); clears the record.
    ///
    /// Also remembers the read time of each returned row's reported side (when it has one, that
    /// is a positive one) until [`Engine::mark_persisted`]; without that call (a failed write) the read times
    /// of the next call add to them, up to [`MAX_UNPERSISTED`].
    pub fn take_dirty(&mut self) -> Vec<(Arc<str>, Arc<str>, String)> {
        let mut rows = Vec::new();
        let unpersisted = &mut self.unpersisted;
        for d in self.devices.iter_mut().flatten() {
            if d.dirty.is_empty() {
                continue;
            }
            let mut dirty = std::mem::take(&mut d.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for p in dirty {
                let cfg = &d.layout.props[usize::from(p)];
                let state = d.props[usize::from(p)].snapshot();
                if let Some(side) = state.reported.as_ref().filter(|s| s.ts > 0) {
                    if unpersisted.len() < MAX_UNPERSISTED {
                        unpersisted.push(side.ts);
                    }
                }
                let json = crate::encode::state::twin_json(cfg.ty, &state);
                rows.push((d.id.clone(), cfg.name.clone(), json));
            }
        }
        rows
    }

    /// Confirms that every row handed out by [`Engine::take_dirty`] so far is stored: records
    /// `now_ms - read time` for each remembered read time in the persisted latency histogram and
    /// forgets them.
    pub fn mark_persisted(&mut self, now_ms: i64) {
        let read = std::mem::take(&mut self.unpersisted);
        self.latency.persisted.record_since(now_ms, read);
    }

    /// Read times remembered by [`Engine::take_dirty`] and not yet marked persisted.
    pub fn unpersisted(&self) -> usize {
        self.unpersisted.len()
    }

    /// The latency histograms (read → applied, read → persisted).
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Zeroes both latency histograms and forgets the read times waiting for
    /// [`Engine::mark_persisted`].
    pub fn reset_latency(&mut self) {
        self.latency = Latency::default();
        self.unpersisted = Vec::new();
    }

    /// Counters for metrics.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            devices: self.index.len(),
            layouts: self.layouts.len(),
            ..Stats::default()
        };
        for d in self.devices.iter().flatten() {
            s.properties += d.props.len();
            for st in &*d.props {
                s.queued += st.ring.len();
                s.dropped += u64::from(st.ring.dropped());
            }
            let (queued, dropped) = d.waiting_repeats();
            s.queued += queued;
            s.dropped += dropped;
        }
        s
    }

    fn device(&self, dev: u32) -> Result<&Device> {
        self.devices
            .get(dev as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| unknown_idx(dev))
    }

    fn device_mut(&mut self, dev: u32) -> Result<&mut Device> {
        self.devices
            .get_mut(dev as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| unknown_idx(dev))
    }

    /// Compiles specs into a layout, reusing an identical one.
    fn layout_for(&mut self, specs: &[PropertySpec]) -> Result<Arc<Layout>> {
        let props = compile(specs)?;
        let key = format!("{props:?}");
        if let Some(l) = self.layouts.get(&key) {
            return Ok(l.clone());
        }
        let layout = Arc::new(Layout::new(props, key.clone(), self.limits));
        self.layouts.insert(key, layout.clone());
        Ok(layout)
    }

    /// Forgets a layout no device uses any more.
    fn gc_layout(&mut self, layout: &Arc<Layout>) {
        if Arc::strong_count(layout) <= 2 {
            self.layouts.remove(&layout.key);
        }
    }
}

/// How many registers or bits a frame of `len` bytes holds.
fn frame_count(kind: RegisterKind, len: usize) -> u16 {
    let n = if kind.is_bit() { len * 8 } else { len / 2 };
    n.min(usize::from(u16::MAX)) as u16
}

fn short(v: &Visitor, kind: RegisterKind, start: u16, count: u16) -> Error {
    // Bytes the frame must hold from its start to cover the visitor, and bytes it covers.
    let units_needed = (u32::from(v.offset) + u32::from(v.count)).saturating_sub(u32::from(start));
    let bytes = |units: u32| -> usize {
        if kind.is_bit() {
            units.div_ceil(8) as usize
        } else {
            units as usize * 2
        }
    };
    Error::ShortFrame {
        device: String::new(),
        property: String::new(),
        needed: bytes(units_needed),
        got: bytes(u32::from(count)),
    }
}

fn unknown(id: &str) -> Error {
    Error::UnknownDevice {
        device: id.to_owned(),
    }
}

fn unknown_idx(dev: u32) -> Error {
    Error::UnknownDevice {
        device: format!("#{dev}"),
    }
}
