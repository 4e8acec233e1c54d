//! Lock-free, bounded, tagged IOTLB with linearizable invalidation.
//!
//! Caches the *leaf results* of table walks (stage 1, stage 2 or nested stage 1+2 combined) so a
//! DMA hit costs a few loads. Architecture: Arm IHI 0070 (SMMUv3), TLB tagging by VMID/ASID and
//! the `TLBI_*` commands of chapter 4: §4.4 (TLB invalidation), §4.4.1.1 (range invalidation)
//! and §3.21 (structure update procedures: what an invalidation must remove).
//!
//! # Design
//!
//! - **Storage** (`table.rs`): a set-associative array of one-cache-line slots, each a seqlock
//!   (sequence word + seven `AtomicU64` data words, no `unsafe`). 4 ways per set; replacement
//!   prefers same-key, empty and dead slots, then a pseudo-random way: bounded, and never a
//!   flush when full. Blocks of any size from 4 KiB to 2^63 share the table; a bitmask of the
//!   sizes present makes a lookup probe only those (one probe when only pages are cached).
//! - **Tags** ([`TlbTag`]): (regime, VMID, ASID) for stage-1 and nested results, VMID for
//!   stage-2-only results, StreamID(+SubstreamID) for results no ASID/VMID names. Global (nG = 0)
//!   entries live under a per-regime global tag that lookups consult only when any exist.
//! - **Generations** (`epoch.rs`): every entry carries the stamp `all + space + tag` (three
//!   counters, read when its fill began); a lookup accepts only entries whose stamp equals the
//!   current sum. Invalidating everything, a VMID/regime/stream or one ASID is one `fetch_add`,
//!   O(1).
//! - **Ranges**: VA/IPA range invalidations remove exactly the slots whose block overlaps the
//!   range, after bumping a fill *fence*: one set probe per block per present size, or a scan
//!   of the table when that is cheaper (large ranges, up to `SCAN_LIMIT` slots); only beyond
//!   both does a range bump the whole tag's generation (bounded cost, over-invalidation). So the
//!   cost follows the range, never exceeding the table size. "All ASIDs" ranges (`TLBI_*_VAA`)
//!   scan, since ASIDs cannot be enumerated.
//! - **Statistics** (`stats.rs`): per-thread stripes written only by their owner.
//! - **Guards** (`guard.rs`, opt-in): [`Iotlb::pin`] / [`Iotlb::synchronize`] let CMD_SYNC wait
//!   for DMA that is still using a translation looked up before the invalidation.
//!
//! # What the hit path touches
//!
//! [`Iotlb::lookup`]: reads the size mask, the table-wide generation and the two generation
//! counters of the tag (each on its own cache line, so unrelated invalidations do not disturb
//! it) and the sequence and data words
//! of at most 4 slots per probed size; writes only the calling thread's private stats stripe.
//! No lock, no CAS, no shared write. A miss is the same plus probes of the other sizes.
//!
//! [`Iotlb::lookup_mapping`], the DMA hit path (inlined into the device): the same probes, but a
//! 4 KiB page hit is one constant-size probe that reads only the identifying words, the output
//! and attribute words and the sequence, validated with one compare, and returns the
//! [`DmaMapping`] directly. One shift, XOR and multiply of the tag give both the tag's generation
//! bucket and the set; the space bucket is kept ready in the tag's bits \[61:54\]; the hit is
//! counted with a thread-local load and one increment in the table's inline stripes. About 65
//! instructions, ~3.6 ns in `benches/iotlb.rs` on an Intel VM and ~4.4 ns on an AMD EPYC
//! (Zen 4) one, where 1024 live entries (64 KiB of slots) exceed the 32 KiB L1d (a std
//! `Mutex<HashMap>`: ~19 ns on both). The page path
//! and the out-of-line path meet on plain words before the mapping is built, so the caller
//! never merges two half-written mappings through memory (a store-forwarding stall that cost
//! the SMMU's hit path a third of its time).
//!
//! # Using it from a device
//!
//! ```text
//! [guard = pin()]                           (optional: until the access is done)
//! lookup_mapping(tag, iova, privileged)
//!                   -> hit: check perms, done
//!                   -> miss: token = begin_fill(tag); walk guest tables; insert(token, leaf)
//! TLBI_* / CFGI_STE: invalidate(scope)      (before CMD_SYNC completes)
//! CMD_SYNC:          [synchronize()]         (waits for guards taken before it)
//! ```
//! Never cache faults or partial walks. Tag choice: stage-1 (and nested) results by
//! `(VMID, ASID)` (VMID 0 without stage 2), stage-2-only results by VMID, anything else by
//! stream. Streams sharing an ASID/VMID share entries, as in hardware; a device that tags by
//! stream instead must fan a `TLBI_*` out to every stream using the ASID (IHI 0070 §3.17, §4.4).
//!
//! # Why invalidation is linearizable
//!
//! Take an invalidation I that returns, and a lookup L that starts afterwards (happens-after I,
//! e.g. the guest saw CMD_SYNC complete and then started the DMA).
//! - Entries present before I: a generation bump by I is visible to L (coherence), so L's stamp
//!   differs from theirs; a range removal emptied their slots under the slot lock, and L's
//!   Acquire of the sequence sees the emptied slot.
//! - Entries inserted by a fill that raced with I: the fill's token was taken before I's
//!   counter updates (otherwise it walked the new tables). If I bumped a generation, the entry
//!   carries the token's old stamp and is invisible. If I was a range removal, it bumped a fence
//!   first; the insert re-reads the fences while holding the slot lock, and the SeqCst argument
//!   in `table.rs` shows that either the insert sees the fence and backs out, or the removal
//!   sees the inserted words and removes them before returning.
//! - Stamps cannot repeat (64-bit counters that only grow), so no ABA.
//!
//! Lookups return entries by value (`TlbEntry: Copy`), so nothing borrowed from the table can be
//! freed under a caller (QEMU once read a cached entry after unlocking).

