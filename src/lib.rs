//! viommu: emulated IOMMUs (Arm SMMUv3, NXP PAMU) for virtual machine monitors.
pub use viommu_common as common;
pub use viommu_pamu as pamu;
pub use viommu_smmuv3 as smmuv3;
pub use viommu_sva as sva;
