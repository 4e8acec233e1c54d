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
use super::iopf::{DmaOutcome, PprSpec};
use super::num::{kind_of, parse_u64};

/// Create an SMMUv3 from a replay `config` object.
///
/// # Errors
/// A malformed configuration, or one the model cannot support.
pub fn create(
    config: &Map<String, Value>,
    mem: &ReplayMem,
    irq: Arc<ReplayIrq>,
) -> Result<Box<dyn ReplayDevice>, String> {
    let (cfg, opts) = parse_config(config)?;
    let dev = SmmuV3::new(&cfg, Arc::new(mem.clone()), irq).map_err(|e| e.to_string())?;
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
    dev: SmmuV3<Arc<ReplayMem>>,
    log: Arc<TraceLog>,
    /// The recording ATCs registered per StreamID (by the stream's first `ats_request`).
    atcs: Mutex<HashMap<u32, Arc<RecordingAtc>>>,
}

/// An endpoint ATC that records every invalidation it receives and always completes it.
#[derive(Debug, Default)]
struct RecordingAtc {
    seen: Mutex<Vec<AtcInvSpec>>,
}

impl AtcEndpoint for RecordingAtc {
    fn invalidate(&self, inv: &AtcInvalidation) -> Result<(), AtcError> {
        let AtcInvalidation {
            ssid,
            global,
            start,
            last,
        } = *inv;
        lock(&self.seen).push(AtcInvSpec {
            ssid,
            global,
            start,
            last,
        });
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
        MmioDevice::mmio_size(&self.dev)
    }

    fn mmio_read(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        BusOrder::Little.read(&self.dev, offset, size)
    }

    fn mmio_write(&self, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        BusOrder::Little.write(&self.dev, offset, size, value)
    }

    fn dma(&self, req: &DmaRequest) -> Result<u64, String> {
        self.dev
            .translate(req)
            .map(|m| m.output)
            .map_err(|f| f.event.to_owned())
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
                fault: Some(event.to_owned()),
            },
            Err(f) => DmaOutcome::Fault(f.event.to_owned()),
        }
    }

    fn stall_result(&self, stream: u32, stag: u16) -> Result<DmaOutcome, String> {
        Ok(match self.dev.stall_status(StreamId(stream), stag) {
            StallStatus::Pending => DmaOutcome::Stalled { stag, fault: None },
            StallStatus::Resolved { result: Ok(m), .. } => DmaOutcome::Addr(m.output),
            StallStatus::Resolved { result: Err(f), .. } => DmaOutcome::Fault(f.event.to_owned()),
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
            Err(f) => DmaOutcome::Fault(f.event.to_owned()),
        })
    }

    fn atc_invalidations(&self, stream: u32) -> Result<Vec<AtcInvSpec>, String> {
        let atc = lock(&self.atcs)
            .get(&stream)
            .cloned()
            .ok_or_else(|| format!("stream {stream:#x} has no ATC (no ats_request yet)"))?;
        let seen = std::mem::take(&mut *lock(&atc.seen));
        Ok(seen)
    }

    fn settle(&self) {
        self.dev.finish_pending();
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
/// Unknown keys, values of the wrong type, unsupported ID register values.
pub fn parse_config(config: &Map<String, Value>) -> Result<(SmmuConfig, DeviceOpts), String> {
    let mut cfg = match config.get("id_regs") {
        None => SmmuConfig::default(),
        Some(v) => {
            let regs = parse_id_regs(v)?;
            SmmuConfig::from_id_regs(regs).map_err(|e| format!("config.id_regs: {e}"))?
        }
    };
    let mut opts = DeviceOpts::default();
    for (key, v) in config {
        if key == "id_regs" {
            continue;
        }
        set_field(&mut cfg, &mut opts, key, v).map_err(|e| format!("config.{key}: {e}"))?;
    }
    Ok((cfg, opts))
}

fn parse_id_regs(v: &Value) -> Result<IdRegs, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "config.id_regs: expected an object, found {}",
            kind_of(v)
        ));
    };
    let mut r = IdRegs::default();
    for (k, v) in m {
        let slot = match k.as_str() {
            "idr0" => &mut r.idr0,
            "idr1" => &mut r.idr1,
            "idr2" => &mut r.idr2,
            "idr3" => &mut r.idr3,
            "idr4" => &mut r.idr4,
            "idr5" => &mut r.idr5,
            "iidr" => &mut r.iidr,
            "aidr" => &mut r.aidr,
            other => return Err(format!("config.id_regs: unknown register {other:?}")),
        };
        *slot = u32_of(v).map_err(|e| format!("config.id_regs.{k}: {e}"))?;
    }
    Ok(r)
}

