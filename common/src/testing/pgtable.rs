//! A page-table builder that lays out VMSAv8-64 tables in guest memory exactly as Linux's
//! io-pgtable-arm does (formats ARM_64_LPAE_S1 and ARM_64_LPAE_S2 of io-pgtable-arm.c): the
//! same geometry (start level, PGD size, mandatory stage-2 concatenation), the same PTE bits for
//! each `IOMMU_*` protection, the same map/unmap rules (-EEXIST on a mapped slot, no block
//! splitting). Tests, benches and device scenarios use it to play the guest driver.

use vm_memory::GuestMemoryBackend;

use crate::addr::{low_mask, Granule};
use crate::mem::{read_u64_le, write_bytes, write_u64_le, MemError};
use crate::walk::{Stage1Config, Stage2Config};

/// `IOMMU_READ`.
pub const IOMMU_READ: u32 = 1 << 0;
/// `IOMMU_WRITE`.
pub const IOMMU_WRITE: u32 = 1 << 1;
/// `IOMMU_CACHE`: coherent, cacheable (S1 AttrIndx 1 / S2 MemAttr 0xF, inner shareable).
pub const IOMMU_CACHE: u32 = 1 << 2;
/// `IOMMU_NOEXEC`: XN\[54:53\] = 0b11.
pub const IOMMU_NOEXEC: u32 = 1 << 3;
/// `IOMMU_MMIO`: Device-nGnRE (S1 AttrIndx 2 / S2 MemAttr 0x1).
pub const IOMMU_MMIO: u32 = 1 << 4;
/// `IOMMU_PRIV`: stage 1 only, no unprivileged access (AP\[1\] clear).
pub const IOMMU_PRIV: u32 = 1 << 5;

/// The MAIR Linux programs for stage-1 domains (idx0 NC 0x44, idx1 WBWA 0xFF, idx2 Device-nGnRE
/// 0x04, idx3 inner-NC/outer-WB 0xF4).
pub const LINUX_MAIR: u64 = 0x0000_0000_F404_FF44;

/// Which io-pgtable format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgFormat {
    /// ARM_64_LPAE_S1.
    Stage1,
    /// ARM_64_LPAE_S2.
    Stage2,
}

/// Why a map or unmap was refused (mirrors io-pgtable's errno values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// `-EEXIST`: something is already mapped there.
    #[error("already mapped")]
    Exists,
    /// `-EINVAL`: size not a supported page/block size, misaligned, out of range, or no
    /// permission requested.
    #[error("invalid argument")]
    Invalid,
    /// `-ENOMEM`: the table allocation region is exhausted.
    #[error("out of table memory")]
    NoMem,
    /// A guest-memory access failed.
    #[error(transparent)]
    Mem(#[from] MemError),
}

/// The leaf descriptor bits io-pgtable-arm writes for `prot` (`IOMMU_*`), without the output
/// address (`arm_lpae_prot_to_pte`): `page` = a level-3 page, else a block. Same for every
/// granule. Tests that lay out tables by hand use it to write exactly what Linux writes.
pub const fn leaf_bits(fmt: PgFormat, prot: u32, page: bool) -> u64 {
    let mut pte: u64 = if page { 3 } else { 1 };
    pte |= 1 << 10; // AF
    pte |= if prot & IOMMU_CACHE != 0 {
        3 << 8
    } else {
        2 << 8
    };
    match fmt {
        PgFormat::Stage1 => {
            pte |= 1 << 11; // nG
            if prot & IOMMU_PRIV == 0 {
                pte |= 1 << 6; // AP[1] UNPRIV
            }
            if prot & IOMMU_WRITE == 0 && prot & IOMMU_READ != 0 {
                pte |= 1 << 7; // AP[2] RDONLY
            }
            let idx: u64 = if prot & IOMMU_MMIO != 0 {
                2
            } else if prot & IOMMU_CACHE != 0 {
                1
            } else {
                0
            };
            pte |= idx << 2;
        }
        PgFormat::Stage2 => {
            if prot & IOMMU_READ != 0 {
                pte |= 1 << 6;
            }
            if prot & IOMMU_WRITE != 0 {
                pte |= 1 << 7;
            }
            let attr: u64 = if prot & IOMMU_MMIO != 0 {
                0x1
            } else if prot & IOMMU_CACHE != 0 {
                0xF
            } else {
                0x5
            };
            pte |= attr << 2;
        }
    }
    if prot & IOMMU_NOEXEC != 0 {
        pte |= 3 << 53;
    }
    pte
}

