//! The JSON Lines output of `viommu replay`: an [`Observer`] rendering results, interrupts,
//! comments and trace records as the format documents them.

use std::io::Write;

use serde::Serialize;
use serde_json::{json, Value};

use crate::device::IrqEvent;
use crate::engine::Observer;
use crate::iopf::expect_json;
use crate::num::{hex, hex_bytes};
use crate::parse::{Comment, Line, Op};
use crate::result::{Actual, OpResult};
use crate::Options;

/// Prints a run as JSON lines (see the crate documentation, "Output").
pub struct JsonPrinter<'a> {
    opts: Options,
    out: &'a mut dyn Write,
}

impl<'a> JsonPrinter<'a> {
    /// A printer writing to `out`.
    pub fn new(opts: Options, out: &'a mut dyn Write) -> Self {
        Self { opts, out }
    }

    fn emit<T: Serialize>(&mut self, v: &T) {
        // Output errors (a closed pipe) do not change the result; the exit status still does.
        if let Ok(s) = serde_json::to_string(v) {
            let _ = writeln!(self.out, "{s}");
        }
    }
}

impl Observer for JsonPrinter<'_> {
    fn wants_trace(&self) -> bool {
        self.opts.trace && !self.opts.quiet
    }

    fn result(&mut self, step: &Line, r: &OpResult) {
        if let Op::Comment(Comment { text }) = &step.op {
            if !self.opts.quiet {
                self.emit(&CommentRecord {
                    line: r.line,
                    comment: text,
                });
            }
            return;
        }
        if !r.is_reported() || (self.opts.quiet && r.ok != Some(false)) {
            return;
        }
        let failed = r.ok == Some(false);
        let (expect, mask) = if failed {
            expected(&step.op)
        } else {
            (None, None)
        };
        self.emit(&OpRecord {
            line: r.line,
            op: r.op,
            actual: actual_json(&r.actual),
            ok: r.ok,
            expect,
            mask,
            error: r.error.as_deref(),
        });
    }

    fn irq(&mut self, line: usize, dev: &str, e: &IrqEvent) {
        if !self.opts.quiet {
            self.emit(&IrqRecord {
                irq: irq_json(dev, e),
                line,
            });
        }
    }

    fn trace(&mut self, line: usize, dev: &str, text: &str) {
        if self.wants_trace() {
            self.emit(&TraceRecord {
                line,
                dev,
                trace: text,
            });
        }
    }
}

/// The JSON value printed as `actual`.
pub fn actual_json(a: &Actual) -> Value {
    match a {
        Actual::None => Value::Null,
        Actual::Register(v) => json!(hex(*v)),
        Actual::Bytes(b) => json!(hex_bytes(b)),
        Actual::Dma(o) => o.to_json(),
        Actual::IrqCount(n) => json!(n),
        Actual::Stall(r) => r
            .as_ref()
            .map_or_else(|e| json!({"error": e}), |o| o.to_json()),
        Actual::Named(r) => r
            .as_ref()
            .map_or_else(|e| json!({"error": e}), |s| json!(s)),
        Actual::Ats(r) => r
            .as_ref()
            .map_or_else(|e| json!({"unsupported": e}), |o| o.to_json()),
        Actual::Translated(r) => r
            .as_ref()
            .map_or_else(|e| json!({"unsupported": e}), |o| o.to_json()),
        Actual::AtcInv(r) => r.as_ref().map_or_else(
            |e| json!({"error": e}),
            |v| Value::Array(v.iter().map(|i| i.to_json()).collect()),
        ),
    }
}

/// The `expect` (and `mask`) printed on a failed check of `op`.
fn expected(op: &Op) -> (Option<Value>, Option<Value>) {
    let e = match op {
        Op::ReadMem(r) => r.expect.as_ref().map(|e| json!(hex_bytes(e))),
        Op::MmioRead(r) => {
            return (
                r.expect.map(|e| json!(hex(e))),
                r.mask.map(|m| json!(hex(m))),
            )
        }
        Op::Dma(d) => d.expect.as_ref().map(expect_json),
        Op::ExpectIrq(x) => Some(x.count.map_or_else(|| json!(">= 1"), |c| json!(c))),
        Op::StallResult(s) => Some(s.expect.as_ref().map_or(Value::Null, expect_json)),
        Op::PageRequest(p) => Some(p.expect.as_ref().map_or(Value::Null, |e| json!(e))),
        Op::PriResponse(p) => Some(p.expect.as_ref().map_or(Value::Null, |e| json!(e))),
        Op::AtsRequest(a) => Some(a.expect.as_ref().map_or(Value::Null, |e| e.to_json())),
        Op::Translated(d) => Some(d.expect.as_ref().map_or(Value::Null, expect_json)),
        Op::ExpectAtcInv(x) => Some(Value::Array(x.expect.iter().map(|i| i.to_json()).collect())),
        Op::Ram(_) | Op::Device(_) | Op::Comment(_) | Op::WriteMem(_) | Op::MmioWrite(_) => None,
    };
    (e, None)
}

/// One output line for an operation that produced a value or a check.
#[derive(Serialize)]
struct OpRecord<'a> {
    line: usize,
    op: &'static str,
    actual: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// `{"line": N, "comment": TEXT}`.
#[derive(Serialize)]
struct CommentRecord<'a> {
    line: usize,
    comment: &'a str,
}

/// `{"line": N, "dev": NAME, "trace": TEXT}`.
#[derive(Serialize)]
struct TraceRecord<'a> {
    line: usize,
    dev: &'a str,
    trace: &'a str,
}

/// `{"irq": {...}, "line": N}`.
#[derive(Serialize)]
struct IrqRecord<'a> {
    irq: IrqJson<'a>,
    line: usize,
}

/// An interrupt as output lines show it (field order as documented).
#[derive(Serialize)]
#[serde(untagged)]
enum IrqJson<'a> {
    Msi {
        dev: &'a str,
        kind: &'static str,
        addr: String,
        data: String,
    },
    Wired {
        dev: &'a str,
        kind: &'static str,
        line: u32,
        level: bool,
    },
}

fn irq_json<'a>(dev: &'a str, e: &IrqEvent) -> IrqJson<'a> {
    match *e {
        IrqEvent::Msi { addr, data } => IrqJson::Msi {
            dev,
            kind: "msi",
            addr: hex(addr),
            data: hex(u64::from(data)),
        },
        IrqEvent::Line { line, level } => IrqJson::Wired {
            dev,
            kind: "wired",
            line,
            level,
        },
    }
}
