//! The device's decision trace: every register write, command consumed and what it did, event
//! written, interrupt sent, CONS and GERROR change.
//!
//! A VMM, the replay tool (`viommu replay --trace`) and the insta snapshot tests install a
//! [`Tracer`] with [`SmmuV3::set_tracer`](crate::device::SmmuV3::set_tracer). Each
//! [`TraceRecord`] renders (its `Display`) as one line, or for a command a line plus one
//! indented line per effect; the snapshot files under `tests/snapshots/` are exactly these lines
//! joined with `\n`. Examples:
//!
//! ```text
//! MMIO CR0 <- 0x0000000c
//! CMD  #0x00002 CFGI_STE SID=0x10 Leaf=1
//!      -> config: SID=0x10: dropped cached STE and its CDs
//! CONS cmdq 0x00000002 -> 0x00000004
//! EVT  #0x00000 F_TRANSLATION SID=0x10 InputAddr=0x40123000 RnW=1 InD=0 PnU=0 S2=0 CLASS=IN
//! IRQ  eventq msi addr=0x8000040 data=0x21
//! GERR 0x00000000 -> 0x00000001 [CMDQ_ERR]
//! ```
//!
//! Records are built only while a tracer is installed. A command's record and its [`Effect`]s
//! are typed values, rendered to text only by the `Display` impls here.
//!
//! The tracer is called with device locks held: it must be quick and must not call back into
//! the device.

use std::fmt;
use std::sync::Arc;

use viommu_common::fault::FaultId;
use viommu_common::iotlb::{InvRange, Invalidation, Regime};

use crate::ats::{AtcError, AtcInvalidation};
use crate::cmdq::command::{Command, PriResponse};
use crate::regs::{IrqSource, Queue};
use crate::spec::regs::CmdqErr;

/// A trace hook. Called synchronously for every [`TraceRecord`].
pub type Tracer = Arc<dyn Fn(&TraceRecord) + Send + Sync>;

/// What one command did, as typed values; [`Effect`]'s `Display` is the trace text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Configuration-cache entries dropped (CFGI_*).
    Config(ConfigInvalidation),
    /// IOTLB entries invalidated.
    Iotlb {
        /// The invalidation scope.
        scope: Invalidation,
        /// Entries removed, when the IOTLB reports it.
        removed: Option<usize>,
    },
    /// CMD_SYNC completion.
    Sync(SyncOutcome),
    /// Nothing to do (PREFETCH_*, commands whose targets do not exist).
    Nothing(&'static str),
    /// Decoded and validated; the effect belongs to a later feature (stall, PRI, ATS).
    Deferred(&'static str),
    /// A stalled transaction resumed or terminated (CMD_RESUME, CMD_STALL_TERM).
    Stall(StallOutcome),
    /// A PRG response delivered to an endpoint (CMD_PRI_RESP).
    Pri {
        /// The response code.
        resp: PriResponse,
        /// The page request group index answered.
        prg_index: u16,
    },
    /// An endpoint ATC invalidation (CMD_ATC_INV) and its outcome.
    Atc {
        /// The StreamID whose ATC was addressed.
        sid: u32,
        /// What was invalidated.
        inv: AtcInvalidation,
        /// How it went.
        outcome: AtcOutcome,
    },
}

/// What a CFGI_* command dropped from the configuration cache (IHI 0070 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigInvalidation {
    /// CFGI_STE: one StreamID's STE and the CDs cached through it (Leaf = 0: also its L1
    /// stream descriptor, which is never cached).
    Ste {
        /// StreamID.
        sid: u32,
        /// The command's Leaf bit.
        leaf: bool,
        /// Whether the STE was cached.
        cached: bool,
    },
    /// CFGI_STE_RANGE: every StreamID in `first..=last`, cached or not.
    SteRange {
        /// First StreamID.
        first: u32,
        /// Last StreamID (inclusive).
        last: u32,
    },
    /// CFGI_ALL: everything, counted before the invalidation.
    All {
        /// STEs dropped.
        stes: usize,
        /// CDs dropped.
        cds: usize,
    },
    /// CFGI_CD: with Leaf = 1 one CD; with Leaf = 0 (its L1 CD descriptor may have changed)
    /// every CD of the StreamID.
    Cd {
        /// StreamID.
        sid: u32,
        /// SubstreamID.
        ssid: u32,
        /// The command's Leaf bit.
        leaf: bool,
        /// With Leaf = 1, whether that CD was cached (false with Leaf = 0).
        cached: bool,
    },
    /// CFGI_CD_ALL: every CD of a StreamID.
    CdAll {
        /// StreamID.
        sid: u32,
    },
}

