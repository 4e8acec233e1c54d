//! Decoded configurations as fixed arrays of 64-bit words, so that the lock-free caches
//! ([`super::cache`], [`crate::route`]) can keep them in preallocated seqlock slots of atomics
//! instead of allocating a snapshot per insert.
//!
//! Each value (a decoded STE, a CD, a full route) has a word-aligned layout of bitfield words,
//! packed and unpacked with shifts. Only values produced by [`Packed::pack`] are ever unpacked
//! (a seqlock slot is read only when its sequence number proves the words consistent), but
//! unpacking is still total: an unknown enum code reads as `None`, never a panic.

use bitfield_struct::bitfield;
use viommu_common::addr::Granule;
use viommu_common::id::{Asid, Vmid};
use viommu_common::walk::{Stage1Config, Stage2Config, TableGeometry};

use super::{
    AtsMode, CdTableFormat, ContextConfig, Regime, S1Config, S1Dss, S2Config, StreamAttrs,
    StreamConfig, TranslateConfig,
};
use crate::spec::ste::{InstCfg, PrivCfg};
use crate::spec::Shareability;

/// Words per packed value (the largest, a full translating route, needs 10).
pub(crate) const WORDS: usize = 10;

/// The packed form of a value.
pub(crate) type Words = [u64; WORDS];

/// A value that round-trips through [`Words`].
pub(crate) trait Packed: Sized {
    /// The packed words.
    fn pack(&self) -> Words;
    /// The value [`Packed::pack`] packed (`None` for codes `pack` never writes).
    fn unpack(words: &Words) -> Option<Self>;
}

/// The small fields of a [`Stage1Config`] in one word (with `ttb` and `mair`, three words).
#[bitfield(u64)]
struct S1Meta {
    /// 0: 4K, 1: 16K, 2: 64K.
    #[bits(2)]
    granule: u8,
    txsz: u8,
    oas_bits: u32,
    upper: bool,
    tbi: bool,
    epd: bool,
    hpd: bool,
    ha: bool,
    hd: bool,
    affd: bool,
    wxn: bool,
    pan: bool,
    lva: bool,
    #[bits(12)]
    __: u16,
}

/// The small fields of a [`Stage2Config`] in one word (with `vttb`, two words).
#[bitfield(u64)]
struct S2Meta {
    /// 0: 4K, 1: 16K, 2: 64K.
    #[bits(2)]
    granule: u8,
    t0sz: u8,
    sl0: u8,
    ps_bits: u32,
    ha: bool,
    hd: bool,
    affd: bool,
    xnx: bool,
    fwb: bool,
    #[bits(9)]
    __: u16,
}

const fn granule_code(g: Granule) -> u8 {
    match g {
        Granule::K4 => 0,
        Granule::K16 => 1,
        Granule::K64 => 2,
    }
}

const fn granule_of(code: u8) -> Option<Granule> {
    match code {
        0 => Some(Granule::K4),
        1 => Some(Granule::K16),
        2 => Some(Granule::K64),
        _ => None,
    }
}

/// A stage-1 region as three words: TTB, MAIR and the small fields (the fixed layout the
/// IOTLB-miss path unpacks with a few shifts).
#[inline]
pub(crate) fn s1_words(c: &Stage1Config) -> [u64; 3] {
    let meta = S1Meta::new()
        .with_granule(granule_code(c.granule))
        .with_txsz(c.txsz)
        .with_oas_bits(c.oas_bits)
        .with_upper(c.upper)
        .with_tbi(c.tbi)
        .with_epd(c.epd)
        .with_hpd(c.hpd)
        .with_ha(c.ha)
        .with_hd(c.hd)
        .with_affd(c.affd)
        .with_wxn(c.wxn)
        .with_pan(c.pan)
        .with_lva(c.lva);
    [c.ttb, c.mair, meta.into_bits()]
}

