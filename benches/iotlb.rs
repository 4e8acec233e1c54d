//! IOTLB lookup benchmarks: the lock-free table against the concurrent maps a VMM author would
//! otherwise pick, with the same key and value, on one and two threads, and under concurrent
//! invalidation.
//!
//! Both tables do what a DMA hit needs: find the entry of (tag, address) and produce the
//! [`DmaMapping`](viommu_common::DmaMapping) of the address (output address and the permissions
//! of the access); the lock-free table through [`Iotlb::lookup_mapping`], the device hit path
//! (smmuv3), the baselines through `TlbEntry::mapping` of the entry they find. Both hand the same
//! `(output, perms)` pair to `black_box`, on one thread and on two.
//!
//! Baselines, each keyed by (tag, page number) with a `TlbEntry` value and std's default
//! hasher: `mutex_hashmap` (`Mutex<HashMap>`), `rwlock_hashmap` (`RwLock<HashMap>`, read
//! locks), `dashmap` (`DashMap`, sharded read-write locks), `papaya` (`papaya::HashMap`,
//! lock-free, a pin per lookup) and `scc_hashindex` (`scc::HashIndex::peek_with`, lock-free
//! reads).
//!
//! Group `iotlb`:
//! - `lookup_hit/{lockfree,<baseline>}`: one thread, hits over 1024 cached pages.
//! - `lookup_hit_2threads/{lockfree,<baseline>}`: two threads doing the same; the reported
//!   time is wall time divided by the total number of lookups of both threads, so it compares
//!   directly with `lookup_hit` (half the time = twice the throughput).
//! - `lookup_during_invalidation/lockfree`: one thread's hits while another thread invalidates
//!   other ASIDs (whole-ASID and VA-range invalidations) in a loop.
//! - `invalidate_all`: one `Invalidation::All` of a table holding the 1024 pages.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use viommu_common::iotlb::{InvRange, Invalidation, Iotlb, Regime, TlbEntry, TlbTag};
use viommu_common::{Asid, Perms, Vmid};

/// Cached pages (a power of two).
const PAGES: usize = 1024;
/// ASIDs the pages are spread over.
const ASIDS: u16 = 4;

/// The workload: (tag, iova) pairs that all hit. A fixed-size array, so the measured loop has
/// no bounds check (the index is masked).
type Workload = [(TlbTag, u64); PAGES];

/// The workload: (tag, iova) pairs that all hit.
fn workload() -> Vec<(TlbTag, u64)> {
    let mut v: Vec<(TlbTag, u64)> = (0..PAGES as u64)
        .map(|i| {
            let asid = Asid((i % u64::from(ASIDS)) as u16 + 1);
            (
                TlbTag::stage1(Vmid(0), asid),
                0x1_0000_0000 + (i << 12) + 0x123,
            )
        })
        .collect();
    // Visit in a scrambled order so neither table sees a sequential pattern.
    let n = v.len();
    for i in 0..n {
        v.swap(i, (i * 617 + 31) % n);
    }
    v
}

fn entry(iova: u64) -> TlbEntry {
    TlbEntry {
        input: iova & !0xfff,
        output: 0x8_0000_0000 + (iova & !0xfff),
        size_log2: 12,
        level: 3,
        perms: Perms::RW,
        priv_perms: Perms::RW,
        attrs: Default::default(),
        global: false,
        ipa: None,
        flags: 0,
    }
}

fn lockfree_table(work: &[(TlbTag, u64)]) -> Iotlb {
    let tlb = Iotlb::new(4 * PAGES);
    for &(tag, iova) in work {
        assert!(tlb.insert(tlb.begin_fill(tag), entry(iova)));
    }
    for &(tag, iova) in work {
        assert!(tlb.lookup(tag, iova).is_some(), "bench table must hit");
    }
    tlb
}

/// The baseline: the same key (tag, page number) and value (`TlbEntry`) behind one mutex.
type MutexTable = Mutex<HashMap<(TlbTag, u64), TlbEntry>>;

fn mutex_table(work: &[(TlbTag, u64)]) -> MutexTable {
    Mutex::new(
        work.iter()
            .map(|&(tag, iova)| ((tag, iova >> 12), entry(iova)))
            .collect(),
    )
}

