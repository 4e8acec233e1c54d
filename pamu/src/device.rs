//! The PAMU device: N instances at stride 0x1000 sharing one set of tables, big-endian MMIO,
//! fault capture, two interrupt outputs, and DMA translation by LIODN (`pamu.md` §1-§5, §8, §11).
//!
//! # Concurrency
//! - Translation is lock-free: the registers it needs (PC and the six table base/limit
//!   registers of each instance, PAMUBYPENR) are atomics in [`HotRegs`], and table entries are
//!   re-read from guest memory on every translation (no cache, so no invalidation is needed;
//!   see `paact.rs`).
//! - Everything else (status, interrupt, ECC and storage registers of all instances, and the
//!   two line levels) sits behind one mutex, `Pamu::slow`, taken by register accesses and by
//!   fault capture only. It keeps "latch fault, recompute line levels, signal the sink" atomic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use viommu_common::access::{AccessKind, DmaRequest};
use viommu_common::mem::GuestRam;
use viommu_common::traits::{
    DmaFault, DmaMapping, DmaTranslator, InterruptSink, MmioDevice, MmioError,
};

use crate::caps::{Caps, ConfigError, PamuConfig};
use crate::fault::{Capture, PamuFault, StatusRegs};
use crate::msi::{MsiBankRegion, MsiBanks, MsiVector};
use crate::paact::TableRegs;
use crate::snapshot::{InstanceState, PamuState, RestoreError};
use crate::spec::regs::{EccBits, Eeattr, Pc, Reg, INSTANCE_STRIDE};
use crate::trace::{PamuEvent, Tracer};
use crate::translate::{default_ioe, translate, Control, PamuTranslation};

/// The registers a translation reads, per instance. Each is an independent atomic: a guest
/// writing a 64-bit base as two 32-bit halves can be observed half-updated, as on hardware.
#[derive(Debug, Default)]
pub struct HotRegs {
    /// PC.
    pc: AtomicU32,
    /// PPBA, PPLA, SPBA, SPLA, OBA, OLA (high and low halves combined).
    tables: [AtomicU64; 6],
}

impl HotRegs {
    #[inline]
    fn table_regs(&self) -> TableRegs {
        // Acquire pairs with the Release store in `set_half`, so a translation that sees a new
        // base also sees the table memory the guest wrote before programming it.
        let l = |i: usize| self.tables[i].load(Ordering::Acquire);
        TableRegs {
            ppba: l(0),
            ppla: l(1),
            spba: l(2),
            spla: l(3),
            oba: l(4),
            ola: l(5),
        }
    }

    fn set_half(&self, idx: usize, high: bool, v: u32) {
        // Relaxed: writers are serialised by `Pamu::slow`, so this reads our own last store.
        let old = self.tables[idx].load(Ordering::Relaxed);
        let new = if high {
            (old & 0xFFFF_FFFF) | (u64::from(v) << 32)
        } else {
            (old & !0xFFFF_FFFF) | u64::from(v)
        };
        // Release: see `table_regs`. Writers are serialised by `Pamu::slow`.
        self.tables[idx].store(new, Ordering::Release);
    }

    fn half(&self, idx: usize, high: bool) -> u32 {
        let v = self.tables[idx].load(Ordering::Acquire);
        if high {
            (v >> 32) as u32
        } else {
            v as u32
        }
    }
}

/// Non-hot registers of one instance.
#[derive(Debug, Default, Clone, Copy)]
struct SlowRegs {
    status: StatusRegs,
    pfa1: u32,
    pfa2: u32,
    pd: [u32; 4],
}

#[derive(Debug, Default)]
struct SlowState {
    regs: Vec<SlowRegs>,
    av_level: bool,
    err_level: bool,
}

/// A register access outcome that the guest may observe and the VMM may log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegOp {
    Read,
    Write(u32),
}