/// The region [`s1_words`] packed.
#[inline]
pub(crate) fn s1_from_words(w: [u64; 3]) -> Option<Stage1Config> {
    let m = S1Meta::from_bits(w[2]);
    Some(Stage1Config {
        granule: granule_of(m.granule())?,
        txsz: m.txsz(),
        ttb: w[0],
        oas_bits: m.oas_bits(),
        upper: m.upper(),
        tbi: m.tbi(),
        epd: m.epd(),
        hpd: m.hpd(),
        ha: m.ha(),
        hd: m.hd(),
        affd: m.affd(),
        wxn: m.wxn(),
        pan: m.pan(),
        lva: m.lva(),
        mair: w[1],
    })
}

/// A stage-2 configuration as two words: S2TTB and the small fields.
#[inline]
pub(crate) fn s2_words(c: &Stage2Config) -> [u64; 2] {
    let meta = S2Meta::new()
        .with_granule(granule_code(c.granule))
        .with_t0sz(c.t0sz)
        .with_sl0(c.sl0)
        .with_ps_bits(c.ps_bits)
        .with_ha(c.ha)
        .with_hd(c.hd)
        .with_affd(c.affd)
        .with_xnx(c.xnx)
        .with_fwb(c.fwb);
    [c.vttb, meta.into_bits()]
}

/// The configuration [`s2_words`] packed.
#[inline]
pub(crate) fn s2_from_words(w: [u64; 2]) -> Option<Stage2Config> {
    let m = S2Meta::from_bits(w[1]);
    Some(Stage2Config {
        granule: granule_of(m.granule())?,
        t0sz: m.t0sz(),
        sl0: m.sl0(),
        vttb: w[0],
        ps_bits: m.ps_bits(),
        ha: m.ha(),
        hd: m.hd(),
        affd: m.affd(),
        xnx: m.xnx(),
        fwb: m.fwb(),
    })
}

impl Packed for S1Config {
    fn pack(&self) -> Words {
        let mut w = [0u64; WORDS];
        w[..3].copy_from_slice(&self.words());
        w
    }
    fn unpack(w: &Words) -> Option<Self> {
        S1Config::from_words([w[0], w[1], w[2]])
    }
}

/// Word 0 of a packed [`StreamConfig`]: kind, which stages, VMID, regime, ATS mode.
#[bitfield(u64)]
struct SteMeta {
    /// 0: abort, 1: bypass, 2: translate.
    #[bits(2)]
    kind: u8,
    has_s1: bool,
    has_s2: bool,
    vmid: u16,
    /// 0: EL1, 1: EL2.
    #[bits(1)]
    regime: u8,
    /// 0: abort, 1: full, 2: split.
    #[bits(2)]
    ats: u8,
    #[bits(41)]
    __: u64,
}

/// The small fields of an [`S1Config`] in one word (with `cd_table` and the two `u32`
/// sizes, three words).
#[bitfield(u64)]
struct CdTableMeta {
    /// 0: single, 1: linear, 2: two-level.
    #[bits(2)]
    format: u8,
    /// 0: terminate, 1: bypass, 2: substream 0.
    #[bits(2)]
    dss: u8,
    stall_disabled: bool,
    #[bits(3)]
    __: u8,
    pa_bits: u32,
    #[bits(24)]
    __: u32,
}

/// The small fields of an [`S2Config`] beyond its walk words: the geometry's granule and
/// start level and S2R, S2S, S2PTW (the geometry's two sizes are one more word).
#[bitfield(u64)]
struct S2Extra {
    /// 0: 4K, 1: 16K, 2: 64K.
    #[bits(2)]
    granule: u8,
    start_level: u8,
    record: bool,
    stall: bool,
    ptw: bool,
    #[bits(51)]
    __: u64,
}

/// The STE attribute overrides in one word.
#[bitfield(u64)]
pub(crate) struct AttrWord {
    shcfg: u8,
    memattr: u8,
    memattr_valid: bool,
    alloccfg: u8,
    privcfg: u8,
    instcfg: u8,
    #[bits(23)]
    __: u32,
}

