//! Compiled device shapes and per-device state behind the [`Engine`](crate::engine::Engine).
//!
//! A *layout* is the compiled form of a device's property specs; devices with identical specs
//! (a fleet of one model) share one layout, so per-device memory is the twin state (with the
//! one-slot rings beside each twin), the slab of larger rings and the last planned replies.

use std::collections::HashMap;
use std::sync::Arc;

use crate::alarm::{AlarmRule, RuleState};
use crate::error::{Error, Result};
use crate::modbus::{plan_reads, ReadRange, RegisterKind, Visitor};
use crate::policy::{ChangePolicy, Reduce};
use crate::queue::{Aggregate, Ring, Sample};
use crate::spec::{PropertySpec, ReadLimits, DEFAULT_QUEUE_CAPACITY};
use crate::twin::{Change, ChangeKind, DeviceDelta, TwinSide, TwinState, Version};
use crate::value::{PropertyType, Value};

pub(crate) fn kind_slot(kind: RegisterKind) -> usize {
    match kind {
        RegisterKind::Coil => 0,
        RegisterKind::DiscreteInput => 1,
        RegisterKind::Input => 2,
        RegisterKind::Holding => 3,
    }
}

/// A compiled property.
#[derive(Debug)]
pub(crate) struct PropertyConfig {
    pub(crate) name: Arc<str>,
    pub(crate) ty: PropertyType,
    pub(crate) visitor: Option<Visitor>,
    pub(crate) policy: ChangePolicy,
    pub(crate) reduce: Reduce,
    pub(crate) capacity: u16,
    pub(crate) alarms: Box<[AlarmRule]>,
    /// Index of this property's first rule in a device's rule states.
    pub(crate) rule_base: u32,
}

/// The compiled shape of a device, shared by every device with the same specs.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) props: Box<[PropertyConfig]>,
    /// Start of each property's ring in the device's sample slab; one extra entry = total.
    pub(crate) ring_offsets: Box<[u32]>,
    pub(crate) by_name: HashMap<Arc<str>, u16>,
    /// Per register kind: `(offset, property)` sorted by offset.
    pub(crate) by_kind: [Box<[(u16, u16)]>; 4],
    pub(crate) plan: Box<[ReadRange]>,
    /// Per read of `plan`: the properties it covers, by offset.
    pub(crate) plan_props: Box<[Box<[u16]>]>,
    pub(crate) frame_offsets: Box<[u32]>,
    /// Per read of `plan` over registers: which of its registers each property covers (bit
    /// `i`: register `start + i`; a read holds at most 125); empty for bit reads.
    pub(crate) member_registers: Box<[Box<[u128]>]>,
    /// Bit `r`: every property read `r` covers has a ring of one slot.
    pub(crate) one_slot_reads: u64,
    /// Bit `r`: ... and no heartbeat, and at most 32 properties: repeats of read `r` can wait
    /// without being queued (see `planned.rs`).
    pub(crate) quiet_reads: u64,
    /// Where each read's block starts in a device's `frames`; one extra entry = total.
    pub(crate) key: String,
}

/// A desired value with its version (boxed: most properties never have one).
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    /// The value; `None` after it was removed (the version is kept, so it keeps growing).
    pub(crate) side: Option<TwinSide>,
    pub(crate) version: Version,
}

/// The mutable state of one property of one device.
#[derive(Debug, Clone, Default)]
pub(crate) struct PropState {
    pub(crate) reported: Option<TwinSide>,
    pub(crate) reported_version: Version,
    pub(crate) desired: Option<Box<Desired>>,
    pub(crate) ring: Ring,
    /// The ring's one slot, when it has one (the default): beside the twin it settles into,
    /// so a sample and its report touch the same memory. Larger rings live in the device's
    /// sample slab.
    pub(crate) slot: Sample,
}

