//! Conversions between Python objects and engine types: property specs (the manifest's own
//! keys), visitor configs, values, twin states.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use twin_core::modbus::{RegisterKind, Visitor, VisitorSpec, WriteOp};
use twin_core::policy::{ChangePolicy, Deadband, Reduce};
use twin_core::spec::PropertySpec;
use twin_core::{AlarmRule, Condition, Error, PropertyType, TwinSide, TwinState, Value, Version};

use crate::errors::IntoPy;

fn spec_err(path: &str, message: impl Into<String>) -> PyErr {
    crate::errors::to_py(&Error::spec("", path, message))
}

/// Reads an optional key of a mapping.
fn get<'py>(map: &Bound<'py, PyAny>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    match map.get_item(key) {
        Ok(v) if v.is_none() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(map.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An integer that may arrive as int, integral float (DMI `FloatValue`) or numeric text
/// (manifests often quote numbers).
fn as_i64(v: &Bound<'_, PyAny>, path: &str) -> PyResult<i64> {
    if v.is_instance_of::<PyBool>() {
        return Err(spec_err(path, "expected an integer, got a boolean"));
    }
    if let Ok(i) = v.extract::<i64>() {
        return Ok(i);
    }
    let f = as_f64(v, path)?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Ok(f as i64)
    } else {
        Err(spec_err(path, format!("expected an integer, got {f}")))
    }
}

/// A number that may arrive as int, float or numeric text.
fn as_f64(v: &Bound<'_, PyAny>, path: &str) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>() {
        return Err(spec_err(path, "expected a number, got a boolean"));
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(f);
    }
    if let Ok(s) = v.cast::<PyString>() {
        let text = s.to_cow()?;
        return text
            .trim()
            .parse::<f64>()
            .map_err(|_| spec_err(path, format!("expected a number, got {text:?}")));
    }
    Err(spec_err(
        path,
        format!("expected a number, got {}", v.get_type().name()?),
    ))
}

/// A boolean that may arrive as bool or `"true"`/`"false"` text.
fn as_bool(v: &Bound<'_, PyAny>, path: &str) -> PyResult<bool> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    if let Ok(s) = v.cast::<PyString>() {
        match s.to_cow()?.to_ascii_lowercase().as_str() {
            "true" => return Ok(true),
            "false" => return Ok(false),
            _ => {}
        }
    }
    Err(spec_err(
        path,
        format!("expected true or false, got {}", v.repr()?),
    ))
}

fn as_string(v: &Bound<'_, PyAny>, path: &str) -> PyResult<String> {
    v.cast::<PyString>()
        .map_err(|_| spec_err(path, "expected a string"))
        .and_then(|s| Ok(s.to_cow()?.into_owned()))
}

/// A Modbus visitor `configData` mapping (`register`, `offset`, `limit`, `dataType`, `scale`,
/// `isSwap`, `isRegisterSwap`; other keys are ignored, as mapper-framework drivers do).
pub(crate) fn visitor_spec(map: &Bound<'_, PyAny>, path: &str) -> PyResult<VisitorSpec> {
    let p = |k: &str| format!("{path}.{k}");
    let register = get(map, "register")?.ok_or_else(|| spec_err(&p("register"), "required"))?;
    let mut spec = VisitorSpec {
        register: as_string(&register, &p("register"))?,
        scale: 1.0,
        ..VisitorSpec::default()
    };
    if let Some(v) = get(map, "offset")? {
        spec.offset = as_i64(&v, &p("offset"))?;
    }
    if let Some(v) = get(map, "limit")? {
        spec.limit = as_i64(&v, &p("limit"))?;
    }
    if let Some(v) = get(map, "dataType")? {
        spec.data_type = as_string(&v, &p("dataType"))?;
    }
    if let Some(v) = get(map, "scale")? {
        spec.scale = as_f64(&v, &p("scale"))?;
    }
    if let Some(v) = get(map, "isSwap")? {
        spec.is_swap = as_bool(&v, &p("isSwap"))?;
    }
    if let Some(v) = get(map, "isRegisterSwap")? {
        spec.is_register_swap = as_bool(&v, &p("isRegisterSwap"))?;
    }
    Ok(spec)
}

