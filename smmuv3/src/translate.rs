//! The translation pipeline (IHI 0070 §3.2, §3.3, §3.4, §3.12, §7.2).
//!
//! `translate(req)`:
//!
//! 1. **Global bypass**: with CR0.SMMUEN = 0, GBPA decides: ABORT terminates (fault name
//!    `GBPA_ABORT`, nothing recorded), otherwise the address passes untranslated.
//! 2. **Stream and configuration**: the configuration cache resolves (StreamID, SubstreamID) to
//!    a route: abort (STE.Config = abort: terminated silently, fault name `STE_ABORT`),
//!    bypass, or translate. Configuration faults (C_BAD_STREAMID, F_STE_FETCH, C_BAD_STE,
//!    C_BAD_SUBSTREAMID, F_CD_FETCH, C_BAD_CD, F_STREAM_DISABLED, ...) are recorded and
//!    returned. Unknown streams are denied, never bypassed.
//! 3. **IOTLB**: tagged by (VMID, ASID) for stage 1 and nested, by VMID for stage 2 only. A hit
//!    that allows the access is the whole cost of a translation: no lock, no shared write.
//! 4. **Walk** on a miss (or a hit that does not allow the access, so the fault is exact and a
//!    permission upgrade without TLBI is honoured): stage 1, stage 2, or nested with every
//!    stage-1 table address and the output translated through stage 2. The result is inserted
//!    with a fill token taken before the walk, so an invalidation racing with the walk wins.
//! 5. **Faults**: the walker's typed fault becomes an [`Event`] (CLASS, S2, IPA, InD/PnU/RnW,
//!    SSID); translation-class faults are recorded only when CD.R (stage 1) / STE.S2R (stage 2)
//!    allow, F_WALK_EABT always (IHI 0070 §5.5, §7.2).
//!
//! Policy: a request's `len` beyond the mapping is not an error: the returned
//! [`DmaMapping::len`] says how much is contiguous and the caller translates the rest.

use std::sync::atomic::Ordering;

use viommu_common::access::{AccessKind, DmaRequest, Perms};
use viommu_common::iotlb::{TlbEntry, TlbTag};

use crate::route::{Hot, HotKind, TagKey};
use viommu_common::fault::Smmuv3FaultId;
use viommu_common::traits::{DmaFault, DmaMapping, DmaPin, DmaTranslator, FaultKind, MemAttrs};
use viommu_common::walk::{
    walk_stage1, walk_stage2, Stage, Stage1Config, Stage2Config, WalkFault, WalkResult,
};
use vm_memory::GuestMemoryBackend;

use crate::config::StreamAttrs;
use crate::device::{GuestRam, SmmuV3, TranslationRegs};
use crate::event::{Event, EventAccess, EventSource};

/// Stage-1 context of a translating route: both TTB regions of the CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct S1Ctx {
    /// TTB0 region (VA bit 55 = 0).
    pub ttb0: Stage1Config,
    /// TTB1 region (VA bit 55 = 1).
    pub ttb1: Stage1Config,
    /// CD.R: record stage-1 translation faults.
    pub record: bool,
    /// CD.S: stall stage-1 translation-related faults (see [`crate::stall`]).
    pub stall: bool,
}

impl S1Ctx {
    /// The stage-1 context one input address walks with: the TTB region it selects.
    #[inline]
    pub(crate) fn for_addr(&self, addr: u64) -> S1Walk {
        S1Walk {
            region: if Stage1Config::region_of(addr) {
                self.ttb1
            } else {
                self.ttb0
            },
            record: self.record,
            stall: self.stall,
        }
    }
}

/// Stage-1 context of one walk: the TTB region the input address selects (VA bit 55), with
/// the CD's fault controls. What the IOTLB-miss path reads of a cached route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct S1Walk {
    /// The TTB0 or TTB1 region.
    pub region: Stage1Config,
    /// CD.R: record stage-1 translation faults.
    pub record: bool,
    /// CD.S: stall stage-1 translation-related faults (see [`crate::stall`]).
    pub stall: bool,
}

