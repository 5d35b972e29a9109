//! Engine invariants over random batches: a change set applied to the old twins gives the new
//! twins, only real changes are emitted, versions only grow, and bad input changes nothing.
#![allow(clippy::unwrap_used)] // test helpers too: a panic is the failure report

use std::collections::HashMap;

use proptest::prelude::*;
use twin_core::engine::{Engine, PlannedFrame};
use twin_core::modbus::VisitorSpec;
use twin_core::policy::{ChangePolicy, Deadband};
use twin_core::spec::PropertySpec;
use twin_core::{ChangeKind, Error, PropertyType, TwinState, Value};

fn specs(n: usize) -> Vec<PropertySpec> {
    (0..n)
        .map(|i| PropertySpec {
            name: format!("p{i}"),
            ty: PropertyType::Int,
            ..PropertySpec::default()
        })
        .collect()
}

fn snapshot(e: &Engine, dev: u32) -> HashMap<String, TwinState> {
    e.twins(dev)
        .unwrap()
        .into_iter()
        .map(|(n, _, s)| (n.to_string(), s))
        .collect()
}

proptest! {
    #[test]
    fn diff_applied_to_old_state_gives_new_state(
        batches in proptest::collection::vec(proptest::collection::vec((0u16..6, -3i64..3), 0..12), 1..8)
    ) {
        let mut e = Engine::new();
        let dev = e.upsert_device("default/d", &specs(6)).unwrap();
        let mut ts = 0;
        for batch in batches {
            let old = snapshot(&e, dev);
            ts += 1000;
            let values: Vec<(u16, Value, i64)> = batch.iter().map(|(p, v)| (*p, Value::Int(*v), ts)).collect();
            let set = e.apply_reported(dev, &values).unwrap();
            let mut rebuilt = old.clone();
            for c in &set.changes {
                prop_assert_eq!(c.kind, ChangeKind::Reported);
                prop_assert_eq!(&rebuilt[&*c.property], &c.before);
                rebuilt.insert(c.property.to_string(), c.after.clone());
            }
            let new = snapshot(&e, dev);
            prop_assert_eq!(&rebuilt, &new);
            for (name, state) in &new {
                let before = &old[name];
                prop_assert!(state.reported_version.edge >= before.reported_version.edge);
                // Exact policy: a twin that was not in the set kept its value.
                if !set.changes.iter().any(|c| &*c.property == name) {
                    prop_assert_eq!(&state.reported, &before.reported);
                }
            }
        }
    }

    #[test]
    fn deadband_suppresses_small_moves(steps in proptest::collection::vec(-2.0f64..2.0, 1..30)) {
        let mut e = Engine::new();
        let spec = PropertySpec {
            name: "t".into(),
            ty: PropertyType::Double,
            policy: ChangePolicy { deadband: Deadband::Absolute(1.0), heartbeat_ms: 0 },
            ..PropertySpec::default()
        };
        let dev = e.upsert_device("default/d", &[spec]).unwrap();
        let mut x = 0.0;
        for (i, s) in steps.iter().enumerate() {
            x += s;
            let last = e.twin(dev, 0).unwrap().reported.map(|r| r.value);
            let set = e.apply_reported(dev, &[(0, Value::Double(x), i as i64)]).unwrap();
            if let Some(Value::Double(old)) = last {
                prop_assert_eq!(set.changes.len() == 1, (x - old).abs() > 1.0);
            } else {
                prop_assert_eq!(set.changes.len(), 1);
            }
        }
    }
}

#[test]
fn heartbeat_re_reports_an_unchanged_value() {
    let mut e = Engine::new();
    let spec = PropertySpec {
        name: "t".into(),
        ty: PropertyType::Int,
        policy: ChangePolicy {
            deadband: Deadband::Exact,
            heartbeat_ms: 5000,
        },
        ..PropertySpec::default()
    };
    let dev = e.upsert_device("default/d", &[spec]).unwrap();
    assert_eq!(
        e.apply_reported(dev, &[(0, Value::Int(1), 0)])
            .unwrap()
            .changes
            .len(),
        1
    );
    assert_eq!(
        e.apply_reported(dev, &[(0, Value::Int(1), 4999)])
            .unwrap()
            .changes
            .len(),
        0
    );
    let set = e.apply_reported(dev, &[(0, Value::Int(1), 5000)]).unwrap();
    assert_eq!(set.changes.len(), 1);
    assert_eq!(set.changes[0].after.reported_version.edge, 2);
}

