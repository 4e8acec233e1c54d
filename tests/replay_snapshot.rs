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

use viommu::common::testing::{Irq, RecordingIrq};
use viommu::common::traits::FaultKind;
use viommu::common::traits::{DmaTranslator, MmioDevice};
use viommu::common::{mem, DmaRequest, StreamId, SubstreamId};
use viommu::smmuv3::ats::{AtcEndpoint, AtcError, AtcInvalidation, AtsRequest};
use viommu::smmuv3::caps::SmmuConfig;
use viommu::smmuv3::cmdq::command::PriResponse;
use viommu::smmuv3::device::SmmuV3;
use viommu::smmuv3::priq::{PageRequest, PageRequestOutcome};
use viommu::smmuv3::snapshot::SmmuV3Snapshot;
use viommu::smmuv3::stall::StallStatus;
use viommu_replay::ats::AtsExpect;
use viommu_replay::parse::{DmaExpect, IrqMatch};
use viommu_replay::smmuv3::parse_config;
use viommu_replay::{parse_script, Line, Op};
use vm_memory::{GuestAddress, GuestMemoryMmap};

type Dev<'a> = SmmuV3<&'a GuestMemoryMmap>;

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

/// A scenario with one SMMUv3: its RAM, configuration and operations after the setup lines.
struct Scenario {
    ram: Vec<(u64, u64)>,
    config: SmmuConfig,
    batch_limit: Option<usize>,
    ops: Vec<Line>,
}

