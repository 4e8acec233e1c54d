//! PCIe ATS: translation requests, translated transactions and endpoint ATC invalidation
//! (IHI 0070 §3.9.1, §4.5.1 CMD_ATC_INV).
//!
//! A VMM whose emulated PCIe function implements ATS uses three entry points:
//!
//! - [`SmmuV3::ats_translate`]: an ATS Translation Request. The answer is an
//!   [`AtsCompletion`] (the translated range and the permissions granted, to be cached in the
//!   endpoint's ATC) or an [`AtsError`] (Unsupported Request / Completer Abort status).
//! - [`SmmuV3::translated_access`]: a transaction the endpoint marks *Translated* (it uses an
//!   address from its ATC). It passes through, or with CR0.ATSCHK is checked against the STE.
//! - [`SmmuV3::register_atc`]: the endpoint's ATC, so that CMD_ATC_INV reaches it. The
//!   invalidation runs synchronously inside the command; a failure makes the next CMD_SYNC
//!   fail with CERROR_ATC_INV_SYNC (GERROR.CMDQ_ERR).
//!
//! Responses to translation requests (IHI 0070 §3.9.1.2):
//!
//! | Configuration | Response |
//! |---|---|
//! | IDR0.ATS = 0 (policy: no ATS interface) | UR, no event |
//! | SMMUEN = 0 | UR, F_BAD_ATS_TREQ (discarded: the event queue is off) |
//! | STE.Config = abort | UR, no event |
//! | STE.Config = bypass, effective EATS = 0 (incl. EATS = 0b10 with ATSCHK = 0) | UR, F_BAD_ATS_TREQ |
//! | configuration error (C_BAD_STE, F_CD_FETCH, F_STREAM_DISABLED, F_WALK_EABT, ...) | CA; not recorded (CR2.REC_CFG_ATS is not implemented, so it reads 0) |
//! | translation, address-size or access-flag fault | success with R = W = 0 for one STU page, no event |
//! | permission fault | success with the permissions that are available (possibly none) |
//! | S1DSS skips stage 1 without stage 2 | success, identity, R = W = 1 |
//!
//! HTTU: a request with NW = 0 is walked as a write (setting AF and, for a writable-clean
//! page, the dirty state), one with NW = 1 as a read (AF only), as §3.9.1 requires, since the
//! later translated traffic bypasses the SMMU.
//!
//! Policies:
//! - A request without a PASID is data and unprivileged (§3.9); with one, Exe/Priv come from
//!   the request. STE.PRIVCFG/INSTCFG override both.
//! - The STU (smallest translation unit) is the smallest granule in IDR5.
//! - IMPLEMENTATION DEFINED (§3.9.1.1): a translated transaction whose address has bits above
//!   the OAS set is terminated without an event (fault [`Smmuv3FaultId::AtsAddrSize`]).
//! - Translated transactions carry no PASID semantics (IDR3.PASIDTT = 0): PnU = InD = 0 before
//!   the STE overrides (used only by split-stage ATS).
//! - CMD_ATC_INV to a StreamID without a registered ATC completes at once. An endpoint's
//!   invalidation runs under the command-queue lock; it must not access the SMMU's registers
//!   and must bound its own wait (the timeout is the endpoint's: [`AtcError::Timeout`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use viommu_common::access::{AccessKind, DmaRequest, Perms};
use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::{StreamId, SubstreamId};
use viommu_common::iotlb::TlbEntry;
use viommu_common::traits::{DmaFault, DmaMapping, FaultKind, MemAttrs};
use viommu_common::walk::{walk_stage2, Stage, Stage2Config, WalkFault, WalkFaultKind, WalkResult};

use crate::config::ste::StreamTable;
use crate::config::{AtsMode, ConfigError, StreamAttrs, StreamConfig};
use crate::device::{lock, GuestRam, SmmuV3, TranslationRegs};
use crate::event::{Event, EventAccess, EventSource};
use crate::trace::{AtcOutcome, Effect, Effects};
use crate::translate::{walk_route, Route, S1Walk};

/// An ATS Translation Request from a PCIe function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtsRequest {
    /// StreamID of the function.
    pub stream: StreamId,
    /// PASID, if the request carried a PASID prefix.
    pub substream: Option<SubstreamId>,
    /// Untranslated address.
    pub addr: u64,
    /// NW (no write): the endpoint asks for read-only access.
    pub no_write: bool,
    /// Exe requested (PASID prefix only).
    pub exec: bool,
    /// Priv requested (PASID prefix only).
    pub privileged: bool,
}

