//! Command effects (IHI 0070 §4; smmuv3.md §8.3, §8.4). Provisional: CMD_SYNC only, until the
//! typed `Command` decoder lands.

use crate::device::{GuestRam, SmmuV3};
use crate::spec::cmd::CmdEntry;
use crate::spec::regs::CmdqErr;
use crate::trace::{Effect, TraceRecord};

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Decode and execute one command read from queue position `pos`.
    pub(crate) fn execute(&self, pos: u32, entry: CmdEntry) -> Result<(), (CmdqErr, String)> {
        let [w0, w1] = entry.words();
        let effects = match w0 & 0xff {
            0x46 => {
                let cs = (w0 >> 12) & 3;
                match cs {
                    1 => {
                        let d = self.sync_signal(w1 & 0x000F_FFFF_FFFF_FFFC, (w0 >> 32) as u32);
                        vec![Effect::Sync(format!("{d:?}"))]
                    }
                    3 => return Err((CmdqErr::CERROR_ILL, "CMD_SYNC CS=3".into())),
                    _ => vec![Effect::Sync("completed".into())],
                }
            }
            _ => vec![Effect::Nothing("provisional")],
        };
        self.trace(|| TraceRecord::Command {
            pos,
            command: format!("{w0:#018x} {w1:#018x}"),
            effects,
        });
        Ok(())
    }
}
