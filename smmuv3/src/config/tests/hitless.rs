//! Hitless STE/CD updates (Linux arm-smmu-v3.c): the Linux driver's `arm_smmu_write_entry`
//! algorithm replayed step by step, decoding the entry at every CFGI + CMD_SYNC. In a hitless
//! transition every intermediate decodes to the old or the new configuration; in a breaking one the
//! only other allowed state is the V = 0 entry. Sync counts match Linux's KUnit tests
//! (arm-smmu-v3-test.c), which cross-checks the used-bits model below against Linux's.

use super::*;
use crate::config::cd::decode_cd;
use crate::config::ste::decode_ste;
use crate::config::{CdTableFormat, ConfigError, S1Dss as Dss};
use crate::spec::cd::{Cd, CdW1};
use crate::spec::ste::{Ste, SteW3};

/// `arm_smmu_get_ste_used` as the Linux driver computes it.
pub(super) fn ste_used(e: &[u64; 8]) -> [u64; 8] {
    let mut u = [0u64; 8];
    let w0 = SteW0::from_raw(e[0]);
    u[0] = SteW0::new().with_v(true).raw();
    if !w0.v() {
        return u;
    }
    u[0] |= SteW0::new().with_config(SteConfig(7)).raw();
    let cfg = w0.config();
    if cfg.0 & 1 != 0 && cfg.0 & 0b100 != 0 {
        u[0] |= SteW0::new().with_s1fmt(S1Fmt(3)).with_s1cdmax(31).raw() | 0x000F_FFFF_FFFF_FFC0;
        u[1] |= SteW1::new()
            .with_s1dss(S1Dss(3))
            .with_s1cir(Cacheability(3))
            .with_s1cor(Cacheability(3))
            .with_s1csh(Shareability(3))
            .with_s1stalld(true)
            .with_strw(crate::spec::ste::Strw(3))
            .with_eats(Eats(3))
            .with_mev(true)
            .raw();
        u[2] |= SteW2::new().with_s2vmid(0xFFFF).raw();
        if SteW1::from_raw(e[1]).s1dss() == S1Dss::BYPASS {
            u[1] |= SteW1::new().with_shcfg(Shareability(3)).raw();
        }
    }
    if cfg.0 & 2 != 0 && cfg.0 & 0b100 != 0 {
        u[1] |= SteW1::new()
            .with_s2fwb(true)
            .with_eats(Eats(3))
            .with_shcfg(Shareability(3))
            .with_mev(true)
            .raw();
        u[2] |= SteW2::new().with_s2vmid(0xFFFF).raw()
            | 0x7_FFFF << 32 // VTCR [50:32]
            | SteW2::new()
                .with_s2aa64(true)
                .with_s2endi(true)
                .with_s2ptw(true)
                .with_s2s(true)
                .with_s2r(true)
                .raw();
        u[3] |= SteW3::new().with_s2ttb_hi((1 << 48) - 1).raw();
    }
    if cfg == SteConfig::BYPASS {
        u[1] |= SteW1::new().with_shcfg(Shareability(3)).raw();
    }
    u
}

/// `arm_smmu_get_cd_used`: V only when invalid, else everything except the TTB0 region's
/// fields when EPD0 = 1.
pub(super) fn cd_used(e: &[u64; 8]) -> [u64; 8] {
    let w0 = CdW0::from_raw(e[0]);
    if !w0.v() {
        return [CdW0::new().with_v(true).raw(), 0, 0, 0, 0, 0, 0, 0];
    }
    let mut u = [u64::MAX; 8];
    if w0.epd0() {
        u[0] &= !CdW0::new()
            .with_t0sz(63)
            .with_tg0(Tg0(3))
            .with_ir0(Cacheability(3))
            .with_or0(Cacheability(3))
            .with_sh0(Shareability(3))
            .raw();
        u[1] &= !CdW1::new().with_ttb0_hi((1 << 48) - 1).raw();
    }
    u
}

/// Write qwords `[start, start + len)` of `target` into `entry`; one sync if anything changed.
fn entry_set(
    entry: &mut [u64; 8],
    target: &[u64; 8],
    start: usize,
    len: usize,
    syncs: &mut usize,
    on_sync: &mut dyn FnMut(&[u64; 8]),
) {
    let mut changed = false;
    for i in start..start + len {
        if entry[i] != target[i] {
            entry[i] = target[i];
            changed = true;
        }
    }
    if changed {
        *syncs += 1;
        on_sync(entry);
    }
}