#[test]
fn desired_gives_delta_and_versions() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/d", &specs(2)).unwrap();
    e.apply_reported(dev, &[(0, Value::Int(1), 1)]).unwrap();
    let set = e.set_desired(dev, &[(0, Some(Value::Int(5)))], 2).unwrap();
    assert_eq!(set.changes.len(), 1);
    assert_eq!(set.changes[0].kind, ChangeKind::Desired);
    assert_eq!(set.changes[0].after.desired_version.edge, 1);
    assert_eq!(set.deltas.len(), 1);
    assert_eq!(set.deltas[0].delta, vec![("p0".into(), Value::Int(5))]);
    // Same desired again: no change, no version bump.
    let again = e.set_desired(dev, &[(0, Some(Value::Int(5)))], 3).unwrap();
    assert!(again.changes.is_empty());
    // The device reaches the desired value: no delta left.
    let set = e.apply_reported(dev, &[(0, Value::Int(5), 4)]).unwrap();
    assert!(set.deltas.is_empty());
}

#[test]
fn cloud_sync_follows_kubeedge_version_rule() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/d", &specs(1)).unwrap();
    let v = |cloud, edge| twin_core::Version { cloud, edge };
    e.sync_desired(dev, &[(0, Some(Value::Int(1)), v(2, 0))], 1)
        .unwrap();
    e.set_desired(dev, &[(0, Some(Value::Int(2)))], 2).unwrap(); // edge -> 1
    let err = e
        .sync_desired(dev, &[(0, Some(Value::Int(3)), v(3, 0))], 3)
        .unwrap_err();
    assert!(matches!(err, Error::VersionConflict { .. }), "{err}");
    assert_eq!(
        e.twin(dev, 0).unwrap().desired.unwrap().value,
        Value::Int(2)
    );
    e.sync_desired(dev, &[(0, Some(Value::Int(3)), v(3, 1))], 4)
        .unwrap();
    assert_eq!(e.twin(dev, 0).unwrap().desired_version, v(3, 1));
}

#[test]
fn bad_batches_change_nothing() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/d", &specs(2)).unwrap();
    let before = snapshot(&e, dev);
    let err = e
        .apply_reported(dev, &[(0, Value::Int(1), 1), (1, Value::string("x"), 1)])
        .unwrap_err();
    assert!(
        matches!(err, Error::TypeMismatch { ref property, .. } if property == "p1"),
        "{err}"
    );
    assert!(matches!(
        e.apply_reported(dev, &[(0, Value::Int(1), 1), (9, Value::Int(1), 1)]),
        Err(Error::UnknownProperty { .. })
    ));
    assert_eq!(snapshot(&e, dev), before);
    assert!(matches!(
        e.apply_reported(99, &[]),
        Err(Error::UnknownDevice { .. })
    ));
}

#[test]
fn specs_are_validated_with_paths() {
    let mut e = Engine::new();
    let mut s = specs(2);
    s[1].name = "p0".into();
    let err = e.upsert_device("default/d", &s).unwrap_err();
    assert_eq!(err.path(), Some("properties[1].name"));
    let mut s = specs(1);
    s[0].visitor = Some(VisitorSpec {
        register: "Nope".into(),
        ..VisitorSpec::default()
    });
    let err = e.upsert_device("default/d", &s).unwrap_err();
    assert_eq!(
        err.path(),
        Some("properties[0].visitors.configData.register")
    );
    assert!(e.is_empty());
}

fn modbus_specs() -> Vec<PropertySpec> {
    let visitor = |offset, data_type: &str, limit| VisitorSpec {
        register: "HoldingRegister".into(),
        offset,
        limit,
        data_type: data_type.into(),
        scale: 1.0,
        ..VisitorSpec::default()
    };
    vec![
        PropertySpec {
            name: "a".into(),
            ty: PropertyType::Int,
            visitor: Some(visitor(0, "int16", 1)),
            ..PropertySpec::default()
        },
        PropertySpec {
            name: "b".into(),
            ty: PropertyType::Float,
            visitor: Some(visitor(1, "float32", 2)),
            ..PropertySpec::default()
        },
    ]
}

