//! Alarm rules and their state machine, evaluated on the values the engine applies.
//!
//! A rule is compiled once into a property's spec ([`AlarmRule`] in
//! [`PropertySpec::alarms`](crate::spec::PropertySpec::alarms)); each device keeps one
//! [`RuleState`] per rule. [`RuleState::step`] feeds one numeric sample and says whether the
//! alarm was raised or cleared by it:
//!
//! - a sample *violates* the rule when its condition holds (above / below / outside / inside a
//!   band, or a rate of change per second past the threshold);
//! - an inactive rule raises after `raise_after` consecutive violating samples;
//! - an active rule clears after `clear_after` consecutive samples that are back past the
//!   threshold by the hysteresis (above 30 with hysteresis 1 clears at or under 29);
//! - a sample in the hysteresis band (neither violating nor cleared) resets both counters.

use std::sync::Arc;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::value::Value;

/// When a rule's sample is in violation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// Value > threshold.
    Above(f64),
    /// Value < threshold.
    Below(f64),
    /// Value < low or value > high.
    Outside {
        /// Lower bound of the allowed band.
        low: f64,
        /// Upper bound of the allowed band.
        high: f64,
    },
    /// low <= value <= high.
    Inside {
        /// Lower bound of the forbidden band.
        low: f64,
        /// Upper bound of the forbidden band.
        high: f64,
    },
    /// Rate of change per second (against the previous sample) past the threshold: with
    /// `signed`, rate > threshold (a negative threshold: rate < threshold); otherwise
    /// |rate| > threshold.
    Rate {
        /// Units per second.
        threshold: f64,
        /// Whether the sign of the rate counts.
        signed: bool,
    },
}

/// A compiled alarm rule on one property.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    /// Rule name, unique within the device.
    pub name: Arc<str>,
    /// The condition.
    pub condition: Condition,
    /// Distance back past the threshold a value must reach to count towards clearing (>= 0).
    pub hysteresis: f64,
    /// Consecutive violating samples that raise the alarm (>= 1).
    pub raise_after: u16,
    /// Consecutive clear samples that clear it (>= 1).
    pub clear_after: u16,
}

impl AlarmRule {
    /// A rule with the defaults: no hysteresis, raise and clear after one sample.
    pub fn new(name: &str, condition: Condition) -> Self {
        Self {
            name: Arc::from(name),
            condition,
            hysteresis: 0.0,
            raise_after: 1,
            clear_after: 1,
        }
    }

    /// Checks the rule; errors name `<path>.<field>`.
    pub fn validate(&self, path: &str) -> Result<()> {
        let bad = |field: &str, msg: &str| Err(Error::spec("", format!("{path}.{field}"), msg));
        if self.name.is_empty() {
            return bad("name", "a rule name must not be empty");
        }
        if !(self.hysteresis.is_finite() && self.hysteresis >= 0.0) {
            return bad("hysteresis", "must be a finite number >= 0");
        }
        if self.raise_after == 0 {
            return bad("raiseAfter", "must be >= 1");
        }
        if self.clear_after == 0 {
            return bad("clearAfter", "must be >= 1");
        }
        match self.condition {
            Condition::Above(t) | Condition::Below(t) | Condition::Rate { threshold: t, .. }
                if !t.is_finite() =>
            {
                bad("threshold", "must be a finite number")
            }
            Condition::Outside { low, high } | Condition::Inside { low, high }
                if !(low.is_finite() && high.is_finite() && low <= high) =>
            {
                bad(
                    "low",
                    "low and high must be finite numbers with low <= high",
                )
            }
            _ => Ok(()),
        }
    }

    /// The threshold a transition reports: the bound crossed (for a band, the nearer bound).
    pub fn threshold_for(&self, value: f64) -> f64 {
        match self.condition {
            Condition::Above(t) | Condition::Below(t) | Condition::Rate { threshold: t, .. } => t,
            Condition::Outside { low, high } | Condition::Inside { low, high } => {
                if (value - low).abs() <= (value - high).abs() {
                    low
                } else {
                    high
                }
            }
        }
    }

