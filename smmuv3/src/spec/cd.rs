//! Context Descriptor (IHI 0070 §5.4): 64 bytes, eight little-endian 64-bit words.
//!
//! Words 0..3 (TCR-like fields, TTB0, TTB1, MAIR) are interpreted; words 4..7 (AMAIR, IMPDEF,
//! MPAM) are IGNORED. Decoding into typed configuration is [`crate::config::cd`].

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{bits_mask, le_record, le_word, open_enum, Cacheability, Le64, Shareability};

open_enum! {
    /// CD.TG0 (bits \[7:6\]): TTB0 granule (same encoding as TCR_EL1.TG0).
    pub struct Tg0(u8) {
        /// 4 KiB.
        TG0_4K = 0,
        /// 64 KiB.
        TG0_64K = 1,
        /// 16 KiB.
        TG0_16K = 2,
    }
}

open_enum! {
    /// CD.TG1 (bits \[23:22\]): TTB1 granule (TCR_EL1.TG1 encoding, different from TG0).
    pub struct Tg1(u8) {
        /// 16 KiB.
        TG1_16K = 1,
        /// 4 KiB.
        TG1_4K = 2,
        /// 64 KiB.
        TG1_64K = 3,
    }
}

/// CD word 0 (bits \[63:0\]): translation control.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CdW0 {
    /// T0SZ (bits \[5:0\]): TTB0 region size 2^(64 - T0SZ).
    #[bits(6)]
    pub t0sz: u8,
    /// TG0 (bits \[7:6\]).
    #[bits(2)]
    pub tg0: Tg0,
    /// IR0 (bits \[9:8\]).
    #[bits(2)]
    pub ir0: Cacheability,
    /// OR0 (bits \[11:10\]).
    #[bits(2)]
    pub or0: Cacheability,
    /// SH0 (bits \[13:12\]).
    #[bits(2)]
    pub sh0: Shareability,
    /// EPD0 (bit \[14\]): no walks through TTB0 (translation fault).
    pub epd0: bool,
    /// ENDI (bit \[15\]): big-endian tables.
    pub endi: bool,
    /// T1SZ (bits \[21:16\]).
    #[bits(6)]
    pub t1sz: u8,
    /// TG1 (bits \[23:22\]).
    #[bits(2)]
    pub tg1: Tg1,
    /// IR1 (bits \[25:24\]).
    #[bits(2)]
    pub ir1: Cacheability,
    /// OR1 (bits \[27:26\]).
    #[bits(2)]
    pub or1: Cacheability,
    /// SH1 (bits \[29:28\]).
    #[bits(2)]
    pub sh1: Shareability,
    /// EPD1 (bit \[30\]).
    pub epd1: bool,
    /// V (bit \[31\]): valid.
    pub v: bool,
    /// IPS (bits \[34:32\]): intermediate physical size code.
    #[bits(3)]
    pub ips: u8,
    /// AFFD (bit \[35\]): access-flag fault disable.
    pub affd: bool,
    /// WXN (bit \[36\]).
    pub wxn: bool,
    /// UWXN (bit \[37\]).
    pub uwxn: bool,
    /// TBI0 (bit \[38\]): top byte ignore, TTB0 region.
    pub tbi0: bool,
    /// TBI1 (bit \[39\]): top byte ignore, TTB1 region.
    pub tbi1: bool,
    /// PAN (bit \[40\]).
    pub pan: bool,
    /// AA64 (bit \[41\]): AArch64 tables.
    pub aa64: bool,
    /// HD (bit \[42\]): hardware dirty-state update.
    pub hd: bool,
    /// HA (bit \[43\]): hardware access-flag update.
    pub ha: bool,
    /// S (bit \[44\]): stall faults.
    pub s: bool,
    /// R (bit \[45\]): record faults.
    pub r: bool,
    /// A (bit \[46\]): terminated transactions abort (else RAZ/WI).
    pub a: bool,
    /// ASET (bit \[47\]): shared ASID set (store only).
    pub aset: bool,
    /// ASID (bits \[63:48\]).
    pub asid: u16,
}