/// STE attribute overrides as one word ([`AttrWord`]).
#[inline]
pub(crate) fn attrs_word(a: &StreamAttrs) -> u64 {
    AttrWord::new()
        .with_shcfg(a.shcfg.0)
        .with_memattr(a.memattr.unwrap_or(0))
        .with_memattr_valid(a.memattr.is_some())
        .with_alloccfg(a.alloccfg)
        .with_privcfg(a.privcfg.0)
        .with_instcfg(a.instcfg.0)
        .into_bits()
}

/// The overrides [`attrs_word`] packed.
#[inline]
pub(crate) fn attrs_from_word(w: u64) -> StreamAttrs {
    let a = AttrWord::from_bits(w);
    StreamAttrs {
        shcfg: Shareability(a.shcfg()),
        memattr: a.memattr_valid().then_some(a.memattr()),
        alloccfg: a.alloccfg(),
        privcfg: PrivCfg(a.privcfg()),
        instcfg: InstCfg(a.instcfg()),
    }
}

impl S1Config {
    /// Three words: S1ContextPtr, the two `u32` sizes (leaf bits \[31:0\], S1CDMax
    /// \[63:32\]), [`CdTableMeta`].
    fn words(&self) -> [u64; 3] {
        let (format, leaf_bits) = match self.format {
            CdTableFormat::Single => (0, 0),
            CdTableFormat::Linear => (1, 0),
            CdTableFormat::TwoLevel { leaf_bits } => (2, leaf_bits),
        };
        let meta = CdTableMeta::new()
            .with_format(format)
            .with_dss(match self.dss {
                S1Dss::Terminate => 0,
                S1Dss::Bypass => 1,
                S1Dss::Substream0 => 2,
            })
            .with_stall_disabled(self.stall_disabled)
            .with_pa_bits(self.pa_bits);
        [
            self.cd_table,
            u64::from(leaf_bits) | u64::from(self.cd_max_bits) << 32,
            meta.into_bits(),
        ]
    }

    /// The value [`S1Config::words`] packed.
    fn from_words(w: [u64; 3]) -> Option<Self> {
        let m = CdTableMeta::from_bits(w[2]);
        Some(S1Config {
            cd_table: w[0],
            format: match m.format() {
                0 => CdTableFormat::Single,
                1 => CdTableFormat::Linear,
                2 => CdTableFormat::TwoLevel {
                    leaf_bits: w[1] as u32,
                },
                _ => return None,
            },
            cd_max_bits: (w[1] >> 32) as u32,
            dss: match m.dss() {
                0 => S1Dss::Terminate,
                1 => S1Dss::Bypass,
                2 => S1Dss::Substream0,
                _ => return None,
            },
            stall_disabled: m.stall_disabled(),
            pa_bits: m.pa_bits(),
        })
    }
}

impl S2Config {
    /// Four words: the walk ([`s2_words`]), the geometry's sizes (IA bits \[31:0\], root
    /// index bits \[63:32\]), [`S2Extra`].
    fn words(&self) -> [u64; 4] {
        let [vttb, meta] = s2_words(&self.walk);
        let g = &self.geometry;
        let extra = S2Extra::new()
            .with_granule(granule_code(g.granule))
            .with_start_level(g.start_level)
            .with_record(self.record)
            .with_stall(self.stall)
            .with_ptw(self.ptw);
        [
            vttb,
            meta,
            u64::from(g.ia_bits) | u64::from(g.root_index_bits) << 32,
            extra.into_bits(),
        ]
    }

    /// The value [`S2Config::words`] packed.
    fn from_words(w: [u64; 4]) -> Option<Self> {
        let x = S2Extra::from_bits(w[3]);
        Some(S2Config {
            walk: s2_from_words([w[0], w[1]])?,
            geometry: TableGeometry {
                granule: granule_of(x.granule())?,
                ia_bits: w[2] as u32,
                start_level: x.start_level(),
                root_index_bits: (w[2] >> 32) as u32,
            },
            record: x.record(),
            stall: x.stall(),
            ptw: x.ptw(),
        })
    }
}

