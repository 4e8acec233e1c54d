//! The accelerated vSMMU: one guest-visible SMMUv3 whose passthrough (VFIO) devices translate
//! on the host SMMU with the guest's stage 1 nested over the VM's stage 2, and whose emulated
//! devices translate in software, behind the same registers, queues and StreamID space.
//!
//! [`AcceleratedSmmu`] owns the emulated [`SmmuV3`] (the guest's driver programs it through
//! MMIO as usual) and a [`HostBridge`], installed on it as its `HostBackend`:
//!
//! - **ID registers** are chosen once, before the guest can read them ([`GuestRegs`]): the
//!   host's clamped to a [`GuestProfile`], or a set the VMM supplies (a stable profile across
//!   hosts, or the SMMU a trace was recorded on), checked against the host with
//!   [`check_guest_idrs`]; an incompatible set fails naming the field.
//! - **Passthrough endpoints** are attached and detached by guest StreamID at any time
//!   ([`AcceleratedSmmu::attach`], [`AcceleratedSmmu::detach`]): attach checks the device's host
//!   capabilities against the frozen registers ([`check_compatible`]), creates the vDEVICE, and
//!   registers the stream on the device, which configures it at once from GBPA / SMMUEN / the
//!   guest STE. From then on every configuration change the guest makes reaches the host
//!   make-before-break, and its TLB / CD / ATC invalidations are forwarded in batches.
//! - **Emulated endpoints** translate through the device as on an ordinary vSMMU
//!   ([`AcceleratedSmmu::emulated_endpoint`]). Every invalidation is applied to the local model
//!   first and forwarded when it can concern a host-backed stream, so each reaches both.
//! - **Events**: [`AcceleratedSmmu::pump`] (see [`pump`]).
//! - **Save / restore** re-creates the host objects: the snapshot holds the device state and the
//!   host-backed vSIDs; on the destination the VMM builds a new `AcceleratedSmmu` on its host,
//!   re-attaches the same vSIDs, and [`AcceleratedSmmu::restore`] then restores the device, which
//!   re-drives every host stream's configuration from the restored registers and guest STEs.
//!   A restore onto a different set of passthrough vSIDs is refused ([`RestoreError`]).
//! - **Teardown** follows the kernel's order ([`AcceleratedSmmu::teardown`]).

pub mod bridge;
pub mod pump;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use viommu_common::id::SubstreamId;
use viommu_common::traits::{InterruptSink, MmioDevice, MmioError};
use viommu_common::vmm::EndpointIommu;
use viommu_common::StreamId;
use viommu_smmuv3::caps::{CapsError, IdRegs, SmmuConfig};
use viommu_smmuv3::device::{GuestRam, SmmuV3};
use viommu_smmuv3::host::{HostAttachError, HostBackend};
use viommu_smmuv3::snapshot::{SmmuV3Snapshot, SnapshotError};

pub use bridge::HostBridge;
pub use pump::{EventThread, PumpStats};

use crate::canon::{SteContext, StreamConfig};
use crate::caps::{
    check_compatible, check_guest_idrs, clamp, Compat, GuestIdrs, GuestProfile, HostCaps,
};
use crate::endpoint::{teardown_all, Endpoint};
use crate::error::{ClampError, EndpointError, TeardownError};
use crate::host::{AttachPort, HostEndpoint, HostEventSource, HostViommu};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The guest-visible ID registers of an accelerated vSMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRegs {
    /// The host's registers clamped to what nesting supports ([`clamp`]).
    Clamp(GuestProfile),
    /// A set the VMM supplies, checked against the host with [`check_guest_idrs`] under
    /// `compat`.
    Supplied {
        /// IDR0..5, IIDR, AIDR.
        regs: IdRegs,
        /// How much of it must work on host-backed streams.
        compat: Compat,
    },
}

