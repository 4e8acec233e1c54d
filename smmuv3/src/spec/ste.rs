//! Stream Table Entry (IHI 0070 §5.2): 64 bytes, eight little-endian 64-bit words.
//!
//! Only words 0..3 carry fields this model interprets; words 4..7 (Secure stage 2, MPAM, VMS)
//! are IGNORED and kept raw. Decoding into typed configuration is [`crate::config::ste`].

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{bits_mask, le_record, le_word, open_enum, Cacheability, Le64, Shareability};

open_enum! {
    /// STE.Config (bits \[3:1\]).
    pub struct SteConfig(u8) {
        /// Abort: terminate all traffic silently.
        ABORT = 0b000,
        /// Bypass: pass through with attribute overrides.
        BYPASS = 0b100,
        /// Stage 1 translation only.
        S1_TRANS = 0b101,
        /// Stage 2 translation only.
        S2_TRANS = 0b110,
        /// Nested: stage 1 then stage 2.
        NESTED = 0b111,
    }
}

impl SteConfig {
    /// Config bit 0: stage 1 is used (Config 0b101, 0b111).
    pub const fn s1_used(self) -> bool {
        self.0 & 0b101 == 0b101
    }

    /// Config bit 1: stage 2 is used (Config 0b110, 0b111).
    pub const fn s2_used(self) -> bool {
        self.0 & 0b110 == 0b110
    }
}

open_enum! {
    /// STE.S1Fmt (bits \[5:4\]): CD table format.
    pub struct S1Fmt(u8) {
        /// Linear table of 2^S1CDMax CDs.
        LINEAR = 0,
        /// Two-level, 4 KiB leaf tables (64 CDs per leaf).
        L2_4K = 1,
        /// Two-level, 64 KiB leaf tables (1024 CDs per leaf).
        L2_64K = 2,
    }
}

open_enum! {
    /// STE.S1DSS (bits \[65:64\]): what non-substream traffic does when S1CDMax > 0.
    pub struct S1Dss(u8) {
        /// Terminate, recording F_STREAM_DISABLED.
        TERMINATE = 0,
        /// Bypass stage 1.
        BYPASS = 1,
        /// Use substream 0's CD.
        SSID0 = 2,
    }
}

open_enum! {
    /// STE.EATS (bits \[93:92\]): ATS behaviour.
    pub struct Eats(u8) {
        /// ATS translation requests abort.
        ABT = 0,
        /// Full ATS: translated traffic bypasses the SMMU.
        TRANS = 1,
        /// Split-stage ATS: translated traffic goes through stage 2.
        S1CHK = 2,
    }
}

open_enum! {
    /// STE.STRW (bits \[95:94\]): stream world / translation regime.
    pub struct Strw(u8) {
        /// Non-secure EL1 (EL1&0 regime).
        NSEL1 = 0,
        /// EL2 (needs IDR0.HYP).
        EL2 = 2,
    }
}

open_enum! {
    /// STE.PRIVCFG (bits \[113:112\]): privilege override.
    pub struct PrivCfg(u8) {
        /// Use the incoming privilege.
        INCOMING = 0,
        /// Force unprivileged.
        UNPRIV = 2,
        /// Force privileged.
        PRIV = 3,
    }
}

open_enum! {
    /// STE.INSTCFG (bits \[115:114\]): instruction/data override.
    pub struct InstCfg(u8) {
        /// Use the incoming InD.
        INCOMING = 0,
        /// Force data.
        DATA = 2,
        /// Force instruction.
        INSTR = 3,
    }
}

open_enum! {
    /// STE.S2TG (bits \[175:174\]): stage-2 granule (note: same encoding as CD.TG0).
    pub struct S2Tg(u8) {
        /// 4 KiB.
        TG_4K = 0,
        /// 64 KiB.
        TG_64K = 1,
        /// 16 KiB.
        TG_16K = 2,
    }
}