/// One device.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) id: Arc<str>,
    pub(crate) layout: Arc<Layout>,
    pub(crate) props: Box<[PropState]>,
    pub(crate) samples: Box<[Sample]>,
    pub(crate) n_desired: u32,
    /// Whether changed properties are recorded in `dirty` (the device manager persists them).
    pub(crate) track_dirty: bool,
    /// Properties changed since the last `Engine::take_dirty` (may repeat).
    pub(crate) dirty: Vec<u16>,
    /// Per planned read, back to back: its repeats not yet queued (see `planned.rs`) and its
    /// last reply; empty until the first planned frame.
    pub(crate) frames: Box<[u8]>,
    /// Bit `r`: `frames` holds the last reply to read `r` and the one-slot rings of its
    /// properties hold what it decodes to (reads past 64 are never remembered).
    pub(crate) fresh: u64,
    /// Bit `r`: the rings of read `r`'s properties may hold samples queued since the last
    /// report (reads past 64 are not tracked: they never repeat).
    pub(crate) touched: u64,
    /// What the samples since the last report are (see [`Quiet`]).
    pub(crate) quiet: Quiet,
    /// Moves at every report that forgets the waiting repeats (see `planned.rs`).
    pub(crate) epoch: u32,
    /// One state per alarm rule of the layout, in property order (see `PropertyConfig::rule_base`).
    pub(crate) rules: Box<[RuleState]>,
}

/// What a device's samples since its last report are, so the report can skip the properties
/// whose settling would change nothing (see `planned.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quiet {
    /// Every sample queued since the last report of this device repeats the value its one
    /// slot held then.
    pub(crate) settled: bool,
    /// A reported value may have moved (a mapper report, a restore) since every slot's value
    /// was last settled, or some slot never was: until a report settles every property, the
    /// repeats of `settled` must be settled too.
    pub(crate) moved: bool,
    /// A sample came from outside a planned read since the last report.
    pub(crate) unplanned: bool,
}

impl Default for Quiet {
    /// A new device: nothing settled yet.
    fn default() -> Self {
        Self {
            settled: false,
            moved: true,
            unplanned: false,
        }
    }
}

/// Bytes before each read's last reply in a device's `frames`: the report epoch it was written
/// in (u32), the count (u32) and read time (i64) of the read's waiting repeats, and which of its
/// properties wait (u32).
pub(crate) const REPEATS_HEADER: usize = 20;

