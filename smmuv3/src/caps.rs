//! Capabilities: the configuration a VMM chooses, and the ID registers built from it once
//! (IHI 0070 §6.3.1..§6.3.6).
//!
//! [`SmmuConfig`] is the public, plain configuration with defaults that make a Linux 6.x
//! `arm-smmu-v3` driver pick a 2-level stream table and MSI-polled CMD_SYNC completion.
//! [`SmmuConfig::caps`] validates it and builds [`Caps`]: the typed ID registers, which are the
//! only source of truth for "is this supported?" everywhere else in the crate.
//! [`SmmuConfig::from_id_regs`] goes the other way, so a VMM can mirror a host SMMU and a replay
//! can mirror the SMMU a trace was recorded on: it accepts exactly the features this model can
//! present and names the first one it cannot.
//!
//! Policy: ATS, PRI, the stall model and HTTU are configurable and mirrored from ID registers,
//! but off by default (IDR0.STALL_MODEL = 1, terminate only: a guest must opt a master into
//! stalls, and PCIe masters must never stall).

use viommu_common::addr::Granule;

use crate::spec::idr::{
    Aidr, Httu, Idr0, Idr1, Idr2, Idr3, Idr4, Idr5, Iidr, Oas, StLevel, StallModel, TtEndian, Ttf,
};

/// Raw ID register values (IDR0..IDR5, IIDR, AIDR), as a host reports them or a replay records
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IdRegs {
    /// IDR0.
    pub idr0: u32,
    /// IDR1.
    pub idr1: u32,
    /// IDR2.
    pub idr2: u32,
    /// IDR3.
    pub idr3: u32,
    /// IDR4.
    pub idr4: u32,
    /// IDR5.
    pub idr5: u32,
    /// IIDR.
    pub iidr: u32,
    /// AIDR.
    pub aidr: u32,
}

/// A set of translation granules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GranuleSet {
    /// 4 KiB (IDR5.GRAN4K).
    pub k4: bool,
    /// 16 KiB (IDR5.GRAN16K).
    pub k16: bool,
    /// 64 KiB (IDR5.GRAN64K).
    pub k64: bool,
}

impl GranuleSet {
    /// All three granules.
    pub const ALL: GranuleSet = GranuleSet {
        k4: true,
        k16: true,
        k64: true,
    };

    /// True if `g` is in the set.
    pub const fn contains(self, g: Granule) -> bool {
        match g {
            Granule::K4 => self.k4,
            Granule::K16 => self.k16,
            Granule::K64 => self.k64,
        }
    }
}