/// Parse a replay file with the replay library; `None` if it is not a single-SMMUv3 scenario.
fn load(path: &Path) -> Option<Scenario> {
    let text = std::fs::read_to_string(path).expect("read scenario");
    let lines = parse_script(text.as_bytes()).expect("scenario parses");
    let mut ram = Vec::new();
    let mut device = None;
    let mut ops = Vec::new();
    for l in lines {
        match l.op {
            Op::Comment(_) => {}
            Op::Ram(r) => ram.push((r.base, r.size)),
            Op::Device(d) => {
                if d.kind != "smmuv3" || device.is_some() {
                    return None;
                }
                device = Some(parse_config(&d.config).expect("SMMUv3 configuration"));
            }
            _ => ops.push(l),
        }
    }
    let (config, opts) = device?;
    Some(Scenario {
        ram,
        config,
        batch_limit: opts.cmdq_batch_limit,
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
        let expect_irq = matches!(l.op, Op::ExpectIrq(_));
        match &l.op {
            Op::Ram(_) | Op::Device(_) | Op::Comment(_) => {}
            Op::WriteMem(w) => {
                mem::write_bytes(self.ram, w.addr, &w.data).unwrap();
            }
            Op::ReadMem(r) => {
                self.dev.finish_pending();
                let mut b = vec![0u8; usize::try_from(r.len).unwrap()];
                mem::read_bytes(self.ram, r.addr, &mut b).unwrap();
                let ok = r.expect.as_ref().is_none_or(|e| *e == b);
                self.check(n, ok, format!("read_mem {b:02x?}"));
            }
            Op::MmioWrite(w) => {
                let ok = mmio_write(&self.dev, w.offset, w.size, w.value);
                self.out.results.push(format!("{n}: mmio_write {ok}"));
            }
            Op::MmioRead(r) => {
                self.dev.finish_pending();
                let v = mmio_read(&self.dev, r.offset, r.size).unwrap_or(0);
                let m = r.mask.unwrap_or(u64::MAX);
                let ok = r.expect.is_none_or(|e| v & m == e & m);
                self.check(n, ok, format!("mmio_read {v:#x}"));
            }
            Op::Dma(d) => {
                self.dev.finish_pending();
                let r = self.dev.translate(&d.request());
                let ok = match (&d.expect, &r) {
                    (None, _) => true,
                    (Some(DmaExpect::Addr(a)), Ok(m)) => m.output == *a,
                    (Some(DmaExpect::Stalled), Err(f)) => f.kind == FaultKind::Stalled,
                    (Some(DmaExpect::AnyFault), Err(f)) => f.kind != FaultKind::Stalled,
                    (Some(DmaExpect::Fault(name)), Err(f)) => {
                        f.kind != FaultKind::Stalled && f.event.name() == name
                    }
                    _ => false,
                };
                let what = match r {
                    Ok(m) => format!("dma {:#x}", m.output),
                    Err(f) => format!("dma fault {} stall {:?}", f.event, f.stall_tag),
                };
                self.check(n, ok, what);
            }
            Op::StallResult(st) => {
                let s = self.dev.stall_status(StreamId(st.stream), st.stag);
                let ok = match (&st.expect, &s) {
                    (None, _) => true,
                    (Some(DmaExpect::Stalled), StallStatus::Pending) => true,
                    (Some(DmaExpect::Addr(a)), StallStatus::Resolved { result: Ok(m), .. }) => {
                        m.output == *a
                    }
                    (Some(DmaExpect::AnyFault), StallStatus::Resolved { result: Err(_), .. }) => {
                        true
                    }
                    (
                        Some(DmaExpect::Fault(name)),
                        StallStatus::Resolved { result: Err(f), .. },
                    ) => f.event.name() == name,
                    _ => false,
                };
                self.check(n, ok, format!("stall_result {s:?}"));
            }
            Op::PageRequest(p) => {
                let spec = p.spec();
                let req = PageRequest {
                    substream: spec.substream.map(SubstreamId),
                    addr: spec.addr,
                    read: spec.read,
                    write: spec.write,
                    exec: spec.exec,
                    privileged: spec.privileged,
                    last: spec.last,
                    group: spec.group,
                };
                let got = match self.dev.page_request(StreamId(p.stream), &req) {
                    Ok(PageRequestOutcome::Queued) => "queued".to_owned(),
                    Ok(PageRequestOutcome::Discarded { response: None }) => "dropped".to_owned(),
                    Ok(PageRequestOutcome::Discarded { response: Some(p) }) => {
                        code_name(p.code).to_owned()
                    }
                    Err(e) => format!("error {e}"),
                };
                let ok = p.expect.as_ref().is_none_or(|e| *e == got);
                self.check(n, ok, format!("page_request {got}"));
            }
            Op::PriResponse(p) => {
                let got = self
                    .dev
                    .pri_response(StreamId(p.stream), p.group)
                    .map_or("none", |p| code_name(p.code));
                let ok = p.expect.as_ref().is_none_or(|e| e == got);
                self.check(n, ok, format!("pri_response {got}"));
            }
            Op::AtsRequest(a) => {
                let mut req = AtsRequest::new(a.stream, a.addr);
                req.no_write = a.read_only;
                req.substream = a.substream.map(SubstreamId);
                let req = &req;
                // The endpoint's ATC, registered at its first Translation Request.
                if let std::collections::btree_map::Entry::Vacant(v) = self.atcs.entry(req.stream.0)
                {
                    let atc = Arc::new(RecordingAtc::default());
                    self.dev.register_atc(req.stream, atc.clone());
                    v.insert(atc);
                }
                let r = self.dev.ats_translate(req);
                let ok = a.expect.as_ref().is_none_or(|e| match (&r, e) {
                    (Err(err), AtsExpect::Error(status)) => {
                        let got = match err {
                            viommu::smmuv3::ats::AtsError::UnsupportedRequest(_) => "UR",
                            viommu::smmuv3::ats::AtsError::CompleterAbort(_) => "CA",
                        };
                        status == got
                    }
                    (Ok(c), AtsExpect::Granted { addr, perms }) => {
                        addr.is_none_or(|a| c.translate(req.addr) == Some(a))
                            && perms.as_ref().is_none_or(|p| *p == perms_name(c.perms))
                    }
                    _ => false,
                });
                self.check(n, ok, format!("ats_request {r:?}"));
            }
            Op::Translated(d) => {
                // Translated transactions are unprivileged data without a PASID.
                let req = DmaRequest::new(d.stream, d.addr, d.size, d.access);
                let r = self.dev.translated_access(&req);
                let ok = match (&d.expect, &r) {
                    (None, _) => true,
                    (Some(DmaExpect::Addr(a)), Ok(m)) => m.output == *a,
                    (Some(DmaExpect::AnyFault), Err(_)) => true,
                    (Some(DmaExpect::Fault(name)), Err(f)) => f.event.name() == name,
                    _ => false,
                };
                self.check(n, ok, format!("translated {r:?}"));
            }
            Op::ExpectAtcInv(x) => {
                let got: Vec<AtcInvalidation> = self
                    .atcs
                    .get(&x.stream)
                    .map(|a| std::mem::take(&mut *a.0.lock().unwrap()))
                    .unwrap_or_default();
                let want: Vec<AtcInvalidation> = x
                    .expect
                    .iter()
                    .map(|e| AtcInvalidation {
                        ssid: e.ssid,
                        global: e.global,
                        start: e.start,
                        last: e.last,
                    })
                    .collect();
                self.check(n, got == want, format!("expect_atc_inv {got:?}"));
            }
            Op::ExpectIrq(x) => {
                let (irq, count) = (&x.irq, &x.count);
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
            assert_eq!(dev.save(), r.dev.save(), "state after restore");
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
