//! PAMUBYPENR: the bypass-enable register of the SoC's GUTS/DCFG block (offset
//! [`PAMUBYPENR_OFFSET`](crate::spec::regs::PAMUBYPENR_OFFSET)), held by the PAMU model so
//! translation reads it without a lock. Linux's `fsl_pamu_probe` (`drivers/iommu/fsl_pamu.c`)
//! clears each PAMU's bit at probe.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use viommu_common::mem::GuestRam;
use viommu_common::traits::{MmioDevice, MmioError};

use crate::device::Pamu;
use crate::spec::regs::Pamubypenr;
use crate::trace::PamuEvent;

impl<M: GuestRam> Pamu<M> {
    /// PAMUBYPENR (GUTS/DCFG + 0x604): bit 0x8000_0000 >> i bypasses instance i.
    pub fn bypass_register(&self) -> u32 {
        self.bypass.load(Ordering::Acquire)
    }

    /// Write PAMUBYPENR. Policy: only the bits of existing instances are writable; a bypassed
    /// instance passes traffic unchanged, with no checks and no faults.
    pub fn write_bypass_register(&self, v: u32) {
        let value = Pamubypenr::sanitise(v, self.caps.instances).0;
        // Release pairs with the Acquire in `Pamu::control` (device.rs).
        self.bypass.store(value, Ordering::Release);
        self.trace(PamuEvent::Bypass { value });
    }
}

/// PAMUBYPENR as a 4-byte big-endian MMIO region, for a VMM that emulates the GUTS/DCFG block
/// and wants to forward offset 0x604 to the PAMU.
pub struct BypassRegion<M>(pub Arc<Pamu<M>>);

impl<M: GuestRam> MmioDevice for BypassRegion<M> {
    fn mmio_size(&self) -> u64 {
        4
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        if offset != 0 || data.len() != 4 {
            return Err(MmioError::BadAccessSize {
                offset,
                size: data.len(),
            });
        }
        data.copy_from_slice(&self.0.bypass_register().to_be_bytes());
        Ok(())
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        let b: [u8; 4] = data.try_into().map_err(|_| MmioError::BadAccessSize {
            offset,
            size: data.len(),
        })?;
        if offset != 0 {
            return Err(MmioError::BadAccessSize { offset, size: 4 });
        }
        self.0.write_bypass_register(u32::from_be_bytes(b));
        Ok(())
    }
}