/// CD word 1 (bits \[127:64\]): TTB0.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CdW1 {
    /// NSCFG0 (bit \[64\]).
    pub nscfg0: bool,
    /// HAD0 (bit \[65\]): hierarchical attribute disable for TTB0.
    pub had0: bool,
    /// Bits \[67:66\]: reserved.
    #[bits(2)]
    __: u8,
    /// TTB0 (bits \[115:68\]), stored shifted; see [`Cd::ttb0`].
    #[bits(48)]
    pub ttb0_hi: u64,
    /// Bits \[127:116\]: reserved.
    #[bits(12)]
    __: u16,
}

/// CD word 2 (bits \[191:128\]): TTB1.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CdW2 {
    /// NSCFG1 (bit \[128\]).
    pub nscfg1: bool,
    /// HAD1 (bit \[129\]).
    pub had1: bool,
    /// Bits \[131:130\]: reserved.
    #[bits(2)]
    __: u8,
    /// TTB1 (bits \[179:132\]), stored shifted; see [`Cd::ttb1`].
    #[bits(48)]
    pub ttb1_hi: u64,
    /// Bits \[191:180\]: reserved.
    #[bits(12)]
    __: u16,
}

/// CD word 3 (bits \[255:192\]): MAIR.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CdW3 {
    /// MAIR (bits \[255:192\]): eight memory attribute bytes, AttrIndx n at bits [8n+7:8n].
    pub mair: u64,
}

/// A CD word this model does not interpret (words 4..7: AMAIR, IMPDEF, PARTID/PMG, reserved).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CdIgnored {
    /// The raw contents (IGNORED).
    pub bits: u64,
}

le_word!(CdW0, CdW1, CdW2, CdW3, CdIgnored);

/// A Context Descriptor (64 bytes, little-endian words).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Cd {
    /// Word 0: translation control, ASID.
    pub w0: CdW0,
    /// Word 1: TTB0.
    pub w1: CdW1,
    /// Word 2: TTB1.
    pub w2: CdW2,
    /// Word 3: MAIR.
    pub w3: CdW3,
    /// Word 4: AMAIR (IGNORED).
    pub w4: CdIgnored,
    /// Word 5: IMPDEF (IGNORED).
    pub w5: CdIgnored,
    /// Word 6: PARTID/PMG (IGNORED).
    pub w6: CdIgnored,
    /// Word 7: reserved (IGNORED).
    pub w7: CdIgnored,
}

const _: () = assert!(core::mem::size_of::<Cd>() == 64);

le_record!(Cd[8] {
    w0: CdW0, w1: CdW1, w2: CdW2, w3: CdW3,
    w4: CdIgnored, w5: CdIgnored, w6: CdIgnored, w7: CdIgnored,
});

impl Cd {
    /// Size of a CD in bytes.
    pub const SIZE: u64 = 64;

    /// TTB0 (bits \[115:68\]): TTB0 table address bits \[51:4\] (an IPA under nesting).
    pub const fn ttb0(&self) -> u64 {
        self.w1.raw() & bits_mask(51, 4)
    }

    /// Set TTB0; bits outside \[51:4\] of `addr` are dropped, NSCFG0/HAD0 kept.
    pub const fn with_ttb0(mut self, addr: u64) -> Self {
        self.w1 = CdW1::from_raw((self.w1.raw() & !bits_mask(51, 4)) | (addr & bits_mask(51, 4)));
        self
    }

    /// TTB1 (bits \[179:132\]): TTB1 table address bits \[51:4\].
    pub const fn ttb1(&self) -> u64 {
        self.w2.raw() & bits_mask(51, 4)
    }

