//! The PAMU's architectural formats, as types only.
//!
//! Nothing here has behaviour beyond pure accessors: [`regs`] holds the per-instance register
//! block (offsets and `#[bitfield]` layouts), [`paace`] the PAACE/SPAACE table entries and the
//! OMT. Everything is big-endian with the manuals' MSB-first bit numbering (bit 0 = MSB), declared
//! with bitfield-struct `order = Msb` so fields read in the same order as the manual's diagrams.
//! Source for every layout: Linux `drivers/iommu/fsl_pamu.h` (see pamu/README.md).

pub mod paace;
pub mod regs;

/// Open enums: see [`viommu_common::open_enum`].
pub(crate) use viommu_common::open_enum;
