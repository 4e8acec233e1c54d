//! Hardware access-flag and dirty-state updates (HTTU, IHI 0070 §3.13; Arm ARM D8.4.6):
//! atomic compare-and-swap on the leaf, no update on a faulting access, retries when the guest
//! changes the descriptor concurrently.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::helpers::*;
use crate::access::{AccessKind, Perms};
use crate::mem::{cmpxchg_u64_le, write_u64_le};
use crate::walk::{
    walk_stage1, walk_stage2, FaultClass, Stage, WalkFaultKind, WalkResult, HTTU_MAX_ATTEMPTS,
};

use AccessKind::{Read, Write};

const PA: u64 = 0x0000_0012_3456_7000;
const AF: u64 = 1 << 10;
const AP_EL0: u64 = 1 << 6;
const AP_RO: u64 = 1 << 7;
const DBM: u64 = 1 << 51;
const S2AP_R: u64 = 1 << 6;
const S2AP_W: u64 = 1 << 7;
/// A software-defined descriptor bit (ignored by hardware) the "guest" uses to mark its writes.
const SW: u64 = 1 << 56;

/// With HA, AF = 0 is set in guest memory and the walk succeeds.
#[test]
fn test_walk_httu_sets_access_flag() {
    let m = ram();
    let mut cfg = s1_cfg();
    cfg.ha = true;
    chain(&m, [0; 3], PA | 3 | AP_EL0);
    let r = walk_stage1(&m, &cfg, VA, Read, false, None).unwrap();
    assert_eq!(r.output, PA | 0x567);
    assert_eq!(read(&m, slot(3, VA)), PA | 3 | AP_EL0 | AF);
    // A permission fault writes nothing, even with HA.
    chain(&m, [0; 3], PA | 3 | AP_EL0 | AP_RO);
    let f = walk_stage1(&m, &cfg, VA, Write, false, None).unwrap_err();
    assert_eq!(f.kind, WalkFaultKind::Permission);
    assert_eq!(read(&m, slot(3, VA)), PA | 3 | AP_EL0 | AP_RO);
}

/// With HD, a writable-clean page (DBM, AP[2] = 1) reads without becoming dirty and is
/// reported writable-clean without W; a write clears AP[2] atomically.
#[test]
fn test_walk_httu_dirty_state_stage1() {
    let m = ram();
    let mut cfg = s1_cfg();
    cfg.ha = true;
    cfg.hd = true;
    let clean = PA | PAGE_AF | AP_EL0 | AP_RO | DBM;
    chain(&m, [0; 3], clean);
    let r = walk_stage1(&m, &cfg, VA, Read, false, None).unwrap();
    assert!(r.writable_clean);
    assert!(!r.perms.write());
    assert_eq!(read(&m, slot(3, VA)), clean);
    let r: WalkResult = walk_stage1(&m, &cfg, VA, Write, false, None).unwrap();
    assert!(!r.writable_clean);
    assert_eq!(r.perms, Perms::RW.union(Perms::X));
    assert_eq!(read(&m, slot(3, VA)), clean & !AP_RO);
    // Hierarchical read-only (APTable[1]) forbids the write: no dirty update.
    chain(&m, [1 << 62, 0, 0], clean);
    assert_eq!(
        walk_stage1(&m, &cfg, VA, Write, false, None)
            .unwrap_err()
            .kind,
        WalkFaultKind::Permission
    );
    assert_eq!(read(&m, slot(3, VA)), clean);
    // HD without HA is ineffective; DBM without HD is ignored.
    chain(&m, [0; 3], clean);
    cfg.ha = false;
    assert!(walk_stage1(&m, &cfg, VA, Write, false, None).is_err());
    cfg.ha = true;
    cfg.hd = false;
    assert!(walk_stage1(&m, &cfg, VA, Write, false, None).is_err());
    assert_eq!(read(&m, slot(3, VA)), clean);
}

/// Stage-2 HTTU: S2HA sets AF, S2HD with DBM sets S2AP[1] on a write.
#[test]
fn test_walk_httu_stage2() {
    let m = ram();
    let mut cfg = s2_cfg();
    cfg.ha = true;
    cfg.hd = true;
    let clean = PA | 3 | S2AP_R | DBM;
    chain(&m, [0; 3], clean);
    let r = walk_stage2(&m, &cfg, VA, Read, false).unwrap();
    assert!(r.writable_clean);
    assert_eq!(read(&m, slot(3, VA)), clean | AF);
    let r = walk_stage2(&m, &cfg, VA, Write, false).unwrap();
    assert!(r.perms.write() && !r.writable_clean);
    assert_eq!(read(&m, slot(3, VA)), clean | AF | S2AP_W);
}