/// STE word 0 (bits \[63:0\]).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct SteW0 {
    /// V (bit \[0\]): valid.
    pub v: bool,
    /// Config (bits \[3:1\]).
    #[bits(3)]
    pub config: SteConfig,
    /// S1Fmt (bits \[5:4\]).
    #[bits(2)]
    pub s1fmt: S1Fmt,
    /// S1ContextPtr (bits \[55:6\]; \[55:52\] RES0 up to SMMUv3.3), stored shifted; see
    /// [`Ste::s1_context_ptr`].
    #[bits(50)]
    pub s1_context_ptr_hi: u64,
    /// Bits \[58:56\]: reserved.
    #[bits(3)]
    __: u8,
    /// S1CDMax (bits \[63:59\]): log2 of the number of CDs.
    #[bits(5)]
    pub s1cdmax: u8,
}

/// STE word 1 (bits \[127:64\]).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct SteW1 {
    /// S1DSS (bits \[65:64\]).
    #[bits(2)]
    pub s1dss: S1Dss,
    /// S1CIR (bits \[67:66\]): CD fetch inner cacheability.
    #[bits(2)]
    pub s1cir: Cacheability,
    /// S1COR (bits \[69:68\]): CD fetch outer cacheability.
    #[bits(2)]
    pub s1cor: Cacheability,
    /// S1CSH (bits \[71:70\]): CD fetch shareability.
    #[bits(2)]
    pub s1csh: Shareability,
    /// Bits \[82:72\]: S2HWU, DRE, CONT, DCP, PPAR (not modelled).
    #[bits(11)]
    __: u16,
    /// MEV (bit \[83\]): merge events.
    pub mev: bool,
    /// Bits \[88:84\]: reserved / not modelled.
    #[bits(5)]
    __: u8,
    /// S2FWB (bit \[89\]): stage-2 forced write-back.
    pub s2fwb: bool,
    /// Bit \[90\]: reserved.
    #[bits(1)]
    __: u8,
    /// S1STALLD (bit \[91\]): stage-1 stalls disabled.
    pub s1stalld: bool,
    /// EATS (bits \[93:92\]).
    #[bits(2)]
    pub eats: Eats,
    /// STRW (bits \[95:94\]).
    #[bits(2)]
    pub strw: Strw,
    /// MemAttr (bits \[99:96\]): memory type override.
    #[bits(4)]
    pub memattr: u8,
    /// MTCFG (bit \[100\]): use MemAttr.
    pub mtcfg: bool,
    /// ALLOCCFG (bits \[104:101\]).
    #[bits(4)]
    pub alloccfg: u8,
    /// Bits \[107:105\]: reserved.
    #[bits(3)]
    __: u8,
    /// SHCFG (bits \[109:108\]): 1 = use the incoming shareability.
    #[bits(2)]
    pub shcfg: Shareability,
    /// NSCFG (bits \[111:110\]).
    #[bits(2)]
    pub nscfg: u8,
    /// PRIVCFG (bits \[113:112\]).
    #[bits(2)]
    pub privcfg: PrivCfg,
    /// INSTCFG (bits \[115:114\]).
    #[bits(2)]
    pub instcfg: InstCfg,
    /// Bits \[127:116\]: reserved.
    #[bits(12)]
    __: u16,
}

