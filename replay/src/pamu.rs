//! Replay backend for the Freescale/NXP QorIQ PAMU model (`kind: "pamu"`).
//!
//! # Configuration
//!
//! The `config` object names fields of [`PamuConfig`] (`instances`, `max_liodn`,
//! `max_subwindows_log2`, `msi_banks`, `mpic_version` (`"4.2"` / `"4.3"`), `phys_addr_bits`,
//! `ccsr_base`, `pr1`, `pr2`, `av_line`, `err_line`, `liodn_parents`); missing fields keep the
//! P4080 defaults. Numbers may be written in any replay format (hex strings included).
//!
//! Register values in `mmio_read`/`mmio_write` are the numbers the CPU sees (`in_be32`); the
//! backend applies the big-endian bus order. `dma.stream` is the LIODN; faults are reported by
//! the model's violation names (`AV_LIODN`, ...).

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Map, Value};
use viommu_common::traits::{MmioDevice, MmioError};
use viommu_common::{DmaRequest, DmaTranslator};
use viommu_pamu::{MpicVersion, Pamu, PamuConfig};

use super::device::{BusOrder, ReplayDevice, ReplayIrq, ReplayMem};
use crate::num;

/// Create a PAMU from a replay `config` object.
///
/// # Errors
/// Unknown keys, values of the wrong type, or a configuration out of the model's range.
pub fn create(
    config: &Map<String, Value>,
    mem: &Arc<ReplayMem>,
    irq: Arc<ReplayIrq>,
) -> Result<Box<dyn ReplayDevice>, String> {
    let cfg = parse_config(config)?;
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&log);
    let dev = Pamu::new(cfg, Arc::clone(mem), irq)
        .map_err(|e| format!("config: {e}"))?
        .with_tracer(move |e| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        });
    Ok(Box::new(PamuDev { dev, log }))
}

/// Turn a replay `config` object into a [`PamuConfig`]: the named fields over the P4080
/// defaults.
///
/// # Errors
/// Unknown keys or values of the wrong type (named as `config: KEY: ...`).
pub fn parse_config(config: &Map<String, Value>) -> Result<PamuConfig, String> {
    let f: ConfigFields = serde_path_to_error::deserialize(Value::Object(config.clone()))
        .map_err(|e| format!("config: {}: {}", e.path(), e.inner()))?;
    let mut cfg = PamuConfig::p4080();
    macro_rules! apply {
        ($($name:ident),* $(,)?) => {
            $(if let Some(v) = f.$name {
                cfg.$name = v;
            })*
        };
    }
    apply!(
        instances,
        max_liodn,
        max_subwindows_log2,
        msi_banks,
        mpic_version,
        phys_addr_bits,
        ccsr_base,
        pr1,
        pr2,
        av_line,
        err_line,
    );
    if let Some(p) = f.liodn_parents {
        cfg.liodn_parents = p.into_iter().map(|Parent(l, i)| (l, i)).collect();
    }
    Ok(cfg)
}

/// The keys of a `pamu` device's `config`: [`PamuConfig`]'s fields, numbers in any replay
/// format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFields {
    #[serde(default, deserialize_with = "num::opt")]
    instances: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    max_liodn: Option<u16>,
    #[serde(default, deserialize_with = "num::opt")]
    max_subwindows_log2: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    msi_banks: Option<u8>,
    #[serde(default)]
    mpic_version: Option<MpicVersion>,
    #[serde(default, deserialize_with = "num::opt")]
    phys_addr_bits: Option<u8>,
    #[serde(default, deserialize_with = "num::opt")]
    ccsr_base: Option<u64>,
    #[serde(default, deserialize_with = "num::opt")]
    pr1: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    pr2: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    av_line: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    err_line: Option<u32>,
    #[serde(default)]
    liodn_parents: Option<Vec<Parent>>,
}

/// One `[liodn, instance]` pair of `liodn_parents`.
#[derive(Deserialize)]
struct Parent(
    #[serde(deserialize_with = "num::de")] u16,
    #[serde(deserialize_with = "num::de")] u8,
);

/// A PAMU on the replay's bus, with its trace collected in memory.
struct PamuDev {
    dev: Pamu<Arc<ReplayMem>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl ReplayDevice for PamuDev {
    fn mmio_size(&self) -> u64 {
        MmioDevice::mmio_size(&self.dev)
    }

    fn mmio_read(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        BusOrder::Big.read(&self.dev, offset, size)
    }

    fn mmio_write(&self, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        BusOrder::Big.write(&self.dev, offset, size, value)
    }

    fn dma(&self, req: &DmaRequest) -> Result<u64, String> {
        self.dev
            .translate(req)
            .map(|m| m.output)
            .map_err(|f| f.event.name().to_owned())
    }

    /// The PAMU does all its work synchronously inside the access; nothing is ever pending.
    fn settle(&self) {}

    fn take_trace(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<PamuConfig, String> {
        parse_config(v.as_object().unwrap())
    }

    /// The format's PAMU keys set the configuration, numbers in any replay format; missing keys
    /// keep the P4080 defaults.
    #[test]
    fn test_pamu_config_keys() {
        let c = cfg(
            json!({"instances": 6, "max_liodn": "0x7ff", "max_subwindows_log2": "8",
            "msi_banks": 4, "mpic_version": "4.3"}),
        )
        .unwrap();
        assert_eq!(
            (c.instances, c.max_liodn, c.max_subwindows_log2, c.msi_banks),
            (6, 0x7ff, 8, 4)
        );
        assert_eq!(c.mpic_version, MpicVersion::V4_3);
        assert_eq!(c.phys_addr_bits, PamuConfig::p4080().phys_addr_bits);
        assert_eq!(cfg(json!({})).unwrap(), PamuConfig::p4080());
    }

    /// Unknown keys and wrongly typed values are rejected with the key named.
    #[test]
    fn test_pamu_config_errors() {
        assert!(cfg(json!({"instance": 2}))
            .unwrap_err()
            .contains("instance"));
        assert!(cfg(json!({"msi_banks": "many"})).is_err());
        assert!(cfg(json!({"max_liodn": "0x10000"})).is_err());
    }

    /// Register values cross the bus big-endian: the enable value written reads back as the
    /// same number, and an out-of-range model configuration is refused at creation.
    #[test]
    fn test_pamu_backend_register_values() {
        let mem =
            Arc::new(ReplayMem::from_ranges(&[(vm_memory::GuestAddress(0), 0x10000)]).unwrap());
        let d = create(&Map::new(), &mem, ReplayIrq::new()).unwrap();
        d.mmio_write(0xC10, 4, 0x4000_1011).unwrap();
        assert_eq!(d.mmio_read(0xC10, 4), Ok(0x4000_1011));
        let bad = json!({"instances": 0});
        assert!(create(bad.as_object().unwrap(), &mem, ReplayIrq::new()).is_err());
    }
}
