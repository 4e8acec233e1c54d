//! A command's effects as typed values, and their trace text.
//!
//! Each command method of [`crate::cmdq::exec`] reports what it did into an [`Effects`]
//! collector that exists only while a tracer is installed; the `Display` impls here are the
//! only place the text is made.

use std::fmt;

use viommu_common::fault::FaultId;
use viommu_common::iotlb::{InvRange, Invalidation, Regime};

use super::Delivery;
use crate::ats::{AtcError, AtcInvalidation};
use crate::cmdq::command::PriResponse;

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

#[cfg(test)]
mod tests {
    use super::*;

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