/// Linux's stage-2 rule: concatenate the PGD when the architecture requires it
/// (`arm_lpae_concat_mandatory`, Arm ARM R_DXBSH / R_SRKBC).
const fn concat_mandatory(granule: Granule, start_level: u8, ias: u32, oas: u32) -> bool {
    match (granule, start_level) {
        (Granule::K16, 0) => oas == 48 || ias == 48,
        (Granule::K4, 0) => oas == 40 || oas == 42,
        (Granule::K16, 1) => oas == 40,
        _ => false,
    }
}

/// A page table in guest memory, built like io-pgtable-arm.
#[derive(Debug)]
pub struct LpaeBuilder<'m, M: GuestMemoryBackend + ?Sized> {
    mem: &'m M,
    fmt: PgFormat,
    granule: Granule,
    ias: u32,
    oas: u32,
    start_level: u8,
    pgd_index_bits: u32,
    pgd: u64,
    next_free: u64,
    alloc_end: u64,
}

impl<'m, M: GuestMemoryBackend + ?Sized> LpaeBuilder<'m, M> {
    /// Allocate an empty PGD for `fmt` with the given granule and address sizes, taking table
    /// memory from `[alloc_base, alloc_base + alloc_size)` (a bump allocator; must be RAM).
    ///
    /// # Errors
    /// [`PgError::Invalid`] for unsupported sizes, [`PgError::NoMem`] / [`PgError::Mem`] if the
    /// region cannot hold the PGD.
    pub fn new(
        mem: &'m M,
        fmt: PgFormat,
        granule: Granule,
        ias: u32,
        oas: u32,
        alloc_base: u64,
        alloc_size: u64,
    ) -> Result<Self, PgError> {
        let mut b = Self::open(mem, fmt, granule, ias, oas, 0, alloc_base, alloc_size)?;
        b.pgd = b.alloc(8u64 << b.pgd_index_bits)?;
        Ok(b)
    }

