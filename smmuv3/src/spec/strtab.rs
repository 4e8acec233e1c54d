//! Level-1 descriptors of two-level tables (IHI 0070 §5.1 stream table, §5.3 CD table).
//!
//! STRTAB_BASE / STRTAB_BASE_CFG themselves are registers, in [`super::regs`].

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{bits_mask, le_word, Le64};

/// Level-1 Stream Table Descriptor (8 bytes).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct L1Std {
    /// Span (bits \[4:0\]): the L2 table holds 2^(Span - 1) STEs; 0 = invalid.
    #[bits(5)]
    pub span: u8,
    /// Bit \[5\]: reserved.
    #[bits(1)]
    __: u8,
    /// L2Ptr (bits \[55:6\]; \[55:52\] RES0 up to SMMUv3.3), stored shifted; see
    /// [`L1Std::l2ptr`].
    #[bits(50)]
    pub l2ptr_hi: u64,
    /// Bits \[63:56\]: reserved.
    #[bits(8)]
    __: u16,
}

/// Level-1 Context Descriptor table descriptor (8 bytes).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct L1Cd {
    /// V (bit \[0\]): valid.
    pub v: bool,
    /// Bits \[11:1\]: reserved.
    #[bits(11)]
    __: u16,
    /// L2Ptr (bits \[55:12\]; \[55:52\] RES0 up to SMMUv3.3), stored shifted; see
    /// [`L1Cd::l2ptr`].
    #[bits(44)]
    pub l2ptr_hi: u64,
    /// Bits \[63:56\]: reserved.
    #[bits(8)]
    __: u16,
}

le_word!(L1Std, L1Cd);

const _: () = assert!(core::mem::size_of::<L1Std>() == 8);
const _: () = assert!(core::mem::size_of::<L1Cd>() == 8);

impl L1Std {
    /// L2Ptr: the level-2 STE array's physical address (bits \[55:6\], as written; the SMMU
    /// aligns it to the array size, IHI 0070 §5.1).
    pub const fn l2ptr(self) -> u64 {
        self.raw() & bits_mask(55, 6)
    }

    /// A descriptor pointing at `l2ptr` (bits outside \[55:6\] dropped) with `span` (masked to 5
    /// bits).
    pub const fn from_parts(l2ptr: u64, span: u8) -> Self {
        Self::from_raw((l2ptr & bits_mask(55, 6)) | (span & 0x1f) as u64)
    }
}

impl L1Cd {
    /// L2Ptr: the level-2 CD array's address (bits \[55:12\]; an IPA when stage 2 is on).
    /// Bits \[55:52\] are kept so that an out-of-range pointer is seen as such.
    pub const fn l2ptr(self) -> u64 {
        self.raw() & bits_mask(55, 12)
    }

    /// A valid descriptor pointing at `l2ptr` (bits outside \[55:12\] dropped).
    pub const fn from_l2ptr(l2ptr: u64) -> Self {
        Self::from_raw((l2ptr & bits_mask(55, 12)) | 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L1STD: Span \[4:0\], L2Ptr \[51:6\]; Linux writes Span 9
    /// (`arm_smmu_write_strtab_l1_desc()`).
    #[test]
    fn test_l1std_fields() {
        assert_eq!((L1Std::SPAN_OFFSET, L1Std::SPAN_BITS), (0, 5));
        assert_eq!(L1Std::L2PTR_HI_OFFSET, 6);
        let d = L1Std::from_raw(0x0000_0000_4123_4009);
        assert_eq!(d.span(), 9);
        assert_eq!(d.l2ptr(), 0x4123_4000);
        assert_eq!(L1Std::from_parts(0x4123_4000, 9), d);
    }

    /// L1CD: V \[0\], L2Ptr \[51:12\].
    #[test]
    fn test_l1cd_fields() {
        assert_eq!(L1Cd::L2PTR_HI_OFFSET, 12);
        let d = L1Cd::from_raw(0xFFF0_0000_4567_8FFF);
        assert!(d.v());
        assert_eq!(d.l2ptr(), 0x00F0_0000_4567_8000);
        assert_eq!(L1Cd::from_l2ptr(0x4567_8000).raw(), 0x4567_8001);
    }
}
