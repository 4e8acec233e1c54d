//! Guest STE words 0–1 → the configuration installed on the host (Linux arm-smmu-v3-iommufd.c
//! `arm_smmu_validate_vste()`).
//!
//! The kernel accepts only V, Config, S1Fmt, S1ContextPtr, S1CDMax in word 0 and S1DSS, S1CIR,
//! S1COR, S1CSH, S1STALLD, EATS in word 1 (anything else: EIO). What we do with each guest field:
//!
//! | Field | Treatment |
//! |---|---|
//! | V = 0, Config 0b000 | [`StreamConfig::Abort`] (shared abort HWPT) |
//! | Config 0b001–0b011 (reserved) | Policy: abort, as QEMU and OpenVMM |
//! | Config 0b100 | [`StreamConfig::Bypass`] (shared bypass HWPT = stage 2 only) |
//! | Config 0b101 | [`StreamConfig::Translate`] with the canonical words |
//! | Config 0b110 / 0b111 | **rejected** ([`SteError::Config`]): S2P is not advertised |
//! | S1Fmt 3 / 1–2 without CD2L | **rejected** (C_BAD_STE) |
//! | S1ContextPtr | kept; Policy: bits at and above the advertised OAS cleared (RES0 for the guest) |
//! | S1CDMax > SSIDSIZE | **rejected** |
//! | S1DSS | kept when S1CDMax > 0; cleared when S1CDMax = 0 (IGNORED by the SMMU then) |
//! | S1CIR, S1COR, S1CSH, S1STALLD | kept |
//! | EATS | kept as 0/1 when ATS is advertised for the endpoint, cleared otherwise (policy); 2/3 **rejected** |
//! | STRW ≠ 0 | **rejected**: EL2 needs HYP, which is not advertised; 1/3 are reserved |
//! | PRIVCFG, INSTCFG ≠ 0 | **rejected**: they change permission checks; the host cannot express them |
//! | SHCFG, MTCFG, MemAttr, ALLOCCFG, NSCFG | cleared: attribute overrides; the host requires a coherent path (CANWBS or S2FWB) and installs its own. Linux guests set SHCFG = 1, which the kernel would refuse |
//! | MEV | cleared: the host always sets MEV for nested STEs |
//! | S2FWB | cleared: meaningless without guest stage 2 |
//! | reserved bits (w0 \[58:52\], w1 rest) | cleared (Policy: reserved fields are not checked) |
//!
//! Words 2–7 hold stage-2 and secure fields, IGNORED with Config 0b0xx/0b100/0b101, so the vSMMU
//! never needs to pass them.

use viommu_smmuv3::spec::ste::{Eats, S1Dss, S1Fmt, SteConfig, SteW0, SteW1, Strw};

use crate::error::SteError;
use crate::spec::ste::{
    s1_context_ptr, with_s1_context_ptr, NESTING_ALLOWED_W0, NESTING_ALLOWED_W1,
};

/// A guest STE reduced to exactly what the host accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CanonicalSte {
    /// Word 0 (V = 1, Config = S1_TRANS).
    pub w0: SteW0,
    /// Word 1.
    pub w1: SteW1,
}

impl CanonicalSte {
    /// The 16-byte payload of `struct iommu_hwpt_arm_smmuv3`.
    pub const fn words(&self) -> [u64; 2] {
        [self.w0.raw(), self.w1.raw()]
    }
}

/// The host-side configuration of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamConfig {
    /// Terminate all traffic (shared abort HWPT).
    Abort,
    /// Stage 2 only (shared bypass HWPT).
    Bypass,
    /// Guest stage 1 (its CD table) nested over stage 2.
    Translate(CanonicalSte),
}

/// What the guest is allowed to use, from its frozen ID registers and the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteContext {
    /// Advertised OAS in bits (S1ContextPtr is an IPA below it).
    pub oas_bits: u8,
    /// Advertised IDR1.SSIDSIZE.
    pub ssid_bits: u8,
    /// Advertised IDR0.CD2L.
    pub cd2l: bool,
    /// ATS advertised for this endpoint.
    pub ats: bool,
}

impl SteContext {
    /// From frozen guest registers.
    pub fn from_guest(g: &crate::caps::GuestIdrs, endpoint_ats: bool) -> Self {
        Self {
            oas_bits: g.oas_bits(),
            ssid_bits: g.idr1().ssidsize(),
            cd2l: g.idr0().cd2l(),
            ats: endpoint_ats && g.idr0().ats(),
        }
    }
}