mod epoch;
mod guard;
#[cfg(test)]
mod mapping_tests;
mod stats;
#[cfg(test)]
mod stress;
mod table;
#[cfg(test)]
mod tests;

use crate::sync::Ordering;

use crate::access::Perms;
use crate::id::{Asid, StreamId, SubstreamId, Vmid};
use crate::traits::{DmaMapping, MemAttrs};

use epoch::Epochs;
use guard::Pins;
pub use guard::TranslationGuard;
use stats::{Counter, Stats};
use table::{Stored, Table};

/// The translation regime a stage-1 tag or invalidation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Regime {
    /// Non-secure EL1 (STE.STRW = EL1): entries are tagged by VMID and ASID. Streams without
    /// stage 2 use VMID 0 (`TLBI_NH_*` then ignore the VMID).
    Nh {
        /// The stage-2 VMID (0 when stage 2 is not in use).
        vmid: Vmid,
    },
    /// Non-secure EL2 / EL2-E2H (STE.STRW = EL2*): entries are tagged by ASID only and are
    /// removed by the `TLBI_EL2_*` commands.
    El2,
}

/// What an IOTLB entry belongs to: the key that, with the input address, identifies it.
///
/// One table serves every stream and every kind of translation:
/// - [`TlbTag::stage1`]: stage-1 or nested (stage 1 + 2 combined) results of `(VMID, ASID)`,
///   shared by every stream that uses that ASID, as in hardware. An entry inserted with
///   [`TlbEntry::global`] set (descriptor nG = 0) matches lookups for every ASID of the regime.
/// - [`TlbTag::stage2`]: stage-2-only results of a VMID (stage 1 bypassed). Their input
///   addresses are IPAs.
/// - [`TlbTag::stream`]: results private to one stream (and optionally one substream), for
///   translations that no ASID/VMID names: PAMU windows, stream-level (bypass-S1, no VMID)
///   configurations, per-endpoint adapters. They are removed only by [`Invalidation::Stream`],
///   [`Invalidation::Tag`] and [`Invalidation::All`]; CFGI_STE maps to [`Invalidation::Stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlbTag(u64);

/// Tag kinds, in bits [63:60] of the packed tag. Bits [1:0] of the kind name the *space* kind
/// (global variants share it with their regime), which epoch.rs uses without branching.
///
/// Layout of the packed tag: kind [63:60]; space number bits [5:0] [59:54] (a copy, so bits
/// [61:54] are the space bucket of epoch.rs without computing it on the hit path); then
/// stage-1 and stage-2 tags: VMID [47:32], kind [2:0] again [31:29] (a copy that [`tag_hash`]
/// folds onto the ASID's bits), ASID [15:0]; stream tags: SubstreamID valid [52], SubstreamID
/// [51:32], StreamID [31:0].
const KIND_SHIFT: u32 = 60;
/// Where stage-1 and stage-2 tags repeat bits [2:0] of their kind.
const KIND_COPY_SHIFT: u32 = 29;
/// Where the low bits of the space number are repeated.
const SPACE_COPY_SHIFT: u32 = 54;
const KIND_NH: u64 = 1;
const KIND_S2: u64 = 2;
const KIND_EL2: u64 = 3;
const KIND_STREAM: u64 = 4;
const KIND_NH_GLOBAL: u64 = 5;
const KIND_EL2_GLOBAL: u64 = 7;

impl TlbTag {
    /// Stage-1 (or nested combined) results of `asid` in the EL1 regime of `vmid`.
    pub const fn stage1(vmid: Vmid, asid: Asid) -> Self {
        Self::stage1_in(Regime::Nh { vmid }, asid)
    }

