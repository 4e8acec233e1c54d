//! A hostile guest: random register values, commands, STEs, CDs and page tables, seeded and
//! CI-fast. The device must not panic, hang, or grow without bound; and concurrency: DMA from
//! several threads while the vCPU invalidates never sees a translation after the CMD_SYNC that
//! removed it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::{DmaTranslator, MmioDevice};
use viommu_common::{AccessKind, DmaRequest};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{cmd, GuestDriver, Prot};
use vm_memory::{Bytes, GuestAddress};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 32 << 20;

const REGS: [u64; 30] = [
    r::CR0,
    r::CR1,
    r::CR2,
    r::GBPA,
    r::IRQ_CTRL,
    r::GERRORN,
    r::GERROR_IRQ_CFG0,
    r::GERROR_IRQ_CFG1,
    r::STRTAB_BASE,
    r::STRTAB_BASE + 4,
    r::STRTAB_BASE_CFG,
    r::CMDQ_BASE,
    r::CMDQ_BASE + 4,
    r::CMDQ_PROD,
    r::CMDQ_CONS,
    r::EVENTQ_BASE,
    r::EVENTQ_PROD_P1,
    r::EVENTQ_CONS_P1,
    r::EVENTQ_IRQ_CFG0,
    r::EVENTQ_IRQ_CFG1,
    r::PRIQ_BASE,
    r::PRIQ_PROD_P1,
    r::PRIQ_CONS_P1,
    r::PRIQ_IRQ_CFG0,
    r::IDR0,
    r::GERROR,
    0x8020,
    0x100,
    0xFD0,
    0x1FFFC,
];

fn rand_value(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..6) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.random::<u64>() & 0xFF,
        3 => RAM + (rng.random::<u64>() % RAM_SIZE),
        _ => rng.random(),
    }
}

fn fuzz_one(seed: u64, ops: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    // Vary the advertised features across seeds: linear stream table, wired interrupts,
    // no range invalidation, stage 1 only.
    let cfg = match seed % 3 {
        0 => SmmuConfig::default(),
        1 => SmmuConfig {
            two_level_stream_table: false,
            sid_bits: 8,
            msi: false,
            ..SmmuConfig::default()
        },
        _ => SmmuConfig {
            range_invalidation: false,
            stage2: false,
            ..SmmuConfig::default()
        },
    };
    assert!(cfg.caps().is_ok(), "seed {seed}: {:?}", cfg.caps());
    let smmu = SmmuV3::new(&cfg, &ram, irq.clone()).unwrap();
    smmu.set_cmdq_batch_limit(rng.random_range(1..64));
    // Start from a real bring-up so random mutations hit live structures.
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s1_domain(1);
    drv.map_s1(&dom, 0x10_0000, RAM + 0x0100_0000, 0x8000, Prot::RW);
    for sid in 0..4 {
        drv.attach_s1(sid, &dom).unwrap();
    }
    let hot_end = drv.alloc.next_free();
    for _ in 0..ops {
        match rng.random_range(0..10) {
            0 | 1 => {
                let off = if rng.random_bool(0.9) {
                    REGS[rng.random_range(0..REGS.len())]
                } else {
                    rng.random_range(0..0x20010)
                };
                let v = rand_value(&mut rng);
                let size = [4usize, 8, 4, 1, 2][rng.random_range(0..5)];
                let _ = smmu.mmio_write(off, &v.to_le_bytes()[..size]);
            }
            2 => {
                let mut b = [0u8; 8];
                let off = REGS[rng.random_range(0..REGS.len())];
                let _ = smmu.mmio_read(off, &mut b[..4]);
            }
            3 | 4 => {
                // Corrupt a qword of the live structures (stream table, CDs, page tables,
                // queues).
                let a = (RAM + (rng.random::<u64>() % (hot_end - RAM))) & !7;
                let v = rand_value(&mut rng);
                let _ = ram.write_obj(v, GuestAddress(a));
            }
            5 => {
                // Random or semi-valid commands.
                let c: cmd::Cmd = match rng.random_range(0..4) {
                    0 => [rng.random(), rng.random()],
                    1 => [
                        rng.random::<u64>() & !0xFF | u64::from(rng.random_range(0u8..0x50)),
                        rng.random(),
                    ],
                    2 => cmd::tlbi_range(
                        0x12,
                        0,
                        1,
                        rng.random(),
                        rng.random(),
                        rng.random(),
                        rng.random(),
                        rng.random(),
                        rng.random(),
                    ),
                    _ => cmd::cfgi_ste(rng.random_range(0..8)),
                };
                let _ = drv.issue(&[c]);
            }
            6 => {
                let _ = smmu.process_pending();
                drv.handle_gerror();
                let _ = drv.read_events();
            }
            _ => {
                let access =
                    [AccessKind::Read, AccessKind::Write, AccessKind::Exec][rng.random_range(0..3)];
                let mut req = DmaRequest::new(
                    rng.random_range(0..6),
                    if rng.random_bool(0.7) {
                        0x10_0000 + rng.random_range(0..0x9000)
                    } else {
                        rng.random()
                    },
                    rng.random_range(1..0x2000),
                    access,
                );
                if rng.random_bool(0.2) {
                    req = req.with_substream(rng.random_range(0..4));
                }
                if rng.random_bool(0.3) {
                    req = req.privileged();
                }
                let _ = smmu.translate(&req);
            }
        }
    }
    smmu.finish_pending();
    // After the storm, a fresh Linux bring-up (structures in untouched RAM) recovers the device
    // completely: the model holds no state the guest cannot reset.
    let mut fresh = GuestDriver::bring_up(&smmu, &ram, RAM + RAM_SIZE / 2, RAM_SIZE / 2);
    let dom = fresh.new_s1_domain(9);
    dom.pgtable.map(
        &ram,
        &mut fresh.alloc,
        0x7000,
        RAM + 0x0180_0000,
        0x1000,
        Prot::RW,
    );
    fresh.attach_s1(2, &dom).unwrap();
    let m = smmu.translate(&DmaRequest::read(2, 0x7010, 4)).unwrap();
    assert_eq!(m.output, RAM + 0x0180_0010, "seed {seed}");
}

