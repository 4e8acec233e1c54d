//! The accelerated vSMMU over the recording backend: a Linux-style guest driver programs one
//! SMMUv3 with passthrough (host-backed) and emulated streams; the host operation log
//! (`Recorder::render`) is the behaviour under test, next to the guest-visible effects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::{DmaRequest, StreamId};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::spec::evt::EvtEntry;
use viommu_smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot, S1Domain};
use viommu_sva::accel::{AccelError, AcceleratedSmmu, AttachError, GuestRegs, RestoreError};
use viommu_sva::caps::Compat;
use viommu_sva::error::ClampError;
use viommu_sva::events::encode_stream;
use viommu_sva::recording::{Recorder, RecordingEvents, RecordingPort, RecordingViommu};
use viommu_sva::spec::hwinfo::HwInfoArmSmmuv3;
use viommu_sva::{Errno, GuestProfile, HostCaps, HostOp, StreamConfig};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 32 << 20;
/// The passthrough device's guest StreamID.
const PT: u32 = 0x10;
/// An emulated (virtio) device's StreamID.
const EMU: u32 = 0x20;

type Mem = Arc<GuestMemoryMmap>;
type Accel = AcceleratedSmmu<Mem, RecordingViommu, RecordingPort, RecordingEvents>;

/// The testbed host (QEMU virt,iommu=smmuv3 under Linux, through `hw_info`): S1+S2, no CD2L,
/// SSIDSIZE 0, RIL, 4K/16K/64K, OAS 44.
fn testbed() -> HostCaps {
    HostCaps::new(
        HwInfoArmSmmuv3 {
            flags: 0,
            reserved: 0,
            idr: [0x0d44_101b, 0x0273_0010, 0, 0x1414, 0, 0x74],
            iidr: 0,
            aidr: 1,
        },
        0,
        8,
    )
}

/// A richer host: CD2L, SSIDSIZE 20 with 20-bit PASIDs, TERM_MODEL 0, OAS 48.
fn rich_host() -> HostCaps {
    let mut h = testbed();
    h.raw.idr[0] = (h.raw.idr[0] | 1 << 19) & !(1 << 26);
    h.raw.idr[1] = (h.raw.idr[1] & !(0x1f << 6)) | 20 << 6;
    h.raw.idr[5] = (h.raw.idr[5] & !7) | 5;
    h.max_pasid_log2 = 20;
    h
}

struct Rig {
    ram: Mem,
    rec: Recorder,
    irq: Arc<RecordingIrq>,
    accel: Arc<Accel>,
    feeder: viommu_sva::recording::EventFeeder,
}

impl Rig {
    fn new(regs: GuestRegs) -> Result<Self, AccelError> {
        Self::on(testbed(), regs)
    }

    fn on(caps: HostCaps, regs: GuestRegs) -> Result<Self, AccelError> {
        let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
        let rec = Recorder::new();
        let viommu = Arc::new(RecordingViommu::new(&rec, caps).unwrap_or_else(|e| panic!("{e}")));
        let events = RecordingEvents::new(&rec);
        let feeder = events.feeder();
        let irq = Arc::new(RecordingIrq::new());
        let accel = Arc::new(Accel::new(
            viommu,
            Some(events),
            ram.clone(),
            irq.clone(),
            regs,
        )?);
        Ok(Self {
            ram,
            rec,
            irq,
            accel,
            feeder,
        })
    }

    fn clamped() -> Self {
        Self::new(GuestRegs::Clamp(GuestProfile::default())).unwrap_or_else(|e| panic!("{e}"))
    }