/// A property spec mapping: `name`, `type`, optional `visitor` (Modbus configData),
/// `deadband` or `deadband_relative`, `heartbeat_ms`, `reduce`, `queue_capacity`.
pub(crate) fn property_spec(map: &Bound<'_, PyAny>, i: usize) -> PyResult<PropertySpec> {
    let path = format!("properties[{i}]");
    let p = |k: &str| format!("{path}.{k}");
    let name = get(map, "name")?.ok_or_else(|| spec_err(&p("name"), "required"))?;
    let ty = get(map, "type")?.ok_or_else(|| spec_err(&p("type"), "required"))?;
    let ty = PropertyType::parse(&as_string(&ty, &p("type"))?)
        .map_err(|e| spec_err(&p("type"), e.to_string()))?;
    let mut spec = PropertySpec {
        name: as_string(&name, &p("name"))?,
        ty,
        ..PropertySpec::default()
    };
    if let Some(v) = get(map, "visitor")? {
        spec.visitor = Some(visitor_spec(&v, &p("visitors.configData"))?);
    }
    let abs = get(map, "deadband")?
        .map(|v| as_f64(&v, &p("deadband")))
        .transpose()?;
    let rel = get(map, "deadband_relative")?
        .map(|v| as_f64(&v, &p("deadband_relative")))
        .transpose()?;
    spec.policy = ChangePolicy {
        deadband: match (abs, rel) {
            (Some(_), Some(_)) => {
                return Err(spec_err(
                    &p("deadband"),
                    "give deadband or deadband_relative, not both",
                ))
            }
            (Some(x), None) => Deadband::Absolute(x),
            (None, Some(x)) => Deadband::Relative(x),
            (None, None) => Deadband::Exact,
        },
        heartbeat_ms: match get(map, "heartbeat_ms")? {
            Some(v) => u64::try_from(as_i64(&v, &p("heartbeat_ms"))?)
                .map_err(|_| spec_err(&p("heartbeat_ms"), "must be >= 0"))?,
            None => 0,
        },
    };
    if let Some(v) = get(map, "reduce")? {
        spec.reduce = Reduce::parse(&as_string(&v, &p("reduce"))?)
            .map_err(|e| spec_err(&p("reduce"), e.to_string()))?;
    }
    if let Some(v) = get(map, "queue_capacity")? {
        spec.queue_capacity = u16::try_from(as_i64(&v, &p("queue_capacity"))?)
            .map_err(|_| spec_err(&p("queue_capacity"), "must be between 0 and 65535"))?;
    }
    if let Some(v) = get(map, "alarms")? {
        let list = v
            .cast::<PyList>()
            .map_err(|_| spec_err(&p("alarms"), "expected a list"))?;
        for (k, r) in list.iter().enumerate() {
            spec.alarms
                .push(alarm_rule(&r, &p(&format!("alarms[{k}]")))?);
        }
    }
    Ok(spec)
}

/// An alarm rule mapping: `name`, `condition` (`above`, `below`, `outside`, `inside`, `rate`),
/// `threshold` (above, below, rate) or `low` + `high` (outside, inside), optional `signed`
/// (rate), `hysteresis`, `raise_after`, `clear_after`.
fn alarm_rule(map: &Bound<'_, PyAny>, path: &str) -> PyResult<AlarmRule> {
    let p = |k: &str| format!("{path}.{k}");
    let need = |k: &str| -> PyResult<f64> {
        let v = get(map, k)?.ok_or_else(|| spec_err(&p(k), "required"))?;
        as_f64(&v, &p(k))
    };
    let name = get(map, "name")?.ok_or_else(|| spec_err(&p("name"), "required"))?;
    let name = as_string(&name, &p("name"))?;
    let cond = get(map, "condition")?.ok_or_else(|| spec_err(&p("condition"), "required"))?;
    let condition = match as_string(&cond, &p("condition"))?.as_str() {
        "above" => Condition::Above(need("threshold")?),
        "below" => Condition::Below(need("threshold")?),
        "outside" => Condition::Outside {
            low: need("low")?,
            high: need("high")?,
        },
        "inside" => Condition::Inside {
            low: need("low")?,
            high: need("high")?,
        },
        "rate" => Condition::Rate {
            threshold: need("threshold")?,
            signed: match get(map, "signed")? {
                Some(v) => as_bool(&v, &p("signed"))?,
                None => false,
            },
        },
        other => {
            return Err(spec_err(
                &p("condition"),
                format!("{other:?} is not one of above, below, outside, inside, rate"),
            ))
        }
    };
    let mut rule = AlarmRule::new(&name, condition);
    if let Some(v) = get(map, "hysteresis")? {
        rule.hysteresis = as_f64(&v, &p("hysteresis"))?;
    }
    let count = |k: &str| -> PyResult<Option<u16>> {
        get(map, k)?
            .map(|v| {
                u16::try_from(as_i64(&v, &p(k))?)
                    .map_err(|_| spec_err(&p(k), "must be between 1 and 65535"))
            })
            .transpose()
    };
    if let Some(n) = count("raise_after")? {
        rule.raise_after = n;
    }
    if let Some(n) = count("clear_after")? {
        rule.clear_after = n;
    }
    Ok(rule)
}

