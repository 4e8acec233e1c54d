//! The PAMU device core: N instances at stride 0x1000 sharing one set of tables, and DMA
//! translation by LIODN through the instance that checks it.
//!
//! The device is split the way the hardware is described (see `pamu/README.md` and the crate
//! documentation): register storage in `regfile`, register effects and the MMIO region in
//! `mmio`, fault capture and the interrupt lines in `capture`, PAMUBYPENR in [`crate::bypass`],
//! MSI delivery in [`crate::msi`], save/restore in [`crate::snapshot`].
//!
//! # Concurrency
//! - Translation is lock-free: the registers it needs (PC and the six table base/limit
//!   registers of each instance, PAMUBYPENR) are atomics, and table entries are re-read from
//!   guest memory on every translation (no cache, so no invalidation is needed; see
//!   [`crate::paact`]).
//! - Everything else (status, interrupt, ECC and storage registers of all instances, and the
//!   two line levels) sits behind one mutex, taken by register accesses and by fault capture
//!   only. It keeps "latch fault, recompute line levels, signal the sink" atomic.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use viommu_common::access::{AccessKind, DmaRequest};
use viommu_common::mem::GuestRam;
use viommu_common::traits::{DmaFault, DmaMapping, DmaTranslator, InterruptSink};

use crate::caps::{Caps, ConfigError, PamuConfig};
use crate::fault::PamuFault;
use crate::msi::{MsiBankRegion, MsiBanks};
use crate::paact::TableRegs;
use crate::regfile::{LockedRegs, LockedState, TranslationRegs};
use crate::spec::regs::{Pamubypenr, Pc};
use crate::trace::{PamuEvent, Tracer};
use crate::translate::{default_ioe, translate, translate_hit, Control, PamuTranslation};

/// The Freescale/NXP QorIQ PAMU model.
///
/// Build it with [`Pamu::new`] from a [`PamuConfig`], the guest memory the tables live in (any
/// [`GuestRam`]: `&GuestMemoryMmap`, `Arc<GuestMemoryMmap>`, or a VMM's
/// `GuestMemoryAtomic<GuestMemoryMmap>` whose memory map may change at run time) and an
/// interrupt sink; put it on the VMM's MMIO bus at CCSR + 0x20000 (it implements
/// [`MmioDevice`](viommu_common::traits::MmioDevice), registers big-endian); route each
/// device's DMA through it by LIODN (it implements [`DmaTranslator`] with the LIODN as the
/// `StreamId`).
///
/// ```
/// use std::sync::Arc;
/// use viommu_common::{DmaRequest, DmaTranslator, MmioDevice, traits::NoInterrupts};
/// use viommu_pamu::{Pamu, PamuConfig};
///
/// let mem = Arc::new(viommu_common::testing::guest_ram(0, 0x10_0000));
/// let pamu = Pamu::new(PamuConfig::p4080(), mem, Arc::new(NoInterrupts)).unwrap();
/// // Reset state: PE = 0 passes DMA through (Policy 3 in the crate documentation).
/// assert_eq!(pamu.translate(&DmaRequest::read(7, 0x1234, 4)).unwrap().output, 0x1234);
/// // Enable the PAMU (big-endian register value 0x4000_1011 at PC, 0xC10).
/// pamu.mmio_write(0xC10, &0x4000_1011u32.to_be_bytes()).unwrap();
/// // No table yet: LIODN 7 is outside the (empty) PPAACT.
/// assert_eq!(pamu.translate(&DmaRequest::read(7, 0x1234, 4)).unwrap_err().event.name(), "AV_LIODN");
/// ```
pub struct Pamu<M> {
    mem: M,
    pub(crate) caps: Caps,
    pub(crate) banks: MsiBanks,
    pub(crate) irq: Arc<dyn InterruptSink>,
    /// Instance checking each LIODN (index = LIODN, up to PC2.MLIODN); others use 0.
    parents: Vec<u8>,
    /// The registers translation reads, per instance.
    pub(crate) translation: Vec<TranslationRegs>,
    /// PAMUBYPENR ([`Pamubypenr`]).
    pub(crate) bypass: AtomicU32,
    /// Index in the memory map of the region that held the last PPAACE the hit path read: a
    /// hint, checked on every use (see [`crate::paact`]), so it needs no invalidation.
    table_region: AtomicUsize,
    /// Status/interrupt/storage registers of all instances and the line levels; see the module
    /// documentation.
    locked: Mutex<LockedState>,
    tracer: Option<Tracer>,
}

