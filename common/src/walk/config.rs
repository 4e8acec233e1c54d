//! Walk configurations and the pure geometry computation (Arm ARM D8.2 "Translation table
//! walk", D8.2.5 stage-2 concatenation, pseudocode `AArch64.S2InvalidSL` /
//! `AArch64.S2InconsistentSL`; IHI 0070 §5.4 (CD) and §5.2 (STE S2 fields)).
//!
//! A device crate decodes its context descriptor or STE into a [`Stage1Config`] or
//! [`Stage2Config`], calls `validate()` once (an error is C_BAD_CD / C_BAD_STE), and may cache
//! the config. Walks re-validate cheaply and never panic on an invalid config.

use crate::addr::Granule;

/// Smallest TxSZ without FEAT_LVA/LPA2 (48-bit input).
const MIN_TXSZ: u8 = 16;
/// Smallest TxSZ with the 64K granule and 52-bit addressing (FEAT_LVA).
const MIN_TXSZ_LVA: u8 = 12;
/// Largest TxSZ without FEAT_TTST (25-bit input).
///
/// Policy: small translation tables (IDR3.STT, TxSZ up to 48) are not supported; a larger
/// TxSZ is a config error the caller reports as C_BAD_CD / C_BAD_STE.
const MAX_TXSZ: u8 = 39;

/// Why a stage-1 or stage-2 configuration cannot be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ConfigError {
    /// TxSZ outside the supported range for the granule.
    #[error("TxSZ {txsz} is outside the supported range for the {granule:?} granule")]
    InputSize {
        /// The configured TxSZ.
        txsz: u8,
        /// The granule.
        granule: Granule,
    },
    /// Output size not one of 32, 36, 40, 42, 44, 48, 52 bits.
    #[error("output size of {bits} bits is not supported with the {granule:?} granule")]
    OutputSize {
        /// Configured output bits.
        bits: u32,
        /// The granule.
        granule: Granule,
    },
    /// Stage 2: SL0 is reserved for the granule, or needs a larger PA size
    /// (`AArch64.S2InvalidSL`).
    #[error("S2SL0 {sl0} is invalid for the {granule:?} granule with a {ps_bits}-bit PA size")]
    InvalidSl0 {
        /// The configured SL0.
        sl0: u8,
        /// The granule.
        granule: Granule,
        /// The effective PA size.
        ps_bits: u32,
    },
    /// Stage 2: the input size cannot be resolved from the start level with 1 to 16
    /// concatenated tables (`AArch64.S2InconsistentSL`).
    #[error("S2T0SZ {t0sz} is inconsistent with start level {start_level}")]
    InconsistentSl0 {
        /// The configured T0SZ.
        t0sz: u8,
        /// The start level SL0 selects.
        start_level: u8,
    },
    /// Stage 2: the IPA size exceeds the effective PA size (IHI 0070 §5.2 STE.S2T0SZ).
    #[error("IPA size {ia_bits} exceeds the {ps_bits}-bit PA size")]
    InputBeyondOutput {
        /// Input size in bits.
        ia_bits: u32,
        /// Effective PA size.
        ps_bits: u32,
    },
}

/// The shape of a translation regime: where the walk starts and how wide the root table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableGeometry {
    /// Translation granule.
    pub granule: Granule,
    /// Input address size in bits (64 - TxSZ).
    pub ia_bits: u32,
    /// First lookup level (0..=3).
    pub start_level: u8,
    /// log2 of the number of descriptors in the root table (for stage 2 this includes
    /// concatenated tables: up to `bits_per_level + 4`).
    pub root_index_bits: u32,
}

impl TableGeometry {
    /// Number of descriptors in the root table.
    pub const fn root_entries(&self) -> u64 {
        1u64 << self.root_index_bits
    }

    /// Size in bytes of the root table (all concatenated tables together).
    pub const fn root_bytes(&self) -> u64 {
        8u64 << self.root_index_bits
    }

    /// Number of concatenated granule-sized tables at the root (1 when the root fits one
    /// table; 2..=16 for concatenated stage-2 roots).
    pub const fn concatenated_tables(&self) -> u64 {
        let per_table = self.granule.bits_per_level();
        if self.root_index_bits > per_table {
            1u64 << (self.root_index_bits - per_table)
        } else {
            1
        }
    }

