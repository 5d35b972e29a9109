//! Compilation: a manifest's `visitors.configData` resolved and validated once into a
//! [`Visitor`].

use super::{spec_err, DataType, RegisterKind, Visitor, EXACT_F64, NO_ROUNDING, POW10};
use crate::error::{Error, Result};
use crate::value::PropertyType;

/// Accepted `dataType` spellings, for error messages.
const DATA_TYPES: &str = "int, float, double, boolean, bool, string, bytes, int16, uint16, \
                          int32, uint32, int64, uint64, float32, float64";

/// The visitor config as written in a manifest (`visitors.configData`), before compilation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VisitorSpec {
    /// `register`: one of the [`RegisterKind`] spellings.
    pub register: String,
    /// `offset`: the first register or bit address.
    pub offset: i64,
    /// `limit`: registers (or bits) to read; 0 derives it from the data type.
    pub limit: i64,
    /// `dataType`: a generic or concrete name; empty derives it from the property type.
    pub data_type: String,
    /// `scale`: multiplier; 0 or 1 mean none.
    pub scale: f64,
    /// `isSwap`: swap the two bytes inside each register.
    pub is_swap: bool,
    /// `isRegisterSwap`: reverse the order of the registers.
    pub is_register_swap: bool,
}

/// Decimals of the shortest text of `scale`, or [`NO_ROUNDING`] when rounding cannot be exact.
fn scale_decimals(scale: f64) -> u8 {
    let text = scale.abs().to_string();
    let d = text.find('.').map_or(0, |dot| text.len() - dot - 1);
    match POW10.get(d) {
        Some(p) if (scale * p).round().abs() < EXACT_F64 => d as u8,
        _ => NO_ROUNDING,
    }
}

/// The generic `dataType` an empty name stands for.
fn generic_name(ty: PropertyType, bits: bool) -> &'static str {
    match ty {
        PropertyType::Boolean => "boolean",
        _ if bits => "int",
        PropertyType::Int => "int",
        PropertyType::Float => "float",
        PropertyType::Double => "double",
        PropertyType::String => "string",
        PropertyType::Bytes => "bytes",
    }
}

/// The type a generic numeric name stands for at `limit` registers (`None`: no such limit).
fn generic_register(name: &str, limit: u16) -> Option<DataType> {
    use DataType::{Float32, Float64, Int16, Int32, Uint16, Uint32, Uint64};
    match (name, limit) {
        ("int", 0 | 1) => Some(Uint16),
        ("int", 2) => Some(Uint32),
        ("int", 4) => Some(Uint64),
        ("float", 0 | 2) => Some(Float32),
        ("float" | "double", 1) => Some(Int16),
        ("double", 2) => Some(Int32),
        ("double", 0 | 4) => Some(Float64),
        _ => None,
    }
}

/// Resolves a (lower-case) name on 16-bit registers: the data type and the register count.
fn resolve_registers(name: &str, limit: u16) -> Result<(DataType, u16)> {
    let needs = match name {
        "int" => "1, 2 or 4 (uint16, uint32, uint64)",
        "float" => "2 (float32) or 1 (scaled int16)",
        "double" => "4 (float64), 1 (scaled int16) or 2 (scaled int32)",
        "string" | "bytes" => "of at least 1 (its length in registers)",
        _ => "",
    };
    let limit_err = || spec_err("limit", format!("dataType {name} needs limit {needs}"));
    let dt = match name {
        "int" | "float" | "double" => generic_register(name, limit).ok_or_else(limit_err)?,
        "string" | "bytes" if limit == 0 => return Err(limit_err()),
        "string" => return Ok((DataType::String, limit)),
        "bytes" => return Ok((DataType::Bytes, limit)),
        _ => DataType::concrete(name).ok_or_else(|| unknown_type(name))?,
    };
    let width = dt.registers().unwrap_or(1);
    if limit != 0 && limit != width {
        let name = dt.as_str();
        let msg = format!("dataType {name} needs limit {width} (or 0), got {limit}");
        return Err(spec_err("limit", msg));
    }
    Ok((dt, width))
}

/// Resolves a (lower-case) name on bit registers: the data type and the bit count.
fn resolve_bits(kind: RegisterKind, name: &str, limit: u16) -> Result<(DataType, u16)> {
    let bits = limit.max(1);
    let dt = match (name, DataType::concrete(name)) {
        ("int", _) if bits <= 16 => DataType::Uint16,
        ("int", _) if bits <= 32 => DataType::Uint32,
        ("int", _) => DataType::Uint64,
        (_, Some(dt)) if dt.is_integer() || dt == DataType::Boolean => dt,
        (_, Some(_)) | ("float" | "double" | "string" | "bytes", None) => {
            let kind = kind.as_str();
            let msg = format!("{kind} holds bits: use int, boolean or an integer type, not {name}");
            return Err(spec_err("dataType", msg));
        }
        _ => return Err(unknown_type(name)),
    };
    let width = if dt == DataType::Boolean {
        1
    } else {
        16 * dt.registers().unwrap_or(4)
    };
    if bits > width {
        let name = dt.as_str();
        let msg = format!("dataType {name} holds at most {width} bits, got limit {bits}");
        return Err(spec_err("limit", msg));
    }
    Ok((dt, bits))
}

