//! Snapshot restore on corrupted and adversarial input (SMMUv3 and PAMU).
//!
//! A real snapshot (an SMMUv3 with a programmed stream, held and completed stalls, PRI groups,
//! an unacknowledged command error; a PAMU with faults latched) is mutated systematically:
//! every field set to boundary values and to each single-bit flip, removed, given the wrong
//! type; an unknown field added to every object; list elements duplicated and removed. Then a
//! seeded random loop corrupts the JSON text itself. Every result must be either
//!
//! - a typed error, leaving the device as it was, or
//! - `Ok`, with every register equal to what its guest-write sanitiser makes of it (computed
//!   here from the public sanitisers) and the device holding exactly the snapshot's state; the
//!   restored device then runs (register reads, pending commands, a DMA, stall queries)
//!   without panicking.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use serde_json::Value;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::{DmaTranslator, MmioDevice};
use viommu_common::{DmaRequest, StreamId};
use viommu_pamu::testing::{LinuxVersion, Rig};
use viommu_pamu::{PamuConfig, PamuState, RestoreError};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::priq::{PageRequest, PageRequestOutcome};
use viommu_smmuv3::snapshot::{SmmuV3Snapshot, SnapshotError};
use viommu_smmuv3::spec::idr::{Idr0, StallModel};
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::pgtable::Prot;
use viommu_smmuv3::testing::{cmd, stalled, GuestDriver};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
/// The stream the page requests come from (no STE: PRI groups are tracked per StreamID).
const PRI_SID: u32 = 0x20;
const IOVA: u64 = 0x10_0000;
const PA: u64 = 0x4200_0000;

type Smmu<'a> = SmmuV3<&'a GuestMemoryMmap>;

fn config() -> SmmuConfig {
    SmmuConfig {
        stall_model: StallModel::STALL_TERMINATE,
        stall_max: 8,
        ats: true,
        pri: true,
        ..SmmuConfig::default()
    }
}

fn smmu(ram: &GuestMemoryMmap) -> Smmu<'_> {
    SmmuV3::new(&config(), ram, Arc::new(RecordingIrq::new())).unwrap()
}