/// Why an accelerated vSMMU could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    /// The guest register set does not fit the host (the error names the field).
    #[error("guest ID registers incompatible with the host: {0}")]
    Incompatible(#[from] ClampError),
    /// The device model cannot present the register set.
    #[error("the SMMUv3 model cannot present these ID registers: {0}")]
    Model(#[from] CapsError),
}

/// Why a passthrough endpoint could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The device's host SMMU cannot back the frozen guest registers.
    #[error("vSID {vsid:#x}: host incompatible with the guest ID registers: {source}")]
    Incompatible {
        /// The guest StreamID.
        vsid: u32,
        /// The field that does not fit.
        source: ClampError,
    },
    /// The vSID already has a passthrough endpoint.
    #[error("vSID {0:#x} already has a passthrough endpoint")]
    Busy(u32),
    /// Creating the vDEVICE or the first attach failed (nothing is left behind).
    #[error("vSID {vsid:#x}: {source}")]
    Endpoint {
        /// The guest StreamID.
        vsid: u32,
        /// The host failure.
        source: EndpointError,
    },
    /// The device refused to host-back the stream (out of range, or the host failed its first
    /// configuration); the endpoint was torn down again.
    #[error(transparent)]
    Device(#[from] HostAttachError),
    /// The vSMMU was torn down.
    #[error("the accelerated vSMMU was torn down")]
    TornDown,
}

/// Why a passthrough endpoint could not be detached cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    /// The vSID has no passthrough endpoint.
    #[error("vSID {0:#x} has no passthrough endpoint")]
    NotAttached(u32),
    /// The stream is detached from the device, but some host objects could not be destroyed.
    #[error(transparent)]
    Teardown(#[from] TeardownError),
}

/// Why [`AcceleratedSmmu::restore`] refused a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The passthrough vSIDs attached now are not the ones of the saved vSMMU: the VMM must
    /// re-attach exactly those before restoring.
    #[error("passthrough vSIDs differ from the snapshot: missing {missing:x?}, unexpected {unexpected:x?}")]
    Streams {
        /// Host-backed at save time, not attached now.
        missing: Vec<u32>,
        /// Attached now, not host-backed at save time.
        unexpected: Vec<u32>,
    },
    /// The device refused its snapshot (version, ID registers, values).
    #[error(transparent)]
    Device(#[from] SnapshotError),
}

/// The saved state of an accelerated vSMMU (serde: save it with the VM's other device state).
/// Host objects are not state: they are re-created on the destination (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceleratedSnapshot {
    /// The device's architectural state.
    pub smmu: SmmuV3Snapshot,
    /// The vSIDs that were host-backed, ascending.
    pub host_streams: Vec<u32>,
}

/// An accelerated vSMMU: an emulated SMMUv3 whose passthrough streams are backed by a host
/// vIOMMU. `M` is the guest memory, `V`/`P`/`E` the host backend (iommufd, or the recording
/// backend in tests).
pub struct AcceleratedSmmu<M, V, P, E>
where
    M: GuestRam,
    V: HostViommu,
    P: AttachPort,
{
    smmu: Arc<SmmuV3<M>>,
    bridge: Arc<HostBridge<V, P>>,
    guest: GuestIdrs,
    events: Mutex<Option<E>>,
    event_fd: Option<std::os::fd::RawFd>,
    counters: pump::PumpCounters,
    torn_down: AtomicBool,
}

impl<M, V, P, E> std::fmt::Debug for AcceleratedSmmu<M, V, P, E>
where
    M: GuestRam,
    V: HostViommu + std::fmt::Debug,
    P: AttachPort + std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceleratedSmmu")
            .field("guest", &self.guest)
            .field("host_streams", &self.bridge.vsids())
            .finish_non_exhaustive()
    }
}

