//! Builders of changes for the encoder tests.

use std::sync::Arc;

use proptest::prelude::*;

use crate::twin::{Change, ChangeKind, TwinSide, TwinState, Version};
use crate::value::{PropertyType, Value};

/// A twin side.
pub(crate) fn side(value: Value, ts: i64) -> TwinSide {
    TwinSide { value, ts }
}

/// A twin state with the given sides and edge versions 1.
pub(crate) fn state(desired: Option<TwinSide>, reported: Option<TwinSide>) -> TwinState {
    let version = Version { cloud: 0, edge: 1 };
    TwinState {
        desired_version: if desired.is_some() {
            version
        } else {
            Version::default()
        },
        reported_version: if reported.is_some() {
            version
        } else {
            Version::default()
        },
        desired,
        reported,
    }
}

/// A change of `property` of `device`; the type is taken from the changed side's value (INT
/// when the changed side is empty).
pub(crate) fn change(
    device: &str,
    property: &str,
    kind: ChangeKind,
    before: TwinState,
    after: TwinState,
) -> Change {
    let changed = match kind {
        ChangeKind::Reported => after.reported.as_ref(),
        ChangeKind::Desired => after.desired.as_ref(),
    };
    let ty = changed.map_or(PropertyType::Int, |s| s.value.property_type());
    Change {
        device: Arc::from(device),
        property: Arc::from(property),
        ty,
        kind,
        before,
        after,
    }
}

/// Any value (NaN excluded so values compare equal).
pub(crate) fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<f32>()
            .prop_filter("nan", |x| !x.is_nan())
            .prop_map(Value::Float),
        any::<f64>()
            .prop_filter("nan", |x| !x.is_nan())
            .prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,20}".prop_map(Value::string),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::bytes),
    ]
}

/// Any twin side.
pub(crate) fn any_side() -> impl Strategy<Value = TwinSide> {
    (any_value(), any::<i64>()).prop_map(|(value, ts)| side(value, ts))
}
