//! Executing a parsed trace against the VMM: RAM stores and loads go to the VM's RAM, register
//! accesses to the accelerated vSMMU, `dma` operations on the passthrough stream to edu (see
//! [`crate::verify`]), other streams' `dma` to the model's software path. The checks are the
//! replay format's: every expectation of the trace is compared, and the outcome of an
//! intercepted `dma` is what the real transfer showed.

use viommu_common::id::SubstreamId;
use viommu_common::mem::{read_bytes, write_bytes};
use viommu_common::traits::DmaTranslator;
use viommu_common::{AccessKind, DmaRequest, StreamId};
use viommu_replay::device::{BusOrder, IrqEvent};
use viommu_replay::parse::{DmaExpect, IrqMatch, Line, Op};

use crate::edu::Edu;
use crate::verify::{self, DmaOp, Expect, Observed, Vsmmu};
use crate::vmm::Vmm;

/// Counters of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Checks that held.
    pub passed: u32,
    /// Checks that did not.
    pub failed: u32,
    /// `dma` operations performed by edu through the host SMMU.
    pub real_dma: u32,
    /// Operations this program cannot perform, each reported with its reason.
    pub skipped: u32,
}

impl Tally {
    fn check(&mut self, line: usize, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("ACCEL-CHECK line {line} FAIL: {}", what());
        }
    }

    fn skip(&mut self, line: usize, why: &str) {
        self.skipped += 1;
        println!("ACCEL-OP line {line} SKIP: {why}");
    }
}

