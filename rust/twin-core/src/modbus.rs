//! Modbus visitors: configs compiled once, decoding of coalesced read frames, encoding of
//! writes, and read planning (spec §8.1).
//!
//! A [`VisitorSpec`] is a property's `visitors.configData` as written in a manifest.
//! [`Visitor::compile`] resolves the generic data type names (`int`, `float`, ...) against the
//! property type, validates everything once and yields a small `Copy` [`Visitor`]. On the hot
//! path [`Visitor::decode`] picks the property's registers (or bits) out of a frame read by a
//! [`ReadRange`] from [`plan_reads`]; numeric values do not allocate.
//!
//! Register data is big-endian after the swaps: `isRegisterSwap` reverses the order of the
//! 16-bit registers, `isSwap` swaps the two bytes inside each register. Both are involutions,
//! so [`Visitor::encode`] applies the same swaps to build a write.
//!
//! Choices where the upstream mappers are loose:
//! - `int` is unsigned (legacy `TransferData`); `float` and `double` with `limit: 1` read one
//!   signed 16-bit register (the upstream sample scales it by 0.1); `double` with `limit: 2`
//!   reads an `int32`. An empty `dataType` behaves like the generic name of the property type.
//! - Bit registers (coils, discrete inputs) hold `limit` bits (default 1) packed LSB-first into
//!   an integer; only integer types and `boolean` (one bit) are allowed there, and no swaps.
//! - INT results truncate toward zero and saturate (a `uint64` above `i64::MAX` gives
//!   `i64::MAX`); a STRING property over integer data shows the exact integer instead.
//! - A scale applies only to numeric data types; `0` and `1` mean none.

use crate::error::{Error, Result};
use crate::value::{PropertyType, Value};

/// Prefix of every config error path.
const PATH: &str = "visitors.configData.";
/// Marker for "no decimal rounding" in `Visitor::decimals`.
const NO_ROUNDING: u8 = u8::MAX;
/// 2^53: integers below this magnitude are exact in an `f64`.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;
/// Accepted `dataType` spellings, for error messages.
const DATA_TYPES: &str = "int, float, double, boolean, bool, string, bytes, int16, uint16, \
                          int32, uint32, int64, uint64, float32, float64";
/// Powers of ten exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A config error at `visitors.configData.<key>`.
fn spec_err(key: &str, message: impl Into<String>) -> Error {
    Error::spec("", format!("{PATH}{key}"), message)
}

/// A type mismatch (device and property are filled in by callers), `got` shortened.
fn mismatch(expected: impl Into<String>, got: &str) -> Error {
    let mut shown: String = got.chars().take(60).collect();
    if shown.len() < got.len() {
        shown.push('…');
    }
    let (device, property, expected) = (String::new(), String::new(), expected.into());
    Error::TypeMismatch {
        device,
        property,
        expected,
        got: shown,
    }
}

/// The error for a frame that does not cover a visitor.
fn short_frame(needed: usize, got: usize) -> Error {
    let (device, property) = (String::new(), String::new());
    Error::ShortFrame {
        device,
        property,
        needed,
        got,
    }
}

/// Modbus register kinds (visitor `register`): `CoilRegister`, `DiscreteInputRegister`,
/// `InputRegister`, `HoldingRegister`. Ordered as declared (the order of [`plan_reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    /// Read/write bits (read function 1, writes 5/15).
    Coil,
    /// Read-only bits (read function 2).
    DiscreteInput,
    /// Read-only 16-bit registers (read function 4).
    Input,
    /// Read/write 16-bit registers (read function 3, writes 6/16).
    Holding,
}

impl RegisterKind {
    /// All kinds, in declaration order.
    pub const ALL: [Self; 4] = [Self::Coil, Self::DiscreteInput, Self::Input, Self::Holding];
    /// Manifest spellings, in declaration order.
    const NAMES: [&'static str; 4] = [
        "CoilRegister",
        "DiscreteInputRegister",
        "InputRegister",
        "HoldingRegister",
    ];

