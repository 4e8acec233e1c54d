//! The Linux arm-smmu-v3 driver's life cycle against the model, through MMIO and guest memory
//! only: probe, reset, attach, DMA, unmap with TLBI_NH_VA + CMD_SYNC, fault, event + MSI.

use std::sync::Arc;

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::testing::{guest_ram, Irq, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{DriverOptions, GuestDriver, Prot};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const DOORBELL: u64 = 0x0800_0040;

/// Bring-up leaves the SMMU enabled with CR0 = 0x0D, IRQ_CTRL = 0x5, MSIs programmed, the
/// command queue drained and no error.
#[test]
fn test_linux_reset_sequence_enables_smmu() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, irq.clone()).unwrap();
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    let info = drv.probe().unwrap();
    assert!(
        info.two_level,
        "defaults make Linux choose a 2-level stream table"
    );
    assert!(
        info.msipoll,
        "defaults make Linux choose MSI-polled CMD_SYNC"
    );
    drv.reset().unwrap();
    assert_eq!(drv.read32(r::CR0ACK), 0x0D);
    assert_eq!(drv.read32(r::IRQ_CTRLACK), 0x5);
    assert_eq!(drv.read32(r::GERROR), drv.read32(r::GERRORN));
    assert_eq!(drv.read32(r::STRTAB_BASE_CFG), 0x0001_0210);
    let cons = drv.read32(r::CMDQ_CONS);
    let prod = drv.read32(r::CMDQ_PROD);
    assert_eq!(cons, prod, "all reset commands consumed");
    assert_eq!(drv.syncs, 2, "CFGI_ALL + SYNC, TLBI_NSNH_ALL + SYNC");
    // MSIPOLL completions are memory writes, not interrupts.
    assert!(irq.take().is_empty());
}

/// Attach a stream to an S1 domain, DMA through it, unmap with TLBI_NH_VA + CMD_SYNC: the
/// next DMA faults with an exact F_TRANSLATION record and an EVTQ MSI.
#[test]
fn test_linux_attach_dma_unmap_fault() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, irq.clone()).unwrap();
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();

    let sid = 0x0010;
    let dom = drv.new_s1_domain(1);
    let iova = 0xFFFF_F000;
    let pa = RAM + 0x0200_0000;
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, iova, pa, 0x4000, Prot::RW);
    drv.attach_s1(sid, &dom).unwrap();

    let m = smmu
        .translate(&DmaRequest::read(sid, iova + 0x10, 64))
        .unwrap();
    assert_eq!(m.output, pa + 0x10);
    assert_eq!(m.len, 0x1000 - 0x10);
    let m = smmu
        .translate(&DmaRequest::write(sid, iova + 0x3008, 8))
        .unwrap();
    assert_eq!(m.output, pa + 0x3008);
    // Cached now: same answer.
    let m = smmu
        .translate(&DmaRequest::read(sid, iova + 0x3000, 8))
        .unwrap();
    assert_eq!(m.output, pa + 0x3000);
    assert!(irq.take().is_empty());

    drv.unmap_s1(&dom, iova + 0x3000, 0x1000).unwrap();
    let f = smmu
        .translate(&DmaRequest::read(sid, iova + 0x3000, 8))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Translation);
    // The other pages still translate.
    assert!(smmu
        .translate(&DmaRequest::read(sid, iova + 0x2000, 8))
        .is_ok());

    let ev = drv.read_events();
    assert_eq!(ev.len(), 1);
    // w0: EventID 0x10, SID [63:32]; w1: RnW [35] (read), PnU 0, CLASS IN (2) [41:40];
    // w2: input address; w3: 0 (stage-1 fault, no IPA).
    assert_eq!(ev[0][0], 0x10 | u64::from(sid) << 32);
    assert_eq!(ev[0][1], 1 << 35 | 2 << 40);
    assert_eq!(ev[0][2], iova + 0x3000);
    assert_eq!(ev[0][3], 0);
    assert_eq!(
        irq.take(),
        vec![Irq::Msi {
            addr: DOORBELL,
            data: 0x21
        }]
    );
}

/// Unknown streams are denied after bring-up (abort STEs in the L2 table, or no L2 table).
#[test]
fn test_unattached_streams_are_denied() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, irq.clone()).unwrap();
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    // No L2 table for SID 0x300: C_BAD_STREAMID (recorded: Linux sets CR2.RECINVSID).
    let f = smmu
        .translate(&DmaRequest::read(0x300, 0x1000, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::BadStreamId);
    // An abort STE terminates silently.
    let _ = drv.ste_addr(0x10);
    let f = smmu
        .translate(&DmaRequest::read(0x11, 0x1000, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::SteAbort);
    // SID beyond SIDSIZE.
    assert!(smmu
        .translate(&DmaRequest::read(0x1_0000, 0x1000, 4))
        .is_err());
    let ev = drv.read_events();
    assert_eq!(
        ev.len(),
        2,
        "two C_BAD_STREAMID, no record for the abort STE"
    );
}

/// Several SMMUs in one process are independent: each has its own registers, queues, caches.
#[test]
fn test_several_independent_instances() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irqs: Vec<_> = (0..3).map(|_| Arc::new(RecordingIrq::new())).collect();
    let smmus: Vec<_> = irqs
        .iter()
        .map(|i| SmmuV3::new(&SmmuConfig::default(), &ram, i.clone()).unwrap())
        .collect();
    let mut doms = Vec::new();
    let mut drvs: Vec<_> = smmus
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let base = RAM + (i as u64) * (RAM_SIZE / 4);
            GuestDriver::new(s, &ram, base, RAM_SIZE / 4, DriverOptions::default())
        })
        .collect();
    for (i, d) in drvs.iter_mut().enumerate() {
        d.probe().unwrap();
        d.reset().unwrap();
        let dom = d.new_s1_domain(1);
        // Same SID and IOVA on every SMMU, different output.
        dom.pgtable.map(
            &ram,
            &mut d.alloc,
            0x1000,
            RAM + 0x0300_0000 + (i as u64) * 0x1000,
            0x1000,
            Prot::RW,
        );
        d.attach_s1(7, &dom).unwrap();
        doms.push(dom);
    }
    for (i, s) in smmus.iter().enumerate() {
        let m = s.translate(&DmaRequest::read(7, 0x1234, 4)).unwrap();
        assert_eq!(m.output, RAM + 0x0300_0000 + (i as u64) * 0x1000 + 0x234);
    }
    // Disabling one leaves the others translating.
    drvs[1].disable().unwrap();
    assert!(smmus[0].translate(&DmaRequest::read(7, 0x1234, 4)).is_ok());
    assert!(smmus[2].translate(&DmaRequest::read(7, 0x1234, 4)).is_ok());
    assert_eq!(
        smmus[1]
            .translate(&DmaRequest::read(7, 0x1234, 4))
            .unwrap()
            .output,
        0x1234,
        "SMMUEN=0 with GBPA bypass"
    );
}
