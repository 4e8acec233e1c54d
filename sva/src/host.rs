//! The trait seams a vSMMU drives: one vIOMMU-scoped, one endpoint-scoped, one for events.
//!
//! How the accelerated vSMMU ([`crate::accel`]) uses them:
//! - guest writes an STE and issues CFGI_STE / CFGI_STE_RANGE / CFGI_ALL (or changes SMMUEN /
//!   GBPA) → the device re-derives the stream's configuration; the bridge
//!   [`canonicalise`](crate::canon::canonicalise)s STE words 0–1 and calls
//!   [`HostEndpoint::set_config`], which is make-before-break;
//! - guest TLBI_NH_* / TLBI_NSNH_ALL / CFGI_CD(_ALL) / ATC_INV up to the next CMD_SYNC or
//!   non-forwardable command → one [`HostViommu::invalidate`] call; on
//!   [`InvalidateError::Rejected`] the device raises CERROR_ILL with CONS at `index`;
//! - CMD_SYNC completes locally once the preceding `invalidate` returned;
//! - the event pump reads [`HostEventSource::read_available`] (poll [`HostEventSource::poll_fd`])
//!   and copies [`EventItem::Record`]s (already carrying the vSID) into the guest EVENTQ, turning
//!   [`EventItem::Lost`] into the guest's EVENTQ overflow flag.

use std::os::fd::BorrowedFd;

use crate::canon::{CanonicalSte, StreamConfig};
use crate::caps::HostCaps;
use crate::error::{Errno, EventError, InvalidateError, TeardownError, ViommuError};
use crate::events::EventItem;
use viommu_common::StreamId;
use viommu_smmuv3::spec::cmd::CmdEntry;

/// An iommufd device id (from VFIO_DEVICE_BIND_IOMMUFD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevId(pub u32);

/// An iommufd HWPT object id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HwptId(pub u32);

/// An iommufd vDEVICE object id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VdevId(pub u32);

/// The HWPTs every vIOMMU shares between its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SharedHwpt {
    /// vSTE V=1, Config=abort.
    Abort,
    /// vSTE V=1, Config=bypass (stage 2 only).
    Bypass,
}

/// The largest batch one [`HostViommu::invalidate`] call accepts (a full 2^19-entry guest queue).
pub const MAX_BATCH: usize = 1 << 19;

/// One vSMMU's slice of one physical SMMU: the vIOMMU object with its nest-parent stage 2.
pub trait HostViommu: Send + Sync {
    /// Host capabilities as `hw_info` reported them when the vIOMMU was created.
    fn caps(&self) -> &HostCaps;
    /// The shared abort / bypass HWPT of this vIOMMU.
    fn shared_hwpt(&self, which: SharedHwpt) -> HwptId;
    /// Allocate a nested HWPT from canonical guest STE words for device `dev`.
    fn alloc_nested(&self, dev: DevId, ste: &CanonicalSte) -> Result<HwptId, ViommuError>;
    /// Destroy a nested HWPT this vIOMMU allocated (it must no longer be attached).
    fn destroy_hwpt(&self, hwpt: HwptId) -> Result<(), ViommuError>;
    /// Create the vDEVICE binding `dev` to the guest-visible StreamID.
    fn alloc_vdevice(&self, dev: DevId, vsid: StreamId) -> Result<VdevId, ViommuError>;
    /// Destroy a vDEVICE.
    fn destroy_vdevice(&self, vdev: VdevId) -> Result<(), ViommuError>;
    /// Forward a batch of guest commands in one host call. `Ok(n)` means all `n` were applied.
    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<usize, InvalidateError>;
    /// Destroy the vIOMMU-owned objects (shared HWPTs, vIOMMU, nest parent) in the kernel's order.
    /// Call after the event queue and every endpoint are gone; continues past failures.
    fn teardown(&self) -> Result<(), TeardownError>;
}

/// The attach port of one bound device (`VFIO_DEVICE_{ATTACH,DETACH}_IOMMUFD_PT`).
pub trait AttachPort: Send + Sync {
    /// The iommufd device id.
    fn dev_id(&self) -> DevId;
    /// Attach to `hwpt`; while attached this is the kernel's atomic replace.
    fn attach(&self, hwpt: HwptId) -> Result<(), Errno>;
    /// Detach (the device is then blocked).
    fn detach(&self) -> Result<(), Errno>;
}

/// What [`HostEndpoint::set_config`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigChange {
    /// The canonical configuration was already installed: no host call.
    Unchanged,
    /// Replaced atomically; `released` is the nested HWPT that was destroyed afterwards.
    Replaced {
        /// The HWPT now attached.
        hwpt: HwptId,
        /// The previous nested HWPT, destroyed after the replace.
        released: Option<HwptId>,
    },
}

/// One assigned device behind the vSMMU, identified to the guest by its vSID.
pub trait HostEndpoint {
    /// The guest-visible StreamID.
    fn vsid(&self) -> StreamId;
    /// The configuration currently installed on the host.
    fn config(&self) -> StreamConfig;
    /// Install `cfg` make-before-break: allocate the new HWPT, replace-attach it, then destroy the
    /// old one. On any failure the previous configuration stays attached (never parks on abort).
    fn set_config(
        &mut self,
        cfg: StreamConfig,
    ) -> Result<ConfigChange, crate::error::EndpointError>;
    /// Canonicalise guest STE words 0–1 and install them. Policy for an STE the host cannot express
    /// (the error is returned so the vSMMU can raise C_BAD_STE): keep the current translation if
    /// one is installed (an abort window can be fatal to in-flight DMA), otherwise install abort.
    fn apply_guest_ste(
        &mut self,
        words: [u64; 2],
        ctx: &crate::canon::SteContext,
    ) -> Result<ConfigChange, crate::error::EndpointError>;
    /// Detach, destroy the nested HWPT, destroy the vDEVICE; continues past failures.
    fn teardown(self) -> Result<(), TeardownError>;
}

/// The vIOMMU's event queue (vEVENTQ): a pollable fd and decoded records.
pub trait HostEventSource: Send {
    /// Read everything available without blocking, appending decoded items to `out`.
    /// Returns how many items were appended (0 when the queue is empty).
    fn read_available(&mut self, out: &mut Vec<EventItem>) -> Result<usize, EventError>;
    /// The fd to poll for readability, if the backend has one.
    fn poll_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Close and destroy the queue (first step of teardown).
    fn close(self) -> Result<(), TeardownError>
    where
        Self: Sized;
}
