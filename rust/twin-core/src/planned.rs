//! Replies to planned reads ([`Engine::ingest_planned`](crate::engine::Engine::ingest_planned)):
//! what a device remembers of each read's last reply, and the work a repeat saves.
//!
//! Most polls of a fleet return what they returned the cycle before, and most registers of
//! the others too. A device keeps the last reply of each planned read in `frames`; a property
//! whose registers repeat it is not decoded, and is handled at one of two depths:
//!
//! - **queued again** ([`Planned::Again`]): its ring of one slot takes the slot's value again
//!   with the new read time ([`Ring::push_again`]), exactly what pushing the decoded value
//!   would do;
//! - **waiting** (the `wait` bits of [`Reply::Decoded`], or [`Reply::Waiting`]): when nothing moved a reported value since the device's
//!   last report, and the property's ring has one slot, no heartbeat and no sample since that
//!   report, the repeat is only counted: settling it would change nothing (its value was
//!   settled then), so a report drops it, and its ring and twin are not touched at all. Anything
//!   else that looks at the rings first queues the waiting repeats as they would have been
//!   ([`Device::queue_repeats`]), and the engine's counters include them
//!   ([`Device::waiting_repeats`]).
//!
//! A read's block in `frames` is [`REPEATS_HEADER`] bytes, little-endian: the device's report
//! epoch when it was written (u32: a header of an earlier epoch holds nothing, so a report
//! forgets every waiting repeat by moving the epoch), how many repeats wait (u32), the read time
//! of the last (i64) and which of the read's properties wait (u32, by their position in the
//! read; reads of more than 32 properties never wait), then the last reply. The properties that wait all started at the same reply (the first after a report),
//! so they share the count.

use crate::device::{Device, Layout, REPEATS_HEADER};
use crate::error::Result;
use crate::queue::{Ring, Sample};
use crate::value::Value;

/// What a planned frame gives one property.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Planned {
    /// A new sample.
    Value(Value),
    /// The value its one slot holds, queued again.
    Again,
}

/// What [`Device::decode_planned`] made of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A [`Planned`] in the decode buffer for each property of the read but those that wait:
    /// `wait` has their bits (by position in the read).
    Decoded {
        /// The properties that wait.
        wait: u64,
    },
    /// The last reply again: every property is [`Planned::Again`].
    Repeat,
    /// The last reply again, and every property of the read waits.
    Waiting,
}

/// The waiting repeats of a read: how many, the read time of the last, which properties.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Waiting {
    count: u32,
    ts: i64,
    members: u64,
}

impl Waiting {
    /// Reads a block's header; written before the device's current report `epoch`, it holds
    /// nothing.
    fn read(block: &[u8], epoch: u32) -> Self {
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&block[at..at + 4]);
            u32::from_le_bytes(b)
        };
        if word(0) != epoch {
            return Self::default();
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&block[8..16]);
        Self {
            count: word(4),
            ts: i64::from_le_bytes(ts),
            members: u64::from(word(16)),
        }
    }

    /// Writes a block's header in report `epoch`.
    fn write(self, block: &mut [u8], epoch: u32) {
        block[..4].copy_from_slice(&epoch.to_le_bytes());
        block[4..8].copy_from_slice(&self.count.to_le_bytes());
        block[8..16].copy_from_slice(&self.ts.to_le_bytes());
        // Waiting reads have at most 32 properties.
        block[16..REPEATS_HEADER].copy_from_slice(&(self.members as u32).to_le_bytes());
    }
}

/// Bit `i`, or none past 63.
fn bit(i: usize) -> u64 {
    u32::try_from(i)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
}

/// The first `n` bits.
fn first_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        bit(n) - 1
    }
}

impl Layout {
    /// Where read `read`'s block lies in a device's `frames`.
    fn read_block(&self, read: u16) -> std::ops::Range<usize> {
        let r = usize::from(read);
        self.frame_offsets[r] as usize..self.frame_offsets[r + 1] as usize
    }

    /// The bytes of every read's block.
    fn frames_len(&self) -> usize {
        self.frame_offsets.last().map_or(0, |&n| n as usize)
    }
}

impl Device {
    /// The waiting repeats of read `read` (none before the first planned frame).
    fn waiting(&self, read: u16) -> Waiting {
        self.frames
            .get(self.layout.read_block(read))
            .map(|block| Waiting::read(block, self.epoch))
            .unwrap_or_default()
    }

