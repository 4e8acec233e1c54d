//! What the fuzz targets share: the guest's MMIO accesses and access kinds, and the reference
//! table walker the `walk` target compares `viommu_common::walk` with.

pub mod refwalk;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use viommu_common::access::AccessKind;
use viommu_common::traits::MmioDevice;

/// An MMIO access of any offset (wrapped to the device's region) and any size from 1 to 8
/// bytes; the device must refuse the sizes its architecture does not allow.
#[derive(Arbitrary, Debug)]
pub enum MmioOp {
    /// A store of the low `size % 8 + 1` bytes of `value` (in the device's byte order).
    Write {
        /// Offset, wrapped to the region.
        offset: u32,
        /// Size selector.
        size: u8,
        /// The value.
        value: u64,
    },
    /// A load.
    Read {
        /// Offset, wrapped to the region.
        offset: u32,
        /// Size selector.
        size: u8,
    },
}

impl MmioOp {
    /// Perform the access on `dev`, whose registers are big-endian if `big_endian`.
    pub fn apply(self, dev: &dyn MmioDevice, big_endian: bool) {
        let region = dev.mmio_size().max(1);
        match self {
            MmioOp::Write {
                offset,
                size,
                value,
            } => {
                let n = usize::from(size % 8) + 1;
                let bytes = if big_endian {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                let _ = dev.mmio_write(u64::from(offset) % region, &bytes[..n]);
            }
            MmioOp::Read { offset, size } => {
                let mut buf = [0u8; 8];
                let n = usize::from(size % 8) + 1;
                let _ = dev.mmio_read(u64::from(offset) % region, &mut buf[..n]);
            }
        }
    }
}

/// The access kind a selector byte picks: read, write or instruction fetch.
pub fn access_kind(sel: u8) -> AccessKind {
    match sel % 3 {
        0 => AccessKind::Read,
        1 => AccessKind::Write,
        _ => AccessKind::Exec,
    }
}