/// The Freescale/NXP QorIQ PAMU model.
///
/// Build it with [`Pamu::new`] from a [`PamuConfig`], the guest memory the tables live in (any
/// [`GuestRam`]: `&GuestMemoryMmap`, `Arc<GuestMemoryMmap>`, or a VMM's
/// `GuestMemoryAtomic<GuestMemoryMmap>` whose memory map may change at run time) and an
/// interrupt sink; put it on the VMM's MMIO bus at CCSR + 0x20000 (it implements
/// [`MmioDevice`], registers big-endian); route each device's DMA through it by LIODN (it
/// implements [`DmaTranslator`] with the LIODN as the `StreamId`).
///
/// ```
/// use std::sync::Arc;
/// use viommu_common::{DmaRequest, DmaTranslator, MmioDevice, traits::NoInterrupts};
/// use viommu_pamu::{Pamu, PamuConfig};
///
/// let mem = Arc::new(viommu_common::testing::guest_ram(0, 0x10_0000));
/// let pamu = Pamu::new(PamuConfig::p4080(), mem, Arc::new(NoInterrupts)).unwrap();
/// // Reset state: PE = 0 passes DMA through (Policy, pamu.md §17 row 3).
/// assert_eq!(pamu.translate(&DmaRequest::read(7, 0x1234, 4)).unwrap().output, 0x1234);
/// // Enable the PAMU (big-endian register value 0x4000_1011 at PC, 0xC10).
/// pamu.mmio_write(0xC10, &0x4000_1011u32.to_be_bytes()).unwrap();
/// // No table yet: LIODN 7 is outside the (empty) PPAACT.
/// assert_eq!(pamu.translate(&DmaRequest::read(7, 0x1234, 4)).unwrap_err().event.name(), "AV_LIODN");
/// ```
pub struct Pamu<M> {
    mem: M,
    caps: Caps,
    banks: MsiBanks,
    irq: Arc<dyn InterruptSink>,
    /// Instance checking each LIODN (index = LIODN, up to PC2.MLIODN); others use 0.
    parents: Vec<u8>,
    hot: Vec<HotRegs>,
    /// PAMUBYPENR (bit 0x8000_0000 >> i bypasses instance i).
    bypass: AtomicU32,
    /// Status/interrupt/storage registers of all instances and the line levels; see the module
    /// documentation.
    slow: Mutex<SlowState>,
    tracer: Option<Tracer>,
}