impl AtsRequest {
    /// A read/write request for `addr` without a PASID.
    pub const fn new(stream: u32, addr: u64) -> Self {
        Self {
            stream: StreamId(stream),
            substream: None,
            addr,
            no_write: false,
            exec: false,
            privileged: false,
        }
    }

    /// The same request, read-only (NW = 1).
    pub const fn read_only(mut self) -> Self {
        self.no_write = true;
        self
    }

    /// The same request with a PASID.
    pub const fn with_substream(mut self, ssid: u32) -> Self {
        self.substream = Some(SubstreamId(ssid));
        self
    }

    /// Privilege and instruction attributes after §3.9 (no PASID: data, unprivileged) and
    /// the STE overrides.
    fn effective(&self, attrs: &StreamAttrs) -> (bool, bool) {
        let has_pasid = self.substream.is_some();
        (
            attrs.privileged(has_pasid && self.privileged),
            attrs.instruction(has_pasid && self.exec, true),
        )
    }

    fn as_dma(&self, privileged: bool) -> DmaRequest {
        DmaRequest {
            stream: self.stream,
            substream: self.substream,
            addr: self.addr,
            len: 1,
            access: AccessKind::Read,
            privileged,
        }
    }
}

/// A successful Translation Completion: what the endpoint's ATC caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtsCompletion {
    /// Untranslated base of the range (aligned to its size).
    pub input: u64,
    /// Translated base: a PA (full ATS) or an IPA (split-stage ATS). 0 when nothing is granted.
    pub output: u64,
    /// log2 of the range size.
    pub size_log2: u8,
    /// Permissions granted (R, W, Exe). [`Perms::NONE`] is the "R = W = 0" answer: the endpoint
    /// may not access the page (and may issue a PRI page request).
    pub perms: Perms,
    /// Priv: the permissions are for privileged accesses.
    pub privileged: bool,
    /// Global: valid for every PASID (always false for a request with a PASID).
    pub global: bool,
}

impl AtsCompletion {
    /// The translated address of `addr` inside this range, if it is inside and anything is
    /// granted.
    pub fn translate(&self, addr: u64) -> Option<u64> {
        let mask = low_mask(self.size_log2);
        (self.perms != Perms::NONE && addr & !mask == self.input)
            .then_some(self.output | addr & mask)
    }
}

/// A Translation Request that did not complete successfully (the completion status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AtsError {
    /// Unsupported Request: ATS is disabled for the stream (or the SMMU).
    #[error("unsupported request: {0}")]
    UnsupportedRequest(&'static str),
    /// Completer Abort: a configuration error (the event name an ordinary transaction would
    /// have raised).
    #[error("completer abort: {0}")]
    CompleterAbort(&'static str),
}

/// Why an endpoint could not complete an ATC invalidation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AtcError {
    /// The endpoint did not answer in time.
    #[error("ATC invalidation timed out")]
    Timeout,
    /// The endpoint reported a failure.
    #[error("ATC invalidation failed: {0}")]
    Failed(String),
}

/// One ATC invalidation, as CMD_ATC_INV requests it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtcInvalidation {
    /// PASID (SSV = 1), or `None`: every PASID and the non-PASID entries.
    pub ssid: Option<u32>,
    /// Global: also the global entries (the ATS Invalidate Request's Global bit).
    pub global: bool,
    /// First untranslated address covered.
    pub start: u64,
    /// Last untranslated address covered (inclusive; `u64::MAX` for Size = 52).
    pub last: u64,
}

impl AtcInvalidation {
    /// True if `[base, base + 2^size_log2)` overlaps the invalidated range.
    pub fn overlaps(&self, base: u64, size_log2: u8) -> bool {
        let end = base | low_mask(size_log2);
        base <= self.last && end >= self.start
    }
}

impl fmt::Display for AtcInvalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ssid {
            Some(s) => write!(f, "SSID={s:#x}")?,
            None => write!(f, "all SSIDs")?,
        }
        if self.global {
            write!(f, " +global")?;
        }
        write!(f, ", [{:#x}, {:#x}]", self.start, self.last)
    }
}