/// A Linux-programmed SMMUv3 with much state: a stage-1 stream that stalls (two held
/// transactions, one resumed and not collected), an open and an answered Page Request Group,
/// an unacknowledged CERROR_ILL.
fn rich_snapshot(ram: &GuestMemoryMmap) -> SmmuV3Snapshot {
    let dev = smmu(ram);
    let mut drv = GuestDriver::bring_up(&dev, ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s1_domain(1);
    drv.attach_s1_stall(SID, &dom).unwrap();
    let a = stalled(dev.translate(&DmaRequest::read(SID, IOVA + 0x40, 4)));
    stalled(dev.translate(&DmaRequest::write(SID, IOVA + 0x2000, 8)));
    drv.map_s1(&dom, IOVA, PA, 0x1000, Prot::RW);
    drv.issue(&[cmd::resume(SID, a, 1)]).unwrap();
    let req = |group| PageRequest {
        addr: IOVA,
        read: true,
        last: true,
        group,
        ..PageRequest::default()
    };
    assert_eq!(
        dev.page_request(StreamId(PRI_SID), &req(7)).unwrap(),
        PageRequestOutcome::Queued
    );
    drv.issue_sync(&[cmd::pri_resp(PRI_SID, 7, 2)]).unwrap();
    // The guest has not consumed the PRI queue: this one overflows and is answered
    // automatically (a second tracked group, answered).
    let _ = dev.page_request(StreamId(PRI_SID), &req(3)).unwrap();
    drv.issue(&[[0x07, 0]]).unwrap(); // an illegal opcode: CERROR_ILL, GERROR.CMDQ_ERR
    let s = dev.save();
    assert_eq!(s.stalls.entries.len(), 2);
    assert_eq!(s.pri_groups.len(), 2);
    assert_ne!(s.irq.gerror, s.irq.gerrorn);
    s
}

/// `snap` with every register replaced by what its guest-write sanitiser keeps of it (GBPA:
/// what an update latches; GERROR/GERRORN: the defined bits), from the public sanitisers.
fn sanitised(snap: &SmmuV3Snapshot, idr0: Idr0) -> SmmuV3Snapshot {
    let mut s = snap.clone();
    let c = &mut s.ctrl;
    c.cr0 = r::Cr0::sanitise(c.cr0, idr0).into_bits();
    c.cr1 = r::Cr1::sanitise(c.cr1).into_bits();
    c.cr2 = r::Cr2::sanitise(c.cr2, idr0).into_bits();
    c.gbpa = r::Gbpa::latch(c.gbpa).into_bits();
    c.strtab_base = r::StrtabBase::sanitise(c.strtab_base).into_bits();
    c.strtab_base_cfg = r::StrtabBaseCfg::sanitise(c.strtab_base_cfg).into_bits();
    c.cmdq.base = r::QueueBase::sanitise(c.cmdq.base).into_bits();
    c.cmdq.prod = r::QueueIndex::sanitise_cmdq_prod(c.cmdq.prod).into_bits();
    c.cmdq.cons = r::CmdqCons::sanitise(c.cmdq.cons).into_bits();
    for q in [&mut c.priq, &mut s.evtq] {
        q.base = r::QueueBase::sanitise(q.base).into_bits();
        q.prod = r::QueueIndex::sanitise(q.prod).into_bits();
        q.cons = r::QueueIndex::sanitise(q.cons).into_bits();
    }
    let i = &mut s.irq;
    i.irq_ctrl = r::IrqCtrl::sanitise(i.irq_ctrl, idr0).into_bits();
    i.gerror &= r::defined::GERROR;
    i.gerrorn &= r::defined::GERROR;
    for c in [&mut i.gerror_cfg, &mut i.eventq_cfg, &mut i.priq_cfg] {
        c.cfg0 = r::IrqCfg0::sanitise(c.cfg0).into_bits();
        c.cfg2 = r::IrqCfg2::sanitise(c.cfg2).into_bits();
    }
    s
}

/// Every leaf and object of a JSON value, by path.
fn paths(v: &Value, at: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(PathStep::Key(k.clone()));
                paths(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(PathStep::Index(i));
                paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn get_mut<'a>(v: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

/// The mutations of the value at one path.
fn mutations(v: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = vec![
        Value::Null,
        Value::from("x"),
        Value::from(-1),
        Value::from(1.5),
        Value::Array(vec![]),
        Value::Object(serde_json::Map::new()),
        Value::Bool(true),
    ];
    for n in [
        0u64,
        1,
        0xFF,
        0x100,
        0x1FF,
        0xFFFF,
        0x1_0000,
        0xFFFF_FFFF,
        0x1_0000_0000,
        u64::MAX,
    ] {
        out.push(Value::from(n));
    }
    match v {
        Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                out.extend((0..64).map(|b| Value::from(n ^ (1 << b))));
                out.push(Value::from(n.wrapping_add(1)));
                out.push(Value::from(n.wrapping_sub(1)));
            }
        }
        Value::Bool(b) => out.push(Value::Bool(!b)),
        Value::String(_) => {
            out.extend(
                ["", "F_MADE_UP", "C_BAD_STE", "Held", "Retried", "Success"]
                    .into_iter()
                    .map(Value::from),
            );
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                let mut dup = a.clone();
                dup.push(first.clone());
                out.push(Value::Array(dup));
                out.push(Value::Array(a[1..].to_vec()));
                out.push(Value::Array(vec![first.clone(); 5000]));
            }
        }
        Value::Object(m) => {
            let mut extra = m.clone();
            extra.insert("unexpected".into(), Value::from(1));
            out.push(Value::Object(extra));
            for k in m.keys() {
                let mut less = m.clone();
                less.remove(k);
                out.push(Value::Object(less));
            }
        }
        Value::Null => {}
    }
    out
}

