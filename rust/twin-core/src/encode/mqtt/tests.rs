//! Tests of the MQTT twin payloads.

use proptest::prelude::*;

use super::*;
use crate::encode::testutil::{any_side, change, side, state};
use crate::twin::ChangeKind::{Desired, Reported};

/// A strict JSON checker (RFC 8259 grammar, duplicate keys rejected): `Err` names the offset.
struct Json<'a> {
    /// The text.
    b: &'a [u8],
    /// Read position.
    i: usize,
}

impl Json<'_> {
    /// Checks that `text` is exactly one JSON value.
    fn check(text: &[u8]) -> Result<(), usize> {
        let mut p = Json { b: text, i: 0 };
        p.value()?;
        p.ws();
        if p.i == p.b.len() {
            Ok(())
        } else {
            Err(p.i)
        }
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), usize> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.i)
        }
    }

    fn value(&mut self) -> Result<(), usize> {
        self.ws();
        match self.b.get(self.i).copied() {
            Some(b'{') => self.object(),
            Some(b'[') => self.list(),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.word("true"),
            Some(b'f') => self.word("false"),
            Some(b'n') => self.word("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.i),
        }
    }

    fn word(&mut self, w: &str) -> Result<(), usize> {
        if self.b[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(())
        } else {
            Err(self.i)
        }
    }

    fn number(&mut self) -> Result<(), usize> {
        let start = self.i;
        while matches!(
            self.b.get(self.i),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| start)?;
        let digits = text.strip_prefix('-').unwrap_or(text);
        let ok = text.parse::<f64>().is_ok()
            && !(digits.starts_with('0') && digits.len() > 1 && !digits.starts_with("0."));
        if ok {
            Ok(())
        } else {
            Err(start)
        }
    }

    fn string(&mut self) -> Result<String, usize> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|_| self.i),
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => out.push(e),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4).ok_or(self.i)?;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|_| self.i)?,
                                16,
                            )
                            .map_err(|_| self.i)?;
                            self.i += 4;
                            let ch = char::from_u32(code).ok_or(self.i)?;
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        _ => return Err(self.i),
                    }
                }
                0..=0x1f => return Err(self.i),
                _ => out.push(c),
            }
        }
    }

    fn object(&mut self) -> Result<(), usize> {
        self.eat(b'{')?;
        let mut keys = std::collections::HashSet::new();
        if self.eat(b'}').is_ok() {
            return Ok(());
        }
        loop {
            self.ws();
            let at = self.i;
            if !keys.insert(self.string()?) {
                return Err(at);
            }
            self.eat(b':')?;
            self.value()?;
            if self.eat(b'}').is_ok() {
                return Ok(());
            }
            self.eat(b',')?;
        }
    }

    fn list(&mut self) -> Result<(), usize> {
        self.eat(b'[')?;
        if self.eat(b']').is_ok() {
            return Ok(());
        }
        loop {
            self.value()?;
            if self.eat(b']').is_ok() {
                return Ok(());
            }
            self.eat(b',')?;
        }
    }
}

/// Asserts every payload is valid JSON.
fn assert_json(messages: &[MqttMessage]) {
    for m in messages {
        let text = String::from_utf8_lossy(&m.payload);
        assert_eq!(Json::check(&m.payload), Ok(()), "{}: {text}", m.topic);
    }
}

/// Event ids `e1`, `e2`, ...
fn counter() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("e{n}")
    }
}

/// The topic and payload text of each message.
fn texts(messages: &[MqttMessage]) -> Vec<(&str, &str)> {
    messages
        .iter()
        .map(|m| (m.topic.as_str(), std::str::from_utf8(&m.payload).unwrap()))
        .collect()
}