/// How a CMD_SYNC completed (its CS field, IHI 0070 §4.7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncOutcome {
    /// SIG_NONE: CONS passes.
    None,
    /// SIG_SEV: CONS passes (no wake-up event can reach a vCPU in WFE here).
    Sev,
    /// SIG_IRQ: the completion interrupt, as delivered.
    Irq(Delivery),
}

/// What CMD_RESUME or CMD_STALL_TERM did to stalled transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StallOutcome {
    /// CMD_RESUME with Terminate or Abort completed the transaction `stag`.
    Terminated {
        /// The stall tag.
        stag: u16,
        /// True if it completed as RAZ/WI, false if it aborted.
        raz_wi: bool,
    },
    /// CMD_RESUME with Retry: the retried translation stalled again under a new tag.
    StalledAgain {
        /// The stall tag resumed.
        stag: u16,
        /// The tag it stalled again as.
        new: u16,
    },
    /// CMD_RESUME with Retry: the retried translation completed.
    Retried {
        /// The stall tag resumed.
        stag: u16,
        /// The output address, or the fault it took.
        result: Result<u64, FaultId>,
    },
    /// CMD_STALL_TERM terminated this many stalled transactions of the stream.
    TerminatedAll {
        /// How many.
        count: usize,
    },
}

/// How an endpoint answered a CMD_ATC_INV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AtcOutcome {
    /// No ATC is registered for the StreamID.
    NoAtc,
    /// The endpoint completed the invalidation.
    Completed,
    /// The endpoint failed it; the next CMD_SYNC fails with CERROR_ATC_INV_SYNC.
    Failed(AtcError),
}

/// The effects of one command, collected only while a tracer is installed (so an untraced
/// command allocates nothing and counts nothing).
#[derive(Debug)]
pub(crate) struct Effects(Option<Vec<Effect>>);

impl Effects {
    /// Collect effects if `traced`, else discard them unbuilt.
    pub(crate) fn new(traced: bool) -> Self {
        Self(traced.then(Vec::new))
    }

    /// True if effects are collected: only then is it worth computing what they report.
    #[inline]
    pub(crate) fn collecting(&self) -> bool {
        self.0.is_some()
    }

    /// Record the effect built by `f`, if collecting.
    #[inline]
    pub(crate) fn push(&mut self, f: impl FnOnce() -> Effect) {
        if let Some(v) = &mut self.0 {
            v.push(f());
        }
    }

    /// The collected effects (`None` when not collecting).
    pub(crate) fn into_vec(self) -> Option<Vec<Effect>> {
        self.0
    }
}

/// `stage 1, NH VMID=1`: an invalidation scope as the trace spells it.
struct ScopeText<'a>(&'a Invalidation);

struct RegimeText<'a>(&'a Regime);

struct RangeText<'a>(&'a InvRange);

impl fmt::Display for RegimeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Regime::Nh { vmid } => write!(f, "NH VMID={vmid}"),
            Regime::El2 => f.write_str("EL2"),
        }
    }
}