/// The error for an unknown `dataType`.
fn unknown_type(name: &str) -> Error {
    let msg = format!("unknown dataType {name:?}; allowed: {DATA_TYPES}");
    spec_err("dataType", msg)
}

/// Rejects data types that cannot feed a property of type `ty`.
fn check_compat(dt: DataType, ty: PropertyType) -> Result<()> {
    let (name, ty_name) = (dt.as_str(), ty.as_str());
    let msg = match ty {
        PropertyType::String if dt == DataType::Bytes => {
            "dataType bytes needs a BYTES property (use string for STRING)".to_owned()
        }
        PropertyType::Bytes if !dt.is_text() => {
            format!("dataType {name} is numeric; a BYTES property needs string or bytes")
        }
        PropertyType::String | PropertyType::Bytes => return Ok(()),
        _ if dt.is_text() => {
            format!("dataType {name} cannot feed {ty_name}; use a numeric or boolean type")
        }
        _ => return Ok(()),
    };
    Err(spec_err("dataType", msg))
}

/// Validates the scale: finite; anything but 0 or 1 only on numeric data types.
fn check_scale(scale: f64, dt: DataType) -> Result<f64> {
    if !scale.is_finite() {
        let msg = format!("scale must be a finite number, got {scale}");
        return Err(spec_err("scale", msg));
    }
    if scale == 0.0 || scale == 1.0 {
        return Ok(1.0);
    }
    if dt.is_text() || dt == DataType::Boolean {
        let name = dt.as_str();
        let msg = format!("scale applies only to numeric data types, not {name} (use 0 or 1)");
        return Err(spec_err("scale", msg));
    }
    Ok(scale)
}

/// Validates offset and count against the address space and the protocol limit.
fn check_range(kind: RegisterKind, offset: i64, count: u16) -> Result<u16> {
    if count > kind.max_read() {
        let (name, max) = (kind.as_str(), kind.max_read());
        let unit = if kind.is_bit() { "bits" } else { "registers" };
        let msg = format!("{name} reads at most {max} {unit} at once, got {count}");
        return Err(spec_err("limit", msg));
    }
    let msg = match u16::try_from(offset) {
        Ok(o) if u32::from(o) + u32::from(count) <= 65_536 => return Ok(o),
        Ok(_) => format!("offset {offset} + {count} registers/bits run past address 65535"),
        Err(_) => format!("offset must be in 0..=65535, got {offset}"),
    };
    Err(spec_err("offset", msg))
}

/// Rejects swaps on bit registers.
fn check_swaps(kind: RegisterKind, spec: &VisitorSpec) -> Result<()> {
    if !kind.is_bit() || !(spec.is_swap || spec.is_register_swap) {
        return Ok(());
    }
    let key = if spec.is_swap {
        "isSwap"
    } else {
        "isRegisterSwap"
    };
    let kind = kind.as_str();
    let msg = format!("{kind} holds bits; swaps apply to InputRegister and HoldingRegister");
    Err(spec_err(key, msg))
}

impl Visitor {
    /// Compiles a manifest visitor for a property of type `ty`, validating every field.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] at `visitors.configData.<key>` naming the offending field.
    pub fn compile(spec: &VisitorSpec, ty: PropertyType) -> Result<Visitor> {
        let kind = RegisterKind::parse(&spec.register)?;
        let limit = u16::try_from(spec.limit).map_err(|_| {
            let (max, limit) = (kind.max_read(), spec.limit);
            spec_err("limit", format!("limit must be in 0..={max}, got {limit}"))
        })?;
        let lower = spec.data_type.trim().to_ascii_lowercase();
        let name = if lower.is_empty() {
            generic_name(ty, kind.is_bit())
        } else {
            &lower
        };
        let (data_type, count) = if kind.is_bit() {
            resolve_bits(kind, name, limit)?
        } else {
            resolve_registers(name, limit)?
        };
        check_compat(data_type, ty)?;
        let scale = check_scale(spec.scale, data_type)?;
        check_swaps(kind, spec)?;
        let offset = check_range(kind, spec.offset, count)?;
        let decimals = scale_decimals(scale);
        let (swap, register_swap, property) = (spec.is_swap, spec.is_register_swap, ty);
        let visitor = Visitor {
            kind,
            offset,
            count,
            data_type,
            scale,
            decimals,
            swap,
            register_swap,
            property,
        };
        Ok(visitor)
    }
}
