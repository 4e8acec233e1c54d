//! Binding model (b): per-PASID guest stage-1 page tables bound through a CD table the VMM owns.
//!
//! For guests and VMMs that keep PASID management on the host side (virtio-iommu style), the VMM
//! composes the CD table itself in memory that is mapped in the IOAS, points the endpoint's nested
//! STE at it ([`PasidBinder::ste`]), and for every bind writes one CD holding the guest's TTB0/TCR/
//! MAIR under a host-chosen PASID and ASID. The returned commands (CFGI_CD, TLBI_NH_ASID) must be
//! forwarded with [`HostViommu::invalidate`](crate::host::HostViommu::invalidate) before the bind is
//! complete.
//!
//! Layout policy: a linear CD table of 2^`ssid_bits` entries (at most 2^10, 64 KiB); CD 0 is the
//! default (non-PASID) context used through S1DSS = SSID0; vPASIDs get the lowest free host PASID
//! from 1 upwards. ASIDs are `asid_base + host PASID`, so two binders on one vIOMMU must be given
//! disjoint ASID ranges.

use std::collections::BTreeMap;

use viommu_common::mem::{write_u64_le, MemError};
use viommu_common::StreamId;
use vm_memory::GuestMemoryBackend;

use viommu_smmuv3::spec::cd::{Cd, CdW0, CdW3, Tg0};
use viommu_smmuv3::spec::cmd::CmdEntry;
use viommu_smmuv3::spec::ste::{S1Dss, SteConfig, SteW0, SteW1};
use viommu_smmuv3::spec::{Cacheability, Shareability};

use crate::canon::CanonicalSte;
use crate::spec::cmd::{cfgi_cd, tlbi_nh_asid, tlbi_nh_va};
use crate::spec::ste::with_s1_context_ptr;

/// The largest linear CD table the binder composes (log2 entries).
pub const MAX_SSID_BITS: u8 = 10;

/// A guest stage-1 (TTB0 region) translation regime to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage1Table {
    /// TTB0, an IPA.
    pub ttb0: u64,
    /// T0SZ (input size 64 − T0SZ).
    pub t0sz: u8,
    /// TG0 encoding: 0 4K, 1 64K, 2 16K.
    pub tg0: u8,
    /// IPS encoding (≤ the advertised OAS).
    pub ips: u8,
    /// MAIR.
    pub mair: u64,
}

/// Errors of the per-PASID binder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasidError {
    /// The vPASID is already bound.
    #[error("vPASID {0} is already bound")]
    AlreadyBound(u32),
    /// The vPASID is not bound.
    #[error("vPASID {0} is not bound")]
    NotBound(u32),
    /// Every host PASID is in use.
    #[error("no free host PASID (table of {0} entries)")]
    Exhausted(u32),
    /// The table size is beyond what the host or this binder supports.
    #[error("{0} PASID bits exceed the supported {MAX_SSID_BITS}")]
    TooManyBits(u8),
    /// The CD table is not inside the given memory.
    #[error("CD table write failed: {0:?}")]
    Memory(MemError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    host_pasid: u32,
    asid: u16,
}

/// A VMM-owned CD table for one endpoint and its vPASID → host PASID bookkeeping.
#[derive(Debug)]
pub struct PasidBinder<M: GuestMemoryBackend> {
    mem: M,
    table: u64,
    ssid_bits: u8,
    vsid: StreamId,
    asid_base: u16,
    default: Option<u16>,
    bound: BTreeMap<u32, Binding>,
}

impl<M: GuestMemoryBackend> PasidBinder<M> {
    /// Compose an empty (all CDs invalid) table of 2^`ssid_bits` CDs at `table` in `mem` (memory the
    /// VMM also mapped into the IOAS at the same address), for the endpoint with guest StreamID `vsid`.
    pub fn new(
        mem: M,
        table: u64,
        ssid_bits: u8,
        vsid: StreamId,
        asid_base: u16,
    ) -> Result<Self, PasidError> {
        if ssid_bits > MAX_SSID_BITS {
            return Err(PasidError::TooManyBits(ssid_bits));
        }
        let me = Self {
            mem,
            table,
            ssid_bits,
            vsid,
            asid_base,
            default: None,
            bound: BTreeMap::new(),
        };
        for i in 0..me.entries() {
            me.clear_cd(i)?;
        }
        Ok(me)
    }

    fn entries(&self) -> u32 {
        1 << self.ssid_bits
    }

    fn cd_addr(&self, pasid: u32) -> u64 {
        self.table.wrapping_add(64 * u64::from(pasid))
    }

    fn clear_cd(&self, pasid: u32) -> Result<(), PasidError> {
        let a = self.cd_addr(pasid);
        // V lives in word 0: invalidate it first
        for w in 0..8 {
            write_u64_le(&self.mem, a.wrapping_add(8 * w), 0).map_err(PasidError::Memory)?;
        }
        Ok(())
    }