/// Random register values, commands, STEs/CDs/page tables: no panic, no hang.
#[test]
fn test_random_guest_never_panics() {
    for seed in 0..6 {
        fuzz_one(seed, 2500);
    }
}

/// A guest that points the command queue at itself with PROD far ahead cannot keep the vCPU
/// thread busy: each access consumes one bounded batch.
#[test]
fn test_cmdq_batches_are_bounded() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(RecordingIrq::new())).unwrap();
    smmu.set_cmdq_batch_limit(16);
    // 2^10 PREFETCH_CONFIG commands.
    for i in 0..1024u64 {
        ram.write_obj(0x01u64, GuestAddress(RAM + 16 * i)).unwrap();
    }
    let w = |off: u64, v: u64, n: usize| smmu.mmio_write(off, &v.to_le_bytes()[..n]).unwrap();
    w(r::CMDQ_BASE, RAM | 10, 8);
    w(r::CR0, 0x8, 4);
    w(r::CMDQ_PROD, 1023, 4);
    let mut b = [0u8; 4];
    assert!(smmu.has_pending_work());
    smmu.mmio_read(r::CMDQ_PROD, &mut b).unwrap();
    let mut reads = 0;
    loop {
        smmu.mmio_read(r::CMDQ_CONS, &mut b).unwrap();
        reads += 1;
        if u32::from_le_bytes(b) == 1023 {
            break;
        }
        assert!(reads < 200);
    }
    assert_eq!(reads, 1023 / 16);
    assert!(!smmu.has_pending_work());
}

/// DMA threads translating while the vCPU unmaps and remaps: once the CMD_SYNC after an unmap
/// has completed, no translation that starts afterwards returns the old mapping.
#[test]
fn test_no_stale_translation_after_sync() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE);
    let dom = drv.new_s1_domain(1);
    let iova = 0x20_0000;
    drv.attach_s1(3, &dom).unwrap();
    // Generation g maps iova to RAM + 0x0100_0000 + g * 0x1000; `synced` = the newest g whose
    // predecessor has been invalidated (CMD_SYNC completed).
    let synced = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    let g = synced.load(Ordering::SeqCst);
                    if let Ok(m) = smmu.translate(&DmaRequest::read(3, iova, 4)) {
                        let seen = (m.output - RAM - 0x0100_0000) / 0x1000;
                        assert!(
                            seen >= g,
                            "stale translation: generation {seen} after sync of {g}"
                        );
                    }
                }
            });
        }
        for g in 0..200u64 {
            dom.pgtable.map(
                &ram,
                &mut drv.alloc,
                iova,
                RAM + 0x0100_0000 + g * 0x1000,
                0x1000,
                Prot::RW,
            );
            synced.store(g, Ordering::SeqCst);
            for _ in 0..20 {
                let _ = smmu.translate(&DmaRequest::read(3, iova, 4));
            }
            drv.unmap_s1(&dom, iova, 0x1000).unwrap();
            // Now generation g is gone too: any translation must be a fault or >= g + 1.
            synced.store(g + 1, Ordering::SeqCst);
        }
        stop.store(true, Ordering::Release);
    });
}

/// DMA threads translating while the vCPU switches the stream between its domain and the abort
/// STE (CFGI_STE + CMD_SYNC): once the switch to abort has completed, no translation that
/// starts afterwards succeeds.
#[test]
fn test_no_stale_configuration_after_cfgi_sync() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE);
    let dom = drv.new_s1_domain(1);
    dom.pgtable.map(
        &ram,
        &mut drv.alloc,
        0x5000,
        RAM + 0x0100_0000,
        0x1000,
        Prot::RW,
    );
    // Even and non-zero: the abort STE has been synced and the stream is not being
    // re-attached (odd while attaching and attached).
    let epoch = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    let e1 = epoch.load(Ordering::SeqCst);
                    let r = smmu.translate(&DmaRequest::read(4, 0x5000, 4));
                    let e2 = epoch.load(Ordering::SeqCst);
                    if e1 == e2 && e1 != 0 && e1 % 2 == 0 {
                        assert!(
                            r.is_err(),
                            "translation after the abort STE was synced: {r:?}"
                        );
                    }
                }
            });
        }
        for _ in 0..100 {
            epoch.fetch_add(1, Ordering::SeqCst);
            drv.attach_s1(4, &dom).unwrap();
            for _ in 0..10 {
                let _ = smmu.translate(&DmaRequest::read(4, 0x5000, 4));
            }
            let abort = drv.abort_ste();
            drv.write_ste(4, abort).unwrap();
            epoch.fetch_add(1, Ordering::SeqCst);
        }
        stop.store(true, Ordering::Release);
    });
}
