//! Change sets as Arrow record batches (feature `arrow`), for history segments and for handing
//! changes to Python (pyarrow, `DuckDB`) without per-value objects.
//!
//! One row per [`Change`], in set order:
//!
//! | column         | type                          | null when                                   |
//! |----------------|-------------------------------|---------------------------------------------|
//! | `device`       | Utf8                          | never                                       |
//! | `property`     | Utf8                          | never                                       |
//! | `kind`         | Utf8 (`reported`/`desired`)   | never                                       |
//! | `timestamp`    | Timestamp(ms, `UTC`)          | the changed side is empty (cleared)         |
//! | `type`         | Utf8 (`INT`, `FLOAT`, …)      | never                                       |
//! | `value`        | Utf8, canonical text          | the changed side is empty                   |
//! | `value_int`    | Int64                         | the value is not an INT                     |
//! | `value_float`  | Float64                       | the value is not a FLOAT or DOUBLE          |
//! | `value_bool`   | Boolean                       | the value is not a BOOLEAN                  |
//! | `value_string` | Utf8                          | the value is not a STRING                   |
//! | `value_bytes`  | Binary                        | the value is not BYTES                      |
//! | `version`      | `UInt64`, edge version          | never                                       |
//!
//! `timestamp`, `value` and `version` describe the side that changed (reported or desired).
//! The typed column is chosen by the value itself; `type` is the property's type.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::twin::{Change, ChangeKind, ChangeSet};
use crate::value::Value;

/// The time zone of the `timestamp` column.
const TIME_ZONE: &str = "UTC";

/// The schema of [`changes_to_record_batch`] (see the module docs). Built once and shared.
pub fn changes_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some(TIME_ZONE.into()));
        Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, false),
            Field::new("property", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("timestamp", timestamp, true),
            Field::new("type", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
            Field::new("value_int", DataType::Int64, true),
            Field::new("value_float", DataType::Float64, true),
            Field::new("value_bool", DataType::Boolean, true),
            Field::new("value_string", DataType::Utf8, true),
            Field::new("value_bytes", DataType::Binary, true),
            Field::new("version", DataType::UInt64, false),
        ]))
    }))
}

/// One row per change of `set` (see the module docs), every builder sized up front.
///
/// # Errors
///
/// Only if Arrow rejects the columns, which the builders rule out; kept for Arrow's API.
pub fn changes_to_record_batch(set: &ChangeSet) -> Result<RecordBatch, ArrowError> {
    let mut columns = Columns::new(&set.changes);
    let mut scratch = String::with_capacity(64);
    for change in &set.changes {
        columns.push(change, &mut scratch);
    }
    RecordBatch::try_new(changes_schema(), columns.finish())
}

/// Byte totals of the text and binary columns.
#[derive(Default)]
struct Sizes {
    /// Bytes of device ids.
    device: usize,
    /// Bytes of property names.
    property: usize,
    /// Bytes of STRING values.
    string: usize,
    /// Bytes of BYTES values.
    bytes: usize,
}

impl Sizes {
    /// Adds up the sizes of `changes`.
    fn of(changes: &[Change]) -> Self {
        let mut sizes = Self::default();
        for c in changes {
            sizes.device += c.device.len();
            sizes.property += c.property.len();
            match c.side().map(|s| &s.value) {
                Some(Value::String(s)) => sizes.string += s.len(),
                Some(Value::Bytes(b)) => sizes.bytes += b.len(),
                _ => {}
            }
        }
        sizes
    }
}

/// The column builders.
struct Columns {
    /// `device`.
    device: StringBuilder,
    /// `property`.
    property: StringBuilder,
    /// `kind`.
    kind: StringBuilder,
    /// `timestamp`.
    timestamp: TimestampMillisecondBuilder,
    /// `type`.
    ty: StringBuilder,
    /// `value`.
    value: StringBuilder,
    /// `value_int`.
    int: Int64Builder,
    /// `value_float`.
    float: Float64Builder,
    /// `value_bool`.
    bool: BooleanBuilder,
    /// `value_string`.
    string: StringBuilder,
    /// `value_bytes`.
    bytes: BinaryBuilder,
    /// `version`.
    version: UInt64Builder,
}

