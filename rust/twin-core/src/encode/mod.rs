//! Batch encoders: a [`ChangeSet`](crate::ChangeSet) in, wire bytes out.
//!
//! - [`dmi`]: DMI v1beta1 `ReportDeviceStatusRequest` protobuf messages (one per device), and
//!   the decoder the device manager uses on incoming requests.
//! - [`mqtt`]: `KubeEdge`'s `$hw/events/device/…/twin/…` JSON payloads (result, document, delta,
//!   get result).
//! - [`arrow`] (feature `arrow`): one Arrow record batch per change set, for history segments.
//!
//! Every encoder makes one pass over the changes, sizes its output up front and formats values
//! straight into the output buffer; nothing is allocated per field.
//!
//! Changes are grouped as the engine emits them: the changes of one device are contiguous, and
//! within a device changes of the same property are adjacent (property order). Encoders that
//! emit one entry per property merge such a run: the first change's `before` and the last
//! change's `after` describe the property.

#[cfg(feature = "arrow")]
pub mod arrow;
pub mod dmi;
pub mod mqtt;
pub mod state;
#[cfg(test)]
mod testutil;

use crate::twin::Change;

/// Splits the changes of one device into runs of the same property (adjacent changes with equal
/// property names).
pub(crate) fn property_runs(changes: &[Change]) -> impl Iterator<Item = &[Change]> {
    changes.chunk_by(|a, b| {
        std::sync::Arc::ptr_eq(&a.property, &b.property) || a.property == b.property
    })
}

/// Formats `v` in decimal into `buf` and returns the text (no allocation).
pub(crate) fn format_i64(v: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    // Only ASCII digits and '-' were written, so this never fails.
    std::str::from_utf8(&buf[i..]).unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail by panicking
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_extremes() {
        let mut buf = [0u8; 20];
        assert_eq!(format_i64(0, &mut buf), "0");
        assert_eq!(format_i64(-7, &mut buf), "-7");
        assert_eq!(format_i64(i64::MIN, &mut buf), "-9223372036854775808");
        assert_eq!(format_i64(i64::MAX, &mut buf), "9223372036854775807");
    }

    proptest! {
        #[test]
        fn formats_like_display(v in any::<i64>()) {
            let mut buf = [0u8; 20];
            prop_assert_eq!(format_i64(v, &mut buf), v.to_string());
        }
    }
}
