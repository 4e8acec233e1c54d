//! Register reads and writes (IHI 0070 chapter 6): the effect of each register access, after
//! [`crate::regs::decode`] has named the register. Write rules while enabled, the CR0/IRQ_CTRL
//! acknowledge and GBPA update protocols. What a write keeps of the written value is the
//! register type's `sanitise` (in [`crate::spec::regs`]); this file applies it.

use viommu_common::traits::{MmioDevice, MmioError};

use crate::device::{irq_index, lock, GuestRam, SmmuV3};
use crate::regs::{self, IrqSource, Queue, Register};
use crate::spec::regs::{
    self as spec, CmdqCons, CmdqErr, Cr0, Gbpa, Gerror, QueueBase, QueueIndex,
};
use crate::trace::TraceRecord;

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
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
                if spec::Cr0::from_bits(ctrl.cr0).smmuen() {
                    // Policy: CR1/CR2 are writable only while SMMUEN = 0 (Linux writes them in
                    // `arm_smmu_device_reset` before it sets SMMUEN; Cloud Hypervisor gates CR2
                    // the same way).
                    self.trace_write(reg_name(reg), value, Some("SMMUEN=1"));
                    return;
                }
                if reg == Cr1 {
                    ctrl.cr1 = spec::Cr1::sanitise(v32).into_bits();
                } else {
                    ctrl.cr2 = spec::Cr2::sanitise(v32, self.caps.idr0).into_bits();
                    self.publish_translation_regs_locked(&ctrl);
                }
                self.trace_write(reg_name(reg), value, None);
            }
            Gbpa => self.write_gbpa(v32),
            IrqCtrl => {
                let mut irq = lock(&self.irq);
                irq.irq_ctrl = spec::IrqCtrl::sanitise(v32, self.caps.idr0).into_bits();
                self.trace_write("IRQ_CTRL", value, None);
            }
            Gerrorn => self.write_gerrorn(v32),
            IrqCfg0(s) | IrqCfg1(s) | IrqCfg2(s) => {
                // Accepted at any time (Linux reprograms MSIs while enabled).
                let mut irq = lock(&self.irq);
                let cfg = &mut irq.cfg[irq_index(s)];
                match reg {
                    IrqCfg0(_) => {
                        cfg.cfg0 = spec::IrqCfg0::sanitise(part.merge(cfg.cfg0, value)).into_bits();
                    }
                    IrqCfg1(_) => cfg.cfg1 = v32,
                    _ => cfg.cfg2 = spec::IrqCfg2::sanitise(v32).into_bits(),
                }
                self.trace_write(reg_name(reg), value, None);
            }
            StrtabBase | StrtabBaseCfg => {
                let mut ctrl = lock(&self.ctrl);
                if spec::Cr0::from_bits(ctrl.cr0).smmuen() {
                    self.trace_write(reg_name(reg), value, Some("SMMUEN=1"));
                    return;
                }
                if reg == StrtabBase {
                    ctrl.strtab_base =
                        spec::StrtabBase::sanitise(part.merge(ctrl.strtab_base, value)).into_bits();
                } else {
                    ctrl.strtab_base_cfg = spec::StrtabBaseCfg::sanitise(v32).into_bits();
                }
                self.publish_translation_regs_locked(&ctrl);
                self.trace_write(reg_name(reg), value, None);
            }
            QueueBase(q) | QueueProd(q) | QueueCons(q) => self.write_queue_reg(reg, q, part, value),
        }
    }

    fn write_cr0(&self, v: u32) {
        let mut ctrl = lock(&self.ctrl);
        let old = Cr0::from_bits(ctrl.cr0);
        let new = Cr0::sanitise(v, self.caps.idr0);
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
        self.publish_translation_regs_locked(&ctrl);
        if old.smmuen() != new.smmuen() {
            self.host_configure_all_locked(&ctrl, crate::host::HostCause::Smmuen);
        }
        if new.cmdqen() && !old.cmdqen() {
            self.consume_locked(&mut ctrl);
        } else if !new.cmdqen() {
            self.set_work_pending(false);
        }
        if old.smmuen() && !new.smmuen() {
            // Clearing SMMUEN terminates every stalled transaction (IHI 0070 §3.12.2).
            self.terminate_stalls(None);
        } else if new.smmuen() && new.eventqen() && !(old.smmuen() && old.eventqen()) {
            // The event queue became writable: retry stalls whose record waited (§3.12.2).
            self.stall_queue_writable();
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
        ctrl.gbpa = Gbpa::latch(v).into_bits();
        self.publish_translation_regs_locked(&ctrl);
        self.trace_write("GBPA", u64::from(v), None);
        if !Cr0::from_bits(ctrl.cr0).smmuen() {
            self.host_configure_all_locked(&ctrl, crate::host::HostCause::Gbpa);
        }
    }

    fn write_gerrorn(&self, v: u32) {
        let mut ctrl = lock(&self.ctrl);
        let resumed = {
            let mut irq = lock(&self.irq);
            let before = Gerror::active(irq.gerror, irq.gerrorn);
            irq.gerrorn = Gerror::acknowledge(irq.gerror, irq.gerrorn, v);
            let gerrorn = irq.gerrorn;
            self.trace(|| TraceRecord::GerrorAck { gerrorn });
            let after = Gerror::active(irq.gerror, irq.gerrorn);
            before.cmdq_err() && !after.cmdq_err()
        };
        if resumed {
            // CMDQ_ERR acknowledged: clear CONS.ERR (policy) and re-fetch the entry at CONS.
            ctrl.cmdq.cons = CmdqCons::from_bits(ctrl.cmdq.cons)
                .with_err(CmdqErr::CERROR_NONE)
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
                        ctrl.cmdq.prod = QueueIndex::sanitise_cmdq_prod(v32).into_bits();
                        self.trace_write(name, value, None);
                        self.consume_locked(&mut ctrl);
                    }
                    _ if enabled => self.trace_write(name, value, Some("CMDQEN=1")),
                    Register::QueueBase(_) => {
                        ctrl.cmdq.base =
                            QueueBase::sanitise(part.merge(ctrl.cmdq.base, value)).into_bits();
                        self.trace_write(name, value, None);
                    }
                    _ => {
                        ctrl.cmdq.cons = CmdqCons::sanitise(v32).into_bits();
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
                        e.regs.cons = QueueIndex::sanitise(v32).into_bits();
                        self.trace_write(name, value, None);
                        drop(e);
                        // Space may have been freed: retry stalls whose record waited (IHI 0070 §3.12.2).
                        self.stall_queue_writable();
                    }
                    _ if enabled => self.trace_write(name, value, Some("EVENTQEN=1")),
                    Register::QueueBase(_) => {
                        e.regs.base =
                            QueueBase::sanitise(part.merge(e.regs.base, value)).into_bits();
                        self.trace_write(name, value, None);
                    }
                    _ => {
                        e.regs.prod = QueueIndex::sanitise(v32).into_bits();
                        self.trace_write(name, value, None);
                    }
                }
            }
            Queue::Priq => {
                let mut ctrl = lock(&self.ctrl);
                let enabled = Cr0::from_bits(ctrl.cr0).priqen();
                match reg {
                    Register::QueueCons(_) => {
                        ctrl.priq.cons = QueueIndex::sanitise(v32).into_bits();
                        self.trace_write(name, value, None);
                    }
                    _ if enabled => self.trace_write(name, value, Some("PRIQEN=1")),
                    Register::QueueBase(_) => {
                        ctrl.priq.base =
                            QueueBase::sanitise(part.merge(ctrl.priq.base, value)).into_bits();
                        self.trace_write(name, value, None);
                    }
                    _ => {
                        ctrl.priq.prod = QueueIndex::sanitise(v32).into_bits();
                        self.trace_write(name, value, None);
                    }
                }
            }
        }
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
