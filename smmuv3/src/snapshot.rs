//! Save and restore: the device's complete architectural state as a versioned, serializable
//! snapshot (serde; JSON through [`SmmuV3Snapshot::to_json`] / [`SmmuV3Snapshot::from_json`]).
//!
//! A VMM pauses the VM (no MMIO access and no DMA in flight), calls [`SmmuV3::save`], and on
//! the destination creates a device with the same [`SmmuConfig`](crate::caps::SmmuConfig) and
//! guest memory and calls [`SmmuV3::restore`]. Afterwards the device behaves exactly as the
//! saved one would have: same registers, queue positions, pending command-queue work, GERROR
//! state, a pending CERROR_ATC_INV_SYNC, the Page Request Groups awaiting or holding a
//! response (so a CMD_PRI_RESP after the restore still reaches the endpoint), and the stall
//! table: every held transaction with its original request and fault under the same STAG, the
//! completed ones whose endpoint has not collected the result, and the STAG allocator. After
//! the restore a CMD_RESUME(Retry) re-translates the saved request on the new device, and the
//! endpoint (which waits for `(stream, STAG)` through [`SmmuV3::stall_status`] /
//! [`SmmuV3::wait_stall`] on the new device) sees the result; RESUME(Abort) and CMD_STALL_TERM
//! give the original fault.
//!
//! What is **not** state: caches (configuration, routes, IOTLB; rebuilt from guest memory on
//! demand), the trace hook, the command batch limit, statistics, registered ATCs (the VMM
//! registers its endpoints again) and interrupt-controller state (an MSI already sent stays
//! sent; a wired line's level is the VMM's to restore).
//!
//! # Format and compatibility
//!
//! The snapshot is plain data ([`SmmuV3Snapshot`], version [`SNAPSHOT_VERSION`]).
//! [`SmmuV3::save`] destructures [`SmmuV3State`] and its parts exhaustively, so a field added
//! to the device state is a compile error here until someone decides how it migrates: add a
//! field to the snapshot (with `#[serde(default)]` if older snapshots stay loadable, or bump
//! [`SNAPSHOT_VERSION`]).
//!
//! Version history: 1 saved only (stream, STAG, address) of held stalls and refused to restore
//! any; 2 saves the whole stall table ([`StallTableSnapshot`]). Version-1 snapshots are refused
//! ([`SnapshotError::UnsupportedVersion`]).
//!
//! A snapshot is untrusted input. Restore refuses, with a typed [`SnapshotError`] naming the
//! field, a snapshot of another version, one taken on a device with different ID registers, a
//! register value its guest-write sanitiser would change (reserved bits, features this
//! configuration lacks, GBPA with UPDATE set), a stall table this device cannot hold (more
//! entries than its IDR5.STALL_MAX, a STAG used twice, an unknown fault name, a request no
//! translation could have stalled, a retry chain leading nowhere), PRI groups it could not track
//! and a pending ATC error without ATS. An accepted snapshot is restored exactly: saving right
//! after gives it back.

mod check;
mod convert;

use serde::{Deserialize, Serialize};

use crate::cmdq::CmdqState;
use crate::device::{lock, CtrlState, GuestRam, IrqState, SmmuV3, SmmuV3State, StallState};
use crate::evtq::EvtqState;
use crate::spec::regs::Cr0;
use convert::{held_restore, held_save, prg_restore, prg_save};

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 2;

/// A saved SMMUv3 (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmmuV3Snapshot {
    /// Format version ([`SNAPSHOT_VERSION`]).
    pub version: u32,
    /// ID registers of the saved device: the restoring device must present the same.
    pub id_regs: IdRegsSnapshot,
    /// CR0..CR2, GBPA, stream table and command/PRI queue registers.
    pub ctrl: CtrlSnapshot,
    /// Event queue registers.
    pub evtq: QueueSnapshot,
    /// IRQ_CTRL, GERROR/GERRORN and MSI configuration.
    pub irq: IrqSnapshot,
    /// The stall table (held transactions and uncollected results).
    pub stalls: StallTableSnapshot,
    /// A CMD_ATC_INV failed and the next CMD_SYNC fails with CERROR_ATC_INV_SYNC.
    pub atc_sync_error: bool,
    /// Page Request Groups the device tracks (requested, or answered and not yet collected by
    /// the endpoint), oldest first.
    pub pri_groups: Vec<PriGroupSnapshot>,
}

/// IDR0..IDR5, IIDR, AIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(missing_docs, reason = "one field per register, named as the register")]
pub struct IdRegsSnapshot {
    pub idr0: u32,
    pub idr1: u32,
    pub idr2: u32,
    pub idr3: u32,
    pub idr4: u32,
    pub idr5: u32,
    pub iidr: u32,
    pub aidr: u32,
}

