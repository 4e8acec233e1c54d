//! Randomized robustness: arbitrary bytes as page tables and arbitrary configurations must never
//! panic, must terminate, and any successful translation must lie within the output size and
//! grant the access it was asked for. Seeded, so failures reproduce.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vm_memory::GuestMemoryMmap;

use crate::access::AccessKind;
use crate::addr::Granule;
use crate::testing::guest_ram;
use crate::walk::{
    walk_stage1, walk_stage2, Stage1Config, Stage2Config, WalkFault, WalkFaultKind, WalkResult,
};

const RAM_BASE: u64 = 0;
const RAM_SIZE: usize = 1 << 19;
const ITERATIONS: usize = 20_000;

const GRANULES: [Granule; 3] = [Granule::K4, Granule::K16, Granule::K64];
const OAS: [u32; 10] = [0, 31, 32, 36, 40, 42, 44, 48, 52, 64];

/// A descriptor that is either pure noise or plausible (valid bits, an address inside RAM,
/// random attributes), so walks get deep.
fn random_desc(rng: &mut StdRng) -> u64 {
    let noise: u64 = rng.random();
    if rng.random_bool(0.3) {
        return noise;
    }
    let addr = rng.random_range(0..RAM_SIZE as u64) & !0xFFF;
    let attrs = noise & 0xFFF8_0000_0000_0FFC;
    attrs | addr | rng.random_range(0..4u64)
}

fn fill(rng: &mut StdRng, m: &GuestMemoryMmap<()>) {
    for off in (0..RAM_SIZE as u64).step_by(8) {
        crate::mem::write_u64_le(m, RAM_BASE + off, random_desc(rng)).unwrap();
    }
}

fn random_addr(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..4) {
        0 => rng.random(),
        1 => rng.random::<u64>() & 0x0000_FFFF_FFFF_FFFF,
        2 => rng.random::<u64>() | 0xFFFF_0000_0000_0000,
        _ => rng.random::<u64>() & 0xFF00_FFFF_FFFF_FFFF,
    }
}

/// An address inside an `ia_bits` input range most of the time (sign-extended for the upper
/// region), arbitrary otherwise.
fn random_in_range(rng: &mut StdRng, ia_bits: u32, upper: bool) -> u64 {
    if rng.random_bool(0.2) || ia_bits >= 64 {
        return random_addr(rng);
    }
    let low = rng.random::<u64>() & crate::addr::low_mask(ia_bits);
    if upper {
        low | !crate::addr::low_mask(ia_bits)
    } else {
        low
    }
}

fn random_access(rng: &mut StdRng) -> AccessKind {
    [AccessKind::Read, AccessKind::Write, AccessKind::Exec][rng.random_range(0..3)]
}

fn random_s1(rng: &mut StdRng) -> Stage1Config {
    let mut c = Stage1Config::new(
        GRANULES[rng.random_range(0..3)],
        if rng.random_bool(0.8) {
            rng.random_range(12..=40)
        } else {
            rng.random()
        },
        if rng.random_bool(0.9) {
            rng.random_range(0..RAM_SIZE as u64)
        } else {
            rng.random()
        },
        if rng.random_bool(0.9) {
            OAS[rng.random_range(2..9)]
        } else {
            OAS[rng.random_range(0..10)]
        },
    );
    c.upper = rng.random();
    c.tbi = rng.random();
    c.epd = rng.random_bool(0.05);
    c.hpd = rng.random();
    c.ha = rng.random();
    c.hd = rng.random();
    c.affd = rng.random();
    c.wxn = rng.random();
    c.pan = rng.random();
    c.mair = rng.random();
    c.lva = rng.random();
    c
}

fn random_s2(rng: &mut StdRng) -> Stage2Config {
    let mut c = Stage2Config::new(
        GRANULES[rng.random_range(0..3)],
        if rng.random_bool(0.8) {
            rng.random_range(12..=40)
        } else {
            rng.random()
        },
        rng.random_range(0..4),
        if rng.random_bool(0.9) {
            rng.random_range(0..RAM_SIZE as u64)
        } else {
            rng.random()
        },
        if rng.random_bool(0.9) {
            OAS[rng.random_range(2..9)]
        } else {
            OAS[rng.random_range(0..10)]
        },
    );
    c.ha = rng.random();
    c.hd = rng.random();
    c.affd = rng.random();
    c.xnx = rng.random();
    c.fwb = rng.random();
    c
}