    fn driver(&self) -> GuestDriver<'_, Mem, GuestMemoryMmap> {
        GuestDriver::new(
            self.accel.device(),
            &self.ram,
            RAM,
            RAM_SIZE,
            DriverOptions::default(),
        )
    }

    fn brought_up(&self) -> GuestDriver<'_, Mem, GuestMemoryMmap> {
        let mut drv = self.driver();
        drv.probe().unwrap_or_else(|e| panic!("{e:?}"));
        drv.reset().unwrap_or_else(|e| panic!("{e:?}"));
        drv
    }

    fn attach(&self, vsid: u32, dev: u32) -> Result<(), AttachError> {
        self.accel.attach(
            RecordingPort::new(&self.rec, dev),
            StreamId(vsid),
            &testbed(),
        )
    }

    fn installed(&self, vsid: u32) -> Option<StreamConfig> {
        self.accel.bridge().installed(StreamId(vsid))
    }

    /// An emulated stage-1 domain on `sid` with `iova` mapped to `pa` (4 KiB, RW).
    fn emulated_s1(
        drv: &mut GuestDriver<'_, Mem, GuestMemoryMmap>,
        sid: u32,
        asid: u16,
        iova: u64,
        pa: u64,
    ) -> S1Domain {
        let dom = drv.new_s1_domain(asid);
        dom.pgtable
            .map(drv.mem, &mut drv.alloc, iova, pa, 0x1000, Prot::RW);
        drv.attach_s1(sid, &dom).unwrap_or_else(|e| panic!("{e:?}"));
        dom
    }
}

fn fault(vsid: u32, addr: u64) -> EvtEntry {
    EvtEntry::from_words([0x10 | u64::from(vsid) << 32, 1 << 35, addr, 0])
}

#[test]
fn stream_follows_gbpa_smmuen_and_the_guest_ste_make_before_break() {
    let rig = Rig::clamped();
    // hot-plugged before the guest driver runs: SMMUEN = 0, GBPA = bypass
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Bypass));
    let mut drv = rig.brought_up();
    // SMMUEN = 1 with no STE for the stream: abort
    assert_eq!(rig.installed(PT), Some(StreamConfig::Abort));
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(PT, &dom).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(matches!(
        rig.installed(PT),
        Some(StreamConfig::Translate(_))
    ));
    let before = rig.installed(PT);
    // a second domain changes only CD 0 (Linux keeps the STE): CFGI_CD is forwarded, and the
    // unchanged canonical STE causes no HWPT churn
    let dom2 = drv.new_s1_domain(2);
    drv.attach_s1(PT, &dom2).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rig.installed(PT), before);
    // SMMUEN = 0 again (kexec): GBPA decides
    drv.disable().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Bypass));
    insta::assert_snapshot!("accel_stream_lifecycle", rig.rec.render());
}

