//! Stage-2 behaviour on hand-built tables: S2AP, XN and FEAT_XNX, IPA range, concatenated
//! roots, access flag, attributes.

use super::helpers::*;
use crate::access::{AccessKind, Perms};
use crate::addr::Granule;
use crate::mem::write_u64_le;
use crate::walk::{walk_stage2, FaultClass, Stage, Stage2Config, WalkFaultKind};

use AccessKind::{Exec, Read, Write};

const PA: u64 = 0x0000_00AB_CDEF_0000;
const S2AP_R: u64 = 1 << 6;
const S2AP_W: u64 = 1 << 7;

/// S2AP: read needs bit 6, write bit 7; without XNX only XN[1] (bit 54) forbids execution,
/// with XNX the four XN[1:0] values distinguish privilege (Arm ARM D8.4.4).
#[test]
fn test_walk_s2_permissions_and_xnx() {
    let m = ram();
    let mut cfg = s2_cfg();
    let rw = S2AP_R | S2AP_W;
    for (ap, data) in [
        (0, Perms::NONE),
        (S2AP_R, Perms::R),
        (S2AP_W, Perms::W),
        (rw, Perms::RW),
    ] {
        chain(&m, [0; 3], PA | PAGE_AF | ap);
        cfg.xnx = false;
        let f = walk_stage2(&m, &cfg, VA, Read, false);
        if data.read() {
            assert_eq!(f.unwrap().perms, data.union(Perms::X));
        } else {
            let f = f.unwrap_err();
            assert_eq!(
                (f.kind, f.level, f.stage),
                (WalkFaultKind::Permission, 3, Stage::S2)
            );
            assert_eq!((f.ipa, f.class), (Some(VA), FaultClass::In));
        }
    }
    // (XN[1:0], XNX?) -> (privileged exec, unprivileged exec)
    let cases = [
        (0b00, false, true, true),
        (0b01, false, true, true),
        (0b10, false, false, false),
        (0b11, false, false, false),
        (0b00, true, true, true),
        (0b01, true, false, true),
        (0b10, true, false, false),
        (0b11, true, true, false),
    ];
    for (xn, xnx, px, ux) in cases {
        chain(&m, [0; 3], PA | PAGE_AF | rw | (xn << 53));
        cfg.xnx = xnx;
        assert_eq!(
            walk_stage2(&m, &cfg, VA, Exec, true).is_ok(),
            px,
            "XN {xn:#b} XNX {xnx}"
        );
        assert_eq!(
            walk_stage2(&m, &cfg, VA, Exec, false).is_ok(),
            ux,
            "XN {xn:#b} XNX {xnx}"
        );
        let r = walk_stage2(&m, &cfg, VA, Write, false).unwrap();
        assert_eq!(r.by_privilege.privileged.exec(), px);
        assert_eq!(r.by_privilege.unprivileged.exec(), ux);
    }
}

/// An IPA at or above 2^(64 - S2T0SZ) is a stage-2 translation fault at level 0 reporting the
/// IPA; stage-2 results are global and carry MemAttr-derived attributes.
#[test]
fn test_walk_s2_ipa_range_and_attrs() {
    let m = ram();
    let mut cfg = s2_cfg();
    cfg.t0sz = 25;
    cfg.sl0 = 1;
    cfg.vttb = T[1];
    chain(&m, [0; 3], PA | PAGE_AF | S2AP_R | (0x1 << 2));
    let f = walk_stage2(&m, &cfg, 1 << 39, Read, false).unwrap_err();
    assert_eq!(
        (f.kind, f.level, f.ipa),
        (WalkFaultKind::Translation, 0, Some(1 << 39))
    );
    // The chain's level-1 table is now the root; VA bits [39:30] index it.
    let ipa = VA & ((1 << 39) - 1);
    let r = walk_stage2(&m, &cfg, ipa, Read, false).unwrap();
    assert_eq!(r.output, PA | 0x567);
    assert!(r.global);
    assert_eq!(
        (r.attrs.mair, r.attrs.shareability),
        (0x04, 2),
        "Device-nGnRE is OS"
    );
}

/// Concatenated root: 4K, 40-bit IPA from level 1 uses two tables; IPA bit 39 selects the
/// second (`arm_64_lpae_alloc_pgtable_s2()`).
#[test]
fn test_walk_s2_concatenated_root() {
    let m = ram();
    let root = RAM + 0x2_0000; // 8 KiB, aligned to its size
    let cfg = Stage2Config::new(Granule::K4, 24, 1, root, 40);
    assert_eq!(cfg.validate().unwrap().concatenated_tables(), 2);
    let ipa = (1u64 << 39) | (5 << 30) | 0x1234_5678;
    // Entry 512 + 5 is in the second table.
    write_u64_le(&m, root + (512 + 5) * 8, 0x40_0000_0000 | BLOCK_AF | S2AP_R).unwrap();
    let r = walk_stage2(&m, &cfg, ipa, Read, false).unwrap();
    assert_eq!(
        (r.output, r.level, r.size_log2),
        (0x40_0000_0000 | 0x1234_5678, 1, 30)
    );
    // 16 tables at level 2 for 16K with a 40-bit PA (R_SRKBC b): top entry of the last table.
    let root16 = RAM + 0x4_0000; // 16 x 16 KiB = 256 KiB
    let cfg16 = Stage2Config::new(Granule::K16, 24, 1, root16, 40);
    assert_eq!(cfg16.validate().unwrap().concatenated_tables(), 16);
    let ipa16 = (1u64 << 40) - (1 << 25);
    write_u64_le(
        &m,
        root16 + (16 * 2048 - 1) * 8,
        0xFE_0000_0000 | BLOCK_AF | S2AP_R,
    )
    .unwrap();
    let r = walk_stage2(&m, &cfg16, ipa16 + 42, Read, false).unwrap();
    assert_eq!((r.output, r.level), (0xFE_0000_0000 + 42, 2));
}

/// Stage-2 AF = 0 without S2HA is an access-flag fault at the leaf level; S2AFFD suppresses it.
#[test]
fn test_walk_s2_access_flag() {
    let m = ram();
    let mut cfg = s2_cfg();
    chain(&m, [0; 3], PA | 3 | S2AP_R);
    let f = walk_stage2(&m, &cfg, VA, Read, false).unwrap_err();
    assert_eq!((f.kind, f.level), (WalkFaultKind::AccessFlag, 3));
    cfg.affd = true;
    assert!(walk_stage2(&m, &cfg, VA, Read, false).is_ok());
}

/// Stage-2 table descriptors' hierarchical bits are ignored (they are stage-1 only).
#[test]
fn test_walk_s2_ignores_table_attributes() {
    let m = ram();
    chain(
        &m,
        [0xF << 59, 0xF << 59, 0],
        PA | PAGE_AF | S2AP_R | S2AP_W,
    );
    let r = walk_stage2(&m, &s2_cfg(), VA, Write, false).unwrap();
    assert_eq!(r.perms, Perms::RWX);
}
