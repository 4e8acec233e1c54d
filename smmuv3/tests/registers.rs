//! Register-level behaviour driven through MMIO only: CR0/CR0ACK, GBPA, IRQ_CTRL, GERROR,
//! access widths, write rules while enabled.

use std::sync::Arc;

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::testing::{guest_ram, Irq, RecordingIrq};
use viommu_common::traits::{MmioDevice, MmioError};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs as r;
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;

fn dev(ram: &GuestMemoryMmap) -> (SmmuV3<&GuestMemoryMmap>, Arc<RecordingIrq>) {
    let irq = Arc::new(RecordingIrq::new());
    let d = SmmuV3::new(&SmmuConfig::default(), ram, irq.clone()).unwrap();
    (d, irq)
}

fn rd(d: &impl MmioDevice, off: u64) -> u32 {
    let mut b = [0u8; 4];
    d.mmio_read(off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn rd64(d: &impl MmioDevice, off: u64) -> u64 {
    let mut b = [0u8; 8];
    d.mmio_read(off, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn wr(d: &impl MmioDevice, off: u64, v: u32) {
    d.mmio_write(off, &v.to_le_bytes()).unwrap();
}

fn wr64(d: &impl MmioDevice, off: u64, v: u64) {
    d.mmio_write(off, &v.to_le_bytes()).unwrap();
}

/// The default ID registers are the profile README.md lists and Linux-acceptable.
#[test]
fn test_id_registers_default_profile() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    let idr0 = rd(&d, r::IDR0);
    // TTENDIAN 2 (LE), TTF 2 (AArch64), S1P + S2P, MSI, ST_LEVEL 1.
    assert_eq!(idr0 >> 21 & 3, 2);
    assert_eq!(idr0 >> 2 & 3, 2);
    assert_eq!(idr0 & 3, 3);
    assert_eq!(idr0 >> 13 & 1, 1);
    assert_eq!(idr0 >> 27 & 3, 1);
    let idr1 = rd(&d, r::IDR1);
    assert!(idr1 >> 21 & 0x1F >= 7, "CMDQS >= 7");
    assert_eq!(idr1 & (7 << 28), 0, "no PRESET/REL");
    assert_eq!(rd(&d, r::IIDR) & 0xFFF, rd(&d, r::IIDR) & 0xFFF);
}

/// CR0ACK equals the accepted CR0 value; reserved bits are dropped from both.
#[test]
fn test_cr0_ack_mirrors_accepted_bits() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    wr(&d, r::CR0, 0x0D);
    assert_eq!(rd(&d, r::CR0ACK), 0x0D);
    wr(&d, r::CR0, 0xFFFF_FFFF);
    assert_eq!(rd(&d, r::CR0ACK), 0x1F);
    assert_eq!(rd(&d, r::CR0), 0x1F);
    wr(&d, r::CR0, 0);
    assert_eq!(rd(&d, r::CR0ACK), 0);
}

/// GBPA: a write with UPDATE latches the fields and UPDATE reads back 0; without UPDATE it is
/// ignored. Reset value 0x1000.
#[test]
fn test_gbpa_update_protocol() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    assert_eq!(rd(&d, r::GBPA), 0x1000);
    wr(&d, r::GBPA, 0x1000 | 1 << 20);
    assert_eq!(rd(&d, r::GBPA), 0x1000, "no UPDATE: ignored");
    wr(&d, r::GBPA, 0x1000 | 1 << 20 | 1 << 31);
    assert_eq!(rd(&d, r::GBPA), 0x0010_1000);
}

/// IRQ_CTRLACK mirrors IRQ_CTRL; PRIQ_IRQEN is dropped without PRI.
#[test]
fn test_irq_ctrl_ack() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    wr(&d, r::IRQ_CTRL, 0x5);
    assert_eq!(rd(&d, r::IRQ_CTRLACK), 0x5);
    wr(&d, r::IRQ_CTRL, 0x7);
    assert_eq!(rd(&d, r::IRQ_CTRLACK), 0x5);
}

/// 64-bit registers: one 64-bit store, or two 32-bit halves, give the same value; reserved
/// bits are masked.
#[test]
fn test_64bit_register_access() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    wr64(&d, r::STRTAB_BASE, 0xFFFF_0012_3456_7FC0);
    assert_eq!(rd64(&d, r::STRTAB_BASE), 0x400F_0012_3456_7FC0);
    wr(&d, r::CMDQ_BASE, 0x4000_0013);
    wr(&d, r::CMDQ_BASE + 4, 0x4000_0001);
    assert_eq!(rd64(&d, r::CMDQ_BASE), 0x4000_0001_4000_0013);
    assert_eq!(rd(&d, r::CMDQ_BASE + 4), 0x4000_0001);
    wr64(&d, r::GERROR_IRQ_CFG0, u64::MAX);
    assert_eq!(rd64(&d, r::GERROR_IRQ_CFG0), 0x000F_FFFF_FFFF_FFFC);
    // A 64-bit access over two 32-bit registers is refused and changes nothing.
    assert!(matches!(
        d.mmio_write(r::CR0, &u64::MAX.to_le_bytes()),
        Err(MmioError::BadAccessSize { .. })
    ));
    assert_eq!(rd(&d, r::CR0), 0);
    let mut b = [0u8; 2];
    assert!(d.mmio_read(r::CR0, &mut b).is_err());
}