/// `arm_smmu_write_entry`; returns the number of syncs.
fn write_entry(
    entry: &mut [u64; 8],
    target: [u64; 8],
    used: fn(&[u64; 8]) -> [u64; 8],
    v_bit: u64,
    on_sync: &mut dyn FnMut(&[u64; 8]),
) -> usize {
    let cur_used = used(entry);
    let target_used = used(&target);
    let mut unused_update = [0u64; 8];
    let mut diff = 0u32;
    for i in 0..8 {
        unused_update[i] = (entry[i] & cur_used[i]) | (target[i] & !cur_used[i]);
        if (unused_update[i] & target_used[i]) != target[i] {
            diff |= 1 << i;
        }
    }
    let mut syncs = 0;
    if diff.count_ones() == 1 {
        let critical = diff.trailing_zeros() as usize;
        unused_update[critical] = entry[critical];
        entry_set(entry, &unused_update, 0, 8, &mut syncs, on_sync);
        entry_set(entry, &target, critical, 1, &mut syncs, on_sync);
        entry_set(entry, &target, 0, 8, &mut syncs, on_sync);
    } else if diff != 0 {
        unused_update[0] = entry[0] & !v_bit;
        entry_set(entry, &unused_update, 0, 1, &mut syncs, on_sync);
        entry_set(entry, &target, 1, 7, &mut syncs, on_sync);
        entry_set(entry, &target, 0, 1, &mut syncs, on_sync);
    } else {
        entry_set(entry, &target, 0, 8, &mut syncs, on_sync);
    }
    syncs
}

/// Replay an STE transition; assert every intermediate and the sync count.
fn ste_transition(from: [u64; 8], to: [u64; 8], hitless: bool, syncs: Option<usize>) {
    let caps = kunit_caps();
    let dec = |w: &[u64; 8]| decode_ste(&Ste::from_words(*w), &caps);
    let old = dec(&from);
    let new = dec(&to);
    assert!(
        old.is_ok() && new.is_ok(),
        "fixtures must be valid: {old:?} {new:?}"
    );
    let mut entry = from;
    let mut seen = Vec::new();
    let n = write_entry(&mut entry, to, ste_used, 1, &mut |e| seen.push(dec(e)));
    assert_eq!(entry, to);
    for (step, d) in seen.iter().enumerate() {
        let ok = *d == old
            || *d == new
            || (!hitless && matches!(d, Err(ConfigError::BadSte { why: "V = 0" })));
        assert!(ok, "step {step}: {d:?} is neither {old:?} nor {new:?}");
    }
    if let Some(s) = syncs {
        assert_eq!(n, s, "sync count");
    }
}

/// Both directions of a transition.
fn ste_both_ways(a: [u64; 8], b: [u64; 8], hitless: bool, syncs: Option<usize>) {
    ste_transition(a, b, hitless, syncs);
    ste_transition(b, a, hitless, syncs);
}

fn s2_ats() -> [u64; 8] {
    s2_ste(0, 0x4_0000_0000, true, false, true)
}

/// bypass <-> abort: hitless, 2 syncs each way.
#[test]
fn test_hitless_bypass_abort() {
    ste_both_ways(bypass(true), ABORT, true, Some(2));
}

/// CD table (SSID0, ATS) <-> abort: hitless, 2 syncs each way.
#[test]
fn test_hitless_cdtable_abort() {
    ste_both_ways(
        CdTableSte::kunit(S1Dss::SSID0).words(),
        ABORT,
        true,
        Some(2),
    );
}

/// CD table -> bypass and bypass -> CD table: hitless, 3 syncs.
#[test]
fn test_hitless_cdtable_bypass() {
    ste_both_ways(
        CdTableSte::kunit(S1Dss::SSID0).words(),
        bypass(true),
        true,
        Some(3),
    );
}

/// CD table S1DSS = SSID0 <-> S1DSS = BYPASS: hitless, 1 sync.
#[test]
fn test_hitless_cdtable_s1dss_change() {
    ste_both_ways(
        CdTableSte::kunit(S1Dss::SSID0).words(),
        CdTableSte::kunit(S1Dss::BYPASS).words(),
        true,
        Some(1),
    );
}

/// CD table S1DSS = BYPASS <-> bypass STE: hitless, 2 syncs.
#[test]
fn test_hitless_cdtable_s1dss_bypass_to_bypass() {
    ste_both_ways(
        CdTableSte::kunit(S1Dss::BYPASS).words(),
        bypass(true),
        true,
        Some(2),
    );
}

/// S2 (ATS) <-> abort and S2 (ATS) <-> bypass: hitless, 2 syncs.
#[test]
fn test_hitless_s2_abort_bypass() {
    ste_both_ways(s2_ats(), ABORT, true, Some(2));
    ste_both_ways(s2_ats(), bypass(true), true, Some(2));
}

