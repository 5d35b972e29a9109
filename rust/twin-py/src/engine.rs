//! The `Engine` pyclass: a frozen wrapper with an interior lock around `twin_core::engine::Engine`.

use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use twin_core::engine::{Engine as Core, PlannedFrame};
use twin_core::modbus::ReadRange;
use twin_core::spec::ReadLimits;
use twin_core::{ChangeSet, Error, Value, Version};

use crate::changes::{Changes, Encoded, EncodedReport};
use crate::convert;
use crate::errors::{poisoned, IntoPy};
use crate::latency::LatencyHistogram;
use crate::without_gil;

/// The twin engine (see `twinplane.twin.Engine`).
#[pyclass(frozen, module = "twinplane._engine")]
pub struct Engine {
    inner: Mutex<Core>,
}

impl Engine {
    /// Locks the engine. When another thread holds the lock (a long batch with the GIL
    /// released), waits without the GIL, so other Python threads and the event loop run on.
    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Core>> {
        loop {
            match self.inner.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
                Err(TryLockError::WouldBlock) => without_gil(py, || drop(self.inner.lock())),
            }
        }
    }

    /// Locks with the GIL released, runs `f`, and returns its result (errors converted after
    /// the GIL is back, so the lock is never held while waiting for the GIL).
    fn detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Core) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        let out = without_gil(py, || {
            self.inner.lock().map(|mut g| f(&mut g)).map_err(|_| ())
        });
        out.map_err(|()| poisoned())?.py()
    }

    fn index(core: &Core, device: &Bound<'_, PyAny>) -> PyResult<u32> {
        if let Ok(i) = device.extract::<u32>() {
            return Ok(i);
        }
        let id: String = device.extract()?;
        core.device_index(&id).py()
    }
}

