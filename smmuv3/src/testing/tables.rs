//! The driver's stream-table, CD and domain operations: L2 stream tables installed without
//! CFGI, STE/CD values as `arm_smmu_make_*` builds them, the hitless `arm_smmu_write_entry`
//! algorithm, attach and unmap with range invalidation (`__arm_smmu_tlb_inv_range()`).

use vm_memory::GuestMemoryBackend;

use viommu_common::mem;

use super::cmd;
use super::driver::{DriverError, GuestDriver, S1Domain, S2Domain};
use super::entries::{cd_used, ste_used};
use super::pgtable::{IoPgtable, PgFormat, Prot, LINUX_MAIR};
use crate::device::GuestRam;
use crate::spec::cd::CdW0;
use crate::spec::ste::SteW1;

/// Which entry a hitless write targets (decides the "sync" commands).
#[derive(Debug, Clone, Copy)]
enum Entry {
    Ste(u32),
    Cd(u32, u32),
}

impl<M: GuestRam, G: GuestMemoryBackend + ?Sized> GuestDriver<'_, M, G> {
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
            LINUX_MAIR,
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
    #[expect(clippy::too_many_arguments, reason = "mirrors Linux's entry_set")]
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
    /// bits change, otherwise with a breaking V = 0 step (`arm_smmu_write_entry()`). `on_sync` runs
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
        self.last_write_breaking = diff.count_ones() > 1;
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
                self.alloc.alloc_zeroed(self.mem, bytes, bytes.max(64)),
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
            pgtable: IoPgtable::new(self.mem, &mut self.alloc, PgFormat::Stage1, 48),
        }
    }

    /// A new stage-2 domain with its own io-pgtable (ias 48, start level 0).
    pub fn new_s2_domain(&mut self, vmid: u16) -> S2Domain {
        S2Domain {
            vmid,
            pgtable: IoPgtable::new(self.mem, &mut self.alloc, PgFormat::Stage2, 48),
        }
    }

    /// Attach `sid` (a master without PASIDs) to a stage-1 domain: CD 0, then a CD-table STE
    /// with S1DSS = SSID0 (`arm_smmu_make_cdtable_ste()`).
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

    /// Attach `sid`, a `dma-can-stall` master without PASIDs, to a stage-1 domain that stalls
    /// faulting transactions: CD 0 with S = 1 (`arm_smmu_make_sva_cd()` with stall_enabled),
    /// then a CD-table STE with S1DSS = SSID0 and S1STALLD = 0.
    ///
    /// # Errors
    /// A CMD_SYNC timed out.
    pub fn attach_s1_stall(&mut self, sid: u32, dom: &S1Domain) -> Result<(), DriverError> {
        let (table, fmt, cdmax) = self.cd_table(sid, 0);
        let mut cd = self.s1_cd(dom);
        cd[0] = CdW0::from_raw(cd[0]).with_s(true).raw();
        self.write_cd_steps(sid, 0, cd, &mut || {})?;
        let mut ste = self.cdtable_ste(table, fmt, cdmax, 2);
        ste[1] = SteW1::from_raw(ste[1]).with_s1stalld(false).raw();
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

    /// Map `len` bytes of 4 KiB pages from `iova` to `pa` in a stage-1 domain, page tables from
    /// the driver's allocator (a fresh mapping needs no invalidation, as in Linux).
    pub fn map_s1(&mut self, dom: &S1Domain, iova: u64, pa: u64, len: u64, prot: Prot) {
        dom.pgtable
            .map_pages(self.mem, &mut self.alloc, iova, pa, len, prot);
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
