//! # viommu-sva: SVA passthrough onto host iommufd nested translation
//!
//! The host half of an accelerated vSMMU: a guest's SMMUv3 configuration (STE words 0–1, its CD
//! table and stage-1 page tables) is bound onto the host's physical SMMUv3 through Linux iommufd,
//! so the host hardware walks the guest's tables nested over the VM's stage 2.
//!
//! - [`host`]: the trait seams a vSMMU drives ([`HostViommu`], [`HostEndpoint`],
//!   [`HostEventSource`]) and how the future bridge calls them.
//! - [`batch`]: splitting a guest command run into host batches and local steps.
//! - [`canon`]: guest STE → the subset the host accepts, field by field, as a pure function.
//! - [`caps`]: `hw_info` decoded into typed ID registers, and [`caps::clamp`], the pure function
//!   from host registers to the ID registers a vSMMU may advertise (S1P only).
//! - [`endpoint`]: make-before-break configuration changes and ordered teardown, generic over
//!   backends.
//! - [`events`]: vEVENTQ decoding with exact lost-event accounting.
//! - [`pasid`]: binding model (b), per-PASID stage-1 tables through a CD table the VMM owns.
//! - [`recording`]: a backend recording a typed operation log (tests, snapshots).
//! - `iommufd` (Linux on x86_64/aarch64): the real backend over iommufd-ioctls / vfio-ioctls.
//! - [`spec`]: the SMMUv3 formats involved, as types.
//!
//! Binding model (a), the guest's whole CD table, is [`StreamConfig::Translate`]: the guest STE
//! points at its own CD table (an IPA), and the host installs it nested (Config 0b111). Guest PASIDs
//! then need no per-PASID host call; CFGI_CD and TLBI_NH_* are forwarded.
//!
//! Teardown order (the kernel's): event queue → per endpoint (detach, nested HWPT, vDEVICE) →
//! vIOMMU objects (shared bypass/abort HWPTs, vIOMMU, nest parent) → IOAS → devices; see
//! [`endpoint::teardown_all`]. Endpoints have no `Drop` teardown: dropping one without calling
//! [`HostEndpoint::teardown`] leaves its objects to be reclaimed when the iommufd closes.

pub mod batch;
pub mod canon;
pub mod caps;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod host;
pub mod pasid;
pub mod recording;
pub mod spec;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub mod iommufd;

pub use canon::{canonicalise, CanonicalSte, SteContext, StreamConfig};
pub use caps::{clamp, GuestIdrs, GuestProfile, HostCaps};
pub use endpoint::{teardown_all, Endpoint};
pub use error::{EndpointError, Errno, EventError, HostOp, InvalidateError, SteError, ViommuError};
pub use events::{EventItem, HostEvent, VeventDecoder};
pub use host::{
    AttachPort, ConfigChange, DevId, HostEndpoint, HostEventSource, HostViommu, HwptId, SharedHwpt,
    VdevId,
};
