//! The stall model driven the way Linux's SVA/IOPF path uses it (Linux `arm_smmu_handle_event()`):
//! a `dma-can-stall` master with CD.S = 1 faults, the event carries Stall = 1 and an STAG, the "OS"
//! maps the page and answers CMD_RESUME without a CMD_SYNC.

use std::sync::Arc;
use std::time::Duration;

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::{DmaTranslator, FaultKind};
use viommu_common::{DmaRequest, StreamId};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::idr::StallModel;
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::stall::{Resolution, StallStatus};
use viommu_smmuv3::testing::pgtable::Prot;
use viommu_smmuv3::testing::{cmd, stalled, DriverOptions, GuestDriver, S1Domain};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x10_0000;
const PA: u64 = 0x4200_0000;

type Smmu<'a> = SmmuV3<&'a GuestMemoryMmap>;

fn stall_config(stall_max: u16) -> SmmuConfig {
    SmmuConfig {
        stall_model: StallModel::STALL_TERMINATE,
        stall_max,
        ..SmmuConfig::default()
    }
}

/// Probe, reset, and attach `sids` to one stage-1 domain whose CD has S = 1.
fn setup<'a>(
    smmu: &'a Smmu<'a>,
    ram: &'a GuestMemoryMmap,
    sids: &[u32],
    opts: DriverOptions,
) -> (
    GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap>,
    S1Domain,
) {
    let mut drv = GuestDriver::new(smmu, ram, RAM, RAM_SIZE / 2, opts);
    drv.probe().unwrap();
    assert!(drv.info.stalls, "IDR0.STALL_MODEL = 0 advertises stalls");
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(1);
    for &sid in sids {
        drv.attach_s1_stall(sid, &dom).unwrap();
    }
    (drv, dom)
}

fn read(sid: u32, addr: u64) -> DmaRequest {
    DmaRequest::read(sid, addr, 4)
}

/// The Linux SVA flow: a DMA to an unmapped page stalls (event F_TRANSLATION with Stall = 1,
/// STAG), a device thread waits, the OS maps the page and sends RESUME(Retry) without a SYNC,
/// and the waiting DMA completes with the new translation.
#[test]
fn test_stalled_dma_completes_after_os_maps_page_and_resumes() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let (mut drv, dom) = setup(&smmu, &ram, &[SID], DriverOptions::default());
    let stag = stalled(smmu.translate(&read(SID, IOVA + 0x24)));
    assert_eq!(smmu.stalled_transactions(), 1);
    let ev = drv.read_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0][0], 0x10 | u64::from(SID) << 32, "F_TRANSLATION, SID");
    assert_eq!(ev[0][1] >> 31 & 1, 1, "Stall [31]");
    assert_eq!(ev[0][1] & 0xFFFF, u64::from(stag), "STAG [15:0]");
    assert_eq!(ev[0][1] >> 35 & 1, 1, "RnW");
    assert_eq!(ev[0][2], IOVA + 0x24, "InputAddr");
    assert_eq!(smmu.stall_status(StreamId(SID), stag), StallStatus::Pending);

    std::thread::scope(|s| {
        let waiter = s.spawn(|| smmu.wait_stall(StreamId(SID), stag, Duration::from_secs(10)));
        // The OS handles the fault: map the page, then RESUME(Retry), no CMD_SYNC.
        dom.pgtable
            .map(drv.mem, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
        drv.issue(&[cmd::resume(SID, stag, 1)]).unwrap();
        match waiter.join().unwrap() {
            StallStatus::Resolved {
                how: Resolution::Retried,
                result: Ok(m),
            } => assert_eq!(m.output, PA + 0x24),
            other => panic!("expected a successful retry, got {other:?}"),
        }
    });
    assert_eq!(smmu.stalled_transactions(), 0);
    assert_eq!(
        smmu.stall_status(StreamId(SID), stag),
        StallStatus::Unknown,
        "a resolution is reported once"
    );
    assert_eq!(drv.read32(r::GERROR), 0);
}

