//! ID registers IDR0..IDR5, IIDR and AIDR (IHI 0070 §6.3.1..§6.3.6).
//!
//! Register offsets are in [`super::regs`]. These are read-only 32-bit registers whose values
//! [`crate::caps`] builds once from the configuration.

use bitfield_struct::bitfield;

use super::open_enum;

open_enum! {
    /// IDR0.TTF: translation table formats supported.
    pub struct Ttf(u8) {
        /// Reserved.
        RESERVED = 0,
        /// AArch32 (LPAE) only.
        AARCH32 = 1,
        /// AArch64 only.
        AARCH64 = 2,
        /// AArch32 and AArch64.
        AARCH32_64 = 3,
    }
}

open_enum! {
    /// IDR0.HTTU: hardware translation table update.
    pub struct Httu(u8) {
        /// No hardware updates.
        NONE = 0,
        /// Access flag updates.
        ACCESS = 1,
        /// Access flag and dirty state updates.
        ACCESS_DIRTY = 2,
    }
}

open_enum! {
    /// IDR0.TTENDIAN: translation table endianness supported.
    pub struct TtEndian(u8) {
        /// Mixed: little- and big-endian tables.
        MIXED = 0,
        /// Reserved.
        RESERVED = 1,
        /// Little-endian only.
        LE = 2,
        /// Big-endian only.
        BE = 3,
    }
}

open_enum! {
    /// IDR0.STALL_MODEL.
    pub struct StallModel(u8) {
        /// Stall and terminate models supported.
        STALL_TERMINATE = 0,
        /// Terminate model only.
        TERMINATE = 1,
        /// Stall model forced (faulting transactions always stall when enabled).
        STALL_FORCED = 2,
    }
}

open_enum! {
    /// IDR0.ST_LEVEL: stream table formats supported.
    pub struct StLevel(u8) {
        /// Linear stream table only.
        LINEAR = 0,
        /// Linear and two-level stream tables.
        TWO_LEVEL = 1,
    }
}

open_enum! {
    /// IDR5.OAS (and CD.IPS, STE.S2PS): physical address size code.
    pub struct Oas(u8) {
        /// 32 bits (4 GiB).
        OAS_32 = 0,
        /// 36 bits (64 GiB).
        OAS_36 = 1,
        /// 40 bits (1 TiB).
        OAS_40 = 2,
        /// 42 bits (4 TiB).
        OAS_42 = 3,
        /// 44 bits (16 TiB).
        OAS_44 = 4,
        /// 48 bits (256 TiB).
        OAS_48 = 5,
        /// 52 bits (4 PiB).
        OAS_52 = 6,
    }
}

impl Oas {
    /// The address size in bits, or `None` for a reserved code.
    pub const fn bits(self) -> Option<u32> {
        viommu_common::addr::pa_size_bits(self.0)
    }

    /// The code for an address size in bits, or `None` if the size has no code.
    pub const fn from_size_bits(bits: u32) -> Option<Self> {
        match viommu_common::addr::pa_size_encoding(bits) {
            Some(c) => Some(Self(c)),
            None => None,
        }
    }
}

