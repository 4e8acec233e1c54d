//! Decoded configurations as fixed arrays of 64-bit words, so that the lock-free caches
//! ([`super::cache`], [`crate::route`]) can keep them in preallocated seqlock slots of atomics
//! instead of allocating a snapshot per insert.
//!
//! Each value writes its fields in a fixed order through a [`Writer`] (bytes, little-endian)
//! and reads them back in the same order through a [`Reader`]. Only values produced by
//! [`Packed::pack`] are ever unpacked (a seqlock slot is read only when its sequence number
//! proves the words consistent), but unpacking is still total: an unknown enum code reads as
//! `None`, never a panic.

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
    /// Write the fields.
    fn put(&self, w: &mut Writer);
    /// Read the fields back (`None` for codes [`Packed::put`] never writes).
    fn get(r: &mut Reader<'_>) -> Option<Self>;

    /// The packed words.
    fn pack(&self) -> Words {
        let mut w = Writer::default();
        self.put(&mut w);
        w.finish()
    }

    /// The value [`Packed::pack`] packed.
    fn unpack(words: &Words) -> Option<Self> {
        let mut bytes = [0u8; WORDS * 8];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Self::get(&mut Reader {
            bytes: &bytes,
            at: 0,
        })
    }
}

/// Appends fields as little-endian bytes. Writing past the end is dropped (never happens for
/// the types here; the round-trip tests cover each).
#[derive(Debug)]
pub(crate) struct Writer {
    bytes: [u8; WORDS * 8],
    at: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Self {
            bytes: [0; WORDS * 8],
            at: 0,
        }
    }
}

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// Up to eight flags in one byte, first flag in bit 0.
    pub(crate) fn flags(&mut self, f: &[bool]) {
        let b = f
            .iter()
            .take(8)
            .enumerate()
            .fold(0u8, |b, (i, &v)| b | (u8::from(v) << i));
        self.u8(b);
    }
    fn finish(&self) -> Words {
        debug_assert!(self.at <= WORDS * 8, "a packed value overflows its words");
        let mut out = [0u64; WORDS];
        for (word, chunk) in out.iter_mut().zip(self.bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        out
    }
}

/// Reads fields in the order a [`Writer`] wrote them.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        Some(b)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// `N` flags written by [`Writer::flags`].
    pub(crate) fn flags<const N: usize>(&mut self) -> Option<[bool; N]> {
        let b = self.u8()?;
        let mut f = [false; N];
        for (i, v) in f.iter_mut().enumerate() {
            *v = (b >> i) & 1 != 0;
        }
        Some(f)
    }
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

fn put_granule(w: &mut Writer, g: Granule) {
    w.u8(match g {
        Granule::K4 => 0,
        Granule::K16 => 1,
        Granule::K64 => 2,
    });
}

fn get_granule(r: &mut Reader<'_>) -> Option<Granule> {
    match r.u8()? {
        0 => Some(Granule::K4),
        1 => Some(Granule::K16),
        2 => Some(Granule::K64),
        _ => None,
    }
}

