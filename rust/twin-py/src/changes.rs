//! The `Changes` pyclass: an immutable batch of twin changes and its encoders (DMI protobuf,
//! KubeEdge MQTT JSON, Arrow through the `PyCapsule` interface).

use std::ffi::CString;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::{Array, StructArray};
use arrow_data::ffi::FFI_ArrowArray;
use arrow_schema::ffi::FFI_ArrowSchema;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList};
use twin_core::encode::dmi::PackedRequests;
use twin_core::encode::mqtt::PackedMessages;
use twin_core::encode::{arrow as arrow_enc, dmi, mqtt};
use twin_core::{AlarmEdge, ChangeSet};

use crate::convert;
use crate::without_gil;

/// What one engine call changed (see `twinplane.twin.Changes`).
#[pyclass(frozen, module = "twinplane._engine")]
pub struct Changes {
    set: Arc<ChangeSet>,
}

impl Changes {
    pub(crate) fn new(set: ChangeSet) -> Self {
        Self { set: Arc::new(set) }
    }

    pub(crate) fn from_shared(set: Arc<ChangeSet>) -> Self {
        Self { set }
    }
}

/// The report of [`crate::engine::Engine::report_encoded`]: the changes and their encodings.
#[pyclass(frozen, module = "twinplane._engine")]
pub struct EncodedReport {
    /// The changes.
    #[pyo3(get)]
    changes: Py<Changes>,
    /// `(device id, ReportDeviceStatusRequest bytes)` per device with reported changes.
    #[pyo3(get)]
    dmi: Py<PyList>,
    /// `(topic, payload)` per MQTT publication.
    #[pyo3(get)]
    mqtt: Py<PyList>,
}

#[pymethods]
impl EncodedReport {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<EncodedReport changes={} dmi={} mqtt={}>",
            self.changes.get().set.changes.len(),
            self.dmi.bind(py).len(),
            self.mqtt.bind(py).len()
        )
    }
}

/// Everything a report call encodes, built without the GIL.
pub(crate) struct Encoded {
    pub(crate) set: Arc<ChangeSet>,
    pub(crate) dmi: Option<PackedRequests>,
    pub(crate) mqtt: Option<PackedMessages>,
}

impl Encoded {
    /// Encodes `set` (DMI and/or MQTT at `now_ms`, or now).
    pub(crate) fn new(set: ChangeSet, dmi: bool, mqtt: bool, now_ms: Option<i64>) -> Self {
        let set = Arc::new(set);
        let dmi = dmi.then(|| dmi::report_device_status_requests_packed(&set));
        let mqtt = mqtt.then(|| packed_mqtt(&set, now_ms));
        Self { set, dmi, mqtt }
    }

    /// The Python report.
    pub(crate) fn into_py(self, py: Python<'_>) -> PyResult<EncodedReport> {
        let dmi = match &self.dmi {
            Some(packed) => dmi_list(py, packed)?,
            None => PyList::empty(py),
        };
        let mqtt = match &self.mqtt {
            Some(packed) => mqtt_list(py, packed)?,
            None => PyList::empty(py),
        };
        Ok(EncodedReport {
            changes: Py::new(py, Changes::from_shared(self.set))?,
            dmi: dmi.unbind(),
            mqtt: mqtt.unbind(),
        })
    }
}

/// The MQTT publications of `set` with fresh event ids.
fn packed_mqtt(set: &ChangeSet, now_ms: Option<i64>) -> PackedMessages {
    let now = now_ms.unwrap_or_else(self::now_ms);
    let mut state = seed();
    mqtt::twin_messages_packed(set, now, &mut |out: &mut String| {
        mqtt::uuid_v4_json(out, &mut state);
    })
}

/// `[(device id, request bytes)]`.
fn dmi_list<'py>(py: Python<'py>, packed: &PackedRequests) -> PyResult<Bound<'py, PyList>> {
    pairs(py, packed.len(), packed.iter().map(|(d, b)| (&**d, b)))
}

/// `[(topic, payload bytes)]`.
fn mqtt_list<'py>(py: Python<'py>, packed: &PackedMessages) -> PyResult<Bound<'py, PyList>> {
    pairs(
        py,
        packed.len(),
        packed.iter().map(|(t, p)| (t, p.as_bytes())),
    )
}

