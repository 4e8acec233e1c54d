//! Command-queue entries (IHI 0070 §4): 16 bytes, two little-endian 64-bit words.
//!
//! Both words of every command family are typed: `Cmd*W0` for the first word (which always
//! holds the opcode in bits \[7:0\]) and `Cmd*W1` for the second. Which family a command uses is
//! given by its [`Opcode`]; [`crate::cmdq::command::Command::decode`] does the validation.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{bits_mask, le_word, open_enum, Le64};

open_enum! {
    /// Command opcode (word 0 bits \[7:0\]). `CFGI_ALL` is `CFGI_STE_RANGE` with Range = 31.
    pub struct Opcode(u8) {
        /// Prefetch the configuration of a stream.
        PREFETCH_CONFIG = 0x01,
        /// Prefetch translations for an address range.
        PREFETCH_ADDR = 0x02,
        /// Invalidate one STE (Leaf = 0: also its L1 descriptor).
        CFGI_STE = 0x03,
        /// Invalidate 2^(Range + 1) STEs (Range = 31: CFGI_ALL).
        CFGI_STE_RANGE = 0x04,
        /// Invalidate one CD (Leaf = 0: also its L1 CD descriptor).
        CFGI_CD = 0x05,
        /// Invalidate all CDs of a stream.
        CFGI_CD_ALL = 0x06,
        /// Invalidate VMS/PIDM configuration (v3.2; not advertised here).
        CFGI_VMS_PIDM = 0x07,
        /// Invalidate all stage-1 entries of a VMID.
        TLBI_NH_ALL = 0x10,
        /// Invalidate non-global stage-1 entries of an ASID.
        TLBI_NH_ASID = 0x11,
        /// Invalidate stage-1 entries for an address in an ASID (plus global entries).
        TLBI_NH_VA = 0x12,
        /// Invalidate stage-1 entries for an address in all ASIDs.
        TLBI_NH_VAA = 0x13,
        /// Invalidate all EL3 entries (Secure only).
        TLBI_EL3_ALL = 0x18,
        /// Invalidate EL3 entries for an address (Secure only).
        TLBI_EL3_VA = 0x1A,
        /// Invalidate all EL2 entries.
        TLBI_EL2_ALL = 0x20,
        /// Invalidate EL2 entries of an ASID.
        TLBI_EL2_ASID = 0x21,
        /// Invalidate EL2 entries for an address in an ASID.
        TLBI_EL2_VA = 0x22,
        /// Invalidate EL2 entries for an address in all ASIDs.
        TLBI_EL2_VAA = 0x23,
        /// Invalidate stage-1 and stage-2 entries of a VMID.
        TLBI_S12_VMALL = 0x28,
        /// Invalidate stage-2 entries for an IPA.
        TLBI_S2_IPA = 0x2A,
        /// Invalidate all non-secure, non-hyp entries.
        TLBI_NSNH_ALL = 0x30,
        /// Invalidate an endpoint's ATC.
        ATC_INV = 0x40,
        /// Respond to a PRI page request group.
        PRI_RESP = 0x41,
        /// Resume or terminate a stalled transaction.
        RESUME = 0x44,
        /// Terminate all stalled transactions of a stream.
        STALL_TERM = 0x45,
        /// Synchronise: complete all earlier commands, then signal.
        CMD_SYNC = 0x46,
    }
}

open_enum! {
    /// CMD_SYNC.CS (word 0 bits \[13:12\]): completion signal.
    pub struct SyncCs(u8) {
        /// No signal: CONS passes the SYNC.
        SIG_NONE = 0,
        /// Interrupt: MSI write of MSIData to MSIAddr, or the wired line.
        SIG_IRQ = 1,
        /// Wake-up event (SEV).
        SIG_SEV = 2,
    }
}

open_enum! {
    /// PRI_RESP.Resp (word 1 bits \[13:12\]; IHI 0070 §4.5.2). Linux calls 0 "DENY" and 1
    /// "FAIL".
    pub struct PriRespCode(u8) {
        /// ResponseFailure: permanent non-paging error.
        RESPONSE_FAILURE = 0,
        /// InvalidRequest: page-in unsuccessful for one or more pages of the group.
        INVALID_REQUEST = 1,
        /// Success: the group was paged in.
        SUCCESS = 2,
    }
}

