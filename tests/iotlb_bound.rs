//! The IOTLB's replacement bound, as a property (proptest), through its public API only: under
//! any sequence of guest-driven operations (inserts of arbitrary tags, addresses, sizes, levels
//! and flags, well-formed or not; every kind of invalidation; lookups), the table never holds
//! more entries than its capacity, its capacity never changes, and host memory stays bounded:
//! once warmed up, the IOTLB's own calls allocate nothing that they keep.
//!
//! Memory is measured with a counting global allocator that counts only allocations made
//! inside IOTLB calls on the test's thread, so proptest's and the model's own allocations do
//! not disturb it.

// The counting allocator implements `GlobalAlloc`, an unsafe trait; nothing else here is unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;

use proptest::prelude::*;
use viommu_common::iotlb::{InvRange, Invalidation, Iotlb, Regime, TlbEntry, TlbTag};
use viommu_common::traits::MemAttrs;
use viommu_common::{Asid, Perms, StreamId, SubstreamId, Vmid};

/// Counts the bytes allocated minus freed by the current thread while it is inside an IOTLB
/// call ([`tracked`]).
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    /// Net bytes this thread allocated inside tracked calls.
    static NET: Cell<i64> = const { Cell::new(0) };
}

fn note(bytes: usize, sign: i64) {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    if TRACKING.try_with(Cell::get).unwrap_or(false) {
        let _ = NET.try_with(|n| n.set(n.get() + sign * bytes as i64));
    }
}

/// Net bytes this thread's tracked calls have kept so far.
fn net() -> i64 {
    NET.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the bookkeeping touches only const-initialised thread-locals, which do not
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(layout.size(), -1);
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 1);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, 1);
        note(layout.size(), -1);
        // SAFETY: as `dealloc` for `ptr`/`layout`; `new_size` is the caller's, as required.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `f` (an IOTLB call) with its allocations counted.
fn tracked<T>(f: impl FnOnce() -> T) -> T {
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    r
}

/// A tag from the whole space a guest controls, or (mostly) from a small pool so that
/// operations hit each other's entries.
fn tag() -> impl Strategy<Value = TlbTag> {
    let small = (0u16..4, 0u16..8, 0u32..4, any::<bool>());
    let any_id = (any::<u16>(), any::<u16>(), any::<u32>(), any::<bool>());
    prop_oneof![3 => small, 1 => any_id].prop_flat_map(|(vmid, asid, sid, ssv)| {
        prop_oneof![
            Just(TlbTag::stage1(Vmid(vmid), Asid(asid))),
            Just(TlbTag::stage1_in(Regime::El2, Asid(asid))),
            Just(TlbTag::stage2(Vmid(vmid))),
            Just(TlbTag::stream(
                StreamId(sid),
                ssv.then_some(SubstreamId(u32::from(asid)))
            )),
        ]
    })
}

/// An address: a few pages in a small window (to collide), or any 64-bit value.
fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![3 => (0u64..64).prop_map(|p| p << 12), 1 => any::<u64>()]
}

#[derive(Debug, Clone)]
enum Op {
    /// Insert an entry under a tag.
    Insert(TlbTag, TlbEntry),
    Invalidate(Invalidation),
    Lookup(TlbTag, u64),
}

fn regime() -> impl Strategy<Value = Regime> {
    prop_oneof![
        (0u16..4).prop_map(|v| Regime::Nh { vmid: Vmid(v) }),
        Just(Regime::El2)
    ]
}

fn range() -> impl Strategy<Value = InvRange> {
    (
        addr(),
        prop_oneof![Just(0u64), Just(0x1000), Just(0x20_0000), any::<u64>()],
        any::<bool>(),
        proptest::option::of(-2i8..5),
    )
        .prop_map(|(a, s, leaf, ttl)| {
            let r = InvRange::new(a, s).with_leaf(leaf);
            match ttl {
                Some(t) => r.with_ttl(t),
                None => r,
            }
        })
}

