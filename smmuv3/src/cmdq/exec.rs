//! Command effects (IHI 0070 §4.2 to §4.7; range invalidation §4.4.1.1; what each cache holds
//! and what invalidates it, §16.2): one method per command.
//!
//! Decoding ([`Command::decode`]) has already rejected malformed commands (CERROR_ILL). Each
//! effect completes before the consumer advances CONS, so a later CMD_SYNC's completion implies
//! the effect of every earlier command.
//!
//! While a tracer is installed each method also reports what it did as typed [`Effect`]s
//! (rendered to text by [`crate::trace`]); without one nothing is built, allocated or counted.
//!
//! Invalidation mapping (IOTLB scopes of [`viommu_common::iotlb`]):
//!
//! | Command | Config cache | IOTLB |
//! |---|---|---|
//! | CFGI_STE(SID) | STE, its L1 descriptor if Leaf = 0, and (policy) its CDs | — |
//! | CFGI_STE_RANGE / CFGI_ALL | every SID in the range, seen or not | CFGI_ALL: everything (policy) |
//! | CFGI_CD / CFGI_CD_ALL | the CD(s) | — (entries are ASID-tagged) |
//! | TLBI_NH_ALL / NH_ASID / NH_VA / NH_VAA | — | stage-1 + nested of the VMID / ASID / range |
//! | TLBI_EL2_* | — | the EL2 regime's forms |
//! | TLBI_S12_VMALL / TLBI_S2_IPA | — | the VMID / its stage-2 IPA range + nested |
//! | TLBI_NSNH_ALL | — | everything |
//!
//! Policy: without IDR0.S2P the VMID of TLBI_NH_* is ignored (translations are tagged VMID 0).

use viommu_common::id::Vmid;
use viommu_common::iotlb::{InvRange, Invalidation, Regime};

use super::command::{Command, SyncCmd, SyncSignal, TlbiRange};
use crate::device::{GuestRam, SmmuV3};
use crate::spec::cmd::CmdEntry;
use crate::spec::regs::CmdqErr;
use crate::trace::{ConfigInvalidation, Effect, Effects, SyncOutcome, TraceRecord};

