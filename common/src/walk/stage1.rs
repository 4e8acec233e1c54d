//! Stage-1 walk: region and TBI range check, table walk (optionally nested through stage 2),
//! AP\[2:1\]/PXN/UXN permissions with hierarchical controls, WXN and PAN, access flag and dirty
//! state (Arm ARM D8.2, D8.4.1 "Stage 1 data access permissions", D8.4.2 hierarchical
//! permissions, D8.4.4 execute-never, D8.4.6 HTTU, D8.8 TBI; IHI 0070 §3.4, §3.13,
//! §5.4 CD fields, §5.2 STE.Config = 0b111 for nesting).

use vm_memory::GuestMemoryBackend;

use crate::access::{AccessKind, Perms};
use crate::addr::low_mask;
use crate::mem::cmpxchg_u64_le;

use super::attrs::{combine, s1_attrs};
use super::config::Stage1Config;
use super::desc::{uses_pa52, S1Leaf};
use super::engine::{walk_tables, Hierarchy, WalkParams};
use super::fault::{FaultClass, Stage, WalkFault, WalkFaultKind};
use super::{PrivPerms, Stage2Hook, WalkResult, HTTU_MAX_ATTEMPTS};

/// True if `va` lies in the region: bits \[63:ia\] (\[55:ia\] with TBI) all equal to the
/// region's selector (0 for TTB0, 1 for TTB1). IHI 0070 §3.4.1, Arm ARM D8.2.
pub(crate) const fn va_in_range(cfg: &Stage1Config, ia_bits: u32, va: u64) -> bool {
    let top = if cfg.tbi { 56 } else { 64 };
    // Bits [top-1 : ia_bits]; ia_bits < 56 is guaranteed by validate().
    let width = top - ia_bits;
    let bits = (va >> ia_bits) & low_mask(width);
    if cfg.upper {
        bits == low_mask(width)
    } else {
        bits == 0
    }
}

/// Stage-1 permissions of a leaf for both privileges (EL1&0-style regime with two privilege
/// levels).
///
/// AP\[2:1\] after APTable (bit 62 forces read-only, bit 61 removes unprivileged access):
/// privileged always reads and writes unless read-only; unprivileged needs AP\[1\]. Execute:
/// unprivileged unless UXN/UXNTable or (WXN and unprivileged-writable); privileged unless
/// PXN/PXNTable, or unprivileged-writable (always PXN, Arm ARM D8.4.4), or (WXN and writable).
/// PAN removes privileged data access to unprivileged-readable pages.
#[inline]
pub(crate) const fn s1_perms(cfg: &Stage1Config, d: S1Leaf, hier: Hierarchy) -> PrivPerms {
    let hier = if cfg.hpd { Hierarchy::NONE } else { hier };
    let ro = d.ap_ro() || hier.no_write();
    let ur = d.ap_el0() && !hier.no_unpriv();
    let uw = ur && !ro;
    let pw = !ro;
    let ux = !(d.uxn() || hier.uxn() || (cfg.wxn && uw));
    let px = !(d.pxn() || hier.pxn() || uw || (cfg.wxn && pw));
    let pan = cfg.pan && ur;
    let mut p = Perms::NONE;
    if !pan {
        p = p.union(Perms::R);
        if pw {
            p = p.union(Perms::W);
        }
    }
    if px {
        p = p.union(Perms::X);
    }
    let mut u = Perms::NONE;
    if ur {
        u = u.union(Perms::R);
    }
    if uw {
        u = u.union(Perms::W);
    }
    if ux {
        u = u.union(Perms::X);
    }
    PrivPerms {
        privileged: p,
        unprivileged: u,
    }
}

/// Translate a stage-1 descriptor address through the hook (nested), as a read or an HTTU
/// write; a stage-2 fault becomes CLASS = TT.
#[inline]
fn desc_pa(s2: Option<Stage2Hook<'_>>, addr: u64, write: bool) -> Result<u64, WalkFault> {
    match s2 {
        None => Ok(addr),
        Some(hook) => {
            let access = if write {
                AccessKind::Write
            } else {
                AccessKind::Read
            };
            match hook(addr, access) {
                Ok(r) => Ok(r.output),
                Err(mut f) => {
                    f.class = FaultClass::Tt;
                    f.desc_write = write;
                    if f.ipa.is_none() {
                        f.ipa = Some(addr);
                    }
                    Err(f)
                }
            }
        }
    }
}

