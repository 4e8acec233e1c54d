//! Guest commands on `IOMMU_HWPT_INVALIDATE`: the kernel's conversion table, and constructors for
//! the commands the VMM composes itself.
//!
//! A forwarded command is viommu-smmuv3's raw 16-byte [`CmdEntry`] (the kernel takes the guest's
//! words as they are); the constructors build them from its decoded [`Command`] with
//! [`Command::encode`], with VMID 0 (the host substitutes the vIOMMU's own).

use viommu_common::id::{Asid, StreamId, SubstreamId, Vmid};
use viommu_smmuv3::cmdq::command::{Command, SyncCmd, SyncSignal, TlbiRange};
use viommu_smmuv3::spec::cmd::{CmdEntry, Opcode};

/// How the iommufd nesting interface treats a guest command (Linux `arm_vsmmu_convert_user_cmd()`).
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

/// The forwarding class of an opcode for a vSMMU advertising S1P only.
pub const fn forwarding(op: Opcode) -> Forwarding {
    match op {
        Opcode::TLBI_NH_ALL
        | Opcode::TLBI_NH_ASID
        | Opcode::TLBI_NH_VA
        | Opcode::TLBI_NH_VAA
        | Opcode::TLBI_NSNH_ALL
        | Opcode::CFGI_CD
        | Opcode::CFGI_CD_ALL
        | Opcode::ATC_INV => Forwarding::Forward,
        Opcode::CMD_SYNC => Forwarding::Sync,
        Opcode::CFGI_STE | Opcode::CFGI_STE_RANGE => Forwarding::StreamConfig,
        Opcode::PREFETCH_CONFIG | Opcode::PREFETCH_ADDR => Forwarding::NoOp,
        _ => Forwarding::Illegal,
    }
}

/// The architectural mnemonic of an opcode, or `"UNKNOWN"` (log and error text).
pub fn opcode_name(op: Opcode) -> &'static str {
    op.name().unwrap_or("UNKNOWN")
}

/// The queue entry of a decoded command.
pub fn entry(cmd: &Command) -> CmdEntry {
    CmdEntry::from_words(cmd.encode())
}

/// A single-address TLBI range (TG = TTL = NUM = SCALE = 0).
const fn one_address(va: u64, leaf: bool) -> TlbiRange {
    TlbiRange {
        addr: va,
        leaf,
        ttl: 0,
        tg: 0,
        num: 0,
        scale: 0,
    }
}

/// TLBI_NH_ALL.
pub fn tlbi_nh_all() -> CmdEntry {
    entry(&Command::TlbiNhAll { vmid: Vmid(0) })
}

/// TLBI_NSNH_ALL.
pub fn tlbi_nsnh_all() -> CmdEntry {
    entry(&Command::TlbiNsnhAll)
}

/// TLBI_NH_ASID(asid).
pub fn tlbi_nh_asid(asid: u16) -> CmdEntry {
    entry(&Command::TlbiNhAsid {
        vmid: Vmid(0),
        asid: Asid(asid),
    })
}

/// TLBI_NH_VA(asid, va, leaf) without range fields.
pub fn tlbi_nh_va(asid: u16, va: u64, leaf: bool) -> CmdEntry {
    entry(&Command::TlbiNhVa {
        vmid: Vmid(0),
        asid: Asid(asid),
        range: one_address(va, leaf),
    })
}

/// TLBI_NH_VAA(va, leaf) without range fields.
pub fn tlbi_nh_vaa(va: u64, leaf: bool) -> CmdEntry {
    entry(&Command::TlbiNhVaa {
        vmid: Vmid(0),
        range: one_address(va, leaf),
    })
}

/// CFGI_STE(sid, leaf).
pub fn cfgi_ste(sid: u32, leaf: bool) -> CmdEntry {
    entry(&Command::CfgiSte {
        sid: StreamId(sid),
        leaf,
    })
}

/// CFGI_CD(sid, ssid, leaf).
pub fn cfgi_cd(sid: u32, ssid: u32, leaf: bool) -> CmdEntry {
    entry(&Command::CfgiCd {
        sid: StreamId(sid),
        ssid: SubstreamId(ssid),
        leaf,
    })
}

/// CFGI_CD_ALL(sid).
pub fn cfgi_cd_all(sid: u32) -> CmdEntry {
    entry(&Command::CfgiCdAll { sid: StreamId(sid) })
}

