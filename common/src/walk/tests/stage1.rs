//! Stage-1 behaviour on hand-built tables: ranges, TBI, levels of faults, permissions,
//! hierarchical controls, attributes, address sizes.

use super::helpers::*;
use crate::access::{AccessKind, Perms};
use crate::addr::Granule;
use crate::mem::write_u64_le;
use crate::walk::{walk_stage1, Stage, Stage1Config, WalkFault, WalkFaultKind, WalkResult};

use vm_memory::GuestMemoryMmap;
use AccessKind::{Exec, Read, Write};

const PA: u64 = 0x0000_1234_5678_9000;
/// AP[1]: EL0 access.
const AP_EL0: u64 = 1 << 6;
/// AP[2]: read-only.
const AP_RO: u64 = 1 << 7;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

fn w(
    m: &GuestMemoryMmap<()>,
    cfg: &Stage1Config,
    va: u64,
    acc: AccessKind,
    p: bool,
) -> Result<WalkResult, WalkFault> {
    walk_stage1(m, cfg, va, acc, p, None)
}

fn kind_level(r: Result<WalkResult, WalkFault>) -> (WalkFaultKind, u8) {
    let f = r.expect_err("expected a fault");
    assert_eq!(f.stage, Stage::S1);
    (f.kind, f.level)
}

/// A four-level 4K walk finds the page and adds the offset; the result reports size, level,
/// attributes and nG.
#[test]
fn test_walk_s1_page_four_levels() {
    let m = ram();
    chain(&m, [0; 3], PA | PAGE_AF | AP_EL0 | (3 << 8) | (1 << 11));
    let r = w(&m, &s1_cfg(), VA, Read, false).unwrap();
    assert_eq!(r.output, PA | 0x567);
    assert_eq!((r.size_log2, r.level, r.base()), (12, 3, PA));
    assert_eq!(r.attrs.mair, 0xFF);
    assert_eq!(r.attrs.shareability, 3);
    assert!(!r.global);
    assert_eq!(r.len_from_output(), 0x1000 - 0x567);
}

/// Blocks at level 1 (1 GiB) and level 2 (2 MiB) keep the low input bits.
#[test]
fn test_walk_s1_blocks() {
    let m = ram();
    chain(&m, [0; 3], 0);
    write_u64_le(&m, slot(2, VA), 0x8000_0000 | (5 << 21) | BLOCK_AF).unwrap();
    let r = w(&m, &s1_cfg(), VA, Read, true).unwrap();
    assert_eq!(r.output, 0x8000_0000 | (5 << 21) | (VA & 0x1F_FFFF));
    assert_eq!((r.size_log2, r.level), (21, 2));
    // Block address bits below the block size are RES0 and ignored.
    write_u64_le(&m, slot(1, VA), 0x4000_0000 | 0x1234_5000 | BLOCK_AF).unwrap();
    let r = w(&m, &s1_cfg(), VA, Read, true).unwrap();
    assert_eq!(r.output, 0x4000_0000 | (VA & 0x3FFF_FFFF));
    assert_eq!((r.size_log2, r.level), (30, 1));
}

/// Invalid and reserved descriptors give translation faults at the level they were read.
#[test]
fn test_walk_s1_translation_fault_levels() {
    let m = ram();
    let cfg = s1_cfg();
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, false)),
        (WalkFaultKind::Translation, 0)
    );
    chain(&m, [0; 3], 0);
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, false)),
        (WalkFaultKind::Translation, 3)
    );
    // 0b01 at level 3 is reserved.
    write_u64_le(&m, slot(3, VA), PA | BLOCK_AF).unwrap();
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, false)),
        (WalkFaultKind::Translation, 3)
    );
    // A block at level 0 does not exist for 4K without LPA2.
    write_u64_le(&m, slot(0, VA), BLOCK_AF).unwrap();
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, false)),
        (WalkFaultKind::Translation, 0)
    );
    // Invalid at level 1.
    write_u64_le(&m, slot(0, VA), T[1] | TABLE).unwrap();
    write_u64_le(&m, slot(1, VA), 0x2).unwrap();
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, false)),
        (WalkFaultKind::Translation, 1)
    );
}

/// Input range: bits above the input size must be all zeros (TTB0) or all ones (TTB1); TBI
/// exempts the top byte; EPD faults everything.
#[test]
fn test_walk_s1_input_range_and_tbi() {
    let m = ram();
    chain(&m, [0; 3], PA | PAGE_AF | AP_EL0);
    let mut cfg = s1_cfg();
    let tagged = VA | (0x5A << 56);
    assert_eq!(
        kind_level(w(&m, &cfg, tagged, Read, false)),
        (WalkFaultKind::Translation, 0)
    );
    cfg.tbi = true;
    assert_eq!(w(&m, &cfg, tagged, Read, false).unwrap().output, PA | 0x567);
    // Bit 48 set is still out of range with TBI.
    assert_eq!(
        kind_level(w(&m, &cfg, VA | (1 << 48), Read, false)),
        (WalkFaultKind::Translation, 0)
    );
    // TTB1: the upper half, bits [63:48] all ones (or [55:48] with TBI).
    let mut up = s1_cfg();
    up.upper = true;
    let hi = VA | 0xFFFF_0000_0000_0000;
    assert!(Stage1Config::region_of(hi));
    assert_eq!(w(&m, &up, hi, Read, false).unwrap().output, PA | 0x567);
    assert_eq!(
        kind_level(w(&m, &up, VA, Read, false)),
        (WalkFaultKind::Translation, 0)
    );
    up.tbi = true;
    assert_eq!(
        w(&m, &up, (hi & !(0xFF << 56)) | (0x12 << 56), Read, false)
            .unwrap()
            .output,
        PA | 0x567
    );
    cfg.epd = true;
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, false)),
        (WalkFaultKind::Translation, 0)
    );
}