    /// Stage-1 results of `asid` in `regime`.
    pub const fn stage1_in(regime: Regime, asid: Asid) -> Self {
        match regime {
            Regime::Nh { vmid } => {
                Self::packed((KIND_NH << KIND_SHIFT) | ((vmid.0 as u64) << 32) | asid.0 as u64)
            }
            Regime::El2 => Self::packed((KIND_EL2 << KIND_SHIFT) | asid.0 as u64),
        }
    }

    /// Stage-2-only results of `vmid` (input addresses are IPAs).
    pub const fn stage2(vmid: Vmid) -> Self {
        Self::packed((KIND_S2 << KIND_SHIFT) | ((vmid.0 as u64) << 32))
    }

    /// Results private to `stream`, optionally to one `substream` of it.
    ///
    /// SubstreamIDs are 20 bits; higher bits are dropped.
    pub const fn stream(stream: StreamId, substream: Option<SubstreamId>) -> Self {
        let ss = match substream {
            Some(s) => (1 << 52) | (((s.0 & 0xf_ffff) as u64) << 32),
            None => 0,
        };
        Self::packed((KIND_STREAM << KIND_SHIFT) | ss | stream.0 as u64)
    }

    /// The tag of packed value `raw` (without the space copy), with the copy of the space
    /// number's low bits added.
    const fn packed(raw: u64) -> Self {
        let t = TlbTag(raw);
        let kind = raw >> KIND_SHIFT;
        // Stream tags use bits [31:29] for the StreamID, so they get no copy (their kind at
        // [63:60] still reaches the high half of [`tag_hash`], the set index).
        let kind_copy = if kind == KIND_STREAM {
            0
        } else {
            (kind & 7) << KIND_COPY_SHIFT
        };
        TlbTag(raw | kind_copy | ((t.space_number() & 63) << SPACE_COPY_SHIFT))
    }

    /// The packed 64-bit value (stable within one build; for hashing and debugging).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The number of the space the tag belongs to (what [`Invalidation::Stage1All`],
    /// [`Invalidation::Vmid`] and [`Invalidation::Stream`] invalidate as a whole): the StreamID
    /// for stream tags, else the VMID (0 for EL2). With the kind's bits [1:0] this identifies
    /// the space; epoch.rs buckets by it.
    #[inline]
    const fn space_number(self) -> u64 {
        if self.0 >> KIND_SHIFT == KIND_STREAM {
            self.0 & 0xffff_ffff
        } else {
            (self.0 >> 32) & 0xffff
        }
    }

    /// Bits [1:0] of the kind: the same for a regime and its global variant.
    #[inline]
    const fn space_kind(self) -> u64 {
        (self.0 >> KIND_SHIFT) & 3
    }

    /// The space kind and the space number's low 6 bits, `kind * 64 + number % 64`: the space
    /// bucket of epoch.rs, read from the tag without branching.
    #[inline]
    pub(super) const fn space_bits(self) -> u64 {
        (self.0 >> SPACE_COPY_SHIFT) & 0xff
    }

    /// For stage-1 tags: the tag global (nG = 0) entries of the same regime are stored under.
    ///
    /// Built with masks rather than [`TlbTag::packed`] (it is on the fill path): a global
    /// variant keeps the VMID and its space copy (the space is the same), and gets its own kind
    /// and kind copy.
    #[inline]
    const fn global_variant(self) -> Option<TlbTag> {
        const KEEP: u64 = (0xffff << 32) | (63 << SPACE_COPY_SHIFT);
        const fn kind(k: u64) -> u64 {
            (k << KIND_SHIFT) | ((k & 7) << KIND_COPY_SHIFT)
        }
        match self.0 >> KIND_SHIFT {
            KIND_NH => Some(TlbTag((self.0 & KEEP) | kind(KIND_NH_GLOBAL))),
            KIND_EL2 => Some(TlbTag(kind(KIND_EL2_GLOBAL))),
            _ => None,
        }
    }
}

