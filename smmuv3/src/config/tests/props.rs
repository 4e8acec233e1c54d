//! Outcome-first property tests: generate the expected typed configuration,
//! encode it into STE/CD words with random garbage in every *unused* bit, decode, compare. And
//! garbage-input tests: random words and tables never panic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use viommu_common::addr::{pa_size_bits, Granule};
use viommu_common::id::{Asid, Vmid};
use viommu_common::mem;
use viommu_common::testing::guest_ram;
use viommu_common::walk::{Stage1Config, Stage2Config};

use super::hitless::{cd_used, ste_used};
use super::*;
use crate::config::cd::decode_cd;
use crate::config::ste::{decode_ste, StreamTable};
use crate::config::{
    AtsMode, CdTableFormat, ContextConfig, Regime, S1Config, S1Dss as Dss, S2Config, StreamAttrs,
    StreamConfig, TranslateConfig,
};
use crate::spec::cd::{Cd, CdW1, CdW2};
use crate::spec::regs::{StrtabBase, StrtabBaseCfg};
use crate::spec::ste::Ste;

const CASES: usize = 20_000;

/// Fill every bit `used` does not cover with random garbage.
fn garble(rng: &mut StdRng, w: [u64; 8], used: [u64; 8]) -> [u64; 8] {
    let mut out = w;
    for i in 0..8 {
        out[i] = (w[i] & used[i]) | (rng.random::<u64>() & !used[i]);
    }
    out
}

fn gen_granule(rng: &mut StdRng) -> Granule {
    [Granule::K4, Granule::K16, Granule::K64][rng.random_range(0..3)]
}

/// A valid stage-2 configuration (rejection-sampled against the walker's rules) and its words.
fn gen_s2(rng: &mut StdRng, caps: &Caps) -> (S2Config, u64, u64) {
    loop {
        let granule = gen_granule(rng);
        let ps_code = rng.random_range(0..=5u8);
        let t0sz = rng.random_range(16..=39u8);
        let sl0 = rng.random_range(0..=2u8);
        let ps = pa_size_bits(ps_code).unwrap().min(caps.oas_bits());
        let ttb = rng.random::<u64>() & ((1u64 << ps) - 1) & !0xF;
        let mut walk = Stage2Config::new(granule, t0sz, sl0, ttb, ps);
        walk.affd = rng.random();
        let Ok(geometry) = walk.validate() else {
            continue;
        };
        let record = rng.random();
        let ptw = rng.random();
        let tg = match granule {
            Granule::K4 => S2Tg::TG_4K,
            Granule::K16 => S2Tg::TG_16K,
            Granule::K64 => S2Tg::TG_64K,
        };
        let w2 = SteW2::new()
            .with_s2t0sz(t0sz)
            .with_s2sl0(sl0)
            .with_s2tg(tg)
            .with_s2ps(ps_code)
            .with_s2aa64(true)
            .with_s2affd(walk.affd)
            .with_s2ptw(ptw)
            .with_s2r(record);
        let cfg = S2Config {
            walk,
            geometry,
            record,
            stall: false,
            ptw,
        };
        return (cfg, w2.raw(), ttb);
    }
}

/// A valid stage-1 STE part and its w0/w1 fields.
fn gen_s1(rng: &mut StdRng, nested: bool) -> (S1Config, u64, u64) {
    let cd_max_bits = rng.random_range(0..=20u32);
    let fmt = rng.random_range(0..=2u8);
    let dss = rng.random_range(0..=2u8);
    let ptr = rng.random::<u64>()
        & if nested {
            0x000F_FFFF_FFFF_FFC0
        } else {
            0x0000_FFFF_FFFF_FFC0
        };
    let format = if cd_max_bits == 0 {
        CdTableFormat::Single
    } else {
        match fmt {
            0 => CdTableFormat::Linear,
            1 => CdTableFormat::TwoLevel { leaf_bits: 6 },
            _ => CdTableFormat::TwoLevel { leaf_bits: 10 },
        }
    };
    // A table aligned to its size (the architecture requires it; see the alignment unit tests
    // for what happens otherwise).
    let table_bytes_log2 = match format {
        CdTableFormat::Single => 6,
        CdTableFormat::Linear => 6 + cd_max_bits,
        CdTableFormat::TwoLevel { leaf_bits } => (3 + cd_max_bits).saturating_sub(leaf_bits).max(6),
    };
    let ptr = ptr & !((1u64 << table_bytes_log2) - 1);
    let dss_dec = if cd_max_bits == 0 {
        Dss::Substream0
    } else {
        [Dss::Terminate, Dss::Bypass, Dss::Substream0][dss as usize]
    };
    let w0 = Ste::from_words([
        SteW0::new()
            .with_v(true)
            .with_s1fmt(S1Fmt(fmt))
            .with_s1cdmax(cd_max_bits as u8)
            .raw(),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ])
    .with_s1_context_ptr(ptr)
    .w0
    .raw();
    let w1 = SteW1::new()
        .with_s1dss(S1Dss(dss))
        .with_s1cir(Cacheability(rng.random_range(0..4)))
        .raw();
    let cfg = s1(format, cd_max_bits, dss_dec, ptr);
    (cfg, w0, w1)
}