/// Check one candidate snapshot text against a fresh device (see the module documentation).
/// Returns whether it was accepted.
fn check_smmu_candidate(ram: &GuestMemoryMmap, text: &str, what: &str) -> bool {
    let Ok(snap) = SmmuV3Snapshot::from_json(text) else {
        return false;
    };
    let dev = smmu(ram);
    let before = dev.save();
    match dev.restore(&snap) {
        Err(e) => {
            assert_eq!(
                dev.save(),
                before,
                "{what}: refused ({e}) but changed the device"
            );
            if matches!(e, SnapshotError::InvalidRegister { .. }) {
                assert_ne!(sanitised(&snap, dev.caps().idr0), snap, "{what}: {e}");
            }
            false
        }
        Ok(()) => {
            assert_eq!(
                sanitised(&snap, dev.caps().idr0),
                snap,
                "{what}: accepted a register its sanitiser would change"
            );
            assert_eq!(dev.save(), snap, "{what}: restored state differs");
            exercise(&dev);
            true
        }
    }
}

/// Drive a restored device a little: every register read, pending commands, DMA, stalls.
fn exercise(dev: &Smmu<'_>) {
    let mut buf = [0u8; 4];
    for off in (0..0x100).step_by(4).chain((0x100A8..0x100D0).step_by(4)) {
        let _ = dev.mmio_read(off, &mut buf);
    }
    for _ in 0..4 {
        if !dev.process_pending() {
            break;
        }
    }
    let _ = dev.translate(&DmaRequest::read(SID, IOVA + 0x40, 4));
    let _ = dev.stalled_transactions();
    for stag in 0..4 {
        let _ = dev.stall_status(StreamId(SID), stag);
    }
    let _ = dev.pri_response(StreamId(PRI_SID), 7);
    let _ = dev.save().to_json();
}

