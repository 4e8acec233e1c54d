//! Loom models of the IOTLB's lock-free protocols (`common/src/iotlb`): every interleaving of a
//! few operations on a one-set (4-way) table, under the C11 memory model as loom implements it.
//!
//! Run (release, own target directory so the normal build is not invalidated):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p viommu-common --release
//! --test loom_iotlb`. `LOOM_MAX_PREEMPTIONS` overrides the preemption bound (default
//! [`PREEMPTIONS`]).
//!
//! Each model runs the real `Iotlb` (its atomics come from `crate::sync`, loom's under
//! `cfg(loom)`); the guest's page table is one loom atomic that a fill reads after
//! `begin_fill`, as the walker reads descriptors. The seeded bug each model caught (a scratch
//! change, never committed) is named beside it.
#![cfg(loom)]

use loom::model::Builder;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

use viommu_common::iotlb::{InvRange, Invalidation, Iotlb, Regime, TlbEntry, TlbTag};
use viommu_common::traits::MemAttrs;
use viommu_common::{Asid, Perms, Vmid};

/// Default preemption bound: all models together stay within a few minutes in CI.
const PREEMPTIONS: usize = 2;

/// Stack of each model thread (loom's default is too small for `Iotlb::new`).
const STACK: usize = 1 << 20;

/// The tag every model uses.
const TAG: TlbTag = TlbTag::stage1(Vmid(0), Asid(1));
/// The page the models translate.
const IOVA: u64 = 0x4000;