/// Generated STE configurations decode to exactly what was generated, whatever the unused bits.
#[test]
fn test_prop_ste_decode_recovers_config() {
    let caps = caps();
    let mut rng = StdRng::seed_from_u64(0x57E);
    for _ in 0..CASES {
        let kind = rng.random_range(0..5u8);
        let (expected, words) = match kind {
            0 => {
                let cfg = rng.random_range(0..4u64);
                (StreamConfig::Abort, [1 | cfg << 1, 0, 0, 0, 0, 0, 0, 0])
            }
            1 => (
                StreamConfig::Bypass(StreamAttrs::INCOMING),
                [0x9, 0, 0, 0, 0, 0, 0, 0],
            ),
            _ => {
                let use_s1 = kind != 3;
                let use_s2 = kind != 2;
                let mut w = [0u64; 8];
                let config = match (use_s1, use_s2) {
                    (true, false) => SteConfig::S1_TRANS,
                    (false, true) => SteConfig::S2_TRANS,
                    _ => SteConfig::NESTED,
                };
                let vmid: u16 = rng.random();
                w[2] = SteW2::new().with_s2vmid(vmid).raw();
                let s1 = use_s1.then(|| {
                    let (c, w0, w1) = gen_s1(&mut rng, use_s2);
                    w[0] |= w0;
                    w[1] |= w1;
                    c
                });
                let s2 = use_s2.then(|| {
                    let (c, w2, ttb) = gen_s2(&mut rng, &caps);
                    w[2] |= w2;
                    w[3] = ttb;
                    c
                });
                w[0] |= SteW0::new().with_v(true).with_config(config).raw();
                let t = TranslateConfig {
                    s1,
                    s2,
                    vmid: Vmid(vmid),
                    regime: Regime::El1,
                    ats: AtsMode::Abort,
                    attrs: StreamAttrs::INCOMING,
                };
                (StreamConfig::Translate(t), w)
            }
        };
        // Linux's used bits, plus the stage-2 fields the architecture defines and Linux never
        // sets (S2AFFD, S2HD, S2HA): this model honours them.
        let mut used = ste_used(&words);
        if SteW0::from_raw(words[0]).config().s1_used() {
            // S1ContextPtr is [55:6] architecturally (Linux's mask stops at 51).
            used[0] |= 0x00F0_0000_0000_0000;
        }
        if SteW0::from_raw(words[0]).config().s2_used() {
            used[2] |= SteW2::new()
                .with_s2affd(true)
                .with_s2hd(true)
                .with_s2ha(true)
                .raw();
        }
        let words = garble(&mut rng, words, used);
        let got = decode_ste(&Ste::from_words(words), &caps);
        assert_eq!(got, Ok(expected), "words {words:#x?}");
    }
}

fn gen_region(rng: &mut StdRng, caps: &Caps, upper: bool) -> (Stage1Config, u8, u8, u64) {
    loop {
        let granule = gen_granule(rng);
        let txsz = rng.random_range(16..=39u8);
        let ips = rng.random_range(0..=5u8);
        let ttb = rng.random::<u64>() & 0x000F_FFFF_FFFF_FFF0;
        let oas = pa_size_bits(ips).unwrap().min(caps.oas_bits());
        let mut r = Stage1Config::new(granule, txsz, ttb, oas);
        r.upper = upper;
        if r.validate().is_err() {
            continue;
        }
        return (r, txsz, ips, ttb);
    }
}

