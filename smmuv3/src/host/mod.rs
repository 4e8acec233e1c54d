//! Host-backed streams: the device half of an accelerated vSMMU.
//!
//! A VMM that assigns a physical device to the guest (VFIO over iommufd nesting) lets the host
//! SMMU translate that device's DMA with the guest's stage-1 tables nested over the VMM's
//! stage 2. The guest still programs one SMMUv3 (this device) with its unmodified driver; this
//! module connects what the guest programs to a [`HostBackend`] supplied by the VMM (the
//! `viommu-sva` crate implements one over iommufd), without this crate depending on it.
//!
//! - **Registry.** [`SmmuV3::attach_host_stream`] marks a StreamID as host-backed (hot attach at
//!   any time) and [`SmmuV3::detach_host_stream`] returns it to software translation. The set
//!   is published lock-free; a host-backed stream is never walked or cached in software: a
//!   software [`translate`](viommu_common::traits::DmaTranslator::translate) or
//!   [`ats_translate`](SmmuV3::ats_translate) on it fails with the configuration fault
//!   [`HOST_BACKED`] and records no event (its real DMA never reaches this model). The check
//!   sits on the route-resolution (miss) path only: host streams never get a cached route, so
//!   the IOTLB-hit path is unchanged.
//! - **Invalidation forwarding** ([`forward`]): each command is applied to the local model
//!   first (emulated and host-backed streams share ASIDs and VMIDs), then TLBI_NH_ALL/ASID/VA/VAA
//!   and TLBI_NSNH_ALL always, and CFGI_CD, CFGI_CD_ALL and ATC_INV only for host-backed
//!   StreamIDs (the kernel refuses a vSID it does not know), join one pending batch that reaches
//!   the host in one [`HostBackend::invalidate`] call per run.
//! - **Stream configuration** ([`stream`]): CFGI_STE / CFGI_STE_RANGE / CFGI_ALL, CR0.SMMUEN and
//!   GBPA changes, reset and restore derive each affected host stream's [`HostStreamConfig`]
//!   and send it with [`HostBackend::configure_stream`] when it changed.
//! - **Events** ([`events`]): [`SmmuV3::inject_host_event`] and [`SmmuV3::host_events_lost`]
//!   feed the host's records (already carrying the guest's StreamID) into the guest event queue.
//!
//! With no backend installed nothing here runs: the command consumer checks one lock-free
//! pointer per consume step.

pub mod events;
pub mod forward;
pub mod stream;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::StreamId;

use crate::device::{lock, GuestRam, SmmuV3};
use crate::spec::cmd::CmdEntry;

/// The fault of a software translation requested for a host-backed stream (its DMA is
/// translated by the host SMMU, never by this model); its name is `HOST_BACKED`.
pub const HOST_BACKED: Smmuv3FaultId = Smmuv3FaultId::HostBacked;

/// Default for [`HostBackend::max_batch`]: commands per host call. The Linux kernel forwards a
/// user batch to the physical queue in chunks of its own, so this only bounds the buffer.
pub const DEFAULT_HOST_BATCH: usize = 128;

/// A forwarded batch that the host did not apply completely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host invalidation failed at batch index {index}: {reason}")]
pub struct HostBatchError {
    /// Index in the batch of the first command the host did NOT apply (every command before it
    /// took effect on the host).
    pub index: usize,
    /// Why, for the trace.
    pub reason: String,
}

/// The host configuration of one host-backed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostStreamConfig {
    /// Terminate all of the stream's traffic.
    Abort,
    /// Pass the stream's traffic through the guest-physical (stage-2) mapping only.
    Bypass,
    /// Translate with the guest's STE: its stage-1 context nested over the VMM's stage 2.
    Translate {
        /// The guest STE words 0 and 1 (Config, S1ContextPtr, S1CDMax, S1Fmt, S1DSS, cache and
        /// stall attributes, EATS): what a nested host HWPT is made of. Words 2-7 hold stage-2
        /// fields, which belong to the VMM on a host-backed stream.
        ste: [u64; 2],
    },
}

impl fmt::Display for HostStreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostStreamConfig::Abort => f.write_str("abort"),
            HostStreamConfig::Bypass => f.write_str("bypass"),
            HostStreamConfig::Translate { ste } => {
                write!(f, "translate ste={:#018x} {:#018x}", ste[0], ste[1])
            }
        }
    }
}