/// Parses a register kind name (`HoldingRegister`, ...).
pub(crate) fn register_kind(text: &str) -> PyResult<RegisterKind> {
    RegisterKind::parse(text).py()
}

/// Parses a property type name (`INT`, ...).
pub(crate) fn property_type(text: &str) -> PyResult<PropertyType> {
    PropertyType::parse(text).py()
}

/// A Python object as a value of type `ty`: text is parsed (user-facing rules), numbers and
/// booleans must fit the type, bytes go to BYTES.
pub(crate) fn value(obj: &Bound<'_, PyAny>, ty: PropertyType) -> Result<Value, Error> {
    let mismatch = |got: String| Error::TypeMismatch {
        device: String::new(),
        property: String::new(),
        expected: ty.as_str().to_owned(),
        got,
    };
    let type_name = || {
        obj.get_type()
            .name()
            .map_or_else(|_| "object".to_owned(), |n| n.to_string())
    };
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s
            .to_cow()
            .map_err(|_| mismatch("text that is not UTF-8".into()))?;
        return Value::parse(ty, &text);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return match ty {
            PropertyType::Boolean => Ok(Value::Boolean(b.is_true())),
            _ => Err(mismatch("a bool".into())),
        };
    }
    if obj.is_instance_of::<PyInt>() {
        let i: i64 = obj
            .extract()
            .map_err(|_| mismatch("an int outside 64 bits".into()))?;
        return match ty {
            PropertyType::Int => Ok(Value::Int(i)),
            PropertyType::Float | PropertyType::Double => {
                Value::from_f64(ty, i as f64).ok_or_else(|| mismatch("an int".into()))
            }
            _ => Err(mismatch("an int".into())),
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return match ty {
            PropertyType::Float | PropertyType::Double => {
                Value::from_f64(ty, f.value()).ok_or_else(|| mismatch("a float".into()))
            }
            _ => Err(mismatch("a float".into())),
        };
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return match ty {
            PropertyType::Bytes => Ok(Value::bytes(b.as_bytes())),
            _ => Err(mismatch("bytes".into())),
        };
    }
    Err(mismatch(format!("a {}", type_name())))
}

fn side_to_py<'py>(py: Python<'py>, side: Option<&TwinSide>) -> PyResult<Bound<'py, PyAny>> {
    let Some(side) = side else {
        return Ok(py.None().into_bound(py));
    };
    let d = PyDict::new(py);
    d.set_item("value", side.value.to_canonical())?;
    d.set_item("timestamp", side.ts)?;
    Ok(d.into_any())
}

fn version_to_py(py: Python<'_>, v: Version) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("cloud", v.cloud)?;
    d.set_item("edge", v.edge)?;
    Ok(d)
}

/// A twin as a dict: `type`, `desired`/`reported` (`{"value", "timestamp"}` or None) and their
/// versions (`{"cloud", "edge"}`).
pub(crate) fn twin_to_py<'py>(
    py: Python<'py>,
    ty: PropertyType,
    t: &TwinState,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", ty.as_str())?;
    d.set_item("desired", side_to_py(py, t.desired.as_ref())?)?;
    d.set_item("reported", side_to_py(py, t.reported.as_ref())?)?;
    d.set_item("desired_version", version_to_py(py, t.desired_version)?)?;
    d.set_item("reported_version", version_to_py(py, t.reported_version)?)?;
    Ok(d)
}

