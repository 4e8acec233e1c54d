//! Save and restore: a device restored from a snapshot (through JSON) into a fresh instance
//! continues exactly where the saved one stopped (registers, queue positions, pending
//! commands, GERROR, a pending CERROR_ATC_INV_SYNC), and snapshots that do not fit are refused
//! with typed errors.

use std::sync::Arc;

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::StreamId;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use viommu_smmuv3::ats::{AtcEndpoint, AtcError, AtcInvalidation};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::snapshot::{SmmuV3Snapshot, SnapshotError, SNAPSHOT_VERSION};
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x1000_0000;
const PA: u64 = RAM + 0x0200_0000;

type Dev<'a> = SmmuV3<&'a GuestMemoryMmap>;

fn device<'a>(ram: &'a GuestMemoryMmap, cfg: &SmmuConfig) -> Dev<'a> {
    SmmuV3::new(cfg, ram, Arc::new(RecordingIrq::new())).unwrap()
}

/// Through JSON and back.
fn migrate(from: &Dev<'_>, to: &Dev<'_>) {
    let json = from.save().to_json();
    let snap = SmmuV3Snapshot::from_json(&json).unwrap();
    assert_eq!(snap, from.save());
    to.restore(&snap).unwrap();
}

/// A Linux-programmed SMMU with an attached domain, a recorded fault and an unacknowledged
/// command error is restored into a fresh device: identical state, the same translations and
/// faults, the event queue continues at the same slot, and the driver's next commands (after
/// acknowledging the error) run on the new device.
#[test]
fn test_restore_continues_translation_events_and_commands() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig::default();
    let old = device(&ram, &cfg);
    let new = device(&ram, &cfg);
    let mut drv = GuestDriver::new(&old, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x2000, Prot::RW);
    drv.attach_s1(SID, &dom).unwrap();
    assert!(old
        .translate(&DmaRequest::read(SID, IOVA + 0x3000, 4))
        .is_err());
    // An illegal command (opcode 0x07) left unacknowledged: CONS.ERR and GERROR.CMDQ_ERR.
    drv.issue(&[[0x07, 0]]).unwrap();
    let gerror = drv.read32(r::GERROR);
    assert_eq!(gerror & 1, 1);
    let cons = drv.read32(r::CMDQ_CONS);
    assert_eq!(cons >> 24 & 0x7F, 1, "CERROR_ILL");

    migrate(&old, &new);
    assert_eq!(new.save(), old.save());
    drv.dev = &new;
    assert_eq!(drv.read32(r::GERROR), gerror);
    assert_eq!(drv.read32(r::CMDQ_CONS), cons);
    assert_eq!(drv.read32(r::IDR0), 0x094C_301B);
    assert_eq!(
        new.translate(&DmaRequest::write(SID, IOVA + 0x1008, 4))
            .unwrap()
            .output,
        PA + 0x1008
    );
    assert_eq!(
        new.translate(&DmaRequest::read(SID, IOVA + 0x3000, 4))
            .unwrap_err()
            .event,
        Smmuv3FaultId::Translation
    );
    // Both faults are in the queue: the old device's, then the new one's, in order.
    let ev = drv.read_events();
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|e| e[0] & 0xFF == 0x10 && e[2] == IOVA + 0x3000));
    // The error is acknowledged on the new device; the queue moves again.
    drv.handle_gerror();
    drv.unmap_s1(&dom, IOVA + 0x1000, 0x1000).unwrap();
    assert!(new
        .translate(&DmaRequest::read(SID, IOVA + 0x1000, 4))
        .is_err());
    assert!(new.translate(&DmaRequest::read(SID, IOVA, 4)).is_ok());
}

/// Commands a batch limit left unconsumed are pending on the restored device and complete
/// there.
#[test]
fn test_restore_keeps_pending_commands() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig::default();
    let old = device(&ram, &cfg);
    let new = device(&ram, &cfg);
    let mut drv = GuestDriver::new(&old, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    old.set_cmdq_batch_limit(1);
    let prod = drv
        .issue(&[cmd::tlbi_nsnh_all(), cmd::cfgi_all(), cmd::sync_none()])
        .unwrap();
    assert!(old.has_pending_work());
    let cons_before = old.save().ctrl.cmdq.cons;
    migrate(&old, &new);
    assert!(new.has_pending_work());
    assert_eq!(new.save().ctrl.cmdq.cons, cons_before);
    new.finish_pending();
    assert_eq!(new.save().ctrl.cmdq.cons, prod);
    assert!(!new.has_pending_work());
}

