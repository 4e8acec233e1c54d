//! PAMU device scenarios driven only through MMIO and table memory: live table updates,
//! interrupts and the Linux ISR, operation errors, gate/enable/bypass, instance routing, MMIO
//! access rules and MSI delivery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use viommu_common::access::{AccessKind, DmaRequest, Perms};
use viommu_common::fault::{FaultId, PamuFaultId};
use viommu_common::testing::Irq;
use viommu_common::traits::{DmaTranslator, FaultKind, MmioDevice};
use viommu_pamu::fault::{OpError, PamuFault};
use viommu_pamu::spec::regs::Reg;
use viommu_pamu::testing::{DtDevice, DtKind, LinuxVersion, PaactBuilder, Rig};
use viommu_pamu::{BypassRegion, PamuConfig};

fn rd(rig: &Rig, liodn: u32, addr: u64) -> Result<u64, &'static str> {
    rig.pamu
        .translate(&DmaRequest::read(liodn, addr, 4))
        .map(|m| m.output)
        .map_err(|f| f.event.name())
}

fn wr(rig: &Rig, liodn: u32, addr: u64) -> Result<u64, &'static str> {
    rig.pamu
        .translate(&DmaRequest::write(liodn, addr, 4))
        .map(|m| m.output)
        .map_err(|f| f.event.name())
}

const WIN: [u32; 8] = [0, 0x8000_06D9, 0x80, 4, 1, 0x2000_0000, 0, 0];

/// Caching policy: the guest clears V, rewrites the entry, sets V; the next translation sees
/// each step without any invalidation.
#[test]
fn test_live_update_v0_update_v1_observed() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    b.ppaace(3, WIN).unwrap();
    assert_eq!(rd(&rig, 3, 0x8000_0010), Ok(0x1_2000_0010));
    drv.set_liodn_valid(3, false).unwrap();
    assert_eq!(rd(&rig, 3, 0x8000_0010), Err("AV_DISABLED"));
    assert_eq!(drv.read(0, Reg::Avs1), 0x0003_4001);
    drv.write(0, Reg::Avs1, 0x4001);
    let mut moved = WIN;
    moved[1] &= !1;
    moved[4] = 3;
    b.ppaace(3, moved).unwrap();
    assert_eq!(rd(&rig, 3, 0x8000_0010), Err("AV_DISABLED"));
    drv.set_liodn_valid(3, true).unwrap();
    assert_eq!(rd(&rig, 3, 0x8000_0010), Ok(0x3_2000_0010));
}

/// A translating thread sees only complete before/after states while the guest toggles AP in
/// place (the hypervisor's update sequence), and never panics.
#[test]
fn test_concurrent_translation_during_updates() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    b.ppaace(4, WIN).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let p = rig.pamu.clone();
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let mut seen = [0u32; 3];
        while !s.load(Ordering::Relaxed) || seen.iter().sum::<u32>() < 10_000 {
            match p.probe(4, 0x8000_0000, 4, AccessKind::Read, 0) {
                Ok(t) if t.output == 0x1_2000_0000 => seen[0] += 1,
                Ok(t) if t.output == 0x5_2000_0000 => seen[1] += 1,
                Ok(t) => panic!("torn translation {:#x}", t.output),
                Err(_) => seen[2] += 1,
            }
        }
        seen
    });
    let mem = rig.mem();
    let pe = drv.tables.ppba + 4 * 64;
    for i in 0..20_000u32 {
        let hi = if i % 2 == 0 { 5 } else { 1 };
        viommu_common::mem::write_u32_be(mem, pe + 4, 0x8000_06C1 & !0x18).unwrap(); // AP = 0
        viommu_common::mem::write_u32_be(mem, pe + 16, hi).unwrap();
        viommu_common::mem::write_u32_be(mem, pe + 4, 0x8000_06D9).unwrap(); // AP = 3
    }
    stop.store(true, Ordering::Relaxed);
    let seen = h.join().unwrap();
    assert!(seen.iter().sum::<u32>() > 0);
}