/// S1 CD table <-> S2 (ATS), S1 CD table <-> S2 (STALL): hitless, 3 syncs.
#[test]
fn test_hitless_s1_s2() {
    ste_both_ways(
        CdTableSte::kunit(S1Dss::SSID0).words(),
        s2_ats(),
        true,
        Some(3),
    );
    let mut nostall = CdTableSte::kunit(S1Dss::SSID0);
    nostall.ats = false;
    ste_both_ways(
        nostall.words(),
        s2_ste(0, 0x4_0000_0000, false, true, true),
        true,
        Some(3),
    );
}

/// CD table (SSID0, ptr A) -> CD table (BYPASS, ptr 0x4B4B4B4B4B): breaking, 3 syncs; the only
/// intermediate besides old/new is V = 0.
#[test]
fn test_breaking_cdtable_pointer_change() {
    let mut to = CdTableSte::kunit(S1Dss::BYPASS);
    to.ptr = 0x4B_4B4B_4B40;
    ste_transition(
        CdTableSte::kunit(S1Dss::SSID0).words(),
        to.words(),
        false,
        Some(3),
    );
}

/// Nested CD table (Config 7, S1DSS = BYPASS) <-> plain S2 (dev-branch transitions): every
/// intermediate is old, new or V = 0 (sync counts differ with the update-safe-bits rule, so
/// they are not pinned).
#[test]
fn test_hitless_nested_s2() {
    let mut nested = s2_ste(0, 0x4_0000_0000, true, false, true);
    let mut s1 = CdTableSte::kunit(S1Dss::BYPASS);
    s1.config = SteConfig::NESTED;
    let s1w = s1.words();
    nested[0] = s1w[0];
    nested[1] |= s1w[1] | SteW1::new().with_mev(true).raw();
    ste_transition(nested, s2_ats(), false, None);
    ste_transition(s2_ats(), nested, false, None);
}

fn cd_transition(from: [u64; 8], to: [u64; 8], hitless: bool, syncs: usize) {
    let caps = kunit_caps();
    let s1 = s1(CdTableFormat::Linear, 4, Dss::Substream0, 0);
    let dec = |w: &[u64; 8]| decode_cd(&Cd::from_words(*w), &caps, &s1);
    let old = dec(&from);
    let new = dec(&to);
    let v_bit = CdW0::new().with_v(true).raw();
    let mut entry = from;
    let mut seen = Vec::new();
    let n = write_entry(&mut entry, to, cd_used, v_bit, &mut |e| seen.push(dec(e)));
    assert_eq!(entry, to);
    for (step, d) in seen.iter().enumerate() {
        let ok = *d == old
            || *d == new
            || (!hitless && matches!(d, Err(ConfigError::BadCd { why: "V = 0" })));
        assert!(ok, "step {step}: {d:?} is neither {old:?} nor {new:?}");
    }
    assert_eq!(n, syncs, "sync count");
}

/// The SVA CD (`arm_smmu_make_sva_cd`): 48-bit VA, 4K, WBWA/IS, EPD1, ASID, TTB0 = pgd.
fn sva_cd() -> [u64; 8] {
    let mut w = s1_cd(0x42, 0x4_0000_1000, 16, 5);
    w[3] = 0x0000_00FF_440C_0400; // a CPU MAIR_EL1
    w
}

/// The released-mm SVA CD: EPD0 = 1, no TTB0/TCR fields, S = R = 0.
fn released_sva_cd() -> [u64; 8] {
    let mut w = sva_cd();
    w[0] = CdW0::from_raw(w[0])
        .with_epd0(true)
        .with_t0sz(0)
        .with_tg0(Tg0(0))
        .with_ir0(Cacheability(0))
        .with_or0(Cacheability(0))
        .with_sh0(Shareability(0))
        .with_r(false)
        .raw();
    w[1] = 0;
    w
}

/// CD zero <-> S1 CD: breaking, 2 syncs each way.
#[test]
fn test_cd_zero_s1_breaking() {
    let cd = s1_cd(1997, 0x4_0000_2000, 16, 5);
    cd_transition([0; 8], cd, false, 2);
    cd_transition(cd, [0; 8], false, 2);
}

/// S1 CD ASID 778 <-> 1997: hitless, 1 sync.
#[test]
fn test_cd_asid_change_hitless() {
    let a = s1_cd(778, 0x4_0000_2000, 16, 5);
    let b = s1_cd(1997, 0x4_0000_2000, 16, 5);
    cd_transition(a, b, true, 1);
    cd_transition(b, a, true, 1);
}

/// CD zero <-> SVA CD: breaking, 2 syncs; SVA CD <-> released SVA CD (EPD0): hitless, 2 syncs.
#[test]
fn test_cd_sva_transitions() {
    cd_transition([0; 8], sva_cd(), false, 2);
    cd_transition(sva_cd(), [0; 8], false, 2);
    cd_transition(sva_cd(), released_sva_cd(), true, 2);
    cd_transition(released_sva_cd(), sva_cd(), true, 2);
}
