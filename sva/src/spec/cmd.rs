//! Command-queue entries (IHI 0070 §4), the 16-byte records forwarded through
//! `IOMMU_HWPT_INVALIDATE` on the vIOMMU.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Command opcode (cmd0 bits \[7:0\]): open enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct CmdOpcode(pub u8);

impl CmdOpcode {
    /// PREFETCH_CONFIG.
    pub const PREFETCH_CONFIG: Self = Self(0x01);
    /// PREFETCH_ADDR.
    pub const PREFETCH_ADDR: Self = Self(0x02);
    /// CFGI_STE.
    pub const CFGI_STE: Self = Self(0x03);
    /// CFGI_STE_RANGE (Range 31 = CFGI_ALL).
    pub const CFGI_STE_RANGE: Self = Self(0x04);
    /// CFGI_CD.
    pub const CFGI_CD: Self = Self(0x05);
    /// CFGI_CD_ALL.
    pub const CFGI_CD_ALL: Self = Self(0x06);
    /// TLBI_NH_ALL.
    pub const TLBI_NH_ALL: Self = Self(0x10);
    /// TLBI_NH_ASID.
    pub const TLBI_NH_ASID: Self = Self(0x11);
    /// TLBI_NH_VA.
    pub const TLBI_NH_VA: Self = Self(0x12);
    /// TLBI_NH_VAA.
    pub const TLBI_NH_VAA: Self = Self(0x13);
    /// TLBI_EL3_ALL.
    pub const TLBI_EL3_ALL: Self = Self(0x18);
    /// TLBI_EL3_VA.
    pub const TLBI_EL3_VA: Self = Self(0x1A);
    /// TLBI_EL2_ALL.
    pub const TLBI_EL2_ALL: Self = Self(0x20);
    /// TLBI_EL2_ASID.
    pub const TLBI_EL2_ASID: Self = Self(0x21);
    /// TLBI_EL2_VA.
    pub const TLBI_EL2_VA: Self = Self(0x22);
    /// TLBI_EL2_VAA.
    pub const TLBI_EL2_VAA: Self = Self(0x23);
    /// TLBI_S12_VMALL.
    pub const TLBI_S12_VMALL: Self = Self(0x28);
    /// TLBI_S2_IPA.
    pub const TLBI_S2_IPA: Self = Self(0x2A);
    /// TLBI_NSNH_ALL.
    pub const TLBI_NSNH_ALL: Self = Self(0x30);
    /// ATC_INV.
    pub const ATC_INV: Self = Self(0x40);
    /// PRI_RESP.
    pub const PRI_RESP: Self = Self(0x41);
    /// RESUME.
    pub const RESUME: Self = Self(0x44);
    /// STALL_TERM.
    pub const STALL_TERM: Self = Self(0x45);
    /// CMD_SYNC.
    pub const CMD_SYNC: Self = Self(0x46);

    const fn from_bits(v: u8) -> Self {
        Self(v)
    }
    const fn into_bits(self) -> u8 {
        self.0
    }

    /// The architectural mnemonic, or `"UNKNOWN"`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x01 => "PREFETCH_CONFIG",
            0x02 => "PREFETCH_ADDR",
            0x03 => "CFGI_STE",
            0x04 => "CFGI_STE_RANGE",
            0x05 => "CFGI_CD",
            0x06 => "CFGI_CD_ALL",
            0x10 => "TLBI_NH_ALL",
            0x11 => "TLBI_NH_ASID",
            0x12 => "TLBI_NH_VA",
            0x13 => "TLBI_NH_VAA",
            0x18 => "TLBI_EL3_ALL",
            0x1A => "TLBI_EL3_VA",
            0x20 => "TLBI_EL2_ALL",
            0x21 => "TLBI_EL2_ASID",
            0x22 => "TLBI_EL2_VA",
            0x23 => "TLBI_EL2_VAA",
            0x28 => "TLBI_S12_VMALL",
            0x2A => "TLBI_S2_IPA",
            0x30 => "TLBI_NSNH_ALL",
            0x40 => "ATC_INV",
            0x41 => "PRI_RESP",
            0x44 => "RESUME",
            0x45 => "STALL_TERM",
            0x46 => "CMD_SYNC",
            _ => "UNKNOWN",
        }
    }
}

