//! [`GuestDriver`]: the Linux arm-smmu-v3 driver's register and memory traffic, reproduced.
//!
//! Every access follows drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c: probe reads
//! (`arm_smmu_device_hw_probe()`), structures (`arm_smmu_init_structures()`), the reset sequence
//! with its polls (`arm_smmu_device_reset()`), command batches with MSIPOLL or CONS polling
//! (`arm_smmu_cmdq_issue_cmdlist()`), STE/CD values (`arm_smmu_make_*`), the hitless
//! `arm_smmu_write_entry` algorithm, range invalidation (`__arm_smmu_tlb_inv_range()`) and the
//! GERROR / event-queue handlers (`arm_smmu_gerror_handler()`, `arm_smmu_evtq_thread()`).

use std::collections::BTreeMap;

use vm_memory::GuestMemoryBackend;

use viommu_common::mem;

use super::cmd;
use super::pgtable::IoPgtable;
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
    pub(super) strtab: u64,
    pub(super) l2: BTreeMap<u32, u64>,
    pub(super) cd_tables: BTreeMap<u32, (u64, u32)>,
    pub(super) cmdq_base: u64,
    pub(super) cmdq_prod: u32,
    pub(super) evtq_base: u64,
    pub(super) evtq_cons: u32,
    /// CMD_SYNCs issued so far.
    pub syncs: usize,
    /// Event-queue overflows the driver noticed ("EVTQ overflow detected").
    pub overflows: usize,
    /// The last STE/CD write was a breaking (V = 0) update rather than a hitless one.
    pub last_write_breaking: bool,
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
            last_write_breaking: false,
        }
    }

    /// A driver for `dev` with [`DriverOptions::default`] (structures in guest RAM `[ram_base,
    /// ram_base + ram_size)`) that has probed and reset the SMMU, as
    /// `arm_smmu_device_probe()` leaves it.
    ///
    /// # Panics
    /// When probe or reset fails (a test set-up problem).
    pub fn bring_up(dev: &'a SmmuV3<M>, mem: &'a G, ram_base: u64, ram_size: u64) -> Self {
        let mut drv = Self::new(dev, mem, ram_base, ram_size, DriverOptions::default());
        drv.probe().expect("guest driver probe");
        drv.reset().expect("guest driver reset");
        drv
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

    /// `arm_smmu_init_structures` then `arm_smmu_device_reset` (Linux arm-smmu-v3.c).
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
        self.strtab = self
            .alloc
            .alloc_zeroed(self.mem, strtab_bytes, strtab_bytes.max(64));
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
}