/// Systematic mutation of a real SMMUv3 snapshot: every field (and object, and list) replaced
/// by boundary values, single-bit flips, wrong types, removed; an unknown field added to every
/// object. Each result is a typed error (device unchanged) or an exact, sanitiser-clean
/// restore. Some mutations of each kind must be accepted and some refused, so the check is
/// not vacuous.
#[test]
fn test_smmuv3_snapshot_systematic_mutation() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let snap = rich_snapshot(&ram);
    let json: Value = serde_json::from_str(&snap.to_json()).unwrap();
    assert!(check_smmu_candidate(&ram, &snap.to_json(), "unmodified"));
    let mut all = Vec::new();
    paths(&json, &mut Vec::new(), &mut all);
    let (mut accepted, mut refused, mut removed_ok) = (0, 0, 0);
    for path in &all {
        let original = get_mut(&mut json.clone(), path).clone();
        for m in mutations(&original) {
            let mut v = json.clone();
            *get_mut(&mut v, path) = m;
            let what = format!("{path:?}");
            if check_smmu_candidate(&ram, &v.to_string(), &what) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Removed from its parent object.
        if let Some((PathStep::Key(k), parent)) = path.split_last() {
            let mut v = json.clone();
            if let Value::Object(m) = get_mut(&mut v, parent) {
                m.remove(k.as_str());
            }
            // A required field is refused by serde; an optional one (`substream`, `response`)
            // reads as absent, which the checks above must then accept or refuse as a state.
            let accepted = check_smmu_candidate(&ram, &v.to_string(), "removed");
            if accepted {
                removed_ok += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(
        accepted > 100 && refused > 1000,
        "{accepted} accepted, {refused} refused"
    );
    // At most the optional fields: substream, fault.stall_tag, response, pasid.
    assert!(removed_ok <= 10, "{removed_ok} removals accepted");
}

/// Specific states the architecture cannot reach are refused with an error naming the field.
#[test]
fn test_smmuv3_unreachable_states_are_named() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let snap = rich_snapshot(&ram);
    let dev = smmu(&ram);
    let refuse = |f: &dyn Fn(&mut SmmuV3Snapshot), needle: &str| {
        let mut s = snap.clone();
        f(&mut s);
        let e = dev.restore(&s).expect_err(needle);
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    };
    refuse(&|s| s.ctrl.cr0 |= 1 << 5, "CR0");
    refuse(&|s| s.ctrl.cr0 |= 1 << 10, "CR0"); // DPT_WALK_EN: not implemented
    refuse(&|s| s.ctrl.cr1 |= 1 << 12, "CR1");
    refuse(&|s| s.ctrl.cr2 |= 1, "CR2"); // E2H without IDR0.HYP
    refuse(&|s| s.ctrl.gbpa |= 1 << 31, "GBPA"); // UPDATE never reads 1
    refuse(&|s| s.ctrl.strtab_base |= 1, "STRTAB_BASE");
    refuse(&|s| s.ctrl.strtab_base_cfg |= 1 << 20, "STRTAB_BASE_CFG");
    refuse(&|s| s.ctrl.cmdq.prod |= 1 << 31, "CMDQ_PROD");
    refuse(&|s| s.ctrl.cmdq.cons |= 1 << 31, "CMDQ_CONS");
    refuse(&|s| s.ctrl.cmdq.base |= 1 << 63, "CMDQ_BASE");
    refuse(&|s| s.evtq.prod |= 1 << 25, "EVENTQ_PROD");
    refuse(&|s| s.ctrl.priq.cons |= 1 << 20, "PRIQ_CONS");
    refuse(&|s| s.irq.irq_ctrl |= 1 << 3, "IRQ_CTRL");
    refuse(&|s| s.irq.gerror |= 1 << 1, "GERROR");
    refuse(&|s| s.irq.gerrorn |= 1 << 9, "GERRORN");
    refuse(&|s| s.irq.eventq_cfg.cfg0 |= 1, "EVENTQ_IRQ_CFG0");
    refuse(&|s| s.irq.priq_cfg.cfg2 |= 1 << 6, "PRIQ_IRQ_CFG2");
    refuse(&|s| s.id_regs.idr1 ^= 1, "IDR1");
    refuse(&|s| s.stalls.entries[0].request.stream = 1 << 20, "SIDSIZE");
    refuse(&|s| s.stalls.entries[0].request.len = 0, "address space");
    refuse(
        &|s| {
            s.stalls.entries[0].request.addr = u64::MAX;
            s.stalls.entries[0].request.len = 2;
        },
        "address space",
    );
    refuse(
        &|s| {
            let e = &mut s.stalls.entries[1];
            e.progress = viommu_smmuv3::snapshot::ProgressSnapshot::Forward(e.stag);
        },
        "retried under STAG",
    );
    refuse(
        &|s| {
            if let viommu_smmuv3::snapshot::ProgressSnapshot::Done { result: Ok(m), .. } =
                &mut s.stalls.entries[1].progress
            {
                m.perms = 0xFF;
            }
        },
        "permissions",
    );
    refuse(&|s| s.pri_groups[0].group = 0x200, "9 bits");
    refuse(&|s| s.pri_groups[1] = s.pri_groups[0], "appears twice");
    refuse(
        &|s| {
            let g = s.pri_groups[0];
            s.pri_groups = vec![g; 5000];
        },
        "at most 4096",
    );
    // Without ATS and PRI, their state cannot exist.
    let plain_ram = guest_ram(RAM, RAM_SIZE as usize);
    let plain = SmmuV3::new(
        &SmmuConfig {
            stall_model: StallModel::STALL_TERMINATE,
            stall_max: 8,
            ..SmmuConfig::default()
        },
        &plain_ram,
        Arc::new(RecordingIrq::new()),
    )
    .unwrap();
    let mut s = plain.save();
    s.atc_sync_error = true;
    assert!(plain
        .restore(&s)
        .unwrap_err()
        .to_string()
        .contains("atc_sync_error"));
    let mut s = plain.save();
    s.pri_groups = snap.pri_groups.clone();
    assert!(plain
        .restore(&s)
        .unwrap_err()
        .to_string()
        .contains("pri_groups"));
    // The unmodified snapshot is restored exactly.
    dev.restore(&snap).unwrap();
    assert_eq!(dev.save(), snap);
}

/// Random corruption of the snapshot text (byte flips, insertions, deletions, truncation, and
/// numbers replaced by random ones): typed error or exact restore, never a panic.
#[test]
fn test_smmuv3_snapshot_random_corruption() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let text = rich_snapshot(&ram).to_json();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0005_4a9e);
    let mut accepted = 0;
    for round in 0..1500 {
        let mut t = text.clone().into_bytes();
        for _ in 0..rng.random_range(1..4) {
            match rng.random_range(0..5) {
                0 => {
                    let i = rng.random_range(0..t.len());
                    t[i] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    let i = rng.random_range(0..=t.len());
                    t.insert(i, rng.random());
                }
                2 => {
                    let i = rng.random_range(0..t.len());
                    t.remove(i);
                }
                3 => t.truncate(rng.random_range(0..t.len())),
                _ => {
                    // Replace one number with a random one of random width.
                    let s = String::from_utf8_lossy(&t).into_owned();
                    let digits: Vec<usize> = s
                        .char_indices()
                        .filter(|(i, c)| {
                            c.is_ascii_digit() && !s[..*i].ends_with(|p: char| p.is_ascii_digit())
                        })
                        .map(|(i, _)| i)
                        .collect();
                    if let Some(&at) = digits.get(rng.random_range(0..digits.len().max(1))) {
                        let end = s[at..]
                            .find(|c: char| !c.is_ascii_digit())
                            .map_or(s.len(), |e| at + e);
                        let n: u64 = rng.random::<u64>() >> rng.random_range(0..64);
                        t = format!("{}{n}{}", &s[..at], &s[end..]).into_bytes();
                    }
                }
            }
        }
        let s = String::from_utf8_lossy(&t);
        if check_smmu_candidate(&ram, &s, &format!("round {round}")) {
            accepted += 1;
        }
    }
    assert!(
        accepted > 0,
        "no corruption was accepted: the loop checks nothing"
    );
}