/// STE word 2 (bits \[191:128\]): stage-2 configuration (VMID and VTCR).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct SteW2 {
    /// S2VMID (bits \[143:128\]).
    pub s2vmid: u16,
    /// Bits \[159:144\]: reserved.
    #[bits(16)]
    __: u16,
    /// S2T0SZ (bits \[165:160\]): stage-2 input size = 64 - S2T0SZ.
    #[bits(6)]
    pub s2t0sz: u8,
    /// S2SL0 (bits \[167:166\]): starting level.
    #[bits(2)]
    pub s2sl0: u8,
    /// S2IR0 (bits \[169:168\]).
    #[bits(2)]
    pub s2ir0: Cacheability,
    /// S2OR0 (bits \[171:170\]).
    #[bits(2)]
    pub s2or0: Cacheability,
    /// S2SH0 (bits \[173:172\]).
    #[bits(2)]
    pub s2sh0: Shareability,
    /// S2TG (bits \[175:174\]).
    #[bits(2)]
    pub s2tg: S2Tg,
    /// S2PS (bits \[178:176\]): stage-2 output size code.
    #[bits(3)]
    pub s2ps: u8,
    /// S2AA64 (bit \[179\]): AArch64 stage-2 tables.
    pub s2aa64: bool,
    /// S2ENDI (bit \[180\]): big-endian stage-2 tables.
    pub s2endi: bool,
    /// S2AFFD (bit \[181\]): access-flag fault disable.
    pub s2affd: bool,
    /// S2PTW (bit \[182\]): protected table walk.
    pub s2ptw: bool,
    /// S2HD (bit \[183\]): stage-2 dirty-state update.
    pub s2hd: bool,
    /// S2HA (bit \[184\]): stage-2 access-flag update.
    pub s2ha: bool,
    /// S2S (bit \[185\]): stall stage-2 faults.
    pub s2s: bool,
    /// S2R (bit \[186\]): record stage-2 faults.
    pub s2r: bool,
    /// Bits \[191:187\]: reserved.
    #[bits(5)]
    __: u8,
}

impl SteW2 {
    /// The VTCR field (bits \[178:160\]) as Linux composes it (`STRTAB_STE_2_VTCR`).
    pub const fn vtcr(self) -> u32 {
        ((self.raw() >> 32) & 0x7_FFFF) as u32
    }
}

/// STE word 3 (bits \[255:192\]): stage-2 translation table base.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct SteW3 {
    /// Bits \[195:192\]: reserved.
    #[bits(4)]
    __: u8,
    /// S2TTB (bits \[243:196\]), stored shifted; see [`Ste::s2ttb`].
    #[bits(48)]
    pub s2ttb_hi: u64,
    /// Bits \[255:244\]: reserved.
    #[bits(12)]
    __: u16,
}

/// An STE word this model does not interpret (words 4..7: Secure S2, MPAM, VMS).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct SteIgnored {
    /// The raw contents (IGNORED).
    pub bits: u64,
}

le_word!(SteW0, SteW1, SteW2, SteW3, SteIgnored);

/// A Stream Table Entry (64 bytes, little-endian words).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Ste {
    /// Word 0: V, Config, S1Fmt, S1ContextPtr, S1CDMax.
    pub w0: SteW0,
    /// Word 1: S1DSS, CD fetch attributes, stall/ATS/STRW, attribute overrides.
    pub w1: SteW1,
    /// Word 2: S2VMID and VTCR fields.
    pub w2: SteW2,
    /// Word 3: S2TTB.
    pub w3: SteW3,
    /// Word 4: IGNORED.
    pub w4: SteIgnored,
    /// Word 5: IGNORED.
    pub w5: SteIgnored,
    /// Word 6: IGNORED.
    pub w6: SteIgnored,
    /// Word 7: IGNORED.
    pub w7: SteIgnored,
}

const _: () = assert!(core::mem::size_of::<Ste>() == 64);
const _: () = assert!(core::mem::align_of::<Ste>() == 1);

le_record!(Ste[8] {
    w0: SteW0, w1: SteW1, w2: SteW2, w3: SteW3,
    w4: SteIgnored, w5: SteIgnored, w6: SteIgnored, w7: SteIgnored,
});

impl Ste {
    /// Size of an STE in bytes.
    pub const SIZE: u64 = 64;

    /// S1ContextPtr (bits \[55:6\]): address of the CD or L1 CD table (an IPA when stage 2 is
    /// on). Bits \[55:52\] are RES0 in SMMUv3.1..v3.3 and kept, so an out-of-range pointer is
    /// seen as such.
    pub const fn s1_context_ptr(&self) -> u64 {
        self.w0.raw() & bits_mask(55, 6)
    }