/// The IOTLB range of an address-based TLBI.
fn inv_range(r: &TlbiRange) -> InvRange {
    let (base, size) = r.span();
    let mut out = InvRange::new(base, size).with_leaf(r.leaf);
    if let Some(l) = r.level_hint() {
        out = out.with_ttl(l as i8);
    }
    out
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Decode and execute one command read from queue position `pos`; with `traced`, report
    /// it and its effects to the tracer.
    ///
    /// # Errors
    /// The CMDQ_CONS.ERR code and a reason when the command is illegal.
    pub(crate) fn execute(
        &self,
        pos: u32,
        entry: CmdEntry,
        traced: bool,
    ) -> Result<(), (CmdqErr, String)> {
        let words = entry.words();
        let cmd = match Command::decode(&words, &self.caps) {
            Ok(c) => c,
            Err(e) => {
                return Err((
                    e.cmdq_error(),
                    format!("{e} (words {:#018x} {:#018x})", words[0], words[1]),
                ))
            }
        };
        // CERROR_ATC_INV_SYNC: an ATC invalidation since the last CMD_SYNC failed; CONS stays
        // at this CMD_SYNC (a re-fetch after GERRORN completes it).
        if matches!(cmd, Command::Sync(_)) && self.take_atc_sync_error() {
            return Err((
                CmdqErr::CERROR_ATC_INV_SYNC,
                "an earlier ATC_INV did not complete".into(),
            ));
        }
        let mut effects = Effects::new(traced);
        self.apply(&cmd, &mut effects);
        if let Some(effects) = effects.into_vec() {
            self.trace(|| TraceRecord::Command {
                pos,
                command: cmd,
                effects,
            });
        }
        Ok(())
    }

    /// The effect of a decoded command (one method per command kind), reported to `fx`.
    fn apply(&self, cmd: &Command, fx: &mut Effects) {
        match *cmd {
            Command::PrefetchConfig { .. } | Command::PrefetchAddr { .. } => {
                fx.push(|| Effect::Nothing("prefetch is a hint"));
            }
            Command::CfgiSte { sid, leaf } => self.cfgi_ste(sid.0, leaf, fx),
            Command::CfgiSteRange { .. } => {
                let (first, last) = cmd.cfgi_sid_range().unwrap_or((0, 0));
                self.cfgi_ste_range(first, last, fx);
            }
            Command::CfgiAll => self.cfgi_all(fx),
            Command::CfgiCd { sid, ssid, leaf } => self.cfgi_cd(sid.0, ssid.0, leaf, fx),
            Command::CfgiCdAll { sid } => self.cfgi_cd_all(sid.0, fx),
            Command::TlbiNhAll { vmid } => self.tlbi(
                Invalidation::Stage1All(Regime::Nh {
                    vmid: self.vmid(vmid),
                }),
                fx,
            ),
            Command::TlbiNhAsid { vmid, asid } => self.tlbi(
                Invalidation::Asid(
                    Regime::Nh {
                        vmid: self.vmid(vmid),
                    },
                    asid,
                ),
                fx,
            ),
            Command::TlbiNhVa { vmid, asid, range } => self.tlbi(
                Invalidation::Va {
                    regime: Regime::Nh {
                        vmid: self.vmid(vmid),
                    },
                    asid: Some(asid),
                    range: inv_range(&range),
                },
                fx,
            ),
            Command::TlbiNhVaa { vmid, range } => self.tlbi(
                Invalidation::Va {
                    regime: Regime::Nh {
                        vmid: self.vmid(vmid),
                    },
                    asid: None,
                    range: inv_range(&range),
                },
                fx,
            ),
            Command::TlbiEl2All => self.tlbi(Invalidation::Stage1All(Regime::El2), fx),
            Command::TlbiEl2Asid { asid } => self.tlbi(Invalidation::Asid(Regime::El2, asid), fx),
            Command::TlbiEl2Va { asid, range } => self.tlbi(
                Invalidation::Va {
                    regime: Regime::El2,
                    asid: Some(asid),
                    range: inv_range(&range),
                },
                fx,
            ),
            Command::TlbiEl2Vaa { range } => self.tlbi(
                Invalidation::Va {
                    regime: Regime::El2,
                    asid: None,
                    range: inv_range(&range),
                },
                fx,
            ),
            Command::TlbiS12Vmall { vmid } => self.tlbi(Invalidation::Vmid(vmid), fx),
            Command::TlbiS2Ipa { vmid, range } => self.tlbi(
                Invalidation::Ipa {
                    vmid,
                    range: inv_range(&range),
                },
                fx,
            ),
            Command::TlbiNsnhAll => self.tlbi(Invalidation::All, fx),
            Command::AtcInv {
                sid, ssid, global, ..
            } => self.atc_inv(sid.0, ssid.map(|s| s.0), global, cmd.atc_span(), fx),
            Command::PriResp {
                sid,
                ssid,
                prg_index,
                resp,
            } => self.cmd_pri_resp(sid, ssid, prg_index, resp, fx),
            Command::Resume { sid, stag, resp } => self.cmd_resume(sid, stag, resp, fx),
            Command::StallTerm { sid } => self.cmd_stall_term(sid, fx),
            Command::Sync(s) => self.cmd_sync(&s, fx),
        }
    }

    /// Policy: without S2P the VMID of stage-1 invalidations is ignored (tags use VMID 0).
    fn vmid(&self, vmid: Vmid) -> Vmid {
        if self.caps.s2() {
            vmid
        } else {
            Vmid(0)
        }
    }

    fn tlbi(&self, scope: Invalidation, fx: &mut Effects) {
        self.iotlb.invalidate(scope);
        fx.push(|| Effect::Iotlb {
            scope,
            removed: None,
        });
    }

    fn cfgi_ste(&self, sid: u32, leaf: bool, fx: &mut Effects) {
        let cached = fx.collecting() && self.config.ste(sid).is_some();
        self.config_invalidate_ste(sid);
        fx.push(|| Effect::Config(ConfigInvalidation::Ste { sid, leaf, cached }));
    }

    fn cfgi_ste_range(&self, first: u32, last: u32, fx: &mut Effects) {
        self.config_invalidate_range(first, last);
        fx.push(|| Effect::Config(ConfigInvalidation::SteRange { first, last }));
    }

    fn cfgi_all(&self, fx: &mut Effects) {
        let (stes, cds) = if fx.collecting() {
            self.config.len()
        } else {
            (0, 0)
        };
        self.config_invalidate_all();
        // Policy: CFGI_ALL also empties the IOTLB (stream-derived entries, reset hygiene).
        self.iotlb.invalidate(Invalidation::All);
        fx.push(|| Effect::Config(ConfigInvalidation::All { stes, cds }));
        fx.push(|| Effect::Iotlb {
            scope: Invalidation::All,
            removed: None,
        });
    }

    fn cfgi_cd(&self, sid: u32, ssid: u32, leaf: bool, fx: &mut Effects) {
        let cached = leaf && fx.collecting() && self.config.cd(sid, ssid).is_some();
        self.config_invalidate_cd(sid, Some(ssid), leaf);
        fx.push(|| {
            Effect::Config(ConfigInvalidation::Cd {
                sid,
                ssid,
                leaf,
                cached,
            })
        });
    }

    fn cfgi_cd_all(&self, sid: u32, fx: &mut Effects) {
        self.config_invalidate_cd(sid, None, false);
        fx.push(|| Effect::Config(ConfigInvalidation::CdAll { sid }));
    }

    /// CMD_SYNC: every earlier command has completed; signal per CS (IHI 0070 §4.7.3).
    ///
    /// An invalidation is complete only once the transactions that used the old translation
    /// have completed (IHI 0070 §3.21), so the sync first waits for every DMA that pinned the
    /// IOTLB ([`DmaTranslator::pin`](viommu_common::traits::DmaTranslator::pin), held by
    /// `viommu_common::vmm::EndpointIommu` for the duration of each access) before the sync
    /// started. This holds the consuming thread for as long as such accesses last (a memory
    /// copy); translation itself takes none of the locks held here, so it cannot deadlock.
    fn cmd_sync(&self, s: &SyncCmd, fx: &mut Effects) {
        self.iotlb.synchronize();
        let outcome = match s.cs {
            SyncSignal::None => SyncOutcome::None,
            // No wake-up event can reach a vCPU in WFE here; CONS passing is the completion
            // (accepted even without IDR0.SEV, as Linux requires).
            SyncSignal::Sev => SyncOutcome::Sev,
            SyncSignal::Irq => SyncOutcome::Irq(self.sync_signal(s.msi_addr, s.msi_data)),
        };
        fx.push(|| Effect::Sync(outcome));
    }
}
