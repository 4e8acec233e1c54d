//! Save and restore with stalled transactions: a transaction stalled on one device is restored
//! (through JSON) into a fresh device under the same STAG, and the guest's CMD_RESUME(Retry),
//! CMD_RESUME(Abort) or CMD_STALL_TERM on the new device reaches the endpoint waiting there for
//! (stream, STAG), exactly as on the saved device.

use std::sync::Arc;
use std::time::Duration;

use viommu_common::fault::{FaultId, Smmuv3FaultId};
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::{DmaTranslator, FaultKind};
use viommu_common::{AccessKind, DmaFault, DmaRequest, StreamId};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::snapshot::{ProgressSnapshot, SmmuV3Snapshot, SnapshotError};
use viommu_smmuv3::spec::idr::StallModel;
use viommu_smmuv3::stall::{Resolution, StallStatus};
use viommu_smmuv3::testing::pgtable::Prot;
use viommu_smmuv3::testing::{cmd, stalled, GuestDriver, S1Domain};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x10_0000;
const PA: u64 = 0x4200_0000;

type Smmu<'a> = SmmuV3<&'a GuestMemoryMmap>;
type Driver<'a> = GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap>;

fn device(ram: &GuestMemoryMmap, stall_max: u16) -> Smmu<'_> {
    let cfg = SmmuConfig {
        stall_model: StallModel::STALL_TERMINATE,
        stall_max,
        ..SmmuConfig::default()
    };
    SmmuV3::new(&cfg, ram, Arc::new(RecordingIrq::new())).unwrap()
}

/// Probe, reset, and attach `sids` to one stage-1 domain whose CD has S = 1 (Linux SVA with a
/// `dma-can-stall` master).
fn setup<'a>(smmu: &'a Smmu<'a>, ram: &'a GuestMemoryMmap, sids: &[u32]) -> (Driver<'a>, S1Domain) {
    let mut drv = GuestDriver::bring_up(smmu, ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s1_domain(1);
    for &sid in sids {
        drv.attach_s1_stall(sid, &dom).unwrap();
    }
    (drv, dom)
}

/// Save `from`, through JSON, into `to`; `to` then has `from`'s state.
fn migrate(from: &Smmu<'_>, to: &Smmu<'_>) {
    let snap = SmmuV3Snapshot::from_json(&from.save().to_json()).unwrap();
    assert_eq!(snap, from.save());
    to.restore(&snap).unwrap();
    assert_eq!(to.save(), from.save());
}

/// The Linux SVA flow across a migration: a write stalls on the old device; after the restore
/// the endpoint waits on the new device, the OS maps the page and sends RESUME(Retry): the
/// retried write (same address, length, direction) completes with a writable translation. The
/// STAG allocator continues where it stopped.
#[test]
fn test_restored_stall_completes_after_resume_retry() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let old = device(&ram, 0);
    let new = device(&ram, 0);
    let (mut drv, dom) = setup(&old, &ram, &[SID]);
    let req = DmaRequest::new(SID, IOVA + 0x24, 8, AccessKind::Write);
    let stag = stalled(old.translate(&req));
    migrate(&old, &new);
    assert_eq!(new.stalled_transactions(), 1);
    assert_eq!(new.stall_status(StreamId(SID), stag), StallStatus::Pending);

    drv.dev = &new;
    std::thread::scope(|s| {
        let waiter = s.spawn(|| new.wait_stall(StreamId(SID), stag, Duration::from_secs(10)));
        dom.pgtable
            .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
        drv.issue(&[cmd::resume(SID, stag, 1)]).unwrap();
        match waiter.join().unwrap() {
            StallStatus::Resolved {
                how: Resolution::Retried,
                result: Ok(m),
            } => {
                assert_eq!(m.output, PA + 0x24);
                assert!(m.perms.allows(AccessKind::Write));
            }
            other => panic!("expected a successful retry, got {other:?}"),
        }
    });
    assert_eq!(new.stalled_transactions(), 0);
    // The next stall on the new device gets the STAG the old device would have given.
    let next = stalled(new.translate(&DmaRequest::read(SID, IOVA + 0x5000, 4)));
    assert_eq!(next, stag.wrapping_add(1));
}