impl<M, V, P, E> AcceleratedSmmu<M, V, P, E>
where
    M: GuestRam,
    V: HostViommu + 'static,
    P: AttachPort + 'static,
    E: HostEventSource,
{
    /// An accelerated vSMMU on `viommu` (one physical SMMU), over guest RAM `mem`, signalling
    /// `sink`, with the event source `events` (the vIOMMU's vEVENTQ; `None`: no host events),
    /// presenting `regs`. The device starts in its reset state with no passthrough endpoint.
    ///
    /// # Errors
    /// [`AccelError::Incompatible`] naming the field that does not fit the host;
    /// [`AccelError::Model`] if the device model cannot present the registers.
    pub fn new(
        viommu: Arc<V>,
        events: Option<E>,
        mem: M,
        sink: Arc<dyn InterruptSink>,
        regs: GuestRegs,
    ) -> Result<Self, AccelError> {
        let guest = match regs {
            GuestRegs::Clamp(profile) => clamp(viommu.caps(), &profile)?,
            GuestRegs::Supplied { regs, compat } => {
                let g = GuestIdrs::from(regs);
                check_guest_idrs(&g, viommu.caps(), compat)?;
                g
            }
        };
        let config = SmmuConfig::from_id_regs(guest.id_regs())?;
        let smmu = Arc::new(SmmuV3::new(&config, mem, sink)?);
        Ok(Self::install(smmu, viommu, events, guest))
    }

    /// Accelerate a device the VMM already created (its ID registers are the guest's, checked
    /// against the host under `compat`): the bridge is installed as its host backend. Call
    /// before the guest uses it, or at least before attaching passthrough devices; the device's
    /// state is kept, and streams attached later are configured from it.
    ///
    /// # Errors
    /// [`AccelError::Incompatible`] naming the field that does not fit the host.
    pub fn with_device(
        smmu: Arc<SmmuV3<M>>,
        viommu: Arc<V>,
        events: Option<E>,
        compat: Compat,
    ) -> Result<Self, AccelError> {
        let guest = GuestIdrs::from(smmu.caps().id_regs());
        check_guest_idrs(&guest, viommu.caps(), compat)?;
        Ok(Self::install(smmu, viommu, events, guest))
    }

    fn install(smmu: Arc<SmmuV3<M>>, viommu: Arc<V>, events: Option<E>, guest: GuestIdrs) -> Self {
        let bridge = Arc::new(HostBridge::new(viommu, guest));
        smmu.set_host_backend(Some(Arc::clone(&bridge) as Arc<dyn HostBackend>));
        let event_fd = events
            .as_ref()
            .and_then(|e| e.poll_fd().map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd)));
        Self {
            smmu,
            bridge,
            guest,
            events: Mutex::new(events),
            event_fd,
            counters: pump::PumpCounters::default(),
            torn_down: AtomicBool::new(false),
        }
    }

    /// The emulated device: put it on the MMIO bus (or use this type, which forwards MMIO),
    /// set its tracer, batch limit, and drive pending command work.
    pub fn device(&self) -> &Arc<SmmuV3<M>> {
        &self.smmu
    }

    /// The host backend installed on the device.
    pub fn bridge(&self) -> &Arc<HostBridge<V, P>> {
        &self.bridge
    }

    /// The frozen guest-visible ID registers.
    pub fn guest_idrs(&self) -> &GuestIdrs {
        &self.guest
    }

    /// A vm-memory `Iommu` for an emulated endpoint (a virtio device) behind this vSMMU: wrap
    /// guest memory in a `vm_memory::IommuMemory` with it. Its DMA is translated by the model.
    pub fn emulated_endpoint(
        &self,
        sid: StreamId,
        ssid: Option<SubstreamId>,
    ) -> EndpointIommu<SmmuV3<M>> {
        EndpointIommu::new(Arc::clone(&self.smmu), sid, ssid)
    }

    /// Attach a passthrough device under the guest StreamID `vsid` (hot plug at any time).
    ///
    /// `caps` are the host capabilities of this device's SMMU (`hw_info` for it), checked
    /// against the frozen guest registers; ATS is kept in guest STEs only if both the guest
    /// registers and this device have it. The vDEVICE is created and abort attached, then the
    /// stream is registered on the device, which configures it at once from the current
    /// state (SMMUEN = 0: GBPA; SMMUEN = 1: the guest's STE for `vsid`).
    ///
    /// # Errors
    /// [`AttachError`]; on error nothing of the endpoint is left behind.
    pub fn attach(&self, port: P, vsid: StreamId, caps: &HostCaps) -> Result<(), AttachError> {
        if self.torn_down.load(Ordering::Acquire) {
            return Err(AttachError::TornDown);
        }
        check_compatible(&self.guest, caps).map_err(|source| AttachError::Incompatible {
            vsid: vsid.0,
            source,
        })?;
        if self.bridge.contains(vsid) {
            return Err(AttachError::Busy(vsid.0));
        }
        let ctx = SteContext::from_guest(&self.guest, !caps.ats_not_supported());
        let ep = Endpoint::new(
            Arc::clone(self.bridge.viommu()),
            port,
            vsid,
            StreamConfig::Abort,
        )
        .map_err(|source| AttachError::Endpoint {
            vsid: vsid.0,
            source,
        })?;
        if let Err(ep) = self.bridge.insert(ep, ctx) {
            let _ = ep.teardown();
            return Err(AttachError::Busy(vsid.0));
        }
        // Not holding the bridge's lock: the device calls back into the bridge from here.
        if let Err(e) = self.smmu.attach_host_stream(vsid) {
            if let Some(ep) = self.bridge.remove(vsid) {
                let _ = ep.teardown();
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Detach the passthrough device of `vsid` (hot unplug): the stream returns to the device's
    /// software path (its DMA no longer arrives), then the endpoint is torn down in the kernel's
    /// order (detach, nested HWPT, vDEVICE).
    ///
    /// # Errors
    /// [`DetachError::NotAttached`], or the host objects that could not be destroyed.
    pub fn detach(&self, vsid: StreamId) -> Result<(), DetachError> {
        if !self.bridge.contains(vsid) {
            return Err(DetachError::NotAttached(vsid.0));
        }
        self.smmu.detach_host_stream(vsid);
        match self.bridge.remove(vsid) {
            Some(ep) => Ok(ep.teardown()?),
            None => Err(DetachError::NotAttached(vsid.0)),
        }
    }

    /// The device state and the passthrough vSIDs.
    pub fn save(&self) -> AcceleratedSnapshot {
        AcceleratedSnapshot {
            smmu: self.smmu.save(),
            host_streams: self.smmu.host_streams().iter().map(|s| s.0).collect(),
        }
    }

    /// Restore a snapshot onto this (new) vSMMU, after the VMM re-attached exactly the
    /// snapshot's passthrough vSIDs: the device state is restored, and every host stream's
    /// configuration is re-derived from it and installed on the host.
    ///
    /// # Errors
    /// [`RestoreError::Streams`] if the attached vSIDs differ (nothing changed);
    /// [`RestoreError::Device`] if the device refused the snapshot.
    pub fn restore(&self, snap: &AcceleratedSnapshot) -> Result<(), RestoreError> {
        let now: Vec<u32> = self.bridge.vsids().iter().map(|s| s.0).collect();
        let missing: Vec<u32> = snap
            .host_streams
            .iter()
            .copied()
            .filter(|s| !now.contains(s))
            .collect();
        let unexpected: Vec<u32> = now
            .iter()
            .copied()
            .filter(|s| !snap.host_streams.contains(s))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(RestoreError::Streams {
                missing,
                unexpected,
            });
        }
        self.smmu.restore(&snap.smmu)?;
        Ok(())
    }

    /// Tear everything down in the kernel's order: every stream back to the device's software
    /// path and the backend removed, then the event queue, each endpoint (detach, nested HWPT,
    /// vDEVICE), and the vIOMMU's own objects. Every step runs even after a failure; all
    /// failures are reported together. Afterwards [`pump`](Self::pump) reads nothing and
    /// [`attach`](Self::attach) fails; stop an event thread first (it holds the fd).
    ///
    /// # Errors
    /// [`TeardownError`] listing every host call that failed.
    pub fn teardown(&self) -> Result<(), TeardownError> {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        for sid in self.smmu.host_streams() {
            self.smmu.detach_host_stream(sid);
        }
        self.smmu.set_host_backend(None);
        let events = lock(&self.events).take();
        teardown_all(events, self.bridge.drain(), &**self.bridge.viommu())
    }
}

impl<M, V, P, E> MmioDevice for AcceleratedSmmu<M, V, P, E>
where
    M: GuestRam,
    V: HostViommu + 'static,
    P: AttachPort + Send + 'static,
    E: HostEventSource,
{
    fn mmio_size(&self) -> u64 {
        self.smmu.mmio_size()
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        self.smmu.mmio_read(offset, data)
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        self.smmu.mmio_write(offset, data)
    }
}
