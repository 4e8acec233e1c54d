//! Every SMMUv3 replay scenario (`tests/replay/smmuv3_*.jsonl`) and the recorded Linux 6.12
//! bring-up, replayed through an accelerated vSMMU whose ID registers mirror the trace's SMMU
//! (`Compat::Mixed`, on a recording host with the same registers), with some streams
//! host-backed and the rest emulated. Every check of every file must still pass, and the host
//! operation log of each is an insta snapshot.
//!
//! Host-backed vSIDs: vSID 0x8 and every stream the file only uses for plain `dma` (streams with
//! ATS, PRI or stall operations stay emulated: those paths are the model's), minus
//! [`EMULATED_ONLY`]. A `dma` on a host-backed stream is intercepted, since on a real system the
//! host SMMU serves it: a shadow SMMUv3 plays that hardware. It sees the same guest memory stores
//! and register writes as the vSMMU, on its own copy of guest RAM, translates the transaction, and
//! each event record it produces is delivered the way the host's would be: through the vEVENTQ
//! (the recording backend's event source) and the vSMMU's event pump into the guest's queue.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use viommu_common::mem::{read_bytes, write_bytes};
use viommu_common::testing::RecordingIrq;
use viommu_common::traits::{DmaTranslator, MmioDevice};
use viommu_common::StreamId;
use viommu_replay::device::ReplayMem;
use viommu_replay::engine::{Action, Observer, ReplaySmmuV3, Session};
use viommu_replay::iopf::DmaOutcome;
use viommu_replay::parse::DmaExpect;
use viommu_replay::{parse_script, Actual, Line, Op, OpResult};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::evt::EvtEntry;
use viommu_smmuv3::spec::regs::{QueueBase, EVENTQ_BASE, EVENTQ_CONS, EVENTQ_PROD};
use viommu_sva::accel::AcceleratedSmmu;
use viommu_sva::caps::Compat;
use viommu_sva::events::encode_stream;
use viommu_sva::recording::{
    EventFeeder, Recorder, RecordingEvents, RecordingPort, RecordingViommu,
};
use viommu_sva::spec::hwinfo::HwInfoArmSmmuv3;
use viommu_sva::HostCaps;
use vm_memory::{GuestAddress, GuestMemoryMmap};

type Accel = AcceleratedSmmu<Arc<ReplayMem>, RecordingViommu, RecordingPort, RecordingEvents>;

/// Streams kept emulated although they only do plain DMA: their STEs use stage 2 (nested, or
/// the hitless S1 -> S2 switch), which a host-backed stream cannot have (the guest would get
/// C_BAD_STE).
const EMULATED_ONLY: &[(&str, u32)] = &[("smmuv3_nested", 0x38), ("smmuv3_hitless", 0x20)];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenario_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/replay"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("smmuv3_") && n.ends_with(".jsonl"))
        })
        .collect();
    v.sort();
    v.push(repo().join("tests/data/linux612-bringup-passthrough.replay.jsonl.xz"));
    v
}

fn stem(p: &Path) -> String {
    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    n.split('.').next().unwrap_or(n).replace('-', "_")
}

fn read_lines(p: &Path) -> Vec<Line> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let r: Box<dyn BufRead> = if p.extension().is_some_and(|e| e == "xz") {
        let mut text = String::new();
        xz2::read::XzDecoder::new(f)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{e}"));
        Box::new(std::io::Cursor::new(text))
    } else {
        Box::new(BufReader::new(f))
    };
    parse_script(r).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The vSIDs a file's replay host-backs (see the module documentation).
