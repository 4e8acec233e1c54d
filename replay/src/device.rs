//! The device-agnostic seam between the replay engine and a device model.
//!
//! The engine speaks register *values* and DMA requests; each backend ([`super::smmuv3`],
//! [`super::pamu`]) turns them into its device's bus accesses (applying the bus byte order once,
//! here in [`BusOrder`]), and reports interrupts through a [`ReplayIrq`] sink.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use viommu_common::traits::{InterruptSink, MmioDevice, MmioError};
use viommu_common::DmaRequest;
use vm_memory::GuestMemoryMmap;

use super::ats::{AtcInvSpec, AtsOutcome, AtsSpec};
use super::iopf::{DmaOutcome, PprSpec};

/// Guest RAM as the replay builds it.
pub type ReplayMem = GuestMemoryMmap<()>;

/// What the replay engine needs from a device model.
pub trait ReplayDevice: Send + Sync {
    /// Size of the device's MMIO region.
    fn mmio_size(&self) -> u64;

    /// Load a `size`-byte register at `offset`, returning its numeric value.
    ///
    /// # Errors
    /// The device refused the access (the architecture's RAZ/WI answer).
    fn mmio_read(&self, offset: u64, size: u8) -> Result<u64, MmioError>;

    /// Store `value` to the `size`-byte register at `offset`.
    ///
    /// # Errors
    /// The device refused the access (the architecture's RAZ/WI answer).
    fn mmio_write(&self, offset: u64, size: u8, value: u64) -> Result<(), MmioError>;

    /// Translate an endpoint's request: the output address, or the fault's architectural name.
    ///
    /// # Errors
    /// The architectural name of the fault the device reported (`"F_TRANSLATION"`, ...).
    fn dma(&self, req: &DmaRequest) -> Result<u64, String>;

    /// Translate an endpoint's request, distinguishing a transaction held by a stall model.
    fn dma_outcome(&self, req: &DmaRequest) -> DmaOutcome {
        match self.dma(req) {
            Ok(a) => DmaOutcome::Addr(a),
            Err(f) => DmaOutcome::Fault(f),
        }
    }

    /// What the endpoint of a stalled DMA (`stream`, `stag`) sees now.
    ///
    /// # Errors
    /// The device has no stall model.
    fn stall_result(&self, _stream: u32, _stag: u16) -> Result<DmaOutcome, String> {
        Err("this device has no stall model".into())
    }

    /// An endpoint's PCIe Page Request: `queued`, `dropped`, or the automatic response
    /// (`success`, `invalid`, `failure`).
    ///
    /// # Errors
    /// The device does not implement PRI.
    fn page_request(&self, _stream: u32, _req: &PprSpec) -> Result<String, String> {
        Err("this device does not implement PRI".into())
    }

    /// The PRG response received for `stream`'s group `group` (`None`: none yet).
    ///
    /// # Errors
    /// The device does not implement PRI.
    fn pri_response(&self, _stream: u32, _group: u16) -> Result<Option<String>, String> {
        Err("this device does not implement PRI".into())
    }

    /// An endpoint's ATS Translation Request (see [`super::ats`]); the first one for a stream
    /// registers the endpoint's (recording) ATC.
    ///
    /// # Errors
    /// The device does not implement ATS.
    fn ats_request(&self, _stream: u32, _req: &AtsSpec) -> Result<AtsOutcome, String> {
        Err("this device does not implement ATS".into())
    }

    /// A transaction marked Translated by the endpoint.
    ///
    /// # Errors
    /// The device does not implement ATS.
    fn translated(&self, _req: &DmaRequest) -> Result<DmaOutcome, String> {
        Err("this device does not implement ATS".into())
    }

    /// The invalidations `stream`'s ATC received since the last call, in order.
    ///
    /// # Errors
    /// The device does not implement ATS, or the stream has no ATC (no `ats_request` yet).
    fn atc_invalidations(&self, _stream: u32) -> Result<Vec<AtcInvSpec>, String> {
        Err("this device does not implement ATS".into())
    }

    /// Finish all pending work (queued commands, event writes), as a VMM that keeps servicing
    /// the device would before the guest observes it.
    fn settle(&self);

    /// Take the trace records (commands consumed, events written, ...) produced since the last
    /// call, in the text the device's insta snapshots use.
    fn take_trace(&self) -> Vec<String>;

    /// The SMMUv3 model behind this device, if it is one.
    fn smmuv3(&self) -> Option<Arc<crate::engine::ReplaySmmuV3>> {
        None
    }
}

/// Byte order of a device's register bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusOrder {
    /// SMMUv3 (Arm): little-endian.
    Little,
    /// PAMU (PowerPC): big-endian.
    Big,
}

