//! Demo: an Arm SMMUv3 brought up the way Linux's arm-smmu-v3 driver does it, DMA through it,
//! an unmap with TLBI_NH_VA + CMD_SYNC, a fault landing in the event queue with its MSI, and
//! IOTLB statistics.

use std::sync::Arc;

use viommu_common::testing::{guest_ram, Irq, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{DriverOptions, GuestDriver, Prot};
use viommu_smmuv3::trace::TraceLog;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;

/// Run this part of the demo.
pub fn run() {
    println!("== viommu-smmuv3: an SMMUv3 driven like Linux's arm-smmu-v3 ==");
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = match SmmuV3::new(&SmmuConfig::default(), &ram, irq.clone()) {
        Ok(s) => s,
        Err(e) => return println!("cannot configure the SMMU: {e}"),
    };
    let log = TraceLog::new();
    smmu.set_tracer(Some(log.tracer()));
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());

    let info = match drv.probe() {
        Ok(i) => i,
        Err(e) => return println!("probe failed: {e}"),
    };
    println!(
        "probe: IDR0={:#010x} IDR1={:#010x} -> {}-level stream table, {} CMD_SYNC, RIL={}",
        info.idr0,
        info.idr1,
        if info.two_level { "2" } else { "1" },
        if info.msipoll {
            "MSI-polled"
        } else {
            "CONS-polled"
        },
        info.ril
    );
    if let Err(e) = drv.reset() {
        return println!("reset failed: {e}");
    }
    println!(
        "reset: CR0ACK={:#x} IRQ_CTRLACK={:#x}, {} commands consumed; the device's trace:",
        drv.read32(r::CR0ACK),
        drv.read32(r::IRQ_CTRLACK),
        smmu.stats().commands
    );
    for line in log.take_text().lines().filter(|l| !l.starts_with("MMIO")) {
        println!("    {line}");
    }

    // A PCI device (RID 00:02.0 = StreamID 0x10) attached to a stage-1 domain.
    let sid = 0x10;
    let dom = drv.new_s1_domain(1);
    let iova = 0x1_0000_0000;
    dom.pgtable.map_pages(
        &ram,
        &mut drv.alloc,
        iova,
        RAM + 0x0200_0000,
        0x4000,
        Prot::RW,
    );
    if let Err(e) = drv.attach_s1(sid, &dom) {
        return println!("attach failed: {e}");
    }
    let _ = log.take();
    println!("attached SID {sid:#x} to ASID 1 (CD + CD-table STE, hitless writes + CFGI + SYNC)");

    for off in [0x0u64, 0x1008, 0x2010, 0x0040, 0x1008, 0x3ff8] {
        match smmu.translate(&DmaRequest::read(sid, iova + off, 8)) {
            Ok(m) => println!(
                "  DMA read  {:#x} -> {:#x} ({})",
                iova + off,
                m.output,
                m.perms
            ),
            Err(f) => println!("  DMA read  {:#x} -> fault {}", iova + off, f.event),
        }
    }
    let st = smmu.stats().iotlb;
    println!(
        "IOTLB: {} hits, {} misses, {} inserts",
        st.hits, st.misses, st.inserts
    );

    println!(
        "unmap {:#x} (io-pgtable clear, TLBI_NH_VA + CMD_SYNC):",
        iova + 0x1000
    );
    if let Err(e) = drv.unmap_s1(&dom, iova + 0x1000, 0x1000) {
        return println!("unmap failed: {e}");
    }
    for line in log.take_text().lines().filter(|l| !l.starts_with("MMIO")) {
        println!("    {line}");
    }
    match smmu.translate(&DmaRequest::write(sid, iova + 0x1008, 8)) {
        Ok(m) => println!(
            "  DMA write {:#x} -> {:#x} (unexpected)",
            iova + 0x1008,
            m.output
        ),
        Err(f) => println!("  DMA write {:#x} -> fault {}", iova + 0x1008, f.event),
    }
    for line in log.take_text().lines() {
        println!("    {line}");
    }
    for rec in drv.read_events() {
        println!(
            "  event queue record: {:#018x} {:#018x} {:#018x} {:#018x}",
            rec[0], rec[1], rec[2], rec[3]
        );
    }
    for i in irq.take() {
        if let Irq::Msi { addr, data } = i {
            println!("  MSI to doorbell {addr:#x} data {data:#x}");
        }
    }
    let st = smmu.stats();
    println!(
        "totals: {} commands, {} events, {} faults; IOTLB {} hits / {} misses / {} invalidations",
        st.commands, st.events, st.faults, st.iotlb.hits, st.iotlb.misses, st.iotlb.invalidations
    );
}
