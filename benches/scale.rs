//! Scale benches (group `scale`): SMMUv3 IOTLB-hit translations from many threads over many
//! StreamIDs and ASIDs, and a working set four times the IOTLB's capacity.
//!
//! One SMMU, brought up by the Linux-style `GuestDriver`; every stream and substream maps the
//! same stage-1 page table (4 KiB pages), each under its own ASID where the case says so. Each
//! case translates a fixed list of `(StreamID, SubstreamID, IOVA)` keys in a fixed order;
//! thread `t` of `T` starts at key `t * keys / T`. Times are wall time divided by the total
//! number of translations of all threads (started together behind a barrier), so they compare
//! directly across thread counts: equal time = throughput scales with the cores, and on this
//! 2-core machine 4 and 8 threads are oversubscribed (they check that nothing collapses).
//!
//! - `sids_{1,64,4096}/threads_{2,4,8}`: one ASID; the keys spread over that many StreamIDs
//!   (`max(1024, StreamIDs)` keys: 1024 pages of one stream, 16 pages of each of 64 streams,
//!   one page of each of 4096 streams).
//! - `asids_{1,16,1024}/threads_{2,4,8}`: one stream with substreams 1..=ASIDs, each CD with
//!   its own ASID; 1024 keys (1024, 64 or 1 pages per ASID).
//! - `working_set_4x/cyclic`: one thread cycling over four times the IOTLB's capacity in
//!   pages (every translation misses and walks: the per-miss cost, no cliff beyond it).
//! - `working_set_4x/hot_cold`: one thread; three of four translations go to a hot set of a
//!   quarter of the capacity, the fourth streams over the 4x set. A design that flushes the
//!   whole table when it fills (QEMU flushes at 256 entries) loses the hot set each time; a
//!   per-entry eviction keeps it, so the hit rate stays near 75%.
//!
//! After each case the IOTLB hit rate over the case (warm-up included) is printed on stderr as
//! `scale/<id>: hit rate <pct>% (<hits> hits, <misses> misses)`.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use viommu_common::testing::guest_ram;
use viommu_common::traits::{DmaTranslator, NoInterrupts};
use viommu_common::{DmaRequest, SubstreamId};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::testing::{GuestDriver, Prot, S1Domain};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 256 << 20;
/// Base IOVA of the mapped pages.
const IOVA: u64 = 0x0000_0040_0000_0000;
/// First StreamID of the `sids_*` cases.
const SID_BASE: u32 = 0x1000;
/// The stream of the `asids_*` cases (substreams 1..=1024).
const PASID_SID: u32 = 0x10;
/// The stream of the working-set cases.
const WS_SID: u32 = 0x20;
const SID_COUNTS: [u32; 3] = [1, 64, 4096];
const ASID_COUNTS: [u32; 3] = [1, 16, 1024];
const THREADS: [usize; 3] = [2, 4, 8];
/// Keys of the hit cases (within the IOTLB's capacity).
const HIT_KEYS: u32 = 1024;

type Smmu<'a> = SmmuV3<&'a GuestMemoryMmap<()>>;

/// The requests of one case, in the order they are issued.
struct Keys(Vec<DmaRequest>);

impl Keys {
    /// `count` keys over `sids` streams (one ASID): key `k` is page `k / sids` of stream
    /// `SID_BASE + k % sids`.
    fn sids(sids: u32) -> Self {
        let count = HIT_KEYS.max(sids);
        Self(
            (0..count)
                .map(|k| page(SID_BASE + k % sids, None, u64::from(k / sids)))
                .collect(),
        )
    }

    /// `HIT_KEYS` keys over substreams `1..=asids` of `PASID_SID`.
    fn asids(asids: u32) -> Self {
        Self(
            (0..HIT_KEYS)
                .map(|k| page(PASID_SID, Some(1 + k % asids), u64::from(k / asids)))
                .collect(),
        )
    }
}

/// A read of 8 bytes in page `n` of the mapping.
fn page(sid: u32, ssid: Option<u32>, n: u64) -> DmaRequest {
    let mut r = DmaRequest::read(sid, IOVA + (n << 12) + 0x123, 8);
    r.substream = ssid.map(SubstreamId);
    r
}