/// Invariants of any successful walk.
fn check_ok(r: &WalkResult, oas_bits: u32, access: AccessKind, privileged: bool) {
    assert!(
        r.output >> oas_bits == 0,
        "output {:#x} beyond {oas_bits} bits",
        r.output
    );
    assert!((12..=42).contains(&r.size_log2), "size 2^{}", r.size_log2);
    assert!(r.level <= 3);
    assert!(
        r.perms.allows(access),
        "granted {:?} for {access:?}",
        r.perms
    );
    assert_eq!(r.perms, r.by_privilege.get(privileged));
    assert!(r.len_from_output() >= 1 && r.len_from_output() <= r.size());
}

fn check_fault(f: &WalkFault) {
    assert!(f.level <= 3);
}

/// 20k random stage-1 walks over random tables.
#[test]
fn test_walk_random_stage1_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let m = guest_ram(RAM_BASE, RAM_SIZE);
    fill(&mut rng, &m);
    let (mut ok, mut deep) = (0, 0);
    for i in 0..ITERATIONS {
        if i % 2000 == 0 {
            fill(&mut rng, &m);
        }
        let cfg = random_s1(&mut rng);
        let (va, access, privileged) = (
            random_in_range(&mut rng, cfg.ia_bits(), cfg.upper),
            random_access(&mut rng),
            rng.random(),
        );
        match walk_stage1(&m, &cfg, va, access, privileged, None) {
            Ok(r) => {
                ok += 1;
                check_ok(&r, cfg.effective_oas(), access, privileged);
            }
            Err(f) => {
                check_fault(&f);
                if f.level >= 2 {
                    deep += 1;
                }
            }
        }
    }
    // The generator must actually reach leaves and deep levels, or the test proves little.
    assert!(ok > 200, "only {ok} successful walks");
    assert!(deep > 2000, "only {deep} deep faults");
}

/// 20k random stage-2 walks over random tables.
#[test]
fn test_walk_random_stage2_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0002);
    let m = guest_ram(RAM_BASE, RAM_SIZE);
    let mut ok = 0;
    for i in 0..ITERATIONS {
        if i % 2000 == 0 {
            fill(&mut rng, &m);
        }
        let cfg = random_s2(&mut rng);
        let (ipa, access, privileged) = (
            random_in_range(&mut rng, cfg.ia_bits(), false),
            random_access(&mut rng),
            rng.random(),
        );
        match walk_stage2(&m, &cfg, ipa, access, privileged) {
            Ok(r) => {
                ok += 1;
                check_ok(&r, cfg.effective_ps(), access, privileged);
            }
            Err(f) => {
                check_fault(&f);
                assert_eq!(f.ipa, Some(ipa));
            }
        }
    }
    assert!(ok > 80, "only {ok} successful walks");
}

/// Random nested walks: stage-1 tables, descriptors and outputs all through a random stage 2.
#[test]
fn test_walk_random_nested_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0003);
    let m = guest_ram(RAM_BASE, RAM_SIZE);
    for i in 0..ITERATIONS / 2 {
        if i % 2000 == 0 {
            fill(&mut rng, &m);
        }
        let s1 = random_s1(&mut rng);
        let s2 = random_s2(&mut rng);
        let (va, access, privileged) = (
            random_in_range(&mut rng, s1.ia_bits(), s1.upper),
            random_access(&mut rng),
            rng.random(),
        );
        let hook = |ipa: u64, acc: AccessKind| walk_stage2(&m, &s2, ipa, acc, privileged);
        match walk_stage1(&m, &s1, va, access, privileged, Some(&hook)) {
            Ok(r) => {
                check_ok(&r, s2.effective_ps(), access, privileged);
                let ipa = r.ipa.expect("nested result carries the IPA");
                assert!(ipa >> s1.effective_oas() == 0);
            }
            Err(f) => {
                check_fault(&f);
                if let WalkFaultKind::InvalidConfig(_) = f.kind {
                    assert_eq!(f.level, 0);
                }
            }
        }
    }
}