fn invalidation() -> impl Strategy<Value = Invalidation> {
    prop_oneof![
        1 => Just(Invalidation::All),
        1 => regime().prop_map(Invalidation::Stage1All),
        1 => (0u16..4).prop_map(|v| Invalidation::Vmid(Vmid(v))),
        2 => (regime(), 0u16..8).prop_map(|(r, a)| Invalidation::Asid(r, Asid(a))),
        4 => (regime(), proptest::option::of(0u16..8), range())
            .prop_map(|(regime, asid, range)| Invalidation::Va {
                regime,
                asid: asid.map(Asid),
                range
            }),
        2 => ((0u16..4), range()).prop_map(|(v, range)| Invalidation::Ipa { vmid: Vmid(v), range }),
        1 => (0u32..4).prop_map(|s| Invalidation::Stream(StreamId(s))),
        1 => tag().prop_map(Invalidation::Tag),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let insert = (
        tag(),
        addr(),
        any::<u64>(),
        prop_oneof![4 => Just(12u8), 2 => Just(21u8), 1 => Just(30u8), 1 => 0u8..70],
        prop_oneof![4 => Just(3i8), 1 => any::<i8>()],
        any::<bool>(),
        proptest::option::of(addr()),
        prop_oneof![9 => Just(true), 1 => Just(false)],
    )
        .prop_map(
            |(tag, input, output, size_log2, level, global, ipa, align)| {
                // `align`: a well-formed entry (addresses aligned to the size), else as drawn.
                let mask = if align && size_log2 < 64 {
                    !((1u64 << size_log2) - 1)
                } else {
                    u64::MAX
                };
                let entry = TlbEntry {
                    input: input & mask,
                    output: output & mask,
                    size_log2,
                    level,
                    perms: Perms::RW,
                    priv_perms: Perms::RWX,
                    attrs: MemAttrs::default(),
                    global,
                    ipa: ipa.map(|a| a & mask),
                    flags: 0,
                };
                Op::Insert(tag, entry)
            },
        );
    prop_oneof![
        6 => insert,
        2 => invalidation().prop_map(Op::Invalidate),
        2 => (tag(), addr()).prop_map(|(t, a)| Op::Lookup(t, a)),
    ]
}

/// Distinct entries a lookup can still find, probing every (tag, address) inserted so far: a
/// lower bound of what the table stores.
fn visible(tlb: &Iotlb, inserted: &HashSet<(TlbTag, u64)>) -> usize {
    let mut seen = HashSet::new();
    for &(tag, input) in inserted {
        if let Some(e) = tracked(|| tlb.lookup(tag, input)) {
            // A global entry answers every ASID of its regime: count it once (two global
            // entries of different regimes with the same addresses count as one, which only
            // lowers the bound).
            seen.insert((e.input, e.size_log2, e.output, (!e.global).then_some(tag)));
        }
    }
    seen.len()
}

fn run(capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let tlb = Iotlb::new(capacity);
    let cap = tlb.capacity();
    prop_assert!(cap >= capacity);
    let mut inserted = HashSet::new();
    // Warm-up: per-thread state an IOTLB may create on first use is not growth.
    for op in ops.iter().take(32) {
        apply(&tlb, op, &mut inserted);
    }
    let warm = net();
    for (i, op) in ops.iter().enumerate().skip(32) {
        apply(&tlb, op, &mut inserted);
        if i % 128 == 0 {
            prop_assert!(visible(&tlb, &inserted) <= cap);
        }
    }
    let stored = visible(&tlb, &inserted);
    prop_assert!(stored <= cap, "{stored} entries visible, capacity {cap}");
    prop_assert_eq!(tlb.capacity(), cap);
    let grown = net() - warm;
    prop_assert!(
        grown <= 0,
        "IOTLB calls kept {grown} more bytes after {} operations",
        ops.len()
    );
    // Everything goes with a full invalidation.
    tracked(|| tlb.invalidate(Invalidation::All));
    prop_assert_eq!(visible(&tlb, &inserted), 0);
    let stats = tlb.stats();
    prop_assert!(stats.inserts >= stats.evictions);
    Ok(())
}

/// Insert `entry` under `tag` the way a walk does (a fill token, then the insert), with its
/// allocations counted; whether the IOTLB took it.
fn insert(tlb: &Iotlb, tag: TlbTag, entry: TlbEntry) -> bool {
    tracked(|| {
        let token = tlb.begin_fill(tag);
        tlb.insert(token, entry)
    })
}

fn apply(tlb: &Iotlb, op: &Op, inserted: &mut HashSet<(TlbTag, u64)>) {
    match *op {
        Op::Insert(tag, entry) => {
            let ok = insert(tlb, tag, entry);
            if ok && inserted.len() < 4096 {
                inserted.insert((tag, entry.input));
            }
        }
        Op::Invalidate(scope) => tracked(|| tlb.invalidate(scope)),
        Op::Lookup(tag, addr) => {
            let _ = tracked(|| tlb.lookup(tag, addr));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Small tables under long operation sequences: eviction must keep them at capacity.
    #[test]
    fn prop_iotlb_never_exceeds_capacity(
        capacity in prop_oneof![Just(1usize), Just(4), Just(16), Just(64)],
        ops in proptest::collection::vec(op(), 32..1500),
    ) {
        run(capacity, &ops)?;
    }
}

/// A guest inserting far more distinct translations than fit (16 384 pages of 4096 tags into a
/// 256-entry table) leaves at most 256 visible and no growth.
#[test]
fn test_iotlb_flood_stays_bounded() {
    // The counter sees the IOTLB's allocations (its table: one 64-byte line per entry).
    let before = net();
    let tlb = tracked(|| Iotlb::new(256));
    assert!(
        net() - before >= 256 * 64,
        "{} bytes counted",
        net() - before
    );
    let cap = tlb.capacity();
    let mut inserted = HashSet::new();
    let mut warm = None;
    for i in 0..16_384u64 {
        if i == 64 {
            warm = Some(net());
        }
        let tag = TlbTag::stage1(Vmid(0), Asid((i % 4096) as u16));
        let entry = TlbEntry {
            input: i << 12,
            output: i << 12,
            size_log2: 12,
            level: 3,
            perms: Perms::RW,
            priv_perms: Perms::RW,
            attrs: MemAttrs::default(),
            global: false,
            ipa: None,
            flags: 0,
        };
        insert(&tlb, tag, entry);
        inserted.insert((tag, entry.input));
    }
    assert!(visible(&tlb, &inserted) <= cap);
    assert!(net() - warm.unwrap_or(0) <= 0);
    assert_eq!(tlb.capacity(), cap);
}
