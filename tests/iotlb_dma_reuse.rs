//! The IOTLB used the way a device model uses it, through the public API only: DMA threads
//! translate (guard, lookup, or walk + fill) and "write" to the frame they got, while a vCPU
//! thread unmaps pages, invalidates (TLBI_NH_VA), completes a CMD_SYNC (`synchronize`) and then
//! gives the old frame to someone else. No DMA may ever write to a frame after it was given
//! away: that is what "no stale translation after CMD_SYNC" means to a guest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use viommu::common::iotlb::{InvRange, Invalidation, Iotlb, Regime, TlbEntry, TlbTag};
use viommu::common::{Asid, Perms, Vmid};

const PAGES: u64 = 16;
const FRAMES: u64 = 64;
const IOVA_BASE: u64 = 0x4000_0000;
/// The least work a run must do for its verdict to mean anything.
const MIN_REMAPS: u64 = 100;
const MIN_DMAS: u64 = 1000;

/// Guest state: the page table (IOVA page -> frame) and who owns each frame (the IOVA page it
/// is mapped at, or `u64::MAX` when given to someone else).
struct Guest {
    table: Mutex<HashMap<u64, u64>>,
    owner: Vec<AtomicU64>,
}

struct Device {
    tlb: Iotlb,
    tag: TlbTag,
}

impl Device {
    /// Translate page `p` and perform the access while the guard is held; returns false on a
    /// translation fault (unmapped page).
    fn dma(&self, guest: &Guest, p: u64) -> bool {
        let iova = IOVA_BASE + (p << 12) + 0x80;
        let _guard = self.tlb.pin();
        let entry = match self.tlb.lookup(self.tag, iova) {
            Some(e) => e,
            None => {
                let token = self.tlb.begin_fill(self.tag);
                let Some(frame) = guest
                    .table
                    .lock()
                    .map(|t| t.get(&p).copied())
                    .unwrap_or(None)
                else {
                    return false; // fault: never cached
                };
                let e = TlbEntry {
                    input: iova & !0xfff,
                    output: frame << 12,
                    size_log2: 12,
                    level: 3,
                    perms: Perms::RW,
                    priv_perms: Perms::RW,
                    attrs: Default::default(),
                    global: false,
                    ipa: None,
                    flags: 0,
                };
                self.tlb.insert(token, e);
                e
            }
        };
        // The "write": the frame must still belong to this page.
        let frame = entry.translate(iova) >> 12;
        let owner = guest
            .owner
            .get(frame as usize)
            .map(|o| o.load(Ordering::SeqCst));
        assert_eq!(
            owner,
            Some(p),
            "DMA to page {p} wrote frame {frame} after it was reused"
        );
        true
    }
}

#[test]
fn test_iotlb_no_dma_to_reused_frame_after_cmd_sync() {
    let guest = Guest {
        table: Mutex::new((0..PAGES).map(|p| (p, p)).collect()),
        owner: (0..FRAMES)
            .map(|f| AtomicU64::new(if f < PAGES { f } else { u64::MAX }))
            .collect(),
    };
    let dev = Device {
        tlb: Iotlb::new(64),
        tag: TlbTag::stage1(Vmid(0), Asid(3)),
    };
    let stop = AtomicBool::new(false);
    let remaps = AtomicU64::new(0);
    let dmas = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (dev, guest, stop, dmas) = (&dev, &guest, &stop, &dmas);
            s.spawn(move || {
                let mut p = t;
                while !stop.load(Ordering::Relaxed) {
                    p = (p * 7 + 3) % PAGES;
                    if dev.dma(guest, p) {
                        dmas.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // The vCPU: move page p to a free frame, the way Linux unmaps and maps again. It runs
        // for at least 500 ms and until enough work has been done to mean something, so a
        // loaded machine makes the test longer, not weaker (bounded at 60 s).
        let start = Instant::now();
        let enough = || {
            remaps.load(Ordering::Relaxed) > 2 * MIN_REMAPS
                && dmas.load(Ordering::Relaxed) > 2 * MIN_DMAS
        };
        let mut p = 0u64;
        while start.elapsed() < Duration::from_millis(500)
            || (!enough() && start.elapsed() < Duration::from_secs(60))
        {
            p = (p + 5) % PAGES;
            let free = (0..FRAMES).find(|&f| {
                guest
                    .owner
                    .get(f as usize)
                    .is_some_and(|o| o.load(Ordering::SeqCst) == u64::MAX)
            });
            let Some(new) = free else { continue };
            let old = guest.table.lock().map(|mut t| t.remove(&p)).unwrap_or(None);
            dev.tlb.invalidate(Invalidation::Va {
                regime: Regime::Nh { vmid: Vmid(0) },
                asid: Some(Asid(3)),
                range: InvRange::new(IOVA_BASE + (p << 12), 0x1000)
                    .with_leaf(true)
                    .with_ttl(3),
            });
            dev.tlb.synchronize(); // CMD_SYNC
                                   // Only now may the old frame be reused.
            if let Some(o) = old.and_then(|f| guest.owner.get(f as usize)) {
                o.store(u64::MAX, Ordering::SeqCst);
            }
            if let Some(o) = guest.owner.get(new as usize) {
                o.store(p, Ordering::SeqCst);
            }
            if let Ok(mut t) = guest.table.lock() {
                t.insert(p, new);
            }
            remaps.fetch_add(1, Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (remaps, dmas) = (remaps.load(Ordering::Relaxed), dmas.load(Ordering::Relaxed));
    assert!(
        remaps > MIN_REMAPS && dmas > MIN_DMAS,
        "too little work: {remaps} remaps, {dmas} DMAs"
    );
    let st = dev.tlb.stats();
    assert!(st.hits > 0 && st.inserts > 0, "{st:?}");
}
