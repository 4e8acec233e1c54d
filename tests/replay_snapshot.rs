//! Save/restore in the middle of a replay scenario: every `tests/replay/smmuv3_*.jsonl` file is
//! run straight through, and again split at every operation: the first part on one SMMUv3, a
//! snapshot (through JSON), a restore into a fresh SMMUv3 on the same guest memory, the rest on
//! the new device. Every split must produce exactly the straight run's results (register
//! values, memory, DMA outcomes, interrupts) and pass every expectation in the file. This
//! includes the I/O page fault scenarios: a stall held (or resolved and not yet collected) at
//! the split is restored under its STAG, so the `stall_result` after it sees the same outcome,
//! and Page Request Groups keep their responses for `pri_response`. With the ATS extension,
//! the endpoints' ATCs are not device state: the runner registers them again on the restored
//! device, as a VMM does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use viommu::common::testing::{Irq, RecordingIrq};
use viommu::common::traits::FaultKind;
use viommu::common::traits::{DmaTranslator, MmioDevice};
use viommu::common::{mem, AccessKind, DmaRequest, StreamId, SubstreamId};
use viommu::smmuv3::ats::{AtcEndpoint, AtcError, AtcInvalidation, AtsRequest};
use viommu::smmuv3::caps::SmmuConfig;
use viommu::smmuv3::cmdq::command::PriResponse;
use viommu::smmuv3::device::SmmuV3;
use viommu::smmuv3::priq::{PageRequest, PageRequestOutcome};
use viommu::smmuv3::snapshot::SmmuV3Snapshot;
use viommu::smmuv3::spec::idr::StallModel;
use viommu::smmuv3::stall::StallStatus;
use vm_memory::{GuestAddress, GuestMemoryMmap};

type Dev<'a> = SmmuV3<&'a GuestMemoryMmap>;

/// What a `dma` line expects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DmaExpect {
    Addr(u64),
    /// A fault of this name ("" for any fault).
    Fault(String),
    /// Held by the stall model.
    Stalled,
}

/// The interrupt an `expect_irq` line looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IrqMatch {
    Msi { addr: u64, data: u32 },
    Wired { line: u32 },
}

/// The operations of replay-format.md that a single-SMMUv3 scenario uses after its setup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    WriteMem {
        addr: u64,
        data: Vec<u8>,
    },
    ReadMem {
        addr: u64,
        len: u64,
        expect: Option<Vec<u8>>,
    },
    MmioWrite {
        offset: u64,
        size: u8,
        value: u64,
    },
    MmioRead {
        offset: u64,
        size: u8,
        expect: Option<u64>,
        mask: Option<u64>,
    },
    Dma {
        req: DmaRequest,
        expect: Option<DmaExpect>,
    },
    ExpectIrq {
        irq: IrqMatch,
        count: Option<u64>,
    },
    /// I/O page fault extension: what the endpoint of a stalled DMA sees now.
    StallResult {
        stream: u32,
        stag: u16,
        expect: Option<DmaExpect>,
    },
    /// I/O page fault extension: an endpoint's page request.
    PageRequest {
        stream: u32,
        req: PageRequest,
        expect: Option<String>,
    },
    /// I/O page fault extension: the PRG response the endpoint received.
    PriResponse {
        stream: u32,
        group: u16,
        expect: Option<String>,
    },
    /// ATS extension: a Translation Request (`expect` kept as JSON, compared field by field).
    AtsRequest {
        req: AtsRequest,
        expect: Option<Value>,
    },
    /// ATS extension: a Translated transaction.
    Translated {
        req: DmaRequest,
        expect: Option<DmaExpect>,
    },
    /// ATS extension: the invalidations the stream's ATC received.
    ExpectAtcInv {
        stream: u32,
        expect: Vec<Value>,
    },
}

/// An endpoint ATC that records the invalidations it receives.
#[derive(Debug, Default)]
struct RecordingAtc(Mutex<Vec<AtcInvalidation>>);