open_enum! {
    /// RESUME.Resp (word 0 bits \[13:12\]).
    pub struct ResumeResp(u8) {
        /// Complete the transaction as terminated (RAZ/WI or abort per CD.A).
        TERM = 0,
        /// Retry the translation.
        RETRY = 1,
        /// Abort the transaction.
        ABORT = 2,
    }
}

/// Word 0 as every command shares it: the opcode in bits \[7:0\], the rest given by the
/// command's family (the `Cmd*W0` types below).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdHeaderW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: Opcode,
    /// Bits \[63:8\]: the family's fields.
    #[bits(56)]
    pub family_fields: u64,
}

/// Word 0 of stream-addressed commands (PREFETCH_*, CFGI_*, PRI_RESP, STALL_TERM).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdStreamW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: Opcode,
    /// Bits \[9:8\]: reserved.
    #[bits(2)]
    pub rsvd_9_8: u8,
    /// SSec (bit \[10\]): Secure stream; must be 0 on the Non-secure queue.
    pub ssec: bool,
    /// SSV (bit \[11\]): SubstreamID valid.
    pub ssv: bool,
    /// SSID (bits \[31:12\]).
    #[bits(20)]
    pub ssid: u32,
    /// SID (bits \[63:32\]).
    pub sid: u32,
}

/// Word 0 of TLB invalidations (TLBI_*).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdTlbiW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: Opcode,
    /// Bits \[11:8\]: reserved.
    #[bits(4)]
    pub rsvd_11_8: u8,
    /// NUM (bits \[16:12\]): range is (NUM + 1) x 2^SCALE granules.
    #[bits(5)]
    pub num: u8,
    /// Bits \[19:17\]: reserved.
    #[bits(3)]
    pub rsvd_19_17: u8,
    /// SCALE (bits \[24:20\]).
    #[bits(5)]
    pub scale: u8,
    /// Bits \[31:25\]: reserved.
    #[bits(7)]
    pub rsvd_31_25: u8,
    /// VMID (bits \[47:32\]).
    pub vmid: u16,
    /// ASID (bits \[63:48\]).
    pub asid: u16,
}

/// Word 0 of ATC_INV.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdAtcInvW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: Opcode,
    /// Bit \[8\]: reserved.
    pub rsvd_8: bool,
    /// Global (bit \[9\]): also invalidate global ATC entries for the SSID.
    pub global: bool,
    /// Bit \[10\]: reserved.
    pub rsvd_10: bool,
    /// SSV (bit \[11\]).
    pub ssv: bool,
    /// SSID (bits \[31:12\]).
    #[bits(20)]
    pub ssid: u32,
    /// SID (bits \[63:32\]).
    pub sid: u32,
}

/// Word 0 of RESUME.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdResumeW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: Opcode,
    /// Bits \[9:8\]: reserved.
    #[bits(2)]
    pub rsvd_9_8: u8,
    /// SSec (bit \[10\]).
    pub ssec: bool,
    /// Bit \[11\]: reserved.
    pub rsvd_11: bool,
    /// Resp (bits \[13:12\]).
    #[bits(2)]
    pub resp: ResumeResp,
    /// Bits \[31:14\]: reserved.
    #[bits(18)]
    pub rsvd_31_14: u32,
    /// SID (bits \[63:32\]).
    pub sid: u32,
}

/// Word 0 of CMD_SYNC.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdSyncW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: Opcode,
    /// Bits \[11:8\]: reserved.
    #[bits(4)]
    pub rsvd_11_8: u8,
    /// CS (bits \[13:12\]): completion signal.
    #[bits(2)]
    pub cs: SyncCs,
    /// Bits \[21:14\]: reserved.
    #[bits(8)]
    pub rsvd_21_14: u8,
    /// MSH (bits \[23:22\]): MSI shareability.
    #[bits(2)]
    pub msh: u8,
    /// MSIAttr (bits \[27:24\]): MSI memory type.
    #[bits(4)]
    pub msiattr: u8,
    /// Bits \[31:28\]: reserved.
    #[bits(4)]
    pub rsvd_31_28: u8,
    /// MSIData (bits \[63:32\]).
    pub msidata: u32,
}