impl fmt::Display for RangeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "[{:#x}, +{:#x})", r.addr, r.size)?;
        if r.leaf {
            f.write_str(" leaf")?;
        }
        if let Some(t) = r.ttl {
            write!(f, " TTL={t}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ScopeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Invalidation::All => f.write_str("all"),
            Invalidation::Stage1All(r) => write!(f, "stage 1, {}", RegimeText(r)),
            Invalidation::Vmid(v) => write!(f, "stage 1+2, VMID={v}"),
            Invalidation::Asid(r, a) => write!(f, "{} ASID={a}, non-global", RegimeText(r)),
            Invalidation::Va {
                regime,
                asid: Some(a),
                range,
            } => write!(
                f,
                "{} ASID={a} + global, {}",
                RegimeText(regime),
                RangeText(range)
            ),
            Invalidation::Va {
                regime,
                asid: None,
                range,
            } => write!(f, "{} all ASIDs, {}", RegimeText(regime), RangeText(range)),
            Invalidation::Ipa { vmid, range } => {
                write!(f, "stage 2 VMID={vmid}, IPA {}", RangeText(range))
            }
            Invalidation::Stream(s) => write!(f, "stream SID={s}"),
            Invalidation::Tag(t) => write!(f, "tag {:#x}", t.raw()),
        }
    }
}

impl fmt::Display for ConfigInvalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigInvalidation::Ste { sid, leaf, cached } => write!(
                f,
                "SID={sid:#x}{}: {}",
                if leaf { "" } else { " (+L1 descriptor)" },
                if cached {
                    "dropped cached STE and its CDs"
                } else {
                    "STE not cached"
                }
            ),
            ConfigInvalidation::SteRange { first, last } => write!(
                f,
                "SIDs [{first:#x}, {last:#x}]: STEs and CDs in range dropped"
            ),
            ConfigInvalidation::All { stes, cds } => {
                write!(f, "all: dropped {stes} STEs, {cds} CDs")
            }
            ConfigInvalidation::Cd {
                sid,
                ssid,
                leaf,
                cached,
            } => write!(
                f,
                "SID={sid:#x} SSID={ssid:#x}{}: {}",
                if leaf { "" } else { " (+L1 CD descriptor)" },
                match (leaf, cached) {
                    (false, _) => "dropped every CD of the stream",
                    (true, true) => "dropped cached CD",
                    (true, false) => "CD not cached",
                }
            ),
            ConfigInvalidation::CdAll { sid } => {
                write!(f, "SID={sid:#x} all CDs: dropped every CD of the stream")
            }
        }
    }
}

impl fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncOutcome::None => f.write_str("SIG_NONE: CONS passes"),
            SyncOutcome::Sev => f.write_str("SIG_SEV: CONS passes"),
            SyncOutcome::Irq(Delivery::Msi { addr, data }) => {
                write!(f, "SIG_IRQ: MSI write {data:#x} -> {addr:#x}")
            }
            SyncOutcome::Irq(Delivery::Wired { line }) => write!(f, "SIG_IRQ: wired line {line}"),
            SyncOutcome::Irq(Delivery::Suppressed) => f.write_str("SIG_IRQ: suppressed"),
        }
    }
}