impl Packed for StreamConfig {
    /// Word-aligned (the STE insert is on the translation path): \[0\] [`SteMeta`],
    /// \[1\] [`AttrWord`], \[2..5\] stage 1 ([`S1Config::words`]), \[5..9\] stage 2
    /// ([`S2Config::words`]). Unused words are zero.
    fn pack(&self) -> Words {
        let mut w = [0u64; WORDS];
        let (kind, attrs) = match self {
            StreamConfig::Abort => (0, None),
            StreamConfig::Bypass(a) => (1, Some(a)),
            StreamConfig::Translate(t) => (2, Some(&t.attrs)),
        };
        let mut meta = SteMeta::new().with_kind(kind);
        if let Some(a) = attrs {
            w[1] = attrs_word(a);
        }
        if let StreamConfig::Translate(t) = self {
            meta = meta
                .with_has_s1(t.s1.is_some())
                .with_has_s2(t.s2.is_some())
                .with_vmid(t.vmid.0)
                .with_regime(match t.regime {
                    Regime::El1 => 0,
                    Regime::El2 => 1,
                })
                .with_ats(match t.ats {
                    AtsMode::Abort => 0,
                    AtsMode::Full => 1,
                    AtsMode::Split => 2,
                });
            if let Some(s1) = &t.s1 {
                w[2..5].copy_from_slice(&s1.words());
            }
            if let Some(s2) = &t.s2 {
                w[5..9].copy_from_slice(&s2.words());
            }
        }
        w[0] = meta.into_bits();
        w
    }

    fn unpack(w: &Words) -> Option<Self> {
        let meta = SteMeta::from_bits(w[0]);
        Some(match meta.kind() {
            0 => StreamConfig::Abort,
            1 => StreamConfig::Bypass(attrs_from_word(w[1])),
            2 => StreamConfig::Translate(TranslateConfig {
                s1: if meta.has_s1() {
                    Some(S1Config::from_words([w[2], w[3], w[4]])?)
                } else {
                    None
                },
                s2: if meta.has_s2() {
                    Some(S2Config::from_words([w[5], w[6], w[7], w[8]])?)
                } else {
                    None
                },
                vmid: Vmid(meta.vmid()),
                regime: match meta.regime() {
                    0 => Regime::El1,
                    _ => Regime::El2,
                },
                ats: match meta.ats() {
                    0 => AtsMode::Abort,
                    1 => AtsMode::Full,
                    2 => AtsMode::Split,
                    _ => return None,
                },
                attrs: attrs_from_word(w[1]),
            }),
            _ => return None,
        })
    }
}

impl Packed for ContextConfig {
    /// Word-aligned (the CD insert is on the translation path): \[0\] ASID in bits
    /// \[15:0\] and R, S, A, ASET in bits \[19:16\]; \[1..4\] TTB0 region; \[4..7\] TTB1.
    fn pack(&self) -> Words {
        let mut w = [0u64; WORDS];
        let flags = [self.record, self.stall, self.abort, self.aset]
            .iter()
            .enumerate()
            .fold(0u64, |f, (i, &b)| f | (u64::from(b) << (16 + i)));
        w[0] = u64::from(self.asid.0) | flags;
        w[1..4].copy_from_slice(&s1_words(&self.regions[0]));
        w[4..7].copy_from_slice(&s1_words(&self.regions[1]));
        w
    }

    fn unpack(w: &Words) -> Option<Self> {
        let flag = |i: u32| (w[0] >> (16 + i)) & 1 != 0;
        Some(ContextConfig {
            asid: Asid(w[0] as u16),
            regions: [
                s1_from_words([w[1], w[2], w[3]])?,
                s1_from_words([w[4], w[5], w[6]])?,
            ],
            record: flag(0),
            stall: flag(1),
            abort: flag(2),
            aset: flag(3),
        })
    }
}
