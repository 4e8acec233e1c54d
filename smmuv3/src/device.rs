//! The SMMUv3 device: register file, interrupts and global errors (IHI 0070 chapter 6, §7.5).
//!
//! [`SmmuV3`] is the unit a VMM puts on its MMIO bus ([`MmioDevice`](viommu_common::traits::MmioDevice)) and routes endpoint DMA
//! through ([`DmaTranslator`](viommu_common::traits::DmaTranslator), implemented in
//! [`crate::translate`]). It owns:
//!
//! - the register file of page 0 and page 1 (page 1 aliases page 0, policy, see [`crate::regs`]);
//! - the command queue consumer ([`crate::cmdq`]), the event queue producer ([`crate::evtq`]);
//! - the configuration cache and the IOTLB used by translation.
//!
//! # Concurrency
//!
//! Register writes come from vCPU threads, DMA translations from any number of device threads.
//! State is partitioned by who touches it:
//!
//! | Lock | Guards | Taken by |
//! |---|---|---|
//! | `ctrl` | CR0..CR2, GBPA, STRTAB_*, CMDQ_* and PRIQ_* registers; command consumption | MMIO |
//! | `evtq` | EVENTQ_BASE/PROD/CONS and the "queue enabled" flag | MMIO, faulting DMA |
//! | `irq`  | IRQ_CTRL, GERROR/GERRORN, all `*_IRQ_CFG*` | MMIO, faulting DMA, commands |
//!
//! Lock order is `ctrl` -> `evtq` -> `irq`; no lock is held while taking one earlier in that
//! order. Translation takes **none** of them on its success path: it reads an immutable
//! [`TranslationRegs`] of the translation-relevant registers (published with `arc-swap` by every writer
//! of those registers, under `ctrl`), the configuration cache and the IOTLB, both lock-free for
//! readers. Only a fault that must be recorded takes `evtq` (then `irq`).
//!
//! CMD_SYNC guarantee: every command's effect (configuration-cache and IOTLB invalidation)
//! completes synchronously inside the consumer before CONS passes the command, and the IOTLB's
//! invalidation is linearizable (no lookup starting after it returns a covered entry, no fill
//! begun before it can insert one). So once the guest sees a CMD_SYNC complete, no translation
//! started afterwards returns a stale result.
//!
//! # Saving state
//!
//! Every architectural register lives in plain types ([`CtrlState`], [`EvtqState`],
//! [`IrqState`]) gathered in [`SmmuV3State`], which also holds the stall table ([`StallState`]).
//! A VMM saves and restores them through [`SmmuV3::save`] and [`SmmuV3::restore`]
//! ([`crate::snapshot`]). Caches are never part of the state: they are rebuilt on demand.

use std::hint::spin_loop;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;

use viommu_common::iotlb::{Invalidation, Iotlb};
use viommu_common::traits::InterruptSink;

use crate::caps::{Caps, CapsError, IdRegs, SmmuConfig};
use crate::cmdq::CmdqState;
use crate::config::cache::ConfigCache;
use crate::evtq::EvtqState;
use crate::regs::IrqSource;
use crate::route::RouteCache;
use crate::spec::regs::{Cr0, Cr2, Gbpa, StrtabBase, StrtabBaseCfg};
use crate::trace::{TraceRecord, Tracer};

/// Wired interrupt line numbers passed to [`InterruptSink::pulse`] when a source has no MSI
/// configured (or IDR0.MSI = 0). The order is QEMU virt's SPIs 74..77.
pub mod lines {
    /// Event queue interrupt.
    pub const EVENTQ: u32 = 0;
    /// PRI queue interrupt.
    pub const PRIQ: u32 = 1;
    /// CMD_SYNC completion (CS = SIG_IRQ without an MSI address).
    pub const CMD_SYNC: u32 = 2;
    /// Global error interrupt.
    pub const GERROR: u32 = 3;
}

/// GBPA reset value (IMPLEMENTATION DEFINED). Policy: 0x1000 as QEMU: bypass with SHCFG =
/// "use incoming", ABORT = 0, so traffic passes untranslated until Linux enables the SMMU.
pub const GBPA_RESET: u32 = 0x0000_1000;

