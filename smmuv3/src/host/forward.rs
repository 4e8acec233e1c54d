//! Invalidation forwarding during command consumption.
//!
//! Every command is applied to the local model first. Then:
//!
//! | Command | Host |
//! |---|---|
//! | TLBI_NH_ALL, TLBI_NH_ASID, TLBI_NH_VA, TLBI_NH_VAA, TLBI_NSNH_ALL | always forwarded (ASIDs are shared by emulated and host-backed streams) |
//! | CFGI_CD, CFGI_CD_ALL, ATC_INV | forwarded when their StreamID is host-backed (the kernel refuses an unknown vSID) |
//! | CFGI_STE, CFGI_STE_RANGE, CFGI_ALL | never forwarded: the host-backed streams in range are re-configured ([`super::stream`]) |
//! | CMD_SYNC and everything else | local only |
//!
//! Forwarded commands (the raw guest entry) collect in one pending batch, which reaches the
//! host in one [`HostBackend::invalidate`] call:
//!
//! - before any command that is not forwarded is executed (so CMD_SYNC completes only after
//!   the host call for every command before it has returned, and a CFGI_STE sees earlier
//!   invalidations done);
//! - when it holds [`HostBackend::max_batch`] commands;
//! - at the end of a consume step (queue empty, batch limit), and before a command error is
//!   reported.
//!
//! A batch the host stops at index `i` stops the queue exactly like a local command error: CONS
//! at that command's position, CMDQ_CONS.ERR = CERROR_ILL, GERROR.CMDQ_ERR. The commands before
//! it have taken effect on both sides; those after it in the batch were applied locally and are
//! consumed again after GERRORN, which is harmless for invalidations.

use std::sync::Arc;

use super::{HostBackend, HostRecord};
use crate::cmdq::command::Command;
use crate::device::{CtrlState, GuestRam, SmmuV3};
use crate::spec::cmd::CmdEntry;
use crate::spec::regs::CmdqErr;
use crate::trace::TraceRecord;

/// A command error stopping the queue: the queue position CONS stays at, CMDQ_CONS.ERR and why.
pub(crate) type CmdStop = (u32, CmdqErr, String);

/// What the host needs of a command, besides the local effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Joins the pending batch.
    Forward,
    /// Re-configures the host-backed streams in `first..=last` after the local effect.
    Streams(u32, u32),
    /// Local only.
    Local,
}

/// The pending batch of one consume step.
pub(crate) struct Forwarder {
    backend: Arc<dyn HostBackend>,
    max: usize,
    cmds: Vec<CmdEntry>,
    pos: Vec<u32>,
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// The forwarder of a consume step: `None` when no backend is installed (then the consumer
    /// runs exactly as without host-backed streams).
    #[inline]
    pub(crate) fn host_forwarder(&self) -> Option<Forwarder> {
        let backend = self.host.backend()?;
        let max = backend.max_batch().max(1);
        Some(Forwarder {
            backend,
            max,
            cmds: Vec::new(),
            pos: Vec::new(),
        })
    }

    fn host_class(&self, entry: &CmdEntry) -> Class {
        let Ok(cmd) = Command::decode(&entry.words(), &self.caps) else {
            return Class::Local;
        };
        match cmd {
            Command::TlbiNhAll { .. }
            | Command::TlbiNhAsid { .. }
            | Command::TlbiNhVa { .. }
            | Command::TlbiNhVaa { .. }
            | Command::TlbiNsnhAll => Class::Forward,
            Command::CfgiCd { sid, .. }
            | Command::CfgiCdAll { sid }
            | Command::AtcInv { sid, .. } => {
                if self.host.is_backed(sid.0) {
                    Class::Forward
                } else {
                    Class::Local
                }
            }
            Command::CfgiSte { sid, .. } => Class::Streams(sid.0, sid.0),
            Command::CfgiSteRange { .. } | Command::CfgiAll => {
                let (first, last) = cmd.cfgi_sid_range().unwrap_or((0, u32::MAX));
                Class::Streams(first, last)
            }
            _ => Class::Local,
        }
    }

    /// Execute the command at queue position `pos` with forwarding (see the module docs).
    ///
    /// # Errors
    /// Where the queue stops: this command's local error, or an earlier forwarded command the
    /// host did not apply.
    pub(crate) fn host_execute(
        &self,
        ctrl: &CtrlState,
        f: &mut Forwarder,
        pos: u32,
        entry: CmdEntry,
        traced: bool,
    ) -> Result<(), CmdStop> {
        let class = self.host_class(&entry);
        if class != Class::Forward {
            self.host_flush(f)?;
        }
        if let Err((err, reason)) = self.execute(pos, entry, traced) {
            // Only a forwarded command can have a batch pending here; it goes first.
            self.host_flush(f)?;
            return Err((pos, err, reason));
        }
        match class {
            Class::Forward => {
                f.cmds.push(entry);
                f.pos.push(pos);
                if f.cmds.len() >= f.max {
                    self.host_flush(f)?;
                }
            }
            Class::Streams(first, last) => {
                self.host_configure_range_locked(ctrl, first, last, super::HostCause::Cfgi);
            }
            Class::Local => {}
        }
        Ok(())
    }

    /// Send the pending batch, if any, in one host call.
    ///
    /// # Errors
    /// CERROR_ILL at the position of the first command the host did not apply.
    pub(crate) fn host_flush(&self, f: &mut Forwarder) -> Result<(), CmdStop> {
        if f.cmds.is_empty() {
            return Ok(());
        }
        let result = f.backend.invalidate(&f.cmds);
        let first = f.pos[0];
        let len = f.cmds.len();
        let stop = result.as_ref().err().map(|e| {
            // An index beyond the batch is a backend bug: stop at the last command.
            let i = e.index.min(len - 1);
            (i, e.reason.clone())
        });
        self.trace(|| {
            TraceRecord::Host(HostRecord::Batch {
                first,
                len,
                result: stop.clone().map_or(Ok(()), Err),
            })
        });
        let out = match stop {
            None => Ok(()),
            Some((i, reason)) => Err((
                f.pos[i],
                CmdqErr::CERROR_ILL,
                format!("host did not apply the forwarded command: {reason}"),
            )),
        };
        f.cmds.clear();
        f.pos.clear();
        out
    }
}
