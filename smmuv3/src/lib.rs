//! viommu-smmuv3 (filled by its issue).