#[test]
fn a_guest_ste_the_host_cannot_express_is_c_bad_ste_and_abort() {
    // mirror a default-profile SMMU (S2P advertised) in mixed mode on a host that fits it
    let regs = SmmuConfig {
        two_level_cd_table: true,
        term_model: false,
        oas_bits: 48,
        ssid_bits: 20,
        granules: viommu_smmuv3::caps::GranuleSet::ALL,
        ..SmmuConfig::default()
    }
    .caps()
    .unwrap_or_else(|e| panic!("{e}"))
    .id_regs();
    let rig = Rig::on(
        rich_host(),
        GuestRegs::Supplied {
            regs,
            compat: Compat::Mixed,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rig.accel
        .attach(
            RecordingPort::new(&rig.rec, 100),
            StreamId(PT),
            &rich_host(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    let s2 = drv.new_s2_domain(3);
    drv.attach_s2(PT, &s2).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Abort));
    let events = drv.read_events();
    assert!(
        events
            .iter()
            .any(|e| e[0] & 0xff == 0x04 && e[0] >> 32 == u64::from(PT)),
        "C_BAD_STE for the passthrough vSID: {events:x?}"
    );
    // the same STE on an emulated stream is fine: stage 2 is the model's
    drv.attach_s2(EMU, &s2).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(drv.read_events().is_empty());
}

#[test]
fn incompatible_guest_registers_fail_naming_the_field() {
    let default = SmmuConfig::default()
        .caps()
        .unwrap_or_else(|e| panic!("{e}"))
        .id_regs();
    let strict = Rig::new(GuestRegs::Supplied {
        regs: default,
        compat: Compat::Strict,
    });
    assert!(
        matches!(
            strict,
            Err(AccelError::Incompatible(ClampError::NotNestable {
                field: "IDR0.S2P",
                ..
            }))
        ),
        "{:?}",
        strict.err()
    );
    // mixed mode still needs what the host walks: the testbed has no PASIDs
    let mixed = Rig::new(GuestRegs::Supplied {
        regs: default,
        compat: Compat::Mixed,
    });
    let msg = mixed.err().map(|e| e.to_string());
    assert_eq!(
        msg.as_deref(),
        Some("guest ID registers incompatible with the host: host SSIDSIZE = 0 cannot back the frozen guest value 20")
    );
    // a hot-plugged device behind a host with fewer PASID bits than the guest was promised
    let rig = Rig::on(rich_host(), GuestRegs::Clamp(GuestProfile::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = rig.attach(PT, 100);
    assert!(
        matches!(
            r,
            Err(AttachError::Incompatible {
                vsid: PT,
                source: ClampError::Mismatch {
                    field: "SSIDSIZE",
                    host: 0,
                    guest: 20
                }
            })
        ),
        "{r:?}"
    );
    assert!(rig.rec.render().lines().all(|l| !l.contains("vdevice")));
}

#[test]
fn host_events_reach_the_guest_queue_and_loss_sets_ovflg() {
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    rig.feeder.push_read(encode_stream(&[
        (0, Some(fault(PT, 0x1000))),
        (1, Some(fault(PT, 0x2000))),
    ]));
    assert_eq!(rig.accel.pump(), Ok(2));
    let got = drv.read_events();
    assert_eq!(
        got.iter().map(|e| (e[0], e[2])).collect::<Vec<_>>(),
        vec![
            (0x10 | u64::from(PT) << 32, 0x1000),
            (0x10 | u64::from(PT) << 32, 0x2000)
        ]
    );
    assert_eq!(drv.overflows, 0);
    // records 2..=5 lost (sequence gap), then one more, and one for a vSID that is not ours
    rig.feeder.push_read(encode_stream(&[
        (6, Some(fault(PT, 0x3000))),
        (7, Some(fault(0x77, 0x4000))),
    ]));
    assert_eq!(rig.accel.pump(), Ok(1));
    let got = drv.read_events();
    assert_eq!(got.len(), 1);
    assert_eq!(drv.overflows, 1, "the guest driver sees the overflow flag");
    let stats = rig.accel.pump_stats();
    assert_eq!(
        (stats.injected, stats.lost_reports, stats.dropped),
        (3, 1, 1)
    );
    assert!(!rig.irq.snapshot().is_empty(), "EVENTQ interrupts sent");
    assert_eq!(rig.accel.pump(), Ok(0));
}

#[test]
fn event_thread_pumps_until_stopped() {
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    let t = rig
        .accel
        .spawn_event_thread(Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("{e}"));
    rig.feeder
        .push_read(encode_stream(&[(0, Some(fault(PT, 0x5000)))]));
    let mut got = Vec::new();
    for _ in 0..2000 {
        got.extend(drv.read_events());
        if !got.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.len(), 1);
    assert_eq!(t.stop(), Ok(1));
}

#[test]
fn mixed_mode_keeps_emulated_dma_in_software_and_host_streams_out_of_it() {
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    let pt_dom = drv.new_s1_domain(1);
    drv.attach_s1(PT, &pt_dom)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let emu = Rig::emulated_s1(&mut drv, EMU, 2, 0x10_0000, RAM + 0x80_0000);
    let smmu = rig.accel.device();
    let ok = smmu.translate(&DmaRequest::read(EMU, 0x10_0010, 4));
    assert_eq!(ok.map(|m| m.output).ok(), Some(RAM + 0x80_0010));
    let host = smmu.translate(&DmaRequest::read(PT, 0x10_0010, 4));
    assert_eq!(host.err().map(|f| f.event.name()), Some("HOST_BACKED"));
    // the emulated stream's CD change stays local; its ASID's TLBI reaches the host too
    rig.rec.clear();
    drv.unmap_s1(&emu, 0x10_0000, 0x1000)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(smmu
        .translate(&DmaRequest::read(EMU, 0x10_0010, 4))
        .is_err());
    drv.issue_sync(&[cmd::cfgi_cd(EMU, 0, true)])
        .unwrap_or_else(|e| panic!("{e:?}"));
    insta::assert_snapshot!("accel_mixed_invalidation", rig.rec.render());
}

#[test]
fn forwarded_runs_are_one_host_call_per_sync_and_the_failing_index_stops_cons() {
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    let dom = drv.new_s1_domain(5);
    drv.attach_s1(PT, &dom).unwrap_or_else(|e| panic!("{e:?}"));
    rig.rec.clear();
    // 64 TLBI_NH_VA + SYNC: one host call
    let run: Vec<_> = (0..64u64)
        .map(|i| cmd::tlbi_nh_va(0, 5, 0x20_0000 + i * 0x1000, true))
        .collect();
    drv.issue_sync(&run).unwrap_or_else(|e| panic!("{e:?}"));
    let log = rig.rec.render();
    assert_eq!(log.matches("invalidate ").count(), 1, "{log}");
    assert!(log.starts_with("invalidate 64 cmds, applied 64"), "{log}");
    // a CFGI_STE in the middle splits the run in two, in guest order
    rig.rec.clear();
    drv.issue_sync(&[
        cmd::tlbi_nh_asid(0, 5),
        cmd::cfgi_cd(PT, 0, true),
        cmd::cfgi_ste(PT),
        cmd::tlbi_nh_asid(0, 5),
    ])
    .unwrap_or_else(|e| panic!("{e:?}"));
    // the host refuses the second command of the next batch: CONS stops there, CERROR_ILL
    rig.rec
        .fail_batch_at(rig.rec.calls(HostOp::Invalidate), 1, Errno::EIO);
    rig.irq.take();
    let r = drv.issue_sync(&[
        cmd::tlbi_nh_asid(0, 5),
        cmd::cfgi_cd(PT, 0, true),
        cmd::tlbi_nh_asid(0, 5),
    ]);
    assert!(r.is_ok(), "the driver skips the failed command: {r:?}");
    let gerror_msi = viommu_common::testing::Irq::Msi {
        addr: 0x0800_0040,
        data: DriverOptions::default().gerror_msi_data,
    };
    assert!(
        rig.irq.take().contains(&gerror_msi),
        "CERROR_ILL raised GERROR.CMDQ_ERR (acknowledged by the driver while waiting)"
    );
    insta::assert_snapshot!("accel_batches", rig.rec.render());
}

#[test]
fn hot_attach_and_detach_while_emulated_dma_runs() {
    let rig = Rig::clamped();
    let mut drv = rig.brought_up();
    Rig::emulated_s1(&mut drv, EMU, 2, 0x10_0000, RAM + 0x80_0000);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let dma = {
        let accel = rig.accel.clone();
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let m = accel
                    .device()
                    .translate(&DmaRequest::write(EMU, 0x10_0100, 8));
                assert_eq!(m.map(|m| m.output).ok(), Some(RAM + 0x80_0100));
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let wait_for_dma = || {
        let seen = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) == seen {
            std::thread::yield_now();
        }
    };
    wait_for_dma();
    for round in 0..20u32 {
        rig.attach(PT, 100 + round)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(rig.accel.device().is_host_backed(StreamId(PT)));
        assert_eq!(rig.installed(PT), Some(StreamConfig::Abort));
        rig.accel
            .detach(StreamId(PT))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!rig.accel.device().is_host_backed(StreamId(PT)));
    }
    wait_for_dma();
    stop.store(true, Ordering::Relaxed);
    assert!(dma.join().is_ok(), "emulated DMA never failed");
    assert!(rig.rec.live_nested().is_empty());
    assert!(matches!(
        rig.accel.detach(StreamId(PT)),
        Err(viommu_sva::accel::DetachError::NotAttached(PT))
    ));
}

#[test]
fn failed_host_attach_leaves_nothing_behind() {
    let rig = Rig::clamped();
    rig.rec.fail(HostOp::Attach, 0, Errno::EBUSY);
    assert!(matches!(
        rig.attach(PT, 100),
        Err(AttachError::Endpoint { vsid: PT, .. })
    ));
    assert!(!rig.accel.device().is_host_backed(StreamId(PT)));
    assert!(rig.accel.bridge().vsids().is_empty());
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(rig.attach(PT, 101), Err(AttachError::Busy(PT))));
}

#[test]
fn save_restore_recreates_the_host_configuration() {
    let src = Rig::clamped();
    src.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = src.brought_up();
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(PT, &dom).unwrap_or_else(|e| panic!("{e:?}"));
    let want = src.installed(PT);
    let snap = src.accel.save();
    assert_eq!(snap.host_streams, vec![PT]);
    // it travels as JSON with the VM's other device state
    let json = serde_json::to_string(&snap).unwrap_or_else(|e| panic!("{e}"));
    let snap: viommu_sva::accel::AcceleratedSnapshot =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));

    // the destination: a new vIOMMU on a new host, same guest RAM contents
    let dst = Rig::clamped();
    {
        use vm_memory::{Bytes, GuestAddress};
        let mut buf = vec![0u8; RAM_SIZE as usize];
        src.ram
            .read_slice(&mut buf, GuestAddress(RAM))
            .unwrap_or_else(|e| panic!("{e}"));
        dst.ram
            .write_slice(&buf, GuestAddress(RAM))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let r = dst.accel.restore(&snap);
    assert!(
        matches!(&r, Err(RestoreError::Streams { missing, unexpected }) if missing == &vec![PT] && unexpected.is_empty()),
        "{r:?}"
    );
    dst.attach(PT, 200).unwrap_or_else(|e| panic!("{e}"));
    dst.accel.restore(&snap).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dst.installed(PT), want);
    insta::assert_snapshot!("accel_restore", dst.rec.render());
}