/// The AV line follows AVICS && AVIE; Linux's ISR disables the LIODN after the first
/// violation, and a violation on a disabled LIODN turns AV reporting off (erratum A-003638
/// handling in the driver).
#[test]
fn test_av_interrupt_and_linux_isr() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    drv.setup_liodns(&[DtDevice {
        name: "eth",
        liodns: vec![7],
        kind: DtKind::Plain,
    }])
    .unwrap();
    rig.irq.take();
    assert_eq!(rd(&rig, 7, 0x10_0000_0000), Err("AV_WINDOW"));
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: true
        }]
    );
    // A second violation while the first is pending is dropped.
    assert_eq!(rd(&rig, 7, 0x20_0000_0000), Err("AV_WINDOW"));
    assert_eq!(drv.read(0, Reg::Aval), 0);
    let rep = drv.av_isr().unwrap();
    assert_eq!(rep[0].avs1, 0x0007_0081);
    assert_eq!(rep[0].ava, 0x10_0000_0000);
    assert!(!rep[0].av_disabled);
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: false
        }]
    );
    // The LIODN is now disabled: the next DMA is PDV, and the ISR turns AVIE off.
    assert_eq!(rd(&rig, 7, 0x1000), Err("AV_DISABLED"));
    let rep = drv.av_isr().unwrap();
    assert!(rep[0].av_disabled);
    assert_eq!(drv.read(0, Reg::Pics), 0);
    assert_eq!(rd(&rig, 7, 0x1000), Err("AV_DISABLED"));
    assert_eq!(
        drv.read(0, Reg::Pics),
        0x8,
        "status latched, line stays low without AVIE"
    );
    assert!(!rig.pamu.av_line_level());
}

/// Malformed tables are operation errors (POES1/POES2/POEA, POEICS, error line with POEIE),
/// never access violations.
#[test]
fn test_operation_errors() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    drv.write(0, Reg::Pics, 0x5);
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    let pe = |l: u64| drv.tables.ppba + l * 64;
    let mut page = WIN;
    page[3] = 0x8; // ATM = 2
    b.ppaace(1, page).unwrap();
    rig.irq.take();
    let e = rig
        .pamu
        .translate(&DmaRequest::read(1, 0x8000_0000, 4))
        .unwrap_err();
    assert_eq!(
        (e.event, e.kind),
        (
            FaultId::Pamu(PamuFaultId::OperationError),
            FaultKind::Configuration
        )
    );
    assert_eq!(drv.read(0, Reg::Poes1), 1);
    assert_eq!(drv.read(0, Reg::Poes2), 8);
    assert_eq!(drv.read(0, Reg::Poeal), pe(1) as u32);
    assert_eq!(drv.read(0, Reg::Pics), 0x7);
    assert_eq!(drv.read(0, Reg::Avs1), 0, "not an access violation");
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Line {
            line: 1,
            level: true
        }]
    );
    drv.write(0, Reg::Poes1, 1);
    drv.write(0, Reg::Pics, 0x7);
    assert_eq!(drv.read(0, Reg::Pics), 0x5);
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Line {
            line: 1,
            level: false
        }]
    );

    let cases: [([u32; 8], u32); 4] = [
        ([0, 0x0000_0299, 0x80, 4, 0, 0, 0, 0], 3), // WSE 10
        ([0, 0x8000_06DB, 0x80, 4, 0, 0, 0, 0], 2), // PT = 1 in a primary
        ([0, 0x0000_0779, 0x80, 0x27, 0, 0x680, 0, 0], 9), // OTM 3
        ([0, 0x0000_0779, 0x80, 0x26, 0, 0x680, 0, 0x10], 10), // OMI 16 beyond OLA
    ];
    for (words, code) in cases {
        b.ppaace(2, words).unwrap();
        assert_eq!(rd(&rig, 2, 0x1000), Err("OPERATION_ERROR"), "POES2 {code}");
        assert_eq!(drv.read(0, Reg::Poes2), code);
        drv.write(0, Reg::Poes1, 1);
    }
    // Subwindow 1 of an 8-way window with FSPI beyond SPLA, and an SPAACE owned by another LIODN.
    b.ppaace(2, [0, 0x779, 0x80, 0x24, 0, 0x680, 0x7FA, 0])
        .unwrap();
    assert!(rig
        .pamu
        .probe(2, 0x3000_0000, 4, AccessKind::Read, 0)
        .is_err());
    assert_eq!(
        rig.pamu.probe(2, 0x3800_0000, 4, AccessKind::Read, 0),
        Err(PamuFault::Operation(OpError::SpaaceLimit {
            entry: pe(2),
            index: 0x800
        }))
    );
    b.ppaace(2, [0, 0x779, 0x80, 0x24, 0, 0x680, 0x20, 0])
        .unwrap();
    b.spaace(0x20, [0, 0x0021_001B, 0x80, 4, 0, 0x680, 0, 0])
        .unwrap();
    assert!(matches!(
        rig.pamu.probe(2, 0x0800_0000, 4, AccessKind::Read, 0),
        Err(PamuFault::Operation(OpError::SpaaceOwner {
            liodn: 0x21,
            pt: true,
            ..
        }))
    ));
    // Tables outside guest RAM.
    drv.write(0, Reg::Ppbah, 0x10);
    drv.write(0, Reg::Pplah, 0x10);
    assert!(matches!(
        rig.pamu.probe(2, 0, 4, AccessKind::Read, 0),
        Err(PamuFault::Operation(OpError::Fetch { .. }))
    ));
}

