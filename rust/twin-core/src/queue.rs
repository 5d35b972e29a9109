//! Bounded per-property sampling rings.
//!
//! A property's samples are pushed at the collect cycle and drained at the report cycle. A full
//! ring drops its **oldest** sample and counts the drop. The engine keeps one small [`Ring`]
//! header per property over caller-owned slots (a ring of one slot, the default, keeps it beside
//! the property's twin; larger ones share one slab per device), so a ring costs 8 bytes plus its
//! slots; [`SampleQueue`] is the same ring owning its storage, for standalone use.

use crate::value::Value;

/// One sample: a value and its read time (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Read time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// The decoded value.
    pub value: Value,
}

impl Default for Sample {
    fn default() -> Self {
        Self {
            ts: 0,
            value: Value::Boolean(false),
        }
    }
}

/// Aggregates of the samples drained at one report cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The newest sample.
    pub last: Sample,
    /// Read time of the oldest drained sample.
    pub first_ts: i64,
    /// Smallest value (numeric types; `None` otherwise).
    pub min: Option<f64>,
    /// Largest value (numeric types).
    pub max: Option<f64>,
    /// Mean value (numeric types).
    pub mean: Option<f64>,
    /// Number of samples drained.
    pub count: u32,
}

/// Ring header over a caller-owned slice of slots: position, length and drop counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ring {
    head: u16,
    len: u16,
    dropped: u32,
}

impl Ring {
    /// Number of queued samples.
    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    /// Whether the ring is empty.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Samples dropped (oldest first) because the ring was full, since creation.
    pub fn dropped(self) -> u32 {
        self.dropped
    }

    /// Pushes a sample into `slots` (the ring's storage, `slots.len()` = capacity >= 1).
    /// Returns `true` when the oldest sample was dropped to make room.
    pub fn push(&mut self, slots: &mut [Sample], sample: Sample) -> bool {
        let cap = slots.len();
        let (head, len) = (usize::from(self.head), usize::from(self.len));
        let tail = if head + len >= cap {
            head + len - cap
        } else {
            head + len
        };
        slots[tail] = sample;
        self.advance(cap)
    }

    /// Pushes again the sample of a ring of one slot with a new read time: the same as pushing
    /// a sample whose value is the one the slot holds, without building it.
    pub fn push_again(&mut self, slot: &mut Sample, ts: i64) -> bool {
        slot.ts = ts;
        self.advance(1)
    }

    /// Counts `n` more samples dropped (repeats pushed onto a full ring of one slot).
    pub fn count_drops(&mut self, n: u32) {
        self.dropped = self.dropped.saturating_add(n);
    }

    /// Counts a sample written at the tail of a ring of `cap` slots.
    fn advance(&mut self, cap: usize) -> bool {
        if usize::from(self.len) == cap {
            self.head = if usize::from(self.head) + 1 == cap {
                0
            } else {
                self.head + 1
            };
            self.dropped = self.dropped.saturating_add(1);
            true
        } else {
            self.len += 1;
            false
        }
    }

    /// The queued samples, oldest first.
    pub fn iter<'a>(&self, slots: &'a [Sample]) -> impl Iterator<Item = &'a Sample> + 'a {
        let cap = slots.len();
        let (head, len) = (usize::from(self.head), usize::from(self.len));
        (0..len).map(move |i| &slots[(head + i) % cap])
    }

    /// Aggregates the queued samples and empties the ring (`None` when empty).
    pub fn drain(&mut self, slots: &[Sample]) -> Option<Aggregate> {
        let agg = aggregate(self.iter(slots))?;
        self.head = 0;
        self.len = 0;
        Some(agg)
    }

    /// Empties the ring without aggregating.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// Aggregates samples given oldest first.
fn aggregate<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<Aggregate> {
    let mut count = 0u32;
    let (mut first_ts, mut last) = (0, None::<&Sample>);
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    let mut numeric = true;
    for s in samples {
        if count == 0 {
            first_ts = s.ts;
        }
        count += 1;
        last = Some(s);
        match s.value.as_f64() {
            Some(x) if numeric => {
                min = min.min(x);
                max = max.max(x);
                sum += x;
            }
            _ => numeric = false,
        }
    }
    let last = last?.clone();
    let num = |x: f64| numeric.then_some(x);
    Some(Aggregate {
        last,
        first_ts,
        min: num(min),
        max: num(max),
        mean: num(sum / f64::from(count)),
        count,
    })
}

/// A ring that owns its storage.
#[derive(Debug, Clone)]
pub struct SampleQueue {
    slots: Box<[Sample]>,
    ring: Ring,
}

impl SampleQueue {
    /// A queue holding at most `capacity` samples (at least 1).
    pub fn new(capacity: u16) -> Self {
        let cap = usize::from(capacity.max(1));
        Self {
            slots: vec![Sample::default(); cap].into_boxed_slice(),
            ring: Ring::default(),
        }
    }

    /// Capacity in samples.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of queued samples.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Samples dropped so far.
    pub fn dropped(&self) -> u32 {
        self.ring.dropped()
    }

    /// Pushes a sample, dropping the oldest when full; returns whether one was dropped.
    pub fn push(&mut self, sample: Sample) -> bool {
        self.ring.push(&mut self.slots, sample)
    }

    /// The queued samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.ring.iter(&self.slots)
    }

    /// Aggregates and empties the queue.
    pub fn drain(&mut self) -> Option<Aggregate> {
        self.ring.drain(&self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(ts: i64, v: i64) -> Sample {
        Sample {
            ts,
            value: Value::Int(v),
        }
    }

    #[test]
    fn aggregates() {
        let mut q = SampleQueue::new(4);
        for (i, v) in [3, 1, 2].into_iter().enumerate() {
            q.push(s(i as i64, v));
        }
        let a = q.drain().unwrap();
        assert_eq!(
            (a.count, a.min, a.max, a.mean),
            (3, Some(1.0), Some(3.0), Some(2.0))
        );
        assert_eq!(a.last, s(2, 2));
        assert_eq!(a.first_ts, 0);
        assert!(q.is_empty());
        assert!(q.drain().is_none());
    }

    #[test]
    fn text_has_no_numeric_aggregates() {
        let mut q = SampleQueue::new(2);
        q.push(Sample {
            ts: 1,
            value: Value::string("a"),
        });
        let a = q.drain().unwrap();
        assert_eq!((a.min, a.mean, a.count), (None, None, 1));
    }

    proptest! {
        #[test]
        fn keeps_order_and_capacity(cap in 1u16..8, values in proptest::collection::vec(any::<i64>(), 0..40)) {
            let mut q = SampleQueue::new(cap);
            for (i, v) in values.iter().enumerate() {
                q.push(s(i as i64, *v));
                prop_assert!(q.len() <= usize::from(cap));
            }
            let keep = values.len().min(usize::from(cap));
            let expected: Vec<i64> = values[values.len() - keep..].to_vec();
            let got: Vec<i64> = q.iter().map(|x| match x.value { Value::Int(v) => v, _ => unreachable!() }).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(q.dropped() as usize, values.len() - keep);
        }
    }
}