/// IDR0 (offset 0x000): features.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Idr0 {
    /// S2P (bit \[0\]): stage-2 translation supported.
    pub s2p: bool,
    /// S1P (bit \[1\]): stage-1 translation supported.
    pub s1p: bool,
    /// TTF (bits \[3:2\]): translation table formats.
    #[bits(2)]
    pub ttf: Ttf,
    /// COHACC (bit \[4\]): coherent access to tables, queues and MSIs.
    pub cohacc: bool,
    /// BTM (bit \[5\]): broadcast TLB maintenance.
    pub btm: bool,
    /// HTTU (bits \[7:6\]): hardware table updates.
    #[bits(2)]
    pub httu: Httu,
    /// DORMHINT (bit \[8\]): dormant hint supported.
    pub dormhint: bool,
    /// HYP (bit \[9\]): EL2 translation regime (STRW = EL2, TLBI_EL2_*).
    pub hyp: bool,
    /// ATS (bit \[10\]): PCIe ATS supported.
    pub ats: bool,
    /// NS1ATS (bit \[11\]): split-stage ATS not supported when set.
    pub ns1ats: bool,
    /// ASID16 (bit \[12\]): 16-bit ASIDs (else 8).
    pub asid16: bool,
    /// MSI (bit \[13\]): message-signalled interrupts.
    pub msi: bool,
    /// SEV (bit \[14\]): the SMMU generates WFE wake-up events.
    pub sev: bool,
    /// ATOS (bit \[15\]): address translation operations.
    pub atos: bool,
    /// PRI (bit \[16\]): PCIe page request interface.
    pub pri: bool,
    /// VMW (bit \[17\]): VMID wildcard matching.
    pub vmw: bool,
    /// VMID16 (bit \[18\]): 16-bit VMIDs (else 8).
    pub vmid16: bool,
    /// CD2L (bit \[19\]): two-level CD tables.
    pub cd2l: bool,
    /// VATOS (bit \[20\]): virtual ATOS.
    pub vatos: bool,
    /// TTENDIAN (bits \[22:21\]): table endianness.
    #[bits(2)]
    pub ttendian: TtEndian,
    /// ATSRECERR (bit \[23\]): ATS error recording.
    pub atsrecerr: bool,
    /// STALL_MODEL (bits \[25:24\]).
    #[bits(2)]
    pub stall_model: StallModel,
    /// TERM_MODEL (bit \[26\]): terminated transactions always abort (CD.A ignored).
    pub term_model: bool,
    /// ST_LEVEL (bits \[28:27\]): stream table formats.
    #[bits(2)]
    pub st_level: StLevel,
    /// Bit \[29\]: reserved here.
    #[bits(1)]
    __: u8,
    /// RME_IMPL (bit \[30\]): Realm Management Extension.
    pub rme_impl: bool,
    /// Bit \[31\]: reserved.
    #[bits(1)]
    __: u8,
}

/// IDR1 (offset 0x004): table and queue sizes.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Idr1 {
    /// SIDSIZE (bits \[5:0\]): StreamID bits.
    #[bits(6)]
    pub sidsize: u8,
    /// SSIDSIZE (bits \[10:6\]): SubstreamID bits (0: no substreams).
    #[bits(5)]
    pub ssidsize: u8,
    /// PRIQS (bits \[15:11\]): log2 of the maximum PRI queue entries.
    #[bits(5)]
    pub priqs: u8,
    /// EVENTQS (bits \[20:16\]): log2 of the maximum event queue entries.
    #[bits(5)]
    pub eventqs: u8,
    /// CMDQS (bits \[25:21\]): log2 of the maximum command queue entries.
    #[bits(5)]
    pub cmdqs: u8,
    /// ATTR_PERMS_OVR (bit \[26\]): STE PRIVCFG/INSTCFG overrides.
    pub attr_perms_ovr: bool,
    /// ATTR_TYPES_OVR (bit \[27\]): STE MemAttr/SHCFG/ALLOCCFG overrides.
    pub attr_types_ovr: bool,
    /// REL (bit \[28\]): base addresses are relative (embedded implementations).
    pub rel: bool,
    /// QUEUES_PRESET (bit \[29\]): queue bases are fixed.
    pub queues_preset: bool,
    /// TABLES_PRESET (bit \[30\]): table bases are fixed.
    pub tables_preset: bool,
    /// ECMDQ (bit \[31\]): enhanced command queues.
    pub ecmdq: bool,
}

/// IDR2 (offset 0x008): VATOS base.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Idr2 {
    /// BA_VATOS (bits \[9:0\]).
    #[bits(10)]
    pub ba_vatos: u16,
    #[bits(22)]
    __: u32,
}

