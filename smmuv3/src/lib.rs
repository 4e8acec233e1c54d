//! # viommu-smmuv3: an Arm SMMUv3 device model (IHI 0070)
//!
//! (Crate documentation is being written; see issue 3.)
#![forbid(unsafe_code)]

pub mod caps;
pub mod cmdq;
pub mod config;
pub mod device;
pub mod event;
pub mod evtq;
mod gerror;
pub mod mmio;
pub mod queue;
pub mod regs;
mod resolve;
mod route;
pub mod spec;
pub mod trace;
pub mod translate;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
