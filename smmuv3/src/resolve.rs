//! Glue between the configuration layer ([`crate::config`]) and translation / CFGI commands:
//! (StreamID, SubstreamID) to a translation [`Route`], or the configuration event.
//!
//! Recording (IHI 0070 §7.2, §7.3): C_BAD_STREAMID only with CR2.RECINVSID; other C_* events
//! and fetch aborts always; a stage-2 fault on a nested CD fetch per STE.S2R.

use viommu_common::access::{AccessKind, DmaRequest};
use viommu_common::walk::{walk_stage2, DescReader};

use crate::config::cd::Substream;
use crate::config::ste::StreamTable;
use crate::config::{ConfigError, Regime, StreamConfig};
use crate::device::{GuestRam, SmmuV3, TranslationRegs};
use crate::event::{Event, EventSource};
use crate::route::TagKey;
use crate::translate::{event_access, Route, S1Ctx};

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Resolve a request's stream configuration: a route, or a configuration event and whether
    /// it is recorded.
    pub(crate) fn resolve(
        &self,
        view: &TranslationRegs,
        req: &DmaRequest,
    ) -> Result<Route, (Event, bool)> {
        let src = EventSource::of(req);
        let table = StreamTable::new(view.strtab_base, view.strtab_cfg, &self.caps);
        let ram = self.mem.ram();
        let mem = &*ram;
        // One reader for the STE and CD fetches: one guest memory region lookup.
        let mut reader = DescReader::new(mem);
        let fail = |e: ConfigError, privileged: bool, access: AccessKind, s2_record: bool| {
            let record = match e {
                ConfigError::BadStreamId { .. } => view.cr2.recinvsid(),
                ConfigError::CdStage2(_) => s2_record,
                _ => true,
            };
            (
                e.to_event(src, event_access(req, privileged, access), None),
                record,
            )
        };
        let sid = req.stream.0;
        let sc = match self.config.ste(sid) {
            Some(sc) => sc,
            None => {
                let ticket = self.config.ticket();
                let sc = table
                    .lookup_in(&mut reader, sid, &self.caps)
                    .map_err(|e| fail(e, req.privileged, req.access, false))?;
                self.config.insert_ste(ticket, sid, sc);
                sc
            }
        };
        let tc = match sc {
            StreamConfig::Abort => return Ok(Route::Abort),
            StreamConfig::Bypass(_) => return Ok(Route::Bypass),
            StreamConfig::Translate(tc) => tc,
        };
        let privileged = tc.attrs.privileged(req.privileged);
        let access = req.access;
        let s2 = tc.s2;
        let s2_record = s2.is_some_and(|c| c.record);
        let mut ctx = None;
        if let Some(s1) = tc.s1 {
            match s1
                .substream(req.substream)
                .map_err(|e| fail(e, privileged, access, s2_record))?
            {
                Substream::Disabled => return Err((Event::StreamDisabled { src }, true)),
                Substream::BypassS1 => {}
                Substream::Cd(index) => {
                    let cd = match self.config.cd(sid, index) {
                        Some(cd) => cd,
                        None => {
                            let ticket = self.config.ticket();
                            let hook = s2.map(|c| {
                                move |ipa: u64| {
                                    walk_stage2(mem, &c.walk, ipa, AccessKind::Read, false)
                                        .map(|w| w.output)
                                }
                            });
                            let hook_ref = hook.as_ref().map(|h| h as &dyn Fn(u64) -> _);
                            let cd = s1
                                .lookup_cd_in(&mut reader, index, hook_ref, &self.caps)
                                .map_err(|e| fail(e, privileged, access, s2_record))?;
                            self.config.insert_cd(ticket, sid, index, cd);
                            cd
                        }
                    };
                    ctx = Some((
                        S1Ctx {
                            ttb0: cd.regions[0],
                            ttb1: cd.regions[1],
                            record: cd.record,
                            stall: cd.stall,
                        },
                        cd.asid,
                    ));
                }
            }
        }
        let key = match (&ctx, &s2) {
            (Some((_, asid)), _) => match tc.regime {
                Regime::El1 => TagKey::S1 {
                    vmid: tc.vmid,
                    asid: *asid,
                },
                Regime::El2 => TagKey::S1El2 { asid: *asid },
            },
            (None, Some(_)) => TagKey::S2 { vmid: tc.vmid },
            (None, None) => return Ok(Route::Bypass),
        };
        Ok(Route::Translate {
            key,
            s1: ctx.map(|(c, _)| c),
            s2: s2.map(|c| c.walk),
            s2_record,
            s2_stall: s2.is_some_and(|c| c.stall),
            attrs: tc.attrs,
        })
    }

    /// Drop every cached configuration (CFGI_ALL, SMMUEN transitions, reset).
    pub(crate) fn config_invalidate_all(&self) {
        self.config.invalidate_all();
        self.routes.invalidate();
    }

    /// CFGI_STE: the STE and (policy) its CDs. L1 stream descriptors are never cached, so
    /// Leaf = 0 needs nothing more.
    pub(crate) fn config_invalidate_ste(&self, sid: u32) {
        self.config.invalidate_ste(sid);
        self.routes.invalidate();
    }

    /// CFGI_STE_RANGE: every SID in `first..=last`, cached or not.
    pub(crate) fn config_invalidate_range(&self, first: u32, last: u32) {
        self.config.invalidate_sids(first, last);
        self.routes.invalidate();
    }

    /// CFGI_CD (`ssid: Some`, Leaf = 1: that CD; Leaf = 0: every CD of the SID, policy, since
    /// its L1 CD descriptor may have changed) and CFGI_CD_ALL (`ssid: None`).
    pub(crate) fn config_invalidate_cd(&self, sid: u32, ssid: Option<u32>, leaf: bool) {
        match ssid {
            Some(index) if leaf => self.config.invalidate_cd(sid, index),
            _ => self.config.invalidate_cds(sid),
        }
        self.routes.invalidate();
    }
}
