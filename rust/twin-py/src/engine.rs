//! The `Engine` pyclass: a frozen wrapper with an interior lock around `twin_core::store::Engine`.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use twin_core::encode::dmi;
use twin_core::store::{Engine as Core, ReadLimits};
use twin_core::{ChangeSet, Error, Value, Version};

use crate::changes::Changes;
use crate::convert;
use crate::errors::{poisoned, IntoPy};
use crate::without_gil;

/// The twin engine (see `twinplane.twin.Engine`).
#[pyclass(frozen, module = "twinplane._engine")]
pub struct Engine {
    inner: Mutex<Core>,
}

impl Engine {
    fn lock(&self) -> PyResult<MutexGuard<'_, Core>> {
        self.inner.lock().map_err(|_| poisoned())
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

    fn upsert_device(&self, device_id: &str, properties: &Bound<'_, PyAny>) -> PyResult<u32> {
        let mut specs = Vec::new();
        for (i, p) in properties.try_iter()?.enumerate() {
            let p = p?;
            convert::expect_mapping(&p, &format!("properties[{i}]"))?;
            specs.push(convert::property_spec(&p, i)?);
        }
        self.lock()?.upsert_device(device_id, &specs).py()
    }

    fn remove_device(&self, device_id: &str) -> PyResult<()> {
        self.lock()?.remove_device(device_id).py()
    }

    fn device_index(&self, device_id: &str) -> PyResult<u32> {
        self.lock()?.device_index(device_id).py()
    }

    fn device_id(&self, index: u32) -> PyResult<String> {
        Ok(self.lock()?.device_id(index).py()?.to_string())
    }

