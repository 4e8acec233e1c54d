//! Fault capture and the two interrupt outputs.
//!
//! A translation fault is latched into the status registers of the LIODN's instance
//! ([`StatusRegs::capture`](crate::fault::StatusRegs::capture): first fault kept), then the
//! line levels are recomputed over all instances: the access-violation line is the OR of
//! PICS.AVICS && AVIE, the error line the OR of (POEICS && POEIE) || (EEDET & EEINTEN). Linux
//! services both from `pamu_av_isr` in `drivers/iommu/fsl_pamu.c`, which walks every instance.

use viommu_common::mem::GuestRam;

use crate::device::Pamu;
use crate::fault::{Capture, PamuFault};
use crate::regfile::LockedState;
use crate::trace::PamuEvent;

impl<M: GuestRam> Pamu<M> {
    /// Latch a fault into instance `inst` and update the interrupt lines.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_fault(&self, inst: u8, f: &PamuFault, liodn: u32, addr: u64, write: bool) {
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

    /// Drive each line to the OR of the instances' contributions, signalling only changes.
    pub(crate) fn update_lines_locked(&self, s: &mut LockedState) {
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

    /// Current level of the access-violation line.
    pub fn av_line_level(&self) -> bool {
        self.lock().av_level
    }

    /// Current level of the operation-error / ECC line.
    pub fn err_line_level(&self) -> bool {
        self.lock().err_level
    }
}