/// An endpoint's Address Translation Cache, as the SMMU reaches it (through the Root Complex).
pub trait AtcEndpoint: Send + Sync {
    /// Invalidate every cached translation overlapping `inv` and return once no later access
    /// by the endpoint can use one (the ATS Invalidate Completion). Called from the thread
    /// consuming commands, with the command queue locked: do not access the SMMU's registers.
    ///
    /// # Errors
    /// [`AtcError`] if the endpoint cannot complete it; the next CMD_SYNC then fails with
    /// CERROR_ATC_INV_SYNC.
    fn invalidate(&self, inv: &AtcInvalidation) -> Result<(), AtcError>;
}

/// The registered ATCs and the "an ATC invalidation failed since the last CMD_SYNC" flag.
#[derive(Default)]
pub(crate) struct AtcRegistry {
    endpoints: Mutex<HashMap<u32, Arc<dyn AtcEndpoint>>>,
    /// An ATC_INV failed; the next CMD_SYNC fails with CERROR_ATC_INV_SYNC (device state).
    pub(crate) sync_error: AtomicBool,
}

impl fmt::Debug for AtcRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sids: Vec<u32> = lock(&self.endpoints).keys().copied().collect();
        sids.sort_unstable();
        f.debug_struct("AtcRegistry")
            .field("streams", &sids)
            .field("sync_error", &self.sync_error.load(Ordering::Relaxed))
            .finish()
    }
}

const fn low_mask(size_log2: u8) -> u64 {
    if size_log2 >= 64 {
        u64::MAX
    } else {
        (1u64 << size_log2) - 1
    }
}

/// The completion for a translation granting `avail` (masked by the request).
#[expect(clippy::too_many_arguments, reason = "the fields of a completion")]
fn completion(
    req: &AtsRequest,
    input: u64,
    output: u64,
    size_log2: u8,
    avail: Perms,
    exec: bool,
    privileged: bool,
    global: bool,
) -> AtsCompletion {
    let mut perms = avail.intersect(Perms::R);
    if !req.no_write {
        perms = perms.union(avail.intersect(Perms::W));
    }
    if exec {
        perms = perms.union(avail.intersect(Perms::X));
    }
    // Execute-only (or write-only) cannot be represented in PCIe: no access (§13.7).
    if !perms.read() {
        perms = Perms::NONE;
    }
    AtsCompletion {
        input,
        output: if perms == Perms::NONE { 0 } else { output },
        size_log2,
        perms,
        privileged,
        global: global && req.substream.is_none(),
    }
}

/// What a walk for an ATS request concluded.
enum Granted {
    Walk(WalkResult),
    Nothing,
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Register `endpoint` as the ATC of `stream`, replacing (and returning) any previous one.
    pub fn register_atc(
        &self,
        stream: StreamId,
        endpoint: Arc<dyn AtcEndpoint>,
    ) -> Option<Arc<dyn AtcEndpoint>> {
        lock(&self.atc.endpoints).insert(stream.0, endpoint)
    }

    /// Remove the ATC of `stream` (hot-unplug), returning it.
    pub fn unregister_atc(&self, stream: StreamId) -> Option<Arc<dyn AtcEndpoint>> {
        lock(&self.atc.endpoints).remove(&stream.0)
    }

    /// Smallest translation unit: log2 of the smallest granule in IDR5.
    fn stu_log2(&self) -> u8 {
        let i5 = self.caps.idr5;
        if i5.gran4k() {
            12
        } else if i5.gran16k() {
            14
        } else {
            16
        }
    }

    /// The STE of `sid`: cached, or fetched and decoded.
    fn ats_stream_config(
        &self,
        view: &TranslationRegs,
        sid: u32,
    ) -> Result<StreamConfig, ConfigError> {
        if let Some(sc) = self.config.ste(sid) {
            return Ok(sc);
        }
        let ticket = self.config.ticket();
        let table = StreamTable::new(view.strtab_base, view.strtab_cfg, &self.caps);
        let sc = {
            let ram = self.mem.ram();
            table.lookup(&*ram, sid, &self.caps)?
        };
        self.config.insert_ste(ticket, sid, sc);
        Ok(sc)
    }

