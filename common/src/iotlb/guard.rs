//! Read-side guards for translations in use: the IOTLB half of "translate and use the result
//! under one guard" and of CMD_SYNC's completion rule that a TLB invalidation
//! is complete only once transactions that used the old translation have completed.
//!
//! A DMA path that holds a [`TranslationGuard`] from before its lookup (or walk) until its memory
//! access is done lets [`Iotlb::synchronize`] wait for it: `synchronize` returns only when every
//! guard that was live when it started has been dropped. A device calls it after the
//! invalidations of a command batch and before completing the CMD_SYNC.
//!
//! Algorithm (a sleepable-RCU grace period built from safe atomics): a global *phase* counter;
//! each pin increments a counter of the phase's parity in the calling thread's own stripe (so
//! readers on different threads share no written cache line), then issues a full fence and
//! re-reads the phase, retrying in the new phase if it moved. `synchronize` flips the phase and
//! waits until the old parity's counters of every stripe are zero.
//!
//! Why it is enough: pin = {increment (SeqCst RMW); re-read phase (SeqCst)} before its lookup;
//! synchronize = {invalidation; flip phase (SeqCst RMW); read counters (SeqCst)}. If the reader's
//! re-read saw the old phase, its increment precedes the flip in the total order, so the wait
//! sees it and lasts until the guard drops. If the re-read saw the new phase, the reader moves to
//! the new phase, and its lookup follows the flip and therefore the invalidation: it cannot see a
//! covered entry. Readers that saw the old phase but incremented late undo and retry, so they
//! delay `synchronize` only transiently; new readers never do.
//!
//! Cost: one uncontended locked RMW on the thread's own cache line per pin (a few ns), so it is
//! opt-in and separate from [`Iotlb::lookup`], which stays write-free.

use crate::sync::{fence, AtomicU64, Mutex, Ordering};
use std::marker::PhantomData;

use crossbeam::utils::CachePadded;

use super::Iotlb;

/// Single-owner pin stripes (as many as the statistics stripes; threads beyond use `overflow`).
const STRIPES: usize = 64;

/// Per-phase-parity counts of live guards.
type Counts = [AtomicU64; 2];

/// The pin counters of one table.
#[derive(Debug)]
pub(super) struct Pins {
    phase: CachePadded<AtomicU64>,
    stripes: Box<[CachePadded<Counts>]>,
    /// Shared by threads without a stripe (exact, but contended).
    overflow: CachePadded<Counts>,
    /// Serialises `synchronize` callers (each flip must wait out its own old phase).
    sync: Mutex<()>,
}

impl Pins {
    pub(super) fn new() -> Self {
        Self {
            phase: CachePadded::new(AtomicU64::new(0)),
            stripes: (0..STRIPES)
                .map(|_| CachePadded::new(Counts::default()))
                .collect(),
            overflow: CachePadded::new(Counts::default()),
            sync: Mutex::new(()),
        }
    }

    /// The calling thread's counters.
    fn counts(&self) -> &Counts {
        self.stripes
            .get(super::stats::thread_index())
            .map_or(&self.overflow, |c| &**c)
    }
}

/// Keeps translations looked up while it lives valid for [`Iotlb::synchronize`]: a
/// `synchronize` that starts while this guard is live waits until it is dropped. Not `Send`:
/// drop it on the thread that took it. Leaking one (`mem::forget`) makes every later
/// `synchronize` wait forever.
#[derive(Debug)]
#[must_use = "the guard protects translations only while it is alive"]
pub struct TranslationGuard<'a> {
    cell: &'a AtomicU64,
    _not_send: PhantomData<*const ()>,
}

impl Drop for TranslationGuard<'_> {
    fn drop(&mut self) {
        // Release: the guarded memory accesses happen before a synchronize that sees the count
        // drop (it Acquires it).
        self.cell.fetch_sub(1, Ordering::Release);
    }
}

impl Iotlb {
    /// Pin the current translations: take this before [`Iotlb::lookup`] or a walk, keep it until
    /// the memory access that uses the result is done. Guards may nest.
    pub fn pin(&self) -> TranslationGuard<'_> {
        let counts = self.pins.counts();
        loop {
            let phase = self.pins.phase.load(Ordering::SeqCst);
            let Some(cell) = counts.get((phase & 1) as usize) else {
                continue;
            };
            // SeqCst RMW: a full fence between announcing ourselves and re-reading the phase
            // (and, below, before the caller's lookup).
            cell.fetch_add(1, Ordering::SeqCst);
            crate::sync::seq_cst_point();
            if self.pins.phase.load(Ordering::SeqCst) == phase {
                return TranslationGuard {
                    cell,
                    _not_send: PhantomData,
                };
            }
            // A synchronize flipped the phase meanwhile: register in the new phase instead.
            cell.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wait until every [`TranslationGuard`] of this table that another thread held when the
    /// call started has been dropped. Call after the invalidations a CMD_SYNC completes.
    ///
    /// Guards of the calling thread are not waited for (they cannot be dropped while it waits),
    /// unless the thread is one of those beyond the 64 per-thread stripes, which share counters:
    /// such a thread must not call this while holding a guard of this table.
    pub fn synchronize(&self) {
        let _serialise = self.pins.sync.lock().unwrap_or_else(|p| p.into_inner());
        let own = super::stats::thread_index();
        fence(Ordering::SeqCst);
        let old = self.pins.phase.fetch_add(1, Ordering::SeqCst) & 1;
        crate::sync::seq_cst_point();
        let cells = self
            .pins
            .stripes
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != own)
            .map(|(_, c)| &**c)
            .chain(std::iter::once(&*self.pins.overflow));
        for counts in cells {
            let Some(cell) = counts.get(old as usize) else {
                continue;
            };
            let mut spins = 0u32;
            // Acquire: pairs with the guard's Release drop.
            while cell.load(Ordering::SeqCst) != 0 {
                spins = spins.saturating_add(1);
                if spins < 64 {
                    crate::sync::spin_loop();
                } else {
                    crate::sync::yield_now();
                }
            }
        }
    }
}
