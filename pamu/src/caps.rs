//! Configuration of a PAMU model and the capability registers it advertises (Linux
//! `fsl_pamu.h` PC2/PC3, the SoC's MPIC MSI banks; profiles: policy 17 in the crate docs).
//!
//! [`PamuConfig`] is plain data (serde-deserialisable, so replay files can name its fields);
//! [`PamuConfig::caps`] validates it once and builds the typed read-only registers
//! ([`Caps`]), which are then the only source of truth for "what does this PAMU support".

use serde::{Deserialize, Serialize};

use crate::spec::regs::{Pc2, Pc3, Pr1};

/// MPIC (interrupt controller) generation, which decides the MSI bank layout and the MSIIR
/// encoding (Linux `arch/powerpc/sysdev/fsl_msi.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum MpicVersion {
    /// MPIC v4.2 (P4080 class): MSIIR at alias page + 0x140, SRS = `data[7:5]`, IBS = `data[4:0]`,
    /// 8 MSIRs per bank.
    #[default]
    V4_2,
    /// MPIC v4.3 (T4240 class): MSIIR1 at alias page + 0x148, SRS = `data[3:0]`,
    /// IBS = `data[8:4]`, 16 MSIRs per bank.
    V4_3,
}

impl<'de> Deserialize<'de> for MpicVersion {
    /// Accepts `"4.2"`, `"v4.2"`, `"V4_2"`, `4.2`, `42` (and the same for 4.3).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MpicVersion;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an MPIC version: \"4.2\" or \"4.3\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MpicVersion, E> {
                match s.trim_start_matches(['v', 'V']) {
                    "4.2" | "4_2" | "42" => Ok(MpicVersion::V4_2),
                    "4.3" | "4_3" | "43" => Ok(MpicVersion::V4_3),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MpicVersion, E> {
                if (v - 4.2).abs() < 1e-9 {
                    Ok(MpicVersion::V4_2)
                } else if (v - 4.3).abs() < 1e-9 {
                    Ok(MpicVersion::V4_3)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MpicVersion, E> {
                match v {
                    42 => Ok(MpicVersion::V4_2),
                    43 => Ok(MpicVersion::V4_3),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MpicVersion, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// How one PAMU model is built. Every field has a default (the P4080 rev 2+ profile), so a
/// replay file may give only the fields it cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PamuConfig {
    /// Number of PAMU instances (register blocks at stride 0x1000); 1..=16. P4080: 5, T4240: 6.
    pub instances: u8,
    /// Largest LIODN the hardware accepts (PC2.MLIODN). Default 0xFFF (`fsl,liodn-bits = <12>`).
    pub max_liodn: u16,
    /// log2 of the maximum subwindow count per LIODN = PC3.MWCE + 1; 1..=16.
    /// P4080 rev 1: 4 (16 subwindows); P4080 rev 2+, T4240: 8 (256).
    pub max_subwindows_log2: u8,
    /// Number of MSI banks (3 on MPIC 4.2 SoCs, 4 on MPIC 4.3); 0..=4.
    pub msi_banks: u8,
    /// MPIC generation (MSIIR offset and encoding).
    pub mpic_version: MpicVersion,
    /// Physical address width: 36 (e500mc) or 40 (e5500/e6500). TWBA is masked to it.
    pub phys_addr_bits: u8,
    /// CCSR base as seen by DMA (Linux hard-codes 0xF_FE00_0000); MSI bank pages live in it.
    pub ccsr_base: u64,
    /// PR1 value. Policy: no public value exists; 0 unless configured.
    pub pr1: u32,
    /// PR2 value. Policy: 0 unless configured.
    pub pr2: u32,
    /// Interrupt-sink line number of the access-violation interrupt (DT interrupt 1).
    pub av_line: u32,
    /// Interrupt-sink line number of the operation-error / ECC interrupt (DT interrupt 2).
    pub err_line: u32,
    /// Policy 14 (crate docs): the instance that checks and captures faults for a LIODN
    /// (the device's `fsl,iommu-parent`), as `(liodn, instance)` pairs; unlisted LIODNs use
    /// instance 0.
    pub liodn_parents: Vec<(u16, u8)>,
}

impl Default for PamuConfig {
    fn default() -> Self {
        Self::p4080()
    }
}

impl PamuConfig {
    /// P4080 rev 2+: 5 PAMUs, 256 subwindows (MWCE 7), 3 MSI banks on MPIC 4.2, 36-bit.
    pub fn p4080() -> Self {
        Self {
            instances: 5,
            max_liodn: 0xFFF,
            max_subwindows_log2: 8,
            msi_banks: 3,
            mpic_version: MpicVersion::V4_2,
            phys_addr_bits: 36,
            ccsr_base: 0xF_FE00_0000,
            pr1: 0,
            pr2: 0,
            av_line: 0,
            err_line: 1,
            liodn_parents: Vec::new(),
        }
    }

    /// P4080 rev 1: as [`PamuConfig::p4080`] with 16 subwindows (MWCE 3).
    pub fn p4080_rev1() -> Self {
        Self {
            max_subwindows_log2: 4,
            ..Self::p4080()
        }
    }

    /// T4240: 6 PAMUs, 256 subwindows, 4 MSI banks on MPIC 4.3, 40-bit.
    pub fn t4240() -> Self {
        Self {
            instances: 6,
            msi_banks: 4,
            mpic_version: MpicVersion::V4_3,
            phys_addr_bits: 40,
            ..Self::p4080()
        }
    }

    /// Validate and build the advertised capabilities.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first field out of range.
    pub fn caps(&self) -> Result<Caps, ConfigError> {
        if !(1..=16).contains(&self.instances) {
            return Err(ConfigError::Instances(self.instances));
        }
        if !(1..=16).contains(&self.max_subwindows_log2) {
            return Err(ConfigError::Subwindows(self.max_subwindows_log2));
        }
        if self.msi_banks > 4 {
            return Err(ConfigError::MsiBanks(self.msi_banks));
        }
        if !(32..=52).contains(&self.phys_addr_bits) {
            return Err(ConfigError::PhysAddrBits(self.phys_addr_bits));
        }
        if self.ccsr_base & 0xF_FFFF != 0 || self.ccsr_base >> self.phys_addr_bits != 0 {
            return Err(ConfigError::CcsrBase(self.ccsr_base));
        }
        if let Some(&(liodn, inst)) = self.liodn_parents.iter().find(|p| p.1 >= self.instances) {
            return Err(ConfigError::Parent {
                liodn,
                instance: inst,
            });
        }
        Ok(Caps {
            instances: self.instances,
            pc2: Pc2::new().with_mliodn(self.max_liodn),
            pc3: Pc3::new().with_mwce(self.max_subwindows_log2 - 1),
            pr1: Pr1::from_bits(self.pr1),
            pr2: self.pr2,
            msi_banks: self.msi_banks,
            mpic_version: self.mpic_version,
            phys_mask: (1u64 << self.phys_addr_bits) - 1,
            ccsr_base: self.ccsr_base,
            av_line: self.av_line,
            err_line: self.err_line,
        })
    }
}

/// A [`PamuConfig`] field is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `instances` must be 1..=16.
    #[error("instances = {0}: must be 1..=16")]
    Instances(u8),
    /// `max_subwindows_log2` must be 1..=16 (PC3.MWCE is 4 bits).
    #[error("max_subwindows_log2 = {0}: must be 1..=16")]
    Subwindows(u8),
    /// `msi_banks` must be 0..=4.
    #[error("msi_banks = {0}: must be 0..=4")]
    MsiBanks(u8),
    /// `phys_addr_bits` must be 32..=52.
    #[error("phys_addr_bits = {0}: must be 32..=52")]
    PhysAddrBits(u8),
    /// `ccsr_base` must be 1 MiB aligned and inside the physical address space.
    #[error("ccsr_base = {0:#x}: must be 1 MiB aligned and inside the physical address space")]
    CcsrBase(u64),
    /// A `liodn_parents` entry names an instance that does not exist.
    #[error("liodn_parents: LIODN {liodn:#x} -> instance {instance}, which does not exist")]
    Parent {
        /// The LIODN.
        liodn: u16,
        /// The instance named.
        instance: u8,
    },
}

/// What a PAMU model advertises and supports, derived once from a [`PamuConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Number of instances.
    pub instances: u8,
    /// PC2 (MLIODN).
    pub pc2: Pc2,
    /// PC3 (MWCE).
    pub pc3: Pc3,
    /// PR1.
    pub pr1: Pr1,
    /// PR2.
    pub pr2: u32,
    /// Number of MSI banks.
    pub msi_banks: u8,
    /// MPIC generation.
    pub mpic_version: MpicVersion,
    /// Mask of the physical address width.
    pub phys_mask: u64,
    /// CCSR base.
    pub ccsr_base: u64,
    /// Access-violation interrupt line.
    pub av_line: u32,
    /// Operation-error interrupt line.
    pub err_line: u32,
}

impl Caps {
    /// Maximum subwindows per LIODN: 2^(PC3.MWCE + 1).
    pub fn max_subwindows(&self) -> u32 {
        1u32 << (self.pc3.mwce() + 1)
    }

    /// Largest WCE a PAACE may use (= PC3.MWCE).
    pub fn max_wce(&self) -> u8 {
        self.pc3.mwce()
    }

    /// Largest LIODN (PC2.MLIODN).
    pub fn max_liodn(&self) -> u16 {
        self.pc2.mliodn()
    }

    /// MMIO size of all instances.
    pub fn mmio_size(&self) -> u64 {
        u64::from(self.instances) * crate::spec::regs::INSTANCE_STRIDE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SoC profiles advertise the PC3 values of TV-0 and the documented counts.
    #[test]
    fn test_profiles_advertise_pc3() {
        let p = PamuConfig::p4080().caps().unwrap();
        assert_eq!(p.pc3.into_bits(), 0x00E0_0000);
        assert_eq!(p.max_subwindows(), 256);
        assert_eq!(p.instances, 5);
        assert_eq!(p.msi_banks, 3);
        let r1 = PamuConfig::p4080_rev1().caps().unwrap();
        assert_eq!(r1.pc3.into_bits(), 0x0060_0000);
        assert_eq!(r1.max_subwindows(), 16);
        let t = PamuConfig::t4240().caps().unwrap();
        assert_eq!(
            (t.instances, t.msi_banks, t.mpic_version),
            (6, 4, MpicVersion::V4_3)
        );
        assert_eq!(t.pc2.into_bits(), 0x0FFF_0000);
    }

    /// Out-of-range configurations are refused with the field named.
    #[test]
    fn test_config_validation() {
        let bad = PamuConfig {
            instances: 0,
            ..PamuConfig::p4080()
        };
        assert_eq!(bad.caps(), Err(ConfigError::Instances(0)));
        let bad = PamuConfig {
            msi_banks: 5,
            ..PamuConfig::p4080()
        };
        assert_eq!(bad.caps(), Err(ConfigError::MsiBanks(5)));
        let bad = PamuConfig {
            liodn_parents: vec![(3, 9)],
            ..PamuConfig::p4080()
        };
        assert!(matches!(
            bad.caps(),
            Err(ConfigError::Parent {
                liodn: 3,
                instance: 9
            })
        ));
    }
}
