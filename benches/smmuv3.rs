//! SMMUv3 benches (group `smmuv3`):
//!
//! - `translate_hit`: a DMA translation that hits the IOTLB (target <= 8 ns);
//! - `translate_miss_4k_4level`: a translation that walks a 4-level 4 KiB stage-1 table
//!   (cycling over four times the IOTLB's capacity in pages; STE and CD cached; target
//!   <= 90 ns);
//! - `translate_after_cfgi`: the first translation after CFGI_STE + CFGI_CD (+ CMD_SYNC) of
//!   its stream: STE and CD fetched, decoded and cached, then the 4-level walk (only the
//!   translation is timed; the commands run between timed translations; target <= 174 ns);
//! - `cfgi_all`: a CFGI_ALL followed by a MSIPOLL CMD_SYNC, consumed through a CMDQ_PROD
//!   write, with the stream's configuration cached before each one;
//! - `cmdq_tlbi_va_sync`: command throughput: batches of TLBI_NH_VA followed by a MSIPOLL
//!   CMD_SYNC, consumed through CMDQ_PROD writes (elements = commands).
//! - `ats_translation_request`: an ATS Translation Request answered from the IOTLB (full ATS).
//! - `stall_resume_roundtrip`: the SVA page-fault round trip of the stall model: a DMA to an
//!   unmapped page stalls (event record written), the guest consumes the event, maps the page
//!   and sends CMD_RESUME(Retry), the device thread collects the retried translation; then the
//!   page is unmapped again (PTE cleared, IOTLB flushed) for the next iteration.
//!
//! The SMMU is brought up and the stream attached by the Linux-style `GuestDriver`.
//!
//! For instruction and cycle counts (`perf stat`), `SMMUV3_BENCH_LOOP=<name>:<count>` runs
//! `count` iterations of `translate_hit`, `translate_miss_4k_4level` or
//! `translate_after_cfgi` (untimed commands included) without criterion and exits; compare
//! against a run with count 0 to subtract the setup.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use viommu_common::testing::guest_ram;
use viommu_common::traits::{DmaTranslator, NoInterrupts};
use viommu_common::DmaRequest;
use viommu_smmuv3::ats::AtsRequest;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::testing::{cmd, GuestDriver, Prot};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x0000_7F12_3456_7000;
const MISS_IOVA: u64 = 0x0000_0040_0000_0000;
const MISS_PAGES: u64 = 16384;

/// `SMMUV3_BENCH_LOOP=<name>:<count>`: the bench to run `count` times without criterion.
fn perf_loop() -> Option<(String, u64)> {
    let v = std::env::var("SMMUV3_BENCH_LOOP").ok()?;
    let (name, count) = v.split_once(':')?;
    Some((name.to_string(), count.parse().ok()?))
}

fn bench_smmuv3(c: &mut Criterion) {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(NoInterrupts)).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE);
    let dom = drv.new_s1_domain(1);
    drv.map_s1(&dom, IOVA, RAM + 0x0200_0000, 0x10_000, Prot::RW);
    drv.map_s1(
        &dom,
        MISS_IOVA,
        RAM + 0x0100_0000,
        MISS_PAGES * 0x1000,
        Prot::RW,
    );
    drv.attach_s1(SID, &dom).unwrap();
    assert_eq!(smmu.iotlb_capacity() * 4, MISS_PAGES as usize);
    let req = DmaRequest::read(SID, IOVA + 0x123, 8);
    assert!(smmu.translate(&req).is_ok());
    let cfgi = [cmd::cfgi_ste(SID), cmd::cfgi_cd(SID, 0, true)];

    if let Some((name, count)) = perf_loop() {
        let mut i = 0u64;
        for _ in 0..count {
            i = (i + 1) % MISS_PAGES;
            let r = DmaRequest::read(SID, MISS_IOVA + i * 0x1000, 8);
            match name.as_str() {
                "translate_hit" => {
                    black_box(smmu.translate(black_box(&req)).is_ok());
                }
                "translate_miss_4k_4level" => {
                    black_box(smmu.translate(black_box(&r)).is_ok());
                }
                "translate_after_cfgi" => {
                    drv.issue_sync(&cfgi).unwrap();
                    black_box(smmu.translate(black_box(&r)).is_ok());
                }
                _ => panic!("unknown SMMUV3_BENCH_LOOP name {name}"),
            }
        }
        std::process::exit(0);
    }

    let mut g = c.benchmark_group("smmuv3");
    g.bench_function("translate_hit", |b| {
        b.iter(|| black_box(smmu.translate(black_box(&req))))
    });

    // Every iteration misses: the translations cycle over MISS_PAGES distinct pages, four
    // times the IOTLB's capacity, so each one walks all four levels of the 4 KiB stage-1
    // table (and inserts, evicting an older entry), as a DMA stream over a large buffer does.
    let mut i = 0u64;
    g.bench_function("translate_miss_4k_4level", |b| {
        b.iter(|| {
            i = (i + 1) % MISS_PAGES;
            let r = DmaRequest::read(SID, MISS_IOVA + i * 0x1000, 8);
            black_box(smmu.translate(black_box(&r)).is_ok())
        })
    });

    // Each timed translation follows a CFGI_STE + CFGI_CD of its stream (issued untimed), so
    // it fetches and decodes both, caches them and the route, then walks a page it has not
    // walked for a while (the same cycle as above, so the IOTLB misses too).
    g.bench_function("translate_after_cfgi", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                drv.issue_sync(&cfgi).unwrap();
                i = (i + 1) % MISS_PAGES;
                let r = DmaRequest::read(SID, MISS_IOVA + i * 0x1000, 8);
                let t = Instant::now();
                black_box(smmu.translate(black_box(&r)).is_ok());
                total += t.elapsed();
            }
            total
        })
    });

    // A CFGI_ALL + CMD_SYNC through the queue; the translation before it re-caches the
    // stream's STE, CD and route, so each CFGI_ALL has something to drop.
    let cfgi_all = [cmd::cfgi_all()];
    g.bench_function("cfgi_all", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                black_box(smmu.translate(black_box(&req)).is_ok());
                let t = Instant::now();
                drv.issue_sync(black_box(&cfgi_all)).unwrap();
                total += t.elapsed();
            }
            total
        })
    });

    const BATCH: u64 = 64;
    g.throughput(Throughput::Elements(BATCH + 1));
    let cmds: Vec<_> = (0..BATCH)
        .map(|i| cmd::tlbi_nh_va(0, 1, IOVA + i * 0x1000, true))
        .collect();
    g.bench_function("cmdq_tlbi_va_sync", |b| {
        b.iter(|| drv.issue_sync(black_box(&cmds)).unwrap())
    });
    g.finish();
}