/// `iters` translations of consecutive keys from `start`; returns the elapsed time.
#[inline(always)]
fn run(smmu: &Smmu<'_>, keys: &[DmaRequest], start: usize, iters: u64) -> Duration {
    let n = keys.len();
    let mut i = start % n;
    let begin = Instant::now();
    for _ in 0..iters {
        i += 1;
        if i == n {
            i = 0;
        }
        black_box(smmu.translate(black_box(&keys[i])).is_ok());
    }
    begin.elapsed()
}

/// `iters` translations on each of `threads` threads; wall time per translation of all threads.
fn threaded(smmu: &Smmu<'_>, keys: &[DmaRequest], threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    run(smmu, keys, t * keys.len() / threads, iters)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    times.into_iter().max().unwrap_or_default() / threads as u32
}

/// Run `f` as case `id`, then print the IOTLB hit rate it saw.
fn case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    smmu: &Smmu<'_>,
    id: &str,
    mut f: impl FnMut(u64) -> Duration,
) {
    let before = smmu.stats().iotlb;
    g.bench_function(id, |b| b.iter_custom(&mut f));
    let after = smmu.stats().iotlb;
    let hits = after.hits - before.hits;
    let misses = after.misses - before.misses;
    let rate = 100.0 * hits as f64 / (hits + misses).max(1) as f64;
    eprintln!("scale/{id}: hit rate {rate:.1}% ({hits} hits, {misses} misses)");
}

fn bench_scale(c: &mut Criterion) {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu: Smmu<'_> = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(NoInterrupts)).unwrap();
    let cap = smmu.iotlb_capacity() as u64;
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE);
    let dom = drv.new_s1_domain(1);
    drv.map_s1(&dom, IOVA, RAM + 0x0100_0000, 4 * cap * 0x1000, Prot::RW);
    for sid in SID_BASE..SID_BASE + SID_COUNTS[2] {
        drv.attach_s1(sid, &dom).unwrap();
    }
    drv.attach_s1(WS_SID, &dom).unwrap();
    // Substream s of PASID_SID: its own ASID (2 + s), the same page table.
    drv.attach_s1_pasid(PASID_SID, &dom, 11).unwrap();
    for ssid in 1..=ASID_COUNTS[2] {
        let d = S1Domain {
            asid: 1 + ssid as u16,
            pgtable: dom.pgtable.clone(),
        };
        let cd = drv.s1_cd(&d);
        drv.write_cd_steps(PASID_SID, ssid, cd, &mut || {}).unwrap();
    }

    let mut g = c.benchmark_group("scale");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(30);

    for sids in SID_COUNTS {
        let keys = Keys::sids(sids);
        assert!(keys.0.iter().all(|r| smmu.translate(r).is_ok()));
        for t in THREADS {
            let id = format!("sids_{sids}/threads_{t}");
            case(&mut g, &smmu, &id, |iters| {
                threaded(&smmu, &keys.0, t, iters)
            });
        }
    }
    for asids in ASID_COUNTS {
        let keys = Keys::asids(asids);
        assert!(keys.0.iter().all(|r| smmu.translate(r).is_ok()));
        for t in THREADS {
            let id = format!("asids_{asids}/threads_{t}");
            case(&mut g, &smmu, &id, |iters| {
                threaded(&smmu, &keys.0, t, iters)
            });
        }
    }

    let ws: Vec<DmaRequest> = (0..4 * cap).map(|n| page(WS_SID, None, n)).collect();
    case(&mut g, &smmu, "working_set_4x/cyclic", |iters| {
        run(&smmu, &ws, 0, iters)
    });
    // Three hot keys (pages 0..cap/4, in order) then one cold key (striding over all 4x).
    let hot = cap / 4;
    let mixed: Vec<DmaRequest> = (0..4 * cap)
        .map(|k| {
            if k % 4 == 3 {
                page(WS_SID, None, (k / 4 * 13) % (4 * cap))
            } else {
                page(WS_SID, None, (k - k / 4) % hot)
            }
        })
        .collect();
    case(&mut g, &smmu, "working_set_4x/hot_cold", |iters| {
        run(&smmu, &mixed, 0, iters)
    });
    g.finish();
}

criterion_group!(scale, bench_scale);
criterion_main!(scale);