impl fmt::Display for StallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StallOutcome::Terminated { stag, raz_wi } => write!(
                f,
                "STAG={stag:#x} {}",
                if raz_wi {
                    "terminated (RAZ/WI)"
                } else {
                    "terminated (abort)"
                }
            ),
            StallOutcome::StalledAgain { stag, new } => {
                write!(f, "STAG={stag:#x} retried, stalled again as STAG={new:#x}")
            }
            StallOutcome::Retried {
                stag,
                result: Ok(out),
            } => write!(f, "STAG={stag:#x} retried: translated to {out:#x}"),
            StallOutcome::Retried {
                stag,
                result: Err(id),
            } => write!(f, "STAG={stag:#x} retried: {id}"),
            StallOutcome::TerminatedAll { count } => {
                write!(f, "terminated {count} stalled transactions")
            }
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Config(c) => write!(f, "config: {c}"),
            Effect::Iotlb { scope, removed } => match removed {
                Some(n) => write!(f, "iotlb: invalidated {n} entries ({})", ScopeText(scope)),
                None => write!(f, "iotlb: invalidate {}", ScopeText(scope)),
            },
            Effect::Sync(s) => write!(f, "sync: {s}"),
            Effect::Nothing(why) => write!(f, "no effect: {why}"),
            Effect::Deferred(why) => write!(f, "accepted: {why}"),
            Effect::Stall(s) => write!(f, "stall: {s}"),
            Effect::Pri { resp, prg_index } => {
                write!(f, "pri: {resp:?} delivered to PRGI={prg_index:#x}")
            }
            Effect::Atc { sid, inv, outcome } => {
                write!(f, "atc: SID={sid:#x} {inv}: ")?;
                match outcome {
                    AtcOutcome::NoAtc => f.write_str("no ATC registered"),
                    AtcOutcome::Completed => f.write_str("completed"),
                    AtcOutcome::Failed(e) => write!(f, "{e}; the next CMD_SYNC fails"),
                }
            }
        }
    }
}

/// How an interrupt was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Message-signalled: a 32-bit write of `data` to `addr`.
    Msi {
        /// Doorbell.
        addr: u64,
        /// Payload.
        data: u32,
    },
    /// Wired line pulsed.
    Wired {
        /// Line number (see [`crate::device::lines`]).
        line: u32,
    },
    /// The source is disabled in IRQ_CTRL (or has neither MSI nor line): nothing sent.
    Suppressed,
}

/// An interrupt or completion source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// One of the sources with `*_IRQ_CFG` registers.
    Source(IrqSource),
    /// CMD_SYNC completion interrupt (CS = SIG_IRQ).
    CmdSync,
}

/// One traced decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceRecord {
    /// A register write as applied (after masking); `note` says why it was ignored, if it was.
    Mmio {
        /// Register name as in the manual.
        reg: &'static str,
        /// The value written.
        value: u64,
        /// `Some(reason)` if the write was ignored.
        ignored: Option<&'static str>,
    },
    /// A command consumed from the command queue.
    Command {
        /// Queue position (index + wrap) it was read from.
        pos: u32,
        /// The decoded command.
        command: Command,
        /// What it did.
        effects: Vec<Effect>,
    },
    /// A command that stopped the queue with an error.
    CommandError {
        /// Queue position of the failing command (CONS stays here).
        pos: u32,
        /// CMDQ_CONS.ERR.
        err: CmdqErr,
        /// Why.
        reason: String,
    },
    /// A queue's consumer index moved (once per batch).
    Cons {
        /// Which queue.
        queue: Queue,
        /// Before.
        old: u32,
        /// After.
        new: u32,
    },
    /// An event record written to the event queue.
    Event {
        /// Queue position written.
        pos: u32,
        /// The event, decoded.
        event: String,
    },
    /// An event dropped: the queue is disabled, full (overflow) or could not be written.
    EventDropped {
        /// The event, decoded.
        event: String,
        /// Why it was dropped.
        reason: String,
    },
    /// GERROR changed (an error became active).
    Gerror {
        /// GERROR before.
        old: u32,
        /// GERROR after.
        new: u32,
    },
    /// GERRORN written: errors acknowledged.
    GerrorAck {
        /// GERRORN after the write.
        gerrorn: u32,
    },
    /// An interrupt raised.
    Irq {
        /// Source.
        signal: Signal,
        /// How it went out.
        delivery: Delivery,
    },
}

fn gerror_names(bits: u32) -> String {
    const NAMES: [(u32, &str); 9] = [
        (0, "CMDQ_ERR"),
        (2, "EVENTQ_ABT_ERR"),
        (3, "PRIQ_ABT_ERR"),
        (4, "MSI_CMDQ_ABT_ERR"),
        (5, "MSI_EVENTQ_ABT_ERR"),
        (6, "MSI_PRIQ_ABT_ERR"),
        (7, "MSI_GERROR_ABT_ERR"),
        (8, "SFM_ERR"),
        (1, "RESERVED1"),
    ];
    let v: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| bits & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join("|")
}

