//! # viommu-sva: SVA passthrough onto host iommufd nested translation
//!
//! The host half of an accelerated vSMMU: a guest's SMMUv3 configuration (STE words 0–1, its CD
//! table and stage-1 page tables) is bound onto the host's physical SMMUv3 through Linux iommufd,
//! so the host hardware walks the guest's tables nested over the VM's stage 2.
//!
//! - [`accel`]: the accelerated vSMMU a VMM holds ([`accel::AcceleratedSmmu`]): the emulated
//!   SMMUv3 with its passthrough streams backed by a host vIOMMU, emulated ones in software.
//! - [`host`]: the trait seams a vSMMU drives ([`HostViommu`], [`HostEndpoint`],
//!   [`HostEventSource`]) and how the accelerated vSMMU's bridge calls them.
//! - [`batch`]: splitting a guest command run into host batches and local steps.
//! - [`canon`]: guest STE → the subset the host accepts, field by field, as a pure function.
//! - [`caps`]: `hw_info` decoded into typed ID registers, and [`caps::clamp`], the pure function
//!   from host registers to the ID registers a vSMMU may advertise (S1P only).
//! - [`endpoint`]: make-before-break configuration changes and ordered teardown, generic over
//!   backends.
//! - [`events`]: vEVENTQ decoding with exact lost-event accounting.
//! - [`pasid`]: binding model (b), per-PASID stage-1 tables through a CD table the VMM owns.
//! - `recording` (feature `test-utils`): a backend recording a typed operation log (tests,
//!   snapshots).
//! - `iommufd` (Linux on x86_64/aarch64): the real backend over iommufd-ioctls / vfio-ioctls.
//! - [`spec`]: what iommufd nesting adds to the SMMUv3 formats (`hw_info`, the vSTE nesting masks,
//!   the command conversion table, vEVENTQ framing). The formats themselves (ID registers, STE,
//!   CD, commands, event records) are `viommu-smmuv3`'s `spec` types; guest commands are built
//!   from its decoded `Command`.
//!
//! Binding model (a), the guest's whole CD table, is [`StreamConfig::Translate`]: the guest STE
//! points at its own CD table (an IPA), and the host installs it nested (Config 0b111). Guest PASIDs
//! then need no per-PASID host call; CFGI_CD and TLBI_NH_* are forwarded.
//!
//! Teardown order (the kernel's): event queue → per endpoint (detach, nested HWPT, vDEVICE) →
//! vIOMMU objects (shared bypass/abort HWPTs, vIOMMU, nest parent) → IOAS → devices; see
//! [`endpoint::teardown_all`]. Endpoints have no `Drop` teardown: dropping one without calling
//! [`HostEndpoint::teardown`] leaves its objects to be reclaimed when the iommufd closes.
//!
//! ## Testing
//!
//! - Unit tests pin every bit position of the smmuv3 STE/CD/command/event/ID-register types this
//!   crate relies on against IHI 0070 and Linux's `arm-smmu-v3.h`, and the nesting masks against
//!   `STRTAB_STE_{0,1}_NESTING_ALLOWED`.
//! - `tests/recording.rs` snapshots the operation log of the recording backend (make-before-break
//!   attach → replace → detach, an invalidation batch failing in the middle, an event burst with
//!   lost events, teardown after an error).
//! - `tests/accel.rs` runs the accelerated vSMMU under a Linux-style guest driver over the
//!   recording backend (stream lifecycle across GBPA/SMMUEN/STE, batching and the failing index,
//!   CMD_SYNC ordering, mixed-mode isolation, events with loss, hot attach/detach during
//!   emulated DMA, incompatible registers, save/restore, teardown), snapshotting the host log.
//! - `tests/accel_replay.rs` replays every SMMUv3 scenario of `tests/replay/` and the recorded
//!   Linux bring-up through an accelerated vSMMU with some streams host-backed (a shadow SMMUv3
//!   plays the host hardware for their DMA); every check passes; host logs are snapshots.
//! - `tests/kernel/run.sh` (run by `.ci/run`) builds Linux 7.3 from Debian's `linux-source-7.3`
//!   with a config fragment and a scripted `arm_smmu_v3.force_canwbs` boot parameter, boots it in
//!   QEMU (`virt,iommu=smmuv3`, two `edu` devices) and runs `examples/kernel_guest` through this
//!   crate's iommufd backend: stage-2-only DMA, nested S1+S2 DMA from a guest CD table, stale
//!   translation until TLBI_NH_VA, F_TRANSLATION events with the vSID, the failing index of an
//!   illegal batch, 48 replacements during DMA without an abort, two devices isolated, per-PASID
//!   binding through a VMM-owned CD table, exact lost-event accounting on a depth-8 vEVENTQ,
//!   kernel-order teardown, and (booted without the parameter) `ViommuError::Host { op:
//!   ViommuAlloc, errno: EOPNOTSUPP }`.
//! - Measured in that guest (TCG-emulated SMMU, so only the ratio means anything): forwarding 64
//!   TLBI_NH_VA as one `HWPT_INVALIDATE` takes ~14–20 µs, as 64 calls ~265–890 µs (16–45×).

pub mod accel;
pub mod batch;
pub mod canon;
pub mod caps;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod host;
pub mod pasid;
#[cfg(any(test, feature = "test-utils"))]
pub mod recording;
pub mod spec;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub mod iommufd;

pub use canon::{canonicalise, CanonicalSte, SteContext, StreamConfig};
pub use caps::{
    check_compatible, check_guest_idrs, clamp, Compat, GuestIdrs, GuestProfile, HostCaps,
};
pub use endpoint::{teardown_all, Endpoint};
pub use error::{EndpointError, Errno, EventError, HostOp, InvalidateError, SteError, ViommuError};
pub use events::{EventItem, HostEvent, VeventDecoder};
pub use host::{
    AttachPort, ConfigChange, DevId, HostEndpoint, HostEventSource, HostViommu, HwptId, SharedHwpt,
    VdevId,
};
