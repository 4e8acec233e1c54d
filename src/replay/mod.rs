//! `viommu replay FILE`: trace replay (being written; see issue 3).
