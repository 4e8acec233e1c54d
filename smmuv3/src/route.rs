//! The route cache: (StreamID, SubstreamID) to the little that an IOTLB hit needs (the IOTLB
//! tag and the STE's PRIVCFG/INSTCFG overrides, or "abort"/"bypass"), in a fixed array of
//! seqlock slots made of atomics. A translation that hits the IOTLB costs one generation load,
//! one slot read and the IOTLB probe: no lock, no shared write, no allocation.
//!
//! Validity is a generation: every change that can alter a route (CFGI_*, CR0.SMMUEN
//! transitions, reset) bumps it *after* the configuration cache has been invalidated, and an
//! entry is used only if it was resolved under the current generation, taken *before* the
//! configuration was read. So a route never outlives the CFGI (and CMD_SYNC) that removed its
//! configuration. A slot holds one entry; a colliding stream replaces it (bounded memory).
//!
//! The full route an IOTLB miss walks with lives in a parallel array of seqlock slots
//! ([`crate::config::slots`]) as packed words, so caching a route allocates nothing.

use bitfield_struct::bitfield;
use crossbeam::atomic::AtomicCell;

use crate::config::slots::Slots;
use crate::config::words::{
    attrs_from_word, attrs_word, s1_from_words, s1_words, s2_from_words, s2_words, Words, WORDS,
};
use crate::config::StreamAttrs;
use crate::spec::ste::{InstCfg, PrivCfg};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::translate::S1Walk;
use viommu_common::walk::Stage1Config;

use viommu_common::access::{AccessKind, Perms};
use viommu_common::id::{Asid, Vmid};
use viommu_common::iotlb::{Regime, TlbTag};

use crate::translate::Route;

/// Number of slots (a power of two): as many as a 4096-stream SMMU has streams, so streams that
/// differ in their low 12 bits never share a slot (a stream that keeps losing its slot would
/// re-resolve its configuration on every translation).
pub const SLOTS: usize = 4096;

/// Key value meaning "no SubstreamID".
const NO_SSID: u64 = 1 << 32;

/// Which IOTLB tag a translating route uses (the inputs of the [`TlbTag`] constructors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TagKey {
    /// Stage 1 or nested, EL1 regime: (VMID, ASID).
    S1 { vmid: Vmid, asid: Asid },
    /// Stage 1, EL2 regime: ASID.
    S1El2 { asid: Asid },
    /// Stage 2 only: VMID.
    S2 { vmid: Vmid },
}

impl TagKey {
    /// The IOTLB tag.
    #[inline]
    pub(crate) const fn tag(self) -> TlbTag {
        match self {
            TagKey::S1 { vmid, asid } => TlbTag::stage1(vmid, asid),
            TagKey::S1El2 { asid } => TlbTag::stage1_in(Regime::El2, asid),
            TagKey::S2 { vmid } => TlbTag::stage2(vmid),
        }
    }
}

/// What an IOTLB hit needs to know about a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Hot {
    /// Terminate silently.
    Abort,
    /// Pass through.
    Bypass,
    /// Translate with this tag; `privcfg`/`instcfg` are the raw STE override fields.
    Translate {
        key: TagKey,
        privcfg: u8,
        instcfg: u8,
    },
}

/// Where the access table of a translating route starts in its hot word (see [`Hot::pack`]).
const ACCESS_TABLE_SHIFT: u32 = 8;

/// The access table of a translating route: for each incoming (privilege, access kind), at
/// nibble `3 * privileged + kind` (kinds Read 0, Write 1, Exec 2), the effective privilege
/// after STE.PRIVCFG (bit 0) and the permissions the access needs after STE.INSTCFG (bits
/// \[3:1\]), so the hit path applies both overrides with one shift.
fn access_table(privcfg: u8, instcfg: u8) -> u64 {
    let attrs = StreamAttrs {
        privcfg: PrivCfg(privcfg),
        instcfg: InstCfg(instcfg),
        ..StreamAttrs::INCOMING
    };
    let mut table = 0;
    for privileged in [false, true] {
        for access in [AccessKind::Read, AccessKind::Write, AccessKind::Exec] {
            let (p, a) = attrs.effective(privileged, access);
            let nibble = u64::from(p) | u64::from(a.required().bits()) << 1;
            table |= nibble << (4 * (3 * u32::from(privileged) + access as u32));
        }
    }
    table
}