/// Compiles and validates specs; errors name `properties[i].<field>`.
pub(crate) fn compile(specs: &[PropertySpec]) -> Result<Box<[PropertyConfig]>> {
    if specs.len() > usize::from(u16::MAX) {
        return Err(Error::spec(
            "",
            "properties",
            "at most 65535 properties per device",
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(specs.len());
    let mut out = Vec::with_capacity(specs.len());
    let mut rules: HashMap<&str, String> = HashMap::new();
    let mut rule_base = 0u32;
    for (i, s) in specs.iter().enumerate() {
        let path = format!("properties[{i}]");
        if s.name.is_empty() {
            return Err(Error::spec(
                "",
                format!("{path}.name"),
                "a property name must not be empty",
            ));
        }
        if let Some(j) = seen.insert(&s.name, i) {
            return Err(Error::spec(
                "",
                format!("{path}.name"),
                format!(
                    "property names must be unique: {:?} is also properties[{j}]",
                    s.name
                ),
            ));
        }
        s.policy.validate(s.ty, &path)?;
        if s.reduce != Reduce::Last && !s.ty.is_numeric() {
            return Err(Error::spec(
                "",
                format!("{path}.reduce"),
                format!(
                    "{:?} needs a numeric property, this one is {}",
                    s.reduce,
                    s.ty.as_str()
                ),
            ));
        }
        let visitor = match &s.visitor {
            Some(v) => Some(Visitor::compile(v, s.ty).map_err(|e| prefix(e, &path))?),
            None => None,
        };
        let capacity = if s.queue_capacity == 0 {
            DEFAULT_QUEUE_CAPACITY
        } else {
            s.queue_capacity
        };
        for (k, r) in s.alarms.iter().enumerate() {
            let rpath = format!("{path}.alarms[{k}]");
            if !s.ty.is_numeric() {
                return Err(Error::spec(
                    "",
                    rpath,
                    format!(
                        "an alarm rule needs a numeric property, this one is {}",
                        s.ty.as_str()
                    ),
                ));
            }
            r.validate(&rpath)?;
            if let Some(other) = rules.insert(&r.name, rpath.clone()) {
                return Err(Error::spec(
                    "",
                    format!("{rpath}.name"),
                    format!("rule names must be unique: {:?} is also {other}", r.name),
                ));
            }
        }
        out.push(PropertyConfig {
            name: Arc::from(s.name.as_str()),
            ty: s.ty,
            visitor,
            policy: s.policy,
            reduce: s.reduce,
            capacity,
            alarms: s.alarms.clone().into_boxed_slice(),
            rule_base,
        });
        rule_base += s.alarms.len() as u32;
    }
    Ok(out.into_boxed_slice())
}

/// Prefixes a spec error's path with the property's path.
fn prefix(e: Error, path: &str) -> Error {
    match e {
        Error::InvalidSpec {
            device,
            path: p,
            message,
        } => Error::InvalidSpec {
            device,
            path: format!("{path}.{p}"),
            message,
        },
        other => other,
    }
}

impl Layout {
    pub(crate) fn new(props: Box<[PropertyConfig]>, key: String, limits: ReadLimits) -> Self {
        let mut ring_offsets = Vec::with_capacity(props.len() + 1);
        let mut total = 0u32;
        for p in &*props {
            ring_offsets.push(total);
            if p.capacity > 1 {
                total += u32::from(p.capacity); // one slot lives in the property's state
            }
        }
        ring_offsets.push(total);
        let by_name = props
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i as u16))
            .collect();
        let mut by_kind: [Vec<(u16, u16)>; 4] = Default::default();
        let (mut visitors, mut visitor_props) = (Vec::new(), Vec::new());
        for (i, p) in props.iter().enumerate() {
            if let Some(v) = &p.visitor {
                by_kind[kind_slot(v.kind)].push((v.offset, i as u16));
                visitors.push(*v);
                visitor_props.push(i as u16);
            }
        }
        for list in &mut by_kind {
            list.sort_unstable();
        }
        let plan = plan_reads(
            &visitors,
            limits.max_registers,
            limits.max_bits,
            limits.max_gap,
        )
        .into_boxed_slice();
        let plan_props: Box<[Box<[u16]>]> = plan
            .iter()
            .map(|r| {
                r.members
                    .iter()
                    .map(|&m| visitor_props[m as usize])
                    .collect()
            })
            .collect();
        let mut frame_offsets = vec![0u32];
        for r in &*plan {
            let block = (REPEATS_HEADER + r.frame_len()) as u32;
            frame_offsets.push(frame_offsets[frame_offsets.len() - 1] + block);
        }
        let one_slot =
            |members: &[u16]| members.iter().all(|&p| props[usize::from(p)].capacity == 1);
        let quiet = |members: &[u16]| {
            one_slot(members)
                && members.len() <= 32
                && members
                    .iter()
                    .all(|&p| props[usize::from(p)].policy.heartbeat_ms == 0)
        };
        let bits = |keep: &dyn Fn(&[u16]) -> bool| {
            plan_props
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, members)| keep(members))
                .fold(0u64, |bits, (r, _)| bits | (1 << r))
        };
        let (one_slot_reads, quiet_reads) = (bits(&one_slot), bits(&quiet));
        let member_registers = plan
            .iter()
            .zip(&*plan_props)
            .map(|(read, members)| {
                if read.kind.is_bit() {
                    return Box::default();
                }
                members
                    .iter()
                    .map(|&p| {
                        let v = props[usize::from(p)].visitor.as_ref();
                        v.map_or(0, |v| {
                            let from = u32::from(v.offset - read.start);
                            (from..from + u32::from(v.count)).fold(0u128, |m, i| m | (1 << i))
                        })
                    })
                    .collect()
            })
            .collect();
        Self {
            props,
            ring_offsets: ring_offsets.into_boxed_slice(),
            by_name,
            by_kind: by_kind.map(Vec::into_boxed_slice),
            plan,
            plan_props,
            frame_offsets: frame_offsets.into_boxed_slice(),
            member_registers,
            one_slot_reads,
            quiet_reads,
            key,
        }
    }
}

/// How many alarm rules a layout holds over all its properties.
fn layout_rules(layout: &Layout) -> usize {
    layout.props.iter().map(|p| p.alarms.len()).sum()
}

impl Layout {
    /// Where a property's ring keeps its samples: `None` for a ring of one slot (in its
    /// [`PropState`]), else its slots in the device's sample slab.
    pub(crate) fn slab_slots(&self, prop: u16) -> Option<std::ops::Range<usize>> {
        let p = usize::from(prop);
        let slots = self.ring_offsets[p] as usize..self.ring_offsets[p + 1] as usize;
        (!slots.is_empty()).then_some(slots)
    }
}

