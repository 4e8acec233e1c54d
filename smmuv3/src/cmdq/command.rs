//! Command decode (IHI 0070 chapter 4; range invalidation §4.4.1.1): raw 16-byte entry ->
//! typed [`Command`], or the reason it is illegal.
//!
//! Decode is pure: it reads the two words and the advertised [`Caps`], nothing else. The
//! consumer calls [`Command::decode`] and turns every [`CommandError`] into CERROR_ILL
//! ([`CommandError::cmdq_error`]); the effects live in [`crate::cmdq::exec`]. This file holds
//! the decoded types and the dispatch on the opcode; each family of opcodes (prefetch and
//! configuration invalidation, TLB invalidation, ATS/PRI/stall, CMD_SYNC) is decoded in its own
//! file under `cmdq/decode/`.
//!
//! CONSTRAINED UNPREDICTABLE choices (all tested in `command_tests.rs`):
//! - A non-zero RES0 field is CERROR_ILL (the architecture allows ignoring it; rejecting catches
//!   malformed vSMMU-forwarded commands; the Linux driver never sets one). Exceptions, documented
//!   on [`Command::decode`]: word 1 of PREFETCH_CONFIG, and TTL/NUM/SCALE when TG = 0 with RIL.
//! - SSec = 1 (a Secure stream on the Non-secure queue) is CERROR_ILL.
//! - Commands for an unadvertised feature are CERROR_ILL: TLBI_EL2_* without IDR0.HYP, TLBI_EL3_*
//!   always, TLBI_S2_IPA / TLBI_S12_VMALL without S2P, ATC_INV without ATS, PRI_RESP without PRI,
//!   RESUME / STALL_TERM with STALL_MODEL = 1 (terminate only), range fields (NUM, SCALE, TG,
//!   TTL) without IDR3.RIL, CFGI_VMS_PIDM (no VMS).
//! - TLBI_NH_* and CFGI_CD / CFGI_CD_ALL without S1P are CERROR_ILL (IHI 0070 §4.4.2, §4.3.3).
//! - Policy, against IHI 0070 §4.4.1.1 which makes it CERROR_ILL: a range TLBI with TG != 0
//!   and NUM = SCALE = TTL = 0 is accepted as a one-granule invalidation (invalidating is always
//!   safe, and stopping the queue would hang a driver that sends it).
//! - PRI_RESP with the reserved response code 3 is CERROR_ILL. (RESUME's 0b11 is a retry: its
//!   Abort bit is IGNORED on a retry.)
//! - NUM / SCALE / TTL non-zero with TG = 0 (RES0) and TG = 16K with TTL = 1 (no IDR5.DS) are
//!   CERROR_ILL.
//! - A range TLBI address not aligned to its granule (UNPREDICTABLE range) invalidates from the
//!   aligned-down base to address + range, a superset.
//! - ATC_INV Size above 52 is treated as 52 (everything).
//! - StreamIDs, SubstreamIDs, ASIDs and VMIDs wider than advertised are not checked: they simply
//!   match nothing cached.

use viommu_common::addr::Granule;
use viommu_common::id::{Asid, StreamId, SubstreamId, Vmid};

use crate::caps::Caps;
use crate::spec::cmd::{CmdHeaderW0, Opcode};
use crate::spec::regs::CmdqErr;

#[path = "decode/mod.rs"]
mod decode;

/// The address range and level hint of an address-based TLB invalidation (IHI 0070 §4.4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlbiRange {
    /// Address field (bits \[63:12\] of word 1; \[51:12\] for TLBI_S2_IPA).
    pub addr: u64,
    /// Leaf: only last-level entries need to go (walk caches may stay).
    pub leaf: bool,
    /// TTL level hint (0 = any).
    pub ttl: u8,
    /// TG: 0 = a single address, 1 = 4K, 2 = 16K, 3 = 64K range granule.
    pub tg: u8,
    /// NUM: the range is (NUM + 1) x 2^SCALE granules.
    pub num: u8,
    /// SCALE.
    pub scale: u8,
}

impl TlbiRange {
    /// The range granule (`None` for TG = 0: not a range).
    pub const fn granule(&self) -> Option<Granule> {
        match self.tg {
            1 => Some(Granule::K4),
            2 => Some(Granule::K16),
            3 => Some(Granule::K64),
            _ => None,
        }
    }