/// RESUME(Abort) returns the original fault; RESUME(Terminate, Ab = 0) completes RAZ/WI; both
/// without re-translating.
#[test]
fn test_resume_abort_and_terminate() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let (mut drv, _dom) = setup(&smmu, &ram, &[SID], DriverOptions::default());
    let a = stalled(smmu.translate(&read(SID, IOVA)));
    let b = stalled(smmu.translate(&read(SID, IOVA + 0x1000)));
    assert_ne!(a, b, "STAGs of outstanding stalls differ");
    drv.issue(&[cmd::resume(SID, a, 2), cmd::resume(SID, b, 0)])
        .unwrap();
    match smmu.stall_status(StreamId(SID), a) {
        StallStatus::Resolved {
            how: Resolution::Aborted,
            result: Err(f),
        } => {
            assert_eq!(f.kind, FaultKind::Translation);
            assert_eq!(f.event, Smmuv3FaultId::Translation);
            assert_eq!(f.stall_tag, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        smmu.stall_status(StreamId(SID), b),
        StallStatus::Resolved {
            how: Resolution::RazWi,
            ..
        }
    ));
}

/// STALL_TERM(SID) terminates every stall of that stream and none of another's.
#[test]
fn test_stall_term_terminates_only_that_stream() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let (mut drv, _dom) = setup(&smmu, &ram, &[SID, SID + 1], DriverOptions::default());
    let a1 = stalled(smmu.translate(&read(SID, IOVA)));
    let a2 = stalled(smmu.translate(&read(SID, IOVA + 0x2000)));
    let b = stalled(smmu.translate(&read(SID + 1, IOVA)));
    drv.issue_sync(&[cmd::stall_term(SID)]).unwrap();
    for s in [a1, a2] {
        assert!(matches!(
            smmu.stall_status(StreamId(SID), s),
            StallStatus::Resolved {
                how: Resolution::Aborted,
                result: Err(_)
            }
        ));
    }
    assert_eq!(
        smmu.stall_status(StreamId(SID + 1), b),
        StallStatus::Pending
    );
    assert_eq!(smmu.stalled_transactions(), 1);
}

/// The shutdown sequence of §4.7.2: the STE becomes an abort STE (CFGI_STE + SYNC); a stalled
/// transaction retried afterwards uses the new configuration and terminates. Clearing SMMUEN
/// terminates whatever is still stalled.
#[test]
fn test_reconfiguration_and_smmuen_clear_terminate_stalls() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let (mut drv, dom) = setup(&smmu, &ram, &[SID], DriverOptions::default());
    let a = stalled(smmu.translate(&read(SID, IOVA)));
    let b = stalled(smmu.translate(&read(SID, IOVA + 0x1000)));
    // The page is mapped meanwhile, but the stream is being torn down.
    dom.pgtable
        .map(drv.mem, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    let abort = drv.abort_ste();
    drv.write_ste(SID, abort).unwrap();
    assert_eq!(
        smmu.stall_status(StreamId(SID), a),
        StallStatus::Pending,
        "CFGI_STE does not complete stalls"
    );
    drv.issue(&[cmd::resume(SID, a, 1)]).unwrap();
    match smmu.stall_status(StreamId(SID), a) {
        StallStatus::Resolved {
            how: Resolution::Retried,
            result: Err(f),
        } => assert_eq!(f.event, Smmuv3FaultId::SteAbort),
        other => panic!("retry under the abort STE must terminate: {other:?}"),
    }
    drv.disable().unwrap();
    assert!(matches!(
        smmu.stall_status(StreamId(SID), b),
        StallStatus::Resolved {
            how: Resolution::Aborted,
            ..
        }
    ));
    assert_eq!(smmu.stalled_transactions(), 0);
}

/// With IDR5.STALL_MAX = 2, a third outstanding stall does not fit: that transaction is
/// terminated with an ordinary (Stall = 0) fault; once a stall is resolved and collected, the
/// next fault stalls again.
#[test]
fn test_stall_table_exhaustion_terminates() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(2), &ram, Arc::new(RecordingIrq::new())).unwrap();
    assert_eq!(smmu.stall_capacity(), 2);
    let (mut drv, _dom) = setup(&smmu, &ram, &[SID], DriverOptions::default());
    let a = stalled(smmu.translate(&read(SID, IOVA)));
    let _b = stalled(smmu.translate(&read(SID, IOVA + 0x1000)));
    let c = smmu.translate(&read(SID, IOVA + 0x2000)).unwrap_err();
    assert_eq!(c.kind, FaultKind::Translation);
    assert_eq!(c.stall_tag, None);
    let ev = drv.read_events();
    assert_eq!(
        ev.len(),
        3,
        "CD.R = 1: the terminated fault is recorded too"
    );
    assert_eq!(ev[2][1] >> 31 & 1, 0, "Stall = 0 for the terminated one");
    drv.issue(&[cmd::resume(SID, a, 2)]).unwrap();
    // The resolved (uncollected) entry is evicted to make room.
    stalled(smmu.translate(&read(SID, IOVA + 0x3000)));
}