/// Word 0 of a configuration / ATC command (CFGI_*, ATC_INV, PREFETCH_*).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct CfgiW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: CmdOpcode,
    /// Bit \[8\]: reserved.
    pub res0_8: bool,
    /// Global (bit \[9\], ATC_INV only).
    pub global: bool,
    /// SSec (bit \[10\]): must be 0 from a non-secure guest.
    pub ssec: bool,
    /// SSV (bit \[11\]): SSID valid.
    pub ssv: bool,
    /// SubstreamID (bits \[31:12\]).
    #[bits(20)]
    pub ssid: u32,
    /// StreamID (bits \[63:32\]).
    #[bits(32)]
    pub sid: u32,
}

/// Word 1 of CFGI_STE / CFGI_CD (Leaf) and CFGI_STE_RANGE (Range).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct CfgiW1 {
    /// Leaf (bit \[64\]); for CFGI_STE_RANGE bits \[68:64\] are Range.
    pub leaf: bool,
    /// Range bits \[68:65\] above Leaf (CFGI_STE_RANGE only; see [`CfgiW1::range`]).
    #[bits(4)]
    pub range_hi: u8,
    /// Bits \[127:69\]: reserved.
    #[bits(59)]
    pub res0: u64,
}

impl CfgiW1 {
    /// CFGI_STE_RANGE.Range (bits \[68:64\]).
    pub const fn range(&self) -> u8 {
        (self.into_bits() & 0x1f) as u8
    }
}

/// Word 0 of a TLBI command (TLBI_NH_*, TLBI_S2_IPA, TLBI_EL2_*).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct TlbiW0 {
    /// Opcode (bits \[7:0\]).
    #[bits(8)]
    pub opcode: CmdOpcode,
    /// Bits \[11:8\]: reserved.
    #[bits(4)]
    pub res0_8: u8,
    /// NUM (bits \[16:12\]): range invalidation count.
    #[bits(5)]
    pub num: u8,
    /// Bits \[19:17\]: reserved.
    #[bits(3)]
    pub res0_17: u8,
    /// SCALE (bits \[25:20\]).
    #[bits(6)]
    pub scale: u8,
    /// Bits \[31:26\]: reserved.
    #[bits(6)]
    pub res0_26: u8,
    /// VMID (bits \[47:32\]); overwritten by the host with the vIOMMU's VMID.
    #[bits(16)]
    pub vmid: u16,
    /// ASID (bits \[63:48\]).
    #[bits(16)]
    pub asid: u16,
}

/// Word 1 of a TLBI command.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct TlbiW1 {
    /// Leaf (bit \[64\]).
    pub leaf: bool,
    /// Bits \[71:65\]: reserved.
    #[bits(7)]
    pub res0_1: u8,
    /// TTL (bits \[73:72\]).
    #[bits(2)]
    pub ttl: u8,
    /// TG (bits \[75:74\]): 0 no range, 1 4K, 2 16K, 3 64K.
    #[bits(2)]
    pub tg: u8,
    /// Address (bits \[127:76\]) shifted right by 12 (see [`TlbiW1::addr`]).
    #[bits(52)]
    pub addr_12: u64,
}

impl TlbiW1 {
    /// The virtual address, 4 KiB aligned.
    pub const fn addr(&self) -> u64 {
        self.addr_12() << 12
    }
    /// Set the address (bits \[11:0\] are dropped).
    pub const fn with_addr(self, va: u64) -> Self {
        self.with_addr_12(va >> 12)
    }
}

/// One 16-byte command as it sits in the queue (little-endian words).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Cmd {
    /// cmd0.
    pub w0: u64,
    /// cmd1.
    pub w1: u64,
}
const _: () = assert!(core::mem::size_of::<Cmd>() == 16);

