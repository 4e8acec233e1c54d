//! `struct iommu_hw_info_arm_smmuv3` and the generic `IOMMU_GET_HW_INFO` outputs.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct iommu_hw_info_arm_smmuv3` (40 bytes): the host SMMU's raw ID registers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HwInfoArmSmmuv3 {
    /// `enum iommu_hw_info_arm_smmuv3_flags`.
    pub flags: u32,
    /// Must be 0.
    pub reserved: u32,
    /// SMMU_IDR0..SMMU_IDR5, raw.
    pub idr: [u32; 6],
    /// SMMU_IIDR.
    pub iidr: u32,
    /// SMMU_AIDR.
    pub aidr: u32,
}
const _: () = assert!(core::mem::size_of::<HwInfoArmSmmuv3>() == 40);

/// `IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI`: every TLBI/CFGI + SYNC must be issued twice.
pub const HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI: u32 = 1;

/// `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`.
pub const HW_INFO_TYPE_ARM_SMMUV3: u32 = 2;

/// `out_capabilities` bits of `IOMMU_GET_HW_INFO` (`enum iommufd_hw_capabilities`).
pub mod hw_cap {
    /// IOMMU_HW_CAP_DIRTY_TRACKING.
    pub const DIRTY_TRACKING: u64 = 1;
    /// IOMMU_HW_CAP_PCI_PASID_EXEC.
    pub const PCI_PASID_EXEC: u64 = 2;
    /// IOMMU_HW_CAP_PCI_PASID_PRIV.
    pub const PCI_PASID_PRIV: u64 = 4;
    /// IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED.
    pub const PCI_ATS_NOT_SUPPORTED: u64 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hw_info_layout_matches_the_uapi() {
        let mut bytes = [0u8; 40];
        bytes[8..12].copy_from_slice(&0x0d44_101bu32.to_le_bytes());
        bytes[32..36].copy_from_slice(&7u32.to_le_bytes());
        bytes[36..40].copy_from_slice(&1u32.to_le_bytes());
        let info = HwInfoArmSmmuv3::read_from_bytes(&bytes[..]).unwrap_or_default();
        assert_eq!(info.idr[0], 0x0d44_101b);
        assert_eq!(info.iidr, 7);
        assert_eq!(info.aidr, 1);
    }
}