/// Walks `addr` through a translating route's stages: stage 1 from the TTB region chosen for
/// the address (nested: with stage 2 translating its table and output addresses), or stage 2
/// alone. `None` for a route with neither stage. Shared by DMA translation and ATS.
#[inline(always)]
pub(crate) fn walk_route<B: GuestMemoryBackend + ?Sized>(
    mem: &B,
    s1: Option<&S1Walk>,
    s2: Option<&Stage2Config>,
    addr: u64,
    access: AccessKind,
    privileged: bool,
) -> Option<Result<WalkResult, WalkFault>> {
    Some(match (s1, s2) {
        (Some(c), Some(s2c)) => {
            let hook = |ipa: u64, acc: AccessKind| walk_stage2(mem, s2c, ipa, acc, privileged);
            walk_stage1(mem, &c.region, addr, access, privileged, Some(&hook))
        }
        (Some(c), None) => walk_stage1(mem, &c.region, addr, access, privileged, None),
        (None, Some(s2c)) => walk_stage2(mem, s2c, addr, access, privileged),
        (None, None) => return None,
    })
}

/// What a (StreamID, SubstreamID) resolves to. `S` is the stage-1 context: [`S1Ctx`] (both
/// TTB regions) as resolved and cached, [`S1Walk`] (one region) as one request walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<S = S1Ctx> {
    /// STE.Config = abort (or reserved): terminate without an event.
    Abort,
    /// STE.Config = bypass (or S1DSS = bypass without stage 2).
    Bypass,
    /// Translate.
    Translate {
        /// IOTLB tag inputs.
        key: TagKey,
        /// Stage 1, if used.
        s1: Option<S>,
        /// Stage 2, if used.
        s2: Option<Stage2Config>,
        /// STE.S2R: record stage-2 translation faults.
        s2_record: bool,
        /// STE.S2S: stall stage-2 translation-related faults.
        s2_stall: bool,
        /// STE attribute overrides (PRIVCFG, INSTCFG).
        attrs: StreamAttrs,
    },
}

impl Route {
    /// What the route cache keeps of this route.
    pub(crate) fn hot(&self) -> Hot {
        match *self {
            Route::Abort => Hot::Abort,
            Route::Bypass => Hot::Bypass,
            Route::Translate { key, attrs, .. } => Hot::Translate {
                key,
                privcfg: attrs.privcfg.0,
                instcfg: attrs.instcfg.0,
            },
        }
    }

    /// The route as a request for `addr` walks it (stage 1 from the region `addr` selects).
    #[inline]
    pub(crate) fn for_addr(&self, addr: u64) -> Route<S1Walk> {
        match *self {
            Route::Abort => Route::Abort,
            Route::Bypass => Route::Bypass,
            Route::Translate {
                key,
                s1,
                s2,
                s2_record,
                s2_stall,
                attrs,
            } => Route::Translate {
                key,
                s1: s1.map(|c| c.for_addr(addr)),
                s2,
                s2_record,
                s2_stall,
                attrs,
            },
        }
    }
}

fn identity(req: &DmaRequest) -> DmaMapping {
    DmaMapping {
        output: req.addr,
        len: req.len.max(1),
        perms: Perms::RWX,
        attrs: MemAttrs::default(),
    }
}

