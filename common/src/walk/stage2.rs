//! Stage-2 walk: IPA range check, table walk from S2TTB, S2AP/XN permissions, access flag and
//! dirty state (Arm ARM D8.2, D8.4.3 "Stage 2 data access permissions", D8.4.4 execute-never
//! with FEAT_XNX, D8.4.6 HTTU; IHI 0070 §3.13, §5.2 STE.S2*).

use vm_memory::GuestMemoryBackend;

use crate::access::{AccessKind, Perms};
use crate::addr::low_mask;
use crate::mem::cmpxchg_u64_le;

use super::attrs::s2_attrs;
use super::config::Stage2Config;
use super::desc::{uses_pa52, S2Leaf};
use super::engine::{walk_tables, WalkParams};
use super::fault::{Stage, WalkFault, WalkFaultKind};
use super::{PrivPerms, WalkResult, HTTU_MAX_ATTEMPTS};

/// Stage-2 permissions of a leaf for both privileges.
///
/// Read needs S2AP\[0\], write S2AP\[1\]. Without FEAT_XNX, XN\[1\] (bit 54) forbids execution;
/// with it, XN\[1:0\] = 00 executable at both privileges, 01 unprivileged only, 10 neither,
/// 11 privileged only.
pub(crate) const fn s2_perms(d: S2Leaf, xnx: bool) -> PrivPerms {
    let mut data = Perms::NONE;
    if d.s2ap_read() {
        data = data.union(Perms::R);
    }
    if d.s2ap_write() {
        data = data.union(Perms::W);
    }
    let xn = d.xn();
    let (px, ux) = if xnx {
        match xn {
            0b00 => (true, true),
            0b01 => (false, true),
            0b10 => (false, false),
            _ => (true, false),
        }
    } else {
        let x = xn & 0b10 == 0;
        (x, x)
    };
    PrivPerms {
        privileged: if px { data.union(Perms::X) } else { data },
        unprivileged: if ux { data.union(Perms::X) } else { data },
    }
}

/// See [`super::walk_stage2`].
pub(crate) fn walk<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    cfg: &Stage2Config,
    ipa: u64,
    access: AccessKind,
    privileged: bool,
) -> Result<WalkResult, WalkFault> {
    let fault = |kind, level| WalkFault::new(kind, Stage::S2, level).with_ipa(ipa);
    let geo = cfg
        .validate()
        .map_err(|e| fault(WalkFaultKind::InvalidConfig(e), 0))?;
    // IHI 0070 §3.4: an IPA at or above 2^(64 - S2T0SZ) is a stage-2 translation fault; the
    // Arm ARM reports it at level 0.
    if ipa >> geo.ia_bits != 0 {
        return Err(fault(WalkFaultKind::Translation, 0));
    }
    let params = WalkParams {
        geo,
        root: cfg.vttb,
        oas_bits: cfg.effective_ps(),
        pa52: uses_pa52(cfg.granule, cfg.effective_ps()),
        stage: Stage::S2,
    };
    // HD is effective only together with HA.
    let hd = cfg.ha && cfg.hd;
    let mut lost = WalkFaultKind::AccessFlag;
    let mut lost_level = 0;
    for _ in 0..HTTU_MAX_ATTEMPTS {
        let leaf = walk_tables(mem, &params, ipa, |a, _| Ok(a)).map_err(|f| f.with_ipa(ipa))?;
        let d = S2Leaf::from_bits(leaf.raw);
        let mut new = d;
        if !d.af() {
            if cfg.ha {
                new.set_af(true);
            } else if !cfg.affd {
                return Err(fault(WalkFaultKind::AccessFlag, leaf.level));
            }
        }
        let perms = s2_perms(d, cfg.xnx);
        if !perms.get(privileged).allows(access) {
            // Writable-clean: DBM with HD lets a write through by setting S2AP[1].
            if access.is_write() && hd && d.dbm() && !d.s2ap_write() {
                new.set_s2ap_write(true);
            } else {
                return Err(fault(WalkFaultKind::Permission, leaf.level));
            }
        }
        if new != d {
            match cmpxchg_u64_le(mem, leaf.desc_pa, leaf.raw, new.into_bits()) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    lost = if d.af() || !cfg.ha {
                        WalkFaultKind::Permission
                    } else {
                        WalkFaultKind::AccessFlag
                    };
                    lost_level = leaf.level;
                    continue;
                }
                Err(_) => {
                    let fetch_addr = leaf.desc_pa;
                    return Err(fault(
                        WalkFaultKind::ExternalAbort { fetch_addr },
                        leaf.level,
                    ));
                }
            }
        }
        let by_privilege = s2_perms(new, cfg.xnx);
        return Ok(WalkResult {
            output: leaf.oa_base | (ipa & low_mask(leaf.size_log2)),
            size_log2: leaf.size_log2,
            level: leaf.level,
            perms: by_privilege.get(privileged),
            by_privilege,
            attrs: s2_attrs(new.mem_attr(), new.sh(), cfg.fwb),
            global: true,
            writable_clean: hd && new.dbm() && !new.s2ap_write(),
            ipa: None,
        });
    }
    // Policy: after HTTU_MAX_ATTEMPTS lost races, take the fault HTTU would have avoided.
    Err(fault(lost, lost_level))
}
