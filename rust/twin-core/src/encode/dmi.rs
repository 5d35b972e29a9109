//! DMI v1beta1 `ReportDeviceStatusRequest`, hand-written protobuf (spec §1.2, §1.4).
//!
//! The mapper side encodes one request per device carrying one `Twin` per reported property;
//! the device-manager side decodes incoming requests with
//! [`decode_report_device_status_request`].
//!
//! Messages and field numbers used:
//!
//! ```text
//! ReportDeviceStatusRequest { deviceName = 1; DeviceStatus reportedDevice = 2; deviceNamespace = 3 }
//! DeviceStatus              { repeated Twin twins = 1; reportToCloud = 2; reportCycle = 3 }
//! Twin                      { propertyName = 1; TwinProperty observedDesired = 2; TwinProperty reported = 3 }
//! TwinProperty              { string value = 1; map<string, string> metadata = 2 }
//! map entry                 { string key = 1; string value = 2 }
//! ```
//!
//! Output follows proto3: fields in ascending order, empty top-level strings omitted, map
//! entries written with both key and value (as Go and C++ do), map keys sorted.

use std::ops::Range;
use std::sync::Arc;

use super::{format_i64, property_runs};
use crate::error::{Error, Result};
use crate::twin::{split_device_id, Change, ChangeKind, ChangeSet, TwinSide, TwinState};
use crate::value::PropertyType;

/// Wire type of varints.
const WIRE_VARINT: u8 = 0;
/// Wire type of 64-bit fixed values.
const WIRE_I64: u8 = 1;
/// Wire type of length-delimited fields (strings, bytes, messages).
const WIRE_LEN: u8 = 2;
/// Wire type of a group start (proto2 only, rejected).
const WIRE_SGROUP: u8 = 3;
/// Wire type of a group end (proto2 only, rejected).
const WIRE_EGROUP: u8 = 4;
/// Wire type of 32-bit fixed values.
const WIRE_I32: u8 = 5;
/// The largest valid protobuf field number.
const MAX_FIELD: u64 = (1 << 29) - 1;

/// Field names of `ReportDeviceStatusRequest`, indexed by field number - 1.
const REQUEST_FIELDS: &[&str] = &["deviceName", "reportedDevice", "deviceNamespace"];
/// Field names of `DeviceStatus`.
const STATUS_FIELDS: &[&str] = &["twins", "reportToCloud", "reportCycle"];
/// Field names of `Twin`.
const TWIN_FIELDS: &[&str] = &["propertyName", "observedDesired", "reported"];
/// Field names of `TwinProperty`.
const PROPERTY_FIELDS: &[&str] = &["value", "metadata"];
/// Field names of a map entry.
const ENTRY_FIELDS: &[&str] = &["key", "value"];

/// The metadata key of a twin side's timestamp.
const META_TIMESTAMP: &str = "timestamp";
/// The metadata key of a twin side's type.
const META_TYPE: &str = "type";

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes one `ReportDeviceStatusRequest` per device of `set` (in the order of
/// [`ChangeSet::by_device`]), returned with the device id.
///
/// Only [`ChangeKind::Reported`] changes are reported (a mapper does not report desired
/// changes); a device without any is skipped. Each reported property becomes one `Twin`
/// describing the twin after its last change in the set:
///
/// - `reported` = `{value: <canonical reported value>, metadata: {timestamp: <ms>, type}}`;
/// - `observedDesired` = `{value: <canonical desired value>, metadata: {timestamp: <ms>, type}}`,
///   with an empty value and timestamp when there is no desired value; always present because
///   `EdgeCore` dereferences it unconditionally;
///
/// where `type` is [`PropertyType::twin_type`]. The device id `<namespace>/<name>` is split
/// with [`split_device_id`].
pub fn report_device_status_requests(set: &ChangeSet) -> Vec<(Arc<str>, Vec<u8>)> {
    let packed = report_device_status_requests_packed(set);
    packed
        .iter()
        .map(|(device, bytes)| (Arc::clone(device), bytes.to_vec()))
        .collect()
}

/// The requests of [`report_device_status_requests`] back to back in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedRequests {
    /// Every serialized request, back to back.
    pub bytes: Vec<u8>,
    /// Per request, in order: the device id and the byte range of the request in `bytes`.
    pub requests: Vec<(Arc<str>, Range<usize>)>,
}

