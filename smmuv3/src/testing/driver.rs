//! [`GuestDriver`]: the Linux arm-smmu-v3 driver's register and memory traffic, reproduced.
//!
//! Every access follows linux-driver.md: probe reads (§2), structures (§3), the reset sequence
//! with its polls (§4, §5), command batches with MSIPOLL or CONS polling (§6), STE/CD values
//! (§7), the hitless `arm_smmu_write_entry` algorithm (§8), range invalidation (§10) and the
//! GERROR / event-queue handlers (§6, §14).

use std::collections::BTreeMap;

use vm_memory::GuestMemoryBackend;

use viommu_common::mem;

use super::pgtable::{IoPgtable, Stage, MAIR};
use super::Alloc;
use crate::device::{GuestRam, SmmuV3};
use crate::spec::regs as r;
use viommu_common::traits::MmioDevice;

/// How many times a poll re-reads before the driver gives up (Linux: 1 s of 1 µs delays).
const POLL_LIMIT: usize = 1000;

/// A driver-visible failure (what Linux would log before failing probe or timing out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Probe refused the SMMU (the Linux message).
    #[error("probe failed: {0}")]
    Probe(&'static str),
    /// A poll never saw the expected value.
    #[error("timeout polling {what}: last value {last:#x}")]
    Timeout {
        /// What was polled.
        what: &'static str,
        /// Last value read.
        last: u64,
    },
    /// An MMIO access was refused by the device.
    #[error("MMIO access refused at {0:#x}")]
    Mmio(u64),
}

/// Options a guest kernel's configuration would decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverOptions {
    /// Firmware says the SMMU is DMA-coherent (enables MSIPOLL with IDR0.MSI).
    pub coherent: bool,
    /// Use MSIs for the event queue and GERROR (with IDR0.MSI): doorbell address.
    pub msi_doorbell: Option<u64>,
    /// MSI data for the event queue.
    pub evtq_msi_data: u32,
    /// MSI data for GERROR.
    pub gerror_msi_data: u32,
    /// Cap on log2 of the command queue size (Linux: CMDQ_MAX_SZ_SHIFT, 18 on 4K pages).
    pub cmdq_max_log2: u8,
    /// Cap on log2 of the event queue size (Linux: 17 on 4K pages).
    pub evtq_max_log2: u8,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            coherent: true,
            msi_doorbell: Some(0x0800_0040),
            evtq_msi_data: 0x21,
            gerror_msi_data: 0x22,
            cmdq_max_log2: 18,
            evtq_max_log2: 17,
        }
    }
}

/// What `arm_smmu_device_hw_probe` learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeInfo {
    /// Raw IDR0.
    pub idr0: u32,
    /// Raw IDR1.
    pub idr1: u32,
    /// Raw IDR3.
    pub idr3: u32,
    /// Raw IDR5.
    pub idr5: u32,
    /// Raw IIDR.
    pub iidr: u32,
    /// Two-level stream table chosen.
    pub two_level: bool,
    /// MSIs (IDR0.MSI).
    pub msi: bool,
    /// MSIPOLL chosen (MSI + firmware coherency).
    pub msipoll: bool,
    /// Range invalidation (IDR3.RIL).
    pub ril: bool,
    /// HYP.
    pub hyp: bool,
    /// PRI.
    pub pri: bool,
    /// ATS.
    pub ats: bool,
    /// CD2L.
    pub cd2l: bool,
    /// Stalls possible (STALL_MODEL 0 or 2).
    pub stalls: bool,
    /// ATTR_TYPES_OVR.
    pub attr_types_ovr: bool,
    /// StreamID bits.
    pub sid_bits: u32,
    /// SubstreamID bits.
    pub ssid_bits: u32,
    /// Command queue log2 size chosen.
    pub cmdq_log2: u32,
    /// Event queue log2 size chosen.
    pub evtq_log2: u32,
    /// Output address size (bits).
    pub oas: u32,
    /// IPS/PS code of the SMMU's ias.
    pub ips: u64,
}

/// A stage-1 paging domain: an ASID and its io-pgtable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S1Domain {
    /// ASID.
    pub asid: u16,
    /// The page table (TTB0).
    pub pgtable: IoPgtable,
}

/// A stage-2 paging domain: a VMID and its io-pgtable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2Domain {
    /// VMID.
    pub vmid: u16,
    /// The page table (S2TTB).
    pub pgtable: IoPgtable,
}

/// Raw command encoders, with the values the Linux driver writes (linux-driver.md §7.4).
pub mod cmd {
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
    #[allow(clippy::too_many_arguments)]
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
    /// granule `granule`, 4 KiB pages (linux-driver.md §10).
    #[allow(clippy::too_many_arguments)]
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
}

/// Which entry a hitless write targets (decides the "sync" commands).
#[derive(Debug, Clone, Copy)]
enum Entry {
    Ste(u32),
    Cd(u32, u32),
}

