//! Replay backend for the Arm SMMUv3 model (`kind: "smmuv3"`).
//!
//! # Configuration
//!
//! - `id_regs`: `{"idr0", "idr1", "idr2", "idr3", "idr4", "idr5", "iidr", "aidr"}` raw values
//!   (missing ones are 0). The model is built with [`SmmuConfig::from_id_regs`], so it advertises
//!   exactly those features, or the file is rejected naming the first one it cannot support.
//! - Any field of [`SmmuConfig`] by name (`stage1`, `sid_bits`, `msi`, `granules` as
//!   `{"k4", "k16", "k64"}`, `stall_model`/`httu` as a number or the manual's name, ...). With
//!   `id_regs`, these are applied on top of the mirrored configuration.
//! - `cmdq_batch_limit`: commands consumed per MMIO access before the rest is left pending (the
//!   engine's settle step finishes it, as a VMM's worker would).
//!
//! Register values are little-endian on the bus; DMA faults are reported by the event name the
//! model records (`F_TRANSLATION`, `C_BAD_STE`, ...).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use viommu_common::traits::{DmaFault, FaultKind};
use viommu_common::traits::{MmioDevice, MmioError};
use viommu_common::Perms;
use viommu_common::{DmaRequest, DmaTranslator, StreamId, SubstreamId};
use viommu_smmuv3::ats::{AtcEndpoint, AtcError, AtcInvalidation, AtsError, AtsRequest};
use viommu_smmuv3::caps::{GranuleSet, IdRegs, SmmuConfig};
use viommu_smmuv3::cmdq::command::PriResponse;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::priq::{PageRequest, PageRequestOutcome, PriError};
use viommu_smmuv3::spec::idr::{Httu, StallModel};
use viommu_smmuv3::stall::StallStatus;
use viommu_smmuv3::trace::TraceLog;

use super::ats::{AtcInvSpec, AtsOutcome, AtsSpec};
use super::device::{BusOrder, ReplayDevice, ReplayIrq, ReplayMem};
use super::engine::{ReplaySmmuV3, SmmuV3Factory, SmmuV3Setup};
use super::iopf::{DmaOutcome, PprSpec};
use crate::num;

/// Create an SMMUv3 from a replay `config` object.
///
/// # Errors
/// A malformed configuration, or one the model cannot support.
pub(crate) fn create(
    name: &str,
    config: &Map<String, Value>,
    mem: &Arc<ReplayMem>,
    irq: Arc<ReplayIrq>,
    factory: Option<&mut SmmuV3Factory>,
) -> Result<Box<dyn ReplayDevice>, String> {
    let (cfg, opts) = parse_config(config)?;
    let dev = match factory {
        Some(f) => f(SmmuV3Setup {
            name,
            config: &cfg,
            mem,
            irq,
        })?,
        None => SmmuV3::new(&cfg, Arc::clone(mem), irq).map_err(|e| e.to_string())?,
    };
    let dev = Arc::new(dev);
    if let Some(n) = opts.cmdq_batch_limit {
        dev.set_cmdq_batch_limit(n);
    }
    let log = TraceLog::new();
    dev.set_tracer(Some(log.tracer()));
    Ok(Box::new(Smmu {
        dev,
        log,
        atcs: Mutex::new(HashMap::new()),
    }))
}

/// An SMMUv3 on the replay's bus, with its trace collected in memory.
struct Smmu {
    dev: Arc<ReplaySmmuV3>,
    log: Arc<TraceLog>,
    /// The recording ATCs registered per StreamID (by the stream's first `ats_request`).
    atcs: Mutex<HashMap<u32, Arc<RecordingAtc>>>,
}

/// An endpoint ATC that records every invalidation it receives (up to
/// [`MAX_RECORDED_ATC_INVS`] between two `expect_atc_inv`) and always completes it.
#[derive(Debug, Default)]
struct RecordingAtc {
    seen: Mutex<Recorded>,
}

/// The invalidations an ATC received since they were last taken.
#[derive(Debug, Default)]
struct Recorded {
    invs: Vec<AtcInvSpec>,
    /// More arrived than are kept.
    overflowed: bool,
}

