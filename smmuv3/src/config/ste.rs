//! Stream table walk and STE decode (IHI 0070 §3.3, §5.1, §5.2).
//!
//! [`StreamTable`] turns STRTAB_BASE / STRTAB_BASE_CFG into a lookup; [`StreamTable::fetch_ste`]
//! reads the STE of a StreamID (each word with one 64-bit single-copy-atomic load);
//! [`decode_ste`] validates it against the capabilities using only the bits the configuration
//! uses.
//!
//! Stream table policies and CONSTRAINED UNPREDICTABLE choices:
//! - Effective LOG2SIZE = min(LOG2SIZE, IDR1.SIDSIZE).
//! - FMT = 2-level without IDR0.ST_LEVEL, or a reserved FMT (2, 3): treated as linear.
//! - SPLIT other than 6, 8 or 10: treated as 6 (Cloud Hypervisor); 64-bit shifts throughout.
//! - L1 Span = 0, Span > SPLIT + 1, or an L2 index beyond 2^(Span - 1): C_BAD_STREAMID
//!   (IHI 0070 §7.3.3; QEMU reports C_BAD_STE for the last).
//! - STRTAB_BASE is aligned to the table size (§6.3.24) and L1STD.L2Ptr to the L2 array size
//!   (§5.1), as the SMMU does.
//!
//! STE architectural rules applied (IHI 0070 §5.2, §5.5), each C_BAD_STE unless said otherwise:
//! - Config 0b001..0b011 (reserved) behave as 0b000: abort, no event.
//! - S1CDMax > IDR1.SSIDSIZE; ignored (0) when SSIDSIZE = 0. S1Fmt is ignored with S1CDMax = 0;
//!   != 0 without IDR0.CD2L is illegal; 0b11 behaves as 0b00. S1DSS 0b11 behaves as 0b00.
//! - S1STALLD = 1 with STALL_MODEL != 0; S2S = 1 with STALL_MODEL = 1; S2S = 0 with
//!   STALL_MODEL = 2.
//! - STRW is used only by Config 0b101 with IDR0.HYP (RES0 without HYP, IGNORED with stage 2):
//!   0bx1 is illegal.
//! - EATS is ignored without IDR0.ATS; 0b01 with stage 2 and S2S = 1, or 0b10 unless
//!   Config = 0b111, S2S = 0 and NS1ATS = 0, is illegal; 0b11 (DPT) behaves as 0b00.
//! - S2VMID\[15:8\] != 0 without IDR0.VMID16 (when the VMID is used).
//! - S2AA64 = 0, S2ENDI = 1, reserved or unadvertised S2TG, S2T0SZ/S2SL0/S2PS inconsistent,
//!   S2HA without HTTU, S2HD without HTTU = 2 (S2HD alone behaves as neither), S2TTB beyond
//!   the effective S2PS. Effective S2PS = min(S2PS, OAS) (reserved codes read as the cap),
//!   and 52 bits only with the 64K granule (48 otherwise, as without FEAT_LPA2).
//!
//! STE policies and CONSTRAINED UNPREDICTABLE choices:
//! - S1ContextPtr beyond the OAS (non-nested) is C_BAD_STE (IHI 0070 §3.4.3 allows it). Under
//!   nesting it is an IPA, and an out-of-range IPA faults in stage 2 at CD-fetch time.
//! - Non-zero RES0 fields are ignored (STRW without HYP, S2FWB without IDR3.FWB, ...), so stale
//!   unused bits never break a guest.

use vm_memory::GuestMemoryBackend;

use viommu_common::addr::{low_mask, pa_size_bits, Granule};
use viommu_common::id::Vmid;
use viommu_common::walk::{DescReader, Stage2Config};

use super::{
    AtsMode, CdTableFormat, ConfigError, Regime, S1Config, S1Dss, S2Config, StreamAttrs,
    StreamConfig, TranslateConfig,
};
use crate::caps::Caps;
use crate::spec::regs::{StrtabBase, StrtabBaseCfg};
use crate::spec::ste::{
    Eats, InstCfg, PrivCfg, S1Dss as RawS1Dss, S1Fmt, S2Tg, Ste, SteConfig, Strw,
};
use crate::spec::strtab::L1Std;
use crate::spec::Shareability;