/// AP[2:1] per Arm ARM D8.4.1: 00 priv RW / unpriv none; 01 RW/RW; 10 priv RO; 11 RO/RO.
/// Unprivileged-writable pages are never privileged-executable.
#[test]
fn test_walk_s1_ap_permissions() {
    let m = ram();
    let cfg = s1_cfg();
    let cases = [
        (0, Perms::RWX, Perms::X),
        (AP_EL0, Perms::RW, Perms::RWX),
        (AP_RO, Perms::RX, Perms::X),
        (AP_RO | AP_EL0, Perms::RX, Perms::RX),
    ];
    for (ap, p, u) in cases {
        chain(&m, [0; 3], PA | PAGE_AF | ap);
        let r = w(&m, &cfg, VA, Read, true)
            .or_else(|_| w(&m, &cfg, VA, Exec, true))
            .unwrap();
        assert_eq!(r.by_privilege.privileged, p, "AP {ap:#x}");
        assert_eq!(r.by_privilege.unprivileged, u, "AP {ap:#x}");
        for (acc, priv_) in [
            (Read, true),
            (Write, true),
            (Exec, true),
            (Read, false),
            (Write, false),
            (Exec, false),
        ] {
            let allowed = if priv_ { p } else { u }.allows(acc);
            let res = w(&m, &cfg, VA, acc, priv_);
            assert_eq!(res.is_ok(), allowed, "AP {ap:#x} {acc:?} priv {priv_}");
            if !allowed {
                assert_eq!(kind_level(res), (WalkFaultKind::Permission, 3));
            }
        }
    }
}

/// PXN/UXN on the leaf; WXN makes writable pages execute-never; PAN removes privileged data
/// access to EL0-accessible pages.
#[test]
fn test_walk_s1_xn_wxn_pan() {
    let m = ram();
    let mut cfg = s1_cfg();
    chain(&m, [0; 3], PA | PAGE_AF | AP_EL0 | AP_RO | PXN);
    let r = w(&m, &cfg, VA, Read, true).unwrap();
    assert_eq!(
        (r.by_privilege.privileged, r.by_privilege.unprivileged),
        (Perms::R, Perms::RX)
    );
    chain(&m, [0; 3], PA | PAGE_AF | AP_EL0 | AP_RO | UXN);
    let r = w(&m, &cfg, VA, Read, true).unwrap();
    assert_eq!(
        (r.by_privilege.privileged, r.by_privilege.unprivileged),
        (Perms::RX, Perms::R)
    );
    chain(&m, [0; 3], PA | PAGE_AF);
    cfg.wxn = true;
    assert_eq!(w(&m, &cfg, VA, Read, true).unwrap().perms, Perms::RW);
    cfg.wxn = false;
    cfg.pan = true;
    chain(&m, [0; 3], PA | PAGE_AF | AP_EL0 | AP_RO);
    let r = w(&m, &cfg, VA, Exec, false).unwrap();
    assert_eq!(r.by_privilege.privileged, Perms::X);
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, true)),
        (WalkFaultKind::Permission, 3)
    );
}

/// Hierarchical controls: APTable[1] forces read-only, APTable[0] removes unprivileged
/// access, PXNTable/UXNTable add XN, at any table level; HPD (CD.HADx) ignores them all.
#[test]
fn test_walk_s1_hierarchical() {
    let m = ram();
    let mut cfg = s1_cfg();
    let leaf = PA | PAGE_AF | AP_EL0;
    let cases = [
        ([1 << 62, 0, 0], Perms::RX, Perms::RX),
        ([0, 1 << 61, 0], Perms::RWX, Perms::X),
        ([0, 0, 1 << 59], Perms::RW, Perms::RWX),
        ([1 << 60, 0, 0], Perms::RW, Perms::RW),
        ([0, 3 << 61, 0], Perms::RX, Perms::X),
    ];
    for (tb, p, u) in cases {
        chain(&m, tb, leaf);
        cfg.hpd = false;
        let r = w(&m, &cfg, VA, Read, true).unwrap();
        assert_eq!(
            (r.by_privilege.privileged, r.by_privilege.unprivileged),
            (p, u),
            "{tb:x?}"
        );
        cfg.hpd = true;
        let r = w(&m, &cfg, VA, Read, true).unwrap();
        // Without hierarchy the leaf is EL0-writable: privileged never executes.
        assert_eq!(
            (r.by_privilege.privileged, r.by_privilege.unprivileged),
            (Perms::RW, Perms::RWX)
        );
    }
}

