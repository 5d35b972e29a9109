//! `KubeEdge` MQTT twin payloads (spec §3.8 outputs, §4), hand-written JSON.
//!
//! Topics are `$hw/events/device/<namespace>/<name>/twin/…`; payloads follow the Go structs of
//! `EdgeCore`'s twin module, with keys in the order Go marshals them:
//!
//! ```text
//! result    {"event_id","timestamp","twin":{<prop>: MsgTwin}}
//! document  {"event_id","timestamp","twin":{<prop>: {"last": MsgTwin|null, "current": MsgTwin|null}}}
//! delta     {"event_id","timestamp","twin":{<prop>: MsgTwin},"delta":{<prop>: "<expected>"}}
//! MsgTwin   {"expected"?: TwinValue, "actual"?: TwinValue, "optional": bool, "metadata": {"type"}}
//! TwinValue {"value": "<canonical>", "metadata": {"timestamp": <ms>}}
//! ```
//!
//! Versions are never included (`EdgeCore` strips them from these topics). Values are the
//! canonical strings of [`Value::to_canonical`](crate::Value::to_canonical), which never need
//! escaping; property names and event ids are escaped (quote, backslash, control characters as
//! `\u00XX`; other characters pass through as UTF-8). Device ids are put into topics as they
//! are: ids containing MQTT wildcards (`+`, `#`) make unpublishable topics.

use std::ops::Range;
use std::sync::Arc;

use super::{format_i64, property_runs};
use crate::twin::{split_device_id, Change, ChangeSet, DeviceDelta, TwinSide, TwinState};
use crate::value::{PropertyType, Value};

/// One MQTT publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttMessage {
    /// The topic, e.g. `$hw/events/device/default/pump/twin/update/result`.
    pub topic: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// The `optional` flag of every twin this engine publishes. `EdgeCore` creates twins added by an
/// edge update as optional, and the engine never creates non-optional twins.
pub const TWIN_OPTIONAL: bool = true;

/// Prefix of every device topic.
const TOPIC_PREFIX: &str = "$hw/events/device/";

/// MQTT publications encoded back to back: every topic and JSON payload in one text buffer, so a
/// batch of thousands of messages is one allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedMessages {
    /// Every topic and payload, back to back.
    pub text: String,
    /// Per message, in order: the byte ranges of its topic and of its payload in `text`.
    pub messages: Vec<(Range<usize>, Range<usize>)>,
}