impl Columns {
    /// Builders sized for `changes`.
    fn new(changes: &[Change]) -> Self {
        let n = changes.len();
        let sizes = Sizes::of(changes);
        // Canonical text: about 20 bytes per number; STRING escapes grow, BYTES doubles.
        let value_text = n * 20 + sizes.string + 2 * sizes.bytes;
        Self {
            device: StringBuilder::with_capacity(n, sizes.device),
            property: StringBuilder::with_capacity(n, sizes.property),
            kind: StringBuilder::with_capacity(n, n * 8),
            timestamp: TimestampMillisecondBuilder::with_capacity(n).with_timezone(TIME_ZONE),
            ty: StringBuilder::with_capacity(n, n * 7),
            value: StringBuilder::with_capacity(n, value_text),
            int: Int64Builder::with_capacity(n),
            float: Float64Builder::with_capacity(n),
            bool: BooleanBuilder::with_capacity(n),
            string: StringBuilder::with_capacity(n, sizes.string),
            bytes: BinaryBuilder::with_capacity(n, sizes.bytes),
            version: UInt64Builder::with_capacity(n),
        }
    }

    /// Appends the row of one change; `scratch` is reused for the canonical text.
    fn push(&mut self, change: &Change, scratch: &mut String) {
        self.device.append_value(&change.device);
        self.property.append_value(&change.property);
        self.kind.append_value(change.kind.as_str());
        self.ty.append_value(change.ty.as_str());
        let version = match change.kind {
            ChangeKind::Reported => change.after.reported_version,
            ChangeKind::Desired => change.after.desired_version,
        };
        self.version.append_value(version.edge);
        let side = change.side();
        self.timestamp.append_option(side.map(|s| s.ts));
        match side {
            Some(side) => {
                scratch.clear();
                side.value.write_canonical(scratch);
                self.value.append_value(&*scratch);
            }
            None => self.value.append_null(),
        }
        self.push_typed(side.map(|s| &s.value));
    }

    /// Appends the typed value columns: the one of the value's type set, the others null.
    fn push_typed(&mut self, value: Option<&Value>) {
        let (mut int, mut float, mut bool, mut string, mut bytes) = (None, None, None, None, None);
        match value {
            Some(Value::Int(v)) => int = Some(*v),
            Some(Value::Float(v)) => float = Some(f64::from(*v)),
            Some(Value::Double(v)) => float = Some(*v),
            Some(Value::Boolean(v)) => bool = Some(*v),
            Some(Value::String(v)) => string = Some(v.as_str()),
            Some(Value::Bytes(v)) => bytes = Some(v.as_slice()),
            None => {}
        }
        self.int.append_option(int);
        self.float.append_option(float);
        self.bool.append_option(bool);
        self.string.append_option(string);
        self.bytes.append_option(bytes);
    }