/// Hash of a packed tag: the tag XORed with itself shifted right by 29, times an odd constant.
///
/// The shift folds bits [36:29] onto [7:0]: for stage-1 and stage-2 tags the kind copy
/// ([31:29]) and VMID bits [4:0] onto the ASID's low bits; for stream tags StreamID bits [31:29]
/// and SubstreamID bits [4:0] onto the StreamID's. Multiplying by an odd constant permutes the
/// low bits, so the low bits of the hash (tag generations, epoch.rs) are a permutation of those
/// of the XOR, and its high half (the table's set index, table.rs) depends on every tag bit.
/// One shift, an XOR and a multiply: this is on the hit path before every table load.
#[inline(always)]
const fn tag_hash(tag: u64) -> u64 {
    (tag ^ (tag >> KIND_COPY_SHIFT)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A cached leaf translation: a naturally aligned block of input space mapped to output space.
///
/// For nested configurations this is the *combined* result: size = min(stage-1, stage-2 size),
/// permissions = stage 1 ∩ stage 2, and [`TlbEntry::ipa`] records the intermediate address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlbEntry {
    /// Input address of the block's first byte (aligned to `1 << size_log2`).
    pub input: u64,
    /// Output address of the block's first byte (aligned to `1 << size_log2`).
    pub output: u64,
    /// log2 of the block size, 12..=63 (12 = 4 KiB page, 21 = 2 MiB block, ...).
    pub size_log2: u8,
    /// The lookup level that held the leaf descriptor (-1..=3) of the stage the tag names
    /// (stage 1 for stage-1 and nested tags, stage 2 for stage-2 tags). Used only to honour the
    /// TTL hint of leaf range invalidations.
    pub level: i8,
    /// Permissions of unprivileged (PnU = 0) accesses.
    pub perms: Perms,
    /// Permissions of privileged (PnU = 1) accesses.
    pub priv_perms: Perms,
    /// Memory attributes of the translation.
    pub attrs: MemAttrs,
    /// Stage-1 descriptor nG = 0: the entry matches every ASID of its regime (ignored for
    /// stage-2 and stream tags).
    pub global: bool,
    /// For nested (stage 1 + 2) results: the IPA of the block's first byte (aligned like
    /// `input`). Marks the entry as depending on stage-2 tables, so stage-2 invalidations of its
    /// VMID remove it.
    pub ipa: Option<u64>,
    /// Opaque device bits stored and returned unchanged (e.g. which stage decided a permission,
    /// HTTU dirty state).
    pub flags: u32,
}

impl TlbEntry {
    /// Block size in bytes.
    pub const fn size(&self) -> u64 {
        1u64 << (self.size_log2 & 63)
    }

    /// True if `iova` lies inside the block.
    pub const fn contains(&self, iova: u64) -> bool {
        iova.wrapping_sub(self.input) < self.size()
    }

    /// Permissions for a privileged or unprivileged access.
    pub const fn perms_for(&self, privileged: bool) -> Perms {
        if privileged {
            self.priv_perms
        } else {
            self.perms
        }
    }

    /// The output address of `iova`, which must lie inside the block ([`TlbEntry::contains`]).
    pub const fn translate(&self, iova: u64) -> u64 {
        self.output
            .wrapping_add(iova.wrapping_sub(self.input) & (self.size() - 1))
    }

    /// The [`DmaMapping`] of `iova` (contiguous up to the end of the block).
    pub const fn mapping(&self, iova: u64, privileged: bool) -> DmaMapping {
        let off = iova.wrapping_sub(self.input) & (self.size() - 1);
        DmaMapping {
            output: self.output.wrapping_add(off),
            len: self.size() - off,
            perms: self.perms_for(privileged),
            attrs: self.attrs,
        }
    }
}

/// The address range of a range invalidation (`TLBI_*_VA{A}`, `TLBI_S2_IPA`).
///
/// Every entry whose block *overlaps* `[addr, addr + size)` is removed (IHI 0070 §4.4.1.1: whatever
/// its own size), except that a leaf invalidation with a TTL hint spares entries of other levels.
///
/// Leaf versus non-leaf: the IOTLB holds only complete (leaf) translations, no walk cache, so
/// both remove the leaf results overlapping the range. That is also all a non-leaf invalidation
/// requires here: a leaf result reached through a removed table stays valid in hardware TLBs
/// too until its own address is invalidated (which is why software invalidates a table's whole
/// span, or the ASID, when it frees a table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvRange {
    /// First address (bits below the granule may be set; they do not narrow the range).
    pub addr: u64,
    /// Length in bytes (0 is treated as 1: the single address; saturates at the top of the
    /// address space).
    pub size: u64,
    /// Leaf = 1: only last-level entries need go. Since the IOTLB only holds leaf results the
    /// only effect is that `ttl` is honoured; see [`InvRange::ttl`].
    pub leaf: bool,
    /// TTL level hint (1..=3, or -1..=3 with LPA2): with `leaf`, only entries whose
    /// [`TlbEntry::level`] equals it are removed. Policy: ignored for non-leaf invalidations,
    /// whose TTL names the level of a *table* whose removal invalidates leaves below it.
    pub ttl: Option<i8>,
}

impl InvRange {
    /// A range of `size` bytes from `addr`, all levels, non-leaf.
    pub const fn new(addr: u64, size: u64) -> Self {
        Self {
            addr,
            size,
            leaf: false,
            ttl: None,
        }
    }

    /// The single address `addr` (TG = 0 form): every entry containing it.
    pub const fn address(addr: u64) -> Self {
        Self::new(addr, 1)
    }

    /// The same range with the Leaf bit set to `leaf`.
    pub const fn with_leaf(mut self, leaf: bool) -> Self {
        self.leaf = leaf;
        self
    }

    /// The same range with a TTL level hint.
    pub const fn with_ttl(mut self, level: i8) -> Self {
        self.ttl = Some(level);
        self
    }

