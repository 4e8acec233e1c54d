//! What restore accepts: a snapshot is untrusted input (a file a VMM reads back, a migration
//! stream), so every value in it must be one the saved device could have held.
//!
//! - Each register must be a value its guest-write sanitiser (in [`crate::spec::regs`]) leaves
//!   unchanged: reserved bits zero, features the ID registers lack clear, GBPA with UPDATE
//!   complete. Registers only the device writes (GERROR) must have only defined bits. A value
//!   the sanitiser would change is refused naming the register
//!   ([`SnapshotError::InvalidRegister`]) rather than silently changed, so an accepted
//!   snapshot restores exactly the state it describes.
//! - The stall table may only hold requests a translation could have stalled (a StreamID and
//!   SubstreamID in the IDR1 ranges, a non-empty access inside the address space), a completed
//!   one only a translation result (permissions R/W/X, a 2-bit shareability, a non-empty output
//!   range), and a retry chain (`Forward`) must lead to another entry of the same stream.
//! - Page Request Groups need IDR0.PRI, fit the tracker ([`PRI_MAX_GROUPS`]), appear once, and
//!   carry a 9-bit PRG index and in-range StreamID and PASID.
//! - A pending CERROR_ATC_INV_SYNC needs IDR0.ATS.

use std::collections::{HashMap, HashSet};

use viommu_common::access::Perms;

use crate::caps::Caps;
use crate::priq::PRI_MAX_GROUPS;
use crate::spec::regs::{
    defined, CmdqCons, Cr0, Cr1, Cr2, Gbpa, IrqCfg0, IrqCfg2, IrqCtrl, QueueBase, QueueIndex,
    StrtabBase, StrtabBaseCfg,
};

use super::{
    CtrlSnapshot, IrqCfgSnapshot, IrqSnapshot, PriGroupSnapshot, ProgressSnapshot, QueueSnapshot,
    SmmuV3Snapshot, SnapshotError, StalledSnapshot,
};

/// Largest PRG index (PRGIndex is 9 bits).
const PRG_INDEX_MAX: u16 = 0x1FF;

