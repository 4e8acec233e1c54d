//! Circular-queue arithmetic shared by the command, event and PRI queues (IHI 0070 §3.5).
//!
//! A queue of 2^n entries is addressed by PROD/CONS values holding an index in bits \[n-1:0\] and
//! a wrap bit in bit \[n\]. Empty: index and wrap equal. Full: index equal, wrap different. Both
//! advance modulo 2^(n+1). Flag bits above the wrap bit (CMDQ_CONS.ERR, OVFLG/OVACKFLG) are not
//! part of the position and are handled by the callers.

use crate::spec::regs::QueueBase;

/// The geometry of one queue: base address, log2 of the entry count, entry size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueGeometry {
    /// Guest physical address of entry 0.
    pub base: u64,
    /// log2 of the number of entries (clamped to the advertised maximum).
    pub log2size: u32,
    /// Bytes per entry (16 for commands and PRI records, 32 for events).
    pub entry_size: u64,
}

impl QueueGeometry {
    /// Geometry from a `*_BASE` register value, clamping LOG2SIZE to `max_log2size` (the IDR1
    /// CMDQS/EVENTQS/PRIQS field; IHI 0070 §6.3: a larger LOG2SIZE acts as the maximum).
    ///
    /// Policy: the low address bits that the queue's natural alignment requires to be zero are
    /// ignored (the queue starts at the base rounded down to its size, minimum 32 bytes).
    pub fn from_base(base: QueueBase, max_log2size: u32, entry_size: u64) -> Self {
        let log2size = u32::from(base.log2size()).min(max_log2size).min(19);
        let bytes = (entry_size << log2size).max(32);
        Self {
            base: base.addr() & !(bytes - 1),
            log2size,
            entry_size,
        }
    }

    /// Mask of the position bits (index and wrap): bits \[n:0\].
    pub const fn pos_mask(&self) -> u32 {
        (2u32 << self.log2size) - 1
    }

    /// Mask of the index bits: bits \[n-1:0\].
    pub const fn index_mask(&self) -> u32 {
        (1u32 << self.log2size) - 1
    }

    /// The position part (index and wrap) of a PROD/CONS value.
    pub const fn pos(&self, reg: u32) -> u32 {
        reg & self.pos_mask()
    }

    /// The index part (bits \[n-1:0\]) of a PROD/CONS value: the entry it names.
    pub const fn index(&self, reg: u32) -> u32 {
        reg & self.index_mask()
    }

    /// The wrap bit (bit \[n\]) of a PROD/CONS value.
    pub const fn wrap(&self, reg: u32) -> bool {
        reg >> self.log2size & 1 != 0
    }

    /// True when no entries are outstanding between `cons` and `prod`.
    pub const fn is_empty(&self, prod: u32, cons: u32) -> bool {
        self.pos(prod) == self.pos(cons)
    }

    /// True when the queue holds 2^n entries (same index, different wrap).
    pub const fn is_full(&self, prod: u32, cons: u32) -> bool {
        self.index(prod) == self.index(cons) && self.wrap(prod) != self.wrap(cons)
    }

    /// The position after `pos`, modulo 2^(n+1).
    pub const fn next(&self, pos: u32) -> u32 {
        pos.wrapping_add(1) & self.pos_mask()
    }

    /// Number of entries between `cons` and `prod` (what the producer has written ahead).
    pub const fn used(&self, prod: u32, cons: u32) -> u32 {
        self.pos(prod).wrapping_sub(self.pos(cons)) & self.pos_mask()
    }

    /// Guest physical address of the entry at position `pos`.
    pub const fn entry_addr(&self, pos: u32) -> u64 {
        self.base
            .wrapping_add(self.index(pos) as u64 * self.entry_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(log2: u8) -> QueueGeometry {
        QueueGeometry::from_base(
            QueueBase::new()
                .with_addr_hi(0x8000_0000 >> 5)
                .with_log2size(log2),
            19,
            16,
        )
    }

    /// Empty, full and wrap follow §3.5 for a 4-entry queue.
    #[test]
    fn test_queue_empty_full_wrap() {
        let g = q(2);
        assert!(g.is_empty(0, 0));
        assert!(g.is_full(0b100, 0));
        assert!(!g.is_full(0b011, 0));
        assert_eq!(g.used(0b011, 0), 3);
        assert_eq!(g.used(0b001, 0b110), 3);
        assert_eq!(g.next(0b111), 0);
        assert_eq!(g.next(0b011), 0b100);
        assert_eq!(g.entry_addr(0b101), 0x8000_0010);
        assert_eq!((g.index(0b110), g.wrap(0b110)), (0b10, true));
        assert_eq!((g.index(0b011), g.wrap(0b011)), (0b11, false));
        // OVFLG in bit 31 is neither index nor wrap.
        assert_eq!((g.index(0x8000_0001), g.wrap(0x8000_0001)), (1, false));
        assert!(g.is_full(0x8000_0100 | 0b101, 0b001));
        // Flag bits above the wrap bit do not count as position.
        assert!(g.is_empty(0x8000_0003, 3));
    }

    /// LOG2SIZE is clamped to the advertised maximum and unaligned base bits are ignored.
    #[test]
    fn test_queue_geometry_clamps() {
        let g = QueueGeometry::from_base(
            QueueBase::new()
                .with_addr_hi(0x8000_0120 >> 5)
                .with_log2size(31),
            7,
            16,
        );
        assert_eq!(g.log2size, 7);
        assert_eq!(g.base, 0x8000_0000);
        assert_eq!(g.pos_mask(), 0xFF);
        let z = QueueGeometry::from_base(QueueBase::new().with_addr_hi(1), 19, 16);
        assert_eq!((z.log2size, z.base), (0, 0x20));
    }
}
