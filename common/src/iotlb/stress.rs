//! Concurrency stress test: no lookup that starts after an invalidation returns sees an entry
//! the invalidation covered, while other threads keep walking and inserting.
//!
//! Model: every cacheable translation ("key") has a *truth* version that a fill reads after
//! taking its token, as a walk reads the guest's tables. A writer changes a key by bumping its
//! truth, invalidates with a random scope that covers it (as the guest does TLBI + CMD_SYNC),
//! then publishes the new version as the key's *floor*. Readers read the floor, then look up;
//! a hit must carry a version at least the floor. Misses fill through `begin_fill`/`insert`.
//! Keys cover every table feature: 4 KiB pages, 2 MiB blocks, global entries, stage-2 entries,
//! nested entries (two versions: stage 1 and stage 2), stream entries; scopes cover every
//! [`Invalidation`] variant, including TTL-filtered leaf ranges and the range fallback. A small
//! table keeps replacement busy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::addr::low_mask;

const VMID: Vmid = Vmid(1);
const NH: Regime = Regime::Nh { vmid: VMID };
const ASIDS: u64 = 3;
const PAGES: u64 = 8;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A cacheable translation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    /// Stage-1 4 KiB page `p` of ASID `a`.
    Page { a: u64, p: u64 },
    /// Stage-1 2 MiB block `p` of ASID `a`.
    Block { a: u64, p: u64 },
    /// Global stage-1 page `p` (looked up through ASID `a`).
    Global { a: u64, p: u64 },
    /// Stage-2 page `p` (IPA).
    S2 { p: u64 },
    /// Nested page `p` of ASID `a`, whose IPA is stage-2 page `p`.
    Nested { a: u64, p: u64 },
    /// Page `p` of stream `s`.
    Stream { s: u64, p: u64 },
}

const PAGE_BASE: u64 = 0x10_0000_0000;
const BLOCK_BASE: u64 = 0x20_0000_0000;
const GLOBAL_BASE: u64 = 0x30_0000_0000;
const S2_BASE: u64 = 0x8000_0000;
const NESTED_BASE: u64 = 0x40_0000_0000;
const STREAM_BASE: u64 = 0x50_0000_0000;
/// Output address of a key's block: its input base with this bit flipped, and the stage-1
/// version from bit [`VERSION_SHIFT`] up (so [`Iotlb::lookup_mapping`] hits carry it too).
const OUTPUT_FLIP: u64 = 1 << 40;
const VERSION_SHIFT: u32 = 42;

/// Versions: `truth` (what a walk reads now) and `floor` (no lookup starting later may return
/// less), per key slot; nested keys use their stage-1 slot plus the stage-2 slot of their IPA.
struct World {
    truth: Vec<AtomicU64>,
    floor: Vec<AtomicU64>,
    stop: AtomicBool,
    checked_hits: AtomicU64,
    writes: AtomicU64,
}

impl Key {
    fn random(rng: &mut Rng) -> Key {
        let a = rng.below(ASIDS);
        let p = rng.below(PAGES);
        match rng.below(6) {
            0 => Key::Page { a, p },
            1 => Key::Block { a, p },
            2 => Key::Global { a, p },
            3 => Key::S2 { p },
            4 => Key::Nested { a, p },
            _ => Key::Stream { s: a, p },
        }
    }

    /// Index of the key's own version slot (globals ignore the ASID they are looked up by).
    fn slot(self) -> usize {
        let (kind, a, p) = match self {
            Key::Page { a, p } => (0, a, p),
            Key::Block { a, p } => (1, a, p),
            Key::Global { p, .. } => (2, 0, p),
            Key::S2 { p } => (3, 0, p),
            Key::Nested { a, p } => (4, a, p),
            Key::Stream { s, p } => (5, s, p),
        };
        ((kind * ASIDS + a) * PAGES + p) as usize
    }

    /// For nested keys, the stage-2 key their result depends on.
    fn s2(self) -> Option<Key> {
        match self {
            Key::Nested { p, .. } => Some(Key::S2 { p }),
            _ => None,
        }
    }

    fn tag(self) -> TlbTag {
        match self {
            Key::Page { a, .. }
            | Key::Block { a, .. }
            | Key::Global { a, .. }
            | Key::Nested { a, .. } => TlbTag::stage1(VMID, Asid(a as u16 + 1)),
            Key::S2 { .. } => TlbTag::stage2(VMID),
            Key::Stream { s, .. } => TlbTag::stream(StreamId(s as u32 + 100), None),
        }
    }