/// Stream table format (STRTAB_BASE_CFG.FMT, after policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrtabFormat {
    /// An array of 2^LOG2SIZE STEs.
    Linear,
    /// L1 descriptors for StreamID[LOG2SIZE-1:SPLIT], L2 arrays for StreamID[SPLIT-1:0].
    TwoLevel {
        /// SPLIT (6, 8 or 10).
        split: u32,
    },
}

/// The stream table the guest installed (STRTAB_BASE, STRTAB_BASE_CFG), with policies applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamTable {
    /// Table base (STRTAB_BASE.ADDR).
    pub base: u64,
    /// Effective log2 of the number of StreamIDs: min(LOG2SIZE, SIDSIZE).
    pub log2size: u32,
    /// Format.
    pub format: StrtabFormat,
}

impl StreamTable {
    /// Interpret the two registers under the advertised capabilities.
    pub fn new(base: StrtabBase, cfg: StrtabBaseCfg, caps: &Caps) -> Self {
        let log2size = u32::from(cfg.log2size()).min(caps.sid_bits());
        let format = if cfg.fmt() == 1 && caps.two_level_strtab() {
            let split = match cfg.split() {
                s @ (6 | 8 | 10) => u32::from(s),
                _ => 6,
            };
            StrtabFormat::TwoLevel { split }
        } else {
            StrtabFormat::Linear
        };
        // The SMMU aligns the base to the table size computed from the literal LOG2SIZE
        // (IHI 0070 §6.3.24): linear ADDR[LOG2SIZE+5:0] = 0, 2-level
        // ADDR[MAX(5, LOG2SIZE-SPLIT+2):0] = 0.
        let raw_log2 = u32::from(cfg.log2size());
        let align_bits = match format {
            StrtabFormat::Linear => raw_log2 + 6,
            StrtabFormat::TwoLevel { split } => (raw_log2 + 3).saturating_sub(split).max(6),
        };
        Self {
            base: base.addr() & !low_mask(align_bits),
            log2size,
            format,
        }
    }

