//! Decoded configuration: what an STE and a CD mean, as typed values (IHI 0070 §3.3,
//! chapter 5, §3.21).
//!
//! - [`ste`]: stream table fetch (linear and 2-level) and [`decode_ste`](ste::decode_ste).
//! - [`cd`]: substream selection, CD table fetch (linear and 2-level, through stage 2 when
//!   nested) and [`decode_cd`](cd::decode_cd).
//! - [`cache`]: the lock-free configuration cache with CFGI_* invalidation, kept in fixed
//!   seqlock slots (`slots`) as packed words (`words`).
//!
//! Decode is pure and reads only the *used bits* of each configuration (Linux
//! `arm_smmu_get_ste_used()`), so the mixed old/new entries the Linux driver leaves in memory
//! between the steps of a hitless update decode to either the old or the new configuration.
//!
//! The translation pipeline never interprets raw STE or CD bytes: it gets a [`StreamConfig`]
//! and a [`ContextConfig`], or a [`ConfigError`] that converts into the architectural event
//! with [`ConfigError::to_event`].

pub mod cache;
pub mod cd;
pub(crate) mod slots;
pub mod ste;
pub(crate) mod words;

use viommu_common::access::AccessKind;
use viommu_common::id::{Asid, Vmid};
use viommu_common::walk::{FaultClass, Stage1Config, Stage2Config, TableGeometry, WalkFault};

use crate::event::{Event, EventAccess, EventSource};
use crate::spec::ste::{InstCfg, PrivCfg};
use crate::spec::Shareability;

/// What a stream does with its traffic (decoded STE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamConfig {
    /// Config 0b000 (and the reserved 0b001..0b011): terminate silently, no event.
    Abort,
    /// Config 0b100: pass through untranslated with the attribute overrides.
    Bypass(StreamAttrs),
    /// Config 0b101 / 0b110 / 0b111: translate by stage 1, stage 2 or both.
    Translate(TranslateConfig),
}

/// Attribute overrides of an STE (only fields the ID registers advertise; else "incoming").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamAttrs {
    /// SHCFG: shareability override (1 = incoming). Only with IDR1.ATTR_TYPES_OVR, else
    /// incoming.
    pub shcfg: Shareability,
    /// MemAttr when MTCFG = 1 (IDR1.ATTR_TYPES_OVR), else `None` (incoming).
    pub memattr: Option<u8>,
    /// ALLOCCFG (IDR1.ATTR_TYPES_OVR; 0 = incoming).
    pub alloccfg: u8,
    /// PRIVCFG (IDR1.ATTR_PERMS_OVR, else incoming; reserved value 1 reads as incoming).
    pub privcfg: PrivCfg,
    /// INSTCFG (IDR1.ATTR_PERMS_OVR, else incoming; reserved value 1 reads as incoming).
    pub instcfg: InstCfg,
}

impl StreamAttrs {
    /// No overrides: everything from the incoming transaction.
    pub const INCOMING: StreamAttrs = StreamAttrs {
        shcfg: Shareability::RSVD,
        memattr: None,
        alloccfg: 0,
        privcfg: PrivCfg::INCOMING,
        instcfg: InstCfg::INCOMING,
    };

    /// The privilege a transaction is translated with.
    pub fn privileged(&self, incoming: bool) -> bool {
        match self.privcfg {
            PrivCfg::UNPRIV => false,
            PrivCfg::PRIV => true,
            _ => incoming,
        }
    }

    /// Whether a transaction is treated as an instruction fetch (only reads can be).
    pub fn instruction(&self, incoming: bool, read: bool) -> bool {
        match self.instcfg {
            InstCfg::DATA => false,
            InstCfg::INSTR => read,
            _ => incoming,
        }
    }

