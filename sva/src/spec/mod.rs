//! Hardware formats this crate exchanges with the host kernel, as types only.
//!
//! The SMMUv3 structures here are the subset the iommufd nesting interface carries (STE words
//! 0–1, the 16-byte commands, the 32-byte event record, the ID registers in `hw_info`, and the
//! context descriptor the VMM composes for per-PASID binding). They are defined here rather than
//! borrowed from `viommu-smmuv3` so this crate depends on the common core only; the unit tests pin
//! every bit position against the values in IHI 0070 / Linux's `arm-smmu-v3.h`.
//!
//! Nothing in this module has behaviour beyond pure accessors and constructors.

pub mod cd;
pub mod cmd;
pub mod event;
pub mod hwinfo;
pub mod idr;
pub mod ste;