    /// The invalidated byte range `(base, size)`.
    ///
    /// TG = 0: the 4 KiB-aligned address the command names, `(addr, 4096)` (an entry overlaps
    /// that window exactly when it contains `addr`, since no entry is smaller than 4 KiB).
    /// TG != 0: `[addr, addr + (NUM + 1) x 2^SCALE x granule)` (IHI 0070 §4.4.1.1). An address
    /// not aligned to the granule makes the range UNPREDICTABLE; policy: the base is aligned
    /// down to the granule and the end kept, a superset of every reading.
    /// `size` saturates so that `base + size` never overflows (`base + size - 1 <= u64::MAX`);
    /// the range does not wrap. Callers must invalidate every entry *overlapping* the range,
    /// whatever its size or level.
    pub const fn span(&self) -> (u64, u64) {
        let (base, size) = match self.granule() {
            None => (self.addr & !0xFFF, 0x1000u64),
            Some(g) => {
                let base = self.addr & !(g.size() - 1);
                // (NUM + 1) <= 32 and SCALE + shift <= 31 + 16: at most 2^52, plus less than
                // one granule of misalignment: no overflow.
                let size =
                    ((self.num as u64 + 1) << (self.scale as u32 + g.shift())) + (self.addr - base);
                (base, size)
            }
        };
        let room = u64::MAX - base;
        if size - 1 > room {
            (base, room + 1)
        } else {
            (base, size)
        }
    }

    /// The TTL level hint: `Some(level)` (1..=3) when TG != 0 and TTL != 0, else `None` (any
    /// level). A model may always ignore it (invalidating more is allowed).
    pub const fn level_hint(&self) -> Option<u8> {
        if self.tg != 0 && self.ttl != 0 {
            Some(self.ttl)
        } else {
            None
        }
    }

    /// True if the byte range `[start, start + len)` overlaps this invalidation.
    pub const fn overlaps(&self, start: u64, len: u64) -> bool {
        let (base, size) = self.span();
        if len == 0 {
            return false;
        }
        // Inclusive ends avoid overflow.
        let end = base + (size - 1);
        let other_end = start.saturating_add(len - 1);
        start <= end && base <= other_end
    }
}

/// CMD_SYNC completion signal (decoded CS; the reserved value 3 never decodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncSignal {
    /// SIG_NONE: CONS passes the SYNC.
    None,
    /// SIG_IRQ: MSI write of MSIData to MSIAddr (MSIAddr != 0 and IDR0.MSI), else the wired line.
    Irq,
    /// SIG_SEV: CONS passes and a wake-up event is sent (accepted even without IDR0.SEV).
    Sev,
}

/// A decoded CMD_SYNC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyncCmd {
    /// CS: completion signal.
    pub cs: SyncSignal,
    /// MSH: MSI shareability.
    pub msh: u8,
    /// MSIAttr: MSI memory type.
    pub msi_attr: u8,
    /// MSIData: the 32-bit value written for CS = SIG_IRQ.
    pub msi_data: u32,
    /// MSIAddr: the doorbell address (bits \[51:2\]; 0 = use the wired interrupt).
    pub msi_addr: u64,
}

/// A PRI_RESP response code (IHI 0070 §4.5.2; 0b11 is ILLEGAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriResponse {
    /// ResponseFailure (0): permanent non-paging error (Linux: DENY).
    ResponseFailure,
    /// InvalidRequest (1): page-in unsuccessful (Linux: FAIL).
    InvalidRequest,
    /// Success (2).
    Success,
}

/// A RESUME action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeAction {
    /// Complete as terminated (abort or RAZ/WI per CD.A / TERM_MODEL).
    Terminate,
    /// Retry the translation.
    Retry,
    /// Abort.
    Abort,
}

