//! Nested translation: stage-1 tables and output through a stage-2 walk (IHI 0070 §5.2, §7.3).
//! Stage-2 faults on stage-1 descriptor fetches are CLASS = TT with the descriptor's IPA; on
//! the output CLASS = IN with the output IPA; HTTU updates of stage-1 descriptors need stage-2
//! write permission.

use vm_memory::GuestMemoryMmap;

use super::helpers::*;
use crate::access::{AccessKind, Perms};
use crate::addr::Granule;
use crate::mem::write_u64_le;
use crate::testing::guest_ram;
use crate::testing::pgtable::{LpaeBuilder, PgFormat, IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE};
use crate::walk::{
    walk_stage1, walk_stage2, FaultClass, Stage, Stage1Config, WalkFault, WalkFaultKind, WalkResult,
};

use AccessKind::{Read, Write};

/// Stage-1 output IPA of the chain's leaf.
const IPA: u64 = 0x8000_0000;
/// Where stage 2 maps `IPA` (a 2 MiB block).
const PA: u64 = 0x1_0000_0000;
const S2_TABLES: u64 = RAM + 0x40_0000;
const AP_EL0: u64 = 1 << 6;
const XN: u64 = 3 << 53;

fn nested_ram() -> GuestMemoryMmap<()> {
    guest_ram(RAM, 8 << 20)
}

/// Stage 2 identity-maps the four stage-1 table pages (RW) and maps `IPA` to `PA` read-only.
fn stage2(m: &GuestMemoryMmap<()>) -> LpaeBuilder<'_, GuestMemoryMmap<()>> {
    let mut b =
        LpaeBuilder::new(m, PgFormat::Stage2, Granule::K4, 48, 48, S2_TABLES, 4 << 20).unwrap();
    for t in T {
        b.map(t, t, 0x1000, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE)
            .unwrap();
    }
    b.map(IPA, PA, 1 << 21, IOMMU_READ | IOMMU_CACHE).unwrap();
    b
}

fn nested(
    m: &GuestMemoryMmap<()>,
    b: &LpaeBuilder<'_, GuestMemoryMmap<()>>,
    s1: &Stage1Config,
    va: u64,
    access: AccessKind,
) -> Result<WalkResult, WalkFault> {
    let s2 = b.stage2_config();
    let hook = |ipa: u64, acc: AccessKind| walk_stage2(m, &s2, ipa, acc, false);
    walk_stage1(m, s1, va, access, false, Some(&hook))
}

/// The combined result has stage 2's output, S1 ∩ S2 permissions, the smaller mapping size,
/// the intermediate IPA and combined attributes.
#[test]
fn test_walk_nested_combines_stages() {
    let m = nested_ram();
    let b = stage2(&m);
    chain(&m, [0; 3], IPA | PAGE_AF | AP_EL0 | XN | (3 << 8));
    let r = nested(&m, &b, &s1_cfg(), VA, Read).unwrap();
    assert_eq!(r.output, PA | 0x567);
    assert_eq!(r.ipa, Some(IPA | 0x567));
    assert_eq!((r.size_log2, r.level), (12, 3));
    assert_eq!(r.perms, Perms::R, "S1 RW ∩ S2 R");
    assert_eq!(r.attrs.mair, 0xFF);
    // A stage-1 2 MiB block over a stage-2 2 MiB block: 2 MiB.
    write_u64_le(&m, slot(2, VA), IPA | BLOCK_AF | AP_EL0).unwrap();
    let r = nested(&m, &b, &s1_cfg(), VA, Read).unwrap();
    assert_eq!((r.size_log2, r.output), (21, PA | (VA & 0x1F_FFFF)));
}

/// A stage-2 permission fault on the output: CLASS = IN, the output IPA reported.
#[test]
fn test_walk_nested_s2_permission_on_output() {
    let m = nested_ram();
    let b = stage2(&m);
    chain(&m, [0; 3], IPA | PAGE_AF | AP_EL0);
    let f = nested(&m, &b, &s1_cfg(), VA, Write).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.class),
        (WalkFaultKind::Permission, Stage::S2, FaultClass::In)
    );
    assert_eq!((f.ipa, f.desc_write), (Some(IPA | 0x567), false));
    // Stage 1's own permission fault comes first and is a stage-1 fault.
    chain(&m, [0; 3], IPA | PAGE_AF | AP_EL0 | (1 << 7));
    let f = nested(&m, &b, &s1_cfg(), VA, Write).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.ipa),
        (WalkFaultKind::Permission, Stage::S1, None)
    );
}