    /// The privilege and access kind a transaction is translated with, after PRIVCFG and
    /// INSTCFG (IHI 0070 §5.2, STE.PRIVCFG / STE.INSTCFG): writes stay writes; reads become
    /// instruction fetches or data reads as INSTCFG says.
    #[inline(always)]
    pub fn effective(&self, privileged: bool, access: AccessKind) -> (bool, AccessKind) {
        let access = match access {
            AccessKind::Write => AccessKind::Write,
            a => {
                if self.instruction(a == AccessKind::Exec, true) {
                    AccessKind::Exec
                } else {
                    AccessKind::Read
                }
            }
        };
        (self.privileged(privileged), access)
    }
}

/// The translation regime of a stream (STE.STRW).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Regime {
    /// Non-secure EL1&0: ASID- and VMID-tagged.
    El1,
    /// EL2 (IDR0.HYP): ASID-tagged, no VMID.
    El2,
}

/// ATS behaviour of a stream (STE.EATS; always [`AtsMode::Abort`] without IDR0.ATS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtsMode {
    /// ATS translation requests are refused (F_BAD_ATS_TREQ).
    Abort,
    /// Full ATS.
    Full,
    /// Split-stage ATS (translated traffic still goes through stage 2).
    Split,
}

/// A translating stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TranslateConfig {
    /// Stage 1: where the CDs are (Config 0b101 / 0b111).
    pub s1: Option<S1Config>,
    /// Stage 2 (Config 0b110 / 0b111).
    pub s2: Option<S2Config>,
    /// VMID tagging this stream's TLB entries (STE.S2VMID when stage 2 is implemented, else
    /// 0; also used by stage-1-only streams, as TLBI_NH_* match it).
    pub vmid: Vmid,
    /// Translation regime (STE.STRW for stage-1 streams; EL1 otherwise).
    pub regime: Regime,
    /// ATS mode.
    pub ats: AtsMode,
    /// Attribute overrides.
    pub attrs: StreamAttrs,
}

/// How the CD table is laid out (STE.S1Fmt with S1CDMax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdTableFormat {
    /// S1CDMax = 0: a single CD at S1ContextPtr; no substreams.
    Single,
    /// S1Fmt = 0: 2^S1CDMax CDs at S1ContextPtr.
    Linear,
    /// S1Fmt = 1 / 2: L1 descriptors at S1ContextPtr, each pointing at a leaf of
    /// 2^`leaf_bits` CDs (6: 4 KiB leaves, 10: 64 KiB leaves).
    TwoLevel {
        /// log2 of the CDs per leaf table.
        leaf_bits: u32,
    },
}

/// What non-substream traffic does when the stream has substreams (STE.S1DSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S1Dss {
    /// Terminate with F_STREAM_DISABLED.
    Terminate,
    /// Skip stage 1 (stage 2 still applies when nested).
    Bypass,
    /// Use CD 0 (then a transaction carrying SubstreamID 0 is C_BAD_SUBSTREAMID).
    Substream0,
}

/// The stage-1 part of an STE: where the CD table is and how substreams are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct S1Config {
    /// S1ContextPtr: the CD or L1 CD table (an IPA when nested).
    pub cd_table: u64,
    /// Table layout.
    pub format: CdTableFormat,
    /// S1CDMax: log2 of the number of substreams (0 = none).
    pub cd_max_bits: u32,
    /// S1DSS (only meaningful with `cd_max_bits > 0`; [`S1Dss::Substream0`] otherwise).
    pub dss: S1Dss,
    /// S1STALLD: stage-1 stalls disabled.
    pub stall_disabled: bool,
    /// The OAS in bits: a non-nested L1CD.L2Ptr beyond it is C_BAD_SUBSTREAMID
    /// (IHI 0070 §3.4.3).
    pub pa_bits: u32,
}

/// The stage-2 part of an STE, ready for the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct S2Config {
    /// Walker configuration (granule, S2T0SZ, S2SL0, S2TTB, effective PS, HA/HD/AFFD, XNX,
    /// FWB), already validated.
    pub walk: Stage2Config,
    /// Root geometry from [`Stage2Config::validate`].
    pub geometry: TableGeometry,
    /// S2R: record stage-2 faults.
    pub record: bool,
    /// S2S: stall stage-2 faults.
    pub stall: bool,
    /// S2PTW: stage-1 walks hitting stage-2 Device memory fault.
    pub ptw: bool,
}