    /// Answer an ATS Translation Request (see the module documentation for every response).
    ///
    /// # Errors
    /// [`AtsError::UnsupportedRequest`] when ATS is disabled for the stream,
    /// [`AtsError::CompleterAbort`] on a configuration error.
    pub fn ats_translate(&self, req: &AtsRequest) -> Result<AtsCompletion, AtsError> {
        if !self.caps.ats() {
            return Err(AtsError::UnsupportedRequest("IDR0.ATS = 0"));
        }
        // Taken before any configuration is read, so a route resolved across a CFGI is not
        // cached (see route.rs).
        let generation = self.routes.generation();
        // After the generation: a stream attached since then has also bumped it.
        if self.host.is_backed(req.stream.0) {
            return Err(AtsError::CompleterAbort(crate::host::HOST_BACKED.name()));
        }
        let view = self.view.load();
        let refuse = |reason: &'static str| {
            let dma = req.as_dma(false);
            self.record(&Event::BadAtsTreq {
                src: EventSource::of(&dma),
                access: EventAccess::of(&dma),
            });
            Err(AtsError::UnsupportedRequest(reason))
        };
        if !view.cr0.smmuen() {
            return refuse("SMMUEN = 0");
        }
        // Configuration errors: Completer Abort, not recorded (CR2.REC_CFG_ATS reads 0).
        let ca = |e: &ConfigError| {
            let dma = req.as_dma(false);
            AtsError::CompleterAbort(
                e.to_event(EventSource::of(&dma), EventAccess::of(&dma), None)
                    .name(),
            )
        };
        let tc = match self.ats_stream_config(&view, req.stream.0) {
            Ok(StreamConfig::Translate(tc)) => tc,
            Ok(StreamConfig::Abort) => return Err(AtsError::UnsupportedRequest("STE abort")),
            Ok(StreamConfig::Bypass(_)) => return refuse("STE bypass"),
            Err(e) => return Err(ca(&e)),
        };
        let split = match tc.ats {
            AtsMode::Abort => return refuse("STE.EATS = 0b00"),
            AtsMode::Split if !view.cr0.atschk() => return refuse("EATS = 0b10 with ATSCHK = 0"),
            AtsMode::Split => true,
            AtsMode::Full => false,
        };
        let (privileged, exec) = req.effective(&tc.attrs);
        let (sid, ssid) = (req.stream.0, req.substream.map(|s| s.0));
        let route = match self
            .routes
            .get_full(sid, ssid, req.addr)
            .and_then(|w| w.route())
        {
            Some(r) => r,
            None => {
                let r = self
                    .resolve(&view, &req.as_dma(privileged))
                    .map_err(|(ev, _)| AtsError::CompleterAbort(ev.name()))?;
                self.routes.insert(generation, sid, ssid, &r);
                r.for_addr(req.addr)
            }
        };
        let (key, s1, s2) = match route {
            Route::Abort => return Err(AtsError::UnsupportedRequest("STE abort")),
            // S1DSS skips stage 1 and there is no stage 2: identity, R = W = 1 (§3.9.1.2).
            Route::Bypass => {
                let stu = self.stu_log2();
                let input = req.addr & !low_mask(stu);
                return Ok(AtsCompletion {
                    input,
                    output: input,
                    size_log2: stu,
                    perms: if req.no_write { Perms::R } else { Perms::RW },
                    privileged,
                    global: req.substream.is_none(),
                });
            }
            Route::Translate { key, s1, s2, .. } => (key, s1, s2),
        };
        let want = if req.no_write { Perms::R } else { Perms::RW };
        // Full ATS: an IOTLB entry that grants what is asked answers without a walk (a
        // writable-clean entry lacks W, so a write request walks and sets the dirty state).
        let tag = key.tag();
        if !split {
            if let Some(e) = self.iotlb.lookup(tag, req.addr) {
                let p = e.perms_for(privileged);
                if p.contains(want) {
                    return Ok(completion(
                        req,
                        e.input,
                        e.output,
                        e.size_log2,
                        p,
                        exec,
                        privileged,
                        e.global,
                    ));
                }
            }
        }
        let token = self.iotlb.begin_fill(tag);
        match self.ats_walk(req, s1.as_ref(), s2.as_ref(), privileged, exec) {
            Err(f) => Err(AtsError::CompleterAbort(
                Event::from_walk_fault(
                    &f,
                    EventSource::of(&req.as_dma(privileged)),
                    EventAccess::of(&req.as_dma(privileged)),
                    None,
                )
                .name(),
            )),
            Ok(Granted::Nothing) => {
                let stu = self.stu_log2();
                Ok(AtsCompletion {
                    input: req.addr & !low_mask(stu),
                    output: 0,
                    size_log2: stu,
                    perms: Perms::NONE,
                    privileged,
                    global: false,
                })
            }
            Ok(Granted::Walk(w)) => {
                let size_log2 = w.size_log2.min(63) as u8;
                let mask = low_mask(size_log2);
                let output = if split {
                    // Split-stage: the stage-1 output (an IPA); permissions of both stages.
                    w.ipa.unwrap_or(req.addr)
                } else {
                    self.iotlb.insert(
                        token,
                        TlbEntry {
                            input: req.addr & !mask,
                            output: w.base(),
                            size_log2,
                            level: w.level as i8,
                            perms: w.by_privilege.unprivileged,
                            priv_perms: w.by_privilege.privileged,
                            attrs: w.attrs,
                            global: w.global,
                            ipa: w.ipa.map(|i| i & !mask),
                            flags: u32::from(w.writable_clean),
                        },
                    );
                    w.output
                };
                Ok(completion(
                    req,
                    req.addr & !mask,
                    output & !mask,
                    size_log2,
                    w.perms,
                    exec,
                    privileged,
                    w.global,
                ))
            }
        }
    }

    /// Walk for an ATS request: as a write unless NW (so HTTU sets AF and dirty), then as a
    /// read, then as an instruction fetch if Exe was asked. Translation, address-size and
    /// access-flag faults grant nothing; external aborts and invalid configurations are
    /// returned (Completer Abort).
    fn ats_walk(
        &self,
        req: &AtsRequest,
        s1: Option<&S1Walk>,
        s2: Option<&Stage2Config>,
        privileged: bool,
        exec: bool,
    ) -> Result<Granted, WalkFault> {
        let ram = self.mem.ram();
        let mem = &*ram;
        let addr = req.addr;
        let walk = |access: AccessKind| {
            walk_route(mem, s1, s2, addr, access, privileged)
                // Not a translating route (resolve never returns one): nothing to grant.
                .unwrap_or_else(|| Err(WalkFault::new(WalkFaultKind::Translation, Stage::S1, 0)))
        };
        let tries = [
            (!req.no_write).then_some(AccessKind::Write),
            Some(AccessKind::Read),
            exec.then_some(AccessKind::Exec),
        ];
        for access in tries.into_iter().flatten() {
            match walk(access) {
                Ok(w) => return Ok(Granted::Walk(w)),
                Err(f) => match f.kind {
                    WalkFaultKind::Permission => continue,
                    WalkFaultKind::Translation
                    | WalkFaultKind::AddressSize
                    | WalkFaultKind::AccessFlag => return Ok(Granted::Nothing),
                    _ => return Err(f),
                },
            }
        }
        Ok(Granted::Nothing)
    }

    /// A transaction the endpoint marked Translated (§3.9.1.3): with SMMUEN = 0 it is
    /// forbidden; with CR0.ATSCHK = 0 it passes without a stream-table lookup; with ATSCHK = 1
    /// the STE decides (full ATS passes, split-stage ATS is translated by stage 2, anything
    /// else is F_TRANSL_FORBIDDEN).
    ///
    /// # Errors
    /// The [`DmaFault`] that terminates the transaction.
    pub fn translated_access(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        let view = self.view.load();
        // Translated transactions are data, unprivileged, without SSID (IDR3.PASIDTT = 0).
        let mut plain = *req;
        plain.privileged = false;
        plain.substream = None;
        if plain.access == AccessKind::Exec {
            plain.access = AccessKind::Read;
        }
        let forbidden = || {
            self.fault_counted();
            self.record(&Event::TranslForbidden {
                src: EventSource::of(&plain),
                access: EventAccess::of(&plain),
            });
            Err(DmaFault {
                kind: FaultKind::Configuration,
                event: Smmuv3FaultId::TranslForbidden.into(),
                addr: req.addr,
                stall_tag: None,
            })
        };
        if !view.cr0.smmuen() {
            return forbidden();
        }
        let pass = || {
            let oas = self.caps.oas_bits();
            if oas < 64 && req.addr >> oas != 0 {
                self.fault_counted();
                return Err(DmaFault {
                    kind: FaultKind::Configuration,
                    event: Smmuv3FaultId::AtsAddrSize.into(),
                    addr: req.addr,
                    stall_tag: None,
                });
            }
            Ok(DmaMapping {
                output: req.addr,
                len: req.len.max(1),
                perms: Perms::RWX,
                attrs: MemAttrs::default(),
            })
        };
        if !view.cr0.atschk() {
            return pass();
        }
        let tc = match self.ats_stream_config(&view, req.stream.0) {
            Ok(StreamConfig::Translate(tc)) => tc,
            Ok(StreamConfig::Abort) => {
                self.fault_counted();
                return Err(DmaFault {
                    kind: FaultKind::Configuration,
                    event: Smmuv3FaultId::SteAbort.into(),
                    addr: req.addr,
                    stall_tag: None,
                });
            }
            Ok(StreamConfig::Bypass(_)) => return forbidden(),
            // Aborted; recorded only with CR2.REC_CFG_ATS, which is not implemented.
            Err(e) => {
                self.fault_counted();
                let ev = e.to_event(EventSource::of(&plain), EventAccess::of(&plain), None);
                return Err(DmaFault {
                    kind: ev.fault_kind(),
                    event: ev.fault_id().into(),
                    addr: req.addr,
                    stall_tag: None,
                });
            }
        };
        match (tc.ats, tc.s2) {
            (AtsMode::Abort, _) => forbidden(),
            (AtsMode::Split, Some(s2)) => {
                let privileged = tc.attrs.privileged(false);
                let access = match plain.access {
                    AccessKind::Write => AccessKind::Write,
                    _ if tc.attrs.instruction(false, true) => AccessKind::Exec,
                    _ => AccessKind::Read,
                };
                let result = {
                    let ram = self.mem.ram();
                    walk_stage2(&*ram, &s2.walk, req.addr, access, privileged)
                };
                match result {
                    Ok(w) => Ok(DmaMapping {
                        output: w.output,
                        len: w.len_from_output(),
                        perms: w.perms,
                        attrs: w.attrs,
                    }),
                    Err(f) => {
                        // Recorded as for an ordinary transaction (S2R; aborts always).
                        let record = matches!(
                            f.kind,
                            WalkFaultKind::ExternalAbort { .. } | WalkFaultKind::InvalidConfig(_)
                        ) || s2.record;
                        let mut r = plain;
                        r.privileged = privileged;
                        r.access = access;
                        let ev = Event::from_walk_fault(
                            &f,
                            EventSource::of(&r),
                            EventAccess::of(&r),
                            None,
                        );
                        self.fault_counted();
                        if record {
                            self.record(&ev);
                        }
                        Err(DmaFault {
                            kind: ev.fault_kind(),
                            event: ev.fault_id().into(),
                            addr: req.addr,
                            stall_tag: None,
                        })
                    }
                }
            }
            _ => pass(),
        }
    }

    fn fault_counted(&self) {
        self.counters.faults.fetch_add(1, Ordering::Relaxed);
    }

    /// CMD_ATC_INV: forward to the stream's ATC, remembering a failure for the next CMD_SYNC.
    pub(crate) fn atc_inv(
        &self,
        sid: u32,
        ssid: Option<u32>,
        global: bool,
        span: Option<(u64, u64)>,
        fx: &mut Effects,
    ) {
        let (start, size) = span.unwrap_or((0, u64::MAX));
        let inv = AtcInvalidation {
            ssid,
            global,
            start,
            // `atc_span` gives size u64::MAX for Size = 52 (all of the 64-bit space).
            last: if size == u64::MAX {
                u64::MAX
            } else {
                start.saturating_add(size.saturating_sub(1))
            },
        };
        let ep = lock(&self.atc.endpoints).get(&sid).cloned();
        let outcome = match ep {
            None => AtcOutcome::NoAtc,
            Some(ep) => match ep.invalidate(&inv) {
                Ok(()) => AtcOutcome::Completed,
                Err(e) => {
                    self.atc.sync_error.store(true, Ordering::Release);
                    AtcOutcome::Failed(e)
                }
            },
        };
        fx.push(|| Effect::Atc { sid, inv, outcome });
    }

    /// For CMD_SYNC: take the "an earlier ATC_INV failed" flag (CERROR_ATC_INV_SYNC).
    pub(crate) fn take_atc_sync_error(&self) -> bool {
        self.atc.sync_error.swap(false, Ordering::AcqRel)
    }
}
