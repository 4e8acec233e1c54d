//! The stall model (IHI 0070 §3.12.2, §4.7.1, §4.7.2).
//!
//! With IDR0.STALL_MODEL = 0 or 2 and a stream configured to stall (CD.S = 1 for stage-1 faults,
//! STE.S2S = 1 for stage-2 faults), a transaction that takes a *Translation-related* fault
//! (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION; §3.12: every other fault terminates) is
//! held instead of terminated. Its event record has Stall = 1 and an STAG (recorded whatever
//! CD.R / STE.S2R say), and the DMA caller gets
//! `DmaFault { kind: FaultKind::Stalled, stall_tag: Some(stag), .. }`.
//!
//! # How a VMM's device emulation waits
//!
//! The held transaction lives in a bounded table inside the device. Any thread may ask about it
//! without touching the vCPU's register path:
//!
//! - [`SmmuV3::stall_status`]: poll, never blocks;
//! - [`SmmuV3::wait_stall`]: block (Condvar) up to a timeout.
//!
//! Both return [`StallStatus::Pending`] until the guest answers, then once
//! [`StallStatus::Resolved`] with the final result (the entry is collected by that call).
//! CMD_RESUME(Retry) re-translates the transaction "as though it had just arrived" (§4.7.1): a
//! guest that fixed its page table gets `Resolved { how: Retried, result: Ok(mapping) }`; if the
//! retry stalls again, the status follows the new stall transparently. CMD_RESUME(Abort),
//! CMD_STALL_TERM and an SMMUEN 1 -> 0 transition give `Err(original fault)`; CMD_RESUME with
//! Ac = 0, Ab = 0 completes it RAZ/WI ([`Resolution::RazWi`]) unless IDR0.TERM_MODEL = 1.
//!
//! # Policies
//!
//! - **Capacity** (§3.12.2.3: IMPLEMENTATION SPECIFIC): IDR5.STALL_MAX entries, or
//!   [`DEFAULT_STALL_CAPACITY`] when STALL_MAX = 0. A fault that finds every entry holding a
//!   transaction is terminated as if the stream did not stall (Stall = 0, recorded per CD.R /
//!   STE.S2R), which §3.12 permits ("treat a stalling configuration as terminating"). Resolved
//!   results that no caller collected are evicted oldest-first to make room, so a caller that
//!   never asks cannot exhaust the table.
//! - **STAG**: a 16-bit counter, skipping values in use; a value is not reused while its entry
//!   exists (§3.12.2). RESUME matches StreamID *and* STAG; an unknown STAG or a STAG of another
//!   stream is a no-op (§4.7.1).
//! - **Event queue not writable** (full, EVENTQEN = 0): §3.12.2 says the transaction is retried
//!   as though it had just arrived when the queue is next writable, with a new record. The
//!   transaction waits (status `Pending`, STAG not visible to the guest) and is retried when
//!   EVENTQ_CONS is written or EVENTQEN is set; no overflow is signalled because no record is
//!   lost. An external abort writing the record (queue outside RAM) raises EVENTQ_ABT_ERR and
//!   terminates the transaction.
//! - **CONSTRAINED UNPREDICTABLE** (§4.7.1): a RESUME for a transaction whose record is not yet
//!   visible has no effect.
//! - **Reconfiguration**: CFGI_STE does not touch held transactions (the architecture defines no
//!   such effect); a retry uses the new configuration, so an abort STE then RESUME(Retry)
//!   terminates it (`STE_ABORT`), and STALL_TERM terminates every stall of the stream (§4.7.2).
//!   SMMUEN 1 -> 0 and reset terminate every held transaction (§3.12.2: "translation is disabled
//!   by clearing SMMUEN").
//! - Faults taken while fetching a CD through stage 2 are terminated, not stalled (§3.12.2.3
//!   allows either).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use viommu_common::access::DmaRequest;
use viommu_common::id::StreamId;
use viommu_common::traits::{DmaFault, DmaMapping, FaultKind};
use viommu_common::walk::{Stage, WalkFault, WalkFaultKind};

