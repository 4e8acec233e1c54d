//! Bounded set-associative storage: seqlock-protected slots of `AtomicU64` words.
//!
//! A slot is one cache line: a sequence word and seven data words. The sequence is even when the
//! slot is stable and odd while one writer (an insert or a removal) owns it; writers take it with
//! a compare-and-swap and never wait while holding it, so readers are never blocked and a
//! preempted writer only makes its own slot miss.
//!
//! **Reader** (the hit path, `find`): load the sequence (Acquire), compare the key, tag and stamp
//! words, skip the slot if different, read the words needed, `fence(Acquire)`, re-load the
//! sequence and use the words only if the first load was even and the re-load equals it. This
//! is the C++11 seqlock of Boehm ("Can seqlocks get along with programming language memory
//! models?", 2012) built from safe atomics: the writer's
//! `fence(Release)` after making the sequence odd pairs with the reader's `fence(Acquire)`, so a
//! reader that saw any word of a write also sees the sequence change. Nothing is written.
//!
//! **Insert vs. range removal.** An insert locks its slot (SeqCst CAS), writes the words, then
//! re-reads its fences (SeqCst) and, if any moved since its fill token, empties the slot before
//! unlocking. A removal (set probes, or a table scan) bumps the fence (SeqCst) first and then reads
//! each candidate slot's sequence (SeqCst). In the single total order of SeqCst operations either
//! the insert's fence read comes after the bump (it sees the bump and backs out), or it comes
//! before; then the insert's CAS precedes the bump and so the removal's sequence read, which
//! therefore sees the slot locked (and waits for the unlock, whose Release store publishes the
//! words) or already published: either way the removal examines the inserted words and removes them
//! if covered. So no covered entry becomes or stays visible once the removal returns.
//!
//! Replacement: an insert reuses the slot of the same key, else an empty slot, else one whose
//! stamp is dead (invalidated by a generation bump), else a pseudo-random way. There is no
//! flush-everything when full and nothing on the hit path records use.

use crate::sync::{fence, AtomicU64, Ordering};

use super::TlbEntry;
use crate::access::Perms;
use crate::addr::low_mask;
use crate::traits::{DmaMapping, MemAttrs};

/// Ways per set.
pub(super) const WAYS: usize = 4;
/// Upper bound on the number of sets (2^20 sets = 4 Mi entries, 256 MiB).
const MAX_SETS: usize = 1 << 20;

/// Word indices inside a slot.
const W_TAG: usize = 0;
/// Input base | size_log2 (bits [5:0]); 0 = empty.
const W_KEY: usize = 1;
/// Output base | perms [2:0] | priv perms [5:3] | level + 1 [8:6] | global [9].
const W_OUT: usize = 2;
/// MAIR [7:0] | shareability [15:8] | device attributes [63:32].
const W_ATTR: usize = 3;
/// Opaque device flags [31:0].
const W_FLAGS: usize = 4;
/// IPA base | 1, or 0 when not nested.
const W_IPA: usize = 5;
/// Generation stamp (epoch.rs).
const W_STAMP: usize = 6;
/// Number of data words.
const NWORDS: usize = 7;

/// A slot's data words.
pub(super) type Words = [u64; NWORDS];

/// One entry's storage: a sequence word and the data words, one cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    seq: AtomicU64,
    w: [AtomicU64; NWORDS],
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    /// Stored in a free, dead or same-key slot.
    Fresh,
    /// Stored over a live entry of another key.
    Evicted,
    /// Not stored (slot busy, or a fence moved).
    Refused,
}

/// The slots, plus which block sizes are present (so lookups probe only those).
#[derive(Debug)]
pub(super) struct Table {
    sets: Box<[[Slot; WAYS]]>,
    set_mask: usize,
    /// Bit `s` set: some non-global entry of size `1 << s` was inserted (never cleared, so range
    /// removals never skip a size class that may hold an entry).
    pub(super) present: AtomicU64,
    /// The same for global (nG = 0) entries; zero in the common case, so lookups skip them.
    pub(super) global_present: AtomicU64,
}

/// The key word of a block: its base with the size in the low bits.
#[inline]
pub(super) const fn key(base: u64, size_log2: u32) -> u64 {
    base | size_log2 as u64
}

/// The level stored in a `W_OUT` word.
pub(super) const fn level_of(out: u64) -> i8 {
    ((out >> 6) & 7) as i8 - 1
}

