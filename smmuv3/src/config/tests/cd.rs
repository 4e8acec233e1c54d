//! Substream selection, CD tables and CD decode.

use viommu_common::addr::Granule;
use viommu_common::id::{Asid, SubstreamId};
use viommu_common::mem;
use viommu_common::testing::guest_ram;
use viommu_common::walk::{FaultClass, Stage, WalkFault, WalkFaultKind};

use super::*;
use crate::caps::SmmuConfig;
use crate::config::cd::{decode_cd, Substream};
use crate::config::{CdTableFormat, ConfigError, ContextConfig, S1Dss as Dss};
use crate::event::{EventAccess, EventSource};
use crate::spec::cd::Cd;
use crate::spec::evt::EvtClass;

fn dec(w: [u64; 8], caps: &Caps) -> Result<ContextConfig, ConfigError> {
    decode_cd(&Cd::from_words(w), caps, &single())
}

fn is_bad_cd(r: Result<ContextConfig, ConfigError>) -> bool {
    matches!(r, Err(ConfigError::BadCd { .. }))
}

/// Linux's 4K/48-bit CD (w0 0x0001_E205_C000_3510) decodes to a TTB0 walk with MAIR and ASID 1;
/// the TTB1 region is disabled (EPD1).
#[test]
fn test_cd_linux_s1_decode() {
    let w = s1_cd(1, 0x4_5678_9000, 16, 5);
    assert_eq!(w[0], 0x0001_E205_C000_3510);
    let c = dec(w, &caps()).unwrap();
    assert_eq!(c.asid, Asid(1));
    let r0 = c.regions[0];
    assert_eq!(
        (r0.granule, r0.txsz, r0.ttb, r0.oas_bits),
        (Granule::K4, 16, 0x4_5678_9000, 48)
    );
    assert_eq!(r0.mair, 0xF404_FF44);
    assert!(!r0.epd && !r0.upper);
    assert!(c.regions[1].epd && c.regions[1].upper);
    assert!(c.record && c.abort && c.aset && !c.stall);
    assert!(c.region(0xFFFF_8000_0000_0000).upper);
    assert!(!c.region(0x1000).upper);
}

