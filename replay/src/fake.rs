//! A tiny fake device (kind `"fake"`, unit tests only) exercising every engine path without a
//! real IOMMU model: registers, deferred work finished by `settle`, MSIs, wired interrupts,
//! DMA results and faults, trace records.
//!
//! Registers (32-bit unless noted):
//! - 0x00 ID (RO, `config.id`, default 0xFA4E_0001)
//! - 0x08 SCRATCH (RW, 32- or 64-bit)
//! - 0x10 DOORBELL (WO): queue `value` units of work, done at the next `settle`
//! - 0x14 DONE (RO): units of work completed
//! - 0x18 MSI_ADDR (RW, 64-bit): each settle that completes work sends MSI(MSI_ADDR, DONE)
//!
//! DMA: stream 1 maps `addr + 0x1000_0000`; stream 2 with a substream maps
//! `addr + (ssid << 32)`; stream 0xDEAD panics (a model bug); anything else faults `F_TRANSLATION` and pulses wired line 3.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use viommu_common::traits::{InterruptSink, MmioError};
use viommu_common::DmaRequest;

use super::device::{ReplayDevice, ReplayIrq, ReplayMem};
use crate::num;
use serde::Deserialize;

#[derive(Default)]
struct Regs {
    scratch: u64,
    queued: u64,
    done: u64,
    msi_addr: u64,
    trace: Vec<String>,
}

struct Fake {
    id: u64,
    regs: Mutex<Regs>,
    irq: Arc<ReplayIrq>,
}

/// Create a fake device.
pub fn create(
    config: &Map<String, Value>,
    _mem: &Arc<ReplayMem>,
    irq: Arc<ReplayIrq>,
) -> Result<Box<dyn ReplayDevice>, String> {
    /// `config`: `id` (a number), and `unsupported` (any value: refused like a configuration
    /// a model cannot support).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default, deserialize_with = "num::opt")]
        id: Option<u64>,
        #[serde(default)]
        unsupported: Option<serde::de::IgnoredAny>,
    }
    let c =
        Config::deserialize(Value::Object(config.clone())).map_err(|e| format!("config: {e}"))?;
    if c.unsupported.is_some() {
        return Err("the model cannot support config.unsupported".into());
    }
    let id = c.id.unwrap_or(0xFA4E_0001);
    Ok(Box::new(Fake {
        id,
        regs: Mutex::default(),
        irq,
    }))
}

impl ReplayDevice for Fake {
    fn mmio_size(&self) -> u64 {
        0x100
    }

    fn mmio_read(&self, offset: u64, size: u8) -> Result<u64, MmioError> {
        let r = self.regs.lock().unwrap();
        match (offset, size) {
            (0x00, 4) => Ok(self.id),
            (0x08, 4 | 8) => Ok(r.scratch & mask(size)),
            (0x14, 4) => Ok(r.done),
            (0x18, 8) => Ok(r.msi_addr),
            _ => Err(MmioError::BadAccessSize {
                offset,
                size: usize::from(size),
            }),
        }
    }

    fn mmio_write(&self, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let mut r = self.regs.lock().unwrap();
        match (offset, size) {
            (0x08, 4 | 8) => r.scratch = value,
            (0x10, 4) => {
                r.queued += value;
                r.trace.push(format!("DOORBELL {value}"));
            }
            (0x18, 8) => r.msi_addr = value,
            _ => {
                return Err(MmioError::BadAccessSize {
                    offset,
                    size: usize::from(size),
                })
            }
        }
        Ok(())
    }

    fn dma(&self, req: &DmaRequest) -> Result<u64, String> {
        match (req.stream.0, req.substream) {
            (1, None) => Ok(req.addr + 0x1000_0000),
            (2, Some(ssid)) => Ok(req.addr + (u64::from(ssid.0) << 32)),
            (0xDEAD, _) => panic!("fake model bug"),
            _ => {
                self.regs
                    .lock()
                    .unwrap()
                    .trace
                    .push(format!("FAULT stream {}", req.stream.0));
                self.irq.pulse(3);
                Err("F_TRANSLATION".into())
            }
        }
    }

    fn settle(&self) {
        let mut r = self.regs.lock().unwrap();
        if r.queued > 0 {
            r.done += std::mem::take(&mut r.queued);
            let done = r.done;
            r.trace.push(format!("DONE {done}"));
            self.irq.send_msi(r.msi_addr, u32::try_from(done).unwrap());
        }
    }

    fn take_trace(&self) -> Vec<String> {
        std::mem::take(&mut self.regs.lock().unwrap().trace)
    }
}

fn mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (u32::from(size) * 8)) - 1
    }
}
