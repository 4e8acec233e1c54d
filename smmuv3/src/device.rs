//! The SMMUv3 device: register file, interrupts and global errors (IHI 0070 chapter 6, §7.5).
//!
//! [`SmmuV3`] is the unit a VMM puts on its MMIO bus ([`MmioDevice`]) and routes endpoint DMA
//! through ([`DmaTranslator`], implemented in [`crate::translate`]). It owns:
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
//! [`View`] of the translation-relevant registers (published with `arc-swap` by every writer
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
//! [`IrqState`]) gathered in [`SmmuV3State`], which also has a place for held (stalled)
//! transactions; see [`SmmuV3::state`]. Caches are never part of the state: they are rebuilt on
//! demand.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use vm_memory::{GuestAddress, GuestAddressSpace, GuestMemoryBackend};

use viommu_common::iotlb::{Invalidation, Iotlb};
use viommu_common::traits::{InterruptSink, MmioDevice, MmioError};

use crate::caps::{Caps, CapsError, IdRegs, SmmuConfig};
use crate::cmdq::CmdqState;
use crate::evtq::{EvtqState, Produced};
use crate::regs::{self, IrqSource, Queue, Register};
use crate::spec::regs::{
    defined, CmdqCons, Cr0, Cr2, Gbpa, Gerror, IrqCtrl, StrtabBase, StrtabBaseCfg,
};
use crate::trace::{Delivery, Signal, TraceRecord, Tracer};

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
    /// `*_IRQ_CFG0`: doorbell address, ADDR [51:2] (0: use the wired line).
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
    /// PRIQ_BASE/PROD/CONS (stored; the PRI queue producer comes with issue 4).
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

/// A transaction held by the stall model (issue 4). Empty in this version: faults terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeldTransaction {
    /// StreamID.
    pub stream: u32,
    /// Stall tag reported in the event record.
    pub stag: u16,
    /// Input address.
    pub addr: u64,
}

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
    /// Stalled transactions (always empty until the stall model lands).
    pub held: Vec<HeldTransaction>,
}

/// The registers translation needs, published as an immutable snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
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

