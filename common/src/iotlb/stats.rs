//! Per-thread striped statistics: the hit path counts without writing memory another thread
//! writes.
//!
//! Every thread that touches an IOTLB gets a small process-wide index (recycled when the thread
//! exits). Index `i < STRIPES` owns stripe `i` of every table: only that thread ever writes it,
//! so a count is a plain load + store on a cache line nobody else writes (no atomic
//! read-modify-write, no cache-line ping-pong). The stripes are one array of words inside the
//! table (no pointer to follow) and the thread keeps its stripe's first word index in a
//! thread-local, so a hit costs a thread-local load, a bounds check and an increment. Threads
//! beyond `STRIPES` (or a thread whose thread-locals are being destroyed) share one overflow
//! stripe updated with `fetch_add`, which is exact but slower. [`Stats::snapshot`] sums the stripes; it is exact except that counts made
//! concurrently with it may or may not be included.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam::utils::CachePadded;

use super::IotlbStats;

/// Number of single-owner stripes per table.
const STRIPES: usize = 64;

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(super) enum Counter {
    Hit,
    Miss,
    Insert,
    Refused,
    Eviction,
    Invalidation,
}

/// Number of counters ([`Counter`] variants).
const COUNTERS: usize = 6;

/// Words per stripe: 128 bytes, so no two threads' counters share a cache line (or an
/// adjacent-line prefetch pair). A power of two above [`COUNTERS`], so `first | counter` is the
/// counter's word.
const STRIDE: usize = 16;

/// One thread's counters (the overflow stripe).
#[derive(Debug, Default)]
struct Stripe {
    counts: [AtomicU64; COUNTERS],
}

/// Every stripe's words: stripe `i`'s counter `c` is word `i * STRIDE + c`.
#[derive(Debug)]
#[repr(align(128))]
struct Stripes([AtomicU64; STRIPES * STRIDE]);

/// The striped counters of one table.
#[derive(Debug)]
pub(super) struct Stats {
    /// Fixed size and inline, so a count needs no pointer or length load.
    stripes: Stripes,
    overflow: CachePadded<Stripe>,
}

/// Next never-used thread index.
#[cfg(not(loom))]
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);
/// Indices of exited threads, reused first so live indices stay small.
#[cfg(not(loom))]
static FREE_INDICES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

// Under loom every model thread runs on the test's OS thread and every execution must number
// its threads alike: the thread-locals are loom's (one per model thread) and the index
// allocator is created afresh for each execution.
#[cfg(loom)]
loom::thread_local! {
    static INDEX: Cell<usize> = Cell::new(usize::MAX);
    static FIRST_WORD: Cell<usize> = Cell::new(usize::MAX);
    static THREAD: ThreadIndex = ThreadIndex::acquire();
}
#[cfg(loom)]
loom::lazy_static! {
    static ref NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);
    static ref FREE_INDICES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
}

/// A thread's index; returned to the free list when the thread exits.
struct ThreadIndex {
    index: usize,
    /// xorshift state for replacement choices (owned by the thread, so no shared writes).
    rng: Cell<u64>,
}

impl ThreadIndex {
    fn acquire() -> Self {
        let reused = FREE_INDICES.lock().map(|mut f| f.pop()).unwrap_or(None);
        let index = reused.unwrap_or_else(|| NEXT_INDEX.fetch_add(1, Ordering::Relaxed));
        let seed = (index as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self {
            index,
            rng: Cell::new(seed | 1),
        }
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        // Later counts of this thread (from other thread-local destructors) go to the overflow
        // stripe. `INDEX` may already be gone; then nothing can read it any more.
        let _ = INDEX.try_with(|c| c.set(usize::MAX));
        let _ = FIRST_WORD.try_with(|c| c.set(usize::MAX));
        // The mutex orders this thread's last stripe writes before the next owner's first.
        if let Ok(mut free) = FREE_INDICES.lock() {
            free.push(self.index);
        }
    }
}

#[cfg(not(loom))]
thread_local! {
    /// This thread's index once registered (`usize::MAX` before).
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The first word of this thread's stripe (`index * STRIDE`), or `usize::MAX` when the
    /// thread has no stripe (not registered yet, beyond the stripes, or exiting): a
    /// const-initialised `Cell` without destructor, so reading it on the hit path is one
    /// thread-pointer-relative load.
    static FIRST_WORD: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Owns the index and returns it to the free list when the thread exits.
    static THREAD: ThreadIndex = ThreadIndex::acquire();
}

/// This thread's index, registering it on first use; `usize::MAX` while thread-locals are
/// being torn down (the caller then uses the shared overflow stripe).
#[inline]
pub(super) fn thread_index() -> usize {
    let i = INDEX.with(Cell::get);
    if i != usize::MAX {
        return i;
    }
    register()
}

#[cold]
fn register() -> usize {
    let i = THREAD.try_with(|t| t.index).unwrap_or(usize::MAX);
    INDEX.with(|c| c.set(i));
    let first = if i < STRIPES { i * STRIDE } else { usize::MAX };
    FIRST_WORD.with(|c| c.set(first));
    i
}

/// A per-thread pseudo-random number (xorshift64), for replacement choices.
pub(super) fn thread_random() -> u64 {
    THREAD
        .try_with(|t| {
            let mut x = t.rng.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t.rng.set(x);
            x
        })
        .unwrap_or(0)
}

/// Add one to a counter of the calling thread's own stripe. Only this thread writes it: load +
/// store loses nothing, and Relaxed suffices because the counters order nothing.
#[inline]
fn increment_own(cell: &AtomicU64) {
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

impl Stats {
    /// Zeroed counters.
    pub(super) fn new() -> Self {
        Self {
            stripes: Stripes(std::array::from_fn(|_| AtomicU64::new(0))),
            overflow: CachePadded::new(Stripe::default()),
        }
    }

    /// Count one event for the calling thread.
    #[inline]
    pub(super) fn bump(&self, counter: Counter) {
        // One thread-local load and one bounds check on the common path: a thread without a
        // stripe (`usize::MAX`, which `| counter` keeps) fails the check.
        match self.own_word(counter as usize) {
            Some(cell) => increment_own(cell),
            None => self.bump_slow(counter as usize),
        }
    }

    /// Counter `c` of the calling thread's stripe, if it has one.
    #[inline]
    fn own_word(&self, c: usize) -> Option<&AtomicU64> {
        self.stripes.0.get(FIRST_WORD.with(Cell::get) | c)
    }

    /// Count for a thread not yet registered, beyond the stripes, or exiting.
    #[cold]
    #[inline(never)]
    fn bump_slow(&self, c: usize) {
        // Registers the thread (setting its stripe's first word) if it is not yet.
        thread_index();
        match self.own_word(c) {
            Some(cell) => increment_own(cell),
            None => {
                if let Some(cell) = self.overflow.counts.get(c) {
                    cell.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sum of all stripes.
    pub(super) fn snapshot(&self) -> IotlbStats {
        let mut sum = [0u64; COUNTERS];
        let stripes = self.stripes.0.chunks(STRIDE);
        for stripe in stripes.chain(std::iter::once(&self.overflow.counts[..])) {
            for (s, c) in sum.iter_mut().zip(stripe) {
                *s = s.wrapping_add(c.load(Ordering::Relaxed));
            }
        }
        let [hits, misses, inserts, refused, evictions, invalidations] = sum;
        IotlbStats {
            hits,
            misses,
            inserts,
            refused,
            evictions,
            invalidations,
        }
    }
}
