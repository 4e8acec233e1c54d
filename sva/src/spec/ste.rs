//! What of a guest STE's words 0 and 1 (viommu-smmuv3's [`SteW0`] and
//! [`SteW1`](viommu_smmuv3::spec::ste::SteW1)) the kernel accepts in a nested vSTE
//! (`struct iommu_hwpt_arm_smmuv3`).

use viommu_smmuv3::spec::ste::SteW0;

/// The bits of word 0 the kernel accepts in a nested vSTE (`STRTAB_STE_0_NESTING_ALLOWED`):
/// V, Config, S1Fmt, S1ContextPtr, S1CDMax.
pub const NESTING_ALLOWED_W0: u64 = 0xF80F_FFFF_FFFF_FFFF;
/// The bits of word 1 the kernel accepts (`STRTAB_STE_1_NESTING_ALLOWED`): S1DSS, S1CIR, S1COR,
/// S1CSH, S1STALLD, EATS.
pub const NESTING_ALLOWED_W1: u64 = 0x0000_0000_3800_00FF;

/// S1ContextPtr as the kernel masks it (`STRTAB_STE_0_S1CTXPTR_MASK`, bits \[51:6\]); the STE
/// field reaches bit 55, whose top bits are RES0 up to SMMUv3.3 and outside the nesting mask.
pub const S1_CONTEXT_PTR_MASK: u64 = 0x000F_FFFF_FFFF_FFC0;

/// S1ContextPtr of word 0 as a byte address (bits \[51:6\]).
pub const fn s1_context_ptr(w0: SteW0) -> u64 {
    w0.raw() & S1_CONTEXT_PTR_MASK
}

/// `w0` with S1ContextPtr set from a byte address; bits outside \[51:6\] are dropped.
pub const fn with_s1_context_ptr(w0: SteW0, addr: u64) -> SteW0 {
    w0.with_s1_context_ptr_hi((addr & S1_CONTEXT_PTR_MASK) >> 6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_smmuv3::spec::ste::{Eats, InstCfg, PrivCfg, S1Dss, S1Fmt, SteConfig, SteW1, Strw};
    use viommu_smmuv3::spec::{Cacheability, Shareability};

    #[test]
    fn word0_fields_sit_at_ihi0070_positions() {
        assert_eq!(SteW0::new().with_v(true).raw(), 1);
        assert_eq!(SteW0::new().with_config(SteConfig::S1_TRANS).raw(), 0b1010);
        assert_eq!(SteW0::new().with_s1fmt(S1Fmt(3)).raw(), 0x30);
        assert_eq!(
            with_s1_context_ptr(SteW0::new(), 0x000F_FFFF_FFFF_FFC0).raw(),
            0x000F_FFFF_FFFF_FFC0
        );
        assert_eq!(SteW0::new().with_s1cdmax(0x1f).raw(), 0xF800_0000_0000_0000);
        // Linux's abort and bypass vSTEs
        assert_eq!(SteW0::from_raw(0x1).config(), SteConfig::ABORT);
        assert_eq!(SteW0::from_raw(0x9).config(), SteConfig::BYPASS);
    }

    #[test]
    fn word1_fields_sit_at_ihi0070_positions() {
        assert_eq!(SteW1::new().with_s1dss(S1Dss(3)).raw(), 0x3);
        assert_eq!(
            SteW1::new()
                .with_s1cir(Cacheability(3))
                .with_s1cor(Cacheability(3))
                .with_s1csh(Shareability(3))
                .raw(),
            0xFC
        );
        assert_eq!(SteW1::new().with_mev(true).raw(), 1 << 19);
        assert_eq!(SteW1::new().with_s2fwb(true).raw(), 1 << 25);
        assert_eq!(SteW1::new().with_s1stalld(true).raw(), 1 << 27);
        assert_eq!(SteW1::new().with_eats(Eats(3)).raw(), 3 << 28);
        assert_eq!(SteW1::new().with_strw(Strw(3)).raw(), 3 << 30);
        assert_eq!(SteW1::new().with_memattr(0xf).raw(), 0xf << 32);
        assert_eq!(SteW1::new().with_mtcfg(true).raw(), 1 << 36);
        assert_eq!(SteW1::new().with_alloccfg(0xf).raw(), 0xf << 37);
        assert_eq!(SteW1::new().with_shcfg(Shareability(3)).raw(), 3 << 44);
        assert_eq!(SteW1::new().with_nscfg(3).raw(), 3 << 46);
        assert_eq!(SteW1::new().with_privcfg(PrivCfg(3)).raw(), 3 << 48);
        assert_eq!(SteW1::new().with_instcfg(InstCfg(3)).raw(), 3 << 50);
    }

    #[test]
    fn nesting_masks_match_the_kernel() {
        let w0 = SteW0::new()
            .with_v(true)
            .with_config(SteConfig(7))
            .with_s1fmt(S1Fmt(3))
            .with_s1cdmax(0x1f);
        assert_eq!(with_s1_context_ptr(w0, u64::MAX).raw(), NESTING_ALLOWED_W0);
        let w1 = SteW1::new()
            .with_s1dss(S1Dss(3))
            .with_s1cir(Cacheability(3))
            .with_s1cor(Cacheability(3))
            .with_s1csh(Shareability(3))
            .with_s1stalld(true)
            .with_eats(Eats(3));
        assert_eq!(w1.raw(), NESTING_ALLOWED_W1);
        assert_eq!(
            s1_context_ptr(SteW0::from_raw(u64::MAX)),
            S1_CONTEXT_PTR_MASK
        );
    }
}