/// Canonicalise guest STE words 0–1 (pure). See the module table for every field.
pub fn canonicalise(words: [u64; 2], ctx: &SteContext) -> Result<StreamConfig, SteError> {
    let w0 = SteW0::from_raw(words[0]);
    let w1 = SteW1::from_raw(words[1]);
    if !w0.v() {
        return Ok(StreamConfig::Abort);
    }
    match w0.config().0 {
        0..=3 => return Ok(StreamConfig::Abort),
        4 => return Ok(StreamConfig::Bypass),
        5 => {}
        c => return Err(SteError::Config(c)),
    }
    if w1.strw() != Strw::NSEL1 {
        return Err(SteError::Strw(w1.strw().0));
    }
    if w1.privcfg().0 != 0 {
        return Err(SteError::PermissionOverride {
            field: "PRIVCFG",
            value: w1.privcfg().0,
        });
    }
    if w1.instcfg().0 != 0 {
        return Err(SteError::PermissionOverride {
            field: "INSTCFG",
            value: w1.instcfg().0,
        });
    }
    // S1Fmt is IGNORED when S1CDMax = 0 (single CD).
    let s1fmt = if w0.s1cdmax() == 0 { 0 } else { w0.s1fmt().0 };
    if s1fmt == 3 {
        return Err(SteError::S1FmtReserved);
    }
    if s1fmt != 0 && !ctx.cd2l {
        return Err(SteError::S1FmtNeedsCd2l(s1fmt));
    }
    if w0.s1cdmax() > ctx.ssid_bits {
        return Err(SteError::S1CdMax {
            s1cdmax: w0.s1cdmax(),
            ssidsize: ctx.ssid_bits,
        });
    }
    let eats = match (w1.eats().0, ctx.ats) {
        (_, false) => 0,
        (e @ (0 | 1), true) => e,
        (e, true) => return Err(SteError::Eats(e)),
    };
    let oas_mask = if ctx.oas_bits >= 64 {
        u64::MAX
    } else {
        (1u64 << ctx.oas_bits) - 1
    };
    let out0 = SteW0::new()
        .with_v(true)
        .with_config(SteConfig::S1_TRANS)
        .with_s1fmt(S1Fmt(s1fmt))
        .with_s1cdmax(w0.s1cdmax());
    let out0 = with_s1_context_ptr(out0, s1_context_ptr(w0) & oas_mask);
    let out1 = SteW1::new()
        .with_s1dss(if w0.s1cdmax() == 0 {
            S1Dss::TERMINATE
        } else {
            w1.s1dss()
        })
        .with_s1cir(w1.s1cir())
        .with_s1cor(w1.s1cor())
        .with_s1csh(w1.s1csh())
        .with_s1stalld(w1.s1stalld())
        .with_eats(Eats(eats));
    debug_assert_eq!(out0.raw() & !NESTING_ALLOWED_W0, 0);
    debug_assert_eq!(out1.raw() & !NESTING_ALLOWED_W1, 0);
    Ok(StreamConfig::Translate(CanonicalSte { w0: out0, w1: out1 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: SteContext = SteContext {
        oas_bits: 44,
        ssid_bits: 0,
        cd2l: true,
        ats: false,
    };

    fn translate(words: [u64; 2], ctx: &SteContext) -> [u64; 2] {
        match canonicalise(words, ctx) {
            Ok(StreamConfig::Translate(c)) => c.words(),
            other => panic!("expected Translate, got {other:?}"),
        }
    }

    #[test]
    fn invalid_abort_and_reserved_configs_become_abort() {
        assert_eq!(canonicalise([0, 0], &CTX), Ok(StreamConfig::Abort));
        assert_eq!(
            canonicalise([0xa, 0], &CTX),
            Ok(StreamConfig::Abort),
            "V=0 with Config 5"
        );
        assert_eq!(canonicalise([0x1, 0], &CTX), Ok(StreamConfig::Abort));
        for cfg in 1..=3u64 {
            assert_eq!(
                canonicalise([1 | cfg << 1, 0], &CTX),
                Ok(StreamConfig::Abort)
            );
        }
    }

    #[test]
    fn linux_bypass_ste_with_shcfg_becomes_shared_bypass() {
        // Linux: V | Config=bypass, w1 SHCFG=incoming
        assert_eq!(canonicalise([0x9, 1 << 44], &CTX), Ok(StreamConfig::Bypass));
    }

    #[test]
    fn linux_s1_ste_keeps_allowed_fields_and_drops_shcfg_and_mev() {
        // Linux guest S1 STE: CD table at 0x4000_0040... S1DSS=SSID0, S1CIR=S1COR=WBRA, S1CSH=ISH, SHCFG=1, MEV
        let w0 = 0x1 | 5 << 1 | 0x4000_1000;
        let w1 = 2 | 1 << 2 | 1 << 4 | 3 << 6 | 1 << 44 | 1 << 19 | 1 << 25;
        // S1CDMax = 0: S1DSS is IGNORED and cleared
        assert_eq!(translate([w0, w1], &CTX), [0x4000_100b, 0xd4]);
    }

    #[test]
    fn s1dss_is_kept_with_substreams() {
        let ctx = SteContext {
            ssid_bits: 20,
            ..CTX
        };
        let w0 = 0xb | 0x8000 | 8u64 << 59;
        assert_eq!(translate([w0, 2], &ctx), [w0, 2]);
    }

    #[test]
    fn output_never_leaves_the_kernel_masks() {
        let ctx = SteContext {
            oas_bits: 52,
            ssid_bits: 20,
            cd2l: true,
            ats: true,
        };
        let w0 = !0xe | 5 << 1;
        let w0 = w0 & !(3 << 4) & !(0x1f << 59) | 1 << 4 | 20 << 59; // S1Fmt 1, S1CDMax 20
        let w1 = 1 << 28 | 0xff | 1 << 27;
        let [o0, o1] = translate([w0, w1 & !(3 << 48) & !(3 << 50) & !(3 << 30)], &ctx);
        assert_eq!(o0 & !NESTING_ALLOWED_W0, 0);
        assert_eq!(o1 & !NESTING_ALLOWED_W1, 0);
        assert_eq!(o1 >> 28 & 3, 1, "EATS kept when ATS is advertised");
    }

    #[test]
    fn context_pointer_is_truncated_to_the_advertised_oas() {
        let w0 = 0xb | 0x000F_0000_0000_1000;
        assert_eq!(translate([w0, 0], &CTX), [0xb | 0x1000, 0]);
    }

    #[test]
    fn eats_is_cleared_without_ats_and_split_stage_is_rejected_with_it() {
        assert_eq!(translate([0xb, 1 << 28], &CTX)[1], 0);
        let ctx = SteContext { ats: true, ..CTX };
        assert_eq!(canonicalise([0xb, 2 << 28], &ctx), Err(SteError::Eats(2)));
    }

    #[test]
    fn stage2_configs_are_rejected_naming_config() {
        let e = canonicalise([0xd, 0], &CTX).err();
        assert_eq!(e, Some(SteError::Config(6)));
        assert_eq!(e.map(|e| e.field()), Some("Config"));
        assert_eq!(canonicalise([0xf, 0], &CTX), Err(SteError::Config(7)));
    }

    #[test]
    fn fields_that_matter_are_rejected_not_dropped() {
        assert_eq!(canonicalise([0xb, 2 << 30], &CTX), Err(SteError::Strw(2)));
        assert_eq!(
            canonicalise([0xb, 3 << 48], &CTX),
            Err(SteError::PermissionOverride {
                field: "PRIVCFG",
                value: 3
            })
        );
        assert_eq!(
            canonicalise([0xb, 2 << 50], &CTX),
            Err(SteError::PermissionOverride {
                field: "INSTCFG",
                value: 2
            })
        );
        assert_eq!(
            canonicalise([0xb | 1 << 59, 0], &CTX),
            Err(SteError::S1CdMax {
                s1cdmax: 1,
                ssidsize: 0
            })
        );
        let ctx = SteContext {
            ssid_bits: 20,
            cd2l: false,
            ..CTX
        };
        assert_eq!(
            canonicalise([0xb | 1 << 4 | 10 << 59, 0], &ctx),
            Err(SteError::S1FmtNeedsCd2l(1))
        );
        let ctx = SteContext {
            ssid_bits: 20,
            ..CTX
        };
        assert_eq!(
            canonicalise([0xb | 3 << 4 | 10 << 59, 0], &ctx),
            Err(SteError::S1FmtReserved)
        );
    }

    #[test]
    fn equal_meaning_gives_equal_canonical_words() {
        // differing only in cleared fields (SHCFG, MEV, reserved bits, S1DSS with S1CDMax=0)
        let a = canonicalise([0xb | 0x1000, 0], &CTX);
        let b = canonicalise(
            [0xb | 0x1000 | 0x7f << 52, 1 << 44 | 1 << 19 | 2 | 1 << 60],
            &CTX,
        );
        assert_eq!(a, b);
    }
}