    /// Set TTB1; bits outside \[51:4\] of `addr` are dropped, NSCFG1/HAD1 kept.
    pub const fn with_ttb1(mut self, addr: u64) -> Self {
        self.w2 = CdW2::from_raw((self.w2.raw() & !bits_mask(51, 4)) | (addr & bits_mask(51, 4)));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field positions from IHI 0070 §5.4 and Linux `CTXDESC_CD_0_*`.
    #[test]
    fn test_cd_bit_positions() {
        assert_eq!((CdW0::T0SZ_OFFSET, CdW0::T0SZ_BITS), (0, 6));
        assert_eq!(CdW0::TG0_OFFSET, 6);
        assert_eq!(CdW0::IR0_OFFSET, 8);
        assert_eq!(CdW0::OR0_OFFSET, 10);
        assert_eq!(CdW0::SH0_OFFSET, 12);
        assert_eq!(CdW0::EPD0_OFFSET, 14);
        assert_eq!(CdW0::ENDI_OFFSET, 15);
        assert_eq!(CdW0::T1SZ_OFFSET, 16);
        assert_eq!(CdW0::TG1_OFFSET, 22);
        assert_eq!(CdW0::EPD1_OFFSET, 30);
        assert_eq!(CdW0::V_OFFSET, 31);
        assert_eq!((CdW0::IPS_OFFSET, CdW0::IPS_BITS), (32, 3));
        assert_eq!(CdW0::AFFD_OFFSET, 35);
        assert_eq!(CdW0::TBI0_OFFSET, 38);
        assert_eq!(CdW0::TBI1_OFFSET, 39);
        assert_eq!(CdW0::AA64_OFFSET, 41);
        assert_eq!(CdW0::HD_OFFSET, 42);
        assert_eq!(CdW0::HA_OFFSET, 43);
        assert_eq!(CdW0::S_OFFSET, 44);
        assert_eq!(CdW0::R_OFFSET, 45);
        assert_eq!(CdW0::A_OFFSET, 46);
        assert_eq!(CdW0::ASET_OFFSET, 47);
        assert_eq!((CdW0::ASID_OFFSET, CdW0::ASID_BITS), (48, 16));
        assert_eq!(64 + CdW1::TTB0_HI_OFFSET, 68);
        assert_eq!(128 + CdW2::TTB1_HI_OFFSET, 132);
    }

    /// The KUnit S1 CD (ASID 1997, Linux arm-smmu-v3-test.c) decodes to what Linux composed.
    #[test]
    fn test_cd_kunit_s1() {
        let cd = Cd::from_words([
            0x07CD_E201_C000_3684,
            0x000D_BEEF_DEAD_BEE0,
            0,
            0x0ABC_DEF0_1234_5678,
            0,
            0,
            0,
            0,
        ]);
        let w0 = cd.w0;
        assert_eq!(w0.asid(), 1997);
        assert_eq!(w0.t0sz(), 4);
        assert_eq!(w0.tg0(), Tg0::TG0_16K);
        assert_eq!(w0.ir0(), Cacheability::WT);
        assert_eq!(w0.or0(), Cacheability::WBRA);
        assert_eq!(w0.sh0(), Shareability::ISH);
        assert_eq!(w0.ips(), 1);
        assert!(w0.v() && w0.epd1() && w0.aa64() && w0.r() && w0.a() && w0.aset());
        assert!(!w0.epd0() && !w0.s() && !w0.ha() && !w0.hd() && !w0.tbi0());
        assert_eq!(cd.ttb0(), 0x000D_BEEF_DEAD_BEE0);
        assert_eq!(cd.w3.mair(), 0x0ABC_DEF0_1234_5678);
        assert_eq!(CdW0::from_raw(0x030A_E201_C000_3684).asid(), 778);
    }

    /// Linux's 4K/48-bit coherent CD w0 with ASID 1 is 0x0001_E205_C000_3510
    /// (`arm_smmu_make_s1_cd()`).
    #[test]
    fn test_cd_linux_4k_example() {
        let w0 = CdW0::from_raw(0x0001_E205_C000_3510);
        assert_eq!(w0.t0sz(), 16);
        assert_eq!(w0.tg0(), Tg0::TG0_4K);
        assert_eq!(w0.ips(), 5);
        assert_eq!(w0.asid(), 1);
        assert_eq!(w0.sh0(), Shareability::ISH);
        assert_eq!(w0.ir0(), Cacheability::WBRA);
    }
}