#[test]
fn read_plan_of_plans_only_the_properties_asked_for() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/m", &modbus_specs()).unwrap();
    let span = |props: &[u16]| -> Vec<(u16, u16)> {
        let plan = e.read_plan_of(dev, props).unwrap();
        plan.iter().map(|r| (r.start, r.count)).collect()
    };
    assert_eq!(span(&[0]), [(0, 1)]);
    assert_eq!(span(&[1]), [(1, 2)]);
    assert_eq!(span(&[1, 0, 1]), [(0, 3)]);
    assert_eq!(span(&[]), []);
    let whole: Vec<(u16, u16)> = e
        .read_plan(dev)
        .unwrap()
        .iter()
        .map(|r| (r.start, r.count))
        .collect();
    assert_eq!(span(&[0, 1]), whole);
    assert!(matches!(
        e.read_plan_of(dev, &[2]),
        Err(Error::UnknownProperty { .. })
    ));
}

#[test]
fn ingest_decodes_a_coalesced_frame_and_reports_changes() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/m", &modbus_specs()).unwrap();
    let plan = e.read_plan(dev).unwrap().to_vec();
    assert_eq!(plan.len(), 1);
    assert_eq!((plan[0].start, plan[0].count), (0, 3));
    let mut frame = vec![0xFF, 0xFE];
    frame.extend_from_slice(&1.5f32.to_be_bytes());
    assert_eq!(
        e.ingest_frame(dev, plan[0].kind, 0, None, &frame, 10)
            .unwrap(),
        2
    );
    let set = e.report();
    assert_eq!(set.changes.len(), 2);
    assert_eq!(
        set.changes[0].after.reported.as_ref().unwrap().value,
        Value::Int(-2)
    );
    assert_eq!(
        set.changes[1].after.reported.as_ref().unwrap().value,
        Value::Float(1.5)
    );
    // The same frame again: nothing changed.
    e.ingest_frame(dev, plan[0].kind, 0, None, &frame, 20)
        .unwrap();
    assert!(e.report().changes.is_empty());
    // A frame that stops inside property b is an error and queues nothing.
    let err = e
        .ingest_frame(dev, plan[0].kind, 0, None, &frame[..4], 30)
        .unwrap_err();
    assert!(
        matches!(err, Error::ShortFrame { ref property, .. } if property == "b"),
        "{err}"
    );
    assert_eq!(e.stats().queued, 0);
}

#[test]
fn layouts_are_shared_and_collected() {
    let mut e = Engine::new();
    for i in 0..100 {
        e.upsert_device(&format!("default/d{i}"), &modbus_specs())
            .unwrap();
    }
    assert_eq!(e.stats().layouts, 1);
    for i in 0..100 {
        e.remove_device(&format!("default/d{i}")).unwrap();
    }
    assert_eq!(e.stats().layouts, 0);
}

#[test]
fn reconfiguring_keeps_twins_of_kept_properties() {
    let mut e = Engine::new();
    let dev = e.upsert_device("default/d", &specs(2)).unwrap();
    e.apply_reported(dev, &[(1, Value::Int(7), 1)]).unwrap();
    let mut s = specs(3);
    s.swap(0, 2);
    let dev2 = e.upsert_device("default/d", &s).unwrap();
    assert_eq!(dev, dev2);
    let p1 = e.property_index(dev, "p1").unwrap();
    assert_eq!(
        e.twin(dev, p1).unwrap().reported.unwrap().value,
        Value::Int(7)
    );
}

