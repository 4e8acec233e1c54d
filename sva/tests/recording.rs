//! Recording-backend scenarios, snapshotted: the host operation order is the behaviour under test.

use std::sync::Arc;

use viommu_common::StreamId;
use viommu_smmuv3::spec::evt::EvtEntry;
use viommu_sva::recording::{
    testbed_caps, Recorder, RecordingEvents, RecordingPort, RecordingViommu,
};
use viommu_sva::spec::cmd;
use viommu_sva::{
    canonicalise, events::encode_stream, teardown_all, ConfigChange, Endpoint, Errno, EventItem,
    HostEndpoint, HostEventSource, HostOp, HostViommu, InvalidateError, SteContext, StreamConfig,
};

const CTX: SteContext = SteContext {
    oas_bits: 44,
    ssid_bits: 0,
    cd2l: false,
    ats: false,
};

fn s1(ctxptr: u64) -> StreamConfig {
    canonicalise([0xb | ctxptr, 0], &CTX).unwrap_or(StreamConfig::Abort)
}

fn setup(rec: &Recorder) -> Arc<RecordingViommu> {
    Arc::new(RecordingViommu::new(rec, testbed_caps()).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn attach_replace_detach_is_make_before_break() {
    let rec = Recorder::new();
    let v = setup(&rec);
    let mut ep = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 100),
        StreamId(0x42),
        StreamConfig::Bypass,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t1 = s1(0x4000_0000);
    let t2 = s1(0x4000_1000);
    assert!(matches!(
        ep.set_config(t1),
        Ok(ConfigChange::Replaced { released: None, .. })
    ));
    assert!(matches!(
        ep.set_config(t2),
        Ok(ConfigChange::Replaced {
            released: Some(_),
            ..
        })
    ));
    assert_eq!(
        ep.set_config(t2).ok(),
        Some(ConfigChange::Unchanged),
        "no HWPT churn for an equal STE"
    );
    // a Linux-style re-write that differs only in cleared fields is also unchanged
    assert_eq!(
        ep.apply_guest_ste([0xb | 0x4000_1000, 1 << 44 | 1 << 19], &CTX)
            .ok(),
        Some(ConfigChange::Unchanged)
    );
    assert!(ep.set_config(StreamConfig::Bypass).is_ok());
    assert_eq!(teardown_all(None::<RecordingEvents>, vec![ep], &*v), Ok(()));
    assert!(rec
        .live_nested()
        .iter()
        .all(|h| *h == v.shared_hwpt(viommu_sva::SharedHwpt::Abort)
            || *h == v.shared_hwpt(viommu_sva::SharedHwpt::Bypass)));
    insta::assert_snapshot!("attach_replace_detach", rec.render());
}

#[test]
fn failed_replace_keeps_the_old_translation_attached() {
    let rec = Recorder::new();
    let v = setup(&rec);
    let mut ep = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 7),
        StreamId(1),
        StreamConfig::Abort,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(ep.set_config(s1(0x1000)).is_ok());
    let before = ep.attached();
    rec.fail(HostOp::Attach, 2, Errno::EINVAL);
    let err = ep.set_config(s1(0x2000)).err();
    assert_eq!(
        err.and_then(|e| e.host()),
        Some((HostOp::Attach, Errno::EINVAL))
    );
    assert_eq!(ep.attached(), before);
    assert_eq!(ep.config(), s1(0x1000));
    // an STE the host cannot express does not park a translating stream on abort
    assert!(ep.apply_guest_ste([0xf, 0], &CTX).is_err());
    assert_eq!(ep.attached(), before);
    insta::assert_snapshot!("failed_replace", rec.render());
}

#[test]
fn invalidation_batch_with_a_failure_in_the_middle_reports_the_index() {
    let rec = Recorder::new();
    let v = setup(&rec);
    rec.clear();
    let batch = [
        cmd::tlbi_nh_va(1, 0x1000, true),
        cmd::tlbi_nh_va(1, 0x2000, true),
        cmd::cfgi_cd_all(0x42),
        cmd::cfgi_ste(0x42, true), // never forwardable
        cmd::tlbi_nh_asid(1),
    ];
    let r = v.invalidate(&batch);
    assert!(
        matches!(
            r,
            Err(InvalidateError::Rejected {
                applied: 3,
                index: 3,
                errno: Errno::EIO,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(v.invalidate(&batch[..3]), Ok(3));
    insta::assert_snapshot!("invalidation_batch_failure", rec.render());
}

fn fault(vsid: u32, addr: u64) -> EvtEntry {
    EvtEntry::from_words([0x10 | u64::from(vsid) << 32, 1 << 35, addr, 0])
}

#[test]
fn event_burst_with_lost_events_surfaces_exact_counts() {
    let rec = Recorder::new();
    let mut q = RecordingEvents::new(&rec);
    q.push_read(encode_stream(&[
        (0, Some(fault(0x42, 0x10_0000))),
        (1, Some(fault(0x42, 0x10_0004))),
    ]));
    // the queue overflowed: sequences 2..=9 dropped, then a LOST_EVENTS header carrying 9
    q.push_read(encode_stream(&[(9, None)]));
    q.push_read(encode_stream(&[
        (10, Some(fault(0x42, 0x10_0008))),
        (13, Some(fault(0x43, 0x20_0000))),
    ]));
    let mut out = Vec::new();
    assert_eq!(q.read_available(&mut out), Ok(6));
    let mut log = rec.render();
    for item in &out {
        log.push_str(&match item {
            EventItem::Record(e) => format!(
                "event seq {} {} vsid {:#x} addr {:#x}\n",
                e.sequence,
                e.id().name().unwrap_or("UNKNOWN"),
                e.vsid(),
                e.input_addr()
            ),
            EventItem::Lost { count } => format!("lost {count}\n"),
        });
    }
    insta::assert_snapshot!("event_burst_lost", log);
}

#[test]
fn teardown_after_an_error_still_runs_every_step_in_order() {
    let rec = Recorder::new();
    let v = setup(&rec);
    let q = RecordingEvents::new(&rec);
    let mut a = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 100),
        StreamId(0x42),
        StreamConfig::Bypass,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let b = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 101),
        StreamId(0x43),
        StreamConfig::Abort,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(a.set_config(s1(0x8000)).is_ok());
    // the vDEVICE allocation for a third device fails: nothing of it is left behind
    rec.fail(HostOp::VdeviceAlloc, 2, Errno::EEXIST);
    assert!(Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 102),
        StreamId(0x42),
        StreamConfig::Bypass
    )
    .is_err());
    rec.clear();
    // the first destroy during teardown (the event queue) fails; the rest still runs
    rec.fail(HostOp::Destroy, 0, Errno::EBUSY);
    let r = teardown_all(Some(q), vec![a, b], &*v);
    assert_eq!(r.map_err(|e| e.failures.len()), Err(1));
    insta::assert_snapshot!("teardown_after_error", rec.render());
}