impl<M: GuestRam> Pamu<M> {
    /// A PAMU in its reset state (all registers 0, PE = 0; Policy, §17 row 5).
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
            hot: (0..n).map(|_| HotRegs::default()).collect(),
            bypass: AtomicU32::new(0),
            slow: Mutex::new(SlowState {
                regs: vec![SlowRegs::default(); n],
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

    /// The instance that checks LIODN `liodn` (Policy, §17 row 14: its `fsl,iommu-parent`).
    #[inline]
    pub fn instance_of(&self, liodn: u32) -> u8 {
        usize::try_from(liodn)
            .ok()
            .and_then(|l| self.parents.get(l).copied())
            .unwrap_or(0)
    }

    #[cold]
    fn trace(&self, e: PamuEvent) {
        if let Some(t) = &self.tracer {
            t(&e);
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlowState> {
        // A panic while holding the lock cannot leave the registers inconsistent in a way that
        // matters more than losing them; keep going.
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The control state of instance `inst` as a translation sees it.
    #[inline(always)]
    fn control(&self, inst: u8) -> (Control, TableRegs) {
        let Some(h) = self.hot.get(usize::from(inst)) else {
            return (Control::default(), TableRegs::default());
        };
        // Acquire pairs with the Release stores of PAMUBYPENR and PC: a translation that sees
        // the PAMU enabled (or un-bypassed) also sees the tables programmed before that write.
        let bypass = self.bypass.load(Ordering::Acquire) & (0x8000_0000u32 >> inst.min(31)) != 0;
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
    /// The [`PamuFault`]; the transaction must be dropped (Policy, §17 row 9: reads get a bus
    /// error from the device model).
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

    /// Latch a fault into instance `inst` and update the interrupt lines.
    #[cold]
    #[inline(never)]
    fn record_fault(&self, inst: u8, f: &PamuFault, liodn: u32, addr: u64, write: bool) {
        let mut s = self.lock();
        let Some(r) = s.regs.get_mut(usize::from(inst)) else {
            return;
        };
        // AVS1.LIODN is 16 bits; larger stream IDs are reported truncated.
        let cap = r.status.capture(f, liodn as u16, addr, write);
        self.trace(PamuEvent::Capture {
            instance: inst,
            fault: *f,
            captured: cap == Capture::Latched,
            status: r.status,
        });
        self.update_lines_locked(&mut s);
    }

    /// An MSI: a 4-byte write of `data` at I/O address `iova` by LIODN `liodn`. It is translated
    /// like any DMA write; if the output lands on a bank's MSIIR (alias or canonical) the MSI
    /// is decoded and delivered through the interrupt sink and returned, otherwise
    /// `Ok(None)` with the translation left for the caller to perform the write.
    ///
    /// # Errors
    /// The [`PamuFault`] (captured as for [`Pamu::translate_op`]).
    pub fn msi_write(
        &self,
        liodn: u32,
        iova: u64,
        data: u32,
    ) -> Result<(PamuTranslation, Option<MsiVector>), PamuFault> {
        let t = self.translate_op(
            liodn,
            iova,
            4,
            AccessKind::Write,
            default_ioe(AccessKind::Write),
        )?;
        let Some(bank) = self.banks.bank_at(t.output) else {
            return Ok((t, None));
        };
        let v = self.banks.decode(bank, data);
        self.trace(PamuEvent::Msi {
            liodn,
            iova,
            output: t.output,
            data,
            vector: v,
        });
        self.banks.deliver(v, &*self.irq);
        Ok((t, Some(v)))
    }

    /// PAMUBYPENR (GUTS/DCFG + 0x604): bit 0x8000_0000 >> i bypasses instance i.
    pub fn bypass_register(&self) -> u32 {
        self.bypass.load(Ordering::Acquire)
    }

    /// Write PAMUBYPENR. Policy: only the bits of existing instances are writable; a bypassed
    /// instance passes traffic unchanged, with no checks and no faults (§11).
    pub fn write_bypass_register(&self, v: u32) {
        let n = u32::from(self.caps.instances);
        let mask = if n >= 32 { u32::MAX } else { !(u32::MAX >> n) };
        // Release pairs with the Acquire in `control`.
        self.bypass.store(v & mask, Ordering::Release);
        self.trace(PamuEvent::Bypass { value: v & mask });
    }

    fn update_lines_locked(&self, s: &mut SlowState) {
        let av = s.regs.iter().any(|r| r.status.av_level());
        let err = s.regs.iter().any(|r| r.status.err_level());
        if av != s.av_level {
            s.av_level = av;
            self.irq.set_line(self.caps.av_line, av);
            self.trace(PamuEvent::Line {
                line: self.caps.av_line,
                name: "AV",
                level: av,
            });
        }
        if err != s.err_level {
            s.err_level = err;
            self.irq.set_line(self.caps.err_line, err);
            self.trace(PamuEvent::Line {
                line: self.caps.err_line,
                name: "ERR",
                level: err,
            });
        }
    }

    pub(crate) fn save_state(&self) -> PamuState {
        let s = self.lock();
        let instances = self
            .hot
            .iter()
            .zip(s.regs.iter())
            .map(|(h, r)| {
                let SlowRegs {
                    status,
                    pfa1,
                    pfa2,
                    pd,
                } = *r;
                let t = h.table_regs();
                InstanceState::from_parts(
                    h.pc.load(Ordering::Acquire),
                    [t.ppba, t.ppla, t.spba, t.spla, t.oba, t.ola],
                    &status,
                    pfa1,
                    pfa2,
                    pd,
                )
            })
            .collect();
        PamuState {
            instances,
            bypass: self.bypass_register(),
        }
    }

    pub(crate) fn restore_state(&self, state: &PamuState) -> Result<(), RestoreError> {
        let mut s = self.lock();
        if state.instances.len() != self.hot.len() {
            return Err(RestoreError::Instances {
                state: state.instances.len(),
                device: self.hot.len(),
            });
        }
        for ((h, r), st) in self.hot.iter().zip(s.regs.iter_mut()).zip(&state.instances) {
            // Release: see `control` and `HotRegs::table_regs`.
            h.pc.store(st.pc & Pc::WRITABLE, Ordering::Release);
            for (a, v) in h.tables.iter().zip(st.tables) {
                a.store(v, Ordering::Release);
            }
            *r = SlowRegs {
                status: st.status(),
                pfa1: st.pfa1,
                pfa2: st.pfa2,
                pd: st.pd,
            };
        }
        let n = u32::from(self.caps.instances);
        let mask = if n >= 32 { u32::MAX } else { !(u32::MAX >> n) };
        self.bypass.store(state.bypass & mask, Ordering::Release);
        self.update_lines_locked(&mut s);
        Ok(())
    }

    /// Current level of the access-violation line.
    pub fn av_line_level(&self) -> bool {
        self.lock().av_level
    }

    /// Current level of the operation-error / ECC line.
    pub fn err_line_level(&self) -> bool {
        self.lock().err_level
    }

    /// Read register `reg` of instance `inst` (32-bit value).
    pub fn read_reg(&self, inst: u8, reg: Reg) -> u32 {
        self.reg_access(inst, reg, RegOp::Read)
    }

    /// Write register `reg` of instance `inst` with its architectural side effects.
    pub fn write_reg(&self, inst: u8, reg: Reg, v: u32) {
        self.reg_access(inst, reg, RegOp::Write(v));
    }

    fn reg_access(&self, inst: u8, reg: Reg, op: RegOp) -> u32 {
        let Some(hot) = self.hot.get(usize::from(inst)) else {
            return 0;
        };
        let mut s = self.lock();
        let Some(r) = s.regs.get_mut(usize::from(inst)) else {
            return 0;
        };
        let table = |i: usize, high: bool| match op {
            RegOp::Read => hot.half(i, high),
            RegOp::Write(v) => {
                // Policy (§4, erratum A-005982): base writes would flush cached entries; the
                // model caches nothing, so there is nothing to flush.
                hot.set_half(i, high, v);
                v
            }
        };
        let st = &mut r.status;
        let value = match (reg, op) {
            (Reg::Ppbah, _) => table(0, true),
            (Reg::Ppbal, _) => table(0, false),
            (Reg::Pplah, _) => table(1, true),
            (Reg::Pplal, _) => table(1, false),
            (Reg::Spbah, _) => table(2, true),
            (Reg::Spbal, _) => table(2, false),
            (Reg::Splah, _) => table(3, true),
            (Reg::Splal, _) => table(3, false),
            (Reg::Obah, _) => table(4, true),
            (Reg::Obal, _) => table(4, false),
            (Reg::Olah, _) => table(5, true),
            (Reg::Olal, _) => table(5, false),
            (Reg::Pc, RegOp::Write(v)) => {
                // Reserved bits read as zero; cache enables are stored and have no effect.
                // Release: see `control`.
                hot.pc.store(v & Pc::WRITABLE, Ordering::Release);
                v & Pc::WRITABLE
            }
            (Reg::Pc, RegOp::Read) => hot.pc.load(Ordering::Acquire),
            (Reg::Pics, RegOp::Write(v)) => {
                st.write_pics(v);
                st.pics.into_bits()
            }
            (Reg::Pics, RegOp::Read) => st.pics.into_bits(),
            (Reg::Avs1, RegOp::Write(v)) => {
                st.write_avs1(v);
                st.avs1.into_bits()
            }
            (Reg::Avs1, RegOp::Read) => st.avs1.into_bits(),
            (Reg::Poes1, RegOp::Write(v)) => {
                st.write_poes1(v);
                st.poes1.into_bits()
            }
            (Reg::Poes1, RegOp::Read) => st.poes1.into_bits(),
            // Policy: capture registers are read-only.
            (Reg::Avs2, _) => st.avs2,
            (Reg::Avah, _) => (st.ava >> 32) as u32,
            (Reg::Aval, _) => st.ava as u32,
            (Reg::Poes2, _) => st.poes2,
            (Reg::Poeah, _) => (st.poea >> 32) as u32,
            (Reg::Poeal, _) => st.poea as u32,
            // Policy (ECC block): control registers are storage (defined bits only), EEDET and
            // EEATTR.valid are W1C, the capture registers read 0: the model never sees an ECC
            // error.
            (Reg::Eectl, RegOp::Write(v)) => {
                st.eectl = v & 0xFFFF_00FF;
                st.eectl
            }
            (Reg::Eectl, RegOp::Read) => st.eectl,
            (Reg::Eedis, RegOp::Write(v)) => {
                st.eedis = EccBits::from_bits(v & EccBits::MASK);
                st.eedis.into_bits()
            }
            (Reg::Eedis, RegOp::Read) => st.eedis.into_bits(),
            (Reg::Eeinten, RegOp::Write(v)) => {
                st.eeinten = EccBits::from_bits(v & EccBits::MASK);
                st.eeinten.into_bits()
            }
            (Reg::Eeinten, RegOp::Read) => st.eeinten.into_bits(),
            (Reg::Eedet, RegOp::Write(v)) => {
                st.eedet = EccBits::from_bits(st.eedet.into_bits() & !v);
                st.eedet.into_bits()
            }
            (Reg::Eedet, RegOp::Read) => st.eedet.into_bits(),
            (Reg::Eeattr, RegOp::Write(v)) => {
                if Eeattr::from_bits(v).valid() {
                    st.eeattr.set_valid(false);
                }
                st.eeattr.into_bits()
            }
            (Reg::Eeattr, RegOp::Read) => st.eeattr.into_bits(),
            (Reg::Eeahi | Reg::Eealo | Reg::Eedhi | Reg::Eedlo | Reg::Eecc, _) => 0,
            // Policy: UDAD reads 0 (meaning unknown).
            (Reg::Udad, _) => 0,
            (Reg::Pr1, _) => self.caps.pr1.into_bits(),
            (Reg::Pr2, _) => self.caps.pr2,
            (Reg::Pc2, _) => self.caps.pc2.into_bits(),
            (Reg::Pc3, _) => self.caps.pc3.into_bits(),
            (Reg::Pc1 | Reg::Pc4, _) => 0,
            (Reg::Pfa1, RegOp::Write(v)) => {
                r.pfa1 = v;
                v
            }
            (Reg::Pfa1, RegOp::Read) => r.pfa1,
            (Reg::Pfa2, RegOp::Write(v)) => {
                r.pfa2 = v;
                v
            }
            (Reg::Pfa2, RegOp::Read) => r.pfa2,
            (Reg::Pd1 | Reg::Pd2 | Reg::Pd3 | Reg::Pd4, op) => {
                let i = match reg {
                    Reg::Pd1 => 0,
                    Reg::Pd2 => 1,
                    Reg::Pd3 => 2,
                    _ => 3,
                };
                if let RegOp::Write(v) = op {
                    r.pd[i] = v;
                }
                r.pd[i]
            }
        };
        match op {
            RegOp::Read => self.trace(PamuEvent::RegRead {
                instance: inst,
                reg,
                value,
            }),
            RegOp::Write(v) => {
                self.trace(PamuEvent::RegWrite {
                    instance: inst,
                    reg,
                    value: v,
                });
                self.update_lines_locked(&mut s);
            }
        }
        value
    }

    /// Apply a 32-bit access at `offset` of the MMIO region.
    fn access32(&self, offset: u64, op: RegOp) -> u32 {
        let inst = offset / INSTANCE_STRIDE;
        let Ok(inst) = u8::try_from(inst) else {
            return 0;
        };
        if inst >= self.caps.instances {
            return 0;
        }
        match Reg::decode(offset % INSTANCE_STRIDE) {
            Some(reg) => self.reg_access(inst, reg, op),
            // Policy: unnamed offsets inside the block read as zero and ignore writes.
            None => 0,
        }
    }

    fn check_access(&self, offset: u64, size: usize) -> Result<(), MmioError> {
        if offset.saturating_add(size as u64) > self.caps.mmio_size() {
            return Err(MmioError::OutOfRange { offset });
        }
        // Policy: 32-bit accesses, and 64-bit accesses as two big-endian registers
        // (high word at the lower offset); both naturally aligned.
        if !(size == 4 || size == 8) || offset % size as u64 != 0 {
            return Err(MmioError::BadAccessSize { offset, size });
        }
        Ok(())
    }
}

impl<M: GuestRam> MmioDevice for Pamu<M> {
    fn mmio_size(&self) -> u64 {
        self.caps.mmio_size()
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        self.check_access(offset, data.len())?;
        for (i, chunk) in data.chunks_exact_mut(4).enumerate() {
            let v = self.access32(offset + 4 * i as u64, RegOp::Read);
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        self.check_access(offset, data.len())?;
        for (i, chunk) in data.chunks_exact(4).enumerate() {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            self.access32(offset + 4 * i as u64, RegOp::Write(u32::from_be_bytes(b)));
        }
        Ok(())
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
    /// as given (a crossing faults WAV, `pamu.md` §17 row 7).
    #[inline]
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
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

/// PAMUBYPENR as a 4-byte big-endian MMIO region, for a VMM that emulates the GUTS/DCFG block
/// and wants to forward offset 0x604 to the PAMU.
pub struct BypassRegion<M>(pub Arc<Pamu<M>>);

impl<M: GuestRam> MmioDevice for BypassRegion<M> {
    fn mmio_size(&self) -> u64 {
        4
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        if offset != 0 || data.len() != 4 {
            return Err(MmioError::BadAccessSize {
                offset,
                size: data.len(),
            });
        }
        data.copy_from_slice(&self.0.bypass_register().to_be_bytes());
        Ok(())
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        let b: [u8; 4] = data.try_into().map_err(|_| MmioError::BadAccessSize {
            offset,
            size: data.len(),
        })?;
        if offset != 0 {
            return Err(MmioError::BadAccessSize { offset, size: 4 });
        }
        self.0.write_bypass_register(u32::from_be_bytes(b));
        Ok(())
    }
}