    /// Stage-1 geometry for an input size: the architectural start level
    /// `4 - ceil((ia - g) / s)` (Arm ARM D8.2.1; io-pgtable-arm.c `ARM_LPAE_START_LVL`).
    ///
    /// Returns `None` if `ia_bits` is not in `(g, 48]` (`(g, 52]` for 64K).
    #[inline]
    pub const fn stage1(granule: Granule, ia_bits: u32) -> Option<Self> {
        let g = granule.shift();
        let s = granule.bits_per_level();
        let max = match granule {
            Granule::K64 => 52,
            _ => 48,
        };
        if ia_bits <= g || ia_bits > max {
            return None;
        }
        let levels = (ia_bits - g).div_ceil(s);
        if levels > 4 {
            return None;
        }
        let start_level = (4 - levels) as u8;
        let root_index_bits = ia_bits - granule.level_shift(start_level as i8);
        Some(Self {
            granule,
            ia_bits,
            start_level,
            root_index_bits,
        })
    }
}

/// Minimum TxSZ for a granule (16; 12 for 64K when 52-bit inputs are supported: FEAT_LVA for
/// stage 1, a 52-bit PA size for stage 2).
#[inline]
const fn min_txsz(granule: Granule, large: bool) -> u8 {
    match granule {
        Granule::K64 if large => MIN_TXSZ_LVA,
        _ => MIN_TXSZ,
    }
}

/// Output sizes the walker supports (the IPS/PS encodings).
#[inline]
const fn check_oas(granule: Granule, bits: u32) -> Result<(), ConfigError> {
    match bits {
        32 | 36 | 40 | 42 | 44 | 48 | 52 => Ok(()),
        _ => Err(ConfigError::OutputSize { bits, granule }),
    }
}

/// The output size a walk uses: 52 bits need the 64K granule (FEAT_LPA); with 4K/16K (no
/// FEAT_LPA2) a 52-bit IPS/PS is treated as 48 bits (Arm ARM D8.1.x, "PS 0b110 with a granule
/// other than 64KB behaves as 0b101").
#[inline]
const fn effective_oas(granule: Granule, bits: u32) -> u32 {
    if bits > 48 && !matches!(granule, Granule::K64) {
        48
    } else {
        bits
    }
}

/// One stage-1 translation region (one TTBx of a context descriptor).
///
/// The device selects the region (VA bit 55: TTB0 or TTB1) with [`Stage1Config::region_of`]
/// and fills the fields of that half of the CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stage1Config {
    /// Translation granule (CD.TG0 / TG1 decoded).
    pub granule: Granule,
    /// CD.T0SZ / T1SZ: the region covers `2^(64 - txsz)` bytes.
    pub txsz: u8,
    /// Table base (CD.TTB0 / TTB1). An IPA under nesting. Bits below the root table's size
    /// (at least 64 bytes) are ignored.
    pub ttb: u64,
    /// Effective output size in bits: min(CD.IPS, SMMU OAS), computed by the caller.
    pub oas_bits: u32,
    /// This is the TTB1 (upper, VA bit 55 = 1) region: VA bits above the input size must be
    /// all ones instead of all zeros.
    pub upper: bool,
    /// Top byte ignored (CD.TBI0 / TBI1): VA bits \[63:56\] are not range-checked.
    pub tbi: bool,
    /// Walks disabled for this region (CD.EPD0 / EPD1): every access is a translation fault.
    pub epd: bool,
    /// Hierarchical attributes disabled (CD.HAD0 / HAD1, FEAT_HPDS): APTable, PXNTable and
    /// UXNTable are ignored.
    pub hpd: bool,
    /// Hardware access-flag update (CD.HA).
    pub ha: bool,
    /// Hardware dirty-state update through DBM (CD.HD; only meaningful with `ha`).
    pub hd: bool,
    /// Access-flag fault disable (CD.AFFD): AF = 0 neither faults nor is updated.
    pub affd: bool,
    /// Write implies execute-never (CD.WXN).
    pub wxn: bool,
    /// Privileged access never (CD.PAN): privileged data accesses to EL0-accessible pages fault.
    pub pan: bool,
    /// 52-bit input addresses with the 64K granule are supported (SMMU IDR5.VAX, FEAT_LVA):
    /// TxSZ may go down to 12.
    pub lva: bool,
    /// Memory attribute indirection register (CD.MAIR), indexed by the leaf's AttrIndx.
    pub mair: u64,
}

