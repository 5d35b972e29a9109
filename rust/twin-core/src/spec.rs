//! What crosses into the engine once per device change: property specs and read limits.
//!
//! [`Engine::upsert_device`](crate::engine::Engine::upsert_device) compiles a device's
//! [`PropertySpec`]s into a shared layout; [`ReadLimits`] bound the coalesced reads of every
//! device's read plan.

use crate::alarm::AlarmRule;
use crate::modbus::VisitorSpec;
use crate::policy::{ChangePolicy, Reduce};
use crate::value::PropertyType;

/// Ring capacity used when a spec leaves it at 0: one sample, the newest (a twin reported every
/// collect cycle needs no more). Callers whose report cycle spans several collect cycles (push
/// and database sinks) set `queue_capacity` to the samples per report cycle.
pub const DEFAULT_QUEUE_CAPACITY: u16 = 1;

/// A property as configured: what crosses from Python once per device change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PropertySpec {
    /// Property name, unique within the device.
    pub name: String,
    /// The model's property type.
    pub ty: PropertyType,
    /// How to read the property over Modbus (`None` for other drivers, which push values).
    pub visitor: Option<VisitorSpec>,
    /// When a new value counts as a change.
    pub policy: ChangePolicy,
    /// Which aggregate of a report cycle's samples becomes the reported value.
    pub reduce: Reduce,
    /// Ring capacity in samples (0: [`DEFAULT_QUEUE_CAPACITY`]).
    pub queue_capacity: u16,
    /// Alarm rules on this property (numeric properties only; names unique within the device),
    /// evaluated on every reported value the engine applies.
    pub alarms: Vec<AlarmRule>,
}

/// Limits for read coalescing (see [`plan_reads`](crate::modbus::plan_reads)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most registers in one read (protocol maximum 125).
    pub max_registers: u16,
    /// Most coils/discrete inputs in one read (protocol maximum 2000).
    pub max_bits: u16,
    /// Largest gap of unused addresses bridged to merge two reads (0: only adjacent ones).
    pub max_gap: u16,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_registers: 125,
            max_bits: 2000,
            max_gap: 0,
        }
    }
}
