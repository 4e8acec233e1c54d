//! Event-queue records (IHI 0070 §7.3): 32 bytes, four little-endian 64-bit words.
//!
//! [`crate::event::Event::encode`] is the one writer of these records.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{bits_mask, le_record, le_word, open_enum, Le64};

open_enum! {
    /// Event number (word 0 bits \[7:0\]).
    pub struct EventId(u8) {
        /// Unsupported upstream transaction.
        F_UUT = 0x01,
        /// StreamID out of range (recorded with CR2.RECINVSID).
        C_BAD_STREAMID = 0x02,
        /// External abort fetching an STE or L1 stream descriptor.
        F_STE_FETCH = 0x03,
        /// Invalid or illegal STE.
        C_BAD_STE = 0x04,
        /// ATS translation request not allowed.
        F_BAD_ATS_TREQ = 0x05,
        /// Non-substream traffic with S1DSS = terminate.
        F_STREAM_DISABLED = 0x06,
        /// ATS-translated traffic not allowed.
        F_TRANSL_FORBIDDEN = 0x07,
        /// SubstreamID out of range or not allowed.
        C_BAD_SUBSTREAMID = 0x08,
        /// External abort fetching a CD or L1 CD descriptor.
        F_CD_FETCH = 0x09,
        /// Invalid or illegal CD.
        C_BAD_CD = 0x0A,
        /// External abort on a translation table walk.
        F_WALK_EABT = 0x0B,
        /// Translation fault.
        F_TRANSLATION = 0x10,
        /// Address size fault.
        F_ADDR_SIZE = 0x11,
        /// Access flag fault.
        F_ACCESS = 0x12,
        /// Permission fault.
        F_PERMISSION = 0x13,
        /// TLB conflict.
        F_TLB_CONFLICT = 0x20,
        /// Configuration cache conflict.
        F_CFG_CONFLICT = 0x21,
        /// Speculative page request hint.
        E_PAGE_REQUEST = 0x24,
        /// External abort fetching a VMS (v3.2).
        F_VMS_FETCH = 0x25,
    }
}

open_enum! {
    /// Event CLASS (word 1 bits \[41:40\]): what the faulting access was for.
    pub struct EvtClass(u8) {
        /// CD fetch.
        CD = 0,
        /// Stage-1 translation table fetch.
        TT = 1,
        /// The input address of the transaction.
        IN = 2,
    }
}

/// Event word 0: event number, substream and stream.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct EvtW0 {
    /// Event ID (bits \[7:0\]).
    #[bits(8)]
    pub event_id: EventId,
    /// Bits \[10:8\]: reserved.
    #[bits(3)]
    __: u8,
    /// SSV (bit \[11\]): SubstreamID valid.
    pub ssv: bool,
    /// SubstreamID (bits \[31:12\]).
    #[bits(20)]
    pub ssid: u32,
    /// StreamID (bits \[63:32\]).
    pub sid: u32,
}

/// Event word 1: stall, access attributes and fault class.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct EvtW1 {
    /// STAG (bits \[79:64\]): stall tag.
    pub stag: u16,
    /// Bits \[94:80\]: reserved.
    #[bits(15)]
    __: u16,
    /// Stall (bit \[95\]): the transaction is stalled.
    pub stall: bool,
    /// Bit \[96\]: reserved.
    #[bits(1)]
    __: u8,
    /// PnU (bit \[97\]): 1 = privileged.
    pub pnu: bool,
    /// InD (bit \[98\]): 1 = instruction.
    pub ind: bool,
    /// RnW (bit \[99\]): 1 = read.
    pub rnw: bool,
    /// Bits \[102:100\]: reserved.
    #[bits(3)]
    __: u8,
    /// S2 (bit \[103\]): stage-2 fault.
    pub s2: bool,
    /// CLASS (bits \[105:104\]).
    #[bits(2)]
    pub class: EvtClass,
    /// Bits \[107:106\]: reserved.
    #[bits(2)]
    __: u8,
    /// TTRnW (bit \[108\]): CLASS = TT, the descriptor access was a read.
    pub ttrnw: bool,
    /// Bits \[127:109\]: reserved.
    #[bits(19)]
    __: u32,
}

/// Event word 2: input address.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct EvtW2 {
    /// InputAddr (bits \[191:128\]): the transaction's full input address.
    pub input_addr: u64,
}