#[test]
fn teardown_runs_in_the_kernels_order() {
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    rig.attach(PT + 1, 101).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(PT, &dom).unwrap_or_else(|e| panic!("{e:?}"));
    rig.rec.clear();
    assert_eq!(rig.accel.teardown(), Ok(()));
    assert!(!rig.accel.device().is_host_backed(StreamId(PT)));
    assert!(matches!(rig.attach(PT, 102), Err(AttachError::TornDown)));
    assert_eq!(rig.accel.pump(), Ok(0));
    insta::assert_snapshot!("accel_teardown", rig.rec.render());
}

#[test]
fn a_failed_first_configuration_leaves_nothing_behind() {
    let rig = Rig::clamped();
    // Endpoint::new attaches abort (ok); the device's first configuration (bypass) fails
    rig.rec.fail(
        HostOp::Attach,
        rig.rec.calls(HostOp::Attach) + 1,
        Errno::ENOMEM,
    );
    let r = rig.attach(PT, 100);
    assert!(
        matches!(
            r,
            Err(AttachError::Device(
                viommu_smmuv3::host::HostAttachError::Configure { sid: PT, .. }
            ))
        ),
        "{r:?}"
    );
    assert!(!rig.accel.device().is_host_backed(StreamId(PT)));
    assert!(rig.accel.bridge().vsids().is_empty());
    let log = rig.rec.render();
    assert!(
        log.ends_with("detach dev 100\ndestroy vdevice 6\n"),
        "{log}"
    );
}