/// Why [`HostBackend::configure_stream`] did not install a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostStreamError {
    /// The host cannot express this guest STE (e.g. stage 2 requested on a stage-1-only host,
    /// a field the kernel refuses). The device answers as the architecture does for an STE it
    /// cannot use: a C_BAD_STE event for the StreamID, and the stream is configured to abort.
    #[error("host rejected the configuration: {reason}")]
    Rejected {
        /// Why, for the trace.
        reason: String,
    },
    /// The host failed for a reason of its own (out of resources, ioctl error). The guest is
    /// not at fault: no event is recorded; the backend keeps the previous configuration
    /// installed (make-before-break) and the device retries at the next trigger.
    #[error("host failed to configure the stream: {reason}")]
    Failed {
        /// Why, for the trace.
        reason: String,
    },
}

/// The host side of an accelerated vSMMU, called by the device.
///
/// Calls are made with the device's command lock held (the `ctrl` lock of
/// [`crate::device`]), in guest command order, and are synchronous: a CMD_SYNC completes only
/// after the call for every forwarded command before it has returned. An implementation must
/// not call back into the device.
pub trait HostBackend: Send + Sync {
    /// Apply `cmds` (raw guest commands with the guest's StreamIDs, in guest order) on the host,
    /// in one call. `cmds.len()` never exceeds [`HostBackend::max_batch`].
    ///
    /// # Errors
    /// [`HostBatchError`] with the index of the first command not applied; the device then stops
    /// the guest queue at that command with CERROR_ILL.
    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<(), HostBatchError>;

    /// Install `cfg` for the stream the guest calls `sid`, make-before-break: the previous
    /// configuration stays in force until the new one is in place, and stays if this fails.
    ///
    /// # Errors
    /// [`HostStreamError::Rejected`] for a configuration the host cannot express (the guest sees
    /// C_BAD_STE and abort), [`HostStreamError::Failed`] for a host failure.
    fn configure_stream(
        &self,
        sid: StreamId,
        cfg: &HostStreamConfig,
    ) -> Result<(), HostStreamError>;

    /// Most commands per [`HostBackend::invalidate`] call (at least 1; the device clamps 0 to 1).
    fn max_batch(&self) -> usize {
        DEFAULT_HOST_BATCH
    }
}

/// Why [`SmmuV3::attach_host_stream`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostAttachError {
    /// No backend is installed ([`SmmuV3::set_host_backend`]).
    #[error("no host backend installed")]
    NoBackend,
    /// The StreamID is beyond IDR1.SIDSIZE.
    #[error("StreamID {0:#x} beyond IDR1.SIDSIZE")]
    OutOfRange(u32),
    /// The StreamID is already host-backed.
    #[error("StreamID {0:#x} is already host-backed")]
    AlreadyAttached(u32),
    /// The host failed to install the initial configuration; the stream was not attached.
    #[error("initial host configuration of StreamID {sid:#x} failed: {reason}")]
    Configure {
        /// The StreamID.
        sid: u32,
        /// The backend's reason.
        reason: String,
    },
}

/// What made the device (re)derive a host stream's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostCause {
    /// CFGI_STE, CFGI_STE_RANGE or CFGI_ALL covering the stream.
    Cfgi,
    /// A CR0.SMMUEN transition.
    Smmuen,
    /// A GBPA update while SMMUEN = 0.
    Gbpa,
    /// A system reset.
    Reset,
    /// A snapshot restore (every stream is sent again).
    Restore,
    /// [`SmmuV3::attach_host_stream`].
    Attach,
    /// [`SmmuV3::set_host_backend`] (every stream is sent again).
    Backend,
    /// The host rejected the derived configuration; abort instead.
    Rejected,
}

impl HostCause {
    /// Whether an STE found invalid now is reported to the guest as C_BAD_STE. Re-sending the
    /// same guest state to a host (restore, a new backend) does not report again what the guest
    /// was told when it programmed that state.
    pub const fn reports_bad_ste(self) -> bool {
        matches!(
            self,
            HostCause::Cfgi | HostCause::Smmuen | HostCause::Attach
        )
    }
}

impl fmt::Display for HostCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostCause::Cfgi => "CFGI",
            HostCause::Smmuen => "SMMUEN",
            HostCause::Gbpa => "GBPA",
            HostCause::Reset => "reset",
            HostCause::Restore => "restore",
            HostCause::Attach => "attach",
            HostCause::Backend => "backend installed",
            HostCause::Rejected => "host rejected the STE",
        })
    }
}