/// Word 1 of PREFETCH_CONFIG / PREFETCH_ADDR.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdPrefetchW1 {
    /// Size (bits \[68:64\]): log2 of the range in 4 KiB units.
    #[bits(5)]
    pub size: u8,
    /// Bits \[75:69\]: reserved.
    #[bits(7)]
    pub rsvd_11_5: u8,
    /// Addr (bits \[127:76\]), stored shifted; see [`CmdPrefetchW1::addr`].
    #[bits(52)]
    pub addr_hi: u64,
}

/// Adds `addr()` / `with_addr()` to command words whose Address field is bits \[63:12\] of the
/// word, stored shifted in `addr_hi` (the field spans \[127:76\] of the command).
macro_rules! page_addr_word {
    ($($name:ident),* $(,)?) => {
        $(
            impl $name {
                /// The address (bits \[63:12\] of the word; for TLBI, the VA of the
                /// NH/EL2/EL3 forms).
                pub const fn addr(self) -> u64 {
                    self.raw() & bits_mask(63, 12)
                }

                /// The same word with the address set from `addr` (bits outside \[63:12\]
                /// dropped).
                pub const fn with_addr(self, addr: u64) -> Self {
                    self.with_addr_hi((addr & bits_mask(63, 12)) >> 12)
                }
            }
        )*
    };
}

/// Word 1 of CFGI_STE and CFGI_CD.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdCfgiLeafW1 {
    /// Leaf (bit \[64\]): 1 = only the entry, 0 = also the L1 descriptor.
    pub leaf: bool,
    /// Bits \[127:65\]: reserved.
    #[bits(63)]
    pub rsvd: u64,
}

/// Word 1 of CFGI_STE_RANGE (and CFGI_ALL).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdCfgiRangeW1 {
    /// Range (bits \[68:64\]): 2^(Range + 1) StreamIDs; 31 = all.
    #[bits(5)]
    pub range: u8,
    /// Bits \[127:69\]: reserved.
    #[bits(59)]
    pub rsvd: u64,
}

/// Word 1 of address-based TLB invalidations (TLBI_NH_VA/VAA, TLBI_EL2_VA/VAA, TLBI_EL3_VA,
/// TLBI_S2_IPA).
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdTlbiW1 {
    /// Leaf (bit \[64\]): only last-level entries.
    pub leaf: bool,
    /// Bits \[71:65\]: reserved.
    #[bits(7)]
    pub rsvd_7_1: u8,
    /// TTL (bits \[73:72\]): level hint.
    #[bits(2)]
    pub ttl: u8,
    /// TG (bits \[75:74\]): 0 = not a range, 1 = 4K, 2 = 16K, 3 = 64K.
    #[bits(2)]
    pub tg: u8,
    /// Address (bits \[127:76\]), stored shifted; see [`CmdTlbiW1::addr`] / [`CmdTlbiW1::ipa`].
    #[bits(52)]
    pub addr_hi: u64,
}

impl CmdTlbiW1 {
    /// IPA (bits \[51:12\] of the word) for TLBI_S2_IPA.
    pub const fn ipa(self) -> u64 {
        self.raw() & bits_mask(51, 12)
    }

    /// The same word with the IPA set from `addr` (bits outside \[51:12\] dropped).
    pub const fn with_ipa(self, addr: u64) -> Self {
        self.with_addr_hi((addr & bits_mask(51, 12)) >> 12)
    }

    /// Bits \[63:52\], reserved in TLBI_S2_IPA.
    pub const fn ipa_rsvd_hi(self) -> u64 {
        self.raw() >> 52
    }
}

