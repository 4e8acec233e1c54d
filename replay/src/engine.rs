//! Executing a parsed replay: RAM and devices are set up and every cross-line check is done
//! before the first operation runs ([`Session::prepare`]), so a malformed file is rejected as a
//! whole and nothing is half-applied; then [`Session::run`] executes the operations in order.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use viommu_common::id::{StreamId, SubstreamId};
use viommu_common::DmaRequest;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use super::device::{self, IrqEvent, ReplayDevice, ReplayIrq, ReplayMem};
use super::iopf;
use super::num::{hex, hex_bytes};
use super::parse::{IrqMatch, Line, Op, ScriptError};
use super::Options;

/// Largest total guest RAM a replay file may declare (the regions are mapped lazily, so this
/// bounds address space, not resident memory).
pub const MAX_TOTAL_RAM: u64 = 64 << 30;

/// Passed and failed checks of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Checks that held.
    pub passed: u64,
    /// Checks that did not.
    pub failed: u64,
}

/// One created device and the interrupt bookkeeping `expect_irq` needs.
struct Dev {
    name: String,
    dev: Box<dyn ReplayDevice>,
    irq: Arc<ReplayIrq>,
    /// Interrupts raised since the current check window was taken.
    pending: Vec<IrqEvent>,
    /// The interrupts consecutive `expect_irq` operations for this device look at.
    window: Vec<IrqEvent>,
    /// The previous operation was an `expect_irq` for this device (so this one shares its
    /// window).
    in_check_run: bool,
}

/// A replay ready to run: guest RAM built, devices created, every line checked.
pub struct Session {
    mem: ReplayMem,
    devs: Vec<Dev>,
    /// Each operation with the index of the device it names, if any.
    steps: Vec<(Line, Option<usize>)>,
}

/// One output line for an operation that produced a value or a check.
#[derive(Serialize)]
struct OpRecord {
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
    error: Option<String>,
}

impl OpRecord {
    fn new(line: usize, op: &'static str, actual: Value) -> Self {
        Self {
            line,
            op,
            actual,
            ok: None,
            expect: None,
            mask: None,
            error: None,
        }
    }

    /// The record of an extension op whose `exec` returned `(actual, ok, expected)`: the
    /// expected value is shown only when the check failed.
    fn checked(
        line: usize,
        op: &'static str,
        (actual, ok, expect): (Value, Option<bool>, Value),
    ) -> Self {
        let mut r = Self::new(line, op, actual);
        r.ok = ok;
        if ok == Some(false) {
            r.expect = Some(expect);
        }
        r
    }
}

fn err(line: usize, reason: impl Into<String>) -> ScriptError {
    ScriptError {
        line,
        reason: reason.into(),
    }
}