    /// First and last address, and the level filter (policy: TTL narrows only leaf
    /// invalidations).
    const fn bounds(&self) -> (u64, u64, Option<i8>) {
        let size = if self.size == 0 { 1 } else { self.size };
        let ttl = if self.leaf { self.ttl } else { None };
        (self.addr, self.addr.saturating_add(size - 1), ttl)
    }
}

/// What to invalidate. Removing more than asked is always allowed (IHI 0070 §4.4); each scope
/// documents where this IOTLB does so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// Everything (TLBI_NSNH_ALL, TLBI_EL2_ALL + NSNH, CFGI_ALL, reset).
    All,
    /// All stage-1 and nested entries (every ASID, global or not) of a regime
    /// (TLBI_NH_ALL with its VMID, TLBI_EL2_ALL). Stage-2-only entries stay.
    Stage1All(Regime),
    /// Stage-1, nested and stage-2 entries of a VMID (TLBI_S12_VMALL).
    Vmid(Vmid),
    /// Non-global stage-1 and nested entries of one ASID (TLBI_NH_ASID, TLBI_EL2_ASID).
    Asid(Regime, Asid),
    /// Stage-1 and nested entries overlapping `range` (TLBI_NH_VA / TLBI_EL2_VA with
    /// `asid: Some`, which also removes global entries of the regime in range; TLBI_NH_VAA /
    /// TLBI_EL2_VAA with `asid: None`: every ASID).
    Va {
        /// The regime.
        regime: Regime,
        /// One ASID (plus global entries), or all ASIDs.
        asid: Option<Asid>,
        /// Addresses.
        range: InvRange,
    },
    /// Stage-2 entries of `vmid` whose IPA block overlaps `range`, and nested entries of the VMID
    /// (TLBI_S2_IPA).
    Ipa {
        /// The VMID.
        vmid: Vmid,
        /// IPAs.
        range: InvRange,
    },
    /// Every entry of a stream tag of `stream`, whatever the substream (policy for CFGI_STE and
    /// CFGI_STE_RANGE).
    Stream(StreamId),
    /// Every entry of exactly this tag (for stage-1 tags: not global ones, like TLBI_NH_ASID).
    Tag(TlbTag),
}

/// Taken with [`Iotlb::begin_fill`] *before* a table walk and handed to [`Iotlb::insert`], which
/// refuses the result if an invalidation that may cover it ran in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillToken {
    tag: TlbTag,
    /// Stamp of `tag` when the fill began.
    stamp: u64,
    /// Stamp of `tag`'s global variant (stage-1 tags).
    global_stamp: u64,
    /// Fence of `tag`'s bucket.
    fence: u64,
    /// Fence of the global variant's bucket.
    global_fence: u64,
    /// Fence of `tag`'s space bucket.
    space_fence: u64,
}

impl FillToken {
    /// The tag the token was taken for.
    pub const fn tag(&self) -> TlbTag {
        self.tag
    }
}

/// Counters of an [`Iotlb`], summed over the per-thread stripes they are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IotlbStats {
    /// Lookups that returned an entry.
    pub hits: u64,
    /// Lookups that returned nothing.
    pub misses: u64,
    /// Entries stored by [`Iotlb::insert`].
    pub inserts: u64,
    /// Inserts refused (a racing invalidation, or an entry the table cannot hold).
    pub refused: u64,
    /// Valid entries overwritten to make room.
    pub evictions: u64,
    /// Calls to [`Iotlb::invalidate`].
    pub invalidations: u64,
}

/// Most slots a range invalidation visits (probing 4 ways per block and size, or scanning the
/// table) before it invalidates the whole tag instead. Policy: over-invalidation keeps the cost
/// of one command bounded (about 64 Ki slot reads, tens of microseconds).
const SCAN_LIMIT: u64 = 1 << 16;

/// log2 of the smallest block size (4 KiB), the size lookups probe first.
const PAGE_SHIFT: u32 = 12;

/// A bounded, lock-free, tagged IOTLB shared by every DMA thread of a device (`&self` API).
///
/// ```
/// use viommu_common::iotlb::{Invalidation, InvRange, Iotlb, TlbEntry, TlbTag};
/// use viommu_common::{Asid, Perms, Vmid};
///
/// let tlb = Iotlb::new(1024);
/// let tag = TlbTag::stage1(Vmid(0), Asid(5));
/// assert!(tlb.lookup(tag, 0x1234_5678).is_none());
/// let token = tlb.begin_fill(tag); // before walking
/// let entry = TlbEntry {
///     input: 0x1234_5000,
///     output: 0x8_0000_0000,
///     size_log2: 12,
///     level: 3,
///     perms: Perms::RW,
///     priv_perms: Perms::RW,
///     attrs: Default::default(),
///     global: false,
///     ipa: None,
///     flags: 0,
/// };
/// assert!(tlb.insert(token, entry));
/// assert_eq!(tlb.lookup(tag, 0x1234_5678).map(|e| e.translate(0x1234_5678)), Some(0x8_0000_0678));
/// tlb.invalidate(Invalidation::Va {
///     regime: viommu_common::iotlb::Regime::Nh { vmid: Vmid(0) },
///     asid: Some(Asid(5)),
///     range: InvRange::address(0x1234_5000).with_leaf(true),
/// });
/// assert!(tlb.lookup(tag, 0x1234_5678).is_none());
/// ```
#[derive(Debug)]
pub struct Iotlb {
    table: Table,
    epochs: Epochs,
    stats: Stats,
    pins: Pins,
}