#[test]
fn dirty_twins_are_handed_out_once() {
    let mut e = Engine::new();
    e.set_track_dirty(true);
    let dev = e.upsert_device("default/d", &specs(3)).unwrap();
    e.apply_reported(
        dev,
        &[
            (0, Value::Int(1), 1),
            (0, Value::Int(2), 2),
            (2, Value::Int(5), 2),
        ],
    )
    .unwrap();
    e.set_desired(dev, &[(2, Some(Value::Int(6)))], 3).unwrap();
    let rows = e.take_dirty();
    let names: Vec<&str> = rows.iter().map(|(_, p, _)| &**p).collect();
    assert_eq!(names, ["p0", "p2"]);
    assert!(
        rows[1]
            .2
            .contains(r#""desired":{"value":"6","timestamp":3}"#),
        "{}",
        rows[1].2
    );
    assert!(e.take_dirty().is_empty());
    // Unchanged reports are not dirty.
    e.apply_reported(dev, &[(0, Value::Int(2), 4)]).unwrap();
    assert!(e.take_dirty().is_empty());
}

/// A device of four reads: a coil (a boolean), discrete inputs (3 bits), an input register,
/// holding registers (an int16 with a heartbeat, a float32, a text of two registers, a queue
/// of 2 samples).
fn planned_specs() -> Vec<PropertySpec> {
    let visitor = |register: &str, offset: i64, limit: i64, data_type: &str| VisitorSpec {
        register: register.into(),
        offset,
        limit,
        data_type: data_type.into(),
        ..VisitorSpec::default()
    };
    let prop = |name: &str, ty, v: VisitorSpec| PropertySpec {
        name: name.into(),
        ty,
        visitor: Some(v),
        ..PropertySpec::default()
    };
    let mut specs = vec![
        prop(
            "a",
            PropertyType::Int,
            visitor("HoldingRegister", 0, 1, "int16"),
        ),
        prop(
            "b",
            PropertyType::Float,
            visitor("HoldingRegister", 1, 2, "float32"),
        ),
        prop(
            "c",
            PropertyType::String,
            visitor("HoldingRegister", 3, 2, "string"),
        ),
        prop(
            "d",
            PropertyType::Int,
            visitor("HoldingRegister", 5, 1, "uint16"),
        ),
        prop(
            "e",
            PropertyType::Boolean,
            visitor("CoilRegister", 0, 1, "boolean"),
        ),
        prop(
            "f",
            PropertyType::Int,
            visitor("DiscreteInputRegister", 1, 3, "int"),
        ),
        prop(
            "g",
            PropertyType::Int,
            visitor("InputRegister", 0, 1, "int16"),
        ),
    ];
    specs[0].policy.heartbeat_ms = 3;
    specs[3].queue_capacity = 2;
    specs
}

/// Every twin of a device, in property order.
fn twins(e: &Engine, dev: u32) -> Vec<(String, TwinState)> {
    e.twins(dev)
        .unwrap()
        .into_iter()
        .map(|(n, _, s)| (n.to_string(), s))
        .collect()
}

/// A frame for read `read` of [`planned_specs`]: 1, 1, 2 or 12 bytes.
fn planned_frame(read: u16, seed: &[u8]) -> Vec<u8> {
    let len = [1, 1, 2, 12][usize::from(read)];
    (0..len).map(|i| seed[i % seed.len()]).collect()
}

proptest! {
    #[test]
    fn planned_frames_sample_as_single_frames(
        steps in proptest::collection::vec(
            (proptest::collection::vec((0u16..4, 0u8..3, any::<bool>()), 0..5), 0u8..4),
            1..10,
        ),
        seeds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..4), 3),
    ) {
        let (mut planned, mut single) = (Engine::new(), Engine::new());
        let dev = planned.upsert_device("ns/d", &planned_specs()).unwrap();
        single.upsert_device("ns/d", &planned_specs()).unwrap();
        let plan = planned.read_plan(dev).unwrap().to_vec();
        let mut ts = 0;
        for (frames, after) in steps {
            ts += 1;
            // Few distinct frames per read: most repeat the previous one.
            let frames: Vec<(u16, Vec<u8>, bool)> = frames
                .into_iter()
                .map(|(read, pick, one)| (read, planned_frame(read, &seeds[usize::from(pick)]), one))
                .collect();
            for (read, frame, one) in &frames {
                let r = &plan[usize::from(*read)];
                let n = single.ingest_frame(dev, r.kind, r.start, Some(r.count), frame, ts).unwrap();
                let got = if *one {
                    planned.ingest_frame(dev, r.kind, r.start, Some(r.count), frame, ts).unwrap()
                } else {
                    let f = [PlannedFrame { device: dev, read: *read, frame, ts }];
                    planned.ingest_planned(&f).unwrap()
                };
                prop_assert_eq!(got, n);
            }
            if after == 1 {
                let v = [(6, Value::Int(ts), ts)]; // g: no heartbeat
                let (a, b) = (planned.apply_reported(dev, &v).unwrap(), single.apply_reported(dev, &v).unwrap());
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
            }
            prop_assert_eq!(planned.stats(), single.stats());
            if after != 3 {
                // Debug text: NaN equals NaN there.
                prop_assert_eq!(format!("{:?}", planned.report()), format!("{:?}", single.report()));
            }
            prop_assert_eq!(format!("{:?}", twins(&planned, dev)), format!("{:?}", twins(&single, dev)));
        }
    }
}