/// Word 1 of ATC_INV.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdAtcInvW1 {
    /// Size (bits \[69:64\]): log2 of the span in 4 KiB pages; 52 = everything.
    #[bits(6)]
    pub size: u8,
    /// Bits \[75:70\]: reserved.
    #[bits(6)]
    pub rsvd_11_6: u8,
    /// Address (bits \[127:76\]), stored shifted; see [`CmdAtcInvW1::addr`].
    #[bits(52)]
    pub addr_hi: u64,
}

/// Word 1 of PRI_RESP.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdPriRespW1 {
    /// PRGIndex (bits \[72:64\]).
    #[bits(9)]
    pub prg_index: u16,
    /// Bits \[75:73\]: reserved.
    #[bits(3)]
    pub rsvd_11_9: u8,
    /// Resp (bits \[77:76\]).
    #[bits(2)]
    pub resp: PriRespCode,
    /// Bits \[127:78\]: reserved.
    #[bits(50)]
    pub rsvd: u64,
}

/// Word 1 of RESUME.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdResumeW1 {
    /// STAG (bits \[79:64\]): stall tag from the event record.
    pub stag: u16,
    /// Bits \[127:80\]: reserved.
    #[bits(48)]
    pub rsvd: u64,
}

/// Word 1 of CMD_SYNC.
#[bitfield(u64, repr = Le64, from = Le64::new, into = Le64::get)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq, Hash)]
pub struct CmdSyncW1 {
    /// Bits \[65:64\]: reserved.
    #[bits(2)]
    pub rsvd_1_0: u8,
    /// MSIAddr (bits \[115:66\]), stored shifted; see [`CmdSyncW1::msi_addr`].
    #[bits(50)]
    pub msi_addr_hi: u64,
    /// Bits \[127:116\]: reserved.
    #[bits(12)]
    pub rsvd_63_52: u16,
}

impl CmdSyncW1 {
    /// MSIAddr: the doorbell physical address (bits \[51:2\]).
    pub const fn msi_addr(self) -> u64 {
        self.raw() & bits_mask(51, 2)
    }

    /// The same word with MSIAddr set from `addr` (bits outside \[51:2\] dropped).
    pub const fn with_msi_addr(self, addr: u64) -> Self {
        self.with_msi_addr_hi((addr & bits_mask(51, 2)) >> 2)
    }
}

le_word!(
    CmdHeaderW0,
    CmdStreamW0,
    CmdTlbiW0,
    CmdAtcInvW0,
    CmdResumeW0,
    CmdSyncW0,
    CmdPrefetchW1,
    CmdCfgiLeafW1,
    CmdCfgiRangeW1,
    CmdTlbiW1,
    CmdAtcInvW1,
    CmdPriRespW1,
    CmdResumeW1,
    CmdSyncW1,
);

page_addr_word!(CmdPrefetchW1, CmdTlbiW1, CmdAtcInvW1);

/// A raw command-queue entry (16 bytes, little-endian words), as read from the queue.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CmdEntry {
    /// Word 0 (opcode and first-word fields).
    pub w0: Le64,
    /// Word 1.
    pub w1: Le64,
}

const _: () = assert!(core::mem::size_of::<CmdEntry>() == 16);

impl CmdEntry {
    /// Size of a command in bytes.
    pub const SIZE: u64 = 16;

    /// Build from the two architectural word values.
    pub const fn from_words(w: [u64; 2]) -> Self {
        Self {
            w0: Le64::new(w[0]),
            w1: Le64::new(w[1]),
        }
    }

    /// The two architectural word values.
    pub const fn words(&self) -> [u64; 2] {
        [self.w0.get(), self.w1.get()]
    }

