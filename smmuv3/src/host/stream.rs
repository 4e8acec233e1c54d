//! Host stream configuration: what each host-backed stream's guest configuration means for the
//! host, and when it is sent.
//!
//! Derivation ([`derive`], pure over the register state and guest memory):
//!
//! | State | [`HostStreamConfig`] |
//! |---|---|
//! | CR0.SMMUEN = 0 | GBPA.ABORT ? abort : bypass |
//! | STE.V = 0 | abort (policy: the architecture answers C_BAD_STE only when a transaction arrives, and the host raises that itself) |
//! | StreamID beyond the table, L1 descriptor invalid, STE fetch outside guest RAM | abort (no event: those events are transaction-driven too) |
//! | STE.Config = abort (0b0xx) | abort |
//! | STE.Config = bypass | bypass |
//! | STE.Config translating, accepted by the local decoder | translate with STE words 0-1 |
//! | STE rejected by the local decoder (C_BAD_STE) | C_BAD_STE event, abort |
//!
//! A configuration the backend rejects ([`HostStreamError::Rejected`], e.g. stage 2 on a
//! stage-1-only host) also records C_BAD_STE for the StreamID and installs abort: the guest sees
//! the architectural answer to an STE it may not use, not a command error. A configuration equal
//! to the one last installed is not sent again (no host object churn). C_BAD_STE is recorded
//! when the guest's own action exposes the STE (CFGI, SMMUEN, attach, see
//! [`HostCause::reports_bad_ste`]), not when the same state is sent again after a restore or
//! to a new backend.
//!
//! Triggers: CFGI_STE / CFGI_STE_RANGE / CFGI_ALL (the host-backed streams in range, at that
//! point in command order), CR0.SMMUEN changes, GBPA updates while SMMUEN = 0, reset, restore,
//! attach and backend installation.

use viommu_common::id::StreamId;

use super::{HostCause, HostRecord, HostStreamConfig, HostStreamError};
use crate::config::ste::StreamTable;
use crate::config::{ConfigError, StreamConfig};
use crate::device::{lock, CtrlState, GuestRam, SmmuV3};
use crate::event::{Event, EventSource};
use crate::spec::regs::{Cr0, Gbpa, StrtabBase, StrtabBaseCfg};
use crate::trace::TraceRecord;

/// The host configuration of `sid` under `ctrl`, and whether the local decoder rejected the
/// guest STE (record C_BAD_STE).
pub(crate) fn derive<B: vm_memory::GuestMemoryBackend + ?Sized>(
    ctrl: &CtrlState,
    caps: &crate::caps::Caps,
    mem: &B,
    sid: u32,
) -> (HostStreamConfig, bool) {
    if !Cr0::from_bits(ctrl.cr0).smmuen() {
        let cfg = if Gbpa::from_bits(ctrl.gbpa).abort() {
            HostStreamConfig::Abort
        } else {
            HostStreamConfig::Bypass
        };
        return (cfg, false);
    }
    let table = StreamTable::new(
        StrtabBase::from_bits(ctrl.strtab_base),
        StrtabBaseCfg::from_bits(ctrl.strtab_base_cfg),
        caps,
    );
    let ste = match table.fetch_ste(mem, sid) {
        Ok(s) => s,
        Err(_) => return (HostStreamConfig::Abort, false),
    };
    if !ste.w0.v() {
        return (HostStreamConfig::Abort, false);
    }
    match crate::config::ste::decode_ste(&ste, caps) {
        Ok(StreamConfig::Abort) => (HostStreamConfig::Abort, false),
        Ok(StreamConfig::Bypass(_)) => (HostStreamConfig::Bypass, false),
        Ok(StreamConfig::Translate(_)) => (
            HostStreamConfig::Translate {
                ste: [ste.w0.raw(), ste.w1.raw()],
            },
            false,
        ),
        Err(ConfigError::BadSte { .. }) | Err(_) => (HostStreamConfig::Abort, true),
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Re-derive and (if changed) send `sid`'s host configuration. Call with `ctrl` held.
    /// Without a backend this does nothing.
    ///
    /// # Errors
    /// The backend's [`HostStreamError::Failed`] (a rejection is answered here: C_BAD_STE and
    /// abort).
    pub(crate) fn host_configure_locked(
        &self,
        ctrl: &CtrlState,
        sid: u32,
        cause: HostCause,
    ) -> Result<(), HostStreamError> {
        let Some(backend) = self.host.backend() else {
            return Ok(());
        };
        let (cfg, bad) = {
            let ram = self.mem.ram();
            derive(ctrl, &self.caps, &*ram, sid)
        };
        if bad && cause.reports_bad_ste() {
            self.record(&Event::BadSte {
                src: EventSource::stream(sid),
            });
        }
        match self.host_send(&*backend, sid, cfg, cause) {
            Err(HostStreamError::Rejected { .. }) => {
                if cause.reports_bad_ste() {
                    self.record(&Event::BadSte {
                        src: EventSource::stream(sid),
                    });
                }
                // Abort is always expressible; a failure here is the host's own.
                match self.host_send(&*backend, sid, HostStreamConfig::Abort, HostCause::Rejected) {
                    Err(HostStreamError::Rejected { reason }) => {
                        Err(HostStreamError::Failed { reason })
                    }
                    r => r,
                }
            }
            r => r,
        }
    }

    /// Send `cfg` unless it is what `sid` already has installed.
    fn host_send(
        &self,
        backend: &dyn super::HostBackend,
        sid: u32,
        cfg: HostStreamConfig,
        cause: HostCause,
    ) -> Result<(), HostStreamError> {
        {
            let installed = lock(&self.host.installed);
            match installed.get(&sid) {
                // Detached meanwhile (or never attached): nothing to configure.
                None => return Ok(()),
                Some(Some(c)) if *c == cfg => return Ok(()),
                Some(_) => {}
            }
        }
        let result = backend.configure_stream(StreamId(sid), &cfg);
        if let Some(v) = lock(&self.host.installed).get_mut(&sid) {
            // On failure the backend kept the previous configuration, which we may not know:
            // forget it so that the next trigger sends again.
            *v = result.is_ok().then_some(cfg);
        }
        self.trace(|| {
            TraceRecord::Host(HostRecord::Stream {
                sid,
                config: cfg,
                cause,
                result: result.clone().map_err(|e| e.to_string()),
            })
        });
        result
    }

    /// Re-configure the host-backed streams in `first..=last` (CFGI_STE, CFGI_STE_RANGE,
    /// CFGI_ALL). Host failures are traced; they are not command errors.
    pub(crate) fn host_configure_range_locked(
        &self,
        ctrl: &CtrlState,
        first: u32,
        last: u32,
        cause: HostCause,
    ) {
        for sid in self.host.in_range(first, last) {
            let _ = self.host_configure_locked(ctrl, sid, cause);
        }
    }

    /// Re-configure every host-backed stream (SMMUEN and GBPA changes, reset, restore). Call
    /// with `ctrl` held, after the new register state is in place.
    pub(crate) fn host_configure_all_locked(&self, ctrl: &CtrlState, cause: HostCause) {
        if self.host.backend().is_none() {
            return;
        }
        self.host_configure_range_locked(ctrl, 0, u32::MAX, cause);
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// After a restore: what the host has installed is unknown, so every host-backed stream is
    /// sent its configuration from the restored state.
    pub(crate) fn host_restored_locked(&self, ctrl: &CtrlState) {
        for v in lock(&self.host.installed).values_mut() {
            *v = None;
        }
        self.host_configure_all_locked(ctrl, HostCause::Restore);
    }
}