impl PropState {
    /// The ring and its slots (`slab`: the device's sample slab).
    pub(crate) fn ring_parts<'a>(
        &'a mut self,
        layout: &Layout,
        slab: &'a mut [Sample],
        prop: u16,
    ) -> (&'a mut Ring, &'a mut [Sample]) {
        match layout.slab_slots(prop) {
            None => (&mut self.ring, std::slice::from_mut(&mut self.slot)),
            Some(slots) => (&mut self.ring, &mut slab[slots]),
        }
    }
}

impl Device {
    pub(crate) fn new(id: Arc<str>, layout: Arc<Layout>) -> Self {
        let n = layout.props.len();
        let slots = layout.ring_offsets[n] as usize; // the rings of more than one slot
        Self {
            id,
            props: vec![PropState::default(); n].into_boxed_slice(),
            samples: vec![Sample::default(); slots].into_boxed_slice(),
            n_desired: 0,
            track_dirty: false,
            dirty: Vec::new(),
            frames: Box::default(),
            fresh: 0,
            touched: 0,
            quiet: Quiet::default(),
            epoch: 0,
            rules: vec![RuleState::default(); layout_rules(&layout)].into_boxed_slice(),
            layout,
        }
    }

    /// Takes over the twin state of properties that kept their name and type.
    pub(crate) fn adopt(&mut self, old: &Device) {
        let layout = self.layout.clone();
        for (i, cfg) in layout.props.iter().enumerate() {
            if let Some(&j) = old.layout.by_name.get(&cfg.name) {
                if old.layout.props[usize::from(j)].ty == cfg.ty {
                    let mut st = old.props[usize::from(j)].clone();
                    st.ring = Ring::default();
                    self.n_desired += u32::from(st.has_desired());
                    self.props[i] = st;
                }
                crate::alarm::adopt_rules(self, i, old, j);
            }
        }
    }

    pub(crate) fn config(&self, prop: u16) -> Result<&PropertyConfig> {
        self.layout
            .props
            .get(usize::from(prop))
            .ok_or_else(|| Error::UnknownProperty {
                device: self.id.to_string(),
                property: format!("#{prop}"),
            })
    }

    pub(crate) fn mismatch(&self, prop: u16, v: &Value) -> Error {
        let cfg = &self.layout.props[usize::from(prop)];
        Error::TypeMismatch {
            device: self.id.to_string(),
            property: cfg.name.to_string(),
            expected: cfg.ty.as_str().to_owned(),
            got: format!("a {} value", v.property_type().as_str()),
        }
    }

    pub(crate) fn check_type(&self, prop: u16, v: &Value) -> Result<()> {
        if self.config(prop)?.ty == v.property_type() {
            Ok(())
        } else {
            Err(self.mismatch(prop, v))
        }
    }

    pub(crate) fn check_sync(&self, prop: u16, msg: Version) -> Result<()> {
        let cfg = self.config(prop)?;
        let local = self.props[usize::from(prop)]
            .desired
            .as_ref()
            .map_or_else(Version::default, |d| d.version);
        let conflict = |message: String| Error::VersionConflict {
            device: self.id.to_string(),
            property: cfg.name.to_string(),
            message,
        };
        if local.cloud > msg.cloud {
            return Err(conflict(format!(
                "cloud version {} is older than the local {}",
                msg.cloud, local.cloud
            )));
        }
        if local.edge > msg.edge {
            return Err(conflict(format!(
                "the cloud has seen edge version {}, the edge is at {}",
                msg.edge, local.edge
            )));
        }
        Ok(())
    }

    /// Pushes a sample from outside a planned read: the remembered replies no longer tell
    /// what the slots hold, and the sample may be anything.
    pub(crate) fn push(&mut self, prop: u16, sample: Sample) {
        self.queue_repeats();
        self.fresh = 0;
        self.quiet.settled = false;
        self.quiet.unplanned = true;
        push(
            &self.layout,
            &mut self.props,
            &mut self.samples,
            prop,
            sample,
        );
    }

