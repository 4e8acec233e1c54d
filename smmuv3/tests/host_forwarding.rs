//! Host-backed streams, driven the way Linux drives the SMMU: invalidation batches (one host
//! call per run, flushed before other commands, at CMD_SYNC, at the batch limit and at the end
//! of a consume step), a batch failing at an index, CMD_SYNC completing after the host call,
//! and mixed-mode isolation between emulated and host-backed streams.

mod host_support;

use std::sync::{Arc, Mutex};

use host_support::*;
use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::StreamId;
use viommu_common::mem;
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use viommu_smmuv3::host::{HostAttachError, HostBackend, HOST_BACKED};
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot};
use viommu_smmuv3::trace::{render, TraceRecord};
use vm_memory::GuestMemoryMmap;

const IOVA: u64 = 0x1000_0000;
const PA: u64 = RAM + 0x0200_0000;

/// A probed and enabled device with `fake` installed and [`HOST_SID`] host-backed.
fn enabled<'a>(
    ram: &'a GuestMemoryMmap,
    dev: &'a Dev<'a>,
    fake: &Arc<Fake>,
) -> GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap> {
    let mut drv = GuestDriver::new(dev, ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    dev.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    dev.attach_host_stream(StreamId(HOST_SID)).unwrap();
    fake.take();
    drv
}

fn cons(dev: &Dev<'_>) -> u32 {
    dev.save().ctrl.cmdq.cons
}

fn prod(dev: &Dev<'_>) -> u32 {
    dev.save().ctrl.cmdq.prod
}

/// A run of forwardable commands is one host call; a command that is not forwarded (CFGI_CD
/// of an emulated stream) flushes first; CMD_SYNC flushes the rest. Nothing else is sent.
#[test]
fn test_one_host_call_per_run() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    let a = cmd::tlbi_nh_asid(0, 1);
    let b = cmd::tlbi_nh_asid(0, 2);
    let c = cmd::cfgi_cd(HOST_SID, 0, true);
    let d = cmd::tlbi_nh_va(0, 1, 0x1000, true);
    let e = cmd::tlbi_nsnh_all();
    drv.issue_sync(&[
        a,
        b,
        c,
        cmd::cfgi_cd(EMU_SID, 0, true),
        cmd::cfgi_cd_all(EMU_SID),
        d,
        e,
    ])
    .unwrap();
    assert_eq!(
        fake.take(),
        vec![
            Call::Invalidate(vec![a, b, c]),
            Call::Invalidate(vec![d, e])
        ]
    );
    // CFGI_CD_ALL of the host stream is forwarded too; PREFETCH and CFGI of emulated streams
    // never are.
    drv.issue_sync(&[cmd::prefetch_cfg(HOST_SID), cmd::cfgi_cd_all(HOST_SID)])
        .unwrap();
    assert_eq!(fake.batches(), vec![vec![cmd::cfgi_cd_all(HOST_SID)]]);
}

/// A batch never exceeds `max_batch`: 5 TLBIs with max 2 are three calls.
#[test]
fn test_flush_at_max_batch() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(2);
    let mut drv = enabled(&ram, &dev, &fake);
    let t: Vec<_> = (1..=5).map(|a| cmd::tlbi_nh_asid(0, a)).collect();
    drv.issue_sync(&t).unwrap();
    assert_eq!(
        fake.batches(),
        vec![vec![t[0], t[1]], vec![t[2], t[3]], vec![t[4]]]
    );
}

/// A consume step that stops at its batch limit flushes what it forwarded; the next step
/// (process_pending) sends the rest.
#[test]
fn test_flush_at_end_of_consume_step() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    dev.set_cmdq_batch_limit(3);
    let t: Vec<_> = (1..=5).map(|a| cmd::tlbi_nh_asid(0, a)).collect();
    drv.issue(&t).unwrap();
    assert_eq!(fake.batches(), vec![vec![t[0], t[1], t[2]]]);
    assert!(dev.has_pending_work());
    assert!(!dev.process_pending());
    assert_eq!(
        fake.batches(),
        vec![vec![t[0], t[1], t[2]], vec![t[3], t[4]]]
    );
}

/// CFGI_STE of a host stream: the pending invalidations reach the host before the stream is
/// re-configured, in command order.
#[test]
fn test_flush_before_cfgi_ste() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    let ste = drv.bypass_ste();
    let addr = drv.ste_addr(HOST_SID);
    for (i, w) in ste.iter().enumerate() {
        mem::write_u64_le(&ram, addr + 8 * i as u64, *w).unwrap();
    }
    let t = cmd::tlbi_nh_asid(0, 1);
    drv.issue_sync(&[t, cmd::cfgi_ste(HOST_SID)]).unwrap();
    assert_eq!(
        fake.take(),
        vec![
            Call::Invalidate(vec![t]),
            Call::Configure(HOST_SID, viommu_smmuv3::host::HostStreamConfig::Bypass)
        ]
    );
    // Unchanged configuration: no host call.
    drv.issue_sync(&[cmd::cfgi_ste(HOST_SID), cmd::cfgi_all()])
        .unwrap();
    assert_eq!(fake.take(), vec![]);
}