    /// Sets the waiting repeats of read `read` (`frames` exists).
    fn set_waiting(&mut self, read: u16, waiting: Waiting) {
        let block = self.layout.read_block(read);
        if let Some(block) = self.frames.get_mut(block) {
            waiting.write(block, self.epoch);
        }
    }

    /// The last reply to read `read`, when the device remembers it.
    fn last_reply(&self, read: u16) -> Option<&[u8]> {
        let block = self.frames.get(self.layout.read_block(read))?;
        (self.fresh & bit(usize::from(read)) != 0).then(|| &block[REPEATS_HEADER..])
    }

    /// Decodes a reply to planned read `read` (its length checked) into `out` (see
    /// [`Reply`] and the [module docs](self)).
    pub(crate) fn decode_planned(
        &self,
        read: u16,
        frame: &[u8],
        out: &mut Vec<(u16, Planned)>,
    ) -> Result<Reply> {
        let layout = &*self.layout;
        let r = usize::from(read);
        let members = &layout.plan_props[r];
        let last = self.last_reply(read);
        let same = last.is_some_and(|last| last == frame);
        let waiting = self.waiting(read);
        let touched = self.touched & bit(r) != 0;
        // A property may wait when it already does, or when no sample came since the report.
        let may_wait = if layout.quiet_reads & bit(r) != 0 && !self.quiet.moved {
            waiting.members | if touched { 0 } else { u64::MAX }
        } else {
            0
        };
        if same && may_wait & first_bits(members.len()) == first_bits(members.len()) {
            return Ok(Reply::Waiting);
        }
        if same && layout.one_slot_reads & bit(r) != 0 && may_wait == 0 {
            return Ok(Reply::Repeat);
        }
        let start = layout.plan[r].start;
        // Which registers moved since the last reply (none known: all, or a bit read: same).
        let moved = match (last, layout.member_registers[r].is_empty()) {
            (Some(last), false) => moved_registers(last, frame),
            (Some(_), true) if same => 0,
            _ => u128::MAX,
        };
        let mut wait = 0;
        for (k, &p) in members.iter().enumerate() {
            let cfg = &layout.props[usize::from(p)];
            let Some(v) = &cfg.visitor else {
                return Err(crate::Error::UnknownProperty {
                    device: self.id.to_string(),
                    property: cfg.name.to_string(),
                }); // a planned read covers visitors only
            };
            let registers = layout.member_registers[r]
                .get(k)
                .copied()
                .unwrap_or(u128::MAX);
            let planned = if cfg.capacity != 1 {
                Planned::Value(v.decode(cfg.ty, start, frame)?)
            } else if moved & registers == 0 {
                if may_wait & bit(k) != 0 {
                    wait |= bit(k);
                    continue;
                }
                Planned::Again
            } else {
                let current = &self.props[usize::from(p)].slot.value;
                match v.decode_changed(cfg.ty, start, frame, current)? {
                    Some(value) => Planned::Value(value),
                    None => Planned::Again,
                }
            };
            out.push((p, planned));
        }
        Ok(Reply::Decoded { wait })
    }

    /// Queues what [`Device::decode_planned`] made of `frame` (read at `ts`) and remembers the
    /// frame.
    pub(crate) fn push_planned(
        &mut self,
        read: u16,
        frame: &[u8],
        ts: i64,
        reply: Reply,
        decoded: impl Iterator<Item = (u16, Planned)>,
    ) {
        let r = usize::from(read);
        if self.frames.is_empty() {
            self.frames = vec![0; self.layout.frames_len()].into_boxed_slice();
        }
        let before = self.waiting(read);
        let all = first_bits(self.layout.plan_props[r].len());
        let count = if before.members == 0 {
            1
        } else {
            before.count.saturating_add(1)
        };
        let wait = match reply {
            Reply::Waiting => {
                let members = all;
                self.set_waiting(read, Waiting { count, ts, members });
                return;
            }
            Reply::Repeat => {
                self.queue_read_repeats(read);
                self.touched |= bit(r);
                let Self { layout, props, .. } = self;
                for &p in &*layout.plan_props[r] {
                    let st = &mut props[usize::from(p)];
                    st.ring.push_again(&mut st.slot, ts);
                }
                return;
            }
            Reply::Decoded { wait } => wait,
        };
        // Those that stop waiting get their repeats queued first, then this frame's sample.
        self.queue_members(read, before, before.members & !wait);
        let members = wait;
        let waiting = if members == 0 {
            Waiting::default()
        } else {
            Waiting { count, ts, members }
        };
        self.set_waiting(read, waiting);
        if wait != all {
            self.touched |= bit(r);
        }
        let Self {
            layout,
            props,
            samples,
            quiet,
            ..
        } = self;
        for (p, planned) in decoded {
            let st = &mut props[usize::from(p)];
            match planned {
                Planned::Value(value) => {
                    quiet.settled = false;
                    let (ring, slots) = st.ring_parts(layout, samples, p);
                    ring.push(slots, Sample { ts, value });
                }
                Planned::Again => {
                    st.ring.push_again(&mut st.slot, ts);
                }
            }
        }
        let block = self.layout.read_block(read);
        self.frames[block][REPEATS_HEADER..].copy_from_slice(frame);
        self.fresh |= bit(r);
    }