    /// Drains every ring through the change policy into `out` (`pending`: scratch space).
    ///
    /// A ring of one slot whose property reduces to the last sample (the default) is settled
    /// from the slot in place: no aggregate, and the value is cloned only when it is a change.
    /// When no reported value moved and every sample came from planned reads, only the
    /// properties of the reads that had samples, and do not wait, are looked at (see
    /// `planned.rs`): the others' rings are empty.
    pub(crate) fn report_into(&mut self, out: &mut Vec<Change>, pending: &mut Vec<u16>) {
        let settled = std::mem::replace(&mut self.quiet.settled, true);
        let unplanned = std::mem::take(&mut self.quiet.unplanned);
        pending.clear();
        if self.quiet.moved {
            self.queue_repeats(); // they settle against the moved values
            pending.extend(0..self.props.len() as u16);
        } else {
            if unplanned || self.layout.plan.len() > 64 {
                // Samples from elsewhere, or reads whose samples are not tracked.
                pending.extend(0..self.props.len() as u16);
            } else {
                self.pending_props(pending);
                pending.sort_unstable(); // changes come in property order
            }
            self.drop_repeats(); // settling them would change nothing
        }
        self.touched = 0;
        let repeats_only = settled && !self.quiet.moved;
        let mut every = true;
        let Self {
            id,
            layout,
            props,
            samples,
            track_dirty,
            dirty,
            ..
        } = self;
        let mut sink = Sink {
            device: id,
            out,
            dirty: track_dirty.then_some(dirty),
        };
        for &p in &*pending {
            let st = &mut props[usize::from(p)];
            if st.ring.is_empty() {
                every = false;
                continue;
            }
            let cfg = &layout.props[usize::from(p)];
            let one = cfg.capacity == 1;
            if repeats_only && cfg.policy.heartbeat_ms == 0 {
                // Every sample repeats what the last report settled: nothing is news.
                st.ring.clear();
            } else if one && cfg.reduce == Reduce::Last {
                // Settled from the slot in place (moved out and back: the twin is beside it).
                st.ring.clear();
                let sample = std::mem::take(&mut st.slot);
                settle(cfg, st, p, &sample.value, sample.ts, &mut sink);
                st.slot = sample;
            } else {
                let (ring, slots) = st.ring_parts(layout, samples, p);
                if let Some(agg) = ring.drain(slots) {
                    let value = reduce(&agg, cfg.reduce, cfg.ty);
                    settle(cfg, st, p, &value, agg.last.ts, &mut sink);
                }
            }
        }
        if every && pending.len() == props.len() {
            self.quiet.moved = false; // every slot's value is settled against its reported value
        }
    }

    /// Applies one reported value through the change policy; pushes a change when it is one.
    pub(crate) fn settle(&mut self, prop: u16, value: &Value, ts: i64, out: &mut Vec<Change>) {
        self.queue_repeats();
        self.quiet.moved = true;
        let p = usize::from(prop);
        let mut sink = Sink {
            device: &self.id,
            out,
            dirty: self.track_dirty.then_some(&mut self.dirty),
        };
        settle(
            &self.layout.props[p],
            &mut self.props[p],
            prop,
            value,
            ts,
            &mut sink,
        );
    }

    /// Sets or removes a desired value; `version` is the cloud's (sync) or `None` (edge: bump).
    pub(crate) fn set_desired(
        &mut self,
        prop: u16,
        value: Option<Value>,
        ts: i64,
        version: Option<Version>,
        out: &mut Vec<Change>,
    ) {
        let p = usize::from(prop);
        let cfg = &self.layout.props[p];
        let st = &mut self.props[p];
        let same = match (st.desired_side(), &value) {
            (Some(d), Some(v)) => d.value == *v,
            (None, None) => true,
            _ => false,
        };
        if same {
            if let Some(ver) = version {
                // A cloud sync with the same value still takes the cloud's version.
                match st.desired.as_mut() {
                    Some(d) => d.version = ver,
                    None => {
                        st.desired = Some(Box::new(Desired {
                            side: None,
                            version: ver,
                        }));
                    }
                }
                if self.track_dirty {
                    self.dirty.push(prop);
                }
            }
            return;
        }
        let before = st.snapshot();
        let mut ver = before.desired_version;
        ver.edge += 1;
        let ver = version.unwrap_or(ver);
        let had = st.has_desired();
        st.desired = Some(Box::new(Desired {
            side: value.map(|value| TwinSide { value, ts }),
            version: ver,
        }));
        self.n_desired = self.n_desired + u32::from(st.has_desired()) - u32::from(had);
        let mut after = st.snapshot();
        after.desired_version = ver;
        out.push(Change {
            device: self.id.clone(),
            property: cfg.name.clone(),
            ty: cfg.ty,
            kind: ChangeKind::Desired,
            before,
            after,
        });
        if self.track_dirty {
            self.dirty.push(prop);
        }
    }