/// The used-bits masks of an STE (`arm_smmu_get_ste_used`, linux-driver.md §8.2).
pub fn ste_used(w: &[u64; 8]) -> [u64; 8] {
    let mut u = [0u64; 8];
    u[0] = 1;
    if w[0] & 1 == 0 {
        return u;
    }
    u[0] |= 0xE;
    let cfg = (w[0] >> 1) & 7;
    const SHCFG: u64 = 3 << 44;
    if cfg & 1 != 0 {
        u[0] |= 0x30 | 0x000F_FFFF_FFFF_FFC0 | 0xF800_0000_0000_0000;
        u[1] |= 0x3 | 0xC | 0x30 | 0xC0 | 1 << 27 | 3 << 30 | 3 << 28 | 1 << 19;
        u[2] |= 0xFFFF;
        if w[1] & 3 == 1 {
            u[1] |= SHCFG;
        }
    }
    if cfg & 2 != 0 {
        u[1] |= 3 << 28 | SHCFG | 1 << 25 | 1 << 19;
        u[2] |= 0xFFFF | 0x0007_FFFF_0000_0000 | 1 << 51 | 1 << 52 | 1 << 54 | 1 << 57 | 1 << 58;
        u[3] |= 0x000F_FFFF_FFFF_FFF0;
    }
    if cfg == 4 {
        u[1] |= SHCFG;
    }
    u
}

/// The used-bits masks of a CD (`arm_smmu_get_cd_used`).
pub fn cd_used(w: &[u64; 8]) -> [u64; 8] {
    const V: u64 = 1 << 31;
    if w[0] & V == 0 {
        return [V, 0, 0, 0, 0, 0, 0, 0];
    }
    let mut u = [u64::MAX; 8];
    if w[0] & (1 << 14) != 0 {
        u[0] &= !0x3FFF; // T0SZ, TG0, IRGN0, ORGN0, SH0
        u[1] &= !0x000F_FFFF_FFFF_FFF0; // TTB0
    }
    u
}

/// The Linux arm-smmu-v3 driver, acting on one SMMU through MMIO and guest memory.
pub struct GuestDriver<'a, M: GuestRam, G: GuestMemoryBackend + ?Sized> {
    /// The device.
    pub dev: &'a SmmuV3<M>,
    /// Guest memory (as the guest CPU sees it).
    pub mem: &'a G,
    /// The guest kernel's DMA allocator.
    pub alloc: Alloc,
    /// Options.
    pub opts: DriverOptions,
    /// Probe results.
    pub info: ProbeInfo,
    strtab: u64,
    l2: BTreeMap<u32, u64>,
    cd_tables: BTreeMap<u32, (u64, u32)>,
    cmdq_base: u64,
    cmdq_prod: u32,
    evtq_base: u64,
    evtq_cons: u32,
    /// CMD_SYNCs issued so far.
    pub syncs: usize,
    /// Event-queue overflows the driver noticed ("EVTQ overflow detected").
    pub overflows: usize,
}

impl<'a, M: GuestRam, G: GuestMemoryBackend + ?Sized> GuestDriver<'a, M, G> {
    /// A driver for `dev`, allocating its structures from guest RAM `[ram_base, ram_base +
    /// ram_size)`.
    pub fn new(
        dev: &'a SmmuV3<M>,
        mem: &'a G,
        ram_base: u64,
        ram_size: u64,
        opts: DriverOptions,
    ) -> Self {
        Self {
            dev,
            mem,
            alloc: Alloc::new(ram_base, ram_size),
            opts,
            info: ProbeInfo::default(),
            strtab: 0,
            l2: BTreeMap::new(),
            cd_tables: BTreeMap::new(),
            cmdq_base: 0,
            cmdq_prod: 0,
            evtq_base: 0,
            evtq_cons: 0,
            syncs: 0,
            overflows: 0,
        }
    }

    // ------------------------------------------------------------------ MMIO primitives

    /// `readl` at `off`.
    pub fn read32(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        let _ = self.dev.mmio_read(off, &mut b);
        u32::from_le_bytes(b)
    }

    /// `writel` at `off`.
    pub fn write32(&self, off: u64, v: u32) {
        let _ = self.dev.mmio_write(off, &v.to_le_bytes());
    }

    /// `writeq` at `off`.
    pub fn write64(&self, off: u64, v: u64) {
        let _ = self.dev.mmio_write(off, &v.to_le_bytes());
    }

    /// `readl_relaxed_poll_timeout(off, v == want)`.
    fn poll_eq(&self, off: u64, want: u32, what: &'static str) -> Result<(), DriverError> {
        let mut last = 0;
        for _ in 0..POLL_LIMIT {
            last = self.read32(off);
            if last == want {
                return Ok(());
            }
        }
        Err(DriverError::Timeout {
            what,
            last: u64::from(last),
        })
    }

