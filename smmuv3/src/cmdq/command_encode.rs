//! The writer side of [`Command`]: the architectural words of a command, and its one-line
//! display with the manual's names. (Kept apart from decode so each file stays readable.)

use core::fmt;

use viommu_common::id::SubstreamId;

use super::{Command, PriResponse, ResumeAction, SyncSignal, TlbiRange};
use crate::spec::cmd::{
    CmdAtcInvW0, CmdAtcInvW1, CmdCfgiLeafW1, CmdCfgiRangeW1, CmdPrefetchW1, CmdPriRespW1,
    CmdResumeW0, CmdResumeW1, CmdStreamW0, CmdSyncW0, CmdSyncW1, CmdTlbiW0, CmdTlbiW1, Opcode,
    PriRespCode, ResumeResp, SyncCs,
};

/// Word 0 of a stream-addressed command.
fn stream_w0(op: Opcode, sid: u32, ssid: Option<SubstreamId>) -> u64 {
    CmdStreamW0::new()
        .with_opcode(op)
        .with_ssv(ssid.is_some())
        .with_ssid(ssid.map_or(0, |s| s.0 & 0xF_FFFF))
        .with_sid(sid)
        .raw()
}

/// Word 0 of a TLBI.
fn tlbi_w0(op: Opcode, vmid: u16, asid: u16, range: Option<&TlbiRange>) -> u64 {
    let (num, scale) = range.map_or((0, 0), |r| (r.num & 0x1f, r.scale & 0x1f));
    CmdTlbiW0::new()
        .with_opcode(op)
        .with_num(num)
        .with_scale(scale)
        .with_vmid(vmid)
        .with_asid(asid)
        .raw()
}

/// Word 1 of an address-based TLBI (`ipa`: TLBI_S2_IPA, address bits \[51:12\] only).
fn tlbi_w1(r: &TlbiRange, ipa: bool) -> u64 {
    let w = CmdTlbiW1::new()
        .with_leaf(r.leaf)
        .with_ttl(r.ttl & 3)
        .with_tg(r.tg & 3);
    if ipa {
        w.with_ipa(r.addr).raw()
    } else {
        w.with_addr(r.addr).raw()
    }
}

