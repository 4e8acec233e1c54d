//! Adapters from [`MmioDevice`] to the MMIO-bus traits VMMs dispatch exits through.
//!
//! A VMM's bus finds the device covering an exit's guest-physical address and calls it with the
//! region's base and the offset inside it; our devices only want the offset. [`MmioBusAdapter`]
//! wraps any [`MmioDevice`] once and implements every bus trait below, so the same device can be
//! plugged into whichever VMM:
//!
//! - [`BusDevice`] / [`BusDeviceSync`]: the shape of Cloud Hypervisor's `vm-device` traits
//!   (`read`/`write` with base and offset; `write` may return a barrier). CH's own crate is not
//!   published, so the traits are defined here with the exact same signatures: a CH integration
//!   implements its trait for [`MmioBusAdapter`] by forwarding, one line per method. Firecracker's
//!   `BusDevice` has the same shape.
//! - rust-vmm `vm-device`'s `DeviceMmio` and `MutDeviceMmio` (feature `vm-device`), used with its
//!   `IoManager`: see the `bus::rust_vmm` module.
//!
//! # Refused accesses
//! A bus trait has no way to report an error back to the vCPU, so an access the architecture
//! does not allow (a wrong size, an offset past the device's registers: an
//! [`MmioError`](crate::traits::MmioError)) follows the usual convention for unimplemented
//! register space: it reads as zero and the write is ignored (RAZ/WI). The adapter counts them
//! ([`MmioBusAdapter::refused`]) for VMM statistics.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use viommu_common::bus::{BusDevice, BusDeviceSync, MmioBusAdapter};
//! use viommu_common::traits::{MmioDevice, MmioError};
//!
//! /// A one-register device: a 32-bit scratch register at offset 0, nothing else.
//! #[derive(Default)]
//! struct Scratch(Mutex<u32>);
//! impl MmioDevice for Scratch {
//!     fn mmio_size(&self) -> u64 { 0x1000 }
//!     fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
//!         if offset != 0 || data.len() != 4 {
//!             data.fill(0);
//!             return Err(MmioError::BadAccessSize { offset, size: data.len() });
//!         }
//!         data.copy_from_slice(&self.0.lock().unwrap().to_le_bytes());
//!         Ok(())
//!     }
//!     fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
//!         let word: [u8; 4] = data.try_into()
//!             .map_err(|_| MmioError::BadAccessSize { offset, size: data.len() })?;
//!         *self.0.lock().unwrap() = u32::from_le_bytes(word);
//!         Ok(())
//!     }
//! }
//!
//! let bus_dev = MmioBusAdapter::new(Arc::new(Scratch::default()));
//! // Cloud-Hypervisor style: the bus passes the region base and the offset inside it.
//! assert!(BusDeviceSync::write(&bus_dev, 0x0900_0000, 0, &7u32.to_le_bytes()).is_none());
//! let mut word = [0xff; 4];
//! BusDeviceSync::read(&bus_dev, 0x0900_0000, 0, &mut word);
//! assert_eq!(u32::from_le_bytes(word), 7);
//! // A 2-byte read is refused by the device: it reads as zero and is counted.
//! let mut half = [0xff; 2];
//! BusDeviceSync::read(&bus_dev, 0x0900_0000, 0, &mut half);
//! assert_eq!(half, [0, 0]);
//! assert_eq!(bus_dev.refused(), 1);
//! ```

#[cfg(feature = "vm-device")]
pub mod rust_vmm;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use crate::traits::MmioDevice;

/// A device on an MMIO bus, called with `&mut self` (the shape of Cloud Hypervisor's
/// `vm_device::BusDevice`, also Firecracker's).
///
/// `base` is the start of the region the device was registered at and `offset` the access's
/// distance from it; the access size is the slice length.
pub trait BusDevice: Send {
    /// Load `data.len()` bytes from `offset` inside the region at `base`.
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]);

    /// Store `data` at `offset` inside the region at `base`. A device that completes the write
    /// on another thread returns a barrier the vCPU waits on; ours complete in the call.
    fn write(&mut self, base: u64, offset: u64, data: &[u8]) -> Option<Arc<Barrier>>;
}

/// The `&self` variant of [`BusDevice`] a bus stores behind an `Arc` (the shape of Cloud
/// Hypervisor's `vm_device::BusDeviceSync`); every `Mutex<B: BusDevice>` is one.
pub trait BusDeviceSync: Send + Sync {
    /// Load `data.len()` bytes from `offset` inside the region at `base`.
    fn read(&self, base: u64, offset: u64, data: &mut [u8]);

    /// Store `data` at `offset` inside the region at `base` (see [`BusDevice::write`]).
    fn write(&self, base: u64, offset: u64, data: &[u8]) -> Option<Arc<Barrier>>;
}

impl<B: BusDevice> BusDeviceSync for Mutex<B> {
    fn read(&self, base: u64, offset: u64, data: &mut [u8]) {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .read(base, offset, data);
    }

