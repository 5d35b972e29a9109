//! A twin's persisted form: the JSON the device manager stores per property and reloads with
//! `Engine::restore` (`{"type","desired","reported","desired_version","reported_version"}`,
//! sides as `{"value": <canonical text>, "timestamp": <ms>}` or `null`).

use crate::encode::mqtt::{push_i64, push_value};
use crate::twin::{TwinSide, TwinState, Version};
use crate::value::PropertyType;

/// The persisted JSON of one twin.
pub fn twin_json(ty: PropertyType, state: &TwinState) -> String {
    let mut json = String::with_capacity(160);
    json.push_str("{\"type\":\"");
    json.push_str(ty.as_str());
    json.push_str("\",\"desired\":");
    push_side(&mut json, state.desired.as_ref());
    json.push_str(",\"reported\":");
    push_side(&mut json, state.reported.as_ref());
    json.push_str(",\"desired_version\":");
    push_version(&mut json, state.desired_version);
    json.push_str(",\"reported_version\":");
    push_version(&mut json, state.reported_version);
    json.push('}');
    json
}

fn push_side(json: &mut String, side: Option<&TwinSide>) {
    let Some(side) = side else {
        json.push_str("null");
        return;
    };
    json.push_str("{\"value\":");
    push_value(json, &side.value);
    json.push_str(",\"timestamp\":");
    push_i64(json, side.ts);
    json.push('}');
}

fn push_version(json: &mut String, v: Version) {
    json.push_str("{\"cloud\":");
    push_i64(json, i64::try_from(v.cloud).unwrap_or(i64::MAX));
    json.push_str(",\"edge\":");
    push_i64(json, i64::try_from(v.edge).unwrap_or(i64::MAX));
    json.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn persisted_form() {
        let state = TwinState {
            desired: None,
            reported: Some(TwinSide {
                value: Value::Float(24.5),
                ts: 1000,
            }),
            desired_version: Version::default(),
            reported_version: Version { cloud: 0, edge: 3 },
        };
        assert_eq!(
            twin_json(PropertyType::Float, &state),
            r#"{"type":"FLOAT","desired":null,"reported":{"value":"24.5","timestamp":1000},"desired_version":{"cloud":0,"edge":0},"reported_version":{"cloud":0,"edge":3}}"#
        );
    }
}
