//! Conversions between the device's state types and the snapshot's plain data (save side:
//! total; restore side: refuses a fault name the model does not know).

use viommu_common::access::{AccessKind, DmaRequest, Perms};
use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::{StreamId, SubstreamId};
use viommu_common::traits::{DmaFault, DmaMapping, FaultKind, MemAttrs};

use crate::caps::IdRegs;
use crate::cmdq::command::PriResponse;
use crate::device::{HeldProgress, HeldTransaction, IrqCfg};
use crate::priq::PrgResponse;
use crate::stall::Resolution;

use super::{
    AccessSnapshot, FaultKindSnapshot, FaultSnapshot, IdRegsSnapshot, IrqCfgSnapshot,
    MappingSnapshot, PrgResponseSnapshot, PriCodeSnapshot, ProgressSnapshot, RequestSnapshot,
    ResolutionSnapshot, SnapshotError, StalledSnapshot,
};

pub(super) fn prg_save(r: PrgResponse) -> PrgResponseSnapshot {
    let PrgResponse {
        code,
        pasid,
        automatic,
    } = r;
    PrgResponseSnapshot {
        code: match code {
            PriResponse::ResponseFailure => PriCodeSnapshot::ResponseFailure,
            PriResponse::InvalidRequest => PriCodeSnapshot::InvalidRequest,
            PriResponse::Success => PriCodeSnapshot::Success,
        },
        pasid: pasid.map(|p| p.0),
        automatic,
    }
}

pub(super) fn prg_restore(r: PrgResponseSnapshot) -> PrgResponse {
    PrgResponse {
        code: match r.code {
            PriCodeSnapshot::ResponseFailure => PriResponse::ResponseFailure,
            PriCodeSnapshot::InvalidRequest => PriResponse::InvalidRequest,
            PriCodeSnapshot::Success => PriResponse::Success,
        },
        pasid: r.pasid.map(SubstreamId),
        automatic: r.automatic,
    }
}

/// `impl From<$from> for $to` for two structs with the same fields, listed once. Both sides
/// are exhaustive (a destructuring pattern and a struct literal, neither with `..`), so a field
/// added to either struct fails to compile until it is listed here.
macro_rules! from_same_fields {
    ($from:ident => $to:ident { $($field:ident),+ $(,)? }) => {
        impl From<$from> for $to {
            fn from(v: $from) -> Self {
                let $from { $($field),+ } = v;
                Self { $($field),+ }
            }
        }
    };
}

from_same_fields!(IdRegs => IdRegsSnapshot { idr0, idr1, idr2, idr3, idr4, idr5, iidr, aidr });
from_same_fields!(IrqCfg => IrqCfgSnapshot { cfg0, cfg1, cfg2 });
from_same_fields!(IrqCfgSnapshot => IrqCfg { cfg0, cfg1, cfg2 });