/// The configuration of one emulated SMMUv3: which features it advertises and its limits.
///
/// Every field maps to an ID register field (named in its doc). Build the device's [`Caps`] with
/// [`SmmuConfig::caps`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmmuConfig {
    /// Stage-1 translation (IDR0.S1P). Default on.
    pub stage1: bool,
    /// Stage-2 translation (IDR0.S2P). Default on; with `stage1`, nesting (STE Config 0b111).
    pub stage2: bool,
    /// Two-level stream tables (IDR0.ST_LEVEL = 1). Default on: Linux then uses them when
    /// `sid_bits > 8`.
    pub two_level_stream_table: bool,
    /// Two-level CD tables (IDR0.CD2L). Default on.
    pub two_level_cd_table: bool,
    /// StreamID bits (IDR1.SIDSIZE, 0..=32). Default 16.
    pub sid_bits: u8,
    /// SubstreamID (PASID) bits (IDR1.SSIDSIZE, 0..=20). Default 20.
    pub ssid_bits: u8,
    /// Translation granules (IDR5.GRAN*). Default 4K, 16K and 64K.
    pub granules: GranuleSet,
    /// Output address size in bits (IDR5.OAS: 32, 36, 40, 42, 44, 48 or 52). Default 48.
    pub oas_bits: u32,
    /// 52-bit stage-1 input addresses with the 64K granule (IDR5.VAX = 1). Default off.
    pub va52: bool,
    /// Range invalidation (IDR3.RIL). Default on.
    pub range_invalidation: bool,
    /// Coherent table, queue and MSI access (IDR0.COHACC). Default on.
    pub coherent: bool,
    /// 16-bit ASIDs (IDR0.ASID16). Default on.
    pub asid16: bool,
    /// 16-bit VMIDs (IDR0.VMID16). Default on.
    pub vmid16: bool,
    /// Message-signalled interrupts (IDR0.MSI). Default on: Linux then completes CMD_SYNC by
    /// MSI polling (a coherent guest).
    pub msi: bool,
    /// EL2 translation regime (IDR0.HYP: STRW = EL2, TLBI_EL2_*). Default off (EL1 guests).
    pub hyp: bool,
    /// PCIe ATS (IDR0.ATS). Default off.
    pub ats: bool,
    /// Split-stage ATS not supported (IDR0.NS1ATS). Default off.
    pub ns1ats: bool,
    /// PCIe PRI (IDR0.PRI). Default off.
    pub pri: bool,
    /// Stall model (IDR0.STALL_MODEL). Default [`StallModel::TERMINATE`].
    pub stall_model: StallModel,
    /// Maximum outstanding stalls (IDR5.STALL_MAX). Default 0.
    pub stall_max: u16,
    /// Terminated transactions always abort (IDR0.TERM_MODEL). Default off (CD.A decides).
    pub term_model: bool,
    /// Hardware table updates (IDR0.HTTU). Default [`Httu::NONE`].
    pub httu: Httu,
    /// Dormant hint (IDR0.DORMHINT); STATUSR.DORMANT still reads 0. Default off.
    pub dormhint: bool,
    /// Hierarchical attribute disable (IDR3.HAD: CD.HAD0/HAD1). Default on.
    pub had: bool,
    /// Stage-2 XN\[1:0\] (IDR3.XNX). Default off.
    pub xnx: bool,
    /// Stage-2 forced write-back (IDR3.FWB: STE.S2FWB). Default off.
    pub fwb: bool,
    /// Break-before-make level (IDR3.BBML, 0..=2). Default 0.
    pub bbml: u8,
    /// PRI responses always carry a PASID (IDR3.PPS). Default off.
    pub pps: bool,
    /// STE MemAttr/SHCFG/ALLOCCFG overrides (IDR1.ATTR_TYPES_OVR). Default off.
    pub attr_types_ovr: bool,
    /// STE PRIVCFG/INSTCFG overrides (IDR1.ATTR_PERMS_OVR). Default off.
    pub attr_perms_ovr: bool,
    /// log2 of the maximum command queue entries (IDR1.CMDQS, at most 19; Linux needs >= 7).
    /// Default 19.
    pub cmdq_log2: u8,
    /// log2 of the maximum event queue entries (IDR1.EVENTQS, at most 19). Default 19.
    pub evtq_log2: u8,
    /// log2 of the maximum PRI queue entries (IDR1.PRIQS, at most 19). Default 0.
    pub priq_log2: u8,
    /// IMPLEMENTATION DEFINED IDR4 value. Default 0.
    pub idr4: u32,
    /// IIDR value. Default 0 (never an Arm MMU-600/700 identity: Linux errata would drop nesting).
    pub iidr: u32,
    /// AIDR value. Default 0x02 (SMMUv3.2: RIL and BBML are v3.2 features).
    pub aidr: u32,
}

impl Default for SmmuConfig {
    fn default() -> Self {
        Self {
            stage1: true,
            stage2: true,
            two_level_stream_table: true,
            two_level_cd_table: true,
            sid_bits: 16,
            ssid_bits: 20,
            granules: GranuleSet::ALL,
            oas_bits: 48,
            va52: false,
            range_invalidation: true,
            coherent: true,
            asid16: true,
            vmid16: true,
            msi: true,
            hyp: false,
            ats: false,
            ns1ats: false,
            pri: false,
            stall_model: StallModel::TERMINATE,
            stall_max: 0,
            term_model: false,
            httu: Httu::NONE,
            dormhint: false,
            had: true,
            xnx: false,
            fwb: false,
            bbml: 0,
            pps: false,
            attr_types_ovr: false,
            attr_perms_ovr: false,
            cmdq_log2: 19,
            evtq_log2: 19,
            priq_log2: 0,
            idr4: 0,
            iidr: 0,
            aidr: 0x02,
        }
    }
}