/// Invalidations an ATC keeps for the next `expect_atc_inv` of its stream: a file that has the
/// guest invalidate without ever checking cannot grow memory without bound. Beyond this the
/// check reports an error instead of a list.
pub const MAX_RECORDED_ATC_INVS: usize = 1 << 16;

impl AtcEndpoint for RecordingAtc {
    fn invalidate(&self, inv: &AtcInvalidation) -> Result<(), AtcError> {
        let AtcInvalidation {
            ssid,
            global,
            start,
            last,
        } = *inv;
        let mut seen = lock(&self.seen);
        if seen.invs.len() < MAX_RECORDED_ATC_INVS {
            seen.invs.push(AtcInvSpec {
                ssid,
                global,
                start,
                last,
            });
        } else {
            seen.overflowed = true;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The replay's spelling of a permission set: `r`, `w`, `x` in that order.
fn perms_name(p: Perms) -> String {
    [(Perms::R, 'r'), (Perms::W, 'w'), (Perms::X, 'x')]
        .iter()
        .filter(|(b, _)| p.contains(*b))
        .map(|(_, c)| *c)
        .collect()
}

impl ReplayDevice for Smmu {
    fn mmio_size(&self) -> u64 {
        MmioDevice::mmio_size(&*self.dev)
    }

    fn mmio_read(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        BusOrder::Little.read(&*self.dev, offset, size)
    }

    fn mmio_write(&self, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        BusOrder::Little.write(&*self.dev, offset, size, value)
    }

    fn dma(&self, req: &DmaRequest) -> Result<u64, String> {
        self.dev
            .translate(req)
            .map(|m| m.output)
            .map_err(|f| f.event.name().to_owned())
    }

    fn dma_outcome(&self, req: &DmaRequest) -> DmaOutcome {
        match self.dev.translate(req) {
            Ok(m) => DmaOutcome::Addr(m.output),
            Err(DmaFault {
                kind: FaultKind::Stalled,
                stall_tag: Some(stag),
                event,
                ..
            }) => DmaOutcome::Stalled {
                stag,
                fault: Some(event.name().to_owned()),
            },
            Err(f) => DmaOutcome::Fault(f.event.name().to_owned()),
        }
    }

    fn stall_result(&self, stream: u32, stag: u16) -> Result<DmaOutcome, String> {
        Ok(match self.dev.stall_status(StreamId(stream), stag) {
            StallStatus::Pending => DmaOutcome::Stalled { stag, fault: None },
            StallStatus::Resolved { result: Ok(m), .. } => DmaOutcome::Addr(m.output),
            StallStatus::Resolved { result: Err(f), .. } => {
                DmaOutcome::Fault(f.event.name().to_owned())
            }
            StallStatus::Unknown => DmaOutcome::Unknown,
        })
    }

    fn page_request(&self, stream: u32, req: &PprSpec) -> Result<String, String> {
        let r = PageRequest {
            substream: req.substream.map(SubstreamId),
            addr: req.addr,
            read: req.read,
            write: req.write,
            exec: req.exec,
            privileged: req.privileged,
            last: req.last,
            group: req.group,
        };
        match self.dev.page_request(StreamId(stream), &r) {
            Ok(PageRequestOutcome::Queued) => Ok("queued".into()),
            Ok(PageRequestOutcome::Discarded { response: None }) => Ok("dropped".into()),
            Ok(PageRequestOutcome::Discarded { response: Some(p) }) => Ok(code_name(p.code).into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn pri_response(&self, stream: u32, group: u16) -> Result<Option<String>, String> {
        if !self.dev.caps().pri() {
            return Err(PriError::NotSupported.to_string());
        }
        Ok(self
            .dev
            .pri_response(StreamId(stream), group)
            .map(|p| code_name(p.code).to_owned()))
    }

    fn ats_request(&self, stream: u32, req: &AtsSpec) -> Result<AtsOutcome, String> {
        if let std::collections::hash_map::Entry::Vacant(v) = lock(&self.atcs).entry(stream) {
            let atc = Arc::new(RecordingAtc::default());
            self.dev.register_atc(StreamId(stream), atc.clone());
            v.insert(atc);
        }
        let mut r = AtsRequest::new(stream, req.addr);
        r.no_write = req.read_only;
        r.substream = req.substream.map(SubstreamId);
        Ok(match self.dev.ats_translate(&r) {
            Ok(c) => AtsOutcome::Granted {
                addr: c.translate(req.addr),
                perms: perms_name(c.perms),
            },
            Err(AtsError::UnsupportedRequest(why)) => AtsOutcome::Error {
                status: "UR",
                reason: why.into(),
            },
            Err(AtsError::CompleterAbort(why)) => AtsOutcome::Error {
                status: "CA",
                reason: why.into(),
            },
        })
    }

    fn translated(&self, req: &DmaRequest) -> Result<DmaOutcome, String> {
        Ok(match self.dev.translated_access(req) {
            Ok(m) => DmaOutcome::Addr(m.output),
            Err(f) => DmaOutcome::Fault(f.event.name().to_owned()),
        })
    }

    fn atc_invalidations(&self, stream: u32) -> Result<Vec<AtcInvSpec>, String> {
        let atc = lock(&self.atcs)
            .get(&stream)
            .cloned()
            .ok_or_else(|| format!("stream {stream:#x} has no ATC (no ats_request yet)"))?;
        let seen = std::mem::take(&mut *lock(&atc.seen));
        if seen.overflowed {
            return Err(format!(
                "stream {stream:#x}'s ATC received more than {MAX_RECORDED_ATC_INVS} \
                 invalidations since the previous expect_atc_inv"
            ));
        }
        Ok(seen.invs)
    }

    fn settle(&self) {
        self.dev.finish_pending();
    }

    fn smmuv3(&self) -> Option<Arc<ReplaySmmuV3>> {
        Some(Arc::clone(&self.dev))
    }

    fn take_trace(&self) -> Vec<String> {
        self.log
            .take()
            .iter()
            .flat_map(|r| r.to_string().lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

/// The replay's name of a PRG response code.
fn code_name(c: PriResponse) -> &'static str {
    match c {
        PriResponse::Success => "success",
        PriResponse::InvalidRequest => "invalid",
        PriResponse::ResponseFailure => "failure",
    }
}

/// Device settings that are not part of [`SmmuConfig`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceOpts {
    /// `cmdq_batch_limit`, if given.
    pub cmdq_batch_limit: Option<usize>,
}

/// Turn a replay `config` object into the model's configuration.
///
/// # Errors
/// Unknown keys, values of the wrong type, unsupported ID register values (each named as
/// `config.KEY: ...`).
pub fn parse_config(config: &Map<String, Value>) -> Result<(SmmuConfig, DeviceOpts), String> {
    let f: ConfigFields = serde_path_to_error::deserialize(Value::Object(config.clone()))
        .map_err(|e| format!("config.{}: {}", e.path(), e.inner()))?;
    let mut cfg = match f.id_regs {
        None => SmmuConfig::default(),
        Some(r) => {
            SmmuConfig::from_id_regs(r.into()).map_err(|e| format!("config.id_regs: {e}"))?
        }
    };
    override_some!(
        cfg,
        f;
        stage1,
        stage2,
        two_level_stream_table,
        two_level_cd_table,
        va52,
        range_invalidation,
        coherent,
        asid16,
        vmid16,
        msi,
        hyp,
        ats,
        ns1ats,
        pri,
        term_model,
        dormhint,
        had,
        xnx,
        fwb,
        pps,
        attr_types_ovr,
        attr_perms_ovr,
        sid_bits,
        ssid_bits,
        bbml,
        cmdq_log2,
        evtq_log2,
        priq_log2,
        oas_bits,
        idr4,
        iidr,
        aidr,
        stall_max,
    );
    if let Some(g) = f.granules {
        cfg.granules = GranuleSet {
            k4: g.k4,
            k16: g.k16,
            k64: g.k64,
        };
    }
    if let Some(m) = f.stall_model {
        cfg.stall_model = StallModel(m);
    }
    if let Some(h) = f.httu {
        cfg.httu = Httu(h);
    }
    let opts = DeviceOpts {
        cmdq_batch_limit: f.cmdq_batch_limit,
    };
    Ok((cfg, opts))
}

/// The keys of an `smmuv3` device's `config`: `id_regs`, the [`SmmuConfig`] fields by name
/// (applied on top of the mirrored ID registers), and `cmdq_batch_limit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFields {
    #[serde(default)]
    id_regs: Option<IdRegFields>,
    #[serde(default)]
    stage1: Option<bool>,
    #[serde(default)]
    stage2: Option<bool>,
    #[serde(default)]
    two_level_stream_table: Option<bool>,
    #[serde(default)]
    two_level_cd_table: Option<bool>,
    #[serde(default)]
    va52: Option<bool>,
    #[serde(default)]
    range_invalidation: Option<bool>,
    #[serde(default)]
    coherent: Option<bool>,
    #[serde(default)]
    asid16: Option<bool>,
    #[serde(default)]
    vmid16: Option<bool>,
    #[serde(default)]
    msi: Option<bool>,
    #[serde(default)]
    hyp: Option<bool>,
    #[serde(default)]
    ats: Option<bool>,
    #[serde(default)]
    ns1ats: Option<bool>,
    #[serde(default)]
    pri: Option<bool>,
    #[serde(default)]
    term_model: Option<bool>,
    #[serde(default)]
    dormhint: Option<bool>,
    #[serde(default)]
    had: Option<bool>,
    #[serde(default)]
    xnx: Option<bool>,
    #[serde(default)]
    fwb: Option<bool>,
    #[serde(default)]
    pps: Option<bool>,
    #[serde(default)]
    attr_types_ovr: Option<bool>,
    #[serde(default)]
    attr_perms_ovr: Option<bool>,
    #[serde(default, deserialize_with = "num::opt")]
    sid_bits: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    ssid_bits: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    bbml: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    cmdq_log2: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    evtq_log2: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    priq_log2: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    oas_bits: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    idr4: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    iidr: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    aidr: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    stall_max: Option<u16>,
    #[serde(default)]
    granules: Option<GranuleFields>,
    /// A number, or the manual's name (`"TERMINATE"`, ...).
    #[serde(default, deserialize_with = "stall_model")]
    stall_model: Option<u8>,
    /// A number, or the manual's name.
    #[serde(default, deserialize_with = "httu")]
    httu: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    cmdq_batch_limit: Option<usize>,
}

/// `config.id_regs`: raw register values; missing ones are 0.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdRegFields {
    #[serde(default, deserialize_with = "num::opt")]
    idr0: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    idr1: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    idr2: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    idr3: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    idr4: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    idr5: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    iidr: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    aidr: Option<u32>,
}

impl From<IdRegFields> for IdRegs {
    fn from(f: IdRegFields) -> Self {
        IdRegs {
            idr0: f.idr0.unwrap_or(0),
            idr1: f.idr1.unwrap_or(0),
            idr2: f.idr2.unwrap_or(0),
            idr3: f.idr3.unwrap_or(0),
            idr4: f.idr4.unwrap_or(0),
            idr5: f.idr5.unwrap_or(0),
            iidr: f.iidr.unwrap_or(0),
            aidr: f.aidr.unwrap_or(0),
        }
    }
}

/// `config.granules`: the translation granules supported (missing ones are not).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GranuleFields {
    #[serde(default)]
    k4: bool,
    #[serde(default)]
    k16: bool,
    #[serde(default)]
    k64: bool,
}

/// An open-enum field: its raw number, or the name `name` gives one of its values.
fn named_u8<'de, D: Deserializer<'de>>(
    d: D,
    name: impl Fn(u8) -> Option<&'static str>,
) -> Result<Option<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Field {
        Name(String),
        Number(#[serde(deserialize_with = "num::de")] u8),
    }
    Ok(match Option::<Field>::deserialize(d)? {
        None => None,
        Some(Field::Number(n)) => Some(n),
        Some(Field::Name(s)) => Some(
            (0..=u8::MAX)
                .find(|&n| name(n) == Some(s.as_str()))
                .or_else(|| {
                    num::parse_u64_str(&s)
                        .ok()
                        .and_then(|n| u8::try_from(n).ok())
                })
                .ok_or_else(|| {
                    D::Error::custom(format!("{s:?} is not a known name or an 8-bit number"))
                })?,
        ),
    })
}

fn stall_model<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    named_u8(d, |n| StallModel(n).name())
}

fn httu<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    named_u8(d, |n| Httu(n).name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<(SmmuConfig, DeviceOpts), String> {
        parse_config(v.as_object().unwrap())
    }

    /// A stream's recording ATC keeps at most MAX_RECORDED_ATC_INVS invalidations between two
    /// checks; past that the next check is an error rather than a list, and recording starts
    /// afresh.
    #[test]
    fn test_recorded_atc_invalidations_are_bounded() {
        let mem =
            Arc::new(ReplayMem::from_ranges(&[(vm_memory::GuestAddress(0), 0x1000)]).unwrap());
        let dev = create("s", &Map::new(), &mem, ReplayIrq::new(), None).unwrap();
        let atc = Arc::new(RecordingAtc::default());
        let inv = AtcInvalidation {
            ssid: None,
            global: false,
            start: 0,
            last: 0xfff,
        };
        for _ in 0..=MAX_RECORDED_ATC_INVS {
            atc.invalidate(&inv).unwrap();
        }
        assert_eq!(lock(&atc.seen).invs.len(), MAX_RECORDED_ATC_INVS);
        let smmu = Smmu {
            dev: dev.smmuv3().unwrap(),
            log: TraceLog::new(),
            atcs: Mutex::new(HashMap::from([(5, Arc::clone(&atc))])),
        };
        let e = smmu.atc_invalidations(5).unwrap_err();
        assert!(e.contains("more than 65536 invalidations"), "{e}");
        atc.invalidate(&inv).unwrap();
        assert_eq!(smmu.atc_invalidations(5).unwrap().len(), 1);
    }

    /// The ID registers of the recorded Linux trace (QEMU 10's SMMUv3) are mirrored exactly.
    #[test]
    fn test_config_id_regs_of_recorded_trace() {
        let (c, _) = cfg(json!({"id_regs": {"idr0": "0xd44101b", "idr1": "0x2730010",
            "idr3": "0x1414", "idr5": "0x74", "iidr": "0x0", "aidr": "0x1"}}))
        .unwrap();
        let ids = c.caps().unwrap().id_regs();
        assert_eq!(
            (ids.idr0, ids.idr1, ids.idr3, ids.idr5, ids.aidr),
            (0xd44_101b, 0x273_0010, 0x1414, 0x74, 1)
        );
    }

    /// An ID register value the model cannot present is rejected naming the field (IDR0.SEV).
    #[test]
    fn test_config_unsupported_id_reg_named() {
        let e =
            cfg(json!({"id_regs": {"idr0": 0x094C_701B_u32, "idr1": "0x02730510"}})).unwrap_err();
        assert!(e.contains("IDR0.SEV"), "{e}");
    }

    /// Other keys set the configuration fields by name, with numbers in any replay format.
    #[test]
    fn test_config_fields_by_name() {
        let (c, o) = cfg(json!({"msi": false, "sid_bits": "0x8", "oas_bits": 44,
            "granules": {"k4": true}, "stall_model": "TERMINATE", "httu": 1,
            "cmdq_batch_limit": 3}))
        .unwrap();
        assert!(!c.msi);
        assert_eq!((c.sid_bits, c.oas_bits), (8, 44));
        assert_eq!((c.granules.k4, c.granules.k16), (true, false));
        assert_eq!(c.stall_model, StallModel::TERMINATE);
        assert_eq!(c.httu, Httu(1));
        assert_eq!(o.cmdq_batch_limit, Some(3));
        for bad in [
            json!({"bogus": 1}),
            json!({"msi": 1}),
            json!({"sid_bits": 256}),
            json!({"id_regs": {"idr9": 0}}),
            json!({"granules": {"k8": true}}),
        ] {
            assert!(cfg(bad.clone()).is_err(), "{bad}");
        }
    }
}