/// The key every baseline maps: (tag, page number).
type Key = (TlbTag, u64);

/// The baseline entries: the workload's pages.
fn baseline_entries(work: &[(TlbTag, u64)]) -> impl Iterator<Item = (Key, TlbEntry)> + '_ {
    work.iter()
        .map(|&(tag, iova)| ((tag, iova >> 12), entry(iova)))
}

/// `RwLock<HashMap>`: readers share the lock.
type RwLockTable = RwLock<HashMap<Key, TlbEntry>>;

/// What the loop keeps of a hit: the output address and the permissions, folded into one
/// register (an `Option<(u64, Perms)>` is returned through memory and read back right away,
/// which measures store forwarding rather than the tables).
#[inline(always)]
fn hit_value(output: u64, perms: Perms) -> u64 {
    output ^ (u64::from(perms.bits()) << 61)
}

/// What the loop keeps of a miss (never happens: every workload item hits).
const MISS: u64 = u64::MAX;

/// A table under test: the hit path of a DMA translation, `(output, perms)` folded by
/// [`hit_value`] or [`MISS`].
trait Lookup: Sync {
    fn hit(&self, tag: TlbTag, iova: u64) -> u64;
}

impl Lookup for MutexTable {
    #[inline(always)]
    fn hit(&self, tag: TlbTag, iova: u64) -> u64 {
        let Ok(map) = self.lock() else { return MISS };
        map.get(&(tag, iova >> 12)).map_or(MISS, |e| {
            let m = e.mapping(iova, false);
            hit_value(m.output, m.perms)
        })
    }
}

impl Lookup for RwLockTable {
    #[inline(always)]
    fn hit(&self, tag: TlbTag, iova: u64) -> u64 {
        let Ok(map) = self.read() else { return MISS };
        map.get(&(tag, iova >> 12)).map_or(MISS, |e| {
            let m = e.mapping(iova, false);
            hit_value(m.output, m.perms)
        })
    }
}

impl Lookup for dashmap::DashMap<Key, TlbEntry> {
    #[inline(always)]
    fn hit(&self, tag: TlbTag, iova: u64) -> u64 {
        self.get(&(tag, iova >> 12)).map_or(MISS, |e| {
            let m = e.mapping(iova, false);
            hit_value(m.output, m.perms)
        })
    }
}

impl Lookup for papaya::HashMap<Key, TlbEntry> {
    #[inline(always)]
    fn hit(&self, tag: TlbTag, iova: u64) -> u64 {
        self.pin().get(&(tag, iova >> 12)).map_or(MISS, |e| {
            let m = e.mapping(iova, false);
            hit_value(m.output, m.perms)
        })
    }
}

impl Lookup for scc::HashIndex<Key, TlbEntry> {
    #[inline(always)]
    fn hit(&self, tag: TlbTag, iova: u64) -> u64 {
        self.peek_with(&(tag, iova >> 12), |_, e| {
            let m = e.mapping(iova, false);
            hit_value(m.output, m.perms)
        })
        .unwrap_or(MISS)
    }
}

impl Lookup for Iotlb {
    #[inline(always)]
    fn hit(&self, tag: TlbTag, iova: u64) -> u64 {
        self.lookup_mapping(tag, iova, false)
            .map_or(MISS, |m| hit_value(m.output, m.perms))
    }
}

/// The measured loop, the same for every table and thread count: `iters` lookups of
/// consecutive workload items from `start`. The index goes through `black_box` (so the
/// compiler cannot know which item, and loads tag and address from the workload every time,
/// as a device reads them from a request) and so does each result. The index and the results
/// stay in registers (no loop-carried store-to-load forwarding, no result read back from
/// memory), and the table's lookup is inlined into it for both tables.
#[inline(always)]
fn lookups(iters: u64, work: &Workload, start: usize, t: &impl Lookup) -> Duration {
    let mut i = start;
    let begin = Instant::now();
    for _ in 0..iters {
        i = (i + 1) & (PAGES - 1);
        let (tag, iova) = work[black_box(i) & (PAGES - 1)];
        black_box(t.hit(tag, iova));
    }
    begin.elapsed()
}