    /// The finished columns, in schema order.
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.device.finish()),
            Arc::new(self.property.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.ty.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.int.finish()),
            Arc::new(self.float.finish()),
            Arc::new(self.bool.finish()),
            Arc::new(self.string.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.version.finish()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail by panicking
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType, UInt64Type};
    use arrow_array::Array;

    use super::*;
    use crate::encode::testutil::{change, side, state};
    use crate::twin::ChangeKind::{Desired, Reported};

    /// One change of each type, then a desired side that was cleared.
    fn one_of_each() -> ChangeSet {
        let values = [
            Value::Int(-7),
            Value::Float(1.5),
            Value::Double(2.25),
            Value::Boolean(true),
            Value::string("a b"),
            Value::bytes(vec![0, 255]),
        ];
        let mut changes: Vec<Change> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let after = state(None, Some(side(v, 100 + i as i64)));
                change(
                    "ns/dev",
                    &format!("p{i}"),
                    Reported,
                    state(None, None),
                    after,
                )
            })
            .collect();
        let before = state(Some(side(Value::Int(3), 1)), None);
        let mut cleared = change("ns/dev", "p6", Desired, before, state(None, None));
        cleared.after.desired_version.edge = 4;
        changes.push(cleared);
        ChangeSet {
            changes,
            deltas: vec![],
            alarms: vec![],
        }
    }

    #[test]
    fn schema_matches_the_batch() {
        let batch = changes_to_record_batch(&one_of_each()).unwrap();
        assert_eq!(batch.schema(), changes_schema());
        assert_eq!(batch.num_rows(), 7);
        let types: Vec<DataType> = batch
            .columns()
            .iter()
            .map(|c| c.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                DataType::Utf8,
                DataType::Utf8,
                DataType::Int64,
                DataType::Float64,
                DataType::Boolean,
                DataType::Utf8,
                DataType::Binary,
                DataType::UInt64,
            ]
        );
    }

    /// Which rows of a column are valid.
    fn valid(batch: &RecordBatch, name: &str) -> Vec<bool> {
        let column = batch.column_by_name(name).unwrap();
        (0..column.len()).map(|i| column.is_valid(i)).collect()
    }

    #[test]
    fn values_and_null_patterns() {
        let batch = changes_to_record_batch(&one_of_each()).unwrap();
        let text = |name: &str| -> Vec<Option<String>> {
            let col = batch.column_by_name(name).unwrap().as_string::<i32>();
            col.iter().map(|v| v.map(str::to_owned)).collect()
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(text("device"), vec![s("ns/dev"); 7]);
        assert_eq!(text("kind")[5..], [s("reported"), s("desired")]);
        assert_eq!(
            text("type"),
            [
                s("INT"),
                s("FLOAT"),
                s("DOUBLE"),
                s("BOOLEAN"),
                s("STRING"),
                s("BYTES"),
                s("INT")
            ]
        );
        assert_eq!(
            text("value"),
            [
                s("-7"),
                s("1.5"),
                s("2.25"),
                s("true"),
                s("a#20b"),
                s("00ff"),
                None
            ]
        );
        assert_eq!(
            text("value_string"),
            [None, None, None, None, s("a b"), None, None]
        );

        let one_hot = |i: usize| (0..7).map(|j| j == i).collect::<Vec<_>>();
        assert_eq!(valid(&batch, "value_int"), one_hot(0));
        assert_eq!(valid(&batch, "value_bool"), one_hot(3));
        assert_eq!(valid(&batch, "value_bytes"), one_hot(5));
        let float_rows: Vec<bool> = (0..7).map(|j| j == 1 || j == 2).collect();
        assert_eq!(valid(&batch, "value_float"), float_rows);
        assert_eq!(
            valid(&batch, "timestamp"),
            [true, true, true, true, true, true, false]
        );

        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(col("value_int").as_primitive::<Int64Type>().value(0), -7);
        let floats = col("value_float");
        assert_eq!(floats.as_primitive::<Float64Type>().value(1), 1.5);
        assert_eq!(floats.as_primitive::<Float64Type>().value(2), 2.25);
        assert!(col("value_bool").as_boolean().value(3));
        assert_eq!(col("value_bytes").as_binary::<i32>().value(5), [0, 255]);
        let ts = col("timestamp");
        assert_eq!(ts.as_primitive::<TimestampMillisecondType>().value(4), 104);
        let versions: Vec<u64> = col("version")
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec();
        assert_eq!(versions, [1, 1, 1, 1, 1, 1, 4]);
    }

    #[test]
    fn an_empty_set_is_an_empty_batch() {
        let batch = changes_to_record_batch(&ChangeSet::default()).unwrap();
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.num_columns(), 12);
    }
}
