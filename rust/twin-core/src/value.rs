//! Typed property values and their one canonical string form.
//!
//! KubeEdge carries every twin value as a string (`TwinProperty.value`) and EdgeCore only accepts
//! values matching `^[a-zA-Z0-9-_.,:/@#]{1,512}$` (spec §3.4). The canonical form defined here is
//! the only place a value becomes text:
//!
//! | type    | canonical text                                                               |
//! |---------|------------------------------------------------------------------------------|
//! | INT     | decimal, `-` for negatives (`-42`)                                            |
//! | FLOAT   | shortest text that parses back to the same `f32` (`12.3`, `NaN`, `inf`)       |
//! | DOUBLE  | shortest text that parses back to the same `f64`                              |
//! | BOOLEAN | `true` / `false`                                                              |
//! | STRING  | the text itself when every character is allowed; otherwise each byte outside   |
//! |         | the set (and `#` itself) is written `#XX` (upper-case hex of the UTF-8 byte)  |
//! | BYTES   | lower-case hex, two digits per byte                                           |
//!
//! Numbers never use exponents, so every canonical value stays inside KubeEdge's character set.

use std::fmt::Write as _;

use crate::error::{Error, Result};
pub use crate::text::Text;

/// The KubeEdge property types a twin can hold (`DeviceModel.spec.properties[].type`).
///
/// `STREAM` properties carry no twin value; callers map them to [`PropertyType::String`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PropertyType {
    /// `INT`: a signed 64-bit integer.
    Int,
    /// `FLOAT`: an IEEE-754 single precision number.
    Float,
    /// `DOUBLE`: an IEEE-754 double precision number.
    Double,
    /// `STRING`: UTF-8 text (the default, as for a KubeEdge twin without a type).
    #[default]
    String,
    /// `BOOLEAN`: `true` or `false`.
    Boolean,
    /// `BYTES`: raw bytes.
    Bytes,
}

impl PropertyType {
    /// All types, in the order of the KubeEdge enum.
    pub const ALL: [Self; 6] = [
        Self::Int,
        Self::Float,
        Self::Double,
        Self::String,
        Self::Boolean,
        Self::Bytes,
    ];

    /// Parses the CRD spelling (`INT`, `FLOAT`, ...). Lower case is accepted too; `STREAM`
    /// maps to `STRING`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_uppercase().as_str() {
            "INT" | "INTEGER" => Ok(Self::Int),
            "FLOAT" => Ok(Self::Float),
            "DOUBLE" => Ok(Self::Double),
            "STRING" | "STREAM" => Ok(Self::String),
            "BOOLEAN" | "BOOL" => Ok(Self::Boolean),
            "BYTES" => Ok(Self::Bytes),
            _ => Err(Error::spec(
                "",
                "type",
                format!("unknown property type {text:?}; allowed: INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM"),
            )),
        }
    }

    /// The CRD spelling (`INT`, `FLOAT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int => "INT",
            Self::Float => "FLOAT",
            Self::Double => "DOUBLE",
            Self::String => "STRING",
            Self::Boolean => "BOOLEAN",
            Self::Bytes => "BYTES",
        }
    }

    /// The twin `metadata.type` EdgeCore's `ValidateValue` accepts for this type
    /// (`int`, `float`, `boolean`, `string`; spec §3.8).
    pub fn twin_type(self) -> &'static str {
        match self {
            Self::Int => "int",
            Self::Float | Self::Double => "float",
            Self::Boolean => "boolean",
            Self::String | Self::Bytes => "string",
        }
    }

    /// Whether values of this type are numbers (deadbands and mean apply).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Int | Self::Float | Self::Double)
    }
}

/// A typed twin value. 16 bytes: text and bytes live behind one thin pointer, numbers inline.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `DOUBLE`.
    Double(f64),
    /// `BOOLEAN`.
    Boolean(bool),
    /// `STRING`: inline up to 14 bytes, so the enum stays 16 bytes.
    String(Text),
    /// `BYTES`. Boxed twice for the same reason.
    #[allow(clippy::box_collection)]
    Bytes(Box<Vec<u8>>),
}

/// Characters EdgeCore accepts in a twin value besides ASCII letters and digits.
const ALLOWED_PUNCTUATION: &[u8] = b"-_.,:/@";

