//! Demo: the Freescale/NXP PAMU. A P4080-class PAMU is probed the way Linux does it, a
//! VFIO-style domain gets a geometry and windows, a device DMAs through a window, sends an MSI
//! through an MSI-bank window, and an access violation is captured and handled.

use std::sync::Arc;

use viommu_common::access::{DmaRequest, Perms};
use viommu_common::testing::RecordingIrq;
use viommu_common::traits::DmaTranslator;
use viommu_pamu::geometry::plan;
use viommu_pamu::spec::regs::Reg;
use viommu_pamu::testing::{GuestDriver, LinuxVersion};
use viommu_pamu::{Pamu, PamuConfig};

/// Run this part of the demo.
pub fn run() {
    if let Err(e) = demo() {
        println!("pamu demo failed: {e}");
    }
}

fn demo() -> Result<(), String> {
    println!("== PAMU (Freescale/NXP QorIQ, P4080 profile) ==");
    let mem = viommu_common::testing::guest_ram(0, 0x400_0000);
    let irq = Arc::new(RecordingIrq::new());
    let pamu = Pamu::new(PamuConfig::p4080(), &mem, irq.clone()).map_err(|e| e.to_string())?;
    let caps = *pamu.caps();
    println!(
        "{} instances, {} subwindows per LIODN (PC3 {:#010x}), {} MSI banks",
        caps.instances,
        caps.max_subwindows(),
        caps.pc3.into_bits(),
        caps.msi_banks
    );
    let mut drv = GuestDriver::new(&pamu, 0x100_0000, LinuxVersion::Pre513);
    drv.probe().map_err(|e| e.to_string())?;
    println!(
        "probed like Linux: PC = {:#010x}, PICS = {:#x}",
        drv.read(0, Reg::Pc),
        drv.read(0, Reg::Pics)
    );

    let banks = pamu.msi_banks();
    let p = plan(
        0,
        0x4000_0000,
        banks.count(),
        0x1000_0000,
        caps.max_subwindows(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "geometry plan for 1 GiB of RAM + {} MSI banks with 256 MiB windows: aperture {:#x}, {} windows of {:#x}",
        banks.count(),
        p.aperture_size,
        p.windows,
        p.window_size
    );
    let mem = *pamu.memory();
    let mut dom = drv.new_domain();
    let t = &mut drv.tables;
    let liodn = 0x10u16;
    let e = |e: viommu_pamu::geometry::GeometryError| e.to_string();
    dom.attach(t, mem, liodn).map_err(e)?;
    dom.set_geometry(
        t,
        mem,
        p.aperture_start,
        p.aperture_start + p.aperture_size - 1,
    )
    .map_err(e)?;
    dom.set_windows(t, mem, p.windows).map_err(e)?;
    dom.map_dma(
        t,
        mem,
        0,
        0x2_0000_0000,
        u64::from(p.ram_windows) * p.window_size,
        Perms::RW,
    )
    .map_err(e)?;
    let msi = dom.reserve_msi_windows(t, mem, &banks).map_err(e)?;
    for w in 0..p.windows {
        if let Some(m) = dom.window(w) {
            println!(
                "  window {w}: iova {:#011x} -> {:#011x}, {:#x} bytes, {}{}",
                u64::from(w) * p.window_size,
                m.paddr,
                m.size,
                m.prot,
                m.msi_bank
                    .map(|b| format!(", MSI bank {b}"))
                    .unwrap_or_default()
            );
        }
    }
    let out = pamu
        .translate(&DmaRequest::write(u32::from(liodn), 0x1234_5678, 8))
        .map_err(|f| f.event.to_string())?;
    println!(
        "DMA write LIODN {liodn:#x} iova 0x12345678 -> {:#x}",
        out.output
    );
    let (t1, v) = pamu
        .msi_write(u32::from(liodn), msi[1], 0x47)
        .map_err(|f| f.event().to_string())?;
    if let Some(v) = v {
        println!(
            "MSI write to {:#x} -> MSIIR {:#x}: bank {} SRS {} IBS {}; delivered: {:x?}",
            msi[1],
            t1.output,
            v.bank,
            v.srs,
            v.ibs,
            irq.take().last()
        );
    }
    let f = pamu.translate(&DmaRequest::read(u32::from(liodn), 0x4000_0000, 4));
    println!(
        "DMA read iova 0x40000000 (window 4, unmapped) -> {:?}",
        f.map(|m| m.output).map_err(|f| f.event.name())
    );
    println!(
        "captured: AVS1 = {:#010x}, AVA = {:#x}, PICS = {:#x}, AV line {:?}",
        drv.read(0, Reg::Avs1),
        drv.read(0, Reg::Aval),
        drv.read(0, Reg::Pics),
        irq.take()
    );
    let rep = drv.av_isr().map_err(|e| e.to_string())?;
    println!(
        "Linux ISR handled {} violation(s); LIODN {liodn:#x} now disabled; AVS1 = {:#010x}",
        rep.len(),
        drv.read(0, Reg::Avs1)
    );
    Ok(())
}