impl Iotlb {
    /// A table holding at least `capacity` entries: `capacity` is rounded up to a power-of-two
    /// number of 4-way sets (at least one set, at most 2^20 sets). Each entry takes one 64-byte
    /// cache line; counters and statistics add a fixed ~90 KiB (the statistics, 8 KiB, inside
    /// the `Iotlb` value itself, so keep it behind an `Arc` or in a long-lived device rather
    /// than moving it around).
    pub fn new(capacity: usize) -> Self {
        Self {
            table: Table::new(capacity),
            epochs: Epochs::new(),
            stats: Stats::new(),
            pins: Pins::new(),
        }
    }

    /// Number of entries the table can hold.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// The entry of `tag` containing `iova`, if cached and not invalidated.
    ///
    /// Takes no lock and writes no shared memory (the hit/miss count goes to this thread's own
    /// stripe). Probes each block size present in the table, smallest first, then (for stage-1
    /// tags, only if any exist) global entries. If two live entries overlap `iova` (the guest
    /// changed a mapping without break-before-make) either may be returned: CONSTRAINED
    /// UNPREDICTABLE, like a TLB conflict the SMMU does not report.
    ///
    /// A DMA hit path that needs only the translation should use [`Iotlb::lookup_mapping`],
    /// which reads and returns less.
    #[inline]
    pub fn lookup(&self, tag: TlbTag, iova: u64) -> Option<TlbEntry> {
        let mask = self.table.present.load(Ordering::Relaxed);
        if mask != 0 {
            let s = mask.trailing_zeros();
            // s <= 63: the shift cannot overflow.
            let key = table::key(iova & (u64::MAX << s), s);
            if let Some(words) = self.table.find(tag.raw(), key, self.epochs.stamp(tag)) {
                self.stats.bump(Counter::Hit);
                return Some(table::decode(&words));
            }
        }
        self.lookup_rest(tag, iova, mask & mask.wrapping_sub(1))
    }

    /// The DMA mapping of `iova` under `tag` for a privileged or unprivileged access, if an
    /// entry containing it is cached: the same as
    /// `lookup(tag, iova).map(|e| e.mapping(iova, privileged))` (same probes, same counts), but
    /// the hit path reads only the words a mapping needs and builds no [`TlbEntry`].
    ///
    /// Inlined into the caller: when 4 KiB pages are present (the smallest size, probed first)
    /// a page hit is a constant-size probe of one set; other sizes and global entries are
    /// probed out of line.
    #[inline(always)]
    pub fn lookup_mapping(&self, tag: TlbTag, iova: u64, privileged: bool) -> Option<DmaMapping> {
        // The two paths meet on plain words and the mapping is built once, after: a mapping
        // built on each path would be merged through a stack slot, written field by field and
        // read back whole, which stalls on store forwarding (measured: 20 against 16 ns for a
        // whole SMMU translation).
        let (size_log2, out, attr) = self.lookup_hit_words(tag, iova)?;
        Some(table::mapping(size_log2, out, attr, iova, privileged))
    }

    /// What [`Iotlb::lookup_mapping`] needs of the entry: its size and its output and attribute
    /// words.
    #[inline(always)]
    fn lookup_hit_words(&self, tag: TlbTag, iova: u64) -> Option<(u32, u64, u64)> {
        const PAGE: u64 = 1 << PAGE_SHIFT;
        let mask = self.table.present.load(Ordering::Relaxed);
        if mask & PAGE != 0 {
            let hash = tag_hash(tag.raw());
            let stamp = self.epochs.stamp_hashed(tag, hash);
            if let Some((out, attr)) = self
                .table
                .find_hit(tag.raw(), hash, iova, PAGE_SHIFT, stamp)
            {
                self.stats.bump(Counter::Hit);
                return Some((PAGE_SHIFT, out, attr));
            }
        }
        self.lookup_hit_words_rest(tag, iova, mask & !PAGE)
    }