/// A decoded Context Descriptor: the stage-1 translation of one substream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextConfig {
    /// ASID.
    pub asid: Asid,
    /// The two VA regions: `[TTB0, TTB1]`, each with its own granule, size and EPD.
    pub regions: [Stage1Config; 2],
    /// R: record stage-1 faults.
    pub record: bool,
    /// S: stall stage-1 faults (validated against STALL_MODEL and STE.S1STALLD).
    pub stall: bool,
    /// A: terminated transactions abort (else RAZ/WI; always 1 with IDR0.TERM_MODEL).
    pub abort: bool,
    /// ASET: shared ASID set (store only).
    pub aset: bool,
}

impl ContextConfig {
    /// The region `va` falls in (VA bit 55 selects TTB1).
    pub fn region(&self, va: u64) -> &Stage1Config {
        if Stage1Config::region_of(va) {
            &self.regions[1]
        } else {
            &self.regions[0]
        }
    }
}

/// Why a stream's configuration cannot be used: each variant is one architectural event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ConfigError {
    /// C_BAD_STREAMID: StreamID beyond the stream table, L1 descriptor Span = 0, or L2 index
    /// beyond the span. Recorded only with CR2.RECINVSID.
    #[error("C_BAD_STREAMID: {why}")]
    BadStreamId {
        /// Which check failed.
        why: &'static str,
    },
    /// F_STE_FETCH: reading the L1 descriptor or the STE aborted.
    #[error("F_STE_FETCH at {addr:#x}")]
    SteFetch {
        /// The physical address read.
        addr: u64,
    },
    /// C_BAD_STE: V = 0 or an illegal STE.
    #[error("C_BAD_STE: {why}")]
    BadSte {
        /// Which check failed.
        why: &'static str,
    },
    /// C_BAD_SUBSTREAMID: SubstreamID not allowed, out of range, or its L1 CD invalid.
    #[error("C_BAD_SUBSTREAMID: {why}")]
    BadSubstreamId {
        /// Which check failed.
        why: &'static str,
    },
    /// F_CD_FETCH: reading the CD or L1 CD descriptor aborted.
    #[error("F_CD_FETCH at {addr:#x}")]
    CdFetch {
        /// The physical address read.
        addr: u64,
    },
    /// A nested CD or L1 CD fetch faulted in stage 2 (CLASS = CD, IPA = the fetch address).
    #[error("CD fetch stage-2 fault: {0}")]
    CdStage2(WalkFault),
    /// C_BAD_CD: V = 0 or an illegal CD.
    #[error("C_BAD_CD: {why}")]
    BadCd {
        /// Which check failed.
        why: &'static str,
    },
}

impl ConfigError {
    /// The event this error is recorded as (for a transaction from `src` doing `access`;
    /// `stall` is the STAG if the caller stalls the transaction).
    pub fn to_event(&self, src: EventSource, access: EventAccess, stall: Option<u16>) -> Event {
        match *self {
            ConfigError::BadStreamId { .. } => Event::BadStreamId { src },
            ConfigError::SteFetch { addr } => Event::SteFetch {
                src,
                fetch_addr: addr,
            },
            ConfigError::BadSte { .. } => Event::BadSte { src },
            ConfigError::BadSubstreamId { .. } => Event::BadSubstreamId { src },
            ConfigError::CdFetch { addr } => Event::CdFetch {
                src,
                stall,
                fetch_addr: addr,
            },
            ConfigError::CdStage2(f) => {
                Event::from_walk_fault(&f.with_class(FaultClass::Cd), src, access, stall)
            }
            ConfigError::BadCd { .. } => Event::BadCd { src },
        }
    }
}

/// A stage-2 translation of a CD-table IPA to a PA, supplied by the device for nested streams.
pub type CdTranslate<'a> = &'a dyn Fn(u64) -> Result<u64, WalkFault>;

#[cfg(test)]
mod tests;