/// CMD_SYNC with CS = SIG_NONE.
pub fn cmd_sync() -> CmdEntry {
    entry(&Command::Sync(SyncCmd {
        cs: SyncSignal::None,
        msh: 0,
        msi_attr: 0,
        msi_data: 0,
        msi_addr: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_smmuv3::spec::cmd::{
        CmdCfgiLeafW1, CmdCfgiRangeW1, CmdStreamW0, CmdTlbiW0, CmdTlbiW1,
    };

    #[test]
    fn tlbi_fields_sit_at_linux_positions() {
        // CMDQ_TLBI_0_NUM [16:12], SCALE [24:20], VMID [47:32], ASID [63:48]
        assert_eq!(CmdTlbiW0::new().with_num(0x1f).raw(), 0x1f << 12);
        assert_eq!(CmdTlbiW0::new().with_scale(0x1f).raw(), 0x1f << 20);
        assert_eq!(CmdTlbiW0::new().with_vmid(0xffff).raw(), 0xffff << 32);
        assert_eq!(CmdTlbiW0::new().with_asid(0xffff).raw(), 0xffff << 48);
        // CMDQ_TLBI_1_LEAF [0], TTL [9:8], TG [11:10], VA [63:12]
        assert_eq!(CmdTlbiW1::new().with_leaf(true).raw(), 1);
        assert_eq!(CmdTlbiW1::new().with_ttl(3).raw(), 0x300);
        assert_eq!(CmdTlbiW1::new().with_tg(3).raw(), 0xc00);
        assert_eq!(
            CmdTlbiW1::new().with_addr(u64::MAX).raw(),
            0xFFFF_FFFF_FFFF_F000
        );
    }

    #[test]
    fn cfgi_fields_sit_at_linux_positions() {
        use viommu_smmuv3::spec::cmd::CmdAtcInvW0;
        assert_eq!(CmdAtcInvW0::new().with_global(true).raw(), 1 << 9);
        assert_eq!(CmdStreamW0::new().with_ssec(true).raw(), 1 << 10);
        assert_eq!(CmdStreamW0::new().with_ssv(true).raw(), 1 << 11);
        assert_eq!(CmdStreamW0::new().with_ssid(0xfffff).raw(), 0xfffff << 12);
        assert_eq!(
            CmdStreamW0::new().with_sid(u32::MAX).raw(),
            0xFFFF_FFFF_0000_0000
        );
        assert_eq!(CmdCfgiRangeW1::from_raw(0x1f).range(), 31);
        assert_eq!(CmdCfgiLeafW1::new().with_leaf(true).raw(), 1);
    }

    #[test]
    fn builders_produce_the_architectural_words() {
        assert_eq!(
            tlbi_nh_va(0x42, 0x1234_5000, true).words(),
            [0x0042_0000_0000_0012, 0x1234_5001]
        );
        assert_eq!(tlbi_nh_asid(7).words(), [0x0007_0000_0000_0011, 0]);
        assert_eq!(tlbi_nh_all().words(), [0x10, 0]);
        assert_eq!(tlbi_nsnh_all().words(), [0x30, 0]);
        assert_eq!(tlbi_nh_vaa(0x5000, false).words(), [0x13, 0x5000]);
        assert_eq!(cfgi_cd_all(0x42).words(), [0x0000_0042_0000_0006, 0]);
        assert_eq!(cfgi_cd(0x42, 3, true).words(), [0x0000_0042_0000_3005, 1]);
        assert_eq!(cfgi_ste(0x42, true).words(), [0x0000_0042_0000_0003, 1]);
        assert_eq!(cmd_sync().opcode(), Opcode::CMD_SYNC);
        assert_eq!(cmd_sync().words(), [0x46, 0]);
    }

    #[test]
    fn forwarding_follows_the_kernel_conversion_table() {
        for op in [0x10, 0x11, 0x12, 0x13, 0x30, 0x05, 0x06, 0x40] {
            assert_eq!(forwarding(Opcode(op)), Forwarding::Forward, "{op:#x}");
        }
        for op in [
            0x2A, 0x28, 0x20, 0x21, 0x22, 0x23, 0x18, 0x1A, 0x41, 0x44, 0x45, 0x07, 0xff,
        ] {
            assert_eq!(forwarding(Opcode(op)), Forwarding::Illegal, "{op:#x}");
        }
        assert_eq!(forwarding(Opcode(0x03)), Forwarding::StreamConfig);
        assert_eq!(forwarding(Opcode(0x04)), Forwarding::StreamConfig);
        assert_eq!(forwarding(Opcode(0x46)), Forwarding::Sync);
        assert_eq!(forwarding(Opcode(0x01)), Forwarding::NoOp);
        assert_eq!(opcode_name(Opcode(0x12)), "TLBI_NH_VA");
        assert_eq!(opcode_name(Opcode(0xff)), "UNKNOWN");
    }
}