/// Pack `entry` (stamped `stamp`, stored under packed tag `tag`). `None` if malformed: size
/// outside 12..=63, level outside -1..=3, or an address not aligned to the size.
pub(super) fn encode(tag: u64, entry: &TlbEntry, stamp: u64) -> Option<Words> {
    let s = u32::from(entry.size_log2);
    if !(12..=63).contains(&s) || !(-1..=3).contains(&entry.level) {
        return None;
    }
    let m = low_mask(s);
    let ipa_misaligned = entry.ipa.is_some_and(|i| i & m != 0);
    if entry.input & m != 0 || entry.output & m != 0 || ipa_misaligned {
        return None;
    }
    let level = u64::try_from(i16::from(entry.level) + 1).ok()?;
    let out = entry.output
        | u64::from(entry.perms.bits())
        | (u64::from(entry.priv_perms.bits()) << 3)
        | (level << 6)
        | (u64::from(entry.global) << 9);
    let attr = u64::from(entry.attrs.mair)
        | (u64::from(entry.attrs.shareability) << 8)
        | (u64::from(entry.attrs.device) << 32);
    let mut w = [0; NWORDS];
    w[W_TAG] = tag;
    w[W_KEY] = key(entry.input, s);
    w[W_OUT] = out;
    w[W_ATTR] = attr;
    w[W_FLAGS] = u64::from(entry.flags);
    w[W_IPA] = entry.ipa.map_or(0, |i| i | 1);
    w[W_STAMP] = stamp;
    Some(w)
}

/// Unpack the words of a valid slot.
#[inline(always)]
pub(super) fn decode(w: &Words) -> TlbEntry {
    let (key, out, attr, flags, ipa) = (w[W_KEY], w[W_OUT], w[W_ATTR], w[W_FLAGS], w[W_IPA]);
    TlbEntry {
        input: key & !0xfff,
        output: out & !0xfff,
        size_log2: (key & 63) as u8,
        level: level_of(out),
        perms: Perms::from_bits((out & 7) as u8),
        priv_perms: Perms::from_bits(((out >> 3) & 7) as u8),
        attrs: MemAttrs {
            mair: attr as u8,
            shareability: (attr >> 8) as u8,
            device: (attr >> 32) as u32,
        },
        global: out & (1 << 9) != 0,
        ipa: (ipa & 1 != 0).then_some(ipa & !0xfff),
        flags: flags as u32,
    }
}

/// The size, output word and attribute word of a valid slot: what [`mapping`] needs.
#[inline(always)]
pub(super) fn hit_parts(w: &Words) -> (u32, u64, u64) {
    ((w[W_KEY] & 63) as u32, w[W_OUT], w[W_ATTR])
}

/// The [`DmaMapping`] of `iova` for a privileged or unprivileged access, from the output and
/// attribute words of the valid slot whose block of size `1 << size_log2` (< 64) contains
/// `iova` (the same result as [`TlbEntry::mapping`] of [`decode`]).
#[inline(always)]
pub(super) fn mapping(
    size_log2: u32,
    out: u64,
    attr: u64,
    iova: u64,
    privileged: bool,
) -> DmaMapping {
    let off = iova & low_mask(size_log2);
    DmaMapping {
        output: (out & !0xfff) | off,
        len: (1u64 << (size_log2 & 63)) - off,
        perms: Perms::from_bits((out >> (3 * u32::from(privileged))) as u8),
        attrs: MemAttrs {
            mair: attr as u8,
            shareability: (attr >> 8) as u8,
            device: (attr >> 32) as u32,
        },
    }
}

/// Wait politely for another writer to release a slot.
fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        crate::sync::spin_loop();
    } else {
        crate::sync::yield_now();
    }
}

impl Table {
    /// A table of at least `capacity` entries (rounded up to a power-of-two number of sets).
    pub(super) fn new(capacity: usize) -> Self {
        let sets = capacity
            .div_ceil(WAYS)
            .clamp(1, MAX_SETS)
            .next_power_of_two();
        Self {
            sets: (0..sets).map(|_| Default::default()).collect(),
            set_mask: sets - 1,
            present: AtomicU64::new(0),
            global_present: AtomicU64::new(0),
        }
    }

    /// Number of entries.
    pub(super) fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// The ways of the set holding (`tag`, `key`).
    #[inline(always)]
    fn ways(&self, tag: u64, key: u64) -> &[Slot] {
        let size_log2 = (key & 63) as u32;
        // key = base | size_log2 and size_log2 < 2^size_log2, so this is the block number.
        self.ways_of_block(super::tag_hash(tag), key >> size_log2, size_log2)
    }

    /// The ways of the set holding block number `block` of size `1 << size_log2` of the tag
    /// whose [`super::tag_hash`] is `hash`.
    ///
    /// The set is the block number XOR a hash of the tag and the size: the consecutive pages or
    /// blocks of one tag fall in consecutive sets, so a tag's mappings do not conflict with each
    /// other until they outnumber the sets.
    #[inline(always)]
    fn ways_of_block(&self, hash: u64, block: u64, size_log2: u32) -> &[Slot] {
        self.set_of_block(hash, block, size_log2)
            .map_or(&[], |s| s.as_slice())
    }

