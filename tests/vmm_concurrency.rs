//! "After CMD_SYNC completes no stale translation may be returned", checked the way a VMM runs:
//! DMA threads translate continuously while a vCPU thread changes the guest's tables.
//!
//! Protocol of every test: the vCPU thread owns a monotonically increasing *epoch*. For epoch
//! `k` it first records the page the mapping will point at (`history[k]`), then changes the
//! guest's tables, then completes the architecture's synchronisation (SMMUv3: TLBI_NH_VA +
//! CMD_SYNC through the command queue; PAMU: V = 1 written), and only then publishes `epoch =
//! k`. A DMA thread reads the epoch `e1` **before** translating and `e2` after; every result
//! must be a page from `history[e1..=e2 + 1]` (`e2 + 1`: the next change may already be
//! visible before its synchronisation). A page older than `history[e1]` is a stale
//! translation returned after the synchronisation completed.
//!
//! Each page of the pool carries its own index in its first 8 bytes, so the `IommuMemory`
//! thread checks the data it actually read, not only the translation.

#[allow(dead_code, reason = "shared by several test files; each uses a part")]
mod vmm_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, IommuMemory};

use viommu::common::access::{DmaRequest, Perms};
use viommu::common::id::StreamId;
use viommu::common::mem;
use viommu::common::testing::{guest_ram, RecordingIrq};
use viommu::common::traits::DmaTranslator;
use viommu::common::vmm::EndpointIommu;
use viommu::pamu::testing::{LinuxVersion, Rig};
use viommu::pamu::PamuConfig;
use viommu::smmuv3::caps::SmmuConfig;
use viommu::smmuv3::device::SmmuV3;
use viommu::smmuv3::testing::pgtable::{leaf_bits, PgFormat};
use viommu::smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot};
use vmm_support::Ram;

/// Pages in the remap pool (the page of epoch `k` is `k % POOL`).
const POOL: u64 = 4096;

/// The epoch bookkeeping shared between the vCPU thread and the DMA threads.
struct Epochs {
    /// Last epoch whose synchronisation completed.
    epoch: AtomicU64,
    /// Number of epochs whose update has started (PAMU: V cleared; may fault until published).
    started: AtomicU64,
    /// Page (pool index) each epoch maps.
    history: Vec<AtomicU64>,
    /// Set by the vCPU thread when it is done.
    stop: AtomicBool,
    /// First violation seen by a DMA thread.
    violation: Mutex<Option<String>>,
    /// Checked translations that started after at least one synchronisation.
    checked: AtomicU64,
    /// Highest starting epoch of a checked translation.
    max_checked_epoch: AtomicU64,
    /// DMA threads that have completed their first translation.
    ready: AtomicU64,
}

impl Epochs {
    fn new(epochs: u64) -> Arc<Self> {
        Arc::new(Self {
            epoch: AtomicU64::new(0),
            started: AtomicU64::new(0),
            history: (0..epochs + 2).map(|_| AtomicU64::new(u64::MAX)).collect(),
            stop: AtomicBool::new(false),
            violation: Mutex::new(None),
            checked: AtomicU64::new(0),
            max_checked_epoch: AtomicU64::new(0),
            ready: AtomicU64::new(0),
        })
    }

    /// The vCPU is about to change the mapping to `page` for epoch `k`.
    fn begin(&self, k: u64, page: u64) {
        self.history[k as usize].store(page, Ordering::SeqCst);
        self.started.store(k, Ordering::SeqCst);
    }

    /// Epoch `k`'s synchronisation completed.
    fn publish(&self, k: u64) {
        self.epoch.store(k, Ordering::SeqCst);
    }

    fn violated(&self) -> bool {
        self.violation.lock().unwrap().is_some()
    }