impl PackedMessages {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The messages in order, as `(topic, payload)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        // The ranges were recorded between whole pushes, so they fall on character boundaries.
        self.messages
            .iter()
            .map(|(t, p)| (&self.text[t.clone()], &self.text[p.clone()]))
    }

    /// Appends the message on `$hw/events/device/<ns>/<name>/<suffix>` whose payload `write`
    /// writes.
    fn push(&mut self, device: &str, suffix: &str, write: impl FnOnce(&mut String)) {
        let (namespace, name) = split_device_id(device);
        let topic = self.text.len();
        for part in [TOPIC_PREFIX, namespace, "/", name, "/", suffix] {
            self.text.push_str(part);
        }
        let payload = self.text.len();
        write(&mut self.text);
        let end = self.text.len();
        self.messages.push((topic..payload, payload..end));
    }
}

/// Builds the twin publications of a change set.
///
/// For each device with changes, in the order of [`ChangeSet::by_device`]:
/// 1. `…/twin/update/result`: one entry per changed property, its twin after the change (`null`
///    when it has neither side, as `EdgeCore` answers a deletion);
/// 2. `…/twin/update/document`: one entry per changed property, `last` = the twin before (or
///    `null` when it had neither side), `current` = the twin after (or `null` when it has
///    neither side, a deletion);
/// 3. `…/twin/update/delta`: one per [`DeviceDelta`] of the device in `set.deltas`, with every
///    twin listed in it and the `delta` map of desired values.
///
/// Deltas of devices without changes in the set follow, in their order in `set.deltas`.
/// Adjacent changes of the same property are one entry (see the [module docs](super)).
/// `event_ids` is called once per message, in the order of the returned messages.
pub fn twin_messages(
    set: &ChangeSet,
    now_ms: i64,
    event_ids: &mut impl FnMut() -> String,
) -> Vec<MqttMessage> {
    let packed = twin_messages_packed(set, now_ms, &mut |out: &mut String| {
        push_json_str(out, &event_ids());
    });
    packed
        .iter()
        .map(|(topic, payload)| MqttMessage {
            topic: topic.to_owned(),
            payload: payload.as_bytes().to_vec(),
        })
        .collect()
}

/// The publications of [`twin_messages`], packed into one buffer. `event_id` writes each
/// message's event id as a JSON string (quotes included) where it goes, once per message in
/// order; [`uuid_v4_json`] writes a fresh random one.
pub fn twin_messages_packed(
    set: &ChangeSet,
    now_ms: i64,
    event_id: &mut impl FnMut(&mut String),
) -> PackedMessages {
    let mut index = DeltaIndex::new(&set.deltas);
    let mut out = PackedMessages {
        text: String::with_capacity(estimate_set(set)),
        messages: Vec::with_capacity(set.by_device().count() * 2 + set.deltas.len()),
    };
    let mut after = Twins::default();
    let mut digits = [0u8; 20];
    let now_ms = format_i64(now_ms, &mut digits); // the same in every message
    for changes in set.by_device() {
        let device = &*changes[0].device;
        after.encode(changes);
        out.push(device, "twin/update/result", |json| {
            result_payload(json, changes, &after, event_id, now_ms);
        });
        out.push(device, "twin/update/document", |json| {
            document_payload(json, changes, &after, event_id, now_ms);
        });
        for i in index.take(device) {
            let delta = &set.deltas[i];
            out.push(&delta.device, "twin/update/delta", |json| {
                delta_payload(json, delta, event_id, now_ms);
            });
        }
    }
    for i in index.rest() {
        let delta = &set.deltas[i];
        out.push(&delta.device, "twin/update/delta", |json| {
            delta_payload(json, delta, event_id, now_ms);
        });
    }
    out
}

/// A capacity for the packed publications of `set` (rarely exceeded).
fn estimate_set(set: &ChangeSet) -> usize {
    let changes: usize = set.changes.iter().map(|c| 3 * c.property.len() + 420).sum();
    let deltas: usize = set
        .deltas
        .iter()
        .map(|d| d.twins.len() * 200 + d.device.len() + 200)
        .sum();
    changes + deltas + set.by_device().count() * 320
}

/// The reply to a twin get on `$hw/events/device/<ns>/<name>/twin/get/result` for the device id
/// `device` (`<namespace>/<name>`): every twin given, in order, as `MsgTwin`.
pub fn twin_get_result(
    device: &str,
    twins: &[(Arc<str>, PropertyType, TwinState)],
    event_id: &str,
    now_ms: i64,
) -> MqttMessage {
    let mut json = open_payload(estimate(twins.iter().map(|t| t.0.len())), event_id, now_ms);
    push_twin_map(&mut json, twins);
    json.push('}');
    message(device, "twin/get/result", json)
}

/// A version 4 (random) UUID, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` in lower-case hex, drawn
/// from a splitmix64 generator whose state the caller seeds and keeps.
///
/// Not cryptographic: the ids are predictable from the state. They only need to be unique
/// enough to tell messages apart, as `KubeEdge`'s event ids do.
pub fn uuid_v4(rng_state: &mut u64) -> String {
    let mut out = String::with_capacity(36);
    push_uuid_v4(&mut out, rng_state);
    out
}

/// [`uuid_v4`] as a JSON string (with its quotes) appended to `json`, for
/// [`twin_messages_packed`].
pub fn uuid_v4_json(json: &mut String, rng_state: &mut u64) {
    json.push('"');
    push_uuid_v4(json, rng_state);
    json.push('"');
}

/// Appends a [`uuid_v4`] to `out`.
fn push_uuid_v4(out: &mut String, rng_state: &mut u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&splitmix64(rng_state).to_be_bytes());
    bytes[8..].copy_from_slice(&splitmix64(rng_state).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1; // the dash
        }
        text[at] = HEX[usize::from(b >> 4)];
        text[at + 1] = HEX[usize::from(b & 0xf)];
        at += 2;
    }
    // Only ASCII hex digits and dashes were written.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// One step of splitmix64.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The deltas of a set, found by device: indices sorted by device (stable, so one device's
/// deltas keep their order) and which were already emitted.
struct DeltaIndex<'a> {
    /// The deltas.
    deltas: &'a [DeviceDelta],
    /// Indices into `deltas`, sorted by device.
    order: Vec<usize>,
    /// Whether each delta was emitted.
    emitted: Vec<bool>,
}

