//! An SMMUv3 on a VMM's MMIO bus through `viommu_common::bus`: rust-vmm `vm-device`'s
//! `IoManager` dispatching to the adapter, and the Cloud-Hypervisor-shaped `BusDeviceSync`.
//! Offsets on the bus are the architectural register offsets from the SMMU's base; accesses
//! the SMMU refuses read as zero and are ignored.

use std::sync::{Arc, Mutex};

use viommu_common::bus::{rust_vmm, BusDeviceSync, MmioBusAdapter};
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::MmioDevice;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs as r;
use vm_device::bus::{Error as BusError, MmioAddress};
use vm_device::device_manager::{IoManager, MmioManager};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
/// Where the SMMU sits on the bus (the arm64 reference layout's SMMU slot).
const BASE: u64 = 0x0905_0000;

type Smmu = SmmuV3<Arc<GuestMemoryMmap>>;

fn smmu() -> Arc<Smmu> {
    let ram = Arc::new(guest_ram(RAM, 0x10_0000));
    Arc::new(SmmuV3::new(&SmmuConfig::default(), ram, Arc::new(RecordingIrq::new())).unwrap())
}

fn direct(d: &Smmu, off: u64) -> u32 {
    let mut b = [0u8; 4];
    d.mmio_read(off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn bus_rd(io: &IoManager, addr: u64) -> u32 {
    let mut b = [0u8; 4];
    io.mmio_read(MmioAddress(addr), &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn bus_wr(io: &IoManager, addr: u64, v: u32) {
    io.mmio_write(MmioAddress(addr), &v.to_le_bytes()).unwrap();
}

/// IDR0 read through the bus at base + 0 is the SMMU's IDR0; a CR0 write through the bus is
/// seen by the device and acknowledged in CR0ACK; a 64-bit register is written and read whole.
#[test]
fn test_io_manager_dispatches_to_the_smmu() {
    let d = smmu();
    let mut io = IoManager::new();
    let adapter = rust_vmm::register(&mut io, BASE, d.clone()).unwrap();
    assert_eq!(adapter.size(), r::REGION_SIZE);

    let idr0 = bus_rd(&io, BASE + r::IDR0);
    assert_eq!(idr0, direct(&d, r::IDR0));
    assert_ne!(idr0, 0);
    assert_eq!(bus_rd(&io, BASE + r::IDR1), direct(&d, r::IDR1));

    io.mmio_write(
        MmioAddress(BASE + r::STRTAB_BASE),
        &0x0000_0012_3456_7FC0u64.to_le_bytes(),
    )
    .unwrap();
    let mut q = [0u8; 8];
    io.mmio_read(MmioAddress(BASE + r::STRTAB_BASE), &mut q)
        .unwrap();
    assert_eq!(u64::from_le_bytes(q), 0x0000_0012_3456_7FC0);

    bus_wr(&io, BASE + r::CR0, 0x0D);
    assert_eq!(direct(&d, r::CR0), 0x0D, "the device saw the write");
    assert_eq!(bus_rd(&io, BASE + r::CR0ACK), 0x0D);
    assert_eq!(adapter.refused(), 0);
}

/// Sizes the SMMU refuses read as zero and writes of them change nothing; the bus call itself
/// succeeds (the vCPU gets RAZ/WI, not an error), and the adapter counts them.
#[test]
fn test_refused_sizes_read_zero_and_are_ignored() {
    let d = smmu();
    let mut io = IoManager::new();
    let adapter = rust_vmm::register(&mut io, BASE, d.clone()).unwrap();

    let mut half = [0xffu8; 2];
    io.mmio_read(MmioAddress(BASE + r::IDR0), &mut half)
        .unwrap();
    assert_eq!(half, [0, 0]);
    let mut byte = [0xffu8; 1];
    io.mmio_read(MmioAddress(BASE + r::IDR0 + 1), &mut byte)
        .unwrap();
    assert_eq!(byte, [0]);
    // A 64-bit read over two 32-bit registers.
    let mut q = [0xffu8; 8];
    io.mmio_read(MmioAddress(BASE + r::CR0), &mut q).unwrap();
    assert_eq!(q, [0; 8]);

    io.mmio_write(MmioAddress(BASE + r::CR0), &[0x0D, 0])
        .unwrap();
    io.mmio_write(MmioAddress(BASE + r::CR0), &u64::MAX.to_le_bytes())
        .unwrap();
    assert_eq!(direct(&d, r::CR0), 0, "refused writes are ignored");
    assert_eq!(adapter.refused(), 5);
}

/// The bus, not the device, answers outside the SMMU's region, and a second device cannot
/// overlap it.
#[test]
fn test_region_bounds_belong_to_the_bus() {
    let d = smmu();
    let mut io = IoManager::new();
    rust_vmm::register(&mut io, BASE, d.clone()).unwrap();
    let mut b = [0u8; 4];
    assert_eq!(
        io.mmio_read(MmioAddress(BASE + r::REGION_SIZE), &mut b),
        Err(BusError::DeviceNotFound)
    );
    assert_eq!(
        io.mmio_read(MmioAddress(BASE - 4), &mut b),
        Err(BusError::DeviceNotFound)
    );
    assert!(rust_vmm::register(&mut io, BASE + 0x1000, d).is_err());
}

/// A Cloud-Hypervisor-style bus stores `Arc<dyn BusDeviceSync>`, either the adapter itself or a
/// `Mutex` around it, and passes the region base and the offset.
#[test]
fn test_cloud_hypervisor_shaped_bus_device() {
    let d = smmu();
    let devices: [Arc<dyn BusDeviceSync>; 2] = [
        Arc::new(MmioBusAdapter::new(d.clone())),
        Arc::new(Mutex::new(MmioBusAdapter::new(d.clone()))),
    ];
    for (i, dev) in devices.iter().enumerate() {
        let mut b = [0u8; 4];
        dev.read(BASE, r::IDR0, &mut b);
        assert_eq!(u32::from_le_bytes(b), direct(&d, r::IDR0));
        let cr0 = if i == 0 { 0x0D } else { 0x05 };
        assert!(dev.write(BASE, r::CR0, &u32::to_le_bytes(cr0)).is_none());
        dev.read(BASE, r::CR0ACK, &mut b);
        assert_eq!(u32::from_le_bytes(b), cr0);
        let mut half = [0xffu8; 2];
        dev.read(BASE, r::IDR0, &mut half);
        assert_eq!(half, [0, 0]);
    }
}
