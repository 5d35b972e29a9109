//! Decoding: a property's value picked out of a coalesced read frame.

use super::{mismatch, short_frame, DataType, Visitor, EXACT_F64, POW10};
use crate::error::Result;
use crate::value::{PropertyType, Text, Value};

/// A decoded number before conversion to the property type.
#[derive(Clone, Copy)]
pub(super) enum Raw {
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

impl Visitor {
    /// Decodes this property's value out of a frame read starting at `frame_start` (a register
    /// or bit address) of the same kind; `ty` is normally [`Visitor::property_type`]. Register
    /// frames are the wire bytes (2 per register, big-endian); bit frames are packed LSB-first
    /// as in a read-coils response. Numeric values do not allocate.
    ///
    /// # Errors
    /// [`Error::ShortFrame`](crate::Error::ShortFrame) when the frame does not cover the visitor (`needed` counts bytes
    /// from the frame start; when the frame starts after the visitor, `needed` is the visitor's
    /// own length and `got` is 0). [`Error::TypeMismatch`](crate::Error::TypeMismatch) when `ty` cannot hold the data type.
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

    /// [`Visitor::decode`], or `None` when the value decoded would be identical to `current`
    /// (floats bit for bit): a sample that repeats its predecessor is then not built, and text
    /// or bytes data is compared where it lies, without allocating.
    pub fn decode_changed(
        &self,
        ty: PropertyType,
        frame_start: u16,
        frame: &[u8],
        current: &Value,
    ) -> Result<Option<Value>> {
        if !self.kind.is_bit() && self.data_type.is_text() {
            let bytes = self.register_bytes(frame_start, frame)?;
            if self.text_is(ty, bytes, current) {
                return Ok(None);
            }
            return self.decode_text(ty, bytes).map(Some);
        }
        let value = self.decode(ty, frame_start, frame)?;
        Ok((!value.is_identical(current)).then_some(value))
    }

    /// Whether two register frames read from `frame_start` hold the same bytes in this
    /// visitor's registers (`false` for bit registers, and when either frame does not cover
    /// them).
    pub fn same_registers(&self, frame_start: u16, a: &[u8], b: &[u8]) -> bool {
        !self.kind.is_bit()
            && matches!(
                (self.register_bytes(frame_start, a), self.register_bytes(frame_start, b)),
                (Ok(x), Ok(y)) if x == y
            )
    }

    /// Whether text or bytes data (the visitor's registers) decodes to exactly `current`.
    fn text_is(&self, ty: PropertyType, bytes: &[u8], current: &Value) -> bool {
        let mut copy = [0u8; 64];
        let data = if !(self.swap || self.register_swap) {
            bytes
        } else if let Some(out) = copy.get_mut(..bytes.len()) {
            let n = bytes.len() / 2;
            for i in 0..n {
                let r = if self.register_swap { n - 1 - i } else { i };
                let (hi, lo) = (bytes[2 * r], bytes[2 * r + 1]);
                out[2 * i..2 * i + 2].copy_from_slice(&if self.swap { [lo, hi] } else { [hi, lo] });
            }
            out
        } else {
            return false; // long text with swaps: decoded and compared as a value
        };
        match (ty, current) {
            (PropertyType::Bytes, Value::Bytes(b)) => b.as_slice() == data,
            (PropertyType::String, Value::String(s)) if self.data_type == DataType::String => {
                let end = data
                    .iter()
                    .rposition(|&b| b != 0 && b != b' ')
                    .map_or(0, |i| i + 1);
                std::str::from_utf8(&data[..end]).is_ok_and(|text| text == s.as_str())
            }
            _ => false,
        }
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

    /// The scaled number as a float; integers round to the scale's decimals.
    pub(super) fn scaled_f64(&self, raw: Raw) -> f64 {
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
                Ok(Value::String(match std::str::from_utf8(&out) {
                    Ok(text) => Text::from(text), // short text: inline, no allocation kept
                    Err(_) => Text::from(String::from_utf8_lossy(&out).into_owned()),
                }))
            }
            _ => Err(mismatch(ty.as_str(), self.data_type.as_str())),
        }
    }
}