    /// Run `translate` (returning the pool page, `Err(true)` for a fault the protocol allows
    /// while an update is in flight, `Err(false)` for any other fault) until stopped, checking
    /// every result.
    fn dma_loop(&self, name: &str, mut translate: impl FnMut(u64) -> Result<u64, (bool, String)>) {
        let mut i = 0u64;
        while !self.stop.load(Ordering::SeqCst) && !self.violated() {
            i += 1;
            let e1 = self.epoch.load(Ordering::SeqCst);
            let got = translate(i);
            let started = self.started.load(Ordering::SeqCst);
            let e2 = self.epoch.load(Ordering::SeqCst);
            let hi = (e2 + 1).min(self.history.len() as u64 - 1);
            let ok = match &got {
                Ok(page) => {
                    (e1..=hi).any(|k| self.history[k as usize].load(Ordering::SeqCst) == *page)
                }
                // A transient fault is legal only while a later update is in flight.
                Err((transient, _)) => *transient && started > e1,
            };
            if i == 1 {
                self.ready.fetch_add(1, Ordering::SeqCst);
            }
            if !ok {
                let seen: Vec<u64> = (e1.saturating_sub(2)..=hi)
                    .map(|k| self.history[k as usize].load(Ordering::SeqCst))
                    .collect();
                *self.violation.lock().unwrap() = Some(format!(
                    "{name}: translation started at epoch {e1} (ended at {e2}, updates started \
                     {started}) returned {got:?}; pages of epochs {}..={hi}: {seen:?}",
                    e1.saturating_sub(2)
                ));
            } else if e1 > 0 {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.max_checked_epoch.fetch_max(e1, Ordering::SeqCst);
            }
        }
    }

    /// vCPU side, before the first update: wait until every DMA thread has translated once
    /// (so caches hold the initial mapping when the updates begin).
    fn wait_ready(&self, threads: usize) {
        while self.ready.load(Ordering::SeqCst) < threads as u64 && !self.violated() {
            std::thread::yield_now();
        }
    }

    /// vCPU side, after the last epoch: let the DMA threads check at least one translation
    /// that started after the final synchronisation (bounded wait), then stop them.
    fn stop_after_final_check(&self, last: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.max_checked_epoch.load(Ordering::SeqCst) < last
            && !self.violated()
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// vCPU side of the protocol: once every DMA thread has translated, run `epoch(k)` for
    /// `k` in `1..=epochs` (it calls [`Self::begin`], changes and synchronises, then
    /// [`Self::publish`]es), stopping early on a violation; then stop the DMA threads after a
    /// final check.
    fn drive_epochs(&self, threads: usize, epochs: u64, mut epoch: impl FnMut(u64)) {
        self.wait_ready(threads);
        for k in 1..=epochs {
            if self.violated() {
                break;
            }
            epoch(k);
        }
        self.stop_after_final_check(epochs);
    }

    /// The first violation, after checking that the final epoch was exercised.
    fn result(&self) -> Option<String> {
        let v = self.violation.lock().unwrap().take();
        if v.is_none() {
            assert!(
                self.checked.load(Ordering::SeqCst) > 0,
                "no translation was checked after a synchronisation"
            );
        }
        v
    }
}

/// DMA thread body: read the pool page index stored at `addr` through vm-memory's
/// `IommuMemory` (the VMM's view) over `iommu` as `stream`, checking every result; a failed
/// read is allowed while an update is in flight if `transient` accepts its message.
fn iommu_memory_loop<T: DmaTranslator + ?Sized>(
    ep: &Epochs,
    ram: Ram,
    iommu: Arc<T>,
    stream: StreamId,
    addr: u64,
    transient: impl Fn(&str) -> bool,
) {
    let dma = IommuMemory::new(ram, EndpointIommu::new(iommu, stream, None), true, ());
    ep.dma_loop("IommuMemory", |_| {
        dma.read_obj::<u64>(GuestAddress(addr)).map_err(|e| {
            let s = e.to_string();
            (transient(&s), s)
        })
    });
}

// ---------------------------------------------------------------------------------- SMMUv3

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const ASID: u16 = 1;
const IOVA: u64 = 0x1000_0000;

fn smmu_pa(page: u64) -> u64 {
    RAM + 0x100_0000 + page * 0x1000
}

type Smmu = SmmuV3<Arc<Ram>>;

/// A default-configured SMMU over `ram`, its interrupts recorded and ignored.
fn new_smmu(ram: &Arc<Ram>) -> Arc<Smmu> {
    Arc::new(
        SmmuV3::new(
            &SmmuConfig::default(),
            ram.clone(),
            Arc::new(RecordingIrq::new()),
        )
        .unwrap(),
    )
}

/// The guest's driver over all of `ram`, probed and reset (SMMU enabled).
fn brought_up<'a>(
    smmu: &'a Smmu,
    ram: &'a Ram,
    opts: DriverOptions,
) -> GuestDriver<'a, Arc<Ram>, Ram> {
    let mut drv = GuestDriver::new(smmu, ram, RAM, RAM_SIZE, opts);
    drv.probe().unwrap();
    drv.reset().unwrap();
    drv
}

