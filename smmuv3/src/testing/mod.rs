//! Test helpers (feature `test-utils`): a guest driver that programs the SMMU exactly the way
//! Linux's arm-smmu-v3 driver does, io-pgtable page tables, raw command encoders.
//!
//! Shared by the crate's unit tests, the integration tests in `tests/`, the benches, the demo
//! and the replay tests, so every one of them exercises the device the way a real guest does.
//!
//! ```
//! use std::sync::Arc;
//! use viommu_common::testing::{guest_ram, RecordingIrq};
//! use viommu_common::DmaRequest;
//! use viommu_common::traits::DmaTranslator;
//! use viommu_smmuv3::caps::SmmuConfig;
//! use viommu_smmuv3::device::SmmuV3;
//! use viommu_smmuv3::testing::{GuestDriver, DriverOptions, Prot};
//!
//! let ram = guest_ram(0x4000_0000, 64 << 20);
//! let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(RecordingIrq::new())).unwrap();
//! let mut drv = GuestDriver::new(&smmu, &ram, 0x4000_0000, 64 << 20, DriverOptions::default());
//! drv.probe().unwrap();
//! drv.reset().unwrap();
//! let dom = drv.new_s1_domain(1);
//! dom.pgtable.map(&ram, &mut drv.alloc, 0x10_0000, 0x4200_0000, 0x1000, Prot::RW);
//! drv.attach_s1(0x10, &dom).unwrap();
//! let m = smmu.translate(&DmaRequest::read(0x10, 0x10_0123, 4)).unwrap();
//! assert_eq!(m.output, 0x4200_0123);
//! ```

pub mod cmd;
mod driver;
pub mod entries;
pub mod pgtable;
mod tables;

pub use driver::{DriverError, DriverOptions, GuestDriver, ProbeInfo, S1Domain, S2Domain};
pub use pgtable::{IoPgtable, PgFormat, Prot};

use vm_memory::GuestMemoryBackend;

use viommu_common::fault::{FaultId, Smmuv3FaultId};
use viommu_common::mem;
use viommu_common::traits::FaultKind;
use viommu_common::{DmaFault, DmaMapping};

/// The STAG of a transaction that stalled on a translation fault (a stage-1 stream whose CD
/// has S = 1, IHI 0070 §3.12.2).
///
/// # Panics
/// When `r` is anything else: a translation, another fault, or a stall without a STAG.
#[track_caller]
pub fn stalled(r: Result<DmaMapping, DmaFault>) -> u16 {
    match r {
        Err(DmaFault {
            kind: FaultKind::Stalled,
            stall_tag: Some(stag),
            event: FaultId::Smmuv3(Smmuv3FaultId::Translation),
            ..
        }) => stag,
        other => panic!("expected a stall, got {other:?}"),
    }
}

/// A bump allocator over a range of guest RAM (the guest kernel's DMA allocations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alloc {
    next: u64,
    end: u64,
}

impl Alloc {
    /// Allocate from `[base, base + size)`.
    pub fn new(base: u64, size: u64) -> Self {
        Self {
            next: base,
            end: base + size,
        }
    }

    /// Allocate `size` bytes aligned to `align` (a power of two). Memory is not cleared (fresh
    /// guest RAM is zero).
    ///
    /// # Panics
    /// When the range is exhausted (a test sizing problem).
    pub fn alloc(&mut self, size: u64, align: u64) -> u64 {
        let a = (self.next + align - 1) & !(align - 1);
        assert!(a + size <= self.end, "test guest RAM exhausted");
        self.next = a + size;
        a
    }

    /// Allocate and zero `size` bytes aligned to `align`.
    pub fn alloc_zeroed<G: GuestMemoryBackend + ?Sized>(
        &mut self,
        mem: &G,
        size: u64,
        align: u64,
    ) -> u64 {
        let a = self.alloc(size, align);
        let zero = [0u8; 4096];
        let mut off = 0;
        while off < size {
            let n = (size - off).min(4096);
            mem::write_bytes(mem, a + off, &zero[..n as usize]).expect("allocation in RAM");
            off += n;
        }
        a
    }

    /// The next free address.
    pub fn next_free(&self) -> u64 {
        self.next
    }

    /// The end of the range.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Mark everything below `next` as allocated (after another allocator, such as a page-table
    /// builder, took memory from `[next_free, end)`). Never moves backwards.
    pub fn advance_to(&mut self, next: u64) {
        self.next = self.next.max(next.min(self.end));
    }
}