impl AtcEndpoint for RecordingAtc {
    fn invalidate(&self, inv: &AtcInvalidation) -> Result<(), AtcError> {
        self.0.lock().unwrap().push(*inv);
        Ok(())
    }
}

/// `rwx` letters of a permission set.
fn perms_name(p: viommu::common::Perms) -> String {
    use viommu::common::Perms;
    [(Perms::R, 'r'), (Perms::W, 'w'), (Perms::X, 'x')]
        .iter()
        .filter(|(b, _)| p.contains(*b))
        .map(|(_, c)| *c)
        .collect()
}

/// An operation and its line number in the file.
struct Line {
    line: usize,
    op: Op,
}

/// A number: a JSON integer or a hex/decimal string.
fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("unsigned integer"),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).expect("hex number"),
            None => s.parse().expect("decimal number"),
        },
        other => panic!("not a number: {other}"),
    }
}

fn field(o: &Value, k: &str) -> u64 {
    num(o.get(k).unwrap_or_else(|| panic!("missing {k} in {o}")))
}

fn opt(o: &Value, k: &str) -> Option<u64> {
    o.get(k).map(num)
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex byte string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex byte"))
        .collect()
}

/// A scenario with one SMMUv3: its RAM, configuration and operations after the setup lines.
struct Scenario {
    ram: Vec<(u64, u64)>,
    config: SmmuConfig,
    batch_limit: Option<usize>,
    ops: Vec<Line>,
}