/// `epochs` remaps of one IOVA page by a vCPU thread (PTE rewrite in guest memory, then
/// TLBI_NH_VA and CMD_SYNC through the command queue, waiting for completion the way Linux
/// does; with `tlbi = false` only the CMD_SYNC) while `threads` DMA threads translate it (thread 0 through `IommuMemory`, reading the page).
fn smmu_remap_race(epochs: u64, threads: usize, opts: DriverOptions, tlbi: bool) -> Option<String> {
    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let smmu = new_smmu(&ram);
    let mut drv = brought_up(&smmu, &ram, opts);
    for page in 0..POOL {
        mem::write_u64_le(&*ram, smmu_pa(page), page).unwrap();
    }
    let dom = drv.new_s1_domain(ASID);
    let slot = dom
        .pgtable
        .map(&*ram, &mut drv.alloc, IOVA, smmu_pa(0), 0x1000, Prot::RW);
    drv.attach_s1(SID, &dom).unwrap();
    let leaf = leaf_bits(PgFormat::Stage1, Prot::RW.0, true);
    let ril = drv.info.ril;

    let ep = Epochs::new(epochs);
    ep.begin(0, 0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ep, smmu, ram) = (&ep, smmu.clone(), ram.clone());
            s.spawn(move || {
                if t == 0 {
                    iommu_memory_loop(ep, (*ram).clone(), smmu, StreamId(SID), IOVA, |_| false);
                } else {
                    ep.dma_loop("DmaTranslator", |i| {
                        let off = (i * 8) & 0xff8;
                        smmu.translate(&DmaRequest::read(SID, IOVA + off, 8))
                            .map(|m| (m.output - off - smmu_pa(0)) / 0x1000)
                            .map_err(|f| (false, f.event.to_string()))
                    });
                }
            });
        }
        // The vCPU thread.
        ep.drive_epochs(threads, epochs, |k| {
            let page = k % POOL;
            ep.begin(k, page);
            mem::write_u64_le(&*ram, slot, smmu_pa(page) | leaf).unwrap();
            let cmds = if tlbi {
                cmd::tlbi_range_cmds(0x12, 0, ASID, IOVA, 0x1000, 0x1000, true, ril)
            } else {
                Vec::new()
            };
            drv.issue_sync(&cmds).unwrap();
            ep.publish(k);
        });
    });
    assert_eq!(drv.read_events(), Vec::<[u64; 4]>::new(), "no faults");
    ep.result()
}

fn smmu_no_stale_after_sync(epochs: u64, threads: usize, opts: DriverOptions) {
    if let Some(v) = smmu_remap_race(epochs, threads, opts, true) {
        panic!("stale translation: {v}");
    }
}