/// A queue's BASE, PROD and CONS registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSnapshot {
    /// `*_BASE`.
    pub base: u64,
    /// `*_PROD`.
    pub prod: u32,
    /// `*_CONS`.
    pub cons: u32,
}

/// Control registers and the command and PRI queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtrlSnapshot {
    /// CR0.
    pub cr0: u32,
    /// CR1.
    pub cr1: u32,
    /// CR2.
    pub cr2: u32,
    /// GBPA.
    pub gbpa: u32,
    /// STRTAB_BASE.
    pub strtab_base: u64,
    /// STRTAB_BASE_CFG.
    pub strtab_base_cfg: u32,
    /// CMDQ_BASE/PROD/CONS.
    pub cmdq: QueueSnapshot,
    /// PRIQ_BASE/PROD/CONS.
    pub priq: QueueSnapshot,
}

/// One interrupt source's `*_IRQ_CFG0/1/2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrqCfgSnapshot {
    /// `*_IRQ_CFG0`.
    pub cfg0: u64,
    /// `*_IRQ_CFG1`.
    pub cfg1: u32,
    /// `*_IRQ_CFG2`.
    pub cfg2: u32,
}

/// Interrupt control and global errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrqSnapshot {
    /// IRQ_CTRL.
    pub irq_ctrl: u32,
    /// GERROR.
    pub gerror: u32,
    /// GERRORN.
    pub gerrorn: u32,
    /// GERROR_IRQ_CFG*.
    pub gerror_cfg: IrqCfgSnapshot,
    /// EVENTQ_IRQ_CFG*.
    pub eventq_cfg: IrqCfgSnapshot,
    /// PRIQ_IRQ_CFG*.
    pub priq_cfg: IrqCfgSnapshot,
}

/// The stall table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallTableSnapshot {
    /// The next STAG the allocator tries (so the restored device allocates the same STAGs).
    pub next_stag: u16,
    /// Entries, oldest first.
    pub entries: Vec<StalledSnapshot>,
}

/// A stalled transaction (held, or completed and not yet collected by its endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StalledSnapshot {
    /// STAG.
    pub stag: u16,
    /// The original request, re-translated by CMD_RESUME(Retry).
    pub request: RequestSnapshot,
    /// The fault it reports when terminated (CMD_RESUME(Abort), CMD_STALL_TERM).
    pub fault: FaultSnapshot,
    /// Where it stands.
    pub progress: ProgressSnapshot,
}

/// A DMA request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSnapshot {
    /// StreamID.
    pub stream: u32,
    /// SubstreamID, if the transaction carried one.
    pub substream: Option<u32>,
    /// Input address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// Access.
    pub access: AccessSnapshot,
    /// Privileged.
    pub privileged: bool,
}

/// A DMA access kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[expect(missing_docs, reason = "one variant per AccessKind")]
pub enum AccessSnapshot {
    Read,
    Write,
    Exec,
}

/// A translation fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSnapshot {
    /// Fault class.
    pub kind: FaultKindSnapshot,
    /// Architectural name (`F_TRANSLATION`, `C_BAD_STE`, `STE_ABORT`, ...).
    pub event: String,
    /// Input address.
    pub addr: u64,
    /// Stall tag (a retry that stalled again).
    pub stall_tag: Option<u16>,
}

/// A fault class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[expect(missing_docs, reason = "one variant per FaultKind")]
pub enum FaultKindSnapshot {
    Translation,
    Permission,
    AccessFlag,
    AddressSize,
    ExternalAbort,
    Configuration,
    Stalled,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSnapshot {
    /// Output address.
    pub output: u64,
    /// Contiguous length.
    pub len: u64,
    /// Permissions (R = 1, W = 2, X = 4).
    pub perms: u8,
    /// MAIR attribute.
    pub mair: u8,
    /// Shareability.
    pub shareability: u8,
    /// Device-specific attributes.
    pub device: u32,
}

/// A stalled transaction's progress.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProgressSnapshot {
    /// Record written, waiting for the guest.
    Held,
    /// Record not written yet; retried when the event queue is next writable.
    AwaitingQueue,
    /// Retried and stalled again under this STAG.
    Forward(u16),
    /// Completed, result not collected.
    Done {
        /// How.
        how: ResolutionSnapshot,
        /// The retried translation or the fault.
        result: Result<MappingSnapshot, FaultSnapshot>,
    },
}

/// How a stalled transaction completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[expect(missing_docs, reason = "one variant per stall::Resolution")]
pub enum ResolutionSnapshot {
    Retried,
    Aborted,
    RazWi,
}