impl Cmd {
    /// The opcode byte.
    pub const fn opcode(&self) -> CmdOpcode {
        CmdOpcode((self.w0 & 0xff) as u8)
    }
    /// From the two raw words.
    pub const fn from_words(w: [u64; 2]) -> Self {
        Self { w0: w[0], w1: w[1] }
    }
    /// The two raw words.
    pub const fn words(&self) -> [u64; 2] {
        [self.w0, self.w1]
    }
    /// TLBI_NH_ALL (VMID left 0: the host substitutes its own).
    pub const fn tlbi_nh_all() -> Self {
        Self {
            w0: TlbiW0::new()
                .with_opcode(CmdOpcode::TLBI_NH_ALL)
                .into_bits(),
            w1: 0,
        }
    }
    /// TLBI_NSNH_ALL.
    pub const fn tlbi_nsnh_all() -> Self {
        Self {
            w0: CmdOpcode::TLBI_NSNH_ALL.0 as u64,
            w1: 0,
        }
    }
    /// TLBI_NH_ASID(asid).
    pub const fn tlbi_nh_asid(asid: u16) -> Self {
        Self {
            w0: TlbiW0::new()
                .with_opcode(CmdOpcode::TLBI_NH_ASID)
                .with_asid(asid)
                .into_bits(),
            w1: 0,
        }
    }
    /// TLBI_NH_VA(asid, va, leaf) without range fields (TG = TTL = NUM = SCALE = 0).
    pub const fn tlbi_nh_va(asid: u16, va: u64, leaf: bool) -> Self {
        Self {
            w0: TlbiW0::new()
                .with_opcode(CmdOpcode::TLBI_NH_VA)
                .with_asid(asid)
                .into_bits(),
            w1: TlbiW1::new().with_leaf(leaf).with_addr(va).into_bits(),
        }
    }
    /// TLBI_NH_VAA(va, leaf) without range fields.
    pub const fn tlbi_nh_vaa(va: u64, leaf: bool) -> Self {
        Self {
            w0: TlbiW0::new()
                .with_opcode(CmdOpcode::TLBI_NH_VAA)
                .into_bits(),
            w1: TlbiW1::new().with_leaf(leaf).with_addr(va).into_bits(),
        }
    }
    /// CFGI_STE(sid, leaf).
    pub const fn cfgi_ste(sid: u32, leaf: bool) -> Self {
        Self {
            w0: CfgiW0::new()
                .with_opcode(CmdOpcode::CFGI_STE)
                .with_sid(sid)
                .into_bits(),
            w1: CfgiW1::new().with_leaf(leaf).into_bits(),
        }
    }
    /// CFGI_CD(sid, ssid, leaf).
    pub const fn cfgi_cd(sid: u32, ssid: u32, leaf: bool) -> Self {
        Self {
            w0: CfgiW0::new()
                .with_opcode(CmdOpcode::CFGI_CD)
                .with_ssid(ssid)
                .with_sid(sid)
                .into_bits(),
            w1: CfgiW1::new().with_leaf(leaf).into_bits(),
        }
    }
    /// CFGI_CD_ALL(sid).
    pub const fn cfgi_cd_all(sid: u32) -> Self {
        Self {
            w0: CfgiW0::new()
                .with_opcode(CmdOpcode::CFGI_CD_ALL)
                .with_sid(sid)
                .into_bits(),
            w1: 0,
        }
    }
    /// CMD_SYNC with CS = SIG_NONE.
    pub const fn cmd_sync() -> Self {
        Self {
            w0: CmdOpcode::CMD_SYNC.0 as u64,
            w1: 0,
        }
    }
}

/// How the iommufd nesting interface treats a guest command (iommufd-nesting.md §7, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forwarding {
    /// Forward through `IOMMU_HWPT_INVALIDATE` (TLBI_NH_*, TLBI_NSNH_ALL, CFGI_CD(_ALL), ATC_INV).
    Forward,
    /// CMD_SYNC: complete locally once every earlier forward returned; ends a batch.
    Sync,
    /// CFGI_STE, CFGI_STE_RANGE/CFGI_ALL: the VMM re-reads the guest STE and re-attaches; ends a batch.
    StreamConfig,
    /// PREFETCH_*: no effect.
    NoOp,
    /// Anything else (stage-2/EL2/EL3 TLBIs without S2P/HYP, PRI_RESP, RESUME, unknown): CERROR_ILL.
    Illegal,
}

