//! Substream selection, CD table fetch and CD decode (IHI 0070 §5.3, §5.4).
//!
//! CD-table addresses are IPAs when the stream is nested: the device passes a stage-2
//! translation ([`CdTranslate`]) for S1ContextPtr, the L1 CD descriptor's L2Ptr and the CD
//! address; a stage-2 fault there is reported with CLASS = CD.
//!
//! Architectural rules applied (IHI 0070 §5.4, §5.5), each C_BAD_CD:
//! - V = 0; AA64 = 0 (no AArch32 tables); ENDI = 1 (little-endian tables only) unless both
//!   EPD0 and EPD1 are set.
//! - For a region with EPDx = 0: TxSZ outside \[16 (12 with VAX and 64K), 39\], a reserved or
//!   unadvertised TGx, TTBx beyond the effective IPS. A region with EPDx = 1 ignores its
//!   TxSZ/TGx/IRx/ORx/SHx/TTBx (Linux's released SVA CD keeps EPD0 = 1 with stale fields);
//!   walks in it are translation faults.
//! - HA without IDR0.HTTU, HD without HTTU = 2 ({HD, HA} = 0b10 behaves as 0b00).
//! - S = 1 with STALL_MODEL = 1 or (STALL_MODEL = 0 and STE.S1STALLD = 1); S = 0 with
//!   STALL_MODEL = 2; A = 0 with IDR0.TERM_MODEL = 1.
//! - ASID\[15:8\] != 0 without IDR0.ASID16.
//! - Effective IPS = min(IPS, OAS) (reserved codes read as the cap), 52 only with 64K.
//! - S1DSS = SSID0 and a transaction with SubstreamID 0: F_STREAM_DISABLED (§5.2 S1DSS).
//!
//! Policies and CONSTRAINED UNPREDICTABLE choices:
//! - L1 CD descriptor with V = 0: C_BAD_SUBSTREAMID (inferred).
//! - A CD / L1CD table base not aligned to its size (S1ContextPtr, or the RES0 L2Ptr\[15:12\]
//!   of a 64 KiB leaf): entry offsets wrap within the aligned table ("fetches any CD in the
//!   table", §5.2); an aligned base behaves exactly as architected.
//! - A PA L1CD.L2Ptr beyond the OAS is C_BAD_SUBSTREAMID (v3.1+ rule, §3.4.3); under nesting
//!   the untruncated IPA goes to stage 2 and faults there (one of the allowed behaviours).
//! - HADx without IDR3.HAD: ignored.
//! - EL2 (non-E2H) StreamWorld semantics (one VA range, EPDx ignored) are not modelled: CDs
//!   are decoded as for EL1 / EL2-E2H (CR2.E2H is device state, not visible here).

use vm_memory::GuestMemoryBackend;

use viommu_common::addr::{low_mask, Granule};
use viommu_common::id::{Asid, SubstreamId};
use viommu_common::walk::{DescReader, FaultClass, Stage1Config};

use super::ste::effective_ps;
use super::{CdTableFormat, CdTranslate, ConfigError, ContextConfig, S1Config, S1Dss};
use crate::caps::Caps;
use crate::spec::cd::{Cd, Tg0, Tg1};
use crate::spec::strtab::L1Cd;

/// Which CD (if any) a transaction uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Substream {
    /// Translate with the CD at this index.
    Cd(u32),
    /// Skip stage 1 (S1DSS = bypass, non-substream traffic).
    BypassS1,
    /// Terminate with F_STREAM_DISABLED (S1DSS = terminate, non-substream traffic).
    Disabled,
}

