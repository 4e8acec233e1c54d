//! Generations and fill fences: O(1) invalidation of whole tags, VMIDs or the table, and the
//! check that keeps a racing walk from inserting a stale result.
//!
//! **Generations.** Every tag belongs to a *space* (the VMID of an EL1 regime, stage 2 of a VMID,
//! the EL2 regime, or a stream) and hashes to one tag bucket and one space bucket. An entry is
//! stored with a *stamp*: `all_gen + space_gen[space bucket] + tag_gen[tag bucket]` (the three
//! counters of `Gens`: one table-wide, two arrays), read when its fill began. A lookup recomputes
//! the sum and ignores entries whose stamp differs. Counters only grow, so any bump of any of the
//! three makes every older stamp of the tags it covers unequal forever (no ABA: the 64-bit sum
//! cannot wrap in practice). Invalidating everything, a space or a tag is therefore a single
//! `fetch_add`, O(1) whatever the table size; the dead slots are reused by later inserts. Buckets are indexed by the low bits of the ASID / VMID / StreamID, so
//! sequentially allocated ids do not share them; beyond 256 live ASIDs or 64 live VMIDs a bump may
//! also hide entries of another id in the same bucket: over-invalidation, which the architecture
//! allows.
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

use crate::sync::{AtomicBool, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

use super::{FillToken, TlbTag};

/// Number of tag buckets (power of two).
const TAG_BUCKETS: usize = 256;
/// Number of space buckets (power of two).
const SPACE_BUCKETS: usize = 256;

/// Bucket of a packed tag among `n` (a power of two, at most 2^32) buckets: the low bits of
/// [`super::tag_hash`].
///
/// Those are an odd multiple of the low bits of the ASID (or StreamID) XORed with the kind copy
/// (bits [31:29] moved to [2:0]) and the VMID/SubstreamID (bits [47:32] moved to [18:3]), and
/// multiplying by an odd constant permutes the low bits: ASIDs are allocated sequentially
/// (Linux), so up to `n` live ASIDs of one VMID get distinct generations and invalidating one
/// never hides another. The same product gives the table its set hash, so the hit path
/// computes it once.
#[inline]
fn bucket(key: u64, n: usize) -> usize {
    (super::tag_hash(key) as usize) & (n - 1)
}

/// Space bucket of a tag: `space kind * 64 + space number % 64` (kept ready in the tag), so
/// `SPACE_BUCKETS / 4` consecutive VMIDs have distinct EL1 and stage-2 buckets and as many
/// consecutive StreamIDs distinct stream buckets.
#[inline]
fn space_bucket(tag: TlbTag) -> usize {
    (tag.space_bits() as usize) & (SPACE_BUCKETS - 1)
}

/// Tag bucket of a tag.
#[inline]
fn tag_bucket(tag: TlbTag) -> usize {
    bucket(tag.raw(), TAG_BUCKETS)
}

/// The generation counters, in one allocation (one base pointer for the hit path).
#[derive(Debug)]
struct Gens {
    /// The table-wide generation: bumped by [`Epochs::bump_all`].
    all: CachePadded<AtomicU64>,
    space: [CachePadded<AtomicU64>; SPACE_BUCKETS],
    tag: [CachePadded<AtomicU64>; TAG_BUCKETS],
}

/// The counters of one table.
#[derive(Debug)]
pub(super) struct Epochs {
    // Fixed-size arrays: the masked bucket index needs no bounds check on the hit path.
    gens: Box<Gens>,
    space_fence: Box<[AtomicU64; SPACE_BUCKETS]>,
    tag_fence: Box<[AtomicU64; TAG_BUCKETS]>,
    /// Per space bucket: a nested (stage 1 + 2 combined) entry was ever inserted there.
    nested: Box<[AtomicBool; SPACE_BUCKETS]>,
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
        fn padded<const N: usize>() -> [CachePadded<AtomicU64>; N] {
            std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0)))
        }
        fn plain<const N: usize>() -> Box<[AtomicU64; N]> {
            Box::new(std::array::from_fn(|_| AtomicU64::new(0)))
        }
        Self {
            gens: Box::new(Gens {
                all: CachePadded::new(AtomicU64::new(0)),
                space: padded(),
                tag: padded(),
            }),
            space_fence: plain(),
            tag_fence: plain(),
            nested: Box::new(std::array::from_fn(|_| AtomicBool::new(false))),
        }
    }

    /// The stamp entries of `tag` must carry to be visible now.
    #[inline]
    pub(super) fn stamp(&self, tag: TlbTag) -> u64 {
        self.stamp_hashed(tag, super::tag_hash(tag.raw()))
    }

    /// [`Epochs::stamp`] given `hash = tag_hash(tag)` (computed once on the hit path).
    #[inline(always)]
    pub(super) fn stamp_hashed(&self, tag: TlbTag, hash: u64) -> u64 {
        // Acquire: a lookup that happens after an invalidation sees its bump (coherence); the
        // order of the three loads does not matter since all only grow. The bucket functions
        // mask their result, so `get` never fails (and compiles to a plain load).
        let all = self.gens.all.load(Ordering::Acquire);
        let space = self
            .gens
            .space
            .get(space_bucket(tag))
            .map_or(0, |c| c.load(Ordering::Acquire));
        let tagg = self
            .gens
            .tag
            .get(hash as usize & (TAG_BUCKETS - 1))
            .map_or(0, |c| c.load(Ordering::Acquire));
        all.wrapping_add(space).wrapping_add(tagg)
    }

    /// The fence value of `tag`'s bucket.
    fn tag_fence(&self, tag: TlbTag) -> u64 {
        self.tag_fence
            .get(tag_bucket(tag))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// The fence value of `tag`'s space bucket.
    fn space_fence(&self, tag: TlbTag) -> u64 {
        self.space_fence
            .get(space_bucket(tag))
            .map_or(0, |c| c.load(Ordering::SeqCst))
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
        // After the insert's SeqCst writes (present mask, slot lock), before these reads.
        crate::sync::seq_cst_point();
        let (key, expected) = match (global, token.tag.global_variant()) {
            (true, Some(g)) => (g, token.global_fence),
            _ => (token.tag, token.fence),
        };
        self.tag_fence(key) == expected && self.space_fence(token.tag) == token.space_fence
    }

    /// Invalidate everything (reset, CFGI_ALL, TLBI_NSNH_ALL): one bump of the table-wide
    /// generation, O(1).
    pub(super) fn bump_all(&self) {
        bump(Some(&self.gens.all));
    }

    /// Invalidate every tag of the space of tag `space`.
    pub(super) fn bump_space(&self, space: TlbTag) {
        bump(self.gens.space.get(space_bucket(space)).map(|c| &**c));
    }

    /// Invalidate every entry of `tag`.
    pub(super) fn bump_tag(&self, tag: TlbTag) {
        bump(self.gens.tag.get(tag_bucket(tag)).map(|c| &**c));
    }

    /// Refuse in-flight fills of `tag` (before a removal pass).
    pub(super) fn fence_tag(&self, tag: TlbTag) {
        bump(self.tag_fence.get(tag_bucket(tag)));
        // After the bump, before the removal pass reads the present mask and the slots.
        crate::sync::seq_cst_point();
    }

    /// Refuse in-flight fills of every tag of the space of tag `space`.
    pub(super) fn fence_space(&self, space: TlbTag) {
        bump(self.space_fence.get(space_bucket(space)));
        crate::sync::seq_cst_point();
    }

    /// Record that `tag`'s space holds nested entries (before the inserting slot is published).
    pub(super) fn mark_nested(&self, tag: TlbTag) {
        if let Some(f) = self.nested.get(space_bucket(tag)) {
            if !f.load(Ordering::SeqCst) {
                f.store(true, Ordering::SeqCst);
            }
        }
    }

    /// True if the space of tag `space` may hold nested entries.
    pub(super) fn may_have_nested(&self, space: TlbTag) -> bool {
        self.nested
            .get(space_bucket(space))
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{space_bucket, tag_bucket, TAG_BUCKETS};
    use crate::id::{Asid, StreamId, SubstreamId, Vmid};
    use crate::iotlb::{Regime, TlbTag};

    /// `TAG_BUCKETS` consecutive ASIDs of one VMID (Linux allocates them in order) get distinct
    /// tag generations, from any starting ASID and in every regime and VMID: invalidating one
    /// never hides another.
    #[test]
    fn test_sequential_asids_distinct_tag_buckets() {
        for regime in [
            Regime::Nh { vmid: Vmid(0) },
            Regime::Nh { vmid: Vmid(7) },
            Regime::Nh { vmid: Vmid(0xffff) },
            Regime::El2,
        ] {
            for start in [0u16, 1, 200, 0xff00] {
                let buckets: HashSet<usize> = (0..TAG_BUCKETS as u16)
                    .map(|i| tag_bucket(TlbTag::stage1_in(regime, Asid(start.wrapping_add(i)))))
                    .collect();
                assert_eq!(buckets.len(), TAG_BUCKETS, "{regime:?} from ASID {start}");
            }
        }
    }

    /// The same ASID in the two regimes, and the stage-2 tag of the VMID, are in different tag
    /// buckets (the kind copy is folded in); so are consecutive StreamIDs and SubstreamIDs.
    #[test]
    fn test_kinds_and_streams_spread_over_tag_buckets() {
        for asid in [0u16, 1, 5, 0x80] {
            let nh = tag_bucket(TlbTag::stage1(Vmid(0), Asid(asid)));
            let el2 = tag_bucket(TlbTag::stage1_in(Regime::El2, Asid(asid)));
            assert_ne!(nh, el2, "ASID {asid}");
        }
        assert_ne!(
            tag_bucket(TlbTag::stage1(Vmid(3), Asid(0))),
            tag_bucket(TlbTag::stage2(Vmid(3)))
        );
        let streams: HashSet<usize> = (0..TAG_BUCKETS as u32)
            .map(|s| tag_bucket(TlbTag::stream(StreamId(0x100 + s), None)))
            .collect();
        assert_eq!(streams.len(), TAG_BUCKETS);
        let substreams: HashSet<usize> = (0..32)
            .map(|ss| tag_bucket(TlbTag::stream(StreamId(9), Some(SubstreamId(ss)))))
            .collect();
        assert_eq!(substreams.len(), 32);
    }

    /// Space buckets: `SPACE_BUCKETS / 4` consecutive VMIDs (or StreamIDs) are apart, and a
    /// regime's global variant shares its regime's space.
    #[test]
    fn test_space_buckets() {
        let vmids: HashSet<usize> = (0..64)
            .map(|v| space_bucket(TlbTag::stage1(Vmid(v), Asid(1))))
            .collect();
        assert_eq!(vmids.len(), 64);
        let s2: HashSet<usize> = (0..64)
            .map(|v| space_bucket(TlbTag::stage2(Vmid(v))))
            .collect();
        assert!(s2.is_disjoint(&vmids));
        let tag = TlbTag::stage1(Vmid(5), Asid(9));
        let global = tag.global_variant().map(space_bucket);
        assert_eq!(global, Some(space_bucket(tag)));
    }
}