    /// (input base, size_log2, level).
    fn block(self) -> (u64, u8, i8) {
        match self {
            Key::Page { p, .. } => (PAGE_BASE + (p << 12), 12, 3),
            Key::Block { p, .. } => (BLOCK_BASE + (p << 21), 21, 2),
            Key::Global { p, .. } => (GLOBAL_BASE + (p << 12), 12, 3),
            Key::S2 { p } => (S2_BASE + (p << 12), 12, 3),
            Key::Nested { p, .. } => (NESTED_BASE + (p << 12), 12, 3),
            Key::Stream { p, .. } => (STREAM_BASE + (p << 16), 16, 0),
        }
    }

    /// An address inside the block.
    fn address(self, rng: &mut Rng) -> u64 {
        let (base, s, _) = self.block();
        base + rng.below(1 << s)
    }

    /// A random invalidation covering this key (what the guest would send after changing it).
    fn covering_scope(self, rng: &mut Rng) -> Invalidation {
        let (base, s, level) = self.block();
        let inside = base + (rng.below(1 << s) & !0xfff);
        let asid = match self {
            Key::Page { a, .. } | Key::Block { a, .. } | Key::Nested { a, .. } => {
                Some(Asid(a as u16 + 1))
            }
            // NH_VA with any ASID removes global entries in range.
            Key::Global { .. } => Some(Asid(rng.below(ASIDS + 2) as u16 + 1)),
            _ => None,
        };
        let range = match rng.below(4) {
            0 => InvRange::address(inside),
            1 => InvRange::new(inside, 0x1000)
                .with_leaf(true)
                .with_ttl(level),
            2 => InvRange::new(inside.saturating_sub(0x3000), 0x8000).with_leaf(true),
            _ => InvRange::new(0, 1 << 48), // too large: whole-tag fallback
        };
        match self {
            Key::S2 { .. } => match rng.below(3) {
                0 => Invalidation::Vmid(VMID),
                1 => Invalidation::All,
                _ => Invalidation::Ipa { vmid: VMID, range },
            },
            Key::Stream { s, .. } => match rng.below(3) {
                0 => Invalidation::Stream(StreamId(s as u32 + 100)),
                1 => Invalidation::Tag(self.tag()),
                _ => Invalidation::All,
            },
            _ => match rng.below(8) {
                0 => Invalidation::All,
                1 => Invalidation::Vmid(VMID),
                2 => Invalidation::Stage1All(NH),
                3 => Invalidation::Va {
                    regime: NH,
                    asid: None,
                    range,
                },
                4 if !matches!(self, Key::Global { .. }) => {
                    Invalidation::Asid(NH, asid.unwrap_or(Asid(1)))
                }
                _ => Invalidation::Va {
                    regime: NH,
                    asid,
                    range,
                },
            },
        }
    }
}

