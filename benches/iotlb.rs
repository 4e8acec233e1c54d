//! IOTLB lookup benchmarks: the lock-free table against a `Mutex<HashMap>` baseline with the
//! same key and value, on one and two threads, and under concurrent invalidation.
//!
//! Every lookup is followed by what a DMA hit does with the result (translate the address, read
//! the permissions), identically for both tables, so the numbers compare whole hits rather than
//! how a 56-byte `Option<TlbEntry>` is copied into `black_box`.
//!
//! Group `iotlb`:
//! - `lookup_hit/{lockfree,mutex_hashmap}`: one thread, hits over 1024 cached pages.
//! - `lookup_hit_2threads/{lockfree,mutex_hashmap}`: two threads doing the same; the reported
//!   time is wall time divided by the total number of lookups of both threads, so it compares
//!   directly with `lookup_hit` (half the time = twice the throughput).
//! - `lookup_during_invalidation/lockfree`: one thread's hits while another thread invalidates
//!   other ASIDs (whole-ASID and VA-range invalidations) in a loop.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use viommu_common::iotlb::{InvRange, Invalidation, Iotlb, Regime, TlbEntry, TlbTag};
use viommu_common::{Asid, Perms, Vmid};

/// Cached pages (a power of two).
const PAGES: usize = 1024;
/// ASIDs the pages are spread over.
const ASIDS: u16 = 4;

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

fn mutex_lookup(t: &MutexTable, tag: TlbTag, iova: u64) -> Option<(u64, Perms)> {
    t.lock()
        .ok()?
        .get(&(tag, iova >> 12))
        .map(|e| use_hit(e, iova))
}

fn lockfree_lookup(t: &Iotlb, tag: TlbTag, iova: u64) -> Option<(u64, Perms)> {
    t.lookup(tag, iova).map(|e| use_hit(&e, iova))
}

/// What a translation does with a hit.
#[inline(always)]
fn use_hit(e: &TlbEntry, iova: u64) -> (u64, Perms) {
    (e.translate(iova), e.perms)
}

/// Run `iters` lookups on each of two threads; returns wall time per lookup of both threads
/// (max of the two threads' times, started together, over 2).
fn two_threads(
    iters: u64,
    work: &[(TlbTag, u64)],
    f: impl Fn(TlbTag, u64) -> bool + Sync,
) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2usize)
            .map(|t| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    let mut i = t * PAGES / 2;
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        i = (i + 1) & (PAGES - 1);
                        let (tag, iova) = work[i];
                        black_box(f(black_box(tag), black_box(iova)));
                    }
                    start.elapsed()
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
    let work = workload();
    let tlb = lockfree_table(&work);
    let mtx = mutex_table(&work);
    let mut g = c.benchmark_group("iotlb");

    let mut i = 0usize;
    g.bench_function("lookup_hit/lockfree", |b| {
        b.iter(|| {
            i = (i + 1) & (PAGES - 1);
            let (tag, iova) = work[i];
            lockfree_lookup(&tlb, black_box(tag), black_box(iova))
        })
    });
    g.bench_function("lookup_hit/mutex_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) & (PAGES - 1);
            let (tag, iova) = work[i];
            mutex_lookup(&mtx, black_box(tag), black_box(iova))
        })
    });
    g.bench_function("lookup_hit_2threads/lockfree", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &work, |tag, iova| {
                lockfree_lookup(&tlb, tag, iova).is_some()
            })
        })
    });
    g.bench_function("lookup_hit_2threads/mutex_hashmap", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &work, |tag, iova| {
                mutex_lookup(&mtx, tag, iova).is_some()
            })
        })
    });

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
            b.iter(|| {
                i = (i + 1) & (PAGES - 1);
                let (tag, iova) = work[i];
                lockfree_lookup(&tlb, black_box(tag), black_box(iova))
            })
        });
        stop.store(true, Ordering::Relaxed);
    });
    g.finish();
    let st = tlb.stats();
    eprintln!("iotlb stats after benches: {st:?}");
}

criterion_group!(benches, bench_iotlb);
criterion_main!(benches);