    /// `arm_smmu_write_reg_sync`: write and poll the ACK register for equality.
    fn write_sync(
        &self,
        off: u64,
        ack: u64,
        v: u32,
        what: &'static str,
    ) -> Result<(), DriverError> {
        self.write32(off, v);
        self.poll_eq(ack, v, what)
    }

    // ------------------------------------------------------------------ probe

    /// `arm_smmu_device_hw_probe`: read IDR0, IDR1, IDR3, IDR5, IIDR and decide features.
    ///
    /// # Errors
    /// The conditions under which Linux fails probe.
    pub fn probe(&mut self) -> Result<ProbeInfo, DriverError> {
        let idr0 = self.read32(r::IDR0);
        let idr1 = self.read32(r::IDR1);
        let idr3 = self.read32(r::IDR3);
        let idr5 = self.read32(r::IDR5);
        let iidr = self.read32(r::IIDR);
        let bit = |v: u32, b: u32| v >> b & 1 == 1;
        let field = |v: u32, lo: u32, n: u32| (v >> lo) & ((1 << n) - 1);
        if !matches!(field(idr0, 21, 2), 0 | 2) {
            return Err(DriverError::Probe("unknown/unsupported TT endianness!"));
        }
        if !bit(idr0, 0) && !bit(idr0, 1) {
            return Err(DriverError::Probe("no translation support!"));
        }
        if !matches!(field(idr0, 2, 2), 2 | 3) {
            return Err(DriverError::Probe("AArch64 table format not supported!"));
        }
        if idr1 & (7 << 28) != 0 {
            return Err(DriverError::Probe("embedded implementation not supported"));
        }
        let cmdqs = field(idr1, 21, 5);
        if cmdqs < 7 {
            return Err(DriverError::Probe("command queue size too small"));
        }
        let sid_bits = field(idr1, 0, 6);
        let oas = match field(idr5, 0, 3) {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            6 => 52,
            _ => 48,
        };
        let ips = match oas {
            32 => 0,
            36 => 1,
            40 => 2,
            42 => 3,
            44 => 4,
            52 => 6,
            _ => 5,
        };
        let msi = bit(idr0, 13);
        let cd2l = bit(idr0, 19);
        self.info = ProbeInfo {
            idr0,
            idr1,
            idr3,
            idr5,
            iidr,
            two_level: field(idr0, 27, 2) == 1 && sid_bits > 8,
            msi,
            msipoll: msi && self.opts.coherent,
            ril: bit(idr3, 10),
            hyp: bit(idr0, 9),
            pri: bit(idr0, 16),
            ats: bit(idr0, 10),
            cd2l,
            stalls: matches!(field(idr0, 24, 2), 0 | 2),
            attr_types_ovr: bit(idr1, 27),
            sid_bits,
            ssid_bits: field(idr1, 6, 5),
            cmdq_log2: cmdqs.min(u32::from(self.opts.cmdq_max_log2)),
            evtq_log2: field(idr1, 16, 5).min(u32::from(self.opts.evtq_max_log2)),
            oas,
            ips,
        };
        Ok(self.info)
    }

    // ------------------------------------------------------------------ structures + reset

    /// `arm_smmu_init_structures` then `arm_smmu_device_reset` (linux-driver.md §3, §4).
    ///
    /// # Errors
    /// A poll timed out (Linux fails probe or warns).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        let info = self.info;
        // Queues (naturally aligned) and the stream table, filled with abort STEs.
        let cmdq_bytes = 16u64 << info.cmdq_log2;
        self.cmdq_base = self.alloc.alloc(cmdq_bytes, cmdq_bytes.max(32));
        self.cmdq_prod = 0;
        let evtq_bytes = 32u64 << info.evtq_log2;
        self.evtq_base = self.alloc.alloc(evtq_bytes, evtq_bytes.max(32));
        self.evtq_cons = 0;
        let (strtab_cfg, strtab_bytes) = if info.two_level {
            let l1_bits = (info.sid_bits - 8).min(17);
            (1 << 16 | 8 << 6 | (l1_bits + 8), 8u64 << l1_bits)
        } else {
            (info.sid_bits, 64u64 << info.sid_bits)
        };
        self.strtab =
            self.alloc
                .alloc_zeroed(self.mem, strtab_bytes, 64.max(strtab_bytes.min(4096)));
        if !info.two_level {
            for sid in 0..(1u64 << info.sid_bits) {
                let _ = mem::write_u64_le(self.mem, self.strtab + 64 * sid, 1);
            }
        }