/// A configuration or ID register value this model cannot present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// The field asks for a feature the model does not implement.
    #[error("{field} = {value:#x}: {what} is not supported by this SMMUv3 model")]
    Unsupported {
        /// Register and field, e.g. `"IDR0.TTF"`.
        field: &'static str,
        /// The raw field value.
        value: u32,
        /// The feature, in words.
        what: &'static str,
    },
    /// The field value is reserved or out of the architectural range.
    #[error("{field} = {value:#x} is invalid: {why}")]
    Invalid {
        /// Register and field, e.g. `"IDR1.SIDSIZE"`.
        field: &'static str,
        /// The raw field value.
        value: u32,
        /// Why it is invalid.
        why: &'static str,
    },
}

fn unsupported(field: &'static str, value: u32, what: &'static str) -> CapsError {
    CapsError::Unsupported { field, value, what }
}

fn invalid(field: &'static str, value: u32, why: &'static str) -> CapsError {
    CapsError::Invalid { field, value, why }
}

/// Reject a set flag the model cannot present.
fn refuse(set: bool, field: &'static str, what: &'static str) -> Result<(), CapsError> {
    if set {
        Err(unsupported(field, 1, what))
    } else {
        Ok(())
    }
}

impl SmmuConfig {
    /// Validate the configuration and build the typed ID registers.
    ///
    /// # Errors
    /// [`CapsError::Invalid`] for a value outside the architectural range (no stage, SIDSIZE > 32,
    /// SSIDSIZE > 20, a queue size > 19, an OAS without an encoding, no granule, BBML > 2,
    /// AIDR not SMMUv3) or a field whose dependency is missing (PRI without ATS, HYP without
    /// both stages, NS1ATS without ATS and both stages); [`CapsError::Unsupported`] for
    /// HTTU = 3 (HAFT).
    pub fn caps(&self) -> Result<Caps, CapsError> {
        if !self.stage1 && !self.stage2 {
            return Err(invalid("IDR0.S1P/S2P", 0, "at least one stage is required"));
        }
        if self.sid_bits > 32 {
            return Err(invalid("IDR1.SIDSIZE", self.sid_bits.into(), "at most 32"));
        }
        if self.ssid_bits > 20 {
            return Err(invalid(
                "IDR1.SSIDSIZE",
                self.ssid_bits.into(),
                "at most 20",
            ));
        }
        for (field, v) in [
            ("IDR1.CMDQS", self.cmdq_log2),
            ("IDR1.EVENTQS", self.evtq_log2),
            ("IDR1.PRIQS", self.priq_log2),
        ] {
            if v > 19 {
                return Err(invalid(
                    field,
                    v.into(),
                    "queue sizes are at most 2^19 entries",
                ));
            }
        }
        let Some(oas) = Oas::from_size_bits(self.oas_bits) else {
            return Err(invalid(
                "IDR5.OAS",
                self.oas_bits,
                "not an architectural address size",
            ));
        };
        if !(self.granules.k4 || self.granules.k16 || self.granules.k64) {
            return Err(invalid("IDR5.GRAN*", 0, "at least one granule is required"));
        }
        if self.va52 && !self.granules.k64 {
            return Err(invalid("IDR5.VAX", 1, "52-bit VA needs the 64K granule"));
        }
        if self.stall_model.0 > 2 {
            return Err(invalid(
                "IDR0.STALL_MODEL",
                self.stall_model.0.into(),
                "reserved",
            ));
        }
        if self.httu.0 > 2 {
            return Err(unsupported(
                "IDR0.HTTU",
                self.httu.0.into(),
                "hardware Access flag update of table descriptors (HAFT)",
            ));
        }
        // Dependencies between IDR0 fields (IHI 0070 §6.3.1: RES0 otherwise).
        if self.pri && !self.ats {
            return Err(invalid("IDR0.PRI", 1, "PRI needs ATS"));
        }
        if self.hyp && !(self.stage1 && self.stage2) {
            return Err(invalid("IDR0.HYP", 1, "HYP needs both stages"));
        }
        if self.ns1ats && !(self.ats && self.stage1 && self.stage2) {
            return Err(invalid(
                "IDR0.NS1ATS",
                1,
                "NS1ATS needs ATS and both stages",
            ));
        }
        if self.bbml > 2 {
            return Err(invalid("IDR3.BBML", self.bbml.into(), "reserved"));
        }
        let aidr = Aidr::from_bits(self.aidr);
        if aidr.smmuv3_minor_rev().is_none() {
            return Err(invalid("AIDR", self.aidr, "must be SMMUv3.0..v3.3"));
        }

        let idr0 = Idr0::new()
            .with_s2p(self.stage2)
            .with_s1p(self.stage1)
            .with_ttf(Ttf::AARCH64)
            .with_cohacc(self.coherent)
            .with_httu(self.httu)
            .with_dormhint(self.dormhint)
            .with_hyp(self.hyp)
            .with_ats(self.ats)
            .with_ns1ats(self.ns1ats)
            .with_asid16(self.asid16)
            .with_msi(self.msi)
            .with_pri(self.pri)
            .with_vmid16(self.vmid16)
            .with_cd2l(self.two_level_cd_table)
            .with_ttendian(TtEndian::LE)
            .with_stall_model(self.stall_model)
            .with_term_model(self.term_model)
            .with_st_level(if self.two_level_stream_table {
                StLevel::TWO_LEVEL
            } else {
                StLevel::LINEAR
            });
        let idr1 = Idr1::new()
            .with_sidsize(self.sid_bits)
            .with_ssidsize(self.ssid_bits)
            .with_priqs(self.priq_log2)
            .with_eventqs(self.evtq_log2)
            .with_cmdqs(self.cmdq_log2)
            .with_attr_perms_ovr(self.attr_perms_ovr)
            .with_attr_types_ovr(self.attr_types_ovr);
        let idr3 = Idr3::new()
            .with_had(self.had)
            .with_xnx(self.xnx)
            .with_pps(self.pps)
            .with_fwb(self.fwb)
            .with_ril(self.range_invalidation)
            .with_bbml(self.bbml);
        let idr5 = Idr5::new()
            .with_oas(oas)
            .with_gran4k(self.granules.k4)
            .with_gran16k(self.granules.k16)
            .with_gran64k(self.granules.k64)
            .with_vax(u8::from(self.va52))
            .with_stall_max(self.stall_max);
        Ok(Caps {
            idr0,
            idr1,
            idr2: Idr2::new(),
            idr3,
            idr4: Idr4::from_bits(self.idr4),
            idr5,
            iidr: Iidr::from_bits(self.iidr),
            aidr,
        })
    }