/// Default number of commands consumed per MMIO access before returning to the vCPU.
pub const DEFAULT_CMDQ_BATCH: usize = 4096;

/// MSI configuration of one interrupt source (`*_IRQ_CFG0/1/2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IrqCfg {
    /// `*_IRQ_CFG0`: doorbell address, ADDR \[51:2\] (0: use the wired line).
    pub cfg0: u64,
    /// `*_IRQ_CFG1`: MSI data.
    pub cfg1: u32,
    /// `*_IRQ_CFG2`: MemAttr/SH (stored only).
    pub cfg2: u32,
}

/// Control registers and the command/PRI queue registers (guarded by the `ctrl` lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtrlState {
    /// CR0 (CR0ACK reads the same value: changes take effect synchronously).
    pub cr0: u32,
    /// CR1.
    pub cr1: u32,
    /// CR2.
    pub cr2: u32,
    /// GBPA (UPDATE always reads 0).
    pub gbpa: u32,
    /// STRTAB_BASE.
    pub strtab_base: u64,
    /// STRTAB_BASE_CFG.
    pub strtab_base_cfg: u32,
    /// CMDQ_BASE/PROD/CONS.
    pub cmdq: CmdqState,
    /// PRIQ_BASE/PROD/CONS (the PRI queue producer is [`crate::priq`]).
    pub priq: EvtqState,
}

/// Interrupt control and global error registers (guarded by the `irq` lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IrqState {
    /// IRQ_CTRL (IRQ_CTRLACK reads the same value).
    pub irq_ctrl: u32,
    /// GERROR.
    pub gerror: u32,
    /// GERRORN.
    pub gerrorn: u32,
    /// `*_IRQ_CFG*` of GERROR, EVENTQ and PRIQ, in that order.
    pub cfg: [IrqCfg; 3],
}

pub use crate::stall::{HeldProgress, HeldTransaction, StallState};

/// The complete architectural state of an [`SmmuV3`], as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SmmuV3State {
    /// ID registers presented.
    pub ids: IdRegs,
    /// Control and command-queue registers.
    pub ctrl: CtrlState,
    /// Event queue registers.
    pub evtq: EvtqState,
    /// Interrupt and error registers.
    pub irq: IrqState,
    /// The stall table: held transactions (with everything a RESUME needs) and completed ones
    /// whose endpoint has not collected the result, plus the STAG allocator.
    pub stalls: StallState,
}

/// The registers translation needs, published as an immutable snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationRegs {
    /// CR0 as accepted.
    pub cr0: Cr0,
    /// CR2.
    pub cr2: Cr2,
    /// GBPA as latched.
    pub gbpa: Gbpa,
    /// STRTAB_BASE.
    pub strtab_base: StrtabBase,
    /// STRTAB_BASE_CFG.
    pub strtab_cfg: StrtabBaseCfg,
}

impl TranslationRegs {
    /// From the raw register words `[CR0, CR2, GBPA, STRTAB_BASE, STRTAB_BASE_CFG]`.
    fn from_words(w: [u64; 5]) -> Self {
        TranslationRegs {
            cr0: Cr0::from_bits(w[0] as u32),
            cr2: Cr2::from_bits(w[1] as u32),
            gbpa: Gbpa::from_bits(w[2] as u32),
            strtab_base: StrtabBase::from_bits(w[3]),
            strtab_cfg: StrtabBaseCfg::from_bits(w[4] as u32),
        }
    }
}

/// A copy of the registers [`RegsView::load`] read, for the duration of one translation.
#[derive(Debug)]
pub(crate) struct RegsSnapshot(TranslationRegs);

impl std::ops::Deref for RegsSnapshot {
    type Target = TranslationRegs;
    fn deref(&self) -> &TranslationRegs {
        &self.0
    }
}

/// Translation's view of [`TranslationRegs`]: the raw register words in a seqlock of atomics,
/// written only under `ctrl` (so writers never race each other), read without a lock or a
/// shared write. A reader retries while a writer is inside (a few stores).
#[derive(Debug)]
pub(crate) struct RegsView {
    seq: AtomicU64,
    words: [AtomicU64; 5],
}

impl RegsView {
    fn new(c: &CtrlState) -> Self {
        let v = Self {
            seq: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        };
        v.publish(c);
        v
    }