/// A stage-2 translation fault on the output IPA.
#[test]
fn test_walk_nested_s2_fault_on_output() {
    let m = nested_ram();
    let b = stage2(&m);
    chain(&m, [0; 3], 0x9000_0000 | PAGE_AF | AP_EL0);
    let f = nested(&m, &b, &s1_cfg(), VA, Read).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.class),
        (WalkFaultKind::Translation, Stage::S2, FaultClass::In)
    );
    assert_eq!(f.ipa, Some(0x9000_0567));
}

/// Stage-2 faults while fetching stage-1 descriptors (the TTB table and a level-2 table):
/// CLASS = TT, TTRnW = read, the descriptor's IPA, stage 2's level.
#[test]
fn test_walk_nested_s2_fault_on_table_fetch() {
    let m = nested_ram();
    let mut b = stage2(&m);
    chain(&m, [0; 3], IPA | PAGE_AF | AP_EL0);
    assert_eq!(b.unmap(T[2], 0x1000), Ok(0x1000));
    let f = nested(&m, &b, &s1_cfg(), VA, Read).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.class),
        (WalkFaultKind::Translation, Stage::S2, FaultClass::Tt)
    );
    assert_eq!(
        (f.ipa, f.desc_write, f.level),
        (Some(slot(2, VA)), false, 3)
    );
    assert_eq!(b.unmap(T[0], 0x1000), Ok(0x1000));
    let f = nested(&m, &b, &s1_cfg(), VA, Read).unwrap_err();
    assert_eq!((f.class, f.ipa), (FaultClass::Tt, Some(slot(0, VA))));
    // A stage-1 TTB beyond stage 1's output size is a stage-1 address-size fault, checked
    // before any stage-2 translation.
    let mut cfg = s1_cfg();
    cfg.oas_bits = 32;
    cfg.ttb = 1 << 33;
    let f = nested(&m, &b, &cfg, VA, Read).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.level),
        (WalkFaultKind::AddressSize, Stage::S1, 0)
    );
}

/// A stage-2 external abort while fetching a stage-2 table during a stage-1 fetch.
#[test]
fn test_walk_nested_s2_external_abort() {
    let m = nested_ram();
    let b = stage2(&m);
    chain(&m, [0; 3], IPA | PAGE_AF | AP_EL0);
    let mut s2 = b.stage2_config();
    s2.vttb = 0x7_0000_0000; // outside RAM
    let hook = |ipa: u64, acc: AccessKind| walk_stage2(&m, &s2, ipa, acc, false);
    let f = walk_stage1(&m, &s1_cfg(), VA, Read, false, Some(&hook)).unwrap_err();
    assert!(matches!(f.kind, WalkFaultKind::ExternalAbort { .. }));
    assert_eq!(
        (f.stage, f.class, f.ipa),
        (Stage::S2, FaultClass::Tt, Some(slot(0, VA)))
    );
}

/// A hardware access-flag update of a stage-1 descriptor is a write through stage 2: a
/// read-only stage-2 mapping of the table gives a stage-2 permission fault with TTRnW = write.
#[test]
fn test_walk_nested_httu_needs_s2_write() {
    let m = nested_ram();
    let mut b = stage2(&m);
    let mut cfg = s1_cfg();
    cfg.ha = true;
    chain(&m, [0; 3], IPA | 3 | AP_EL0);
    assert_eq!(b.unmap(T[3], 0x1000), Ok(0x1000));
    b.map(T[3], T[3], 0x1000, IOMMU_READ).unwrap();
    let f = nested(&m, &b, &cfg, VA, Read).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.class),
        (WalkFaultKind::Permission, Stage::S2, FaultClass::Tt)
    );
    assert_eq!((f.ipa, f.desc_write), (Some(slot(3, VA)), true));
    assert_eq!(read(&m, slot(3, VA)) & (1 << 10), 0, "nothing written");
    // With a writable stage-2 mapping the update goes through.
    assert_eq!(b.unmap(T[3], 0x1000), Ok(0x1000));
    b.map(T[3], T[3], 0x1000, IOMMU_READ | IOMMU_WRITE).unwrap();
    assert!(nested(&m, &b, &cfg, VA, Read).is_ok());
    assert_ne!(
        read(&m, slot(3, VA)) & (1 << 10),
        0,
        "AF set through stage 2"
    );
}