    /// The configuration that advertises exactly the features in `regs`.
    ///
    /// `SmmuConfig::from_id_regs(r)?.caps()?.id_regs() == r` for every accepted `r`.
    ///
    /// # Errors
    /// [`CapsError::Unsupported`] naming the first feature the model cannot present (AArch32
    /// tables, big-endian or mixed-endian tables, BTM, SEV, ATOS/VATOS, VMW, ATSRECERR, RME,
    /// embedded REL/PRESET implementations, ECMDQ, PBHA, MPAM, STT, E0PD, PTWNNC, DPT);
    /// [`CapsError::Invalid`] for reserved encodings and reserved bits set.
    pub fn from_id_regs(regs: IdRegs) -> Result<SmmuConfig, CapsError> {
        let i0 = Idr0::from_bits(regs.idr0);
        let i1 = Idr1::from_bits(regs.idr1);
        let i2 = Idr2::from_bits(regs.idr2);
        let i3 = Idr3::from_bits(regs.idr3);
        let i5 = Idr5::from_bits(regs.idr5);

        // IDR0.
        if regs.idr0 & (1 << 29 | 1 << 31) != 0 {
            return Err(invalid("IDR0", regs.idr0, "reserved bits [29] or [31] set"));
        }
        match i0.ttf() {
            Ttf::AARCH64 => {}
            Ttf::AARCH32 | Ttf::AARCH32_64 => {
                return Err(unsupported(
                    "IDR0.TTF",
                    i0.ttf().0.into(),
                    "AArch32 (LPAE) translation tables",
                ))
            }
            t => return Err(invalid("IDR0.TTF", t.0.into(), "reserved")),
        }
        match i0.ttendian() {
            TtEndian::LE => {}
            TtEndian::MIXED | TtEndian::BE => {
                return Err(unsupported(
                    "IDR0.TTENDIAN",
                    i0.ttendian().0.into(),
                    "big-endian translation tables",
                ))
            }
            t => return Err(invalid("IDR0.TTENDIAN", t.0.into(), "reserved")),
        }
        if i0.st_level().0 > 1 {
            return Err(invalid("IDR0.ST_LEVEL", i0.st_level().0.into(), "reserved"));
        }
        refuse(i0.btm(), "IDR0.BTM", "broadcast TLB maintenance")?;
        refuse(i0.sev(), "IDR0.SEV", "WFE wake-up events")?;
        refuse(i0.atos(), "IDR0.ATOS", "address translation operations")?;
        refuse(
            i0.vatos(),
            "IDR0.VATOS",
            "virtual address translation operations",
        )?;
        refuse(i0.vmw(), "IDR0.VMW", "VMID wildcards")?;
        refuse(i0.atsrecerr(), "IDR0.ATSRECERR", "ATS error recording")?;
        refuse(
            i0.rme_impl(),
            "IDR0.RME_IMPL",
            "the Realm Management Extension",
        )?;

        // IDR1.
        refuse(i1.rel(), "IDR1.REL", "relative base addresses")?;
        refuse(
            i1.queues_preset(),
            "IDR1.QUEUES_PRESET",
            "preset queue bases",
        )?;
        refuse(
            i1.tables_preset(),
            "IDR1.TABLES_PRESET",
            "preset table bases",
        )?;
        refuse(i1.ecmdq(), "IDR1.ECMDQ", "enhanced command queues")?;

        // IDR2: only meaningful with VATOS.
        if regs.idr2 != 0 {
            return Err(unsupported("IDR2.BA_VATOS", i2.ba_vatos().into(), "VATOS"));
        }

        // IDR3.
        if i3.res0_bits() != 0 {
            return Err(invalid("IDR3", regs.idr3, "reserved bits set"));
        }
        refuse(i3.pbha(), "IDR3.PBHA", "page-based hardware attributes")?;
        refuse(i3.mpam(), "IDR3.MPAM", "MPAM")?;
        refuse(i3.stt(), "IDR3.STT", "small translation tables")?;
        refuse(i3.e0pd(), "IDR3.E0PD", "E0PD")?;
        refuse(i3.ptwnnc(), "IDR3.PTWNNC", "PTWNNC")?;
        refuse(i3.dpt(), "IDR3.DPT", "device permission tables")?;

        // IDR5.
        if i5.res0_bits() != 0 {
            return Err(invalid("IDR5", regs.idr5, "reserved bits set"));
        }
        refuse(
            i5.ds(),
            "IDR5.DS",
            "52-bit addresses with 4K and 16K granules",
        )?;
        let Some(oas_bits) = i5.oas().bits() else {
            return Err(invalid("IDR5.OAS", i5.oas().0.into(), "reserved"));
        };
        if i5.vax() > 1 {
            return Err(invalid("IDR5.VAX", i5.vax().into(), "reserved"));
        }

        let cfg = SmmuConfig {
            stage1: i0.s1p(),
            stage2: i0.s2p(),
            two_level_stream_table: i0.st_level() == StLevel::TWO_LEVEL,
            two_level_cd_table: i0.cd2l(),
            sid_bits: i1.sidsize(),
            ssid_bits: i1.ssidsize(),
            granules: GranuleSet {
                k4: i5.gran4k(),
                k16: i5.gran16k(),
                k64: i5.gran64k(),
            },
            oas_bits,
            va52: i5.vax() == 1,
            range_invalidation: i3.ril(),
            coherent: i0.cohacc(),
            asid16: i0.asid16(),
            vmid16: i0.vmid16(),
            msi: i0.msi(),
            hyp: i0.hyp(),
            ats: i0.ats(),
            ns1ats: i0.ns1ats(),
            pri: i0.pri(),
            stall_model: i0.stall_model(),
            stall_max: i5.stall_max(),
            term_model: i0.term_model(),
            httu: i0.httu(),
            dormhint: i0.dormhint(),
            had: i3.had(),
            xnx: i3.xnx(),
            fwb: i3.fwb(),
            bbml: i3.bbml(),
            pps: i3.pps(),
            attr_types_ovr: i1.attr_types_ovr(),
            attr_perms_ovr: i1.attr_perms_ovr(),
            cmdq_log2: i1.cmdqs(),
            evtq_log2: i1.eventqs(),
            priq_log2: i1.priqs(),
            idr4: regs.idr4,
            iidr: regs.iidr,
            aidr: regs.aidr,
        };
        // Range checks shared with `caps` (SIDSIZE, SSIDSIZE, queue sizes, reserved encodings).
        cfg.caps()?;
        Ok(cfg)
    }
}