/// IPS is clamped to the OAS; 8-bit ASIDs are masked.
#[test]
fn test_cd_ips_and_asid_width() {
    let small = SmmuConfig {
        oas_bits: 40,
        asid16: false,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    let c = decode_cd(
        &Cd::from_words(s1_cd(0xFF, 0x1000, 25, 5)),
        &small,
        &single(),
    )
    .unwrap();
    assert_eq!(c.regions[0].oas_bits, 40);
    assert_eq!(c.asid, Asid(0xFF));
    // ASID[15:8] != 0 with 8-bit ASIDs is illegal; TTB0 beyond the effective IPS too.
    assert!(is_bad_cd(decode_cd(
        &Cd::from_words(s1_cd(0x1FF, 0x1000, 25, 5)),
        &small,
        &single()
    )));
    assert!(is_bad_cd(decode_cd(
        &Cd::from_words(s1_cd(0xFF, 1 << 40, 25, 5)),
        &small,
        &single()
    )));
    // IPS 52 with 4K reads as 48; a reserved IPS reads as the OAS.
    let c = dec(s1_cd(1, 0x1000, 16, 6), &caps()).unwrap();
    assert_eq!(c.regions[0].oas_bits, 48);
    let c = dec(s1_cd(1, 0x1000, 16, 7), &caps()).unwrap();
    assert_eq!(c.regions[0].oas_bits, 48);
}

/// EPD0 = 1 is legal (Linux's released SVA CD): its T0SZ/TG0/TTB0 are ignored, even garbage.
#[test]
fn test_cd_epd0_is_legal_and_ignores_fields() {
    let mut w = s1_cd(5, 0x1234_5000, 16, 5);
    w[0] = CdW0::from_raw(w[0])
        .with_epd0(true)
        .with_t0sz(63)
        .with_tg0(Tg0(3))
        .raw();
    let c = dec(w, &caps()).unwrap();
    assert!(c.regions[0].epd);
    let mut w2 = w;
    w2[1] = 0xFFFF_FFFF_FFFF_FFF0;
    assert_eq!(dec(w2, &caps()), Ok(c));
}

/// Illegal CDs are C_BAD_CD (IHI 0070 §5.4, §7.3).
#[test]
fn test_cd_illegal_cases() {
    let base = s1_cd(1, 0x1000, 16, 5);
    let with = |f: fn(CdW0) -> CdW0| {
        let mut w = base;
        w[0] = f(CdW0::from_raw(w[0])).raw();
        w
    };
    let c = caps();
    assert!(is_bad_cd(dec([0; 8], &c)));
    assert!(is_bad_cd(dec(with(|w| w.with_v(false)), &c)));
    assert!(is_bad_cd(dec(with(|w| w.with_aa64(false)), &c)));
    assert!(is_bad_cd(dec(with(|w| w.with_endi(true)), &c)));
    assert!(is_bad_cd(dec(with(|w| w.with_t0sz(40)), &c)));
    assert!(is_bad_cd(dec(with(|w| w.with_t0sz(8)), &c)));
    assert!(is_bad_cd(dec(with(|w| w.with_tg0(Tg0(3))), &c)));
    // S = 1 with STALL_MODEL = 1, or with STE.S1STALLD = 1.
    assert!(is_bad_cd(dec(with(|w| w.with_s(true)), &c)));
    let k = kunit_caps();
    assert!(dec(with(|w| w.with_s(true)), &k).unwrap().stall);
    let mut stalld = single();
    stalld.stall_disabled = true;
    assert!(is_bad_cd(decode_cd(
        &Cd::from_words(with(|w| w.with_s(true))),
        &k,
        &stalld
    )));
    // TTB1 enabled with a bad T1SZ.
    assert!(is_bad_cd(dec(
        with(|w| w.with_epd1(false).with_tg1(TG1_4K).with_t1sz(2)),
        &c
    )));
    // ...and a valid one.
    let ok = dec(
        with(|w| w.with_epd1(false).with_tg1(TG1_4K).with_t1sz(25)),
        &c,
    )
    .unwrap();
    assert_eq!((ok.regions[1].txsz, ok.regions[1].epd), (25, false));
}

/// HA/HD need IDR0.HTTU; A = 0 is illegal with TERM_MODEL; S = 0 is illegal with forced stalls;
/// ENDI is ignored when both regions are disabled.
#[test]
fn test_cd_httu_term_stall_rules() {
    let base = s1_cd(1, 0x1000, 16, 5);
    let with = |f: fn(CdW0) -> CdW0| {
        let mut w = base;
        w[0] = f(CdW0::from_raw(w[0])).raw();
        w
    };
    assert!(is_bad_cd(dec(with(|w| w.with_ha(true)), &caps())));
    assert!(is_bad_cd(dec(with(|w| w.with_hd(true)), &caps())));
    let httu = SmmuConfig {
        httu: crate::spec::idr::Httu::ACCESS_DIRTY,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    let c = dec(with(|w| w.with_ha(true).with_hd(true)), &httu).unwrap();
    assert!(c.regions[0].ha && c.regions[0].hd);
    // {HD, HA} = 0b10 behaves as 0b00.
    let c = dec(with(|w| w.with_hd(true)), &httu).unwrap();
    assert!(!c.regions[0].ha && !c.regions[0].hd);
    let term = SmmuConfig {
        term_model: true,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_cd(dec(with(|w| w.with_a(false)), &term)));
    assert!(!dec(with(|w| w.with_a(false)), &caps()).unwrap().abort);
    let forced = SmmuConfig {
        stall_model: StallModel::STALL_FORCED,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap();
    assert!(is_bad_cd(dec(base, &forced)));
    assert!(dec(with(|w| w.with_s(true)), &forced).unwrap().stall);
    assert!(dec(with(|w| w.with_endi(true).with_epd0(true)), &caps()).is_ok());
}

/// Substream selection (IHI 0070 §5.2 S1CDMax and S1DSS, §5.3).
#[test]
fn test_cd_substream_selection() {
    let one = single();
    assert_eq!(one.substream(None), Ok(Substream::Cd(0)));
    assert!(matches!(
        one.substream(Some(SubstreamId(0))),
        Err(ConfigError::BadSubstreamId { .. })
    ));
    let lin = |dss| s1(CdTableFormat::Linear, 4, dss, 0);
    assert_eq!(lin(Dss::Terminate).substream(None), Ok(Substream::Disabled));
    assert_eq!(lin(Dss::Bypass).substream(None), Ok(Substream::BypassS1));
    assert_eq!(lin(Dss::Substream0).substream(None), Ok(Substream::Cd(0)));
    assert_eq!(
        lin(Dss::Bypass).substream(Some(SubstreamId(0))),
        Ok(Substream::Cd(0))
    );
    assert_eq!(
        lin(Dss::Bypass).substream(Some(SubstreamId(15))),
        Ok(Substream::Cd(15))
    );
    assert!(matches!(
        lin(Dss::Bypass).substream(Some(SubstreamId(16))),
        Err(ConfigError::BadSubstreamId { .. })
    ));
    // Substream 0 is reserved for non-substream traffic: F_STREAM_DISABLED.
    assert_eq!(
        lin(Dss::Substream0).substream(Some(SubstreamId(0))),
        Ok(Substream::Disabled)
    );
    assert!(matches!(
        lin(Dss::Bypass).substream(Some(SubstreamId(u32::MAX))),
        Err(ConfigError::BadSubstreamId { .. })
    ));
}

const RAM: u64 = 0x4000_0000;

fn put_cd(m: &vm_memory::GuestMemoryMmap<()>, addr: u64, w: [u64; 8]) {
    for (i, v) in w.iter().enumerate() {
        mem::write_u64_le(m, addr + 8 * i as u64, *v).unwrap();
    }
}

/// Linear CD tables: CD n at ptr + 64 n; out-of-RAM fetch is F_CD_FETCH at the CD address.
#[test]
fn test_cd_linear_table_fetch() {
    let m = guest_ram(RAM, 0x10_0000);
    let t = s1(CdTableFormat::Linear, 3, Dss::Substream0, RAM + 0x2000);
    put_cd(&m, RAM + 0x2000 + 64 * 5, s1_cd(9, 0x7000, 16, 5));
    let c = t.lookup_cd(&m, 5, None, &caps()).unwrap();
    assert_eq!(c.asid, Asid(9));
    assert!(matches!(
        t.lookup_cd(&m, 4, None, &caps()),
        Err(ConfigError::BadCd { .. })
    ));
    assert!(matches!(
        t.cd_addr(&m, 8, None),
        Err(ConfigError::BadSubstreamId { .. })
    ));
    let far = s1(CdTableFormat::Single, 0, Dss::Substream0, 0x3000);
    assert_eq!(
        far.fetch_cd(&m, 0, None),
        Err(ConfigError::CdFetch { addr: 0x3000 })
    );
}

/// Two-level CD tables (Linux: 64 KiB leaves of 1024 CDs, V [0], L2Ptr [51:12]).
#[test]
fn test_cd_two_level_table_fetch() {
    let m = guest_ram(RAM, 0x10_0000);
    let t = s1(
        CdTableFormat::TwoLevel { leaf_bits: 10 },
        20,
        Dss::Substream0,
        RAM,
    );
    let leaf = RAM + 0x1_0000;
    mem::write_u64_le(&m, RAM + 8 * 2, leaf | 1).unwrap();
    put_cd(&m, leaf + 64 * 7, s1_cd(0x77, 0x8000, 16, 5));
    let ssid = 2 * 1024 + 7;
    assert_eq!(t.cd_addr(&m, ssid, None), Ok(leaf + 64 * 7));
    assert_eq!(
        t.lookup_cd(&m, ssid, None, &caps()).unwrap().asid,
        Asid(0x77)
    );
    // L2Ptr beyond the OAS (PA table): C_BAD_SUBSTREAMID (IHI 0070 §3.4.3).
    mem::write_u64_le(&m, RAM + 8 * 3, (1 << 50) | 1).unwrap();
    assert!(matches!(
        t.cd_addr(&m, 3 * 1024, None),
        Err(ConfigError::BadSubstreamId { .. })
    ));
    // L1 V = 0: C_BAD_SUBSTREAMID.
    assert!(matches!(
        t.cd_addr(&m, 1024, None),
        Err(ConfigError::BadSubstreamId { .. })
    ));
    // 4 KiB leaves of 64 CDs.
    let t4 = s1(
        CdTableFormat::TwoLevel { leaf_bits: 6 },
        10,
        Dss::Substream0,
        RAM + 0x100,
    );
    mem::write_u64_le(&m, RAM + 0x100 + 8, leaf | 1).unwrap();
    assert_eq!(t4.cd_addr(&m, 64 + 3, None), Ok(leaf + 64 * 3));
    // An L1 table outside RAM: F_CD_FETCH at the descriptor.
    let far = s1(
        CdTableFormat::TwoLevel { leaf_bits: 10 },
        20,
        Dss::Substream0,
        0x8000,
    );
    assert_eq!(
        far.cd_addr(&m, 1024, None),
        Err(ConfigError::CdFetch { addr: 0x8008 })
    );
}

/// Nested: every CD-table address goes through stage 2; a stage-2 fault is reported with
/// CLASS = CD, S2 = 1 and the IPA.
#[test]
fn test_cd_nested_fetch_through_stage2() {
    let m = guest_ram(RAM, 0x10_0000);
    let offset = 0x1_0000_0000u64; // IPA = PA + offset
    let s2 = |ipa: u64| -> Result<u64, WalkFault> {
        if ipa >= offset + RAM && ipa < offset + RAM + 0x10_0000 {
            Ok(ipa - offset)
        } else {
            Err(WalkFault::new(WalkFaultKind::Translation, Stage::S2, 1))
        }
    };
    let leaf_pa = RAM + 0x2_0000;
    mem::write_u64_le(&m, RAM + 8, (leaf_pa + offset) | 1).unwrap();
    put_cd(&m, leaf_pa + 64, s1_cd(3, 0x9000, 16, 5));
    let t = s1(
        CdTableFormat::TwoLevel { leaf_bits: 10 },
        20,
        Dss::Substream0,
        RAM + offset,
    );
    let ssid = 1024 + 1;
    assert_eq!(t.cd_addr(&m, ssid, Some(&s2)), Ok(leaf_pa + 64));
    assert_eq!(
        t.lookup_cd(&m, ssid, Some(&s2), &caps()).unwrap().asid,
        Asid(3)
    );
    // The L1 descriptor's IPA is not mapped.
    let bad = s1(CdTableFormat::Linear, 4, Dss::Substream0, 0x5000);
    let e = bad.cd_addr(&m, 2, Some(&s2)).unwrap_err();
    let ConfigError::CdStage2(f) = e else {
        panic!("{e:?}")
    };
    assert_eq!(f.class, FaultClass::Cd);
    assert_eq!(f.ipa, Some(0x5080));
    let ev = e.to_event(
        EventSource::stream(4),
        EventAccess {
            addr: 0x1000,
            read: true,
            instr: false,
            privileged: false,
        },
        None,
    );
    assert_eq!(ev.name(), "F_TRANSLATION");
    let rec = ev.encode();
    assert!(rec.w1.s2());
    assert_eq!(rec.w1.class(), EvtClass::CD);
    assert_eq!(rec.w3.ipa(), 0x5000);
}

/// Every ConfigError maps to its architectural event.
#[test]
fn test_config_error_events() {
    let src = EventSource::stream(1);
    let acc = EventAccess {
        addr: 0,
        read: true,
        instr: false,
        privileged: false,
    };
    let cases = [
        (ConfigError::BadStreamId { why: "" }, "C_BAD_STREAMID"),
        (ConfigError::SteFetch { addr: 8 }, "F_STE_FETCH"),
        (ConfigError::BadSte { why: "" }, "C_BAD_STE"),
        (ConfigError::BadSubstreamId { why: "" }, "C_BAD_SUBSTREAMID"),
        (ConfigError::CdFetch { addr: 8 }, "F_CD_FETCH"),
        (ConfigError::BadCd { why: "" }, "C_BAD_CD"),
    ];
    for (e, name) in cases {
        assert_eq!(e.to_event(src, acc, None).name(), name);
    }
    assert_eq!(
        ConfigError::SteFetch { addr: 0x1238 }
            .to_event(src, acc, None)
            .encode()
            .w3
            .fetch_addr(),
        0x1238
    );
}