fn side_from_py(
    obj: Option<Bound<'_, PyAny>>,
    ty: PropertyType,
    path: &str,
    owner: (&str, &str),
) -> PyResult<Option<TwinSide>> {
    let Some(obj) = obj else { return Ok(None) };
    let value =
        get(&obj, "value")?.ok_or_else(|| spec_err(&format!("{path}.value"), "required"))?;
    let text = as_string(&value, &format!("{path}.value"))?;
    let value = Value::from_canonical(ty, &text)
        .map_err(|e| e.with_device(owner.0).with_property(owner.1))
        .py()?;
    let ts = get(&obj, "timestamp")?
        .map(|v| as_i64(&v, &format!("{path}.timestamp")))
        .transpose()?
        .unwrap_or(0);
    Ok(Some(TwinSide { value, ts }))
}

fn version_from_py(obj: Option<Bound<'_, PyAny>>, path: &str) -> PyResult<Version> {
    let Some(obj) = obj else {
        return Ok(Version::default());
    };
    let num = |k: &str| -> PyResult<u64> {
        let p = format!("{path}.{k}");
        get(&obj, k)?.map_or(Ok(0), |v| {
            u64::try_from(as_i64(&v, &p)?).map_err(|_| spec_err(&p, "must be >= 0"))
        })
    };
    Ok(Version {
        cloud: num("cloud")?,
        edge: num("edge")?,
    })
}

/// The inverse of [`twin_to_py`] (the `type` key is ignored: the property decides).
pub(crate) fn twin_from_py(
    obj: &Bound<'_, PyAny>,
    ty: PropertyType,
    device: &str,
    property: &str,
) -> PyResult<TwinState> {
    let owner = (device, property);
    Ok(TwinState {
        desired: side_from_py(get(obj, "desired")?, ty, "desired", owner)?,
        reported: side_from_py(get(obj, "reported")?, ty, "reported", owner)?,
        desired_version: version_from_py(get(obj, "desired_version")?, "desired_version")?,
        reported_version: version_from_py(get(obj, "reported_version")?, "reported_version")?,
    })
}

/// A write as `(function code, offset, values)`: register words or coil booleans.
pub(crate) fn write_to_py<'py>(py: Python<'py>, op: &WriteOp) -> PyResult<Bound<'py, PyAny>> {
    let (offset, values) = match op {
        WriteOp::Coils { offset, bits } => (*offset, PyList::new(py, bits)?),
        WriteOp::Registers { offset, words } => (*offset, PyList::new(py, words)?),
    };
    Ok((op.function(), offset, values)
        .into_pyobject(py)?
        .into_any())
}

/// The canonical string form of `text` read as a value of `type` (raises `ValueTypeError`).
#[pyfunction]
pub(crate) fn canonical(r#type: &str, text: &str) -> PyResult<String> {
    let ty = property_type(r#type)?;
    Ok(Value::parse(ty, text).py()?.to_canonical())
}

/// Whether `text` is inside KubeEdge's twin value character set.
#[pyfunction]
pub(crate) fn is_kubeedge_safe(text: &str) -> bool {
    twin_core::value::is_kubeedge_safe(text)
}

/// Decodes one property from a register frame; returns the canonical string.
#[pyfunction]
#[pyo3(signature = (visitor, r#type, start, frame))]
pub(crate) fn decode_register(
    visitor: &Bound<'_, PyAny>,
    r#type: &str,
    start: u16,
    frame: &[u8],
) -> PyResult<String> {
    let ty = property_type(r#type)?;
    let v = Visitor::compile(&visitor_spec(visitor, "visitors.configData")?, ty).py()?;
    Ok(v.decode(ty, start, frame).py()?.to_canonical())
}

/// Encodes a value for writing one property: `(function code, offset, values)`.
#[pyfunction]
#[pyo3(signature = (visitor, r#type, value))]
pub(crate) fn encode_register<'py>(
    visitor: &Bound<'py, PyAny>,
    r#type: &str,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let ty = property_type(r#type)?;
    let v = Visitor::compile(&visitor_spec(visitor, "visitors.configData")?, ty).py()?;
    let val = self::value(value, ty).py()?;
    write_to_py(value.py(), &v.encode(&val).py()?)
}

/// Rejects non-mapping inputs early with a clear message.
pub(crate) fn expect_mapping(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<()> {
    if obj.is_instance_of::<PyDict>() || obj.hasattr("__getitem__")? {
        Ok(())
    } else {
        Err(PyTypeError::new_err(format!("{what} must be a mapping")))
    }
}
