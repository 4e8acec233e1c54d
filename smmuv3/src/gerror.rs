//! Interrupts and global errors (IHI 0070 §7.5, §6.3.23-§6.3.30, §3.18):
//! IRQ_CTRL gating, MSI versus wired delivery, CMD_SYNC completion signals, and the GERROR
//! toggle protocol.

use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::device::{lines, lock, GuestRam, IrqState, SmmuV3};
use crate::regs::IrqSource;
use crate::spec::regs::{Gerror, IrqCfg0, IrqCtrl};
use crate::trace::{Delivery, Signal, TraceRecord};

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Signal `source` if enabled in IRQ_CTRL: MSI when IDR0.MSI and its CFG0 address is set,
    /// the wired line otherwise (IHI 0070 §3.18). A disabled source sends nothing, and enabling
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
            let addr = IrqCfg0::from_bits(cfg.cfg0).addr();
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

    /// Complete a CMD_SYNC with CS = SIG_IRQ (IHI 0070 §4.7.3).
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
        let toggle = Gerror::to_raise(irq.gerror, irq.gerrorn, Gerror::from_bits(bits)).into_bits();
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
        Gerror::active(irq.gerror, irq.gerrorn).cmdq_err()
    }
}
