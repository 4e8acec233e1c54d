//! Host stream configuration and host events: SMMUEN / GBPA transitions, reset and restore
//! re-configure host streams; an STE the host rejects is C_BAD_STE plus abort; host event
//! records reach the guest queue with their interrupt, lost ones through OVFLG; hot attach and
//! detach while other threads DMA on emulated streams.

mod host_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use host_support::*;
use viommu_common::id::StreamId;
use viommu_common::mem;
use viommu_common::testing::Irq;
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use viommu_smmuv3::host::{HostBackend, HostStreamConfig, LostOutcome, HOST_BACKED};
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot};

const IOVA: u64 = 0x1000_0000;
const PA: u64 = RAM + 0x0200_0000;
const GBPA_UPDATE: u32 = 1 << 31;
const GBPA_ABORT: u32 = 1 << 20;

fn last_config(fake: &Fake, sid: u32) -> Option<HostStreamConfig> {
    fake.configs()
        .into_iter()
        .rev()
        .find(|(s, _)| *s == sid)
        .map(|(_, c)| c)
}

/// Attached before the guest enables the SMMU, a host stream follows GBPA; SMMUEN = 1 gives it
/// the guest STE; clearing SMMUEN returns it to GBPA; a system reset to bypass (GBPA reset).
/// An unchanged configuration is never sent twice.
#[test]
fn test_smmuen_gbpa_reset_reconfigure() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    dev.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    dev.attach_host_stream(StreamId(HOST_SID)).unwrap();
    assert_eq!(
        fake.take(),
        vec![Call::Configure(HOST_SID, HostStreamConfig::Bypass)]
    );
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.write32(r::GBPA, GBPA_UPDATE | GBPA_ABORT);
    assert_eq!(
        fake.take(),
        vec![Call::Configure(HOST_SID, HostStreamConfig::Abort)]
    );
    // The same value again: no host call.
    drv.write32(r::GBPA, GBPA_UPDATE | GBPA_ABORT);
    assert_eq!(fake.take(), vec![]);
    drv.write32(r::GBPA, GBPA_UPDATE);
    assert_eq!(
        fake.take(),
        vec![Call::Configure(HOST_SID, HostStreamConfig::Bypass)]
    );
    drv.probe().unwrap();
    drv.reset().unwrap();
    // SMMUEN = 1 and no STE installed for the stream yet: abort.
    assert_eq!(last_config(&fake, HOST_SID), Some(HostStreamConfig::Abort));
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(HOST_SID, &dom).unwrap();
    assert!(matches!(
        last_config(&fake, HOST_SID),
        Some(HostStreamConfig::Translate { .. })
    ));
    fake.take();
    // GBPA updates while SMMUEN = 1 change nothing on the host.
    drv.write32(r::GBPA, GBPA_UPDATE | GBPA_ABORT);
    assert_eq!(fake.take(), vec![]);
    drv.disable().unwrap();
    assert_eq!(
        fake.take(),
        vec![Call::Configure(HOST_SID, HostStreamConfig::Abort)]
    );
    dev.reset();
    assert_eq!(
        fake.take(),
        vec![Call::Configure(HOST_SID, HostStreamConfig::Bypass)]
    );
}

/// CFGI_STE_RANGE and CFGI_ALL re-configure every host stream in range, even ones never
/// configured through a per-SID CFGI_STE.
#[test]
fn test_cfgi_range_and_all_reach_every_host_stream() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    dev.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    for sid in [0x20, 0x21, 0x140] {
        dev.attach_host_stream(StreamId(sid)).unwrap();
    }
    fake.take();
    let bypass = drv.bypass_ste();
    for sid in [0x20, 0x21, 0x140] {
        let a = drv.ste_addr(sid);
        for (i, w) in bypass.iter().enumerate() {
            mem::write_u64_le(&ram, a + 8 * i as u64, *w).unwrap();
        }
    }
    // SIDs 0x20..=0x23.
    drv.issue_sync(&[cmd::cfgi_ste_range(0x20, 1)]).unwrap();
    assert_eq!(
        fake.take(),
        vec![
            Call::Configure(0x20, HostStreamConfig::Bypass),
            Call::Configure(0x21, HostStreamConfig::Bypass)
        ]
    );
    drv.issue_sync(&[cmd::cfgi_all()]).unwrap();
    assert_eq!(
        fake.take(),
        vec![Call::Configure(0x140, HostStreamConfig::Bypass)]
    );
}