/// Event word 3: IPA (bits \[55:12\], stage-2 faults) or FetchAddr (bits \[55:3\], fetch aborts).
///
/// The two fields overlap, so they are accessors on the raw word rather than bitfields.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct EvtW3 {
    /// The raw word (see [`EvtW3::ipa`], [`EvtW3::fetch_addr`]).
    pub bits: u64,
}

le_word!(EvtW0, EvtW1, EvtW2, EvtW3);

impl EvtW3 {
    /// IPA (bits \[247:204\] of the record = word bits \[55:12\]; \[55:OAS\] RES0).
    pub const fn ipa(self) -> u64 {
        self.raw() & bits_mask(55, 12)
    }

    /// A word holding `ipa` (bits outside \[55:12\] dropped).
    pub const fn from_ipa(ipa: u64) -> Self {
        Self::from_raw(ipa & bits_mask(55, 12))
    }

    /// FetchAddr (word bits \[55:3\]; \[55:OAS\] RES0).
    pub const fn fetch_addr(self) -> u64 {
        self.raw() & bits_mask(55, 3)
    }

    /// A word holding `addr` as FetchAddr (bits outside \[55:3\] dropped).
    pub const fn from_fetch_addr(addr: u64) -> Self {
        Self::from_raw(addr & bits_mask(55, 3))
    }
}

/// An event-queue record (32 bytes, little-endian words).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtEntry {
    /// Word 0: event ID, SSV, SSID, StreamID.
    pub w0: EvtW0,
    /// Word 1: STAG, Stall, PnU, InD, RnW, S2, CLASS, TTRnW.
    pub w1: EvtW1,
    /// Word 2: input address.
    pub w2: EvtW2,
    /// Word 3: IPA or FetchAddr.
    pub w3: EvtW3,
}

const _: () = assert!(core::mem::size_of::<EvtEntry>() == 32);

le_record!(EvtEntry[4] { w0: EvtW0, w1: EvtW1, w2: EvtW2, w3: EvtW3 });

impl EvtEntry {
    /// Size of an event record in bytes.
    pub const SIZE: u64 = 32;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field positions match IHI 0070 §7.3 and Linux `EVTQ_*` masks (decode_event).
    #[test]
    fn test_evt_bit_positions() {
        assert_eq!((EvtW0::EVENT_ID_OFFSET, EvtW0::EVENT_ID_BITS), (0, 8));
        assert_eq!(EvtW0::SSV_OFFSET, 11);
        assert_eq!((EvtW0::SSID_OFFSET, EvtW0::SSID_BITS), (12, 20));
        assert_eq!((EvtW0::SID_OFFSET, EvtW0::SID_BITS), (32, 32));
        assert_eq!((EvtW1::STAG_OFFSET, EvtW1::STAG_BITS), (0, 16));
        assert_eq!(EvtW1::STALL_OFFSET, 31);
        assert_eq!(EvtW1::PNU_OFFSET, 33);
        assert_eq!(EvtW1::IND_OFFSET, 34);
        assert_eq!(EvtW1::RNW_OFFSET, 35);
        assert_eq!(EvtW1::S2_OFFSET, 39);
        assert_eq!((EvtW1::CLASS_OFFSET, EvtW1::CLASS_BITS), (40, 2));
        assert_eq!(EvtW1::TTRNW_OFFSET, 44);
        // IHI 0070 §7.3: IPA [55:12], FetchAddr [55:3] (Linux masks to [51:x]).
        assert_eq!(EvtW3::from_raw(u64::MAX).ipa(), 0x00FF_FFFF_FFFF_F000);
        assert_eq!(
            EvtW3::from_raw(u64::MAX).fetch_addr(),
            0x00FF_FFFF_FFFF_FFF8
        );
    }

    /// A record is 32 bytes of little-endian words in order.
    #[test]
    fn test_evt_memory_layout() {
        let e = EvtEntry::from_words([0x0000_0010_0000_0010, 1 << 35, 0x1234, 0x5000]);
        let b = e.as_bytes();
        assert_eq!(b.len(), 32);
        assert_eq!(b[0], 0x10);
        assert_eq!(b[4], 0x10);
        assert_eq!(b[12], 0x08);
        assert_eq!(b[16], 0x34);
        assert_eq!(b[25], 0x50);
        assert_eq!(e.w0.event_id(), EventId::F_TRANSLATION);
        assert!(e.w1.rnw());
    }
}