/// The advertised capabilities: typed ID registers built once, plus feature queries.
///
/// Cheap to copy; every "is this supported?" check in the crate reads these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caps {
    /// IDR0.
    pub idr0: Idr0,
    /// IDR1.
    pub idr1: Idr1,
    /// IDR2.
    pub idr2: Idr2,
    /// IDR3.
    pub idr3: Idr3,
    /// IDR4.
    pub idr4: Idr4,
    /// IDR5.
    pub idr5: Idr5,
    /// IIDR.
    pub iidr: Iidr,
    /// AIDR.
    pub aidr: Aidr,
}

impl Default for Caps {
    /// The capabilities of [`SmmuConfig::default`].
    fn default() -> Self {
        match SmmuConfig::default().caps() {
            Ok(c) => c,
            // The default configuration is valid (tested); keep the type total anyway.
            Err(_) => Caps {
                idr0: Idr0::new(),
                idr1: Idr1::new(),
                idr2: Idr2::new(),
                idr3: Idr3::new(),
                idr4: Idr4::new(),
                idr5: Idr5::new(),
                iidr: Iidr::new(),
                aidr: Aidr::new(),
            },
        }
    }
}

impl Caps {
    /// The raw register values.
    pub fn id_regs(&self) -> IdRegs {
        IdRegs {
            idr0: self.idr0.into_bits(),
            idr1: self.idr1.into_bits(),
            idr2: self.idr2.into_bits(),
            idr3: self.idr3.into_bits(),
            idr4: self.idr4.into_bits(),
            idr5: self.idr5.into_bits(),
            iidr: self.iidr.into_bits(),
            aidr: self.aidr.into_bits(),
        }
    }