/// No translation starting after an MSI-polled CMD_SYNC returns the page its TLBI dropped.
#[test]
fn test_smmu_no_stale_translation_after_cmd_sync_msipoll() {
    // With MSI-polled CMD_SYNC (a coherent guest), no translation starting after the sync
    // completed returns the page the preceding TLBI_NH_VA invalidated.
    smmu_no_stale_after_sync(3000, 2, DriverOptions::default());
}

/// No translation starting after a CONS-polled CMD_SYNC returns the page its TLBI dropped.
#[test]
fn test_smmu_no_stale_translation_after_cmd_sync_cons_poll() {
    // With CONS-polled CMD_SYNC (SIG_SEV, a non-coherent guest), the same holds once CONS has
    // passed the sync.
    smmu_no_stale_after_sync(
        3000,
        2,
        DriverOptions {
            coherent: false,
            ..DriverOptions::default()
        },
    );
}

/// Negative control: a remap with CMD_SYNC but no TLBI is reported as stale.
#[test]
fn test_smmu_remap_without_tlbi_is_reported_stale() {
    // The harness is sensitive: if the guest omits the TLBI and issues only CMD_SYNC, DMA threads
    // observe the page the IOTLB still caches, and the check reports it.
    let v = smmu_remap_race(50, 1, DriverOptions::default(), false);
    assert!(
        v.as_deref().is_some_and(|v| v.contains("returned Ok(0)")),
        "{v:?}"
    );
}

/// Long run of the SMMUv3 remap race with three DMA threads (`cargo test -- --ignored`).
#[test]
#[ignore = "long stress run"]
fn test_smmu_no_stale_translation_after_cmd_sync_long() {
    smmu_no_stale_after_sync(30_000, 3, DriverOptions::default());
}

/// Domains the re-attach and renumbering races cycle through (domain `d` maps [`IOVA`] to
/// pool page `d`).
const DOMAINS: u64 = 48;

/// An SMMU over `ram`, with the first [`DOMAINS`] pool pages tagged with their index.
fn smmu_with_pool(ram: &Arc<Ram>) -> Arc<Smmu> {
    let smmu = new_smmu(ram);
    for page in 0..DOMAINS {
        mem::write_u64_le(&**ram, smmu_pa(page), page).unwrap();
    }
    smmu
}

/// `epochs` re-attachments of one StreamID to the next domain (Linux's CD/STE write sequence
/// with CFGI_CD/CFGI_STE + CMD_SYNC, possibly breaking) while `threads` DMA threads translate:
/// once the attach's last CMD_SYNC completed, no translation may use an earlier domain.
fn smmu_reattach_race(epochs: u64, threads: usize) {
    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let smmu = smmu_with_pool(&ram);
    let mut drv = brought_up(&smmu, &ram, DriverOptions::default());
    let doms: Vec<_> = (0..DOMAINS)
        .map(|d| {
            let dom = drv.new_s1_domain(ASID + d as u16);
            dom.pgtable
                .map(&*ram, &mut drv.alloc, IOVA, smmu_pa(d), 0x1000, Prot::RW);
            dom
        })
        .collect();
    drv.attach_s1(SID, &doms[0]).unwrap();

    let ep = Epochs::new(epochs);
    ep.begin(0, 0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ep, smmu, ram) = (&ep, smmu.clone(), ram.clone());
            s.spawn(move || {
                if t == 0 {
                    iommu_memory_loop(ep, (*ram).clone(), smmu, StreamId(SID), IOVA, |_| true);
                } else {
                    ep.dma_loop("DmaTranslator", |_| {
                        smmu.translate(&DmaRequest::read(SID, IOVA, 8))
                            .map(|m| (m.output - smmu_pa(0)) / 0x1000)
                            .map_err(|f| (true, f.event.to_string()))
                    });
                }
            });
        }
        ep.drive_epochs(threads, epochs, |k| {
            let d = k % DOMAINS;
            ep.begin(k, d);
            drv.attach_s1(SID, &doms[d as usize]).unwrap();
            ep.publish(k);
            // Keep the event queue from overflowing with transition faults.
            drv.read_events();
        });
    });
    if let Some(v) = ep.result() {
        panic!("stale configuration: {v}");
    }
}

