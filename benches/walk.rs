//! VMSAv8-64 walker benchmarks: cold walks (no IOTLB) through tables in guest memory, laid out
//! by the io-pgtable-style builder. Target: `walk/stage1_4k_4level` <= 200 ns.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use viommu_common::testing::guest_ram;
use viommu_common::testing::pgtable::{
    LpaeBuilder, PgFormat, IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE,
};
use viommu_common::walk::{walk_stage1, walk_stage2};
use viommu_common::{AccessKind, Granule};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: usize = 16 << 20;
/// Pages spread over different level-0..2 tables so consecutive walks do not share a path.
const PAGES: u64 = 64;

fn iova(i: u64) -> u64 {
    (i % 4) << 39 | ((i * 7) % 512) << 30 | ((i * 13) % 512) << 21 | ((i * 31) % 512) << 12
}

fn bench_walk(c: &mut Criterion) {
    let m = guest_ram(RAM, RAM_SIZE);
    let prot = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;
    let mut s1 =
        LpaeBuilder::new(&m, PgFormat::Stage1, Granule::K4, 48, 48, RAM, 4 << 20).expect("s1");
    let mut s2 = LpaeBuilder::new(
        &m,
        PgFormat::Stage2,
        Granule::K4,
        48,
        48,
        RAM + (4 << 20),
        8 << 20,
    )
    .expect("s2");
    for i in 0..PAGES {
        s1.map(iova(i), 0x8000_0000 + i * 0x1000, 0x1000, prot)
            .expect("map s1");
        s2.map(iova(i), 0x8000_0000 + i * 0x1000, 0x1000, prot)
            .expect("map s2");
    }
    // Stage 2 for nesting: identity-map the stage-1 tables and the stage-1 outputs (2 MiB).
    s2.map(RAM, RAM, 1 << 21, prot).expect("map s1 tables");
    s2.map(RAM + (1 << 21), RAM + (1 << 21), 1 << 21, prot)
        .expect("map s1 tables");
    s2.map(0x8000_0000, 0x1_0000_0000, 1 << 21, prot)
        .expect("map outputs");
    let c1 = s1.stage1_config();
    let c2 = s2.stage2_config();

    let mut g = c.benchmark_group("walk");
    let mut i = 0u64;
    g.bench_function("stage1_4k_4level", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            let r = walk_stage1(
                &m,
                &c1,
                black_box(iova(i) | 0x42),
                AccessKind::Read,
                false,
                None,
            );
            black_box(r.expect("mapped"))
        })
    });
    g.bench_function("stage2_4k_4level", |b| {
        b.iter(|| {
            i = (i + 1) % PAGES;
            let r = walk_stage2(&m, &c2, black_box(iova(i) | 0x42), AccessKind::Write, false);
            black_box(r.expect("mapped"))
        })
    });
    g.bench_function("nested_4k_4level", |b| {
        let hook = |ipa: u64, acc: AccessKind| walk_stage2(&m, &c2, ipa, acc, false);
        b.iter(|| {
            i = (i + 1) % PAGES;
            let r = walk_stage1(
                &m,
                &c1,
                black_box(iova(i) | 0x42),
                AccessKind::Read,
                false,
                Some(&hook),
            );
            black_box(r.expect("mapped"))
        })
    });
    g.finish();
}

criterion_group!(walk, bench_walk);
criterion_main!(walk);
