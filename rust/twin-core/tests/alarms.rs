//! Alarm rules in the engine: compiled with a device's specs, evaluated on applied reported
//! values (direct and DMI), kept across a reconfiguration, restored after a restart.
#![allow(clippy::unwrap_used)] // a panic is the failure report

use twin_core::encode::dmi::report_device_status_requests;
use twin_core::engine::Engine;
use twin_core::spec::PropertySpec;
use twin_core::{AlarmEdge, AlarmRule, Condition, PropertyType, Value};

fn hot() -> AlarmRule {
    AlarmRule {
        hysteresis: 1.0,
        raise_after: 2,
        ..AlarmRule::new("hot", Condition::Above(30.0))
    }
}

fn specs(rules: Vec<AlarmRule>) -> Vec<PropertySpec> {
    vec![
        PropertySpec {
            name: "name".to_owned(),
            ty: PropertyType::String,
            ..PropertySpec::default()
        },
        PropertySpec {
            name: "temp".to_owned(),
            ty: PropertyType::Double,
            alarms: rules,
            ..PropertySpec::default()
        },
    ]
}

fn feed(e: &mut Engine, dev: u32, xs: &[f64]) -> Vec<(AlarmEdge, f64)> {
    let mut out = Vec::new();
    for (i, &x) in xs.iter().enumerate() {
        let set = e
            .apply_reported_at(dev, &[(1, Value::Double(x), 1000 + i as i64)], 5000)
            .unwrap();
        out.extend(set.alarms.iter().map(|a| (a.edge, a.value)));
    }
    out
}

#[test]
fn applied_values_raise_and_clear_with_hysteresis_and_counts() {
    let mut e = Engine::new();
    let dev = e.upsert_device("ns/d", &specs(vec![hot()])).unwrap();
    let got = feed(&mut e, dev, &[31.0, 29.0, 31.0, 32.0, 29.5, 29.0]);
    assert_eq!(
        got,
        vec![(AlarmEdge::Raised, 32.0), (AlarmEdge::Cleared, 29.0)]
    );
    assert!(e.active_alarms(dev).unwrap().is_empty());
}

#[test]
fn a_transition_names_the_device_rule_property_threshold_and_time() {
    let mut e = Engine::new();
    let dev = e
        .upsert_device(
            "ns/d",
            &specs(vec![AlarmRule::new("hot", Condition::Above(30.0))]),
        )
        .unwrap();
    let set = e
        .apply_reported_at(dev, &[(1, Value::Double(40.0), 1234)], 5000)
        .unwrap();
    let a = &set.alarms[0];
    assert_eq!(
        (&*a.device, &*a.rule, &*a.property),
        ("ns/d", "hot", "temp")
    );
    assert_eq!((a.threshold, a.value, a.ts), (30.0, 40.0, 1234));
}

#[test]
fn dmi_reports_are_evaluated_too() {
    let mut mapper = Engine::new();
    let m = mapper.upsert_device("ns/d", &specs(vec![])).unwrap();
    let set = mapper
        .apply_reported_at(m, &[(1, Value::Double(50.0), 7)], 7)
        .unwrap();
    let payload = report_device_status_requests(&set).remove(0).1;
    let mut edge = Engine::new();
    let rule = AlarmRule::new("hot", Condition::Above(30.0));
    edge.upsert_device("ns/d", &specs(vec![rule])).unwrap();
    let set = edge.apply_dmi_report(&payload, 10).unwrap();
    assert_eq!(set.alarms.len(), 1);
    assert_eq!(set.alarms[0].ts, 7);
}

#[test]
fn restore_keeps_an_active_alarm_from_raising_again() {
    let mut e = Engine::new();
    let rule = AlarmRule::new("hot", Condition::Above(30.0));
    let dev = e.upsert_device("ns/d", &specs(vec![rule])).unwrap();
    e.restore_alarm(dev, "hot", true).unwrap();
    assert_eq!(e.active_alarms(dev).unwrap().len(), 1);
    assert_eq!(
        feed(&mut e, dev, &[40.0, 20.0]),
        vec![(AlarmEdge::Cleared, 20.0)]
    );
    assert!(e.restore_alarm(dev, "nope", true).is_err());
}

#[test]
fn reconfiguring_keeps_the_state_of_a_rule_by_name() {
    let mut e = Engine::new();
    let dev = e.upsert_device("ns/d", &specs(vec![hot()])).unwrap();
    feed(&mut e, dev, &[40.0, 40.0]);
    let mut changed = hot();
    changed.condition = Condition::Above(35.0);
    e.upsert_device("ns/d", &specs(vec![changed])).unwrap();
    assert_eq!(e.active_alarms(dev).unwrap().len(), 1);
}

#[test]
fn rules_on_non_numeric_properties_and_duplicate_names_are_rejected_with_paths() {
    let mut e = Engine::new();
    let mut bad = specs(vec![hot()]);
    bad[0].alarms = vec![AlarmRule::new("x", Condition::Above(1.0))];
    let msg = e.upsert_device("ns/d", &bad).unwrap_err().to_string();
    assert!(msg.contains("properties[0].alarms[0]"), "{msg}");
    let msg = e
        .upsert_device("ns/d", &specs(vec![hot(), hot()]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("properties[1].alarms[1].name"), "{msg}");
}
