//! Lock-free, bounded, tagged IOTLB with linearizable invalidation (issue 2, part 4).
//!
//! Caches the *leaf results* of table walks (stage 1, stage 2 or nested stage 1+2 combined) so a
//! DMA hit costs a few loads. Architecture: Arm IHI 0070 §3.17 (TLB tagging) and §4.4
//! (invalidation commands); see also the digest `smmuv3.md` §10 (range invalidation) and §13
//! (caches and what invalidates them).
//!
//! This first version fixes the public API; the storage behind it is being written. Until then
//! the cache never holds anything (every lookup misses and every insert is refused), which is a
//! correct (if slow) IOTLB.

use crate::access::Perms;
use crate::id::{Asid, StreamId, SubstreamId, Vmid};
use crate::traits::{DmaMapping, MemAttrs};

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

/// Tag kinds, in bits [63:60] of the packed tag.
const KIND_SHIFT: u32 = 60;
const KIND_NH: u64 = 1;
const KIND_S2: u64 = 3;
const KIND_EL2: u64 = 4;
const KIND_STREAM: u64 = 6;

impl TlbTag {
    /// Stage-1 (or nested combined) results of `asid` in the EL1 regime of `vmid`.
    pub const fn stage1(vmid: Vmid, asid: Asid) -> Self {
        Self::stage1_in(Regime::Nh { vmid }, asid)
    }

    /// Stage-1 results of `asid` in `regime`.
    pub const fn stage1_in(regime: Regime, asid: Asid) -> Self {
        match regime {
            Regime::Nh { vmid } => {
                TlbTag((KIND_NH << KIND_SHIFT) | ((vmid.0 as u64) << 32) | asid.0 as u64)
            }
            Regime::El2 => TlbTag((KIND_EL2 << KIND_SHIFT) | asid.0 as u64),
        }
    }

    /// Stage-2-only results of `vmid` (input addresses are IPAs).
    pub const fn stage2(vmid: Vmid) -> Self {
        TlbTag((KIND_S2 << KIND_SHIFT) | ((vmid.0 as u64) << 32))
    }

    /// Results private to `stream`, optionally to one `substream` of it.
    ///
    /// SubstreamIDs are 20 bits; higher bits are dropped.
    pub const fn stream(stream: StreamId, substream: Option<SubstreamId>) -> Self {
        let ss = match substream {
            Some(s) => (1 << 52) | (((s.0 & 0xf_ffff) as u64) << 32),
            None => 0,
        };
        TlbTag((KIND_STREAM << KIND_SHIFT) | ss | stream.0 as u64)
    }

    /// The packed 64-bit value (stable within one build; for hashing and debugging).
    pub const fn raw(self) -> u64 {
        self.0
    }
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
/// Every entry whose block *overlaps* `[addr, addr + size)` is removed (digest §10: whatever its
/// own size), except that a leaf invalidation with a TTL hint spares entries of other levels.
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
}

/// What to invalidate. Removing more than asked is always allowed (digest §10); each scope
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

/// A bounded, lock-free, tagged IOTLB shared by every DMA thread of a device (`&self` API).
#[derive(Debug)]
pub struct Iotlb {
    capacity: usize,
}

impl Iotlb {
    /// A table holding at most about `capacity` entries (rounded up to a power of two, at least
    /// one set).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
        }
    }

    /// Number of entries the table can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entry of `tag` containing `iova`, if cached and not invalidated.
    pub fn lookup(&self, tag: TlbTag, iova: u64) -> Option<TlbEntry> {
        let _ = (tag, iova);
        None
    }

    /// Start a fill of `tag`: call before reading any table the result depends on.
    pub fn begin_fill(&self, tag: TlbTag) -> FillToken {
        FillToken { tag }
    }

    /// Cache `entry` under the token's tag. Returns false (and caches nothing) if an invalidation
    /// that may cover the entry started after `token` was taken, or if the entry is malformed
    /// (size below 4 KiB, addresses not aligned to the size).
    pub fn insert(&self, token: FillToken, entry: TlbEntry) -> bool {
        let _ = (token, entry);
        false
    }

    /// Remove what `scope` covers. When this returns, no lookup that starts afterwards returns a
    /// covered entry, and no fill begun before it can insert one.
    pub fn invalidate(&self, scope: Invalidation) {
        let _ = scope;
    }

    /// Current counters.
    pub fn stats(&self) -> IotlbStats {
        IotlbStats::default()
    }
}