impl World {
    fn new() -> Self {
        let n = (6 * ASIDS * PAGES) as usize;
        Self {
            truth: (0..n).map(|_| AtomicU64::new(1)).collect(),
            floor: (0..n).map(|_| AtomicU64::new(1)).collect(),
            stop: AtomicBool::new(false),
            checked_hits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn truth(&self, k: Key) -> u64 {
        self.truth
            .get(k.slot())
            .map_or(0, |t| t.load(Ordering::SeqCst))
    }

    fn floor(&self, k: Key) -> u64 {
        self.floor
            .get(k.slot())
            .map_or(0, |t| t.load(Ordering::Acquire))
    }

    /// The guest changes `k` (or, for nested keys, sometimes its stage-2 page) and invalidates.
    fn write(&self, tlb: &Iotlb, rng: &mut Rng) {
        let mut k = Key::random(rng);
        let mut scope = k.covering_scope(rng);
        if let (Some(s2), 0) = (k.s2(), rng.below(2)) {
            // Change the stage-2 mapping under a nested entry: TLBI_S2_IPA must remove it.
            k = s2;
            let (base, _, _) = s2.block();
            scope = Invalidation::Ipa {
                vmid: VMID,
                range: InvRange::address(base),
            };
        }
        let (Some(truth), Some(floor)) = (self.truth.get(k.slot()), self.floor.get(k.slot()))
        else {
            return;
        };
        let v = truth.fetch_add(1, Ordering::SeqCst) + 1;
        tlb.invalidate(scope);
        floor.fetch_max(v, Ordering::Release);
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Look `k` up (half the time through the DMA fast path, [`Iotlb::lookup_mapping`]);
    /// check a hit against the floors read before; fill on a miss.
    fn read(&self, tlb: &Iotlb, rng: &mut Rng) {
        let k = Key::random(rng);
        let iova = k.address(rng);
        let floor = self.floor(k);
        let floor2 = k.s2().map_or(0, |s2| self.floor(s2));
        if rng.below(2) == 0 {
            return self.read_mapping(tlb, k, iova, floor, floor2, rng);
        }
        match tlb.lookup(k.tag(), iova) {
            Some(e) => {
                let (base, s, _) = k.block();
                assert_eq!(
                    (e.input, e.size_log2),
                    (base, s),
                    "{k:?}: wrong entry {e:x?}"
                );
                assert!(
                    u64::from(e.flags) >= floor,
                    "{k:?}: stale version {} after invalidation published {floor}",
                    e.flags
                );
                if k.s2().is_some() {
                    assert!(
                        u64::from(e.attrs.device) >= floor2,
                        "{k:?}: stale stage-2 version {} after floor {floor2}",
                        e.attrs.device
                    );
                }
                self.checked_hits.fetch_add(1, Ordering::Relaxed);
            }
            None => self.fill(tlb, k, rng),
        }
    }

    /// The check of `read` through [`Iotlb::lookup_mapping`]: the stage-1 version comes back
    /// in the output address (bits from [`VERSION_SHIFT`]), the stage-2 one in the attributes.
    fn read_mapping(&self, tlb: &Iotlb, k: Key, iova: u64, floor: u64, floor2: u64, rng: &mut Rng) {
        let privileged = rng.below(2) == 0;
        match tlb.lookup_mapping(k.tag(), iova, privileged) {
            Some(m) => {
                let (base, s, _) = k.block();
                let off = iova - base;
                assert_eq!(
                    (m.output & low_mask(VERSION_SHIFT), m.len, m.perms),
                    ((base ^ OUTPUT_FLIP) + off, (1u64 << s) - off, Perms::RW),
                    "{k:?}: wrong mapping {m:x?}"
                );
                let version = m.output >> VERSION_SHIFT;
                assert!(
                    version >= floor,
                    "{k:?}: stale version {version} after invalidation published {floor}"
                );
                if k.s2().is_some() {
                    assert!(
                        u64::from(m.attrs.device) >= floor2,
                        "{k:?}: stale stage-2 version {} after floor {floor2}",
                        m.attrs.device
                    );
                }
                self.checked_hits.fetch_add(1, Ordering::Relaxed);
            }
            None => self.fill(tlb, k, rng),
        }
    }

    /// A walk: token first, then read the tables (truth), then insert.
    fn fill(&self, tlb: &Iotlb, k: Key, rng: &mut Rng) {
        let token = tlb.begin_fill(k.tag());
        let v = self.truth(k);
        let v2 = k.s2().map_or(0, |s2| self.truth(s2));
        // Walks take time: widen the window in which an invalidation can overtake this one.
        match rng.below(8) {
            0 => std::thread::yield_now(),
            1..=3 => (0..rng.below(500)).for_each(|_| std::hint::spin_loop()),
            _ => {}
        }
        let (base, size_log2, level) = k.block();
        let entry = TlbEntry {
            input: base,
            output: (base ^ OUTPUT_FLIP) | (v << VERSION_SHIFT),
            size_log2,
            level,
            perms: Perms::RW,
            priv_perms: Perms::RW,
            attrs: MemAttrs {
                mair: 0xff,
                shareability: 3,
                device: v2 as u32,
            },
            global: matches!(k, Key::Global { .. }),
            ipa: k.s2().map(|s2| s2.block().0),
            flags: v as u32,
        };
        tlb.insert(token, entry);
    }
}

/// The least work a run must do for its checks to count.
const MIN_HITS: u64 = 1000;
/// The least number of invalidating writes a run must do.
const MIN_WRITES: u64 = 100;
/// The longest a run may extend itself to reach that minimum on a loaded machine.
const MAX_RUN: Duration = Duration::from_secs(60);

/// Run `readers` reader/filler threads and `writers` writer threads for `duration`.
fn run(duration: Duration, readers: usize, writers: usize, capacity: usize) {
    let tlb = Iotlb::new(capacity);
    let world = World::new();
    std::thread::scope(|s| {
        for t in 0..readers {
            let (tlb, world) = (&tlb, &world);
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678_9abc_def1 ^ (t as u64 + 1) << 32);
                super::table::test_hooks::pause_inserts_every(4);
                while !world.stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        world.read(tlb, &mut rng);
                    }
                }
            });
        }
        for t in 0..writers {
            let (tlb, world) = (&tlb, &world);
            s.spawn(move || {
                let mut rng = Rng(0xfeed_f00d_dead_beef ^ (t as u64 + 7) << 40);
                while !world.stop.load(Ordering::Relaxed) {
                    world.write(tlb, &mut rng);
                    // Let readers refill between writes most of the time.
                    if rng.below(4) != 0 {
                        std::thread::yield_now();
                    }
                }
            });
        }
        run_until_enough(&world, duration);
    });
    let st = tlb.stats();
    let (hits, writes) = (
        world.checked_hits.load(Ordering::Relaxed),
        world.writes.load(Ordering::Relaxed),
    );
    // The run must have exercised what it claims to.
    assert!(
        hits > MIN_HITS && writes > MIN_WRITES,
        "too little work: {hits} hits, {writes} writes"
    );
    assert!(st.inserts > 100 && st.invalidations >= writes, "{st:?}");
}