/// PE = 0 passes unchanged (Policy), PGC = 1 is a gate-closed violation, PAMUBYPENR bypasses
/// one instance whatever its state.
#[test]
fn test_enable_gate_and_bypass() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    assert_eq!(rd(&rig, 5, 0xABC0), Ok(0xABC0), "reset: PE = 0 passes");
    drv.probe().unwrap();
    assert_eq!(rd(&rig, 5, 0xABC0), Err("AV_DISABLED"));
    drv.write(0, Reg::Avs1, 0x7FFF);
    drv.write(0, Reg::Pc, 0xC000_1011);
    assert_eq!(rd(&rig, 5, 0xABC0), Err("AV_GATE"));
    assert_eq!(drv.read(0, Reg::Avs1), 0x0005_2001);
    let byp = BypassRegion(rig.pamu.clone());
    byp.mmio_write(0, &0xFFFF_FFFFu32.to_be_bytes()).unwrap();
    let mut v = [0u8; 4];
    byp.mmio_read(0, &mut v).unwrap();
    assert_eq!(
        u32::from_be_bytes(v),
        0xF800_0000,
        "only the 5 instances' bits exist"
    );
    assert_eq!(rd(&rig, 5, 0xABC0), Ok(0xABC0));
    rig.pamu.write_bypass_register(0x7800_0000);
    assert_eq!(rd(&rig, 5, 0xABC0), Err("AV_GATE"));
}

/// policy 14: a LIODN's faults are captured by its parent instance.
#[test]
fn test_fault_captured_by_parent_instance() {
    let cfg = PamuConfig {
        liodn_parents: vec![(0x60, 3)],
        ..PamuConfig::p4080()
    };
    let rig = Rig::new(cfg);
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    assert_eq!(rd(&rig, 0x60, 0x1000), Err("AV_DISABLED"));
    assert_eq!(drv.read(0, Reg::Avs1), 0);
    assert_eq!(drv.read(3, Reg::Avs1), 0x0060_4001);
    let rep = drv.av_isr().unwrap();
    assert_eq!(rep[0].instance, 3);
}

