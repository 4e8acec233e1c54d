//! Decode of the ATS, PRI and stall commands (IHI 0070 chapter 4): ATC_INV (needs IDR0.ATS),
//! PRI_RESP (needs IDR0.PRI), RESUME and STALL_TERM (need stalls: IDR0.STALL_MODEL != 1).

use viommu_common::id::{StreamId, SubstreamId};

use super::{
    reject_res0, require_feature, stream_w0, substream, Command, CommandError, StreamFields,
};
use crate::caps::Caps;
use crate::cmdq::command::{PriResponse, ResumeAction};
use crate::spec::cmd::{
    CmdAtcInvW0, CmdAtcInvW1, CmdPriRespW1, CmdResumeW0, CmdResumeW1, Opcode, PriRespCode,
    ResumeResp,
};

/// Decode a command of this family (`op` is one of its opcodes).
pub(super) fn decode(op: Opcode, w0: u64, w1: u64, caps: &Caps) -> Result<Command, CommandError> {
    Ok(match op {
        Opcode::ATC_INV => {
            require_feature(op, caps.ats(), "IDR0.ATS")?;
            let w = CmdAtcInvW0::from_raw(w0);
            reject_res0(op, 0, w.rsvd_8().into(), 8)?;
            if w.rsvd_10() {
                return Err(CommandError::SecureStream { opcode: op });
            }
            let v = CmdAtcInvW1::from_raw(w1);
            reject_res0(op, 1, v.rsvd_11_6().into(), 6)?;
            Command::AtcInv {
                sid: StreamId(w.sid()),
                ssid: w.ssv().then(|| SubstreamId(w.ssid())),
                global: w.global(),
                addr: v.addr(),
                size: v.size().min(52),
            }
        }
        Opcode::PRI_RESP => {
            require_feature(op, caps.pri(), "IDR0.PRI")?;
            let w = stream_w0(op, w0, StreamFields::ALL)?;
            let r = CmdPriRespW1::from_raw(w1);
            reject_res0(op, 1, r.rsvd_11_9().into(), 9)?;
            reject_res0(op, 1, r.rsvd(), 14)?;
            let resp = match r.resp() {
                PriRespCode::RESPONSE_FAILURE => PriResponse::ResponseFailure,
                PriRespCode::INVALID_REQUEST => PriResponse::InvalidRequest,
                PriRespCode::SUCCESS => PriResponse::Success,
                PriRespCode(v) => {
                    return Err(CommandError::ReservedValue {
                        opcode: op,
                        field: "Resp",
                        value: v,
                    })
                }
            };
            Command::PriResp {
                sid: StreamId(w.sid()),
                ssid: substream(w),
                prg_index: r.prg_index(),
                resp,
            }
        }
        Opcode::RESUME => {
            require_feature(op, caps.stalls(), "IDR0.STALL_MODEL != 1 (stalls)")?;
            let w = CmdResumeW0::from_raw(w0);
            reject_res0(op, 0, w.rsvd_9_8().into(), 8)?;
            if w.ssec() {
                return Err(CommandError::SecureStream { opcode: op });
            }
            reject_res0(op, 0, w.rsvd_11().into(), 11)?;
            reject_res0(op, 0, w.rsvd_31_14().into(), 14)?;
            let r = CmdResumeW1::from_raw(w1);
            reject_res0(op, 1, r.rsvd(), 16)?;
            let resp = match w.resp() {
                ResumeResp::TERM => ResumeAction::Terminate,
                ResumeResp::RETRY => ResumeAction::Retry,
                ResumeResp::ABORT => ResumeAction::Abort,
                // Resp is Ac [12] (retry) and Ab [13] (abort); Ab is IGNORED on a retry
                // (IHI 0070 §4.7.1), so 0b11 is a retry.
                _ => ResumeAction::Retry,
            };
            Command::Resume {
                sid: StreamId(w.sid()),
                stag: r.stag(),
                resp,
            }
        }
        Opcode::STALL_TERM => {
            require_feature(op, caps.stalls(), "IDR0.STALL_MODEL != 1 (stalls)")?;
            let w = stream_w0(op, w0, StreamFields::SID_ONLY)?;
            reject_res0(op, 1, w1, 0)?;
            Command::StallTerm {
                sid: StreamId(w.sid()),
            }
        }
        Opcode(other) => return Err(CommandError::UnknownOpcode(other)),
    })
}
