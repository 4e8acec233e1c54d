//! The PAMU's architectural formats, as types only (house style §1.1).
//!
//! Nothing here has behaviour beyond pure accessors: [`regs`] holds the per-instance register
//! block (offsets and `#[bitfield]` layouts), [`paace`] the PAACE/SPAACE table entries and the
//! OMT. Everything is big-endian with the manuals' MSB-first bit numbering (bit 0 = MSB), declared
//! with bitfield-struct `order = Msb` so fields read in the same order as the manual's diagrams.
//! Source for every layout: `pamu.md` §2, §3, §6 and §10 (Linux `fsl_pamu.h`).

pub mod paace;
pub mod regs;

/// Open enums (house style §1.4): see [`viommu_common::open_enum`].
pub(crate) use viommu_common::open_enum;