impl S1Config {
    /// Select the CD for a transaction with `ssid` (IHI 0070 §5.2 S1CDMax and S1DSS, §5.3).
    ///
    /// # Errors
    /// [`ConfigError::BadSubstreamId`] when the stream has no substreams but the transaction
    /// carries one, or when `ssid >= 2^S1CDMax`. (SubstreamID 0 with S1DSS = SSID0 is
    /// [`Substream::Disabled`].)
    pub fn substream(&self, ssid: Option<SubstreamId>) -> Result<Substream, ConfigError> {
        match ssid {
            None if self.cd_max_bits == 0 => Ok(Substream::Cd(0)),
            None => Ok(match self.dss {
                S1Dss::Terminate => Substream::Disabled,
                S1Dss::Bypass => Substream::BypassS1,
                S1Dss::Substream0 => Substream::Cd(0),
            }),
            Some(_) if self.cd_max_bits == 0 => Err(ConfigError::BadSubstreamId {
                why: "SubstreamID on a stream without substreams (S1CDMax = 0)",
            }),
            Some(SubstreamId(s)) if u64::from(s) >> self.cd_max_bits != 0 => {
                Err(ConfigError::BadSubstreamId {
                    why: "SubstreamID >= 2^S1CDMax",
                })
            }
            // Substream 0 is reserved for non-substream traffic: terminated, F_STREAM_DISABLED.
            Some(SubstreamId(0)) if self.dss == S1Dss::Substream0 => Ok(Substream::Disabled),
            Some(SubstreamId(s)) => Ok(Substream::Cd(s)),
        }
    }

    /// The physical address of CD `index`, reading the L1 CD descriptor for 2-level tables.
    /// `s2` translates IPAs for nested streams (`None`: addresses are PAs).
    ///
    /// # Errors
    /// [`ConfigError::CdFetch`] if the L1 read aborts, [`ConfigError::CdStage2`] if a stage-2
    /// translation faults, [`ConfigError::BadSubstreamId`] for an invalid L1 descriptor or an
    /// index beyond the table.
    pub fn cd_addr<M: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &M,
        index: u32,
        s2: Option<CdTranslate<'_>>,
    ) -> Result<u64, ConfigError> {
        self.cd_addr_in(&mut DescReader::new(mem), index, s2)
    }

    /// [`S1Config::cd_addr`] reading the L1 CD descriptor through `reader` (whose region the
    /// CD fetch that follows then reuses).
    #[inline]
    fn cd_addr_in<M: GuestMemoryBackend + ?Sized>(
        &self,
        reader: &mut DescReader<'_, M>,
        index: u32,
        s2: Option<CdTranslate<'_>>,
    ) -> Result<u64, ConfigError> {
        let index = u64::from(index);
        if index >> self.cd_max_bits != 0 {
            return Err(ConfigError::BadSubstreamId {
                why: "SubstreamID >= 2^S1CDMax",
            });
        }
        let ipa = match self.format {
            CdTableFormat::Single | CdTableFormat::Linear => {
                in_table(self.cd_table, index * Cd::SIZE, 6 + self.cd_max_bits)
            }
            CdTableFormat::TwoLevel { leaf_bits } => {
                let l1_bytes_log2 = (3 + self.cd_max_bits).saturating_sub(leaf_bits).max(6);
                let l1_ipa = in_table(self.cd_table, (index >> leaf_bits) * 8, l1_bytes_log2);
                let l1_pa = translate(l1_ipa, s2)?;
                let raw = reader
                    .read(l1_pa)
                    .map_err(|_| ConfigError::CdFetch { addr: l1_pa })?;
                let l1 = L1Cd::from_raw(raw);
                if !l1.v() {
                    return Err(ConfigError::BadSubstreamId {
                        why: "L1 CD descriptor V = 0",
                    });
                }
                if s2.is_none() && l1.l2ptr() >> self.pa_bits != 0 {
                    return Err(ConfigError::BadSubstreamId {
                        why: "L1CD.L2Ptr beyond the OAS",
                    });
                }
                in_table(
                    l1.l2ptr(),
                    (index & low_mask(leaf_bits)) * Cd::SIZE,
                    leaf_bits + 6,
                )
            }
        };
        translate(ipa, s2)
    }

    /// Read CD `index`: each word with one 64-bit atomic load.
    ///
    /// # Errors
    /// As [`S1Config::cd_addr`]; [`ConfigError::CdFetch`] if a CD word is outside RAM.
    pub fn fetch_cd<M: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &M,
        index: u32,
        s2: Option<CdTranslate<'_>>,
    ) -> Result<Cd, ConfigError> {
        let mut reader = DescReader::new(mem);
        let addr = self.cd_addr_in(&mut reader, index, s2)?;
        // Each word single-copy atomic, the region looked up once (with the L1 descriptor's).
        let words = reader
            .read_words::<8>(addr)
            .map_err(|_| ConfigError::CdFetch { addr })?;
        Ok(Cd::from_words(words))
    }

    /// Fetch and decode CD `index`.
    ///
    /// # Errors
    /// Any [`ConfigError`] of [`S1Config::fetch_cd`] or [`decode_cd`].
    pub fn lookup_cd<M: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &M,
        index: u32,
        s2: Option<CdTranslate<'_>>,
        caps: &Caps,
    ) -> Result<ContextConfig, ConfigError> {
        self.lookup_cd_in(&mut DescReader::new(mem), index, s2, caps)
    }

    /// [`S1Config::lookup_cd`] through `reader` (shared with the STE fetch before it, so the
    /// guest memory region is looked up once).
    pub(crate) fn lookup_cd_in<M: GuestMemoryBackend + ?Sized>(
        &self,
        reader: &mut DescReader<'_, M>,
        index: u32,
        s2: Option<CdTranslate<'_>>,
        caps: &Caps,
    ) -> Result<ContextConfig, ConfigError> {
        let addr = self.cd_addr_in(reader, index, s2)?;
        // Decode reads words 0..3 (4..7 are IGNORED): fetch those, after checking that the
        // whole CD is readable, as the 64-byte fetch needs.
        let [w0, w1, w2, w3] = reader
            .read_head::<8, 4>(addr)
            .map_err(|_| ConfigError::CdFetch { addr })?;
        decode_cd(&Cd::from_words([w0, w1, w2, w3, 0, 0, 0, 0]), caps, self)
    }
}