/// Readers never see a version older than the last published invalidation (CI-sized: ~1 s).
#[test]
fn test_iotlb_stress_no_stale_hit_after_invalidation() {
    run(Duration::from_millis(1000), 2, 1, 64);
}

/// The same with two writers and a larger table, for longer.
#[test]
#[ignore = "long stress run; cargo test -p viommu-common -- --ignored"]
fn test_iotlb_stress_no_stale_hit_after_invalidation_long() {
    run(Duration::from_secs(30), 3, 2, 256);
}

/// Let the threads of `world` run for at least `duration`, and on a loaded machine on until the
/// minimum work is done (at most [`MAX_RUN`]), so the checks are never skipped for lack of CPU;
/// then stop them.
fn run_until_enough(world: &World, duration: Duration) {
    let start = Instant::now();
    let enough = || {
        world.checked_hits.load(Ordering::Relaxed) > MIN_HITS
            && world.writes.load(Ordering::Relaxed) > MIN_WRITES
    };
    while start.elapsed() < duration || (!enough() && start.elapsed() < MAX_RUN) {
        std::thread::sleep(Duration::from_millis(10));
    }
    world.stop.store(true, Ordering::Relaxed);
}

/// In-flight translations: a reader that pinned before its lookup keeps using the entry until
/// it drops the guard, and no `synchronize` that follows an invalidation of that entry returns
/// before then (CMD_SYNC completion). Checked by reading the published floor *while* the guard
/// is held: it may not exceed the version the reader is using.
fn run_guarded(duration: Duration) {
    let tlb = Iotlb::new(64);
    let world = World::new();
    let keys = |rng: &mut Rng| Key::Page {
        a: rng.below(ASIDS),
        p: rng.below(PAGES),
    };
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (tlb, world) = (&tlb, &world);
            s.spawn(move || {
                let mut rng = Rng(0x0123_4567_89ab_cdef ^ (t + 3) << 32);
                while !world.stop.load(Ordering::Relaxed) {
                    let k = keys(&mut rng);
                    let guard = tlb.pin();
                    match tlb.lookup(k.tag(), k.address(&mut rng)) {
                        Some(e) => {
                            // The "access": take a while, then check nobody completed a sync
                            // for a newer version meanwhile.
                            if rng.below(4) == 0 {
                                std::thread::yield_now();
                            }
                            let floor = world.floor(k);
                            assert!(
                                floor <= u64::from(e.flags),
                                "{k:?}: synchronize completed (floor {floor}) while version {} \
                                 was still in use",
                                e.flags
                            );
                            world.checked_hits.fetch_add(1, Ordering::Relaxed);
                        }
                        None => world.fill(tlb, k, &mut rng),
                    }
                    drop(guard);
                }
            });
        }
        let (tlb, world) = (&tlb, &world);
        s.spawn(move || {
            let mut rng = Rng(0xabad_cafe_f00d_1234);
            while !world.stop.load(Ordering::Relaxed) {
                let k = keys(&mut rng);
                let scope = k.covering_scope(&mut rng);
                let (Some(truth), Some(floor)) =
                    (world.truth.get(k.slot()), world.floor.get(k.slot()))
                else {
                    continue;
                };
                let v = truth.fetch_add(1, Ordering::SeqCst) + 1;
                tlb.invalidate(scope);
                tlb.synchronize();
                floor.fetch_max(v, Ordering::SeqCst);
                world.writes.fetch_add(1, Ordering::Relaxed);
            }
        });
        run_until_enough(world, duration);
    });
    let (hits, writes) = (
        world.checked_hits.load(Ordering::Relaxed),
        world.writes.load(Ordering::Relaxed),
    );
    assert!(
        hits > MIN_HITS && writes > MIN_WRITES,
        "too little work: {hits} hits, {writes} writes"
    );
}

/// Guards held across an access delay `synchronize` (CI-sized: ~0.5 s).
#[test]
fn test_iotlb_stress_synchronize_waits_for_guards() {
    run_guarded(Duration::from_millis(500));
}

/// The same, longer.
#[test]
#[ignore = "long stress run; cargo test -p viommu-common -- --ignored"]
fn test_iotlb_stress_synchronize_waits_for_guards_long() {
    run_guarded(Duration::from_secs(20));
}
