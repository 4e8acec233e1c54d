//! Event records (IHI 0070 §7.3) and the iommufd vEVENTQ framing around them.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Event ID (word 0 bits \[7:0\]): open enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct EventId(pub u8);

#[allow(missing_docs)]
impl EventId {
    pub const F_UUT: Self = Self(0x01);
    pub const C_BAD_STREAMID: Self = Self(0x02);
    pub const F_STE_FETCH: Self = Self(0x03);
    pub const C_BAD_STE: Self = Self(0x04);
    pub const F_BAD_ATS_TREQ: Self = Self(0x05);
    pub const F_STREAM_DISABLED: Self = Self(0x06);
    pub const F_TRANSL_FORBIDDEN: Self = Self(0x07);
    pub const C_BAD_SUBSTREAMID: Self = Self(0x08);
    pub const F_CD_FETCH: Self = Self(0x09);
    pub const C_BAD_CD: Self = Self(0x0A);
    pub const F_WALK_EABT: Self = Self(0x0B);
    pub const F_TRANSLATION: Self = Self(0x10);
    pub const F_ADDR_SIZE: Self = Self(0x11);
    pub const F_ACCESS: Self = Self(0x12);
    pub const F_PERMISSION: Self = Self(0x13);
    pub const F_TLB_CONFLICT: Self = Self(0x20);
    pub const F_CFG_CONFLICT: Self = Self(0x21);
    pub const E_PAGE_REQUEST: Self = Self(0x24);
    pub const F_VMS_FETCH: Self = Self(0x25);
}

impl EventId {
    const fn from_bits(v: u8) -> Self {
        Self(v)
    }
    const fn into_bits(self) -> u8 {
        self.0
    }

    /// The architectural mnemonic, or `"UNKNOWN"`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x01 => "F_UUT",
            0x02 => "C_BAD_STREAMID",
            0x03 => "F_STE_FETCH",
            0x04 => "C_BAD_STE",
            0x05 => "F_BAD_ATS_TREQ",
            0x06 => "F_STREAM_DISABLED",
            0x07 => "F_TRANSL_FORBIDDEN",
            0x08 => "C_BAD_SUBSTREAMID",
            0x09 => "F_CD_FETCH",
            0x0A => "C_BAD_CD",
            0x0B => "F_WALK_EABT",
            0x10 => "F_TRANSLATION",
            0x11 => "F_ADDR_SIZE",
            0x12 => "F_ACCESS",
            0x13 => "F_PERMISSION",
            0x20 => "F_TLB_CONFLICT",
            0x21 => "F_CFG_CONFLICT",
            0x24 => "E_PAGE_REQUEST",
            0x25 => "F_VMS_FETCH",
            _ => "UNKNOWN",
        }
    }
}

/// Event record word 0.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct EvtW0 {
    /// Event ID (bits \[7:0\]).
    #[bits(8)]
    pub id: EventId,
    /// Bits \[10:8\]: reserved.
    #[bits(3)]
    pub res0_8: u8,
    /// SSV (bit \[11\]).
    pub ssv: bool,
    /// SubstreamID (bits \[31:12\]).
    #[bits(20)]
    pub ssid: u32,
    /// StreamID (bits \[63:32\]); the host has replaced it with the vSID.
    #[bits(32)]
    pub sid: u32,
}

/// Event record word 1 (bits \[127:64\]).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct EvtW1 {
    /// STAG (bits \[79:64\]).
    #[bits(16)]
    pub stag: u16,
    /// Bits \[94:80\]: reserved.
    #[bits(15)]
    pub res0_16: u16,
    /// Stall (bit \[95\]).
    pub stall: bool,
    /// Bit \[96\]: reserved.
    pub res0_32: bool,
    /// PnU (bit \[97\]): privileged.
    pub pnu: bool,
    /// InD (bit \[98\]): instruction.
    pub ind: bool,
    /// RnW (bit \[99\]): read.
    pub rnw: bool,
    /// Bits \[102:100\]: reserved.
    #[bits(3)]
    pub res0_36: u8,
    /// S2 (bit \[103\]): stage-2 fault.
    pub s2: bool,
    /// CLASS (bits \[105:104\]): 0 CD fetch, 1 table walk, 2 input address.
    #[bits(2)]
    pub class: u8,
    /// Bits \[107:106\]: reserved.
    #[bits(2)]
    pub res0_42: u8,
    /// TTRnW (bit \[108\]).
    pub ttrnw: bool,
    /// Bits \[127:109\]: reserved.
    #[bits(19)]
    pub res0_45: u32,
}

/// A 32-byte event record.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EventRecord {
    /// The four little-endian words.
    pub w: [u64; 4],
}
const _: () = assert!(core::mem::size_of::<EventRecord>() == 32);

impl EventRecord {
    /// Word 0, typed.
    pub const fn w0(&self) -> EvtW0 {
        EvtW0::from_bits(self.w[0])
    }
    /// Word 1, typed.
    pub const fn w1(&self) -> EvtW1 {
        EvtW1::from_bits(self.w[1])
    }
    /// Input address (word 2).
    pub const fn input_addr(&self) -> u64 {
        self.w[2]
    }
    /// Word 3: IPA (stage-2 faults, bits \[51:12\]) or FetchAddr (bits \[51:3\]).
    pub const fn w3(&self) -> u64 {
        self.w[3]
    }
}

/// The header iommufd puts before every vEVENT (`struct iommufd_vevent_header`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VeventHeader {
    /// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS` (bit 0) or 0.
    pub flags: u32,
    /// 0..=i32::MAX, then wraps to 0. Lost events consume sequence numbers too.
    pub sequence: u32,
}
const _: () = assert!(core::mem::size_of::<VeventHeader>() == 8);

/// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS`: the header carries no record; events were dropped.
pub const VEVENTQ_FLAG_LOST_EVENTS: u32 = 1;
/// The sequence number space: `sequence` runs modulo 2^31.
pub const VEVENT_SEQUENCE_MODULUS: u64 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_word_fields_sit_at_linux_positions() {
        assert_eq!(
            EvtW0::new().with_id(EventId::F_TRANSLATION).into_bits(),
            0x10
        );
        assert_eq!(EvtW0::new().with_ssv(true).into_bits(), 1 << 11);
        assert_eq!(EvtW0::new().with_ssid(0xfffff).into_bits(), 0xfffff << 12);
        assert_eq!(EvtW0::new().with_sid(0x42).into_bits(), 0x42 << 32);
        assert_eq!(EvtW1::new().with_stag(0xffff).into_bits(), 0xffff);
        assert_eq!(EvtW1::new().with_stall(true).into_bits(), 1 << 31);
        assert_eq!(EvtW1::new().with_pnu(true).into_bits(), 1 << 33);
        assert_eq!(EvtW1::new().with_ind(true).into_bits(), 1 << 34);
        assert_eq!(EvtW1::new().with_rnw(true).into_bits(), 1 << 35);
        assert_eq!(EvtW1::new().with_s2(true).into_bits(), 1 << 39);
        assert_eq!(EvtW1::new().with_class(3).into_bits(), 3 << 40);
        assert_eq!(EvtW1::new().with_ttrnw(true).into_bits(), 1 << 44);
    }

    #[test]
    fn event_names_follow_the_manual() {
        assert_eq!(EventId(0x10).name(), "F_TRANSLATION");
        assert_eq!(EventId(0x04).name(), "C_BAD_STE");
        assert_eq!(EventId(0xE3).name(), "UNKNOWN");
    }
}
