//! Generations and fill fences: O(1) invalidation of whole tags, VMIDs or the table, and the
//! check that keeps a racing walk from inserting a stale result.
//!
//! **Generations.** Every tag belongs to a *space* (the VMID of an EL1 regime, stage 2 of a VMID,
//! the EL2 regime, or a stream) and hashes to one tag bucket and one space bucket. An entry is
//! stored with a *stamp*: `space_gen[space bucket] + tag_gen[tag bucket]`, read when its fill
//! began. A lookup recomputes the sum and ignores entries whose stamp differs. Counters only
//! grow, so any bump of either makes every older stamp of the tags it covers unequal forever (no
//! ABA: the 64-bit sum cannot wrap in practice). Invalidating a space or a tag is therefore a
//! single `fetch_add` (everything: one per space bucket); the dead slots are reused by later
//! inserts. Buckets are indexed by the low bits of the ASID / VMID / StreamID, so sequentially
//! allocated ids do not share them; beyond 256 live ASIDs or 64 live VMIDs a bump may also hide
//! entries of another id in the same bucket: over-invalidation, which the architecture allows.
//!
//! **Fences.** Range invalidations remove slots instead of bumping generations, so a walk that
//! read a descriptor before the invalidation could still insert it after the removal pass. To
//! prevent that they first bump a *fence* (per tag bucket, and per space bucket for stage-2
//! invalidations that affect nested entries); an insert re-reads the fences of its entry while
//! holding the slot's write lock and backs out if they moved since its [`FillToken`] was taken.
//! The argument that this suffices is in `table.rs`.
//!
//! Generation counters are read on the hit path and written by invalidations, so each sits on
//! its own cache line: invalidating one ASID does not slow lookups of another. Fences and nested
//! flags are only touched on misses and invalidations and are packed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

use super::{FillToken, TlbTag};

/// Number of tag buckets (power of two).
const TAG_BUCKETS: usize = 256;
/// Number of space buckets (power of two).
const SPACE_BUCKETS: usize = 256;

/// Bucket of a packed tag among `n` (a power of two) buckets.
///
/// The low bits (ASID, or StreamID) index directly, XORed with the VMID/SubstreamID (bits
/// [47:32] moved to [18:3]) and the kind (bits [63:60] moved to [8:5]): ASIDs are allocated
/// sequentially (Linux), so up to `n` live ASIDs of one VMID get distinct generations and
/// invalidating one never hides another. Cheap on purpose: it is on the hit path.
#[inline]
fn bucket(key: u64, n: usize) -> usize {
    ((key ^ (key >> 29) ^ (key >> 55)) as usize) & (n - 1)
}

/// Bucket of a space key ([`TlbTag::space`]: kind in [63:60], VMID/StreamID in the low bits):
/// `number * 4 + kind[1:0]`, so `n / 4` consecutive VMIDs have distinct EL1 and stage-2
/// buckets and `n / 4` consecutive StreamIDs distinct stream buckets.
#[inline]
fn space_bucket(space: u64, n: usize) -> usize {
    (((space << 2) | ((space >> 60) & 3)) as usize) & (n - 1)
}

/// The counters of one table.
#[derive(Debug)]
pub(super) struct Epochs {
    space_gen: Box<[CachePadded<AtomicU64>]>,
    tag_gen: Box<[CachePadded<AtomicU64>]>,
    space_fence: Box<[AtomicU64]>,
    tag_fence: Box<[AtomicU64]>,
    /// Per space bucket: a nested (stage 1 + 2 combined) entry was ever inserted there.
    nested: Box<[AtomicBool]>,
}

/// Load bucket `i` of a counter array (indices come from [`bucket`], so always in range).
#[inline]
fn load(counters: &[AtomicU64], i: usize, o: Ordering) -> u64 {
    counters.get(i).map_or(0, |c| c.load(o))
}

/// Load bucket `i` of a padded counter array.
#[inline]
fn load_padded(counters: &[CachePadded<AtomicU64>], i: usize, o: Ordering) -> u64 {
    counters.get(i).map_or(0, |c| c.load(o))
}

/// Bump a counter. SeqCst: fence bumps must precede the removal pass's slot reads in the single
/// total order (table.rs); generation bumps need only be visible to lookups that happen after
/// the invalidation, which any ordering gives.
fn bump(c: Option<&AtomicU64>) {
    if let Some(c) = c {
        c.fetch_add(1, Ordering::SeqCst);
    }
}

