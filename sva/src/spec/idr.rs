//! SMMU_IDR0/1/3/5 (IHI 0070 §6.3.1–6.3.6), the registers `hw_info` reports and a vSMMU advertises.

use bitfield_struct::bitfield;

/// SMMU_IDR0.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr0 {
    /// S2P (bit \[0\]).
    pub s2p: bool,
    /// S1P (bit \[1\]).
    pub s1p: bool,
    /// TTF (bits \[3:2\]): 1 AArch32, 2 AArch64, 3 both.
    #[bits(2)]
    pub ttf: u8,
    /// COHACC (bit \[4\]).
    pub cohacc: bool,
    /// BTM (bit \[5\]).
    pub btm: bool,
    /// HTTU (bits \[7:6\]).
    #[bits(2)]
    pub httu: u8,
    /// DORMHINT (bit \[8\]).
    pub dormhint: bool,
    /// HYP (bit \[9\]).
    pub hyp: bool,
    /// ATS (bit \[10\]).
    pub ats: bool,
    /// NS1ATS (bit \[11\]).
    pub ns1ats: bool,
    /// ASID16 (bit \[12\]).
    pub asid16: bool,
    /// MSI (bit \[13\]).
    pub msi: bool,
    /// SEV (bit \[14\]).
    pub sev: bool,
    /// ATOS (bit \[15\]).
    pub atos: bool,
    /// PRI (bit \[16\]).
    pub pri: bool,
    /// VMW (bit \[17\]).
    pub vmw: bool,
    /// VMID16 (bit \[18\]).
    pub vmid16: bool,
    /// CD2L (bit \[19\]).
    pub cd2l: bool,
    /// VATOS (bit \[20\]).
    pub vatos: bool,
    /// TTENDIAN (bits \[22:21\]): 0 mixed, 2 LE, 3 BE.
    #[bits(2)]
    pub ttendian: u8,
    /// ATSRECERR (bit \[23\]).
    pub atsrecerr: bool,
    /// STALL_MODEL (bits \[25:24\]): 0 stall + terminate, 1 terminate only, 2 stall forced.
    #[bits(2)]
    pub stall_model: u8,
    /// TERM_MODEL (bit \[26\]).
    pub term_model: bool,
    /// ST_LEVEL (bits \[28:27\]): 0 linear, 1 two-level.
    #[bits(2)]
    pub st_level: u8,
    /// Bit \[29\]: reserved.
    pub res0_29: bool,
    /// RME_IMPL (bit \[30\]).
    pub rme_impl: bool,
    /// Bit \[31\]: reserved.
    pub res0_31: bool,
}

/// SMMU_IDR1.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr1 {
    /// SIDSIZE (bits \[5:0\]).
    #[bits(6)]
    pub sidsize: u8,
    /// SSIDSIZE (bits \[10:6\]).
    #[bits(5)]
    pub ssidsize: u8,
    /// PRIQS (bits \[15:11\]).
    #[bits(5)]
    pub priqs: u8,
    /// EVENTQS (bits \[20:16\]).
    #[bits(5)]
    pub eventqs: u8,
    /// CMDQS (bits \[25:21\]).
    #[bits(5)]
    pub cmdqs: u8,
    /// ATTR_PERMS_OVR (bit \[26\]).
    pub attr_perms_ovr: bool,
    /// ATTR_TYPES_OVR (bit \[27\]).
    pub attr_types_ovr: bool,
    /// REL (bit \[28\]).
    pub rel: bool,
    /// QUEUES_PRESET (bit \[29\]).
    pub queues_preset: bool,
    /// TABLES_PRESET (bit \[30\]).
    pub tables_preset: bool,
    /// ECMDQ (bit \[31\]).
    pub ecmdq: bool,
}

/// SMMU_IDR3.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr3 {
    /// Bits \[1:0\]: reserved.
    #[bits(2)]
    pub res0_0: u8,
    /// HAD (bit \[2\]).
    pub had: bool,
    /// PBHA (bit \[3\]).
    pub pbha: bool,
    /// XNX (bit \[4\]).
    pub xnx: bool,
    /// PPS (bit \[5\]).
    pub pps: bool,
    /// Bit \[6\]: reserved.
    pub res0_6: bool,
    /// MPAM (bit \[7\]).
    pub mpam: bool,
    /// FWB (bit \[8\]).
    pub fwb: bool,
    /// STT (bit \[9\]).
    pub stt: bool,
    /// RIL (bit \[10\]): range invalidation.
    pub ril: bool,
    /// BBML (bits \[12:11\]).
    #[bits(2)]
    pub bbml: u8,
    /// E0PD (bit \[13\]).
    pub e0pd: bool,
    /// PTWNNC (bit \[14\]).
    pub ptwnnc: bool,
    /// DPT (bit \[15\]).
    pub dpt: bool,
    /// Bits \[31:16\]: reserved / later features.
    #[bits(16)]
    pub res0_16: u16,
}