impl BusOrder {
    /// Read a register's numeric value through a byte-slice MMIO interface.
    ///
    /// # Errors
    /// The device refused the access.
    pub fn read(self, dev: &dyn MmioDevice, offset: u64, size: u8) -> Result<u64, MmioError> {
        let mut buf = [0u8; 8];
        let n = usize::from(size.min(8));
        let bytes = buf.get_mut(..n).unwrap_or_default();
        dev.mmio_read(offset, bytes)?;
        Ok(self.decode(bytes))
    }

    /// Write a register's numeric value through a byte-slice MMIO interface.
    ///
    /// # Errors
    /// The device refused the access.
    pub fn write(
        self,
        dev: &dyn MmioDevice,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<(), MmioError> {
        let n = usize::from(size.min(8));
        let (le, be) = (value.to_le_bytes(), value.to_be_bytes());
        let bytes = match self {
            BusOrder::Little => le.get(..n),
            BusOrder::Big => be.get(8 - n..),
        }
        .unwrap_or_default();
        dev.mmio_write(offset, bytes)
    }

    fn decode(self, bytes: &[u8]) -> u64 {
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        match self {
            BusOrder::Little => bytes.iter().rev().fold(0, fold),
            BusOrder::Big => bytes.iter().fold(0, fold),
        }
    }
}

/// An interrupt a device raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqEvent {
    /// MSI: a 32-bit write of `data` to `addr`.
    Msi {
        /// Doorbell address.
        addr: u64,
        /// Payload.
        data: u32,
    },
    /// A wired line changed level.
    Line {
        /// Line number (device-defined).
        line: u32,
        /// New level.
        level: bool,
    },
}

/// The interrupt sink given to each replayed device: records everything, in order.
#[derive(Debug, Default)]
pub struct ReplayIrq {
    log: Mutex<Vec<IrqEvent>>,
}

impl ReplayIrq {
    /// A new, empty sink.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Take everything raised since the last call.
    pub fn take(&self) -> Vec<IrqEvent> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, e: IrqEvent) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
}

impl InterruptSink for ReplayIrq {
    fn set_line(&self, line: u32, level: bool) {
        self.push(IrqEvent::Line { line, level });
    }

    fn send_msi(&self, addr: u64, data: u32) {
        self.push(IrqEvent::Msi { addr, data });
    }
}

/// Create the device `name` of `kind` from its `config` object (an SMMUv3 with `smmuv3`, if
/// given).
///
/// # Errors
/// Unknown kind, malformed configuration, or a configuration the model cannot support.
pub(crate) fn create(
    name: &str,
    kind: &str,
    config: &Map<String, Value>,
    mem: &Arc<ReplayMem>,
    irq: Arc<ReplayIrq>,
    smmuv3: Option<&mut crate::engine::SmmuV3Factory>,
) -> Result<Box<dyn ReplayDevice>, String> {
    match kind {
        "smmuv3" => super::smmuv3::create(name, config, mem, irq, smmuv3),
        "pamu" => super::pamu::create(config, mem, irq),
        #[cfg(test)]
        "fake" => super::fake::create(config, mem, irq),
        other => Err(format!(
            "unknown device kind {other:?} (expected \"smmuv3\" or \"pamu\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Mutex<[u8; 8]>);

    impl MmioDevice for Bytes {
        fn mmio_size(&self) -> u64 {
            8
        }
        fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
            let r = self.0.lock().unwrap();
            let o = usize::try_from(offset).unwrap();
            data.copy_from_slice(&r[o..o + data.len()]);
            Ok(())
        }
        fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
            let mut r = self.0.lock().unwrap();
            let o = usize::try_from(offset).unwrap();
            r[o..o + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    /// A little-endian bus puts the register's least significant byte first; a big-endian bus
    /// puts it last; reads give back the numeric value either way.
    #[test]
    fn test_bus_order_byte_lanes() {
        let d = Bytes(Mutex::new([0; 8]));
        BusOrder::Little.write(&d, 0, 4, 0x1122_3344).unwrap();
        assert_eq!(&d.0.lock().unwrap()[..4], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(BusOrder::Little.read(&d, 0, 4), Ok(0x1122_3344));
        BusOrder::Big.write(&d, 4, 4, 0x4000_1011).unwrap();
        assert_eq!(&d.0.lock().unwrap()[4..], &[0x40, 0x00, 0x10, 0x11]);
        assert_eq!(BusOrder::Big.read(&d, 4, 4), Ok(0x4000_1011));
        BusOrder::Little
            .write(&d, 0, 8, 0x0102_0304_0506_0708)
            .unwrap();
        assert_eq!(*d.0.lock().unwrap(), [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(BusOrder::Big.read(&d, 0, 2), Ok(0x0807));
    }
}