impl Session {
    /// Build guest RAM from the `ram` lines, create the devices, and check every line against
    /// them (device names, RAM ranges, MMIO offsets).
    ///
    /// # Errors
    /// The first line that cannot be set up or refers to something that does not exist.
    pub fn prepare(lines: Vec<Line>) -> Result<Self, ScriptError> {
        let mem = build_ram(&lines)?;
        let mut devs: Vec<Dev> = Vec::new();
        let mut steps = Vec::with_capacity(lines.len());
        for l in lines {
            let n = l.line;
            let idx = match &l.op {
                Op::Ram { .. } | Op::Comment { .. } => None,
                Op::Device { name, kind, config } => {
                    if name.is_empty() {
                        return Err(err(n, "device: field `name` must not be empty"));
                    }
                    if devs.iter().any(|d| &d.name == name) {
                        return Err(err(
                            n,
                            format!("device: a device named {name:?} already exists"),
                        ));
                    }
                    let irq = ReplayIrq::new();
                    let dev = device::create(kind, config, &mem, Arc::clone(&irq))
                        .map_err(|r| err(n, format!("device {name:?} ({kind}): {r}")))?;
                    devs.push(Dev {
                        name: name.clone(),
                        dev,
                        irq,
                        pending: Vec::new(),
                        window: Vec::new(),
                        in_check_run: false,
                    });
                    None
                }
                Op::WriteMem { addr, data } => {
                    check_ram(&mem, n, "write_mem", *addr, data.len() as u64)?;
                    None
                }
                Op::ReadMem { addr, len, .. } => {
                    check_ram(&mem, n, "read_mem", *addr, *len)?;
                    None
                }
                Op::MmioWrite {
                    dev, offset, size, ..
                }
                | Op::MmioRead {
                    dev, offset, size, ..
                } => {
                    let i = find_dev(&devs, n, dev)?;
                    let region = devs.get(i).map_or(0, |d| d.dev.mmio_size());
                    let end = offset.checked_add(u64::from(*size));
                    if end.is_none_or(|e| e > region) {
                        return Err(err(
                            n,
                            format!("{size}-byte access at offset {offset:#x} is outside {dev:?}'s {region:#x}-byte MMIO region"),
                        ));
                    }
                    Some(i)
                }
                Op::Dma { dev, .. } | Op::ExpectIrq { dev, .. } => Some(find_dev(&devs, n, dev)?),
                Op::Iopf(o) => Some(find_dev(&devs, n, o.dev())?),
                Op::Ats(o) => Some(find_dev(&devs, n, o.dev())?),
            };
            steps.push((l, idx));
        }
        Ok(Self { mem, devs, steps })
    }

