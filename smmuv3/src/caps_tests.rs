//! Unit tests of [`super::SmmuConfig`] and [`super::Caps`].

use super::*;

/// The SMMU the Linux 6.12 replay trace was recorded on (QEMU 10.0.2 virt), from the
/// `device` line of shared/replay/linux612-bringup-passthrough.replay.jsonl.xz.
const REPLAY_REGS: IdRegs = IdRegs {
    idr0: 0x0d44_101b,
    idr1: 0x0273_0010,
    idr2: 0,
    idr3: 0x1414,
    idr4: 0,
    idr5: 0x74,
    iidr: 0,
    aidr: 0x1,
};

/// Defaults equal the profile README.md lists ("Default ID registers") register for register.
#[test]
fn test_default_profile_matches_recommended_values() {
    let r = SmmuConfig::default().caps().unwrap().id_regs();
    assert_eq!(r.idr0, 0x094C_301B);
    assert_eq!(r.idr1, 0x0273_0510);
    assert_eq!(r.idr3, 0x0000_0404);
    assert_eq!(r.idr5, 0x0000_0075);
    assert_eq!(r.iidr, 0);
    assert_eq!(r.aidr, 0x02);
    assert_eq!(Caps::default().id_regs(), r);
}

/// Linux chooses a 2-level stream table (ST_LEVEL = 1, SIDSIZE > 8) and MSI polling (MSI,
/// coherent) with the defaults, and probes (TTF 2, TTENDIAN 2, CMDQS >= 7, no PRESET/REL).
#[test]
fn test_default_satisfies_linux_probe() {
    let c = SmmuConfig::default().caps().unwrap();
    assert!(c.two_level_strtab() && c.sid_bits() > 8);
    assert!(c.msi() && c.coherent());
    assert_eq!(c.idr0.ttf(), Ttf::AARCH64);
    assert_eq!(c.idr0.ttendian(), TtEndian::LE);
    assert!(c.cmdq_log2_max() >= 7);
    assert!(!c.idr1.rel() && !c.idr1.queues_preset() && !c.idr1.tables_preset());
    assert!(c.nested() && c.ril() && !c.stalls() && !c.ats() && !c.pri());
    assert_eq!(
        (c.asid_bits(), c.vmid_bits(), c.ssid_bits(), c.oas_bits()),
        (16, 16, 20, 48)
    );
}

/// The replay trace's SMMU is accepted and mirrored exactly.
#[test]
fn test_replay_smmu_mirrored_exactly() {
    let cfg = SmmuConfig::from_id_regs(REPLAY_REGS).unwrap();
    assert_eq!(cfg.oas_bits, 44);
    assert!(cfg.term_model && cfg.xnx && cfg.had && cfg.range_invalidation);
    assert_eq!(cfg.bbml, 2);
    assert!(!cfg.msi && !cfg.two_level_cd_table);
    assert_eq!(cfg.ssid_bits, 0);
    assert_eq!(cfg.caps().unwrap().id_regs(), REPLAY_REGS);
}

/// Every default-derived register set round-trips through `from_id_regs`.
#[test]
fn test_from_id_regs_mirrors_config() {
    let mut cfg = SmmuConfig {
        ats: true,
        pri: true,
        priq_log2: 19,
        hyp: true,
        httu: Httu::ACCESS_DIRTY,
        stall_model: StallModel::STALL_TERMINATE,
        stall_max: 64,
        va52: true,
        oas_bits: 52,
        ..SmmuConfig::default()
    };
    let regs = cfg.caps().unwrap().id_regs();
    assert_eq!(SmmuConfig::from_id_regs(regs).unwrap(), cfg);
    cfg.two_level_stream_table = false;
    cfg.granules.k16 = false;
    let regs = cfg.caps().unwrap().id_regs();
    assert_eq!(SmmuConfig::from_id_regs(regs).unwrap(), cfg);
}