/// IDR3 (offset 0x00C): more features.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Idr3 {
    /// Bits \[1:0\]: reserved.
    #[bits(2)]
    __: u8,
    /// HAD (bit \[2\]): hierarchical attribute disable (CD.HADx).
    pub had: bool,
    /// PBHA (bit \[3\]): page-based hardware attributes.
    pub pbha: bool,
    /// XNX (bit \[4\]): stage-2 XN[1:0] (EL0/EL1 execute-never split).
    pub xnx: bool,
    /// PPS (bit \[5\]): PRI responses always carry a PASID.
    pub pps: bool,
    /// Bit \[6\]: reserved.
    #[bits(1)]
    __: u8,
    /// MPAM (bit \[7\]).
    pub mpam: bool,
    /// FWB (bit \[8\]): stage-2 forced write-back (STE.S2FWB).
    pub fwb: bool,
    /// STT (bit \[9\]): small translation tables (TxSZ up to 48).
    pub stt: bool,
    /// RIL (bit \[10\]): range invalidation.
    pub ril: bool,
    /// BBML (bits \[12:11\]): break-before-make level.
    #[bits(2)]
    pub bbml: u8,
    /// E0PD (bit \[13\]).
    pub e0pd: bool,
    /// PTWNNC (bit \[14\]).
    pub ptwnnc: bool,
    /// DPT (bit \[15\]): device permission tables.
    pub dpt: bool,
    #[bits(16)]
    __: u16,
}

impl Idr3 {
    /// The bits set in reserved (RES0) positions: \[1:0\], \[6\] and \[31:16\].
    pub const fn res0_bits(self) -> u32 {
        let defined = Idr3::new()
            .with_had(self.had())
            .with_pbha(self.pbha())
            .with_xnx(self.xnx())
            .with_pps(self.pps())
            .with_mpam(self.mpam())
            .with_fwb(self.fwb())
            .with_stt(self.stt())
            .with_ril(self.ril())
            .with_bbml(self.bbml())
            .with_e0pd(self.e0pd())
            .with_ptwnnc(self.ptwnnc())
            .with_dpt(self.dpt());
        self.into_bits() ^ defined.into_bits()
    }
}

/// IDR4 (offset 0x010): IMPLEMENTATION DEFINED.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Idr4 {
    /// The IMPLEMENTATION DEFINED value.
    pub impdef: u32,
}

/// IDR5 (offset 0x014): address sizes and granules.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Idr5 {
    /// OAS (bits \[2:0\]): output address size.
    #[bits(3)]
    pub oas: Oas,
    /// Bit \[3\]: reserved.
    #[bits(1)]
    __: u8,
    /// GRAN4K (bit \[4\]).
    pub gran4k: bool,
    /// GRAN16K (bit \[5\]).
    pub gran16k: bool,
    /// GRAN64K (bit \[6\]).
    pub gran64k: bool,
    /// DS (bit \[7\]): 52-bit addresses with 4K/16K granules (Linux `IDR5_DS`; not advertised
    /// by this model).
    pub ds: bool,
    /// Bits \[9:8\]: reserved.
    #[bits(2)]
    __: u8,
    /// VAX (bits \[11:10\]): 1 = 52-bit stage-1 VA.
    #[bits(2)]
    pub vax: u8,
    /// Bits \[15:12\]: reserved.
    #[bits(4)]
    __: u8,
    /// STALL_MAX (bits \[31:16\]): maximum outstanding stalled transactions.
    pub stall_max: u16,
}

impl Idr5 {
    /// The bits set in reserved (RES0) positions: \[3\], \[9:8\] and \[15:12\].
    pub const fn res0_bits(self) -> u32 {
        let defined = Idr5::new()
            .with_oas(self.oas())
            .with_gran4k(self.gran4k())
            .with_gran16k(self.gran16k())
            .with_gran64k(self.gran64k())
            .with_ds(self.ds())
            .with_vax(self.vax())
            .with_stall_max(self.stall_max());
        self.into_bits() ^ defined.into_bits()
    }
}

/// IIDR (offset 0x018): implementation identification.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Iidr {
    /// Implementer (bits \[11:0\]): JEP106 code (0x43B = Arm).
    #[bits(12)]
    pub implementer: u16,
    /// Revision (bits \[15:12\]).
    #[bits(4)]
    pub revision: u8,
    /// Variant (bits \[19:16\]).
    #[bits(4)]
    pub variant: u8,
    /// ProductID (bits \[31:20\]).
    #[bits(12)]
    pub product_id: u16,
}