use crate::cmdq::command::ResumeAction;
use crate::device::{lock, GuestRam, SmmuV3};
use crate::event::{Event, EventAccess, EventSource};
use crate::evtq::Produced;
use crate::regs::IrqSource;
use crate::spec::regs::{Gerror, QueueIndex};
use crate::trace::{Effect, Effects, StallOutcome, TraceRecord};

/// Stall table size when IDR5.STALL_MAX is 0.
pub const DEFAULT_STALL_CAPACITY: usize = 64;

/// How a stalled transaction was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// CMD_RESUME(Retry): re-translated; the result is that translation.
    Retried,
    /// Terminated with an abort: CMD_RESUME(Abort), CMD_STALL_TERM, SMMUEN 1 -> 0, reset, or
    /// CMD_RESUME(Terminate) with IDR0.TERM_MODEL = 1. The result is the original fault.
    Aborted,
    /// CMD_RESUME(Terminate, Ab = 0): completes with RAZ/WI semantics (reads return zero,
    /// writes are ignored). The result carries the original fault for information.
    RazWi,
}

/// What the DMA caller learns about a stalled transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StallStatus {
    /// Still held (waiting for the guest, or for the event queue to become writable).
    Pending,
    /// Completed; reported once (the entry is collected by the call that returns this).
    Resolved {
        /// How.
        how: Resolution,
        /// The mapping (a successful retry) or the fault.
        result: Result<DmaMapping, DmaFault>,
    },
    /// No such stall for this stream: never existed, already collected or evicted.
    Unknown,
}

/// A stalled transaction's progress, as saved state ([`StallState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeldProgress {
    /// Record written; waiting for CMD_RESUME or CMD_STALL_TERM.
    Held,
    /// Record not written yet: retried as though it had just arrived when the event queue is
    /// next writable. A transaction being retried at the moment of the save (the VM was not
    /// paused) is saved this way too, so it is retried rather than lost.
    AwaitingQueue,
    /// Retried and stalled again under this STAG (its endpoint follows the chain).
    Forward(u16),
    /// Completed; the result has not been collected by the endpoint yet.
    Done {
        /// How.
        how: Resolution,
        /// The mapping (a successful retry) or the fault.
        result: Result<DmaMapping, DmaFault>,
    },
}

/// An entry of the stall table: a held transaction, or a completed one whose endpoint has not
/// collected the result yet. Carries everything a RESUME needs after a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeldTransaction {
    /// Stall tag reported in the event record.
    pub stag: u16,
    /// The original request (re-translated by CMD_RESUME(Retry)).
    pub req: DmaRequest,
    /// The fault as a terminated transaction reports it (CMD_RESUME(Abort), CMD_STALL_TERM).
    pub fault: DmaFault,
    /// Where it stands.
    pub progress: HeldProgress,
}

/// The stall table as plain data (see [`crate::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StallState {
    /// The next STAG the allocator tries.
    pub next_stag: u16,
    /// The entries, oldest first (the order eviction and queue retries follow).
    pub entries: Vec<HeldTransaction>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Record written; waiting for RESUME / STALL_TERM.
    Held,
    /// Record not writable yet; retried when the event queue next becomes writable.
    AwaitingQueue,
    /// Being retried right now (by CMD_RESUME or because the queue became writable): still
    /// pending for its waiter; further RESUMEs and STALL_TERM no longer affect it.
    Retrying,
    /// Completed.
    Done(Resolution, Result<DmaMapping, DmaFault>),
    /// Retried and stalled again under this STAG.
    Forward(u16),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    sid: u32,
    req: DmaRequest,
    /// The fault as a terminated transaction reports it (no stall tag).
    fault: DmaFault,
    state: State,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<u16, Entry>,
    next_stag: u16,
    seq: u64,
}

/// The bounded table of stalled transactions and the Condvar waiters sleep on.
#[derive(Debug)]
pub(crate) struct StallTable {
    inner: Mutex<Inner>,
    cv: Condvar,
    capacity: usize,
}

