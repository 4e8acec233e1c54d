//! Decode of the prefetch and configuration-invalidation commands (IHI 0070 chapter 4):
//! PREFETCH_CONFIG, PREFETCH_ADDR, CFGI_STE, CFGI_STE_RANGE (CFGI_ALL with Range = 31),
//! CFGI_CD, CFGI_CD_ALL, and CFGI_VMS_PIDM (refused: no VMS).

use viommu_common::id::{StreamId, SubstreamId};

use super::{
    reject_res0, require_feature, stream_w0, substream, Command, CommandError, StreamFields,
};
use crate::caps::Caps;
use crate::spec::cmd::{CmdCfgiLeafW1, CmdCfgiRangeW1, CmdPrefetchW1, Opcode};

/// Decode a command of this family (`op` is one of its opcodes).
pub(super) fn decode(op: Opcode, w0: u64, w1: u64, caps: &Caps) -> Result<Command, CommandError> {
    Ok(match op {
        Opcode::PREFETCH_CONFIG => {
            // Word 1 is not checked: the architecture defines Size/Addr there for some
            // revisions and the command is a hint.
            let w = stream_w0(op, w0, StreamFields::ALL)?;
            Command::PrefetchConfig {
                sid: StreamId(w.sid()),
                ssid: substream(w),
            }
        }
        Opcode::PREFETCH_ADDR => {
            let w = stream_w0(op, w0, StreamFields::ALL)?;
            let p = CmdPrefetchW1::from_raw(w1);
            reject_res0(op, 1, p.rsvd_11_5().into(), 5)?;
            Command::PrefetchAddr {
                sid: StreamId(w.sid()),
                ssid: substream(w),
                addr: p.addr(),
                size: p.size(),
            }
        }
        Opcode::CFGI_STE => {
            let w = stream_w0(op, w0, StreamFields::SID_ONLY)?;
            let l = CmdCfgiLeafW1::from_raw(w1);
            reject_res0(op, 1, l.rsvd(), 1)?;
            Command::CfgiSte {
                sid: StreamId(w.sid()),
                leaf: l.leaf(),
            }
        }
        Opcode::CFGI_STE_RANGE => {
            let w = stream_w0(op, w0, StreamFields::SID_ONLY)?;
            let r = CmdCfgiRangeW1::from_raw(w1);
            reject_res0(op, 1, r.rsvd(), 5)?;
            if r.range() == 31 {
                Command::CfgiAll
            } else {
                Command::CfgiSteRange {
                    sid: StreamId(w.sid()),
                    range: r.range(),
                }
            }
        }
        Opcode::CFGI_CD => {
            require_feature(op, caps.s1(), "IDR0.S1P")?;
            let w = stream_w0(
                op,
                w0,
                StreamFields {
                    ssv: false,
                    ssid: true,
                },
            )?;
            let l = CmdCfgiLeafW1::from_raw(w1);
            reject_res0(op, 1, l.rsvd(), 1)?;
            Command::CfgiCd {
                sid: StreamId(w.sid()),
                ssid: SubstreamId(w.ssid()),
                leaf: l.leaf(),
            }
        }
        Opcode::CFGI_CD_ALL => {
            require_feature(op, caps.s1(), "IDR0.S1P")?;
            let w = stream_w0(op, w0, StreamFields::SID_ONLY)?;
            reject_res0(op, 1, w1, 0)?;
            Command::CfgiCdAll {
                sid: StreamId(w.sid()),
            }
        }
        Opcode::CFGI_VMS_PIDM => {
            return Err(CommandError::Unsupported {
                opcode: op,
                feature: "VMS (SMMUv3.2 virtual machine structures)",
            })
        }
        Opcode(other) => return Err(CommandError::UnknownOpcode(other)),
    })
}
