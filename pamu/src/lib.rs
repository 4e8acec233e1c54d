//! # viommu-pamu: the Freescale/NXP QorIQ PAMU
//!
//! A register-level model of the PAMU (Peripheral Access Management Unit), the IOMMU of
//! P4080/T4240-class PowerPC SoCs, faithful enough for Linux's `fsl_pamu` driver before and
//! after its 5.13 simplification. Sources and test vectors: pamu/README.md (public Linux, SDK
//! and Freescale-hypervisor sources; no public reference manual exists).
//!
//! ## Capabilities
//!
//! | Area | Model |
//! |---|---|
//! | Instances | 1..=16 register blocks at stride 0x1000 (P4080 5, T4240 6), one shared set of tables |
//! | Registers | 32-bit big-endian; PPBA/PPLA, SPBA/SPLA, OBA/OLA, PC, PICS, AVS1/AVS2/AVA, POES1/POES2/POEA, ECC block, PR1/PR2, PC1-PC4, PFA1/2, PD1-4, UDAD |
//! | Capabilities | PC2.MLIODN, PC3.MWCE (16 or 256 subwindows) from [`PamuConfig`] profiles |
//! | Translation | PPAACE by LIODN (limit + V), ATM 0 (identity) and 1 (window), single and multi-window (subwindow 0 = primary, i ≥ 1 = SPAACT[FSPI + i − 1]), WSE/SWSE mapped sizes, AP |
//! | Attributes | CID, SNPID, CR, DD, DID, PID, OTM 1 immediate and OTM 2 OMT lookups, reported per translation |
//! | Faults | first-fault capture in AVS1 (LIODN + cause), AVS2, AVA; operation errors for malformed tables in POES1/POES2/POEA; W1C; two interrupt outputs |
//! | Bypass | PAMUBYPENR (GUTS + 0x604) as an API and a 4-byte MMIO region ([`BypassRegion`]) |
//! | MSI | 3 or 4 banks, alias pages, MSIIR/MSIIR1 decode (MPIC 4.2/4.3), delivery through the sink; options A/B/C ([`msi`], [`geometry`]) |
//! | Geometry API | [`geometry::Domain`]: aperture, window count, window enable/disable, enable, VFIO map/unmap, MSI windows, [`geometry::plan`] |
//! | Caching | none: entries are re-read on every translation (see below) |
//! | Snapshot | [`Pamu::save`] / [`Pamu::restore`] of all registers as serde data ([`PamuState`]) |
//!
//! ## Using it from a VMM
//!
//! - Build: [`Pamu::new`]`(config, guest_memory, interrupt_sink)`. `guest_memory` is any
//!   [`viommu_common::mem::GuestRam`]: `&GuestMemoryMmap`, `Arc<GuestMemoryMmap>`, or the VMM's
//!   `GuestMemoryAtomic<GuestMemoryMmap>`, whose memory map may change at run time (hotplug);
//!   each translation reads through one snapshot of the current map. Config fields are plain data
//!   ([`PamuConfig`], serde-deserialisable: `instances`, `max_liodn`, `max_subwindows_log2`,
//!   `msi_banks`, `mpic_version`, `phys_addr_bits`, `ccsr_base`, `av_line`, `err_line`,
//!   `liodn_parents`, `pr1`, `pr2`).
//! - MMIO: [`Pamu`] implements [`viommu_common::traits::MmioDevice`] (region = instances ×
//!   0x1000 at CCSR + 0x20000). `mmio_write`/`mmio_read` take the bytes of a big-endian access
//!   (4 bytes, or 8 as two registers); [`Pamu::read_reg`]/[`Pamu::write_reg`] take numeric values.
//! - DMA: [`Pamu`] implements [`viommu_common::traits::DmaTranslator`] with the LIODN as the
//!   `StreamId`; a fault's `event` is its name: `AV_GATE`, `AV_LIODN`, `AV_DISABLED`,
//!   `AV_WINDOW`, `AV_PERMISSION`, `AV_OPERATION`, `OPERATION_ERROR` ([`PamuFault::event`]).
//!   [`Pamu::translate_op`] gives the full [`PamuTranslation`] (with an explicit inbound
//!   operation for OTM); [`Pamu::probe`] answers without recording anything.
//! - MSI: [`Pamu::msi_write`] translates a device's MSI write and, if it lands on an MSIIR,
//!   delivers it ([`msi`] documents the delivery encoding).
//! - Trace: [`Pamu::with_tracer`] receives every [`PamuEvent`]; their `Display` is the
//!   readable log (`tests/snapshots/pamu_bringup__linux_bringup.snap`).
//! - Interrupts: line `av_line` (default 0) = OR over instances of PICS.AVICS && AVIE;
//!   line `err_line` (default 1) = OR of (POEICS && POEIE) || (EEDET & EEINTEN).
//! - Device tree (feature `fdt`, module `fdt`): the `fsl,pamu` node with one child per
//!   instance, the GUTS node Linux's probe needs, and `fsl,liodn` / `fsl,iommu-parent` on masters.
//!
//! ## Caching and concurrency
//!
//! Linux never invalidates: it clears V, updates the entry and sets V with barriers; the
//! hypervisor flips AP in place. Policy: the model keeps **no** entry cache and re-reads the 32
//! window-mode bytes of the PPAACE (and of the selected SPAACE) from guest memory on every
//! translation, so every update is observed at once. The cache-enable bits are stored only.
//! Translation takes no lock: control and table registers are atomics; the status registers
//! sit behind one mutex taken only by register accesses and fault capture.
//!
//! ## Policies for behaviour no source documents
//!
//! Each is marked "Policy:" where it is implemented:
//! 1. AVS1 sub-codes: OTV/APV/WAV/LAV hold 1 for every cause; V = 0 sets PDV; AVS2 bit 0 = write.
//! 2. A TWBA misaligned to the mapped size is masked; a misaligned WBA is masked to the window.
//! 3. PE = 0 with PGC = 0 passes traffic unchanged (like bypass); PGC = 1 always faults GCV.
//! 4. SPAACE LIODN/PT are checked (after V); mismatch = operation error.
//! 5. Reset: all registers 0; PR1/PR2/PC2/PC3 from the profile; PAMUBYPENR 0.
//! 6. ATM 2/3 (page translation) and OTM 3 = operation error.
//! 7. A transaction crossing a window/subwindow/mapped-size boundary faults WAV
//!    ([`Pamu::translate_op`]); the `DmaTranslator` path checks a request's first 4 KiB
//!    transaction and reports the contiguous length, so callers split like a bus would.
//! 8. A second violation while AVS1.AV = 1 (or POES1.POED = 1) is dropped; the first is kept.
//! 9. A faulting transaction is dropped; reads get a bus error (a `DmaFault`) in the VMM.
//! 10. OTM 1 with an operation that is neither IOEA nor IOEB passes unchanged.
//! 11. Limits (PPLA/SPLA/OLA) are exclusive; an entry must lie entirely below its limit; a
//!     LIODN above PC2.MLIODN is LAV.
//! 12. WSE < 11, SWSE < 11, WCE above PC3.MWCE or subwindows below 4 KiB, FSPI + n − 1 beyond
//!     SPLA, OMI beyond OLA, PT = 1 in a primary, entries outside RAM = operation errors; an
//!     SWSE larger than the subwindow is clamped to it.
//! 13. No entry cache (above).
//! 14. The instance capturing a LIODN's faults is its configured parent (default instance 0).
//! 15. No errata emulation: plain write-1-to-clear.
//! 16. MSI options A, B and C are all available; none is implicit.
//! 17. Profiles: P4080 (5 PAMUs, 3 banks, MPIC 4.2, MWCE 7), P4080 rev 1 (MWCE 3),
//!     T4240 (6 PAMUs, 4 banks, MPIC 4.3, 40-bit).
//!
//! Also: unnamed offsets read 0 / ignore writes; only 4- and 8-byte naturally aligned MMIO
//! accesses are accepted; capture and capability registers are read-only; the ECC block is
//! storage plus W1C and never reports an error; UDAD reads 0; PAMUBYPENR bits exist only for
//! existing instances and a bypassed instance does no checks; POES2 holds our cause code
//! ([`OpError::poes2`]); MSI delivery is `send_msi(MSIIR alias address, SRS·32 + IBS)`;
//! `MemAttrs::device` encoding is documented on [`PamuAttrs`].
//!
//! ## Layout
//!
//! - [`spec`]: the hardware formats as types only (registers with their sanitisers, PAACE,
//!   SPAACE, OME).
//! - [`caps`]: [`PamuConfig`] -> the capability registers.
//! - [`device`]: the device core, [`Pamu`], and DMA translation by LIODN; [`paact`]: table
//!   fetch and decode; [`translate`]: the translation pipeline; [`fault`]: faults and the status
//!   registers that capture them.
//! - Private: `regfile` (register storage: lock-free translation registers, the rest behind one
//!   mutex), `mmio` (register effects and the MMIO region), `capture` (fault capture and the
//!   interrupt lines).
//! - [`bypass`]: PAMUBYPENR; [`msi`]: MSI banks and delivery; [`snapshot`]: save/restore;
//!   [`trace`]: typed trace events; [`geometry`]: the window geometry API.
#![forbid(unsafe_code)]

pub mod bypass;
pub mod caps;
mod capture;
pub mod device;
pub mod fault;
#[cfg(feature = "fdt")]
pub mod fdt;
pub mod geometry;
mod mmio;
pub mod msi;
pub mod paact;
mod regfile;
pub mod snapshot;
pub mod spec;
pub mod trace;
pub mod translate;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use bypass::BypassRegion;
pub use caps::{Caps, ConfigError, MpicVersion, PamuConfig};
pub use device::Pamu;
pub use fault::{OpError, PamuFault, Violation, WindowCause};
pub use snapshot::{PamuState, RestoreError};
pub use trace::PamuEvent;
pub use translate::{PamuAttrs, PamuTranslation, Path};