    /// Stage 1 supported (IDR0.S1P).
    pub const fn s1(&self) -> bool {
        self.idr0.s1p()
    }

    /// Stage 2 supported (IDR0.S2P).
    pub const fn s2(&self) -> bool {
        self.idr0.s2p()
    }

    /// Nested translation (both stages).
    pub const fn nested(&self) -> bool {
        self.s1() && self.s2()
    }

    /// Two-level stream tables (IDR0.ST_LEVEL = 1).
    pub fn two_level_strtab(&self) -> bool {
        self.idr0.st_level() == StLevel::TWO_LEVEL
    }

    /// Two-level CD tables (IDR0.CD2L).
    pub const fn cd2l(&self) -> bool {
        self.idr0.cd2l()
    }

    /// StreamID bits (IDR1.SIDSIZE).
    pub const fn sid_bits(&self) -> u32 {
        self.idr1.sidsize() as u32
    }

    /// SubstreamID bits (IDR1.SSIDSIZE; 0 = no substreams).
    pub const fn ssid_bits(&self) -> u32 {
        self.idr1.ssidsize() as u32
    }

    /// Output address size in bits (IDR5.OAS; a reserved code reads as 48, as Linux treats it).
    pub const fn oas_bits(&self) -> u32 {
        match self.idr5.oas().bits() {
            Some(b) => b,
            None => 48,
        }
    }