/// A PAMU with latched faults, through JSON, mutated systematically: typed errors (serde's for
/// malformed JSON, [`RestoreError`] for impossible registers), or an exact restore.
#[test]
fn test_pamu_state_systematic_mutation() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    rig.pamu.write_bypass_register(0x0800_0000);
    // An access violation on a disabled LIODN latches AVS1/AVA and PICS.
    assert!(rig.pamu.translate(&DmaRequest::read(9, 0x1000, 4)).is_err());
    let state = rig.pamu.save();
    let json: Value = serde_json::to_value(&state).unwrap();
    let mut all = Vec::new();
    paths(&json, &mut Vec::new(), &mut all);
    let (mut accepted, mut refused) = (0, 0);
    for path in &all {
        let original = get_mut(&mut json.clone(), path).clone();
        for m in mutations(&original) {
            let mut v = json.clone();
            *get_mut(&mut v, path) = m;
            let Ok(st) = serde_json::from_value::<PamuState>(v) else {
                refused += 1;
                continue;
            };
            let fresh = Rig::new(PamuConfig::p4080());
            let before = fresh.pamu.save();
            match fresh.pamu.restore(&st) {
                Ok(()) => {
                    assert_eq!(fresh.pamu.save(), st, "{path:?}");
                    let _ = fresh.pamu.translate(&DmaRequest::read(9, 0x1000, 4));
                    accepted += 1;
                }
                Err(e) => {
                    assert!(
                        matches!(
                            e,
                            RestoreError::Instances { .. } | RestoreError::InvalidRegister { .. }
                        ),
                        "{e}"
                    );
                    assert_eq!(fresh.pamu.save(), before, "{path:?}: {e}");
                    refused += 1;
                }
            }
        }
    }
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
    // Unknown fields are refused by serde.
    let mut v = json.clone();
    v["unexpected"] = Value::from(1);
    assert!(serde_json::from_value::<PamuState>(v).is_err());
    let mut v = json;
    v["instances"][0]["unexpected"] = Value::from(1);
    assert!(serde_json::from_value::<PamuState>(v).is_err());
    // Named refusals: a reserved PC bit, a bypass bit of an instance the P4080 lacks.
    let mut st = state.clone();
    st.instances[2].pc |= 1 << 7;
    let e = Rig::new(PamuConfig::p4080()).pamu.restore(&st).unwrap_err();
    assert!(
        matches!(
            e,
            RestoreError::InvalidRegister {
                instance: 2,
                register: "PC",
                ..
            }
        ),
        "{e}"
    );
    let mut st = state;
    st.bypass |= 1;
    assert!(matches!(
        Rig::new(PamuConfig::p4080()).pamu.restore(&st),
        Err(RestoreError::InvalidRegister {
            register: "PAMUBYPENR",
            ..
        })
    ));
}
