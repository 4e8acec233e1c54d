//! STE decode and stream-table walks.

use viommu_common::addr::Granule;
use viommu_common::id::Vmid;
use viommu_common::mem;
use viommu_common::testing::guest_ram;

use super::*;
use crate::caps::SmmuConfig;
use crate::config::ste::{decode_ste, StreamTable, StrtabFormat};
use crate::config::{
    AtsMode, CdTableFormat, ConfigError, Regime, S1Dss as Dss, StreamAttrs, StreamConfig,
};
use crate::spec::idr::StallModel;
use crate::spec::regs::{StrtabBase, StrtabBaseCfg};
use crate::spec::ste::{PrivCfg, Ste, Strw};

fn dec(w: [u64; 8], caps: &Caps) -> Result<StreamConfig, ConfigError> {
    decode_ste(&Ste::from_words(w), caps)
}

fn is_bad_ste(r: Result<StreamConfig, ConfigError>) -> bool {
    matches!(r, Err(ConfigError::BadSte { .. }))
}

/// Linux's abort STE (w0 = 0x1) aborts silently; V = 0 is C_BAD_STE; reserved Configs abort.
#[test]
fn test_ste_abort_and_invalid() {
    assert_eq!(dec(ABORT, &caps()), Ok(StreamConfig::Abort));
    assert!(is_bad_ste(dec([0; 8], &caps())));
    assert!(is_bad_ste(dec([0x8, 0, 0, 0, 0, 0, 0, 0], &caps())));
    for cfg in 1..=3u64 {
        assert_eq!(
            dec([1 | cfg << 1, !0, !0, !0, 0, 0, 0, 0], &caps()),
            Ok(StreamConfig::Abort)
        );
    }
}

/// Linux's bypass STE 0x9 bypasses; SHCFG is honoured only with ATTR_TYPES_OVR.
#[test]
fn test_ste_bypass() {
    assert_eq!(
        dec(bypass(false), &caps()),
        Ok(StreamConfig::Bypass(StreamAttrs::INCOMING))
    );
    let Ok(StreamConfig::Bypass(a)) = dec(
        [0x9, 0x0000_3000_0000_0000, 0, 0, 0, 0, 0, 0],
        &kunit_caps(),
    ) else {
        panic!()
    };
    assert_eq!(a.shcfg, Shareability::ISH);
    assert_eq!(
        dec([0x9, 0x0000_3000_0000_0000, 0, 0, 0, 0, 0, 0], &caps()),
        Ok(StreamConfig::Bypass(StreamAttrs::INCOMING))
    );
}

/// The KUnit-like CD-table STE decodes to its S1 configuration.
#[test]
fn test_ste_cdtable_decode() {
    let c = dec(CdTableSte::kunit(S1Dss::SSID0).words(), &kunit_caps()).unwrap();
    let StreamConfig::Translate(t) = c else {
        panic!("{c:?}")
    };
    let s1 = t.s1.unwrap();
    assert!(t.s2.is_none());
    assert_eq!(s1.cd_table, 0xF0F0_F0F0_F0C0);
    assert_eq!(s1.format, CdTableFormat::TwoLevel { leaf_bits: 10 });
    assert_eq!(s1.cd_max_bits, 20);
    assert_eq!(s1.dss, Dss::Substream0);
    assert!(s1.stall_disabled);
    assert_eq!(t.ats, AtsMode::Full);
    assert_eq!(t.regime, Regime::El1);
    assert_eq!(t.vmid, Vmid(0));
    // EATS is ignored without IDR0.ATS; S1STALLD is illegal without the stall model.
    let mut nostall = CdTableSte::kunit(S1Dss::SSID0);
    nostall.stalld = false;
    let StreamConfig::Translate(t) = dec(nostall.words(), &caps()).unwrap() else {
        panic!()
    };
    assert_eq!(t.ats, AtsMode::Abort);
    assert!(is_bad_ste(dec(
        CdTableSte::kunit(S1Dss::SSID0).words(),
        &caps()
    )));
}

