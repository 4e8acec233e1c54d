//! Unit tests of configuration decode, table walks, the cache, hitless updates, and property tests.
//! Fixtures are built the way the Linux driver composes entries (`arm_smmu_make_*_ste()`,
//! `arm_smmu_make_s1_cd()`).

mod cache;
mod cd;
mod hitless;
mod props;
mod ste;
mod words;

use crate::caps::{Caps, SmmuConfig};
use crate::config::{CdTableFormat, S1Config, S1Dss as Dss};
use crate::spec::cd::{CdW0, Tg0, Tg1};
use crate::spec::idr::StallModel;
use crate::spec::ste::{Eats, S1Dss, S1Fmt, S2Tg, SteConfig, SteW0, SteW1, SteW2};
use crate::spec::{Cacheability, Shareability};

/// The default capabilities.
pub(super) fn caps() -> Caps {
    SmmuConfig::default().caps().unwrap()
}

/// Capabilities like the KUnit fake device: STALLS and ATTR_TYPES_OVR, plus ATS.
pub(super) fn kunit_caps() -> Caps {
    SmmuConfig {
        stall_model: StallModel::STALL_TERMINATE,
        attr_types_ovr: true,
        ats: true,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap()
}

/// A stage-1 STE's configuration for CD decode: the CD table at `ptr`, stalls allowed, 48-bit
/// PAs.
pub(super) fn s1(format: CdTableFormat, cd_max_bits: u32, dss: Dss, ptr: u64) -> S1Config {
    S1Config {
        cd_table: ptr,
        format,
        cd_max_bits,
        dss,
        stall_disabled: false,
        pa_bits: 48,
    }
}

/// [`s1`] of a stream with a single CD (S1CDMax = 0, S1DSS = SSID0).
pub(super) fn single() -> S1Config {
    s1(CdTableFormat::Single, 0, Dss::Substream0, 0)
}

/// Linux's abort STE.
pub(super) const ABORT: [u64; 8] = [0x1, 0, 0, 0, 0, 0, 0, 0];

/// Linux's bypass STE (`shcfg`: with ATTR_TYPES_OVR).
pub(super) fn bypass(shcfg: bool) -> [u64; 8] {
    let w1 = if shcfg {
        SteW1::new().with_shcfg(Shareability::RSVD).raw()
    } else {
        0
    };
    [0x9, w1, 0, 0, 0, 0, 0, 0]
}

/// Options of a CD-table STE as `arm_smmu_make_cdtable_ste` composes it.
#[derive(Clone, Copy)]
pub(super) struct CdTableSte {
    pub ptr: u64,
    pub fmt: S1Fmt,
    pub cdmax: u8,
    pub dss: S1Dss,
    pub ats: bool,
    pub stalld: bool,
    pub shcfg: bool,
    pub config: SteConfig,
}

impl CdTableSte {
    /// KUnit-like: 64K leaves, 2^20 CDs, S1DSS = SSID0, ATS, no stall.
    pub fn kunit(dss: S1Dss) -> Self {
        Self {
            ptr: 0xF0F0_F0F0_F0C0,
            fmt: S1Fmt::L2_64K,
            cdmax: 20,
            dss,
            ats: true,
            stalld: true,
            shcfg: dss == S1Dss::BYPASS,
            config: SteConfig::S1_TRANS,
        }
    }

    pub fn words(self) -> [u64; 8] {
        let w0 = SteW0::new()
            .with_v(true)
            .with_config(self.config)
            .with_s1fmt(self.fmt)
            .with_s1cdmax(self.cdmax);
        let w0 = crate::spec::ste::Ste::from_words([w0.raw(), 0, 0, 0, 0, 0, 0, 0])
            .with_s1_context_ptr(self.ptr)
            .w0
            .raw();
        let mut w1 = SteW1::new()
            .with_s1dss(self.dss)
            .with_s1cir(Cacheability::WBRA)
            .with_s1cor(Cacheability::WBRA)
            .with_s1csh(Shareability::ISH)
            .with_s1stalld(self.stalld);
        if self.ats {
            w1 = w1.with_eats(Eats::TRANS);
        }
        if self.shcfg {
            w1 = w1.with_shcfg(Shareability::RSVD);
        }
        [w0, w1.raw(), 0, 0, 0, 0, 0, 0]
    }
}

/// A stage-2 STE as `arm_smmu_make_s2_domain_ste` composes it: 4K granule, IAS = OAS = 48
/// (VTCR 0x53590), S2AA64 | S2PTW | S2R.
pub(super) fn s2_ste(vmid: u16, ttb: u64, ats: bool, stall: bool, shcfg: bool) -> [u64; 8] {
    let mut w1 = SteW1::new();
    if ats {
        w1 = w1.with_eats(Eats::TRANS);
    }
    if shcfg {
        w1 = w1.with_shcfg(Shareability::RSVD);
    }
    let w2 = SteW2::new()
        .with_s2vmid(vmid)
        .with_s2t0sz(16)
        .with_s2sl0(2)
        .with_s2ir0(Cacheability::WBRA)
        .with_s2or0(Cacheability::WBRA)
        .with_s2sh0(Shareability::ISH)
        .with_s2tg(S2Tg::TG_4K)
        .with_s2ps(5)
        .with_s2aa64(true)
        .with_s2ptw(true)
        .with_s2s(stall)
        .with_s2r(true);
    [
        0xD,
        w1.raw(),
        w2.raw(),
        ttb & 0x000F_FFFF_FFFF_FFF0,
        0,
        0,
        0,
        0,
    ]
}

/// An S1 CD as `arm_smmu_make_s1_cd` composes it (4K pages, coherent, EPD1).
pub(super) fn s1_cd(asid: u16, ttb0: u64, t0sz: u8, ips: u8) -> [u64; 8] {
    let w0 = CdW0::new()
        .with_t0sz(t0sz)
        .with_tg0(Tg0::TG0_4K)
        .with_ir0(Cacheability::WBRA)
        .with_or0(Cacheability::WBRA)
        .with_sh0(Shareability::ISH)
        .with_epd1(true)
        .with_v(true)
        .with_ips(ips)
        .with_aa64(true)
        .with_r(true)
        .with_a(true)
        .with_aset(true)
        .with_asid(asid);
    [
        w0.raw(),
        ttb0 & 0x000F_FFFF_FFFF_FFF0,
        0,
        0x0000_0000_F404_FF44,
        0,
        0,
        0,
        0,
    ]
}

/// An unused TG1 value, for tests that set it.
pub(super) const TG1_4K: Tg1 = Tg1::TG1_4K;
