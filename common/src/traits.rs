//! What a VMM needs from an IOMMU device model: MMIO, interrupts and DMA translation.
//!
//! The traits are consumer-side and small (vm-memory's API principles): a VMM adapts them to its
//! own bus and interrupt traits (see README, "Plugging into a VMM"). All methods take `&self` so a
//! device can be shared (`Arc`) between the vCPU thread writing registers and any number of
//! threads translating DMA.

use crate::access::{DmaRequest, Perms};
use crate::fault::FaultId;
use crate::iotlb::TranslationGuard;

/// An MMIO access was refused by the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MmioError {
    /// The access size is not one the architecture allows at this offset (data reads as zero,
    /// writes are ignored).
    #[error("unsupported {size}-byte access at offset {offset:#x}")]
    BadAccessSize {
        /// Offset of the access inside the device's region.
        offset: u64,
        /// Access size in bytes.
        size: usize,
    },
    /// The offset is not inside the device's region.
    #[error("offset {offset:#x} is outside the device's MMIO region")]
    OutOfRange {
        /// Offset of the access.
        offset: u64,
    },
}

/// A device on the VMM's MMIO bus. Offsets are relative to the device's base address; the access
/// size is the slice length. Bus byte order is applied by the device (SMMUv3: little-endian,
/// PAMU: big-endian).
pub trait MmioDevice: Send + Sync {
    /// Size of the device's MMIO region in bytes.
    fn mmio_size(&self) -> u64;

    /// Load `data.len()` bytes from `offset`.
    ///
    /// # Errors
    /// [`MmioError`] when the architecture does not allow the access; `data` is then zeroed.
    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError>;

    /// Store `data` at `offset`.
    ///
    /// # Errors
    /// [`MmioError`] when the architecture does not allow the access; nothing changes.
    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError>;
}

/// Where a device sends its interrupts. Implementations must not block: devices call these from
/// the vCPU thread that is writing a register, and from DMA threads.
pub trait InterruptSink: Send + Sync {
    /// Drive wired interrupt `line` (device-defined numbering) to `level`.
    fn set_line(&self, line: u32, level: bool);

    /// Edge-signal wired interrupt `line` (assert then deassert).
    fn pulse(&self, line: u32) {
        self.set_line(line, true);
        self.set_line(line, false);
    }

    /// Send a message-signalled interrupt: a 32-bit write of `data` to doorbell `addr`.
    fn send_msi(&self, addr: u64, data: u32);
}

/// An interrupt sink that drops everything (a device with interrupts not wired up).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoInterrupts;

impl InterruptSink for NoInterrupts {
    fn set_line(&self, _line: u32, _level: bool) {}
    fn send_msi(&self, _addr: u64, _data: u32) {}
}

/// Memory attributes of a translation, for VMMs that model caches, snooping or stashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MemAttrs {
    /// Memory type as an 8-bit MAIR attribute (0xff: normal write-back; 0x00: Device-nGnRnE).
    pub mair: u8,
    /// Shareability (0 non-shareable, 2 outer, 3 inner).
    pub shareability: u8,
    /// Device-specific attributes (PAMU: snoop/stash/operation-mapping fields, documented there).
    pub device: u32,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DmaMapping {
    /// Output (guest physical) address of the request's first byte.
    pub output: u64,
    /// Bytes that are contiguous from `output` under this translation (at least 1; may be less
    /// than the request if it crosses a page or window boundary: translate the rest separately).
    pub len: u64,
    /// Permissions the translation grants (combined over stages).
    pub perms: Perms,
    /// Memory attributes.
    pub attrs: MemAttrs,
}

/// Why a translation failed, in architecture-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// No valid mapping (translation fault, missing window, disabled entry).
    Translation,
    /// Mapping present but the access is not permitted.
    Permission,
    /// Access flag clear and not managed by hardware.
    AccessFlag,
    /// Input or output address beyond the configured size.
    AddressSize,
    /// A table fetch hit memory outside guest RAM.
    ExternalAbort,
    /// The stream/device is not allowed to translate (abort config, unknown stream, bad config).
    Configuration,
    /// The transaction is held (SMMUv3 stall model) until the guest resumes or terminates it.
    Stalled,
}

/// A failed translation: what the device recorded and what the caller may act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DmaFault {
    /// Architecture-neutral class.
    pub kind: FaultKind,
    /// Which fault or event it is, per device; [`FaultId::name`] gives the architectural name
    /// (`"F_TRANSLATION"`, `"C_BAD_STE"`, PAMU `"AV_WINDOW"`, ...) that replay files and logs
    /// use.
    pub event: FaultId,
    /// The input address that faulted.
    pub addr: u64,
    /// For [`FaultKind::Stalled`]: the stall tag the guest will RESUME.
    pub stall_tag: Option<u16>,
}

/// Keeps translations in use: while a pin taken *before* [`DmaTranslator::translate`] is alive,
/// the device does not complete an invalidation (SMMUv3: the CMD_SYNC after a TLBI/CFGI) that
/// covers what was translated under it. Hold it until the memory access using the result is
/// done, exactly as a transaction in flight holds up a hardware invalidation's completion
/// (IHI 0070 §3.21: an invalidation is complete only when transactions using the old
/// translation have completed). Drop it on the thread that took it; do not hold it across
/// blocking I/O (the guest's CMD_SYNC waits for it). A device without invalidation commands
/// (PAMU) hands out empty pins.
#[derive(Debug, Default)]
#[must_use = "a pin protects translations only while it is alive"]
pub struct DmaPin<'a> {
    _guard: Option<TranslationGuard<'a>>,
}

impl<'a> DmaPin<'a> {
    /// A pin that holds nothing up.
    pub const fn none() -> Self {
        Self { _guard: None }
    }

    /// A pin backed by an IOTLB guard (see [`crate::iotlb::Iotlb::pin`]).
    pub const fn new(guard: TranslationGuard<'a>) -> Self {
        Self {
            _guard: Some(guard),
        }
    }

    /// True if this pin actually holds up invalidation completion.
    pub const fn is_active(&self) -> bool {
        self._guard.is_some()
    }
}

/// Translates endpoints' DMA. Implemented by each device model; the VMM calls it from any thread.
pub trait DmaTranslator: Send + Sync {
    /// Translate `req`. On a fault the device has already done its architectural side effects
    /// (event record, fault registers, interrupt).
    ///
    /// # Errors
    /// [`DmaFault`] describing why the access may not proceed.
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault>;

    /// Pin the device's translations for one access: take it before [`Self::translate`] and
    /// keep it until the access that uses the mapping is done (see [`DmaPin`]). The default
    /// holds nothing up, for devices whose invalidations need no completion.
    fn pin(&self) -> DmaPin<'_> {
        DmaPin::none()
    }
}

impl<T: DmaTranslator + ?Sized> DmaTranslator for std::sync::Arc<T> {
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        (**self).translate(req)
    }

    fn pin(&self) -> DmaPin<'_> {
        (**self).pin()
    }
}

impl<T: DmaTranslator + ?Sized> DmaTranslator for &T {
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        (**self).translate(req)
    }

    fn pin(&self) -> DmaPin<'_> {
        (**self).pin()
    }
}