fn with_idr0(bits: u32) -> IdRegs {
    IdRegs {
        idr0: bits,
        ..REPLAY_REGS
    }
}

/// Unsupported features are refused with an error naming the field.
#[test]
fn test_from_id_regs_refuses_unsupported() {
    let base = REPLAY_REGS.idr0;
    let ttf32 = (base & !0xC) | (1 << 2);
    let e = SmmuConfig::from_id_regs(with_idr0(ttf32)).unwrap_err();
    assert!(
        matches!(
            e,
            CapsError::Unsupported {
                field: "IDR0.TTF",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("AArch32"));
    let be = (base & !(3 << 21)) | (3 << 21);
    let e = SmmuConfig::from_id_regs(with_idr0(be)).unwrap_err();
    assert!(matches!(
        e,
        CapsError::Unsupported {
            field: "IDR0.TTENDIAN",
            ..
        }
    ));
    let e = SmmuConfig::from_id_regs(with_idr0(base | 1 << 14)).unwrap_err();
    assert!(matches!(
        e,
        CapsError::Unsupported {
            field: "IDR0.SEV",
            ..
        }
    ));
    let e = SmmuConfig::from_id_regs(with_idr0(base | 1 << 5)).unwrap_err();
    assert!(matches!(
        e,
        CapsError::Unsupported {
            field: "IDR0.BTM",
            ..
        }
    ));
    let e = SmmuConfig::from_id_regs(IdRegs {
        idr1: REPLAY_REGS.idr1 | 1 << 30,
        ..REPLAY_REGS
    })
    .unwrap_err();
    assert!(matches!(
        e,
        CapsError::Unsupported {
            field: "IDR1.TABLES_PRESET",
            ..
        }
    ));
}

/// Reserved encodings and out-of-range sizes are invalid.
#[test]
fn test_from_id_regs_rejects_invalid() {
    let e = SmmuConfig::from_id_regs(IdRegs {
        idr5: 0x77,
        ..REPLAY_REGS
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            CapsError::Invalid {
                field: "IDR5.OAS",
                ..
            }
        ),
        "{e}"
    );
    let e = SmmuConfig::from_id_regs(with_idr0(REPLAY_REGS.idr0 & !3)).unwrap_err();
    assert!(matches!(
        e,
        CapsError::Invalid {
            field: "IDR0.S1P/S2P",
            ..
        }
    ));
    let e = SmmuConfig::from_id_regs(IdRegs {
        idr1: (REPLAY_REGS.idr1 & !0x3F) | 40,
        ..REPLAY_REGS
    })
    .unwrap_err();
    assert!(matches!(
        e,
        CapsError::Invalid {
            field: "IDR1.SIDSIZE",
            ..
        }
    ));
    let e = SmmuConfig::from_id_regs(IdRegs {
        aidr: 0x10,
        ..REPLAY_REGS
    })
    .unwrap_err();
    assert!(matches!(e, CapsError::Invalid { field: "AIDR", .. }));
    assert!(SmmuConfig {
        oas_bits: 47,
        ..SmmuConfig::default()
    }
    .caps()
    .is_err());
}

/// Fields whose dependencies are missing are invalid (IHI 0070 §6.3.1 makes them RES0).
#[test]
fn test_caps_field_dependencies() {
    let bad = [
        SmmuConfig {
            pri: true,
            ..SmmuConfig::default()
        },
        SmmuConfig {
            hyp: true,
            stage2: false,
            ..SmmuConfig::default()
        },
        SmmuConfig {
            ns1ats: true,
            ..SmmuConfig::default()
        },
    ];
    for c in bad {
        assert!(matches!(c.caps(), Err(CapsError::Invalid { .. })), "{c:?}");
    }
    let e = SmmuConfig {
        httu: Httu(3),
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap_err();
    assert!(matches!(
        e,
        CapsError::Unsupported {
            field: "IDR0.HTTU",
            ..
        }
    ));
}
