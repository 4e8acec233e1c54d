//! Reference vectors: tables built exactly as Linux io-pgtable-arm builds them, exercised with the
//! shape of its self-test (io-pgtable-arm-selftests.c `arm_lpae_run_tests()`), for stage 1 and
//! stage 2, every granule and input sizes {32, 36, 40, 42, 44, 48} with every output size >= the
//! input size.

use crate::access::{AccessKind, Perms};
use crate::addr::Granule;
use crate::testing::guest_ram;
use crate::testing::pgtable::{
    LpaeBuilder, PgError, PgFormat, IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE,
};
use crate::walk::{walk_stage1, walk_stage2, Stage, WalkFault, WalkFaultKind, WalkResult};

use vm_memory::GuestMemoryMmap;

const SIZES: [u32; 6] = [32, 36, 40, 42, 44, 48];
const GIB: u64 = 1 << 30;
const TABLE_RAM: u64 = 0x1000_0000;
const TABLE_RAM_SIZE: usize = 8 << 20;

fn walk(
    b: &LpaeBuilder<'_, GuestMemoryMmap<()>>,
    m: &GuestMemoryMmap<()>,
    fmt: PgFormat,
    addr: u64,
    access: AccessKind,
) -> Result<WalkResult, WalkFault> {
    match fmt {
        PgFormat::Stage1 => {
            let cfg = b.stage1_config();
            cfg.validate().expect("Linux stage-1 config is valid");
            walk_stage1(m, &cfg, addr, access, false, None)
        }
        PgFormat::Stage2 => {
            let cfg = b.stage2_config();
            cfg.validate().expect("Linux stage-2 config is valid");
            walk_stage2(m, &cfg, addr, access, false)
        }
    }
}

fn stage(fmt: PgFormat) -> Stage {
    match fmt {
        PgFormat::Stage1 => Stage::S1,
        PgFormat::Stage2 => Stage::S2,
    }
}

/// `addr` translates to itself through a `size` mapping.
fn assert_identity(
    b: &LpaeBuilder<'_, GuestMemoryMmap<()>>,
    m: &GuestMemoryMmap<()>,
    fmt: PgFormat,
    addr: u64,
    size: u64,
    access: AccessKind,
) {
    let r = walk(b, m, fmt, addr, access)
        .unwrap_or_else(|f| panic!("{fmt:?} {addr:#x} {access:?}: {f}"));
    assert_eq!(r.output, addr, "{fmt:?} {addr:#x}");
    assert_eq!(r.size(), size, "{fmt:?} {addr:#x}");
    assert_eq!(r.base(), addr & !(size - 1));
}

fn assert_fault(
    b: &LpaeBuilder<'_, GuestMemoryMmap<()>>,
    m: &GuestMemoryMmap<()>,
    fmt: PgFormat,
    addr: u64,
    access: AccessKind,
    kind: WalkFaultKind,
) {
    let f = walk(b, m, fmt, addr, access).expect_err("walk must fault");
    assert_eq!(f.kind, kind, "{fmt:?} {addr:#x} {access:?}: {f}");
    assert_eq!(f.stage, stage(fmt));
    if fmt == PgFormat::Stage2 {
        assert_eq!(f.ipa, Some(addr));
    }
}