/// An STE the host rejects (here: every translating STE) is answered as the architecture
/// answers an STE the SMMU cannot use: C_BAD_STE for the StreamID in the guest event queue,
/// the stream aborted on the host, and no command error.
#[test]
fn test_host_rejected_ste_is_c_bad_ste_and_abort() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    dev.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    dev.attach_host_stream(StreamId(HOST_SID)).unwrap();
    *fake.reject_translate.lock().unwrap() = true;
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(HOST_SID, &dom).unwrap();
    let events = drv.read_events();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e[0] & 0xFF, 0x04, "C_BAD_STE");
        assert_eq!(e[0] >> 32, u64::from(HOST_SID));
    }
    let calls = fake.take();
    let n = calls.len();
    assert!(matches!(
        calls[n - 2],
        Call::Configure(HOST_SID, HostStreamConfig::Translate { .. })
    ));
    assert_eq!(
        calls[n - 1],
        Call::Configure(HOST_SID, HostStreamConfig::Abort)
    );
    assert_eq!((drv.read32(r::GERROR) ^ drv.read32(r::GERRORN)) & 1, 0);
}

/// An STE the local decoder rejects (S1CDMax beyond IDR1.SSIDSIZE) is C_BAD_STE plus abort,
/// without asking the host to translate it.
#[test]
fn test_locally_invalid_ste_is_c_bad_ste_and_abort() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    dev.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    dev.attach_host_stream(StreamId(HOST_SID)).unwrap();
    fake.take();
    // V = 1, Config = S1 translate, S1CDMax = 31 (SSIDSIZE is 20).
    let a = drv.ste_addr(HOST_SID);
    mem::write_u64_le(&ram, a, 1 | 0b101 << 1 | 0x4000_0000 | 31 << 59).unwrap();
    drv.issue_sync(&[cmd::cfgi_ste(HOST_SID)]).unwrap();
    let events = drv.read_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0][0], 0x04 | u64::from(HOST_SID) << 32);
    // Abort was already installed: nothing sent.
    assert_eq!(fake.take(), vec![]);
}

/// A restore sends every host stream its configuration again, whatever was sent before.
#[test]
fn test_restore_replays_host_streams() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(HOST_SID, &dom).unwrap();
    let snap = dev.save();
    let (new, _irq2) = device(&ram);
    new.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    new.attach_host_stream(StreamId(HOST_SID)).unwrap();
    assert_eq!(
        fake.take(),
        vec![Call::Configure(HOST_SID, HostStreamConfig::Bypass)]
    );
    new.restore(&snap).unwrap();
    let calls = fake.take();
    assert_eq!(calls.len(), 1);
    assert!(matches!(
        calls[0],
        Call::Configure(HOST_SID, HostStreamConfig::Translate { .. })
    ));
    // Even when unchanged.
    new.restore(&snap).unwrap();
    assert_eq!(fake.take().len(), 1);
}

/// A host event record is written to the guest event queue and signalled by its MSI; it is
/// discarded while the queue is disabled.
#[test]
fn test_inject_host_event_with_interrupt() {
    let ram = ram();
    let (dev, irq) = device(&ram);
    let rec = [0x10 | u64::from(HOST_SID) << 32, 1 << 35, IOVA + 0x40, 0];
    dev.inject_host_event(rec);
    assert_eq!(dev.host_events_lost(), LostOutcome::Disabled);
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    assert!(drv.read_events().is_empty());
    irq.take();
    dev.inject_host_event(rec);
    assert_eq!(drv.read_events(), vec![rec]);
    assert_eq!(
        irq.take(),
        vec![Irq::Msi {
            addr: 0x0800_0040,
            data: 0x21
        }]
    );
}

