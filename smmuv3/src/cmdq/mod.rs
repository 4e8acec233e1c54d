//! The command-queue consumer (IHI 0070 §3.5, §4, §7.1).
//!
//! Commands are consumed synchronously, inside the MMIO access that makes work available:
//! a CMDQ_PROD write, CR0.CMDQEN 0 -> 1, and the GERRORN write that acknowledges a command
//! error. Each access consumes at most a bounded batch ([`SmmuV3::set_cmdq_batch_limit`],
//! default [`DEFAULT_CMDQ_BATCH`](crate::device::DEFAULT_CMDQ_BATCH)); when the batch limit
//! stops consumption with commands left, [`SmmuV3::has_pending_work`] is true and the VMM
//! continues with [`SmmuV3::process_pending`] (a read of CMDQ_CONS also consumes one batch, so a
//! driver polling CONS always makes progress).
//!
//! Per command: fetch the 16-byte entry at CONS (a fetch outside guest RAM is CERROR_ABT),
//! decode it ([`command`], malformed commands are CERROR_ILL), execute its effect ([`exec`]),
//! then advance CONS. On an error CONS stays at the failing command with CMDQ_CONS.ERR set,
//! GERROR.CMDQ_ERR toggles (and signals), and nothing is consumed until GERRORN acknowledges
//! it; consumption then resumes by re-fetching the entry at CONS (Linux has overwritten an
//! illegal command with a CMD_SYNC by then).

pub mod command;
pub mod exec;

use std::sync::atomic::Ordering;

use viommu_common::mem;

use crate::device::{CtrlState, GuestRam, SmmuV3};
use crate::queue::QueueGeometry;
use crate::regs::Queue;
use crate::spec::cmd::CmdEntry;
use crate::spec::regs::{CmdqCons, CmdqErr, Cr0, Gerror, QueueBase};
use crate::trace::TraceRecord;

/// The command queue's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CmdqState {
    /// CMDQ_BASE.
    pub base: u64,
    /// CMDQ_PROD (WR + wrap).
    pub prod: u32,
    /// CMDQ_CONS (RD + wrap, ERR \[30:24\]).
    pub cons: u32,
}

impl CmdqState {
    /// The queue geometry with LOG2SIZE clamped to `max_log2size` (IDR1.CMDQS).
    pub fn geometry(&self, max_log2size: u32) -> QueueGeometry {
        QueueGeometry::from_base(
            QueueBase::from_bits(self.base),
            max_log2size,
            CmdEntry::SIZE,
        )
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Consume commands from CONS towards PROD, at most one batch (see the module docs).
    pub(crate) fn consume_locked(&self, ctrl: &mut CtrlState) {
        if !Cr0::from_bits(ctrl.cr0).cmdqen() || self.cmdq_error_active() {
            self.set_work_pending(false);
            return;
        }
        let g = ctrl.cmdq.geometry(u32::from(self.caps.idr1.cmdqs()));
        let start = ctrl.cmdq.cons;
        let mut budget = self.cmdq_batch_limit();
        let mut pending = false;
        // Host-backed streams: forwarded invalidations batch up here (see crate::host::forward).
        let mut host = self.host_forwarder();
        // Checked once per batch: an untraced batch builds no trace records at all.
        let traced = self.tracing();
        loop {
            let pos = g.pos(ctrl.cmdq.cons);
            if g.is_empty(ctrl.cmdq.prod, pos) {
                break;
            }
            if budget == 0 {
                pending = true;
                break;
            }
            budget -= 1;
            let addr = g.entry_addr(pos);
            let entry = {
                let m = self.mem.ram();
                mem::read_obj::<CmdEntry, _>(&*m, addr)
            };
            let result = match (entry, host.as_mut()) {
                (Ok(entry), None) => self
                    .execute(pos, entry, traced)
                    .map_err(|(e, r)| (pos, e, r)),
                (Ok(entry), Some(h)) => self.host_execute(ctrl, h, pos, entry, traced),
                (Err(_), h) => {
                    let stop = (
                        pos,
                        CmdqErr::CERROR_ABT,
                        format!("command fetch at {addr:#x} is outside guest RAM"),
                    );
                    h.map_or(Ok(()), |h| self.host_flush(h)).and(Err(stop))
                }
            };
            self.counters.commands.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(()) => ctrl.cmdq.cons = g.next(pos),
                Err(stop) => return self.cmdq_stop_locked(ctrl, start, stop),
            }
        }
        if let Some(Err(stop)) = host.as_mut().map(|h| self.host_flush(h)) {
            return self.cmdq_stop_locked(ctrl, start, stop);
        }
        self.trace_cons(start, ctrl.cmdq.cons);
        self.set_work_pending(pending);
    }

    /// Stop the queue on a command error: CONS at the failing command with CMDQ_CONS.ERR, and
    /// GERROR.CMDQ_ERR raised; nothing is consumed until GERRORN acknowledges it.
    fn cmdq_stop_locked(
        &self,
        ctrl: &mut CtrlState,
        start: u32,
        (pos, err, reason): (u32, CmdqErr, String),
    ) {
        ctrl.cmdq.cons = CmdqCons::new()
            .with_wrap_index(pos)
            .with_err(err)
            .into_bits();
        self.trace(|| TraceRecord::CommandError { pos, err, reason });
        self.trace_cons(start, ctrl.cmdq.cons);
        self.raise_gerror(Gerror::new().with_cmdq_err(true).into_bits());
        self.set_work_pending(false);
    }

    fn trace_cons(&self, old: u32, new: u32) {
        if old != new {
            self.trace(|| TraceRecord::Cons {
                queue: Queue::Cmdq,
                old,
                new,
            });
        }
    }
}