/// What [`SmmuV3::host_events_lost`] did to the guest event queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LostOutcome {
    /// EVENTQ_PROD.OVFLG toggled.
    Toggled,
    /// An overflow is already signalled and not yet acknowledged (OVACKFLG): nothing changed.
    Outstanding,
    /// The event queue is disabled (CR0.EVENTQEN or CR0.SMMUEN is 0): ignored.
    Disabled,
}

/// One host interaction, as the device trace shows it
/// ([`TraceRecord::Host`](crate::trace::TraceRecord::Host)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRecord {
    /// A batch of forwarded commands handed to [`HostBackend::invalidate`].
    Batch {
        /// Queue position (index + wrap) of the first command.
        first: u32,
        /// Number of commands.
        len: usize,
        /// `Err((index, reason))` if the host stopped at `index`.
        result: Result<(), (usize, String)>,
    },
    /// A stream configuration sent with [`HostBackend::configure_stream`].
    Stream {
        /// The guest StreamID.
        sid: u32,
        /// What was sent.
        config: HostStreamConfig,
        /// Why it was (re)derived.
        cause: HostCause,
        /// `Err(reason)` if the host did not install it.
        result: Result<(), String>,
    },
    /// A stream attached to or detached from the host.
    Attach {
        /// The guest StreamID.
        sid: u32,
        /// True for attach, false for detach.
        attached: bool,
    },
    /// A host event record handed to the guest event queue.
    Event {
        /// Event record word 0 (EventID, StreamID).
        w0: u64,
    },
    /// The host reported lost event records.
    Lost(LostOutcome),
}

impl fmt::Display for HostRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRecord::Batch { first, len, result } => {
                write!(f, "HOST batch #{first:#07x} len={len}")?;
                match result {
                    Ok(()) => f.write_str(" ok"),
                    Err((i, why)) => write!(f, " failed at {i}: {why}"),
                }
            }
            HostRecord::Stream {
                sid,
                config,
                cause,
                result,
            } => {
                write!(f, "HOST stream sid={sid:#x} {config} ({cause})")?;
                match result {
                    Ok(()) => f.write_str(" ok"),
                    Err(why) => write!(f, " failed: {why}"),
                }
            }
            HostRecord::Attach { sid, attached } => write!(
                f,
                "HOST {} sid={sid:#x}",
                if *attached { "attach" } else { "detach" }
            ),
            HostRecord::Event { w0 } => {
                write!(f, "HOST event id={:#04x} sid={:#x}", w0 & 0xff, w0 >> 32)
            }
            HostRecord::Lost(o) => write!(
                f,
                "HOST events lost: {}",
                match o {
                    LostOutcome::Toggled => "OVFLG toggled",
                    LostOutcome::Outstanding => "overflow already signalled",
                    LostOutcome::Disabled => "event queue disabled",
                }
            ),
        }
    }
}

struct BackendBox(Arc<dyn HostBackend>);

/// The device's host-backing state: the backend, the host-backed StreamIDs and the
/// configuration last installed for each.
#[derive(Default)]
pub(crate) struct HostState {
    backend: ArcSwapOption<BackendBox>,
    /// Host-backed StreamIDs, sorted (lock-free readers on the translation miss path).
    streams: ArcSwap<Vec<u32>>,
    /// The configuration last installed per host-backed stream (`None`: unknown, send the next
    /// one whatever it is). Changed under the device's `ctrl` lock only.
    installed: Mutex<BTreeMap<u32, Option<HostStreamConfig>>>,
}

impl fmt::Debug for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostState")
            .field("backend", &self.backend.load().is_some())
            .field("streams", &**self.streams.load())
            .finish()
    }
}

impl HostState {
    /// The installed backend, if any.
    pub(crate) fn backend(&self) -> Option<Arc<dyn HostBackend>> {
        self.backend.load().as_ref().map(|b| Arc::clone(&b.0))
    }

    /// True if `sid` is host-backed (lock-free).
    #[inline]
    pub(crate) fn is_backed(&self, sid: u32) -> bool {
        let s = self.streams.load();
        !s.is_empty() && s.binary_search(&sid).is_ok()
    }