    fn device_ids(&self) -> PyResult<Vec<String>> {
        let core = self.lock()?;
        let mut ids: Vec<(u32, String)> =
            core.devices().map(|(id, i)| (i, id.to_string())).collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    fn property_index(&self, device: &Bound<'_, PyAny>, name: &str) -> PyResult<u16> {
        let core = self.lock()?;
        let dev = Self::index(&core, device)?;
        core.property_index(dev, name).py()
    }

    fn properties(&self, device: &Bound<'_, PyAny>) -> PyResult<Vec<(String, &'static str)>> {
        let core = self.lock()?;
        let dev = Self::index(&core, device)?;
        Ok(core
            .properties(dev)
            .py()?
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.as_str()))
            .collect())
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.lock()?.len())
    }

    fn read_plan(&self, device: &Bound<'_, PyAny>) -> PyResult<Vec<(&'static str, u16, u16)>> {
        let core = self.lock()?;
        let dev = Self::index(&core, device)?;
        Ok(core
            .read_plan(dev)
            .py()?
            .iter()
            .map(|r| (r.kind.as_str(), r.start, r.count))
            .collect())
    }

    #[pyo3(signature = (device, register, start, frame, ts_ms, count = None))]
    fn ingest_frame(
        &self,
        device: u32,
        register: &str,
        start: u16,
        frame: &[u8],
        ts_ms: i64,
        count: Option<u16>,
    ) -> PyResult<usize> {
        let kind = convert::register_kind(register)?;
        self.lock()?
            .ingest_frame(device, kind, start, count, frame, ts_ms)
            .py()
    }

    fn ingest_values(&self, device: u32, values: &Bound<'_, PyAny>, ts_ms: i64) -> PyResult<()> {
        let mut core = self.lock()?;
        let types = core.properties(device).py()?;
        let mut batch = Vec::new();
        for item in values.try_iter()? {
            let (prop, obj): (u16, Bound<'_, PyAny>) = item?.extract()?;
            let Some((name, ty)) = types.get(usize::from(prop)) else {
                return core
                    .property_index(device, &format!("#{prop}"))
                    .map(|_| ())
                    .py();
            };
            let id = core.device_id(device).py()?.to_string();
            batch.push((
                prop,
                convert::value(&obj, *ty)
                    .map_err(|e| e.with_device(&id).with_property(name))
                    .py()?,
            ));
        }
        core.ingest_values(device, &batch, ts_ms).py()
    }

    fn report(&self, py: Python<'_>) -> PyResult<Changes> {
        self.detached(py, |core| Ok(core.report())).map(changes)
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
        self.detached(py, move |core| {
            let req = dmi::decode_report_device_status_request(&payload)?;
            let id = format!(
                "{}/{}",
                if req.namespace.is_empty() {
                    "default"
                } else {
                    &req.namespace
                },
                req.name
            );
            let dev = core.device_index(&id)?;
            let types = core.properties(dev)?;
            let mut batch = Vec::with_capacity(req.twins.len());
            for t in &req.twins {
                let Some(text) = &t.reported else { continue };
                let p = core.property_index(dev, &t.property)?;
                let ty = types[usize::from(p)].1;
                let v = Value::from_canonical(ty, text)
                    .map_err(|e| e.with_device(&id).with_property(&t.property))?;
                let ts = t
                    .reported_ts
                    .as_deref()
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(ts_ms);
                batch.push((p, v, ts));
            }
            core.apply_reported(dev, &batch)
        })
        .map(changes)
    }

    fn set_desired(
        &self,
        device: &str,
        values: &Bound<'_, PyDict>,
        ts_ms: i64,
    ) -> PyResult<Changes> {
        let mut core = self.lock()?;
        let dev = core.device_index(device).py()?;
        let types = core.properties(dev).py()?;
        let mut batch = Vec::with_capacity(values.len());
        for (k, v) in values.iter() {
            let name: String = k.extract()?;
            let p = core.property_index(dev, &name).py()?;
            let value = if v.is_none() {
                None
            } else {
                Some(
                    convert::value(&v, types[usize::from(p)].1)
                        .map_err(|e| e.with_device(device).with_property(&name))
                        .py()?,
                )
            };
            batch.push((p, value));
        }
        core.set_desired(dev, &batch, ts_ms).py().map(changes)
    }

    fn sync_desired(
        &self,
        device: &str,
        values: &Bound<'_, PyDict>,
        ts_ms: i64,
    ) -> PyResult<Changes> {
        let mut core = self.lock()?;
        let dev = core.device_index(device).py()?;
        let types = core.properties(dev).py()?;
        let mut batch = Vec::with_capacity(values.len());
        for (k, v) in values.iter() {
            let name: String = k.extract()?;
            let (text, cloud, edge): (Option<String>, u64, u64) = v.extract()?;
            let p = core.property_index(dev, &name).py()?;
            let value = text
                .map(|t| {
                    Value::parse(types[usize::from(p)].1, &t)
                        .map_err(|e| e.with_device(device).with_property(&name))
                })
                .transpose()
                .py()?;
            batch.push((p, value, Version { cloud, edge }));
        }
        core.sync_desired(dev, &batch, ts_ms).py().map(changes)
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
            let core = self.lock()?;
            let dev = core.device_index(device).py()?;
            core.twins(dev).py()?
        };
        let out = PyDict::new(py);
        for (name, ty, state) in &twins {
            out.set_item(&**name, convert::twin_to_py(py, *ty, state)?)?;
        }
        Ok(out)
    }

    fn restore(&self, device: &str, property: &str, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut core = self.lock()?;
        let dev = core.device_index(device).py()?;
        let p = core.property_index(dev, property).py()?;
        let ty = core.properties(dev).py()?[usize::from(p)].1;
        let twin = convert::twin_from_py(state, ty)?;
        core.restore(dev, p, twin)
            .map_err(|e| e.with_property(property))
            .py()
    }

    fn encode_write<'py>(
        &self,
        device: &Bound<'py, PyAny>,
        property: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = {
            let core = self.lock()?;
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

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.lock()?.stats();
        let d = PyDict::new(py);
        d.set_item("devices", s.devices)?;
        d.set_item("properties", s.properties)?;
        d.set_item("layouts", s.layouts)?;
        d.set_item("queued", s.queued)?;
        d.set_item("dropped", s.dropped)?;
        Ok(d)
    }

    fn __repr__(&self) -> PyResult<String> {
        let s = self.lock()?.stats();
        Ok(format!(
            "<Engine devices={} properties={}>",
            s.devices, s.properties
        ))
    }
}