    /// Publish `c`'s registers (with `ctrl` held: one writer at a time).
    fn publish(&self, c: &CtrlState) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Order the word stores after the odd sequence number.
        fence(Ordering::Release);
        let words = [
            u64::from(c.cr0),
            u64::from(c.cr2),
            u64::from(c.gbpa),
            c.strtab_base,
            u64::from(c.strtab_base_cfg),
        ];
        for (a, w) in self.words.iter().zip(words) {
            a.store(w, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The registers as last published.
    pub(crate) fn load(&self) -> RegsSnapshot {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let w = [0, 1, 2, 3, 4].map(|i| self.words[i].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if s1 & 1 == 0 && self.seq.load(Ordering::Relaxed) == s1 {
                return RegsSnapshot(TranslationRegs::from_words(w));
            }
            spin_loop();
        }
    }
}

/// The event queue registers plus whether records are accepted (CR0.EVENTQEN and CR0.SMMUEN),
/// guarded by the `evtq` lock.
#[derive(Debug, Default)]
pub(crate) struct EvtqProducer {
    pub(crate) regs: EvtqState,
    pub(crate) enabled: bool,
}

struct TracerBox(Tracer);

/// Counters of device activity (relaxed atomics; for statistics only).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commands: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    /// Requests not served by the IOTLB fast path (route-cache bypass/abort, misses).
    pub(crate) translations: AtomicU64,
    /// Of those, requests that then hit the IOTLB after a route-cache miss.
    pub(crate) slow_iotlb_hits: AtomicU64,
    pub(crate) faults: AtomicU64,
}

/// Device activity counters, see [`SmmuV3::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DeviceStats {
    /// Commands consumed.
    pub commands: u64,
    /// Event records written to the guest queue.
    pub events: u64,
    /// Event records dropped (queue disabled, full or unwritable).
    pub events_dropped: u64,
    /// Translations requested.
    pub translations: u64,
    /// Translations that faulted.
    pub faults: u64,
    /// IOTLB counters.
    pub iotlb: viommu_common::iotlb::IotlbStats,
}

pub use viommu_common::mem::GuestRam;

/// An Arm SMMUv3.
///
/// Generic over the guest's address space `M`: `&GuestMemoryMmap`, `Arc<GuestMemoryMmap>` or a
/// VMM's `GuestMemoryAtomic<GuestMemoryMmap>` (whose memory map may be replaced at run time).
/// Several instances may live in one process; they share nothing.
pub struct SmmuV3<M: GuestRam> {
    pub(crate) caps: Caps,
    pub(crate) mem: M,
    pub(crate) sink: Arc<dyn InterruptSink>,
    tracer: ArcSwapOption<TracerBox>,
    /// Control and command-queue registers; held for the whole of a command batch so commands
    /// execute in order and CONS moves only under it.
    pub(crate) ctrl: Mutex<CtrlState>,
    /// Event queue producer: keeps "write record, advance PROD" atomic against other producers
    /// and against EVENTQ_* register accesses.
    pub(crate) evtq: Mutex<EvtqProducer>,
    /// IRQ_CTRL, GERROR/GERRORN and MSI configuration: keeps the GERROR toggle and the
    /// decision to signal atomic.
    pub(crate) irq: Mutex<IrqState>,
    /// Translation's lock-free view of CR0/CR2/GBPA/STRTAB_*; published under `ctrl`.
    pub(crate) view: RegsView,
    /// Set when a command batch stopped at its limit with commands left (see
    /// [`SmmuV3::process_pending`]).
    work_pending: AtomicBool,
    cmdq_batch: AtomicUsize,
    /// The IOTLB: stage-1, stage-2 and nested results tagged by VMID/ASID.
    pub(crate) iotlb: Iotlb,
    /// Decoded STEs and CDs, invalidated by CFGI_* (lock-free readers).
    pub(crate) config: ConfigCache,
    /// Resolved routes per (StreamID, SubstreamID), generation-checked (lock-free readers).
    pub(crate) routes: RouteCache,
    pub(crate) counters: Counters,
    /// Stalled transactions (see [`crate::stall`]); taken after `ctrl`, before `evtq`.
    pub(crate) stalls: crate::stall::StallTable,
    /// Outstanding page request groups and their responses (see [`crate::priq`]); taken after
    /// `ctrl`.
    pub(crate) pri: crate::priq::PriTable,
    /// Registered endpoint ATCs and the pending CERROR_ATC_INV_SYNC flag (see [`crate::ats`]).
    pub(crate) atc: crate::ats::AtcRegistry,
    /// Host backend and host-backed StreamIDs (see [`crate::host`]).
    pub(crate) host: crate::host::HostState,
}

