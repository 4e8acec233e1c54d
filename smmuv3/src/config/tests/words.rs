//! Packed configurations: every decoded STE and CD the fixtures produce, and hand-built values
//! with every optional part present, round-trip through the slot words unchanged.

use viommu_common::addr::Granule;
use viommu_common::id::{Asid, Vmid};
use viommu_common::walk::{Stage1Config, Stage2Config, TableGeometry};

use super::*;
use crate::config::cd::decode_cd;
use crate::config::ste::decode_ste;
use crate::config::words::Packed;
use crate::config::{
    AtsMode, CdTableFormat, ContextConfig, Regime, S1Config, S1Dss as Dss, S2Config, StreamAttrs,
    StreamConfig, TranslateConfig,
};
use crate::spec::cd::Cd;
use crate::spec::ste::{InstCfg, PrivCfg, Ste};

fn round_trip<T: Packed + PartialEq + core::fmt::Debug>(v: T) {
    assert_eq!(T::unpack(&v.pack()).as_ref(), Some(&v));
}

fn full_s1(upper: bool) -> Stage1Config {
    Stage1Config {
        granule: Granule::K64,
        txsz: 12,
        ttb: 0xFFFF_FFFF_FFFF_FFC0,
        oas_bits: 52,
        upper,
        tbi: true,
        epd: false,
        hpd: true,
        ha: true,
        hd: true,
        affd: true,
        wxn: true,
        pan: true,
        lva: true,
        mair: 0x0123_4567_89AB_CDEF,
    }
}

/// Fixture STEs and CDs as decoded.
#[test]
fn test_words_round_trip_decoded_entries() {
    let c = caps();
    for words in [
        ABORT,
        bypass(false),
        bypass(true),
        CdTableSte::kunit(S1Dss::SSID0).words(),
        CdTableSte::kunit(S1Dss::BYPASS).words(),
        s2_ste(7, 0x8000_0000, true, true, true),
        s2_ste(0xFFFF, 0x1000, false, false, false),
    ] {
        if let Ok(cfg) = decode_ste(&Ste::from_words(words), &c) {
            round_trip(cfg);
        }
    }
    let s1 = single();
    round_trip(s1);
    for asid in [0, 1, 0xFFFF] {
        let cd = decode_cd(&Cd::from_words(s1_cd(asid, 0x1000, 16, 5)), &c, &s1).unwrap();
        round_trip(cd);
    }
}

/// Values with every optional part present and extreme field values (the largest packings).
#[test]
fn test_words_round_trip_full_values() {
    round_trip(ContextConfig {
        asid: Asid(0xFFFF),
        regions: [full_s1(false), full_s1(true)],
        record: true,
        stall: true,
        abort: true,
        aset: true,
    });
    let attrs = StreamAttrs {
        shcfg: crate::spec::Shareability::ISH,
        memattr: Some(0xF),
        alloccfg: 0xE,
        privcfg: PrivCfg::PRIV,
        instcfg: InstCfg::INSTR,
    };
    round_trip(StreamConfig::Bypass(attrs));
    round_trip(StreamConfig::Abort);
    let walk = Stage2Config {
        granule: Granule::K16,
        t0sz: 25,
        sl0: 2,
        vttb: 0x000F_FFFF_FFFF_F000,
        ps_bits: 48,
        ha: true,
        hd: true,
        affd: true,
        xnx: true,
        fwb: true,
    };
    for (format, dss, regime, ats) in [
        (
            CdTableFormat::TwoLevel { leaf_bits: 10 },
            Dss::Bypass,
            Regime::El2,
            AtsMode::Split,
        ),
        (
            CdTableFormat::Linear,
            Dss::Terminate,
            Regime::El1,
            AtsMode::Full,
        ),
    ] {
        round_trip(StreamConfig::Translate(TranslateConfig {
            s1: Some(S1Config {
                cd_table: u64::MAX,
                format,
                cd_max_bits: 20,
                dss,
                stall_disabled: true,
                pa_bits: 52,
            }),
            s2: Some(S2Config {
                walk,
                geometry: TableGeometry {
                    granule: Granule::K16,
                    ia_bits: 39,
                    start_level: 1,
                    root_index_bits: 15,
                },
                record: true,
                stall: true,
                ptw: true,
            }),
            vmid: Vmid(0xFFFF),
            regime,
            ats,
            attrs,
        }));
    }
}