/// MMIO: 4- and 8-byte big-endian accesses, size/alignment/range errors, RAZ/WI holes,
/// reserved PC bits, read-only capture and capability registers.
#[test]
fn test_mmio_access_rules() {
    let rig = Rig::new(PamuConfig::t4240());
    let p = &rig.pamu;
    assert_eq!(p.mmio_size(), 0x6000);
    p.mmio_write(0x1000, &0x0000_0001_2345_6000u64.to_be_bytes())
        .unwrap();
    let mut b4 = [0u8; 4];
    p.mmio_read(0x1004, &mut b4).unwrap();
    assert_eq!(u32::from_be_bytes(b4), 0x2345_6000);
    let mut b8 = [0u8; 8];
    p.mmio_read(0x1000, &mut b8).unwrap();
    assert_eq!(u64::from_be_bytes(b8), 0x1_2345_6000);
    assert!(p.mmio_read(0x1002, &mut b4).is_err());
    assert!(p.mmio_write(0x1000, &[1, 2]).is_err());
    assert!(p.mmio_read(0x6000, &mut b4).is_err());
    assert!(p.mmio_read(0x5FFC, &mut b8).is_err());
    p.mmio_write(0x0030, &0xFFFF_FFFFu32.to_be_bytes()).unwrap();
    p.mmio_read(0x0030, &mut b4).unwrap();
    assert_eq!(b4, [0; 4]);
    p.mmio_write(0x0C10, &0xFFFF_FFFFu32.to_be_bytes()).unwrap();
    p.mmio_read(0x0C10, &mut b4).unwrap();
    assert_eq!(u32::from_be_bytes(b4), 0xC000_1011);
    for (reg, v) in [
        (Reg::Pc3, 0x00E0_0000u32),
        (Reg::Pc2, 0x0FFF_0000),
        (Reg::Avs2, 0),
        (Reg::Aval, 0),
    ] {
        p.write_reg(2, reg, 0x1234_5678);
        assert_eq!(p.read_reg(2, reg), v, "{reg:?} is read-only");
    }
    p.write_reg(1, Reg::Eeinten, 0xFFFF_FFFF);
    assert_eq!(p.read_reg(1, Reg::Eeinten), 0xC);
    p.write_reg(1, Reg::Pd3, 0xDEAD);
    assert_eq!(p.read_reg(1, Reg::Pd3), 0xDEAD);
}

/// An MSI through TV-2's write-only bank window is decoded and delivered as bank 0's vector.
#[test]
fn test_msi_through_subwindow_delivered() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    b.ppaace(0x21, [0, 0x779, 0x80, 0x24, 2, 0x680, 0x10, 0])
        .unwrap();
    b.spaace(0x16, [0, 0x0021_0013, 0x80, 4, 0xF, 0xFE04_42C0, 0, 0])
        .unwrap();
    rig.irq.take();
    let (t, v) = rig.pamu.msi_write(0x21, 0x3800_0140, 0x65).unwrap();
    assert_eq!(t.output, 0xF_FE04_4140);
    let v = v.unwrap();
    assert_eq!((v.bank, v.srs, v.ibs), (0, 3, 5));
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Msi {
            addr: 0xF_FE04_4140,
            data: 0x65
        }]
    );
    // A write elsewhere is not an MSI.
    let (t, none) = rig.pamu.msi_write(0x21, 0x0000_0100, 1).unwrap();
    assert_eq!((t.output, none), (0x2_0000_0100, None));
    assert!(rig.irq.take().is_empty());
}

/// Options A, B and C of pamu/README.md each make a bank reachable and deliver its MSI.
#[test]
fn test_msi_options_a_b_c() {
    for option in ['A', 'B', 'C'] {
        let rig = Rig::new(PamuConfig::t4240());
        let mut drv = rig.driver(LinuxVersion::Pre513);
        drv.probe().unwrap();
        let mem = rig.mem();
        let banks = rig.pamu.msi_banks();
        let mut d = drv.new_domain();
        let t = &mut drv.tables;
        d.attach(t, mem, 0x11).unwrap();
        d.set_geometry(t, mem, 0, 0x7FFF_FFFF).unwrap();
        d.set_windows(t, mem, 8).unwrap();
        d.map_dma(t, mem, 0, 0x1_0000_0000, 0x4000_0000, Perms::RW)
            .unwrap();
        let msi_addr = match option {
            'A' => {
                let a = d.reserve_msi_windows(t, mem, &banks).unwrap();
                assert_eq!(a, vec![0x4000_0148, 0x5000_0148, 0x6000_0148, 0x7000_0148]);
                a[3]
            }
            'B' => d
                .map_msi_bank(t, mem, &banks, 3, 0x6000_0000, Perms::W)
                .unwrap(),
            _ => {
                let region = rig.pamu.msi_bank_region(3).unwrap();
                d.window_enable(t, mem, 5, region.phys_addr(), 0x1000, Perms::W)
                    .unwrap();
                // The VMM maps the region like memory and routes the device's write to it.
                let out = rig
                    .pamu
                    .translate(&DmaRequest::write(0x11, 0x5000_0148, 4))
                    .unwrap();
                assert_eq!(out.output, region.phys_addr() + 0x148);
                rig.irq.take();
                region
                    .mmio_write(out.output - region.phys_addr(), &0x1F7u32.to_be_bytes())
                    .unwrap();
                assert_eq!(
                    rig.irq.take(),
                    vec![Irq::Msi {
                        addr: 0xF_FE04_7148,
                        data: 7 * 32 + 31
                    }]
                );
                0x5000_0148
            }
        };
        rig.irq.take();
        let (_, v) = rig.pamu.msi_write(0x11, msi_addr, 0x1F7).unwrap();
        let v = v.expect("an MSI");
        assert_eq!((v.bank, v.srs, v.ibs), (3, 7, 31), "option {option}");
        assert_eq!(
            rig.irq.take(),
            vec![Irq::Msi {
                addr: 0xF_FE04_7148,
                data: 255
            }]
        );
        assert_eq!(
            rig.pamu
                .translate(&DmaRequest::read(0x11, msi_addr, 4))
                .unwrap_err()
                .event,
            PamuFaultId::AvPermission
        );
    }
}