/// SMMU_IDR5.
#[bitfield(u32)]
#[derive(PartialEq, Eq)]
pub struct Idr5 {
    /// OAS (bits \[2:0\]): 0..6 = 32, 36, 40, 42, 44, 48, 52 bits.
    #[bits(3)]
    pub oas: u8,
    /// Bit \[3\]: reserved.
    pub res0_3: bool,
    /// GRAN4K (bit \[4\]).
    pub gran4k: bool,
    /// GRAN16K (bit \[5\]).
    pub gran16k: bool,
    /// GRAN64K (bit \[6\]).
    pub gran64k: bool,
    /// DS (bit \[7\]): 52-bit addresses with 4K/16K granules (Linux `IDR5_DS`).
    pub ds: bool,
    /// Bits \[9:8\]: reserved.
    #[bits(2)]
    pub res0_8: u8,
    /// VAX (bits \[11:10\]): 1 = 52-bit stage-1 VA.
    #[bits(2)]
    pub vax: u8,
    /// Bits \[15:12\]: reserved.
    #[bits(4)]
    pub res0_12: u8,
    /// STALL_MAX (bits \[31:16\]).
    #[bits(16)]
    pub stall_max: u16,
}

/// OAS encoding → address bits (IDR5.OAS, CD.IPS); reserved encodings give `None`.
pub const fn oas_bits(enc: u8) -> Option<u8> {
    match enc {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

/// Bits → the largest OAS encoding not exceeding them (below 32 bits: encoding 0).
pub const fn oas_encoding(bits: u8) -> u8 {
    match bits {
        52.. => 6,
        48..=51 => 5,
        44..=47 => 4,
        42..=43 => 3,
        40..=41 => 2,
        36..=39 => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testbed_host_idr0_decodes_field_by_field() {
        // QEMU 10.0 virt,iommu=smmuv3 as seen through hw_info (kernel-testbed.md)
        let i = Idr0::from_bits(0x0d44_101b);
        assert!(i.s2p() && i.s1p());
        assert_eq!(i.ttf(), 2);
        assert!(i.cohacc());
        assert!(!i.btm());
        assert_eq!(i.httu(), 0);
        assert!(i.asid16() && i.vmid16() && !i.cd2l());
        assert!(!i.ats() && !i.pri() && !i.hyp());
        assert_eq!(i.ttendian(), 2);
        assert_eq!(i.stall_model(), 1);
        assert!(i.term_model());
        assert_eq!(i.st_level(), 1);
    }

    #[test]
    fn idr_fields_sit_at_linux_positions() {
        assert_eq!(Idr0::new().with_st_level(3).into_bits(), 3 << 27);
        assert_eq!(Idr0::new().with_stall_model(3).into_bits(), 3 << 24);
        assert_eq!(Idr0::new().with_ttendian(3).into_bits(), 3 << 21);
        assert_eq!(Idr0::new().with_cd2l(true).into_bits(), 1 << 19);
        assert_eq!(Idr0::new().with_sev(true).into_bits(), 1 << 14);
        assert_eq!(Idr0::new().with_msi(true).into_bits(), 1 << 13);
        assert_eq!(Idr0::new().with_hyp(true).into_bits(), 1 << 9);
        assert_eq!(Idr1::new().with_ssidsize(0x1f).into_bits(), 0x1f << 6);
        assert_eq!(Idr1::new().with_cmdqs(0x1f).into_bits(), 0x1f << 21);
        assert_eq!(Idr1::new().with_eventqs(0x1f).into_bits(), 0x1f << 16);
        assert_eq!(Idr3::new().with_ril(true).into_bits(), 1 << 10);
        assert_eq!(Idr3::new().with_bbml(3).into_bits(), 3 << 11);
        assert_eq!(Idr3::new().with_fwb(true).into_bits(), 1 << 8);
        assert_eq!(Idr5::new().with_ds(true).into_bits(), 1 << 7);
        assert_eq!(Idr5::new().with_vax(3).into_bits(), 3 << 10);
        assert_eq!(Idr5::new().with_stall_max(0xffff).into_bits(), 0xffff_0000);
        let i1 = Idr1::from_bits(0x0273_0010);
        assert_eq!(
            (i1.sidsize(), i1.ssidsize(), i1.eventqs(), i1.cmdqs()),
            (16, 0, 19, 19)
        );
        let i3 = Idr3::from_bits(0x1414);
        assert!(i3.ril() && i3.had() && i3.xnx());
        assert_eq!(i3.bbml(), 2);
        let i5 = Idr5::from_bits(0x74);
        assert!(i5.gran4k() && i5.gran16k() && i5.gran64k() && !i5.ds());
        assert_eq!(oas_bits(i5.oas()), Some(44));
    }

    #[test]
    fn oas_encodings_round_down() {
        assert_eq!(oas_encoding(48), 5);
        assert_eq!(oas_encoding(47), 4);
        assert_eq!(oas_encoding(64), 6);
        assert_eq!(oas_bits(7), None);
    }
}