impl PackedRequests {
    /// Number of requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The requests in order, as `(device id, serialized request)`.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &[u8])> + '_ {
        self.requests
            .iter()
            .map(|(device, range)| (device, &self.bytes[range.clone()]))
    }
}

/// [`report_device_status_requests`] packed into one buffer (one allocation for the batch).
pub fn report_device_status_requests_packed(set: &ChangeSet) -> PackedRequests {
    let capacity = set
        .changes
        .iter()
        .map(|c| c.property.len() + 144)
        .sum::<usize>()
        + set
            .by_device()
            .map(|c| c[0].device.len() + 16)
            .sum::<usize>();
    let mut out = PackedRequests {
        bytes: Vec::with_capacity(capacity),
        requests: Vec::new(),
    };
    let mut scratch = String::with_capacity(64);
    for changes in set.by_device() {
        let start = out.bytes.len();
        if encode_device(&mut out.bytes, changes, &mut scratch) {
            let end = out.bytes.len();
            out.requests
                .push((Arc::clone(&changes[0].device), start..end));
        }
    }
    out
}

/// Appends the request of one device to `buf`; `false` (nothing written) when it has no
/// reported change.
fn encode_device(buf: &mut Vec<u8>, changes: &[Change], scratch: &mut String) -> bool {
    let Some(first) = changes.iter().find(|c| c.kind == ChangeKind::Reported) else {
        return false;
    };
    let (namespace, name) = split_device_id(&first.device);
    put_string(buf, 1, name);
    let status = begin_message(buf, 2);
    for run in property_runs(changes) {
        if run.iter().any(|c| c.kind == ChangeKind::Reported) {
            let last = &run[run.len() - 1];
            encode_twin(buf, &last.property, last.ty, &last.after, scratch);
        }
    }
    end_message(buf, status);
    put_string(buf, 3, namespace);
    true
}

/// Appends `Twin` (as field `twins` of `DeviceStatus`).
fn encode_twin(
    buf: &mut Vec<u8>,
    property: &str,
    ty: PropertyType,
    after: &TwinState,
    scratch: &mut String,
) {
    let twin = begin_message(buf, 1);
    put_string(buf, 1, property);
    encode_twin_property(buf, 2, after.desired.as_ref(), ty, scratch);
    encode_twin_property(buf, 3, after.reported.as_ref(), ty, scratch);
    end_message(buf, twin);
}

/// Appends a `TwinProperty` as field `field`; a missing side is an empty value and timestamp.
fn encode_twin_property(
    buf: &mut Vec<u8>,
    field: u32,
    side: Option<&TwinSide>,
    ty: PropertyType,
    scratch: &mut String,
) {
    let start = begin_message(buf, field);
    let mut digits = [0u8; 20];
    let ts = match side {
        Some(side) => {
            scratch.clear();
            side.value.write_canonical(scratch);
            put_string(buf, 1, scratch);
            format_i64(side.ts, &mut digits)
        }
        None => "",
    };
    put_map_entry(buf, 2, META_TIMESTAMP, ts);
    put_map_entry(buf, 2, META_TYPE, ty.twin_type());
    end_message(buf, start);
}

/// Appends a varint.
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a field tag.
fn put_tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// Appends a length-delimited field, even when empty.
fn put_bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_tag(buf, field, WIRE_LEN);
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Appends a proto3 string field; empty strings are omitted (they decode the same).
fn put_string(buf: &mut Vec<u8>, field: u32, text: &str) {
    if !text.is_empty() {
        put_bytes(buf, field, text.as_bytes());
    }
}