/// OTM 1 maps IOEA/IOEB and passes other operations (policy 10); instruction fetches
/// are checked as reads.
#[test]
fn test_otm_immediate_and_exec() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    b.ppaace(8, [0, 0x8C9, 0x80, 1, 0, 0, 0, 0x0018_011B])
        .unwrap();
    let t = rig.pamu.probe(8, 0x100, 4, AccessKind::Read, 0).unwrap();
    assert_eq!(t.attrs.op, 0x18);
    assert_eq!(
        rig.pamu
            .probe(8, 0x100, 4, AccessKind::Read, 4)
            .unwrap()
            .attrs
            .op,
        4
    );
    assert!(rig.pamu.probe(8, 0x100, 4, AccessKind::Exec, 0).is_ok());
    assert_eq!(wr(&rig, 8, 0x100), Err("AV_PERMISSION"));
}

/// A rust-vmm device DMAs through the PAMU with the common vm-memory `Iommu` adapter: an
/// access spanning two subwindows is split at the boundary and lands in two physical places;
/// an access into an unmapped subwindow fails and is captured.
#[test]
fn test_vm_memory_adapter_across_subwindows() {
    use viommu_common::vmm::EndpointIommu;
    use viommu_common::StreamId;
    use vm_memory::{Bytes, GuestAddress, IommuMemory};

    let rig = Rig::new(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let mut d = drv.new_domain();
    let t = &mut drv.tables;
    d.attach(t, mem, 0x12).unwrap();
    d.set_geometry(t, mem, 0x4000_0000, 0x40FF_FFFF).unwrap();
    d.set_windows(t, mem, 4).unwrap();
    d.window_enable(t, mem, 0, 0x200_0000, 0x40_0000, Perms::RW)
        .unwrap();
    d.window_enable(t, mem, 1, 0x300_0000, 0x40_0000, Perms::RW)
        .unwrap();
    d.enable(t, mem, true).unwrap();
    let iommu = EndpointIommu::new(rig.pamu.clone(), StreamId(0x12), None);
    let dma = IommuMemory::new(mem.clone(), iommu, true, ());
    dma.write_obj(0x1122_3344_5566_7788u64.to_be(), GuestAddress(0x403F_FFFC))
        .unwrap();
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(0x23F_FFFC)).unwrap(),
        0x1122_3344u32.to_be()
    );
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(0x300_0000)).unwrap(),
        0x5566_7788u32.to_be()
    );
    assert!(dma.read_obj::<u32>(GuestAddress(0x4080_0000)).is_err());
    assert_eq!(drv.read(0, Reg::Avs1), 0x0012_0081);
    assert_eq!(drv.read(0, Reg::Aval), 0x4080_0000);
}