    /// The physical address of `sid`'s STE, reading the L1 descriptor for a 2-level table.
    ///
    /// # Errors
    /// [`ConfigError::BadStreamId`] for a StreamID beyond the table, an invalid L1 descriptor
    /// or an L2 index beyond its span; [`ConfigError::SteFetch`] if the L1 read aborts.
    pub fn ste_addr<M: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &M,
        sid: u32,
    ) -> Result<u64, ConfigError> {
        self.ste_addr_in(&mut DescReader::new(mem), sid)
    }

    /// [`StreamTable::ste_addr`] reading the L1 descriptor through `reader` (whose region the
    /// STE fetch that follows then reuses).
    #[inline]
    fn ste_addr_in<M: GuestMemoryBackend + ?Sized>(
        &self,
        reader: &mut DescReader<'_, M>,
        sid: u32,
    ) -> Result<u64, ConfigError> {
        let sid = u64::from(sid);
        if sid >> self.log2size != 0 {
            return Err(ConfigError::BadStreamId {
                why: "StreamID beyond STRTAB_BASE_CFG.LOG2SIZE",
            });
        }
        match self.format {
            StrtabFormat::Linear => Ok(self.base.wrapping_add(sid * Ste::SIZE)),
            StrtabFormat::TwoLevel { split } => {
                let l1_addr = self.base.wrapping_add((sid >> split) * 8);
                let raw = reader
                    .read(l1_addr)
                    .map_err(|_| ConfigError::SteFetch { addr: l1_addr })?;
                let l1 = L1Std::from_raw(raw);
                let span = u32::from(l1.span());
                if span == 0 {
                    return Err(ConfigError::BadStreamId {
                        why: "L1 stream table descriptor Span = 0",
                    });
                }
                if span > split + 1 {
                    return Err(ConfigError::BadStreamId {
                        why: "L1 stream table descriptor Span > SPLIT + 1",
                    });
                }
                let l2_index = sid & low_mask(split);
                if l2_index >> (span - 1) != 0 {
                    return Err(ConfigError::BadStreamId {
                        why: "StreamID beyond the L2 table's Span",
                    });
                }
                // L2Ptr[5 + (Span - 1):0] are treated as zero (IHI 0070 §5.1).
                let l2 = l1.l2ptr() & !low_mask(5 + span);
                Ok(l2.wrapping_add(l2_index * Ste::SIZE))
            }
        }
    }

    /// Read `sid`'s STE: each of the eight words with one 64-bit atomic load.
    ///
    /// # Errors
    /// As [`StreamTable::ste_addr`]; [`ConfigError::SteFetch`] if an STE word is outside RAM.
    pub fn fetch_ste<M: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &M,
        sid: u32,
    ) -> Result<Ste, ConfigError> {
        let mut reader = DescReader::new(mem);
        let addr = self.ste_addr_in(&mut reader, sid)?;
        // Each word single-copy atomic, the region looked up once (with the L1 descriptor's).
        let words = reader
            .read_words::<8>(addr)
            .map_err(|_| ConfigError::SteFetch { addr })?;
        Ok(Ste::from_words(words))
    }

    /// Fetch and decode `sid`'s configuration.
    ///
    /// # Errors
    /// Any [`ConfigError`] of [`StreamTable::fetch_ste`] or [`decode_ste`].
    pub fn lookup<M: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &M,
        sid: u32,
        caps: &Caps,
    ) -> Result<StreamConfig, ConfigError> {
        self.lookup_in(&mut DescReader::new(mem), sid, caps)
    }

    /// [`StreamTable::lookup`] through `reader` (shared with the CD fetch that follows, so
    /// the guest memory region is looked up once).
    pub(crate) fn lookup_in<M: GuestMemoryBackend + ?Sized>(
        &self,
        reader: &mut DescReader<'_, M>,
        sid: u32,
        caps: &Caps,
    ) -> Result<StreamConfig, ConfigError> {
        let addr = self.ste_addr_in(reader, sid)?;
        // Decode reads words 0..3 (4..7 are IGNORED): fetch those, after checking that the
        // whole STE is readable, as the 64-byte fetch needs.
        let [w0, w1, w2, w3] = reader
            .read_head::<8, 4>(addr)
            .map_err(|_| ConfigError::SteFetch { addr })?;
        decode_ste(&Ste::from_words([w0, w1, w2, w3, 0, 0, 0, 0]), caps)
    }
}

fn bad_ste(why: &'static str) -> ConfigError {
    ConfigError::BadSte { why }
}

/// The effective output size for a PS/IPS code: min(code, OAS), reserved codes read as the
/// OAS, and 52 bits only with the 64K granule (48 otherwise).
pub(crate) fn effective_ps(code: u8, caps: &Caps, granule: Granule) -> u32 {
    let oas = caps.oas_bits();
    let bits = pa_size_bits(code).unwrap_or(oas).min(oas);
    if bits > 48 && granule != Granule::K64 {
        48
    } else {
        bits
    }
}

fn decode_attrs(ste: &Ste, caps: &Caps, shcfg_used: bool) -> StreamAttrs {
    let w1 = ste.w1;
    let mut a = StreamAttrs::INCOMING;
    if caps.attr_types_ovr() {
        if shcfg_used {
            a.shcfg = w1.shcfg();
        }
        a.memattr = w1.mtcfg().then_some(w1.memattr());
        a.alloccfg = w1.alloccfg();
    }
    if caps.attr_perms_ovr() {
        a.privcfg = match w1.privcfg() {
            p @ (PrivCfg::UNPRIV | PrivCfg::PRIV) => p,
            _ => PrivCfg::INCOMING,
        };
        a.instcfg = match w1.instcfg() {
            i @ (InstCfg::DATA | InstCfg::INSTR) => i,
            _ => InstCfg::INCOMING,
        };
    }
    a
}