    /// The opcode (word 0 bits \[7:0\]).
    pub const fn opcode(&self) -> Opcode {
        CmdHeaderW0::from_bits(self.w0).opcode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Common fields: SSec \[10\], SSV \[11\], SSID \[31:12\], SID \[63:32\] (IHI 0070 §4.1).
    #[test]
    fn test_cmd_common_bit_positions() {
        assert_eq!(CmdStreamW0::SSEC_OFFSET, 10);
        assert_eq!(CmdStreamW0::SSV_OFFSET, 11);
        assert_eq!((CmdStreamW0::SSID_OFFSET, CmdStreamW0::SSID_BITS), (12, 20));
        assert_eq!((CmdStreamW0::SID_OFFSET, CmdStreamW0::SID_BITS), (32, 32));
        assert_eq!(CmdAtcInvW0::GLOBAL_OFFSET, 9);
    }

    /// TLBI fields: NUM \[16:12\], SCALE \[24:20\], VMID \[47:32\], ASID \[63:48\]; Leaf \[0\], TTL \[9:8\],
    /// TG \[11:10\], address \[63:12\] (Linux `CMDQ_TLBI_*`).
    #[test]
    fn test_cmd_tlbi_bit_positions() {
        assert_eq!((CmdTlbiW0::NUM_OFFSET, CmdTlbiW0::NUM_BITS), (12, 5));
        assert_eq!((CmdTlbiW0::SCALE_OFFSET, CmdTlbiW0::SCALE_BITS), (20, 5));
        assert_eq!(CmdTlbiW0::VMID_OFFSET, 32);
        assert_eq!(CmdTlbiW0::ASID_OFFSET, 48);
        assert_eq!(CmdTlbiW1::LEAF_OFFSET, 0);
        assert_eq!(CmdTlbiW1::TTL_OFFSET, 8);
        assert_eq!(CmdTlbiW1::TG_OFFSET, 10);
        assert_eq!(CmdTlbiW1::ADDR_HI_OFFSET, 12);
        // Linux's RIL split of 37 pages at 0x1000_0000, ASID 5: command 1 (NUM 4, SCALE 0).
        let w0 = CmdTlbiW0::from_raw(0x0005_0000_0000_4012);
        let w1 = CmdTlbiW1::from_raw(0x0000_0000_1000_0701);
        assert_eq!(w0.opcode(), Opcode::TLBI_NH_VA);
        assert_eq!((w0.num(), w0.scale(), w0.asid(), w0.vmid()), (4, 0, 5, 0));
        assert_eq!((w1.leaf(), w1.ttl(), w1.tg()), (true, 3, 1));
        assert_eq!(w1.addr(), 0x1000_0000);
    }

    /// CMD_SYNC: CS \[13:12\], MSH \[23:22\], MSIAttr \[27:24\], MSIData \[63:32\], MSIAddr \[51:2\].
    #[test]
    fn test_cmd_sync_fields() {
        let w0 = CmdSyncW0::from_raw(0x0FC0_1046);
        assert_eq!(w0.opcode(), Opcode::CMD_SYNC);
        assert_eq!(w0.cs(), SyncCs::SIG_IRQ);
        assert_eq!(w0.msh(), 3);
        assert_eq!(w0.msiattr(), 0xF);
        assert_eq!(w0.msidata(), 0);
        assert_eq!(CmdSyncW0::from_raw(0x0FC0_2046).cs(), SyncCs::SIG_SEV);
        assert_eq!(
            CmdSyncW1::from_raw(0x0000_0000_4001_2346).msi_addr(),
            0x4001_2344
        );
    }

    /// Other word-1 layouts: ATC_INV Size \[5:0\], PRI_RESP PRGIndex \[8:0\] / Resp \[13:12\],
    /// RESUME STAG \[15:0\] / Resp \[13:12\], CFGI Range \[4:0\].
    #[test]
    fn test_cmd_w1_bit_positions() {
        assert_eq!(CmdAtcInvW1::from_raw(0x34).size(), 52);
        assert_eq!(
            (CmdPriRespW1::RESP_OFFSET, CmdPriRespW1::PRG_INDEX_BITS),
            (12, 9)
        );
        assert_eq!(CmdResumeW0::RESP_OFFSET, 12);
        assert_eq!(CmdResumeW1::STAG_BITS, 16);
        assert_eq!(CmdCfgiRangeW1::from_raw(0x1F).range(), 31);
        let e = CmdEntry::from_words([0x0000_0010_0000_0003, 1]);
        assert_eq!(e.opcode(), Opcode::CFGI_STE);
        assert_eq!(e.as_bytes()[4], 0x10);
        assert_eq!(e.as_bytes()[8], 1);
    }
}