/// A host vIOMMU that notes each invalidate call in the log the device traces into.
#[derive(Debug)]
struct Probe {
    inner: RecordingViommu,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl viommu_sva::HostViommu for Probe {
    fn caps(&self) -> &HostCaps {
        self.inner.caps()
    }
    fn shared_hwpt(&self, which: viommu_sva::SharedHwpt) -> viommu_sva::HwptId {
        self.inner.shared_hwpt(which)
    }
    fn alloc_nested(
        &self,
        dev: viommu_sva::DevId,
        ste: &viommu_sva::CanonicalSte,
    ) -> Result<viommu_sva::HwptId, viommu_sva::ViommuError> {
        self.inner.alloc_nested(dev, ste)
    }
    fn destroy_hwpt(&self, hwpt: viommu_sva::HwptId) -> Result<(), viommu_sva::ViommuError> {
        self.inner.destroy_hwpt(hwpt)
    }
    fn alloc_vdevice(
        &self,
        dev: viommu_sva::DevId,
        vsid: StreamId,
    ) -> Result<viommu_sva::VdevId, viommu_sva::ViommuError> {
        self.inner.alloc_vdevice(dev, vsid)
    }
    fn destroy_vdevice(&self, vdev: viommu_sva::VdevId) -> Result<(), viommu_sva::ViommuError> {
        self.inner.destroy_vdevice(vdev)
    }
    fn invalidate(
        &self,
        cmds: &[viommu_smmuv3::spec::cmd::CmdEntry],
    ) -> Result<usize, viommu_sva::InvalidateError> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("host call: {} cmds", cmds.len()));
        // the guest must not see its CMD_SYNC complete while the host call runs
        std::thread::sleep(Duration::from_millis(20));
        let r = self.inner.invalidate(cmds);
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push("host call returned".into());
        r
    }
    fn teardown(&self) -> Result<(), viommu_sva::error::TeardownError> {
        self.inner.teardown()
    }
}

