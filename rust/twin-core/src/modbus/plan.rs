//! Read planning: the visitors of a device coalesced into as few reads as possible.

use super::{RegisterKind, Visitor};

/// A coalesced read: kind, start address, count, and the indices (into the input slice) of the
/// visitors it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRange {
    /// The register kind read.
    pub kind: RegisterKind,
    /// First register or bit address.
    pub start: u16,
    /// Registers or bits read.
    pub count: u16,
    /// Indices of the covered visitors, by offset.
    pub members: Vec<u32>,
}

impl ReadRange {
    /// One past the last address read.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }

    /// Bytes of the read response payload (the frame passed to [`Visitor::decode`]).
    pub fn frame_len(&self) -> usize {
        self.kind.frame_len(self.count)
    }

    /// Adds `v` when it has the same kind, the gap is at most `max_gap` and the merged span
    /// stays within `limit`.
    fn try_add(&mut self, v: &Visitor, index: u32, limit: u16, max_gap: u16) -> bool {
        let end = self.end();
        let merged = end.max(v.end()) - u32::from(self.start);
        let near = u32::from(v.offset) <= end + u32::from(max_gap);
        let fits = v.kind == self.kind && near && merged <= u32::from(limit);
        if fits {
            self.count = merged as u16;
            self.members.push(index);
        }
        fits
    }
}

/// The span limit of one read of `kind`: the protocol maximum, or the caller's smaller
/// non-zero maximum.
pub(super) fn read_limit(kind: RegisterKind, max_registers: u16, max_bits: u16) -> u16 {
    let wanted = if kind.is_bit() {
        max_bits
    } else {
        max_registers
    };
    match wanted {
        0 => kind.max_read(),
        w => w.min(kind.max_read()),
    }
}

/// Coalesces visitors into as few reads as possible: same kind, sorted by offset, merged while
/// the merged span stays within the kind's protocol limit (or the smaller `max_registers` /
/// `max_bits`; 0 means the protocol limit) and the gap between neighbours is at most `max_gap`.
/// Ordered by kind, then start. A visitor wider than the caller's max gets a range of its own;
/// ranges of one kind only overlap where overlapping visitors cannot share a read.
pub fn plan_reads(
    visitors: &[Visitor],
    max_registers: u16,
    max_bits: u16,
    max_gap: u16,
) -> Vec<ReadRange> {
    let mut order: Vec<u32> = (0..visitors.len() as u32).collect();
    order.sort_by_key(|&i| (visitors[i as usize].kind, visitors[i as usize].offset, i));
    let mut out: Vec<ReadRange> = Vec::new();
    for i in order {
        let v = &visitors[i as usize];
        let limit = read_limit(v.kind, max_registers, max_bits);
        let last = out.last_mut();
        if !last.is_some_and(|r| r.try_add(v, i, limit, max_gap)) {
            let (kind, start, count, members) = (v.kind, v.offset, v.count, vec![i]);
            out.push(ReadRange {
                kind,
                start,
                count,
                members,
            });
        }
    }
    out
}