/// A decoded command: one variant per opcode, with the manual's fields typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// PREFETCH_CONFIG: a hint, no effect required.
    PrefetchConfig {
        /// StreamID.
        sid: StreamId,
        /// SubstreamID, if SSV.
        ssid: Option<SubstreamId>,
    },
    /// PREFETCH_ADDR: a hint, no effect required.
    PrefetchAddr {
        /// StreamID.
        sid: StreamId,
        /// SubstreamID, if SSV.
        ssid: Option<SubstreamId>,
        /// Address (4 KiB aligned).
        addr: u64,
        /// log2 of the range in 4 KiB units.
        size: u8,
    },
    /// CFGI_STE: drop the cached STE of `sid` (and its L1 descriptor if `!leaf`).
    CfgiSte {
        /// StreamID.
        sid: StreamId,
        /// Leaf: only the STE.
        leaf: bool,
    },
    /// CFGI_STE_RANGE with Range < 31: drop the STEs of `2^(range + 1)` StreamIDs from `sid`
    /// aligned down (see [`Command::cfgi_sid_range`]).
    CfgiSteRange {
        /// StreamID as written (not aligned).
        sid: StreamId,
        /// Range.
        range: u8,
    },
    /// CFGI_ALL (CFGI_STE_RANGE with Range = 31): drop all configuration.
    CfgiAll,
    /// CFGI_CD: drop one CD (and its L1 CD descriptor if `!leaf`).
    CfgiCd {
        /// StreamID.
        sid: StreamId,
        /// SubstreamID.
        ssid: SubstreamId,
        /// Leaf: only the CD.
        leaf: bool,
    },
    /// CFGI_CD_ALL: drop all CDs of a stream.
    CfgiCdAll {
        /// StreamID.
        sid: StreamId,
    },
    /// TLBI_NH_ALL: all stage-1 entries of a VMID.
    TlbiNhAll {
        /// VMID (ignored without S2P).
        vmid: Vmid,
    },
    /// TLBI_NH_ASID: non-global stage-1 entries of an ASID.
    TlbiNhAsid {
        /// VMID.
        vmid: Vmid,
        /// ASID.
        asid: Asid,
    },
    /// TLBI_NH_VA: stage-1 entries for an address range in an ASID, plus global entries.
    TlbiNhVa {
        /// VMID.
        vmid: Vmid,
        /// ASID.
        asid: Asid,
        /// Range.
        range: TlbiRange,
    },
    /// TLBI_NH_VAA: stage-1 entries for an address range in all ASIDs.
    TlbiNhVaa {
        /// VMID.
        vmid: Vmid,
        /// Range.
        range: TlbiRange,
    },
    /// TLBI_EL2_ALL (needs IDR0.HYP).
    TlbiEl2All,
    /// TLBI_EL2_ASID (needs IDR0.HYP).
    TlbiEl2Asid {
        /// ASID.
        asid: Asid,
    },
    /// TLBI_EL2_VA (needs IDR0.HYP).
    TlbiEl2Va {
        /// ASID.
        asid: Asid,
        /// Range.
        range: TlbiRange,
    },
    /// TLBI_EL2_VAA (needs IDR0.HYP).
    TlbiEl2Vaa {
        /// Range.
        range: TlbiRange,
    },
    /// TLBI_S12_VMALL: stage-1 and stage-2 entries of a VMID (needs S2P).
    TlbiS12Vmall {
        /// VMID.
        vmid: Vmid,
    },
    /// TLBI_S2_IPA: stage-2 entries for an IPA range (needs S2P).
    TlbiS2Ipa {
        /// VMID.
        vmid: Vmid,
        /// Range (address = IPA).
        range: TlbiRange,
    },
    /// TLBI_NSNH_ALL: all non-secure, non-hyp entries.
    TlbiNsnhAll,
    /// ATC_INV: invalidate an endpoint's ATC (needs ATS).
    AtcInv {
        /// StreamID.
        sid: StreamId,
        /// SubstreamID, if SSV (none: all PASIDs).
        ssid: Option<SubstreamId>,
        /// Global: also global entries of the SSID.
        global: bool,
        /// Address as written (see [`Command::atc_span`]).
        addr: u64,
        /// Size: log2 of the span in 4 KiB pages (clamped to 52 = everything).
        size: u8,
    },
    /// PRI_RESP: respond to a page request group (needs PRI).
    PriResp {
        /// StreamID.
        sid: StreamId,
        /// SubstreamID, if SSV.
        ssid: Option<SubstreamId>,
        /// PRG index.
        prg_index: u16,
        /// Response.
        resp: PriResponse,
    },
    /// RESUME: complete one stalled transaction (needs stalls).
    Resume {
        /// StreamID.
        sid: StreamId,
        /// Stall tag.
        stag: u16,
        /// Action.
        resp: ResumeAction,
    },
    /// STALL_TERM: terminate all stalled transactions of a stream (needs stalls).
    StallTerm {
        /// StreamID.
        sid: StreamId,
    },
    /// CMD_SYNC.
    Sync(SyncCmd),
}

/// Why a command is illegal (always reported as CERROR_ILL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CommandError {
    /// The opcode is not one the architecture defines for this queue.
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// A RES0 field is non-zero.
    #[error("{opcode}: reserved bits {bits:#x} set in word {word}")]
    Reserved {
        /// The command.
        opcode: Opcode,
        /// Word index (0 or 1).
        word: u8,
        /// The offending bits, in place.
        bits: u64,
    },
    /// SSec = 1 on the Non-secure command queue.
    #[error("{opcode}: SSec = 1 on the Non-secure command queue")]
    SecureStream {
        /// The command.
        opcode: Opcode,
    },
    /// A field holds a reserved value (CMD_SYNC CS = 3, a response code of 3).
    #[error("{opcode}: {field} = {value} is reserved")]
    ReservedValue {
        /// The command.
        opcode: Opcode,
        /// The field's name.
        field: &'static str,
        /// The value.
        value: u8,
    },
    /// The command needs a feature the SMMU does not advertise.
    #[error("{opcode}: needs {feature}, which is not advertised")]
    Unsupported {
        /// The command.
        opcode: Opcode,
        /// The feature (ID register field).
        feature: &'static str,
    },
}