fn expect_of(e: &Option<DmaExpect>) -> Expect {
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

/// Interrupt windows of `expect_irq`, as the replay engine keeps them: consecutive checks share
/// the interrupts raised since the previous run of checks.
#[derive(Default)]
struct IrqWindow {
    pending: Vec<IrqEvent>,
    window: Vec<IrqEvent>,
    in_run: bool,
}

/// Run `lines` (everything after setup) on `vmm`; `edu` is the passthrough device.
pub fn run(lines: &[Line], vmm: &mut Vmm, edu: &Edu<'_>) -> Tally {
    let mut t = Tally::default();
    let mut irqs = IrqWindow::default();
    for l in lines {
        let n = l.line;
        if !matches!(l.op, Op::ExpectIrq { .. }) {
            irqs.in_run = false;
        }
        match &l.op {
            Op::Ram { .. } | Op::Device { .. } => {}
            Op::Comment { text } => println!("ACCEL-COMMENT line {n}: {text}"),
            Op::WriteMem { addr, data } => {
                if write_bytes(&*vmm.mem, *addr, data).is_err() {
                    t.check(n, false, || format!("write_mem {addr:#x}: outside RAM"));
                }
            }
            Op::ReadMem { addr, len, expect } => {
                settle(vmm);
                let mut got = vec![0u8; *len as usize];
                let ok = read_bytes(&*vmm.mem, *addr, &mut got).is_ok();
                if let Some(want) = expect {
                    t.check(n, ok && &got == want, || {
                        format!("read_mem {addr:#x}: got {got:02x?}, want {want:02x?}")
                    });
                }
            }
            Op::MmioWrite {
                offset,
                size,
                value,
                ..
            } => {
                let r = BusOrder::Little.write(vmm.accel.device().as_ref(), *offset, *size, *value);
                if let Err(e) = r {
                    println!("ACCEL-OP line {n} mmio_write {offset:#x} refused: {e}");
                }
            }
            Op::MmioRead {
                offset,
                size,
                expect,
                mask,
                ..
            } => {
                settle(vmm);
                let got = BusOrder::Little.read(vmm.accel.device().as_ref(), *offset, *size);
                if let Some(want) = expect {
                    let m = mask.unwrap_or(u64::MAX);
                    t.check(n, matches!(got, Ok(v) if v & m == want & m), || {
                        format!("mmio_read {offset:#x}: got {got:x?}, want {want:#x} mask {m:#x}")
                    });
                }
            }
            Op::Dma {
                stream,
                substream,
                addr,
                size,
                access,
                privileged,
                expect,
                ..
            } => {
                settle(vmm);
                let e = expect_of(expect);
                if *stream == vmm.vsid {
                    let unsupported = match (access, privileged, substream) {
                        (AccessKind::Exec, _, _) => Some("an instruction fetch (edu reads data)"),
                        (_, true, _) => Some("a privileged access (edu's DMA is unprivileged)"),
                        (_, _, Some(_)) => Some("a SubstreamID (edu has no PASID)"),
                        _ => None,
                    };
                    if let Some(why) = unsupported {
                        t.skip(n, why);
                        continue;
                    }
                    if e == Expect::Other {
                        t.skip(n, "no expectation edu can produce (none, or a stall)");
                        continue;
                    }
                    let op = DmaOp {
                        line: n,
                        addr: *addr,
                        size: *size,
                        write: *access == AccessKind::Write,
                        expect: e.clone(),
                    };
                    t.real_dma += 1;
                    let got = verify::perform(&op, vmm.vsid, edu, &vmm.mem.clone(), vmm);
                    let ok = match (&got, &e) {
                        (Ok(Observed::Addr(a)), Expect::Addr(w)) => a == w,
                        (Ok(Observed::Fault(f)), Expect::Fault(w)) => f == w,
                        (Ok(Observed::Fault(_)), Expect::AnyFault) => true,
                        (Ok(Observed::Silent), Expect::AnyFault) => {
                            println!(
                                "ACCEL-OP line {n} NOTE: no event; terminated silently \
                                 (an abort STE) or not translated at all, edu cannot tell"
                            );
                            true
                        }
                        _ => false,
                    };
                    let dir = if op.write { "write" } else { "read" };
                    println!(
                        "ACCEL-DMA line {n} {dir} {addr:#x}+{size:#x} expect {} -> {}",
                        expect_text(&e),
                        match &got {
                            Ok(Observed::Addr(a)) => format!("data through {a:#x}"),
                            Ok(Observed::Fault(f)) => format!("{f} event in the guest queue"),
                            Ok(Observed::Silent) => "no event".into(),
                            Err(why) => format!("error: {why}"),
                        }
                    );
                    t.check(n, ok, || {
                        format!("dma {addr:#x}: {got:?}, want {}", expect_text(&e))
                    });
                } else {
                    let req = DmaRequest {
                        stream: StreamId(*stream),
                        substream: substream.map(SubstreamId),
                        addr: *addr,
                        len: *size,
                        access: *access,
                        privileged: *privileged,
                    };
                    let got = vmm.accel.device().translate(&req);
                    let ok = match (&got, expect) {
                        (_, None) => true,
                        (Ok(m), Some(DmaExpect::Addr(w))) => m.output == *w,
                        (Err(_), Some(DmaExpect::AnyFault)) => true,
                        (Err(f), Some(DmaExpect::Fault(w))) => f.event == w,
                        _ => false,
                    };
                    t.check(n, ok, || {
                        format!(
                            "emulated dma sid {stream:#x} {addr:#x}: {:?}",
                            got.map(|m| m.output).map_err(|f| f.event)
                        )
                    });
                }
            }
            Op::ExpectIrq { irq, count, .. } => {
                settle(vmm);
                irqs.pending.extend(vmm.irq.take());
                if !irqs.in_run {
                    irqs.window = std::mem::take(&mut irqs.pending);
                    irqs.in_run = true;
                }
                let hits = irqs
                    .window
                    .iter()
                    .filter(|e| match (irq, e) {
                        (IrqMatch::Msi { addr, data }, IrqEvent::Msi { addr: a, data: d }) => {
                            a == addr && d == data
                        }
                        (IrqMatch::Wired { line }, IrqEvent::Line { line: l, level }) => {
                            l == line && *level
                        }
                        _ => false,
                    })
                    .count() as u64;
                let ok = match count {
                    Some(c) => hits == *c,
                    None => hits >= 1,
                };
                t.check(n, ok, || {
                    format!("expect_irq {irq:?}: {hits} raised, want {count:?}")
                });
            }
            Op::Iopf(_) => t.skip(
                n,
                &format!("{} (I/O page faults are not forwarded)", l.op.name()),
            ),
            Op::Ats(_) => t.skip(
                n,
                &format!("{} (ATS is not supported on this host)", l.op.name()),
            ),
        }
    }
    t
}

/// Let the device finish queued work and bring host events in, as a VMM keeps servicing both
/// before the guest looks.
fn settle(vmm: &mut Vmm) {
    vmm.accel.device().finish_pending();
    if let Err(e) = vmm.pump() {
        println!("ACCEL-INFO event pump: {e}");
    }
}