/// Generated CDs decode to exactly what was generated.
#[test]
fn test_prop_cd_decode_recovers_config() {
    let caps = caps();
    let s1 = single();
    let mut rng = StdRng::seed_from_u64(0xCD);
    for _ in 0..CASES {
        // One IPS for both regions (it is a single CD field).
        let (mut r0, t0sz, ips, ttb0) = gen_region(&mut rng, &caps, false);
        let oas = pa_size_bits(ips).unwrap().min(caps.oas_bits());
        let (mut r1, t1sz, ttb1) = loop {
            let (mut r, t, _, b) = gen_region(&mut rng, &caps, true);
            r.oas_bits = oas;
            if r.validate().is_ok() {
                break (r, t, b);
            }
        };
        r0.oas_bits = oas;
        // TTBx must lie within the effective IPS (shared by both regions).
        let ttb0 = ttb0 & ((1u64 << oas) - 1);
        let ttb1 = ttb1 & ((1u64 << oas) - 1);
        r0.ttb = ttb0;
        r1.ttb = ttb1;
        if r0.validate().is_err() {
            continue;
        }
        let mair: u64 = rng.random();
        let asid: u16 = rng.random();
        let (tbi0, tbi1, affd, wxn, pan, had0, had1) = (
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
        );
        let (record, abort, aset) = (rng.random(), rng.random(), rng.random());
        for (r, tbi, had) in [(&mut r0, tbi0, had0), (&mut r1, tbi1, had1)] {
            r.tbi = tbi;
            r.affd = affd;
            r.wxn = wxn;
            r.pan = pan;
            r.mair = mair;
            r.hpd = had;
        }
        let tg0 = match r0.granule {
            Granule::K4 => Tg0::TG0_4K,
            Granule::K16 => Tg0::TG0_16K,
            Granule::K64 => Tg0::TG0_64K,
        };
        let tg1 = match r1.granule {
            Granule::K4 => Tg1::TG1_4K,
            Granule::K16 => Tg1::TG1_16K,
            Granule::K64 => Tg1::TG1_64K,
        };
        let w0 = CdW0::new()
            .with_t0sz(t0sz)
            .with_tg0(tg0)
            .with_t1sz(t1sz)
            .with_tg1(tg1)
            .with_v(true)
            .with_ips(ips)
            .with_affd(affd)
            .with_wxn(wxn)
            .with_tbi0(tbi0)
            .with_tbi1(tbi1)
            .with_pan(pan)
            .with_aa64(true)
            .with_r(record)
            .with_a(abort)
            .with_aset(aset)
            .with_asid(asid);
        let w1 = Cd::default().with_ttb0(ttb0).w1.raw() | CdW1::new().with_had0(had0).raw();
        let w2 = Cd::default().with_ttb1(ttb1).w2.raw() | CdW2::new().with_had1(had1).raw();
        let words = [w0.raw(), w1, w2, mair, rng.random(), rng.random(), 0, 0];
        let expected = ContextConfig {
            asid: Asid(asid),
            regions: [r0, r1],
            record,
            stall: false,
            abort,
            aset,
        };
        assert_eq!(
            decode_cd(&Cd::from_words(words), &caps, &s1),
            Ok(expected),
            "words {words:#x?}"
        );
        // With EPD0 the TTB0 fields are unused: garbage there changes nothing.
        let mut e = words;
        e[0] = CdW0::from_raw(e[0]).with_epd0(true).raw();
        let base = decode_cd(&Cd::from_words(e), &caps, &s1);
        let g = garble(&mut rng, e, cd_used(&e));
        assert_eq!(decode_cd(&Cd::from_words(g), &caps, &s1), base);
    }
}

/// Random STE and CD words never panic; they decode to a configuration or an error.
#[test]
fn test_prop_garbage_entries_never_panic() {
    let all = [caps(), kunit_caps()];
    let mut rng = StdRng::seed_from_u64(0x6A5);
    let s1 = S1Config {
        cd_table: 0,
        format: CdTableFormat::Linear,
        cd_max_bits: 8,
        dss: Dss::Bypass,
        stall_disabled: true,
        pa_bits: 48,
    };
    let mut decoded = 0;
    for i in 0..CASES * 5 {
        let mut w: [u64; 8] = rng.random();
        if i % 2 == 0 {
            w[0] |= 1; // valid, random Config
            w[2] |= 1 << 51; // S2AA64
        }
        let caps = &all[i % 2];
        if let Ok(StreamConfig::Translate(t)) = decode_ste(&Ste::from_words(w), caps) {
            decoded += 1;
            if let Some(s1) = t.s1 {
                let _ = s1.substream(Some(viommu_common::id::SubstreamId(rng.random())));
            }
        }
        let mut c: [u64; 8] = rng.random();
        if i % 2 == 0 {
            c[0] |= 1 << 31 | 1 << 41;
        }
        let _ = decode_cd(&Cd::from_words(c), caps, &s1);
    }
    assert!(decoded > 0);
}

/// Random stream tables and CD tables in guest memory never panic or read outside RAM.
#[test]
fn test_prop_garbage_tables_never_panic() {
    const RAM: u64 = 0x4000_0000;
    let m = guest_ram(RAM, 0x1_0000);
    let mut rng = StdRng::seed_from_u64(0x7AB);
    let caps = kunit_caps();
    for round in 0..100 {
        // Random memory, with pointers biased into RAM.
        for a in (0..0x1_0000u64).step_by(8) {
            let mut v: u64 = rng.random();
            if rng.random_bool(0.5) {
                v = (v & 0xFFF0_0000_0000_FFFF) | RAM;
            }
            mem::write_u64_le(&m, RAM + a, v).unwrap();
        }
        let base = if round % 4 == 0 {
            rng.random()
        } else {
            RAM + rng.random_range(0..0x1_0000)
        };
        let t = StreamTable::new(
            StrtabBase::from_bits(base),
            StrtabBaseCfg::from_bits(rng.random()),
            &caps,
        );
        for _ in 0..200 {
            let sid: u32 = if rng.random() {
                rng.random()
            } else {
                rng.random_range(0..4096)
            };
            if let Ok(StreamConfig::Translate(tc)) = t.lookup(&m, sid, &caps) {
                if let Some(s1) = tc.s1 {
                    let idx = rng.random_range(0..64u32);
                    let _ = s1.lookup_cd(&m, idx, None, &caps);
                }
            }
        }
    }
}