    /// Appends the device's delta when it has one.
    pub(crate) fn delta_into(&self, out: &mut Vec<DeviceDelta>) {
        if self.n_desired == 0 {
            return;
        }
        let mut twins = Vec::new();
        let mut delta = Vec::new();
        for (cfg, st) in self.layout.props.iter().zip(self.props.iter()) {
            if !st.has_desired() {
                continue;
            }
            let state = st.snapshot();
            if state.has_delta() {
                if let Some(d) = &state.desired {
                    delta.push((cfg.name.clone(), d.value.clone()));
                }
            }
            twins.push((cfg.name.clone(), cfg.ty, state));
        }
        if !delta.is_empty() {
            out.push(DeviceDelta {
                device: self.id.clone(),
                twins,
                delta,
            });
        }
    }
}

/// Pushes a sample into a property's ring.
pub(crate) fn push(
    layout: &Layout,
    props: &mut [PropState],
    samples: &mut [Sample],
    prop: u16,
    sample: Sample,
) {
    let (ring, slots) = props[usize::from(prop)].ring_parts(layout, samples, prop);
    ring.push(slots, sample);
}

/// Where settled changes go: the device's change list and, when tracked, its dirty list.
struct Sink<'a> {
    device: &'a Arc<str>,
    out: &'a mut Vec<Change>,
    dirty: Option<&'a mut Vec<u16>>,
}

/// Applies one reported value to a property through its change policy; a change (the value
/// moved, or the heartbeat is due) takes a clone of `value`, bumps the version and is pushed.
fn settle(
    cfg: &PropertyConfig,
    st: &mut PropState,
    prop: u16,
    value: &Value,
    ts: i64,
    sink: &mut Sink<'_>,
) {
    let emit = match &st.reported {
        None => true,
        Some(old) => {
            cfg.policy.is_change(&old.value, value) || cfg.policy.heartbeat_due(old.ts, ts)
        }
    };
    if !emit {
        return;
    }
    let before = st.snapshot();
    st.reported = Some(TwinSide {
        value: value.clone(),
        ts,
    });
    st.reported_version.edge += 1;
    sink.out.push(Change {
        device: sink.device.clone(),
        property: cfg.name.clone(),
        ty: cfg.ty,
        kind: ChangeKind::Reported,
        before,
        after: st.snapshot(),
    });
    if let Some(dirty) = sink.dirty.as_deref_mut() {
        dirty.push(prop);
    }
}

impl PropState {
    /// The desired value, if one is set.
    pub(crate) fn desired_side(&self) -> Option<&TwinSide> {
        self.desired.as_ref().and_then(|d| d.side.as_ref())
    }

    /// Whether a desired value is set.
    pub(crate) fn has_desired(&self) -> bool {
        self.desired_side().is_some()
    }

    pub(crate) fn snapshot(&self) -> TwinState {
        TwinState {
            desired: self.desired_side().cloned(),
            reported: self.reported.clone(),
            desired_version: self
                .desired
                .as_ref()
                .map_or_else(Version::default, |d| d.version),
            reported_version: self.reported_version,
        }
    }
}

/// The value a report cycle's aggregate gives under `reduce`.
pub(crate) fn reduce(agg: &Aggregate, reduce: Reduce, ty: PropertyType) -> Value {
    let pick = match reduce {
        Reduce::Last => None,
        Reduce::Min => agg.min,
        Reduce::Max => agg.max,
        Reduce::Mean => agg.mean,
        Reduce::Count => Some(f64::from(agg.count)),
    };
    pick.and_then(|x| Value::from_f64(ty, x))
        .unwrap_or_else(|| agg.last.value.clone())
}
