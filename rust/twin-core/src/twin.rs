//! Twin state as callers see it: versions, one side of a twin, a whole twin, and the changes the
//! engine emits. These are the self-contained records the encoders turn into DMI, MQTT and Arrow.
//!
//! Semantics follow KubeEdge's device twin (spec §3.8): *desired* is KubeEdge's `expected`,
//! *reported* is `actual`; each side has a version `{cloud, edge}` whose `edge` counter grows by
//! one on every edge-originated change. Unlike EdgeCore, a report that changes nothing (by the
//! property's change policy) is not a change: it bumps no version and emits nothing.

use std::sync::Arc;

use crate::value::{PropertyType, Value};

/// A twin side's version, as in KubeEdge (`{"cloud": n, "edge": n}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Version {
    /// Bumped by the cloud.
    pub cloud: u64,
    /// Bumped on every edge-originated change.
    pub edge: u64,
}

/// One side of a twin (desired or reported): a value and when it was set (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct TwinSide {
    /// The value.
    pub value: Value,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
}

/// A whole twin property at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TwinState {
    /// KubeEdge's `expected`.
    pub desired: Option<TwinSide>,
    /// KubeEdge's `actual`.
    pub reported: Option<TwinSide>,
    /// Version of the desired side.
    pub desired_version: Version,
    /// Version of the reported side.
    pub reported_version: Version,
}

impl TwinState {
    /// Whether this twin has a delta: a non-empty desired value that differs from the reported
    /// one (compared in canonical form, as KubeEdge compares strings).
    pub fn has_delta(&self) -> bool {
        let Some(d) = &self.desired else { return false };
        let expected = d.value.to_canonical();
        // KubeEdge: only a non-empty expected value can have a delta.
        !expected.is_empty()
            && self
                .reported
                .as_ref()
                .is_none_or(|r| r.value.to_canonical() != expected)
    }
}

/// Which side of a twin a [`Change`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The reported (actual) value changed, or was re-reported by the heartbeat.
    Reported,
    /// The desired (expected) value changed.
    Desired,
}

impl ChangeKind {
    /// `reported` or `desired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Desired => "desired",
        }
    }
}

/// One changed twin property, with the whole twin before and after the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Device id, `<namespace>/<name>`.
    pub device: Arc<str>,
    /// Property name.
    pub property: Arc<str>,
    /// Property type.
    pub ty: PropertyType,
    /// Which side changed.
    pub kind: ChangeKind,
    /// The twin before the change.
    pub before: TwinState,
    /// The twin after the change.
    pub after: TwinState,
}

impl Change {
    /// The side that changed, after the change.
    pub fn side(&self) -> Option<&TwinSide> {
        match self.kind {
            ChangeKind::Reported => self.after.reported.as_ref(),
            ChangeKind::Desired => self.after.desired.as_ref(),
        }
    }
}

/// A device's delta after a batch: every twin with a desired value, and the properties whose
/// desired differs from reported (KubeEdge publishes this on `…/twin/update/delta`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDelta {
    /// Device id, `<namespace>/<name>`.
    pub device: Arc<str>,
    /// Every twin of the device that has a desired value: name, type and state.
    pub twins: Vec<(Arc<str>, PropertyType, TwinState)>,
    /// Names of the properties whose desired differs from reported, with the desired value.
    pub delta: Vec<(Arc<str>, Value)>,
}

/// What one batch operation changed. Changes of one device are contiguous, in property order;
/// changes of the same property are adjacent (encoders rely on this).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeSet {
    /// The changed twin properties.
    pub changes: Vec<Change>,
    /// Deltas of the devices the batch touched that have at least one delta.
    pub deltas: Vec<DeviceDelta>,
    /// Alarm transitions (raised / cleared) caused by the batch's reported values, in order.
    pub alarms: Vec<crate::alarm::AlarmTransition>,
}

impl ChangeSet {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.deltas.is_empty() && self.alarms.is_empty()
    }

    /// The changes grouped by device, in order: `(device, changes of that device)`.
    pub fn by_device(&self) -> impl Iterator<Item = &[Change]> {
        // The engine's changes of one device share its id: most comparisons are pointer ones.
        self.changes
            .chunk_by(|a, b| Arc::ptr_eq(&a.device, &b.device) || a.device == b.device)
    }
}

/// Splits a device id `<namespace>/<name>` into its parts; an id without `/` is in `default`.
pub fn split_device_id(id: &str) -> (&str, &str) {
    id.split_once('/').unwrap_or(("default", id))
}