fn host_backed(file: &str, lines: &[Line]) -> BTreeSet<u32> {
    let mut dma = BTreeSet::from([0x8]);
    let mut endpoint_features = BTreeSet::new();
    for l in lines {
        match &l.op {
            Op::Dma(d) if d.expect != Some(DmaExpect::Stalled) => {
                dma.insert(d.stream);
            }
            Op::Dma(d) | Op::Translated(d) => {
                endpoint_features.insert(d.stream);
            }
            Op::AtsRequest(a) => {
                endpoint_features.insert(a.stream);
            }
            Op::PageRequest(p) => {
                endpoint_features.insert(p.stream);
            }
            Op::PriResponse(p) => {
                endpoint_features.insert(p.stream);
            }
            Op::StallResult(s) => {
                endpoint_features.insert(s.stream);
            }
            Op::ExpectAtcInv(e) => {
                endpoint_features.insert(e.stream);
            }
            _ => {}
        }
    }
    dma.retain(|s| !endpoint_features.contains(s) && !EMULATED_ONLY.contains(&(file, *s)));
    dma
}

/// The host SMMU of the replay: the trace's own SMMU, as `hw_info` would report it.
fn host_caps(smmu: &ReplaySmmuV3) -> HostCaps {
    let r = smmu.caps().id_regs();
    let ssid = (r.idr1 >> 6 & 0x1f) as u8;
    HostCaps::new(
        HwInfoArmSmmuv3 {
            flags: 0,
            reserved: 0,
            idr: [r.idr0, r.idr1, r.idr2, r.idr3, r.idr4, r.idr5],
            iidr: r.iidr,
            aidr: r.aidr,
        },
        ssid,
        0,
    )
}

fn read_reg(dev: &dyn MmioDevice, offset: u64, size: usize) -> u64 {
    let mut b = [0u8; 8];
    let _ = dev.mmio_read(offset, &mut b[..size]);
    u64::from_le_bytes(b)
}

/// The host SMMU hardware of the replay, and the observer that routes host-backed DMA to it.
struct Hardware {
    dev: String,
    shadow: SmmuV3<Arc<ReplayMem>>,
    shadow_mem: Arc<ReplayMem>,
    real: Arc<ReplaySmmuV3>,
    accel: Arc<Accel>,
    feeder: EventFeeder,
    host: BTreeSet<u32>,
    seq: u32,
    intercepted: usize,
    events: usize,
    failures: Vec<String>,
}

impl Hardware {
    /// Serve a DMA on the shadow; forward the event records it wrote as host events.
    fn serve(&mut self, req: &viommu_common::DmaRequest) -> DmaOutcome {
        // As the engine settles the vSMMU before a DMA: forwarded commands reach the host first.
        self.real.finish_pending();
        self.shadow.finish_pending();
        let prod0 = read_reg(&self.shadow, EVENTQ_PROD, 4) as u32;
        let out = match self.shadow.translate(req) {
            Ok(m) => DmaOutcome::Addr(m.output),
            Err(f) => DmaOutcome::Fault(f.event.to_string()),
        };
        let prod1 = read_reg(&self.shadow, EVENTQ_PROD, 4) as u32;
        let base = QueueBase::from_bits(read_reg(&self.shadow, EVENTQ_BASE, 8));
        let log2 = base
            .log2size()
            .min(self.shadow.caps().idr1.eventqs())
            .min(19);
        let mask = (2u32 << log2) - 1;
        let (mut i, end) = (prod0 & mask, prod1 & mask);
        let mut items = Vec::new();
        while i != end {
            let slot = base.addr() + 32 * u64::from(i & ((1 << log2) - 1));
            let mut rec = [0u8; 32];
            if read_bytes(&*self.shadow_mem, slot, &mut rec).is_ok() {
                let words: [u64; 4] = core::array::from_fn(|w| {
                    u64::from_le_bytes(rec[w * 8..w * 8 + 8].try_into().unwrap_or_default())
                });
                items.push((self.seq, Some(EvtEntry::from_words(words))));
                self.seq += 1;
            }
            i = (i + 1) & mask;
        }
        // the hardware's queue is drained by the host kernel
        let _ = self
            .shadow
            .mmio_write(EVENTQ_CONS, &(prod1 & !(1 << 31)).to_le_bytes());
        if !items.is_empty() {
            self.events += items.len();
            self.feeder.push_read(encode_stream(&items));
            let _ = self.accel.pump();
        }
        out
    }
}

