//! Executing a parsed replay.
//!
//! [`Session::builder`] sets up guest RAM (built from the `ram` lines, or supplied by the
//! caller) and the devices (built in, or made by the caller's [`SmmuV3Factory`]) and does every
//! cross-line check before the first operation runs, so a malformed file is rejected as a whole
//! and nothing is half-applied. [`Session::run_with`] then executes the operations in order,
//! reporting typed results, interrupts and trace records to an [`Observer`] that may also take
//! over an operation ([`Action::Replace`]).

use std::collections::VecDeque;
use std::sync::Arc;

use viommu_common::traits::InterruptSink;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::device::{self, IrqEvent, ReplayDevice, ReplayIrq, ReplayMem};
use crate::limits::{Limits, MAX_PENDING_IRQS};
use crate::parse::{IrqMatch, Line, MmioRead, MmioWrite, Op, Ram, ScriptError};
use crate::result::{check, Actual, OpResult, Summary};

/// Largest total guest RAM a replay file may declare by default (the regions are mapped lazily,
/// so this bounds address space, not resident memory); [`SessionBuilder::limits`] changes it.
pub const MAX_TOTAL_RAM: u64 = crate::limits::MAX_TOTAL_RAM;

/// The SMMUv3 type the replay drives: DMA into the session's guest RAM.
pub type ReplaySmmuV3 = SmmuV3<Arc<ReplayMem>>;

/// What a `device` line of kind `smmuv3` asks for, as given to a [`SmmuV3Factory`].
pub struct SmmuV3Setup<'a> {
    /// The device's name (`device.name`).
    pub name: &'a str,
    /// The configuration the line asks for: the mirrored `id_regs` with the named fields
    /// applied on top.
    pub config: &'a SmmuConfig,
    /// The session's guest RAM.
    pub mem: &'a Arc<ReplayMem>,
    /// The session's interrupt sink for this device: `expect_irq` sees what is sent here.
    pub irq: Arc<dyn InterruptSink>,
}

/// Creates the SMMUv3 of a `device` line in place of [`SmmuV3::new`] (for example one with a
/// host backend attached). The session then installs its tracer and the line's
/// `cmdq_batch_limit` on it.
pub type SmmuV3Factory = Box<dyn FnMut(SmmuV3Setup<'_>) -> Result<ReplaySmmuV3, String>>;

/// What the engine does with an operation, as an [`Observer`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Execute the operation on the devices.
    Run,
    /// Do not execute it: the observer did (for example a `dma` that real hardware served),
    /// and this is what it produced. The line's expectation is checked against it.
    Replace(Actual),
}

/// Sees every step of a run, and may take over operations.
///
/// Every method has a default that does nothing, so an observer implements only what it needs.
pub trait Observer {
    /// Called before `step` runs, with the session (its RAM and devices).
    fn before(&mut self, _step: &Line, _session: &Session) -> Action {
        Action::Run
    }

    /// The result of `step`, after its interrupts and trace records.
    fn result(&mut self, _step: &Line, _result: &OpResult) {}

    /// An interrupt device `dev` raised during the operation on `line`.
    fn irq(&mut self, _line: usize, _dev: &str, _event: &IrqEvent) {}

    /// A trace record of device `dev` produced during the operation on `line` (only when
    /// [`Observer::wants_trace`]).
    fn trace(&mut self, _line: usize, _dev: &str, _text: &str) {}

    /// Whether to collect the devices' trace records for [`Observer::trace`].
    fn wants_trace(&self) -> bool {
        false
    }
}

/// An observer that only collects the results.
#[derive(Debug, Default)]
pub struct Collect {
    /// Every operation's result, in order.
    pub results: Vec<OpResult>,
}

impl Observer for Collect {
    fn result(&mut self, _step: &Line, result: &OpResult) {
        self.results.push(result.clone());
    }
}

/// One created device and the interrupt bookkeeping `expect_irq` needs.
struct Dev {
    name: String,
    dev: Box<dyn ReplayDevice>,
    irq: Arc<ReplayIrq>,
    /// Interrupts raised since the current check window was taken (the newest
    /// [`MAX_PENDING_IRQS`]).
    pending: VecDeque<IrqEvent>,
    /// The interrupts consecutive `expect_irq` operations for this device look at.
    window: VecDeque<IrqEvent>,
    /// The previous operation was an `expect_irq` for this device (so this one shares its
    /// window).
    in_check_run: bool,
}