/// Smaller policies: reset values, LIODN above PC2.MLIODN, TWBA masked to the physical
/// address width, SWSE < 11, and the ECC block as storage with W1C.
#[test]
fn test_policy_details() {
    let cfg = PamuConfig {
        max_liodn: 0x3F,
        ..PamuConfig::p4080()
    };
    let rig = Rig::new(cfg);
    let drv = rig.driver(LinuxVersion::Pre513);
    for inst in 0..5 {
        for reg in [
            Reg::Pc,
            Reg::Pics,
            Reg::Avs1,
            Reg::Poes1,
            Reg::Ppbal,
            Reg::Eedet,
            Reg::Pr1,
        ] {
            assert_eq!(drv.read(inst, reg), 0, "reset value of {reg:?}");
        }
        assert_eq!(drv.read(inst, Reg::Pc2), 0x003F_0000);
    }
    assert_eq!(rig.pamu.bypass_register(), 0);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    // LIODN 0x40 has a PPAACE inside PPLA but exceeds MLIODN 0x3F.
    b.ppaace(0x40, [0, 0x8D9, 0x80, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(rd(&rig, 0x40, 0x1000), Err("AV_LIODN"));
    assert_eq!(drv.read(0, Reg::Avs1), 0x0040_0401);
    drv.write(0, Reg::Avs1, 0x7FFF);
    // TWBAH 0x1F on a 36-bit part: only TWBAH[3:0] matter.
    b.ppaace(1, [0, 0x8000_06D9, 0x80, 4, 0x1F, 0x2000_0000, 0, 0])
        .unwrap();
    assert_eq!(rd(&rig, 1, 0x8000_0010), Ok(0xF_2000_0010));
    // SWSE 10 in a subwindow entry is an operation error (POES2 5).
    b.ppaace(2, [0, 0x779, 0x80, 0x24, 0, 10 << 6, 0, 0])
        .unwrap();
    assert_eq!(rd(&rig, 2, 0x10), Err("OPERATION_ERROR"));
    assert_eq!(drv.read(0, Reg::Poes2), 5);
    // ECC: defined bits stored, EEDET W1C, capture registers read 0, never an error.
    drv.write(1, Reg::Eectl, 0xFFFF_FFFF);
    assert_eq!(drv.read(1, Reg::Eectl), 0xFFFF_00FF);
    drv.write(1, Reg::Eedis, 0xFFFF_FFFF);
    assert_eq!(drv.read(1, Reg::Eedis), 0xC);
    drv.write(1, Reg::Eedet, 0xFFFF_FFFF);
    assert_eq!(drv.read(1, Reg::Eedet), 0);
    drv.write(1, Reg::Eeahi, 0x1234);
    assert_eq!(drv.read(1, Reg::Eeahi), 0);
    assert!(!rig.pamu.err_line_level());
}

/// Save/restore: a pending violation, the table registers and PAMUBYPENR survive a JSON
/// round trip into a fresh device, whose AV line comes up asserted; a state with another
/// instance count is refused.
#[test]
fn test_save_restore_roundtrip() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    rig.pamu.write_bypass_register(0x0800_0000);
    assert_eq!(rd(&rig, 9, 0x1000), Err("AV_DISABLED"));
    let state = rig.pamu.save();
    let json = serde_json::to_string(&state).unwrap();
    let back: viommu_pamu::PamuState = serde_json::from_str(&json).unwrap();
    let fresh = Rig::new(PamuConfig::p4080());
    fresh.pamu.restore(&back).unwrap();
    assert_eq!(fresh.pamu.save(), state);
    assert!(fresh.pamu.av_line_level());
    assert_eq!(
        fresh.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: true
        }]
    );
    let fdrv = fresh.driver(LinuxVersion::Pre513);
    assert_eq!(fdrv.read(0, Reg::Avs1), 0x0009_4001);
    assert_eq!(fdrv.read(3, Reg::Ppbal), drv.tables.ppba as u32);
    assert_eq!(fresh.pamu.bypass_register(), 0x0800_0000);
    let t = Rig::new(PamuConfig::t4240());
    assert_eq!(
        t.pamu.restore(&state),
        Err(viommu_pamu::RestoreError::Instances {
            state: 5,
            device: 6
        })
    );
}