impl Observer for Hardware {
    fn before(&mut self, step: &Line, _session: &Session) -> Action {
        match &step.op {
            Op::WriteMem(w) => {
                let _ = write_bytes(&*self.shadow_mem, w.addr, &w.data);
                Action::Run
            }
            Op::MmioWrite(w) if w.dev == self.dev => {
                let b = w.value.to_le_bytes();
                let _ = self.shadow.mmio_write(w.offset, &b[..usize::from(w.size)]);
                Action::Run
            }
            Op::Dma(d) if d.dev == self.dev && self.host.contains(&d.stream) => {
                self.intercepted += 1;
                Action::Replace(Actual::Dma(self.serve(&d.request())))
            }
            _ => Action::Run,
        }
    }

    fn result(&mut self, step: &Line, r: &OpResult) {
        if r.ok == Some(false) {
            self.failures
                .push(format!("line {}: {:?} -> {:?}", step.line, step.op, r));
        }
    }
}

#[test]
fn every_smmuv3_scenario_passes_through_an_accelerated_vsmmu() {
    let files = scenario_files();
    assert!(files.len() >= 14, "{files:?}");
    for path in files {
        let name = stem(&path);
        let lines = read_lines(&path);
        let host = host_backed(&name, &lines);
        let regions: Vec<(GuestAddress, usize)> = lines
            .iter()
            .filter_map(|l| match &l.op {
                Op::Ram(r) => Some((GuestAddress(r.base), r.size as usize)),
                _ => None,
            })
            .collect();
        let session = Session::prepare(lines).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dev = session
            .device_names()
            .find(|n| session.smmuv3(n).is_some())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{name}: no SMMUv3"));
        let real = session.smmuv3(&dev).unwrap_or_else(|| panic!("{name}"));
        let caps = host_caps(&real);

        let rec = Recorder::new();
        let viommu =
            Arc::new(RecordingViommu::new(&rec, caps).unwrap_or_else(|e| panic!("{name}: {e}")));
        let events = RecordingEvents::new(&rec);
        let feeder = events.feeder();
        let accel = Arc::new(
            Accel::with_device(real.clone(), viommu, Some(events), Compat::Mixed)
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        );
        for (i, vsid) in host.iter().enumerate() {
            accel
                .attach(
                    RecordingPort::new(&rec, 100 + i as u32),
                    StreamId(*vsid),
                    &caps,
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }

        let shadow_mem = Arc::new(
            GuestMemoryMmap::<()>::from_ranges(&regions).unwrap_or_else(|e| panic!("{e}")),
        );
        let config =
            SmmuConfig::from_id_regs(real.caps().id_regs()).unwrap_or_else(|e| panic!("{e}"));
        let shadow = SmmuV3::new(&config, shadow_mem.clone(), Arc::new(RecordingIrq::new()))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut hw = Hardware {
            dev,
            shadow,
            shadow_mem,
            real,
            accel: accel.clone(),
            feeder,
            host: host.clone(),
            seq: 0,
            intercepted: 0,
            events: 0,
            failures: Vec::new(),
        };
        let summary = session.run_with(&mut hw);
        assert!(
            hw.failures.is_empty() && summary.failed == 0,
            "{name}: {} failed:\n{}",
            summary.failed,
            hw.failures.join("\n")
        );
        assert!(summary.passed > 0, "{name}: no checks ran");
        assert_eq!(accel.teardown(), Ok(()), "{name}");
        let log = format!(
            "host-backed vSIDs [{}]; {} checks passed; {} DMA served by the host, {} host events\n{}",
            host.iter()
                .map(|s| format!("{s:#x}"))
                .collect::<Vec<_>>()
                .join(", "),
            summary.passed,
            hw.intercepted,
            hw.events,
            rec.render()
        );
        insta::assert_snapshot!(format!("replay_{name}"), log);
    }
}