fn decode_s1(ste: &Ste, caps: &Caps, nested: bool) -> Result<S1Config, ConfigError> {
    let w0 = ste.w0;
    let w1 = ste.w1;
    // S1CDMax is IGNORED when substreams are not implemented.
    let cd_max_bits = if caps.ssid_bits() == 0 {
        0
    } else {
        u32::from(w0.s1cdmax())
    };
    if cd_max_bits > caps.ssid_bits() {
        return Err(bad_ste("S1CDMax exceeds IDR1.SSIDSIZE"));
    }
    let format = if cd_max_bits == 0 {
        CdTableFormat::Single
    } else {
        match w0.s1fmt() {
            S1Fmt::LINEAR => CdTableFormat::Linear,
            _ if !caps.cd2l() => return Err(bad_ste("S1Fmt != 0 without IDR0.CD2L")),
            S1Fmt::L2_4K => CdTableFormat::TwoLevel { leaf_bits: 6 },
            S1Fmt::L2_64K => CdTableFormat::TwoLevel { leaf_bits: 10 },
            // 0b11: Reserved, behaves as 0b00.
            _ => CdTableFormat::Linear,
        }
    };
    let dss = if cd_max_bits == 0 {
        S1Dss::Substream0
    } else {
        match w1.s1dss() {
            RawS1Dss::TERMINATE => S1Dss::Terminate,
            RawS1Dss::BYPASS => S1Dss::Bypass,
            RawS1Dss::SSID0 => S1Dss::Substream0,
            // 0b11: Reserved, behaves as 0b00.
            _ => S1Dss::Terminate,
        }
    };
    if w1.s1stalld() && caps.stall_model().0 != 0 {
        return Err(bad_ste("S1STALLD = 1 without the stall model"));
    }
    let cd_table = ste.s1_context_ptr();
    if !nested && cd_table >> caps.oas_bits() != 0 {
        return Err(bad_ste("S1ContextPtr beyond the OAS"));
    }

    Ok(S1Config {
        cd_table,
        format,
        cd_max_bits,
        dss,
        stall_disabled: w1.s1stalld(),
        pa_bits: caps.oas_bits(),
    })
}

fn decode_s2(ste: &Ste, caps: &Caps) -> Result<S2Config, ConfigError> {
    let w2 = ste.w2;
    if !w2.s2aa64() {
        return Err(bad_ste(
            "S2AA64 = 0 (AArch32 stage-2 tables are not supported)",
        ));
    }
    if w2.s2endi() {
        return Err(bad_ste("S2ENDI = 1 (big-endian tables are not supported)"));
    }
    let granule = match w2.s2tg() {
        S2Tg::TG_4K => Granule::K4,
        S2Tg::TG_16K => Granule::K16,
        S2Tg::TG_64K => Granule::K64,
        _ => return Err(bad_ste("S2TG reserved")),
    };
    if !caps.granule(granule) {
        return Err(bad_ste("S2TG granule not advertised in IDR5"));
    }
    if w2.s2s() && !caps.stalls() {
        return Err(bad_ste("S2S = 1 with STALL_MODEL = 1"));
    }
    if !w2.s2s() && caps.stall_forced() {
        return Err(bad_ste("S2S = 0 with STALL_MODEL = 2"));
    }
    if w2.s2ha() && !caps.httu_access() {
        return Err(bad_ste("S2HA = 1 without IDR0.HTTU"));
    }
    if w2.s2hd() && !caps.httu_dirty() {
        return Err(bad_ste("S2HD = 1 without IDR0.HTTU = 2"));
    }
    let ps_bits = effective_ps(w2.s2ps(), caps, granule);
    if ste.s2ttb() >> ps_bits != 0 {
        return Err(bad_ste("S2TTB beyond the effective S2PS"));
    }
    let mut walk = Stage2Config::new(granule, w2.s2t0sz(), w2.s2sl0(), ste.s2ttb(), ps_bits);
    // {S2HA, S2HD} = 0b01 is Reserved and behaves as 0b00.
    walk.ha = w2.s2ha();
    walk.hd = w2.s2ha() && w2.s2hd();
    walk.affd = w2.s2affd();
    walk.xnx = caps.xnx();
    walk.fwb = caps.fwb() && ste.w1.s2fwb();
    let geometry = walk
        .validate()
        .map_err(|_| bad_ste("S2T0SZ / S2SL0 / S2PS inconsistent"))?;
    Ok(S2Config {
        walk,
        geometry,
        record: w2.s2r(),
        stall: w2.s2s(),
        ptw: w2.s2ptw(),
    })
}