/// An optional value: a presence byte, then the value if present.
impl<T: Packed> Packed for Option<T> {
    fn put(&self, w: &mut Writer) {
        w.u8(u8::from(self.is_some()));
        if let Some(v) = self {
            v.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        match r.u8()? {
            0 => Some(None),
            1 => T::get(r).map(Some),
            _ => None,
        }
    }
}

impl Packed for Stage1Config {
    fn put(&self, w: &mut Writer) {
        for x in s1_words(self) {
            w.u64(x);
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        s1_from_words([r.u64()?, r.u64()?, r.u64()?])
    }
}

impl Packed for Stage2Config {
    fn put(&self, w: &mut Writer) {
        for x in s2_words(self) {
            w.u64(x);
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        s2_from_words([r.u64()?, r.u64()?])
    }
}

impl Packed for TableGeometry {
    fn put(&self, w: &mut Writer) {
        put_granule(w, self.granule);
        w.u32(self.ia_bits);
        w.u8(self.start_level);
        w.u32(self.root_index_bits);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(TableGeometry {
            granule: get_granule(r)?,
            ia_bits: r.u32()?,
            start_level: r.u8()?,
            root_index_bits: r.u32()?,
        })
    }
}

impl Packed for StreamAttrs {
    fn put(&self, w: &mut Writer) {
        w.u8(self.shcfg.0);
        Packed::put(&self.memattr.map(Byte), w);
        w.u8(self.alloccfg);
        w.u8(self.privcfg.0);
        w.u8(self.instcfg.0);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(StreamAttrs {
            shcfg: Shareability(r.u8()?),
            memattr: <Option<Byte>>::get(r)?.map(|b| b.0),
            alloccfg: r.u8()?,
            privcfg: PrivCfg(r.u8()?),
            instcfg: InstCfg(r.u8()?),
        })
    }
}

/// A byte as a [`Packed`] value (for `Option<u8>` fields).
struct Byte(u8);

impl Packed for Byte {
    fn put(&self, w: &mut Writer) {
        w.u8(self.0);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        r.u8().map(Byte)
    }
}

impl Packed for S1Config {
    fn put(&self, w: &mut Writer) {
        w.u64(self.cd_table);
        match self.format {
            CdTableFormat::Single => w.u8(0),
            CdTableFormat::Linear => w.u8(1),
            CdTableFormat::TwoLevel { leaf_bits } => {
                w.u8(2);
                w.u32(leaf_bits);
            }
        }
        w.u32(self.cd_max_bits);
        w.u8(match self.dss {
            S1Dss::Terminate => 0,
            S1Dss::Bypass => 1,
            S1Dss::Substream0 => 2,
        });
        w.flags(&[self.stall_disabled]);
        w.u32(self.pa_bits);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let cd_table = r.u64()?;
        let format = match r.u8()? {
            0 => CdTableFormat::Single,
            1 => CdTableFormat::Linear,
            2 => CdTableFormat::TwoLevel {
                leaf_bits: r.u32()?,
            },
            _ => return None,
        };
        let cd_max_bits = r.u32()?;
        let dss = match r.u8()? {
            0 => S1Dss::Terminate,
            1 => S1Dss::Bypass,
            2 => S1Dss::Substream0,
            _ => return None,
        };
        let [stall_disabled] = r.flags()?;
        Some(S1Config {
            cd_table,
            format,
            cd_max_bits,
            dss,
            stall_disabled,
            pa_bits: r.u32()?,
        })
    }
}

impl Packed for S2Config {
    fn put(&self, w: &mut Writer) {
        self.walk.put(w);
        self.geometry.put(w);
        w.flags(&[self.record, self.stall, self.ptw]);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let walk = Stage2Config::get(r)?;
        let geometry = TableGeometry::get(r)?;
        let [record, stall, ptw] = r.flags()?;
        Some(S2Config {
            walk,
            geometry,
            record,
            stall,
            ptw,
        })
    }
}

impl Packed for StreamConfig {
    fn put(&self, w: &mut Writer) {
        match self {
            StreamConfig::Abort => w.u8(0),
            StreamConfig::Bypass(a) => {
                w.u8(1);
                a.put(w);
            }
            StreamConfig::Translate(t) => {
                w.u8(2);
                t.s1.put(w);
                t.s2.put(w);
                w.u16(t.vmid.0);
                w.u8(match t.regime {
                    Regime::El1 => 0,
                    Regime::El2 => 1,
                });
                w.u8(match t.ats {
                    AtsMode::Abort => 0,
                    AtsMode::Full => 1,
                    AtsMode::Split => 2,
                });
                t.attrs.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        Some(match r.u8()? {
            0 => StreamConfig::Abort,
            1 => StreamConfig::Bypass(StreamAttrs::get(r)?),
            2 => StreamConfig::Translate(TranslateConfig {
                s1: Packed::get(r)?,
                s2: Packed::get(r)?,
                vmid: Vmid(r.u16()?),
                regime: match r.u8()? {
                    0 => Regime::El1,
                    1 => Regime::El2,
                    _ => return None,
                },
                ats: match r.u8()? {
                    0 => AtsMode::Abort,
                    1 => AtsMode::Full,
                    2 => AtsMode::Split,
                    _ => return None,
                },
                attrs: StreamAttrs::get(r)?,
            }),
            _ => return None,
        })
    }
}

impl Packed for ContextConfig {
    fn put(&self, w: &mut Writer) {
        for x in self.pack() {
            w.u64(x);
        }
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let mut words = [0u64; WORDS];
        for x in words.iter_mut().take(7) {
            *x = r.u64()?;
        }
        Self::unpack(&words)
    }

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
