//! A PAMU in a VMM whose memory map changes at run time: the device holds the VMM's
//! `GuestMemoryAtomic<GuestMemoryMmap>` and takes a snapshot of the current map per translation,
//! so tables the guest places in memory hot-added after the device was built are walked.

use std::sync::Arc;

use viommu_common::access::DmaRequest;
use viommu_common::fault::PamuFaultId;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_pamu::spec::regs::{Pc, Reg};
use viommu_pamu::testing::{GuestDriver, LinuxVersion, PaactBuilder};
use viommu_pamu::{Pamu, PamuConfig};
use vm_memory::{GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestRegionMmap};

/// Boot RAM: 16 MiB at 0.
const BOOT_SIZE: usize = 0x100_0000;
/// Hot-added RAM: 16 MiB at 256 MiB; the guest puts its PAMU tables at its start.
const HOT: u64 = 0x1000_0000;
const HOT_SIZE: usize = 0x100_0000;

/// TV-1: LIODN 0x30 maps the 256 MiB window at 0x8000_0000 to 0x1_2000_0000.
const TV1: [u32; 8] = [0, 0x8000_06D9, 0x80, 4, 1, 0x2000_0000, 0, 0];
/// TV-2: LIODN 0x21, 8 subwindows from FSPI 0x10; subwindow 1 is SPAACT[0x10].
const TV2: [u32; 8] = [0, 0x779, 0x80, 0x24, 2, 0x680, 0x10, 0];
const TV2_W1: [u32; 8] = [0, 0x0021_000B, 0x80, 4, 1, 0x0800_03C0, 0, 0];

/// Tables in memory hot-added after the PAMU was built are read by its next translation.
#[test]
fn test_paact_in_hot_added_memory_translates() {
    let atomic = GuestMemoryAtomic::new(guest_ram(0, BOOT_SIZE));
    let pamu = Pamu::new(
        PamuConfig::p4080(),
        atomic.clone(),
        Arc::new(RecordingIrq::new()),
    )
    .unwrap();
    let drv = GuestDriver::new(&pamu, HOT, LinuxVersion::Pre513);

    // Before the hot-add the table block is not RAM: the driver cannot zero it, and a PAMU
    // pointed at it reports the PPAACE fetch as an operation error.
    assert!(drv.probe().is_err());
    for (reg, v) in drv.tables.register_values() {
        drv.write(0, reg, v);
    }
    drv.write(0, Reg::Pc, Pc::new().with_pe(true).into_bits());
    let hit = DmaRequest::read(0x30, 0x8123_4560, 8);
    assert_eq!(
        pamu.translate(&hit).unwrap_err().event,
        PamuFaultId::OperationError
    );

    // The VMM hot-adds RAM; the guest onlines it, probes and writes its entries there.
    let region = GuestRegionMmap::from_range(GuestAddress(HOT), HOT_SIZE, None).unwrap();
    let grown = atomic.memory().insert_region(Arc::new(region)).unwrap();
    atomic.lock().unwrap().replace(grown);
    drv.probe().unwrap();
    let now = atomic.memory();
    let b = PaactBuilder::new(&*now, drv.tables.clone());
    b.ppaace(0x30, TV1).unwrap();
    b.ppaace(0x21, TV2).unwrap();
    b.spaace(0x10, TV2_W1).unwrap();

    assert_eq!(pamu.translate(&hit).unwrap().output, 0x1_2123_4560);
    let sub = DmaRequest::read(0x21, 0x0800_0010, 8);
    assert_eq!(pamu.translate(&sub).unwrap().output, 0x1_0800_0010);
    // A live update in the hot-added table is seen by the next translation.
    b.ppaace(0x30, [0, 0x8000_06D9, 0x80, 4, 2, 0x2000_0000, 0, 0])
        .unwrap();
    assert_eq!(pamu.translate(&hit).unwrap().output, 0x2_2123_4560);
}