/// Hostile RESUMEs: an unknown STAG and a STAG of another stream are no-ops (IHI 0070 §4.7.1),
/// not command errors; the real stall stays pending.
#[test]
fn test_resume_with_unknown_stag_or_wrong_sid_is_noop() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let (mut drv, _dom) = setup(&smmu, &ram, &[SID, SID + 1], DriverOptions::default());
    let a = stalled(smmu.translate(&read(SID, IOVA)));
    drv.issue_sync(&[
        cmd::resume(SID, a.wrapping_add(7), 1),
        cmd::resume(SID + 1, a, 2),
        cmd::resume(0xFFFF_FFFF, a, 2),
    ])
    .unwrap();
    assert_eq!(drv.read32(r::GERROR), 0, "no CERROR");
    assert_eq!(drv.read32(r::CMDQ_CONS) >> 24 & 0x7F, 0);
    assert_eq!(smmu.stall_status(StreamId(SID), a), StallStatus::Pending);
    assert_eq!(
        smmu.stall_status(StreamId(SID + 1), a),
        StallStatus::Unknown,
        "a STAG is only visible to its own stream"
    );
}

/// A full event queue cannot take a stall record: the transaction waits (no overflow flag: no
/// record is lost) and is retried as though it had just arrived once the guest frees space
/// (IHI 0070 §3.12.2), producing a new record with a new STAG that the guest resumes.
#[test]
fn test_stall_record_waits_for_event_queue_space() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let opts = DriverOptions {
        evtq_max_log2: 1,
        ..DriverOptions::default()
    };
    let (mut drv, dom) = setup(&smmu, &ram, &[SID], opts);
    let s1 = stalled(smmu.translate(&read(SID, IOVA)));
    let s2 = stalled(smmu.translate(&read(SID, IOVA + 0x1000)));
    let s3 = stalled(smmu.translate(&read(SID, IOVA + 0x2000)));
    // CONSTRAINED UNPREDICTABLE (§4.7.1): a RESUME for a stall whose record is not visible yet
    // has no effect here.
    drv.issue(&[cmd::resume(SID, s3, 2)]).unwrap();
    assert_eq!(smmu.stall_status(StreamId(SID), s3), StallStatus::Pending);
    assert_eq!(
        drv.read32(r::EVENTQ_PROD_P1) >> 31,
        0,
        "no overflow: the stall record is not dropped"
    );
    assert_eq!(smmu.stalled_transactions(), 3);
    // A CONS write that frees nothing leaves the waiting transaction (and its STAG) alone.
    drv.write32(r::EVENTQ_CONS_P1, drv.read32(r::EVENTQ_CONS_P1));
    assert_eq!(drv.read32(r::EVENTQ_PROD_P1), 0x2);
    assert_eq!(smmu.stall_status(StreamId(SID), s3), StallStatus::Pending);
    let ev = drv.read_events();
    assert_eq!(ev.len(), 2);
    assert_eq!(
        [ev[0][1] & 0xFFFF, ev[1][1] & 0xFFFF],
        [u64::from(s1), u64::from(s2)]
    );
    // The CONS write freed space: the third transaction was retried and stalled again.
    let ev = drv.read_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0][1] >> 31 & 1, 1);
    let s3b = (ev[0][1] & 0xFFFF) as u16;
    assert_ne!(s3b, s3);
    assert_eq!(ev[0][2], IOVA + 0x2000);
    dom.pgtable
        .map(drv.mem, &mut drv.alloc, IOVA + 0x2000, PA, 0x1000, Prot::RW);
    drv.issue(&[cmd::resume(SID, s3b, 1)]).unwrap();
    match smmu.stall_status(StreamId(SID), s3) {
        StallStatus::Resolved {
            how: Resolution::Retried,
            result: Ok(m),
        } => assert_eq!(m.output, PA),
        other => panic!("the caller's original STAG follows the retry: {other:?}"),
    }
}