/// STRTAB_* and queue bases are ignored while their enable is set; IRQ_CFG writes always work.
#[test]
fn test_write_rules_while_enabled() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    wr64(&d, r::STRTAB_BASE, RAM);
    wr64(&d, r::CMDQ_BASE, (RAM + 0x1000) | 4);
    wr(&d, r::CR0, 0x0D);
    wr64(&d, r::STRTAB_BASE, RAM + 0x4000);
    wr64(&d, r::CMDQ_BASE, RAM + 0x8000);
    wr(&d, r::CMDQ_CONS, 3);
    wr(&d, r::CR2, 0x6);
    assert_eq!(rd64(&d, r::STRTAB_BASE), RAM);
    assert_eq!(rd64(&d, r::CMDQ_BASE), (RAM + 0x1000) | 4);
    assert_eq!(rd(&d, r::CMDQ_CONS), 0);
    assert_eq!(rd(&d, r::CR2), 0);
    wr64(&d, r::EVENTQ_IRQ_CFG0, 0x0800_0040);
    assert_eq!(rd64(&d, r::EVENTQ_IRQ_CFG0), 0x0800_0040);
    // CMDQ_CONS is writable while CMDQEN = 0 (Linux writes it before enabling).
    wr(&d, r::CR0, 0);
    wr(&d, r::CMDQ_CONS, 3);
    assert_eq!(rd(&d, r::CMDQ_CONS), 3);
}

/// Page 1 holds the event queue PROD/CONS and aliases page 0.
#[test]
fn test_page1_event_queue_registers() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, _) = dev(&ram);
    wr(&d, r::EVENTQ_PROD_P1, 5);
    assert_eq!(rd(&d, r::EVENTQ_PROD), 5);
    wr(&d, r::EVENTQ_CONS_P1, 0x8000_0003);
    assert_eq!(rd(&d, r::EVENTQ_CONS_P1), 0x8000_0003);
    assert_eq!(rd(&d, 0x10000 + r::IDR0), rd(&d, r::IDR0));
}

/// A command error toggles GERROR.CMDQ_ERR and sends the GERROR MSI; GERRORN acknowledges;
/// a stray GERRORN write cannot fabricate an error.
#[test]
fn test_gerror_toggle_and_ack() {
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, irq) = dev(&ram);
    // Stray GERRORN write: nothing active, nothing changes.
    wr(&d, r::GERRORN, 0x1FD);
    assert_eq!(rd(&d, r::GERRORN), 0);
    wr64(&d, r::GERROR_IRQ_CFG0, 0x0800_0040);
    wr(&d, r::GERROR_IRQ_CFG1, 0x99);
    wr(&d, r::IRQ_CTRL, 0x1);
    // An unknown opcode in the command queue.
    vm_memory::Bytes::write_slice(&ram, &[0xFFu8; 16], vm_memory::GuestAddress(RAM)).unwrap();
    wr64(&d, r::CMDQ_BASE, RAM | 4);
    wr(&d, r::CR0, 0x8);
    wr(&d, r::CMDQ_PROD, 1);
    assert_eq!(rd(&d, r::GERROR) & 1, 1);
    assert_eq!(
        rd(&d, r::CMDQ_CONS),
        0x0100_0000,
        "CONS stays, ERR = CERROR_ILL"
    );
    assert_eq!(
        irq.take(),
        vec![Irq::Msi {
            addr: 0x0800_0040,
            data: 0x99
        }]
    );
    wr(&d, r::GERRORN, 1);
    assert_eq!(rd(&d, r::GERRORN), 1);
}

/// With SMMUEN = 0, GBPA routes DMA: bypass by default (untranslated), terminated after an
/// update with ABORT = 1, with no event recorded.
#[test]
fn test_gbpa_bypass_and_abort_while_disabled() {
    use viommu_common::traits::DmaTranslator;
    use viommu_common::DmaRequest;
    let ram = guest_ram(RAM, 0x10_0000);
    let (d, irq) = dev(&ram);
    let m = d.translate(&DmaRequest::write(9, 0x1234_5678, 8)).unwrap();
    assert_eq!(m.output, 0x1234_5678);
    wr(&d, r::GBPA, 1 << 31 | 1 << 20 | 0x1000);
    let f = d.translate(&DmaRequest::read(9, 0x1000, 4)).unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::GbpaAbort);
    assert!(irq.take().is_empty());
    assert_eq!(d.stats().events, 0);
}
