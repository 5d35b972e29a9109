//! The one error type of the twin engine.
//!
//! Every variant carries the structured fields a caller needs to act on it (device, property,
//! field path); the Python binding maps each variant onto one exception class of
//! `twinplane.errors` and copies those fields onto the exception.

use std::fmt;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Bad input never leaves partial state behind:
/// an operation that returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A configuration value is invalid; `path` names the field
    /// (for example `properties[1].visitor.dataType`).
    InvalidSpec {
        /// Device the spec belongs to (empty when not device specific).
        device: String,
        /// Dotted path of the offending field.
        path: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// No device with this id (or index) is known.
    UnknownDevice {
        /// The device id (or `#<index>`).
        device: String,
    },
    /// The device exists but has no property of this name (or index).
    UnknownProperty {
        /// The device id.
        device: String,
        /// The property name (or `#<index>`).
        property: String,
    },
    /// A raw frame does not cover what a property's visitor needs.
    ShortFrame {
        /// The device id.
        device: String,
        /// The property whose registers are missing.
        property: String,
        /// How many bytes the visitor needs.
        needed: usize,
        /// How many bytes the frame holds.
        got: usize,
    },
    /// A value does not fit the property's type (wrong type or unparsable text).
    TypeMismatch {
        /// The device id.
        device: String,
        /// The property name.
        property: String,
        /// The property type expected (`INT`, `FLOAT`, ...).
        expected: String,
        /// What was given, shortened for the message.
        got: String,
    },
    /// A value of the right type that the property's register cannot hold (an int16 register
    /// given 99999); the message names the value, the register and the range it holds.
    OutOfRange {
        /// The device id.
        device: String,
        /// The property name.
        property: String,
        /// The register's data type (`int16`, `float32`, ...).
        data_type: String,
        /// What is out of range and the range, in the value's units.
        message: String,
    },
    /// A cloud sync carried a version older than the local one (KubeEdge's sync rule).
    VersionConflict {
        /// The device id.
        device: String,
        /// The property name.
        property: String,
        /// Human readable reason (`cloud version 3 < local 4`).
        message: String,
    },
}

impl Error {
    /// Builds an [`Error::InvalidSpec`].
    pub fn spec(device: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidSpec {
            device: device.to_owned(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// The device the error is about, if any.
    pub fn device(&self) -> Option<&str> {
        match self {
            Self::InvalidSpec { device, .. }
            | Self::UnknownDevice { device }
            | Self::UnknownProperty { device, .. }
            | Self::ShortFrame { device, .. }
            | Self::TypeMismatch { device, .. }
            | Self::OutOfRange { device, .. }
            | Self::VersionConflict { device, .. } => {
                (!device.is_empty()).then_some(device.as_str())
            }
        }
    }

    /// The property the error is about, if any.
    pub fn property(&self) -> Option<&str> {
        match self {
            Self::UnknownProperty { property, .. }
            | Self::ShortFrame { property, .. }
            | Self::TypeMismatch { property, .. }
            | Self::OutOfRange { property, .. }
            | Self::VersionConflict { property, .. } => {
                (!property.is_empty()).then_some(property.as_str())
            }
            Self::InvalidSpec { .. } | Self::UnknownDevice { .. } => None,
        }
    }

    /// The field path, for spec errors.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::InvalidSpec { path, .. } => Some(path.as_str()),
            _ => None,
        }
    }

    /// Rewrites the device of an error (used when a lower layer did not know it).
    #[must_use]
    pub fn with_device(mut self, id: &str) -> Self {
        match &mut self {
            Self::InvalidSpec { device, .. }
            | Self::UnknownDevice { device }
            | Self::UnknownProperty { device, .. }
            | Self::ShortFrame { device, .. }
            | Self::TypeMismatch { device, .. }
            | Self::OutOfRange { device, .. }
            | Self::VersionConflict { device, .. } => id.clone_into(device),
        }
        self
    }

    /// Rewrites the property of an error (used when a lower layer did not know it).
    #[must_use]
    pub fn with_property(mut self, name: &str) -> Self {
        match &mut self {
            Self::UnknownProperty { property, .. }
            | Self::ShortFrame { property, .. }
            | Self::TypeMismatch { property, .. }
            | Self::OutOfRange { property, .. }
            | Self::VersionConflict { property, .. } => name.clone_into(property),
            Self::InvalidSpec { .. } | Self::UnknownDevice { .. } => {}
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSpec { device, path, message } if device.is_empty() => {
                write!(f, "{path}: {message}")
            }
            Self::InvalidSpec { device, path, message } => {
                write!(f, "device {device}: {path}: {message}")
            }
            Self::UnknownDevice { device } => write!(f, "unknown device {device}"),
            Self::UnknownProperty { device, property } => {
                write!(f, "device {device} has no property {property}")
            }
            Self::ShortFrame { device, property, needed, got } if property.is_empty() => write!(
                f,
                "device {device}: malformed frame: {got} bytes where {needed} are expected (a register frame has 2 bytes per register, a bit frame 1 per 8 bits)"
            ),
            Self::ShortFrame { device, property, needed, got } => write!(
                f,
                "device {device}, property {property}: frame too short ({got} bytes, the visitor needs {needed})"
            ),
            Self::TypeMismatch { device, property, expected, got } => write!(
                f,
                "device {device}, property {property}: expected a value of type {expected}, got {got}"
            ),
            Self::OutOfRange { device, property, message, .. }
                if device.is_empty() && property.is_empty() =>
            {
                write!(f, "{message}")
            }
            Self::OutOfRange { device, property, message, .. } => {
                write!(f, "device {device}, property {property}: {message}")
            }
            Self::VersionConflict { device, property, message } => {
                write!(f, "device {device}, property {property}: version conflict: {message}")
            }
        }
    }
}

impl std::error::Error for Error {}