    /// Parses the manifest spelling (case-insensitive).
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] at `visitors.configData.register` for any other text.
    pub fn parse(s: &str) -> Result<Self> {
        let found = Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()));
        found.ok_or_else(|| {
            let allowed = Self::NAMES.join(", ");
            spec_err(
                "register",
                format!("unknown register {s:?}; allowed: {allowed}"),
            )
        })
    }

    /// The manifest spelling (`HoldingRegister`, ...).
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the kind holds single bits (coils, discrete inputs).
    pub fn is_bit(self) -> bool {
        matches!(self, Self::Coil | Self::DiscreteInput)
    }

    /// Whether the kind can be written (coils, holding registers).
    pub fn is_writable(self) -> bool {
        matches!(self, Self::Coil | Self::Holding)
    }

    /// The Modbus read function code: 1, 2, 4 or 3.
    pub fn read_function(self) -> u8 {
        [1, 2, 4, 3][self as usize]
    }

    /// The protocol limit of one read: 2000 bits or 125 registers.
    pub fn max_read(self) -> u16 {
        if self.is_bit() {
            2000
        } else {
            125
        }
    }

    /// Bytes of a read response payload holding `count` bits or registers.
    pub fn frame_len(self, count: u16) -> usize {
        let count = usize::from(count);
        if self.is_bit() {
            count.div_ceil(8)
        } else {
            2 * count
        }
    }
}

/// Concrete data types after resolving the generic names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Signed 16-bit integer (1 register).
    Int16,
    /// Unsigned 16-bit integer (1 register).
    Uint16,
    /// Signed 32-bit integer (2 registers).
    Int32,
    /// Unsigned 32-bit integer (2 registers).
    Uint32,
    /// Signed 64-bit integer (4 registers).
    Int64,
    /// Unsigned 64-bit integer (4 registers).
    Uint64,
    /// IEEE-754 single precision (2 registers).
    Float32,
    /// IEEE-754 double precision (4 registers).
    Float64,
    /// One register (`!= 0`) or one bit.
    Boolean,
    /// `limit` registers of text; trailing NULs and spaces are trimmed.
    String,
    /// `limit` registers of raw bytes.
    Bytes,
}

impl DataType {
    /// All types, in declaration order.
    pub const ALL: [Self; 11] = [
        Self::Int16,
        Self::Uint16,
        Self::Int32,
        Self::Uint32,
        Self::Int64,
        Self::Uint64,
        Self::Float32,
        Self::Float64,
        Self::Boolean,
        Self::String,
        Self::Bytes,
    ];
    /// Names, in declaration order.
    const NAMES: [&'static str; 11] = [
        "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "boolean",
        "string", "bytes",
    ];

    /// The lower-case name (`int16`, `float32`, `boolean`, ...).
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The width in registers of a fixed-width type (`None` for string and bytes).
    pub fn registers(self) -> Option<u16> {
        match self {
            Self::Int16 | Self::Uint16 | Self::Boolean => Some(1),
            Self::Int32 | Self::Uint32 | Self::Float32 => Some(2),
            Self::Int64 | Self::Uint64 | Self::Float64 => Some(4),
            Self::String | Self::Bytes => None,
        }
    }

    /// Whether the type is an integer type (the first six variants).
    pub fn is_integer(self) -> bool {
        (self as usize) <= Self::Uint64 as usize
    }

    /// Whether the type is text or bytes.
    pub fn is_text(self) -> bool {
        matches!(self, Self::String | Self::Bytes)
    }

    /// The fixed-width type of a lower-case concrete name (`bool` included).
    fn concrete(name: &str) -> Option<Self> {
        let name = if name == "bool" { "boolean" } else { name };
        let at = Self::NAMES[..9].iter().position(|n| *n == name)?;
        Some(Self::ALL[at])
    }

    /// The value range of an integer type.
    fn int_range(self) -> (i128, i128) {
        match self {
            Self::Int16 => (i16::MIN.into(), i16::MAX.into()),
            Self::Uint16 => (0, u16::MAX.into()),
            Self::Int32 => (i32::MIN.into(), i32::MAX.into()),
            Self::Uint32 => (0, u32::MAX.into()),
            Self::Int64 => (i64::MIN.into(), i64::MAX.into()),
            _ => (0, u64::MAX.into()),
        }
    }
}

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

/// A compiled visitor: everything resolved and validated once. 24 bytes, `Copy`.
///
/// The public fields are for reading; build visitors with [`Visitor::compile`] only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Visitor {
    /// The register kind read.
    pub kind: RegisterKind,
    /// The first register or bit address.
    pub offset: u16,
    /// Registers (or bits) covered, at least 1.
    pub count: u16,
    /// The resolved data type.
    pub data_type: DataType,
    /// The multiplier applied to decoded numbers (1.0 when none).
    pub scale: f64,
    /// Decimals of the scale's shortest text (integer results round to them) or `NO_ROUNDING`.
    decimals: u8,
    /// `isSwap`.
    swap: bool,
    /// `isRegisterSwap`.
    register_swap: bool,
    /// The property type compiled for (checked by [`Visitor::encode`]).
    property: PropertyType,
}