impl Hot {
    /// Pack into one word: \[1:0\] kind, \[3:2\] tag kind, \[5:4\] PRIVCFG, \[7:6\] INSTCFG,
    /// \[31:8\] the access table ([`access_table`]), \[47:32\] VMID, \[63:48\] ASID.
    fn pack(self) -> u64 {
        match self {
            Hot::Abort => 1,
            Hot::Bypass => 2,
            Hot::Translate {
                key,
                privcfg,
                instcfg,
            } => {
                let (k, vmid, asid) = match key {
                    TagKey::S1 { vmid, asid } => (0u64, vmid.0, asid.0),
                    TagKey::S1El2 { asid } => (1, 0, asid.0),
                    TagKey::S2 { vmid } => (2, vmid.0, 0),
                };
                3 | k << 2
                    | u64::from(privcfg & 3) << 4
                    | u64::from(instcfg & 3) << 6
                    | access_table(privcfg & 3, instcfg & 3) << ACCESS_TABLE_SHIFT
                    | u64::from(vmid) << 32
                    | u64::from(asid) << 48
            }
        }
    }

    #[cfg(test)]
    fn unpack(w: u64) -> Option<Hot> {
        let vmid = Vmid((w >> 32) as u16);
        let asid = Asid((w >> 48) as u16);
        match w & 3 {
            1 => Some(Hot::Abort),
            2 => Some(Hot::Bypass),
            3 => Some(Hot::Translate {
                key: match (w >> 2) & 3 {
                    0 => TagKey::S1 { vmid, asid },
                    1 => TagKey::S1El2 { asid },
                    _ => TagKey::S2 { vmid },
                },
                privcfg: ((w >> 4) & 3) as u8,
                instcfg: ((w >> 6) & 3) as u8,
            }),
            _ => None,
        }
    }
}

/// What the hit path reads of a cached route: the packed [`Hot`] word (see [`Hot::pack`])
/// and, for a translating route, the IOTLB tag. Read in place: no enum is rebuilt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HotRoute {
    word: u64,
    tag: TlbTag,
}

/// What a cached route does with a transaction (the kind bits of [`HotRoute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HotKind {
    /// Terminate silently.
    Abort,
    /// Pass through.
    Bypass,
    /// Translate with [`HotRoute::tag`].
    Translate,
}

impl HotRoute {
    /// The route's kind.
    #[inline(always)]
    pub(crate) fn kind(&self) -> HotKind {
        // Fails closed: only the packed kinds translate (3) or bypass (2).
        match self.word & 3 {
            3 => HotKind::Translate,
            2 => HotKind::Bypass,
            _ => HotKind::Abort,
        }
    }

    /// The IOTLB tag of a translating route.
    #[inline(always)]
    pub(crate) fn tag(&self) -> TlbTag {
        self.tag
    }

    /// For a translating route: the privilege an incoming transaction of privilege
    /// `privileged` and kind `access` is translated with, and the permissions it needs, after
    /// STE.PRIVCFG and STE.INSTCFG (the same as [`StreamAttrs::effective`]).
    #[inline(always)]
    pub(crate) fn access(&self, privileged: bool, access: AccessKind) -> (bool, Perms) {
        let index = 3 * u32::from(privileged) + access as u32;
        let nibble = self.word >> (ACCESS_TABLE_SHIFT + 4 * index);
        (nibble & 1 != 0, Perms::from_bits(((nibble >> 1) & 7) as u8))
    }
}

/// One seqlock slot. `seq` is odd while a writer updates the other words.
#[derive(Debug)]
struct Slot {
    seq: AtomicU64,
    key: AtomicU64,
    generation: AtomicU64,
    hot: AtomicU64,
    /// The IOTLB tag of a translating route, built once at insert so a hit does not rebuild
    /// it (a lock-free 64-bit cell: one plain load).
    tag: AtomicCell<TlbTag>,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            seq: AtomicU64::new(0),
            key: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            hot: AtomicU64::new(0),
            tag: AtomicCell::new(TlbTag::stage2(Vmid(0))),
        }
    }
}

/// The route cache (see the module docs).
#[derive(Debug)]
pub(crate) struct RouteCache {
    slots: Box<[Slot]>,
    /// Full routes (packed), same indexing and validity rule (the generation is the first
    /// tag), for IOTLB misses: saves re-resolving the configuration before a walk.
    full: Slots,
    /// Bumped after every invalidation of the configuration a route depends on.
    generation: AtomicU64,
}

#[inline(always)]
fn key(sid: u32, ssid: Option<u32>) -> u64 {
    (u64::from(sid) << 33) | ssid.map_or(NO_SSID, u64::from)
}