    /// Set S1ContextPtr; bits outside \[55:6\] of `addr` are dropped.
    pub const fn with_s1_context_ptr(mut self, addr: u64) -> Self {
        self.w0 = SteW0::from_raw((self.w0.raw() & !bits_mask(55, 6)) | (addr & bits_mask(55, 6)));
        self
    }

    /// S2TTB (bits \[243:196\]): stage-2 translation table base PA (bits \[51:4\]).
    pub const fn s2ttb(&self) -> u64 {
        self.w3.raw() & bits_mask(51, 4)
    }

    /// Set S2TTB; bits outside \[51:4\] of `addr` are dropped.
    pub const fn with_s2ttb(mut self, addr: u64) -> Self {
        self.w3 = SteW3::from_raw(addr & bits_mask(51, 4));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Absolute bit positions from IHI 0070 §5.2 (bit = 64 * word + offset).
    #[test]
    fn test_ste_bit_positions() {
        assert_eq!(SteW0::V_OFFSET, 0);
        assert_eq!((SteW0::CONFIG_OFFSET, SteW0::CONFIG_BITS), (1, 3));
        assert_eq!((SteW0::S1FMT_OFFSET, SteW0::S1FMT_BITS), (4, 2));
        assert_eq!(
            (
                SteW0::S1_CONTEXT_PTR_HI_OFFSET,
                SteW0::S1_CONTEXT_PTR_HI_BITS
            ),
            (6, 50)
        );
        assert_eq!((SteW0::S1CDMAX_OFFSET, SteW0::S1CDMAX_BITS), (59, 5));
        assert_eq!(64 + SteW1::S1DSS_OFFSET, 64);
        assert_eq!(64 + SteW1::MEV_OFFSET, 83);
        assert_eq!(64 + SteW1::S2FWB_OFFSET, 89);
        assert_eq!(64 + SteW1::S1STALLD_OFFSET, 91);
        assert_eq!(64 + SteW1::EATS_OFFSET, 92);
        assert_eq!(64 + SteW1::STRW_OFFSET, 94);
        assert_eq!(64 + SteW1::MEMATTR_OFFSET, 96);
        assert_eq!(64 + SteW1::MTCFG_OFFSET, 100);
        assert_eq!(64 + SteW1::ALLOCCFG_OFFSET, 101);
        assert_eq!(64 + SteW1::SHCFG_OFFSET, 108);
        assert_eq!(64 + SteW1::NSCFG_OFFSET, 110);
        assert_eq!(64 + SteW1::PRIVCFG_OFFSET, 112);
        assert_eq!(64 + SteW1::INSTCFG_OFFSET, 114);
        assert_eq!(128 + SteW2::S2T0SZ_OFFSET, 160);
        assert_eq!(128 + SteW2::S2SL0_OFFSET, 166);
        assert_eq!(128 + SteW2::S2TG_OFFSET, 174);
        assert_eq!(128 + SteW2::S2PS_OFFSET, 176);
        assert_eq!(128 + SteW2::S2AA64_OFFSET, 179);
        assert_eq!(128 + SteW2::S2ENDI_OFFSET, 180);
        assert_eq!(128 + SteW2::S2AFFD_OFFSET, 181);
        assert_eq!(128 + SteW2::S2PTW_OFFSET, 182);
        assert_eq!(128 + SteW2::S2HD_OFFSET, 183);
        assert_eq!(128 + SteW2::S2HA_OFFSET, 184);
        assert_eq!(128 + SteW2::S2S_OFFSET, 185);
        assert_eq!(128 + SteW2::S2R_OFFSET, 186);
        assert_eq!(192 + SteW3::S2TTB_HI_OFFSET, 196);
    }

    /// The KUnit S1 CD-table STE (Linux arm-smmu-v3-test.c) decodes to the fields Linux composed.
    #[test]
    fn test_ste_kunit_cdtable_ssid0() {
        let s = Ste::from_words([
            0xF800_F0F0_F0F0_F0EB,
            0x0000_0000_1800_00D6,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        assert!(s.w0.v());
        assert_eq!(s.w0.config(), SteConfig::S1_TRANS);
        assert_eq!(s.w0.s1fmt(), S1Fmt::L2_64K);
        assert_eq!(s.s1_context_ptr(), 0xF0F0_F0F0_F0C0);
        assert_eq!(s.w0.s1cdmax(), 31);
        assert_eq!(s.w1.s1dss(), S1Dss::SSID0);
        assert_eq!(s.w1.s1cir(), Cacheability::WBRA);
        assert_eq!(s.w1.s1cor(), Cacheability::WBRA);
        assert_eq!(s.w1.s1csh(), Shareability::ISH);
        assert!(s.w1.s1stalld());
        assert_eq!(s.w1.eats(), Eats::TRANS);
        assert_eq!(s.w1.shcfg(), Shareability::NSH);
        let b = Ste::from_words([
            0xF800_F0F0_F0F0_F0EB,
            0x0000_1000_1800_00D5,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        assert_eq!(b.w1.s1dss(), S1Dss::BYPASS);
        assert_eq!(b.w1.shcfg(), Shareability::RSVD);
    }

    /// The KUnit S2 STE: VTCR 0x1B6C4, S2AA64, S2PTW, S2R, S2TTB 0x000D_BEEF_DEAD_BEE0.
    #[test]
    fn test_ste_kunit_s2() {
        let s = Ste::from_words([
            0xD,
            0x0000_1000_1000_0000,
            0x0649_B6C4_0000_0000,
            0x000D_BEEF_DEAD_BEE0,
            0,
            0,
            0,
            0,
        ]);
        assert_eq!(s.w0.config(), SteConfig::S2_TRANS);
        assert!(s.w0.config().s2_used() && !s.w0.config().s1_used());
        assert_eq!(s.w1.eats(), Eats::TRANS);
        assert_eq!(s.w2.vtcr(), 0x1B6C4);
        assert_eq!(s.w2.s2t0sz(), 4);
        assert_eq!(s.w2.s2sl0(), 3);
        assert_eq!(s.w2.s2ir0(), Cacheability::WT);
        assert_eq!(s.w2.s2or0(), Cacheability::WBRA);
        assert_eq!(s.w2.s2sh0(), Shareability::ISH);
        assert_eq!(s.w2.s2tg(), S2Tg::TG_16K);
        assert_eq!(s.w2.s2ps(), 1);
        assert!(s.w2.s2aa64() && s.w2.s2ptw() && s.w2.s2r() && s.w2.s2s());
        assert!(!s.w2.s2endi() && !s.w2.s2affd());
        assert_eq!(s.w2.s2vmid(), 0);
        assert_eq!(s.s2ttb(), 0x000D_BEEF_DEAD_BEE0);
    }

    /// Linux's 4K/48-bit S2 w2 with VMID 1 is 0x044D_3590_0000_0001
    /// (`arm_smmu_make_s2_domain_ste()`).
    #[test]
    fn test_ste_linux_vtcr_example() {
        let w2 = SteW2::from_raw(0x044D_3590_0000_0001);
        assert_eq!(w2.s2vmid(), 1);
        assert_eq!(w2.vtcr(), 0x53590);
        assert_eq!(w2.s2t0sz(), 16);
        assert_eq!(w2.s2sl0(), 2);
        assert_eq!(w2.s2tg(), S2Tg::TG_4K);
        assert_eq!(w2.s2ps(), 5);
    }

    /// Memory layout: little-endian words in order, 64 bytes.
    #[test]
    fn test_ste_memory_layout() {
        let s = Ste::from_words([
            0x9,
            0x0000_1000_0000_0000,
            0,
            0,
            0,
            0,
            0,
            0x0102_0304_0506_0708,
        ]);
        let b = s.as_bytes();
        assert_eq!(b.len(), 64);
        assert_eq!(b[0], 0x9);
        assert_eq!(b[8 + 5], 0x10);
        assert_eq!(&b[56..64], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Ste::read_from_bytes(b).unwrap(), s);
        assert_eq!(core::mem::offset_of!(Ste, w3), 24);
    }
}