/// A decoded number before conversion to the property type.
#[derive(Clone, Copy)]
enum Raw {
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

/// A value to write, before conversion to the data type.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
    Bool(bool),
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

    /// Whether `isSwap` (bytes inside each register) is set.
    pub fn is_swap(&self) -> bool {
        self.swap
    }

    /// Whether `isRegisterSwap` (register order) is set.
    pub fn is_register_swap(&self) -> bool {
        self.register_swap
    }

    /// The property type the visitor was compiled for.
    pub fn property_type(&self) -> PropertyType {
        self.property
    }

    /// One past the last register or bit address (up to 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.offset) + u32::from(self.count)
    }

    /// Whether a frame (kind, start, count in registers/bits) covers this visitor.
    pub fn covered_by(&self, kind: RegisterKind, start: u16, count: u16) -> bool {
        let frame_end = u32::from(start) + u32::from(count);
        kind == self.kind && start <= self.offset && self.end() <= frame_end
    }

    /// Decodes this property's value out of a frame read starting at `frame_start` (a register
    /// or bit address) of the same kind; `ty` is normally [`Visitor::property_type`]. Register
    /// frames are the wire bytes (2 per register, big-endian); bit frames are packed LSB-first
    /// as in a read-coils response. Numeric values do not allocate.
    ///
    /// # Errors
    /// [`Error::ShortFrame`] when the frame does not cover the visitor (`needed` counts bytes
    /// from the frame start; when the frame starts after the visitor, `needed` is the visitor's
    /// own length and `got` is 0). [`Error::TypeMismatch`] when `ty` cannot hold the data type.
    pub fn decode(&self, ty: PropertyType, frame_start: u16, frame: &[u8]) -> Result<Value> {
        let bits = if self.kind.is_bit() {
            self.read_bits(frame_start, frame)?
        } else {
            let bytes = self.register_bytes(frame_start, frame)?;
            if self.data_type.is_text() {
                return self.decode_text(ty, bytes);
            }
            self.read_word(bytes)
        };
        self.make_value(ty, self.interpret(bits))
    }

    /// The frame bytes holding this visitor's registers.
    fn register_bytes<'a>(&self, frame_start: u16, frame: &'a [u8]) -> Result<&'a [u8]> {
        let len = 2 * usize::from(self.count);
        let Some(rel) = self.offset.checked_sub(frame_start) else {
            return Err(short_frame(len, 0));
        };
        let from = 2 * usize::from(rel);
        frame
            .get(from..from + len)
            .ok_or_else(|| short_frame(from + len, frame.len()))
    }

    /// The visitor's bits (at most 64), LSB first.
    fn read_bits(&self, frame_start: u16, frame: &[u8]) -> Result<u64> {
        let n = usize::from(self.count);
        let Some(rel) = self.offset.checked_sub(frame_start) else {
            return Err(short_frame(n.div_ceil(8), 0));
        };
        let rel = usize::from(rel);
        let needed = (rel + n).div_ceil(8);
        if frame.len() < needed {
            return Err(short_frame(needed, frame.len()));
        }
        let bit = |at: usize| u64::from((frame[at / 8] >> (at % 8)) & 1);
        Ok((0..n).fold(0, |v, i| v | (bit(rel + i) << i)))
    }

    /// The visitor's registers (at most 4) as one big-endian integer, after the swaps.
    fn read_word(&self, bytes: &[u8]) -> u64 {
        let swap = self.swap;
        let push = |acc: u64, reg: &[u8]| {
            let word = if swap {
                [reg[1], reg[0]]
            } else {
                [reg[0], reg[1]]
            };
            (acc << 16) | u64::from(u16::from_be_bytes(word))
        };
        let regs = bytes.chunks_exact(2);
        if self.register_swap {
            regs.rev().fold(0, push)
        } else {
            regs.fold(0, push)
        }
    }

    /// The number held by `bits` under the data type.
    fn interpret(&self, bits: u64) -> Raw {
        match self.data_type {
            DataType::Int16 => Raw::Signed(i64::from(bits as u16 as i16)),
            DataType::Int32 => Raw::Signed(i64::from(bits as u32 as i32)),
            DataType::Int64 => Raw::Signed(bits as i64),
            DataType::Float32 => Raw::Float(f64::from(f32::from_bits(bits as u32))),
            DataType::Float64 => Raw::Float(f64::from_bits(bits)),
            DataType::Boolean => Raw::Bool(bits != 0),
            _ => Raw::Unsigned(bits),
        }
    }

    /// Whether a scale is set.
    fn scaled(&self) -> bool {
        self.scale != 1.0
    }

    /// The scaled number as a float; integers round to the scale's decimals.
    fn scaled_f64(&self, raw: Raw) -> f64 {
        let x = match raw {
            Raw::Signed(i) => i as f64,
            Raw::Unsigned(u) => u as f64,
            Raw::Float(f) => return if self.scaled() { f * self.scale } else { f },
            Raw::Bool(b) => return f64::from(u8::from(b)),
        };
        if !self.scaled() {
            return x;
        }
        if let Some(p) = POW10.get(usize::from(self.decimals)) {
            // scale == m / p in decimal; x * m is exact below 2^53, so one correctly rounded
            // division gives the decimal result (123 * 0.1 -> 12.3, not 12.300000000000001).
            // The check m / p == scale guards against a `scale` changed after compilation.
            let m = (self.scale * p).round();
            let product = x * m;
            if product.abs() < EXACT_F64 && m / p == self.scale {
                return product / p;
            }
        }
        x * self.scale
    }

    /// Converts a decoded number to a value of type `ty`.
    fn make_value(&self, ty: PropertyType, raw: Raw) -> Result<Value> {
        Ok(match (ty, raw) {
            (PropertyType::Int, Raw::Signed(i)) if !self.scaled() => Value::Int(i),
            (PropertyType::Int, Raw::Unsigned(u)) if !self.scaled() => {
                Value::Int(i64::try_from(u).unwrap_or(i64::MAX))
            }
            (PropertyType::Int, _) => Value::Int(self.scaled_f64(raw) as i64),
            (PropertyType::Float, _) => Value::Float(self.scaled_f64(raw) as f32),
            (PropertyType::Double, _) => Value::Double(self.scaled_f64(raw)),
            (PropertyType::Boolean, Raw::Bool(b)) => Value::Boolean(b),
            (PropertyType::Boolean, _) => Value::Boolean(self.scaled_f64(raw) != 0.0),
            (PropertyType::String, _) => Value::string(self.number_text(raw)),
            (PropertyType::Bytes, _) => return Err(mismatch("BYTES", self.data_type.as_str())),
        })
    }

    /// The text of a decoded number for a STRING property.
    fn number_text(&self, raw: Raw) -> String {
        match raw {
            Raw::Signed(i) if !self.scaled() => i.to_string(),
            Raw::Unsigned(u) if !self.scaled() => u.to_string(),
            Raw::Bool(b) => b.to_string(),
            _ if self.data_type == DataType::Float32 => {
                Value::Float(self.scaled_f64(raw) as f32).to_canonical()
            }
            _ => Value::Double(self.scaled_f64(raw)).to_canonical(),
        }
    }

    /// Decodes string or bytes data (`bytes` are the visitor's registers).
    fn decode_text(&self, ty: PropertyType, bytes: &[u8]) -> Result<Value> {
        let mut out = self.swapped(bytes);
        match ty {
            PropertyType::Bytes => Ok(Value::bytes(out)),
            PropertyType::String if self.data_type == DataType::String => {
                while let Some(0 | b' ') = out.last() {
                    out.pop();
                }
                let text = String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                Ok(Value::string(text))
            }
            _ => Err(mismatch(ty.as_str(), self.data_type.as_str())),
        }
    }

    /// Applies the swaps to whole registers (an involution: decodes and encodes alike).
    fn swapped(&self, bytes: &[u8]) -> Vec<u8> {
        let n = bytes.len() / 2;
        let mut out = Vec::with_capacity(bytes.len());
        for i in 0..n {
            let r = if self.register_swap { n - 1 - i } else { i };
            let (hi, lo) = (bytes[2 * r], bytes[2 * r + 1]);
            out.extend_from_slice(&if self.swap { [lo, hi] } else { [hi, lo] });
        }
        out
    }

    /// The swapped registers of big-endian data, as words.
    fn words(&self, bytes: &[u8]) -> Vec<u16> {
        let swapped = self.swapped(bytes);
        swapped
            .chunks_exact(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .collect()
    }

    /// The write that sets this property to `value` (reverse scale, same swaps).
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] at `visitors.configData.register` for the read-only kinds (Input,
    /// `DiscreteInput`); [`Error::TypeMismatch`] when `value` is not of the property's type, or
    /// does not fit the data type after the reverse scale (the error names the data type).
    pub fn encode(&self, value: &Value) -> Result<WriteOp> {
        if !self.kind.is_writable() {
            let kind = self.kind.as_str();
            let msg = format!("{kind} is read-only; writable: CoilRegister, HoldingRegister");
            return Err(spec_err("register", msg));
        }
        if value.property_type() != self.property {
            let ty = value.property_type().as_str();
            let got = format!("{ty} value {}", value.to_canonical());
            return Err(mismatch(self.property.as_str(), &got));
        }
        let offset = self.offset;
        if self.data_type.is_text() {
            let words = self.words(&self.text_bytes(value)?);
            return Ok(WriteOp::Registers { offset, words });
        }
        let pattern = self.pattern(self.number(value)?)?;
        if self.kind.is_bit() {
            let bits = (0..self.count).map(|i| (pattern >> i) & 1 == 1).collect();
            return Ok(WriteOp::Coils { offset, bits });
        }
        let be = pattern.to_be_bytes();
        let words = self.words(&be[8 - 2 * usize::from(self.count)..]);
        Ok(WriteOp::Registers { offset, words })
    }

    /// The bytes of a STRING or BYTES value, NUL padded to the visitor's length.
    fn text_bytes(&self, value: &Value) -> Result<Vec<u8>> {
        let data: &[u8] = match value {
            Value::String(s) => s.as_bytes(),
            Value::Bytes(b) => b,
            other => return Err(mismatch(self.data_type.as_str(), &other.to_canonical())),
        };
        let len = 2 * usize::from(self.count);
        if data.len() > len {
            let expected = format!("{} of at most {len} bytes", self.property.as_str());
            return Err(mismatch(expected, &format!("{} bytes", data.len())));
        }
        let mut out = data.to_vec();
        out.resize(len, 0);
        Ok(out)
    }

    /// The number a value stands for; STRING values are parsed as the data type's number.
    fn number(&self, value: &Value) -> Result<Num> {
        Ok(match value {
            Value::Int(i) => Num::Int(i128::from(*i)),
            Value::Float(f) => Num::Float(f64::from(*f)),
            Value::Double(d) => Num::Float(*d),
            Value::Boolean(b) => Num::Bool(*b),
            Value::String(s) => return self.parse_number(s),
            Value::Bytes(_) => return Err(mismatch(self.data_type.as_str(), "BYTES value")),
        })
    }

    /// Parses the text a STRING property shows for numeric data (the inverse of decoding).
    fn parse_number(&self, text: &str) -> Result<Num> {
        if self.data_type == DataType::Boolean {
            let b = Value::parse(PropertyType::Boolean, text)?;
            return Ok(Num::Bool(b == Value::Boolean(true)));
        }
        if self.data_type.is_integer() && !self.scaled() {
            if let Ok(i) = text.trim().parse::<i128>() {
                return Ok(Num::Int(i));
            }
        }
        let x = Value::parse(PropertyType::Double, text)?;
        Ok(Num::Float(x.as_f64().unwrap_or(f64::NAN)))
    }

    /// The data type's bit pattern of a number (reverse scaled, range checked).
    fn pattern(&self, num: Num) -> Result<u64> {
        let unscaled = match num {
            Num::Int(i) => i as f64 / self.scale,
            Num::Float(x) => x / self.scale,
            Num::Bool(b) => f64::from(u8::from(b)),
        };
        let pattern = match self.data_type {
            DataType::Boolean => u64::from(match num {
                Num::Int(i) => i != 0,
                Num::Float(x) => x != 0.0,
                Num::Bool(b) => b,
            }),
            DataType::Float64 => unscaled.to_bits(),
            DataType::Float32 if unscaled.is_finite() && (unscaled as f32).is_infinite() => {
                return Err(self.out_of_range(num, "the float32 range"));
            }
            DataType::Float32 => u64::from((unscaled as f32).to_bits()),
            _ => self.int_pattern(num, unscaled)?,
        };
        if self.kind.is_bit() && self.count < 64 && pattern >> self.count != 0 {
            return Err(self.out_of_range(num, &format!("{} bits", self.count)));
        }
        Ok(pattern)
    }

    /// The two's complement pattern of an integer data type, range checked.
    fn int_pattern(&self, num: Num, unscaled: f64) -> Result<u64> {
        let (min, max) = self.data_type.int_range();
        let raw = match num {
            Num::Int(i) if !self.scaled() => i,
            Num::Bool(b) => i128::from(b),
            _ if unscaled.is_nan() => return Err(self.out_of_range(num, "the numbers")),
            _ => unscaled.round() as i128,
        };
        if raw < min || raw > max {
            return Err(self.out_of_range(num, &format!("{min}..={max}")));
        }
        let width = 16 * u32::from(self.data_type.registers().unwrap_or(4));
        Ok((raw as u64) & (u64::MAX >> (64 - width)))
    }

    /// The error for a number that does not fit the data type.
    fn out_of_range(&self, num: Num, range: &str) -> Error {
        let shown = match num {
            Num::Int(i) => i.to_string(),
            Num::Float(x) => Value::Double(x).to_canonical(),
            Num::Bool(b) => b.to_string(),
        };
        let got = format!("{shown} (outside {range} after scale)");
        mismatch(self.data_type.as_str(), &got)
    }
}