impl<M: GuestRam> Pamu<M> {
    /// A PAMU in its reset state (all registers 0, PE = 0; Policy 5 in the crate documentation).
    ///
    /// # Errors
    /// [`ConfigError`] if `config` is out of range.
    pub fn new(
        config: PamuConfig,
        mem: M,
        irq: Arc<dyn InterruptSink>,
    ) -> Result<Self, ConfigError> {
        let caps = config.caps()?;
        let mut parents = vec![0u8; usize::from(caps.max_liodn()) + 1];
        for &(liodn, inst) in &config.liodn_parents {
            if let Some(p) = parents.get_mut(usize::from(liodn)) {
                *p = inst;
            }
        }
        let n = usize::from(caps.instances);
        Ok(Self {
            mem,
            banks: MsiBanks::new(&caps),
            caps,
            irq,
            parents,
            translation: (0..caps.instances).map(TranslationRegs::new).collect(),
            table_region: AtomicUsize::new(0),
            bypass: AtomicU32::new(0),
            locked: Mutex::new(LockedState {
                regs: vec![LockedRegs::default(); n],
                av_level: false,
                err_level: false,
            }),
            tracer: None,
        })
    }

    /// Install a trace hook: it receives every register access, translation, fault capture,
    /// interrupt line change and MSI delivery as a typed [`PamuEvent`] (whose `Display` is the
    /// readable log line the snapshots use). Call before sharing the device.
    pub fn with_tracer(mut self, tracer: impl Fn(&PamuEvent) + Send + Sync + 'static) -> Self {
        self.tracer = Some(Box::new(tracer));
        self
    }

    /// The advertised capabilities.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// The guest address space the tables are read from.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// A snapshot of the current guest memory map (what the next translation reads through).
    pub fn ram(&self) -> M::Guard {
        self.mem.ram()
    }

    /// The MSI bank layout.
    pub fn msi_banks(&self) -> MsiBanks {
        self.banks
    }

    /// Bank `bank`'s alias page as an MMIO region (option C); `None` if the bank does not exist.
    pub fn msi_bank_region(&self, bank: u8) -> Option<MsiBankRegion> {
        MsiBankRegion::new(self.banks, bank, self.irq.clone())
    }

    /// The instance that checks LIODN `liodn` (Policy 14 in the crate documentation: its
    /// `fsl,iommu-parent`).
    #[inline]
    pub fn instance_of(&self, liodn: u32) -> u8 {
        usize::try_from(liodn)
            .ok()
            .and_then(|l| self.parents.get(l).copied())
            .unwrap_or(0)
    }

    /// Hand `e` to the tracer, if one is installed.
    #[cold]
    pub(crate) fn trace(&self, e: PamuEvent) {
        if let Some(t) = &self.tracer {
            t(&e);
        }
    }

    /// The registers behind the device mutex.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LockedState> {
        // A panic while holding the lock cannot leave the registers inconsistent in a way that
        // matters more than losing them; keep going.
        self.locked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The control state of instance `inst` as a translation sees it.
    #[inline(always)]
    fn control(&self, inst: u8) -> (Control, TableRegs) {
        let Some(h) = self.translation.get(usize::from(inst)) else {
            return (Control::default(), TableRegs::default());
        };
        // Acquire pairs with the Release stores of PAMUBYPENR and PC: a translation that sees
        // the PAMU enabled (or un-bypassed) also sees the tables programmed before that write.
        let bypass = Pamubypenr(self.bypass.load(Ordering::Acquire)).bypasses(inst);
        let pc = Pc::from_bits(h.pc.load(Ordering::Acquire));
        (Control { bypass, pc }, h.table_regs())
    }

    /// Translate without recording anything (no fault capture, no trace): what the PAMU would
    /// answer. For VMMs that probe mappings, and for benches.
    ///
    /// # Errors
    /// The [`PamuFault`] the access would raise.
    #[inline(always)]
    pub fn probe(
        &self,
        liodn: u32,
        addr: u64,
        len: u64,
        access: AccessKind,
        ioe: u8,
    ) -> Result<PamuTranslation, PamuFault> {
        let (ctl, regs) = self.control(self.instance_of(liodn));
        // One snapshot of the memory map for the whole translation.
        let ram = self.mem.ram();
        translate(&*ram, &self.caps, ctl, &regs, liodn, addr, len, access, ioe)
    }