#[test]
fn the_json_checker_rejects_bad_json() {
    for bad in [
        &b"{"[..],
        b"{\"a\":1,}",
        b"{\"a\":1,\"a\":2}",
        b"\"\x01\"",
        b"01",
        b"[1 2]",
        b"\"\\x\"",
    ] {
        assert!(
            Json::check(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        Json::check(br#"{"a":[1,-2.5e3,true,null,"\u00e9\n"],"b":{}}"#),
        Ok(())
    );
}

fn sample_set() -> ChangeSet {
    let sw_before = state(
        Some(side(Value::Boolean(true), 5)),
        Some(side(Value::Boolean(false), 6)),
    );
    let sw_after = state(
        Some(side(Value::Boolean(true), 5)),
        Some(side(Value::Boolean(true), 110)),
    );
    let level_before = state(None, Some(side(Value::Double(1.5), 7)));
    let level_after = state(
        Some(side(Value::Double(2.5), 120)),
        Some(side(Value::Double(1.5), 7)),
    );
    ChangeSet {
        changes: vec![
            change(
                "ns/dev",
                "temp",
                Reported,
                state(None, None),
                state(None, Some(side(Value::Int(21), 100))),
            ),
            change("ns/dev", "sw", Reported, sw_before, sw_after),
            change(
                "ns/dev",
                "level",
                Desired,
                level_before,
                level_after.clone(),
            ),
        ],
        deltas: vec![
            DeviceDelta {
                device: Arc::from("other"),
                twins: vec![(
                    Arc::from("x"),
                    PropertyType::String,
                    state(Some(side(Value::string("a b"), 1)), None),
                )],
                delta: vec![(Arc::from("x"), Value::string("a b"))],
            },
            DeviceDelta {
                device: Arc::from("ns/dev"),
                twins: vec![(Arc::from("level"), PropertyType::Double, level_after)],
                delta: vec![(Arc::from("level"), Value::Double(2.5))],
            },
        ],
        alarms: vec![],
    }
}

#[test]
fn exact_payloads_of_a_small_set() {
    let messages = twin_messages(&sample_set(), 1_000, &mut counter());
    assert_json(&messages);
    let temp = r#"{"actual":{"value":"21","metadata":{"timestamp":100}},"optional":true,"metadata":{"type":"int"}}"#;
    let sw_old = r#"{"expected":{"value":"true","metadata":{"timestamp":5}},"actual":{"value":"false","metadata":{"timestamp":6}},"optional":true,"metadata":{"type":"boolean"}}"#;
    let sw = r#"{"expected":{"value":"true","metadata":{"timestamp":5}},"actual":{"value":"true","metadata":{"timestamp":110}},"optional":true,"metadata":{"type":"boolean"}}"#;
    let level_old = r#"{"actual":{"value":"1.5","metadata":{"timestamp":7}},"optional":true,"metadata":{"type":"float"}}"#;
    let level = r#"{"expected":{"value":"2.5","metadata":{"timestamp":120}},"actual":{"value":"1.5","metadata":{"timestamp":7}},"optional":true,"metadata":{"type":"float"}}"#;
    let x = r#"{"expected":{"value":"a#20b","metadata":{"timestamp":1}},"optional":true,"metadata":{"type":"string"}}"#;
    let expected = [
        (
            "$hw/events/device/ns/dev/twin/update/result".to_owned(),
            format!(
                r#"{{"event_id":"e1","timestamp":1000,"twin":{{"temp":{temp},"sw":{sw},"level":{level}}}}}"#
            ),
        ),
        (
            "$hw/events/device/ns/dev/twin/update/document".to_owned(),
            format!(
                r#"{{"event_id":"e2","timestamp":1000,"twin":{{"temp":{{"last":null,"current":{temp}}},"sw":{{"last":{sw_old},"current":{sw}}},"level":{{"last":{level_old},"current":{level}}}}}}}"#
            ),
        ),
        (
            "$hw/events/device/ns/dev/twin/update/delta".to_owned(),
            format!(
                r#"{{"event_id":"e3","timestamp":1000,"twin":{{"level":{level}}},"delta":{{"level":"2.5"}}}}"#
            ),
        ),
        (
            "$hw/events/device/default/other/twin/update/delta".to_owned(),
            format!(
                r#"{{"event_id":"e4","timestamp":1000,"twin":{{"x":{x}}},"delta":{{"x":"a#20b"}}}}"#
            ),
        ),
    ];
    let got = texts(&messages);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.0, e.0);
        assert_eq!(g.1, e.1, "{}", e.0);
    }
}

#[test]
fn a_run_of_one_property_is_one_entry_and_deletions_are_null() {
    let mid = state(None, Some(side(Value::Int(1), 1)));
    let set = ChangeSet {
        changes: vec![
            change("n/d", "p", Reported, state(None, None), mid.clone()),
            change("n/d", "p", Reported, mid, state(None, None)),
        ],
        deltas: vec![],
        alarms: vec![],
    };
    let messages = twin_messages(&set, -3, &mut counter());
    assert_json(&messages);
    let got = texts(&messages);
    assert_eq!(
        got[0].1,
        r#"{"event_id":"e1","timestamp":-3,"twin":{"p":null}}"#
    );
    assert_eq!(
        got[1].1,
        r#"{"event_id":"e2","timestamp":-3,"twin":{"p":{"last":null,"current":null}}}"#
    );
}

#[test]
fn property_names_and_event_ids_are_escaped() {
    let name = "a\"b\\c\n\u{1}\u{1f}é€😀/";
    let set = ChangeSet {
        changes: vec![change(
            "n/d",
            name,
            Reported,
            state(None, None),
            state(None, Some(side(Value::Int(1), 2))),
        )],
        deltas: vec![],
        alarms: vec![],
    };
    let messages = twin_messages(&set, 0, &mut || "id\"\t".to_owned());
    assert_json(&messages);
    let text = std::str::from_utf8(&messages[0].payload).unwrap();
    assert!(
        text.starts_with(
            r#"{"event_id":"id\"\u0009","timestamp":0,"twin":{"a\"b\\c\u000a\u0001\u001fé€😀/":{"#
        ),
        "{text}"
    );
}

#[test]
fn twin_get_result_lists_every_twin() {
    let twins = vec![
        (
            Arc::from("a"),
            PropertyType::Int,
            state(None, Some(side(Value::Int(-1), 9))),
        ),
        (Arc::from("b"), PropertyType::Bytes, state(None, None)),
    ];
    let m = twin_get_result("ns/dev", &twins, "q", 5);
    assert_eq!(m.topic, "$hw/events/device/ns/dev/twin/get/result");
    let expected = r#"{"event_id":"q","timestamp":5,"twin":{"a":{"actual":{"value":"-1","metadata":{"timestamp":9}},"optional":true,"metadata":{"type":"int"}},"b":{"optional":true,"metadata":{"type":"string"}}}}"#;
    assert_eq!(std::str::from_utf8(&m.payload).unwrap(), expected);
    let empty = twin_get_result("dev", &[], "", 0);
    assert_eq!(empty.topic, "$hw/events/device/default/dev/twin/get/result");
    assert_eq!(empty.payload, br#"{"event_id":"","timestamp":0,"twin":{}}"#);
}

#[test]
fn uuids_are_version_4() {
    let mut state = 42;
    let a = uuid_v4(&mut state);
    let b = uuid_v4(&mut state);
    assert_ne!(a, b);
    for id in [a, b] {
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(id
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
    }
}

proptest! {
    #[test]
    fn every_payload_is_json(
        twins in proptest::collection::vec(("\\PC{0,8}|[\\x00-\\x1f\"\\\\]{1,4}", proptest::option::of(any_side()), proptest::option::of(any_side())), 1..6),
        now in any::<i64>(),
    ) {
        let mut changes = Vec::new();
        let mut delta_twins = Vec::new();
        for (i, (name, desired, reported)) in twins.into_iter().enumerate() {
            let property = format!("{name}{i}");
            let after = state(desired, reported);
            delta_twins.push((Arc::from(property.as_str()), PropertyType::Int, after.clone()));
            changes.push(change("n/d", &property, Desired, after.clone(), after));
        }
        let delta = vec![(Arc::clone(&delta_twins[0].0), Value::Int(1))];
        let set = ChangeSet {
            changes,
            deltas: vec![DeviceDelta { device: Arc::from("n/d"), twins: delta_twins, delta }],
            alarms: vec![],
        };
        let messages = twin_messages(&set, now, &mut counter());
        prop_assert_eq!(messages.len(), 3);
        for m in &messages {
            prop_assert_eq!(Json::check(&m.payload), Ok(()));
        }
    }
}
