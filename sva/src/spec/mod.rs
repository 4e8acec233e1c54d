//! The parts of the host kernel interface that are specific to iommufd nesting, as types only.
//!
//! The SMMUv3 formats themselves (ID registers, STE, CD, commands, event records) are
//! `viommu-smmuv3`'s [`spec`](viommu_smmuv3::spec) types; this crate adds only what the kernel
//! defines on top of them: the `hw_info` layout, the masks of STE fields a nested vSTE may carry,
//! the command conversion table of `IOMMU_HWPT_INVALIDATE` (and constructors for the commands the
//! VMM composes itself), and the vEVENTQ framing. The unit tests pin the smmuv3 types' bit
//! positions this crate relies on against Linux's `arm-smmu-v3.h` masks.
//!
//! Nothing in this module has behaviour beyond pure accessors and constructors.

pub mod cmd;
pub mod event;
pub mod hwinfo;
pub mod ste;
