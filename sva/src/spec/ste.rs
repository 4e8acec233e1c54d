//! Stream Table Entry words 0 and 1 (IHI 0070 §5.2), the part of a guest STE a nested HWPT carries.

use bitfield_struct::bitfield;

/// STE.Config (bits \[3:1\]): open enum, a guest can write any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct SteConfig(pub u8);

impl SteConfig {
    /// 0b000: abort, no event.
    pub const ABORT: Self = Self(0);
    /// 0b100: bypass both stages.
    pub const BYPASS: Self = Self(4);
    /// 0b101: stage 1 translate, stage 2 bypass.
    pub const S1_TRANS: Self = Self(5);
    /// 0b110: stage 2 only.
    pub const S2_TRANS: Self = Self(6);
    /// 0b111: nested stage 1 + stage 2.
    pub const NESTED: Self = Self(7);

    const fn from_bits(v: u8) -> Self {
        Self(v)
    }
    const fn into_bits(self) -> u8 {
        self.0
    }
}

/// STE word 0 (bits \[63:0\]).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct SteW0 {
    /// V (bit \[0\]): the entry is valid.
    pub v: bool,
    /// Config (bits \[3:1\]).
    #[bits(3)]
    pub config: SteConfig,
    /// S1Fmt (bits \[5:4\]): 0 linear CD table, 1 two-level 4 KiB leaves, 2 two-level 64 KiB.
    #[bits(2)]
    pub s1fmt: u8,
    /// S1ContextPtr (bits \[51:6\]), as an address shifted right by 6 (see [`SteW0::s1_context_ptr`]).
    #[bits(46)]
    pub s1_context_ptr_6: u64,
    /// Bits \[58:52\]: reserved.
    #[bits(7)]
    pub res0_52: u8,
    /// S1CDMax (bits \[63:59\]): log2 of the number of CDs.
    #[bits(5)]
    pub s1cdmax: u8,
}

impl SteW0 {
    /// S1ContextPtr as a byte address (an IPA under nesting), 64-byte aligned.
    pub const fn s1_context_ptr(&self) -> u64 {
        self.s1_context_ptr_6() << 6
    }
    /// Set S1ContextPtr from a byte address; bits \[5:0\] and \[63:52\] are dropped.
    pub const fn with_s1_context_ptr(self, addr: u64) -> Self {
        self.with_s1_context_ptr_6((addr >> 6) & ((1 << 46) - 1))
    }
}

/// STE word 1 (bits \[127:64\] of the entry; numbered \[63:0\] here).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct SteW1 {
    /// S1DSS (bits \[65:64\]): 0 terminate, 1 bypass, 2 substream 0.
    #[bits(2)]
    pub s1dss: u8,
    /// S1CIR (bits \[67:66\]): CD-fetch inner cacheability.
    #[bits(2)]
    pub s1cir: u8,
    /// S1COR (bits \[69:68\]): CD-fetch outer cacheability.
    #[bits(2)]
    pub s1cor: u8,
    /// S1CSH (bits \[71:70\]): CD-fetch shareability.
    #[bits(2)]
    pub s1csh: u8,
    /// Bits \[82:72\]: reserved.
    #[bits(11)]
    pub res0_8: u16,
    /// MEV (bit \[83\]): merge events.
    pub mev: bool,
    /// Bits \[88:84\]: reserved.
    #[bits(5)]
    pub res0_20: u8,
    /// S2FWB (bit \[89\]).
    pub s2fwb: bool,
    /// Bit \[90\]: reserved.
    pub res0_26: bool,
    /// S1STALLD (bit \[91\]).
    pub s1stalld: bool,
    /// EATS (bits \[93:92\]): 0 no ATS, 1 full ATS, 2 split-stage.
    #[bits(2)]
    pub eats: u8,
    /// STRW (bits \[95:94\]): 0 NS-EL1, 2 EL2.
    #[bits(2)]
    pub strw: u8,
    /// MemAttr (bits \[99:96\]).
    #[bits(4)]
    pub memattr: u8,
    /// MTCFG (bit \[100\]).
    pub mtcfg: bool,
    /// ALLOCCFG (bits \[104:101\]).
    #[bits(4)]
    pub alloccfg: u8,
    /// Bits \[107:105\]: reserved.
    #[bits(3)]
    pub res0_41: u8,
    /// SHCFG (bits \[109:108\]).
    #[bits(2)]
    pub shcfg: u8,
    /// NSCFG (bits \[111:110\]).
    #[bits(2)]
    pub nscfg: u8,
    /// PRIVCFG (bits \[113:112\]).
    #[bits(2)]
    pub privcfg: u8,
    /// INSTCFG (bits \[115:114\]).
    #[bits(2)]
    pub instcfg: u8,
    /// Bits \[127:116\]: reserved.
    #[bits(12)]
    pub res0_52: u16,
}

