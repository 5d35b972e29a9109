//! Tests of the DMI encoder and decoder.

use proptest::prelude::*;

use super::*;
use crate::encode::testutil::{any_side, change, side, state};
use crate::twin::ChangeKind::{Desired, Reported};
use crate::value::Value;

/// The path of a decoding error.
fn error_path(buf: &[u8]) -> String {
    match decode_report_device_status_request(buf) {
        Err(Error::InvalidSpec { path, device, .. }) => {
            assert!(device.is_empty());
            path
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

/// A length-delimited field built by hand.
fn len_field(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(body.len()).unwrap();
    assert!(len < 0x80);
    let mut out = vec![tag, len];
    out.extend_from_slice(body);
    out
}

#[test]
fn golden_bytes_of_one_small_request() {
    let after = state(None, Some(side(Value::Int(5), 1000)));
    let set = ChangeSet {
        changes: vec![change("ns1/dev", "t", Reported, state(None, None), after)],
        deltas: vec![],
        alarms: vec![],
    };
    // Built from the spec's field numbers: 0x0a = field 1 LEN, 0x12 = field 2 LEN,
    // 0x1a = field 3 LEN.
    let entry = |k: &str, v: &str| {
        let mut e = len_field(0x0a, k.as_bytes());
        e.extend(len_field(0x12, v.as_bytes()));
        len_field(0x12, &e) // TwinProperty.metadata = 2
    };
    let mut observed = Vec::new(); // no value: omitted
    observed.extend(entry("timestamp", ""));
    observed.extend(entry("type", "int"));
    let mut reported = len_field(0x0a, b"5");
    reported.extend(entry("timestamp", "1000"));
    reported.extend(entry("type", "int"));
    let mut twin = len_field(0x0a, b"t"); // Twin.propertyName = 1
    twin.extend(len_field(0x12, &observed)); // Twin.observedDesired = 2
    twin.extend(len_field(0x1a, &reported)); // Twin.reported = 3
    let status = len_field(0x0a, &twin); // DeviceStatus.twins = 1
    let mut expected = len_field(0x0a, b"dev"); // deviceName = 1
    expected.extend(len_field(0x12, &status)); // reportedDevice = 2
    expected.extend(len_field(0x1a, b"ns1")); // deviceNamespace = 3

    let out = report_device_status_requests(&set);
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].0, "ns1/dev");
    assert_eq!(out[0].1, expected);
    assert_eq!(expected.len(), 84);
}

#[test]
fn round_trip_of_several_devices() {
    let long = "p".repeat(300);
    let desired = side(Value::string("on"), 7);
    let set = ChangeSet {
        changes: vec![
            change(
                "a/d1",
                "temp",
                Reported,
                state(None, None),
                state(None, Some(side(Value::Double(21.5), 10))),
            ),
            change(
                "a/d1",
                "sw",
                Desired,
                state(None, None),
                state(Some(desired.clone()), None),
            ),
            change(
                "a/d1",
                &long,
                Reported,
                state(None, None),
                state(Some(desired), Some(side(Value::string("off"), 11))),
            ),
            change(
                "b/only-desired",
                "x",
                Desired,
                state(None, None),
                state(Some(side(Value::Int(1), 1)), None),
            ),
            change(
                "plain",
                "x",
                Reported,
                state(None, None),
                state(None, Some(side(Value::Boolean(true), -5))),
            ),
        ],
        deltas: vec![],
        alarms: vec![],
    };
    let out = report_device_status_requests(&set);
    let ids: Vec<&str> = out.iter().map(|(id, _)| &**id).collect();
    assert_eq!(ids, ["a/d1", "plain"]);

    let d1 = decode_report_device_status_request(&out[0].1).unwrap();
    assert_eq!((d1.namespace.as_str(), d1.name.as_str()), ("a", "d1"));
    let want = |property: &str, reported: &str, ts: &str, desired: &str| ReportedTwin {
        property: property.to_owned(),
        reported: Some(reported.to_owned()),
        reported_ts: Some(ts.to_owned()),
        observed_desired: Some(desired.to_owned()),
    };
    assert_eq!(
        d1.twins,
        [
            want("temp", "21.5", "10", ""),
            want(&long, "off", "11", "on")
        ]
    );

    let plain = decode_report_device_status_request(&out[1].1).unwrap();
    assert_eq!(
        (plain.namespace.as_str(), plain.name.as_str()),
        ("default", "plain")
    );
    assert_eq!(plain.twins, [want("x", "true", "-5", "")]);
}

#[test]
fn a_run_of_one_property_becomes_one_twin_with_the_last_state() {
    let first = state(None, Some(side(Value::Int(1), 1)));
    let last = state(Some(side(Value::Int(9), 3)), Some(side(Value::Int(2), 2)));
    let set = ChangeSet {
        changes: vec![
            change("n/d", "p", Reported, state(None, None), first.clone()),
            change("n/d", "p", Desired, first, last),
        ],
        deltas: vec![],
        alarms: vec![],
    };
    let out = report_device_status_requests(&set);
    let decoded = decode_report_device_status_request(&out[0].1).unwrap();
    assert_eq!(decoded.twins.len(), 1);
    assert_eq!(decoded.twins[0].reported.as_deref(), Some("2"));
    assert_eq!(decoded.twins[0].observed_desired.as_deref(), Some("9"));
}

#[test]
fn empty_input_and_missing_sides_decode_to_defaults() {
    assert_eq!(
        decode_report_device_status_request(&[]).unwrap(),
        ReportedTwins::default()
    );
    // twins { propertyName: "p" } only; then a reported with an empty timestamp.
    let mut twin = len_field(0x0a, b"p");
    let mut req = len_field(0x12, &len_field(0x0a, &twin));
    let decoded = decode_report_device_status_request(&req).unwrap();
    assert_eq!(
        decoded.twins,
        [ReportedTwin {
            property: "p".into(),
            ..ReportedTwin::default()
        }]
    );

    let mut entry = len_field(0x0a, b"timestamp");
    entry.extend(len_field(0x12, b""));
    twin.extend(len_field(0x1a, &len_field(0x12, &entry)));
    req = len_field(0x12, &len_field(0x0a, &twin));
    let decoded = decode_report_device_status_request(&req).unwrap();
    assert_eq!(decoded.twins[0].reported.as_deref(), Some(""));
    assert_eq!(decoded.twins[0].reported_ts, None);
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let unknown: &[u8] = &[
        0x20, 0x96, 0x01, // field 4 varint 150
        0x29, 1, 2, 3, 4, 5, 6, 7, 8, // field 5 fixed64
        0x35, 1, 2, 3, 4, // field 6 fixed32
        0x3a, 2, b'h', b'i', // field 7 LEN
        0x08, 0x01, // field 1 as a varint: a known field with another wire type is unknown
        0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00, // field 2^29-1 varint 0
    ];
    let with = |body: &[u8]| [body, unknown].concat();
    let twin = with(&len_field(0x0a, b"p"));
    let status = with(&len_field(0x0a, &twin));
    let req = [
        unknown,
        &len_field(0x0a, b"dev"),
        &with(&len_field(0x12, &status)),
    ]
    .concat();
    let decoded = decode_report_device_status_request(&req).unwrap();
    assert_eq!(decoded.name, "dev");
    assert_eq!(decoded.twins.len(), 1);
    assert_eq!(decoded.twins[0].property, "p");
}

#[test]
fn malformed_input_names_the_failing_field() {
    let r = "ReportDeviceStatusRequest";
    assert_eq!(error_path(&[0x0a]), format!("{r}.deviceName")); // truncated length
    assert_eq!(error_path(&[0x0a, 5, b'a']), format!("{r}.deviceName")); // past the end
    assert_eq!(error_path(&[0x80]), r); // truncated tag
    assert_eq!(error_path(&[0x00, 0x00]), r); // field number 0
    assert_eq!(error_path(&[0x0b]), format!("{r}.deviceName")); // group start
    assert_eq!(error_path(&[0x0c]), format!("{r}.deviceName")); // group end
    assert_eq!(error_path(&[0x0e]), format!("{r}.deviceName")); // wire type 6
    assert_eq!(error_path(&[0x1a, 1, 0xff]), format!("{r}.deviceNamespace")); // bad UTF-8
    assert_eq!(error_path(&[0x48, 0x80]), format!("{r}.#9")); // truncated unknown varint
    let overflow = [
        0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
    ];
    assert_eq!(error_path(&overflow), format!("{r}.#4"));
    let huge_field = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00]; // field 2^29
    assert_eq!(error_path(&huge_field), r);

    // A bad value deep inside the second twin.
    let good = len_field(0x0a, &len_field(0x0a, b"ok"));
    let bad_value = len_field(0x1a, &len_field(0x0a, &[0xc3, 0x28]));
    let twins = [good, len_field(0x0a, &bad_value)].concat();
    let req = len_field(0x12, &twins);
    assert_eq!(
        error_path(&req),
        format!("{r}.reportedDevice.twins[1].reported.value")
    );

    let bad_entry = len_field(0x12, &len_field(0x12, &[0x12, 1, 0x80]));
    let req = len_field(0x12, &len_field(0x0a, &len_field(0x12, &bad_entry)));
    assert_eq!(
        error_path(&req),
        format!("{r}.reportedDevice.twins[0].observedDesired.metadata.value")
    );
}