fn bool_of(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected a boolean, found {}", kind_of(v)))
}

fn u32_of(v: &Value) -> Result<u32, String> {
    let n = parse_u64(v)?;
    u32::try_from(n).map_err(|_| format!("{n:#x} does not fit in 32 bits"))
}

fn u8_of(v: &Value) -> Result<u8, String> {
    let n = parse_u64(v)?;
    u8::try_from(n).map_err(|_| format!("{n:#x} does not fit in 8 bits"))
}

/// An open-enum field given as its raw number or as the manual's name.
fn named_u8(v: &Value, name: impl Fn(u8) -> Option<&'static str>) -> Result<u8, String> {
    if let Value::String(s) = v {
        if let Some(n) = (0..=u8::MAX).find(|&n| name(n) == Some(s.as_str())) {
            return Ok(n);
        }
    }
    u8_of(v)
}

fn set_field(
    cfg: &mut SmmuConfig,
    opts: &mut DeviceOpts,
    key: &str,
    v: &Value,
) -> Result<(), String> {
    macro_rules! fields {
        ($($name:ident: $conv:expr),* $(,)?) => {
            match key {
                $(stringify!($name) => cfg.$name = $conv(v)?,)*
                "granules" => cfg.granules = granules(v)?,
                "stall_max" => {
                    let n = parse_u64(v)?;
                    cfg.stall_max = u16::try_from(n).map_err(|_| format!("{n:#x} does not fit in 16 bits"))?;
                }
                "stall_model" => cfg.stall_model = StallModel(named_u8(v, |n| StallModel(n).name())?),
                "httu" => cfg.httu = Httu(named_u8(v, |n| Httu(n).name())?),
                "cmdq_batch_limit" => {
                    let n = parse_u64(v)?;
                    opts.cmdq_batch_limit = Some(usize::try_from(n).map_err(|_| "too large".to_string())?);
                }
                other => return Err(format!("unknown SMMUv3 configuration key {other:?}")),
            }
        };
    }
    fields! {
        stage1: bool_of, stage2: bool_of, two_level_stream_table: bool_of,
        two_level_cd_table: bool_of, va52: bool_of, range_invalidation: bool_of,
        coherent: bool_of, asid16: bool_of, vmid16: bool_of, msi: bool_of, hyp: bool_of,
        ats: bool_of, ns1ats: bool_of, pri: bool_of, term_model: bool_of, dormhint: bool_of,
        had: bool_of, xnx: bool_of, fwb: bool_of, pps: bool_of, attr_types_ovr: bool_of,
        attr_perms_ovr: bool_of,
        sid_bits: u8_of, ssid_bits: u8_of, bbml: u8_of, cmdq_log2: u8_of, evtq_log2: u8_of,
        priq_log2: u8_of,
        oas_bits: u32_of, idr4: u32_of, iidr: u32_of, aidr: u32_of,
    }
    Ok(())
}

fn granules(v: &Value) -> Result<GranuleSet, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "expected an object {{\"k4\", \"k16\", \"k64\"}}, found {}",
            kind_of(v)
        ));
    };
    let mut g = GranuleSet {
        k4: false,
        k16: false,
        k64: false,
    };
    for (k, v) in m {
        let slot = match k.as_str() {
            "k4" => &mut g.k4,
            "k16" => &mut g.k16,
            "k64" => &mut g.k64,
            other => return Err(format!("unknown granule {other:?}")),
        };
        *slot = bool_of(v)?;
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<(SmmuConfig, DeviceOpts), String> {
        parse_config(v.as_object().unwrap())
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