/// A Page Request Group the device tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriGroupSnapshot {
    /// StreamID.
    pub stream: u32,
    /// PRGIndex.
    pub group: u16,
    /// The response, once CMD_PRI_RESP (or the SMMU itself) answered it.
    pub response: Option<PrgResponseSnapshot>,
}

/// A PRG response waiting for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrgResponseSnapshot {
    /// Response code.
    pub code: PriCodeSnapshot,
    /// PASID of the response.
    pub pasid: Option<u32>,
    /// Generated by the SMMU (not by CMD_PRI_RESP).
    pub automatic: bool,
}

/// A PRI response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PriCodeSnapshot {
    /// ResponseFailure.
    ResponseFailure,
    /// InvalidRequest.
    InvalidRequest,
    /// Success.
    Success,
}

/// Why a snapshot cannot be restored (or read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Written by another format version.
    #[error("snapshot version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The snapshot's version.
        found: u32,
        /// [`SNAPSHOT_VERSION`].
        supported: u32,
    },
    /// Taken on a device with other ID registers (another configuration).
    #[error("{register} is {snapshot:#x} in the snapshot but {device:#x} on this device")]
    ConfigMismatch {
        /// The first differing register.
        register: &'static str,
        /// Its value in the snapshot.
        snapshot: u32,
        /// Its value on this device.
        device: u32,
    },
    /// A register value this device could never hold (bits its configuration lacks).
    #[error("{register} = {value:#x} cannot be held by this device")]
    InvalidRegister {
        /// Register name.
        register: &'static str,
        /// Value in the snapshot.
        value: u64,
    },
    /// A stall table this device cannot hold (too many entries, a STAG used twice, a fault
    /// name the model does not know).
    #[error("stall table cannot be restored: {0}")]
    StallTable(String),
    /// A value of a field other than a register or the stall table that this device could not
    /// have held (a PRI group on a device without PRI, a pending ATC error without ATS, ...).
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field (`pri_groups[3]`, `atc_sync_error`).
        field: String,
        /// Why it cannot be restored.
        reason: String,
    },
    /// Not a well-formed snapshot.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
}