    /// A builder over an existing table whose PGD is at `pgd` (same geometry as [`Self::new`]
    /// gives), taking any new table memory from `[alloc_base, alloc_base + alloc_size)`: for
    /// callers that keep the table's description and share one allocator between tables.
    ///
    /// # Errors
    /// [`PgError::Invalid`] for unsupported sizes.
    #[expect(
        clippy::too_many_arguments,
        reason = "the table's description plus its allocator"
    )]
    pub fn open(
        mem: &'m M,
        fmt: PgFormat,
        granule: Granule,
        ias: u32,
        oas: u32,
        pgd: u64,
        alloc_base: u64,
        alloc_size: u64,
    ) -> Result<Self, PgError> {
        let g = granule.shift();
        let bpl = granule.bits_per_level();
        if ias <= g || ias > 52 || !(32..=52).contains(&oas) {
            return Err(PgError::Invalid);
        }
        let va_bits = ias - g;
        let levels = va_bits.div_ceil(bpl);
        if levels > 4 {
            return Err(PgError::Invalid);
        }
        let mut start_level = (4 - levels) as u8;
        let mut pgd_index_bits = va_bits - bpl * (levels - 1);
        if fmt == PgFormat::Stage2 && concat_mandatory(granule, start_level, ias, oas) {
            start_level += 1;
            pgd_index_bits += bpl;
        }
        Ok(Self {
            mem,
            fmt,
            granule,
            ias,
            oas,
            start_level,
            pgd_index_bits,
            pgd,
            next_free: alloc_base,
            alloc_end: alloc_base.saturating_add(alloc_size),
        })
    }

    /// The first address the builder has not allocated from its region.
    pub const fn next_free(&self) -> u64 {
        self.next_free
    }

    /// Allocate `bytes` of zeroed table memory aligned to max(`bytes`, granule).
    fn alloc(&mut self, bytes: u64) -> Result<u64, PgError> {
        let align = bytes.max(self.granule.size());
        let at = self
            .next_free
            .checked_add(align - 1)
            .ok_or(PgError::NoMem)?
            & !(align - 1);
        let end = at.checked_add(bytes).ok_or(PgError::NoMem)?;
        if end > self.alloc_end {
            return Err(PgError::NoMem);
        }
        self.next_free = end;
        let zeros = vec![0u8; usize::try_from(bytes).map_err(|_| PgError::NoMem)?];
        write_bytes(self.mem, at, &zeros)?;
        Ok(at)
    }

    /// Physical address of the PGD (TTB / S2TTB).
    pub const fn pgd(&self) -> u64 {
        self.pgd
    }

    /// The first lookup level.
    pub const fn start_level(&self) -> u8 {
        self.start_level
    }

    /// Number of descriptors in the PGD (all concatenated tables).
    pub const fn pgd_entries(&self) -> u64 {
        1 << self.pgd_index_bits
    }

    /// The VTCR.SL0 Linux programs for this table (stage 2): `~(start + 1) & 3` for 4K,
    /// `~start & 3` for 16K/64K.
    pub const fn sl0(&self) -> u8 {
        match self.granule {
            Granule::K4 => !(self.start_level + 1) & 3,
            _ => !self.start_level & 3,
        }
    }

    /// Stage-1 walk configuration for a CD pointing at this table (TTB0 region, Linux MAIR).
    pub const fn stage1_config(&self) -> Stage1Config {
        let mut c = Stage1Config::new(self.granule, (64 - self.ias) as u8, self.pgd, self.oas);
        c.mair = LINUX_MAIR;
        c
    }

    /// Stage-2 walk configuration for an STE pointing at this table.
    pub const fn stage2_config(&self) -> Stage2Config {
        Stage2Config::new(
            self.granule,
            (64 - self.ias) as u8,
            self.sl0(),
            self.pgd,
            self.oas,
        )
    }

    /// Page/block sizes this table supports (io-pgtable's `pgsize_bitmap`), ascending.
    pub fn page_sizes(&self) -> Vec<u64> {
        let mut v = match self.granule {
            Granule::K4 => vec![1 << 12, 1 << 21, 1 << 30],
            Granule::K16 => vec![1 << 14, 1 << 25],
            Granule::K64 => vec![1 << 16, 1 << 29],
        };
        if self.granule == Granule::K64 && self.oas > 48 {
            v.push(1 << 42);
        }
        v
    }

    /// Encode a physical address into the PTE address field (64K/52-bit: PA\[51:48\] in
    /// PTE\[15:12\]).
    const fn paddr_to_pte(&self, pa: u64) -> u64 {
        let addr = pa & low_mask(48) & !low_mask(12);
        if matches!(self.granule, Granule::K64) && self.oas > 48 {
            addr | ((pa >> 48) & 0xF) << 12
        } else {
            addr
        }
    }

    /// The PTE io-pgtable writes for a leaf at `level` (`arm_lpae_prot_to_pte()`).
    pub const fn leaf_pte(&self, pa: u64, prot: u32, level: u8) -> u64 {
        leaf_bits(self.fmt, prot, level == 3) | self.paddr_to_pte(pa)
    }

    /// The level whose block/page size is `size`, if any.
    fn level_for_size(&self, size: u64) -> Option<u8> {
        if !self.page_sizes().contains(&size) {
            return None;
        }
        (self.start_level..=3).find(|&l| 1u64 << self.granule.level_shift(l as i8) == size)
    }

    /// Index of `iova` at `level` (the root index covers concatenated tables).
    fn index(&self, iova: u64, level: u8) -> u64 {
        let bits = if level == self.start_level {
            self.pgd_index_bits
        } else {
            self.granule.bits_per_level()
        };
        (iova >> self.granule.level_shift(level as i8)) & low_mask(bits)
    }

    fn table_addr(&self, pte: u64) -> u64 {
        let mut a = pte & low_mask(48) & !low_mask(self.granule.shift());
        if self.granule == Granule::K64 && self.oas > 48 {
            a |= ((pte >> 12) & 0xF) << 48;
        }
        a
    }

    /// Map `[iova, iova + size)` to `pa` with `prot` (`IOMMU_*`), like `arm_lpae_map_pages`
    /// for one page.
    ///
    /// # Errors
    /// [`PgError::Exists`] if the slot (or a covering block) is mapped, [`PgError::Invalid`]
    /// for a bad size/alignment/range or `prot` without READ or WRITE.
    pub fn map(&mut self, iova: u64, pa: u64, size: u64, prot: u32) -> Result<(), PgError> {
        if prot & (IOMMU_READ | IOMMU_WRITE) == 0 {
            return Err(PgError::Invalid);
        }
        let target = self.level_for_size(size).ok_or(PgError::Invalid)?;
        if iova & (size - 1) != 0 || pa & (size - 1) != 0 {
            return Err(PgError::Invalid);
        }
        if iova >> self.ias != 0 || pa >> self.oas != 0 {
            return Err(PgError::Invalid);
        }
        let mut table = self.pgd;
        for level in self.start_level..=3 {
            let slot = table + self.index(iova, level) * 8;
            let pte = read_u64_le(self.mem, slot)?;
            if level == target {
                if pte & 1 != 0 {
                    return Err(PgError::Exists);
                }
                write_u64_le(self.mem, slot, self.leaf_pte(pa, prot, level))?;
                return Ok(());
            }
            if pte & 1 == 0 {
                let next = self.alloc(self.granule.size())?;
                write_u64_le(self.mem, slot, self.paddr_to_pte(next) | 3)?;
                table = next;
            } else if pte & 3 == 3 {
                table = self.table_addr(pte);
            } else {
                // A block covers this range.
                return Err(PgError::Exists);
            }
        }
        Err(PgError::Invalid)
    }

    /// Unmap the `size` mapping at `iova`, like `arm_lpae_unmap_pages` for one page; returns
    /// the bytes unmapped (0 if nothing of that size is mapped there, including the 2025
    /// behaviour of refusing to split a larger block).
    ///
    /// # Errors
    /// [`PgError::Invalid`] for an unsupported size, [`PgError::Mem`] on a memory error.
    pub fn unmap(&mut self, iova: u64, size: u64) -> Result<u64, PgError> {
        let target = self.level_for_size(size).ok_or(PgError::Invalid)?;
        if iova & (size - 1) != 0 || iova >> self.ias != 0 {
            return Err(PgError::Invalid);
        }
        let mut table = self.pgd;
        for level in self.start_level..=3 {
            let slot = table + self.index(iova, level) * 8;
            let pte = read_u64_le(self.mem, slot)?;
            if pte & 1 == 0 {
                return Ok(0);
            }
            if level == target {
                write_u64_le(self.mem, slot, 0)?;
                return Ok(size);
            }
            if pte & 3 != 3 {
                return Ok(0);
            }
            table = self.table_addr(pte);
        }
        Ok(0)
    }

    /// The PTE that maps `iova` (leaf), with its level, or `None`: a software lookup for tests.
    ///
    /// # Errors
    /// [`PgError::Mem`] on a memory error.
    pub fn leaf(&self, iova: u64) -> Result<Option<(u64, u64, u8)>, PgError> {
        let mut table = self.pgd;
        for level in self.start_level..=3 {
            let slot = table + self.index(iova, level) * 8;
            let pte = read_u64_le(self.mem, slot)?;
            if pte & 1 == 0 {
                return Ok(None);
            }
            if level == 3 || pte & 3 == 1 {
                return Ok(Some((slot, pte, level)));
            }
            table = self.table_addr(pte);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::guest_ram;

    /// PTE values match io-pgtable-arm.c's `arm_lpae_prot_to_pte()` exactly.
    #[test]
    fn test_pgtable_linux_pte_values() {
        let m = guest_ram(0, 1 << 20);
        let rwnc = IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE;
        let s1 = LpaeBuilder::new(&m, PgFormat::Stage1, Granule::K4, 48, 48, 0, 1 << 20).unwrap();
        assert_eq!(s1.leaf_pte(0, rwnc, 3), 0x0060_0000_0000_0F47);
        assert_eq!(s1.leaf_pte(0, rwnc, 2), 0x0060_0000_0000_0F45);
        assert_eq!(s1.leaf_pte(0, IOMMU_WRITE, 3), 0xE43);
        let s2 = LpaeBuilder::new(&m, PgFormat::Stage2, Granule::K4, 48, 48, 0, 1 << 20).unwrap();
        assert_eq!(s2.leaf_pte(0, rwnc, 3), 0x0060_0000_0000_07FF);
        assert_eq!(s2.leaf_pte(0, rwnc, 2), 0x0060_0000_0000_07FD);
        assert_eq!(s2.leaf_pte(0, IOMMU_WRITE, 3), 0x697);
    }

    /// Stage-2 geometry follows `arm_64_lpae_alloc_pgtable_s2()` (4K 48-bit: L0, SL0 2; 4K 40-bit:
    /// two concatenated tables at L1, SL0 1; 64K 48-bit: L1, 64 entries).
    #[test]
    fn test_pgtable_s2_geometry() {
        let m = guest_ram(0, 1 << 22);
        let g = |gr, ias, oas| {
            LpaeBuilder::new(&m, PgFormat::Stage2, gr, ias, oas, 0, 1 << 22).unwrap()
        };
        let a = g(Granule::K4, 48, 48);
        assert_eq!((a.start_level(), a.sl0(), a.pgd_entries()), (0, 2, 512));
        let b = g(Granule::K4, 40, 40);
        assert_eq!((b.start_level(), b.sl0(), b.pgd_entries()), (1, 1, 1024));
        assert_eq!(b.stage2_config().t0sz, 24);
        let c = g(Granule::K64, 48, 48);
        assert_eq!((c.start_level(), c.pgd_entries()), (1, 64));
        let d = g(Granule::K16, 48, 48);
        assert_eq!((d.start_level(), d.pgd_entries()), (1, 4096));
    }

    /// `leaf_bits` is the attribute half of `leaf_pte`, for hand-built tables.
    #[test]
    fn test_pgtable_leaf_bits_without_a_table() {
        let rwnc = IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE;
        assert_eq!(
            leaf_bits(PgFormat::Stage1, rwnc, true),
            0x0060_0000_0000_0F47
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage1, rwnc, false),
            0x0060_0000_0000_0F45
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage2, rwnc, true),
            0x0060_0000_0000_07FF
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage2, rwnc, false),
            0x0060_0000_0000_07FD
        );
        assert_eq!(leaf_bits(PgFormat::Stage1, IOMMU_WRITE, true), 0xE43);
        assert_eq!(leaf_bits(PgFormat::Stage2, IOMMU_WRITE, true), 0x697);
        // RO | PRIV at stage 1: AP[2] set, AP[1] clear; MMIO: AttrIndx 2 / MemAttr 0x1.
        assert_eq!(
            leaf_bits(PgFormat::Stage1, IOMMU_READ | IOMMU_PRIV, true),
            0xE83
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage1, IOMMU_READ | IOMMU_MMIO, true) >> 2 & 7,
            2
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage2, IOMMU_READ | IOMMU_MMIO, true) >> 2 & 0xF,
            1
        );
    }

    /// A builder opened over an existing PGD maps into the same tables, allocating from its own
    /// region, and reports how far it got.
    #[test]
    fn test_pgtable_open_existing_table() {
        let m = guest_ram(0, 1 << 22);
        let a = LpaeBuilder::new(&m, PgFormat::Stage1, Granule::K4, 48, 48, 0, 1 << 12).unwrap();
        assert_eq!(a.pgd(), 0);
        let mut b = LpaeBuilder::open(
            &m,
            PgFormat::Stage1,
            Granule::K4,
            48,
            48,
            a.pgd(),
            0x10_0000,
            0x10_0000,
        )
        .unwrap();
        assert_eq!((b.pgd(), b.start_level()), (0, 0));
        b.map(0x4000_0000, 0x20_0000, 1 << 12, IOMMU_READ).unwrap();
        // L1, L2, L3 tables taken from the new region
        assert_eq!(b.next_free(), 0x10_3000);
        let (_, pte, level) = a.leaf(0x4000_0000).unwrap().unwrap();
        assert_eq!((pte & !0xFFF & ((1 << 48) - 1), level), (0x20_0000, 3));
        let mut full =
            LpaeBuilder::open(&m, PgFormat::Stage1, Granule::K4, 48, 48, 0, 0x10_3000, 0).unwrap();
        assert_eq!(
            full.map(0x8000_0000, 0, 1 << 12, IOMMU_READ),
            Err(PgError::NoMem)
        );
    }

    /// Mapping a mapped slot fails with EEXIST; unmapping a smaller size inside a block is
    /// refused (no split).
    #[test]
    fn test_pgtable_map_rules() {
        let m = guest_ram(0, 1 << 22);
        let mut b =
            LpaeBuilder::new(&m, PgFormat::Stage1, Granule::K4, 48, 48, 0, 1 << 22).unwrap();
        b.map(1 << 30, 1 << 30, 1 << 21, IOMMU_READ).unwrap();
        assert_eq!(b.map(1 << 30, 0, 1 << 21, IOMMU_READ), Err(PgError::Exists));
        assert_eq!(b.map(1 << 30, 0, 1 << 12, IOMMU_READ), Err(PgError::Exists));
        assert_eq!(b.map(0, 0, 1 << 12, 0), Err(PgError::Invalid));
        assert_eq!(b.unmap(1 << 30, 1 << 12).unwrap(), 0);
        assert_eq!(b.unmap(1 << 30, 1 << 21).unwrap(), 1 << 21);
        assert!(b.leaf(1 << 30).unwrap().is_none());
    }
}