impl<'a> DeltaIndex<'a> {
    /// Indexes `deltas`.
    fn new(deltas: &'a [DeviceDelta]) -> Self {
        let mut order: Vec<usize> = (0..deltas.len()).collect();
        order.sort_by(|&a, &b| deltas[a].device.cmp(&deltas[b].device));
        Self {
            deltas,
            order,
            emitted: vec![false; deltas.len()],
        }
    }

    /// The indices of the deltas of `device`, in set order, marked as emitted.
    fn take(&mut self, device: &str) -> Vec<usize> {
        let lo = self
            .order
            .partition_point(|&i| &*self.deltas[i].device < device);
        let hi = self
            .order
            .partition_point(|&i| &*self.deltas[i].device <= device);
        let found = self.order[lo..hi].to_vec();
        for &i in &found {
            self.emitted[i] = true;
        }
        found
    }

    /// The indices of the deltas not taken yet, in set order.
    fn rest(self) -> impl Iterator<Item = usize> {
        self.emitted
            .into_iter()
            .enumerate()
            .filter(|(_, done)| !done)
            .map(|(i, _)| i)
    }
}

/// The `MsgTwin` (or `null`) of each changed property of one device after its changes,
/// encoded once for both its result and its document.
#[derive(Debug, Default)]
struct Twins {
    /// The encoded twins, back to back.
    json: String,
    /// Where each property run's twin lies in `json`.
    spans: Vec<Range<usize>>,
}

impl Twins {
    /// Encodes the twins after the changes of one device.
    fn encode(&mut self, changes: &[Change]) {
        self.json.clear();
        self.spans.clear();
        for run in property_runs(changes) {
            let last = &run[run.len() - 1];
            let start = self.json.len();
            push_msg_twin_or_null(&mut self.json, last.ty, &last.after);
            self.spans.push(start..self.json.len());
        }
    }

    /// The twin of the `i`-th property run.
    fn get(&self, i: usize) -> &str {
        self.spans
            .get(i)
            .map_or("null", |span| &self.json[span.clone()])
    }
}

/// The payload of `…/twin/update/result` of one device (`after`: its twins after).
fn result_payload(
    json: &mut String,
    changes: &[Change],
    after: &Twins,
    event_id: &mut impl FnMut(&mut String),
    now_ms: &str,
) {
    open_payload_in(json, event_id, now_ms);
    for (i, run) in property_runs(changes).enumerate() {
        push_key(json, i, &run[run.len() - 1].property);
        json.push_str(after.get(i));
    }
    json.push_str("}}");
}

/// The payload of `…/twin/update/document` of one device (`after`: its twins after).
fn document_payload(
    json: &mut String,
    changes: &[Change],
    after: &Twins,
    event_id: &mut impl FnMut(&mut String),
    now_ms: &str,
) {
    open_payload_in(json, event_id, now_ms);
    for (i, run) in property_runs(changes).enumerate() {
        let (first, last) = (&run[0], &run[run.len() - 1]);
        push_key(json, i, &last.property);
        json.push_str("{\"last\":");
        push_msg_twin_or_null(json, last.ty, &first.before);
        json.push_str(",\"current\":");
        json.push_str(after.get(i));
        json.push('}');
    }
    json.push_str("}}");
}

/// The payload of `…/twin/update/delta` of one device.
fn delta_payload(
    json: &mut String,
    delta: &DeviceDelta,
    event_id: &mut impl FnMut(&mut String),
    now_ms: &str,
) {
    open_payload_in(json, event_id, now_ms);
    push_twin_map(json, &delta.twins);
    json.push_str(",\"delta\":{");
    for (i, (property, value)) in delta.delta.iter().enumerate() {
        push_key(json, i, property);
        push_value(json, value);
    }
    json.push_str("}}");
}

/// A message on `$hw/events/device/<ns>/<name>/<suffix>`.
fn message(device: &str, suffix: &str, json: String) -> MqttMessage {
    let (namespace, name) = split_device_id(device);
    let mut topic =
        String::with_capacity(TOPIC_PREFIX.len() + namespace.len() + name.len() + suffix.len() + 2);
    topic.push_str(TOPIC_PREFIX);
    topic.push_str(namespace);
    topic.push('/');
    topic.push_str(name);
    topic.push('/');
    topic.push_str(suffix);
    MqttMessage {
        topic,
        payload: json.into_bytes(),
    }
}