/// Linux's S2 STE (VTCR 0x53590, VMID 1): w2 = 0x044D_3590_0000_0001.
#[test]
fn test_ste_s2_decode_linux_values() {
    let w = s2_ste(1, 0x4_1234_5000, false, false, false);
    assert_eq!(w[2], 0x044D_3590_0000_0001);
    let StreamConfig::Translate(t) = dec(w, &caps()).unwrap() else {
        panic!()
    };
    let s2 = t.s2.unwrap();
    assert!(t.s1.is_none());
    assert_eq!(t.vmid, Vmid(1));
    assert_eq!(s2.walk.granule, Granule::K4);
    assert_eq!((s2.walk.t0sz, s2.walk.sl0, s2.walk.ps_bits), (16, 2, 48));
    assert_eq!(s2.walk.vttb, 0x4_1234_5000);
    assert_eq!(s2.geometry.start_level, 0);
    assert!(s2.record && s2.ptw && !s2.stall);
    // S2S with STALL_MODEL = 1 is illegal; fine with STALL_MODEL = 0.
    assert!(is_bad_ste(dec(
        s2_ste(1, 0x4000_0000, false, true, false),
        &caps()
    )));
    assert!(dec(s2_ste(1, 0x4000_0000, false, true, false), &kunit_caps()).is_ok());
}

/// Nested (Config 0b111): both stages; the CD pointer is an IPA and not checked against OAS.
#[test]
fn test_ste_nested_decode() {
    let mut w = s2_ste(3, 0x4000_0000, false, false, false);
    let mut cdt = CdTableSte::kunit(S1Dss::SSID0);
    cdt.stalld = false;
    cdt.ats = false;
    cdt.config = SteConfig::NESTED;
    cdt.ptr = 0x000F_0000_0000_0000;
    let s1w = cdt.words();
    w[0] = s1w[0];
    w[1] |= s1w[1];
    let StreamConfig::Translate(t) = dec(w, &caps()).unwrap() else {
        panic!()
    };
    assert!(t.s1.is_some() && t.s2.is_some());
    assert_eq!(t.vmid, Vmid(3));
    // The same pointer without nesting is beyond the 48-bit OAS.
    cdt.config = SteConfig::S1_TRANS;
    assert!(is_bad_ste(dec(cdt.words(), &caps())));
}

/// Each illegal STE is C_BAD_STE (IHI 0070 §5.2, §7.3), never a panic.
#[test]
fn test_ste_illegal_cases() {
    let c = caps();
    let s2 = s2_ste(1, 0x4000_0000, false, false, false);
    let with_w2 = |f: fn(SteW2) -> SteW2| {
        let mut w = s2;
        w[2] = f(SteW2::from_raw(w[2])).raw();
        w
    };
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2aa64(false)), &c)));
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2endi(true)), &c)));
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2tg(S2Tg(3))), &c)));
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2sl0(3)), &c)));
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2t0sz(40)), &c)));
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2t0sz(4)), &c)));
    // 4K start level 0 with a 32-bit IPA: inconsistent.
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2t0sz(32)), &c)));
    let no16k = SmmuConfig {
        granules: crate::caps::GranuleSet {
            k4: true,
            k16: false,
            k64: true,
        },
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_ste(dec(
        with_w2(|w| w.with_s2tg(S2Tg::TG_16K).with_s2sl0(1).with_s2t0sz(24)),
        &no16k
    )));
    let mut cdt = CdTableSte::kunit(S1Dss::SSID0);
    cdt.stalld = false;
    // S1Fmt = 0b11 is Reserved and behaves as linear (IHI 0070 §5.2).
    let mut w = cdt.words();
    w[0] |= 3 << 4;
    let Ok(StreamConfig::Translate(t)) = dec(w, &c) else {
        panic!()
    };
    assert_eq!(t.s1.unwrap().format, CdTableFormat::Linear);
    cdt.cdmax = 21; // beyond SSIDSIZE 20
    assert!(is_bad_ste(dec(cdt.words(), &c)));
    cdt.cdmax = 20;
    // STRW is RES0 without HYP: ignored. With HYP, 0bx1 is illegal.
    let mut w = cdt.words();
    w[1] |= SteW1::new().with_strw(Strw::EL2).raw();
    assert!(dec(w, &c).is_ok());
    let hyp = SmmuConfig {
        hyp: true,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    let mut w = cdt.words();
    w[1] |= SteW1::new().with_strw(Strw(1)).raw();
    assert!(is_bad_ste(dec(w, &hyp)));
    // S2HA without HTTU; S2TTB beyond S2PS (48 bits); 8-bit VMIDs with S2VMID[15:8] set.
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2ha(true)), &c)));
    assert!(is_bad_ste(dec(with_w2(|w| w.with_s2hd(true)), &c)));
    let mut w = s2;
    w[3] = 1 << 48;
    assert!(is_bad_ste(dec(w, &c)));
    let vmid8 = SmmuConfig {
        vmid16: false,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_ste(dec(
        s2_ste(0x100, 0x4000_0000, false, false, false),
        &vmid8
    )));
    assert!(dec(s2_ste(0xFF, 0x4000_0000, false, false, false), &vmid8).is_ok());
    // Forced stalls need S2S = 1.
    let forced = SmmuConfig {
        stall_model: StallModel::STALL_FORCED,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_ste(dec(s2, &forced)));
    assert!(dec(s2_ste(1, 0x4000_0000, false, true, false), &forced).is_ok());
    let no_cd2l = SmmuConfig {
        two_level_cd_table: false,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_ste(dec(cdt.words(), &no_cd2l)));
    let s1_only = SmmuConfig {
        stage2: false,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_ste(dec(s2, &s1_only)));
    let s2_only = SmmuConfig {
        stage1: false,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_ste(dec(cdt.words(), &s2_only)));
}