impl<M: GuestRam> std::fmt::Debug for SmmuV3<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmmuV3")
            .field("caps", &self.caps)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a device lock cannot leave the register file inconsistent in a way
    // that matters more than losing the device; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// A device configured by `config`, with DMA into `mem` and interrupts to `sink`, in its
    /// reset state.
    ///
    /// # Errors
    /// [`CapsError`] naming the first setting the model cannot support.
    pub fn new(
        config: &SmmuConfig,
        mem: M,
        sink: Arc<dyn InterruptSink>,
    ) -> Result<Self, CapsError> {
        Ok(Self::from_caps(config.caps()?, mem, sink))
    }

    /// A device mirroring raw ID register values (a host SMMU, or the SMMU a trace was recorded
    /// on): it advertises exactly those features.
    ///
    /// # Errors
    /// [`CapsError`] naming the first feature the model cannot support.
    pub fn from_id_regs(
        regs: IdRegs,
        mem: M,
        sink: Arc<dyn InterruptSink>,
    ) -> Result<Self, CapsError> {
        Self::new(&SmmuConfig::from_id_regs(regs)?, mem, sink)
    }

    /// A device presenting `caps` (already validated by [`SmmuConfig::caps`]).
    pub fn from_caps(caps: Caps, mem: M, sink: Arc<dyn InterruptSink>) -> Self {
        let ctrl = CtrlState {
            gbpa: GBPA_RESET,
            ..CtrlState::default()
        };
        Self {
            caps,
            mem,
            sink,
            tracer: ArcSwapOption::empty(),
            view: RegsView::new(&ctrl),
            ctrl: Mutex::new(ctrl),
            evtq: Mutex::new(EvtqProducer::default()),
            irq: Mutex::new(IrqState::default()),
            work_pending: AtomicBool::new(false),
            cmdq_batch: AtomicUsize::new(DEFAULT_CMDQ_BATCH),
            iotlb: Iotlb::new(4096),
            config: ConfigCache::new(),
            routes: RouteCache::new(),
            counters: Counters::default(),
            stalls: crate::stall::StallTable::new(caps.idr5.stall_max()),
            pri: crate::priq::PriTable::default(),
            atc: crate::ats::AtcRegistry::default(),
            host: crate::host::HostState::default(),
        }
    }

    /// The capabilities (ID registers) the device presents.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// Install (or with `None` remove) the trace hook. See [`crate::trace`].
    pub fn set_tracer(&self, tracer: Option<Tracer>) {
        self.tracer.store(tracer.map(|t| Arc::new(TracerBox(t))));
    }

    /// True if a tracer is installed (worth building records for).
    pub(crate) fn tracing(&self) -> bool {
        self.tracer.load().is_some()
    }

    /// Emit a trace record built by `f`, if a tracer is installed.
    pub(crate) fn trace(&self, f: impl FnOnce() -> TraceRecord) {
        if let Some(t) = self.tracer.load().as_ref() {
            (t.0)(&f());
        }
    }

    /// Set how many commands one MMIO access may consume (at least 1). The rest is consumed by
    /// later CMDQ_PROD writes, CMDQ_CONS reads or [`SmmuV3::process_pending`].
    pub fn set_cmdq_batch_limit(&self, n: usize) {
        self.cmdq_batch.store(n.max(1), Ordering::Relaxed);
    }

    pub(crate) fn cmdq_batch_limit(&self) -> usize {
        self.cmdq_batch.load(Ordering::Relaxed)
    }

    pub(crate) fn set_work_pending(&self, v: bool) {
        self.work_pending.store(v, Ordering::Release);
    }

    /// True if the command queue has commands that a batch limit left unconsumed.
    ///
    /// A VMM that keeps the vCPU thread short calls [`SmmuV3::process_pending`] from a worker
    /// (or its event loop) while this is true.
    pub fn has_pending_work(&self) -> bool {
        self.work_pending.load(Ordering::Acquire)
    }

    /// Consume one more bounded batch of commands. Returns true if work remains.
    pub fn process_pending(&self) -> bool {
        let mut ctrl = lock(&self.ctrl);
        self.consume_locked(&mut ctrl);
        self.has_pending_work()
    }

    /// Consume every pending command (each batch is bounded; the queue cannot grow while this
    /// runs without MMIO writes, so this terminates). The replay tool calls it before reads.
    pub fn finish_pending(&self) {
        // The queue holds at most 2^19 entries; one batch consumes at least one command or
        // stops (empty, error, disabled), so this bound is never reached in practice.
        for _ in 0..(1usize << 20) {
            if !self.process_pending() {
                break;
            }
        }
    }

    /// The complete architectural state, as plain data (what [`SmmuV3::save`] serialises).
    pub(crate) fn state(&self) -> SmmuV3State {
        let ctrl = *lock(&self.ctrl);
        let evtq = lock(&self.evtq).regs;
        let irq = *lock(&self.irq);
        SmmuV3State {
            ids: self.caps.id_regs(),
            ctrl,
            evtq,
            irq,
            stalls: self.stall_state(),
        }
    }

    /// Activity counters, including the IOTLB's.
    pub fn stats(&self) -> DeviceStats {
        let c = &self.counters;
        let iotlb = self.iotlb.stats();
        DeviceStats {
            commands: c.commands.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            events_dropped: c.events_dropped.load(Ordering::Relaxed),
            // Fast-path IOTLB hits are counted only by the IOTLB (per-thread stripes), the rest
            // here; requests that hit the IOTLB on the slow path are in both.
            translations: (c.translations.load(Ordering::Relaxed) + iotlb.hits)
                .saturating_sub(c.slow_iotlb_hits.load(Ordering::Relaxed)),
            faults: c.faults.load(Ordering::Relaxed),
            iotlb,
        }
    }

    /// System reset: every register back to its reset value, every cache dropped (a cache that
    /// survived a reset would serve the previous boot's STEs to the next one).
    pub fn reset(&self) {
        let mut ctrl = lock(&self.ctrl);
        *ctrl = CtrlState {
            gbpa: GBPA_RESET,
            ..CtrlState::default()
        };
        {
            let mut e = lock(&self.evtq);
            *e = EvtqProducer::default();
        }
        *lock(&self.irq) = IrqState::default();
        self.publish_translation_regs_locked(&ctrl);
        self.invalidate_all_caches();
        self.host_configure_all_locked(&ctrl, crate::host::HostCause::Reset);
        self.set_work_pending(false);
        // A pending CERROR_ATC_INV_SYNC is command-queue state (see crate::ats).
        self.atc.sync_error.store(false, Ordering::Release);
        // Reset disables translation: every stalled transaction is terminated (IHI 0070
        // §3.12.2).
        self.terminate_stalls(None);
    }

    /// Drop every cached translation (what TLBI_NSNH_ALL does), keeping cached configuration.
    /// For VMMs that change guest memory behind the guest's back, and for benches.
    pub fn flush_iotlb(&self) {
        self.iotlb.invalidate(Invalidation::All);
    }

    /// Number of translations the IOTLB can hold.
    pub fn iotlb_capacity(&self) -> usize {
        self.iotlb.capacity()
    }

    /// Drop every cached configuration and translation.
    pub(crate) fn invalidate_all_caches(&self) {
        self.config_invalidate_all();
        self.iotlb.invalidate(Invalidation::All);
    }

    /// Publish the translation view of `ctrl` (call with `ctrl` held, after changing it).
    pub(crate) fn publish_translation_regs_locked(&self, ctrl: &CtrlState) {
        self.view.publish(ctrl);
    }
}

pub(crate) fn irq_index(s: IrqSource) -> usize {
    match s {
        IrqSource::Gerror => 0,
        IrqSource::Eventq => 1,
        IrqSource::Priq => 2,
    }
}