impl View {
    fn of(c: &CtrlState) -> Self {
        View {
            cr0: Cr0::from_bits(c.cr0),
            cr2: Cr2::from_bits(c.cr2),
            gbpa: Gbpa::from_bits(c.gbpa),
            strtab_base: StrtabBase::from_bits(c.strtab_base),
            strtab_cfg: StrtabBaseCfg::from_bits(c.strtab_base_cfg),
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
    pub(crate) translations: AtomicU64,
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

/// The guest memory a device DMAs into: any vm-memory [`GuestAddressSpace`] whose memory is a
/// [`GuestMemoryBackend`] (`&GuestMemoryMmap`, `Arc<GuestMemoryMmap>`,
/// `GuestMemoryAtomic<GuestMemoryMmap>`).
pub trait GuestRam: Send + Sync {
    /// The memory map.
    type Backend: GuestMemoryBackend + ?Sized;
    /// A snapshot of the memory map, held for one access.
    type Guard: std::ops::Deref<Target = Self::Backend>;
    /// The current memory map.
    fn ram(&self) -> Self::Guard;
}

impl<A> GuestRam for A
where
    A: GuestAddressSpace + Send + Sync,
    A::M: GuestMemoryBackend,
{
    type Backend = A::M;
    type Guard = A::T;
    fn ram(&self) -> A::T {
        self.memory()
    }
}

/// An Arm SMMUv3.
///
/// Generic over the guest's address space `M`: `&GuestMemoryMmap`, `Arc<GuestMemoryMmap>` or a
/// VMM's `GuestMemoryAtomic<GuestMemoryMmap>` (whose memory map may be replaced at run time).
/// Several instances may live in one process; they share nothing.
pub struct SmmuV3<M: GuestRam> {
    pub(crate) caps: Caps,
    pub(crate) mem: M,
    sink: Arc<dyn InterruptSink>,
    tracer: ArcSwapOption<TracerBox>,
    /// Control and command-queue registers; held for the whole of a command batch so commands
    /// execute in order and CONS moves only under it.
    pub(crate) ctrl: Mutex<CtrlState>,
    /// Event queue producer: keeps "write record, advance PROD" atomic against other producers
    /// and against EVENTQ_* register accesses.
    pub(crate) evtq: Mutex<EvtqProducer>,
    /// IRQ_CTRL, GERROR/GERRORN and MSI configuration: keeps the GERROR toggle and the
    /// decision to signal atomic.
    irq: Mutex<IrqState>,
    /// Translation's lock-free snapshot of CR0/CR2/GBPA/STRTAB_*; replaced under `ctrl`.
    pub(crate) view: ArcSwap<View>,
    /// Set when a command batch stopped at its limit with commands left (see
    /// [`SmmuV3::process_pending`]).
    work_pending: AtomicBool,
    cmdq_batch: AtomicUsize,
    /// The IOTLB: stage-1, stage-2 and nested results tagged by VMID/ASID.
    pub(crate) iotlb: Iotlb,
    pub(crate) counters: Counters,
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
            view: ArcSwap::from_pointee(View::of(&ctrl)),
            ctrl: Mutex::new(ctrl),
            evtq: Mutex::new(EvtqProducer::default()),
            irq: Mutex::new(IrqState::default()),
            work_pending: AtomicBool::new(false),
            cmdq_batch: AtomicUsize::new(DEFAULT_CMDQ_BATCH),
            iotlb: Iotlb::new(4096),
            counters: Counters::default(),
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

    /// True if a tracer is installed (callers skip building trace text otherwise).
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

    /// The complete architectural state, as plain data.
    pub fn state(&self) -> SmmuV3State {
        let ctrl = *lock(&self.ctrl);
        let evtq = lock(&self.evtq).regs;
        let irq = *lock(&self.irq);
        SmmuV3State {
            ids: self.caps.id_regs(),
            ctrl,
            evtq,
            irq,
            held: Vec::new(),
        }
    }

    /// Activity counters, including the IOTLB's.
    pub fn stats(&self) -> DeviceStats {
        let c = &self.counters;
        DeviceStats {
            commands: c.commands.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            events_dropped: c.events_dropped.load(Ordering::Relaxed),
            translations: c.translations.load(Ordering::Relaxed),
            faults: c.faults.load(Ordering::Relaxed),
            iotlb: self.iotlb.stats(),
        }
    }

    /// System reset: every register back to its reset value, every cache dropped (smmuv3.md §14
    /// pitfall 5).
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
        self.publish_view_locked(&ctrl);
        self.invalidate_all_caches();
        self.set_work_pending(false);
    }

    /// Drop every cached configuration and translation.
    pub(crate) fn invalidate_all_caches(&self) {
        self.config_invalidate_all();
        self.iotlb.invalidate(Invalidation::All);
    }

    /// Publish the translation view of `ctrl` (call with `ctrl` held, after changing it).
    pub(crate) fn publish_view_locked(&self, ctrl: &CtrlState) {
        self.view.store(Arc::new(View::of(ctrl)));
    }

    // ---------------------------------------------------------------------------------------
    // Interrupts and global errors.

    /// Signal `source` if enabled in IRQ_CTRL: MSI when IDR0.MSI and its CFG0 address is set,
    /// the wired line otherwise (smmuv3.md §1.8). A disabled source sends nothing, and enabling
    /// it later sends nothing retrospectively.
    pub(crate) fn signal(&self, source: IrqSource) {
        let irq = lock(&self.irq);
        self.signal_locked(&irq, source);
    }

    fn signal_locked(&self, irq: &IrqState, source: IrqSource) {
        let ctrl = IrqCtrl::from_bits(irq.irq_ctrl);
        let (enabled, idx, line) = match source {
            IrqSource::Gerror => (ctrl.gerror_irqen(), 0, lines::GERROR),
            IrqSource::Eventq => (ctrl.eventq_irqen(), 1, lines::EVENTQ),
            IrqSource::Priq => (ctrl.priq_irqen(), 2, lines::PRIQ),
        };
        let delivery = if !enabled {
            Delivery::Suppressed
        } else {
            let cfg = irq.cfg.get(idx).copied().unwrap_or_default();
            let addr = cfg.cfg0 & defined::IRQ_CFG0;
            if self.caps.idr0.msi() && addr != 0 {
                self.sink.send_msi(addr, cfg.cfg1);
                Delivery::Msi {
                    addr,
                    data: cfg.cfg1,
                }
            } else {
                self.sink.pulse(line);
                Delivery::Wired { line }
            }
        };
        self.trace(|| TraceRecord::Irq {
            signal: Signal::Source(source),
            delivery,
        });
    }

    /// Complete a CMD_SYNC with CS = SIG_IRQ (smmuv3.md §8.4).
    ///
    /// Policy: with IDR0.MSI and a non-zero MSIAddr, an address inside guest RAM is written as a
    /// 32-bit little-endian guest-memory store (the MSIPOLL pattern: Linux polls the SYNC slot's
    /// first word); any other address is a doorbell and goes to the interrupt sink as an MSI.
    /// Without an address (or without IDR0.MSI) the wired CMD_SYNC line is pulsed. Neither path
    /// can fail, so GERROR.MSI_CMDQ_ABT_ERR is never raised.
    pub(crate) fn sync_signal(&self, msi_addr: u64, msi_data: u32) -> Delivery {
        let delivery = if self.caps.idr0.msi() && msi_addr != 0 {
            let mem = self.mem.ram();
            if mem.address_in_range(GuestAddress(msi_addr))
                && viommu_common::mem::write_u32_le(&*mem, msi_addr, msi_data).is_ok()
            {
                return Delivery::Msi {
                    addr: msi_addr,
                    data: msi_data,
                };
            }
            self.sink.send_msi(msi_addr, msi_data);
            Delivery::Msi {
                addr: msi_addr,
                data: msi_data,
            }
        } else {
            self.sink.pulse(lines::CMD_SYNC);
            Delivery::Wired {
                line: lines::CMD_SYNC,
            }
        };
        self.trace(|| TraceRecord::Irq {
            signal: Signal::CmdSync,
            delivery,
        });
        delivery
    }

    /// Raise global errors `bits` (GERROR bit mask): each error that is not already active
    /// toggles its GERROR bit; if any toggled, the GERROR interrupt is signalled (§7.5).
    pub(crate) fn raise_gerror(&self, bits: u32) {
        let mut irq = lock(&self.irq);
        let active = irq.gerror ^ irq.gerrorn;
        let toggle = bits & defined::GERROR & !active;
        if toggle == 0 {
            return;
        }
        let old = irq.gerror;
        irq.gerror ^= toggle;
        let new = irq.gerror;
        self.trace(|| TraceRecord::Gerror { old, new });
        self.signal_locked(&irq, IrqSource::Gerror);
    }

    /// True while GERROR.CMDQ_ERR is active (the command queue is stopped).
    pub(crate) fn cmdq_error_active(&self) -> bool {
        let irq = lock(&self.irq);
        Gerror::from_bits(irq.gerror ^ irq.gerrorn).cmdq_err()
    }

    // ---------------------------------------------------------------------------------------
    // Events.

    /// Write a 32-byte event record to the event queue and signal EVENTQ (smmuv3.md §9).
    ///
    /// `describe` renders the event for the trace. Records are discarded while the queue is
    /// disabled; a full queue drops the record and sets the overflow flag; a write outside guest
    /// RAM raises GERROR.EVENTQ_ABT_ERR.
    pub(crate) fn record_event(&self, record: &[u8; 32], describe: impl Fn() -> String) {
        let max = u32::from(self.caps.idr1.eventqs());
        let produced = {
            let mut q = lock(&self.evtq);
            if !q.enabled {
                drop(q);
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: describe(),
                    reason: "event queue disabled".into(),
                });
                return;
            }
            let mem = self.mem.ram();
            q.regs.produce(&*mem, max, record)
        };
        match produced {
            Produced::Written { old_prod, .. } => {
                self.counters.events.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::Event {
                    pos: old_prod & 0xF_FFFF,
                    event: describe(),
                });
                self.signal(IrqSource::Eventq);
            }
            Produced::Overflow { toggled, prod } => {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: describe(),
                    reason: if toggled {
                        format!("queue full, OVFLG toggled, PROD={prod:#010x}")
                    } else {
                        "queue full, overflow already signalled".into()
                    },
                });
            }
            Produced::Abort { addr } => {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: describe(),
                    reason: format!("write abort at {addr:#x}"),
                });
                self.raise_gerror(Gerror::new().with_eventq_abt_err(true).into_bits());
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Register reads and writes.

    fn read_reg(&self, reg: Register) -> u64 {
        use Register::*;
        match reg {
            Idr(n) => {
                let r = self.caps.id_regs();
                u64::from(match n {
                    0 => r.idr0,
                    1 => r.idr1,
                    2 => r.idr2,
                    3 => r.idr3,
                    4 => r.idr4,
                    _ => r.idr5,
                })
            }
            Iidr => u64::from(self.caps.iidr.into_bits()),
            Aidr => u64::from(self.caps.aidr.into_bits()),
            Cr0 | Cr0Ack => u64::from(lock(&self.ctrl).cr0),
            Cr1 => u64::from(lock(&self.ctrl).cr1),
            Cr2 => u64::from(lock(&self.ctrl).cr2),
            Gbpa => u64::from(lock(&self.ctrl).gbpa),
            Statusr | Agbpa | RazWi => 0,
            IrqCtrl | IrqCtrlAck => u64::from(lock(&self.irq).irq_ctrl),
            Gerror => u64::from(lock(&self.irq).gerror),
            Gerrorn => u64::from(lock(&self.irq).gerrorn),
            IrqCfg0(s) => lock(&self.irq).cfg[irq_index(s)].cfg0,
            IrqCfg1(s) => u64::from(lock(&self.irq).cfg[irq_index(s)].cfg1),
            IrqCfg2(s) => u64::from(lock(&self.irq).cfg[irq_index(s)].cfg2),
            StrtabBase => lock(&self.ctrl).strtab_base,
            StrtabBaseCfg => u64::from(lock(&self.ctrl).strtab_base_cfg),
            QueueBase(Queue::Cmdq) => lock(&self.ctrl).cmdq.base,
            QueueProd(Queue::Cmdq) => u64::from(lock(&self.ctrl).cmdq.prod),
            QueueCons(Queue::Cmdq) => {
                let mut ctrl = lock(&self.ctrl);
                // A driver waiting for CONS keeps the queue moving even if the VMM never calls
                // process_pending (bounded: one batch per read).
                if self.has_pending_work() {
                    self.consume_locked(&mut ctrl);
                }
                u64::from(ctrl.cmdq.cons)
            }
            QueueBase(Queue::Eventq) => lock(&self.evtq).regs.base,
            QueueProd(Queue::Eventq) => u64::from(lock(&self.evtq).regs.prod),
            QueueCons(Queue::Eventq) => u64::from(lock(&self.evtq).regs.cons),
            QueueBase(Queue::Priq) => lock(&self.ctrl).priq.base,
            QueueProd(Queue::Priq) => u64::from(lock(&self.ctrl).priq.prod),
            QueueCons(Queue::Priq) => u64::from(lock(&self.ctrl).priq.cons),
        }
    }

    fn trace_write(&self, reg: &'static str, value: u64, ignored: Option<&'static str>) {
        self.trace(|| TraceRecord::Mmio {
            reg,
            value,
            ignored,
        });
    }

    /// Write `value` to `part` of `reg`.
    fn write_reg(&self, reg: Register, part: regs::Part, value: u64) {
        use Register::*;
        let v32 = value as u32;
        match reg {
            Idr(_) | Iidr | Aidr | Cr0Ack | Statusr | IrqCtrlAck | Gerror => {
                self.trace_write(reg_name(reg), value, Some("read-only"));
            }
            Agbpa | RazWi => self.trace_write(reg_name(reg), value, Some("RAZ/WI")),
            Cr0 => self.write_cr0(v32),
            Cr1 | Cr2 => {
                let mut ctrl = lock(&self.ctrl);
                if crate::spec::regs::Cr0::from_bits(ctrl.cr0).smmuen() {
                    // Policy (smmuv3.md §1.10): CR1/CR2 are writable only while SMMUEN = 0.
                    self.trace_write(reg_name(reg), value, Some("SMMUEN=1"));
                    return;
                }
                if reg == Cr1 {
                    ctrl.cr1 = v32 & defined::CR1;
                } else {
                    // E2H only exists with IDR0.HYP.
                    let mask = if self.caps.idr0.hyp() {
                        defined::CR2
                    } else {
                        0x6
                    };
                    ctrl.cr2 = v32 & mask;
                    self.publish_view_locked(&ctrl);
                }
                self.trace_write(reg_name(reg), value, None);
            }
            Gbpa => self.write_gbpa(v32),
            IrqCtrl => {
                let mut irq = lock(&self.irq);
                let mut mask = defined::IRQ_CTRL;
                if !self.caps.idr0.pri() {
                    mask &= !crate::spec::regs::IrqCtrl::new()
                        .with_priq_irqen(true)
                        .into_bits();
                }
                irq.irq_ctrl = v32 & mask;
                self.trace_write("IRQ_CTRL", value, None);
            }
            Gerrorn => self.write_gerrorn(v32),
            IrqCfg0(s) | IrqCfg1(s) | IrqCfg2(s) => {
                // Accepted at any time (Linux reprograms MSIs while enabled).
                let mut irq = lock(&self.irq);
                let cfg = &mut irq.cfg[irq_index(s)];
                match reg {
                    IrqCfg0(_) => cfg.cfg0 = part.merge(cfg.cfg0, value) & defined::IRQ_CFG0,
                    IrqCfg1(_) => cfg.cfg1 = v32,
                    _ => cfg.cfg2 = v32 & defined::IRQ_CFG2,
                }
                self.trace_write(reg_name(reg), value, None);
            }
            StrtabBase | StrtabBaseCfg => {
                let mut ctrl = lock(&self.ctrl);
                if crate::spec::regs::Cr0::from_bits(ctrl.cr0).smmuen() {
                    self.trace_write(reg_name(reg), value, Some("SMMUEN=1"));
                    return;
                }
                if reg == StrtabBase {
                    ctrl.strtab_base = part.merge(ctrl.strtab_base, value) & defined::STRTAB_BASE;
                } else {
                    ctrl.strtab_base_cfg = v32 & defined::STRTAB_BASE_CFG;
                }
                self.publish_view_locked(&ctrl);
                self.trace_write(reg_name(reg), value, None);
            }
            QueueBase(q) | QueueProd(q) | QueueCons(q) => self.write_queue_reg(reg, q, part, value),
        }
    }

    fn write_cr0(&self, v: u32) {
        let mut mask = 0x1F;
        if self.caps.idr0.vmw() {
            mask |= Cr0::new().with_vmw(7).into_bits();
        }
        let mut ctrl = lock(&self.ctrl);
        let old = Cr0::from_bits(ctrl.cr0);
        let new = Cr0::from_bits(v & mask);
        ctrl.cr0 = new.into_bits();
        self.trace_write("CR0", u64::from(v), None);
        if old.smmuen() != new.smmuen() {
            // Policy: drop every cache on an SMMUEN transition.
            self.invalidate_all_caches();
        }
        {
            let mut e = lock(&self.evtq);
            e.enabled = new.smmuen() && new.eventqen();
        }
        self.publish_view_locked(&ctrl);
        if new.cmdqen() && !old.cmdqen() {
            self.consume_locked(&mut ctrl);
        } else if !new.cmdqen() {
            self.set_work_pending(false);
        }
    }

    fn write_gbpa(&self, v: u32) {
        let mut ctrl = lock(&self.ctrl);
        if !Gbpa::from_bits(v).update() {
            // Policy (QEMU, Cloud Hypervisor): a write without UPDATE changes nothing.
            self.trace_write("GBPA", u64::from(v), Some("UPDATE=0"));
            return;
        }
        // Latch all fields and complete the update within this write: UPDATE reads 0.
        ctrl.gbpa = v & defined::GBPA & !Gbpa::new().with_update(true).into_bits();
        self.publish_view_locked(&ctrl);
        self.trace_write("GBPA", u64::from(v), None);
    }

    fn write_gerrorn(&self, v: u32) {
        let mut ctrl = lock(&self.ctrl);
        let resumed = {
            let mut irq = lock(&self.irq);
            let active = irq.gerror ^ irq.gerrorn;
            // Policy: only active errors can be acknowledged; a stray write cannot fabricate
            // an error by making GERRORN differ from GERROR.
            irq.gerrorn ^= (irq.gerrorn ^ v) & active & defined::GERROR;
            let gerrorn = irq.gerrorn;
            self.trace(|| TraceRecord::GerrorAck { gerrorn });
            let still = irq.gerror ^ irq.gerrorn;
            Gerror::from_bits(active).cmdq_err() && !Gerror::from_bits(still).cmdq_err()
        };
        if resumed {
            // CMDQ_ERR acknowledged: clear CONS.ERR (policy) and re-fetch the entry at CONS.
            let old = ctrl.cmdq.cons;
            ctrl.cmdq.cons = CmdqCons::from_bits(old)
                .with_err(crate::spec::regs::CmdqErr::CERROR_NONE)
                .into_bits();
            self.consume_locked(&mut ctrl);
        }
    }

    fn write_queue_reg(&self, reg: Register, q: Queue, part: regs::Part, value: u64) {
        let v32 = value as u32;
        let name = reg_name(reg);
        match q {
            Queue::Cmdq => {
                let mut ctrl = lock(&self.ctrl);
                let enabled = Cr0::from_bits(ctrl.cr0).cmdqen();
                match reg {
                    Register::QueueProd(_) => {
                        ctrl.cmdq.prod = v32 & 0xF_FFFF;
                        self.trace_write(name, value, None);
                        self.consume_locked(&mut ctrl);
                    }
                    _ if enabled => self.trace_write(name, value, Some("CMDQEN=1")),
                    Register::QueueBase(_) => {
                        ctrl.cmdq.base = part.merge(ctrl.cmdq.base, value) & defined::QUEUE_BASE;
                        self.trace_write(name, value, None);
                    }
                    _ => {
                        ctrl.cmdq.cons = v32 & 0x7F0F_FFFF;
                        self.trace_write(name, value, None);
                    }
                }
            }
            Queue::Eventq => {
                let ctrl = lock(&self.ctrl);
                let enabled = Cr0::from_bits(ctrl.cr0).eventqen();
                let mut e = lock(&self.evtq);
                match reg {
                    Register::QueueCons(_) => {
                        e.regs.cons = v32 & 0x800F_FFFF;
                        self.trace_write(name, value, None);
                    }
                    _ if enabled => self.trace_write(name, value, Some("EVENTQEN=1")),
                    Register::QueueBase(_) => {
                        e.regs.base = part.merge(e.regs.base, value) & defined::QUEUE_BASE;
                        self.trace_write(name, value, None);
                    }
                    _ => {
                        e.regs.prod = v32 & 0x800F_FFFF;
                        self.trace_write(name, value, None);
                    }
                }
            }
            Queue::Priq => {
                let mut ctrl = lock(&self.ctrl);
                let enabled = Cr0::from_bits(ctrl.cr0).priqen();
                match reg {
                    Register::QueueCons(_) => {
                        ctrl.priq.cons = v32 & 0x800F_FFFF;
                        self.trace_write(name, value, None);
                    }
                    _ if enabled => self.trace_write(name, value, Some("PRIQEN=1")),
                    Register::QueueBase(_) => {
                        ctrl.priq.base = part.merge(ctrl.priq.base, value) & defined::QUEUE_BASE;
                        self.trace_write(name, value, None);
                    }
                    _ => {
                        ctrl.priq.prod = v32 & 0x800F_FFFF;
                        self.trace_write(name, value, None);
                    }
                }
            }
        }
    }
}