        // 1. If enabled, abort via GBPA first.
        if self.read32(r::CR0) & 1 != 0 {
            self.poll_eq_mask(r::GBPA, 1 << 31, 0, "GBPA")?;
            let g = self.read32(r::GBPA);
            self.write32(r::GBPA, g | 1 << 20 | 1 << 31);
            self.poll_eq_mask(r::GBPA, 1 << 31, 0, "GBPA")?;
        }
        // 2. CR0 = 0.
        self.write_sync(r::CR0, r::CR0ACK, 0, "CR0ACK")?;
        // 3, 4. CR1, CR2.
        self.write32(r::CR1, 0x0000_0D75);
        self.write32(r::CR2, 0x6);
        // 5, 6. Stream table.
        self.write64(r::STRTAB_BASE, 1 << 62 | self.strtab);
        self.write32(r::STRTAB_BASE_CFG, strtab_cfg);
        // 7. Command queue.
        self.write64(
            r::CMDQ_BASE,
            1 << 62 | self.cmdq_base | u64::from(info.cmdq_log2),
        );
        self.write32(r::CMDQ_PROD, 0);
        self.write32(r::CMDQ_CONS, 0);
        // 8. CMDQEN.
        let mut enables = 0x8;
        self.write_sync(r::CR0, r::CR0ACK, enables, "CR0ACK")?;
        // 9. Invalidate cached configuration and TLBs.
        self.issue_sync(&[cmd::cfgi_all()])?;
        if info.hyp {
            self.issue_sync(&[cmd::tlbi_el2_all()])?;
        }
        self.issue_sync(&[cmd::tlbi_nsnh_all()])?;
        // 10, 11. Event queue.
        self.write64(
            r::EVENTQ_BASE,
            1 << 62 | self.evtq_base | u64::from(info.evtq_log2),
        );
        self.write32(r::EVENTQ_PROD_P1, 0);
        self.write32(r::EVENTQ_CONS_P1, 0);
        enables |= 0x4;
        self.write_sync(r::CR0, r::CR0ACK, enables, "CR0ACK")?;
        // 12. PRI queue.
        if info.pri {
            let priq = self.alloc.alloc(16 << 8, 16 << 8);
            self.write64(r::PRIQ_BASE, 1 << 62 | priq | 8);
            self.write32(r::PRIQ_PROD_P1, 0);
            self.write32(r::PRIQ_CONS_P1, 0);
            enables |= 0x2;
            self.write_sync(r::CR0, r::CR0ACK, enables, "CR0ACK")?;
        }
        // 13. ATS checking.
        if info.ats {
            enables |= 0x10;
            self.write_sync(r::CR0, r::CR0ACK, enables, "CR0ACK")?;
        }
        // 14. Interrupts.
        self.write_sync(r::IRQ_CTRL, r::IRQ_CTRLACK, 0, "IRQ_CTRLACK")?;
        if info.msi {
            self.write64(r::GERROR_IRQ_CFG0, 0);
            self.write64(r::EVENTQ_IRQ_CFG0, 0);
            if info.pri {
                self.write64(r::PRIQ_IRQ_CFG0, 0);
            }
            if let Some(db) = self.opts.msi_doorbell {
                // arm_smmu_write_msi_msg for evtq and gerror.
                self.write64(r::EVENTQ_IRQ_CFG0, db & 0x000F_FFFF_FFFF_FFFC);
                self.write32(r::EVENTQ_IRQ_CFG1, self.opts.evtq_msi_data);
                self.write32(r::EVENTQ_IRQ_CFG2, 0x1);
                self.write64(r::GERROR_IRQ_CFG0, db & 0x000F_FFFF_FFFF_FFFC);
                self.write32(r::GERROR_IRQ_CFG1, self.opts.gerror_msi_data);
                self.write32(r::GERROR_IRQ_CFG2, 0x1);
            }
        }
        let irqen = if info.pri { 0x7 } else { 0x5 };
        self.write_sync(r::IRQ_CTRL, r::IRQ_CTRLACK, irqen, "IRQ_CTRLACK")?;
        // 16. Enable translation.
        enables |= 0x1;
        self.write_sync(r::CR0, r::CR0ACK, enables, "CR0ACK")?;
        Ok(())
    }

    fn poll_eq_mask(
        &self,
        off: u64,
        mask: u32,
        want: u32,
        what: &'static str,
    ) -> Result<(), DriverError> {
        let mut last = 0;
        for _ in 0..POLL_LIMIT {
            last = self.read32(off);
            if last & mask == want {
                return Ok(());
            }
        }
        Err(DriverError::Timeout {
            what,
            last: u64::from(last),
        })
    }

    /// `arm_smmu_device_disable`: CR0 = 0 and poll.
    ///
    /// # Errors
    /// CR0ACK never read 0.
    pub fn disable(&mut self) -> Result<(), DriverError> {
        self.write_sync(r::CR0, r::CR0ACK, 0, "CR0ACK")
    }

    // ------------------------------------------------------------------ command queue

    fn cmdq_mask(&self) -> u32 {
        (2 << self.info.cmdq_log2) - 1
    }

    fn cmdq_slot(&self, pos: u32) -> u64 {
        self.cmdq_base + 16 * u64::from(pos & ((1 << self.info.cmdq_log2) - 1))
    }

    /// Write commands at PROD (waiting for space by reading CONS) and publish PROD once.
    /// Returns the queue position after the last command.
    pub fn issue(&mut self, cmds: &[cmd::Cmd]) -> Result<u32, DriverError> {
        let size = 1u32 << self.info.cmdq_log2;
        for c in cmds {
            // Wait for space: used = prod - cons must stay below the size.
            let mut tries = 0;
            loop {
                let cons = self.read32(r::CMDQ_CONS) & self.cmdq_mask();
                let used = self.cmdq_prod.wrapping_sub(cons) & self.cmdq_mask();
                if used < size {
                    break;
                }
                // Publish what we have so the SMMU can make room.
                self.write32(r::CMDQ_PROD, self.cmdq_prod);
                self.dev.process_pending();
                self.handle_gerror();
                tries += 1;
                if tries > POLL_LIMIT {
                    return Err(DriverError::Timeout {
                        what: "CMDQ space",
                        last: u64::from(cons),
                    });
                }
            }
            let slot = self.cmdq_slot(self.cmdq_prod);
            let _ = mem::write_u64_le(self.mem, slot, c[0]);
            let _ = mem::write_u64_le(self.mem, slot + 8, c[1]);
            self.cmdq_prod = (self.cmdq_prod + 1) & self.cmdq_mask();
        }
        self.write32(r::CMDQ_PROD, self.cmdq_prod);
        Ok(self.cmdq_prod)
    }

    /// Issue `cmds` followed by a CMD_SYNC and wait for its completion (MSIPOLL: the slot's
    /// first word becomes 0; otherwise CONS passes the SYNC). A GERROR seen while waiting is
    /// handled as the driver's IRQ thread would.
    ///
    /// # Errors
    /// The SYNC never completed ("CMD_SYNC timeout").
    pub fn issue_sync(&mut self, cmds: &[cmd::Cmd]) -> Result<(), DriverError> {
        let mut all = cmds.to_vec();
        let sync_pos = (self.cmdq_prod + cmds.len() as u32) & self.cmdq_mask();
        let slot = self.cmdq_slot(sync_pos);
        all.push(if self.info.msipoll {
            cmd::sync_msipoll(slot)
        } else {
            cmd::sync_sev()
        });
        self.syncs += 1;
        self.issue(&all)?;
        self.wait_sync(sync_pos, slot)
    }

    fn wait_sync(&mut self, sync_pos: u32, slot: u64) -> Result<(), DriverError> {
        let mut last = 0;
        for i in 0..POLL_LIMIT {
            if self.info.msipoll {
                last = u64::from(mem::read_u32_le(self.mem, slot).unwrap_or(1));
                if last == 0 {
                    return Ok(());
                }
                // A VMM worker keeps the queue moving.
                self.dev.process_pending();
            } else {
                let cons = self.read32(r::CMDQ_CONS);
                last = u64::from(cons);
                if self.consumed(cons, sync_pos) {
                    return Ok(());
                }
            }
            if i % 4 == 3 {
                self.handle_gerror();
            }
        }
        Err(DriverError::Timeout {
            what: "CMD_SYNC",
            last,
        })
    }

    /// `queue_consumed`: CONS has moved past position `pos`.
    fn consumed(&self, cons: u32, pos: u32) -> bool {
        let n = self.info.cmdq_log2;
        let (ci, cw) = (cons & ((1 << n) - 1), cons >> n & 1);
        let (pi, pw) = (pos & ((1 << n) - 1), pos >> n & 1);
        (cw == pw && ci > pi) || (cw != pw && ci <= pi)
    }

    /// The GERROR interrupt handler (`arm_smmu_gerror_handler`): CMDQ_ERR recovery
    /// (`__arm_smmu_cmdq_skip_err`) and the GERRORN acknowledge. Returns the active errors.
    pub fn handle_gerror(&mut self) -> u32 {
        let gerror = self.read32(r::GERROR);
        let gerrorn = self.read32(r::GERRORN);
        let active = (gerror ^ gerrorn) & 0x1FD;
        if active == 0 {
            return 0;
        }
        if active & 1 != 0 {
            let cons = self.read32(r::CMDQ_CONS);
            let err = cons >> 24 & 0x7F;
            if err == 1 {
                // CERROR_ILL: convert the illegal command into a CMD_SYNC in place.
                let slot = self.cmdq_slot(cons & self.cmdq_mask());
                let s = cmd::sync_sev();
                let _ = mem::write_u64_le(self.mem, slot, s[0]);
                let _ = mem::write_u64_le(self.mem, slot + 8, s[1]);
            }
        }
        self.write32(r::GERRORN, gerror);
        active
    }

    // ------------------------------------------------------------------ events

    /// The event-queue thread (`arm_smmu_evtq_thread`): read PROD, consume records, write
    /// CONS with the overflow flag copied from PROD.
    pub fn read_events(&mut self) -> Vec<[u64; 4]> {
        let n = self.info.evtq_log2;
        let mask = (2u32 << n) - 1;
        let prod = self.read32(r::EVENTQ_PROD_P1);
        if (prod ^ self.evtq_cons) & (1 << 31) != 0 {
            self.overflows += 1;
        }
        let mut out = Vec::new();
        let mut cons = self.evtq_cons & mask;
        while cons != prod & mask && out.len() <= (1 << n) {
            let a = self.evtq_base + 32 * u64::from(cons & ((1 << n) - 1));
            let mut rec = [0u64; 4];
            for (i, w) in rec.iter_mut().enumerate() {
                *w = mem::read_u64_le(self.mem, a + 8 * i as u64).unwrap_or(0);
            }
            out.push(rec);
            cons = (cons + 1) & mask;
        }
        self.evtq_cons = cons | (prod & (1 << 31));
        self.write32(r::EVENTQ_CONS_P1, self.evtq_cons);
        out
    }

    // ------------------------------------------------------------------ STEs and CDs

    /// Address of `sid`'s STE, installing its level-2 table first if needed
    /// (`arm_smmu_init_l2_strtab`: 256 abort STEs, L1 descriptor Span 9, **no CFGI**).
    pub fn ste_addr(&mut self, sid: u32) -> u64 {
        if !self.info.two_level {
            return self.strtab + 64 * u64::from(sid);
        }
        let l1 = sid >> 8;
        let l2 = match self.l2.get(&l1) {
            Some(a) => *a,
            None => {
                let a = self.alloc.alloc_zeroed(self.mem, 256 * 64, 256 * 64);
                for i in 0..256u64 {
                    let _ = mem::write_u64_le(self.mem, a + 64 * i, 1);
                }
                let _ = mem::write_u64_le(self.mem, self.strtab + 8 * u64::from(l1), a | 9);
                self.l2.insert(l1, a);
                a
            }
        };
        l2 + 64 * u64::from(sid & 0xFF)
    }

    /// The abort STE.
    pub fn abort_ste(&self) -> [u64; 8] {
        [1, 0, 0, 0, 0, 0, 0, 0]
    }

    /// The bypass STE (`arm_smmu_make_bypass_ste`).
    pub fn bypass_ste(&self) -> [u64; 8] {
        let w1 = if self.info.attr_types_ovr { 1 << 44 } else { 0 };
        [0x9, w1, 0, 0, 0, 0, 0, 0]
    }

    /// A CD-table STE (`arm_smmu_make_cdtable_ste`): `s1fmt` 0 linear / 2 64K leaves,
    /// `s1dss` 0 terminate / 1 bypass / 2 SSID0.
    pub fn cdtable_ste(&self, cdtab: u64, s1fmt: u64, s1cdmax: u64, s1dss: u64) -> [u64; 8] {
        let w0 = 1 | 5 << 1 | s1fmt << 4 | (cdtab & 0x000F_FFFF_FFFF_FFC0) | (s1cdmax & 0x1F) << 59;
        let mut w1 = s1dss | 0xD4;
        if self.info.stalls {
            w1 |= 1 << 27; // S1STALLD: this master cannot stall
        }
        if s1dss == 1 && self.info.attr_types_ovr {
            w1 |= 1 << 44;
        }
        [w0, w1, 0, 0, 0, 0, 0, 0]
    }

    /// An S2 STE (`arm_smmu_make_s2_domain_ste`).
    pub fn s2_ste(&self, dom: &S2Domain) -> [u64; 8] {
        let w1 = if self.info.attr_types_ovr { 1 << 44 } else { 0 };
        let w2 = u64::from(dom.vmid)
            | dom.pgtable.vtcr() << 32
            | 1 << 51 // S2AA64
            | 1 << 54 // S2PTW
            | 1 << 58; // S2R
        [
            0xD,
            w1,
            w2,
            dom.pgtable.root & 0x000F_FFFF_FFFF_FFF0,
            0,
            0,
            0,
            0,
        ]
    }

    /// A stage-1 CD (`arm_smmu_make_s1_cd`), coherent walks, 4K granule.
    pub fn s1_cd(&self, dom: &S1Domain) -> [u64; 8] {
        let w0 = dom.pgtable.tsz()
            | 1 << 8
            | 1 << 10
            | 3 << 12
            | 1 << 30
            | 1 << 31
            | self.info.ips << 32
            | 1 << 41
            | 1 << 45
            | 1 << 46
            | 1 << 47
            | u64::from(dom.asid) << 48;
        [
            w0,
            dom.pgtable.root & 0x000F_FFFF_FFFF_FFF0,
            0,
            MAIR,
            0,
            0,
            0,
            0,
        ]
    }

    fn read_entry(&self, addr: u64) -> [u64; 8] {
        let mut w = [0u64; 8];
        for (i, x) in w.iter_mut().enumerate() {
            *x = mem::read_u64_le(self.mem, addr + 8 * i as u64).unwrap_or(0);
        }
        w
    }

    fn entry_sync(&mut self, e: Entry) -> Result<(), DriverError> {
        match e {
            Entry::Ste(sid) => self.issue_sync(&[cmd::cfgi_ste(sid)]),
            Entry::Cd(sid, ssid) => self.issue_sync(&[cmd::cfgi_cd(sid, ssid, true)]),
        }
    }

    /// `entry_set`: write qwords `[start, start + len)` that differ; sync if any did.
    fn entry_set(
        &mut self,
        e: Entry,
        addr: u64,
        cur: &mut [u64; 8],
        target: &[u64; 8],
        start: usize,
        len: usize,
        on_sync: &mut dyn FnMut(),
    ) -> Result<bool, DriverError> {
        let mut changed = false;
        for i in start..start + len {
            if cur[i] != target[i] {
                cur[i] = target[i];
                let _ = mem::write_u64_le(self.mem, addr + 8 * i as u64, target[i]);
                changed = true;
            }
        }
        if changed {
            self.entry_sync(e)?;
            on_sync();
        }
        Ok(changed)
    }

    /// `arm_smmu_write_entry`: update an STE/CD in place, hitlessly when only one qword's used
    /// bits change, otherwise with a breaking V = 0 step (linux-driver.md §8.1). `on_sync` runs
    /// after every CFGI + CMD_SYNC. Returns the number of syncs.
    fn write_entry(
        &mut self,
        e: Entry,
        addr: u64,
        target: [u64; 8],
        used: fn(&[u64; 8]) -> [u64; 8],
        on_sync: &mut dyn FnMut(),
    ) -> Result<usize, DriverError> {
        let before = self.syncs;
        let mut cur = self.read_entry(addr);
        let cur_used = used(&cur);
        let target_used = used(&target);
        let mut unused_update = [0u64; 8];
        let mut diff = 0u8;
        for i in 0..8 {
            unused_update[i] = (cur[i] & cur_used[i]) | (target[i] & !cur_used[i]);
            if unused_update[i] & target_used[i] != target[i] {
                diff |= 1 << i;
            }
        }
        if diff.count_ones() == 1 {
            let crit = diff.trailing_zeros() as usize;
            unused_update[crit] = cur[crit];
            self.entry_set(e, addr, &mut cur, &unused_update, 0, 8, on_sync)?;
            self.entry_set(e, addr, &mut cur, &target, crit, 1, on_sync)?;
            self.entry_set(e, addr, &mut cur, &target, 0, 8, on_sync)?;
        } else if diff != 0 {
            unused_update[0] = 0;
            self.entry_set(e, addr, &mut cur, &unused_update, 0, 1, on_sync)?;
            self.entry_set(e, addr, &mut cur, &target, 1, 7, on_sync)?;
            self.entry_set(e, addr, &mut cur, &target, 0, 1, on_sync)?;
        } else {
            self.entry_set(e, addr, &mut cur, &target, 0, 8, on_sync)?;
        }
        Ok(self.syncs - before)
    }

    /// Install `target` as `sid`'s STE the way the driver does, calling `on_sync` after each
    /// step's CFGI_STE + CMD_SYNC; PREFETCH_CFG follows (no SYNC). Returns the number of syncs.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn write_ste_steps(
        &mut self,
        sid: u32,
        target: [u64; 8],
        on_sync: &mut dyn FnMut(),
    ) -> Result<usize, DriverError> {
        let addr = self.ste_addr(sid);
        let n = self.write_entry(Entry::Ste(sid), addr, target, ste_used, on_sync)?;
        self.issue(&[cmd::prefetch_cfg(sid)])?;
        Ok(n)
    }

    /// [`GuestDriver::write_ste_steps`] without a per-step hook.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn write_ste(&mut self, sid: u32, target: [u64; 8]) -> Result<usize, DriverError> {
        self.write_ste_steps(sid, target, &mut || {})
    }

    /// `sid`'s CD table: allocate (linear, 2^ssid_bits CDs; two-level with 64K leaves when
    /// CD2L and more than 1024 CDs) on first use. Returns (table, S1Fmt, S1CDMax).
    pub fn cd_table(&mut self, sid: u32, ssid_bits: u32) -> (u64, u64, u64) {
        let two_level = self.info.cd2l && ssid_bits > 10;
        let bits = if self.info.cd2l {
            ssid_bits
        } else {
            ssid_bits.min(10)
        };
        let (addr, _) = *self.cd_tables.entry(sid).or_insert_with(|| {
            let bytes = if two_level {
                8u64 << (bits - 10)
            } else {
                64u64 << bits
            };
            (
                self.alloc
                    .alloc_zeroed(self.mem, bytes, 64.max(bytes.min(4096))),
                bits,
            )
        });
        (addr, if two_level { 2 } else { 0 }, u64::from(bits))
    }

    /// Address of CD `ssid` in `sid`'s table, installing a 64K leaf (L1 CD descriptor, then
    /// CFGI_CD leaf 0 + SYNC) for two-level tables.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn cd_addr(&mut self, sid: u32, ssid: u32) -> Result<u64, DriverError> {
        let (table, fmt, _) = match self.cd_tables.get(&sid) {
            Some(&(a, bits)) => (a, if self.info.cd2l && bits > 10 { 2 } else { 0 }, bits),
            None => return Ok(0),
        };
        if fmt == 0 {
            return Ok(table + 64 * u64::from(ssid));
        }
        let l1 = table + 8 * u64::from(ssid >> 10);
        let d = mem::read_u64_le(self.mem, l1).unwrap_or(0);
        let leaf = if d & 1 == 1 {
            d & 0x000F_FFFF_FFFF_F000
        } else {
            let a = self.alloc.alloc_zeroed(self.mem, 64 << 10, 64 << 10);
            let _ = mem::write_u64_le(self.mem, l1, a | 1);
            self.issue_sync(&[cmd::cfgi_cd(sid, ssid, false)])?;
            a
        };
        Ok(leaf + 64 * u64::from(ssid & 1023))
    }

    /// Write CD `ssid` of `sid` the way the driver does (hitless algorithm, CFGI_CD + SYNC per
    /// step). Returns the number of syncs.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn write_cd_steps(
        &mut self,
        sid: u32,
        ssid: u32,
        target: [u64; 8],
        on_sync: &mut dyn FnMut(),
    ) -> Result<usize, DriverError> {
        let addr = self.cd_addr(sid, ssid)?;
        self.write_entry(Entry::Cd(sid, ssid), addr, target, cd_used, on_sync)
    }

    /// A new stage-1 domain with its own io-pgtable (ias 48).
    pub fn new_s1_domain(&mut self, asid: u16) -> S1Domain {
        S1Domain {
            asid,
            pgtable: IoPgtable::new(self.mem, &mut self.alloc, Stage::S1, 48),
        }
    }

    /// A new stage-2 domain with its own io-pgtable (ias 48, start level 0).
    pub fn new_s2_domain(&mut self, vmid: u16) -> S2Domain {
        S2Domain {
            vmid,
            pgtable: IoPgtable::new(self.mem, &mut self.alloc, Stage::S2, 48),
        }
    }

    /// Attach `sid` (a master without PASIDs) to a stage-1 domain: CD 0, then a CD-table STE
    /// with S1DSS = SSID0 (linux-driver.md §11).
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn attach_s1(&mut self, sid: u32, dom: &S1Domain) -> Result<(), DriverError> {
        self.attach_s1_pasid(sid, dom, 0)
    }

    /// Attach `sid` with a CD table of 2^`ssid_bits` entries (a PASID-capable master) to a
    /// stage-1 domain on substream 0.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn attach_s1_pasid(
        &mut self,
        sid: u32,
        dom: &S1Domain,
        ssid_bits: u32,
    ) -> Result<(), DriverError> {
        let (table, fmt, cdmax) = self.cd_table(sid, ssid_bits);
        let cd = self.s1_cd(dom);
        self.write_cd_steps(sid, 0, cd, &mut || {})?;
        let ste = self.cdtable_ste(table, fmt, cdmax, 2);
        self.write_ste(sid, ste)?;
        Ok(())
    }

    /// Attach `sid` to a stage-2 domain.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn attach_s2(&mut self, sid: u32, dom: &S2Domain) -> Result<(), DriverError> {
        let ste = self.s2_ste(dom);
        self.write_ste(sid, ste).map(|_| ())
    }

    /// Unmap `[iova, iova + size)` of 4 KiB pages from a stage-1 domain and invalidate as
    /// `arm_smmu_tlb_inv_range_asid` does (TLBI_NH_VA ranges, then CMD_SYNC).
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn unmap_s1(&mut self, dom: &S1Domain, iova: u64, size: u64) -> Result<(), DriverError> {
        let mut off = 0;
        let mut granule = 0x1000;
        while off < size {
            let n = dom.pgtable.unmap(self.mem, iova + off);
            if n == 0 {
                off += 0x1000;
            } else {
                granule = n;
                off += n;
            }
        }
        let cmds =
            cmd::tlbi_range_cmds(0x12, 0, dom.asid, iova, size, granule, true, self.info.ril);
        self.issue_sync(&cmds)
    }
}