/// How a [`Session`] is set up: guest RAM and device factories.
#[derive(Default)]
pub struct SessionBuilder {
    mem: Option<Arc<ReplayMem>>,
    smmuv3: Option<SmmuV3Factory>,
    limits: Limits,
}

impl SessionBuilder {
    /// Run on `mem` instead of RAM built from the file's `ram` lines (for example guest memory
    /// over a memfd the caller shares with a host). Every `ram` line must lie inside it.
    #[must_use]
    pub fn memory(mut self, mem: Arc<ReplayMem>) -> Self {
        self.mem = Some(mem);
        self
    }

    /// Hold the file to `limits` (total RAM, number of devices) instead of the defaults.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Create every `smmuv3` device with `factory`.
    #[must_use]
    pub fn smmuv3_factory(
        mut self,
        factory: impl FnMut(SmmuV3Setup<'_>) -> Result<ReplaySmmuV3, String> + 'static,
    ) -> Self {
        self.smmuv3 = Some(Box::new(factory));
        self
    }

    /// Set up guest RAM and the devices, and check every line against them (device names, RAM
    /// ranges, MMIO offsets).
    ///
    /// # Errors
    /// The first line that cannot be set up or refers to something that does not exist.
    pub fn build(mut self, lines: Vec<Line>) -> Result<Session, ScriptError> {
        let mem = build_ram(&lines, self.mem.take(), self.limits.max_total_ram)?;
        let mut devs: Vec<Dev> = Vec::new();
        let mut steps = Vec::with_capacity(lines.len());
        for l in lines {
            let n = l.line;
            let idx = match &l.op {
                Op::Ram(_) | Op::Comment(_) => None,
                Op::Device(d) => {
                    let name = &d.name;
                    if name.is_empty() {
                        return Err(err(n, "device: field `name` must not be empty"));
                    }
                    if devs.len() >= self.limits.max_devices {
                        return Err(err(
                            n,
                            format!(
                                "device: more than the limit of {} devices",
                                self.limits.max_devices
                            ),
                        ));
                    }
                    if devs.iter().any(|x| &x.name == name) {
                        return Err(err(
                            n,
                            format!("device: a device named {name:?} already exists"),
                        ));
                    }
                    let irq = ReplayIrq::new();
                    let dev = device::create(
                        name,
                        &d.kind,
                        &d.config,
                        &mem,
                        Arc::clone(&irq),
                        self.smmuv3.as_mut(),
                    )
                    .map_err(|r| err(n, format!("device {name:?} ({}): {r}", d.kind)))?;
                    devs.push(Dev {
                        name: name.clone(),
                        dev,
                        irq,
                        pending: VecDeque::new(),
                        window: VecDeque::new(),
                        in_check_run: false,
                    });
                    None
                }
                Op::WriteMem(w) => {
                    check_ram(&mem, n, "write_mem", w.addr, w.data.len() as u64)?;
                    None
                }
                Op::ReadMem(r) => {
                    check_ram(&mem, n, "read_mem", r.addr, r.len)?;
                    None
                }
                Op::MmioWrite(MmioWrite {
                    dev, offset, size, ..
                })
                | Op::MmioRead(MmioRead {
                    dev, offset, size, ..
                }) => {
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
                op => match op.dev() {
                    Some(dev) => Some(find_dev(&devs, n, dev)?),
                    None => None,
                },
            };
            steps.push((l, idx));
        }
        Ok(Session { mem, devs, steps })
    }
}

/// A replay ready to run: guest RAM built, devices created, every line checked.
pub struct Session {
    mem: Arc<ReplayMem>,
    devs: Vec<Dev>,
    /// Each operation with the index of the device it names, if any.
    steps: Vec<(Line, Option<usize>)>,
}

impl Session {
    /// How to set up a session other than with [`Session::prepare`]'s defaults.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// Build guest RAM from the `ram` lines, create the built-in devices, and check every line
    /// against them.
    ///
    /// # Errors
    /// The first line that cannot be set up or refers to something that does not exist.
    pub fn prepare(lines: Vec<Line>) -> Result<Self, ScriptError> {
        SessionBuilder::default().build(lines)
    }

    /// The guest RAM the session runs on.
    pub fn memory(&self) -> &Arc<ReplayMem> {
        &self.mem
    }

    /// The names of the devices, in the order the file created them.
    pub fn device_names(&self) -> impl Iterator<Item = &str> {
        self.devs.iter().map(|d| d.name.as_str())
    }

    /// The SMMUv3 named `name`, if the file created one.
    pub fn smmuv3(&self, name: &str) -> Option<Arc<ReplaySmmuV3>> {
        self.devs
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.dev.smmuv3())
    }

    /// Execute every operation in order, reporting to `obs`.
    ///
    /// A panic inside a device model (a model bug) is reported as a failed check on its line
    /// with the error `device model panicked: ...`, and the run stops there.
    pub fn run_with(mut self, obs: &mut dyn Observer) -> Summary {
        let mut summary = Summary::default();
        let steps = std::mem::take(&mut self.steps);
        for (l, idx) in &steps {
            let expect_dev = match l.op {
                Op::ExpectIrq(_) => *idx,
                _ => None,
            };
            for (i, d) in self.devs.iter_mut().enumerate() {
                if Some(i) != expect_dev {
                    d.in_check_run = false;
                }
            }
            let action = obs.before(l, &self);
            // A panic inside a device model is a bug in the model, not in the file: report it as
            // a failed check on this line and stop (the device's state is unknown afterwards).
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let (actual, error) = match action {
                    Action::Run => self.exec(l, *idx, &mut *obs),
                    Action::Replace(a) => (a, None),
                };
                // Interrupts and trace records of this operation come before its result.
                self.drain(l.line, &mut *obs);
                (actual, error)
            }));
            let (r, stop) = match result {
                Ok((actual, error)) => {
                    let ok = check(&l.op, &actual, error.as_deref());
                    let r = OpResult {
                        line: l.line,
                        op: l.op.name(),
                        actual,
                        ok,
                        error,
                    };
                    (r, false)
                }
                Err(payload) => {
                    let r = OpResult {
                        line: l.line,
                        op: l.op.name(),
                        actual: Actual::None,
                        ok: Some(false),
                        error: Some(format!("device model panicked: {}", panic_text(&*payload))),
                    };
                    (r, true)
                }
            };
            summary.count(&r);
            obs.result(l, &r);
            if stop {
                break;
            }
        }
        summary
    }

    /// Execute one operation: what it produced, and an access or memory error.
    fn exec(
        &mut self,
        l: &Line,
        idx: Option<usize>,
        obs: &mut dyn Observer,
    ) -> (Actual, Option<String>) {
        let dev = idx.and_then(|i| self.devs.get(i));
        let none = (Actual::None, None);
        match &l.op {
            Op::Ram(_) | Op::Device(_) | Op::Comment(_) => none,
            Op::WriteMem(w) => {
                // Checked against RAM when the session was built; a failure here would be a
                // vm-memory bug, and is still reported rather than ignored.
                let e = viommu_common::mem::write_bytes(&*self.mem, w.addr, &w.data).err();
                (Actual::None, e.map(|e| e.to_string()))
            }
            Op::ReadMem(r) => {
                self.devs.iter().for_each(|d| d.dev.settle());
                let mut buf = vec![0u8; usize::try_from(r.len).unwrap_or(0)];
                let res = viommu_common::mem::read_bytes(&*self.mem, r.addr, &mut buf);
                (Actual::Bytes(buf), res.err().map(|e| e.to_string()))
            }
            Op::MmioWrite(w) => {
                let Some(d) = dev else { return none };
                match d.dev.mmio_write(w.offset, w.size, w.value) {
                    Ok(()) => none,
                    Err(e) => (Actual::Register(w.value), Some(e.to_string())),
                }
            }
            Op::MmioRead(r) => {
                let Some(d) = dev else { return none };
                d.dev.settle();
                match d.dev.mmio_read(r.offset, r.size) {
                    Ok(v) => (Actual::Register(v), None),
                    Err(e) => (Actual::Register(0), Some(e.to_string())),
                }
            }
            Op::ExpectIrq(e) => {
                let Some(i) = idx else { return none };
                // Interrupts raised by pending work belong in this window.
                if let Some(d) = self.devs.get(i) {
                    d.dev.settle();
                }
                self.drain(l.line, obs);
                let Some(d) = self.devs.get_mut(i) else {
                    return none;
                };
                if !d.in_check_run {
                    d.window = std::mem::take(&mut d.pending);
                    d.in_check_run = true;
                }
                let seen = d.window.iter().filter(|x| irq_matches(&e.irq, x)).count() as u64;
                (Actual::IrqCount(seen), None)
            }
            op => {
                let Some(d) = dev else { return none };
                d.dev.settle();
                let d = &*d.dev;
                let actual = match op {
                    Op::Dma(o) => Actual::Dma(d.dma_outcome(&o.request())),
                    Op::Translated(o) => Actual::Translated(d.translated(&o.request())),
                    Op::StallResult(o) => Actual::Stall(d.stall_result(o.stream, o.stag)),
                    Op::PageRequest(o) => Actual::Named(d.page_request(o.stream, &o.spec())),
                    Op::PriResponse(o) => Actual::Named(
                        d.pri_response(o.stream, o.group)
                            .map(|r| r.unwrap_or_else(|| "none".into())),
                    ),
                    Op::AtsRequest(o) => Actual::Ats(d.ats_request(o.stream, &o.spec())),
                    Op::ExpectAtcInv(o) => Actual::AtcInv(d.atc_invalidations(o.stream)),
                    _ => Actual::None,
                };
                (actual, None)
            }
        }
    }

    /// Collect the interrupts and trace records every device produced during operation `line`.
    fn drain(&mut self, line: usize, obs: &mut dyn Observer) {
        let traced = obs.wants_trace();
        for d in &mut self.devs {
            // Always taken, so a device's trace buffer never grows across a long run.
            let trace = d.dev.take_trace();
            if traced {
                for t in &trace {
                    obs.trace(line, &d.name, t);
                }
            }
            for e in d.irq.take() {
                obs.irq(line, &d.name, &e);
                if d.pending.len() >= MAX_PENDING_IRQS {
                    d.pending.pop_front();
                }
                d.pending.push_back(e);
            }
        }
    }
}