/// AIDR (offset 0x01C): architecture revision.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Aidr {
    /// ArchMinorRev (bits \[3:0\]): 0..3 = SMMUv3.0..v3.3.
    #[bits(4)]
    pub arch_minor_rev: u8,
    /// ArchMajorRev (bits \[7:4\]): 0 = SMMUv3.
    #[bits(4)]
    pub arch_major_rev: u8,
    #[bits(24)]
    __: u32,
}

impl Aidr {
    /// The SMMUv3 minor revision (0..=3 for SMMUv3.0..v3.3) when the register names one:
    /// ArchMajorRev 0, ArchMinorRev at most 3 and the RES0 bits \[31:8\] zero; `None` otherwise.
    pub const fn smmuv3_minor_rev(self) -> Option<u8> {
        let defined = Aidr::new()
            .with_arch_minor_rev(self.arch_minor_rev())
            .with_arch_major_rev(self.arch_major_rev());
        if defined.into_bits() == self.into_bits()
            && self.arch_major_rev() == 0
            && self.arch_minor_rev() <= 3
        {
            Some(self.arch_minor_rev())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDR0 field positions match IHI 0070 §6.3.1 / Linux `IDR0_*` masks.
    #[test]
    fn test_idr0_bit_positions() {
        assert_eq!((Idr0::S2P_OFFSET, Idr0::S1P_OFFSET), (0, 1));
        assert_eq!((Idr0::TTF_OFFSET, Idr0::TTF_BITS), (2, 2));
        assert_eq!(Idr0::COHACC_OFFSET, 4);
        assert_eq!((Idr0::HTTU_OFFSET, Idr0::HTTU_BITS), (6, 2));
        assert_eq!(Idr0::HYP_OFFSET, 9);
        assert_eq!(Idr0::ATS_OFFSET, 10);
        assert_eq!(Idr0::ASID16_OFFSET, 12);
        assert_eq!(Idr0::MSI_OFFSET, 13);
        assert_eq!(Idr0::SEV_OFFSET, 14);
        assert_eq!(Idr0::PRI_OFFSET, 16);
        assert_eq!(Idr0::VMID16_OFFSET, 18);
        assert_eq!(Idr0::CD2L_OFFSET, 19);
        assert_eq!((Idr0::TTENDIAN_OFFSET, Idr0::TTENDIAN_BITS), (21, 2));
        assert_eq!((Idr0::STALL_MODEL_OFFSET, Idr0::STALL_MODEL_BITS), (24, 2));
        assert_eq!(Idr0::TERM_MODEL_OFFSET, 26);
        assert_eq!((Idr0::ST_LEVEL_OFFSET, Idr0::ST_LEVEL_BITS), (27, 2));
        assert_eq!(Idr0::RME_IMPL_OFFSET, 30);
    }

    /// The recommended IDR0 profile 0x094C_301B decodes to the fields README.md lists.
    #[test]
    fn test_idr0_recommended_profile() {
        let r = Idr0::from_bits(0x094C_301B);
        assert!(r.s2p() && r.s1p() && r.cohacc() && r.asid16() && r.msi());
        assert!(r.vmid16() && r.cd2l());
        assert_eq!(r.ttf(), Ttf::AARCH64);
        assert_eq!(r.ttendian(), TtEndian::LE);
        assert_eq!(r.stall_model(), StallModel::TERMINATE);
        assert_eq!(r.st_level(), StLevel::TWO_LEVEL);
        assert!(!r.ats() && !r.pri() && !r.hyp() && !r.sev() && !r.btm());
        assert_eq!(r.httu(), Httu::NONE);
    }

    /// IDR1 0x0273_0510: SIDSIZE 16, SSIDSIZE 20, EVENTQS 19, CMDQS 19 (the default profile).
    #[test]
    fn test_idr1_recommended_profile() {
        let r = Idr1::from_bits(0x0273_0510);
        assert_eq!(r.sidsize(), 16);
        assert_eq!(r.ssidsize(), 20);
        assert_eq!(r.priqs(), 0);
        assert_eq!(r.eventqs(), 19);
        assert_eq!(r.cmdqs(), 19);
        assert_eq!(Idr1::ATTR_TYPES_OVR_OFFSET, 27);
        assert_eq!(Idr1::REL_OFFSET, 28);
        assert_eq!(Idr1::QUEUES_PRESET_OFFSET, 29);
        assert_eq!(Idr1::TABLES_PRESET_OFFSET, 30);
        assert_eq!(Idr1::ECMDQ_OFFSET, 31);
    }

    /// IDR3 / IDR5 positions: RIL bit 10, HAD bit 2, XNX bit 4, BBML \[12:11\]; OAS \[2:0\], granules
    /// \[6:4\], VAX \[11:10\], STALL_MAX \[31:16\].
    #[test]
    fn test_idr3_idr5_bit_positions() {
        let r3 = Idr3::from_bits(0x0000_0404);
        assert!(r3.ril() && r3.had() && !r3.xnx());
        assert_eq!(Idr3::XNX_OFFSET, 4);
        assert_eq!(Idr3::FWB_OFFSET, 8);
        assert_eq!(Idr3::STT_OFFSET, 9);
        assert_eq!((Idr3::BBML_OFFSET, Idr3::BBML_BITS), (11, 2));
        let r5 = Idr5::from_bits(0x0000_0075);
        assert_eq!(r5.oas(), Oas::OAS_48);
        assert_eq!(r5.oas().bits(), Some(48));
        assert!(r5.gran4k() && r5.gran16k() && r5.gran64k());
        assert_eq!(Idr5::DS_OFFSET, 7);
        assert_eq!((Idr5::VAX_OFFSET, Idr5::VAX_BITS), (10, 2));
        assert_eq!((Idr5::STALL_MAX_OFFSET, Idr5::STALL_MAX_BITS), (16, 16));
    }

    /// IIDR ProductID \[31:20\], Variant \[19:16\], Revision \[15:12\], Implementer \[11:0\]; AIDR minor \[3:0\].
    #[test]
    fn test_iidr_aidr_fields() {
        let i = Iidr::from_bits(0x4830_243B);
        assert_eq!(i.product_id(), 0x483);
        assert_eq!(i.variant(), 0);
        assert_eq!(i.revision(), 2);
        assert_eq!(i.implementer(), 0x43B);
        let a = Aidr::from_bits(0x12);
        assert_eq!((a.arch_major_rev(), a.arch_minor_rev()), (1, 2));
    }

    /// Reserved bits of IDR3 and IDR5 are exactly the positions no field defines.
    #[test]
    fn test_idr3_idr5_res0_bits() {
        assert_eq!(
            Idr3::from_bits(u32::MAX).res0_bits(),
            0b11 | 1 << 6 | 0xFFFF_0000
        );
        assert_eq!(Idr3::from_bits(0x0000_0404).res0_bits(), 0);
        assert_eq!(
            Idr5::from_bits(u32::MAX).res0_bits(),
            1 << 3 | 0b11 << 8 | 0xF << 12
        );
        assert_eq!(Idr5::from_bits(0xFFFF_0C75).res0_bits(), 0);
    }

    /// AIDR names an SMMUv3 revision only with major 0, minor 0..=3 and bits \[31:8\] zero.
    #[test]
    fn test_aidr_smmuv3_minor_rev() {
        assert_eq!(Aidr::from_bits(0x02).smmuv3_minor_rev(), Some(2));
        assert_eq!(Aidr::from_bits(0x03).smmuv3_minor_rev(), Some(3));
        assert_eq!(Aidr::from_bits(0x04).smmuv3_minor_rev(), None);
        assert_eq!(Aidr::from_bits(0x12).smmuv3_minor_rev(), None);
        assert_eq!(Aidr::from_bits(0x102).smmuv3_minor_rev(), None);
        assert_eq!(Aidr::from_bits(0x8000_0000).smmuv3_minor_rev(), None);
    }
}
