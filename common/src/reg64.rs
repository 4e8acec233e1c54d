//! 64-bit registers made of two 32-bit halves.
//!
//! Both device models expose 64-bit registers (SMMUv3 bases and MSI addresses, IHI 0070 6.2;
//! PAMU table bases and limits, split into `...H`/`...L` registers) that a guest may access as
//! two 32-bit words. A read returns one half; a write replaces one half and keeps the other,
//! so a 64-bit value written as two halves is the merge of both writes.

/// Which 32-bit half of a 64-bit register an access names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// Bits `[31:0]`.
    Low,
    /// Bits `[63:32]`.
    High,
}

impl Half {
    /// The value a 32-bit read of this half of `full` returns.
    #[inline]
    pub const fn read(self, full: u64) -> u32 {
        match self {
            Half::Low => full as u32,
            Half::High => (full >> 32) as u32,
        }
    }

    /// The register's new 64-bit value after a 32-bit write of `half` to this half of `old`;
    /// the other half keeps its value.
    #[inline]
    pub const fn merge(self, old: u64, half: u32) -> u64 {
        match self {
            Half::Low => (old & !0xFFFF_FFFF) | half as u64,
            Half::High => (old & 0xFFFF_FFFF) | ((half as u64) << 32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Half;

    /// A read returns the named half; a write replaces it and keeps the other.
    #[test]
    fn test_halves_read_and_merge() {
        let v = 0x1234_5678_9ABC_DEF0;
        assert_eq!(Half::High.read(v), 0x1234_5678);
        assert_eq!(Half::Low.read(v), 0x9ABC_DEF0);
        assert_eq!(Half::High.merge(0x1111_2222, 0x3333), 0x3333_1111_2222);
        assert_eq!(Half::Low.merge(0xAAAA_0000_0000, 0x5), 0xAAAA_0000_0005);
        assert_eq!(Half::Low.merge(v, 0xFFFF_FFFF), 0x1234_5678_FFFF_FFFF);
        assert_eq!(Half::High.merge(v, 0), 0x9ABC_DEF0);
        // Two half writes in either order build the same 64-bit value.
        let hi_first = Half::Low.merge(Half::High.merge(0, 0xCAFE), 0xF00D);
        let lo_first = Half::High.merge(Half::Low.merge(0, 0xF00D), 0xCAFE);
        assert_eq!(hi_first, 0xCAFE_0000_F00D);
        assert_eq!(lo_first, hi_first);
    }
}