fn queue_name(q: Queue) -> &'static str {
    match q {
        Queue::Cmdq => "cmdq",
        Queue::Eventq => "eventq",
        Queue::Priq => "priq",
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Source(IrqSource::Eventq) => "eventq",
            Signal::Source(IrqSource::Priq) => "priq",
            Signal::Source(IrqSource::Gerror) => "gerror",
            Signal::CmdSync => "cmd_sync",
        })
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delivery::Msi { addr, data } => write!(f, "msi addr={addr:#x} data={data:#x}"),
            Delivery::Wired { line } => write!(f, "wired line={line}"),
            Delivery::Suppressed => f.write_str("suppressed (IRQ_CTRL)"),
        }
    }
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceRecord::Mmio {
                reg,
                value,
                ignored,
            } => {
                write!(f, "MMIO {reg} <- {value:#010x}")?;
                if let Some(why) = ignored {
                    write!(f, " (ignored: {why})")?;
                }
                Ok(())
            }
            TraceRecord::Command {
                pos,
                command,
                effects,
            } => {
                write!(f, "CMD  #{pos:#07x} {command}")?;
                for e in effects {
                    write!(f, "\n     -> {e}")?;
                }
                Ok(())
            }
            TraceRecord::CommandError { pos, err, reason } => {
                write!(f, "CERR #{pos:#07x} {err}: {reason}")
            }
            TraceRecord::Cons { queue, old, new } => {
                write!(f, "CONS {} {old:#010x} -> {new:#010x}", queue_name(*queue))
            }
            TraceRecord::Event { pos, event } => write!(f, "EVT  #{pos:#07x} {event}"),
            TraceRecord::EventDropped { event, reason } => {
                write!(f, "EVT  dropped ({reason}): {event}")
            }
            TraceRecord::Gerror { old, new } => write!(
                f,
                "GERR {old:#010x} -> {new:#010x} [{}]",
                gerror_names(old ^ new)
            ),
            TraceRecord::GerrorAck { gerrorn } => write!(f, "GERRN <- {gerrorn:#010x}"),
            TraceRecord::Irq { signal, delivery } => write!(f, "IRQ  {signal} {delivery}"),
        }
    }
}

/// Render records as the snapshot text: one `Display` per record, joined with newlines.
pub fn render(records: &[TraceRecord]) -> String {
    let mut s = String::new();
    for r in records {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&r.to_string());
    }
    s
}

/// A tracer that collects records in memory (for tests and the replay tool).
#[derive(Debug, Default)]
pub struct TraceLog {
    records: std::sync::Mutex<Vec<TraceRecord>>,
}

impl TraceLog {
    /// A new, empty log.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A [`Tracer`] that appends to this log.
    pub fn tracer(self: &Arc<Self>) -> Tracer {
        let me = Arc::clone(self);
        Arc::new(move |r: &TraceRecord| {
            me.records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(r.clone());
        })
    }

    /// Take the records collected so far.
    pub fn take(&self) -> Vec<TraceRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Take the records collected so far, rendered as snapshot text.
    pub fn take_text(&self) -> String {
        render(&self.take())
    }
}

#[cfg(test)]
mod tests {
    use viommu_common::id::StreamId;

    use super::*;

