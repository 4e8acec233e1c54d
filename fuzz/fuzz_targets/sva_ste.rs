//! The SVA STE canonicaliser and the ID-register clamp on arbitrary words.
//!
//! The input is a host's `IOMMU_GET_HW_INFO` answer (raw IDRs, flags, PASID width, capability
//! bits), a VMM profile, guest STE words 0–1 and an endpoint's ATS flag. Checked:
//! - [`clamp`] never advertises more than the host: its result passes [`check_compatible`]
//!   against the same host and [`check_advertised`] in strict mode, and field by field
//!   (SSIDSIZE, OAS, granules, CD2L, ASID16, RIL, BBML, VAX, ST_LEVEL, ATS, TERM_MODEL) it is at
//!   most the host's;
//! - [`canonicalise`] (under a context made from arbitrary words, and under the one the clamped
//!   registers give) never panics, keeps only the fields the host kernel accepts, stays inside
//!   the advertised limits (S1CDMax, S1ContextPtr below the OAS, EATS only with ATS), and is
//!   idempotent: canonicalising its own output gives the same configuration.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use viommu_smmuv3::spec::ste::{SteW0, SteW1};
use viommu_sva::canon::{canonicalise, SteContext, StreamConfig};
use viommu_sva::caps::{
    check_advertised, check_compatible, clamp, Compat, GuestIdrs, GuestProfile, HostCaps,
};
use viommu_sva::spec::hwinfo::HwInfoArmSmmuv3;
use viommu_sva::spec::ste::{s1_context_ptr, NESTING_ALLOWED_W0, NESTING_ALLOWED_W1};

/// One input.
#[derive(Arbitrary, Debug)]
struct Input {
    /// Host `hw_info`: flags, reserved word, IDR0..5, IIDR, AIDR.
    flags: u32,
    reserved: u32,
    idr: [u32; 6],
    iidr: u32,
    aidr: u32,
    /// `out_max_pasid_log2`.
    max_pasid_log2: u8,
    /// `out_capabilities`.
    capabilities: u64,
    /// The VMM profile.
    sid_bits: u8,
    max_ssid_bits: u8,
    ipa_bits: u8,
    eventqs: u8,
    cmdqs: u8,
    msi: bool,
    ats: bool,
    /// Guest STE words 0 and 1.
    words: [u64; 2],
    /// A context not derived from any registers.
    oas_bits: u8,
    ssid_bits: u8,
    cd2l: bool,
    ctx_ats: bool,
    /// The endpoint supports ATS.
    endpoint_ats: bool,
}

/// An OAS code's size in bits, reserved codes counting as 32 (as the clamp reads them).
fn oas_bits(code: viommu_smmuv3::spec::idr::Oas) -> u32 {
    code.bits().unwrap_or(32)
}

/// Canonicalise `words` under `ctx` and check the result's invariants and idempotence.
fn check_canonical(words: [u64; 2], ctx: &SteContext) {
    let Ok(cfg) = canonicalise(words, ctx) else {
        return;
    };
    let StreamConfig::Translate(c) = cfg else {
        return;
    };
    let [w0, w1] = c.words();
    assert_eq!(
        w0 & !NESTING_ALLOWED_W0,
        0,
        "word 0 keeps a field the host refuses: {c:?}"
    );
    assert_eq!(
        w1 & !NESTING_ALLOWED_W1,
        0,
        "word 1 keeps a field the host refuses: {c:?}"
    );
    let (s0, s1) = (SteW0::from_raw(w0), SteW1::from_raw(w1));
    assert!(s0.v(), "canonical STE not valid: {c:?}");
    assert!(
        s0.s1cdmax() <= ctx.ssid_bits,
        "S1CDMax beyond SSIDSIZE: {c:?} {ctx:?}"
    );
    if ctx.oas_bits < 64 {
        assert_eq!(
            s1_context_ptr(s0) >> ctx.oas_bits,
            0,
            "S1ContextPtr beyond the OAS: {c:?} {ctx:?}"
        );
    }
    if !ctx.ats {
        assert_eq!(s1.eats().0, 0, "EATS without ATS: {c:?}");
    }
    assert_eq!(
        canonicalise(c.words(), ctx),
        Ok(cfg),
        "canonicalising twice differs from once: {words:x?} {ctx:?}"
    );
}