/// A Modbus write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Coils from `offset`, one `bool` each.
    Coils {
        /// First coil address.
        offset: u16,
        /// Coil states.
        bits: Vec<bool>,
    },
    /// Holding registers from `offset`.
    Registers {
        /// First register address.
        offset: u16,
        /// Register values.
        words: Vec<u16>,
    },
}

impl WriteOp {
    /// Modbus function code: 5 (single coil), 15 (multiple coils), 6 (single register),
    /// 16 (multiple registers).
    pub fn function(&self) -> u8 {
        match self {
            Self::Coils { bits, .. } if bits.len() == 1 => 5,
            Self::Coils { .. } => 15,
            Self::Registers { words, .. } if words.len() == 1 => 6,
            Self::Registers { .. } => 16,
        }
    }
}

/// A coalesced read: kind, start address, count, and the indices (into the input slice) of the
/// visitors it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRange {
    /// The register kind read.
    pub kind: RegisterKind,
    /// First register or bit address.
    pub start: u16,
    /// Registers or bits read.
    pub count: u16,
    /// Indices of the covered visitors, by offset.
    pub members: Vec<u32>,
}

impl ReadRange {
    /// One past the last address read.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }

    /// Bytes of the read response payload (the frame passed to [`Visitor::decode`]).
    pub fn frame_len(&self) -> usize {
        self.kind.frame_len(self.count)
    }

