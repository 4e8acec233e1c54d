//! The trace hook: typed events for every register access, translation, fault capture,
//! interrupt line change and MSI delivery. Their `Display` is the readable log the insta
//! snapshots and `viommu replay --trace` print, with the manual's register names.

use core::fmt;

use viommu_common::access::AccessKind;

use crate::fault::{PamuFault, StatusRegs};
use crate::msi::MsiVector;
use crate::spec::regs::Reg;
use crate::translate::{PamuTranslation, Path};

/// A trace hook (see [`crate::Pamu::with_tracer`]).
pub type Tracer = Box<dyn Fn(&PamuEvent) + Send + Sync>;

/// One thing the PAMU did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamuEvent {
    /// A register store (the value the guest wrote).
    RegWrite {
        /// Instance.
        instance: u8,
        /// Register.
        reg: Reg,
        /// Value written.
        value: u32,
    },
    /// A register load.
    RegRead {
        /// Instance.
        instance: u8,
        /// Register.
        reg: Reg,
        /// Value returned.
        value: u32,
    },
    /// PAMUBYPENR was written.
    Bypass {
        /// New value.
        value: u32,
    },
    /// A DMA translation.
    Translate {
        /// LIODN.
        liodn: u32,
        /// Input address.
        addr: u64,
        /// Length.
        len: u64,
        /// Direction.
        access: AccessKind,
        /// Result.
        result: Result<PamuTranslation, PamuFault>,
    },
    /// A fault reached an instance's capture registers.
    Capture {
        /// Instance.
        instance: u8,
        /// The fault.
        fault: PamuFault,
        /// Latched (true) or dropped because one was pending (false).
        captured: bool,
        /// The status registers afterwards.
        status: StatusRegs,
    },
    /// An interrupt output changed level.
    Line {
        /// Sink line number.
        line: u32,
        /// "AV" or "ERR".
        name: &'static str,
        /// New level.
        level: bool,
    },
    /// An MSI write landed on an MSIIR and was delivered.
    Msi {
        /// LIODN of the writer.
        liodn: u32,
        /// I/O address written.
        iova: u64,
        /// Translated address (the MSIIR).
        output: u64,
        /// Value written.
        data: u32,
        /// Decoded vector.
        vector: MsiVector,
    },
}

fn access_name(a: AccessKind) -> &'static str {
    match a {
        AccessKind::Read => "R",
        AccessKind::Write => "W",
        AccessKind::Exec => "X",
    }
}

impl fmt::Display for PamuEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PamuEvent::RegWrite {
                instance,
                reg,
                value,
            } => write!(f, "pamu{instance} {:<7} <= {value:#010x}", reg.name()),
            PamuEvent::RegRead {
                instance,
                reg,
                value,
            } => write!(f, "pamu{instance} {:<7} => {value:#010x}", reg.name()),
            PamuEvent::Bypass { value } => write!(f, "PAMUBYPENR <= {value:#010x}"),
            PamuEvent::Translate {
                liodn,
                addr,
                len,
                access,
                result,
            } => {
                write!(f, "dma liodn={liodn:#x} {} {addr:#x}+{len:#x} -> ", access_name(*access))?;
                match result {
                    Ok(t) => {
                        write!(f, "{:#x} ({}", t.output, t.perms)?;
                        match t.path {
                            Path::Bypass => write!(f, ", bypass")?,
                            Path::Disabled => write!(f, ", PE=0")?,
                            Path::Window { entry, subwindow } => {
                                write!(f, ", entry {entry:#x} sub {subwindow}")?
                            }
                        }
                        write!(f, ", attrs {:#010x})", t.attrs.device_bits())
                    }
                    Err(e) => write!(f, "{} {:?}", e.event(), e),
                }
            }
            PamuEvent::Capture {
                instance,
                fault,
                captured,
                status,
            } => {
                if !captured {
                    return write!(f, "pamu{instance} {} dropped (capture pending)", fault.event());
                }
                match fault {
                    PamuFault::Violation(_) => write!(
                        f,
                        "pamu{instance} captured {}: AVS1={:#010x} AVS2={:#x} AVA={:#x} PICS={:#x}",
                        fault.event(),
                        status.avs1.into_bits(),
                        status.avs2,
                        status.ava,
                        status.pics.into_bits()
                    ),
                    PamuFault::Operation(_) => write!(
                        f,
                        "pamu{instance} captured {}: POES1={:#x} POES2={:#x} POEA={:#x} PICS={:#x}",
                        fault.event(),
                        status.poes1.into_bits(),
                        status.poes2,
                        status.poea,
                        status.pics.into_bits()
                    ),
                }
            }
            PamuEvent::Line { line, name, level } => {
                write!(f, "irq {name} (line {line}) {}", if *level { "asserted" } else { "deasserted" })
            }
            PamuEvent::Msi {
                liodn,
                iova,
                output,
                data,
                vector,
            } => write!(
                f,
                "msi liodn={liodn:#x} {iova:#x} -> {output:#x} data={data:#x}: bank {} SRS {} IBS {} (vector {})",
                vector.bank,
                vector.srs,
                vector.ibs,
                vector.index()
            ),
        }
    }
}