/// A guest write between the walker's read and its compare-and-swap is never lost: the walk
/// re-reads and applies AF to the guest's new descriptor. The race is injected
/// deterministically through the nested hook, which runs between the two.
#[test]
fn test_walk_httu_cas_retry_keeps_guest_update() {
    let m = ram();
    let mut cfg = s1_cfg();
    cfg.ha = true;
    chain(&m, [0; 3], PA | 3 | AP_EL0);
    let races = AtomicU32::new(0);
    let hook = |ipa: u64, acc: AccessKind| {
        if acc == Write && races.fetch_add(1, Ordering::Relaxed) == 0 {
            // The guest retargets the page (still AF = 0) while the SMMU is updating AF.
            write_u64_le(&m, ipa, (PA + 0x1000) | 3 | AP_EL0 | SW).unwrap();
        }
        identity(ipa)
    };
    let r = walk_stage1(&m, &cfg, VA, Read, false, Some(&hook)).unwrap();
    assert_eq!(
        r.output,
        (PA + 0x1000) | 0x567,
        "the re-walk sees the new descriptor"
    );
    assert_eq!(read(&m, slot(3, VA)), (PA + 0x1000) | 3 | AP_EL0 | SW | AF);
    assert_eq!(races.load(Ordering::Relaxed), 2);
}

/// A guest that keeps changing the descriptor makes the walk give up after
/// `HTTU_MAX_ATTEMPTS` and take the fault HTTU would have avoided; the guest's value stays.
#[test]
fn test_walk_httu_bounded_retries() {
    let m = ram();
    let mut cfg = s1_cfg();
    cfg.ha = true;
    chain(&m, [0; 3], PA | 3 | AP_EL0);
    let races = AtomicU32::new(0);
    let hook = |ipa: u64, acc: AccessKind| {
        if acc == Write {
            races.fetch_add(1, Ordering::Relaxed);
            let v = read(&m, ipa);
            write_u64_le(&m, ipa, v ^ SW).unwrap();
        }
        identity(ipa)
    };
    let f = walk_stage1(&m, &cfg, VA, Read, false, Some(&hook)).unwrap_err();
    assert_eq!(
        (f.kind, f.stage, f.level),
        (WalkFaultKind::AccessFlag, Stage::S1, 3)
    );
    assert_eq!(f.class, FaultClass::In);
    assert_eq!(races.load(Ordering::Relaxed), HTTU_MAX_ATTEMPTS);
    assert_eq!(read(&m, slot(3, VA)) & AF, 0);
}

/// Real concurrency: a guest thread flips a software bit and clears AF with compare-and-swap
/// while walks set AF. No guest update is lost (the bit's parity matches the guest's count)
/// and every walk translates correctly.
#[test]
fn test_walk_httu_concurrent_guest_updates() {
    let m = ram();
    let mut cfg = s1_cfg();
    cfg.ha = true;
    chain(&m, [0; 3], PA | 3 | AP_EL0);
    let addr = slot(3, VA);
    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let flips = std::thread::scope(|s| {
        let guest = s.spawn(|| {
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let cur = read(&m, addr);
                if cmpxchg_u64_le(&m, addr, cur, (cur ^ SW) & !AF)
                    .unwrap()
                    .is_ok()
                {
                    flips += 1;
                    progress.store(flips, Ordering::Relaxed);
                }
            }
            flips
        });
        let (mut walks, mut faults) = (0u64, 0u64);
        // At least 20k walks, and until the guest has raced for a while (bounded).
        while walks < 20_000 || (progress.load(Ordering::Relaxed) < 1000 && walks < 2_000_000) {
            walks += 1;
            match walk_stage1(&m, &cfg, VA, Read, false, None) {
                Ok(r) => assert_eq!(r.output, PA | 0x567),
                Err(f) => {
                    // Only a run of lost races may fail, and then as an access-flag fault.
                    assert_eq!(f.kind, WalkFaultKind::AccessFlag);
                    faults += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(faults < walks);
        guest.join().unwrap()
    });
    assert!(flips >= 1000, "the guest thread barely ran ({flips} flips)");
    let v = read(&m, addr);
    assert_eq!(v & SW != 0, flips % 2 == 1, "a guest update was lost");
    assert_eq!(v & !(SW | AF), PA | 3 | AP_EL0);
}

/// Identity stage 2 for the hooks above.
fn identity(ipa: u64) -> Result<WalkResult, crate::walk::WalkFault> {
    Ok(WalkResult {
        output: ipa,
        size_log2: 12,
        level: 3,
        perms: Perms::RWX,
        by_privilege: crate::walk::PrivPerms {
            privileged: Perms::RWX,
            unprivileged: Perms::RWX,
        },
        attrs: crate::traits::MemAttrs {
            mair: 0xFF,
            shareability: 3,
            device: 0,
        },
        global: true,
        writable_clean: false,
        ipa: None,
    })
}
