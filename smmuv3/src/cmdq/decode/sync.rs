//! Decode of CMD_SYNC (IHI 0070 chapter 4): completion signal, MSI attributes, data and
//! address. CS = 3 is reserved (CERROR_ILL).

use super::{reject_res0, Command, CommandError};
use crate::cmdq::command::{SyncCmd, SyncSignal};
use crate::spec::cmd::{CmdSyncW0, CmdSyncW1, Opcode, SyncCs};

/// Decode a CMD_SYNC (`op` is CMD_SYNC; every SMMU accepts it, whatever its capabilities).
pub(super) fn decode(op: Opcode, w0: u64, w1: u64) -> Result<Command, CommandError> {
    let w = CmdSyncW0::from_raw(w0);
    reject_res0(op, 0, w.rsvd_11_8().into(), 8)?;
    reject_res0(op, 0, w.rsvd_21_14().into(), 14)?;
    reject_res0(op, 0, w.rsvd_31_28().into(), 28)?;
    let s = CmdSyncW1::from_raw(w1);
    reject_res0(op, 1, s.rsvd_1_0().into(), 0)?;
    reject_res0(op, 1, s.rsvd_63_52().into(), 52)?;
    let cs = match w.cs() {
        SyncCs::SIG_NONE => SyncSignal::None,
        SyncCs::SIG_IRQ => SyncSignal::Irq,
        SyncCs::SIG_SEV => SyncSignal::Sev,
        SyncCs(v) => {
            return Err(CommandError::ReservedValue {
                opcode: op,
                field: "CS",
                value: v,
            })
        }
    };
    Ok(Command::Sync(SyncCmd {
        cs,
        msh: w.msh(),
        msi_attr: w.msiattr(),
        msi_data: w.msidata(),
        msi_addr: s.msi_addr(),
    }))
}