/// One io-pgtable self-test run (`arm_lpae_run_tests()`, new version).
fn selftest(fmt: PgFormat, granule: Granule, ias: u32, oas: u32) {
    let m = guest_ram(TABLE_RAM, TABLE_RAM_SIZE);
    let mut b = LpaeBuilder::new(&m, fmt, granule, ias, oas, TABLE_RAM, TABLE_RAM_SIZE as u64)
        .expect("builder");
    let rwnc = IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE;
    // 1. Empty table: nothing translates.
    for addr in [42, GIB + 42, 2 * GIB + 42] {
        assert_fault(
            &b,
            &m,
            fmt,
            addr,
            AccessKind::Read,
            WalkFaultKind::Translation,
        );
    }
    // 2-4. Identity-map each page size at k GiB; remapping fails; translations are identity;
    // NOEXEC forbids instruction fetches.
    let sizes = b.page_sizes();
    for (k, &size) in sizes.iter().enumerate() {
        let iova = k as u64 * GIB;
        b.map(iova, iova, size, rwnc).expect("map");
        assert_eq!(
            b.map(iova, iova + size, size, IOMMU_READ | IOMMU_NOEXEC),
            Err(PgError::Exists)
        );
        assert_identity(&b, &m, fmt, iova + 42, size, AccessKind::Read);
        assert_identity(&b, &m, fmt, iova + 42, size, AccessKind::Write);
        assert_fault(
            &b,
            &m,
            fmt,
            iova + 42,
            AccessKind::Exec,
            WalkFaultKind::Permission,
        );
        let r = walk(&b, &m, fmt, iova + 42, AccessKind::Read).unwrap();
        assert_eq!(r.perms, Perms::RW);
        assert_eq!(r.attrs.mair, 0xFF, "IOMMU_CACHE is write-back");
        assert_eq!(r.attrs.shareability, 3, "IOMMU_CACHE is inner shareable");
        assert_eq!(r.global, fmt == PgFormat::Stage2, "stage-1 PTEs are nG");
    }
    // 6. Unmap each size: gone; remap WRITE-only: identity again (S1 write-only maps as RW,
    // S2 write-only forbids reads); remap READ-only: writes take permission faults.
    for (k, &size) in sizes.iter().enumerate() {
        let iova = k as u64 * GIB;
        assert_eq!(b.unmap(iova, size), Ok(size));
        assert_fault(
            &b,
            &m,
            fmt,
            iova + 42,
            AccessKind::Read,
            WalkFaultKind::Translation,
        );
        b.map(iova, iova, size, IOMMU_WRITE)
            .expect("remap write-only");
        assert_identity(&b, &m, fmt, iova + 42, size, AccessKind::Write);
        match fmt {
            PgFormat::Stage1 => assert_identity(&b, &m, fmt, iova + 42, size, AccessKind::Read),
            PgFormat::Stage2 => assert_fault(
                &b,
                &m,
                fmt,
                iova + 42,
                AccessKind::Read,
                WalkFaultKind::Permission,
            ),
        }
        let r = walk(&b, &m, fmt, iova, AccessKind::Write).unwrap();
        assert_eq!(r.attrs.mair, 0x44, "no IOMMU_CACHE: Normal non-cacheable");
        assert_eq!(b.unmap(iova, size), Ok(size));
        b.map(iova, iova, size, IOMMU_READ)
            .expect("remap read-only");
        assert_identity(&b, &m, fmt, iova + size - 1, size, AccessKind::Read);
        assert_fault(
            &b,
            &m,
            fmt,
            iova + 42,
            AccessKind::Write,
            WalkFaultKind::Permission,
        );
    }
    // 7. The last largest page below 2^ias: the top entry of the (possibly concatenated) PGD.
    let largest = *sizes.last().expect("sizes");
    let top = (1u64 << ias) - largest;
    if top >= sizes.len() as u64 * GIB {
        b.map(top, top, largest, rwnc).expect("map top");
        assert_identity(&b, &m, fmt, top + largest - 8, largest, AccessKind::Read);
        assert_eq!(b.unmap(top, largest), Ok(largest));
        assert_fault(
            &b,
            &m,
            fmt,
            top + 42,
            AccessKind::Read,
            WalkFaultKind::Translation,
        );
    }
    // Input beyond the input size: translation fault at level 0.
    let f = walk(&b, &m, fmt, 1u64 << ias, AccessKind::Read).unwrap_err();
    assert_eq!((f.kind, f.level), (WalkFaultKind::Translation, 0));
}

fn run_all(fmt: PgFormat) {
    for granule in [Granule::K4, Granule::K16, Granule::K64] {
        for &ias in &SIZES {
            for &oas in SIZES.iter().filter(|&&o| o >= ias) {
                selftest(fmt, granule, ias, oas);
            }
        }
    }
}

/// Stage-1 tables built like io-pgtable translate as its self-test expects.
#[test]
fn test_walk_iopgtable_selftest_stage1() {
    run_all(PgFormat::Stage1);
}

/// Stage-2 tables (including mandatory concatenation) translate as io-pgtable's self-test
/// expects.
#[test]
fn test_walk_iopgtable_selftest_stage2() {
    run_all(PgFormat::Stage2);
}
