//! The host backend of an accelerated vSMMU: `viommu_smmuv3`'s [`HostBackend`] over a
//! [`HostViommu`] and one [`Endpoint`] per passthrough device, keyed by the guest's StreamID.
//!
//! | Device call | Host effect |
//! |---|---|
//! | `configure_stream(sid, Abort / Bypass)` | the endpoint attaches the shared abort / bypass HWPT |
//! | `configure_stream(sid, Translate { ste })` | [`canonicalise`] with the endpoint's [`SteContext`], then a nested HWPT installed make-before-break (unchanged canonical words: no host call) |
//! | `invalidate(cmds)` | one [`HostViommu::invalidate`] call; a refused command's index becomes the device's batch error index |
//!
//! Errors: an STE [`canonicalise`] refuses, or that the kernel refuses when the nested HWPT is
//! allocated (EINVAL, EIO: `arm_smmu_validate_vste`), is [`HostStreamError::Rejected`] (the
//! device records C_BAD_STE and asks for abort). Any other host failure is
//! [`HostStreamError::Failed`]: the previous configuration stays attached and the device retries
//! at its next trigger. A replaced nested HWPT that could not be destroyed is not an error for
//! the device (the new configuration is installed); the endpoint destroys it at teardown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use viommu_common::StreamId;
use viommu_smmuv3::host::{
    HostBackend, HostBatchError, HostStreamConfig, HostStreamError, DEFAULT_HOST_BATCH,
};
use viommu_smmuv3::spec::cmd::CmdEntry;

use crate::batch::cons_on_failure;
use crate::canon::{canonicalise, SteContext, StreamConfig};
use crate::caps::GuestIdrs;
use crate::endpoint::Endpoint;
use crate::error::{EndpointError, Errno, HostOp};
use crate::host::{AttachPort, HostEndpoint, HostViommu, MAX_BATCH};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One passthrough device and what its guest STEs may use.
#[derive(Debug)]
pub(crate) struct Slot<V: HostViommu, P: AttachPort> {
    pub(crate) ep: Endpoint<V, P>,
    pub(crate) ctx: SteContext,
}

/// The [`HostBackend`] an [`AcceleratedSmmu`](super::AcceleratedSmmu) installs on its device.
#[derive(Debug)]
pub struct HostBridge<V: HostViommu, P: AttachPort> {
    viommu: Arc<V>,
    guest: GuestIdrs,
    max_batch: usize,
    /// Passthrough endpoints by vSID. Taken inside the device's command lock (the device calls
    /// in with it held), so never held while calling into the device.
    endpoints: Mutex<BTreeMap<u32, Slot<V, P>>>,
}

impl<V: HostViommu, P: AttachPort> HostBridge<V, P> {
    /// A bridge onto `viommu` for a guest presenting `guest`, with no endpoints.
    pub fn new(viommu: Arc<V>, guest: GuestIdrs) -> Self {
        Self {
            viommu,
            guest,
            max_batch: DEFAULT_HOST_BATCH,
            endpoints: Mutex::new(BTreeMap::new()),
        }
    }

    /// Forward at most `n` commands per host call (clamped to 1..=[`MAX_BATCH`]).
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.clamp(1, MAX_BATCH);
        self
    }

    /// The vIOMMU.
    pub fn viommu(&self) -> &Arc<V> {
        &self.viommu
    }

    /// The frozen guest ID registers.
    pub fn guest_idrs(&self) -> &GuestIdrs {
        &self.guest
    }

    /// The vSIDs with a passthrough endpoint, ascending.
    pub fn vsids(&self) -> Vec<StreamId> {
        lock(&self.endpoints).keys().map(|&s| StreamId(s)).collect()
    }

    /// The configuration installed on the host for `vsid`, if it has an endpoint.
    pub fn installed(&self, vsid: StreamId) -> Option<StreamConfig> {
        lock(&self.endpoints).get(&vsid.0).map(|s| s.ep.config())
    }

    /// Add an endpoint; gives it back if the vSID already has one.
    pub(crate) fn insert(&self, ep: Endpoint<V, P>, ctx: SteContext) -> Result<(), Endpoint<V, P>> {
        let mut map = lock(&self.endpoints);
        let vsid = ep.vsid().0;
        if map.contains_key(&vsid) {
            return Err(ep);
        }
        map.insert(vsid, Slot { ep, ctx });
        Ok(())
    }

    /// True if `vsid` has an endpoint.
    pub(crate) fn contains(&self, vsid: StreamId) -> bool {
        lock(&self.endpoints).contains_key(&vsid.0)
    }

    /// Remove the endpoint of `vsid`.
    pub(crate) fn remove(&self, vsid: StreamId) -> Option<Endpoint<V, P>> {
        lock(&self.endpoints).remove(&vsid.0).map(|s| s.ep)
    }

    /// Remove every endpoint, in vSID order.
    pub(crate) fn drain(&self) -> Vec<Endpoint<V, P>> {
        std::mem::take(&mut *lock(&self.endpoints))
            .into_values()
            .map(|s| s.ep)
            .collect()
    }
}

/// Errors of the host that mean "this STE cannot be expressed", not "the host is in trouble".
fn kernel_refused_ste(e: &EndpointError) -> bool {
    matches!(
        e.host(),
        Some((HostOp::HwptAllocNested, errno)) if errno == Errno::EINVAL || errno == Errno::EIO
    )
}

impl<V, P> HostBackend for HostBridge<V, P>
where
    V: HostViommu + 'static,
    P: AttachPort + 'static,
{
    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<(), HostBatchError> {
        self.viommu
            .invalidate(cmds)
            .map(|_| ())
            .map_err(|e| HostBatchError {
                index: cons_on_failure(0, &e).unwrap_or(0),
                reason: e.to_string(),
            })
    }

    fn configure_stream(
        &self,
        sid: StreamId,
        cfg: &HostStreamConfig,
    ) -> Result<(), HostStreamError> {
        let mut map = lock(&self.endpoints);
        let Some(slot) = map.get_mut(&sid.0) else {
            return Err(HostStreamError::Failed {
                reason: format!("no passthrough endpoint for vSID {:#x}", sid.0),
            });
        };
        let want = match *cfg {
            HostStreamConfig::Abort => StreamConfig::Abort,
            HostStreamConfig::Bypass => StreamConfig::Bypass,
            HostStreamConfig::Translate { ste } => {
                canonicalise(ste, &slot.ctx).map_err(|e| HostStreamError::Rejected {
                    reason: e.to_string(),
                })?
            }
        };
        match slot.ep.set_config(want) {
            Ok(_) | Err(EndpointError::ReleaseFailed { .. }) => Ok(()),
            Err(e) if kernel_refused_ste(&e) => Err(HostStreamError::Rejected {
                reason: e.to_string(),
            }),
            Err(e) => Err(HostStreamError::Failed {
                reason: e.to_string(),
            }),
        }
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }
}