/// The host stops at batch index 1: CONS stays at that command with CERROR_ILL and
/// GERROR.CMDQ_ERR; after the driver's recovery (the failing slot becomes a CMD_SYNC, GERRORN)
/// consumption resumes there and the later command is forwarded again.
#[test]
fn test_batch_failure_stops_queue_at_failing_command() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    let start = prod(&dev);
    let t: Vec<_> = (1..=3).map(|a| cmd::tlbi_nh_asid(0, a)).collect();
    fake.batch_results.lock().unwrap().push_back(Some(1));
    drv.issue(&t).unwrap();
    assert_eq!(fake.batches(), vec![t.clone()]);
    let c = drv.read32(r::CMDQ_CONS);
    assert_eq!(c & 0x7F00_0000, 1 << 24, "CERROR_ILL");
    assert_eq!(c & 0xFFFFF, start + 1, "CONS at the refused command");
    let gerror = drv.read32(r::GERROR) ^ drv.read32(r::GERRORN);
    assert_eq!(gerror & 1, 1, "GERROR.CMDQ_ERR active");
    // Nothing moves until acknowledged.
    assert!(!dev.process_pending());
    assert_eq!(cons(&dev), c);
    fake.take();
    assert_eq!(drv.handle_gerror() & 1, 1);
    assert_eq!(fake.batches(), vec![vec![t[2]]]);
    assert_eq!(cons(&dev), start + 3);
    drv.issue_sync(&[]).unwrap();
}

/// A failing batch before a CMD_SYNC: the SYNC is not executed (its MSIPOLL word is not
/// written) and CONS stays at the refused command.
#[test]
fn test_batch_failure_blocks_following_sync() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    let start = prod(&dev);
    fake.batch_results.lock().unwrap().push_back(Some(0));
    let sync_slot = slot(&dev, start + 2);
    drv.issue(&[
        cmd::tlbi_nh_asid(0, 1),
        cmd::tlbi_nh_asid(0, 2),
        cmd::sync_msipoll(sync_slot),
    ])
    .unwrap();
    assert_eq!(cons(&dev), (1 << 24) | start);
    assert_ne!(mem::read_u32_le(&ram, sync_slot).unwrap(), 0);
}

/// The command-queue slot of queue position `pos`.
fn slot(dev: &Dev<'_>, pos: u32) -> u64 {
    let base = dev.save().ctrl.cmdq.base;
    let log2 = base & 0x1F;
    (base & 0x000F_FFFF_FFFF_FFE0) + 16 * (u64::from(pos) & ((1 << log2) - 1))
}

/// CMD_SYNC completes only after the host call for the commands before it has returned: during
/// the call, the SYNC's MSIPOLL word is still the command; afterwards it is 0.
#[test]
fn test_sync_completes_after_host_call() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    assert!(drv.info.msipoll);
    let sync_slot = slot(&dev, prod(&dev) + 2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = seen.clone();
        let ram = ram.clone();
        *fake.hook.lock().unwrap() = Some(Box::new(move |_| {
            seen.lock()
                .unwrap()
                .push(mem::read_u32_le(&ram, sync_slot).unwrap());
        }));
    }
    drv.issue_sync(&[cmd::tlbi_nh_asid(0, 1), cmd::tlbi_nh_asid(0, 2)])
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_ne!(seen[0], 0, "MSIPOLL written before the host call returned");
    assert_eq!(mem::read_u32_le(&ram, sync_slot).unwrap(), 0);
}

/// Mixed mode: the emulated stream translates through the walker and its TLBI reaches both the
/// local IOTLB and the host; the host-backed stream's software translation fails with
/// HOST_BACKED and records no event.
#[test]
fn test_mixed_mode_isolation() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x2000, Prot::RW);
    drv.attach_s1(EMU_SID, &dom).unwrap();
    drv.attach_s1(HOST_SID, &dom).unwrap();
    let m = dev
        .translate(&DmaRequest::read(EMU_SID, IOVA + 8, 4))
        .unwrap();
    assert_eq!(m.output, PA + 8);
    let f = dev
        .translate(&DmaRequest::read(HOST_SID, IOVA + 8, 4))
        .unwrap_err();
    assert_eq!(f.event, HOST_BACKED);
    assert_eq!(f.kind, viommu_common::traits::FaultKind::Configuration);
    assert!(drv.read_events().is_empty());
    // The host stream's configuration went to the host: the guest STE's words 0-1.
    let addr = drv.ste_addr(HOST_SID);
    let w = [
        mem::read_u64_le(&ram, addr).unwrap(),
        mem::read_u64_le(&ram, addr + 8).unwrap(),
    ];
    assert_eq!(
        fake.configs().last(),
        Some(&(
            HOST_SID,
            viommu_smmuv3::host::HostStreamConfig::Translate { ste: w }
        ))
    );
    fake.take();
    drv.unmap_s1(&dom, IOVA, 0x1000).unwrap();
    let batches = fake.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0][0][0] & 0xFF, 0x12, "TLBI_NH_VA forwarded");
    let f = dev
        .translate(&DmaRequest::read(EMU_SID, IOVA + 8, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Translation);
}