impl CommandError {
    /// The CMDQ_CONS.ERR code for this error (always CERROR_ILL).
    pub const fn cmdq_error(&self) -> CmdqErr {
        CmdqErr::CERROR_ILL
    }
}

impl Command {
    /// Decode a raw command (`words[0]` = bits \[63:0\], `words[1]` = bits \[127:64\]) against the
    /// advertised capabilities.
    ///
    /// Word 1 of PREFETCH_CONFIG is not checked (the architecture defines Size/Addr there for
    /// some revisions and the command is a hint).
    ///
    /// # Errors
    /// [`CommandError`] for an unknown opcode, a non-zero reserved field, SSec = 1, a reserved
    /// CS/response value, or a command needing an unadvertised feature; the consumer reports
    /// each as CERROR_ILL.
    pub fn decode(words: &[u64; 2], caps: &Caps) -> Result<Command, CommandError> {
        let [w0, w1] = *words;
        decode::decode(CmdHeaderW0::from_raw(w0).opcode(), w0, w1, caps)
    }

    /// The command's opcode.
    pub const fn opcode(&self) -> Opcode {
        match self {
            Command::PrefetchConfig { .. } => Opcode::PREFETCH_CONFIG,
            Command::PrefetchAddr { .. } => Opcode::PREFETCH_ADDR,
            Command::CfgiSte { .. } => Opcode::CFGI_STE,
            Command::CfgiSteRange { .. } | Command::CfgiAll => Opcode::CFGI_STE_RANGE,
            Command::CfgiCd { .. } => Opcode::CFGI_CD,
            Command::CfgiCdAll { .. } => Opcode::CFGI_CD_ALL,
            Command::TlbiNhAll { .. } => Opcode::TLBI_NH_ALL,
            Command::TlbiNhAsid { .. } => Opcode::TLBI_NH_ASID,
            Command::TlbiNhVa { .. } => Opcode::TLBI_NH_VA,
            Command::TlbiNhVaa { .. } => Opcode::TLBI_NH_VAA,
            Command::TlbiEl2All => Opcode::TLBI_EL2_ALL,
            Command::TlbiEl2Asid { .. } => Opcode::TLBI_EL2_ASID,
            Command::TlbiEl2Va { .. } => Opcode::TLBI_EL2_VA,
            Command::TlbiEl2Vaa { .. } => Opcode::TLBI_EL2_VAA,
            Command::TlbiS12Vmall { .. } => Opcode::TLBI_S12_VMALL,
            Command::TlbiS2Ipa { .. } => Opcode::TLBI_S2_IPA,
            Command::TlbiNsnhAll => Opcode::TLBI_NSNH_ALL,
            Command::AtcInv { .. } => Opcode::ATC_INV,
            Command::PriResp { .. } => Opcode::PRI_RESP,
            Command::Resume { .. } => Opcode::RESUME,
            Command::StallTerm { .. } => Opcode::STALL_TERM,
            Command::Sync(_) => Opcode::CMD_SYNC,
        }
    }

    /// The manual's name (`"CFGI_ALL"` for CFGI_STE_RANGE with Range = 31).
    pub fn name(&self) -> &'static str {
        match self {
            Command::CfgiAll => "CFGI_ALL",
            c => c.opcode().name().unwrap_or("UNKNOWN"),
        }
    }

    /// For CFGI_STE_RANGE / CFGI_ALL: the inclusive StreamID window `(first, last)` it
    /// invalidates (`2^(Range + 1)` SIDs from SID aligned down; CFGI_ALL: all 2^32).
    pub const fn cfgi_sid_range(&self) -> Option<(u32, u32)> {
        match *self {
            Command::CfgiSteRange { sid, range } => {
                // range <= 30 here, so the window is at most 2^31 SIDs.
                let n = 1u64 << (range as u32 + 1);
                let first = (sid.0 as u64) & !(n - 1);
                Some((first as u32, (first + n - 1) as u32))
            }
            Command::CfgiAll => Some((0, u32::MAX)),
            _ => None,
        }
    }

    /// For ATC_INV: the invalidated byte range `(base, size)`: 2^Size x 4 KiB from Addr aligned
    /// down to that size; Size 52 covers the whole 64-bit space (`(0, u64::MAX)`).
    pub const fn atc_span(&self) -> Option<(u64, u64)> {
        match *self {
            Command::AtcInv { addr, size, .. } => {
                if size >= 52 {
                    Some((0, u64::MAX))
                } else {
                    let bytes = 1u64 << (size as u32 + 12);
                    Some((addr & !(bytes - 1), bytes))
                }
            }
            _ => None,
        }
    }
}

#[path = "command_encode.rs"]
mod encode;

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