    /// Whether a measure (the value, or the rate) violates the condition.
    fn violates(&self, x: f64) -> bool {
        match self.condition {
            Condition::Above(t) => x > t,
            Condition::Below(t) => x < t,
            Condition::Outside { low, high } => x < low || x > high,
            Condition::Inside { low, high } => (low..=high).contains(&x),
            Condition::Rate { threshold, signed } => {
                if !signed {
                    x.abs() > threshold
                } else if threshold >= 0.0 {
                    x > threshold
                } else {
                    x < threshold
                }
            }
        }
    }

    /// Whether a measure is back past the threshold by the hysteresis.
    fn cleared(&self, x: f64) -> bool {
        let h = self.hysteresis;
        match self.condition {
            Condition::Above(t) => x <= t - h,
            Condition::Below(t) => x >= t + h,
            Condition::Outside { low, high } => x >= low + h && x <= high - h,
            Condition::Inside { low, high } => x < low - h || x > high + h,
            Condition::Rate { threshold, signed } => {
                if !signed {
                    x.abs() <= threshold - h
                } else if threshold >= 0.0 {
                    x <= threshold - h
                } else {
                    x >= threshold + h
                }
            }
        }
    }

    fn is_rate(&self) -> bool {
        matches!(self.condition, Condition::Rate { .. })
    }
}

/// What a sample did to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmEdge {
    /// The alarm became active.
    Raised,
    /// The alarm stopped being active.
    Cleared,
}

/// One rule's state on one device.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RuleState {
    /// Whether the alarm is active.
    pub active: bool,
    /// Consecutive samples towards the next transition.
    pub count: u16,
    /// The previous sample `(value, ts ms)` (rate rules only).
    pub last: Option<(f64, i64)>,
}

impl RuleState {
    /// Feeds one sample; returns the transition it caused, if any. A rate rule's first sample
    /// (or one whose time does not move forward) only records the sample.
    pub fn step(&mut self, rule: &AlarmRule, value: f64, ts: i64) -> Option<AlarmEdge> {
        if !value.is_finite() {
            return None;
        }
        let x = if rule.is_rate() {
            let prev = self.last.replace((value, ts));
            match prev {
                Some((v0, t0)) if ts > t0 => (value - v0) * 1000.0 / (ts - t0) as f64,
                _ => return None,
            }
        } else {
            value
        };
        let (towards, needed) = if self.active {
            (rule.cleared(x), rule.clear_after)
        } else {
            (rule.violates(x), rule.raise_after)
        };
        if !towards {
            self.count = 0;
            return None;
        }
        self.count = self.count.saturating_add(1);
        if self.count < needed {
            return None;
        }
        self.count = 0;
        self.active = !self.active;
        Some(if self.active {
            AlarmEdge::Raised
        } else {
            AlarmEdge::Cleared
        })
    }
}

/// An alarm transition the engine returns with a batch's changes.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmTransition {
    /// Device id, `<namespace>/<name>`.
    pub device: Arc<str>,
    /// The rule's name.
    pub rule: Arc<str>,
    /// The property the rule watches.
    pub property: Arc<str>,
    /// Raised or cleared.
    pub edge: AlarmEdge,
    /// The sample's value (for a rate rule, the value, not the rate).
    pub value: f64,
    /// The threshold crossed (see [`AlarmRule::threshold_for`]).
    pub threshold: f64,
    /// The sample's time, ms since the epoch.
    pub ts: i64,
}

/// Feeds an applied value of property `prop` to the device's rules on it.
pub(crate) fn evaluate(
    d: &mut Device,
    prop: u16,
    value: &Value,
    ts: i64,
    out: &mut Vec<AlarmTransition>,
) {
    let cfg = &d.layout.props[usize::from(prop)];
    if cfg.alarms.is_empty() {
        return;
    }
    let Some(x) = value.as_f64() else { return };
    let base = cfg.rule_base as usize;
    for (k, rule) in cfg.alarms.iter().enumerate() {
        if let Some(edge) = d.rules[base + k].step(rule, x, ts) {
            out.push(AlarmTransition {
                device: d.id.clone(),
                rule: rule.name.clone(),
                property: cfg.name.clone(),
                edge,
                value: x,
                threshold: rule.threshold_for(x),
                ts,
            });
        }
    }
}