    /// Records render as the documented one-line forms.
    #[test]
    fn test_trace_record_rendering() {
        let c = TraceRecord::Command {
            pos: 2,
            command: Command::CfgiSte {
                sid: StreamId(0x10),
                leaf: true,
            },
            effects: vec![
                Effect::Config(ConfigInvalidation::Ste {
                    sid: 0x10,
                    leaf: true,
                    cached: true,
                }),
                Effect::Iotlb {
                    scope: Invalidation::Stream(StreamId(0x10)),
                    removed: None,
                },
            ],
        };
        assert_eq!(
            c.to_string(),
            "CMD  #0x00002 CFGI_STE SID=0x10 Leaf=1\n     \
             -> config: SID=0x10: dropped cached STE and its CDs\n     \
             -> iotlb: invalidate stream SID=0x10"
        );
        let g = TraceRecord::Gerror { old: 0, new: 1 };
        assert_eq!(g.to_string(), "GERR 0x00000000 -> 0x00000001 [CMDQ_ERR]");
        let i = TraceRecord::Irq {
            signal: Signal::Source(IrqSource::Eventq),
            delivery: Delivery::Msi {
                addr: 0x800_0040,
                data: 0x21,
            },
        };
        assert_eq!(i.to_string(), "IRQ  eventq msi addr=0x8000040 data=0x21");
        assert_eq!(
            TraceRecord::Cons {
                queue: Queue::Cmdq,
                old: 2,
                new: 4
            }
            .to_string(),
            "CONS cmdq 0x00000002 -> 0x00000004"
        );
    }