impl Epochs {
    /// All counters zero.
    pub(super) fn new() -> Self {
        let padded = |n: usize| {
            (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect()
        };
        let plain = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Self {
            space_gen: padded(SPACE_BUCKETS),
            tag_gen: padded(TAG_BUCKETS),
            space_fence: plain(SPACE_BUCKETS),
            tag_fence: plain(TAG_BUCKETS),
            nested: (0..SPACE_BUCKETS).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The stamp entries of `tag` must carry to be visible now.
    #[inline]
    pub(super) fn stamp(&self, tag: TlbTag) -> u64 {
        // Acquire: a lookup that happens after an invalidation sees its bump (coherence); the
        // order of the two loads does not matter since both only grow.
        let space = load_padded(
            &self.space_gen,
            space_bucket(tag.space(), SPACE_BUCKETS),
            Ordering::Acquire,
        );
        let tagg = load_padded(
            &self.tag_gen,
            bucket(tag.raw(), TAG_BUCKETS),
            Ordering::Acquire,
        );
        space.wrapping_add(tagg)
    }

    /// The fence value of `tag`'s bucket.
    fn tag_fence(&self, tag: TlbTag) -> u64 {
        load(
            &self.tag_fence,
            bucket(tag.raw(), TAG_BUCKETS),
            Ordering::SeqCst,
        )
    }

    /// The fence value of `tag`'s space bucket.
    fn space_fence(&self, tag: TlbTag) -> u64 {
        load(
            &self.space_fence,
            space_bucket(tag.space(), SPACE_BUCKETS),
            Ordering::SeqCst,
        )
    }

    /// A token for a fill of `tag`.
    pub(super) fn token(&self, tag: TlbTag) -> FillToken {
        let global = tag.global_variant();
        // Fences first, then stamps: an invalidation whose fence bump we miss here is caught by
        // the re-check in `insert`; one whose generation bump we miss makes our stamp stale.
        let fence = self.tag_fence(tag);
        let global_fence = global.map_or(0, |g| self.tag_fence(g));
        let space_fence = self.space_fence(tag);
        FillToken {
            tag,
            stamp: self.stamp(tag),
            global_stamp: global.map_or(0, |g| self.stamp(g)),
            fence,
            global_fence,
            space_fence,
        }
    }

    /// True if no fence covering entries stored under `key` (the token's tag or its global
    /// variant) moved since `token` was taken. SeqCst loads: see `table.rs`.
    pub(super) fn fences_unchanged(&self, token: &FillToken, global: bool) -> bool {
        let (key, expected) = match (global, token.tag.global_variant()) {
            (true, Some(g)) => (g, token.global_fence),
            _ => (token.tag, token.fence),
        };
        self.tag_fence(key) == expected && self.space_fence(token.tag) == token.space_fence
    }

    /// Invalidate everything.
    ///
    /// Bumps every space generation (rare: reset, CFGI_ALL, TLBI_NSNH_ALL), which keeps the hit
    /// path at two counter loads instead of three.
    pub(super) fn bump_all(&self) {
        for g in self.space_gen.iter() {
            g.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Invalidate every tag of `space` (a value of [`TlbTag::space`]).
    pub(super) fn bump_space(&self, space: u64) {
        bump(
            self.space_gen
                .get(space_bucket(space, SPACE_BUCKETS))
                .map(|c| &**c),
        );
    }

    /// Invalidate every entry of `tag`.
    pub(super) fn bump_tag(&self, tag: TlbTag) {
        bump(
            self.tag_gen
                .get(bucket(tag.raw(), TAG_BUCKETS))
                .map(|c| &**c),
        );
    }

    /// Refuse in-flight fills of `tag` (before a removal pass).
    pub(super) fn fence_tag(&self, tag: TlbTag) {
        bump(self.tag_fence.get(bucket(tag.raw(), TAG_BUCKETS)));
    }

    /// Refuse in-flight fills of every tag of `space`.
    pub(super) fn fence_space(&self, space: u64) {
        bump(self.space_fence.get(space_bucket(space, SPACE_BUCKETS)));
    }

    /// Record that `tag`'s space holds nested entries (before the inserting slot is published).
    pub(super) fn mark_nested(&self, tag: TlbTag) {
        if let Some(f) = self.nested.get(space_bucket(tag.space(), SPACE_BUCKETS)) {
            if !f.load(Ordering::SeqCst) {
                f.store(true, Ordering::SeqCst);
            }
        }
    }

    /// True if `space` may hold nested entries.
    pub(super) fn may_have_nested(&self, space: u64) -> bool {
        self.nested
            .get(space_bucket(space, SPACE_BUCKETS))
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }
}