/// Whether `b` may stand unescaped in a canonical STRING value.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || ALLOWED_PUNCTUATION.contains(&b)
}

/// Whether `text` is inside KubeEdge's twin value character set (`[a-zA-Z0-9-_.,:/@#]*`).
pub fn is_kubeedge_safe(text: &str) -> bool {
    text.bytes().all(|b| is_plain(b) || b == b'#')
}

impl Value {
    /// The property type this value belongs to.
    pub fn property_type(&self) -> PropertyType {
        match self {
            Self::Int(_) => PropertyType::Int,
            Self::Float(_) => PropertyType::Float,
            Self::Double(_) => PropertyType::Double,
            Self::Boolean(_) => PropertyType::Boolean,
            Self::String(_) => PropertyType::String,
            Self::Bytes(_) => PropertyType::Bytes,
        }
    }

    /// A STRING value.
    pub fn string(text: impl Into<String>) -> Self {
        Self::String(Text::from(text.into()))
    }

    /// A BYTES value.
    pub fn bytes(data: impl Into<Vec<u8>>) -> Self {
        Self::Bytes(Box::new(data.into()))
    }

    /// Whether two values are the same value of the same type, floats bit for bit (`NaN`
    /// payloads and the sign of zero count, unlike `==`).
    pub fn is_identical(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Float(a), Self::Float(b)) => a.to_bits() == b.to_bits(),
            (Self::Double(a), Self::Double(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }

    /// The value as a float, for numeric types (`None` otherwise).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Int(v) => Some(v as f64),
            Self::Float(v) => Some(f64::from(v)),
            Self::Double(v) => Some(v),
            Self::Boolean(v) => Some(if v { 1.0 } else { 0.0 }),
            Self::String(_) | Self::Bytes(_) => None,
        }
    }

    /// Builds a value of type `ty` from a float (used by aggregation and scaling). INT truncates
    /// toward zero and saturates; BOOLEAN is `x != 0`. Text types are not numeric: `None`.
    pub fn from_f64(ty: PropertyType, x: f64) -> Option<Self> {
        match ty {
            PropertyType::Int => Some(Self::Int(x as i64)),
            PropertyType::Float => Some(Self::Float(x as f32)),
            PropertyType::Double => Some(Self::Double(x)),
            PropertyType::Boolean => Some(Self::Boolean(x != 0.0)),
            PropertyType::String | PropertyType::Bytes => None,
        }
    }

    /// Appends the canonical string form (see the module docs) to `out`.
    pub fn write_canonical(&self, out: &mut String) {
        match self {
            Self::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Self::Float(v) => write_float(out, f64::from(*v), v.is_nan(), |o| {
                let _ = write!(o, "{v}");
            }),
            Self::Double(v) => write_float(out, *v, v.is_nan(), |o| {
                let _ = write!(o, "{v}");
            }),
            Self::Boolean(v) => out.push_str(if *v { "true" } else { "false" }),
            Self::String(s) => escape_into(out, s),
            Self::Bytes(b) => {
                out.reserve(b.len() * 2);
                for byte in b.iter() {
                    let _ = write!(out, "{byte:02x}");
                }
            }
        }
    }

    /// The canonical string form (see the module docs).
    pub fn to_canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    /// Parses a canonical string back into a value of type `ty`; the inverse of
    /// [`Value::to_canonical`]. STRING un-escapes `#XX` sequences (a `#` not followed by two hex
    /// digits, or escapes that do not form UTF-8, are kept literally, so values written by other
    /// mappers such as `#FF0000` survive).
    pub fn from_canonical(ty: PropertyType, text: &str) -> Result<Self> {
        match ty {
            PropertyType::String => Ok(Self::string(unescape(text))),
            PropertyType::Bytes => parse_hex(text)
                .map(Self::bytes)
                .ok_or_else(|| mismatch(ty, text)),
            _ => Self::parse(ty, text),
        }
    }

    /// Parses user-facing text (a desired value from REST, MQTT or a manifest) into a value of
    /// type `ty`. Numbers may carry surrounding white space; INT also accepts an integral float
    /// (`"3.0"`); BOOLEAN accepts `true`/`false` in any case and `1`/`0`; STRING is taken as is;
    /// BYTES is hex.
    pub fn parse(ty: PropertyType, text: &str) -> Result<Self> {
        let t = text.trim();
        let parsed = match ty {
            PropertyType::Int => t.parse::<i64>().ok().map(Self::Int).or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|x| x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15)
                    .map(|x| Self::Int(x as i64))
            }),
            PropertyType::Float => t.parse::<f32>().ok().map(Self::Float),
            PropertyType::Double => t.parse::<f64>().ok().map(Self::Double),
            PropertyType::Boolean => match t.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(Self::Boolean(true)),
                "false" | "0" => Some(Self::Boolean(false)),
                _ => None,
            },
            PropertyType::String => return Ok(Self::string(text)),
            PropertyType::Bytes => parse_hex(t).map(Self::bytes),
        };
        parsed.ok_or_else(|| mismatch(ty, text))
    }
}

