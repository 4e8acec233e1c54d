//! # viommu-smmuv3: an Arm SMMUv3 device model (IHI 0070)
//!
//! A register-level SMMUv3 that an unmodified Linux `arm-smmu-v3` driver probes, programs and
//! uses. A VMM puts [`SmmuV3`](device::SmmuV3) on its MMIO bus (it implements
//! [`MmioDevice`](viommu_common::traits::MmioDevice), 128 KiB: page 0 and page 1) and routes
//! endpoint DMA through it ([`DmaTranslator`](viommu_common::traits::DmaTranslator), or the
//! vm-memory `Iommu` adapter in `viommu_common::vmm`). Interrupts go to an
//! [`InterruptSink`](viommu_common::traits::InterruptSink): MSIs programmed by the guest in
//! `*_IRQ_CFG0/1/2`, or wired lines ([`device::lines`]).
//!
//! ```
//! use std::sync::Arc;
//! use viommu_common::testing::{guest_ram, RecordingIrq};
//! use viommu_common::traits::MmioDevice;
//! use viommu_smmuv3::caps::SmmuConfig;
//! use viommu_smmuv3::device::SmmuV3;
//!
//! let ram = guest_ram(0x4000_0000, 16 << 20);
//! let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(RecordingIrq::new())).unwrap();
//! let mut idr0 = [0u8; 4];
//! smmu.mmio_read(0x0, &mut idr0).unwrap();
//! assert_eq!(u32::from_le_bytes(idr0), 0x094C_301B);
//! ```
//!
//! ## Layout
//! - [`spec`]: the architecture's formats as types only (registers, STE, CD, commands, events).
//! - [`caps`]: [`SmmuConfig`](caps::SmmuConfig) -> ID registers; `from_id_regs` mirrors a host.
//! - [`regs`]: MMIO decode `(offset, size)` -> register (pure); [`mmio`]: register effects.
//! - [`config`]: stream table / CD fetch and decode, the lock-free configuration cache.
//! - [`cmdq`]: the consumer loop, [`cmdq::command`] decode, [`cmdq::exec`] one effect per
//!   command; [`evtq`]: the event producer; [`event`]: typed events and their encoder.
//! - [`translate`]: the pipeline GBPA -> stream/config -> IOTLB -> S1/S2/nested walk -> fault.
//! - [`trace`]: the decision trace (the text of the insta snapshots and `viommu replay --trace`).
//! - `testing` (feature `test-utils`): a `GuestDriver` that programs the SMMU exactly the way
//!   Linux does, io-pgtable page tables, raw command encoders.
//! - `fdt` (feature `fdt`): the `arm,smmu-v3` device-tree node and its masters' properties;
//!   `iort` (feature `acpi`): the ACPI IORT (SMMUv3, root complexes, ITS group).
//!
//! ## Work per MMIO access and continuing it
//! Commands are consumed synchronously in the CMDQ_PROD write (and on CMDQEN 0 -> 1 and the
//! GERRORN write acknowledging a command error), at most
//! [`DEFAULT_CMDQ_BATCH`](device::DEFAULT_CMDQ_BATCH) per access
//! ([`SmmuV3::set_cmdq_batch_limit`](device::SmmuV3::set_cmdq_batch_limit)). If a batch stops
//! at the limit, [`has_pending_work`](device::SmmuV3::has_pending_work) is true and the VMM calls
//! [`process_pending`](device::SmmuV3::process_pending) (one batch) or
//! [`finish_pending`](device::SmmuV3::finish_pending) (all) from any thread; a guest read of
//! CMDQ_CONS also consumes one batch.
//!
//! ## Concurrency
//! See [`device`]: three documented locks (`ctrl` -> `evtq` -> `irq`) for register writers;
//! translation takes none of them on its success path (route cache, configuration cache and
//! IOTLB are lock-free for readers). After a CMD_SYNC completes, no translation that starts
//! afterwards returns a translation or configuration the preceding commands invalidated.
//!
//! ## Policies (CONSTRAINED UNPREDICTABLE and IMPLEMENTATION DEFINED choices)
//! - Page 1 is a full alias of page 0; the Secure bank, GATOS (no ATOS), AGBPA and IMPDEF space
//!   are RAZ/WI; 64-bit accesses spanning two 32-bit registers, 8/16-bit and unaligned accesses
//!   are refused (read zero, write ignored).
//! - CR0ACK/IRQ_CTRLACK acknowledge synchronously; reserved CR0 bits (5, 9) and unimplemented
//!   ones (VMW without IDR0.VMW, DPT_WALK_EN) are dropped; PRIQ_IRQEN is dropped without PRI.
//! - GBPA resets to 0x1000 (bypass, SHCFG incoming); a write without UPDATE is ignored; an update
//!   completes within the write.
//! - Registers written while their enable forbids it (IHI 0070 §6.3; CR1/CR2 while SMMUEN: policy)
//!   are ignored, and the trace says so. CR2.E2H only with IDR0.HYP.
//! - GERRORN writes change only active error bits. Acknowledging CMDQ_ERR clears CMDQ_CONS.ERR
//!   and resumes consumption by re-fetching the entry at CONS.
//! - Every cache (configuration, routes, IOTLB) is dropped on an SMMUEN transition and reset.
//! - CMD_SYNC CS = SIG_IRQ: an MSIAddr inside guest RAM is a 32-bit guest-memory store (MSIPOLL);
//!   any other MSIAddr is delivered to the interrupt sink as an MSI; without MSIAddr the wired
//!   CMD_SYNC line pulses. MSI_*_ABT_ERR are therefore never raised. CS = SIG_SEV completes by
//!   CONS passing (no wake-up event is modelled); CS = 3 is CERROR_ILL.
//! - Queue `LOG2SIZE` above IDR1 is clamped; base address bits below the queue's natural
//!   alignment are ignored. A PROD value more than a queue size ahead of CONS is consumed until
//!   CONS equals PROD (bounded by the batch limit).
//! - CFGI_STE also drops the StreamID's CDs; CFGI_CD with Leaf = 0 drops every CD of the stream;
//!   L1 stream/CD descriptors are never cached; CFGI_ALL also empties the IOTLB. Without S2P the
//!   VMID of TLBI_NH_* is ignored (stage-1 entries are tagged VMID 0).
//! - Event records: C_BAD_STREAMID only with CR2.RECINVSID; stage-1 translation-class faults per
//!   CD.R, stage-2 per STE.S2R, F_WALK_EABT and other C_*/fetch events always; discarded while
//!   EVENTQEN or SMMUEN is 0; a full queue drops and toggles OVFLG once until acknowledged.
//! - Terminations without an architectural event report fault names `GBPA_ABORT` (SMMUEN = 0,
//!   GBPA.ABORT) and `STE_ABORT` (abort STE) to the DMA caller.
//!
//! ## ATS, HTTU, save and restore
//! - [`ats`]: ATS Translation Requests ([`SmmuV3::ats_translate`](device::SmmuV3::ats_translate),
//!   per STE.EATS, HTTU updates on the request), Translated transactions
//!   ([`SmmuV3::translated_access`](device::SmmuV3::translated_access), checked with
//!   CR0.ATSCHK) and endpoint ATCs ([`SmmuV3::register_atc`](device::SmmuV3::register_atc))
//!   that CMD_ATC_INV reaches; a failed invalidation fails the next CMD_SYNC with
//!   CERROR_ATC_INV_SYNC. IDR0.ATS with `SmmuConfig::ats`.
//! - HTTU (`SmmuConfig::httu`, IDR0.HTTU): CD.HA/HD and STE.S2HA/S2HD are accepted only when
//!   advertised (else C_BAD_CD / C_BAD_STE); the walker sets AF and the dirty state with
//!   compare-and-swap on guest memory; an IOTLB entry for a writable-clean page lacks W, so a
//!   write walks again and marks the page dirty.
//! - [`snapshot`]: [`SmmuV3::save`](device::SmmuV3::save) /
//!   [`SmmuV3::restore`](device::SmmuV3::restore), a versioned serde snapshot of the whole
//!   architectural state, including the stall table (held transactions keep their STAG and
//!   original request, so a RESUME after the restore re-translates or aborts them on the new
//!   device) and the outstanding Page Request Groups.
//! - Not modelled: CR2.REC_CFG_ATS and IDR3.PASIDTT (ATS configuration errors are
//!   never recorded; Translated transactions carry no PASID); STE.PPAR (see below); the
//!   SIG_SEV wake-up event. Not state: registered endpoint ATCs (re-registered by the VMM
//!   after a restore) and interrupt-controller state.
//!
//! ## Host-backed streams (accelerated vSMMU)
//! [`host`]: a VMM that assigns physical devices to the guest installs a
//! [`HostBackend`](host::HostBackend) ([`SmmuV3::set_host_backend`](device::SmmuV3::set_host_backend))
//! and marks their StreamIDs host-backed at any time
//! ([`SmmuV3::attach_host_stream`](device::SmmuV3::attach_host_stream) /
//! [`detach_host_stream`](device::SmmuV3::detach_host_stream)); the other streams stay
//! emulated behind the same SMMU. A host-backed stream is never walked or cached here (a
//! software translation of it fails with the fault name [`HOST_BACKED`](host::HOST_BACKED)).
//! Every command is applied locally first; TLBI_NH_* and TLBI_NSNH_ALL, and CFGI_CD,
//! CFGI_CD_ALL and ATC_INV of host-backed streams, reach the host in one call per run of such
//! commands, before the next other command and always before a CMD_SYNC completes; a refused
//! command stops the queue with CERROR_ILL at that command. CFGI_STE / CFGI_STE_RANGE /
//! CFGI_ALL, SMMUEN and GBPA changes, reset and restore re-configure the host-backed streams
//! (abort, bypass or the guest STE words 0-1); an STE the host rejects is C_BAD_STE plus abort.
//! Host event records and host event loss enter the guest event queue
//! ([`SmmuV3::inject_host_event`](device::SmmuV3::inject_host_event),
//! [`SmmuV3::host_events_lost`](device::SmmuV3::host_events_lost)). Without a backend nothing
//! of this runs. The `viommu-sva` crate provides the backend over iommufd nesting.
//!
//! ## Stalls and PRI (I/O page faults)
//! - [`stall`]: with IDR0.STALL_MODEL = 0/2 (`SmmuConfig::stall_model`; default stays 1,
//!   terminate only) and CD.S / STE.S2S, translation-related faults are held: the record has
//!   Stall = 1 and an STAG, the DMA caller gets `FaultKind::Stalled` with the STAG and waits with
//!   [`SmmuV3::wait_stall`](device::SmmuV3::wait_stall) or polls
//!   [`SmmuV3::stall_status`](device::SmmuV3::stall_status) from its own thread. CMD_RESUME
//!   (retry re-translates; abort; terminate = RAZ/WI unless TERM_MODEL), CMD_STALL_TERM, SMMUEN
//!   clear and reset complete them. Policies: table of IDR5.STALL_MAX entries
//!   ([`stall::DEFAULT_STALL_CAPACITY`] for 0; beyond it the fault terminates with Stall = 0); a
//!   stall record that the event queue cannot take is not dropped: the transaction waits and is
//!   retried when the queue is next writable (IHI 0070 §3.12.2); CFGI_STE leaves stalls alone
//!   (a retry sees the new configuration); stage-2 faults on CD fetches terminate.
//! - [`priq`]: with IDR0.PRI (needs ATS), endpoints issue Page Requests with
//!   [`SmmuV3::page_request`](device::SmmuV3::page_request); records go to the PRI queue with
//!   the PRIQ interrupt; CMD_PRI_RESP reaches the endpoint
//!   ([`SmmuV3::pri_response`](device::SmmuV3::pri_response) /
//!   [`SmmuV3::wait_pri_response`](device::SmmuV3::wait_pri_response)); overflow, PRIQEN = 0
//!   and PRIQ_ABT_ERR give the architecture's automatic responses. Policy: STE.PPAR is not
//!   decoded (an overflow auto-response keeps the PASID as with IDR3.PPS = 1).
#![forbid(unsafe_code)]

pub mod ats;
pub mod caps;
pub mod cmdq;
pub mod config;
pub mod device;
pub mod event;
pub mod evtq;
#[cfg(feature = "fdt")]
pub mod fdt;
mod gerror;
pub mod host;
#[cfg(feature = "acpi")]
pub mod iort;
pub mod mmio;
pub mod priq;
pub mod queue;
pub mod regs;
mod resolve;
mod route;
pub mod snapshot;
pub mod spec;
pub mod stall;
mod sync;
pub mod trace;
pub mod translate;

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