/// A payload capacity for entries whose keys have the given lengths.
fn estimate(keys: impl Iterator<Item = usize>) -> usize {
    keys.map(|k| k + 160).sum::<usize>() + 96
}

/// Starts a payload: `{"event_id":…,"timestamp":…,"twin":{`.
fn open_payload(capacity: usize, event_id: &str, now_ms: i64) -> String {
    let mut digits = [0u8; 20];
    let now_ms = format_i64(now_ms, &mut digits);
    let mut json = String::with_capacity(capacity);
    open_payload_in(
        &mut json,
        &mut |out: &mut String| push_json_str(out, event_id),
        now_ms,
    );
    json
}

/// Writes `{"event_id":…,"timestamp":…,"twin":{`, the event id written by `event_id`.
fn open_payload_in(json: &mut String, event_id: &mut impl FnMut(&mut String), now_ms: &str) {
    json.push_str("{\"event_id\":");
    event_id(json);
    json.push_str(",\"timestamp\":");
    json.push_str(now_ms);
    json.push_str(",\"twin\":{");
}

/// Writes the entries of a `twin` map (every twin as `MsgTwin`) and closes it.
fn push_twin_map(json: &mut String, twins: &[(Arc<str>, PropertyType, TwinState)]) {
    for (i, (property, ty, state)) in twins.iter().enumerate() {
        push_key(json, i, property);
        push_msg_twin(json, *ty, state);
    }
    json.push('}');
}

/// Writes `"key":`, preceded by a comma unless it is entry 0.
fn push_key(json: &mut String, index: usize, key: &str) {
    if index > 0 {
        json.push(',');
    }
    push_json_str(json, key);
    json.push(':');
}

/// Writes a `MsgTwin`, or `null` when the twin has neither side.
fn push_msg_twin_or_null(json: &mut String, ty: PropertyType, state: &TwinState) {
    if state.desired.is_none() && state.reported.is_none() {
        json.push_str("null");
    } else {
        push_msg_twin(json, ty, state);
    }
}

/// Writes a `MsgTwin` without versions.
fn push_msg_twin(json: &mut String, ty: PropertyType, state: &TwinState) {
    json.push('{');
    if let Some(desired) = &state.desired {
        json.push_str("\"expected\":");
        push_twin_value(json, desired);
        json.push(',');
    }
    if let Some(reported) = &state.reported {
        json.push_str("\"actual\":");
        push_twin_value(json, reported);
        json.push(',');
    }
    json.push_str(if TWIN_OPTIONAL {
        "\"optional\":true"
    } else {
        "\"optional\":false"
    });
    json.push_str(",\"metadata\":{\"type\":\"");
    json.push_str(ty.twin_type());
    json.push_str("\"}}");
}

/// Writes a `TwinValue`: `{"value":"…","metadata":{"timestamp":…}}`.
fn push_twin_value(json: &mut String, side: &TwinSide) {
    json.push_str("{\"value\":");
    push_value(json, &side.value);
    json.push_str(",\"metadata\":{\"timestamp\":");
    push_i64(json, side.ts);
    json.push_str("}}");
}

/// Writes a value's canonical string as a JSON string. Canonical text holds only
/// `[a-zA-Z0-9-_.,:/@#]`, so it needs no escaping.
pub(crate) fn push_value(json: &mut String, value: &Value) {
    json.push('"');
    value.write_canonical(json);
    json.push('"');
}

/// Writes a decimal integer.
pub(crate) fn push_i64(json: &mut String, v: i64) {
    let mut digits = [0u8; 20];
    json.push_str(format_i64(v, &mut digits));
}

/// Writes `text` as a JSON string: `"` and `\` escaped with a backslash, control characters as
/// `\u00XX`, everything else (including non-ASCII) as is.
pub(crate) fn push_json_str(json: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    json.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        json.push_str(&text[start..i]);
        match b {
            b'"' => json.push_str("\\\""),
            b'\\' => json.push_str("\\\\"),
            _ => {
                json.push_str("\\u00");
                json.push(char::from(HEX[usize::from(b >> 4)]));
                json.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = i + 1;
    }
    json.push_str(&text[start..]);
    json.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail by panicking
mod tests;
