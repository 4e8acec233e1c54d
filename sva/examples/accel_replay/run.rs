//! The replay observer that plays the hardware: every `dma` on the passthrough stream is taken
//! out of the engine and performed by edu through the host SMMU (see [`crate::verify`]); its
//! outcome is what the engine checks against the line's expectation. Everything else (register
//! accesses, RAM stores and loads, `expect_irq`, emulated streams' `dma`) runs in the replay
//! engine on the accelerated vSMMU. Host events are pumped into the guest event queue before
//! every operation and while a transfer's fault is awaited.

use viommu_common::AccessKind;
use viommu_replay::iopf::DmaOutcome;
use viommu_replay::parse::DmaExpect;
use viommu_replay::{Action, Actual, Line, Observer, Op, OpResult, Session};

use crate::edu::Edu;
use crate::verify::{self, DmaOp, Expect, Observed, Vsmmu};
use crate::vmm::Vmm;

/// Counters of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// `dma` operations performed by edu through the host SMMU.
    pub real_dma: u32,
    /// Operations this program cannot perform, each reported with its reason.
    pub skipped: u32,
    /// Failed checks reported by the engine.
    pub failed: u32,
}

/// The observer.
pub struct Hardware<'a> {
    /// The VMM.
    pub vmm: &'a mut Vmm,
    /// The passthrough device.
    pub edu: &'a Edu<'a>,
    /// Counters.
    pub tally: Tally,
}

fn expect_of(e: Option<&DmaExpect>) -> Expect {
    match e {
        Some(DmaExpect::Addr(a)) => Expect::Addr(*a),
        Some(DmaExpect::Fault(n)) => Expect::Fault(n.clone()),
        Some(DmaExpect::AnyFault) => Expect::AnyFault,
        Some(DmaExpect::Stalled) | None => Expect::Other,
    }
}

fn expect_text(e: &Expect) -> String {
    match e {
        Expect::Addr(a) => format!("addr {a:#x}"),
        Expect::Fault(n) => n.clone(),
        Expect::AnyFault => "a fault".into(),
        Expect::Other => "nothing".into(),
    }
}

impl Hardware<'_> {
    /// Perform `d` with edu and return the outcome the engine checks against the line. An
    /// operation edu cannot perform is reported (`ACCEL-OP ... SKIP`), counted, and given the
    /// outcome the line expects.
    fn serve(&mut self, line: usize, d: &viommu_replay::parse::Dma) -> DmaOutcome {
        let e = expect_of(d.expect.as_ref());
        let unsupported = match (d.access, d.privileged, d.substream) {
            (AccessKind::Exec, _, _) => Some("an instruction fetch (edu reads data)"),
            (_, true, _) => Some("a privileged access (edu's DMA is unprivileged)"),
            (_, _, Some(_)) => Some("a SubstreamID (edu has no PASID)"),
            _ if e == Expect::Other => Some("no expectation edu can produce (none, or a stall)"),
            _ => None,
        };
        if let Some(why) = unsupported {
            self.tally.skipped += 1;
            println!("ACCEL-OP line {line} SKIP: {why}");
            // reported as what the trace expects: the line is skipped, not checked
            return match &d.expect {
                Some(DmaExpect::Addr(a)) => DmaOutcome::Addr(*a),
                Some(DmaExpect::Fault(f)) => DmaOutcome::Fault(f.clone()),
                _ => DmaOutcome::Fault("SKIPPED".into()),
            };
        }
        let op = DmaOp {
            line,
            addr: d.addr,
            size: d.size,
            write: d.access == AccessKind::Write,
            expect: e.clone(),
        };
        self.tally.real_dma += 1;
        self.vmm.accel.device().finish_pending();
        let mem = self.vmm.mem().clone();
        let vsid = self.vmm.vsid;
        let got = verify::perform(&op, vsid, self.edu, &mem, self.vmm);
        let dir = if op.write { "write" } else { "read" };
        println!(
            "ACCEL-DMA line {line} {dir} {:#x}+{:#x} expect {} -> {}",
            d.addr,
            d.size,
            expect_text(&e),
            match &got {
                Ok(Observed::Addr(a)) => format!("data through {a:#x}"),
                Ok(Observed::Fault(f)) => format!("{f} event in the guest queue"),
                Ok(Observed::Silent) => "no event".into(),
                Err(why) => format!("error: {why}"),
            }
        );
        match got {
            Ok(Observed::Addr(a)) => DmaOutcome::Addr(a),
            Ok(Observed::Fault(f)) => DmaOutcome::Fault(f),
            Ok(Observed::Silent) => {
                println!(
                    "ACCEL-OP line {line} NOTE: no event: terminated silently (an abort STE) \
                     or not translated at all; edu cannot tell them apart"
                );
                DmaOutcome::Fault("TERMINATED".into())
            }
            Err(why) => DmaOutcome::Fault(format!("NOT VERIFIED: {why}")),
        }
    }
}

impl Observer for Hardware<'_> {
    fn before(&mut self, step: &Line, _session: &Session) -> Action {
        if let Err(e) = self.vmm.pump() {
            println!("ACCEL-INFO event pump: {e}");
        }
        match &step.op {
            Op::Dma(d) if d.stream == self.vmm.vsid => {
                Action::Replace(Actual::Dma(self.serve(step.line, d)))
            }
            Op::Comment(c) => {
                println!("ACCEL-COMMENT line {}: {}", step.line, c.text);
                Action::Run
            }
            _ => Action::Run,
        }
    }

    fn result(&mut self, step: &Line, r: &OpResult) {
        if r.ok == Some(false) || r.error.is_some() {
            self.tally.failed += u32::from(r.ok == Some(false));
            println!(
                "ACCEL-CHECK line {} {} FAIL: got {:?}{}",
                step.line,
                r.op,
                r.actual,
                r.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
}