/// Check every register, the stall requests, the PRI groups and the ATC sync flag of `snap`
/// against a device with `caps` (the ID registers are compared before this).
pub(super) fn check(snap: &SmmuV3Snapshot, caps: &Caps) -> Result<(), SnapshotError> {
    check_ctrl(&snap.ctrl, caps)?;
    check_queue("EVENTQ", &snap.evtq, QueueIndex::sanitise)?;
    check_irq(&snap.irq, caps)?;
    check_stall_requests(&snap.stalls.entries, caps)?;
    check_pri_groups(&snap.pri_groups, caps)?;
    if snap.atc_sync_error && !caps.idr0.ats() {
        return Err(invalid(
            "atc_sync_error",
            "a CMD_ATC_INV failure is pending but the device has no ATS (IDR0.ATS = 0)",
        ));
    }
    Ok(())
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `value` must be what its sanitiser keeps of it.
fn reg<T: Into<u64> + Copy + PartialEq>(
    register: &'static str,
    value: T,
    sanitised: T,
) -> Result<(), SnapshotError> {
    if value == sanitised {
        Ok(())
    } else {
        Err(SnapshotError::InvalidRegister {
            register,
            value: value.into(),
        })
    }
}

fn check_ctrl(c: &CtrlSnapshot, caps: &Caps) -> Result<(), SnapshotError> {
    reg("CR0", c.cr0, Cr0::sanitise(c.cr0, caps.idr0).into_bits())?;
    reg("CR1", c.cr1, Cr1::sanitise(c.cr1).into_bits())?;
    reg("CR2", c.cr2, Cr2::sanitise(c.cr2, caps.idr0).into_bits())?;
    // A GBPA write takes effect within the write: UPDATE is never seen set.
    reg("GBPA", c.gbpa, Gbpa::latch(c.gbpa).into_bits())?;
    reg(
        "STRTAB_BASE",
        c.strtab_base,
        StrtabBase::sanitise(c.strtab_base).into_bits(),
    )?;
    reg(
        "STRTAB_BASE_CFG",
        c.strtab_base_cfg,
        StrtabBaseCfg::sanitise(c.strtab_base_cfg).into_bits(),
    )?;
    reg(
        "CMDQ_BASE",
        c.cmdq.base,
        QueueBase::sanitise(c.cmdq.base).into_bits(),
    )?;
    reg(
        "CMDQ_PROD",
        c.cmdq.prod,
        QueueIndex::sanitise_cmdq_prod(c.cmdq.prod).into_bits(),
    )?;
    reg(
        "CMDQ_CONS",
        c.cmdq.cons,
        CmdqCons::sanitise(c.cmdq.cons).into_bits(),
    )?;
    check_queue("PRIQ", &c.priq, QueueIndex::sanitise)
}

fn check_queue(
    name: &'static str,
    q: &QueueSnapshot,
    index: fn(u32) -> QueueIndex,
) -> Result<(), SnapshotError> {
    let (base, prod, cons) = match name {
        "EVENTQ" => ("EVENTQ_BASE", "EVENTQ_PROD", "EVENTQ_CONS"),
        _ => ("PRIQ_BASE", "PRIQ_PROD", "PRIQ_CONS"),
    };
    reg(base, q.base, QueueBase::sanitise(q.base).into_bits())?;
    reg(prod, q.prod, index(q.prod).into_bits())?;
    reg(cons, q.cons, index(q.cons).into_bits())
}

fn check_irq(i: &IrqSnapshot, caps: &Caps) -> Result<(), SnapshotError> {
    reg(
        "IRQ_CTRL",
        i.irq_ctrl,
        IrqCtrl::sanitise(i.irq_ctrl, caps.idr0).into_bits(),
    )?;
    // The device toggles only defined GERROR bits, and a GERRORN write changes only bits of
    // active errors: neither register ever holds another bit.
    reg("GERROR", i.gerror, i.gerror & defined::GERROR)?;
    reg("GERRORN", i.gerrorn, i.gerrorn & defined::GERROR)?;
    let cfg = |names: [&'static str; 2], c: &IrqCfgSnapshot| {
        reg(names[0], c.cfg0, IrqCfg0::sanitise(c.cfg0).into_bits())?;
        reg(names[1], c.cfg2, IrqCfg2::sanitise(c.cfg2).into_bits())
    };
    cfg(["GERROR_IRQ_CFG0", "GERROR_IRQ_CFG2"], &i.gerror_cfg)?;
    cfg(["EVENTQ_IRQ_CFG0", "EVENTQ_IRQ_CFG2"], &i.eventq_cfg)?;
    cfg(["PRIQ_IRQ_CFG0", "PRIQ_IRQ_CFG2"], &i.priq_cfg)
}

/// Whether `v` fits in `bits` bits.
fn fits(v: u32, bits: u8) -> bool {
    bits >= 32 || v >> bits == 0
}

fn check_stall_requests(entries: &[StalledSnapshot], caps: &Caps) -> Result<(), SnapshotError> {
    let stall =
        |i: usize, reason: String| SnapshotError::StallTable(format!("entries[{i}]: {reason}"));
    let streams: HashMap<u16, u32> = entries.iter().map(|e| (e.stag, e.request.stream)).collect();
    let mut forwarded = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let r = &e.request;
        if !fits(r.stream, caps.idr1.sidsize()) {
            return Err(stall(
                i,
                format!("StreamID {:#x} is beyond IDR1.SIDSIZE", r.stream),
            ));
        }
        if let Some(s) = r.substream {
            if !fits(s, caps.idr1.ssidsize()) {
                return Err(stall(
                    i,
                    format!("SubstreamID {s:#x} is beyond IDR1.SSIDSIZE"),
                ));
            }
        }
        if r.len == 0 || r.addr.checked_add(r.len - 1).is_none() {
            return Err(stall(
                i,
                format!(
                    "{} bytes at {:#x} is not an access inside the address space",
                    r.len, r.addr
                ),
            ));
        }
        if let ProgressSnapshot::Done { result: Ok(m), .. } = &e.progress {
            if m.perms & !Perms::RWX.bits() != 0 || m.shareability > 3 {
                return Err(stall(
                    i,
                    format!(
                        "result permissions {:#x} or shareability {} do not exist",
                        m.perms, m.shareability
                    ),
                ));
            }
            if m.len == 0 || m.output.checked_add(m.len - 1).is_none() {
                return Err(stall(
                    i,
                    format!(
                        "result of {} bytes at {:#x} is not inside the address space",
                        m.len, m.output
                    ),
                ));
            }
        }
        if let ProgressSnapshot::Forward(next) = e.progress {
            if next == e.stag || streams.get(&next) != Some(&r.stream) {
                return Err(stall(
                    i,
                    format!(
                        "retried under STAG {next:#x}, which is not another stall of its stream"
                    ),
                ));
            }
            if !forwarded.insert(next) {
                return Err(stall(i, format!("STAG {next:#x} continues two retries")));
            }
        }
    }
    Ok(())
}

fn check_pri_groups(groups: &[PriGroupSnapshot], caps: &Caps) -> Result<(), SnapshotError> {
    if groups.is_empty() {
        return Ok(());
    }
    if !caps.idr0.pri() {
        return Err(invalid(
            "pri_groups",
            "Page Request Groups are tracked but the device has no PRI (IDR0.PRI = 0)",
        ));
    }
    if groups.len() > PRI_MAX_GROUPS {
        return Err(invalid(
            "pri_groups",
            format!(
                "{} groups, but the device tracks at most {PRI_MAX_GROUPS}",
                groups.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        let field = || format!("pri_groups[{i}]");
        if !fits(g.stream, caps.idr1.sidsize()) {
            return Err(invalid(
                field(),
                format!("StreamID {:#x} is beyond IDR1.SIDSIZE", g.stream),
            ));
        }
        if g.group > PRG_INDEX_MAX {
            return Err(invalid(
                field(),
                format!("PRG index {:#x} does not fit in 9 bits", g.group),
            ));
        }
        if let Some(p) = g.response.and_then(|r| r.pasid) {
            if !fits(p, caps.idr1.ssidsize()) {
                return Err(invalid(
                    field(),
                    format!("PASID {p:#x} is beyond IDR1.SSIDSIZE"),
                ));
            }
        }
        if !seen.insert((g.stream, g.group)) {
            return Err(invalid(
                field(),
                format!(
                    "group {:#x} of StreamID {:#x} appears twice",
                    g.group, g.stream
                ),
            ));
        }
    }
    Ok(())
}