struct FailingAtc;
impl AtcEndpoint for FailingAtc {
    fn invalidate(&self, _: &AtcInvalidation) -> Result<(), AtcError> {
        Err(AtcError::Timeout)
    }
}

/// An ATC_INV that failed before the save makes the first CMD_SYNC after the restore fail with
/// CERROR_ATC_INV_SYNC.
#[test]
fn test_restore_keeps_pending_atc_sync_error() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig {
        ats: true,
        ..SmmuConfig::default()
    };
    let old = device(&ram, &cfg);
    let new = device(&ram, &cfg);
    old.register_atc(StreamId(SID), Arc::new(FailingAtc));
    let mut drv = GuestDriver::new(&old, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    drv.issue(&[cmd::atc_inv(SID, None, 0, 52)]).unwrap();
    assert!(old.save().atc_sync_error);
    migrate(&old, &new);
    drv.dev = &new;
    drv.issue(&[cmd::sync_none()]).unwrap();
    assert_eq!(
        drv.read32(r::CMDQ_CONS) >> 24 & 0x7F,
        3,
        "CERROR_ATC_INV_SYNC"
    );
}

/// Refused snapshots: another version (in the struct and in JSON), another configuration, a
/// CR0 this configuration cannot hold, malformed JSON. The device is
/// unchanged.
#[test]
fn test_restore_refuses_snapshots_that_do_not_fit() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let dev = device(&ram, &SmmuConfig::default());
    let good = dev.save();
    assert_eq!(good.version, SNAPSHOT_VERSION);
    let before = dev.save();

    // Version 1 (held stalls without their requests) and a future version 3.
    for old in [1, 3] {
        let mut s = good.clone();
        s.version = old;
        assert_eq!(
            dev.restore(&s),
            Err(SnapshotError::UnsupportedVersion {
                found: old,
                supported: 2
            })
        );
        let json = s.to_json().replace(
            &format!("\"version\":{old}"),
            &format!("\"version\":{old},\"future\":1"),
        );
        assert!(matches!(
            SmmuV3Snapshot::from_json(&json),
            Err(SnapshotError::UnsupportedVersion { found, .. }) if found == old
        ));
    }

    let ats = device(
        &ram,
        &SmmuConfig {
            ats: true,
            ..SmmuConfig::default()
        },
    );
    assert_eq!(
        ats.restore(&good),
        Err(SnapshotError::ConfigMismatch {
            register: "IDR0",
            snapshot: 0x094C_301B,
            device: 0x094C_341B,
        })
    );

    let mut s = good.clone();
    s.ctrl.cr0 = 1 << 5;
    assert_eq!(
        dev.restore(&s),
        Err(SnapshotError::InvalidRegister {
            register: "CR0",
            value: 0x20
        })
    );

    assert!(matches!(
        SmmuV3Snapshot::from_json("{\"version\":2}"),
        Err(SnapshotError::Malformed(_))
    ));
    assert!(matches!(
        SmmuV3Snapshot::from_json("not json"),
        Err(SnapshotError::Malformed(_))
    ));
    assert_eq!(dev.save(), before);
}

/// A page request queued before the save is answered by the guest's CMD_PRI_RESP after the
/// restore, and the endpoint collects the response from the restored device.
#[test]
fn test_restore_keeps_outstanding_page_request_groups() {
    use viommu_smmuv3::cmdq::command::PriResponse;
    use viommu_smmuv3::priq::{PageRequest, PageRequestOutcome};

    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig {
        ats: true,
        pri: true,
        ..SmmuConfig::default()
    };
    let old = device(&ram, &cfg);
    let new = device(&ram, &cfg);
    let mut drv = GuestDriver::new(&old, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let req = PageRequest {
        addr: IOVA,
        read: true,
        write: true,
        last: true,
        group: 7,
        ..PageRequest::default()
    };
    assert_eq!(
        old.page_request(StreamId(SID), &req).unwrap(),
        PageRequestOutcome::Queued
    );
    assert_eq!(old.pri_response(StreamId(SID), 7), None);
    migrate(&old, &new);
    assert_eq!(new.save().pri_groups.len(), 1);
    drv.dev = &new;
    drv.issue_sync(&[cmd::pri_resp(SID, 7, 2)]).unwrap();
    let r = new
        .pri_response(StreamId(SID), 7)
        .expect("response delivered");
    assert_eq!((r.code, r.automatic), (PriResponse::Success, false));
}