    /// The host-backed StreamIDs in `first..=last`.
    pub(crate) fn in_range(&self, first: u32, last: u32) -> Vec<u32> {
        self.streams
            .load()
            .iter()
            .copied()
            .filter(|s| (first..=last).contains(s))
            .collect()
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Install (or with `None` remove) the host backend of host-backed streams.
    ///
    /// Installing a backend configures every already host-backed stream on it from the current
    /// state. Removing it leaves the registry as it is: the streams stay out of software
    /// translation and their configuration is no longer sent anywhere.
    pub fn set_host_backend(&self, backend: Option<Arc<dyn HostBackend>>) {
        let ctrl = lock(&self.ctrl);
        let has = backend.is_some();
        self.host
            .backend
            .store(backend.map(|b| Arc::new(BackendBox(b))));
        if has {
            for v in lock(&self.host.installed).values_mut() {
                *v = None;
            }
            self.host_configure_all_locked(&ctrl, HostCause::Backend);
        }
    }

    /// True if `sid` is host-backed (see [`SmmuV3::attach_host_stream`]).
    pub fn is_host_backed(&self, sid: StreamId) -> bool {
        self.host.is_backed(sid.0)
    }

    /// The host-backed StreamIDs, ascending.
    pub fn host_streams(&self) -> Vec<StreamId> {
        self.host
            .streams
            .load()
            .iter()
            .map(|&s| StreamId(s))
            .collect()
    }

    /// Make `sid` host-backed: from now on its DMA is the host's, its software translation fails
    /// with [`HOST_BACKED`], and its cached configuration and routes are dropped (IOTLB
    /// entries are tagged by VMID/ASID, shared with emulated streams, and unreachable without a
    /// route, so they stay). The stream is
    /// configured on the host at once from the current state (SMMUEN = 0: GBPA.ABORT ? abort :
    /// bypass; SMMUEN = 1: the guest's STE).
    ///
    /// # Errors
    /// [`HostAttachError`]: no backend, StreamID out of range or already attached, or the host
    /// failed the initial configuration (the stream then stays emulated).
    pub fn attach_host_stream(&self, sid: StreamId) -> Result<(), HostAttachError> {
        let sid = sid.0;
        let ctrl = lock(&self.ctrl);
        if self.host.backend.load().is_none() {
            return Err(HostAttachError::NoBackend);
        }
        let sidsize = u32::from(self.caps.idr1.sidsize());
        if sidsize < 32 && sid >> sidsize != 0 {
            return Err(HostAttachError::OutOfRange(sid));
        }
        if self.host.is_backed(sid) {
            return Err(HostAttachError::AlreadyAttached(sid));
        }
        self.host.streams.rcu(|s| {
            let mut v = Vec::clone(s);
            if let Err(i) = v.binary_search(&sid) {
                v.insert(i, sid);
            }
            v
        });
        // Registered first, then dropped: a translation that resolved the stream before the
        // registration cannot insert its route after this invalidation (routes are
        // generation-checked), and every later one sees the registration.
        self.config_invalidate_ste(sid);
        lock(&self.host.installed).insert(sid, None);
        self.trace(|| {
            crate::trace::TraceRecord::Host(HostRecord::Attach {
                sid,
                attached: true,
            })
        });
        if let Err(HostStreamError::Failed { reason }) =
            self.host_configure_locked(&ctrl, sid, HostCause::Attach)
        {
            self.host_unregister(sid);
            return Err(HostAttachError::Configure { sid, reason });
        }
        Ok(())
    }

    /// Return `sid` to software translation (hot detach). The host side of the device (its
    /// HWPT, vDEVICE) is the VMM's to tear down. Returns false if it was not host-backed.
    pub fn detach_host_stream(&self, sid: StreamId) -> bool {
        let _ctrl = lock(&self.ctrl);
        if !self.host.is_backed(sid.0) {
            return false;
        }
        self.host_unregister(sid.0);
        self.trace(|| {
            crate::trace::TraceRecord::Host(HostRecord::Attach {
                sid: sid.0,
                attached: false,
            })
        });
        true
    }

    fn host_unregister(&self, sid: u32) {
        self.host.streams.rcu(|s| {
            let mut v = Vec::clone(s);
            v.retain(|&x| x != sid);
            v
        });
        lock(&self.host.installed).remove(&sid);
        self.config_invalidate_ste(sid);
    }
}