#[inline(always)]
fn slot_of(key: u64) -> usize {
    // The StreamID's low bits, XORed with a Fibonacci hash of the SubstreamID part (a constant
    // without one): consecutive StreamIDs, and the substreams of one stream, spread over
    // distinct slots. SLOTS is a power of two (12 bits).
    let sid = key >> 33;
    let substream = (key & ((1 << 33) - 1)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52;
    (sid ^ substream) as usize & (SLOTS - 1)
}

impl RouteCache {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            full: Slots::new(SLOTS),
            // Start at 1 so that an empty slot (generation 0) never matches.
            generation: AtomicU64::new(1),
        }
    }

    /// The current generation; take it before resolving a route to insert.
    #[inline(always)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached route of `(sid, ssid)`, if resolved under the current generation.
    #[cfg(test)]
    pub(crate) fn get(&self, sid: u32, ssid: Option<u32>) -> Option<Hot> {
        self.get_hot(sid, ssid).and_then(|h| Hot::unpack(h.word))
    }

    /// The cached route of `(sid, ssid)` as the hit path reads it (packed word and IOTLB tag),
    /// if resolved under the current generation.
    #[inline(always)]
    pub(crate) fn get_hot(&self, sid: u32, ssid: Option<u32>) -> Option<HotRoute> {
        let k = key(sid, ssid);
        let g = self.generation();
        let slot = self.slots.get(slot_of(k))?;
        // Seqlock read: the Acquire load of `seq` orders the data loads after it; the Acquire
        // fence orders them before the second `seq` load.
        let s1 = slot.seq.load(Ordering::Acquire);
        let (sk, sg, word, tag) = (
            slot.key.load(Ordering::Relaxed),
            slot.generation.load(Ordering::Relaxed),
            slot.hot.load(Ordering::Relaxed),
            slot.tag.load(),
        );
        fence(Ordering::Acquire);
        // An odd `s1` (a writer inside) never equals the reloaded value once the writer is
        // done, and while it is inside the key or generation written so far is refused by
        // the comparison with the reload: so one comparison covers both.
        if slot.seq.load(Ordering::Relaxed) != s1 || s1 & 1 != 0 || sk != k || sg != g {
            return None;
        }
        Some(HotRoute { word, tag })
    }

    /// The cached full route of `(sid, ssid)` as a request for `addr` walks it, if resolved
    /// under the current generation: the slot words that request needs, read consistently
    /// (the metadata, the one TTB region `addr` selects, stage 2 if used, the attribute word),
    /// still packed; [`FullWords::route`] unpacks them.
    #[inline(always)]
    pub(crate) fn get_full(&self, sid: u32, ssid: Option<u32>, addr: u64) -> Option<FullWords> {
        let k = key(sid, ssid);
        let g = self.generation();
        self.full.read_with(slot_of(k), |sk, [sg, _], w| {
            if sk != k || sg != g {
                return None;
            }
            let meta = w.get(0);
            let m = RouteMeta::from_bits(meta);
            // Words 1..4 hold the TTB0 region, 4..7 the TTB1 region.
            let r = if Stage1Config::region_of(addr) { 4 } else { 1 };
            let region = if m.has_s1() {
                [w.get(r), w.get(r + 1), w.get(r + 2)]
            } else {
                [0; 3]
            };
            let s2 = if m.has_s2() {
                [w.get(7), w.get(8)]
            } else {
                [0; 2]
            };
            Some(FullWords {
                meta,
                region,
                s2,
                attrs: w.get(9),
            })
        })
    }

    /// Cache `route` resolved under `generation` (ignored if it is no longer current).
    pub(crate) fn insert(&self, generation: u64, sid: u32, ssid: Option<u32>, route: &Route) {
        if generation != self.generation() {
            return;
        }
        let k = key(sid, ssid);
        // An invalidation racing with this insert bumps the generation after the check above;
        // the entries then carry the old one and are never used.
        self.full
            .try_write(slot_of(k), k, &route_words(route), || Some([generation, 0]));
        self.insert_hot(generation, k, route.hot());
    }

    fn insert_hot(&self, generation: u64, k: u64, hot: Hot) {
        let Some(slot) = self.slots.get(slot_of(k)) else {
            return;
        };
        let s = slot.seq.load(Ordering::Relaxed);
        if s & 1 != 0
            || slot
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Order the data stores after the odd sequence number is visible.
        fence(Ordering::Release);
        slot.key.store(k, Ordering::Relaxed);
        slot.generation.store(generation, Ordering::Relaxed);
        slot.hot.store(hot.pack(), Ordering::Relaxed);
        if let Hot::Translate { key, .. } = hot {
            slot.tag.store(key.tag());
        }
        slot.seq.store(s + 2, Ordering::Release);
    }

    /// Invalidate every cached route.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Word 0 of a packed full route: kind, tag inputs, which stages, fault flags.
