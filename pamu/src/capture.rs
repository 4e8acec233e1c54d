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
        self.set_line_if_changed(&mut s.av_level, av, self.caps.av_line, "AV");
        self.set_line_if_changed(&mut s.err_level, err, self.caps.err_line, "ERR");
    }

    /// Drive `line` (`name` in the trace) to `level` if that differs from `current`.
    fn set_line_if_changed(&self, current: &mut bool, level: bool, line: u32, name: &'static str) {
        if level != *current {
            *current = level;
            self.irq.set_line(line, level);
            self.trace(PamuEvent::Line { line, name, level });
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