/// See [`super::walk_stage1`]. Inlined into its caller so the result is built in place.
#[inline(always)]
pub(crate) fn walk<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    cfg: &Stage1Config,
    va: u64,
    access: AccessKind,
    privileged: bool,
    s2: Option<Stage2Hook<'_>>,
) -> Result<WalkResult, WalkFault> {
    let fault = |kind, level| WalkFault::new(kind, Stage::S1, level);
    let geo = cfg
        .validate()
        .map_err(|e| fault(WalkFaultKind::InvalidConfig(e), 0))?;
    // EPDx and out-of-region inputs are translation faults (level 0), not address-size faults.
    if cfg.epd || !va_in_range(cfg, geo.ia_bits, va) {
        return Err(fault(WalkFaultKind::Translation, 0));
    }
    let params = WalkParams {
        geo,
        root: cfg.ttb,
        oas_bits: cfg.effective_oas(),
        pa52: uses_pa52(cfg.granule, cfg.effective_oas()),
        stage: Stage::S1,
    };
    // HD is effective only together with HA.
    let hd = cfg.ha && cfg.hd;
    let mut lost = WalkFaultKind::AccessFlag;
    let mut lost_level = 0;
    for _ in 0..HTTU_MAX_ATTEMPTS {
        let leaf = walk_tables(mem, &params, va, |a, _| desc_pa(s2, a, false))?;
        let d = S1Leaf::from_bits(leaf.raw);
        let mut new = d;
        if !d.af() {
            if cfg.ha {
                new.set_af(true);
            } else if !cfg.affd {
                return Err(fault(WalkFaultKind::AccessFlag, leaf.level));
            }
        }
        let perms = s1_perms(cfg, d, leaf.hier);
        if !perms.get(privileged).allows(access) {
            // Writable-clean: DBM with HD lets a permitted write through by clearing AP[2].
            let mut dirty = d;
            dirty.set_ap_ro(false);
            let dirty_ok = s1_perms(cfg, dirty, leaf.hier)
                .get(privileged)
                .allows(access);
            if access.is_write() && hd && d.dbm() && d.ap_ro() && dirty_ok {
                new.set_ap_ro(false);
            } else {
                return Err(fault(WalkFaultKind::Permission, leaf.level));
            }
        }
        if new != d {
            let pa = desc_pa(s2, leaf.desc_addr, true)?;
            match cmpxchg_u64_le(mem, pa, leaf.raw, new.into_bits()) {
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
                    return Err(fault(
                        WalkFaultKind::ExternalAbort { fetch_addr: pa },
                        leaf.level,
                    ));
                }
            }
        }
        // AF does not change permissions; only a dirty-state update (AP[2]) does.
        let by_privilege = if new.ap_ro() == d.ap_ro() {
            perms
        } else {
            s1_perms(cfg, new, leaf.hier)
        };
        let s1 = WalkResult {
            output: leaf.oa_base | (va & low_mask(leaf.size_log2)),
            size_log2: leaf.size_log2,
            level: leaf.level,
            perms: by_privilege.get(privileged),
            by_privilege,
            attrs: s1_attrs(cfg.mair, new.attr_indx(), new.sh()),
            global: !new.ng(),
            writable_clean: hd && new.dbm() && new.ap_ro(),
            ipa: None,
        };
        return match s2 {
            None => Ok(s1),
            Some(hook) => nest(s1, hook, access, privileged),
        };
    }
    // Policy: after HTTU_MAX_ATTEMPTS lost races, take the fault HTTU would have avoided.
    Err(fault(lost, lost_level))
}

/// Translate stage 1's output through stage 2 and combine the two results.
fn nest(
    s1: WalkResult,
    hook: Stage2Hook<'_>,
    access: AccessKind,
    privileged: bool,
) -> Result<WalkResult, WalkFault> {
    let s2 = hook(s1.output, access).map_err(|mut f| {
        f.class = FaultClass::In;
        f.desc_write = false;
        if f.ipa.is_none() {
            f.ipa = Some(s1.output);
        }
        f
    })?;
    let by_privilege = s1.by_privilege.intersect(s2.by_privilege);
    let attrs = combine(s1.attrs, s2.attrs);
    Ok(WalkResult {
        output: s2.output,
        size_log2: s1.size_log2.min(s2.size_log2),
        level: s1.level,
        perms: by_privilege.get(privileged),
        by_privilege,
        attrs,
        global: s1.global,
        writable_clean: s1.writable_clean || s2.writable_clean,
        ipa: Some(s1.output),
    })
}