#[test]
fn cmd_sync_completes_only_after_the_host_call_returned() {
    let ram: Mem = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let rec = Recorder::new();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe = Probe {
        inner: RecordingViommu::new(&rec, testbed()).unwrap_or_else(|e| panic!("{e}")),
        log: log.clone(),
    };
    let accel = AcceleratedSmmu::<Mem, Probe, RecordingPort, RecordingEvents>::new(
        Arc::new(probe),
        None,
        ram.clone(),
        Arc::new(RecordingIrq::new()),
        GuestRegs::Clamp(GuestProfile::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    accel
        .attach(RecordingPort::new(&rec, 100), StreamId(PT), &testbed())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut drv = GuestDriver::new(
        accel.device(),
        &*ram,
        RAM,
        RAM_SIZE,
        DriverOptions::default(),
    );
    drv.probe().unwrap_or_else(|e| panic!("{e:?}"));
    drv.reset().unwrap_or_else(|e| panic!("{e:?}"));
    let tlog = log.clone();
    accel.device().set_tracer(Some(Arc::new(
        move |r: &viommu_smmuv3::trace::TraceRecord| {
            let line = r.to_string();
            if line.contains("sync:") {
                tlog.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        },
    )));
    log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let run: Vec<_> = (0..8u64)
        .map(|i| cmd::tlbi_nh_va(0, 1, 0x30_0000 + i * 0x1000, true))
        .collect();
    drv.issue_sync(&run).unwrap_or_else(|e| panic!("{e:?}"));
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(log.len(), 3, "{log:#?}");
    assert_eq!(log[0], "host call: 8 cmds");
    assert_eq!(log[1], "host call returned");
    assert!(log[2].contains("sync:"), "{log:#?}");
    assert_eq!(accel.teardown(), Ok(()));
}

#[test]
fn an_existing_device_is_accelerated_when_its_registers_fit() {
    let ram: Mem = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let rec = Recorder::new();
    let smmu = Arc::new(
        viommu_smmuv3::device::SmmuV3::new(
            &SmmuConfig {
                term_model: false,
                oas_bits: 48,
                ..SmmuConfig::default()
            },
            ram.clone(),
            Arc::new(RecordingIrq::new()),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let viommu =
        || Arc::new(RecordingViommu::new(&rec, rich_host()).unwrap_or_else(|e| panic!("{e}")));
    let strict = Accel::with_device(smmu.clone(), viommu(), None, Compat::Strict);
    assert!(matches!(
        strict.err(),
        Some(AccelError::Incompatible(ClampError::NotNestable {
            field: "IDR0.S2P",
            value: 1
        }))
    ));
    let accel = Accel::with_device(smmu.clone(), viommu(), None, Compat::Mixed)
        .unwrap_or_else(|e| panic!("{e}"));
    accel
        .attach(RecordingPort::new(&rec, 100), StreamId(PT), &rich_host())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(smmu.is_host_backed(StreamId(PT)));
    assert_eq!(
        accel.bridge().installed(StreamId(PT)),
        Some(StreamConfig::Bypass)
    );
}

#[test]
fn gbpa_updates_while_disabled_re_drive_the_stream() {
    use viommu_smmuv3::spec::regs::{Gbpa, GBPA};
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let drv = rig.driver();
    let gbpa = |abort: bool| {
        Gbpa::new()
            .with_shcfg(1)
            .with_abort(abort)
            .with_update(true)
            .into_bits()
    };
    drv.write32(GBPA, gbpa(true));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Abort));
    // a write without UPDATE changes nothing
    drv.write32(GBPA, gbpa(false) & !(1 << 31));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Abort));
    drv.write32(GBPA, gbpa(false));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Bypass));
    let log = rig.rec.render();
    assert!(
        log.ends_with(
            "attach dev 100 -> hwpt 4\nattach dev 100 -> hwpt 3\nattach dev 100 -> hwpt 4\n"
        ),
        "{log}"
    );
}

