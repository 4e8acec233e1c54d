//! Command effects (IHI 0070 §4; smmuv3.md §8.3, §8.4, §10, §13): one method per command.
//!
//! Decoding ([`Command::decode`]) has already rejected malformed commands (CERROR_ILL). Each
//! effect completes before the consumer advances CONS, so a later CMD_SYNC's completion implies
//! the effect of every earlier command.
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
use crate::trace::{Delivery, Effect, TraceRecord};

/// The IOTLB range of an address-based TLBI.
fn inv_range(r: &TlbiRange) -> InvRange {
    let (base, size) = r.span();
    let mut out = InvRange::new(base, size).with_leaf(r.leaf);
    if let Some(l) = r.level_hint() {
        out = out.with_ttl(l as i8);
    }
    out
}

fn describe(scope: &Invalidation) -> String {
    let regime = |r: &Regime| match r {
        Regime::Nh { vmid } => format!("NH VMID={vmid}"),
        Regime::El2 => "EL2".to_string(),
    };
    let range = |r: &InvRange| {
        let mut s = format!("[{:#x}, +{:#x})", r.addr, r.size);
        if r.leaf {
            s.push_str(" leaf");
        }
        if let Some(t) = r.ttl {
            s.push_str(&format!(" TTL={t}"));
        }
        s
    };
    match scope {
        Invalidation::All => "all".into(),
        Invalidation::Stage1All(r) => format!("stage 1, {}", regime(r)),
        Invalidation::Vmid(v) => format!("stage 1+2, VMID={v}"),
        Invalidation::Asid(r, a) => format!("{} ASID={a}, non-global", regime(r)),
        Invalidation::Va {
            regime: r,
            asid,
            range: rg,
        } => match asid {
            Some(a) => format!("{} ASID={a} + global, {}", regime(r), range(rg)),
            None => format!("{} all ASIDs, {}", regime(r), range(rg)),
        },
        Invalidation::Ipa { vmid, range: rg } => format!("stage 2 VMID={vmid}, IPA {}", range(rg)),
        Invalidation::Stream(s) => format!("stream SID={s}"),
        Invalidation::Tag(t) => format!("tag {:#x}", t.raw()),
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Decode and execute one command read from queue position `pos`.
    ///
    /// # Errors
    /// The CMDQ_CONS.ERR code and a reason when the command is illegal.
    pub(crate) fn execute(&self, pos: u32, entry: CmdEntry) -> Result<(), (CmdqErr, String)> {
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
        let effects = self.apply(&cmd);
        self.trace(|| TraceRecord::Command {
            pos,
            command: cmd.to_string(),
            effects,
        });
        Ok(())
    }

    /// The effect of a decoded command (one method per command kind).
    fn apply(&self, cmd: &Command) -> Vec<Effect> {
        match *cmd {
            Command::PrefetchConfig { .. } | Command::PrefetchAddr { .. } => {
                vec![Effect::Nothing("prefetch is a hint")]
            }
            Command::CfgiSte { sid, leaf } => self.cfgi_ste(sid.0, leaf),
            Command::CfgiSteRange { .. } => {
                let (first, last) = cmd.cfgi_sid_range().unwrap_or((0, 0));
                self.cfgi_ste_range(first, last)
            }
            Command::CfgiAll => self.cfgi_all(),
            Command::CfgiCd { sid, ssid, leaf } => self.cfgi_cd(sid.0, ssid.0, leaf),
            Command::CfgiCdAll { sid } => self.cfgi_cd_all(sid.0),
            Command::TlbiNhAll { vmid } => self.tlbi(Invalidation::Stage1All(Regime::Nh {
                vmid: self.vmid(vmid),
            })),
            Command::TlbiNhAsid { vmid, asid } => self.tlbi(Invalidation::Asid(
                Regime::Nh {
                    vmid: self.vmid(vmid),
                },
                asid,
            )),
            Command::TlbiNhVa { vmid, asid, range } => self.tlbi(Invalidation::Va {
                regime: Regime::Nh {
                    vmid: self.vmid(vmid),
                },
                asid: Some(asid),
                range: inv_range(&range),
            }),
            Command::TlbiNhVaa { vmid, range } => self.tlbi(Invalidation::Va {
                regime: Regime::Nh {
                    vmid: self.vmid(vmid),
                },
                asid: None,
                range: inv_range(&range),
            }),
            Command::TlbiEl2All => self.tlbi(Invalidation::Stage1All(Regime::El2)),
            Command::TlbiEl2Asid { asid } => self.tlbi(Invalidation::Asid(Regime::El2, asid)),
            Command::TlbiEl2Va { asid, range } => self.tlbi(Invalidation::Va {
                regime: Regime::El2,
                asid: Some(asid),
                range: inv_range(&range),
            }),
            Command::TlbiEl2Vaa { range } => self.tlbi(Invalidation::Va {
                regime: Regime::El2,
                asid: None,
                range: inv_range(&range),
            }),
            Command::TlbiS12Vmall { vmid } => self.tlbi(Invalidation::Vmid(vmid)),
            Command::TlbiS2Ipa { vmid, range } => self.tlbi(Invalidation::Ipa {
                vmid,
                range: inv_range(&range),
            }),
            Command::TlbiNsnhAll => self.tlbi(Invalidation::All),
            Command::AtcInv {
                sid, ssid, global, ..
            } => self.atc_inv(sid.0, ssid.map(|s| s.0), global, cmd.atc_span()),
            Command::PriResp {
                sid,
                ssid,
                prg_index,
                resp,
            } => self.cmd_pri_resp(sid, ssid, prg_index, resp),
            Command::Resume { sid, stag, resp } => self.cmd_resume(sid, stag, resp),
            Command::StallTerm { sid } => self.cmd_stall_term(sid),
            Command::Sync(s) => self.cmd_sync(&s),
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

    fn tlbi(&self, scope: Invalidation) -> Vec<Effect> {
        self.iotlb.invalidate(scope);
        vec![Effect::Iotlb {
            scope: describe(&scope),
            removed: None,
        }]
    }

    fn cfgi_ste(&self, sid: u32, leaf: bool) -> Vec<Effect> {
        let dropped = self.config_invalidate_ste(sid, leaf);
        vec![Effect::Config(format!(
            "SID={sid:#x}{}: {dropped}",
            if leaf { "" } else { " (+L1 descriptor)" }
        ))]
    }

    fn cfgi_ste_range(&self, first: u32, last: u32) -> Vec<Effect> {
        let dropped = self.config_invalidate_range(first, last);
        vec![Effect::Config(format!(
            "SIDs [{first:#x}, {last:#x}]: {dropped}"
        ))]
    }

    fn cfgi_all(&self) -> Vec<Effect> {
        let dropped = self.config_invalidate_all();
        // Policy: CFGI_ALL also empties the IOTLB (stream-derived entries, reset hygiene).
        self.iotlb.invalidate(Invalidation::All);
        vec![
            Effect::Config(format!("all: {dropped}")),
            Effect::Iotlb {
                scope: "all".into(),
                removed: None,
            },
        ]
    }

    fn cfgi_cd(&self, sid: u32, ssid: u32, leaf: bool) -> Vec<Effect> {
        let dropped = self.config_invalidate_cd(sid, Some(ssid), leaf);
        vec![Effect::Config(format!(
            "SID={sid:#x} SSID={ssid:#x}{}: {dropped}",
            if leaf { "" } else { " (+L1 CD descriptor)" }
        ))]
    }

    fn cfgi_cd_all(&self, sid: u32) -> Vec<Effect> {
        let dropped = self.config_invalidate_cd(sid, None, false);
        vec![Effect::Config(format!("SID={sid:#x} all CDs: {dropped}"))]
    }

    /// CMD_SYNC: every earlier command has completed; signal per CS (smmuv3.md §8.4).
    ///
    /// An invalidation is complete only once the transactions that used the old translation
    /// have completed (IHI 0070 §3.21), so the sync first waits for every DMA that pinned the
    /// IOTLB ([`DmaTranslator::pin`](viommu_common::traits::DmaTranslator::pin), held by
    /// `viommu_common::vmm::EndpointIommu` for the duration of each access) before the sync
    /// started. This holds the consuming thread for as long as such accesses last (a memory
    /// copy); translation itself takes none of the locks held here, so it cannot deadlock.
    fn cmd_sync(&self, s: &SyncCmd) -> Vec<Effect> {
        self.iotlb.synchronize();
        match s.cs {
            SyncSignal::None => vec![Effect::Sync("SIG_NONE: CONS passes".into())],
            // No wake-up event can reach a vCPU in WFE here; CONS passing is the completion
            // (accepted even without IDR0.SEV, as Linux requires).
            SyncSignal::Sev => vec![Effect::Sync("SIG_SEV: CONS passes".into())],
            SyncSignal::Irq => {
                let d = self.sync_signal(s.msi_addr, s.msi_data);
                vec![Effect::Sync(match d {
                    Delivery::Msi { addr, data } => {
                        format!("SIG_IRQ: MSI write {data:#x} -> {addr:#x}")
                    }
                    Delivery::Wired { line } => format!("SIG_IRQ: wired line {line}"),
                    Delivery::Suppressed => "SIG_IRQ: suppressed".into(),
                })]
            }
        }
    }
}