/// STRW = EL2 with HYP selects the EL2 regime (no VMID); PRIVCFG applies with ATTR_PERMS_OVR.
#[test]
fn test_ste_el2_and_overrides() {
    let hyp = SmmuConfig {
        hyp: true,
        attr_perms_ovr: true,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    let mut cdt = CdTableSte::kunit(S1Dss::SSID0);
    cdt.stalld = false;
    let mut w = cdt.words();
    w[1] |= SteW1::new()
        .with_strw(Strw::EL2)
        .with_privcfg(PrivCfg::PRIV)
        .raw();
    w[2] = 7; // S2VMID, unused by an EL2 stream
    let StreamConfig::Translate(t) = dec(w, &hyp).unwrap() else {
        panic!()
    };
    assert_eq!(t.regime, Regime::El2);
    assert_eq!(t.vmid, Vmid(0));
    assert!(t.attrs.privileged(false));
    // Without ATTR_PERMS_OVR the override is ignored.
    let StreamConfig::Translate(t) = dec(
        w,
        &SmmuConfig {
            hyp: true,
            ..SmmuConfig::default()
        }
        .caps()
        .unwrap(),
    )
    .unwrap() else {
        panic!()
    };
    assert!(!t.attrs.privileged(false));
}

fn regs(base: u64, log2size: u8, split: u8, fmt: u8) -> (StrtabBase, StrtabBaseCfg) {
    (
        StrtabBase::from_bits(base),
        StrtabBaseCfg::new()
            .with_log2size(log2size)
            .with_split(split)
            .with_fmt(fmt),
    )
}

const RAM: u64 = 0x4000_0000;

/// A linear table: STE n at base + 64 n; SIDs beyond LOG2SIZE are C_BAD_STREAMID.
#[test]
fn test_strtab_linear_lookup() {
    let m = guest_ram(RAM, 0x10_0000);
    let (b, c) = regs(RAM + 0x1000, 4, 0, 0);
    let t = StreamTable::new(b, c, &caps());
    assert_eq!(t.format, StrtabFormat::Linear);
    for (i, w) in bypass(false).iter().enumerate() {
        mem::write_u64_le(&m, RAM + 0x1000 + 64 * 3 + 8 * i as u64, *w).unwrap();
    }
    assert_eq!(t.ste_addr(&m, 3), Ok(RAM + 0x1000 + 192));
    assert_eq!(
        t.lookup(&m, 3, &caps()),
        Ok(StreamConfig::Bypass(StreamAttrs::INCOMING))
    );
    assert!(matches!(
        t.lookup(&m, 2, &caps()),
        Err(ConfigError::BadSte { .. })
    ));
    assert!(matches!(
        t.ste_addr(&m, 16),
        Err(ConfigError::BadStreamId { .. })
    ));
    assert!(matches!(
        t.ste_addr(&m, u32::MAX),
        Err(ConfigError::BadStreamId { .. })
    ));
    // LOG2SIZE is clamped to SIDSIZE (16).
    let (b, c) = regs(RAM, 40, 0, 0);
    assert_eq!(StreamTable::new(b, c, &caps()).log2size, 16);
    // A table outside RAM is F_STE_FETCH at the STE address.
    let (b, c) = regs(0x4000, 8, 0, 0);
    let t = StreamTable::new(b, c, &caps());
    assert_eq!(
        t.fetch_ste(&m, 1),
        Err(ConfigError::SteFetch { addr: 0x4040 })
    );
}

/// Linux's 2-level table (SPLIT 8, LOG2SIZE 16, Span 9): L1 = SID >> 8, L2 = SID & 0xFF.
#[test]
fn test_strtab_two_level_lookup() {
    let m = guest_ram(RAM, 0x10_0000);
    let (b, c) = regs(RAM, 16, 8, 1);
    assert_eq!(c.into_bits(), 0x0001_0210);
    let t = StreamTable::new(b, c, &caps());
    assert_eq!(t.format, StrtabFormat::TwoLevel { split: 8 });
    let l2 = RAM + 0x8_0000;
    mem::write_u64_le(&m, RAM + 8 * 0x12, l2 | 9).unwrap();
    mem::write_u64_le(&m, l2 + 64 * 0x34, 0x9).unwrap();
    assert_eq!(t.ste_addr(&m, 0x1234), Ok(l2 + 64 * 0x34));
    assert_eq!(
        t.lookup(&m, 0x1234, &caps()),
        Ok(StreamConfig::Bypass(StreamAttrs::INCOMING))
    );
    // L1 descriptor 0 (Span 0): C_BAD_STREAMID, nothing cached or read beyond it.
    assert!(matches!(
        t.ste_addr(&m, 0x1334),
        Err(ConfigError::BadStreamId { .. })
    ));
    // Span 2 holds 2 STEs: index 2 is beyond the span.
    mem::write_u64_le(&m, RAM + 8 * 0x13, l2 | 2).unwrap();
    assert!(t.ste_addr(&m, 0x1301).is_ok());
    assert!(matches!(
        t.ste_addr(&m, 0x1302),
        Err(ConfigError::BadStreamId { .. })
    ));
    // Span = SPLIT + 1 covers the whole L2 table; Span > SPLIT + 1 is C_BAD_STREAMID (§7.3.3).
    mem::write_u64_le(&m, RAM + 8 * 0x14, l2 | 9).unwrap();
    assert!(t.ste_addr(&m, 0x14FF).is_ok());
    mem::write_u64_le(&m, RAM + 8 * 0x14, l2 | 10).unwrap();
    assert!(matches!(
        t.ste_addr(&m, 0x1400),
        Err(ConfigError::BadStreamId { .. })
    ));
    // An L2 pointer outside RAM: F_STE_FETCH at the STE.
    mem::write_u64_le(&m, RAM + 8 * 0x15, 0x4000 | 9).unwrap();
    assert_eq!(
        t.fetch_ste(&m, 0x1501),
        Err(ConfigError::SteFetch { addr: 0x4040 })
    );
    // The L1 table itself outside RAM: F_STE_FETCH at the descriptor.
    let (b, c) = regs(0x10_0000, 16, 8, 1);
    let t = StreamTable::new(b, c, &caps());
    assert_eq!(
        t.ste_addr(&m, 0x200),
        Err(ConfigError::SteFetch { addr: 0x10_0010 })
    );
}

/// Reserved SPLIT reads as 6; FMT 2-level without ST_LEVEL or reserved FMT reads as linear.
#[test]
fn test_strtab_format_policies() {
    let (b, c) = regs(RAM, 16, 31, 1);
    assert_eq!(
        StreamTable::new(b, c, &caps()).format,
        StrtabFormat::TwoLevel { split: 6 }
    );
    let linear_only = SmmuConfig {
        two_level_stream_table: false,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert_eq!(
        StreamTable::new(b, c, &linear_only).format,
        StrtabFormat::Linear
    );
    let (b, c) = regs(RAM, 16, 8, 3);
    assert_eq!(StreamTable::new(b, c, &caps()).format, StrtabFormat::Linear);
}

/// S1DSS 0b11 behaves as terminate; S1CDMax is ignored when SSIDSIZE = 0; EATS rules.
#[test]
fn test_ste_reserved_encodings_and_eats() {
    let mut cdt = CdTableSte::kunit(S1Dss::SSID0);
    cdt.stalld = false;
    let mut w = cdt.words();
    w[1] |= SteW1::new().with_s1dss(S1Dss(3)).raw();
    let StreamConfig::Translate(t) = dec(w, &caps()).unwrap() else {
        panic!()
    };
    assert_eq!(t.s1.unwrap().dss, Dss::Terminate);
    let no_ssid = SmmuConfig {
        ssid_bits: 0,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    let StreamConfig::Translate(t) = dec(cdt.words(), &no_ssid).unwrap() else {
        panic!()
    };
    assert_eq!(t.s1.unwrap().format, CdTableFormat::Single);
    assert_eq!(t.s1.unwrap().cd_max_bits, 0);
    let ats = kunit_caps();
    // EATS = 0b01 with S2S = 1 is illegal; split-stage only for nested.
    assert!(is_bad_ste(dec(
        s2_ste(1, 0x4000_0000, true, true, false),
        &ats
    )));
    let mut w = s2_ste(1, 0x4000_0000, false, false, false);
    w[1] |= SteW1::new().with_eats(Eats::S1CHK).raw();
    assert!(is_bad_ste(dec(w, &ats)));
    // EATS = 0b11 (DPT) behaves as 0b00 without DPT.
    let mut w = s2_ste(1, 0x4000_0000, false, false, false);
    w[1] |= SteW1::new().with_eats(Eats(3)).raw();
    let StreamConfig::Translate(t) = dec(w, &ats).unwrap() else {
        panic!()
    };
    assert_eq!(t.ats, AtsMode::Abort);
}

/// The SMMU aligns STRTAB_BASE to the table size (§6.3.24) and L1STD.L2Ptr to the L2 array size
/// (§5.1); a misaligned CD table keeps its entries inside the table (policy).
#[test]
fn test_strtab_and_cd_table_alignment() {
    // Linear, LOG2SIZE 4: 1 KiB table, ADDR[9:0] = 0.
    let (b, c) = regs(RAM + 0x1340, 4, 0, 0);
    assert_eq!(StreamTable::new(b, c, &caps()).base, RAM + 0x1000);
    // 2-level, LOG2SIZE 16, SPLIT 8: 256 L1 descriptors = 2 KiB, ADDR[10:0] = 0.
    let (b, c) = regs(RAM + 0x1FC0, 16, 8, 1);
    assert_eq!(StreamTable::new(b, c, &caps()).base, RAM + 0x1800);
    // 2-level with LOG2SIZE < SPLIT: at least 64-byte aligned.
    let (b, c) = regs(RAM + 0x1FC0, 6, 8, 1);
    assert_eq!(StreamTable::new(b, c, &caps()).base, RAM + 0x1FC0);
    // L2Ptr of a Span-3 (4 STEs, 256 B) array is aligned to 256 bytes.
    let m = guest_ram(RAM, 0x10_0000);
    let (b, c) = regs(RAM, 16, 8, 1);
    let t = StreamTable::new(b, c, &caps());
    mem::write_u64_le(&m, RAM + 8, (RAM + 0x2_00C0) | 3).unwrap();
    assert_eq!(t.ste_addr(&m, 0x102), Ok(RAM + 0x2_0000 + 2 * 64));
    // A linear CD table of 2^4 CDs (1 KiB) at an unaligned pointer: offsets wrap within the
    // aligned table (CONSTRAINED UNPREDICTABLE policy).
    let mut cdt = CdTableSte::kunit(S1Dss::SSID0);
    cdt.stalld = false;
    cdt.fmt = S1Fmt::LINEAR;
    cdt.cdmax = 4;
    cdt.ptr = RAM + 0x340;
    let Ok(StreamConfig::Translate(tc)) = dec(cdt.words(), &caps()) else {
        panic!()
    };
    let s1 = tc.s1.unwrap();
    assert_eq!(s1.cd_table, RAM + 0x340);
    assert_eq!(s1.cd_addr(&m, 0, None), Ok(RAM + 0x340));
    assert_eq!(s1.cd_addr(&m, 2, None), Ok(RAM + 0x3C0));
    assert_eq!(s1.cd_addr(&m, 3, None), Ok(RAM));
    assert_eq!(s1.cd_addr(&m, 15, None), Ok(RAM + 0x300));
}
