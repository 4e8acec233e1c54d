//! Lock-free IOTLB (being written; see issue 2).