fn err(line: usize, reason: impl Into<String>) -> ScriptError {
    ScriptError {
        line,
        reason: reason.into(),
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
    if len == 0 || check_range(mem, addr, len) {
        Ok(())
    } else {
        Err(err(
            line,
            format!("{op}: {len} bytes at {addr:#x} are not all inside guest RAM"),
        ))
    }
}

/// Whether `len` bytes at `addr` are all inside `mem`.
fn check_range(mem: &ReplayMem, addr: u64, len: u64) -> bool {
    usize::try_from(len)
        .is_ok_and(|l| addr.checked_add(len).is_some() && mem.check_range(GuestAddress(addr), l))
}

/// Guest RAM from every `ram` line (or `supplied`, which must hold them all); they must all
/// come before the first `device`.
fn build_ram(
    lines: &[Line],
    supplied: Option<Arc<ReplayMem>>,
    max_total: u64,
) -> Result<Arc<ReplayMem>, ScriptError> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
    let mut first_device = None;
    let mut total: u64 = 0;
    for l in lines {
        match l.op {
            Op::Device(_) => {
                first_device.get_or_insert(l.line);
            }
            Op::Ram(Ram { base, size }) => {
                if let Some(d) = first_device {
                    return Err(err(
                        l.line,
                        format!("ram: RAM must be declared before the first device (line {d})"),
                    ));
                }
                total = total.saturating_add(size);
                if total > max_total {
                    return Err(err(
                        l.line,
                        format!("ram: total RAM exceeds the limit of {max_total:#x} bytes"),
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
    if let Some(mem) = supplied {
        for (base, size, line) in &ranges {
            if !check_range(&mem, *base, *size) {
                return Err(err(
                    *line,
                    "ram: region is not inside the supplied guest memory",
                ));
            }
        }
        return Ok(mem);
    }
    ranges.sort_unstable_by_key(|r| r.0);
    let mut regions = Vec::with_capacity(ranges.len());
    for (base, size, _) in &ranges {
        // A region larger than the host's address space cannot be mapped.
        let size = usize::try_from(*size).map_err(|_| err(0, "RAM size does not fit in usize"))?;
        regions.push((GuestAddress(*base), size));
    }
    if regions.is_empty() {
        return Ok(Arc::new(ReplayMem::new()));
    }
    ReplayMem::from_ranges(&regions).map(Arc::new).map_err(|e| {
        let line = ranges.first().map_or(0, |r| r.2);
        err(line, format!("ram: cannot create guest RAM: {e}"))
    })
}
