//! Encoding: the Modbus write that sets a property to a value (reverse scale, same swaps).

use super::decode::Raw;
use super::{mismatch, spec_err, DataType, Visitor};
use crate::error::{Error, Result};
use crate::value::{PropertyType, Value};

/// A value to write, before conversion to the data type.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
    Bool(bool),
}

impl Visitor {
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
    /// `DiscreteInput`); [`Error::TypeMismatch`] when `value` is not of the property's type;
    /// [`Error::OutOfRange`] when it does not fit the data type after the reverse scale (the
    /// message names the range the register holds, in the value's units).
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
                return Err(self.out_of_range(num));
            }
            DataType::Float32 => u64::from((unscaled as f32).to_bits()),
            _ => self.int_pattern(num, unscaled)?,
        };
        if self.kind.is_bit() && self.count < 64 && pattern >> self.count != 0 {
            return Err(self.out_of_range(num));
        }
        Ok(pattern)
    }

    /// The two's complement pattern of an integer data type, range checked.
    fn int_pattern(&self, num: Num, unscaled: f64) -> Result<u64> {
        let (min, max) = self.data_type.int_range();
        let raw = match num {
            Num::Int(i) if !self.scaled() => i,
            Num::Bool(b) => i128::from(b),
            _ if unscaled.is_nan() => return Err(self.out_of_range(num)),
            _ => unscaled.round() as i128,
        };
        if raw < min || raw > max {
            return Err(self.out_of_range(num));
        }
        let width = 16 * u32::from(self.data_type.registers().unwrap_or(4));
        Ok((raw as u64) & (u64::MAX >> (64 - width)))
    }

    /// The error for a number the register cannot hold: the number, what holds it, and the
    /// range it holds in the value's units (after the scale), e.g. `99999 is outside what an
    /// int16 register holds: -32768..32767`.
    fn out_of_range(&self, num: Num) -> Error {
        let shown = match num {
            Num::Int(i) => i.to_string(),
            // Huge numbers in exponent form: an error message is not canonical text.
            Num::Float(x) if x.is_finite() && x.abs() >= 1e16 => format!("{x:e}"),
            Num::Float(x) => Value::Double(x).to_canonical(),
            Num::Bool(b) => b.to_string(),
        };
        let (holder, range) = (self.holder(), self.value_range());
        Error::OutOfRange {
            device: String::new(),
            property: String::new(),
            data_type: self.data_type.as_str().to_owned(),
            message: format!("{shown} is outside what {holder}: {range}"),
        }
    }

    /// What holds the value, with its verb: `an int16 register holds`, `3 coils hold`,
    /// `a uint32 over 2 registers at scale 0.01 holds`.
    fn holder(&self) -> String {
        let name = self.data_type.as_str();
        let article = if name.starts_with('i') { "an" } else { "a" };
        let (mut text, plural) = match (self.kind.is_bit(), self.count) {
            (true, 1) => ("a coil".to_owned(), false),
            (true, n) => (format!("{n} coils"), true),
            (false, 1) => (format!("{article} {name} register"), false),
            (false, n) => (format!("{article} {name} over {n} registers"), false),
        };
        if self.scaled() {
            text.push_str(" at scale ");
            text.push_str(&Value::Double(self.scale).to_canonical());
        }
        text.push_str(if plural { " hold" } else { " holds" });
        text
    }

    /// The range the register holds in the value's units: the data type's range (and for
    /// coils, their bits') times the scale.
    fn value_range(&self) -> String {
        if self.data_type == DataType::Float32 {
            let max = f64::from(f32::MAX) * self.scale.abs();
            return if self.scaled() {
                format!("{:e}..{:e}", -max, max)
            } else {
                format!("{:e}..{:e}", f32::MIN, f32::MAX)
            };
        }
        let (mut low, mut high) = self.data_type.int_range();
        if self.kind.is_bit() && self.count < 64 {
            low = low.max(0);
            high = high.min((1i128 << self.count) - 1);
        }
        if !self.scaled() {
            return format!("{low}..{high}");
        }
        let at = |x: i128| {
            let raw = u64::try_from(x).map_or(Raw::Signed(x as i64), Raw::Unsigned);
            Value::Double(self.scaled_f64(raw)).to_canonical()
        };
        let (low, high) = if self.scale < 0.0 {
            (at(high), at(low))
        } else {
            (at(low), at(high))
        };
        format!("{low}..{high}")
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
