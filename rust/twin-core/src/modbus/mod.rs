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

//!
//! One file per phase: [`compile`](Visitor::compile) (`compile.rs`), [`decode`](Visitor::decode)
//! (`decode.rs`), [`encode`](Visitor::encode) (`encode.rs`) and read planning (`plan.rs`); this
//! file holds the types they share.

mod compile;
mod decode;
mod encode;
mod plan;

pub use compile::VisitorSpec;
pub use encode::WriteOp;
#[cfg(test)]
use plan::read_limit;
pub use plan::{plan_reads, ReadRange};

use crate::error::{Error, Result};
use crate::value::PropertyType;

/// Prefix of every config error path.
const PATH: &str = "visitors.configData.";
/// Marker for "no decimal rounding" in `Visitor::decimals`.
const NO_ROUNDING: u8 = u8::MAX;
/// 2^53: integers below this magnitude are exact in an `f64`.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;
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

impl Visitor {
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

    /// Whether a scale is set.
    fn scaled(&self) -> bool {
        self.scale != 1.0
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
}

#[cfg(test)]
mod tests;
