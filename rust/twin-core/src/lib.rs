//! # twin-core
//!
//! The hot path of twinplane, in plain Rust (no Python): raw device bytes in, encoded twin
//! changes out.
//!
//! - [`value`]: the KubeEdge property types, typed values and their canonical string form
//!   ([`text`]: the text of a STRING value, inline when short).
//! - [`modbus`]: Modbus visitor configs compiled once, decoding of coalesced read frames and
//!   encoding of writes, and read planning (register coalescing).
//! - [`queue`]: bounded per-property sampling rings with drop-oldest overflow and aggregation.
//! - [`policy`]: change detection (exact, absolute/relative deadband, heartbeat).
//! - [`spec`]: what configures a device once: property specs and read limits.
//! - [`alarm`]: alarm rules (threshold, band, rate; hysteresis, N consecutive samples) and
//!   their per-device state machine.
//! - [`engine`]: the engine: devices, properties, twins with versions, ingest and report cycles.
//! - [`latency`]: latency histograms (device read → twin applied / persisted).
//! - [`twin`]: the self-contained change records the engine emits.
//! - [`encode`]: batch encoders to DMI protobuf, KubeEdge MQTT JSON and Arrow.
//!
//! Every fallible operation returns [`Error`] and leaves the engine unchanged on error.

pub mod alarm;
mod device;
pub mod encode;
pub mod engine;
pub mod error;
pub mod latency;
pub mod modbus;
mod planned;
pub mod policy;
pub mod queue;
pub mod spec;
pub mod text;
pub mod twin;
pub mod value;

pub use alarm::{AlarmEdge, AlarmRule, AlarmTransition, Condition};
pub use error::{Error, Result};
pub use twin::{Change, ChangeKind, ChangeSet, DeviceDelta, TwinSide, TwinState, Version};
pub use value::{PropertyType, Value};