#[bitfield(u64)]
struct RouteMeta {
    /// 0: abort, 1: bypass, 2: translate.
    #[bits(2)]
    kind: u8,
    /// 0: [`TagKey::S1`], 1: [`TagKey::S1El2`], 2: [`TagKey::S2`].
    #[bits(2)]
    key_kind: u8,
    vmid: u16,
    asid: u16,
    has_s1: bool,
    has_s2: bool,
    s1_record: bool,
    s1_stall: bool,
    s2_record: bool,
    s2_stall: bool,
    #[bits(22)]
    __: u32,
}

/// A route as slot words in a fixed layout: \[0\] [`RouteMeta`], \[1..4\] TTB0 region,
/// \[4..7\] TTB1 region, \[7..9\] stage 2, \[9\] the attribute overrides ([`attrs_word`]). Unused words are zero.
fn route_words(route: &Route) -> Words {
    let mut w = [0u64; WORDS];
    let Route::Translate {
        key,
        s1,
        s2,
        s2_record,
        s2_stall,
        attrs,
    } = route
    else {
        w[0] = RouteMeta::new()
            .with_kind(u8::from(*route == Route::Bypass))
            .into_bits();
        return w;
    };
    let (key_kind, vmid, asid) = match *key {
        TagKey::S1 { vmid, asid } => (0, vmid.0, asid.0),
        TagKey::S1El2 { asid } => (1, 0, asid.0),
        TagKey::S2 { vmid } => (2, vmid.0, 0),
    };
    let mut meta = RouteMeta::new()
        .with_kind(2)
        .with_key_kind(key_kind)
        .with_vmid(vmid)
        .with_asid(asid)
        .with_has_s1(s1.is_some())
        .with_has_s2(s2.is_some())
        .with_s2_record(*s2_record)
        .with_s2_stall(*s2_stall);
    if let Some(c) = s1 {
        meta = meta.with_s1_record(c.record).with_s1_stall(c.stall);
        w[1..4].copy_from_slice(&s1_words(&c.ttb0));
        w[4..7].copy_from_slice(&s1_words(&c.ttb1));
    }
    if let Some(c) = s2 {
        w[7..9].copy_from_slice(&s2_words(c));
    }
    w[0] = meta.into_bits();
    w[9] = attrs_word(attrs);
    w
}

/// The words of a cached full route one request needs ([`RouteCache::get_full`]), read
/// consistently but not unpacked, so that the (large) route is built where it is used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FullWords {
    meta: u64,
    /// The TTB region the request's address selects (zero without stage 1).
    region: [u64; 3],
    /// Stage 2 (zero without).
    s2: [u64; 2],
    attrs: u64,
}