    fn write_cd(&self, pasid: u32, asid: u16, t: &Stage1Table) -> Result<(), PasidError> {
        let a = self.cd_addr(pasid);
        let cd = Cd {
            w0: CdW0::new()
                .with_t0sz(t.t0sz)
                .with_tg0(Tg0(t.tg0))
                .with_ir0(Cacheability::WBRA)
                .with_or0(Cacheability::WBRA)
                .with_sh0(Shareability::ISH)
                .with_epd1(true)
                .with_v(true)
                .with_ips(t.ips)
                .with_aa64(true)
                .with_r(true)
                .with_a(true)
                .with_asid(asid),
            w3: CdW3::new().with_mair(t.mair),
            ..Cd::default()
        }
        .with_ttb0(t.ttb0);
        let w = cd.words();
        // words 1..3 first, word 0 (V = 1) last, so the SMMU never sees a half-written valid CD
        for i in [1, 2, 3, 0] {
            write_u64_le(&self.mem, a.wrapping_add(8 * i as u64), w[i])
                .map_err(PasidError::Memory)?;
        }
        Ok(())
    }

    /// The nested vSTE pointing at this table (S1DSS = SSID0 with substreams).
    pub fn ste(&self) -> CanonicalSte {
        let w0 = SteW0::new()
            .with_v(true)
            .with_config(SteConfig::S1_TRANS)
            .with_s1cdmax(self.ssid_bits);
        let w0 = with_s1_context_ptr(w0, self.table);
        let dss = if self.ssid_bits == 0 {
            S1Dss::TERMINATE
        } else {
            S1Dss::SSID0
        };
        // CD fetch: inner/outer write-back read-allocate, inner shareable
        let w1 = SteW1::new()
            .with_s1dss(dss)
            .with_s1cir(Cacheability::WBRA)
            .with_s1cor(Cacheability::WBRA)
            .with_s1csh(Shareability::ISH);
        CanonicalSte { w0, w1 }
    }

    /// Bind the default (non-PASID) translation to CD 0. Returns the commands to forward.
    pub fn bind_default(&mut self, t: &Stage1Table) -> Result<Vec<CmdEntry>, PasidError> {
        let asid = self.asid_base;
        self.write_cd(0, asid, t)?;
        let mut cmds = vec![cfgi_cd(self.vsid.0, 0, true)];
        if self.default.replace(asid).is_some() {
            cmds.push(tlbi_nh_asid(asid));
        }
        Ok(cmds)
    }

    /// Bind `vpasid` to `t` under the lowest free host PASID (≥ 1). Returns it and the commands.
    pub fn bind(
        &mut self,
        vpasid: u32,
        t: &Stage1Table,
    ) -> Result<(u32, Vec<CmdEntry>), PasidError> {
        if self.bound.contains_key(&vpasid) {
            return Err(PasidError::AlreadyBound(vpasid));
        }
        let host_pasid = (1..self.entries())
            .find(|p| !self.bound.values().any(|b| b.host_pasid == *p))
            .ok_or(PasidError::Exhausted(self.entries()))?;
        let asid = self.asid_base.wrapping_add(host_pasid as u16);
        self.write_cd(host_pasid, asid, t)?;
        self.bound.insert(vpasid, Binding { host_pasid, asid });
        Ok((
            host_pasid,
            vec![cfgi_cd(self.vsid.0, host_pasid, true), tlbi_nh_asid(asid)],
        ))
    }

    /// Unbind `vpasid`: invalidate its CD, then its ASID's TLB entries. Returns the commands.
    pub fn unbind(&mut self, vpasid: u32) -> Result<Vec<CmdEntry>, PasidError> {
        let b = self
            .bound
            .remove(&vpasid)
            .ok_or(PasidError::NotBound(vpasid))?;
        self.clear_cd(b.host_pasid)?;
        Ok(vec![
            cfgi_cd(self.vsid.0, b.host_pasid, true),
            tlbi_nh_asid(b.asid),
        ])
    }

    /// The host PASID a vPASID is bound to.
    pub fn host_pasid(&self, vpasid: u32) -> Option<u32> {
        self.bound.get(&vpasid).map(|b| b.host_pasid)
    }