    /// [`Iotlb::lookup_hit_words`] after the page probe: the sizes of `mask`, then globals.
    #[inline(never)]
    fn lookup_hit_words_rest(&self, tag: TlbTag, iova: u64, mask: u64) -> Option<(u32, u64, u64)> {
        // Only pages cached and no global entries (the common case): a page miss is a miss.
        if mask == 0 && self.table.global_present.load(Ordering::Relaxed) == 0 {
            self.stats.bump(Counter::Miss);
            return None;
        }
        self.lookup_hit_words_probe(tag, iova, mask)
    }

    /// [`Iotlb::lookup_hit_words_rest`] when other sizes or global entries may match.
    #[inline(never)]
    fn lookup_hit_words_probe(&self, tag: TlbTag, iova: u64, mask: u64) -> Option<(u32, u64, u64)> {
        self.lookup_rest_words(tag, iova, mask)
            .map(|w| table::hit_parts(&w))
    }

    /// The rest of a lookup after the smallest present size missed: the other sizes of `mask`,
    /// then global entries. Counts the hit or miss.
    #[inline(never)]
    fn lookup_rest(&self, tag: TlbTag, iova: u64, mask: u64) -> Option<TlbEntry> {
        self.lookup_rest_words(tag, iova, mask)
            .map(|w| table::decode(&w))
    }

    /// [`Iotlb::lookup_rest`], returning the slot's words.
    #[inline]
    fn lookup_rest_words(&self, tag: TlbTag, iova: u64, mask: u64) -> Option<table::Words> {
        let found = self.probe(tag, mask, iova).or_else(|| {
            let mask = self.table.global_present.load(Ordering::Relaxed);
            match tag.global_variant() {
                Some(g) if mask != 0 => self.probe(g, mask, iova),
                _ => None,
            }
        });
        self.stats.bump(if found.is_some() {
            Counter::Hit
        } else {
            Counter::Miss
        });
        found
    }

    /// Probe the size classes of `mask` for `tag`: the words of the entry found.
    #[inline]
    fn probe(&self, tag: TlbTag, mut mask: u64, iova: u64) -> Option<table::Words> {
        if mask == 0 {
            return None;
        }
        let stamp = self.epochs.stamp(tag);
        while mask != 0 {
            let s = mask.trailing_zeros();
            mask &= mask - 1;
            // s <= 63: the shift cannot overflow.
            let key = table::key(iova & (u64::MAX << s), s);
            if let Some(words) = self.table.find(tag.raw(), key, stamp) {
                return Some(words);
            }
        }
        None
    }

    /// Start a fill of `tag`: call before reading any table (STE/CD excluded) the result will
    /// depend on, and pass the token to [`Iotlb::insert`].
    pub fn begin_fill(&self, tag: TlbTag) -> FillToken {
        self.epochs.token(tag)
    }

    /// Cache `entry` under the token's tag (under the regime's global tag if `entry.global`).
    ///
    /// Returns false and caches nothing if an invalidation that may cover the entry started after
    /// `token` was taken, if the entry is malformed (size outside 4 KiB..=2^63, level outside
    /// -1..=3, an address not aligned to the size), or if another thread is writing the chosen
    /// slot. Never blocks lookups; may replace another entry of the same set.
    pub fn insert(&self, token: FillToken, mut entry: TlbEntry) -> bool {
        let global_tag = if entry.global {
            token.tag.global_variant()
        } else {
            None
        };
        entry.global = global_tag.is_some();
        let (tag, stamp) = match global_tag {
            Some(g) => (g, token.global_stamp),
            None => (token.tag, token.stamp),
        };
        let stored = match table::encode(tag.raw(), &entry, stamp) {
            Some(words)
                if self.epochs.stamp(tag) == stamp
                    && self.epochs.fences_unchanged(&token, entry.global) =>
            {
                // Before the slot is locked, so any range removal that misses our fence re-read
                // sees these (SeqCst; table.rs module doc).
                let present = if entry.global {
                    &self.table.global_present
                } else {
                    &self.table.present
                };
                let bit = 1u64 << entry.size_log2;
                if present.load(Ordering::SeqCst) & bit == 0 {
                    present.fetch_or(bit, Ordering::SeqCst);
                }
                if entry.ipa.is_some() {
                    self.epochs.mark_nested(tag);
                }
                self.table.insert(
                    &words,
                    // A slot of the same tag is dead exactly when its stamp differs from ours
                    // (current, checked above); others need their tag's counters.
                    |t, s| {
                        if t == tag.raw() {
                            s != stamp
                        } else {
                            self.epochs.stamp(TlbTag(t)) != s
                        }
                    },
                    || self.epochs.fences_unchanged(&token, entry.global),
                    stats::thread_random(),
                )
            }
            _ => Stored::Refused,
        };
        match stored {
            Stored::Fresh => self.stats.bump(Counter::Insert),
            Stored::Evicted => {
                self.stats.bump(Counter::Insert);
                self.stats.bump(Counter::Eviction);
            }
            Stored::Refused => self.stats.bump(Counter::Refused),
        }
        stored != Stored::Refused
    }

