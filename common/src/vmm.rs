//! vm-memory `Iommu` adapter (being written; see issue 2).