impl StallTable {
    /// A table of `stall_max` entries ([`DEFAULT_STALL_CAPACITY`] for 0).
    pub(crate) fn new(stall_max: u16) -> Self {
        let capacity = if stall_max == 0 {
            DEFAULT_STALL_CAPACITY
        } else {
            usize::from(stall_max)
        };
        Self {
            inner: Mutex::new(Inner::default()),
            cv: Condvar::new(),
            capacity,
        }
    }

    /// Number of transactions currently held (not yet resolved).
    pub(crate) fn held(&self) -> usize {
        lock(&self.inner)
            .entries
            .values()
            .filter(|e| {
                matches!(
                    e.state,
                    State::Held | State::AwaitingQueue | State::Retrying
                )
            })
            .count()
    }
}

impl StallTable {
    /// The table as plain data.
    fn save(&self) -> StallState {
        let t = lock(&self.inner);
        let mut v: Vec<_> = t
            .entries
            .iter()
            .map(|(s, e)| {
                let progress = match e.state {
                    State::Held => HeldProgress::Held,
                    State::AwaitingQueue | State::Retrying => HeldProgress::AwaitingQueue,
                    State::Forward(n) => HeldProgress::Forward(n),
                    State::Done(how, result) => HeldProgress::Done { how, result },
                };
                (
                    e.seq,
                    HeldTransaction {
                        stag: *s,
                        req: e.req,
                        fault: e.fault,
                        progress,
                    },
                )
            })
            .collect();
        v.sort_unstable_by_key(|(seq, h)| (*seq, h.stag));
        StallState {
            next_stag: t.next_stag,
            entries: v.into_iter().map(|(_, h)| h).collect(),
        }
    }