#[test]
fn a_kernel_refusal_is_c_bad_ste_and_a_host_failure_keeps_the_old_translation() {
    let rig = Rig::clamped();
    rig.attach(PT, 100).unwrap_or_else(|e| panic!("{e}"));
    let mut drv = rig.brought_up();
    let dom = drv.new_s1_domain(1);
    drv.attach_s1(PT, &dom).unwrap_or_else(|e| panic!("{e:?}"));
    let translating = rig.installed(PT);
    assert!(matches!(translating, Some(StreamConfig::Translate(_))));
    assert!(drv.read_events().is_empty());

    // the host runs out of memory for the next nested HWPT: not the guest's fault, no event,
    // and the previous translation stays installed
    rig.rec.fail(
        HostOp::HwptAllocNested,
        rig.rec.calls(HostOp::HwptAllocNested),
        Errno::ENOMEM,
    );
    let dom2 = drv.new_s1_domain(2);
    // a second CD table for the stream, so the STE (its S1ContextPtr) changes
    let (table, _, _) = drv.cd_table(PT + 1, 0);
    let cd = drv.s1_cd(&dom2);
    viommu_common::mem::write_bytes(
        &*rig.ram,
        table,
        &cd.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ste = drv.cdtable_ste(table, 0, 0, 2);
    drv.write_ste(PT, ste).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rig.installed(PT), translating);
    assert!(drv.read_events().is_empty());

    // the kernel refuses the vSTE (EINVAL): the guest sees C_BAD_STE and the stream aborts
    rig.rec.fail(
        HostOp::HwptAllocNested,
        rig.rec.calls(HostOp::HwptAllocNested),
        Errno::EINVAL,
    );
    drv.issue_sync(&[cmd::cfgi_ste(PT)])
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rig.installed(PT), Some(StreamConfig::Abort));
    let events = drv.read_events();
    assert!(
        events
            .iter()
            .any(|e| e[0] & 0xff == 0x04 && e[0] >> 32 == u64::from(PT)),
        "{events:x?}"
    );
}