    /// The TLBI_NH_VA for a guest invalidation of `va` in `vpasid` (`None`: the default context).
    pub fn tlbi_va(&self, vpasid: Option<u32>, va: u64) -> Option<CmdEntry> {
        let asid = match vpasid {
            None => self.default?,
            Some(p) => self.bound.get(&p)?.asid,
        };
        Some(tlbi_nh_va(asid, va, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_common::mem::read_u64_le;
    use viommu_common::testing::guest_ram;

    const T: Stage1Table = Stage1Table {
        ttb0: 0x10_2000,
        t0sz: 25,
        tg0: 0,
        ips: 2,
        mair: 0xff,
    };

    #[test]
    fn cd_fields_sit_at_linux_positions() {
        assert_eq!(CdW0::new().with_t0sz(0x3f).raw(), 0x3f);
        assert_eq!(CdW0::new().with_tg0(Tg0(3)).raw(), 0xc0);
        assert_eq!(CdW0::new().with_ir0(Cacheability(3)).raw(), 0x300);
        assert_eq!(CdW0::new().with_or0(Cacheability(3)).raw(), 0xc00);
        assert_eq!(CdW0::new().with_sh0(Shareability(3)).raw(), 0x3000);
        assert_eq!(CdW0::new().with_epd0(true).raw(), 1 << 14);
        assert_eq!(CdW0::new().with_endi(true).raw(), 1 << 15);
        assert_eq!(CdW0::new().with_epd1(true).raw(), 1 << 30);
        assert_eq!(CdW0::new().with_v(true).raw(), 1 << 31);
        assert_eq!(CdW0::new().with_ips(7).raw(), 7 << 32);
        assert_eq!(CdW0::new().with_tbi0(true).raw(), 1 << 38);
        assert_eq!(CdW0::new().with_aa64(true).raw(), 1 << 41);
        assert_eq!(CdW0::new().with_hd(true).raw(), 1 << 42);
        assert_eq!(CdW0::new().with_ha(true).raw(), 1 << 43);
        assert_eq!(CdW0::new().with_s(true).raw(), 1 << 44);
        assert_eq!(CdW0::new().with_r(true).raw(), 1 << 45);
        assert_eq!(CdW0::new().with_a(true).raw(), 1 << 46);
        assert_eq!(CdW0::new().with_aset(true).raw(), 1 << 47);
        assert_eq!(CdW0::new().with_asid(0xffff).raw(), 0xffff << 48);
        assert_eq!(
            Cd::default().with_ttb0(u64::MAX).w1.raw(),
            0x000F_FFFF_FFFF_FFF0
        );
    }

    #[test]
    fn bind_writes_a_valid_cd_at_the_host_pasid_slot() {
        let mem = guest_ram(0x10_0000, 0x10_0000);
        let mut b = PasidBinder::new(mem.clone(), 0x10_0000, 4, StreamId(0x42), 100)
            .unwrap_or_else(|e| panic!("{e}"));
        let (p, cmds) = b.bind(77, &T).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, 1);
        assert_eq!(cmds, vec![cfgi_cd(0x42, 1, true), tlbi_nh_asid(101)]);
        let w0 = read_u64_le(&mem, 0x10_0040).unwrap_or(0);
        // T0SZ 25, IR0/OR0 WBRA, SH0 ISH, EPD1, V, IPS 2, AA64, R, A, ASID 101
        assert_eq!(
            w0,
            25 | 1 << 8
                | 1 << 10
                | 3 << 12
                | 1 << 30
                | 1 << 31
                | 2 << 32
                | 1 << 41
                | 1 << 45
                | 1 << 46
                | 101 << 48
        );
        assert_eq!(read_u64_le(&mem, 0x10_0048).unwrap_or(0), 0x10_2000);
        assert_eq!(read_u64_le(&mem, 0x10_0058).unwrap_or(0), 0xff);
        assert_eq!(b.host_pasid(77), Some(1));
        assert_eq!(
            b.tlbi_va(Some(77), 0x5000),
            Some(tlbi_nh_va(101, 0x5000, true))
        );
    }

    #[test]
    fn host_pasids_are_reused_after_unbind_and_exhaust_cleanly() {
        let mem = guest_ram(0x10_0000, 0x10_0000);
        let mut b = PasidBinder::new(mem.clone(), 0x10_0000, 1, StreamId(1), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.bind(5, &T).map(|r| r.0), Ok(1));
        assert_eq!(b.bind(6, &T).map(|r| r.0), Err(PasidError::Exhausted(2)));
        assert_eq!(b.bind(5, &T).map(|r| r.0), Err(PasidError::AlreadyBound(5)));
        assert!(b.unbind(5).is_ok());
        assert_eq!(
            read_u64_le(&mem, 0x10_0040).unwrap_or(1),
            0,
            "CD invalidated"
        );
        assert_eq!(b.bind(6, &T).map(|r| r.0), Ok(1));
        assert_eq!(b.unbind(9), Err(PasidError::NotBound(9)));
    }

    #[test]
    fn ste_points_at_the_table_with_ssid0_default() {
        let mem = guest_ram(0x10_0000, 0x10_0000);
        let b = PasidBinder::new(mem.clone(), 0x10_4000, 3, StreamId(1), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.ste().words(),
            [0xb | 0x10_4000 | 3 << 59, 2 | 1 << 2 | 1 << 4 | 3 << 6]
        );
        let b0 = PasidBinder::new(mem.clone(), 0x10_4000, 0, StreamId(1), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b0.ste().words()[1] & 3, 0, "no S1DSS without substreams");
    }

    #[test]
    fn table_outside_memory_and_oversized_tables_are_refused() {
        let mem = guest_ram(0x10_0000, 0x1000);
        assert!(matches!(
            PasidBinder::new(mem.clone(), 0x10_0000, 8, StreamId(1), 0),
            Err(PasidError::Memory(_))
        ));
        assert!(matches!(
            PasidBinder::new(mem.clone(), 0x10_0000, 11, StreamId(1), 0),
            Err(PasidError::TooManyBits(11))
        ));
    }
}
