//! Latency histograms: fixed millisecond buckets, cheap enough to record on every twin update.
//!
//! The engine keeps two of them (see [`crate::engine::Engine::latency`]): device read → twin
//! applied, and device read → twin persisted. Buckets follow Prometheus `le` semantics (bucket
//! `i` counts values `v` with `BOUNDS_MS[i-1] < v <= BOUNDS_MS[i]`; the last one is `+Inf`), so a
//! histogram exports as a Prometheus histogram as is.

use std::time::{SystemTime, UNIX_EPOCH};

/// Finite bucket upper bounds in milliseconds, ascending; a last `+Inf` bucket follows.
pub const BOUNDS_MS: [u64; 45] = [
    1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200, 250,
    300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000,
    7500, 10000, 15000, 30000, 60000,
];

/// Number of buckets: one per finite bound plus `+Inf`.
pub const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// A histogram of latencies in whole milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Non-cumulative counts per bucket; the last is `+Inf`.
    counts: [u64; BUCKETS],
    /// Values recorded.
    count: u64,
    /// Sum of the values recorded (after clamping), in ms.
    sum_ms: u64,
    /// Largest value recorded, in ms (0 when empty).
    max_ms: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            count: 0,
            sum_ms: 0,
            max_ms: 0,
        }
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency in ms; a negative one (clock skew between reader and engine) counts
    /// as 0.
    pub fn record(&mut self, latency_ms: i64) {
        let v = latency_ms.max(0) as u64;
        let bucket = BOUNDS_MS.partition_point(|&b| b < v);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(v);
        self.max_ms = self.max_ms.max(v);
    }

    /// Records `now_ms - ts` for each read time `ts`.
    pub fn record_since(&mut self, now_ms: i64, read_ts: impl IntoIterator<Item = i64>) {
        for ts in read_ts {
            self.record(now_ms.saturating_sub(ts));
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// Forgets every value.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Non-cumulative counts per bucket (`BOUNDS_MS.len() + 1`; the last is `+Inf`).
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the values recorded, in ms.
    pub fn sum_ms(&self) -> u64 {
        self.sum_ms
    }

    /// Largest value recorded, in ms (0 when empty).
    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q`-quantile (`0 <= q <= 1`, clamped) in ms, estimated as Prometheus'
    /// `histogram_quantile` does: linear interpolation inside the bucket holding rank
    /// `q * count`, from its lower bound (0 for the first bucket) to its upper bound. The `+Inf`
    /// bucket's upper bound is the largest value, and no result exceeds it. `None` when empty.
    ///
    /// The rank is looked up among non-empty buckets only, so `q = 0` gives the lower bound of
    /// the first non-empty bucket (Prometheus would divide 0 by 0 there).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = q * self.count as f64;
        let max = self.max_ms as f64;
        let mut below = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let cumulative = below + n;
            if cumulative as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] as f64 };
                let upper = BOUNDS_MS.get(i).map_or(max, |&b| b as f64).max(lower);
                let fraction = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some((lower + (upper - lower) * fraction).min(max));
            }
            below = cumulative;
        }
        // Unreachable: rank <= count, and the last non-empty bucket reaches count.
        Some(max)
    }
}

/// The engine's two latency histograms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Latency {
    /// Device read → reported value applied to the twin (changed or not).
    pub applied: LatencyHistogram,
    /// Device read → twin row stored (confirmed by `Engine::mark_persisted`).
    pub persisted: LatencyHistogram,
}

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(values: &[i64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn buckets_use_le_semantics() {
        let h = of(&[0, 1, 2, 60_000, 60_001]);
        let c = h.counts();
        assert_eq!(c[0], 2, "0 and 1 are <= 1");
        assert_eq!(c[1], 1, "2 is in (1, 2]");
        assert_eq!(c[BUCKETS - 2], 1, "60000 is in (30000, 60000]");
        assert_eq!(c[BUCKETS - 1], 1, "60001 is +Inf");
        assert_eq!((h.count(), h.sum_ms(), h.max_ms()), (5, 120_004, 60_001));
    }

    #[test]
    fn negative_clamps_to_zero() {
        let h = of(&[-5, -1_000_000]);
        assert_eq!((h.counts()[0], h.sum_ms(), h.max_ms()), (2, 0, 0));
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(LatencyHistogram::new().quantile(0.5), None);
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // 10 values in (10, 15]: the median is halfway through the bucket, capped by the max.
        let h = of(&[15; 10]);
        assert_eq!(h.quantile(0.5), Some(12.5));
        assert_eq!(h.quantile(1.0), Some(15.0));
        assert_eq!(h.quantile(0.0), Some(10.0));
        let h = of(&[12; 10]);
        assert_eq!(h.quantile(1.0), Some(12.0), "never above the max");
    }

    #[test]
    fn quantile_spans_buckets_like_prometheus() {
        // 4 values <= 1 and 4 in (1, 2]: rank 6 of 8 is halfway through the second bucket.
        let h = of(&[1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(h.quantile(0.75), Some(1.5));
        assert_eq!(h.quantile(0.25), Some(0.5));
    }

    #[test]
    fn inf_bucket_interpolates_up_to_the_max() {
        let h = of(&[70_000, 80_000]);
        assert_eq!(h.quantile(0.5), Some(70_000.0));
        assert_eq!(h.quantile(1.0), Some(80_000.0));
    }

    #[test]
    fn merge_and_reset() {
        let mut a = of(&[1, 500]);
        a.merge(&of(&[70_000]));
        assert_eq!(a, of(&[1, 500, 70_000]));
        a.reset();
        assert!(a.is_empty());
        assert_eq!(a, LatencyHistogram::new());
    }

    #[test]
    fn record_since_subtracts_from_now() {
        let mut h = LatencyHistogram::new();
        h.record_since(1_000, [990, 1_005]);
        assert_eq!((h.count(), h.sum_ms(), h.max_ms()), (2, 10, 10));
    }

    proptest! {
        #[test]
        fn counts_add_up(values in proptest::collection::vec(-1_000i64..200_000, 0..200)) {
            let h = of(&values);
            prop_assert_eq!(h.counts().iter().sum::<u64>(), values.len() as u64);
            prop_assert_eq!(h.count(), values.len() as u64);
            prop_assert_eq!(h.sum_ms(), values.iter().map(|&v| v.max(0) as u64).sum::<u64>());
            prop_assert_eq!(h.max_ms(), values.iter().map(|&v| v.max(0) as u64).max().unwrap_or(0));
            for (i, &v) in values.iter().enumerate() {
                let v = v.max(0) as u64;
                let b = BOUNDS_MS.iter().position(|&bound| v <= bound).unwrap_or(BUCKETS - 1);
                prop_assert!(h.counts()[b] > 0, "value {} (#{}) not in bucket {}", v, i, b);
            }
        }

        #[test]
        fn quantile_is_monotone_and_bounded(
            values in proptest::collection::vec(-1_000i64..200_000, 1..200),
            mut qs in proptest::collection::vec(0.0f64..=1.0, 2..20),
        ) {
            let h = of(&values);
            qs.sort_by(f64::total_cmp);
            let mut last = 0.0f64;
            for q in qs {
                let v = h.quantile(q).unwrap();
                prop_assert!(v >= last, "quantile({}) = {} < {}", q, v, last);
                prop_assert!(v <= h.max_ms() as f64, "quantile({}) = {} > max {}", q, v, h.max_ms());
                prop_assert!(v >= 0.0);
                last = v;
            }
        }
    }
}
