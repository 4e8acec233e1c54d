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

mod effect;

pub(crate) use effect::Effects;
pub use effect::{AtcOutcome, ConfigInvalidation, Effect, StallOutcome, SyncOutcome};

use crate::cmdq::command::Command;
use crate::regs::{IrqSource, Queue};
use crate::spec::regs::CmdqErr;

/// A trace hook. Called synchronously for every [`TraceRecord`].
pub type Tracer = Arc<dyn Fn(&TraceRecord) + Send + Sync>;

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
    /// An interaction with the host backend of host-backed streams (see [`crate::host`]).
    Host(crate::host::HostRecord),
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
            TraceRecord::Host(h) => write!(f, "{h}"),
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
    use viommu_common::iotlb::Invalidation;

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
}