/// Writes a float in plain decimal (Rust's `Display`, which never uses an exponent), with
/// `NaN`, `inf` and `-inf` for the specials.
fn write_float(out: &mut String, v: f64, nan: bool, display: impl FnOnce(&mut String)) {
    if nan {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else {
        display(out);
    }
}

/// The error for a value that does not fit `ty` (device and property are filled in by callers).
fn mismatch(ty: PropertyType, text: &str) -> Error {
    let mut shown: String = text.chars().take(40).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    Error::TypeMismatch {
        device: String::new(),
        property: String::new(),
        expected: ty.as_str().to_owned(),
        got: format!("{shown:?}"),
    }
}

/// Appends `text` with every byte outside the allowed set (and `#`) written as `#XX`.
fn escape_into(out: &mut String, text: &str) {
    out.reserve(text.len());
    for b in text.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "#{b:02X}");
        }
    }
}

/// Reverses [`escape_into`]; malformed or non-UTF-8 escapes are kept literally.
fn unescape(text: &str) -> String {
    if !text.contains('#') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut raw = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' && i + 2 < bytes.len() {
            if let Some(b) = hex_pair(bytes[i + 1], bytes[i + 2]) {
                raw.push(b);
                i += 3;
                continue;
            }
        }
        raw.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(raw).unwrap_or_else(|_| text.to_owned())
}

/// The byte of two hex digits, if both are hex digits.
fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let h = char::from(hi).to_digit(16)?;
    let l = char::from(lo).to_digit(16)?;
    Some((h * 16 + l) as u8)
}

/// Parses lower- or upper-case hex with an even number of digits.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks_exact(2).map(|p| hex_pair(p[0], p[1])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn value_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(Value::Int(-42).to_canonical(), "-42");
        assert_eq!(Value::Float(12.3).to_canonical(), "12.3");
        assert_eq!(Value::Double(1e21).to_canonical(), "1000000000000000000000");
        assert_eq!(Value::Double(f64::NAN).to_canonical(), "NaN");
        assert_eq!(Value::Boolean(true).to_canonical(), "true");
        assert_eq!(Value::string("a b#c").to_canonical(), "a#20b#23c");
        assert_eq!(Value::bytes(vec![0, 255]).to_canonical(), "00ff");
    }

    #[test]
    fn foreign_hash_values_survive() {
        let v = Value::from_canonical(PropertyType::String, "#FF0000").unwrap();
        assert_eq!(v, Value::string("#FF0000"));
    }

    #[test]
    fn parse_rejects_wrong_types() {
        assert!(matches!(
            Value::parse(PropertyType::Int, "abc"),
            Err(Error::TypeMismatch { .. })
        ));
        assert!(Value::parse(PropertyType::Boolean, "yes").is_err());
        assert_eq!(
            Value::parse(PropertyType::Int, "3.0").unwrap(),
            Value::Int(3)
        );
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            any::<f32>()
                .prop_filter("nan", |x| !x.is_nan())
                .prop_map(Value::Float),
            any::<f64>()
                .prop_filter("nan", |x| !x.is_nan())
                .prop_map(Value::Double),
            any::<bool>().prop_map(Value::Boolean),
            ".*".prop_map(Value::string),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::bytes),
        ]
    }

    proptest! {
        #[test]
        fn canonical_round_trips_and_is_kubeedge_safe(v in any_value()) {
            let text = v.to_canonical();
            prop_assert!(is_kubeedge_safe(&text), "{text:?}");
            prop_assert_eq!(Value::from_canonical(v.property_type(), &text).unwrap(), v);
        }
    }
}
