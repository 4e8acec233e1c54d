//! Decoded configurations as fixed arrays of 64-bit words, so that the lock-free caches
//! ([`super::cache`], [`crate::route`]) can keep them in preallocated seqlock slots of atomics
//! instead of allocating a snapshot per insert.
//!
//! Each value writes its fields in a fixed order through a [`Writer`] (bytes, little-endian)
//! and reads them back in the same order through a [`Reader`]. Only values produced by
//! [`Packed::pack`] are ever unpacked (a seqlock slot is read only when its sequence number
//! proves the words consistent), but unpacking is still total: an unknown enum code reads as
//! `None`, never a panic.

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
        put_granule(w, self.granule);
        w.u8(self.txsz);
        w.u64(self.ttb);
        w.u32(self.oas_bits);
        w.flags(&[
            self.upper, self.tbi, self.epd, self.hpd, self.ha, self.hd, self.affd, self.wxn,
        ]);
        w.flags(&[self.pan, self.lva]);
        w.u64(self.mair);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let granule = get_granule(r)?;
        let txsz = r.u8()?;
        let ttb = r.u64()?;
        let oas_bits = r.u32()?;
        let [upper, tbi, epd, hpd, ha, hd, affd, wxn] = r.flags()?;
        let [pan, lva] = r.flags()?;
        let mair = r.u64()?;
        Some(Stage1Config {
            granule,
            txsz,
            ttb,
            oas_bits,
            upper,
            tbi,
            epd,
            hpd,
            ha,
            hd,
            affd,
            wxn,
            pan,
            lva,
            mair,
        })
    }
}

impl Packed for Stage2Config {
    fn put(&self, w: &mut Writer) {
        put_granule(w, self.granule);
        w.u8(self.t0sz);
        w.u8(self.sl0);
        w.u64(self.vttb);
        w.u32(self.ps_bits);
        w.flags(&[self.ha, self.hd, self.affd, self.xnx, self.fwb]);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let granule = get_granule(r)?;
        let t0sz = r.u8()?;
        let sl0 = r.u8()?;
        let vttb = r.u64()?;
        let ps_bits = r.u32()?;
        let [ha, hd, affd, xnx, fwb] = r.flags()?;
        Some(Stage2Config {
            granule,
            t0sz,
            sl0,
            vttb,
            ps_bits,
            ha,
            hd,
            affd,
            xnx,
            fwb,
        })
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
        w.u16(self.asid.0);
        self.regions[0].put(w);
        self.regions[1].put(w);
        w.flags(&[self.record, self.stall, self.abort, self.aset]);
    }
    fn get(r: &mut Reader<'_>) -> Option<Self> {
        let asid = Asid(r.u16()?);
        let regions = [Stage1Config::get(r)?, Stage1Config::get(r)?];
        let [record, stall, abort, aset] = r.flags()?;
        Some(ContextConfig {
            asid,
            regions,
            record,
            stall,
            abort,
            aset,
        })
    }
}