    fn write(&self, base: u64, offset: u64, data: &[u8]) -> Option<Arc<Barrier>> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(base, offset, data)
    }
}

/// One [`MmioDevice`] as a device on any of the supported buses (see the module docs).
///
/// The adapter holds the device in an `Arc`, so the VMM keeps another handle for DMA
/// translation ([`crate::traits::DmaTranslator`]) and statistics. It adds no lock: the device's
/// own `&self` methods are called directly.
pub struct MmioBusAdapter<D: ?Sized> {
    device: Arc<D>,
    refused: AtomicU64,
}

impl<D: ?Sized> fmt::Debug for MmioBusAdapter<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmioBusAdapter")
            .field("refused", &self.refused.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<D: MmioDevice + ?Sized> MmioBusAdapter<D> {
    /// An adapter for `device`.
    pub fn new(device: Arc<D>) -> Self {
        Self {
            device,
            refused: AtomicU64::new(0),
        }
    }

    /// The device behind the adapter.
    pub fn device(&self) -> &Arc<D> {
        &self.device
    }

    /// Size of the device's MMIO region: the length to register on the bus.
    pub fn size(&self) -> u64 {
        self.device.mmio_size()
    }

    /// Accesses the device refused so far (read as zero or ignored).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Load from `offset`; a refused access reads as zero.
    pub fn read_raz(&self, offset: u64, data: &mut [u8]) {
        if self.device.mmio_read(offset, data).is_err() {
            data.fill(0);
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Store at `offset`; a refused access is ignored.
    pub fn write_wi(&self, offset: u64, data: &[u8]) {
        if self.device.mmio_write(offset, data).is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<D: MmioDevice + ?Sized> BusDeviceSync for MmioBusAdapter<D> {
    fn read(&self, _base: u64, offset: u64, data: &mut [u8]) {
        self.read_raz(offset, data);
    }

    fn write(&self, _base: u64, offset: u64, data: &[u8]) -> Option<Arc<Barrier>> {
        self.write_wi(offset, data);
        None
    }
}

impl<D: MmioDevice + ?Sized> BusDevice for MmioBusAdapter<D> {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        self.read_raz(offset, data);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) -> Option<Arc<Barrier>> {
        self.write_wi(offset, data);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::MmioError;

    /// Records the last write; reads return the offset's low byte repeated; only 4-byte
    /// accesses below 0x100 are allowed.
    #[derive(Default)]
    struct Echo(Mutex<Option<(u64, Vec<u8>)>>);

    impl MmioDevice for Echo {
        fn mmio_size(&self) -> u64 {
            0x100
        }
        fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
            if offset >= 0x100 {
                return Err(MmioError::OutOfRange { offset });
            }
            if data.len() != 4 {
                return Err(MmioError::BadAccessSize {
                    offset,
                    size: data.len(),
                });
            }
            data.fill(offset as u8);
            Ok(())
        }
        fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
            if offset >= 0x100 || data.len() != 4 {
                return Err(MmioError::OutOfRange { offset });
            }
            *self.0.lock().unwrap() = Some((offset, data.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn test_offsets_pass_through_and_base_is_ignored() {
        let echo = Arc::new(Echo::default());
        let mut a = MmioBusAdapter::new(echo.clone());
        let mut d = [0u8; 4];
        BusDevice::read(&mut a, 0x1000_0000, 0x24, &mut d);
        assert_eq!(d, [0x24; 4]);
        assert!(BusDevice::write(&mut a, 0x1000_0000, 0x10, &[1, 2, 3, 4]).is_none());
        assert_eq!(*echo.0.lock().unwrap(), Some((0x10, vec![1, 2, 3, 4])));
        assert_eq!(a.refused(), 0);
        assert_eq!(a.size(), 0x100);
    }

    #[test]
    fn test_refused_accesses_are_raz_wi_and_counted() {
        // The device leaves the buffer alone on refusal: the adapter still zeroes it.
        let echo = Arc::new(Echo::default());
        let a = MmioBusAdapter::new(echo.clone());
        let mut d = [0xffu8; 8];
        BusDeviceSync::read(&a, 0, 0x8, &mut d);
        assert_eq!(d, [0; 8]);
        let mut d = [0xffu8; 4];
        BusDeviceSync::read(&a, 0, 0x200, &mut d);
        assert_eq!(d, [0; 4]);
        assert!(BusDeviceSync::write(&a, 0, 0x8, &[1, 2]).is_none());
        assert_eq!(*echo.0.lock().unwrap(), None);
        assert_eq!(a.refused(), 3);
    }

    #[test]
    fn test_mutex_of_bus_device_is_sync() {
        let m: Arc<dyn BusDeviceSync> =
            Arc::new(Mutex::new(MmioBusAdapter::new(Arc::new(Echo::default()))));
        let mut d = [0u8; 4];
        m.read(0, 0x40, &mut d);
        assert_eq!(d, [0x40; 4]);
    }
}