/// Check `body` over every interleaving, within `LOOM_MAX_PREEMPTIONS` or [`PREEMPTIONS`]
/// preemptions. The body runs on a model thread with a [`STACK`]-sized stack, since the IOTLB's
/// counter arrays are built on the stack before they are boxed.
fn model(body: impl Fn() + Send + Sync + 'static) {
    let mut b = Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(PREEMPTIONS);
    }
    let body = std::sync::Arc::new(body);
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    b.check(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = body.clone();
        let main = thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || body())
            .expect("model thread");
        main.join().expect("model thread panicked");
    });
    eprintln!(
        "{} executions",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A 4 KiB page entry at `input` whose every word depends on `n`, so an entry assembled from two
/// different writes is never equal to either.
fn page(input: u64, n: u64) -> TlbEntry {
    TlbEntry {
        input,
        output: 0x10_0000 * (n + 1),
        size_log2: 12,
        level: 3,
        perms: if n % 2 == 0 { Perms::RW } else { Perms::R },
        priv_perms: Perms::RW,
        attrs: MemAttrs {
            mair: n as u8 + 1,
            shareability: 3,
            device: n as u32 + 0x100,
        },
        global: false,
        ipa: None,
        flags: n as u32 + 7,
    }
}

/// Fill `entry` the way a device does on a miss: token, then insert.
fn fill(tlb: &Iotlb, entry: TlbEntry) -> bool {
    let token = tlb.begin_fill(TAG);
    tlb.insert(token, entry)
}

/// Look `iova` up through both read paths and check each returns nothing or exactly one of
/// `allowed` (an entry mixing words of two writes matches none).
fn check_lookup(tlb: &Iotlb, iova: u64, allowed: &[TlbEntry]) -> Option<TlbEntry> {
    let got = tlb.lookup(TAG, iova);
    if let Some(e) = got {
        assert!(allowed.contains(&e), "torn or foreign entry {e:x?}");
    }
    if let Some(m) = tlb.lookup_mapping(TAG, iova, false) {
        assert!(
            allowed.iter().any(|e| e.mapping(iova, false) == m),
            "torn or foreign mapping {m:x?}"
        );
    }
    got
}

/// Model 1: a lookup racing an insert returns nothing or the exact entry of one write, never a
/// mix of words: the insert rewrites the slot of the same key in place (the reader's thread is
/// spawned after the first fill, so it may see either entry).
///
/// Seeded bug caught: without the writer's `fence(Release)` after it makes the sequence odd
/// (`Table::insert`), a reader can see a new word with both sequence loads even and returns an
/// entry mixing the old and new words.
#[test]
fn loom_lookup_vs_insert() {
    model(|| {
        let tlb = Arc::new(Iotlb::new(4));
        let a = page(IOVA, 0);
        let b = page(IOVA, 1);
        assert!(fill(&tlb, a));
        let reader = {
            let tlb = tlb.clone();
            thread::spawn(move || {
                check_lookup(&tlb, IOVA, &[a, b]);
            })
        };
        fill(&tlb, b);
        reader.join().unwrap();
    });
}

/// The guest's leaf descriptor of [`IOVA`] in the models with a page table: valid or not.
struct Guest {
    pte_valid: AtomicBool,
}

/// A walk of [`IOVA`]: token first, then the descriptor; inserts only what it read.
fn walk_and_fill(tlb: &Iotlb, guest: &Guest) {
    let token = tlb.begin_fill(TAG);
    if guest.pte_valid.load(Ordering::Acquire) {
        tlb.insert(token, page(IOVA, 0));
    }
}

/// Model 2, one scope: a walk races the guest unmapping the page and invalidating `scope`.
/// Once the invalidation returns, no lookup (on that thread, or after joining the walker)
/// returns the page.
fn insert_vs_invalidation(scope: Invalidation) {
    model(move || {
        let tlb = Arc::new(Iotlb::new(4));
        let guest = Arc::new(Guest {
            pte_valid: AtomicBool::new(true),
        });
        let walker = {
            let (tlb, guest) = (tlb.clone(), guest.clone());
            thread::spawn(move || walk_and_fill(&tlb, &guest))
        };
        guest.pte_valid.store(false, Ordering::Release);
        tlb.invalidate(scope);
        assert_eq!(tlb.lookup(TAG, IOVA), None, "hit after {scope:?} returned");
        walker.join().unwrap();
        assert_eq!(tlb.lookup(TAG, IOVA), None, "late fill survived {scope:?}");
    });
}

/// Model 2a: insert against a range invalidation (the fill fence and the slot re-check).
///
/// Seeded bug caught: an insert that does not re-read the fences while holding the slot lock
/// (`still_valid` always true) publishes a walk that read the descriptor before the removal
/// pass, after the pass has returned.
#[test]
fn loom_insert_vs_range_invalidation() {
    insert_vs_invalidation(Invalidation::Va {
        regime: Regime::Nh { vmid: Vmid(0) },
        asid: Some(Asid(1)),
        range: InvRange::address(IOVA).with_leaf(true),
    });
}

/// Model 2b: insert against a whole-table invalidation (a generation bump: a racing fill's
/// entry keeps its token's old stamp and stays invisible).
///
/// Seeded bug caught: stamping the entry with the generation read at insert time instead of
/// the token's makes the late fill visible.
#[test]
fn loom_insert_vs_full_invalidation() {
    insert_vs_invalidation(Invalidation::All);
}

/// Model 3: lookups racing the eviction of a live entry by another key (the set is full, so
/// the insert replaces a pseudo-random way): every lookup returns nothing or the exact entry of
/// its own key, never words of the other.
///
/// Seeded bug caught: a reader that skips the second sequence load (uses the words read under
/// an even first load without re-validating) returns the new key's words mixed with the
/// victim's.
#[test]
fn loom_lookup_vs_eviction() {
    model(|| {
        let tlb = Arc::new(Iotlb::new(4));
        let old: Vec<TlbEntry> = (0..4).map(|i| page(IOVA + (i << 12), i)).collect();
        for e in &old {
            assert!(fill(&tlb, *e));
        }
        let new = page(IOVA + (4 << 12), 4);
        let writer = {
            let tlb = tlb.clone();
            thread::spawn(move || {
                assert!(fill(&tlb, new));
            })
        };
        for e in old.iter().chain([&new]) {
            if let Some(got) = tlb.lookup(TAG, e.input) {
                assert_eq!(got, *e, "words of another key");
            }
        }
        writer.join().unwrap();
        assert_eq!(check_lookup(&tlb, new.input, &[new]), Some(new));
    });
}

/// Model 5: `pin()` against CMD_SYNC's `synchronize()`. A DMA pins, translates and uses the
/// page while the guest unmaps it, invalidates, syncs and then reuses the page: a DMA that
/// translated through the old entry must have finished its access before the sync returned.
///
/// Seeded bug caught: without the SeqCst order between the pin's announcement (its counter
/// increment) and what follows it (in this build, `seq_cst_point` in `Iotlb::pin`, which stands
/// for the SeqCst accesses), a synchronize can read the counter as zero while the DMA still
/// translates through the removed entry, and the DMA reads the page after its reuse. Not caught:
/// dropping the phase re-read (it is for progress, not safety: the model passes without it) and
/// a Relaxed guard drop (the DMA's read would have to see a later store, load buffering, which
/// loom does not model).
#[test]
fn loom_pin_vs_synchronize() {
    model(|| {
        let tlb = Arc::new(Iotlb::new(4));
        assert!(fill(&tlb, page(IOVA, 0)));
        // What the page holds: 1 while it is the DMA's buffer, 2 once the guest reused it.
        let page_contents = Arc::new(AtomicU64::new(1));
        let dma = {
            let (tlb, page_contents) = (tlb.clone(), page_contents.clone());
            thread::spawn(move || {
                let guard = tlb.pin();
                if tlb.lookup_mapping(TAG, IOVA, false).is_some() {
                    assert_eq!(
                        page_contents.load(Ordering::Relaxed),
                        1,
                        "DMA through a translation the completed sync removed"
                    );
                }
                drop(guard);
            })
        };
        tlb.invalidate(Invalidation::Va {
            regime: Regime::Nh { vmid: Vmid(0) },
            asid: Some(Asid(1)),
            range: InvRange::address(IOVA).with_leaf(true),
        });
        tlb.synchronize();
        page_contents.store(2, Ordering::Relaxed);
        dma.join().unwrap();
    });
}