/// The address of the entry at byte `offset` of a table of `2^bytes_log2` bytes at `base`.
///
/// CONSTRAINED UNPREDICTABLE (IHI 0070 §5.2 S1Fmt, §5.3): a table base that is not aligned to
/// the table size (RES0 low bits set) makes the SMMU "fetch any CD (or L1CD) in the table".
/// Policy: the offset wraps within the aligned table, so an aligned base behaves exactly as
/// architected and a misaligned one never reaches outside its table.
fn in_table(base: u64, offset: u64, bytes_log2: u32) -> u64 {
    let mask = low_mask(bytes_log2);
    (base & !mask) | (base.wrapping_add(offset) & mask)
}

fn translate(ipa: u64, s2: Option<CdTranslate<'_>>) -> Result<u64, ConfigError> {
    match s2 {
        None => Ok(ipa),
        Some(f) => f(ipa)
            .map_err(|fault| ConfigError::CdStage2(fault.with_class(FaultClass::Cd).with_ipa(ipa))),
    }
}

fn bad_cd(why: &'static str) -> ConfigError {
    ConfigError::BadCd { why }
}

/// Decode and validate a CD (IHI 0070 §5.4) for a stream whose stage-1 STE part is `s1`.
///
/// # Errors
/// [`ConfigError::BadCd`] for V = 0 or an illegal CD.
pub fn decode_cd(cd: &Cd, caps: &Caps, s1: &S1Config) -> Result<ContextConfig, ConfigError> {
    let w0 = cd.w0;
    if !w0.v() {
        return Err(bad_cd("V = 0"));
    }
    if !w0.aa64() {
        return Err(bad_cd("AA64 = 0 (AArch32 tables are not supported)"));
    }
    if w0.endi() && !(w0.epd0() && w0.epd1()) {
        return Err(bad_cd("ENDI = 1 (big-endian tables are not supported)"));
    }
    let stall = w0.s();
    if stall && !caps.stalls() {
        return Err(bad_cd("S = 1 with STALL_MODEL = 1"));
    }
    if stall && s1.stall_disabled && !caps.stall_forced() {
        return Err(bad_cd("S = 1 with STE.S1STALLD = 1"));
    }
    if !stall && caps.stall_forced() {
        return Err(bad_cd("S = 0 with STALL_MODEL = 2"));
    }
    if !w0.a() && caps.term_model() {
        return Err(bad_cd("A = 0 with IDR0.TERM_MODEL = 1"));
    }
    if w0.ha() && !caps.httu_access() {
        return Err(bad_cd("HA = 1 without IDR0.HTTU"));
    }
    if w0.hd() && !caps.httu_dirty() {
        return Err(bad_cd("HD = 1 without IDR0.HTTU = 2"));
    }
    if caps.asid_bits() == 8 && w0.asid() >> 8 != 0 {
        return Err(bad_cd("ASID[15:8] != 0 without IDR0.ASID16"));
    }
    // {HD, HA} = 0b10 is Reserved and behaves as 0b00.
    let ha = w0.ha();
    let hd = ha && w0.hd();
    let granule0 = match w0.tg0() {
        Tg0::TG0_4K => Some(Granule::K4),
        Tg0::TG0_16K => Some(Granule::K16),
        Tg0::TG0_64K => Some(Granule::K64),
        _ => None,
    };
    let granule1 = match w0.tg1() {
        Tg1::TG1_4K => Some(Granule::K4),
        Tg1::TG1_16K => Some(Granule::K16),
        Tg1::TG1_64K => Some(Granule::K64),
        _ => None,
    };
    let region = |epd: bool,
                  granule: Option<Granule>,
                  txsz: u8,
                  ttb: u64,
                  tbi: bool,
                  had: bool,
                  upper: bool|
     -> Result<Stage1Config, ConfigError> {
        if epd {
            // Unused fields: keep them out of the decoded value so stale bits compare equal.
            let mut r = Stage1Config::new(Granule::K4, 16, 0, caps.oas_bits().min(48));
            r.epd = true;
            r.upper = upper;
            r.tbi = tbi;
            return Ok(r);
        }
        let Some(granule) = granule.filter(|g| caps.granule(*g)) else {
            return Err(bad_cd("TGx reserved or granule not advertised"));
        };
        let ps = effective_ps(w0.ips(), caps, granule);
        if ttb >> ps != 0 {
            return Err(bad_cd("TTBx beyond the effective IPS"));
        }
        let mut r = Stage1Config::new(granule, txsz, ttb, ps);
        r.upper = upper;
        r.tbi = tbi;
        r.hpd = caps.had() && had;
        r.ha = ha;
        r.hd = hd;
        r.affd = w0.affd();
        r.wxn = w0.wxn();
        r.pan = w0.pan();
        r.mair = cd.w3.mair();
        if caps.max_va_bits() < 52 && txsz < 16 {
            return Err(bad_cd("TxSZ below 16 without IDR5.VAX"));
        }
        r.validate()
            .map_err(|_| bad_cd("TxSZ out of range for the granule"))?;
        Ok(r)
    };
    let r0 = region(
        w0.epd0(),
        granule0,
        w0.t0sz(),
        cd.ttb0(),
        w0.tbi0(),
        cd.w1.had0(),
        false,
    )?;
    let r1 = region(
        w0.epd1(),
        granule1,
        w0.t1sz(),
        cd.ttb1(),
        w0.tbi1(),
        cd.w2.had1(),
        true,
    )?;
    Ok(ContextConfig {
        asid: Asid(w0.asid()),
        regions: [r0, r1],
        record: w0.r(),
        stall,
        abort: w0.a(),
        aset: w0.aset(),
    })
}
