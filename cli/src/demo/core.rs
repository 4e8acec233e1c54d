//! Demo: the shared translation core on its own.
//!
//! Builds Linux io-pgtable-format stage-1 tables in guest memory, translates DMA addresses with
//! the VMSAv8-64 walker, caches the results in the lock-free IOTLB (showing misses, hits and an
//! invalidation), and shows a translation fault.

use viommu_common::access::AccessKind;
use viommu_common::id::{Asid, Vmid};
use viommu_common::iotlb::{InvRange, Invalidation, Iotlb, Regime, TlbEntry, TlbTag};
use viommu_common::testing::guest_ram;
use viommu_common::testing::pgtable::{LpaeBuilder, PgFormat, IOMMU_READ, IOMMU_WRITE};
use viommu_common::walk::{walk_stage1, WalkFault, WalkResult};
use viommu_common::Granule;
use vm_memory::GuestMemoryMmap;

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: usize = 64 << 20;
const TABLES: u64 = RAM_BASE + (32 << 20);

/// Translate through the IOTLB, walking guest memory on a miss.
fn translate(
    mem: &GuestMemoryMmap<()>,
    tlb: &Iotlb,
    tag: TlbTag,
    cfg: &viommu_common::walk::Stage1Config,
    iova: u64,
) -> Result<(u64, &'static str), WalkFault> {
    if let Some(e) = tlb.lookup(tag, iova) {
        return Ok((e.translate(iova), "IOTLB hit"));
    }
    let token = tlb.begin_fill(tag);
    let r: WalkResult = walk_stage1(mem, cfg, iova, AccessKind::Read, false, None)?;
    tlb.insert(
        token,
        TlbEntry {
            input: iova & !(r.size() - 1),
            output: r.base(),
            size_log2: r.size_log2 as u8,
            level: r.level as i8,
            perms: r.by_privilege.unprivileged,
            priv_perms: r.by_privilege.privileged,
            attrs: r.attrs,
            global: r.global,
            ipa: None,
            flags: 0,
        },
    );
    Ok((r.output, "walked guest tables (miss)"))
}

/// Run this part of the demo.
pub fn run() {
    println!("== viommu-common: page-table walker and IOTLB ==");
    let mem = guest_ram(RAM_BASE, RAM_SIZE);
    let mut pt =
        match LpaeBuilder::new(&mem, PgFormat::Stage1, Granule::K4, 48, 48, TABLES, 1 << 20) {
            Ok(pt) => pt,
            Err(e) => return println!("cannot build page tables: {e}"),
        };
    let maps = [
        (
            0x1000_0000u64,
            RAM_BASE + 0x10_0000,
            0x1000u64,
            "4 KiB page",
        ),
        (0x1000_1000, RAM_BASE + 0x30_0000, 0x1000, "4 KiB page"),
        (0x4020_0000, RAM_BASE + 0x40_0000, 0x20_0000, "2 MiB block"),
    ];
    for (iova, pa, size, what) in maps {
        match pt.map(iova, pa, size, IOMMU_READ | IOMMU_WRITE) {
            Ok(()) => println!("  map   iova {iova:#012x} -> pa {pa:#x} ({what})"),
            Err(e) => println!("  map   iova {iova:#012x} failed: {e}"),
        }
    }
    let mut cfg = pt.stage1_config();
    cfg.mair = viommu_common::testing::pgtable::LINUX_MAIR;
    let tlb = Iotlb::new(1024);
    let regime = Regime::Nh { vmid: Vmid(0) };
    let tag = TlbTag::stage1_in(regime, Asid(1));
    let probes = [
        0x1000_0010u64,
        0x1000_0020,
        0x1000_1ff8,
        0x4033_4455,
        0x4020_0000,
    ];
    for iova in probes {
        match translate(&mem, &tlb, tag, &cfg, iova) {
            Ok((pa, how)) => println!("  dma   iova {iova:#012x} -> pa {pa:#x}  [{how}]"),
            Err(f) => println!("  dma   iova {iova:#012x} -> fault {f}"),
        }
    }
    println!("  unmap iova 0x0010000000 and TLBI by VA (ASID 1)");
    if let Err(e) = pt.unmap(0x1000_0000, 0x1000) {
        println!("  unmap failed: {e}");
    }
    tlb.invalidate(Invalidation::Va {
        regime,
        asid: Some(Asid(1)),
        range: InvRange::address(0x1000_0000),
    });
    match translate(&mem, &tlb, tag, &cfg, 0x1000_0010) {
        Ok((pa, how)) => println!("  dma   iova 0x0010000010 -> pa {pa:#x}  [{how}] (unexpected)"),
        Err(f) => println!("  dma   iova 0x0010000010 -> fault: {f}"),
    }
    let s = tlb.stats();
    println!(
        "  IOTLB: {} hits, {} misses, {} inserts, {} invalidations, {} evictions\n",
        s.hits, s.misses, s.inserts, s.invalidations, s.evictions
    );
}
