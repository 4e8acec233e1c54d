//! Event queue and interrupts: overflow (drop + OVFLG toggle, never EVENTQ_ABT_ERR), write
//! aborts (EVENTQ_ABT_ERR), wired lines without MSIs, IRQ_CTRL gating, CMD_SYNC SIG_IRQ.

use std::sync::Arc;

use viommu_common::testing::{guest_ram, Irq, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::{lines, SmmuV3};
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{DriverOptions, GuestDriver};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;

fn bring_up<'a>(
    ram: &'a GuestMemoryMmap,
    cfg: &SmmuConfig,
    _opts: DriverOptions,
) -> (SmmuV3<&'a GuestMemoryMmap>, Arc<RecordingIrq>) {
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(cfg, ram, irq.clone()).unwrap();
    (smmu, irq)
}

fn fault(smmu: &SmmuV3<&GuestMemoryMmap>, addr: u64) {
    // SID 0x300 has no L2 stream table: C_BAD_STREAMID (recorded with CR2.RECINVSID).
    assert!(smmu.translate(&DmaRequest::read(0x300, addr, 4)).is_err());
}

/// A full event queue drops records and toggles EVENTQ_PROD.OVFLG once; the driver notices,
/// acknowledges through EVENTQ_CONS.OVACKFLG, and later events are written again. GERROR stays
/// clear: a full queue is not an abort.
#[test]
fn test_event_queue_overflow_toggles_ovflg() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let opts = DriverOptions {
        evtq_max_log2: 1,
        ..DriverOptions::default()
    };
    let (smmu, irq) = bring_up(&ram, &SmmuConfig::default(), opts);
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, opts);
    drv.probe().unwrap();
    drv.reset().unwrap();
    for a in 0..4 {
        fault(&smmu, a * 0x1000);
    }
    let prod = drv.read32(r::EVENTQ_PROD_P1);
    assert_eq!(
        prod, 0x8000_0002,
        "2 written, OVFLG toggled once for 2 dropped"
    );
    assert_eq!(drv.read32(r::GERROR), 0, "no EVENTQ_ABT_ERR");
    assert_eq!(smmu.stats().events_dropped, 2);
    let ev = drv.read_events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1][0], 0x02 | 0x300 << 32, "C_BAD_STREAMID SID 0x300");
    assert_eq!(drv.overflows, 1);
    assert_eq!(
        drv.read32(r::EVENTQ_CONS_P1),
        0x8000_0002,
        "OVACKFLG acknowledged"
    );
    fault(&smmu, 0x9000);
    assert_eq!(
        drv.read_events().len(),
        1,
        "written again after the acknowledge"
    );
    // Two MSIs for the two written records before the overflow, one after.
    let msis = irq
        .take()
        .into_iter()
        .filter(|i| matches!(i, Irq::Msi { data: 0x21, .. }))
        .count();
    assert_eq!(msis, 3);
}

/// An event queue outside guest RAM: the record write aborts, GERROR.EVENTQ_ABT_ERR toggles and
/// the GERROR MSI is sent.
#[test]
fn test_event_write_abort_raises_eventq_abt_err() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, irq) = bring_up(&ram, &SmmuConfig::default(), DriverOptions::default());
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    drv.write32(r::CR0, 0x9); // EVENTQEN off to move the queue
    drv.write64(r::EVENTQ_BASE, 0x1_0000_0000 | 4);
    drv.write32(r::CR0, 0xD);
    irq.take();
    fault(&smmu, 0x1000);
    assert_eq!(drv.read32(r::GERROR), 1 << 2);
    assert_eq!(
        irq.take(),
        vec![Irq::Msi {
            addr: 0x0800_0040,
            data: 0x22
        }]
    );
    assert_eq!(drv.handle_gerror(), 1 << 2);
    assert_eq!(drv.read32(r::GERRORN), 1 << 2);
}

/// Without IDR0.MSI the driver polls CONS (CMD_SYNC with SIG_SEV) and events raise the wired
/// EVENTQ line; IRQ_CTRL.EVENTQ_IRQEN = 0 suppresses it while the record is still written.
#[test]
fn test_wired_interrupts_and_irq_ctrl_gating() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig {
        msi: false,
        ..SmmuConfig::default()
    };
    let (smmu, irq) = bring_up(&ram, &cfg, DriverOptions::default());
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    let info = drv.probe().unwrap();
    assert!(!info.msi && !info.msipoll);
    drv.reset().unwrap();
    assert!(
        irq.take().is_empty(),
        "SIG_SEV syncs complete without interrupts"
    );
    fault(&smmu, 0x1000);
    assert_eq!(
        irq.take(),
        vec![
            Irq::Line {
                line: lines::EVENTQ,
                level: true
            },
            Irq::Line {
                line: lines::EVENTQ,
                level: false
            }
        ]
    );
    drv.write32(r::IRQ_CTRL, 0x1);
    fault(&smmu, 0x2000);
    assert!(irq.take().is_empty());
    assert_eq!(drv.read_events().len(), 2);
    // CMD_SYNC with CS = SIG_IRQ and no MSI support: the wired CMD_SYNC line.
    drv.issue(&[[0x1046, 0]]).unwrap();
    assert_eq!(
        irq.take(),
        vec![
            Irq::Line {
                line: lines::CMD_SYNC,
                level: true
            },
            Irq::Line {
                line: lines::CMD_SYNC,
                level: false
            }
        ]
    );
}

/// CMD_SYNC SIG_IRQ with an MSIAddr outside guest RAM goes to the interrupt sink as an MSI.
#[test]
fn test_cmd_sync_msi_to_doorbell() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, irq) = bring_up(&ram, &SmmuConfig::default(), DriverOptions::default());
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    irq.take();
    drv.issue(&[[0x0FC0_1046 | 0x1234_5678 << 32, 0x0800_0044]])
        .unwrap();
    assert_eq!(
        irq.take(),
        vec![Irq::Msi {
            addr: 0x0800_0044,
            data: 0x1234_5678
        }]
    );
}