/// Without CD.S the same fault terminates (Stall = 0), and with the terminate-only model
/// RESUME is CERROR_ILL.
#[test]
fn test_no_stall_without_cd_s_and_resume_illegal_without_stall_model() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(SID, &dom).unwrap();
    let f = smmu.translate(&read(SID, IOVA)).unwrap_err();
    assert_eq!((f.kind, f.stall_tag), (FaultKind::Translation, None));

    let ram2 = guest_ram(RAM, RAM_SIZE as usize);
    let smmu2 = SmmuV3::new(&SmmuConfig::default(), &ram2, Arc::new(RecordingIrq::new())).unwrap();
    let mut drv2 = GuestDriver::bring_up(&smmu2, &ram2, RAM, RAM_SIZE / 2);
    drv2.issue(&[cmd::resume(SID, 0, 1)]).unwrap();
    assert_eq!(drv2.read32(r::CMDQ_CONS) >> 24 & 0x7F, 1, "CERROR_ILL");
}

/// Stage 2 stalls per STE.S2S (IHI 0070 §3.12): the record has S2 = 1, the IPA and Stall = 1;
/// after the hypervisor maps the IPA, RESUME(Retry) completes the DMA.
#[test]
fn test_stage2_fault_stalls_with_s2s() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let mut drv = GuestDriver::bring_up(&smmu, &ram, RAM, RAM_SIZE / 2);
    let dom = drv.new_s2_domain(3);
    let mut ste = drv.s2_ste(&dom);
    ste[2] |= 1 << 57; // S2S
    drv.write_ste(SID, ste).unwrap();
    let stag = stalled(smmu.translate(&read(SID, IOVA + 8)));
    let ev = drv.read_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0][1] >> 31 & 1, 1, "Stall");
    assert_eq!(ev[0][1] >> 39 & 1, 1, "S2");
    assert_eq!(ev[0][3], (IOVA + 8) & !0xFFF, "IPA [51:12]");
    dom.pgtable
        .map(drv.mem, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    drv.issue(&[cmd::resume(SID, stag, 1)]).unwrap();
    match smmu.stall_status(StreamId(SID), stag) {
        StallStatus::Resolved {
            how: Resolution::Retried,
            result: Ok(m),
        } => assert_eq!(m.output, PA + 8),
        other => panic!("{other:?}"),
    }
}

/// Many device threads stall at once and wait; a guest thread consumes the events and answers
/// each record with RESUME, mapping even pages and aborting odd ones. Every waiter gets its own
/// answer, and no stall is left behind.
#[test]
fn test_concurrent_stalls_each_get_their_answer() {
    const N: u64 = 16;
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = SmmuV3::new(&stall_config(0), &ram, Arc::new(RecordingIrq::new())).unwrap();
    let (mut drv, dom) = setup(&smmu, &ram, &[SID], DriverOptions::default());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..N)
            .map(|i| {
                let smmu = &smmu;
                s.spawn(move || {
                    let stag = stalled(smmu.translate(&read(SID, IOVA + i * 0x1000)));
                    (
                        i,
                        smmu.wait_stall(StreamId(SID), stag, Duration::from_secs(20)),
                    )
                })
            })
            .collect();
        let mut answered = 0;
        for _ in 0..100_000 {
            for ev in drv.read_events() {
                let stag = (ev[1] & 0xFFFF) as u16;
                let page = (ev[2] - IOVA) / 0x1000;
                if page % 2 == 0 {
                    dom.pgtable.map(
                        drv.mem,
                        &mut drv.alloc,
                        IOVA + page * 0x1000,
                        PA + page * 0x1000,
                        0x1000,
                        Prot::RW,
                    );
                    drv.issue(&[cmd::resume(SID, stag, 1)]).unwrap();
                } else {
                    drv.issue(&[cmd::resume(SID, stag, 2)]).unwrap();
                }
                answered += 1;
            }
            if answered == N {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(answered, N);
        for w in workers {
            let (i, st) = w.join().unwrap();
            match st {
                StallStatus::Resolved {
                    how: Resolution::Retried,
                    result: Ok(m),
                } => {
                    assert_eq!(i % 2, 0);
                    assert_eq!(m.output, PA + i * 0x1000);
                }
                StallStatus::Resolved {
                    how: Resolution::Aborted,
                    result: Err(f),
                } => {
                    assert_eq!(i % 2, 1);
                    assert_eq!(f.event, Smmuv3FaultId::Translation);
                }
                other => panic!("page {i}: {other:?}"),
            }
        }
    });
    assert_eq!(smmu.stalled_transactions(), 0);
}