    /// Adds `v` when it has the same kind, the gap is at most `max_gap` and the merged span
    /// stays within `limit`.
    fn try_add(&mut self, v: &Visitor, index: u32, limit: u16, max_gap: u16) -> bool {
        let end = self.end();
        let merged = end.max(v.end()) - u32::from(self.start);
        let near = u32::from(v.offset) <= end + u32::from(max_gap);
        let fits = v.kind == self.kind && near && merged <= u32::from(limit);
        if fits {
            self.count = merged as u16;
            self.members.push(index);
        }
        fits
    }
}

/// The span limit of one read of `kind`: the protocol maximum, or the caller's smaller
/// non-zero maximum.
fn read_limit(kind: RegisterKind, max_registers: u16, max_bits: u16) -> u16 {
    let wanted = if kind.is_bit() {
        max_bits
    } else {
        max_registers
    };
    match wanted {
        0 => kind.max_read(),
        w => w.min(kind.max_read()),
    }
}

/// Coalesces visitors into as few reads as possible: same kind, sorted by offset, merged while
/// the merged span stays within the kind's protocol limit (or the smaller `max_registers` /
/// `max_bits`; 0 means the protocol limit) and the gap between neighbours is at most `max_gap`.
/// Ordered by kind, then start. A visitor wider than the caller's max gets a range of its own;
/// ranges of one kind only overlap where overlapping visitors cannot share a read.
pub fn plan_reads(
    visitors: &[Visitor],
    max_registers: u16,
    max_bits: u16,
    max_gap: u16,
) -> Vec<ReadRange> {
    let mut order: Vec<u32> = (0..visitors.len() as u32).collect();
    order.sort_by_key(|&i| (visitors[i as usize].kind, visitors[i as usize].offset, i));
    let mut out: Vec<ReadRange> = Vec::new();
    for i in order {
        let v = &visitors[i as usize];
        let limit = read_limit(v.kind, max_registers, max_bits);
        let last = out.last_mut();
        if !last.is_some_and(|r| r.try_add(v, i, limit, max_gap)) {
            let (kind, start, count, members) = (v.kind, v.offset, v.count, vec![i]);
            out.push(ReadRange {
                kind,
                start,
                count,
                members,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