/// Appends one `map<string, string>` entry as field `field`.
fn put_map_entry(buf: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let body = 2 + varint_len(key.len() as u64) + key.len() + varint_len(value.len() as u64);
    put_tag(buf, field, WIRE_LEN);
    put_varint(buf, (body + value.len()) as u64);
    put_bytes(buf, 1, key.as_bytes());
    put_bytes(buf, 2, value.as_bytes());
}

/// Starts a nested message: writes the tag and a one-byte length placeholder, and returns where
/// the message body starts (for [`end_message`]).
fn begin_message(buf: &mut Vec<u8>, field: u32) -> usize {
    put_tag(buf, field, WIRE_LEN);
    buf.push(0);
    buf.len()
}

/// Ends a nested message begun at `start`: writes its length, moving the body when the length
/// needs more than the one byte reserved.
fn end_message(buf: &mut Vec<u8>, start: usize) {
    let len = buf.len() - start;
    let extra = varint_len(len as u64) - 1;
    if extra > 0 {
        buf.resize(buf.len() + extra, 0);
        buf.copy_within(start..start + len, start + extra);
    }
    let mut v = len as u64;
    let mut i = start - 1;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
}

/// The number of bytes of `v` as a varint.
fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A decoded `ReportDeviceStatusRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportedTwins {
    /// `deviceNamespace` (empty when not sent).
    pub namespace: String,
    /// `deviceName` (empty when not sent).
    pub name: String,
    /// `reportedDevice.twins`, in message order.
    pub twins: Vec<ReportedTwin>,
}

/// One decoded `Twin`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportedTwin {
    /// `propertyName` (empty when not sent).
    pub property: String,
    /// `reported.value`: `None` when the twin has no `reported` message, `Some("")` when the
    /// message is present with an empty or absent value.
    pub reported: Option<String>,
    /// `reported.metadata["timestamp"]`: `None` when absent or empty (mapper-framework always
    /// sends an empty timestamp).
    pub reported_ts: Option<String>,
    /// `observedDesired.value`: `None` when the twin has no `observedDesired` message.
    pub observed_desired: Option<String>,
}

/// Decodes a serialized `ReportDeviceStatusRequest`.
///
/// Unknown fields of every wire type are skipped (so are known fields sent with another wire
/// type, as protobuf runtimes treat them as unknown); repeated occurrences of a message field are
/// merged and the last occurrence of a string wins, as in protobuf.
///
/// # Errors
///
/// [`Error::InvalidSpec`] for malformed input (truncated varint, varint over 64 bits, length
/// past the end, invalid UTF-8 in a string, field number 0 or over 2^29-1, group or invalid wire
/// types), with `path` naming where decoding failed, e.g.
/// `ReportDeviceStatusRequest.reportedDevice.twins[2].reported.metadata.value`, and the byte
/// offset in the message.
pub fn decode_report_device_status_request(buf: &[u8]) -> Result<ReportedTwins> {
    let mut out = ReportedTwins::default();
    decode_request(buf, &mut out).map_err(|fail| {
        let path = if fail.path.is_empty() {
            "ReportDeviceStatusRequest".to_owned()
        } else {
            format!("ReportDeviceStatusRequest.{}", fail.path)
        };
        Error::spec("", path, fail.message)
    })?;
    Ok(out)
}

/// A decoding failure: the field path relative to the message being decoded, and what failed.
#[derive(Debug)]
struct Fail {
    /// Dotted path below the current message (empty: the message itself).
    path: String,
    /// What is wrong, with the byte offset.
    message: String,
}

impl Fail {
    /// A failure at field `field` of a message with field names `names`.
    fn at_field(names: &[&str], field: u64, message: String) -> Self {
        Self {
            path: field_name(names, field),
            message,
        }
    }

    /// Prefixes the path with `segment` (the field of the enclosing message).
    fn within(mut self, segment: &str) -> Self {
        self.path = if self.path.is_empty() {
            segment.to_owned()
        } else {
            format!("{segment}.{}", self.path)
        };
        self
    }
}

/// The name of field `field` (`#<n>` for unknown fields).
fn field_name(names: &[&str], field: u64) -> String {
    usize::try_from(field)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| names.get(i))
        .map_or_else(|| format!("#{field}"), |name| (*name).to_owned())
}