/// After a re-attach's last CMD_SYNC, no translation uses the previous domain.
#[test]
fn test_smmu_no_stale_domain_after_reattach_sync() {
    // Re-attaching a stream to another domain (CD rewrite + CFGI + CMD_SYNC, as Linux does) is
    // observed by every translation that starts after the last CMD_SYNC; during the transition
    // only the old domain, the new one, or a fault is seen.
    smmu_reattach_race(600, 2);
}

/// Long run of the re-attach race (`cargo test -- --ignored`).
#[test]
#[ignore = "long stress run"]
fn test_smmu_no_stale_domain_after_reattach_sync_long() {
    smmu_reattach_race(6_000, 3);
}

/// `epochs` renumberings of a PCIe-to-PCI bridge's secondary bus (bus `1 + k % DOMAINS`, whose
/// StreamID `bus << 8` is attached to domain `k % DOMAINS`) while `threads` DMA threads of a
/// device behind it translate through the VMM's routed view: once `set_secondary_bus` returned,
/// no DMA that starts later may use the previous bus's StreamID.
fn renumber_race(epochs: u64, threads: usize) {
    use viommu::common::topology::{BridgeKind, IdMap, PciTopologyBuilder};
    use vmm_support::RoutedEndpoint;

    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let smmu = smmu_with_pool(&ram);
    let mut drv = brought_up(&smmu, &ram, DriverOptions::default());
    for d in 0..DOMAINS {
        let dom = drv.new_s1_domain(ASID + d as u16);
        dom.pgtable
            .map(&*ram, &mut drv.alloc, IOVA, smmu_pa(d), 0x1000, Prot::RW);
        drv.attach_s1((1 + d as u32) << 8, &dom).unwrap();
    }
    let mut b = PciTopologyBuilder::new();
    let rp = b.root_bridge(0, 0x08, BridgeKind::PciePort).unwrap();
    let bridge = b.bridge_behind(rp, 0, BridgeKind::PcieToPci).unwrap();
    let dev = b.endpoint_behind(bridge, 0x20).unwrap();
    let topo = Arc::new(b.build(IdMap::identity()));
    topo.set_secondary_bus(rp, Some(0x80)).unwrap();
    topo.set_secondary_bus(bridge, Some(1)).unwrap();

    let ep = Epochs::new(epochs);
    ep.begin(0, 0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let routed = Arc::new(RoutedEndpoint {
                topology: topo.clone(),
                node: dev,
                iommu: smmu.clone(),
            });
            let (ep, ram) = (&ep, ram.clone());
            s.spawn(move || {
                if t == 0 {
                    let stream = StreamId(u32::MAX);
                    iommu_memory_loop(ep, (*ram).clone(), routed, stream, IOVA, |_| false);
                } else {
                    ep.dma_loop("RoutedEndpoint", |_| {
                        routed
                            .translate(&DmaRequest::read(0, IOVA, 8))
                            .map(|m| (m.output - smmu_pa(0)) / 0x1000)
                            .map_err(|f| (false, f.event.to_string()))
                    });
                }
            });
        }
        ep.drive_epochs(threads, epochs, |k| {
            let d = k % DOMAINS;
            ep.begin(k, d);
            topo.set_secondary_bus(bridge, Some(1 + d as u8)).unwrap();
            ep.publish(k);
        });
    });
    if let Some(v) = ep.result() {
        panic!("stale route: {v}");
    }
}

/// DMA starting after a bridge renumbering returned never uses the old StreamID.
#[test]
fn test_bridge_renumbering_during_dma_never_uses_old_stream_id() {
    // A guest renumbering the bridge in front of a device while it DMAs: every DMA that starts
    // after the renumbering returns uses the new bus's StreamID, never the old one.
    renumber_race(3000, 2);
}