    /// Translate one access by LIODN with an explicit inbound operation index `ioe` (for OTM);
    /// a fault is captured by the LIODN's instance (AVS1/AVA or POES/POEA, PICS, interrupt).
    ///
    /// # Errors
    /// The [`PamuFault`]; the transaction must be dropped (Policy 9 in the crate documentation:
    /// reads get a bus error from the device model).
    #[inline(always)]
    pub fn translate_op(
        &self,
        liodn: u32,
        addr: u64,
        len: u64,
        access: AccessKind,
        ioe: u8,
    ) -> Result<PamuTranslation, PamuFault> {
        // The memory-map snapshot is released (when probe returns) before a fault is captured.
        // Matched by value (no borrow of the result) so the hit path keeps it in registers.
        match self.probe(liodn, addr, len, access, ioe) {
            Ok(t) => {
                if self.tracer.is_some() {
                    self.trace_translation(liodn, addr, len, access, Ok(t));
                }
                Ok(t)
            }
            Err(f) => {
                self.trace_translation(liodn, addr, len, access, Err(f));
                self.record_fault(self.instance_of(liodn), &f, liodn, addr, access.is_write());
                Err(f)
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn trace_translation(
        &self,
        liodn: u32,
        addr: u64,
        len: u64,
        access: AccessKind,
        result: Result<PamuTranslation, PamuFault>,
    ) {
        self.trace(PamuEvent::Translate {
            liodn,
            addr,
            len,
            access,
            result,
        });
    }

    /// The hit path of [`DmaTranslator::translate`] for the first transaction of `req` (which
    /// does not cross a 4 KiB boundary, so only its first byte matters): the answer of
    /// [`Pamu::translate_op`] for an access that a single-window PPAACE lets through, else
    /// `None` (see [`translate_hit`]).
    #[inline(always)]
    fn translate_hit(&self, req: &DmaRequest) -> Option<PamuTranslation> {
        let liodn = req.stream.0;
        // `parents` has an entry for every LIODN up to PC2.MLIODN and no other: found here,
        // the LIODN is in range (the first check of `ppaace_addr`).
        let inst = *self.parents.get(usize::try_from(liodn).ok()?)?;
        let h = self.translation.get(usize::from(inst))?;
        // The orderings of `control`, reading only PAMUBYPENR, PC, PPBA and PPLA.
        let bypass = self.bypass.load(Ordering::Acquire) & h.bypass_bit != 0;
        let ctl = Control {
            bypass,
            pc: Pc::from_bits(h.pc.load(Ordering::Acquire)),
        };
        let (ppba, ppla) = h.primary_table();
        translate_hit(
            &self.mem,
            &self.table_region,
            &self.caps,
            ctl,
            ppba,
            ppla,
            liodn,
            req.addr,
            req.access,
        )
    }

    /// [`DmaTranslator::translate`] through [`Pamu::translate_op`]: the path that records
    /// faults and traces. Kept out of line so the hit path stays small.
    #[inline(never)]
    fn translate_full(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        // The request's first transaction: up to the next 4 KiB boundary (see `translate`).
        let first = req.len.clamp(1, 0x1000 - (req.addr & 0xFFF));
        self.translate_op(
            req.stream.0,
            req.addr,
            first,
            req.access,
            default_ioe(req.access),
        )
        .map(|t| t.to_mapping())
        .map_err(|f| DmaFault {
            kind: f.kind(),
            event: f.event(),
            addr: req.addr,
            stall_tag: None,
        })
    }
}

impl<M: GuestRam> DmaTranslator for Pamu<M> {
    /// Translate by LIODN (`req.stream`); the substream and privilege are ignored (the PAMU
    /// has neither). The inbound operation is read (0x00) or write (0x01).
    ///
    /// Policy: the request is an access the VMM may split (the `DmaMapping::len` contract).
    /// A bus never issues a transaction that crosses a 4 KiB boundary, so the PAMU checks the
    /// request's first transaction, `[addr, min(addr + len, next 4 KiB boundary))`; the
    /// mapping's `len` then says how far the translation stays contiguous (to the end of the
    /// mapped region) and the caller translates the rest, which faults (and is captured) on its
    /// own if it leaves the mapping. [`Pamu::translate_op`] checks a transaction of any length
    /// as given (a crossing faults WAV, Policy 7 in the crate documentation).
    #[inline]
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        // The hit path: the same answer as `translate_op` for an access the entry lets
        // through, when there is nothing to trace; anything else takes the full path.
        if self.tracer.is_none() {
            if let Some(t) = self.translate_hit(req) {
                return Ok(t.to_mapping());
            }
        }
        self.translate_full(req)
    }
}