/// RESUME(Abort) after the restore gives the endpoint the original fault (F_TRANSLATION at the
/// original address, no stall tag); RESUME(Terminate) completes RAZ/WI.
#[test]
fn test_restored_stall_resume_abort_returns_original_fault() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let old = device(&ram, 0);
    let new = device(&ram, 0);
    let (mut drv, _dom) = setup(&old, &ram, &[SID]);
    let a = stalled(old.translate(&DmaRequest::read(SID, IOVA + 0x10, 4)));
    let b = stalled(old.translate(&DmaRequest::read(SID, IOVA + 0x3000, 4)));
    migrate(&old, &new);
    drv.dev = &new;
    drv.issue(&[cmd::resume(SID, a, 2), cmd::resume(SID, b, 0)])
        .unwrap();
    assert_eq!(
        new.stall_status(StreamId(SID), a),
        StallStatus::Resolved {
            how: Resolution::Aborted,
            result: Err(DmaFault {
                kind: FaultKind::Translation,
                event: FaultId::Smmuv3(Smmuv3FaultId::Translation),
                addr: IOVA + 0x10,
                stall_tag: None,
            }),
        }
    );
    assert!(matches!(
        new.stall_status(StreamId(SID), b),
        StallStatus::Resolved {
            how: Resolution::RazWi,
            result: Err(DmaFault { addr, .. }),
        } if addr == IOVA + 0x3000
    ));
}

/// CMD_STALL_TERM after the restore terminates the restored stalls of that stream only.
#[test]
fn test_restored_stalls_terminated_by_stall_term() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let old = device(&ram, 0);
    let new = device(&ram, 0);
    let (mut drv, _dom) = setup(&old, &ram, &[SID, SID + 1]);
    let a1 = stalled(old.translate(&DmaRequest::read(SID, IOVA, 4)));
    let a2 = stalled(old.translate(&DmaRequest::read(SID, IOVA + 0x2000, 4)));
    let b = stalled(old.translate(&DmaRequest::read(SID + 1, IOVA, 4)));
    migrate(&old, &new);
    drv.dev = &new;
    drv.issue_sync(&[cmd::stall_term(SID)]).unwrap();
    for s in [a1, a2] {
        assert!(matches!(
            new.stall_status(StreamId(SID), s),
            StallStatus::Resolved {
                how: Resolution::Aborted,
                result: Err(DmaFault {
                    kind: FaultKind::Translation,
                    ..
                }),
            }
        ));
    }
    assert_eq!(new.stall_status(StreamId(SID + 1), b), StallStatus::Pending);
    assert_eq!(new.stalled_transactions(), 1);
}

/// A stall the guest resumed before the save, whose endpoint had not collected the result yet,
/// is collected from the new device.
#[test]
fn test_uncollected_stall_result_survives_restore() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let old = device(&ram, 0);
    let new = device(&ram, 0);
    let (mut drv, dom) = setup(&old, &ram, &[SID]);
    let stag = stalled(old.translate(&DmaRequest::read(SID, IOVA + 0x40, 4)));
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    drv.issue(&[cmd::resume(SID, stag, 1)]).unwrap();
    migrate(&old, &new);
    match new.stall_status(StreamId(SID), stag) {
        StallStatus::Resolved {
            how: Resolution::Retried,
            result: Ok(m),
        } => assert_eq!(m.output, PA + 0x40),
        other => panic!("{other:?}"),
    }
    assert_eq!(new.stall_status(StreamId(SID), stag), StallStatus::Unknown);
}

/// Stall tables the device cannot hold are refused with a typed error and leave the device
/// unchanged: more entries than IDR5.STALL_MAX, a STAG used twice, an unknown fault name.
#[test]
fn test_restore_refuses_stall_tables_that_do_not_fit() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let old = device(&ram, 2);
    let new = device(&ram, 2);
    let (_drv, _dom) = setup(&old, &ram, &[SID]);
    stalled(old.translate(&DmaRequest::read(SID, IOVA, 4)));
    stalled(old.translate(&DmaRequest::read(SID, IOVA + 0x1000, 4)));
    let good = old.save();
    assert_eq!(good.stalls.entries.len(), 2);
    assert!(good
        .stalls
        .entries
        .iter()
        .all(|e| e.progress == ProgressSnapshot::Held));
    let before = new.save();

    let mut s = good.clone();
    let extra = s.stalls.entries[0].clone();
    s.stalls.entries.push(extra);
    assert!(matches!(new.restore(&s), Err(SnapshotError::StallTable(_))));

    let mut s = good.clone();
    s.stalls.entries[1].stag = s.stalls.entries[0].stag;
    assert!(matches!(new.restore(&s), Err(SnapshotError::StallTable(_))));

    let mut s = good.clone();
    s.stalls.entries[0].fault.event = "F_MADE_UP".into();
    assert!(matches!(new.restore(&s), Err(SnapshotError::StallTable(_))));

    assert_eq!(new.save(), before);
    new.restore(&good).unwrap();
    assert_eq!(new.stalled_transactions(), 2);
}