#[test]
fn invalid_ste_parks_on_abort_only_when_nothing_translates() {
    let rec = Recorder::new();
    let v = setup(&rec);
    let mut ep = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 9),
        StreamId(5),
        StreamConfig::Bypass,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = ep
        .apply_guest_ste([0xd, 0], &CTX)
        .err()
        .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("invalid guest STE: STE.Config = 0b110 needs stage 2, which this vSMMU does not advertise"));
    assert_eq!(
        ep.config(),
        StreamConfig::Abort,
        "bypass + illegal STE fails closed"
    );
    assert_eq!(ep.attached(), v.shared_hwpt(viommu_sva::SharedHwpt::Abort));
}

#[test]
fn endpoint_created_translating_attaches_abort_first_then_replaces() {
    let rec = Recorder::new();
    let v = setup(&rec);
    rec.clear();
    let ep = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 3),
        StreamId(8),
        s1(0x3000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(ep.config(), StreamConfig::Translate(_)));
    let ops = rec.render();
    assert_eq!(
        ops.lines().collect::<Vec<_>>(),
        vec![
            "alloc_vdevice dev 3 vsid 0x8 -> vdev 5",
            "attach dev 3 -> hwpt 3",
            "alloc_nested dev 3 ste [0x000000000000300b, 0x0000000000000000] -> hwpt 6",
            "attach dev 3 -> hwpt 6",
        ]
    );
}

#[test]
fn failed_release_keeps_the_new_config_and_retries_at_teardown() {
    let rec = Recorder::new();
    let v = setup(&rec);
    let mut ep = Endpoint::new(
        v.clone(),
        RecordingPort::new(&rec, 4),
        StreamId(9),
        s1(0x1000),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rec.fail(HostOp::Destroy, 0, Errno::EBUSY);
    let r = ep.set_config(s1(0x2000));
    assert!(
        matches!(r, Err(viommu_sva::EndpointError::ReleaseFailed { .. })),
        "{r:?}"
    );
    assert_eq!(ep.config(), s1(0x2000), "the new translation is installed");
    assert_eq!(ep.teardown(), Ok(()));
    assert!(
        rec.live_nested().is_empty(),
        "the leaked HWPT was destroyed at teardown"
    );
}

#[test]
fn random_guest_ste_words_never_leave_the_kernel_masks() {
    use rand::{Rng, SeedableRng};
    use viommu_sva::spec::ste::{NESTING_ALLOWED_W0, NESTING_ALLOWED_W1};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let ctxs = [
        CTX,
        SteContext {
            oas_bits: 52,
            ssid_bits: 20,
            cd2l: true,
            ats: true,
        },
        SteContext {
            oas_bits: 32,
            ssid_bits: 4,
            cd2l: false,
            ats: false,
        },
    ];
    for i in 0..200_000u32 {
        let mut w0: u64 = rng.random();
        // bias towards V=1, Config=5 so the translate path is exercised
        if i % 2 == 0 {
            w0 = (w0 & !0xf) | 0xb;
        }
        let w1: u64 = if i % 3 == 0 {
            rng.random::<u64>() & 0xff
        } else {
            rng.random()
        };
        for ctx in &ctxs {
            if let Ok(StreamConfig::Translate(c)) = canonicalise([w0, w1], ctx) {
                let [o0, o1] = c.words();
                assert_eq!(o0 & !NESTING_ALLOWED_W0, 0, "{w0:#x} {w1:#x}");
                assert_eq!(o1 & !NESTING_ALLOWED_W1, 0, "{w0:#x} {w1:#x}");
                assert_eq!(o0 & 0xf, 0xb);
                assert!(o0 >> 59 <= u64::from(ctx.ssid_bits));
                assert_eq!(
                    o0 & 0x000F_FFFF_FFFF_FFC0 & !((1u64 << ctx.oas_bits) - 1),
                    0,
                    "ctxptr within OAS"
                );
            }
        }
    }
}

#[test]
fn random_vevent_bytes_decode_or_fail_without_panicking() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..20_000 {
        let len = rng.random_range(0..200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let mut out = Vec::new();
        let _ = viommu_sva::VeventDecoder::new().decode(&bytes, &mut out);
        assert!(out.len() <= len / 8 + 1);
    }
}