    /// Why `s` cannot be this table's state: more entries than the table holds, or a STAG
    /// used twice.
    pub(crate) fn check(&self, s: &StallState) -> Result<(), String> {
        if s.entries.len() > self.capacity {
            return Err(format!(
                "{} stalled transactions, but the stall table holds {}",
                s.entries.len(),
                self.capacity
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &s.entries {
            if !seen.insert(e.stag) {
                return Err(format!("STAG {:#x} is used twice", e.stag));
            }
        }
        Ok(())
    }

    /// Replace the table with `s` (already [checked](Self::check)). Entries this table held
    /// are dropped: their waiters see [`StallStatus::Unknown`] (restore into a fresh device).
    pub(crate) fn restore(&self, s: &StallState) {
        let mut t = lock(&self.inner);
        t.entries.clear();
        t.seq = 0;
        for h in &s.entries {
            let state = match h.progress {
                HeldProgress::Held => State::Held,
                HeldProgress::AwaitingQueue => State::AwaitingQueue,
                HeldProgress::Forward(n) => State::Forward(n),
                HeldProgress::Done { how, result } => State::Done(how, result),
            };
            t.insert(h.stag, &h.req, h.fault, state);
        }
        t.next_stag = s.next_stag;
        drop(t);
        self.cv.notify_all();
    }
}

impl Inner {
    /// Make room for one entry and allocate a STAG, or `None` when every entry holds a
    /// transaction.
    fn alloc(&mut self, capacity: usize) -> Option<u16> {
        if self.entries.len() >= capacity {
            // Evict the oldest completed entry; a retry chain only once its end is completed
            // (so a waiter following it never loses track).
            let oldest = self
                .entries
                .iter()
                .filter(|(s, _)| self.settled(**s))
                .min_by_key(|(_, e)| e.seq)
                .map(|(s, _)| *s)?;
            self.entries.remove(&oldest);
        }
        // At most 65535 entries exist (capacity <= STALL_MAX), so a free STAG is found.
        for _ in 0..=u16::MAX as usize {
            let s = self.next_stag;
            self.next_stag = self.next_stag.wrapping_add(1);
            if !self.entries.contains_key(&s) {
                return Some(s);
            }
        }
        None
    }

    /// `stag` is completed: Done, or retried into a chain that ends Done (or was collected).
    fn settled(&self, stag: u16) -> bool {
        let mut cur = stag;
        for _ in 0..=self.entries.len() {
            match self.entries.get(&cur).map(|e| e.state) {
                None | Some(State::Done(..)) => return true,
                Some(State::Held | State::AwaitingQueue | State::Retrying) => return false,
                Some(State::Forward(next)) => cur = next,
            }
        }
        false
    }

    fn insert(&mut self, stag: u16, req: &DmaRequest, fault: DmaFault, state: State) {
        self.seq += 1;
        self.entries.insert(
            stag,
            Entry {
                sid: req.stream.0,
                req: *req,
                fault,
                state,
                seq: self.seq,
            },
        );
    }

    fn resolve(&mut self, stag: u16, state: State) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(&stag) {
            e.state = state;
            e.seq = seq;
        }
    }

    /// The status of `(sid, stag)`, following retries that stalled again; collects resolved
    /// entries.
    fn status(&mut self, sid: u32, stag: u16, hops: usize) -> StallStatus {
        let mut chain = Vec::new();
        let mut cur = stag;
        for _ in 0..=hops {
            let Some(e) = self.entries.get(&cur) else {
                return StallStatus::Unknown;
            };
            if e.sid != sid {
                return StallStatus::Unknown;
            }
            match e.state {
                State::Held | State::AwaitingQueue | State::Retrying => {
                    return StallStatus::Pending
                }
                State::Forward(next) => {
                    chain.push(cur);
                    cur = next;
                }
                State::Done(how, result) => {
                    chain.push(cur);
                    for s in chain {
                        self.entries.remove(&s);
                    }
                    return StallStatus::Resolved { how, result };
                }
            }
        }
        StallStatus::Unknown
    }
}

/// Translation-related faults, the only ones that may stall (IHI 0070 §3.12).
fn may_stall(f: &WalkFault) -> bool {
    matches!(
        f.kind,
        WalkFaultKind::Translation
            | WalkFaultKind::AddressSize
            | WalkFaultKind::AccessFlag
            | WalkFaultKind::Permission
    )
}

/// Whether the stream's configuration stalls this walk fault: CD.S for stage 1, STE.S2S for
/// stage 2.
pub(crate) fn stalls_on(f: &WalkFault, s1_stall: bool, s2_stall: bool) -> bool {
    may_stall(f)
        && match f.stage {
            Stage::S1 => s1_stall,
            Stage::S2 => s2_stall,
        }
}

enum Written {
    Yes,
    NotWritable,
    Abort,
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Hold a transaction that took a stalling fault `f`. `None` when the table is full (the
    /// caller terminates it as a non-stalling fault).
    pub(crate) fn stall_transaction(
        &self,
        req: &DmaRequest,
        f: &WalkFault,
        access: EventAccess,
    ) -> Option<DmaFault> {
        let src = EventSource::of(req);
        let plain = Event::from_walk_fault(f, src, access, None);
        let fault = DmaFault {
            kind: plain.fault_kind(),
            event: plain.fault_id().into(),
            addr: req.addr,
            stall_tag: None,
        };
        let mut t = lock(&self.stalls.inner);
        let stag = t.alloc(self.stalls.capacity)?;
        self.counters
            .faults
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ev = Event::from_walk_fault(f, src, access, Some(stag));
        match self.write_stall_record(&ev) {
            Written::Yes => t.insert(stag, req, fault, State::Held),
            Written::NotWritable => {
                self.trace(|| TraceRecord::EventDropped {
                    event: ev.to_string(),
                    reason: "event queue not writable: transaction waits, retried when it is \
                             (IHI 0070 §3.12.2)"
                        .into(),
                });
                t.insert(stag, req, fault, State::AwaitingQueue);
            }
            Written::Abort => return Some(fault),
        }
        Some(DmaFault {
            kind: FaultKind::Stalled,
            event: fault.event,
            addr: req.addr,
            stall_tag: Some(stag),
        })
    }

    /// Write a stall record without dropping it: a full or disabled queue is "not writable".
    fn write_stall_record(&self, ev: &Event) -> Written {
        let entry = ev.encode();
        let bytes: [u8; 32] = zerocopy::transmute!(entry);
        let max = u32::from(self.caps.idr1.eventqs());
        let produced = {
            let mut q = lock(&self.evtq);
            if !q.enabled || q.regs.geometry(max).is_full(q.regs.prod, q.regs.cons) {
                return Written::NotWritable;
            }
            let mem = self.mem.ram();
            q.regs.produce(&*mem, max, &bytes)
        };
        match produced {
            Produced::Written { old_prod, .. } => {
                self.counters
                    .events
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.trace(|| TraceRecord::Event {
                    pos: QueueIndex::from_bits(old_prod).wrap_index(),
                    event: ev.to_string(),
                });
                self.signal(IrqSource::Eventq);
                Written::Yes
            }
            Produced::Overflow { .. } => Written::NotWritable,
            Produced::Abort { addr } => {
                self.counters
                    .events_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: ev.to_string(),
                    reason: format!("write abort at {addr:#x}; stalled transaction terminated"),
                });
                self.raise_gerror(Gerror::new().with_eventq_abt_err(true).into_bits());
                Written::Abort
            }
        }
    }

    /// Retry `stag`'s transaction now and record the outcome (call without the table lock).
    fn retry_stalled(&self, stag: u16, req: &DmaRequest) -> StallOutcome {
        let result = crate::translate::translate_fresh(self, req);
        let mut t = lock(&self.stalls.inner);
        let outcome = match result {
            Err(DmaFault {
                kind: FaultKind::Stalled,
                stall_tag: Some(new),
                ..
            }) => {
                t.resolve(stag, State::Forward(new));
                StallOutcome::StalledAgain { stag, new }
            }
            r => {
                t.resolve(stag, State::Done(Resolution::Retried, r));
                StallOutcome::Retried {
                    stag,
                    result: r.map(|m| m.output).map_err(|f| f.event),
                }
            }
        };
        drop(t);
        self.stalls.cv.notify_all();
        outcome
    }

    /// CMD_RESUME(SID, STAG, action) (§4.7.1).
    pub(crate) fn cmd_resume(
        &self,
        sid: StreamId,
        stag: u16,
        action: ResumeAction,
        fx: &mut Effects,
    ) {
        let req = {
            let mut t = lock(&self.stalls.inner);
            let Some(e) = t.entries.get(&stag).copied() else {
                fx.push(|| Effect::Nothing("no stalled transaction with this STAG"));
                return;
            };
            if e.sid != sid.0 {
                fx.push(|| Effect::Nothing("STAG belongs to another StreamID"));
                return;
            }
            match e.state {
                State::Held => {}
                State::AwaitingQueue => {
                    // CONSTRAINED UNPREDICTABLE (§4.7.1): its record is not visible yet.
                    fx.push(|| Effect::Nothing("stall record not yet visible"));
                    return;
                }
                _ => {
                    fx.push(|| Effect::Nothing("transaction already completed"));
                    return;
                }
            }
            let how = match action {
                ResumeAction::Retry => None,
                ResumeAction::Abort => Some(Resolution::Aborted),
                ResumeAction::Terminate if self.caps.term_model() => Some(Resolution::Aborted),
                ResumeAction::Terminate => Some(Resolution::RazWi),
            };
            if let Some(how) = how {
                t.resolve(stag, State::Done(how, Err(e.fault)));
                drop(t);
                self.stalls.cv.notify_all();
                fx.push(|| {
                    Effect::Stall(StallOutcome::Terminated {
                        stag,
                        raz_wi: how == Resolution::RazWi,
                    })
                });
                return;
            }
            // Nothing else completes it while it is retried; its waiter still sees it pending.
            t.resolve(stag, State::Retrying);
            e.req
        };
        let outcome = self.retry_stalled(stag, &req);
        fx.push(|| Effect::Stall(outcome));
    }

    /// CMD_STALL_TERM(SID): terminate every stalled transaction of the stream (§4.7.2).
    pub(crate) fn cmd_stall_term(&self, sid: StreamId, fx: &mut Effects) {
        let count = self.terminate_stalls(Some(sid.0));
        if count == 0 {
            fx.push(|| Effect::Nothing("no stalled transactions"));
        } else {
            fx.push(|| Effect::Stall(StallOutcome::TerminatedAll { count }));
        }
    }

    /// Abort every held transaction of `sid` (all streams for `None`); returns how many.
    pub(crate) fn terminate_stalls(&self, sid: Option<u32>) -> usize {
        let mut t = lock(&self.stalls.inner);
        let victims: Vec<(u16, DmaFault)> = t
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, State::Held | State::AwaitingQueue)
                    && sid.is_none_or(|s| s == e.sid)
            })
            .map(|(s, e)| (*s, e.fault))
            .collect();
        for (stag, fault) in &victims {
            t.resolve(*stag, State::Done(Resolution::Aborted, Err(*fault)));
        }
        drop(t);
        if !victims.is_empty() {
            self.stalls.cv.notify_all();
        }
        victims.len()
    }

    /// The event queue may have become writable (EVENTQ_CONS written, EVENTQEN set): retry
    /// the transactions whose stall record could not be written (§3.12.2). Call with no lock
    /// but `ctrl` held.
    pub(crate) fn stall_queue_writable(&self) {
        // Oldest first, one at a time, only while the queue can take a record (a waiting
        // transaction keeps its STAG until then); bounded by the table size.
        for _ in 0..self.stalls.capacity {
            if !self.event_queue_writable() {
                return;
            }
            let next = {
                let mut t = lock(&self.stalls.inner);
                let oldest = t
                    .entries
                    .iter()
                    .filter(|(_, e)| matches!(e.state, State::AwaitingQueue))
                    .min_by_key(|(_, e)| e.seq)
                    .map(|(s, e)| (*s, e.req));
                if let Some((s, _)) = oldest {
                    // Nothing else completes it while it is retried.
                    t.resolve(s, State::Retrying);
                }
                oldest
            };
            let Some((stag, req)) = next else {
                return;
            };
            self.retry_stalled(stag, &req);
        }
    }

    /// The event queue is enabled and has room for a record.
    fn event_queue_writable(&self) -> bool {
        let max = u32::from(self.caps.idr1.eventqs());
        let q = lock(&self.evtq);
        q.enabled && !q.regs.geometry(max).is_full(q.regs.prod, q.regs.cons)
    }

    /// Poll a stalled transaction (never blocks). A `Resolved` answer is given once.
    pub fn stall_status(&self, stream: StreamId, stag: u16) -> StallStatus {
        lock(&self.stalls.inner).status(stream.0, stag, self.stalls.capacity)
    }

    /// Wait up to `timeout` for a stalled transaction to be resolved by the guest. Blocks only
    /// the calling (device) thread; register writes from vCPUs proceed meanwhile. Do not hold a
    /// [`DmaPin`](viommu_common::traits::DmaPin) while waiting: a CMD_SYNC the guest issues
    /// before its RESUME would wait for that pin.
    pub fn wait_stall(&self, stream: StreamId, stag: u16, timeout: Duration) -> StallStatus {
        let deadline = Instant::now() + timeout;
        let mut t = lock(&self.stalls.inner);
        loop {
            let s = t.status(stream.0, stag, self.stalls.capacity);
            if s != StallStatus::Pending {
                return s;
            }
            let now = Instant::now();
            if now >= deadline {
                return s;
            }
            t = match self.stalls.cv.wait_timeout(t, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Number of transactions currently stalled (held or waiting for the event queue).
    pub fn stalled_transactions(&self) -> usize {
        self.stalls.held()
    }

    /// The stall table's capacity (IDR5.STALL_MAX, or [`DEFAULT_STALL_CAPACITY`]).
    pub fn stall_capacity(&self) -> usize {
        self.stalls.capacity
    }

    /// The stall table as plain data, for [`crate::device::SmmuV3State`].
    pub(crate) fn stall_state(&self) -> StallState {
        self.stalls.save()
    }
}