/// Attach refuses without a backend, twice, or beyond SIDSIZE; detach returns the stream to
/// software translation.
#[test]
fn test_attach_detach_registry() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    assert_eq!(
        dev.attach_host_stream(StreamId(HOST_SID)),
        Err(HostAttachError::NoBackend)
    );
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    assert_eq!(
        dev.attach_host_stream(StreamId(HOST_SID)),
        Err(HostAttachError::AlreadyAttached(HOST_SID))
    );
    assert_eq!(
        dev.attach_host_stream(StreamId(1 << 16)),
        Err(HostAttachError::OutOfRange(1 << 16))
    );
    assert_eq!(dev.host_streams(), vec![StreamId(HOST_SID)]);
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    drv.attach_s1(HOST_SID, &dom).unwrap();
    assert!(dev.detach_host_stream(StreamId(HOST_SID)));
    assert!(!dev.detach_host_stream(StreamId(HOST_SID)));
    assert!(!dev.is_host_backed(StreamId(HOST_SID)));
    let m = dev.translate(&DmaRequest::read(HOST_SID, IOVA, 4)).unwrap();
    assert_eq!(m.output, PA);
    // Re-attached: cached route dropped at once.
    dev.attach_host_stream(StreamId(HOST_SID)).unwrap();
    let f = dev
        .translate(&DmaRequest::read(HOST_SID, IOVA, 4))
        .unwrap_err();
    assert_eq!(f.event, HOST_BACKED);
    // A host failure on the initial configuration leaves the stream emulated.
    dev.detach_host_stream(StreamId(HOST_SID));
    *fake.fail_configure.lock().unwrap() = true;
    assert!(matches!(
        dev.attach_host_stream(StreamId(HOST_SID)),
        Err(HostAttachError::Configure { sid: HOST_SID, .. })
    ));
    assert!(!dev.is_host_backed(StreamId(HOST_SID)));
}

/// One forwarding scenario's trace: batches, a refused command, stream configurations.
#[test]
fn test_host_trace_snapshot() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(2);
    let mut drv = enabled(&ram, &dev, &fake);
    let log = collect(&dev);
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    drv.attach_s1(HOST_SID, &dom).unwrap();
    drv.issue_sync(&[
        cmd::tlbi_nh_asid(0, 1),
        cmd::tlbi_nh_va(0, 1, IOVA, true),
        cmd::cfgi_cd(HOST_SID, 0, true),
        cmd::cfgi_cd(EMU_SID, 0, true),
    ])
    .unwrap();
    fake.batch_results.lock().unwrap().push_back(Some(1));
    drv.issue_sync(&[cmd::tlbi_nh_asid(0, 2), cmd::tlbi_nh_asid(0, 3)])
        .unwrap();
    dev.set_tracer(None);
    let records = log.lock().unwrap().clone();
    assert!(records.iter().any(|r| matches!(r, TraceRecord::Host(_))));
    insta::assert_snapshot!("host_forwarding", render(&records));
}

/// With ATS: a Translation Request for a host-backed stream is a Completer Abort named
/// HOST_BACKED (the endpoint's ATS goes to the host SMMU), and ATC_INV of a host stream is
/// forwarded while one of an emulated stream is not.
#[test]
fn test_ats_on_host_stream() {
    use viommu_smmuv3::ats::{AtsError, AtsRequest};
    let ram = ram();
    let irq = Arc::new(viommu_common::testing::RecordingIrq::new());
    let cfg = viommu_smmuv3::caps::SmmuConfig {
        ats: true,
        ..viommu_smmuv3::caps::SmmuConfig::default()
    };
    let dev = viommu_smmuv3::device::SmmuV3::new(&cfg, &ram, irq).unwrap();
    let fake = Fake::new(128);
    let mut drv = enabled(&ram, &dev, &fake);
    assert_eq!(
        dev.ats_translate(&AtsRequest::new(HOST_SID, IOVA)),
        Err(AtsError::CompleterAbort(HOST_BACKED.name()))
    );
    let host = cmd::atc_inv(HOST_SID, None, 0, 52);
    drv.issue_sync(&[host, cmd::atc_inv(EMU_SID, None, 0, 52)])
        .unwrap();
    assert_eq!(fake.batches(), vec![vec![host]]);
}
