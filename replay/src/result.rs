//! Typed results of executed operations, and the checks of a line's expectation against them.

use crate::ats::{AtcInvSpec, AtsOutcome};
use crate::iopf::DmaOutcome;
use crate::parse::Op;

/// Passed and failed checks of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Checks that held.
    pub passed: u64,
    /// Checks that did not.
    pub failed: u64,
}

impl Summary {
    /// Count one result's check, if it had one.
    pub fn count(&mut self, r: &OpResult) {
        match r.ok {
            Some(true) => self.passed += 1,
            Some(false) => self.failed += 1,
            None => {}
        }
    }
}

/// What an operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actual {
    /// Nothing to report: setup lines, comments, a successful `write_mem` or `mmio_write`.
    None,
    /// A register value: what `mmio_read` returned, or the value of a refused `mmio_write`.
    Register(u64),
    /// The bytes `read_mem` read.
    Bytes(Vec<u8>),
    /// The outcome of a `dma`.
    Dma(DmaOutcome),
    /// The number of interrupts matching an `expect_irq`.
    IrqCount(u64),
    /// `stall_result`: what the endpoint of a stalled DMA sees, or why the device cannot say.
    Stall(Result<DmaOutcome, String>),
    /// `page_request` (`queued`, `dropped`, `success`, ...) or `pri_response` (`success`,
    /// ..., `none`), or why the device cannot answer.
    Named(Result<String, String>),
    /// `ats_request`: the completion, or why the device cannot answer.
    Ats(Result<AtsOutcome, String>),
    /// `translated`: the outcome, or why the device cannot answer.
    Translated(Result<DmaOutcome, String>),
    /// `expect_atc_inv`: the invalidations the stream's ATC received, or why there are none.
    AtcInv(Result<Vec<AtcInvSpec>, String>),
}

/// The result of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpResult {
    /// 1-based line number of the operation.
    pub line: usize,
    /// The operation's name as files spell it.
    pub op: &'static str,
    /// What it produced.
    pub actual: Actual,
    /// Whether the line's expectation held (`None`: the line had none).
    pub ok: Option<bool>,
    /// An access the device refused (RAZ/WI), a guest memory error, or a device model panic.
    pub error: Option<String>,
}

impl OpResult {
    /// Whether this result has an output line: it produced a value, or an error.
    pub fn is_reported(&self) -> bool {
        self.actual != Actual::None || self.error.is_some()
    }
}

/// Check `actual` (with `error`) against `op`'s expectation: `None` when the line has none.
pub fn check(op: &Op, actual: &Actual, error: Option<&str>) -> Option<bool> {
    match (op, actual) {
        (Op::WriteMem(_), _) => error.map(|_| false),
        (Op::ReadMem(r), Actual::Bytes(b)) => r.expect.as_ref().map(|e| error.is_none() && e == b),
        (Op::MmioRead(r), Actual::Register(v)) => r.expect.map(|e| {
            let m = r.mask.unwrap_or(u64::MAX);
            v & m == e & m
        }),
        (Op::Dma(d), Actual::Dma(o)) => d.expect.as_ref().map(|e| o.matches(e)),
        (Op::ExpectIrq(x), Actual::IrqCount(seen)) => Some(match x.count {
            Some(c) => *seen == c,
            None => *seen >= 1,
        }),
        (Op::StallResult(s), Actual::Stall(out)) => s
            .expect
            .as_ref()
            .map(|e| out.as_ref().is_ok_and(|o| o.matches(e))),
        (Op::PageRequest(p), Actual::Named(out)) => named(p.expect.as_deref(), out),
        (Op::PriResponse(p), Actual::Named(out)) => named(p.expect.as_deref(), out),
        (Op::AtsRequest(a), Actual::Ats(out)) => a
            .expect
            .as_ref()
            .map(|e| out.as_ref().is_ok_and(|o| o.matches(e))),
        (Op::Translated(d), Actual::Translated(out)) => d
            .expect
            .as_ref()
            .map(|e| out.as_ref().is_ok_and(|o| o.matches(e))),
        (Op::ExpectAtcInv(x), Actual::AtcInv(out)) => {
            Some(out.as_ref().is_ok_and(|v| *v == x.expect))
        }
        // An actual of another kind than the operation's (an observer's mistake) fails the
        // line's check, if it has one.
        (op, _) => has_expectation(op).then_some(false),
    }
}

fn named(expect: Option<&str>, out: &Result<String, String>) -> Option<bool> {
    expect.map(|e| out.as_ref().is_ok_and(|got| got == e))
}

/// Whether `op` carries a check.
fn has_expectation(op: &Op) -> bool {
    match op {
        Op::Ram(_) | Op::Device(_) | Op::Comment(_) | Op::WriteMem(_) | Op::MmioWrite(_) => false,
        Op::ExpectIrq(_) | Op::ExpectAtcInv(_) => true,
        Op::ReadMem(r) => r.expect.is_some(),
        Op::MmioRead(r) => r.expect.is_some(),
        Op::Dma(d) | Op::Translated(d) => d.expect.is_some(),
        Op::StallResult(s) => s.expect.is_some(),
        Op::PageRequest(p) => p.expect.is_some(),
        Op::PriResponse(p) => p.expect.is_some(),
        Op::AtsRequest(a) => a.expect.is_some(),
    }
}
