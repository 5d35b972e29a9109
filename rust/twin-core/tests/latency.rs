//! The engine's latency histograms: read → applied for DMI and direct reports, read → persisted
//! through `take_dirty` + `mark_persisted`, and reset.
#![allow(clippy::unwrap_used)] // a panic is the failure report

use twin_core::encode::dmi::report_device_status_requests;
use twin_core::engine::Engine;
use twin_core::latency::BOUNDS_MS;
use twin_core::spec::PropertySpec;
use twin_core::{PropertyType, Value};

fn specs() -> Vec<PropertySpec> {
    ["a", "b"]
        .iter()
        .map(|name| PropertySpec {
            name: (*name).to_owned(),
            ty: PropertyType::Int,
            ..PropertySpec::default()
        })
        .collect()
}

/// A DMI request for `default/d` with `a` = `value` read at `ts` (encoded by a mapper engine).
fn dmi_report(value: i64, ts: i64) -> Vec<u8> {
    let mut mapper = Engine::new();
    let dev = mapper.upsert_device("default/d", &specs()).unwrap();
    let set = mapper
        .apply_reported_at(dev, &[(0, Value::Int(value), ts)], ts)
        .unwrap();
    report_device_status_requests(&set).remove(0).1
}

fn bucket_of(ms: u64) -> usize {
    BOUNDS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(BOUNDS_MS.len())
}

#[test]
fn dmi_report_records_applied_latency_changed_or_not() {
    let mut e = Engine::new();
    e.upsert_device("default/d", &specs()).unwrap();
    let payload = dmi_report(7, 1_000_000);
    let set = e.apply_dmi_report(&payload, 1_000_042).unwrap();
    assert_eq!(set.changes.len(), 1);
    let set = e.apply_dmi_report(&payload, 1_000_100).unwrap();
    assert!(
        set.changes.is_empty(),
        "same value: no change, still recorded"
    );
    let h = &e.latency().applied;
    assert_eq!((h.count(), h.sum_ms(), h.max_ms()), (2, 142, 100));
    assert_eq!(h.counts()[bucket_of(42)], 1);
    assert_eq!(h.counts()[bucket_of(100)], 1);
    assert!(e.latency().persisted.is_empty());
}

#[test]
fn dmi_report_without_timestamp_is_not_recorded() {
    // A request whose reported side has no timestamp (as mapper-framework sends): encode a
    // change with read time 0, which the encoder writes as "0", and one with none at all.
    let mut e = Engine::new();
    e.upsert_device("default/d", &specs()).unwrap();
    e.apply_dmi_report(&dmi_report(1, 0), 5_000).unwrap();
    assert!(e.latency().applied.is_empty());
    let bad = e.apply_dmi_report(b"\x0a\x01x", 5_000);
    assert!(bad.is_err(), "unknown device");
    assert!(e.latency().applied.is_empty());
}

#[test]
fn apply_reported_at_records_each_value() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/d", &specs()).unwrap();
    e.apply_reported_at(
        dev,
        &[(0, Value::Int(1), 900), (1, Value::Int(2), 1_010)],
        1_000,
    )
    .unwrap();
    let h = &e.latency().applied;
    assert_eq!((h.count(), h.sum_ms(), h.max_ms()), (2, 100, 100));
    assert_eq!(
        h.counts()[0],
        1,
        "a read time after now (clock skew) counts as 0"
    );
    // A failed batch records nothing.
    assert!(e
        .apply_reported_at(dev, &[(0, Value::string("x"), 1)], 1_000)
        .is_err());
    assert_eq!(e.latency().applied.count(), 2);
}

#[test]
fn persisted_latency_waits_for_mark_persisted() {
    let mut e = Engine::new();
    e.set_track_dirty(true);
    let dev = e.upsert_device("default/d", &specs()).unwrap();
    e.apply_reported_at(
        dev,
        &[(0, Value::Int(1), 1_000), (1, Value::Int(2), 1_500)],
        2_000,
    )
    .unwrap();
    assert_eq!(e.take_dirty().len(), 2);
    assert_eq!(e.unpersisted(), 2);
    assert!(e.latency().persisted.is_empty(), "not stored yet");
    // A failed flush: the next take adds to what is remembered.
    e.apply_reported_at(dev, &[(0, Value::Int(3), 1_800)], 2_000)
        .unwrap();
    assert_eq!(e.take_dirty().len(), 1);
    assert_eq!(e.unpersisted(), 3);
    e.mark_persisted(3_000);
    let h = &e.latency().persisted;
    assert_eq!(
        (h.count(), h.sum_ms(), h.max_ms()),
        (3, 2_000 + 1_500 + 1_200, 2_000)
    );
    assert_eq!(e.unpersisted(), 0);
    e.mark_persisted(4_000);
    assert_eq!(e.latency().persisted.count(), 3, "nothing new to mark");
}

#[test]
fn reset_latency_zeroes_both() {
    let mut e = Engine::new();
    e.set_track_dirty(true);
    let dev = e.upsert_device("default/d", &specs()).unwrap();
    e.apply_reported_at(dev, &[(0, Value::Int(1), 1_000)], 1_010)
        .unwrap();
    e.take_dirty();
    e.mark_persisted(1_020);
    e.apply_reported_at(dev, &[(0, Value::Int(2), 1_030)], 1_040)
        .unwrap();
    e.take_dirty();
    e.reset_latency();
    assert!(e.latency().applied.is_empty());
    assert!(e.latency().persisted.is_empty());
    assert_eq!(e.unpersisted(), 0);
}
