//! The generic endpoint: make-before-break configuration changes and ordered teardown over any
//! [`HostViommu`] and [`AttachPort`] (the iommufd backend and the recording backend alike).

use std::sync::Arc;

use viommu_common::StreamId;

use crate::canon::{canonicalise, SteContext, StreamConfig};
use crate::error::{EndpointError, HostOp, TeardownError};
use crate::host::{AttachPort, ConfigChange, HostEndpoint, HostViommu, HwptId, SharedHwpt, VdevId};

/// One assigned device: its attach port, its vDEVICE and the HWPT currently attached.
#[derive(Debug)]
pub struct Endpoint<V: HostViommu, P: AttachPort> {
    viommu: Arc<V>,
    port: P,
    vsid: StreamId,
    vdev: VdevId,
    config: StreamConfig,
    attached: HwptId,
    /// The nested HWPT owned by this endpoint (Translate), if any.
    nested: Option<HwptId>,
    /// Replaced nested HWPTs whose destroy failed; retried at teardown.
    leaked: Vec<HwptId>,
}

impl<V: HostViommu, P: AttachPort> Endpoint<V, P> {
    /// Create the vDEVICE (vSID) and attach `initial` (abort or bypass for a guest with SMMUEN = 0,
    /// per GBPA). On failure everything created here is destroyed again.
    pub fn new(
        viommu: Arc<V>,
        port: P,
        vsid: StreamId,
        initial: StreamConfig,
    ) -> Result<Self, EndpointError> {
        let dev = port.dev_id();
        let vdev = viommu.alloc_vdevice(dev, vsid)?;
        let abort = viommu.shared_hwpt(SharedHwpt::Abort);
        let mut ep = Self {
            viommu,
            port,
            vsid,
            vdev,
            config: StreamConfig::Abort,
            attached: abort,
            nested: None,
            leaked: Vec::new(),
        };
        // Attach something first so the device is never left on the IOAS or unattached.
        let first = match initial {
            StreamConfig::Bypass => ep.viommu.shared_hwpt(SharedHwpt::Bypass),
            _ => abort,
        };
        if let Err(errno) = ep.port.attach(first) {
            let _ = ep.viommu.destroy_vdevice(vdev);
            return Err(EndpointError::Host {
                dev,
                op: HostOp::Attach,
                errno,
            });
        }
        ep.attached = first;
        ep.config = if first == abort {
            StreamConfig::Abort
        } else {
            StreamConfig::Bypass
        };
        if let StreamConfig::Translate(_) = initial {
            if let Err(e) = ep.set_config(initial) {
                let _ = ep.teardown();
                return Err(e);
            }
        }
        Ok(ep)
    }

    /// The HWPT currently attached.
    pub fn attached(&self) -> HwptId {
        self.attached
    }

    /// The vDEVICE id.
    pub fn vdevice(&self) -> VdevId {
        self.vdev
    }

    /// The attach port (e.g. the VFIO device, for BAR access).
    pub fn port(&self) -> &P {
        &self.port
    }

    /// The vIOMMU this endpoint lives on.
    pub fn viommu(&self) -> &Arc<V> {
        &self.viommu
    }
}

impl<V: HostViommu, P: AttachPort> HostEndpoint for Endpoint<V, P> {
    fn vsid(&self) -> StreamId {
        self.vsid
    }

    fn config(&self) -> StreamConfig {
        self.config
    }

    fn set_config(&mut self, cfg: StreamConfig) -> Result<ConfigChange, EndpointError> {
        if cfg == self.config {
            return Ok(ConfigChange::Unchanged);
        }
        let dev = self.port.dev_id();
        // make: the new HWPT exists before anything changes
        let (target, new_nested) = match cfg {
            StreamConfig::Abort => (self.viommu.shared_hwpt(SharedHwpt::Abort), None),
            StreamConfig::Bypass => (self.viommu.shared_hwpt(SharedHwpt::Bypass), None),
            StreamConfig::Translate(ste) => {
                let id = self.viommu.alloc_nested(dev, &ste)?;
                (id, Some(id))
            }
        };
        // replace: one atomic kernel operation, no intermediate abort
        if let Err(errno) = self.port.attach(target) {
            if let Some(id) = new_nested {
                let _ = self.viommu.destroy_hwpt(id);
            }
            return Err(EndpointError::Host {
                dev,
                op: HostOp::Attach,
                errno,
            });
        }
        // break: the old nested HWPT is no longer referenced
        let released = self.nested.take();
        self.attached = target;
        self.nested = new_nested;
        self.config = cfg;
        if let Some(old) = released {
            if let Err(e) = self.viommu.destroy_hwpt(old) {
                self.leaked.push(old);
                return Err(EndpointError::ReleaseFailed {
                    hwpt: old,
                    source: e,
                });
            }
        }
        Ok(ConfigChange::Replaced {
            hwpt: target,
            released,
        })
    }

    fn apply_guest_ste(
        &mut self,
        words: [u64; 2],
        ctx: &SteContext,
    ) -> Result<ConfigChange, EndpointError> {
        match canonicalise(words, ctx) {
            Ok(cfg) => self.set_config(cfg),
            Err(e) => {
                if !matches!(self.config, StreamConfig::Translate(_)) {
                    self.set_config(StreamConfig::Abort)?;
                }
                Err(EndpointError::Ste(e))
            }
        }
    }

    fn teardown(self) -> Result<(), TeardownError> {
        let mut failures = Vec::new();
        let dev = self.port.dev_id();
        if let Err(errno) = self.port.detach() {
            failures.push((HostOp::Detach, dev.0, errno));
        }
        for id in self.nested.iter().chain(self.leaked.iter()).copied() {
            if let Err(e) = self.viommu.destroy_hwpt(id) {
                failures.push((
                    HostOp::Destroy,
                    id.0,
                    e.errno().unwrap_or(crate::error::Errno::EIO),
                ));
            }
        }
        if let Err(e) = self.viommu.destroy_vdevice(self.vdev) {
            failures.push((
                HostOp::Destroy,
                self.vdev.0,
                e.errno().unwrap_or(crate::error::Errno::EIO),
            ));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(TeardownError { failures })
        }
    }
}

/// Tear a whole vSMMU down in the order the kernel requires: the event queue, every endpoint
/// (detach, nested HWPT, vDEVICE), then the vIOMMU's own objects. Every step runs even after a
/// failure; all failures are reported together. The IOAS goes last, when its owner is dropped.
pub fn teardown_all<V, P, E>(
    events: Option<E>,
    endpoints: Vec<Endpoint<V, P>>,
    viommu: &V,
) -> Result<(), TeardownError>
where
    V: HostViommu,
    P: AttachPort,
    E: crate::host::HostEventSource,
{
    let mut failures = Vec::new();
    if let Some(ev) = events {
        if let Err(e) = ev.close() {
            failures.extend(e.failures);
        }
    }
    for ep in endpoints {
        if let Err(e) = ep.teardown() {
            failures.extend(e.failures);
        }
    }
    if let Err(e) = viommu.teardown() {
        failures.extend(e.failures);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(TeardownError { failures })
    }
}