impl CmdOpcode {
    /// The forwarding class of this opcode for a vSMMU advertising S1P only.
    pub const fn forwarding(self) -> Forwarding {
        match self {
            Self::TLBI_NH_ALL
            | Self::TLBI_NH_ASID
            | Self::TLBI_NH_VA
            | Self::TLBI_NH_VAA
            | Self::TLBI_NSNH_ALL
            | Self::CFGI_CD
            | Self::CFGI_CD_ALL
            | Self::ATC_INV => Forwarding::Forward,
            Self::CMD_SYNC => Forwarding::Sync,
            Self::CFGI_STE | Self::CFGI_STE_RANGE => Forwarding::StreamConfig,
            Self::PREFETCH_CONFIG | Self::PREFETCH_ADDR => Forwarding::NoOp,
            _ => Forwarding::Illegal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlbi_fields_sit_at_linux_positions() {
        // CMDQ_TLBI_0_NUM [16:12], SCALE [25:20], VMID [47:32], ASID [63:48]
        assert_eq!(TlbiW0::new().with_num(0x1f).into_bits(), 0x1f << 12);
        assert_eq!(TlbiW0::new().with_scale(0x3f).into_bits(), 0x3f << 20);
        assert_eq!(TlbiW0::new().with_vmid(0xffff).into_bits(), 0xffff << 32);
        assert_eq!(TlbiW0::new().with_asid(0xffff).into_bits(), 0xffff << 48);
        // CMDQ_TLBI_1_LEAF [0], TTL [9:8], TG [11:10], VA [63:12]
        assert_eq!(TlbiW1::new().with_leaf(true).into_bits(), 1);
        assert_eq!(TlbiW1::new().with_ttl(3).into_bits(), 0x300);
        assert_eq!(TlbiW1::new().with_tg(3).into_bits(), 0xc00);
        assert_eq!(
            TlbiW1::new().with_addr(u64::MAX).into_bits(),
            0xFFFF_FFFF_FFFF_F000
        );
    }

    #[test]
    fn cfgi_fields_sit_at_linux_positions() {
        assert_eq!(CfgiW0::new().with_global(true).into_bits(), 1 << 9);
        assert_eq!(CfgiW0::new().with_ssec(true).into_bits(), 1 << 10);
        assert_eq!(CfgiW0::new().with_ssv(true).into_bits(), 1 << 11);
        assert_eq!(CfgiW0::new().with_ssid(0xfffff).into_bits(), 0xfffff << 12);
        assert_eq!(
            CfgiW0::new().with_sid(u32::MAX).into_bits(),
            0xFFFF_FFFF_0000_0000
        );
        assert_eq!(CfgiW1::from_bits(0x1f).range(), 31);
    }

    #[test]
    fn builders_produce_the_architectural_words() {
        assert_eq!(
            Cmd::tlbi_nh_va(0x42, 0x1234_5000, true).words(),
            [0x0042_0000_0000_0012, 0x1234_5001]
        );
        assert_eq!(Cmd::tlbi_nh_asid(7).words(), [0x0007_0000_0000_0011, 0]);
        assert_eq!(Cmd::tlbi_nh_all().words(), [0x10, 0]);
        assert_eq!(Cmd::cfgi_cd_all(0x42).words(), [0x0000_0042_0000_0006, 0]);
        assert_eq!(
            Cmd::cfgi_cd(0x42, 3, true).words(),
            [0x0000_0042_0000_3005, 1]
        );
        assert_eq!(
            Cmd::cfgi_ste(0x42, true).words(),
            [0x0000_0042_0000_0003, 1]
        );
        assert_eq!(Cmd::cmd_sync().opcode(), CmdOpcode::CMD_SYNC);
    }

    #[test]
    fn forwarding_follows_the_kernel_conversion_table() {
        for op in [0x10, 0x11, 0x12, 0x13, 0x30, 0x05, 0x06, 0x40] {
            assert_eq!(CmdOpcode(op).forwarding(), Forwarding::Forward, "{op:#x}");
        }
        for op in [
            0x2A, 0x28, 0x20, 0x21, 0x22, 0x23, 0x18, 0x1A, 0x41, 0x44, 0x45, 0x07, 0xff,
        ] {
            assert_eq!(CmdOpcode(op).forwarding(), Forwarding::Illegal, "{op:#x}");
        }
        assert_eq!(CmdOpcode(0x03).forwarding(), Forwarding::StreamConfig);
        assert_eq!(CmdOpcode(0x04).forwarding(), Forwarding::StreamConfig);
        assert_eq!(CmdOpcode(0x46).forwarding(), Forwarding::Sync);
        assert_eq!(CmdOpcode(0x01).forwarding(), Forwarding::NoOp);
    }
}