    /// Every effect renders as the line the trace has always used for it.
    #[test]
    fn test_effect_rendering() {
        use viommu_common::fault::Smmuv3FaultId;
        use viommu_common::id::{Asid, Vmid};

        let nh = Regime::Nh { vmid: Vmid(1) };
        let range = InvRange::new(0x1000, 0x2000).with_leaf(true).with_ttl(3);
        let inv = AtcInvalidation {
            ssid: Some(1),
            global: true,
            start: 0x1000,
            last: 0x1fff,
        };
        let cases: Vec<(Effect, &str)> =
            vec![
            (
                Effect::Config(ConfigInvalidation::Ste {
                    sid: 0x100,
                    leaf: true,
                    cached: false,
                }),
                "config: SID=0x100: STE not cached",
            ),
            (
                Effect::Config(ConfigInvalidation::Ste {
                    sid: 0x100,
                    leaf: false,
                    cached: true,
                }),
                "config: SID=0x100 (+L1 descriptor): dropped cached STE and its CDs",
            ),
            (
                Effect::Config(ConfigInvalidation::SteRange {
                    first: 0x10,
                    last: 0x1f,
                }),
                "config: SIDs [0x10, 0x1f]: STEs and CDs in range dropped",
            ),
            (
                Effect::Config(ConfigInvalidation::All { stes: 2, cds: 3 }),
                "config: all: dropped 2 STEs, 3 CDs",
            ),
            (
                Effect::Config(ConfigInvalidation::Cd {
                    sid: 0x10,
                    ssid: 0x2,
                    leaf: true,
                    cached: true,
                }),
                "config: SID=0x10 SSID=0x2: dropped cached CD",
            ),
            (
                Effect::Config(ConfigInvalidation::Cd {
                    sid: 0x10,
                    ssid: 0x2,
                    leaf: true,
                    cached: false,
                }),
                "config: SID=0x10 SSID=0x2: CD not cached",
            ),
            (
                Effect::Config(ConfigInvalidation::Cd {
                    sid: 0x10,
                    ssid: 0x2,
                    leaf: false,
                    cached: false,
                }),
                "config: SID=0x10 SSID=0x2 (+L1 CD descriptor): dropped every CD of the stream",
            ),
            (
                Effect::Config(ConfigInvalidation::CdAll { sid: 0x10 }),
                "config: SID=0x10 all CDs: dropped every CD of the stream",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::Stage1All(nh),
                    removed: None,
                },
                "iotlb: invalidate stage 1, NH VMID=0x1",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::Asid(Regime::El2, Asid(7)),
                    removed: Some(4),
                },
                "iotlb: invalidated 4 entries (EL2 ASID=0x7, non-global)",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::Va {
                        regime: nh,
                        asid: Some(Asid(7)),
                        range,
                    },
                    removed: None,
                },
                "iotlb: invalidate NH VMID=0x1 ASID=0x7 + global, [0x1000, +0x2000) leaf TTL=3",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::Va {
                        regime: Regime::El2,
                        asid: None,
                        range: InvRange::new(0x1000, 0x1000),
                    },
                    removed: None,
                },
                "iotlb: invalidate EL2 all ASIDs, [0x1000, +0x1000)",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::Vmid(Vmid(2)),
                    removed: None,
                },
                "iotlb: invalidate stage 1+2, VMID=0x2",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::Ipa {
                        vmid: Vmid(2),
                        range: InvRange::new(0x8000, 0x1000),
                    },
                    removed: None,
                },
                "iotlb: invalidate stage 2 VMID=0x2, IPA [0x8000, +0x1000)",
            ),
            (
                Effect::Iotlb {
                    scope: Invalidation::All,
                    removed: None,
                },
                "iotlb: invalidate all",
            ),
            (Effect::Sync(SyncOutcome::None), "sync: SIG_NONE: CONS passes"),
            (Effect::Sync(SyncOutcome::Sev), "sync: SIG_SEV: CONS passes"),
            (
                Effect::Sync(SyncOutcome::Irq(Delivery::Msi {
                    addr: 0x4000_00b0,
                    data: 0,
                })),
                "sync: SIG_IRQ: MSI write 0x0 -> 0x400000b0",
            ),
            (
                Effect::Sync(SyncOutcome::Irq(Delivery::Wired { line: 3 })),
                "sync: SIG_IRQ: wired line 3",
            ),
            (
                Effect::Sync(SyncOutcome::Irq(Delivery::Suppressed)),
                "sync: SIG_IRQ: suppressed",
            ),
            (
                Effect::Nothing("prefetch is a hint"),
                "no effect: prefetch is a hint",
            ),
            (
                Effect::Stall(StallOutcome::Terminated {
                    stag: 5,
                    raz_wi: true,
                }),
                "stall: STAG=0x5 terminated (RAZ/WI)",
            ),
            (
                Effect::Stall(StallOutcome::Terminated {
                    stag: 5,
                    raz_wi: false,
                }),
                "stall: STAG=0x5 terminated (abort)",
            ),
            (
                Effect::Stall(StallOutcome::StalledAgain { stag: 5, new: 6 }),
                "stall: STAG=0x5 retried, stalled again as STAG=0x6",
            ),
            (
                Effect::Stall(StallOutcome::Retried {
                    stag: 5,
                    result: Ok(0x4000_1000),
                }),
                "stall: STAG=0x5 retried: translated to 0x40001000",
            ),
            (
                Effect::Stall(StallOutcome::Retried {
                    stag: 5,
                    result: Err(Smmuv3FaultId::Translation.into()),
                }),
                "stall: STAG=0x5 retried: F_TRANSLATION",
            ),
            (
                Effect::Stall(StallOutcome::TerminatedAll { count: 2 }),
                "stall: terminated 2 stalled transactions",
            ),
            (
                Effect::Pri {
                    resp: PriResponse::Success,
                    prg_index: 3,
                },
                "pri: Success delivered to PRGI=0x3",
            ),
            (
                Effect::Atc {
                    sid: 0x10,
                    inv,
                    outcome: AtcOutcome::NoAtc,
                },
                "atc: SID=0x10 SSID=0x1 +global, [0x1000, 0x1fff]: no ATC registered",
            ),
            (
                Effect::Atc {
                    sid: 0x10,
                    inv,
                    outcome: AtcOutcome::Completed,
                },
                "atc: SID=0x10 SSID=0x1 +global, [0x1000, 0x1fff]: completed",
            ),
            (
                Effect::Atc {
                    sid: 0x10,
                    inv,
                    outcome: AtcOutcome::Failed(AtcError::Timeout),
                },
                "atc: SID=0x10 SSID=0x1 +global, [0x1000, 0x1fff]: ATC invalidation timed out; \
                 the next CMD_SYNC fails",
            ),
        ];
        for (effect, text) in cases {
            assert_eq!(effect.to_string(), text);
        }
    }
}