/// `ats_translation_request`: an ATS Translation Request (full ATS, EATS = 0b01) from an
/// endpoint whose translation is in the IOTLB, answered with the completion its ATC caches.
fn bench_ats(c: &mut Criterion) {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig {
        ats: true,
        ..SmmuConfig::default()
    };
    let smmu = SmmuV3::new(&cfg, &ram, Arc::new(NoInterrupts)).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE);
    let dom = drv.new_s1_domain(1);
    drv.map_s1(&dom, IOVA, RAM + 0x0200_0000, 0x10_000, Prot::RW);
    let (table, fmt, cdmax) = drv.cd_table(SID, 0);
    let cd = drv.s1_cd(&dom);
    drv.write_cd_steps(SID, 0, cd, &mut || {}).unwrap();
    let mut ste = drv.cdtable_ste(table, fmt, cdmax, 2);
    ste[1] |= 1 << 28; // EATS = 0b01
    drv.write_ste(SID, ste).unwrap();
    let req = AtsRequest::new(SID, IOVA + 0x1000);
    assert_eq!(smmu.ats_translate(&req).unwrap().output, RAM + 0x0200_1000);
    let mut g = c.benchmark_group("smmuv3");
    g.bench_function("ats_translation_request", |b| {
        b.iter(|| black_box(smmu.ats_translate(black_box(&req))))
    });
    g.finish();
}

fn bench_stall(c: &mut Criterion) {
    use viommu_common::StreamId;
    use viommu_smmuv3::spec::idr::StallModel;
    use viommu_smmuv3::stall::StallStatus;

    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig {
        stall_model: StallModel::STALL_TERMINATE,
        ..SmmuConfig::default()
    };
    let smmu = SmmuV3::new(&cfg, &ram, Arc::new(NoInterrupts)).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s1_domain(1);
    // A `dma-can-stall` master: CD.S = 1, STE.S1STALLD = 0.
    drv.attach_s1_stall(SID, &dom).unwrap();
    let pa = RAM + 0x0300_0000;
    // Build the intermediate tables once; each iteration only toggles the leaf.
    dom.pgtable
        .map(&ram, &mut drv.alloc, IOVA, pa, 0x1000, Prot::RW);
    dom.pgtable.unmap(&ram, IOVA);
    let req = DmaRequest::write(SID, IOVA + 0x40, 64);

    let mut g = c.benchmark_group("smmuv3");
    g.bench_function("stall_resume_roundtrip", |b| {
        b.iter(|| {
            let stag = match smmu.translate(&req) {
                Err(f) => f.stall_tag.expect("stalled"),
                Ok(_) => unreachable!("the page is unmapped"),
            };
            black_box(drv.read_events());
            dom.pgtable
                .map(&ram, &mut drv.alloc, IOVA, pa, 0x1000, Prot::RW);
            drv.issue(&[cmd::resume(SID, stag, 1)]).unwrap();
            let st = smmu.stall_status(StreamId(SID), stag);
            assert!(matches!(st, StallStatus::Resolved { result: Ok(_), .. }));
            dom.pgtable.unmap(&ram, IOVA);
            smmu.flush_iotlb();
        })
    });
    g.finish();
}

criterion_group!(benches, bench_smmuv3, bench_ats, bench_stall);
criterion_main!(benches);
