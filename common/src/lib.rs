//! # viommu-common: the shared translation core
//!
//! Everything the device models (`viommu-smmuv3`, `viommu-pamu`) and the host-passthrough
//! bridge (`viommu-sva`) have in common:
//!
//! - [`mem`]: bounds-checked, typed guest-memory access through `vm-memory`
//!   (little- and big-endian words, zerocopy records, atomic compare-and-swap for HTTU);
//! - [`reg64`]: 64-bit registers a guest accesses as two 32-bit halves;
//! - [`walk`]: the VMSAv8-64 page-table walker (Arm ARM D8), stage 1, stage 2 and nested;
//! - [`iotlb`]: a bounded, lock-free, tagged IOTLB with linearizable invalidation;
//! - `fdt` (feature `fdt`): device-tree `iommus` / `iommu-map` properties from a topology map;
//! - [`topology`]: PCI requester-ID to StreamID/LIODN maps, bridge aliasing, explicit bypass;
//! - [`traits`]: what a VMM needs from a device: MMIO, interrupts, DMA translation;
//! - [`fault`]: typed fault identities (the architectural names of SMMUv3 and PAMU faults);
//! - [`vmm`]: a vm-memory [`Iommu`](vm_memory::Iommu) adapter so rust-vmm devices DMA through us;
//! - [`bus`]: adapters from [`MmioDevice`] to VMM bus traits (Cloud Hypervisor's shape; rust-vmm
//!   `vm-device` with feature `vm-device`);
//! - `kvm` (feature `kvm`, Linux x86_64/aarch64): [`InterruptSink`]s over KVM (`KVM_IRQ_LINE`,
//!   irqfd, `KVM_SIGNAL_MSI`, MSI routing).
//!
//! The crate knows no device: SMMUv3 and PAMU specifics live in their own crates.
#![forbid(unsafe_code)]

pub mod access;
pub mod addr;
pub mod bus;
pub mod fault;
#[cfg(feature = "fdt")]
pub mod fdt;
pub mod id;
pub mod iotlb;
#[cfg(all(
    feature = "kvm",
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub mod kvm;
pub mod mem;
pub mod reg64;
pub mod spec_macros;
mod sync;
pub mod topology;
pub mod traits;
pub mod vmm;
pub mod walk;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use access::{AccessKind, DmaRequest, Perms};
pub use addr::Granule;
pub use fault::FaultId;
pub use id::{Asid, Liodn, RequesterId, StreamId, SubstreamId, Vmid};
pub use mem::{GuestRam, MemError};
pub use traits::{DmaFault, DmaMapping, DmaTranslator, InterruptSink, MmioDevice};