impl FullWords {
    /// The route [`route_words`] packed, as the request walks it (stage 1 from the region its
    /// address selects). `None` only for codes `route_words` never writes.
    #[inline(always)]
    pub(crate) fn route(&self) -> Option<Route<S1Walk>> {
        let meta = RouteMeta::from_bits(self.meta);
        match meta.kind() {
            0 => return Some(Route::Abort),
            1 => return Some(Route::Bypass),
            2 => {}
            _ => return None,
        }
        let (vmid, asid) = (Vmid(meta.vmid()), Asid(meta.asid()));
        let key = match meta.key_kind() {
            0 => TagKey::S1 { vmid, asid },
            1 => TagKey::S1El2 { asid },
            2 => TagKey::S2 { vmid },
            _ => return None,
        };
        let s1 = if meta.has_s1() {
            Some(S1Walk {
                region: s1_from_words(self.region)?,
                record: meta.s1_record(),
                stall: meta.s1_stall(),
            })
        } else {
            None
        };
        let s2 = if meta.has_s2() {
            Some(s2_from_words(self.s2)?)
        } else {
            None
        };
        Some(Route::Translate {
            key,
            s1,
            s2,
            s2_record: meta.s2_record(),
            s2_stall: meta.s2_stall(),
            attrs: attrs_from_word(self.attrs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::S1Ctx;
    use viommu_common::walk::Stage2Config;

    /// The hot word's access table gives what `StreamAttrs::effective` gives, for every
    /// PRIVCFG and INSTCFG value (reserved ones included) and every incoming privilege and
    /// access kind, next to the fields packed around it.
    #[test]
    fn test_route_hot_access_table_matches_effective() {
        for privcfg in 0..4u8 {
            for instcfg in 0..4u8 {
                let hot = Hot::Translate {
                    key: TagKey::S1 {
                        vmid: Vmid(0xFFFF),
                        asid: Asid(0xFFFF),
                    },
                    privcfg,
                    instcfg,
                };
                let h = HotRoute {
                    word: hot.pack(),
                    tag: TlbTag::stage2(Vmid(0)),
                };
                assert_eq!(Hot::unpack(h.word), Some(hot));
                let attrs = StreamAttrs {
                    privcfg: PrivCfg(privcfg),
                    instcfg: InstCfg(instcfg),
                    ..StreamAttrs::INCOMING
                };
                for privileged in [false, true] {
                    for access in [AccessKind::Read, AccessKind::Write, AccessKind::Exec] {
                        let (p, a) = attrs.effective(privileged, access);
                        assert_eq!(
                            h.access(privileged, access),
                            (p, a.required()),
                            "PRIVCFG {privcfg} INSTCFG {instcfg} {privileged} {access:?}"
                        );
                    }
                }
            }
        }
    }

    /// Packed routes round-trip, entries die with the generation, colliding keys miss.
    #[test]
    fn test_route_cache_generation_and_packing() {
        let c = RouteCache::new();
        let hot = Hot::Translate {
            key: TagKey::S1 {
                vmid: Vmid(7),
                asid: Asid(0xBEEF),
            },
            privcfg: 2,
            instcfg: 3,
        };
        assert_eq!(c.get(1, None), None);
        c.insert_hot(c.generation(), key(1, None), hot);
        assert_eq!(c.get(1, None), Some(hot));
        assert_eq!(c.get(1, Some(0)), None);
        let g = c.generation();
        c.invalidate();
        assert_eq!(c.get(1, None), None);
        c.insert(g, 1, None, &Route::Bypass);
        assert_eq!(c.get(1, None), None, "stale generation refused");
        c.insert(c.generation(), 2, Some(5), &Route::Abort);
        assert_eq!(c.get(2, Some(5)), Some(Hot::Abort));
        assert_eq!(
            c.get_full(2, Some(5), 0).and_then(|w| w.route()),
            Some(Route::Abort)
        );
        // Full routes round-trip through the slot words, the largest packing included.
        let mut s1 = Stage1Config::new(viommu_common::addr::Granule::K64, 12, u64::MAX, 52);
        s1.mair = u64::MAX;
        s1.lva = true;
        let full = Route::Translate {
            key: TagKey::S1 {
                vmid: Vmid(0xFFFF),
                asid: Asid(0xFFFF),
            },
            s1: Some(S1Ctx {
                ttb0: s1,
                ttb1: Stage1Config { upper: true, ..s1 },
                record: true,
                stall: true,
            }),
            s2: Some(Stage2Config::new(
                viommu_common::addr::Granule::K4,
                16,
                2,
                u64::MAX,
                48,
            )),
            s2_record: true,
            s2_stall: false,
            attrs: StreamAttrs::INCOMING,
        };
        let g = c.generation();
        c.insert(g, 9, Some(0xF_FFFF), &full);
        // Each region is read for the addresses that select it (VA bit 55).
        for addr in [0, 0x1234, 1 << 55, u64::MAX] {
            assert_eq!(
                c.get_full(9, Some(0xF_FFFF), addr).and_then(|w| w.route()),
                Some(full.for_addr(addr)),
                "{addr:#x}"
            );
        }
        assert_ne!(full.for_addr(0), full.for_addr(1 << 55));
        assert_eq!(
            c.get(9, Some(0xF_FFFF)),
            Some(Hot::Translate {
                key: TagKey::S1 {
                    vmid: Vmid(0xFFFF),
                    asid: Asid(0xFFFF),
                },
                privcfg: 0,
                instcfg: 0
            })
        );
        c.invalidate();
        assert!(c.get_full(9, Some(0xF_FFFF), 0).is_none());
        for h in [
            Hot::Bypass,
            Hot::Translate {
                key: TagKey::S2 { vmid: Vmid(0xFFFF) },
                privcfg: 0,
                instcfg: 0,
            },
            Hot::Translate {
                key: TagKey::S1El2 { asid: Asid(3) },
                privcfg: 3,
                instcfg: 2,
            },
        ] {
            assert_eq!(Hot::unpack(h.pack()), Some(h));
        }
    }
}