/// A `dma`-shaped expectation: `{"addr"}`, `{"fault": NAME | true}` or `{"stalled": true}`.
fn dma_expect(e: &Value) -> DmaExpect {
    if let Some(a) = e.get("addr") {
        DmaExpect::Addr(num(a))
    } else if e.get("stalled").is_some() {
        DmaExpect::Stalled
    } else {
        DmaExpect::Fault(
            e.get("fault")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    }
}

fn flag(o: &Value, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// Parse a replay file; `None` if it is not a single-SMMUv3 scenario with a configuration this
/// test understands (default, `cmdq_batch_limit`, and the keys the I/O page fault scenarios
/// use).
fn load(path: &Path) -> Option<Scenario> {
    let text = std::fs::read_to_string(path).expect("read scenario");
    let mut ram = Vec::new();
    let mut batch_limit = None;
    let mut config = SmmuConfig::default();
    let mut device = false;
    let mut ops = Vec::new();
    for (i, t) in text.lines().enumerate() {
        let t = t.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let o: Value = serde_json::from_str(t).expect("JSON line");
        let op = match o["op"].as_str().expect("op") {
            "comment" => continue,
            "ram" => {
                ram.push((field(&o, "base"), field(&o, "size")));
                continue;
            }
            "device" => {
                if o["kind"] != "smmuv3" || device {
                    return None;
                }
                device = true;
                if let Some(c) = o.get("config").and_then(Value::as_object) {
                    for (k, v) in c {
                        match k.as_str() {
                            "cmdq_batch_limit" => {
                                batch_limit = Some(usize::try_from(num(v)).unwrap());
                            }
                            "stall_model" => {
                                config.stall_model = StallModel(u8::try_from(num(v)).ok()?);
                            }
                            "stall_max" => config.stall_max = u16::try_from(num(v)).ok()?,
                            "priq_log2" => config.priq_log2 = u8::try_from(num(v)).ok()?,
                            "ats" => config.ats = v.as_bool()?,
                            "pri" => config.pri = v.as_bool()?,
                            _ => return None,
                        }
                    }
                }
                continue;
            }
            "write_mem" => Op::WriteMem {
                addr: field(&o, "addr"),
                data: hex_bytes(&o["data"]),
            },
            "read_mem" => Op::ReadMem {
                addr: field(&o, "addr"),
                len: field(&o, "len"),
                expect: o.get("expect").map(hex_bytes),
            },
            "mmio_write" => Op::MmioWrite {
                offset: field(&o, "offset"),
                size: u8::try_from(field(&o, "size")).unwrap(),
                value: field(&o, "value"),
            },
            "mmio_read" => Op::MmioRead {
                offset: field(&o, "offset"),
                size: u8::try_from(field(&o, "size")).unwrap(),
                expect: opt(&o, "expect"),
                mask: opt(&o, "mask"),
            },
            "dma" => {
                let access = match o["access"].as_str().expect("access") {
                    "read" => AccessKind::Read,
                    "write" => AccessKind::Write,
                    _ => AccessKind::Exec,
                };
                let stream = u32::try_from(field(&o, "stream")).unwrap();
                let mut req = DmaRequest::new(stream, field(&o, "addr"), field(&o, "size"), access);
                if let Some(s) = opt(&o, "substream") {
                    req = req.with_substream(u32::try_from(s).unwrap());
                }
                req.privileged = o
                    .get("privileged")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let expect = o.get("expect").map(dma_expect);
                Op::Dma { req, expect }
            }
            "expect_irq" => Op::ExpectIrq {
                irq: if o["kind"] == "msi" {
                    IrqMatch::Msi {
                        addr: field(&o, "addr"),
                        data: u32::try_from(field(&o, "data")).unwrap(),
                    }
                } else {
                    IrqMatch::Wired {
                        line: u32::try_from(field(&o, "line")).unwrap(),
                    }
                },
                count: opt(&o, "count"),
            },
            "stall_result" => Op::StallResult {
                stream: u32::try_from(field(&o, "stream")).unwrap(),
                stag: u16::try_from(field(&o, "stag")).unwrap(),
                expect: o.get("expect").map(dma_expect),
            },
            "page_request" => {
                let access = o["access"].as_str().expect("access");
                Op::PageRequest {
                    stream: u32::try_from(field(&o, "stream")).unwrap(),
                    req: PageRequest {
                        substream: opt(&o, "substream")
                            .map(|s| SubstreamId(u32::try_from(s).unwrap())),
                        addr: field(&o, "addr"),
                        read: access.contains('r'),
                        write: access.contains('w'),
                        exec: access.contains('x'),
                        privileged: flag(&o, "privileged"),
                        last: flag(&o, "last"),
                        group: u16::try_from(field(&o, "group")).unwrap(),
                    },
                    expect: o.get("expect").and_then(Value::as_str).map(str::to_owned),
                }
            }
            "pri_response" => Op::PriResponse {
                stream: u32::try_from(field(&o, "stream")).unwrap(),
                group: u16::try_from(field(&o, "group")).unwrap(),
                expect: o.get("expect").and_then(Value::as_str).map(str::to_owned),
            },
            "ats_request" => {
                let mut req = AtsRequest::new(
                    u32::try_from(field(&o, "stream")).unwrap(),
                    field(&o, "addr"),
                );
                req.no_write = flag(&o, "read_only");
                req.substream =
                    opt(&o, "substream").map(|s| SubstreamId(u32::try_from(s).unwrap()));
                Op::AtsRequest {
                    req,
                    expect: o.get("expect").cloned(),
                }
            }
            "translated" => {
                let access = match o["access"].as_str().expect("access") {
                    "read" => AccessKind::Read,
                    "write" => AccessKind::Write,
                    _ => AccessKind::Exec,
                };
                Op::Translated {
                    req: DmaRequest::new(
                        u32::try_from(field(&o, "stream")).unwrap(),
                        field(&o, "addr"),
                        field(&o, "size"),
                        access,
                    ),
                    expect: o.get("expect").map(dma_expect),
                }
            }
            "expect_atc_inv" => Op::ExpectAtcInv {
                stream: u32::try_from(field(&o, "stream")).unwrap(),
                expect: o["expect"].as_array().expect("list").clone(),
            },
            // Other extensions are not replayed here.
            _ => return None,
        };
        ops.push(Line { line: i + 1, op });
    }
    device.then_some(Scenario {
        ram,
        config,
        batch_limit,
        ops,
    })
}

fn mmio_read(dev: &Dev<'_>, offset: u64, size: u8) -> Option<u64> {
    let mut b = [0u8; 8];
    let n = usize::from(size).min(8);
    dev.mmio_read(offset, &mut b[..n]).ok()?;
    Some(u64::from_le_bytes(b))
}

fn mmio_write(dev: &Dev<'_>, offset: u64, size: u8, value: u64) -> bool {
    let n = usize::from(size).min(8);
    dev.mmio_write(offset, &value.to_le_bytes()[..n]).is_ok()
}

/// One run's observable results and failed expectations.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    results: Vec<String>,
    failures: Vec<String>,
}

struct Runner<'a> {
    ram: &'a GuestMemoryMmap,
    dev: Dev<'a>,
    irq: Arc<RecordingIrq>,
    /// Interrupts raised since the last `expect_irq` window was taken.
    raised: Vec<Irq>,
    window: Vec<Irq>,
    in_window: bool,
    out: Outcome,
    /// Endpoint ATCs (registered at a stream's first `ats_request`), by StreamID.
    atcs: BTreeMap<u32, Arc<RecordingAtc>>,
}