/// Decode and validate an STE (IHI 0070 §5.2), reading only the bits its Config uses.
///
/// # Errors
/// [`ConfigError::BadSte`] for V = 0 or any illegal combination.
pub fn decode_ste(ste: &Ste, caps: &Caps) -> Result<StreamConfig, ConfigError> {
    let w0 = ste.w0;
    if !w0.v() {
        return Err(bad_ste("V = 0"));
    }
    let config = w0.config();
    match config {
        SteConfig::BYPASS => return Ok(StreamConfig::Bypass(decode_attrs(ste, caps, true))),
        c if c.0 & 0b100 == 0 => return Ok(StreamConfig::Abort),
        _ => {}
    }
    let s1_used = config.s1_used();
    let s2_used = config.s2_used();
    if s1_used && !caps.s1() {
        return Err(bad_ste("stage 1 used without IDR0.S1P"));
    }
    if s2_used && !caps.s2() {
        return Err(bad_ste("stage 2 used without IDR0.S2P"));
    }
    let s1 = if s1_used {
        Some(decode_s1(ste, caps, s2_used)?)
    } else {
        None
    };
    let s2 = if s2_used {
        Some(decode_s2(ste, caps)?)
    } else {
        None
    };
    let w1 = ste.w1;
    // STRW: RES0 without HYP, IGNORED when stage 2 translates (StreamWorld NS-EL1).
    let regime = if s1_used && !s2_used && caps.hyp() {
        match w1.strw() {
            Strw::NSEL1 => Regime::El1,
            Strw::EL2 => Regime::El2,
            _ => return Err(bad_ste("STRW = 0bx1 (reserved)")),
        }
    } else {
        Regime::El1
    };
    let s2s = s2.is_some_and(|c| c.stall);
    let ats = if caps.ats() {
        match w1.eats() {
            Eats::TRANS if s2s => return Err(bad_ste("EATS = 0b01 with S2S = 1")),
            Eats::TRANS => AtsMode::Full,
            Eats::S1CHK if config != SteConfig::NESTED || s2s || caps.idr0.ns1ats() => {
                return Err(bad_ste(
                    "EATS = 0b10 needs Config 0b111, S2S = 0, NS1ATS = 0",
                ))
            }
            Eats::S1CHK => AtsMode::Split,
            // 0b00, and 0b11 (full ATS with DPT checks) which behaves as 0b00 without DPT.
            _ => AtsMode::Abort,
        }
    } else {
        AtsMode::Abort
    };
    // VMID: tags the stream's translations when stage 2 is implemented and the StreamWorld is
    // NS-EL1 (stage-1-only streams included); otherwise IGNORED.
    let vmid = if caps.s2() && regime == Regime::El1 {
        let v = ste.w2.s2vmid();
        if caps.vmid_bits() == 8 && v >> 8 != 0 {
            return Err(bad_ste("S2VMID[15:8] != 0 without IDR0.VMID16"));
        }
        v
    } else {
        0
    };
    // SHCFG is used by stage-2 configs, and by stage-1 configs only with S1DSS = bypass.
    let shcfg_used = s2_used || s1.is_some_and(|s| s.dss == S1Dss::Bypass && s.cd_max_bits > 0);
    let mut attrs = decode_attrs(ste, caps, shcfg_used);
    if !shcfg_used {
        attrs.shcfg = Shareability::RSVD;
    }
    Ok(StreamConfig::Translate(TranslateConfig {
        s1,
        s2,
        vmid: Vmid(vmid),
        regime,
        ats,
        attrs,
    }))
}