/// Takes over the rule states of property `j` of `old` for property `i` of `new`, by rule name.
pub(crate) fn adopt_rules(new: &mut Device, i: usize, old: &Device, j: u16) {
    let cfg = &new.layout.props[i];
    let ocfg = &old.layout.props[usize::from(j)];
    for (k, rule) in cfg.alarms.iter().enumerate() {
        if let Some(m) = ocfg.alarms.iter().position(|r| r.name == rule.name) {
            let mut st = old.rules[ocfg.rule_base as usize + m];
            st.count = 0;
            new.rules[cfg.rule_base as usize + k] = st;
        }
    }
}

/// Sets a rule's state as persisted (restart recovery): active or not, counters reset.
/// Returns whether the device has the rule.
pub(crate) fn restore(d: &mut Device, rule: &str, active: bool) -> bool {
    for cfg in &*d.layout.props {
        if let Some(k) = cfg.alarms.iter().position(|r| &*r.name == rule) {
            d.rules[cfg.rule_base as usize + k] = RuleState {
                active,
                ..RuleState::default()
            };
            return true;
        }
    }
    false
}

/// The active rules of a device: `(rule, property)`.
pub(crate) fn active(d: &Device) -> Vec<(Arc<str>, Arc<str>)> {
    let mut out = Vec::new();
    for cfg in &*d.layout.props {
        for (k, r) in cfg.alarms.iter().enumerate() {
            if d.rules[cfg.rule_base as usize + k].active {
                out.push((r.name.clone(), cfg.name.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(rule: &AlarmRule, xs: &[f64]) -> Vec<(usize, AlarmEdge)> {
        let mut st = RuleState::default();
        xs.iter()
            .enumerate()
            .filter_map(|(i, &x)| st.step(rule, x, i as i64 * 1000).map(|e| (i, e)))
            .collect()
    }

    #[test]
    fn above_raises_and_clears_once() {
        let rule = AlarmRule::new("hot", Condition::Above(30.0));
        let got = run(&rule, &[29.0, 31.0, 32.0, 30.0, 31.0]);
        assert_eq!(
            got,
            vec![
                (1, AlarmEdge::Raised),
                (3, AlarmEdge::Cleared),
                (4, AlarmEdge::Raised)
            ]
        );
    }

    #[test]
    fn hysteresis_holds_the_alarm_inside_the_band() {
        let mut rule = AlarmRule::new("hot", Condition::Above(30.0));
        rule.hysteresis = 1.0;
        let got = run(&rule, &[31.0, 29.5, 30.0, 29.0]);
        assert_eq!(got, vec![(0, AlarmEdge::Raised), (3, AlarmEdge::Cleared)]);
    }

    #[test]
    fn raise_after_needs_consecutive_samples() {
        let mut rule = AlarmRule::new("hot", Condition::Above(30.0));
        rule.raise_after = 3;
        rule.clear_after = 2;
        let got = run(
            &rule,
            &[31.0, 31.0, 29.0, 31.0, 31.0, 31.0, 20.0, 31.0, 20.0, 20.0],
        );
        assert_eq!(got, vec![(5, AlarmEdge::Raised), (9, AlarmEdge::Cleared)]);
    }

    #[test]
    fn bands_outside_and_inside() {
        let out = AlarmRule::new(
            "range",
            Condition::Outside {
                low: 0.0,
                high: 10.0,
            },
        );
        assert_eq!(
            run(&out, &[5.0, -1.0, 5.0, 11.0]),
            vec![
                (1, AlarmEdge::Raised),
                (2, AlarmEdge::Cleared),
                (3, AlarmEdge::Raised)
            ]
        );
        let inside = AlarmRule::new(
            "band",
            Condition::Inside {
                low: 0.0,
                high: 10.0,
            },
        );
        assert_eq!(
            run(&inside, &[-5.0, 5.0, 20.0]),
            vec![(1, AlarmEdge::Raised), (2, AlarmEdge::Cleared)]
        );
        assert_eq!(out.threshold_for(11.0), 10.0);
        assert_eq!(out.threshold_for(-1.0), 0.0);
    }

    #[test]
    fn rate_absolute_and_signed() {
        let abs = AlarmRule::new(
            "jump",
            Condition::Rate {
                threshold: 2.0,
                signed: false,
            },
        );
        // Samples 1 s apart: rates 0, -5, 0.
        assert_eq!(
            run(&abs, &[10.0, 10.0, 5.0, 5.0]),
            vec![(2, AlarmEdge::Raised), (3, AlarmEdge::Cleared)]
        );
        let fall = AlarmRule::new(
            "fall",
            Condition::Rate {
                threshold: -2.0,
                signed: true,
            },
        );
        assert_eq!(
            run(&fall, &[10.0, 15.0, 10.0]),
            vec![(2, AlarmEdge::Raised)]
        );
    }

    #[test]
    fn rate_ignores_a_sample_that_does_not_move_time_forward() {
        let rule = AlarmRule::new(
            "jump",
            Condition::Rate {
                threshold: 2.0,
                signed: false,
            },
        );
        let mut st = RuleState::default();
        assert_eq!(st.step(&rule, 0.0, 1000), None);
        assert_eq!(st.step(&rule, 100.0, 1000), None);
        assert_eq!(st.step(&rule, 100.0, 2000), None);
    }

    #[test]
    fn validate_names_the_field() {
        let mut rule = AlarmRule::new("x", Condition::Above(f64::NAN));
        let e = rule.validate("alarms[2]").unwrap_err().to_string();
        assert!(e.contains("alarms[2].threshold"), "{e}");
        rule.condition = Condition::Above(1.0);
        rule.raise_after = 0;
        assert!(rule
            .validate("a")
            .unwrap_err()
            .to_string()
            .contains("a.raiseAfter"));
    }

    /// A straightforward reference: the same rules, written as the definition reads.
    fn reference(rule: &AlarmRule, xs: &[f64]) -> Vec<(usize, AlarmEdge)> {
        let (mut active, mut n, mut out) = (false, 0u16, Vec::new());
        for (i, &x) in xs.iter().enumerate() {
            let hit = if active {
                rule.cleared(x)
            } else {
                rule.violates(x)
            };
            n = if hit { n + 1 } else { 0 };
            let need = if active {
                rule.clear_after
            } else {
                rule.raise_after
            };
            if n >= need {
                n = 0;
                active = !active;
                out.push((
                    i,
                    if active {
                        AlarmEdge::Raised
                    } else {
                        AlarmEdge::Cleared
                    },
                ));
            }
        }
        out
    }

    proptest! {
        #[test]
        fn transitions_alternate_and_match_the_reference(
            xs in proptest::collection::vec(-50.0f64..50.0, 0..200),
            t in -20.0f64..20.0,
            h in 0.0f64..5.0,
            ra in 1u16..5,
            ca in 1u16..5,
        ) {
            let rule = AlarmRule { hysteresis: h, raise_after: ra, clear_after: ca,
                ..AlarmRule::new("r", Condition::Above(t)) };
            let got = run(&rule, &xs);
            prop_assert_eq!(&got, &reference(&rule, &xs));
            for (k, (i, e)) in got.iter().enumerate() {
                // Raised first, then alternating.
                let want = if k % 2 == 0 { AlarmEdge::Raised } else { AlarmEdge::Cleared };
                prop_assert_eq!(*e, want);
                // A raise follows `ra` consecutive violating samples.
                if *e == AlarmEdge::Raised {
                    prop_assert!(*i + 1 >= usize::from(ra));
                    for x in &xs[*i + 1 - usize::from(ra)..=*i] {
                        prop_assert!(*x > t);
                    }
                } else {
                    for x in &xs[*i + 1 - usize::from(ca)..=*i] {
                        prop_assert!(*x <= t - h);
                    }
                }
            }
        }
    }
}