/// CMD_SYNC after a TLBI completes only once in-flight DMA using the old mapping is done.
#[test]
fn test_cmd_sync_waits_for_in_flight_dma_using_invalidated_translation() {
    // A DMA that translated before a TLBI and is still using the translation (it holds the vm-
    // memory `IotlbIterator` guard, i.e. its memory access has not finished) delays the completion
    // of the CMD_SYNC that follows the TLBI: an invalidation is complete only once the
    // transactions that used the old translation have completed, so the guest may reuse the page
    // as soon as it sees the sync complete (the rule `common::iotlb::guard` documents).
    use vm_memory::{Iommu, Permissions};

    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let smmu = new_smmu(&ram);
    let mut drv = brought_up(&smmu, &ram, DriverOptions::default());
    let dom = drv.new_s1_domain(ASID);
    dom.pgtable
        .map(&*ram, &mut drv.alloc, IOVA, smmu_pa(0), 0x1000, Prot::RW);
    drv.attach_s1(SID, &dom).unwrap();
    let iommu = EndpointIommu::new(smmu.clone(), StreamId(SID), None);

    let finished = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let sync_done_before_dma_finished = std::thread::scope(|s| {
        s.spawn(|| {
            // The device's DMA: translated, now copying for a while.
            let guard = iommu
                .translate(GuestAddress(IOVA), 8, Permissions::Write)
                .unwrap();
            tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            finished.store(true, Ordering::SeqCst);
            drop(guard);
        });
        rx.recv().unwrap();
        // The guest unmaps the page: TLBI_NH_VA + CMD_SYNC, then would reuse it.
        drv.unmap_s1(&dom, IOVA, 0x1000).unwrap();
        !finished.load(Ordering::SeqCst)
    });
    assert!(
        !sync_done_before_dma_finished,
        "CMD_SYNC completed while a DMA using the invalidated translation was still in flight"
    );
}

// ------------------------------------------------------------------------------------ PAMU

const LIODN: u16 = 0x48;
const WINDOW: u64 = 0x1000_0000;

fn pamu_pa(page: u64) -> u64 {
    0x200_0000 + page * 0x1000
}

/// `epochs` window moves by the Linux PAMU protocol (clear V, update the PAACE, set V; no
/// invalidation) while `threads` DMA threads translate through the window.
fn pamu_no_stale_after_valid(epochs: u64, threads: usize) {
    let rig = Rig::new(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let ram = rig.mem().clone();
    for page in 0..POOL {
        mem::write_u64_le(&ram, pamu_pa(page), page).unwrap();
    }
    // A one-window 4 KiB domain through the geometry API (pre-5.13 Linux).
    let mut dom = drv.new_domain();
    let t = &mut drv.tables;
    dom.attach(t, &ram, LIODN).unwrap();
    dom.set_geometry(t, &ram, WINDOW, WINDOW + 0xfff).unwrap();
    dom.set_windows(t, &ram, 1).unwrap();
    dom.window_enable(t, &ram, 0, pamu_pa(0), 0x1000, Perms::RW)
        .unwrap();
    dom.enable(t, &ram, true).unwrap();
    let entry = drv.tables.ppaace_addr(u32::from(LIODN)).unwrap();
    // TWBAL: PAACE word 5, physical address bits [31:12] in its upper 20 bits (test vector TV-1).
    let w5 = mem::read_u32_be(&ram, entry + 20).unwrap();

    let ep = Epochs::new(epochs);
    ep.begin(0, 0);
    ep.started.store(0, Ordering::SeqCst);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ep, pamu, ram) = (&ep, rig.pamu.clone(), ram.clone());
            s.spawn(move || {
                let transient = |event: &str| event.contains("AV_DISABLED");
                if t == 0 {
                    let stream = StreamId(u32::from(LIODN));
                    iommu_memory_loop(ep, ram, pamu, stream, WINDOW, transient);
                } else {
                    ep.dma_loop("DmaTranslator", |i| {
                        let off = (i * 8) & 0xff8;
                        pamu.translate(&DmaRequest::read(u32::from(LIODN), WINDOW + off, 8))
                            .map(|m| (m.output - off - pamu_pa(0)) / 0x1000)
                            .map_err(|f| (transient(f.event.name()), f.event.to_string()))
                    });
                }
            });
        }
        // The vCPU thread: pamu_disable_liodn, rewrite TWBA, pamu_enable_liodn.
        ep.drive_epochs(threads, epochs, |k| {
            let page = k % POOL;
            ep.begin(k, page);
            drv.set_liodn_valid(LIODN, false).unwrap();
            let new_w5 = (w5 & 0xfff) | (pamu_pa(page) as u32 & 0xffff_f000);
            mem::write_u32_be(&ram, entry + 20, new_w5).unwrap();
            drv.set_liodn_valid(LIODN, true).unwrap();
            ep.publish(k);
        });
    });
    if let Some(v) = ep.result() {
        panic!("stale translation: {v}");
    }
}

