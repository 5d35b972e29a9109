//! Change detection: when a new reported value counts as a change.
//!
//! KubeEdge re-reports and re-stores every value on every cycle. twinplane reports a value when
//! it changed by the property's [`Deadband`], or when the value has been silent for longer than
//! the property's heartbeat (so consumers still see a live, unchanged value).

use crate::error::{Error, Result};
use crate::value::{PropertyType, Value};

/// How much a value must move to count as changed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Deadband {
    /// Any difference is a change (for floats: any bit difference except `NaN` → `NaN`).
    #[default]
    Exact,
    /// Numeric: a change when `|new - old| > x` (x >= 0).
    Absolute(f64),
    /// Numeric: a change when `|new - old| > x * |old|` (x is a fraction: 0.01 = 1 %).
    Relative(f64),
}

/// Which aggregate of the samples drained at a report cycle becomes the reported value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Reduce {
    /// The newest sample.
    #[default]
    Last,
    /// The smallest sample (numeric types).
    Min,
    /// The largest sample (numeric types).
    Max,
    /// The arithmetic mean (numeric types).
    Mean,
    /// How many samples were drained (numeric types).
    Count,
}

impl Reduce {
    /// Parses `last`, `min`, `max`, `mean` or `count`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "last" => Ok(Self::Last),
            "min" => Ok(Self::Min),
            "max" => Ok(Self::Max),
            "mean" => Ok(Self::Mean),
            "count" => Ok(Self::Count),
            _ => Err(Error::spec(
                "",
                "reduce",
                format!("unknown aggregate {text:?}; allowed: last, min, max, mean, count"),
            )),
        }
    }
}

/// The change policy of one property.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChangePolicy {
    /// How much a value must move to count as changed.
    pub deadband: Deadband,
    /// Re-report an unchanged value after this many milliseconds of silence (0: never).
    pub heartbeat_ms: u64,
}

impl ChangePolicy {
    /// Checks the policy against a property type; `path` prefixes error paths.
    pub fn validate(&self, ty: PropertyType, path: &str) -> Result<()> {
        match self.deadband {
            Deadband::Exact => Ok(()),
            Deadband::Absolute(x) | Deadband::Relative(x) if !(x >= 0.0 && x.is_finite()) => {
                Err(Error::spec(
                    "",
                    format!("{path}.deadband"),
                    format!("must be a finite number >= 0, got {x}"),
                ))
            }
            _ if !ty.is_numeric() => Err(Error::spec(
                "",
                format!("{path}.deadband"),
                format!(
                    "a deadband needs a numeric property, this one is {}",
                    ty.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether `new` is a change from `old` under this policy.
    pub fn is_change(&self, old: &Value, new: &Value) -> bool {
        match self.deadband {
            Deadband::Exact => !same(old, new),
            Deadband::Absolute(x) => numeric_change(old, new, |o, n| (n - o).abs() > x),
            Deadband::Relative(x) => numeric_change(old, new, |o, n| (n - o).abs() > x * o.abs()),
        }
    }

    /// Whether an unchanged value reported at `last_ts` is due again at `now` (heartbeat).
    pub fn heartbeat_due(&self, last_ts: i64, now: i64) -> bool {
        self.heartbeat_ms > 0 && now.saturating_sub(last_ts) >= self.heartbeat_ms as i64
    }
}

/// Exact sameness: `NaN` equals `NaN` (a stuck NaN sensor is not a change every cycle).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Double(x), Value::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// Applies a numeric comparison; a NaN on one side only is always a change.
fn numeric_change(old: &Value, new: &Value, moved: impl Fn(f64, f64) -> bool) -> bool {
    match (old.as_f64(), new.as_f64()) {
        (Some(o), Some(n)) if o.is_nan() || n.is_nan() => !(o.is_nan() && n.is_nan()),
        (Some(o), Some(n)) => moved(o, n),
        _ => !same(old, new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_deadbands() {
        let exact = ChangePolicy::default();
        assert!(exact.is_change(&Value::Int(1), &Value::Int(2)));
        assert!(!exact.is_change(&Value::Double(f64::NAN), &Value::Double(f64::NAN)));
        let abs = ChangePolicy {
            deadband: Deadband::Absolute(0.5),
            heartbeat_ms: 0,
        };
        assert!(!abs.is_change(&Value::Double(1.0), &Value::Double(1.5)));
        assert!(abs.is_change(&Value::Double(1.0), &Value::Double(1.6)));
        let rel = ChangePolicy {
            deadband: Deadband::Relative(0.1),
            heartbeat_ms: 0,
        };
        assert!(!rel.is_change(&Value::Int(100), &Value::Int(110)));
        assert!(rel.is_change(&Value::Int(100), &Value::Int(111)));
    }

    #[test]
    fn heartbeat() {
        let p = ChangePolicy {
            deadband: Deadband::Exact,
            heartbeat_ms: 1000,
        };
        assert!(!p.heartbeat_due(0, 999));
        assert!(p.heartbeat_due(0, 1000));
        assert!(!ChangePolicy::default().heartbeat_due(0, i64::MAX));
    }

    #[test]
    fn deadband_needs_numbers() {
        let p = ChangePolicy {
            deadband: Deadband::Absolute(1.0),
            heartbeat_ms: 0,
        };
        let err = p
            .validate(PropertyType::String, "properties[0]")
            .unwrap_err();
        assert_eq!(err.path(), Some("properties[0].deadband"));
    }
}