impl SmmuV3Snapshot {
    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        // A struct of integers, booleans and vectors always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read a snapshot from JSON, checking the version first (so a newer format is reported
    /// as [`SnapshotError::UnsupportedVersion`], not as malformed).
    ///
    /// # Errors
    /// [`SnapshotError::UnsupportedVersion`] or [`SnapshotError::Malformed`].
    pub fn from_json(text: &str) -> Result<Self, SnapshotError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        let version = v
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| SnapshotError::Malformed("no version".into()))?;
        if version != u64::from(SNAPSHOT_VERSION) {
            return Err(SnapshotError::UnsupportedVersion {
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: SNAPSHOT_VERSION,
            });
        }
        serde_json::from_value(v).map_err(|e| SnapshotError::Malformed(e.to_string()))
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Save the complete device state. Call it with the VM paused (no MMIO, no DMA in flight).
    pub fn save(&self) -> SmmuV3Snapshot {
        // Exhaustive destructuring: a new state field must be decided on here.
        let SmmuV3State {
            ids,
            ctrl,
            evtq,
            irq,
            stalls,
        } = self.state();
        let CtrlState {
            cr0,
            cr1,
            cr2,
            gbpa,
            strtab_base,
            strtab_base_cfg,
            cmdq,
            priq,
        } = ctrl;
        let CmdqState {
            base: cmdq_base,
            prod: cmdq_prod,
            cons: cmdq_cons,
        } = cmdq;
        let queue = |q: EvtqState| {
            let EvtqState { base, prod, cons } = q;
            QueueSnapshot { base, prod, cons }
        };
        let IrqState {
            irq_ctrl,
            gerror,
            gerrorn,
            cfg: [gerror_cfg, eventq_cfg, priq_cfg],
        } = irq;
        SmmuV3Snapshot {
            version: SNAPSHOT_VERSION,
            id_regs: ids.into(),
            ctrl: CtrlSnapshot {
                cr0,
                cr1,
                cr2,
                gbpa,
                strtab_base,
                strtab_base_cfg,
                cmdq: QueueSnapshot {
                    base: cmdq_base,
                    prod: cmdq_prod,
                    cons: cmdq_cons,
                },
                priq: queue(priq),
            },
            evtq: queue(evtq),
            irq: IrqSnapshot {
                irq_ctrl,
                gerror,
                gerrorn,
                gerror_cfg: gerror_cfg.into(),
                eventq_cfg: eventq_cfg.into(),
                priq_cfg: priq_cfg.into(),
            },
            stalls: {
                let StallState { next_stag, entries } = stalls;
                StallTableSnapshot {
                    next_stag,
                    entries: entries.iter().map(held_save).collect(),
                }
            },
            atc_sync_error: self
                .atc
                .sync_error
                .load(std::sync::atomic::Ordering::Acquire),
            pri_groups: self
                .pri
                .saved_groups()
                .into_iter()
                .map(|((stream, group), r)| PriGroupSnapshot {
                    stream,
                    group,
                    response: r.map(prg_save),
                })
                .collect(),
        }
    }

    /// Restore `snap` (taken by [`SmmuV3::save`] on a device with the same configuration).
    /// Every register takes its saved value and every cache is dropped; nothing is signalled.
    /// If the saved command queue had unconsumed commands, [`SmmuV3::has_pending_work`] is
    /// true afterwards and the VMM continues them as usual.
    ///
    /// # Errors
    /// [`SnapshotError`]: another version, other ID registers, an impossible register value,
    /// or a stall table this device cannot hold. The device is unchanged on error.
    pub fn restore(&self, snap: &SmmuV3Snapshot) -> Result<(), SnapshotError> {
        let SmmuV3Snapshot {
            version,
            id_regs,
            ctrl,
            evtq,
            irq,
            stalls,
            atc_sync_error,
            pri_groups,
        } = snap;
        if *version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: *version,
                supported: SNAPSHOT_VERSION,
            });
        }
        let mine = IdRegsSnapshot::from(self.caps.id_regs());
        for ((register, snapshot), (_, device)) in
            id_regs.with_names().into_iter().zip(mine.with_names())
        {
            if snapshot != device {
                return Err(SnapshotError::ConfigMismatch {
                    register,
                    snapshot,
                    device,
                });
            }
        }
        // Only values the device could have held: registers as their guest-write sanitisers
        // leave them, stalls and PRI groups this device could track.
        check::check(snap, &self.caps)?;
        let stalls = StallState {
            next_stag: stalls.next_stag,
            entries: stalls
                .entries
                .iter()
                .map(held_restore)
                .collect::<Result<_, _>>()?,
        };
        self.stalls
            .check(&stalls)
            .map_err(SnapshotError::StallTable)?;
        let q = |s: &QueueSnapshot| EvtqState {
            base: s.base,
            prod: s.prod,
            cons: s.cons,
        };
        let new_ctrl = CtrlState {
            cr0: ctrl.cr0,
            cr1: ctrl.cr1,
            cr2: ctrl.cr2,
            gbpa: ctrl.gbpa,
            strtab_base: ctrl.strtab_base,
            strtab_base_cfg: ctrl.strtab_base_cfg,
            cmdq: CmdqState {
                base: ctrl.cmdq.base,
                prod: ctrl.cmdq.prod,
                cons: ctrl.cmdq.cons,
            },
            priq: q(&ctrl.priq),
        };
        let cr0 = Cr0::from_bits(new_ctrl.cr0);
        let mut c = lock(&self.ctrl);
        *c = new_ctrl;
        {
            let mut e = lock(&self.evtq);
            e.regs = q(evtq);
            e.enabled = cr0.smmuen() && cr0.eventqen();
        }
        *lock(&self.irq) = IrqState {
            irq_ctrl: irq.irq_ctrl,
            gerror: irq.gerror,
            gerrorn: irq.gerrorn,
            cfg: [
                irq.gerror_cfg.into(),
                irq.eventq_cfg.into(),
                irq.priq_cfg.into(),
            ],
        };
        self.atc
            .sync_error
            .store(*atc_sync_error, std::sync::atomic::Ordering::Release);
        let groups: Vec<_> = pri_groups
            .iter()
            .map(|g| ((g.stream, g.group), g.response.map(prg_restore)))
            .collect();
        self.pri.restore_groups(&groups);
        self.publish_translation_regs_locked(&c);
        self.invalidate_all_caches();
        self.host_restored_locked(&c);
        // Stalls of this instance (if it was not fresh) do not belong to the restored state:
        // terminated (their waiters see the abort, or Unknown once the table is replaced),
        // then the saved table takes their place (with `ctrl` held, as reset does).
        self.terminate_stalls(None);
        self.stalls.restore(&stalls);
        // Unconsumed commands: the VMM continues them (process_pending), as after a batch
        // limit. consume_locked re-checks CMDQEN and a pending CMDQ_ERR.
        let g = c.cmdq.geometry(u32::from(self.caps.idr1.cmdqs()));
        let pending = !g.is_empty(c.cmdq.prod, g.pos(c.cmdq.cons));
        self.set_work_pending(cr0.cmdqen() && pending);
        drop(c);
        Ok(())
    }
}