/// Run `iters` lookups on each of two threads; returns wall time per lookup of both threads
/// (max of the two threads' times, started together, over 2).
fn two_threads(iters: u64, work: &Workload, t: &impl Lookup) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2usize)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    lookups(iters, work, i * PAGES / 2, t)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    times.into_iter().max().unwrap_or_default() / 2
}

fn bench_iotlb(c: &mut Criterion) {
    let work: Box<Workload> = match workload().into_boxed_slice().try_into() {
        Ok(w) => w,
        Err(_) => unreachable!("the workload has PAGES items"),
    };
    let tlb = lockfree_table(&work[..]);
    let mtx = mutex_table(&work[..]);
    let rwl: RwLockTable = RwLock::new(baseline_entries(&work[..]).collect());
    let dash: dashmap::DashMap<Key, TlbEntry> = baseline_entries(&work[..]).collect();
    let papaya: papaya::HashMap<Key, TlbEntry> = baseline_entries(&work[..]).collect();
    let scc_index = scc::HashIndex::<Key, TlbEntry>::default();
    for (k, e) in baseline_entries(&work[..]) {
        assert!(scc_index.insert(k, e).is_ok());
    }
    for &(tag, iova) in work.iter() {
        for t in [&rwl as &dyn Lookup, &dash, &papaya, &scc_index] {
            assert_ne!(t.hit(tag, iova), MISS, "baseline tables must hit");
        }
    }
    let mut g = c.benchmark_group("iotlb");

    g.bench_function("lookup_hit/lockfree", |b| {
        b.iter_custom(|iters| lookups(iters, &work, 0, &tlb))
    });
    g.bench_function("lookup_hit/mutex_hashmap", |b| {
        b.iter_custom(|iters| lookups(iters, &work, 0, &mtx))
    });
    g.bench_function("lookup_hit_2threads/lockfree", |b| {
        b.iter_custom(|iters| two_threads(iters, &work, &tlb))
    });
    g.bench_function("lookup_hit_2threads/mutex_hashmap", |b| {
        b.iter_custom(|iters| two_threads(iters, &work, &mtx))
    });
    bench_baseline(&mut g, "rwlock_hashmap", &work, &rwl);
    bench_baseline(&mut g, "dashmap", &work, &dash);
    bench_baseline(&mut g, "papaya", &work, &papaya);
    bench_baseline(&mut g, "scc_hashindex", &work, &scc_index);

    // A separate table, so the lookup benches below keep their entries.
    let flushed = lockfree_table(&work[..]);
    g.bench_function("invalidate_all", |b| {
        b.iter(|| flushed.invalidate(black_box(Invalidation::All)))
    });
    flushed.invalidate(Invalidation::All);
    assert!(flushed.lookup(work[0].0, work[0].1).is_none());

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Other ASIDs of the same VMID (16..=255, distinct from the looked-up 1..=4 in
            // their low byte, so they have their own generations): whole-ASID and VA-range
            // invalidations.
            let nh = Regime::Nh { vmid: Vmid(0) };
            let mut n = 0u16;
            while !stop.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let asid = Asid(16 + n % 240);
                tlb.invalidate(Invalidation::Asid(nh, asid));
                tlb.invalidate(Invalidation::Va {
                    regime: nh,
                    asid: Some(asid),
                    range: InvRange::new(0x1_0000_0000, 16 << 12).with_leaf(true),
                });
            }
        });
        g.bench_function("lookup_during_invalidation/lockfree", |b| {
            b.iter_custom(|iters| lookups(iters, &work, 0, &tlb))
        });
        stop.store(true, Ordering::Relaxed);
    });
    g.finish();
    let st = tlb.stats();
    eprintln!("iotlb stats after benches: {st:?}");
}

/// `lookup_hit/{name}` and `lookup_hit_2threads/{name}` of a baseline table.
fn bench_baseline(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    work: &Workload,
    t: &impl Lookup,
) {
    g.bench_function(format!("lookup_hit/{name}"), |b| {
        b.iter_custom(|iters| lookups(iters, work, 0, t))
    });
    g.bench_function(format!("lookup_hit_2threads/{name}"), |b| {
        b.iter_custom(|iters| two_threads(iters, work, t))
    });
}

criterion_group!(benches, bench_iotlb);
criterion_main!(benches);
