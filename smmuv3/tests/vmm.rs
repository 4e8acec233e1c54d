//! How a VMM wires the device: guest memory as `GuestMemoryAtomic<GuestMemoryMmap>`, the device
//! in an `Arc`, and a rust-vmm device's DMA through vm-memory's `IommuMemory` with an
//! `EndpointIommu` per (StreamID, SubstreamID).

use std::sync::Arc;

use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::vmm::EndpointIommu;
use viommu_common::{StreamId, SubstreamId};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::testing::{GuestDriver, Prot};
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, IommuMemory};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;

/// DMA through `IommuMemory` lands at the translated address, for a plain stream and for a
/// substream (PASID) of a CD-table stream; an unmapped IOVA is an error, not a stray access.
#[test]
fn test_iommu_memory_endpoint_dma_through_smmu() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let atomic = GuestMemoryAtomic::new(ram.clone());
    let smmu = Arc::new(
        SmmuV3::new(
            &SmmuConfig::default(),
            atomic,
            Arc::new(RecordingIrq::new()),
        )
        .unwrap(),
    );
    let mut drv = GuestDriver::bring_up(&*smmu, &ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s1_domain(1);
    drv.map_s1(&dom, 0x10_0000, RAM + 0x0300_0000, 0x2000, Prot::RW);
    drv.attach_s1(0x10, &dom).unwrap();
    // A PASID-capable endpoint: CD 3 maps the same IOVA elsewhere.
    let dom_pasid = drv.new_s1_domain(2);
    drv.map_s1(&dom_pasid, 0x10_0000, RAM + 0x0310_0000, 0x1000, Prot::RW);
    drv.attach_s1_pasid(0x11, &dom, 4).unwrap();
    let cd = drv.s1_cd(&dom_pasid);
    drv.write_cd_steps(0x11, 3, cd, &mut || {}).unwrap();

    let dma = IommuMemory::new(
        ram.clone(),
        EndpointIommu::new(smmu.clone(), StreamId(0x10), None),
        true,
        (),
    );
    // Crosses a page boundary: two translations.
    dma.write_obj(0x1122_3344_5566_7788u64, GuestAddress(0x10_0FFC))
        .unwrap();
    assert_eq!(
        ram.read_obj::<u32>(GuestAddress(RAM + 0x0300_0FFC))
            .unwrap(),
        0x5566_7788
    );
    assert_eq!(
        ram.read_obj::<u32>(GuestAddress(RAM + 0x0300_1000))
            .unwrap(),
        0x1122_3344
    );
    assert!(dma.read_obj::<u32>(GuestAddress(0x20_0000)).is_err());

    let pasid = IommuMemory::new(
        ram.clone(),
        EndpointIommu::new(smmu.clone(), StreamId(0x11), Some(SubstreamId(3))),
        true,
        (),
    );
    pasid.write_obj(0xABCDu16, GuestAddress(0x10_0010)).unwrap();
    assert_eq!(
        ram.read_obj::<u16>(GuestAddress(RAM + 0x0310_0010))
            .unwrap(),
        0xABCD
    );
}