    /// Remove what `scope` covers. When this returns, no lookup that starts afterwards returns a
    /// covered entry, and no fill begun before it can insert one.
    ///
    /// Cost: O(1) for every scope except address ranges. A range of one ASID (or of stage 2)
    /// probes one set per block per present block size, or scans the table when that visits
    /// fewer slots; an all-ASID range (`asid: None`) scans. Policy: when both would visit more
    /// than `SCAN_LIMIT` (64 Ki) slots, the whole tag (or the regime's stage-1 space) is
    /// invalidated instead.
    pub fn invalidate(&self, scope: Invalidation) {
        self.stats.bump(Counter::Invalidation);
        match scope {
            Invalidation::All => self.epochs.bump_all(),
            Invalidation::Stage1All(regime) => {
                self.epochs.bump_space(TlbTag::stage1_in(regime, Asid(0)));
            }
            Invalidation::Vmid(vmid) => {
                self.epochs.bump_space(TlbTag::stage1(vmid, Asid(0)));
                self.epochs.bump_space(TlbTag::stage2(vmid));
            }
            Invalidation::Asid(regime, asid) => {
                self.epochs.bump_tag(TlbTag::stage1_in(regime, asid))
            }
            Invalidation::Va {
                regime,
                asid: Some(asid),
                range,
            } => {
                let tag = TlbTag::stage1_in(regime, asid);
                self.remove_range(tag, &self.table.present, range);
                if let Some(g) = tag.global_variant() {
                    self.remove_range(g, &self.table.global_present, range);
                }
            }
            // TLBI_*_VAA: every ASID of the regime. The ASIDs present cannot be enumerated, so
            // this scans the table (after fencing the whole space's fills); policy: in a table
            // larger than SCAN_LIMIT it removes the regime's whole stage-1 space instead.
            Invalidation::Va {
                regime,
                asid: None,
                range,
            } => {
                let space = TlbTag::stage1_in(regime, Asid(0));
                if self.table.capacity() as u64 <= SCAN_LIMIT {
                    self.epochs.fence_space(space);
                    let (first, last, ttl) = range.bounds();
                    let same_space = |t: u64| {
                        let t = TlbTag(t);
                        t.space_kind() == space.space_kind()
                            && t.space_number() == space.space_number()
                    };
                    self.table
                        .remove_all(|w| table::covers(w, same_space, first, last, ttl));
                } else {
                    self.epochs.bump_space(space);
                }
            }
            Invalidation::Ipa { vmid, range } => {
                // Policy: nested entries of the VMID are removed conservatively (their whole
                // stage-1 space) if any were ever inserted there, instead of tracking which IPA
                // each depends on. IHI 0070 lets TLBI_S2_IPA keep them (Linux follows with
                // TLBI_NH_ALL / S12_VMALL); removing them is the safe superset.
                let nh = TlbTag::stage1(vmid, Asid(0));
                self.epochs.fence_space(nh);
                self.remove_range(TlbTag::stage2(vmid), &self.table.present, range);
                if self.epochs.may_have_nested(nh) {
                    self.epochs.bump_space(nh);
                }
            }
            Invalidation::Stream(stream) => {
                self.epochs.bump_space(TlbTag::stream(stream, None));
            }
            Invalidation::Tag(tag) => self.epochs.bump_tag(tag),
        }
    }

    /// Remove `tag`'s entries overlapping `range`: fence, then probe every block of every present
    /// size or scan the table, whichever visits fewer slots, or bump the tag's generation if
    /// both exceed [`SCAN_LIMIT`].
    fn remove_range(&self, tag: TlbTag, present: &crate::sync::AtomicU64, range: InvRange) {
        self.epochs.fence_tag(tag);
        // SeqCst, after the fence bump: sees every size bit an insert we must catch has set.
        let mask = present.load(Ordering::SeqCst);
        let (first, last, ttl) = range.bounds();
        let mut probes = 0u64;
        let mut m = mask;
        while m != 0 {
            let s = m.trailing_zeros();
            m &= m - 1;
            probes = probes.saturating_add((last >> s) - (first >> s) + 1);
        }
        let probe_cost = probes.saturating_mul(table::WAYS as u64);
        let scan_cost = self.table.capacity() as u64;
        let pred = |w: &table::Words| table::covers(w, |t| t == tag.raw(), first, last, ttl);
        if probe_cost <= scan_cost.min(SCAN_LIMIT) {
            let mut m = mask;
            while m != 0 {
                let s = m.trailing_zeros();
                m &= m - 1;
                for block in (first >> s)..=(last >> s) {
                    self.table
                        .remove(tag.raw(), table::key(block << s, s), pred);
                }
            }
        } else if scan_cost <= SCAN_LIMIT {
            self.table.remove_all(pred);
        } else {
            self.epochs.bump_tag(tag);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> IotlbStats {
        self.stats.snapshot()
    }
}