fn changes(set: ChangeSet) -> Changes {
    Changes::new(set)
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (*, max_registers = 125, max_bits = 2000, max_gap = 0, track_dirty = false))]
    fn new(max_registers: u16, max_bits: u16, max_gap: u16, track_dirty: bool) -> PyResult<Self> {
        if !(1..=125).contains(&max_registers) || !(1..=2000).contains(&max_bits) {
            return Err(crate::errors::to_py(&Error::spec(
                "",
                "max_registers",
                "max_registers must be 1..=125 and max_bits 1..=2000 (Modbus limits)",
            )));
        }
        let limits = ReadLimits {
            max_registers,
            max_bits,
            max_gap,
        };
        let mut core = Core::with_read_limits(limits);
        core.set_track_dirty(track_dirty);
        Ok(Self {
            inner: Mutex::new(core),
        })
    }

    fn upsert_device(
        &self,
        py: Python<'_>,
        device_id: &str,
        properties: &Bound<'_, PyAny>,
    ) -> PyResult<u32> {
        let mut specs = Vec::new();
        for (i, p) in properties.try_iter()?.enumerate() {
            let p = p?;
            convert::expect_mapping(&p, &format!("properties[{i}]"))?;
            let spec = convert::property_spec(&p, i).inspect_err(|err| {
                // Errors found while reading the spec name the device too.
                let _ = err.value(py).setattr("device", device_id);
            })?;
            specs.push(spec);
        }
        self.lock(py)?.upsert_device(device_id, &specs).py()
    }

    fn remove_device(&self, py: Python<'_>, device_id: &str) -> PyResult<()> {
        self.lock(py)?.remove_device(device_id).py()
    }

    fn device_index(&self, py: Python<'_>, device_id: &str) -> PyResult<u32> {
        self.lock(py)?.device_index(device_id).py()
    }

    fn device_id(&self, py: Python<'_>, index: u32) -> PyResult<String> {
        Ok(self.lock(py)?.device_id(index).py()?.to_string())
    }

    fn device_ids(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let core = self.lock(py)?;
        let mut ids: Vec<(u32, String)> =
            core.devices().map(|(id, i)| (i, id.to_string())).collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    fn property_index(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        name: &str,
    ) -> PyResult<u16> {
        let core = self.lock(py)?;
        let dev = Self::index(&core, device)?;
        core.property_index(dev, name).py()
    }

    fn properties(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(String, &'static str)>> {
        let core = self.lock(py)?;
        let dev = Self::index(&core, device)?;
        Ok(core
            .properties(dev)
            .py()?
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.as_str()))
            .collect())
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.lock(py)?.len())
    }

    #[pyo3(signature = (device, properties = None))]
    fn read_plan(
        &self,
        py: Python<'_>,
        device: &Bound<'_, PyAny>,
        properties: Option<Vec<u16>>,
    ) -> PyResult<Vec<(&'static str, u16, u16)>> {
        let core = self.lock(py)?;
        let dev = Self::index(&core, device)?;
        let reads = |plan: &[ReadRange]| {
            plan.iter()
                .map(|r| (r.kind.as_str(), r.start, r.count))
                .collect()
        };
        Ok(match properties {
            None => reads(core.read_plan(dev).py()?),
            Some(props) => reads(&core.read_plan_of(dev, &props).py()?),
        })
    }

    #[pyo3(signature = (device, register, start, frame, ts_ms, count = None))]
    #[allow(clippy::too_many_arguments)] // the Python signature: one call per coalesced read
    fn ingest_frame(
        &self,
        device: u32,
        register: &str,
        start: u16,
        frame: &[u8],
        ts_ms: i64,
        count: Option<u16>,
        py: Python<'_>,
    ) -> PyResult<usize> {
        let kind = convert::register_kind(register)?;
        self.lock(py)?
            .ingest_frame(device, kind, start, count, frame, ts_ms)
            .py()
    }

    #[pyo3(signature = (devices, frames, ts_ms, reads = None))]
    fn ingest_frames(
        &self,
        py: Python<'_>,
        devices: Vec<u32>,
        frames: &Bound<'_, PyAny>,
        ts_ms: &Bound<'_, PyAny>,
        reads: Option<Vec<u16>>,
    ) -> PyResult<usize> {
        let n = devices.len();
        // Our own references keep every frame alive (and bytes are immutable) while the GIL is
        // released below.
        let owned: Vec<Bound<'_, PyBytes>> = frames
            .try_iter()?
            .map(|f| Ok(f?.cast_into::<PyBytes>()?))
            .collect::<PyResult<_>>()?;
        let times = match ts_ms.extract::<i64>() {
            Ok(ts) => vec![ts; n],
            Err(_) => ts_ms.extract::<Vec<i64>>()?,
        };
        let reads = reads.unwrap_or_else(|| vec![0; n]);
        for (name, len) in [
            ("frames", owned.len()),
            ("ts_ms", times.len()),
            ("reads", reads.len()),
        ] {
            if len != n {
                let message = format!("{name} has {len} items and devices {n}: one per frame");
                return Err(crate::errors::to_py(&Error::spec("", name, message)));
            }
        }
        let planned: Vec<PlannedFrame<'_>> = devices
            .into_iter()
            .zip(&owned)
            .zip(reads.iter().zip(&times))
            .map(|((device, frame), (&read, &ts))| PlannedFrame {
                device,
                read,
                frame: frame.as_bytes(),
                ts,
            })
            .collect();
        let out = without_gil(py, || {
            self.inner
                .lock()
                .map(|mut core| core.ingest_planned(&planned))
                .map_err(|_| ())
        });
        out.map_err(|()| poisoned())?.map_err(|(i, err)| {
            let field = match err {
                Error::UnknownDevice { .. } => "devices",
                Error::InvalidSpec { .. } => "reads",
                _ => "frames",
            };
            let exc = crate::errors::to_py(&err);
            let _ = exc.value(py).setattr("path", format!("{field}[{i}]"));
            exc
        })
    }

    fn ingest_values(
        &self,
        py: Python<'_>,
        device: u32,
        values: &Bound<'_, PyAny>,
        ts_ms: i64,
    ) -> PyResult<()> {
        // Read the Python side first: iterating may run Python code, never under the lock.
        let mut items = Vec::new();
        for item in values.try_iter()? {
            let (prop, obj): (u16, Bound<'_, PyAny>) = item?.extract()?;
            items.push((prop, obj));
        }
        let (id, types) = {
            let core = self.lock(py)?;
            (
                core.device_id(device).py()?.to_string(),
                core.properties(device).py()?,
            )
        };
        let mut batch = Vec::with_capacity(items.len());
        for (prop, obj) in &items {
            let Some((name, ty)) = types.get(usize::from(*prop)) else {
                let err = Error::UnknownProperty {
                    device: id.clone(),
                    property: format!("#{prop}"),
                };
                return Err(crate::errors::to_py(&err));
            };
            let value =
                convert::value(obj, *ty).map_err(|e| e.with_device(&id).with_property(name));
            batch.push((*prop, value.py()?));
        }
        // The engine re-checks every type, so a reconfiguration in between cannot slip through.
        self.lock(py)?.ingest_values(device, &batch, ts_ms).py()
    }

    fn report(&self, py: Python<'_>) -> PyResult<Changes> {
        self.detached(py, |core| Ok(core.report())).map(changes)
    }

    #[pyo3(signature = (now_ms = None, *, dmi = true, mqtt = true))]
    fn report_encoded(
        &self,
        py: Python<'_>,
        now_ms: Option<i64>,
        dmi: bool,
        mqtt: bool,
    ) -> PyResult<EncodedReport> {
        // Encoded without the GIL, and after the lock is released: the engine takes new samples
        // while the report is being encoded.
        let encoded = without_gil(py, || {
            let set = self
                .inner
                .lock()
                .map(|mut core| core.report())
                .map_err(|_| ())?;
            Ok(Encoded::new(set, dmi, mqtt, now_ms))
        });
        encoded.map_err(|()| poisoned())?.into_py(py)
    }

    fn report_devices(&self, py: Python<'_>, devices: Vec<u32>) -> PyResult<Changes> {
        self.detached(py, move |core| core.report_devices(&devices))
            .map(changes)
    }

    fn apply_reported(
        &self,
        py: Python<'_>,
        device: &str,
        values: Vec<(String, String, i64)>,
    ) -> PyResult<Changes> {
        let device = device.to_owned();
        self.detached(py, move |core| {
            let dev = core.device_index(&device)?;
            let types = core.properties(dev)?;
            let mut batch = Vec::with_capacity(values.len());
            for (name, text, ts) in &values {
                let p = core.property_index(dev, name)?;
                let ty = types[usize::from(p)].1;
                let v = Value::from_canonical(ty, text)
                    .map_err(|e| e.with_device(&device).with_property(name))?;
                batch.push((p, v, *ts));
            }
            core.apply_reported(dev, &batch)
        })
        .map(changes)
    }

    fn apply_dmi_report(&self, py: Python<'_>, payload: Vec<u8>, ts_ms: i64) -> PyResult<Changes> {
        self.detached(py, move |core| core.apply_dmi_report(&payload, ts_ms))
            .map(changes)
    }

    fn set_desired(
        &self,
        py: Python<'_>,
        device: &str,
        values: &Bound<'_, PyDict>,
        ts_ms: i64,
    ) -> PyResult<Changes> {
        let items: Vec<(String, Bound<'_, PyAny>)> = values
            .iter()
            .map(|(k, v)| Ok((k.extract::<String>()?, v)))
            .collect::<PyResult<_>>()?;
        let (dev, types) = {
            let core = self.lock(py)?;
            let dev = core.device_index(device).py()?;
            (dev, core.properties(dev).py()?)
        };
        let mut batch = Vec::with_capacity(items.len());
        for (name, v) in &items {
            let Some(p) = types.iter().position(|(n, _)| **n == **name) else {
                let err = Error::UnknownProperty {
                    device: device.to_owned(),
                    property: name.clone(),
                };
                return Err(crate::errors::to_py(&err));
            };
            let value = if v.is_none() {
                None
            } else {
                let ty = types[p].1;
                let parsed =
                    convert::value(v, ty).map_err(|e| e.with_device(device).with_property(name));
                Some(parsed.py()?)
            };
            batch.push((p as u16, value));
        }
        self.lock(py)?
            .set_desired(dev, &batch, ts_ms)
            .py()
            .map(changes)
    }

    fn sync_desired(
        &self,
        py: Python<'_>,
        device: &str,
        values: &Bound<'_, PyDict>,
        ts_ms: i64,
    ) -> PyResult<Changes> {
        let mut items = Vec::with_capacity(values.len());
        for (k, v) in values.iter() {
            let name: String = k.extract()?;
            let (text, cloud, edge): (Option<String>, u64, u64) = v.extract()?;
            items.push((name, text, Version { cloud, edge }));
        }
        let (dev, types) = {
            let core = self.lock(py)?;
            let dev = core.device_index(device).py()?;
            (dev, core.properties(dev).py()?)
        };
        let mut batch = Vec::with_capacity(items.len());
        for (name, text, version) in items {
            let Some(p) = types.iter().position(|(n, _)| **n == *name) else {
                let err = Error::UnknownProperty {
                    device: device.to_owned(),
                    property: name,
                };
                return Err(crate::errors::to_py(&err));
            };
            let value = text
                .map(|t| {
                    Value::parse(types[p].1, &t)
                        .map_err(|e| e.with_device(device).with_property(&name))
                })
                .transpose()
                .py()?;
            batch.push((p as u16, value, version));
        }
        self.lock(py)?
            .sync_desired(dev, &batch, ts_ms)
            .py()
            .map(changes)
    }

    fn take_dirty(&self, py: Python<'_>) -> PyResult<Vec<(String, String, String)>> {
        let rows = self.detached(py, |core| Ok(core.take_dirty()))?;
        Ok(rows
            .into_iter()
            .map(|(d, p, j)| (d.to_string(), p.to_string(), j))
            .collect())
    }

    fn twins<'py>(&self, py: Python<'py>, device: &str) -> PyResult<Bound<'py, PyDict>> {
        let twins = {
            let core = self.lock(py)?;
            let dev = core.device_index(device).py()?;
            core.twins(dev).py()?
        };
        let out = PyDict::new(py);
        for (name, ty, state) in &twins {
            out.set_item(&**name, convert::twin_to_py(py, *ty, state)?)?;
        }
        Ok(out)
    }

    fn restore(
        &self,
        py: Python<'_>,
        device: &str,
        property: &str,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (dev, p, ty) = {
            let core = self.lock(py)?;
            let dev = core.device_index(device).py()?;
            let p = core.property_index(dev, property).py()?;
            (dev, p, core.properties(dev).py()?[usize::from(p)].1)
        };
        let twin = convert::twin_from_py(state, ty, device, property)?;
        self.lock(py)?
            .restore(dev, p, twin)
            .map_err(|e| e.with_property(property))
            .py()
    }

    fn restore_alarm(
        &self,
        py: Python<'_>,
        device: &str,
        rule: &str,
        active: bool,
    ) -> PyResult<()> {
        let mut core = self.lock(py)?;
        let dev = core.device_index(device).py()?;
        core.restore_alarm(dev, rule, active).py()
    }

    fn active_alarms(&self, py: Python<'_>, device: &str) -> PyResult<Vec<(String, String)>> {
        let core = self.lock(py)?;
        let dev = core.device_index(device).py()?;
        Ok(core
            .active_alarms(dev)
            .py()?
            .into_iter()
            .map(|(r, p)| (r.to_string(), p.to_string()))
            .collect())
    }

    fn encode_write<'py>(
        &self,
        py: Python<'py>,
        device: &Bound<'py, PyAny>,
        property: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = {
            let core = self.lock(py)?;
            let dev = Self::index(&core, device)?;
            let p = match property.extract::<u16>() {
                Ok(p) => p,
                Err(_) => core
                    .property_index(dev, &property.extract::<String>()?)
                    .py()?,
            };
            let (name, ty) = core
                .properties(dev)
                .py()?
                .get(usize::from(p))
                .cloned()
                .ok_or_else(|| {
                    crate::errors::to_py(&Error::UnknownProperty {
                        device: String::new(),
                        property: format!("#{p}"),
                    })
                })?;
            let v = convert::value(value, ty)
                .map_err(|e| e.with_property(&name))
                .py()?;
            core.encode_write(dev, p, &v).py()?
        };
        convert::write_to_py(value.py(), &op)
    }

    fn mark_persisted(&self, py: Python<'_>, now_ms: i64) -> PyResult<()> {
        // Up to `MAX_UNPERSISTED` read times after failed flushes: without the GIL.
        self.detached(py, move |core| {
            core.mark_persisted(now_ms);
            Ok(())
        })
    }

    fn latency<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = self.lock(py)?.latency().clone();
        let d = PyDict::new(py);
        d.set_item("applied", LatencyHistogram::new(snapshot.applied))?;
        d.set_item("persisted", LatencyHistogram::new(snapshot.persisted))?;
        Ok(d)
    }

    fn reset_latency(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py)?.reset_latency();
        Ok(())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.lock(py)?.stats();
        let d = PyDict::new(py);
        d.set_item("devices", s.devices)?;
        d.set_item("properties", s.properties)?;
        d.set_item("layouts", s.layouts)?;
        d.set_item("queued", s.queued)?;
        d.set_item("dropped", s.dropped)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let s = self.lock(py)?.stats();
        Ok(format!(
            "<Engine devices={} properties={}>",
            s.devices, s.properties
        ))
    }
}