/// After V = 1 on an updated PAACE, later translations use the new window, never the old.
#[test]
fn test_pamu_no_stale_window_after_valid_set() {
    // After the guest writes V = 1 on an updated PAACE, translations that start later use the new
    // window; while V = 0 they fault AV_DISABLED, never with the old window.
    pamu_no_stale_after_valid(30_000, 2);
}

/// Long run of the PAMU update race with three DMA threads (`cargo test -- --ignored`).
#[test]
#[ignore = "long stress run"]
fn test_pamu_no_stale_window_after_valid_set_long() {
    pamu_no_stale_after_valid(300_000, 3);
}

/// Concurrent DMA faults fill the event queue exactly: no lost, torn or duplicate records.
#[test]
fn test_concurrent_faults_fill_event_queue_exactly() {
    // DMA threads faulting at once: every fault up to the event queue's capacity becomes exactly
    // one well-formed record (none lost, torn or duplicated); past capacity the overflow flag is
    // raised once and the driver sees it.
    const PER_THREAD: u64 = 700;
    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let smmu = new_smmu(&ram);
    let opts = DriverOptions {
        evtq_max_log2: 10,
        ..DriverOptions::default()
    };
    let mut drv = brought_up(&smmu, &ram, opts);
    let dom = drv.new_s1_domain(ASID);
    drv.attach_s1(SID, &dom).unwrap();

    // Round 1: 2 x 400 faults fit in the 1024-entry queue.
    let storm = |per_thread: u64| {
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let smmu = smmu.clone();
                s.spawn(move || {
                    for i in 0..per_thread {
                        let addr = IOVA + ((t * per_thread + i) << 12);
                        assert!(smmu.translate(&DmaRequest::write(SID, addr, 4)).is_err());
                    }
                });
            }
        })
    };
    storm(400);
    let recs = drv.read_events();
    let mut addrs: Vec<u64> = recs
        .iter()
        .map(|r| {
            assert_eq!(r[0] & 0xff, 0x10, "F_TRANSLATION: {r:x?}");
            assert_eq!(r[0] >> 32, u64::from(SID));
            assert_eq!(r[1] >> 35 & 1, 0, "RnW = write");
            r[2]
        })
        .collect();
    addrs.sort_unstable();
    let want: Vec<u64> = (0..800).map(|i| IOVA + (i << 12)).collect();
    assert_eq!(addrs, want);
    assert_eq!(drv.overflows, 0);

    // Round 2: 2 x 700 faults overflow it: exactly a full queue of records, overflow seen.
    storm(PER_THREAD);
    let recs = drv.read_events();
    assert_eq!(recs.len(), 1024);
    assert_eq!(drv.overflows, 1);
    let mut addrs: Vec<u64> = recs.iter().map(|r| r[2]).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 1024, "no duplicated records");
    assert!(addrs
        .iter()
        .all(|a| (IOVA..IOVA + ((2 * PER_THREAD) << 12)).contains(a)));
}
