//! viommu-pamu (filled by its issue).
