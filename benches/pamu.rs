//! PAMU translation benches (criterion group `pamu`).
//!
//! - `translate_hit`: a single translated window (TV-1) through `DmaTranslator::translate`,
//!   over a borrowed `&GuestMemoryMmap` (the snapshot of the memory map is the reference itself,
//!   so this is the model's own cost). The model keeps no entry cache, so every iteration
//!   re-reads the PPAACE from guest memory: this *is* the path that observes live table updates
//!   without invalidation (checked before measuring). Target: <= 20 ns.
//! - `translate_hit_arc`: the same over `Arc<GuestMemoryMmap>` (the snapshot per translation
//!   is a reference-count increment and decrement).
//! - `translate_hit_atomic`: the same over a VMM's `GuestMemoryAtomic<GuestMemoryMmap>` (the
//!   snapshot per translation is an arc-swap load), the hotplug-capable setup.
//! - `translate_subwindow`: subwindow 1 of TV-2's 8-way window (PPAACE + SPAACE reads).
//! - `translate_identity`: the post-5.13 identity gate, the common case of a current guest.
//!
//! For instruction and cycle counts (callgrind, `perf stat`), `PAMU_BENCH_LOOP=<name>:<count>`
//! runs `count` iterations of one of the benches above without criterion and exits; compare
//! against a run with count 0 to subtract the setup.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use viommu_common::access::DmaRequest;
use viommu_common::mem::GuestRam;
use viommu_common::testing::guest_ram;
use viommu_common::traits::{DmaTranslator, NoInterrupts};
use viommu_pamu::testing::{GuestDriver, LinuxVersion, PaactBuilder, RIG_RAM, RIG_TABLES};
use viommu_pamu::{Pamu, PamuConfig};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};

/// A P4080 PAMU over `mem`.
fn p4080<M: GuestRam>(mem: M) -> Pamu<M> {
    Pamu::new(PamuConfig::p4080(), mem, Arc::new(NoInterrupts)).expect("P4080 profile")
}

/// Probe `pamu` like Linux and lay out TV-1, TV-2 and TV-3 in `mem`, its current memory map.
fn setup<M: GuestRam>(pamu: &Pamu<M>, mem: &GuestMemoryMmap<()>) {
    let drv = GuestDriver::new(pamu, RIG_TABLES, LinuxVersion::Pre513);
    drv.probe().expect("probe");
    let b = PaactBuilder::new(mem, drv.tables.clone());
    b.ppaace(0x30, [0, 0x8000_06D9, 0x80, 4, 1, 0x2000_0000, 0, 0])
        .expect("TV-1");
    b.ppaace(0x21, [0, 0x779, 0x80, 0x24, 2, 0x680, 0x10, 0])
        .expect("TV-2");
    b.spaace(0x10, [0, 0x0021_000B, 0x80, 4, 1, 0x0800_03C0, 0, 0])
        .expect("TV-2 w1");
    b.ppaace(0x40, [0, 0x8D9, 0x80, 4, 0, 0, 0, 0])
        .expect("TV-3");
    // The hit path observes a live update with no invalidation: change TWBAH, translate, restore.
    let req = DmaRequest::read(0x30, 0x8123_4560, 8);
    assert_eq!(pamu.translate(&req).unwrap().output, 0x1_2123_4560);
    b.ppaace(0x30, [0, 0x8000_06D9, 0x80, 4, 2, 0x2000_0000, 0, 0])
        .expect("update");
    assert_eq!(pamu.translate(&req).unwrap().output, 0x2_2123_4560);
    b.ppaace(0x30, [0, 0x8000_06D9, 0x80, 4, 1, 0x2000_0000, 0, 0])
        .expect("restore");
}

/// `PAMU_BENCH_LOOP=<name>:<count>`: the bench to run `count` times without criterion.
fn perf_loop() -> Option<(String, u64)> {
    let v = std::env::var("PAMU_BENCH_LOOP").ok()?;
    let (name, count) = v.split_once(':')?;
    Some((name.to_string(), count.parse().ok()?))
}

fn bench_pamu(c: &mut Criterion) {
    let ram = guest_ram(0, RIG_RAM);
    let p = p4080(&ram);
    setup(&p, &ram);
    let shared = Arc::new(guest_ram(0, RIG_RAM));
    let p_arc = p4080(shared.clone());
    setup(&p_arc, &shared);
    let atomic = GuestMemoryAtomic::new(guest_ram(0, RIG_RAM));
    let p_atomic = p4080(atomic.clone());
    setup(&p_atomic, &atomic.memory());

    let hit = DmaRequest::read(0x30, 0x8123_4560, 8);
    let sub = DmaRequest::read(0x21, 0x0800_0010, 8);
    assert_eq!(p.translate(&sub).unwrap().output, 0x1_0800_0010);
    let id = DmaRequest::write(0x40, 0x1234_5000, 64);

    if let Some((name, count)) = perf_loop() {
        let run_hit = || p.translate(black_box(&hit)).is_ok();
        let run_hit_arc = || p_arc.translate(black_box(&hit)).is_ok();
        let run_hit_atomic = || p_atomic.translate(black_box(&hit)).is_ok();
        let run_subwindow = || p.translate(black_box(&sub)).is_ok();
        let run_identity = || p.translate(black_box(&id)).is_ok();
        let run: &dyn Fn() -> bool = match name.as_str() {
            "translate_hit" => &run_hit,
            "translate_hit_arc" => &run_hit_arc,
            "translate_hit_atomic" => &run_hit_atomic,
            "translate_subwindow" => &run_subwindow,
            "translate_identity" => &run_identity,
            _ => panic!("unknown PAMU_BENCH_LOOP name {name}"),
        };
        for _ in 0..count {
            black_box(run());
        }
        std::process::exit(0);
    }

    let mut g = c.benchmark_group("pamu");
    g.bench_function("translate_hit", |b| b.iter(|| p.translate(black_box(&hit))));
    g.bench_function("translate_hit_arc", |b| {
        b.iter(|| p_arc.translate(black_box(&hit)))
    });
    g.bench_function("translate_hit_atomic", |b| {
        b.iter(|| p_atomic.translate(black_box(&hit)))
    });
    g.bench_function("translate_subwindow", |b| {
        b.iter(|| p.translate(black_box(&sub)))
    });
    g.bench_function("translate_identity", |b| {
        b.iter(|| p.translate(black_box(&id)))
    });
    g.finish();
}

criterion_group!(pamu, bench_pamu);
criterion_main!(pamu);