    /// Maximum stage-1 input size in bits: 52 with IDR5.VAX = 1, else 48.
    pub const fn max_va_bits(&self) -> u32 {
        if self.idr5.vax() == 1 {
            52
        } else {
            48
        }
    }

    /// True if granule `g` is supported (IDR5.GRAN4K/16K/64K).
    pub const fn granule(&self, g: Granule) -> bool {
        match g {
            Granule::K4 => self.idr5.gran4k(),
            Granule::K16 => self.idr5.gran16k(),
            Granule::K64 => self.idr5.gran64k(),
        }
    }

    /// Range invalidation (IDR3.RIL).
    pub const fn ril(&self) -> bool {
        self.idr3.ril()
    }

    /// MSIs (IDR0.MSI).
    pub const fn msi(&self) -> bool {
        self.idr0.msi()
    }

    /// Coherent access (IDR0.COHACC).
    pub const fn coherent(&self) -> bool {
        self.idr0.cohacc()
    }

    /// EL2 regime (IDR0.HYP).
    pub const fn hyp(&self) -> bool {
        self.idr0.hyp()
    }

    /// ATS (IDR0.ATS).
    pub const fn ats(&self) -> bool {
        self.idr0.ats()
    }

    /// PRI (IDR0.PRI).
    pub const fn pri(&self) -> bool {
        self.idr0.pri()
    }

    /// Stall model (IDR0.STALL_MODEL).
    pub const fn stall_model(&self) -> StallModel {
        self.idr0.stall_model()
    }

    /// Stalling faults can happen (STALL_MODEL 0 or 2).
    pub const fn stalls(&self) -> bool {
        matches!(self.idr0.stall_model().0, 0 | 2)
    }

    /// Stalls are forced (STALL_MODEL 2).
    pub const fn stall_forced(&self) -> bool {
        self.idr0.stall_model().0 == 2
    }

    /// Terminated transactions always abort (IDR0.TERM_MODEL).
    pub const fn term_model(&self) -> bool {
        self.idr0.term_model()
    }

    /// Hardware access-flag update (IDR0.HTTU >= 1).
    pub const fn httu_access(&self) -> bool {
        matches!(self.idr0.httu().0, 1 | 2)
    }

    /// Hardware dirty-state update (IDR0.HTTU = 2).
    pub const fn httu_dirty(&self) -> bool {
        self.idr0.httu().0 == 2
    }

    /// ASID bits (16 with IDR0.ASID16, else 8).
    pub const fn asid_bits(&self) -> u32 {
        if self.idr0.asid16() {
            16
        } else {
            8
        }
    }

    /// VMID bits (16 with IDR0.VMID16, else 8).
    pub const fn vmid_bits(&self) -> u32 {
        if self.idr0.vmid16() {
            16
        } else {
            8
        }
    }

    /// Hierarchical attribute disable (IDR3.HAD).
    pub const fn had(&self) -> bool {
        self.idr3.had()
    }

    /// Stage-2 XN\[1:0\] (IDR3.XNX).
    pub const fn xnx(&self) -> bool {
        self.idr3.xnx()
    }

    /// Stage-2 forced write-back (IDR3.FWB).
    pub const fn fwb(&self) -> bool {
        self.idr3.fwb()
    }

    /// STE attribute-type overrides (IDR1.ATTR_TYPES_OVR).
    pub const fn attr_types_ovr(&self) -> bool {
        self.idr1.attr_types_ovr()
    }

    /// STE permission overrides (IDR1.ATTR_PERMS_OVR).
    pub const fn attr_perms_ovr(&self) -> bool {
        self.idr1.attr_perms_ovr()
    }

    /// log2 of the maximum command queue entries (IDR1.CMDQS).
    pub const fn cmdq_log2_max(&self) -> u32 {
        self.idr1.cmdqs() as u32
    }

    /// log2 of the maximum event queue entries (IDR1.EVENTQS).
    pub const fn evtq_log2_max(&self) -> u32 {
        self.idr1.eventqs() as u32
    }

    /// log2 of the maximum PRI queue entries (IDR1.PRIQS).
    pub const fn priq_log2_max(&self) -> u32 {
        self.idr1.priqs() as u32
    }
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod tests;