#[test]
fn error_messages_carry_the_byte_offset() {
    let err = decode_report_device_status_request(&[0x0a, 1, b'a', 0x1a, 9]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ReportDeviceStatusRequest.deviceNamespace: length-delimited field of 9 bytes at byte 5 \
         runs past the end (0 bytes left)"
    );
}

#[test]
fn varint_lengths() {
    for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        assert_eq!(buf.len(), varint_len(v), "{v}");
        assert_eq!(Reader::new(&buf, 0).varint().ok(), Some(v));
    }
}

/// A set of reported changes over a few devices, with arbitrary names and values.
fn any_reported_set() -> impl Strategy<Value = ChangeSet> {
    let twin = ("\\PC{0,12}", proptest::option::of(any_side()), any_side());
    let device = (
        "[a-z]{0,5}",
        "[a-z/]{0,6}",
        proptest::collection::vec(twin, 1..4),
    );
    proptest::collection::vec(device, 1..4).prop_map(|devices| {
        let mut changes = Vec::new();
        for (i, (ns, name, twins)) in devices.into_iter().enumerate() {
            let id = format!("{ns}{i}/{name}");
            for (j, (property, desired, reported)) in twins.into_iter().enumerate() {
                let after = state(desired, Some(reported));
                let property = format!("{property}{j}");
                changes.push(change(&id, &property, Reported, state(None, None), after));
            }
        }
        ChangeSet {
            changes,
            deltas: vec![],
            alarms: vec![],
        }
    })
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_report_device_status_request(&bytes);
    }

    #[test]
    fn decode_never_panics_on_damaged_requests(
        set in any_reported_set(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let out = report_device_status_requests(&set);
        let bytes = &out[0].1;
        let _ = decode_report_device_status_request(&bytes[..cut.index(bytes.len())]);
        let mut damaged = bytes.clone();
        damaged[flip.index(bytes.len())] = byte;
        let _ = decode_report_device_status_request(&damaged);
    }

    #[test]
    fn decode_recovers_every_field(set in any_reported_set()) {
        let out = report_device_status_requests(&set);
        let devices: Vec<&[Change]> = set.by_device().collect();
        prop_assert_eq!(out.len(), devices.len());
        for ((id, bytes), changes) in out.iter().zip(devices) {
            let decoded = decode_report_device_status_request(bytes).unwrap();
            let (ns, name) = split_device_id(id);
            prop_assert_eq!((decoded.namespace.as_str(), decoded.name.as_str()), (ns, name));
            prop_assert_eq!(decoded.twins.len(), changes.len());
            for (twin, c) in decoded.twins.iter().zip(changes) {
                let reported = c.after.reported.as_ref().unwrap();
                let desired = c.after.desired.as_ref().map(|d| d.value.to_canonical());
                prop_assert_eq!(&twin.property, &*c.property);
                prop_assert_eq!(twin.reported.clone(), Some(reported.value.to_canonical()));
                prop_assert_eq!(twin.reported_ts.clone(), Some(reported.ts.to_string()));
                prop_assert_eq!(twin.observed_desired.clone(), Some(desired.unwrap_or_default()));
            }
        }
    }
}