/// A list of `len` `(str, bytes)` tuples, built straight with the C API: thousands per
/// report, where pyo3's generic constructors cost a third more. The tuples hold only a `str`
/// and a `bytes`, which can never be part of a reference cycle, so they are untracked by the
/// garbage collector at once (as Python itself untracks such tuples at the first collection).
fn pairs<'py, 'a>(
    py: Python<'py>,
    len: usize,
    items: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> PyResult<Bound<'py, PyList>> {
    let size = isize::try_from(len).map_err(|_| pyo3::exceptions::PyOverflowError::new_err(len))?;
    // SAFETY: every pointer comes from a C API constructor and is checked for NULL (then the
    // Python error is returned) before it is used; `Bound::from_owned_ptr` takes each new
    // reference once; PyTuple_SetItem and PyList_SetItem steal the references they are given
    // and are called with in-range indices of fresh, not yet shared objects; the GIL is held
    // (`py`).
    unsafe {
        let list = Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyList_New(size))?;
        let mut index = 0;
        for (key, value) in items.take(len) {
            let key = Bound::from_owned_ptr_or_err(py, string(key))?;
            let value = Bound::from_owned_ptr_or_err(py, bytes(value))?;
            let pair = Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyTuple_New(2))?;
            pyo3::ffi::PyTuple_SetItem(pair.as_ptr(), 0, key.into_ptr());
            pyo3::ffi::PyTuple_SetItem(pair.as_ptr(), 1, value.into_ptr());
            pyo3::ffi::PyObject_GC_UnTrack(pair.as_ptr().cast());
            pyo3::ffi::PyList_SetItem(list.as_ptr(), index, pair.into_ptr());
            index += 1;
        }
        if index != size {
            // Never: both packed types yield exactly `len` items. Unfilled slots would be NULL.
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "short encoded batch",
            ));
        }
        Ok(list.cast_into_unchecked::<PyList>())
    }
}

/// A new `str` of UTF-8 text (NULL with a Python error set on failure).
///
/// # Safety
/// The GIL must be held.
unsafe fn string(text: &str) -> *mut pyo3::ffi::PyObject {
    // A `&str` is at most `isize::MAX` bytes long.
    unsafe { pyo3::ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as isize) }
}

/// A new `bytes` (NULL with a Python error set on failure).
///
/// # Safety
/// The GIL must be held.
unsafe fn bytes(data: &[u8]) -> *mut pyo3::ffi::PyObject {
    // A slice is at most `isize::MAX` bytes long.
    unsafe { pyo3::ffi::PyBytes_FromStringAndSize(data.as_ptr().cast(), data.len() as isize) }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A seed for event ids: time and a per-process counter.
fn seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

#[pymethods]
impl Changes {
    fn __len__(&self) -> usize {
        self.set.changes.len()
    }

    fn __bool__(&self) -> bool {
        !self.set.is_empty()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Changes changes={} deltas={}>",
            self.set.changes.len(),
            self.set.deltas.len()
        )
    }

    /// Device ids with changes, in order.
    fn devices(&self) -> Vec<String> {
        self.set
            .by_device()
            .map(|c| c[0].device.to_string())
            .collect()
    }

    fn to_dmi<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let set = self.set.clone();
        let packed = without_gil(py, move || dmi::report_device_status_requests_packed(&set));
        dmi_list(py, &packed)
    }

    #[pyo3(signature = (now_ms = None))]
    fn to_mqtt<'py>(&self, py: Python<'py>, now_ms: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let set = self.set.clone();
        let packed = without_gil(py, move || packed_mqtt(&set, now_ms));
        mqtt_list(py, &packed)
    }

    fn to_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for c in &self.set.changes {
            let d = PyDict::new(py);
            d.set_item("device", &*c.device)?;
            d.set_item("property", &*c.property)?;
            d.set_item("kind", c.kind.as_str())?;
            let side = c.side();
            d.set_item("value", side.map(|s| s.value.to_canonical()))?;
            d.set_item("timestamp", side.map(|s| s.ts))?;
            d.set_item("before", convert::twin_to_py(py, c.ty, &c.before)?)?;
            d.set_item("after", convert::twin_to_py(py, c.ty, &c.after)?)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// The alarm transitions of the batch, in order: `(device, rule, property, raised, value,
    /// threshold, ts)`.
    fn alarms(&self) -> Vec<(String, String, String, bool, f64, f64, i64)> {
        self.set
            .alarms
            .iter()
            .map(|a| {
                (
                    a.device.to_string(),
                    a.rule.to_string(),
                    a.property.to_string(),
                    a.edge == AlarmEdge::Raised,
                    a.value,
                    a.threshold,
                    a.ts,
                )
            })
            .collect()
    }

    fn deltas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for d in &self.set.deltas {
            let delta = PyDict::new(py);
            for (name, v) in &d.delta {
                delta.set_item(&**name, v.to_canonical())?;
            }
            out.set_item(&*d.device, delta)?;
        }
        Ok(out)
    }

    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema;
        let set = self.set.clone();
        let batch = without_gil(py, move || arrow_enc::changes_to_record_batch(&set))
            .map_err(|e| PyValueError::new_err(format!("arrow encoding failed: {e}")))?;
        let data = StructArray::from(batch).into_data();
        let schema = FFI_ArrowSchema::try_from(data.data_type())
            .map_err(|e| PyValueError::new_err(format!("arrow schema export failed: {e}")))?;
        let array = FFI_ArrowArray::new(&data);
        let schema_name =
            CString::new("arrow_schema").map_err(|e| PyValueError::new_err(e.to_string()))?;
        let array_name =
            CString::new("arrow_array").map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((
            PyCapsule::new(py, schema, Some(schema_name))?,
            PyCapsule::new(py, array, Some(array_name))?,
        ))
    }
}

// `Array` is used through `into_data`.
const _: fn(&StructArray) -> usize = <StructArray as Array>::len;