impl Stage1Config {
    /// A region with the given geometry and every optional feature off (MAIR 0).
    pub const fn new(granule: Granule, txsz: u8, ttb: u64, oas_bits: u32) -> Self {
        Self {
            granule,
            txsz,
            ttb,
            oas_bits,
            upper: false,
            tbi: false,
            epd: false,
            hpd: false,
            ha: false,
            hd: false,
            affd: false,
            wxn: false,
            pan: false,
            lva: false,
            mair: 0,
        }
    }

    /// Which region `va` belongs to: `true` for TTB1 (VA bit 55 set), regardless of TBI.
    #[inline]
    pub const fn region_of(va: u64) -> bool {
        (va >> 55) & 1 == 1
    }

    /// Input address size in bits (`64 - txsz`, saturating).
    #[inline]
    pub const fn ia_bits(&self) -> u32 {
        64u32.saturating_sub(self.txsz as u32)
    }

    /// The output size walks use: `oas_bits`, except that 52 reads as 48 without the 64K
    /// granule.
    #[inline]
    pub const fn effective_oas(&self) -> u32 {
        effective_oas(self.granule, self.oas_bits)
    }

    /// Check the configuration and compute where walks start.
    ///
    /// # Errors
    /// [`ConfigError::InputSize`] for TxSZ outside `[16 (12 for 64K with `lva`), 39]`,
    /// [`ConfigError::OutputSize`] for an output size that is not an IPS encoding.
    #[inline]
    pub const fn validate(&self) -> Result<TableGeometry, ConfigError> {
        if let Err(e) = check_oas(self.granule, self.oas_bits) {
            return Err(e);
        }
        if self.txsz < min_txsz(self.granule, self.lva) || self.txsz > MAX_TXSZ {
            return Err(ConfigError::InputSize {
                txsz: self.txsz,
                granule: self.granule,
            });
        }
        match TableGeometry::stage1(self.granule, self.ia_bits()) {
            Some(g) => Ok(g),
            None => Err(ConfigError::InputSize {
                txsz: self.txsz,
                granule: self.granule,
            }),
        }
    }
}

/// A stage-2 translation configuration (the S2 fields of an STE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stage2Config {
    /// Translation granule (STE.S2TG decoded).
    pub granule: Granule,
    /// STE.S2T0SZ: the IPA space is `2^(64 - t0sz)` bytes.
    pub t0sz: u8,
    /// STE.S2SL0: start level (4K: 2/1/0 = L0/L1/L2; 16K/64K: 2/1/0 = L1/L2/L3).
    pub sl0: u8,
    /// STE.S2TTB: base of the (possibly concatenated) root table. Bits below the root size are
    /// ignored.
    pub vttb: u64,
    /// Effective PA size in bits: min(STE.S2PS, SMMU OAS), computed by the caller.
    pub ps_bits: u32,
    /// Hardware access-flag update (STE.S2HA).
    pub ha: bool,
    /// Hardware dirty-state update through DBM (STE.S2HD; only meaningful with `ha`).
    pub hd: bool,
    /// Access-flag fault disable (STE.S2AFFD).
    pub affd: bool,
    /// FEAT_XNX (IDR3.XNX): descriptor XN is two bits \[54:53\] distinguishing privileged and
    /// unprivileged execution; otherwise only XN\[1\] (bit 54) is used.
    pub xnx: bool,
    /// Stage-2 forced write-back (STE.S2FWB): MemAttr uses the FWB encoding.
    pub fwb: bool,
}

impl Stage2Config {
    /// A configuration with the given geometry and every optional feature off.
    pub const fn new(granule: Granule, t0sz: u8, sl0: u8, vttb: u64, ps_bits: u32) -> Self {
        Self {
            granule,
            t0sz,
            sl0,
            vttb,
            ps_bits,
            ha: false,
            hd: false,
            affd: false,
            xnx: false,
            fwb: false,
        }
    }

    /// Input (IPA) size in bits (`64 - t0sz`, saturating).
    pub const fn ia_bits(&self) -> u32 {
        64u32.saturating_sub(self.t0sz as u32)
    }

    /// The PA size walks use: `ps_bits`, except that 52 reads as 48 without the 64K granule.
    pub const fn effective_ps(&self) -> u32 {
        effective_oas(self.granule, self.ps_bits)
    }

