//! viommu: emulated IOMMUs (Arm SMMUv3, NXP PAMU) for virtual machine monitors.
//!
//! This crate re-exports the device crates a VMM uses; it has no other code and pulls in no
//! test helpers, command-line or compression crates. Features: `smmuv3` and `pamu` (default),
//! `sva` (SVA passthrough onto Linux iommufd nesting), `fdt` (device-tree writers) and `acpi`
//! (the SMMUv3's ACPI IORT).

pub use viommu_common as common;
#[cfg(feature = "pamu")]
pub use viommu_pamu as pamu;
#[cfg(feature = "smmuv3")]
pub use viommu_smmuv3 as smmuv3;
#[cfg(feature = "sva")]
pub use viommu_sva as sva;

/// The README's code examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