/// A termination the architecture does not record as an event ([`Smmuv3FaultId::GbpaAbort`],
/// [`Smmuv3FaultId::SteAbort`]).
fn config_fault(addr: u64, event: Smmuv3FaultId) -> DmaFault {
    DmaFault {
        kind: FaultKind::Configuration,
        event: event.into(),
        addr,
        stall_tag: None,
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// SMMUEN = 0: GBPA routes the transaction (IHI 0070 §6.3, SMMU_GBPA).
    fn translate_global_bypass(
        &self,
        view: &TranslationRegs,
        req: &DmaRequest,
    ) -> Result<DmaMapping, DmaFault> {
        if view.gbpa.abort() {
            return Err(config_fault(req.addr, Smmuv3FaultId::GbpaAbort));
        }
        Ok(DmaMapping {
            output: req.addr,
            len: req.len.max(1),
            perms: Perms::RWX,
            attrs: MemAttrs::default(),
        })
    }

    /// Record `event` (if the caller decided it is recorded) and build the caller's fault.
    fn fault(&self, event: &Event, record: bool, addr: u64) -> DmaFault {
        self.counters
            .faults
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if record {
            self.record(event);
        }
        DmaFault {
            kind: event.fault_kind(),
            event: event.fault_id().into(),
            addr,
            stall_tag: None,
        }
    }

    /// An IOTLB entry of `tag` covering `addr` that allows the access.
    #[inline(always)]
    fn iotlb_hit(
        &self,
        tag: TlbTag,
        addr: u64,
        privileged: bool,
        access: AccessKind,
    ) -> Option<DmaMapping> {
        let m = self.iotlb.lookup_mapping(tag, addr, privileged)?;
        m.perms.allows(access).then_some(m)
    }

    /// The walk for a route that translates (after an IOTLB miss).
    #[expect(clippy::too_many_arguments, reason = "the resolved route, unpacked")]
    #[inline(always)]
    fn translate_walk(
        &self,
        req: &DmaRequest,
        tag: TlbTag,
        s1: Option<&S1Walk>,
        s2: Option<&Stage2Config>,
        (s2_record, s2_stall): (bool, bool),
        privileged: bool,
        access: AccessKind,
    ) -> Result<DmaMapping, DmaFault> {
        let addr = req.addr;
        let token = self.iotlb.begin_fill(tag);
        let ram = self.mem.ram();
        let mem = &*ram;
        let Some(result) = walk_route(mem, s1, s2, addr, access, privileged) else {
            return Ok(DmaMapping {
                output: addr,
                len: req.len.max(1),
                perms: Perms::RWX,
                attrs: MemAttrs::default(),
            });
        };
        drop(ram);
        match result {
            Ok(w) => {
                let size_log2 = w.size_log2.min(63) as u8;
                let mask = (1u64 << size_log2) - 1;
                let entry = TlbEntry {
                    input: addr & !mask,
                    output: w.base(),
                    size_log2,
                    level: w.level as i8,
                    perms: w.by_privilege.unprivileged,
                    priv_perms: w.by_privilege.privileged,
                    attrs: w.attrs,
                    global: w.global,
                    ipa: w.ipa.map(|i| i & !mask),
                    flags: u32::from(w.writable_clean),
                };
                self.iotlb.insert(token, entry);
                Ok(DmaMapping {
                    output: w.output,
                    len: w.len_from_output(),
                    perms: w.perms,
                    attrs: w.attrs,
                })
            }
            Err(f) => {
                let ev_access = event_access(req, privileged, access);
                if crate::stall::stalls_on(&f, s1.is_some_and(|c| c.stall), s2_stall) {
                    // Held (or, with the stall table full, terminated below).
                    if let Some(fault) = self.stall_transaction(req, &f, ev_access) {
                        return Err(fault);
                    }
                }
                let record = self.walk_fault_recorded(&f, s1.map(|c| c.record), s2_record);
                let ev = Event::from_walk_fault(&f, EventSource::of(req), ev_access, None);
                Err(self.fault(&ev, record, addr))
            }
        }
    }

    /// IHI 0070 §5.5, §7.2: translation-class faults are recorded per CD.R / STE.S2R, external
    /// aborts always.
    fn walk_fault_recorded(&self, f: &WalkFault, s1_record: Option<bool>, s2_record: bool) -> bool {
        use viommu_common::walk::WalkFaultKind as K;
        match f.kind {
            K::ExternalAbort { .. } | K::InvalidConfig(_) => true,
            _ => match f.stage {
                Stage::S1 => s1_record.unwrap_or(true),
                Stage::S2 => s2_record,
            },
        }
    }

    /// Translate one request (the [`DmaTranslator`] entry point): the hit path.
    #[inline(always)]
    fn translate_request(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        let sid = req.stream.0;
        let ssid = req.substream.map(|s| s.0);
        // Fast path: cached route and IOTLB hit.
        let mut missed_tag = None;
        if let Some(h) = self.routes.get_hot(sid, ssid) {
            match h.kind() {
                HotKind::Translate => {
                    let (privileged, need) = h.access(req.privileged, req.access);
                    let tag = h.tag();
                    if let Some(m) = self.iotlb.lookup_mapping(tag, req.addr, privileged) {
                        if m.perms.contains(need) {
                            return Ok(m);
                        }
                    }
                    missed_tag = Some(tag);
                }
                HotKind::Abort => {
                    self.count_unhit();
                    return Err(config_fault(req.addr, Smmuv3FaultId::SteAbort));
                }
                HotKind::Bypass => {
                    self.count_unhit();
                    return Ok(identity(req));
                }
            }
        }
        self.count_unhit();
        self.translate_slow(req, missed_tag)
    }

    /// Count a request that the IOTLB fast path did not serve (IOTLB hits are counted by the
    /// IOTLB's own per-thread statistics, keeping shared writes off the hit path; see
    /// [`SmmuV3::stats`]).
    #[inline]
    fn count_unhit(&self) {
        self.counters.translations.fetch_add(1, Ordering::Relaxed);
    }

    /// IOTLB miss: the cached full route, or resolve the configuration (decoded STE/CD), then
    /// walk. Kept out of line so the hit path stays small.
    #[cold]
    #[inline(never)]
    fn translate_slow(
        &self,
        req: &DmaRequest,
        missed_tag: Option<TlbTag>,
    ) -> Result<DmaMapping, DmaFault> {
        let sid = req.stream.0;
        let ssid = req.substream.map(|s| s.0);
        let route = match self
            .routes
            .get_full(sid, ssid, req.addr)
            .and_then(|w| w.route())
        {
            Some(r) => r,
            None => {
                let generation = self.routes.generation();
                // Host-backed streams never get a route, so they always come here; checked
                // after the generation read, which a concurrent attach has bumped if it
                // registered the stream before (crate::host).
                if self.host.is_backed(sid) {
                    return Err(config_fault(req.addr, crate::host::HOST_BACKED));
                }
                let view = self.view.load();
                if !view.cr0.smmuen() {
                    return self.translate_global_bypass(&view, req);
                }
                let route = match self.resolve(&view, req) {
                    Ok(r) => r,
                    Err((event, record)) => return Err(self.fault(&event, record, req.addr)),
                };
                self.routes.insert(generation, sid, ssid, &route);
                route.for_addr(req.addr)
            }
        };
        match route {
            Route::Abort => Err(config_fault(req.addr, Smmuv3FaultId::SteAbort)),
            Route::Bypass => Ok(identity(req)),
            Route::Translate {
                key,
                s1,
                s2,
                s2_record,
                s2_stall,
                attrs,
            } => {
                let (privileged, access) = attrs.effective(req.privileged, req.access);
                let tag = key.tag();
                if missed_tag != Some(tag) {
                    if let Some(m) = self.iotlb_hit(tag, req.addr, privileged, access) {
                        // Already counted as a request and, now, as an IOTLB hit.
                        self.counters
                            .slow_iotlb_hits
                            .fetch_add(1, Ordering::Relaxed);
                        return Ok(m);
                    }
                }
                self.translate_walk(
                    req,
                    tag,
                    s1.as_ref(),
                    s2.as_ref(),
                    (s2_record, s2_stall),
                    privileged,
                    access,
                )
            }
        }
    }
}

/// Translate `req` as though it had just arrived (the retry of a stalled transaction,
/// IHI 0070 §4.7.1): the normal pipeline, which never uses a result invalidated since.
pub(crate) fn translate_fresh<M: GuestRam>(
    smmu: &SmmuV3<M>,
    req: &DmaRequest,
) -> Result<DmaMapping, DmaFault> {
    smmu.translate_request(req)
}

/// The access fields of an event record: RnW, InD, PnU as the SMMU saw them (after overrides).
pub(crate) fn event_access(req: &DmaRequest, privileged: bool, access: AccessKind) -> EventAccess {
    let mut r = *req;
    r.privileged = privileged;
    r.access = access;
    EventAccess::of(&r)
}

impl<M> DmaTranslator for SmmuV3<M>
where
    M: GuestRam,
{
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        self.translate_request(req)
    }

    /// Pins the IOTLB: a CMD_SYNC that starts while the pin is alive completes only after it is
    /// dropped (see [`crate::cmdq::exec`]), so DMA in flight never outlives the invalidation
    /// of the translation it uses.
    fn pin(&self) -> DmaPin<'_> {
        DmaPin::new(self.iotlb.pin())
    }
}
