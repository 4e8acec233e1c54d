//! viommu-pamu (being written).
#![forbid(unsafe_code)]
pub mod caps;
pub mod fault;
pub mod paact;
pub mod spec;
pub mod translate;