    /// [`Table::ways_of_block`] as a fixed-size array (`None` is unreachable: the set index is
    /// masked), so a probe is a fixed-trip loop the compiler unrolls.
    #[inline(always)]
    fn set_of_block(&self, hash: u64, block: u64, size_log2: u32) -> Option<&[Slot; WAYS]> {
        // The high half of the tag hash (its low bits pick the tag's generation, epoch.rs).
        let mix = hash >> 32;
        let set = (block ^ mix ^ (u64::from(size_log2) << 5)) as usize & self.set_mask;
        self.sets.get(set)
    }

    /// The words of a live slot holding (`tag`, `key`) stamped `stamp`. Lock-free, write-free.
    #[inline(always)]
    pub(super) fn find(&self, tag: u64, key: u64, stamp: u64) -> Option<Words> {
        let size_log2 = (key & 63) as u32;
        // key = base | size_log2 and size_log2 < 2^size_log2, so this is the block number.
        let ways = self.set_of_block(super::tag_hash(tag), key >> size_log2, size_log2)?;
        Self::find_in(ways, tag, key, stamp, |w| {
            let mut words = [0; NWORDS];
            words[W_TAG] = tag;
            words[W_KEY] = key;
            words[W_STAMP] = stamp;
            for i in [W_OUT, W_ATTR, W_FLAGS, W_IPA] {
                words[i] = w[i].load(Ordering::Relaxed);
            }
            words
        })
    }

    /// The output and attribute words of the live slot of `tag`, stamped `stamp`, whose
    /// block of size `1 << size_log2` (< 64) contains `iova`: all a DMA hit needs
    /// ([`mapping`]). Lock-free, write-free.
    #[inline(always)]
    pub(super) fn find_hit(
        &self,
        tag: u64,
        hash: u64,
        iova: u64,
        size_log2: u32,
        stamp: u64,
    ) -> Option<(u64, u64)> {
        let block = iova >> (size_log2 & 63);
        let key = key(iova & (u64::MAX << (size_log2 & 63)), size_log2);
        let ways = self.set_of_block(hash, block, size_log2)?;
        Self::find_in(ways, tag, key, stamp, |w| {
            (
                w[W_OUT].load(Ordering::Relaxed),
                w[W_ATTR].load(Ordering::Relaxed),
            )
        })
    }

    /// The seqlock read of the slot of `ways` holding (`tag`, `key`) stamped `stamp`: `read`
    /// loads what the caller needs (Relaxed) between the two sequence loads.
    #[inline(always)]
    fn find_in<R>(
        ways: &[Slot; WAYS],
        tag: u64,
        key: u64,
        stamp: u64,
        read: impl Fn(&[AtomicU64; NWORDS]) -> R,
    ) -> Option<R> {
        for slot in ways {
            // Acquire: pairs with the writer's Release unlock, so the words of that write are
            // visible below. The identifying words are checked first (a miss in this way costs
            // four loads); the rest are read only for the matching way. Every word read between
            // the two sequence loads is validated by their equality.
            let seq = slot.seq.load(Ordering::Acquire);
            if slot.w[W_KEY].load(Ordering::Relaxed) != key
                || slot.w[W_TAG].load(Ordering::Relaxed) != tag
                || slot.w[W_STAMP].load(Ordering::Relaxed) != stamp
            {
                continue;
            }
            let r = read(&slot.w);
            // Acquire fence: if any word above came from a later write, that write's
            // fence(Release) after its odd sequence store makes the re-load below see it.
            fence(Ordering::Acquire);
            // Valid only if the sequence was even (no writer) and is unchanged. One compare
            // checks both: sequences only grow, so if `seq` was odd the re-load is at least
            // `seq`, never `seq & !1`.
            if slot.seq.load(Ordering::Relaxed) == seq & !1 {
                return Some(r);
            }
        }
        None
    }

