//! viommu-sva (filled by its issue).