impl Command {
    /// The architectural words of this command (`[bits 63:0, bits 127:64]`), with every field
    /// masked to its width and reserved fields zero. For every command [`Command::decode`]
    /// accepts, `Command::decode(&c.encode(), caps) == Ok(c)`.
    pub fn encode(&self) -> [u64; 2] {
        match *self {
            Command::PrefetchConfig { sid, ssid } => {
                [stream_w0(Opcode::PREFETCH_CONFIG, sid.0, ssid), 0]
            }
            Command::PrefetchAddr {
                sid,
                ssid,
                addr,
                size,
            } => [
                stream_w0(Opcode::PREFETCH_ADDR, sid.0, ssid),
                CmdPrefetchW1::new()
                    .with_size(size & 0x1f)
                    .with_addr(addr)
                    .raw(),
            ],
            Command::CfgiSte { sid, leaf } => [
                stream_w0(Opcode::CFGI_STE, sid.0, None),
                CmdCfgiLeafW1::new().with_leaf(leaf).raw(),
            ],
            Command::CfgiSteRange { sid, range } => [
                stream_w0(Opcode::CFGI_STE_RANGE, sid.0, None),
                CmdCfgiRangeW1::new().with_range(range & 0x1f).raw(),
            ],
            Command::CfgiAll => [
                stream_w0(Opcode::CFGI_STE_RANGE, 0, None),
                CmdCfgiRangeW1::new().with_range(31).raw(),
            ],
            Command::CfgiCd { sid, ssid, leaf } => [
                CmdStreamW0::new()
                    .with_opcode(Opcode::CFGI_CD)
                    .with_ssid(ssid.0 & 0xF_FFFF)
                    .with_sid(sid.0)
                    .raw(),
                CmdCfgiLeafW1::new().with_leaf(leaf).raw(),
            ],
            Command::CfgiCdAll { sid } => [stream_w0(Opcode::CFGI_CD_ALL, sid.0, None), 0],
            Command::TlbiNhAll { vmid } => [tlbi_w0(Opcode::TLBI_NH_ALL, vmid.0, 0, None), 0],
            Command::TlbiNhAsid { vmid, asid } => {
                [tlbi_w0(Opcode::TLBI_NH_ASID, vmid.0, asid.0, None), 0]
            }
            Command::TlbiNhVa { vmid, asid, range } => [
                tlbi_w0(Opcode::TLBI_NH_VA, vmid.0, asid.0, Some(&range)),
                tlbi_w1(&range, false),
            ],
            Command::TlbiNhVaa { vmid, range } => [
                tlbi_w0(Opcode::TLBI_NH_VAA, vmid.0, 0, Some(&range)),
                tlbi_w1(&range, false),
            ],
            Command::TlbiEl2All => [tlbi_w0(Opcode::TLBI_EL2_ALL, 0, 0, None), 0],
            Command::TlbiEl2Asid { asid } => [tlbi_w0(Opcode::TLBI_EL2_ASID, 0, asid.0, None), 0],
            Command::TlbiEl2Va { asid, range } => [
                tlbi_w0(Opcode::TLBI_EL2_VA, 0, asid.0, Some(&range)),
                tlbi_w1(&range, false),
            ],
            Command::TlbiEl2Vaa { range } => [
                tlbi_w0(Opcode::TLBI_EL2_VAA, 0, 0, Some(&range)),
                tlbi_w1(&range, false),
            ],
            Command::TlbiS12Vmall { vmid } => [tlbi_w0(Opcode::TLBI_S12_VMALL, vmid.0, 0, None), 0],
            Command::TlbiS2Ipa { vmid, range } => [
                tlbi_w0(Opcode::TLBI_S2_IPA, vmid.0, 0, Some(&range)),
                tlbi_w1(&range, true),
            ],
            Command::TlbiNsnhAll => [tlbi_w0(Opcode::TLBI_NSNH_ALL, 0, 0, None), 0],
            Command::AtcInv {
                sid,
                ssid,
                global,
                addr,
                size,
            } => [
                CmdAtcInvW0::new()
                    .with_opcode(Opcode::ATC_INV)
                    .with_global(global)
                    .with_ssv(ssid.is_some())
                    .with_ssid(ssid.map_or(0, |s| s.0 & 0xF_FFFF))
                    .with_sid(sid.0)
                    .raw(),
                CmdAtcInvW1::new()
                    .with_size(size & 0x3f)
                    .with_addr(addr)
                    .raw(),
            ],
            Command::PriResp {
                sid,
                ssid,
                prg_index,
                resp,
            } => [
                stream_w0(Opcode::PRI_RESP, sid.0, ssid),
                CmdPriRespW1::new()
                    .with_prg_index(prg_index & 0x1ff)
                    .with_resp(match resp {
                        PriResponse::ResponseFailure => PriRespCode::RESPONSE_FAILURE,
                        PriResponse::InvalidRequest => PriRespCode::INVALID_REQUEST,
                        PriResponse::Success => PriRespCode::SUCCESS,
                    })
                    .raw(),
            ],
            Command::Resume { sid, stag, resp } => [
                CmdResumeW0::new()
                    .with_opcode(Opcode::RESUME)
                    .with_resp(match resp {
                        ResumeAction::Terminate => ResumeResp::TERM,
                        ResumeAction::Retry => ResumeResp::RETRY,
                        ResumeAction::Abort => ResumeResp::ABORT,
                    })
                    .with_sid(sid.0)
                    .raw(),
                CmdResumeW1::new().with_stag(stag).raw(),
            ],
            Command::StallTerm { sid } => [stream_w0(Opcode::STALL_TERM, sid.0, None), 0],
            Command::Sync(s) => [
                CmdSyncW0::new()
                    .with_opcode(Opcode::CMD_SYNC)
                    .with_cs(match s.cs {
                        SyncSignal::None => SyncCs::SIG_NONE,
                        SyncSignal::Irq => SyncCs::SIG_IRQ,
                        SyncSignal::Sev => SyncCs::SIG_SEV,
                    })
                    .with_msh(s.msh & 3)
                    .with_msiattr(s.msi_attr & 0xf)
                    .with_msidata(s.msi_data)
                    .raw(),
                CmdSyncW1::new().with_msi_addr(s.msi_addr).raw(),
            ],
        }
    }
}

fn fmt_ssid(f: &mut fmt::Formatter<'_>, ssid: Option<SubstreamId>) -> fmt::Result {
    match ssid {
        Some(s) => write!(f, " SSID={s}"),
        None => Ok(()),
    }
}

