//! Planning how a run of guest commands reaches the host: consecutive forwardable commands become
//! one [`HostViommu::invalidate`](crate::host::HostViommu::invalidate) call; CMD_SYNC,
//! CFGI_STE(_RANGE), PREFETCH and illegal commands end a batch and are handled by the vSMMU
//! itself, in guest order (Linux arm-smmu-v3-iommufd.c `arm_vsmmu_cache_invalidate()`).

use core::ops::Range;

use viommu_smmuv3::spec::cmd::CmdEntry;

use crate::error::InvalidateError;
use crate::spec::cmd::{forwarding, Forwarding};

/// One step in guest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Forward `cmds[range]` in one host call.
    Forward(Range<usize>),
    /// CMD_SYNC at this index: complete it once every earlier forward has returned.
    Sync(usize),
    /// CFGI_STE / CFGI_STE_RANGE / CFGI_ALL at this index: re-read STEs and re-attach.
    StreamConfig(usize),
    /// PREFETCH_* at this index: nothing to do.
    NoOp(usize),
    /// Not supported by an S1-only vSMMU: CERROR_ILL with CONS at this index; stop.
    Illegal(usize),
}

/// Split `cmds` into steps; forward ranges hold at most `max_batch` commands (≥ 1).
/// Planning stops after the first [`Step::Illegal`], since the guest queue stops there.
pub fn plan(cmds: &[CmdEntry], max_batch: usize) -> Vec<Step> {
    let max_batch = max_batch.max(1);
    let mut steps = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in cmds.iter().enumerate() {
        let class = forwarding(c.opcode());
        if class == Forwarding::Forward {
            match start {
                Some(s) if i - s < max_batch => {}
                Some(s) => {
                    steps.push(Step::Forward(s..i));
                    start = Some(i);
                }
                None => start = Some(i),
            }
            continue;
        }
        if let Some(s) = start.take() {
            steps.push(Step::Forward(s..i));
        }
        steps.push(match class {
            Forwarding::Sync => Step::Sync(i),
            Forwarding::StreamConfig => Step::StreamConfig(i),
            Forwarding::NoOp => Step::NoOp(i),
            Forwarding::Illegal | Forwarding::Forward => Step::Illegal(i),
        });
        if matches!(steps.last(), Some(Step::Illegal(_))) {
            return steps;
        }
    }
    if let Some(s) = start {
        steps.push(Step::Forward(s..cmds.len()));
    }
    steps
}

/// Where the guest's CMDQ_CONS must stop (with CERROR_ILL) after a forwarded batch that began at
/// guest index `batch_start` failed: exactly at the refused command. `None` if nothing was refused.
pub fn cons_on_failure(batch_start: usize, err: &InvalidateError) -> Option<usize> {
    match err {
        InvalidateError::Rejected { index, .. } => Some(batch_start + index),
        InvalidateError::TooLarge { .. } => Some(batch_start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Errno, HostOp};
    use crate::spec::cmd::{
        cfgi_cd_all, cfgi_ste, cmd_sync, tlbi_nh_all, tlbi_nh_asid, tlbi_nh_va, tlbi_nsnh_all,
    };
    use viommu_smmuv3::spec::cmd::Opcode;

    fn raw(op: u8) -> CmdEntry {
        CmdEntry::from_words([u64::from(op), 0])
    }

    #[test]
    fn linux_unmap_sequence_is_one_forward_then_sync() {
        let cmds = [
            tlbi_nh_va(1, 0x1000, true),
            tlbi_nh_va(1, 0x2000, true),
            cmd_sync(),
        ];
        assert_eq!(plan(&cmds, 64), vec![Step::Forward(0..2), Step::Sync(2)]);
    }

    #[test]
    fn ste_change_and_prefetch_break_batches_in_guest_order() {
        let cmds = [
            cfgi_cd_all(1),
            cfgi_ste(1, true),
            raw(0x01),
            tlbi_nh_all(),
            cmd_sync(),
            tlbi_nsnh_all(),
        ];
        assert_eq!(
            plan(&cmds, 64),
            vec![
                Step::Forward(0..1),
                Step::StreamConfig(1),
                Step::NoOp(2),
                Step::Forward(3..4),
                Step::Sync(4),
                Step::Forward(5..6)
            ]
        );
    }

    #[test]
    fn illegal_command_stops_planning() {
        let cmds = [tlbi_nh_all(), raw(0x2A), tlbi_nh_all()];
        assert_eq!(plan(&cmds, 64), vec![Step::Forward(0..1), Step::Illegal(1)]);
    }

    #[test]
    fn long_runs_split_at_max_batch() {
        let cmds = vec![tlbi_nh_asid(3); 5];
        assert_eq!(
            plan(&cmds, 2),
            vec![
                Step::Forward(0..2),
                Step::Forward(2..4),
                Step::Forward(4..5)
            ]
        );
    }

    #[test]
    fn cons_lands_on_the_refused_command() {
        let e = InvalidateError::Rejected {
            op: HostOp::Invalidate,
            applied: 2,
            index: 2,
            opcode: Opcode::CFGI_CD,
            errno: Errno::EIO,
        };
        assert_eq!(cons_on_failure(10, &e), Some(12));
    }
}