/// STE.S1DSS values.
pub mod s1dss {
    /// Non-substream traffic is terminated (F_STREAM_DISABLED).
    pub const TERMINATE: u8 = 0;
    /// Non-substream traffic bypasses stage 1.
    pub const BYPASS: u8 = 1;
    /// Non-substream traffic uses CD 0.
    pub const SSID0: u8 = 2;
}

/// The bits of word 0 the kernel accepts in a nested vSTE (`STRTAB_STE_0_NESTING_ALLOWED`):
/// V, Config, S1Fmt, S1ContextPtr, S1CDMax.
pub const NESTING_ALLOWED_W0: u64 = 0xF80F_FFFF_FFFF_FFFF;
/// The bits of word 1 the kernel accepts (`STRTAB_STE_1_NESTING_ALLOWED`): S1DSS, S1CIR, S1COR,
/// S1CSH, S1STALLD, EATS.
pub const NESTING_ALLOWED_W1: u64 = 0x0000_0000_3800_00FF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word0_fields_sit_at_ihi0070_positions() {
        assert_eq!(SteW0::new().with_v(true).into_bits(), 1);
        assert_eq!(
            SteW0::new().with_config(SteConfig::S1_TRANS).into_bits(),
            0b1010
        );
        assert_eq!(SteW0::new().with_s1fmt(3).into_bits(), 0x30);
        assert_eq!(
            SteW0::new()
                .with_s1_context_ptr(0x000F_FFFF_FFFF_FFC0)
                .into_bits(),
            0x000F_FFFF_FFFF_FFC0
        );
        assert_eq!(
            SteW0::new().with_s1cdmax(0x1f).into_bits(),
            0xF800_0000_0000_0000
        );
        // Linux's abort and bypass vSTEs
        assert_eq!(SteW0::from_bits(0x1).config(), SteConfig::ABORT);
        assert_eq!(SteW0::from_bits(0x9).config(), SteConfig::BYPASS);
    }

    #[test]
    fn word1_fields_sit_at_ihi0070_positions() {
        assert_eq!(SteW1::new().with_s1dss(3).into_bits(), 0x3);
        assert_eq!(
            SteW1::new()
                .with_s1cir(3)
                .with_s1cor(3)
                .with_s1csh(3)
                .into_bits(),
            0xFC
        );
        assert_eq!(SteW1::new().with_mev(true).into_bits(), 1 << 19);
        assert_eq!(SteW1::new().with_s2fwb(true).into_bits(), 1 << 25);
        assert_eq!(SteW1::new().with_s1stalld(true).into_bits(), 1 << 27);
        assert_eq!(SteW1::new().with_eats(3).into_bits(), 3 << 28);
        assert_eq!(SteW1::new().with_strw(3).into_bits(), 3 << 30);
        assert_eq!(SteW1::new().with_memattr(0xf).into_bits(), 0xf << 32);
        assert_eq!(SteW1::new().with_mtcfg(true).into_bits(), 1 << 36);
        assert_eq!(SteW1::new().with_alloccfg(0xf).into_bits(), 0xf << 37);
        assert_eq!(SteW1::new().with_shcfg(3).into_bits(), 3 << 44);
        assert_eq!(SteW1::new().with_nscfg(3).into_bits(), 3 << 46);
        assert_eq!(SteW1::new().with_privcfg(3).into_bits(), 3 << 48);
        assert_eq!(SteW1::new().with_instcfg(3).into_bits(), 3 << 50);
    }

    #[test]
    fn nesting_masks_match_the_kernel() {
        let w0 = SteW0::new()
            .with_v(true)
            .with_config(SteConfig(7))
            .with_s1fmt(3)
            .with_s1_context_ptr(u64::MAX)
            .with_s1cdmax(0x1f);
        assert_eq!(w0.into_bits(), NESTING_ALLOWED_W0);
        let w1 = SteW1::new()
            .with_s1dss(3)
            .with_s1cir(3)
            .with_s1cor(3)
            .with_s1csh(3)
            .with_s1stalld(true)
            .with_eats(3);
        assert_eq!(w1.into_bits(), NESTING_ALLOWED_W1);
    }
}