impl fmt::Display for TlbiRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr={:#x}", self.addr)?;
        if self.tg != 0 {
            write!(
                f,
                " NUM={} SCALE={} TG={} TTL={}",
                self.num, self.scale, self.tg, self.ttl
            )?;
        }
        write!(f, " Leaf={}", u8::from(self.leaf))
    }
}

impl fmt::Display for Command {
    /// One line with the manual's names, e.g. `CFGI_STE SID=0x10 Leaf=1`,
    /// `TLBI_NH_VA VMID=0x0 ASID=0x5 Addr=0x10000000 NUM=4 SCALE=0 TG=1 TTL=3 Leaf=1`,
    /// `CMD_SYNC CS=SIG_IRQ MSH=3 MSIAttr=0xf MSIData=0x0 MSIAddr=0x40001230`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match *self {
            Command::PrefetchConfig { sid, ssid } => {
                write!(f, " SID={sid}")?;
                fmt_ssid(f, ssid)
            }
            Command::PrefetchAddr {
                sid,
                ssid,
                addr,
                size,
            } => {
                write!(f, " SID={sid}")?;
                fmt_ssid(f, ssid)?;
                write!(f, " Addr={addr:#x} Size={size}")
            }
            Command::CfgiSte { sid, leaf } => write!(f, " SID={sid} Leaf={}", u8::from(leaf)),
            Command::CfgiSteRange { sid, range } => write!(f, " SID={sid} Range={range}"),
            Command::CfgiAll | Command::TlbiEl2All | Command::TlbiNsnhAll => Ok(()),
            Command::CfgiCd { sid, ssid, leaf } => {
                write!(f, " SID={sid} SSID={ssid} Leaf={}", u8::from(leaf))
            }
            Command::CfgiCdAll { sid } | Command::StallTerm { sid } => write!(f, " SID={sid}"),
            Command::TlbiNhAll { vmid } | Command::TlbiS12Vmall { vmid } => {
                write!(f, " VMID={vmid}")
            }
            Command::TlbiNhAsid { vmid, asid } => write!(f, " VMID={vmid} ASID={asid}"),
            Command::TlbiNhVa { vmid, asid, range } => {
                write!(f, " VMID={vmid} ASID={asid} {range}")
            }
            Command::TlbiNhVaa { vmid, range } | Command::TlbiS2Ipa { vmid, range } => {
                write!(f, " VMID={vmid} {range}")
            }
            Command::TlbiEl2Asid { asid } => write!(f, " ASID={asid}"),
            Command::TlbiEl2Va { asid, range } => write!(f, " ASID={asid} {range}"),
            Command::TlbiEl2Vaa { range } => write!(f, " {range}"),
            Command::AtcInv {
                sid,
                ssid,
                global,
                addr,
                size,
            } => {
                write!(f, " SID={sid}")?;
                fmt_ssid(f, ssid)?;
                write!(f, " Global={} Addr={addr:#x} Size={size}", u8::from(global))
            }
            Command::PriResp {
                sid,
                ssid,
                prg_index,
                resp,
            } => {
                write!(f, " SID={sid}")?;
                fmt_ssid(f, ssid)?;
                let r = match resp {
                    PriResponse::ResponseFailure => "ResponseFailure",
                    PriResponse::InvalidRequest => "InvalidRequest",
                    PriResponse::Success => "Success",
                };
                write!(f, " PRGIndex={prg_index} Resp={r}")
            }
            Command::Resume { sid, stag, resp } => {
                let r = match resp {
                    ResumeAction::Terminate => "TERM",
                    ResumeAction::Retry => "RETRY",
                    ResumeAction::Abort => "ABORT",
                };
                write!(f, " SID={sid} STAG={stag:#x} Resp={r}")
            }
            Command::Sync(s) => {
                let cs = match s.cs {
                    SyncSignal::None => "SIG_NONE",
                    SyncSignal::Irq => "SIG_IRQ",
                    SyncSignal::Sev => "SIG_SEV",
                };
                write!(
                    f,
                    " CS={cs} MSH={} MSIAttr={:#x} MSIData={:#x} MSIAddr={:#x}",
                    s.msh, s.msi_attr, s.msi_data, s.msi_addr
                )
            }
        }
    }
}