/// Lost host records set OVFLG once; again only after the guest acknowledged (OVACKFLG). A
/// full queue drops injected records through the same protocol.
#[test]
fn test_host_events_lost_overflow_protocol() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let opts = DriverOptions {
        evtq_max_log2: 1,
        ..DriverOptions::default()
    };
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, opts);
    drv.probe().unwrap();
    drv.reset().unwrap();
    let rec = |n: u64| [0x10 | u64::from(HOST_SID) << 32, 0, n << 12, 0];
    assert_eq!(dev.host_events_lost(), LostOutcome::Toggled);
    assert_eq!(dev.host_events_lost(), LostOutcome::Outstanding);
    dev.inject_host_event(rec(1));
    dev.inject_host_event(rec(2));
    // Full: dropped, OVFLG already outstanding.
    dev.inject_host_event(rec(3));
    assert_eq!(drv.read_events(), vec![rec(1), rec(2)]);
    assert_eq!(drv.overflows, 1);
    // Acknowledged: the next loss toggles again.
    assert_eq!(dev.host_events_lost(), LostOutcome::Toggled);
    assert!(drv.read_events().is_empty());
    assert_eq!(drv.overflows, 2);
    // A full queue toggles through the same protocol.
    for n in 4..7 {
        dev.inject_host_event(rec(n));
    }
    assert_eq!(drv.read_events(), vec![rec(4), rec(5)]);
    assert_eq!(drv.overflows, 3);
}

/// Hot attach and detach of a host stream while two threads DMA on emulated streams: the
/// emulated translations never fail, and the flipping stream alternates between HOST_BACKED
/// and its software translation (once attach returns, no cached route serves it).
#[test]
fn test_hot_attach_detach_during_emulated_dma() {
    let ram = ram();
    let (dev, _irq) = device(&ram);
    let fake = Fake::new(128);
    let mut drv = GuestDriver::new(&dev, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x4000, Prot::RW);
    for sid in [EMU_SID, EMU_SID + 1, HOST_SID] {
        drv.attach_s1(sid, &dom).unwrap();
    }
    dev.set_host_backend(Some(fake.clone() as Arc<dyn HostBackend>));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for sid in [EMU_SID, EMU_SID + 1] {
            let dev = &dev;
            let stop = &stop;
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) || n < 1000 {
                    let off = (n % 4) * 0x1000 + 8;
                    let m = dev
                        .translate(&DmaRequest::write(sid, IOVA + off, 8))
                        .unwrap();
                    assert_eq!(m.output, PA + off);
                    n += 1;
                }
            });
        }
        // A thread racing on the flipping stream sees either result, never anything else.
        {
            let dev = &dev;
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match dev.translate(&DmaRequest::read(HOST_SID, IOVA, 4)) {
                        Ok(m) => assert_eq!(m.output, PA),
                        Err(f) => assert_eq!(f.event, HOST_BACKED),
                    }
                }
            });
        }
        for _ in 0..200 {
            dev.attach_host_stream(StreamId(HOST_SID)).unwrap();
            let f = dev
                .translate(&DmaRequest::read(HOST_SID, IOVA, 4))
                .unwrap_err();
            assert_eq!(f.event, HOST_BACKED);
            assert!(dev.detach_host_stream(StreamId(HOST_SID)));
            let m = dev.translate(&DmaRequest::read(HOST_SID, IOVA, 4)).unwrap();
            assert_eq!(m.output, PA);
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(drv.read_events().is_empty());
    // Every attach configured the stream from its STE.
    assert_eq!(fake.configs().len(), 200);
}