    /// Store `words`. `is_dead(tag, stamp)` says whether a slot's contents are invalidated;
    /// `still_valid()` is called with the slot locked and decides whether the words are
    /// published or the slot is left empty (see the module doc).
    pub(super) fn insert(
        &self,
        words: &Words,
        is_dead: impl Fn(u64, u64) -> bool,
        still_valid: impl FnOnce() -> bool,
        random: u64,
    ) -> Stored {
        let (tag, key) = (words[W_TAG], words[W_KEY]);
        let ways = self.ways(tag, key);
        // Choose a way from a racy snapshot; the lock below makes the write itself exclusive.
        let mut same = None;
        let mut free = None;
        for (i, slot) in ways.iter().enumerate() {
            let k = slot.w[W_KEY].load(Ordering::Relaxed);
            let t = slot.w[W_TAG].load(Ordering::Relaxed);
            if k == key && t == tag {
                same = Some(i);
                break;
            }
            if free.is_none() && (k == 0 || is_dead(t, slot.w[W_STAMP].load(Ordering::Relaxed))) {
                free = Some(i);
            }
        }
        let (way, evicts) = match same.or(free) {
            Some(i) => (i, false),
            None => ((random as usize) % WAYS, true),
        };
        let Some(slot) = ways.get(way) else {
            return Stored::Refused;
        };
        let seq = slot.seq.load(Ordering::Relaxed);
        // SeqCst: this lock precedes the fence re-read below in the total order (module doc).
        if seq & 1 != 0
            || slot
                .seq
                .compare_exchange(seq, seq | 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            // Another writer owns the slot: give up rather than wait (the walk result is still
            // returned to the caller, just not cached).
            return Stored::Refused;
        }
        // Release fence: readers that see any word below also see the odd sequence (module doc).
        fence(Ordering::Release);
        for (cell, &v) in slot.w.iter().zip(words.iter()) {
            cell.store(v, Ordering::Relaxed);
        }
        let ok = still_valid();
        // The window in which a removal must wait for this slot (table.rs module doc).
        #[cfg(test)]
        test_hooks::pause_in_insert();
        if !ok {
            slot.w[W_KEY].store(0, Ordering::Relaxed);
        }
        // Release: publishes the words to readers that Acquire the new sequence.
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        match (ok, evicts) {
            (false, _) => Stored::Refused,
            (true, false) => Stored::Fresh,
            (true, true) => Stored::Evicted,
        }
    }

    /// Empty every slot of the set of (`tag`, `key`) whose words satisfy `pred`. Waits for
    /// slots another writer holds. Returns how many were emptied.
    pub(super) fn remove(&self, tag: u64, key: u64, pred: impl Fn(&Words) -> bool) -> usize {
        self.ways(tag, key)
            .iter()
            .map(|slot| remove_if(slot, &pred))
            .sum()
    }

    /// Empty every slot of the table whose words satisfy `pred` (a full scan, for ranges whose
    /// probes would cost more). Returns how many were emptied.
    pub(super) fn remove_all(&self, pred: impl Fn(&Words) -> bool) -> usize {
        self.sets
            .iter()
            .flatten()
            .map(|slot| remove_if(slot, &pred))
            .sum()
    }
}

/// Empty `slot` if its contents satisfy `pred`; wait while another writer holds it. Returns 1 if
/// emptied.
fn remove_if(slot: &Slot, pred: &impl Fn(&Words) -> bool) -> usize {
    let mut spins = 0;
    loop {
        // SeqCst: ordered after the caller's fence bump (module doc).
        let seq = slot.seq.load(Ordering::SeqCst);
        if seq & 1 != 0 {
            backoff(&mut spins);
            continue;
        }
        let words: Words = std::array::from_fn(|i| slot.w[i].load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != seq {
            continue;
        }
        if words[W_KEY] == 0 || !pred(&words) {
            return 0;
        }
        if slot
            .seq
            .compare_exchange(seq, seq | 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        fence(Ordering::Release);
        slot.w[W_KEY].store(0, Ordering::Relaxed);
        // Release: publishes the emptied slot to readers that Acquire the new sequence.
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        return 1;
    }
}

/// True if the slot holds an entry whose tag satisfies `tag_ok` and whose block overlaps
/// `[first, last]` and whose level passes the TTL filter.
pub(super) fn covers(
    w: &Words,
    tag_ok: impl Fn(u64) -> bool,
    first: u64,
    last: u64,
    ttl: Option<i8>,
) -> bool {
    let key = w[W_KEY];
    let size_log2 = (key & 63) as u32;
    let base = key & !0xfff;
    let end = base | crate::addr::low_mask(size_log2);
    base <= last && end >= first && ttl.is_none_or(|l| level_of(w[W_OUT]) == l) && tag_ok(w[W_TAG])
}

/// Test-only: let the stress test hold slot locks for a while, so removals meet busy slots.
#[cfg(test)]
pub(super) mod test_hooks {
    use std::cell::Cell;

    thread_local! {
        static PAUSE: Cell<u32> = const { Cell::new(0) };
    }

    /// Make every `n`-th insert of this thread yield while holding its slot lock (0 = never).
    pub(in super::super) fn pause_inserts_every(n: u32) {
        PAUSE.with(|p| p.set(n));
    }

    pub(super) fn pause_in_insert() {
        thread_local! {
            static COUNT: Cell<u32> = const { Cell::new(0) };
        }
        let n = PAUSE.with(Cell::get);
        if n != 0 && COUNT.with(|c| c.replace(c.get().wrapping_add(1))) % n == 0 {
            std::thread::yield_now();
        }
    }
}
