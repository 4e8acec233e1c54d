//! Hostile-guest robustness: random register writes (any offset, size, value), random table
//! contents and table registers pointing anywhere, random DMA (any LIODN, address, length,
//! direction) and MSI writes. Nothing may panic or hang, and the interrupt lines must always
//! equal what the guest-visible PICS/ECC registers say.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use viommu_common::access::{AccessKind, DmaRequest};
use viommu_common::traits::{DmaTranslator, MmioDevice};
use viommu_pamu::spec::regs::{Reg, INSTANCE_STRIDE};
use viommu_pamu::testing::{LinuxVersion, Rig, RIG_RAM, RIG_TABLES};
use viommu_pamu::PamuConfig;

const INTERESTING: [u32; 12] = [
    0,
    1,
    0xFFFF_FFFF,
    0x8000_0000,
    0x4000_1011,
    0xC000_0000,
    0x7FFF,
    0xF,
    0x8D9,
    0x779,
    0x24,
    0x8,
];

fn value(rng: &mut StdRng) -> u32 {
    if rng.random_bool(0.5) {
        INTERESTING[rng.random_range(0..INTERESTING.len())]
    } else {
        rng.random()
    }
}

fn check_lines(rig: &Rig) {
    let n = rig.pamu.caps().instances;
    let av = (0..n).any(|i| rig.pamu.read_reg(i, Reg::Pics) & 0xC == 0xC);
    let err = (0..n).any(|i| {
        let p = rig.pamu.read_reg(i, Reg::Pics);
        (p & 3 == 3) || (rig.pamu.read_reg(i, Reg::Eedet) & rig.pamu.read_reg(i, Reg::Eeinten)) != 0
    });
    assert_eq!(rig.pamu.av_line_level(), av, "AV line");
    assert_eq!(rig.pamu.err_line_level(), err, "error line");
}

fn run(seed: u64, ops: usize, config: PamuConfig) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rig = Rig::new(config);
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let size = rig.pamu.mmio_size();
    let mem = rig.mem();
    for _ in 0..ops {
        match rng.random_range(0..10) {
            0 | 1 => {
                let inst = u64::from(rng.random_range(0..rig.pamu.caps().instances));
                let reg = Reg::ALL[rng.random_range(0..Reg::ALL.len())];
                let v = value(&mut rng);
                let _ = rig
                    .pamu
                    .mmio_write(inst * INSTANCE_STRIDE + reg.offset(), &v.to_be_bytes());
            }
            2 => {
                let off = rng.random_range(0..size + 16);
                let len = [1usize, 2, 3, 4, 8, 16][rng.random_range(0..6)];
                let mut buf = vec![0u8; len];
                if rng.random_bool(0.5) {
                    let _ = rig.pamu.mmio_read(off, &mut buf);
                } else {
                    rng.fill(&mut buf[..]);
                    let _ = rig.pamu.mmio_write(off, &buf);
                }
            }
            3 | 4 => {
                // Random words into the table block (or anywhere in RAM).
                let a = if rng.random_bool(0.8) {
                    RIG_TABLES + rng.random_range(0..0x34800u64 / 4) * 4
                } else {
                    rng.random_range(0..RIG_RAM as u64 / 4) * 4
                };
                let _ = viommu_common::mem::write_u32_be(mem, a, value(&mut rng));
            }
            5..=7 => {
                let liodn = match rng.random_range(0..3) {
                    0 => rng.random_range(0..0x10),
                    1 => rng.random_range(0..0x600),
                    _ => rng.random(),
                };
                let addr = if rng.random_bool(0.5) {
                    rng.random_range(0..1u64 << 36)
                } else {
                    rng.random()
                };
                let len = [0, 1, 4, 64, 0x1000, u64::MAX, rng.random()][rng.random_range(0..7)];
                let acc =
                    [AccessKind::Read, AccessKind::Write, AccessKind::Exec][rng.random_range(0..3)];
                let _ = rig.pamu.translate(&DmaRequest::new(liodn, addr, len, acc));
                let ioe = rng.random();
                let _ = rig.pamu.probe(liodn, addr, len, acc, ioe);
            }
            8 => {
                let _ = rig
                    .pamu
                    .msi_write(rng.random_range(0..0x40), rng.random(), rng.random());
            }
            _ => rig.pamu.write_bypass_register(value(&mut rng)),
        }
        check_lines(&rig);
    }
}

/// P4080 profile, many seeds.
#[test]
fn test_random_ops_p4080_no_panic() {
    for seed in 0..8 {
        run(seed, 3000, PamuConfig::p4080());
    }
}

/// T4240 profile and a minimal one-instance, one-bank, 2-subwindow configuration.
#[test]
fn test_random_ops_other_profiles_no_panic() {
    run(100, 5000, PamuConfig::t4240());
    let tiny = PamuConfig {
        instances: 1,
        max_subwindows_log2: 1,
        msi_banks: 0,
        max_liodn: 0x3F,
        ..PamuConfig::p4080()
    };
    run(101, 5000, tiny);
}

/// Adversarial entries: every combination of V/PT/MW/ATM/OTM and extreme WSE/WCE/SWSE/FSPI
/// values decodes to a translation or a typed fault.
#[test]
fn test_adversarial_entries_decode_to_typed_results() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let pe = drv.tables.ppba + 0x40;
    let mut n = 0u32;
    for w1_low in 0..64u32 {
        for wse in [0u32, 10, 11, 30, 62, 63] {
            for w3 in [0u32, 0x3, 0x4, 0x7, 0x8, 0xC, 0xF4, 0x76, 0x1E] {
                for fspi in [0u32, 0x7FF, u32::MAX] {
                    let words = [
                        u32::MAX,
                        (wse << 6) | w1_low,
                        0xFFFF_FFFF,
                        w3,
                        u32::MAX,
                        0xFFFF_FFC0,
                        fspi,
                        0xFFFF,
                    ];
                    for (i, w) in words.iter().enumerate() {
                        viommu_common::mem::write_u32_be(mem, pe + 4 * i as u64, *w).unwrap();
                    }
                    for a in [0u64, 0xFFF, 1 << 35, u64::MAX - 3] {
                        let _ = rig.pamu.translate(&DmaRequest::read(1, a, 4));
                        n += 1;
                    }
                }
            }
        }
    }
    assert_eq!(n, 64 * 6 * 9 * 3 * 4);
    check_lines(&rig);
}