fuzz_target!(|inp: Input| {
    let ctx = SteContext {
        oas_bits: inp.oas_bits,
        ssid_bits: inp.ssid_bits,
        cd2l: inp.cd2l,
        ats: inp.ctx_ats,
    };
    check_canonical(inp.words, &ctx);

    let raw = HwInfoArmSmmuv3 {
        flags: inp.flags,
        reserved: inp.reserved,
        idr: inp.idr,
        iidr: inp.iidr,
        aidr: inp.aidr,
    };
    let host = HostCaps::new(raw, inp.max_pasid_log2, inp.capabilities);
    let profile = GuestProfile {
        sid_bits: inp.sid_bits,
        max_ssid_bits: inp.max_ssid_bits,
        ipa_bits: inp.ipa_bits,
        eventqs: inp.eventqs,
        cmdqs: inp.cmdqs,
        msi: inp.msi,
        ats: inp.ats,
    };
    let Ok(g) = clamp(&host, &profile) else {
        return;
    };
    check_clamped(&g, &host, &profile);
    let ctx = SteContext::from_guest(&g, inp.endpoint_ats);
    check_canonical(inp.words, &ctx);
});

/// The clamped registers advertise nothing the host (or the profile) lacks.
fn check_clamped(g: &GuestIdrs, host: &HostCaps, profile: &GuestProfile) {
    let why = |what: &str| format!("clamp advertises {what}: guest {g:x?}, host {host:x?}");
    assert_eq!(
        check_compatible(g, host),
        Ok(()),
        "{}",
        why("an incompatible set")
    );
    assert_eq!(
        check_advertised(g, Compat::Strict),
        Ok(()),
        "{}",
        why("a non-nestable feature")
    );
    let (g0, h0) = (g.idr0(), host.idr0());
    let (g1, h1) = (g.idr1(), host.idr1());
    let (g3, h3) = (g.idr3(), host.idr3());
    let (g5, h5) = (g.idr5(), host.idr5());
    assert!(g1.ssidsize() <= h1.ssidsize(), "{}", why("SSIDSIZE"));
    assert!(g1.ssidsize() <= host.max_pasid_log2, "{}", why("PASIDs"));
    assert!(
        g1.ssidsize() <= profile.max_ssid_bits,
        "{}",
        why("SSIDSIZE over the profile")
    );
    assert!(g5.oas().bits().is_some(), "{}", why("a reserved OAS"));
    assert!(oas_bits(g5.oas()) <= oas_bits(h5.oas()), "{}", why("OAS"));
    assert!(!g5.gran4k() || h5.gran4k(), "{}", why("GRAN4K"));
    assert!(!g5.gran16k() || h5.gran16k(), "{}", why("GRAN16K"));
    assert!(!g5.gran64k() || h5.gran64k(), "{}", why("GRAN64K"));
    assert!(!g5.ds() || h5.ds(), "{}", why("DS"));
    assert!(g5.vax() <= h5.vax(), "{}", why("VAX"));
    assert!(!g0.cd2l() || h0.cd2l(), "{}", why("CD2L"));
    assert!(!g0.asid16() || h0.asid16(), "{}", why("ASID16"));
    assert!(g0.st_level().0 <= h0.st_level().0, "{}", why("ST_LEVEL"));
    assert_eq!(
        g0.term_model(),
        h0.term_model(),
        "{}",
        why("another TERM_MODEL")
    );
    assert!(
        !g0.ats() || (profile.ats && !host.ats_not_supported()),
        "{}",
        why("ATS")
    );
    assert!(!g0.msi() || profile.msi, "{}", why("MSI"));
    assert!(!g3.ril() || h3.ril(), "{}", why("RIL"));
    assert!(g3.bbml() <= h3.bbml(), "{}", why("BBML"));
    assert!(!g0.s2p() && !g0.hyp() && !g0.vmid16(), "{}", why("stage 2"));
}