fn irq_index(s: IrqSource) -> usize {
    match s {
        IrqSource::Gerror => 0,
        IrqSource::Eventq => 1,
        IrqSource::Priq => 2,
    }
}

/// The manual's name of a register.
pub fn reg_name(reg: Register) -> &'static str {
    use Register::*;
    match reg {
        Idr(0) => "IDR0",
        Idr(1) => "IDR1",
        Idr(2) => "IDR2",
        Idr(3) => "IDR3",
        Idr(4) => "IDR4",
        Idr(_) => "IDR5",
        Iidr => "IIDR",
        Aidr => "AIDR",
        Cr0 => "CR0",
        Cr0Ack => "CR0ACK",
        Cr1 => "CR1",
        Cr2 => "CR2",
        Statusr => "STATUSR",
        Gbpa => "GBPA",
        Agbpa => "AGBPA",
        IrqCtrl => "IRQ_CTRL",
        IrqCtrlAck => "IRQ_CTRLACK",
        Gerror => "GERROR",
        Gerrorn => "GERRORN",
        IrqCfg0(IrqSource::Gerror) => "GERROR_IRQ_CFG0",
        IrqCfg1(IrqSource::Gerror) => "GERROR_IRQ_CFG1",
        IrqCfg2(IrqSource::Gerror) => "GERROR_IRQ_CFG2",
        IrqCfg0(IrqSource::Eventq) => "EVENTQ_IRQ_CFG0",
        IrqCfg1(IrqSource::Eventq) => "EVENTQ_IRQ_CFG1",
        IrqCfg2(IrqSource::Eventq) => "EVENTQ_IRQ_CFG2",
        IrqCfg0(IrqSource::Priq) => "PRIQ_IRQ_CFG0",
        IrqCfg1(IrqSource::Priq) => "PRIQ_IRQ_CFG1",
        IrqCfg2(IrqSource::Priq) => "PRIQ_IRQ_CFG2",
        StrtabBase => "STRTAB_BASE",
        StrtabBaseCfg => "STRTAB_BASE_CFG",
        QueueBase(Queue::Cmdq) => "CMDQ_BASE",
        QueueProd(Queue::Cmdq) => "CMDQ_PROD",
        QueueCons(Queue::Cmdq) => "CMDQ_CONS",
        QueueBase(Queue::Eventq) => "EVENTQ_BASE",
        QueueProd(Queue::Eventq) => "EVENTQ_PROD",
        QueueCons(Queue::Eventq) => "EVENTQ_CONS",
        QueueBase(Queue::Priq) => "PRIQ_BASE",
        QueueProd(Queue::Priq) => "PRIQ_PROD",
        QueueCons(Queue::Priq) => "PRIQ_CONS",
        RazWi => "RAZ/WI",
    }
}

impl<M> MmioDevice for SmmuV3<M>
where
    M: GuestRam,
{
    fn mmio_size(&self) -> u64 {
        crate::spec::regs::REGION_SIZE
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        let acc = regs::decode(offset, data.len())?;
        let v = acc.part.extract(self.read_reg(acc.reg));
        let bytes = v.to_le_bytes();
        let n = data.len().min(8);
        data[..n].copy_from_slice(&bytes[..n]);
        Ok(())
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        let acc = regs::decode(offset, data.len())?;
        let mut b = [0u8; 8];
        let n = data.len().min(8);
        b[..n].copy_from_slice(&data[..n]);
        let value = u64::from_le_bytes(b);
        self.write_reg(acc.reg, acc.part, value);
        Ok(())
    }
}