/// A field's payload.
enum Wire<'a> {
    /// A varint or fixed-width value (no known field of these messages has one).
    Scalar,
    /// A length-delimited payload and its absolute offset.
    Len(&'a [u8], usize),
}

/// A failure while reading a tag or a field payload: the field number if the tag was read.
struct RawFail {
    /// The field whose payload was bad, `None` for a bad tag.
    field: Option<u64>,
    /// What is wrong.
    message: String,
}

impl RawFail {
    /// Names the failure with the field names of the message being decoded.
    fn named(self, names: &[&str]) -> Fail {
        match self.field {
            Some(field) => Fail::at_field(names, field, self.message),
            None => Fail {
                path: String::new(),
                message: self.message,
            },
        }
    }
}

/// A cursor over the fields of one message.
struct Reader<'a> {
    /// The message bytes.
    buf: &'a [u8],
    /// Read position in `buf`.
    pos: usize,
    /// Offset of `buf` in the whole input (for messages).
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a message at absolute offset `base`.
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Reads a varint.
    fn varint(&mut self) -> Result<u64, String> {
        let at = self.base + self.pos;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(format!("truncated varint at byte {at}"));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(format!("varint at byte {at} overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("varint at byte {at} is longer than 10 bytes"))
    }

    /// Skips `n` bytes, or fails when fewer remain.
    fn take(&mut self, n: u64, what: &str) -> Result<(&'a [u8], usize), String> {
        let at = self.base + self.pos;
        let left = self.buf.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let data = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok((data, at))
            }
            _ => Err(format!(
                "{what} of {n} bytes at byte {at} runs past the end ({left} bytes left)"
            )),
        }
    }

    /// Reads the next field: `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, RawFail> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let raw = |message| RawFail {
            field: None,
            message,
        };
        let tag = self.varint().map_err(raw)?;
        let field = tag >> 3;
        if field == 0 || field > MAX_FIELD {
            return Err(raw(format!("invalid field number {field} at byte {at}")));
        }
        let payload = |message| RawFail {
            field: Some(field),
            message,
        };
        let wire = match (tag & 7) as u8 {
            WIRE_VARINT => self.varint().map(|_| Wire::Scalar),
            WIRE_I64 => self.take(8, "fixed64 value").map(|_| Wire::Scalar),
            WIRE_I32 => self.take(4, "fixed32 value").map(|_| Wire::Scalar),
            WIRE_LEN => match self.varint() {
                Ok(len) => self
                    .take(len, "length-delimited field")
                    .map(|(d, at)| Wire::Len(d, at)),
                Err(e) => Err(e),
            },
            w @ (WIRE_SGROUP | WIRE_EGROUP) => {
                Err(format!("group wire type {w} at byte {at} is not supported"))
            }
            w => Err(format!("invalid wire type {w} at byte {at}")),
        };
        wire.map(|w| Some((field, w))).map_err(payload)
    }
}

/// Validates a string field's UTF-8.
fn utf8(data: &[u8], at: usize) -> Result<&str, String> {
    std::str::from_utf8(data).map_err(|e| format!("invalid UTF-8 at byte {}", at + e.valid_up_to()))
}

/// Decodes a string field `field` of a message with field names `names`.
fn string_field(data: &[u8], at: usize, names: &[&str], field: u64) -> Result<String, Fail> {
    utf8(data, at)
        .map(str::to_owned)
        .map_err(|m| Fail::at_field(names, field, m))
}

