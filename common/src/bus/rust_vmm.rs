//! rust-vmm `vm-device` integration (feature `vm-device`): [`MmioBusAdapter`] is a
//! [`DeviceMmio`] (and a [`MutDeviceMmio`], for VMMs that keep devices in a `Mutex`), so an SMMUv3
//! or a PAMU registers with `vm_device::device_manager::IoManager` like any rust-vmm device.
//!
//! `IoManager` looks up the range an exit falls in and calls the device with the range's base
//! and the offset inside it; the adapter hands the offset to the device. Accesses the device
//! refuses read as zero and are ignored (see the [parent module](super)).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use vm_device::bus::MmioAddress;
//! use vm_device::device_manager::{IoManager, MmioManager};
//! use viommu_common::bus::{rust_vmm::register, MmioBusAdapter};
//! use viommu_common::traits::{MmioDevice, MmioError};
//!
//! /// A 4 KiB region whose 32-bit words read as their own offset; writes are accepted.
//! struct Offsets;
//! impl MmioDevice for Offsets {
//!     fn mmio_size(&self) -> u64 { 0x1000 }
//!     fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
//!         if data.len() != 4 {
//!             data.fill(0);
//!             return Err(MmioError::BadAccessSize { offset, size: data.len() });
//!         }
//!         data.copy_from_slice(&(offset as u32).to_le_bytes());
//!         Ok(())
//!     }
//!     fn mmio_write(&self, _offset: u64, _data: &[u8]) -> Result<(), MmioError> { Ok(()) }
//! }
//!
//! let mut io = IoManager::new();
//! let adapter = register(&mut io, 0x0900_0000, Arc::new(Offsets)).unwrap();
//! let mut word = [0u8; 4];
//! io.mmio_read(MmioAddress(0x0900_0010), &mut word).unwrap();
//! assert_eq!(u32::from_le_bytes(word), 0x10);
//! // A byte read is refused by the device: zero, counted, and not an error on the bus.
//! let mut byte = [0xffu8; 1];
//! io.mmio_read(MmioAddress(0x0900_0010), &mut byte).unwrap();
//! assert_eq!(byte, [0]);
//! assert_eq!(adapter.refused(), 1);
//! // Past the region the bus itself answers: no device there.
//! assert!(io.mmio_read(MmioAddress(0x0900_1000), &mut word).is_err());
//! ```

use std::sync::Arc;

use vm_device::bus::{Error as BusError, MmioAddress, MmioAddressOffset, MmioRange};
use vm_device::device_manager::{IoManager, MmioManager};
use vm_device::{DeviceMmio, MutDeviceMmio};

use super::MmioBusAdapter;
use crate::traits::MmioDevice;

impl<D: MmioDevice + ?Sized> MmioBusAdapter<D> {
    /// The bus range the device occupies when placed at `base`.
    ///
    /// # Errors
    /// The range `vm-device` rejects: an empty device or one that would wrap past the end of
    /// the address space.
    pub fn mmio_range(&self, base: u64) -> Result<MmioRange, BusError> {
        MmioRange::new(MmioAddress(base), self.size())
    }
}

/// Register `device` on `io` at `base` (its whole [`MmioDevice::mmio_size`]) and return the
/// adapter, which the VMM keeps for [`MmioBusAdapter::refused`] statistics.
///
/// # Errors
/// The range is invalid or overlaps a device already registered.
pub fn register<D: MmioDevice + 'static>(
    io: &mut IoManager,
    base: u64,
    device: Arc<D>,
) -> Result<Arc<MmioBusAdapter<D>>, BusError> {
    let adapter = Arc::new(MmioBusAdapter::new(device));
    io.register_mmio(adapter.mmio_range(base)?, adapter.clone())?;
    Ok(adapter)
}

impl<D: MmioDevice + ?Sized> DeviceMmio for MmioBusAdapter<D> {
    fn mmio_read(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
        self.read_raz(offset, data);
    }

    fn mmio_write(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        self.write_wi(offset, data);
    }
}

impl<D: MmioDevice + ?Sized> MutDeviceMmio for MmioBusAdapter<D> {
    fn mmio_read(&mut self, _base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
        self.read_raz(offset, data);
    }

    fn mmio_write(&mut self, _base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        self.write_wi(offset, data);
    }
}