    /// Queues the waiting repeats of every read, as they would have been queued.
    pub(crate) fn queue_repeats(&mut self) {
        if self.frames.is_empty() {
            return;
        }
        for read in 0..self.layout.plan.len() as u16 {
            self.queue_read_repeats(read);
        }
    }

    /// Queues the waiting repeats of read `read`.
    fn queue_read_repeats(&mut self, read: u16) {
        let waiting = self.waiting(read);
        if waiting.members != 0 {
            self.queue_members(read, waiting, waiting.members);
            self.set_waiting(read, Waiting::default());
        }
    }

    /// Queues the waiting repeats of the properties `members` (bits by position) of read
    /// `read`: each of their one-slot rings takes its slot's value again, as many times, at
    /// the last one's read time.
    fn queue_members(&mut self, read: u16, waiting: Waiting, members: u64) {
        if members == 0 {
            return;
        }
        self.touched |= bit(usize::from(read));
        let Self { layout, props, .. } = self;
        for (k, &p) in layout.plan_props[usize::from(read)].iter().enumerate() {
            if members & bit(k) != 0 {
                let st = &mut props[usize::from(p)];
                push_again_times(&mut st.ring, &mut st.slot, waiting.ts, waiting.count);
            }
        }
    }

    /// The properties that may hold samples when every sample came from planned reads: those
    /// of the reads that had samples since the last report, but not those that wait.
    pub(crate) fn pending_props(&self, out: &mut Vec<u16>) {
        for (r, members) in self.layout.plan_props.iter().enumerate().take(64) {
            if self.touched & bit(r) == 0 {
                continue;
            }
            let wait = self.waiting(r as u16).members;
            let moving = members
                .iter()
                .enumerate()
                .filter(|(k, _)| wait & bit(*k) == 0);
            out.extend(moving.map(|(_, &p)| p));
        }
    }

    /// Forgets every waiting repeat: at a report with no reported value moved, where settling
    /// them would change nothing. Only the device's report epoch moves (the headers written
    /// before it hold nothing), so a quiet device's report touches no block; every 2^32
    /// reports the headers are cleared for real, so an old one never matches again.
    pub(crate) fn drop_repeats(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            for read in 0..self.layout.plan.len() as u16 {
                let block = self.layout.read_block(read);
                if let Some(header) = self.frames.get_mut(block) {
                    Waiting::default().write(header, u32::MAX);
                }
            }
        }
    }

    /// The samples the waiting repeats stand for, and the samples their rings would have
    /// dropped: `(queued, dropped)`.
    pub(crate) fn waiting_repeats(&self) -> (usize, u64) {
        let (mut queued, mut dropped) = (0, 0);
        if self.frames.is_empty() {
            return (queued, dropped);
        }
        for read in 0..self.layout.plan.len() as u16 {
            let waiting = self.waiting(read);
            let n = waiting.members.count_ones();
            if n > 0 {
                queued += n as usize;
                dropped += u64::from(n) * u64::from(waiting.count - 1);
            }
        }
        (queued, dropped)
    }
}

/// The registers (bit `i`: the `i`-th) whose two bytes differ between two register frames of
/// the same read.
fn moved_registers(a: &[u8], b: &[u8]) -> u128 {
    a.chunks_exact(2)
        .zip(b.chunks_exact(2))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .fold(0, |bits, (i, _)| {
            bits | 1u128.checked_shl(i as u32).unwrap_or(0)
        })
}

/// `count` (>= 1) repeats of a one-slot ring's value at `ts`, as `count` [`Ring::push_again`]
/// would: the first fills the slot (or drops its sample), each other drops the one before.
fn push_again_times(ring: &mut Ring, slot: &mut Sample, ts: i64, count: u32) {
    ring.push_again(slot, ts);
    ring.count_drops(count.saturating_sub(1));
}