impl<'a> Runner<'a> {
    fn device(s: &Scenario, ram: &'a GuestMemoryMmap) -> (Dev<'a>, Arc<RecordingIrq>) {
        let irq = Arc::new(RecordingIrq::new());
        let dev = SmmuV3::new(&s.config, ram, irq.clone()).unwrap();
        if let Some(n) = s.batch_limit {
            dev.set_cmdq_batch_limit(n);
        }
        (dev, irq)
    }

    fn check(&mut self, line: usize, ok: bool, what: String) {
        self.out.results.push(format!("{line}: {what}"));
        if !ok {
            self.out.failures.push(format!("line {line}: {what}"));
        }
    }

    fn step(&mut self, l: &Line) {
        let n = l.line;
        let expect_irq = matches!(l.op, Op::ExpectIrq { .. });
        match &l.op {
            Op::WriteMem { addr, data } => {
                mem::write_bytes(self.ram, *addr, data).unwrap();
            }
            Op::ReadMem { addr, len, expect } => {
                self.dev.finish_pending();
                let mut b = vec![0u8; usize::try_from(*len).unwrap()];
                mem::read_bytes(self.ram, *addr, &mut b).unwrap();
                let ok = expect.as_ref().is_none_or(|e| *e == b);
                self.check(n, ok, format!("read_mem {b:02x?}"));
            }
            Op::MmioWrite {
                offset,
                size,
                value,
            } => {
                let ok = mmio_write(&self.dev, *offset, *size, *value);
                self.out.results.push(format!("{n}: mmio_write {ok}"));
            }
            Op::MmioRead {
                offset,
                size,
                expect,
                mask,
            } => {
                self.dev.finish_pending();
                let v = mmio_read(&self.dev, *offset, *size).unwrap_or(0);
                let m = mask.unwrap_or(u64::MAX);
                let ok = expect.is_none_or(|e| v & m == e & m);
                self.check(n, ok, format!("mmio_read {v:#x}"));
            }
            Op::Dma { req, expect } => {
                self.dev.finish_pending();
                let req = *req;
                let r = self.dev.translate(&req);
                let ok = match (expect, &r) {
                    (None, _) => true,
                    (Some(DmaExpect::Addr(a)), Ok(m)) => m.output == *a,
                    (Some(DmaExpect::Stalled), Err(f)) => f.kind == FaultKind::Stalled,
                    (Some(DmaExpect::Fault(name)), Err(f)) => {
                        f.kind != FaultKind::Stalled && (name.is_empty() || f.event.name() == name)
                    }
                    _ => false,
                };
                let what = match r {
                    Ok(m) => format!("dma {:#x}", m.output),
                    Err(f) => format!("dma fault {} stall {:?}", f.event, f.stall_tag),
                };
                self.check(n, ok, what);
            }
            Op::StallResult {
                stream,
                stag,
                expect,
            } => {
                let s = self.dev.stall_status(StreamId(*stream), *stag);
                let ok = match (expect, &s) {
                    (None, _) => true,
                    (Some(DmaExpect::Stalled), StallStatus::Pending) => true,
                    (Some(DmaExpect::Addr(a)), StallStatus::Resolved { result: Ok(m), .. }) => {
                        m.output == *a
                    }
                    (
                        Some(DmaExpect::Fault(name)),
                        StallStatus::Resolved { result: Err(f), .. },
                    ) => name.is_empty() || f.event.name() == name,
                    _ => false,
                };
                self.check(n, ok, format!("stall_result {s:?}"));
            }
            Op::PageRequest {
                stream,
                req,
                expect,
            } => {
                let got = match self.dev.page_request(StreamId(*stream), req) {
                    Ok(PageRequestOutcome::Queued) => "queued".to_owned(),
                    Ok(PageRequestOutcome::Discarded { response: None }) => "dropped".to_owned(),
                    Ok(PageRequestOutcome::Discarded { response: Some(p) }) => {
                        code_name(p.code).to_owned()
                    }
                    Err(e) => format!("error {e}"),
                };
                let ok = expect.as_ref().is_none_or(|e| *e == got);
                self.check(n, ok, format!("page_request {got}"));
            }
            Op::PriResponse {
                stream,
                group,
                expect,
            } => {
                let got = self
                    .dev
                    .pri_response(StreamId(*stream), *group)
                    .map_or("none", |p| code_name(p.code));
                let ok = expect.as_ref().is_none_or(|e| e == got);
                self.check(n, ok, format!("pri_response {got}"));
            }
            Op::AtsRequest { req, expect } => {
                // The endpoint's ATC, registered at its first Translation Request.
                if let std::collections::btree_map::Entry::Vacant(v) = self.atcs.entry(req.stream.0)
                {
                    let atc = Arc::new(RecordingAtc::default());
                    self.dev.register_atc(req.stream, atc.clone());
                    v.insert(atc);
                }
                let r = self.dev.ats_translate(req);
                let ok = expect.as_ref().is_none_or(|e| match (&r, e.get("error")) {
                    (Err(err), Some(status)) => {
                        let got = match err {
                            viommu::smmuv3::ats::AtsError::UnsupportedRequest(_) => "UR",
                            viommu::smmuv3::ats::AtsError::CompleterAbort(_) => "CA",
                        };
                        status == got
                    }
                    (Ok(c), None) => {
                        e.get("addr")
                            .is_none_or(|a| c.translate(req.addr) == Some(num(a)))
                            && e.get("perms").is_none_or(|p| {
                                let mut want: Vec<char> = p.as_str().unwrap().chars().collect();
                                want.sort_unstable_by_key(|c| "rwx".find(*c));
                                want.into_iter().collect::<String>() == perms_name(c.perms)
                            })
                    }
                    _ => false,
                });
                self.check(n, ok, format!("ats_request {r:?}"));
            }
            Op::Translated { req, expect } => {
                let r = self.dev.translated_access(req);
                let ok = match (expect, &r) {
                    (None, _) => true,
                    (Some(DmaExpect::Addr(a)), Ok(m)) => m.output == *a,
                    (Some(DmaExpect::Fault(name)), Err(f)) => {
                        name.is_empty() || f.event.name() == name
                    }
                    _ => false,
                };
                self.check(n, ok, format!("translated {r:?}"));
            }
            Op::ExpectAtcInv { stream, expect } => {
                let got: Vec<AtcInvalidation> = self
                    .atcs
                    .get(stream)
                    .map(|a| std::mem::take(&mut *a.0.lock().unwrap()))
                    .unwrap_or_default();
                let want: Vec<AtcInvalidation> = expect
                    .iter()
                    .map(|e| AtcInvalidation {
                        ssid: opt(e, "ssid").map(|s| u32::try_from(s).unwrap()),
                        global: flag(e, "global"),
                        start: field(e, "start"),
                        last: field(e, "last"),
                    })
                    .collect();
                self.check(n, got == want, format!("expect_atc_inv {got:?}"));
            }
            Op::ExpectIrq { irq, count } => {
                self.dev.finish_pending();
                self.raised.extend(self.irq.take());
                if !self.in_window {
                    self.window = std::mem::take(&mut self.raised);
                }
                let matching = self
                    .window
                    .iter()
                    .filter(|i| match (irq, i) {
                        (IrqMatch::Msi { addr, data }, Irq::Msi { addr: a, data: d }) => {
                            a == addr && d == data
                        }
                        (IrqMatch::Wired { line }, Irq::Line { line: l, level }) => {
                            l == line && *level
                        }
                        _ => false,
                    })
                    .count() as u64;
                let ok = count.map_or(matching > 0, |c| c == matching);
                self.check(n, ok, format!("expect_irq {matching}"));
            }
        }
        self.in_window = expect_irq;
        self.raised.extend(self.irq.take());
    }
}