impl IdRegsSnapshot {
    /// The registers with their manual names, IDR0 first.
    pub(super) fn with_names(&self) -> [(&'static str, u32); 8] {
        [
            ("IDR0", self.idr0),
            ("IDR1", self.idr1),
            ("IDR2", self.idr2),
            ("IDR3", self.idr3),
            ("IDR4", self.idr4),
            ("IDR5", self.idr5),
            ("IIDR", self.iidr),
            ("AIDR", self.aidr),
        ]
    }
}

pub(super) fn access_save(a: AccessKind) -> AccessSnapshot {
    match a {
        AccessKind::Read => AccessSnapshot::Read,
        AccessKind::Write => AccessSnapshot::Write,
        AccessKind::Exec => AccessSnapshot::Exec,
    }
}

pub(super) fn fault_save(f: &DmaFault) -> FaultSnapshot {
    let DmaFault {
        kind,
        event,
        addr,
        stall_tag,
    } = *f;
    FaultSnapshot {
        kind: match kind {
            FaultKind::Translation => FaultKindSnapshot::Translation,
            FaultKind::Permission => FaultKindSnapshot::Permission,
            FaultKind::AccessFlag => FaultKindSnapshot::AccessFlag,
            FaultKind::AddressSize => FaultKindSnapshot::AddressSize,
            FaultKind::ExternalAbort => FaultKindSnapshot::ExternalAbort,
            FaultKind::Configuration => FaultKindSnapshot::Configuration,
            FaultKind::Stalled => FaultKindSnapshot::Stalled,
        },
        event: event.name().to_owned(),
        addr,
        stall_tag,
    }
}

pub(super) fn fault_restore(f: &FaultSnapshot) -> Result<DmaFault, SnapshotError> {
    Ok(DmaFault {
        kind: match f.kind {
            FaultKindSnapshot::Translation => FaultKind::Translation,
            FaultKindSnapshot::Permission => FaultKind::Permission,
            FaultKindSnapshot::AccessFlag => FaultKind::AccessFlag,
            FaultKindSnapshot::AddressSize => FaultKind::AddressSize,
            FaultKindSnapshot::ExternalAbort => FaultKind::ExternalAbort,
            FaultKindSnapshot::Configuration => FaultKind::Configuration,
            FaultKindSnapshot::Stalled => FaultKind::Stalled,
        },
        event: f
            .event
            .parse::<Smmuv3FaultId>()
            .map(Into::into)
            .map_err(|_| SnapshotError::StallTable(format!("unknown fault {:?}", f.event)))?,
        addr: f.addr,
        stall_tag: f.stall_tag,
    })
}

pub(super) fn held_save(h: &HeldTransaction) -> StalledSnapshot {
    let HeldTransaction {
        stag,
        req,
        fault,
        progress,
    } = h;
    StalledSnapshot {
        stag: *stag,
        request: RequestSnapshot {
            stream: req.stream.0,
            substream: req.substream.map(|s| s.0),
            addr: req.addr,
            len: req.len,
            access: access_save(req.access),
            privileged: req.privileged,
        },
        fault: fault_save(fault),
        progress: match progress {
            HeldProgress::Held => ProgressSnapshot::Held,
            HeldProgress::AwaitingQueue => ProgressSnapshot::AwaitingQueue,
            HeldProgress::Forward(n) => ProgressSnapshot::Forward(*n),
            HeldProgress::Done { how, result } => ProgressSnapshot::Done {
                how: match how {
                    Resolution::Retried => ResolutionSnapshot::Retried,
                    Resolution::Aborted => ResolutionSnapshot::Aborted,
                    Resolution::RazWi => ResolutionSnapshot::RazWi,
                },
                result: match result {
                    Ok(m) => Ok(MappingSnapshot {
                        output: m.output,
                        len: m.len,
                        perms: m.perms.bits(),
                        mair: m.attrs.mair,
                        shareability: m.attrs.shareability,
                        device: m.attrs.device,
                    }),
                    Err(f) => Err(fault_save(f)),
                },
            },
        },
    }
}

pub(super) fn held_restore(s: &StalledSnapshot) -> Result<HeldTransaction, SnapshotError> {
    let r = &s.request;
    let req = DmaRequest {
        stream: StreamId(r.stream),
        substream: r.substream.map(SubstreamId),
        addr: r.addr,
        len: r.len,
        access: match r.access {
            AccessSnapshot::Read => AccessKind::Read,
            AccessSnapshot::Write => AccessKind::Write,
            AccessSnapshot::Exec => AccessKind::Exec,
        },
        privileged: r.privileged,
    };
    let progress = match &s.progress {
        ProgressSnapshot::Held => HeldProgress::Held,
        ProgressSnapshot::AwaitingQueue => HeldProgress::AwaitingQueue,
        ProgressSnapshot::Forward(n) => HeldProgress::Forward(*n),
        ProgressSnapshot::Done { how, result } => HeldProgress::Done {
            how: match how {
                ResolutionSnapshot::Retried => Resolution::Retried,
                ResolutionSnapshot::Aborted => Resolution::Aborted,
                ResolutionSnapshot::RazWi => Resolution::RazWi,
            },
            result: match result {
                Ok(m) => Ok(DmaMapping {
                    output: m.output,
                    len: m.len,
                    perms: Perms::from_bits(m.perms),
                    attrs: MemAttrs {
                        mair: m.mair,
                        shareability: m.shareability,
                        device: m.device,
                    },
                }),
                Err(f) => Err(fault_restore(f)?),
            },
        },
    };
    Ok(HeldTransaction {
        stag: s.stag,
        req,
        fault: fault_restore(&s.fault)?,
        progress,
    })
}
