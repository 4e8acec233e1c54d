//! The guest's physical memory map and interrupt numbers (close to QEMU's `virt` machine, so a
//! reader can compare device trees).

/// GICv3 distributor.
pub const GIC_DIST: u64 = 0x0800_0000;
/// Size of the distributor frame.
pub const GIC_DIST_SIZE: u64 = 0x1_0000;
/// GICv3 redistributors (one 128 KiB frame pair per vCPU).
pub const GIC_REDIST: u64 = 0x080a_0000;
/// Size of one vCPU's redistributor.
pub const GIC_REDIST_SIZE: u64 = 0x2_0000;

/// The 16550 UART.
pub const UART: u64 = 0x0900_0000;
/// Size of the UART's region (8 byte-wide registers, page-sized window).
pub const UART_SIZE: u64 = 0x1000;
/// End of the UART's region.
pub const UART_END: u64 = UART + UART_SIZE;
/// The UART's SPI.
pub const UART_SPI: u32 = 1;

/// The SMMUv3 (register pages 0 and 1).
pub const SMMU: u64 = 0x0905_0000;
/// End of the SMMU's region (`viommu_smmuv3::fdt::SMMU_REG_SIZE`: pages 0 and 1).
pub const SMMU_END: u64 = SMMU + 0x2_0000;
/// First of the SMMU's four SPIs: line `n` of `viommu_smmuv3::lines` is SPI `SMMU_SPI_BASE + n`
/// (eventq 74, priq 75, cmdq-sync 76, gerror 77, as on QEMU virt).
pub const SMMU_SPI_BASE: u32 = 74;

/// The virtio-mmio block device.
pub const VIRTIO_BLK: u64 = 0x0a00_0000;
/// Size of a virtio-mmio region.
pub const VIRTIO_SIZE: u64 = 0x200;
/// End of the block device's region.
pub const VIRTIO_BLK_END: u64 = VIRTIO_BLK + VIRTIO_SIZE;
/// The block device's SPI.
pub const VIRTIO_BLK_SPI: u32 = 16;
/// The block device's StreamID on the SMMU.
pub const VIRTIO_BLK_SID: u32 = 0x10;

/// Guest RAM starts at 1 GiB.
pub const RAM_START: u64 = 0x4000_0000;
/// The device tree goes this far below the end of RAM (it must not exceed 2 MiB).
pub const DTB_SIZE_MAX: u64 = 0x20_0000;

/// Phandle of the GIC.
pub const PHANDLE_GIC: u32 = 1;
/// Phandle of the SMMU.
pub const PHANDLE_SMMU: u32 = 2;

/// GIC interrupt specifier cell 0: SPI.
pub const GIC_SPI: u32 = 0;
/// GIC interrupt specifier cell 0: PPI.
pub const GIC_PPI: u32 = 1;
/// Interrupt specifier flags: rising edge.
pub const IRQ_EDGE_RISING: u32 = 1;
/// Interrupt specifier flags: active-high level.
pub const IRQ_LEVEL_HIGH: u32 = 4;