    /// Execute every operation in order, writing output lines to `out`.
    pub fn run(mut self, opts: &Options, out: &mut dyn Write) -> Summary {
        let mut summary = Summary::default();
        let steps = std::mem::take(&mut self.steps);
        for (l, idx) in &steps {
            let expect_dev = match l.op {
                Op::ExpectIrq { .. } => *idx,
                _ => None,
            };
            for (i, d) in self.devs.iter_mut().enumerate() {
                if Some(i) != expect_dev {
                    d.in_check_run = false;
                }
            }
            // A panic inside a device model is a bug in the model, not in the file: report it as
            // a failed check on this line and stop (the device's state is unknown afterwards).
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let rec = self.exec(l, *idx, opts, &mut *out);
                // Interrupts and trace records of this operation come before its result line.
                self.drain(l.line, opts, &mut *out);
                rec
            }));
            let rec = match result {
                Ok(rec) => rec,
                Err(payload) => {
                    let mut r = OpRecord::new(l.line, l.op.name(), Value::Null);
                    r.ok = Some(false);
                    r.error = Some(format!("device model panicked: {}", panic_text(&*payload)));
                    summary.failed += 1;
                    emit(out, &r);
                    break;
                }
            };
            if let Some(rec) = rec {
                if let Some(ok) = rec.ok {
                    if ok {
                        summary.passed += 1;
                    } else {
                        summary.failed += 1;
                    }
                }
                if !opts.quiet || rec.ok == Some(false) {
                    emit(out, &rec);
                }
            }
        }
        summary
    }

    fn exec(
        &mut self,
        l: &Line,
        idx: Option<usize>,
        opts: &Options,
        out: &mut dyn Write,
    ) -> Option<OpRecord> {
        let n = l.line;
        let dev = idx.and_then(|i| self.devs.get(i));
        match &l.op {
            Op::Ram { .. } | Op::Device { .. } => None,
            Op::Comment { text } => {
                if !opts.quiet {
                    emit(
                        out,
                        &CommentRecord {
                            line: n,
                            comment: text,
                        },
                    );
                }
                None
            }
            Op::WriteMem { addr, data } => {
                // Checked against RAM in `prepare`; a failure here would be a vm-memory bug, and
                // is still reported rather than ignored.
                viommu_common::mem::write_bytes(&self.mem, *addr, data)
                    .err()
                    .map(|e| {
                        let mut r = OpRecord::new(n, "write_mem", Value::Null);
                        r.error = Some(e.to_string());
                        r.ok = Some(false);
                        r
                    })
            }
            Op::ReadMem { addr, len, expect } => {
                self.devs.iter().for_each(|d| d.dev.settle());
                let mut buf = vec![0u8; usize::try_from(*len).unwrap_or(0)];
                let res = viommu_common::mem::read_bytes(&self.mem, *addr, &mut buf);
                let mut r = OpRecord::new(n, "read_mem", json!(hex_bytes(&buf)));
                if let Err(e) = res {
                    r.error = Some(e.to_string());
                }
                if let Some(e) = expect {
                    r.ok = Some(r.error.is_none() && e == &buf);
                    if r.ok == Some(false) {
                        r.expect = Some(json!(hex_bytes(e)));
                    }
                }
                Some(r)
            }
            Op::MmioWrite {
                offset,
                size,
                value,
                ..
            } => {
                let d = dev?;
                d.dev.mmio_write(*offset, *size, *value).err().map(|e| {
                    let mut r = OpRecord::new(n, "mmio_write", json!(hex(*value)));
                    r.error = Some(e.to_string());
                    r
                })
            }
            Op::MmioRead {
                offset,
                size,
                expect,
                mask,
                ..
            } => {
                let d = dev?;
                d.dev.settle();
                let (actual, error) = match d.dev.mmio_read(*offset, *size) {
                    Ok(v) => (v, None),
                    Err(e) => (0, Some(e.to_string())),
                };
                let mut r = OpRecord::new(n, "mmio_read", json!(hex(actual)));
                r.error = error;
                if let Some(e) = expect {
                    let m = mask.unwrap_or(u64::MAX);
                    r.ok = Some(actual & m == e & m);
                    if r.ok == Some(false) {
                        r.expect = Some(json!(hex(*e)));
                        r.mask = mask.map(|m| json!(hex(m)));
                    }
                }
                Some(r)
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
                let d = dev?;
                d.dev.settle();
                let req = DmaRequest {
                    stream: StreamId(*stream),
                    substream: substream.map(SubstreamId),
                    addr: *addr,
                    len: *size,
                    access: *access,
                    privileged: *privileged,
                };
                let res = d.dev.dma_outcome(&req);
                let mut r = OpRecord::new(n, "dma", res.to_json());
                if let Some(e) = expect {
                    r.ok = Some(res.matches(e));
                    if r.ok == Some(false) {
                        r.expect = Some(iopf::expect_json(e));
                    }
                }
                Some(r)
            }
            Op::Iopf(o) => {
                let d = dev?;
                d.dev.settle();
                Some(OpRecord::checked(n, o.name(), o.exec(&*d.dev)))
            }
            Op::Ats(o) => {
                let d = dev?;
                d.dev.settle();
                Some(OpRecord::checked(n, o.name(), o.exec(&*d.dev)))
            }
            Op::ExpectIrq { irq, count, .. } => {
                let i = idx?;
                // Interrupts raised by pending work belong in this window.
                if let Some(d) = self.devs.get(i) {
                    d.dev.settle();
                }
                self.drain(n, opts, out);
                let d = self.devs.get_mut(i)?;
                if !d.in_check_run {
                    d.window = std::mem::take(&mut d.pending);
                    d.in_check_run = true;
                }
                let seen = d.window.iter().filter(|e| irq_matches(irq, e)).count() as u64;
                let mut r = OpRecord::new(n, "expect_irq", json!(seen));
                let ok = match count {
                    Some(c) => seen == *c,
                    None => seen >= 1,
                };
                r.ok = Some(ok);
                if !ok {
                    r.expect = Some(match count {
                        Some(c) => json!(c),
                        None => json!(">= 1"),
                    });
                }
                Some(r)
            }
        }
    }

    /// Collect the interrupts and trace records every device produced during operation `line`.
    fn drain(&mut self, line: usize, opts: &Options, out: &mut dyn Write) {
        for d in &mut self.devs {
            // Always taken, so a device's trace buffer never grows across a long run.
            let trace = d.dev.take_trace();
            if opts.trace {
                for t in trace {
                    if !opts.quiet {
                        emit(
                            out,
                            &TraceRecord {
                                line,
                                dev: &d.name,
                                trace: &t,
                            },
                        );
                    }
                }
            }
            for e in d.irq.take() {
                if !opts.quiet {
                    emit(
                        out,
                        &IrqRecord {
                            irq: irq_json(&d.name, &e),
                            line,
                        },
                    );
                }
                d.pending.push(e);
            }
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn irq_matches(m: &IrqMatch, e: &IrqEvent) -> bool {
    match (m, e) {
        (IrqMatch::Msi { addr, data }, IrqEvent::Msi { addr: a, data: d }) => {
            addr == a && data == d
        }
        (
            IrqMatch::Wired { line },
            IrqEvent::Line {
                line: l,
                level: true,
            },
        ) => line == l,
        _ => false,
    }
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

fn emit<T: Serialize>(out: &mut dyn Write, v: &T) {
    // Output errors (a closed pipe) do not change the result; the exit status still does.
    if let Ok(s) = serde_json::to_string(v) {
        let _ = writeln!(out, "{s}");
    }
}

fn find_dev(devs: &[Dev], line: usize, name: &str) -> Result<usize, ScriptError> {
    devs.iter().position(|d| d.name == name).ok_or_else(|| {
        err(
            line,
            format!("no device named {name:?} was created before this line"),
        )
    })
}

fn check_ram(
    mem: &ReplayMem,
    line: usize,
    op: &str,
    addr: u64,
    len: u64,
) -> Result<(), ScriptError> {
    let ok = len == 0
        || usize::try_from(len).is_ok_and(|l| {
            addr.checked_add(len).is_some() && mem.check_range(GuestAddress(addr), l)
        });
    if ok {
        Ok(())
    } else {
        Err(err(
            line,
            format!("{op}: {len} bytes at {addr:#x} are not all inside guest RAM"),
        ))
    }
}

/// Guest RAM from every `ram` line; they must all come before the first `device`.
fn build_ram(lines: &[Line]) -> Result<ReplayMem, ScriptError> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
    let mut first_device = None;
    let mut total: u64 = 0;
    for l in lines {
        match l.op {
            Op::Device { .. } => {
                first_device.get_or_insert(l.line);
            }
            Op::Ram { base, size } => {
                if let Some(d) = first_device {
                    return Err(err(
                        l.line,
                        format!("ram: RAM must be declared before the first device (line {d})"),
                    ));
                }
                total = total.saturating_add(size);
                if total > MAX_TOTAL_RAM {
                    return Err(err(
                        l.line,
                        format!("ram: total RAM exceeds the {MAX_TOTAL_RAM:#x}-byte limit"),
                    ));
                }
                if let Some((_, _, other)) = ranges
                    .iter()
                    .find(|(b, s, _)| base < b + s && *b < base + size)
                {
                    return Err(err(
                        l.line,
                        format!("ram: region overlaps the one on line {other}"),
                    ));
                }
                ranges.push((base, size, l.line));
            }
            _ => {}
        }
    }
    ranges.sort_unstable_by_key(|r| r.0);
    let mut regions = Vec::with_capacity(ranges.len());
    for (base, size, _) in &ranges {
        // MAX_TOTAL_RAM keeps every size inside usize on 64-bit hosts.
        let size = usize::try_from(*size).map_err(|_| err(0, "RAM size does not fit in usize"))?;
        regions.push((GuestAddress(*base), size));
    }
    if regions.is_empty() {
        return Ok(ReplayMem::new());
    }
    ReplayMem::from_ranges(&regions).map_err(|e| {
        let line = ranges.first().map_or(0, |r| r.2);
        err(line, format!("ram: cannot create guest RAM: {e}"))
    })
}