/// The replay format's name of a PRG response code.
fn code_name(c: PriResponse) -> &'static str {
    match c {
        PriResponse::Success => "success",
        PriResponse::InvalidRequest => "invalid",
        PriResponse::ResponseFailure => "failure",
    }
}

fn guest_memory(s: &Scenario) -> GuestMemoryMmap {
    let ranges: Vec<(GuestAddress, usize)> = s
        .ram
        .iter()
        .map(|&(b, n)| (GuestAddress(b), usize::try_from(n).unwrap()))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).unwrap()
}

/// Run `s`, moving to a restored device before operation `split` (none: straight through).
fn run(s: &Scenario, split: Option<usize>) -> Outcome {
    let ram = guest_memory(s);
    let (dev, irq) = Runner::device(s, &ram);
    let mut r = Runner {
        ram: &ram,
        dev,
        irq,
        raised: Vec::new(),
        window: Vec::new(),
        in_window: false,
        out: Outcome::default(),
        atcs: BTreeMap::new(),
    };
    for (i, l) in s.ops.iter().enumerate() {
        if Some(i) == split {
            let json = r.dev.save().to_json();
            let snap = SmmuV3Snapshot::from_json(&json).unwrap();
            let (dev, irq) = Runner::device(s, &ram);
            dev.restore(&snap).unwrap();
            assert_eq!(dev.state(), r.dev.state(), "state after restore");
            r.raised.extend(r.irq.take());
            // Registered ATCs are not device state: the VMM registers its endpoints again.
            for (sid, atc) in &r.atcs {
                dev.register_atc(StreamId(*sid), atc.clone());
            }
            r.dev = dev;
            r.irq = irq;
        }
        r.step(l);
    }
    r.out
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("smmuv3_") && n.ends_with(".jsonl"))
        })
        .collect();
    v.sort();
    v
}

/// Every SMMUv3 scenario, split at every operation, gives the straight run's results.
#[test]
fn test_replay_split_by_save_restore_matches_straight_run() {
    let files = scenarios();
    assert!(files.len() >= 5, "scenarios found: {files:?}");
    let mut splits = 0;
    let mut iopf = 0;
    for f in &files {
        let Some(s) = load(f) else { continue };
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("smmuv3_stall_")
            || name.starts_with("smmuv3_pri_")
            || name.starts_with("smmuv3_ats")
        {
            iopf += 1;
        }
        let straight = run(&s, None);
        assert!(
            straight.failures.is_empty(),
            "{}: {:?}",
            f.display(),
            straight.failures
        );
        assert!(!straight.results.is_empty());
        for k in 1..s.ops.len() {
            let split = run(&s, Some(k));
            assert_eq!(
                split,
                straight,
                "{}: restored before operation {k} (line {})",
                f.display(),
                s.ops[k].line
            );
            splits += 1;
        }
    }
    assert!(splits > 100);
    assert!(iopf >= 3, "the stall, PRI and ATS scenarios are split too");
}
