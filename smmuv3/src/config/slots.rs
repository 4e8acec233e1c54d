//! A fixed array of seqlock slots made of atomics: the storage of the configuration cache
//! ([`super::cache`]) and of the route cache's full routes ([`crate::route`]).
//!
//! A slot holds a key, two tag words (the validity stamps its owner compares against its own
//! generation counters) and a packed value ([`Words`]). Memory is allocated once, when the
//! array is built; filling a slot is a handful of stores, never an allocation.
//!
//! Protocol (per slot): `seq` is even when the slot is stable and odd while one writer is inside.
//! - A reader ([`Slots::read_with`]) loads `seq` (Acquire), the words it needs (Relaxed),
//!   issues an Acquire fence and reloads `seq`: equal and even means the words it loaded are
//!   from one writer's complete set.
//! - A writer enters by a compare-exchange of `seq` from even to odd (Acquire), stores with a
//!   Release fence before the data, and leaves by storing `seq + 2` (Release). Inserts do not
//!   wait: a busy slot is simply not filled (a cache may always decline). A writer that must
//!   not give up (a clear, for an invalidation) spins until the slot is free; every critical
//!   section is a fixed run of stores, so the wait is bounded.
//! - [`Slots::try_write`] runs the caller's admission check *inside* the critical section.
//!   Since entering is a read-modify-write of `seq`, two writers of one slot are totally
//!   ordered: an invalidation that enters after an insert sees (and clears) what the insert
//!   wrote, and one that entered before has published everything it did before its own exit,
//!   which the insert's Acquire entry then observes.

use crate::sync::{fence, spin_loop, AtomicU64, Ordering};

use super::words::{Words, WORDS};

/// The key of an empty slot (never a real key: real keys leave the top bit clear).
pub(crate) const EMPTY: u64 = u64::MAX;

/// One slot (see the module docs).
#[derive(Debug)]
struct Slot {
    seq: AtomicU64,
    key: AtomicU64,
    tags: [AtomicU64; 2],
    data: [AtomicU64; WORDS],
}

impl Slot {
    fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            key: AtomicU64::new(EMPTY),
            tags: [AtomicU64::new(0), AtomicU64::new(0)],
            data: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The data words of a slot being read by [`Slots::read_with`].
#[derive(Clone, Copy)]
pub(crate) struct SlotWords<'a>(&'a [AtomicU64; WORDS]);

impl SlotWords<'_> {
    /// Data word `j` (Relaxed; the seqlock validates it). `j` must be below [`WORDS`]: a
    /// constant at every call site.
    #[inline(always)]
    pub(crate) fn get(&self, j: usize) -> u64 {
        self.0[j].load(Ordering::Relaxed)
    }

    /// Every data word.
    #[inline]
    pub(crate) fn all(&self) -> Words {
        let mut words = [0u64; WORDS];
        for (w, d) in words.iter_mut().zip(self.0) {
            *w = d.load(Ordering::Relaxed);
        }
        words
    }
}

/// A fixed array of seqlock slots (see the module docs).
#[derive(Debug)]
pub(crate) struct Slots {
    slots: Box<[Slot]>,
}

impl Slots {
    /// `n` empty slots (`n` a power of two).
    pub(crate) fn new(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        Self {
            slots: (0..n).map(|_| Slot::new()).collect(),
        }
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The slot an index selects (indices wrap, so any hash can be used directly).
    fn slot(&self, i: usize) -> &Slot {
        &self.slots[i & (self.slots.len() - 1)]
    }

    /// Read part of slot `i` consistently: `f` gets the key and the two tag words, and loads
    /// the data words it needs through a [`SlotWords`] (returning `None` to give up early, for
    /// a key or tag that does not match). Its value is returned only if no writer entered the
    /// slot meanwhile; it may be computed from a torn set of words and then discarded, so `f`
    /// must be total (no panic on any words) and have no side effect.
    #[inline(always)]
    pub(crate) fn read_with<T>(
        &self,
        i: usize,
        f: impl FnOnce(u64, [u64; 2], SlotWords<'_>) -> Option<T>,
    ) -> Option<T> {
        let slot = self.slot(i);
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let v = f(
            slot.key.load(Ordering::Relaxed),
            [
                slot.tags[0].load(Ordering::Relaxed),
                slot.tags[1].load(Ordering::Relaxed),
            ],
            SlotWords(&slot.data),
        )?;
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != s1 {
            return None;
        }
        Some(v)
    }

    /// Fill slot `i` unless another writer is inside it. `admit()` runs inside the critical
    /// section and returns the tags to write, or `None` to leave the slot unchanged. Returns
    /// whether the slot was filled.
    pub(crate) fn try_write(
        &self,
        i: usize,
        key: u64,
        words: &Words,
        admit: impl FnOnce() -> Option<[u64; 2]>,
    ) -> bool {
        let slot = self.slot(i);
        let s = slot.seq.load(Ordering::Relaxed);
        if s & 1 != 0
            || slot
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let Some(tags) = admit() else {
            // Nothing changed; readers that saw the odd value retry.
            slot.seq.store(s + 2, Ordering::Release);
            return false;
        };
        // Order the data stores after the odd sequence number is visible.
        fence(Ordering::Release);
        slot.key.store(key, Ordering::Relaxed);
        slot.tags[0].store(tags[0], Ordering::Relaxed);
        slot.tags[1].store(tags[1], Ordering::Relaxed);
        for (d, w) in slot.data.iter().zip(words) {
            d.store(*w, Ordering::Relaxed);
        }
        slot.seq.store(s + 2, Ordering::Release);
        true
    }

    /// Empty slot `i` if it holds `key`, waiting for a writer inside it to leave first.
    pub(crate) fn clear(&self, i: usize, key: u64) {
        let slot = self.slot(i);
        let s = loop {
            let s = slot.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && slot
                    .seq
                    .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break s;
            }
            spin_loop();
        };
        fence(Ordering::Release);
        if slot.key.load(Ordering::Relaxed) == key {
            slot.key.store(EMPTY, Ordering::Relaxed);
        }
        slot.seq.store(s + 2, Ordering::Release);
    }
}