/// Decodes the fields of `ReportDeviceStatusRequest` into `out`.
fn decode_request(buf: &[u8], out: &mut ReportedTwins) -> Result<(), Fail> {
    let mut r = Reader::new(buf, 0);
    while let Some((field, wire)) = r.next_field().map_err(|e| e.named(REQUEST_FIELDS))? {
        let Wire::Len(data, at) = wire else { continue };
        match field {
            1 => out.name = string_field(data, at, REQUEST_FIELDS, field)?,
            2 => decode_status(data, at, &mut out.twins).map_err(|f| f.within("reportedDevice"))?,
            3 => out.namespace = string_field(data, at, REQUEST_FIELDS, field)?,
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a `DeviceStatus`, appending its twins.
fn decode_status(buf: &[u8], base: usize, twins: &mut Vec<ReportedTwin>) -> Result<(), Fail> {
    let mut r = Reader::new(buf, base);
    while let Some((field, wire)) = r.next_field().map_err(|e| e.named(STATUS_FIELDS))? {
        if let (1, Wire::Len(data, at)) = (field, wire) {
            let mut twin = ReportedTwin::default();
            decode_twin(data, at, &mut twin)
                .map_err(|f| f.within(&format!("twins[{}]", twins.len())))?;
            twins.push(twin);
        }
    }
    Ok(())
}

/// Decodes a `Twin` into `twin`.
fn decode_twin(buf: &[u8], base: usize, twin: &mut ReportedTwin) -> Result<(), Fail> {
    let mut r = Reader::new(buf, base);
    while let Some((field, wire)) = r.next_field().map_err(|e| e.named(TWIN_FIELDS))? {
        let Wire::Len(data, at) = wire else { continue };
        match field {
            1 => twin.property = string_field(data, at, TWIN_FIELDS, field)?,
            2 => {
                let value = twin.observed_desired.get_or_insert_with(String::new);
                decode_twin_property(data, at, value, None)
                    .map_err(|f| f.within("observedDesired"))?;
            }
            3 => {
                let value = twin.reported.get_or_insert_with(String::new);
                decode_twin_property(data, at, value, Some(&mut twin.reported_ts))
                    .map_err(|f| f.within("reported"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a `TwinProperty`: its value into `value`, and its `timestamp` metadata into `ts`
/// when asked (an empty timestamp is `None`).
fn decode_twin_property(
    buf: &[u8],
    base: usize,
    value: &mut String,
    mut ts: Option<&mut Option<String>>,
) -> Result<(), Fail> {
    let mut r = Reader::new(buf, base);
    while let Some((field, wire)) = r.next_field().map_err(|e| e.named(PROPERTY_FIELDS))? {
        let Wire::Len(data, at) = wire else { continue };
        match field {
            1 => *value = string_field(data, at, PROPERTY_FIELDS, field)?,
            2 => {
                let (key, text) = decode_map_entry(data, at).map_err(|f| f.within("metadata"))?;
                if let (Some(ts), META_TIMESTAMP) = (ts.as_deref_mut(), key) {
                    *ts = (!text.is_empty()).then(|| text.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decodes a `map<string, string>` entry (missing key or value: empty).
fn decode_map_entry(buf: &[u8], base: usize) -> Result<(&str, &str), Fail> {
    let mut r = Reader::new(buf, base);
    let (mut key, mut value) = ("", "");
    while let Some((field, wire)) = r.next_field().map_err(|e| e.named(ENTRY_FIELDS))? {
        let Wire::Len(data, at) = wire else { continue };
        let slot = match field {
            1 => &mut key,
            2 => &mut value,
            _ => continue,
        };
        *slot = utf8(data, at).map_err(|m| Fail::at_field(ENTRY_FIELDS, field, m))?;
    }
    Ok((key, value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail by panicking
mod tests;