    /// The start level SL0 selects, or `None` if SL0 is reserved for the granule.
    ///
    /// Policy: SL0 = 3 (FEAT_TTST level 3 for 4K, FEAT_LPA2 level 0 for 16K) is not supported,
    /// as in QEMU; the caller reports C_BAD_STE.
    pub const fn start_level(&self) -> Option<u8> {
        match (self.granule, self.sl0) {
            (Granule::K4, 2) => Some(0),
            (Granule::K4, 1) => Some(1),
            (Granule::K4, 0) => Some(2),
            (Granule::K16 | Granule::K64, 2) => Some(1),
            (Granule::K16 | Granule::K64, 1) => Some(2),
            (Granule::K16 | Granule::K64, 0) => Some(3),
            _ => None,
        }
    }

    /// Check the configuration and compute the (possibly concatenated) root geometry.
    ///
    /// Rules, in order: output size is an encoding the granule supports; T0SZ within
    /// `[16 (12 for 64K/52-bit), 39]`; SL0 not reserved and, per `AArch64.S2InvalidSL`, 4K
    /// level 0 and 64K level 1 need a PA size of at least 44 bits and 16K level 1 at least 42;
    /// per `AArch64.S2InconsistentSL` the IPA size lies in
    /// `[shift(start) + 1, shift(start) + s + 4]` (1 to 16 concatenated tables); and the IPA
    /// size does not exceed the PA size.
    ///
    /// # Errors
    /// The first rule broken, as a [`ConfigError`]; the caller reports C_BAD_STE.
    pub const fn validate(&self) -> Result<TableGeometry, ConfigError> {
        let granule = self.granule;
        if let Err(e) = check_oas(granule, self.ps_bits) {
            return Err(e);
        }
        let ps_bits = self.effective_ps();
        if self.t0sz < min_txsz(granule, ps_bits >= 52) || self.t0sz > MAX_TXSZ {
            return Err(ConfigError::InputSize {
                txsz: self.t0sz,
                granule,
            });
        }
        let bad_sl0 = ConfigError::InvalidSl0 {
            sl0: self.sl0,
            granule,
            ps_bits,
        };
        let Some(start_level) = self.start_level() else {
            return Err(bad_sl0);
        };
        let min_ps = match (granule, start_level) {
            (Granule::K4, 0) | (Granule::K64, 1) => 44,
            (Granule::K16, 1) => 42,
            _ => 0,
        };
        if ps_bits < min_ps {
            return Err(bad_sl0);
        }
        let ia_bits = self.ia_bits();
        let shift = granule.level_shift(start_level as i8);
        let s = granule.bits_per_level();
        if ia_bits < shift + 1 || ia_bits > shift + s + 4 {
            return Err(ConfigError::InconsistentSl0 {
                t0sz: self.t0sz,
                start_level,
            });
        }
        if ia_bits > ps_bits {
            return Err(ConfigError::InputBeyondOutput { ia_bits, ps_bits });
        }
        Ok(TableGeometry {
            granule,
            ia_bits,
            start_level,
            root_index_bits: ia_bits - shift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stage-1 start levels follow Arm ARM D8.2 (IHI 0070 §5.4 CD.T0SZ): 4K ia 48 -> L0 (512), 4K
    /// ia 39 -> L1, 16K ia 48 -> L0 with 2 entries, 64K ia 48 -> L1 with 64 entries.
    #[test]
    fn test_stage1_start_level() {
        let g = |gr, txsz| Stage1Config::new(gr, txsz, 0, 48).validate().unwrap();
        let a = g(Granule::K4, 16);
        assert_eq!((a.start_level, a.root_entries()), (0, 512));
        let b = g(Granule::K4, 25);
        assert_eq!((b.start_level, b.root_entries()), (1, 512));
        let c = g(Granule::K16, 16);
        assert_eq!((c.start_level, c.root_entries()), (0, 2));
        let d = g(Granule::K64, 16);
        assert_eq!((d.start_level, d.root_entries()), (1, 64));
        let e = g(Granule::K4, 32);
        assert_eq!((e.start_level, e.root_entries()), (1, 4));
        let f = g(Granule::K4, 39);
        assert_eq!((f.start_level, f.root_entries()), (2, 16));
        let mut cfg = Stage1Config::new(Granule::K64, 12, 0, 48);
        assert!(cfg.validate().is_err(), "52-bit VA needs lva");
        cfg.lva = true;
        let lva = cfg.validate().unwrap();
        assert_eq!((lva.start_level, lva.root_entries()), (1, 1024));
    }

    /// TxSZ and output sizes outside the supported ranges are config errors, not panics.
    #[test]
    fn test_stage1_invalid_config() {
        for txsz in [0u8, 15, 40, 48, 64, 255] {
            assert!(Stage1Config::new(Granule::K4, txsz, 0, 48)
                .validate()
                .is_err());
        }
        assert!(Stage1Config::new(Granule::K16, 12, 0, 48)
            .validate()
            .is_err());
        // A 52-bit output size without the 64K granule is valid and walks as 48 bits.
        let c = Stage1Config::new(Granule::K4, 16, 0, 52);
        assert!(c.validate().is_ok());
        assert_eq!(c.effective_oas(), 48);
        let s2 = Stage2Config::new(Granule::K16, 16, 2, 0, 52);
        assert_eq!(
            (s2.validate().map(|g| g.start_level), s2.effective_ps()),
            (Ok(1), 48)
        );
        assert!(Stage1Config::new(Granule::K4, 16, 0, 47)
            .validate()
            .is_err());
        assert!(Stage1Config::new(Granule::K64, 12, 0, 48)
            .validate()
            .is_err());
    }

    /// SL0 decoding and concatenation follow `arm_64_lpae_alloc_pgtable_s2()`: 4K 48-bit SL0 2 ->
    /// L0; 4K 40-bit T0SZ 24 SL0 1 -> L1 with 2 tables; 64K 48-bit SL0 2 -> L1 with 64 entries.
    #[test]
    fn test_stage2_sl0_and_concatenation() {
        let a = Stage2Config::new(Granule::K4, 16, 2, 0, 48)
            .validate()
            .unwrap();
        assert_eq!(
            (a.start_level, a.root_entries(), a.concatenated_tables()),
            (0, 512, 1)
        );
        let b = Stage2Config::new(Granule::K4, 24, 1, 0, 40)
            .validate()
            .unwrap();
        assert_eq!((b.start_level, b.concatenated_tables()), (1, 2));
        let c = Stage2Config::new(Granule::K64, 16, 2, 0, 48)
            .validate()
            .unwrap();
        assert_eq!((c.start_level, c.root_entries()), (1, 64));
        // 16K 48-bit: concatenated at L1, 2 tables (R_DXBSH).
        let d = Stage2Config::new(Granule::K16, 16, 2, 0, 48)
            .validate()
            .unwrap();
        assert_eq!((d.start_level, d.concatenated_tables()), (1, 2));
        // 16K 40-bit PA: L2 with 16 tables (R_SRKBC b).
        let e = Stage2Config::new(Granule::K16, 24, 1, 0, 40)
            .validate()
            .unwrap();
        assert_eq!((e.start_level, e.concatenated_tables()), (2, 16));
        // 4K 42-bit at L1: 8 tables.
        let f = Stage2Config::new(Granule::K4, 22, 1, 0, 42)
            .validate()
            .unwrap();
        assert_eq!(f.concatenated_tables(), 8);
    }

    /// Invalid SL0/T0SZ combinations are typed errors.
    #[test]
    fn test_stage2_invalid_config() {
        let v = |g, t0sz, sl0, ps| Stage2Config::new(g, t0sz, sl0, 0, ps).validate();
        // SL0 = 3 is reserved (no TTST / LPA2).
        assert!(matches!(
            v(Granule::K4, 32, 3, 48),
            Err(ConfigError::InvalidSl0 { .. })
        ));
        // 4K start level 0 needs a 44-bit PA (R_SRKBC a).
        assert!(matches!(
            v(Granule::K4, 24, 2, 40),
            Err(ConfigError::InvalidSl0 { .. })
        ));
        // 16K start level 1 needs a 42-bit PA (R_SRKBC b).
        assert!(matches!(
            v(Granule::K16, 24, 2, 40),
            Err(ConfigError::InvalidSl0 { .. })
        ));
        // 4K 48-bit input from level 1 would need 512 tables.
        assert!(matches!(
            v(Granule::K4, 16, 1, 48),
            Err(ConfigError::InconsistentSl0 { .. })
        ));
        // 4K 32-bit input cannot start at level 0.
        assert!(matches!(
            v(Granule::K4, 32, 2, 48),
            Err(ConfigError::InconsistentSl0 { .. })
        ));
        // IPA larger than the PA size.
        assert!(matches!(
            v(Granule::K4, 16, 2, 44),
            Err(ConfigError::InputBeyondOutput { .. })
        ));
        assert!(matches!(
            v(Granule::K4, 16, 2, 33),
            Err(ConfigError::OutputSize { .. })
        ));
        assert!(matches!(
            v(Granule::K4, 200, 0, 48),
            Err(ConfigError::InputSize { .. })
        ));
    }
}
