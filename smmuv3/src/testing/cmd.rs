//! Raw command encoders, with the values the Linux driver writes (`arm_smmu_cmdq_build_cmd()`,
//! `__arm_smmu_tlb_inv_range()`).

/// A raw command: two little-endian words.
pub type Cmd = [u64; 2];

/// CFGI_ALL: CFGI_STE_RANGE with Range 31.
pub const fn cfgi_all() -> Cmd {
    [0x04, 0x1F]
}
/// CFGI_STE(sid, leaf 1).
pub const fn cfgi_ste(sid: u32) -> Cmd {
    [0x03 | (sid as u64) << 32, 1]
}
/// CFGI_STE_RANGE(sid, range).
pub const fn cfgi_ste_range(sid: u32, range: u8) -> Cmd {
    [0x04 | (sid as u64) << 32, range as u64 & 0x1F]
}
/// CFGI_CD(sid, ssid, leaf).
pub const fn cfgi_cd(sid: u32, ssid: u32, leaf: bool) -> Cmd {
    [
        0x05 | (ssid as u64 & 0xF_FFFF) << 12 | (sid as u64) << 32,
        leaf as u64,
    ]
}
/// CFGI_CD_ALL(sid).
pub const fn cfgi_cd_all(sid: u32) -> Cmd {
    [0x06 | (sid as u64) << 32, 0]
}
/// PREFETCH_CFG(sid).
pub const fn prefetch_cfg(sid: u32) -> Cmd {
    [0x01 | (sid as u64) << 32, 0]
}
/// TLBI_NSNH_ALL.
pub const fn tlbi_nsnh_all() -> Cmd {
    [0x30, 0]
}
/// TLBI_EL2_ALL.
pub const fn tlbi_el2_all() -> Cmd {
    [0x20, 0]
}
/// TLBI_NH_ALL(vmid).
pub const fn tlbi_nh_all(vmid: u16) -> Cmd {
    [0x10 | (vmid as u64) << 32, 0]
}
/// TLBI_NH_ASID(vmid, asid).
pub const fn tlbi_nh_asid(vmid: u16, asid: u16) -> Cmd {
    [0x11 | (vmid as u64) << 32 | (asid as u64) << 48, 0]
}
/// TLBI_S12_VMALL(vmid).
pub const fn tlbi_s12_vmall(vmid: u16) -> Cmd {
    [0x28 | (vmid as u64) << 32, 0]
}
/// A range-capable TLBI (`op` 0x12 NH_VA, 0x13 NH_VAA, 0x22 EL2_VA, 0x2A S2_IPA).
#[expect(clippy::too_many_arguments, reason = "one argument per command field")]
pub const fn tlbi_range(
    op: u8,
    vmid: u16,
    asid: u16,
    addr: u64,
    leaf: bool,
    num: u8,
    scale: u8,
    tg: u8,
    ttl: u8,
) -> Cmd {
    let w0 = op as u64
        | (num as u64 & 0x1F) << 12
        | (scale as u64 & 0x1F) << 20
        | (vmid as u64) << 32
        | (asid as u64) << 48;
    let w1 = (addr & !0xFFF) | (tg as u64 & 3) << 10 | (ttl as u64 & 3) << 8 | leaf as u64;
    [w0, w1]
}
/// TLBI_NH_VA for one address (TG = 0 form).
pub const fn tlbi_nh_va(vmid: u16, asid: u16, addr: u64, leaf: bool) -> Cmd {
    tlbi_range(0x12, vmid, asid, addr, leaf, 0, 0, 0, 0)
}
/// CMD_SYNC as Linux builds it for MSIPOLL: CS = SIG_IRQ, MSH = ISH, MSIAttr = OIWB,
/// MSIData = 0, MSIAddr = the SYNC's own slot.
pub const fn sync_msipoll(slot: u64) -> Cmd {
    [0x0FC0_1046, slot & 0x000F_FFFF_FFFF_FFFC]
}
/// CMD_SYNC as Linux builds it without MSIPOLL: CS = SIG_SEV.
pub const fn sync_sev() -> Cmd {
    [0x0FC0_2046, 0]
}
/// CMD_SYNC with CS = SIG_NONE.
pub const fn sync_none() -> Cmd {
    [0x46, 0]
}
/// ATC_INV(sid, ssid, global, addr, size).
pub const fn atc_inv(sid: u32, ssid: Option<u32>, addr: u64, size: u8) -> Cmd {
    let ss = match ssid {
        Some(s) => 1 << 11 | (s as u64 & 0xF_FFFF) << 12,
        None => 0,
    };
    [
        0x40 | ss | (sid as u64) << 32,
        (addr & !0xFFF) | (size as u64 & 0x3F),
    ]
}
/// PRI_RESP(sid, ssid, grpid, resp).
pub const fn pri_resp(sid: u32, grpid: u16, resp: u8) -> Cmd {
    [
        0x41 | (sid as u64) << 32,
        (grpid as u64 & 0x1FF) | (resp as u64 & 3) << 12,
    ]
}
/// RESUME(sid, stag, resp).
pub const fn resume(sid: u32, stag: u16, resp: u8) -> Cmd {
    [
        0x44 | (resp as u64 & 3) << 12 | (sid as u64) << 32,
        stag as u64,
    ]
}
/// STALL_TERM(sid).
pub const fn stall_term(sid: u32) -> Cmd {
    [0x45 | (sid as u64) << 32, 0]
}

/// The TLBI commands `__arm_smmu_tlb_inv_range` issues for `[iova, iova + size)` with leaf
/// granule `granule`, 4 KiB pages (`__arm_smmu_tlb_inv_range()`).
#[expect(clippy::too_many_arguments, reason = "one argument per command field")]
pub fn tlbi_range_cmds(
    op: u8,
    vmid: u16,
    asid: u16,
    mut iova: u64,
    size: u64,
    granule: u64,
    leaf: bool,
    ril: bool,
) -> Vec<Cmd> {
    let mut out = Vec::new();
    let end = iova + size;
    if !ril {
        while iova < end {
            out.push(tlbi_range(op, vmid, asid, iova, leaf, 0, 0, 0, 0));
            iova += granule;
        }
        return out;
    }
    let tg: u32 = 12;
    let mut num_pages = size >> tg;
    let ttl = if leaf {
        (4 - ((granule.trailing_zeros() - 3) / (tg - 3))) as u8
    } else {
        if num_pages & 31 == 1 {
            num_pages += 1;
        }
        0
    };
    while num_pages != 0 {
        let scale = num_pages.trailing_zeros();
        let n = (num_pages >> scale) & 31;
        out.push(tlbi_range(
            op,
            vmid,
            asid,
            iova,
            leaf,
            (n - 1) as u8,
            scale as u8,
            1,
            ttl,
        ));
        iova += n << (scale + tg);
        num_pages -= n << scale;
    }
    out
}