/// Address-size faults: TTB beyond the output size at level 0, a next-level table address at
/// the level of its table descriptor, an output address at the leaf's level.
#[test]
fn test_walk_s1_address_size() {
    let m = ram();
    let mut cfg = s1_cfg();
    cfg.oas_bits = 40;
    chain(&m, [0; 3], (1 << 40) | PAGE_AF);
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, true)),
        (WalkFaultKind::AddressSize, 3)
    );
    chain(&m, [0; 3], (1 << 39) | PAGE_AF);
    assert_eq!(
        w(&m, &cfg, VA, Read, true).unwrap().output,
        (1 << 39) | 0x567
    );
    write_u64_le(&m, slot(1, VA), (1 << 41) | TABLE).unwrap();
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, true)),
        (WalkFaultKind::AddressSize, 1)
    );
    cfg.ttb = 1 << 44;
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Read, true)),
        (WalkFaultKind::AddressSize, 0)
    );
}

/// A table outside guest RAM is an external abort carrying the descriptor's address.
#[test]
fn test_walk_s1_external_abort() {
    let m = ram();
    chain(&m, [0; 3], PA | PAGE_AF);
    write_u64_le(&m, slot(2, VA), 0x10_0000_0000 | TABLE).unwrap();
    let f = w(&m, &s1_cfg(), VA, Read, true).unwrap_err();
    assert_eq!(
        f.kind,
        WalkFaultKind::ExternalAbort {
            fetch_addr: 0x10_0000_0000 + 4 * 8
        }
    );
    assert_eq!(f.level, 3);
}

/// AF = 0 without HA: access-flag fault at the leaf's level, unless AFFD; the AF fault wins
/// over a permission fault.
#[test]
fn test_walk_fault_access_flag() {
    let m = ram();
    let mut cfg = s1_cfg();
    chain(&m, [0; 3], PA | 3 | AP_RO);
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Write, true)),
        (WalkFaultKind::AccessFlag, 3)
    );
    cfg.affd = true;
    assert_eq!(
        kind_level(w(&m, &cfg, VA, Write, true)),
        (WalkFaultKind::Permission, 3)
    );
    assert!(w(&m, &cfg, VA, Read, true).is_ok());
    assert_eq!(read(&m, slot(3, VA)) & (1 << 10), 0, "AFFD does not set AF");
}

/// 16K and 64K granules: start levels, block sizes, and 52-bit output addresses with 64K.
#[test]
fn test_walk_s1_16k_64k() {
    let m = ram();
    // 16K, 48-bit: level 0 has 2 entries; VA bit 47 picks entry 1.
    let va = (1u64 << 47) | (1 << 36) | (2 << 25) | 0x1_2345;
    let mut cfg = Stage1Config::new(Granule::K16, 16, T[0], 48);
    write_u64_le(&m, T[0] + 8, (RAM + 0x4000) | TABLE).unwrap();
    write_u64_le(&m, RAM + 0x4000 + 8, (RAM + 0x8000) | TABLE).unwrap();
    write_u64_le(&m, RAM + 0x8000 + 16, 0x7_0000_0000 | BLOCK_AF).unwrap();
    let r = w(&m, &cfg, va, Read, true).unwrap();
    assert_eq!(
        (r.output, r.size_log2, r.level),
        (0x7_0000_0000 | (va & 0x1FF_FFFF), 25, 2)
    );
    // 64K, 52-bit input and output: level 1 has 1024 entries; PA[51:48] from desc[15:12].
    cfg = Stage1Config::new(Granule::K64, 12, RAM + 0x1_0000, 52);
    cfg.lva = true;
    let va = (0x3FFu64 << 42) | (1 << 29) | (2 << 16) | 0x1234;
    write_u64_le(&m, RAM + 0x1_0000 + 0x3FF * 8, (RAM + 0x2_0000) | TABLE).unwrap();
    write_u64_le(&m, RAM + 0x2_0000 + 8, (RAM + 0x3_0000) | TABLE).unwrap();
    write_u64_le(
        &m,
        RAM + 0x3_0000 + 16,
        0x0000_1234_5678_0000 | (0xA << 12) | PAGE_AF,
    )
    .unwrap();
    let r = w(&m, &cfg, va, Read, true).unwrap();
    assert_eq!(
        (r.output, r.size_log2, r.level),
        (0x000A_1234_5678_1234, 16, 3)
    );
    // The same table with a 48-bit output size: desc[15:12] are not address bits.
    cfg.oas_bits = 48;
    cfg.txsz = 16;
    write_u64_le(&m, RAM + 0x1_0000 + 0x3F * 8, (RAM + 0x2_0000) | TABLE).unwrap();
    let r = w(&m, &cfg, va & ((1 << 48) - 1), Read, true).unwrap();
    assert_eq!(r.output, 0x0000_1234_5678_1234);
}
