//! Command decode by family (IHI 0070 chapter 4): one file per family of opcodes, each turning
//! the two raw words into a typed [`Command`] or the [`CommandError`] that makes it CERROR_ILL.
//!
//! - [`prefetch_cfgi`] decodes PREFETCH_CONFIG, PREFETCH_ADDR and the configuration
//!   invalidations (CFGI_STE, CFGI_STE_RANGE / CFGI_ALL, CFGI_CD, CFGI_CD_ALL, CFGI_VMS_PIDM);
//! - [`tlbi`] decodes the TLB invalidations (TLBI_NH_*, TLBI_EL2_*, TLBI_EL3_*,
//!   TLBI_S12_VMALL, TLBI_S2_IPA, TLBI_NSNH_ALL) and their range fields;
//! - [`ats_pri_stall`] decodes ATC_INV, PRI_RESP, RESUME and STALL_TERM;
//! - [`sync`] decodes CMD_SYNC.
//!
//! Decode is pure: it reads the two words and the advertised [`Caps`], nothing else. This file
//! holds the checks every family shares.

use viommu_common::id::SubstreamId;

use super::{Command, CommandError};
use crate::caps::Caps;
use crate::spec::cmd::{CmdStreamW0, Opcode};

mod ats_pri_stall;
mod prefetch_cfgi;
mod sync;
mod tlbi;

/// A family of opcodes decoded together (they share word layouts and checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// PREFETCH_* and CFGI_*.
    PrefetchCfgi,
    /// TLBI_*.
    Tlbi,
    /// ATC_INV, PRI_RESP, RESUME, STALL_TERM.
    AtsPriStall,
    /// CMD_SYNC.
    Sync,
}

/// The family of `op`, or `None` for an opcode the architecture does not define.
const fn family(op: Opcode) -> Option<Family> {
    Some(match op {
        Opcode::PREFETCH_CONFIG
        | Opcode::PREFETCH_ADDR
        | Opcode::CFGI_STE
        | Opcode::CFGI_STE_RANGE
        | Opcode::CFGI_CD
        | Opcode::CFGI_CD_ALL
        | Opcode::CFGI_VMS_PIDM => Family::PrefetchCfgi,
        Opcode::TLBI_NH_ALL
        | Opcode::TLBI_NH_ASID
        | Opcode::TLBI_NH_VA
        | Opcode::TLBI_NH_VAA
        | Opcode::TLBI_EL3_ALL
        | Opcode::TLBI_EL3_VA
        | Opcode::TLBI_EL2_ALL
        | Opcode::TLBI_EL2_ASID
        | Opcode::TLBI_EL2_VA
        | Opcode::TLBI_EL2_VAA
        | Opcode::TLBI_S12_VMALL
        | Opcode::TLBI_S2_IPA
        | Opcode::TLBI_NSNH_ALL => Family::Tlbi,
        Opcode::ATC_INV | Opcode::PRI_RESP | Opcode::RESUME | Opcode::STALL_TERM => {
            Family::AtsPriStall
        }
        Opcode::CMD_SYNC => Family::Sync,
        _ => return None,
    })
}

/// Decode a command whose word 0 holds `op`, with its family's decoder.
#[inline]
pub(super) fn decode(op: Opcode, w0: u64, w1: u64, caps: &Caps) -> Result<Command, CommandError> {
    match family(op) {
        Some(Family::PrefetchCfgi) => prefetch_cfgi::decode(op, w0, w1, caps),
        Some(Family::Tlbi) => tlbi::decode(op, w0, w1, caps),
        Some(Family::AtsPriStall) => ats_pri_stall::decode(op, w0, w1, caps),
        Some(Family::Sync) => sync::decode(op, w0, w1),
        None => Err(CommandError::UnknownOpcode(op.0)),
    }
}

/// Reject a non-zero RES0 field of `opcode`'s word `word`: `bits` is the field's value and
/// `shift` its position in the word (the error reports the bits in place).
pub(super) fn reject_res0(
    opcode: Opcode,
    word: u8,
    bits: u64,
    shift: u32,
) -> Result<(), CommandError> {
    if bits != 0 {
        Err(CommandError::Reserved {
            opcode,
            word,
            bits: bits << shift,
        })
    } else {
        Ok(())
    }
}

/// Reject `opcode` unless the SMMU advertises `feature` (`advertised`).
pub(super) fn require_feature(
    opcode: Opcode,
    advertised: bool,
    feature: &'static str,
) -> Result<(), CommandError> {
    if advertised {
        Ok(())
    } else {
        Err(CommandError::Unsupported { opcode, feature })
    }
}

/// Which optional parts of a stream-addressed word 0 a command defines.
#[derive(Clone, Copy)]
pub(super) struct StreamFields {
    /// SSV (bit \[11\]) is a field of the command.
    pub(super) ssv: bool,
    /// SSID (bits \[31:12\]) is a field of the command.
    pub(super) ssid: bool,
}

impl StreamFields {
    /// SSV and SSID both defined (PREFETCH_*, PRI_RESP).
    pub(super) const ALL: StreamFields = StreamFields {
        ssv: true,
        ssid: true,
    };
    /// Only SID defined (CFGI_STE, CFGI_STE_RANGE, CFGI_CD_ALL, STALL_TERM).
    pub(super) const SID_ONLY: StreamFields = StreamFields {
        ssv: false,
        ssid: false,
    };
}

/// Decode a stream-addressed word 0, checking SSec and the fields the command does not define.
pub(super) fn stream_w0(op: Opcode, w0: u64, f: StreamFields) -> Result<CmdStreamW0, CommandError> {
    let w = CmdStreamW0::from_raw(w0);
    reject_res0(op, 0, w.rsvd_9_8().into(), 8)?;
    if w.ssec() {
        return Err(CommandError::SecureStream { opcode: op });
    }
    if !f.ssv {
        reject_res0(op, 0, w.ssv().into(), 11)?;
    }
    if !f.ssid {
        reject_res0(op, 0, w.ssid().into(), 12)?;
    }
    Ok(w)
}

/// The SubstreamID of a stream-addressed word 0, if SSV.
pub(super) fn substream(w: CmdStreamW0) -> Option<SubstreamId> {
    w.ssv().then(|| SubstreamId(w.ssid()))
}
