//! io-pgtable-arm page tables in guest memory, built the way Linux's `io-pgtable-arm.c` does
//! (linux-driver.md §15): 4 KiB granule, stage 1 (`ARM_64_LPAE_S1`) or stage 2
//! (`ARM_64_LPAE_S2`), descriptor values exactly as the driver writes them.

use vm_memory::GuestMemoryBackend;

use viommu_common::mem;

use super::Alloc;

/// Which io-pgtable format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `ARM_64_LPAE_S1`: AP/AttrIndx/nG leaves, MAIR [`MAIR`].
    S1,
    /// `ARM_64_LPAE_S2`: HAP/MemAttr leaves.
    S2,
}

/// The MAIR io-pgtable programs into stage-1 CDs (linux-driver.md §15.3).
pub const MAIR: u64 = 0x0000_0000_F404_FF44;

/// IOMMU_* mapping flags (Linux `include/linux/iommu.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prot {
    /// IOMMU_READ.
    pub read: bool,
    /// IOMMU_WRITE.
    pub write: bool,
    /// IOMMU_CACHE.
    pub cache: bool,
    /// IOMMU_NOEXEC.
    pub noexec: bool,
    /// IOMMU_MMIO.
    pub mmio: bool,
    /// IOMMU_PRIV.
    pub privileged: bool,
}

impl Prot {
    /// IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE: what DMA API mappings use.
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        cache: true,
        noexec: true,
        mmio: false,
        privileged: false,
    };
    /// IOMMU_READ | IOMMU_NOEXEC | IOMMU_CACHE.
    pub const RO: Prot = Prot {
        read: true,
        write: false,
        cache: true,
        noexec: true,
        mmio: false,
        privileged: false,
    };
}

const TYPE_TABLE: u64 = 3;
const TYPE_PAGE: u64 = 3;
const TYPE_BLOCK: u64 = 1;
const AF: u64 = 1 << 10;
const NG: u64 = 1 << 11;
const XN: u64 = 3 << 53;
const SH_IS: u64 = 3 << 8;
const SH_OS: u64 = 2 << 8;
const ADDR_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// The leaf descriptor bits (without the output address) io-pgtable-arm writes for `prot`
/// (`arm_lpae_prot_to_pte`), `page` = level-3 page rather than a block.
pub fn leaf_bits(stage: Stage, prot: Prot, page: bool) -> u64 {
    let mut pte = if page { TYPE_PAGE } else { TYPE_BLOCK };
    pte |= AF;
    pte |= if prot.cache { SH_IS } else { SH_OS };
    if prot.noexec {
        pte |= XN;
    }
    match stage {
        Stage::S1 => {
            pte |= NG;
            if !prot.write && prot.read {
                pte |= 1 << 7; // AP[2] RDONLY
            }
            if !prot.privileged {
                pte |= 1 << 6; // AP[1] UNPRIV
            }
            let idx: u64 = if prot.mmio {
                2
            } else if prot.cache {
                1
            } else {
                0
            };
            pte |= idx << 2;
        }
        Stage::S2 => {
            if prot.read {
                pte |= 1 << 6;
            }
            if prot.write {
                pte |= 1 << 7;
            }
            let memattr: u64 = if prot.mmio {
                0x1
            } else if prot.cache {
                0xF
            } else {
                0x5
            };
            pte |= memattr << 2;
        }
    }
    pte
}

/// A 4 KiB-granule io-pgtable in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPgtable {
    /// Format.
    pub stage: Stage,
    /// Input address size in bits (stage 1: 64 - T0SZ; stage 2: 64 - S2T0SZ).
    pub ias: u32,
    /// Root table address (TTB0 / S2TTB).
    pub root: u64,
    /// Lookup level of the root table.
    pub start_level: u32,
}

impl IoPgtable {
    /// A new, empty table of `ias` input bits (4 KiB granule; 25 <= ias <= 48).
    pub fn new<G: GuestMemoryBackend + ?Sized>(
        mem: &G,
        alloc: &mut Alloc,
        stage: Stage,
        ias: u32,
    ) -> Self {
        let levels = (ias - 12).div_ceil(9);
        let start_level = 4 - levels;
        let root = alloc.alloc_zeroed(mem, 4096, 4096);
        Self {
            stage,
            ias,
            root,
            start_level,
        }
    }

    /// T0SZ / S2T0SZ.
    pub fn tsz(&self) -> u64 {
        u64::from(64 - self.ias)
    }

    /// VTCR for a stage-2 table as `arm_smmu_make_s2_domain_ste` writes it (coherent, PS 48).
    pub fn vtcr(&self) -> u64 {
        let sl0 = match self.start_level {
            0 => 2,
            1 => 1,
            _ => 0,
        };
        // T0SZ | SL0 | IRGN0 WBWA | ORGN0 WBWA | SH0 IS | TG 4K | PS 48.
        self.tsz() | (sl0 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (5 << 16)
    }

    fn index(iova: u64, level: u32) -> u64 {
        (iova >> (12 + 9 * (3 - level))) & 511
    }

    /// Map `size` bytes (4 KiB, 2 MiB or 1 GiB) at `iova` to `pa` with `prot`, allocating
    /// intermediate tables. Returns the descriptor's address.
    ///
    /// # Panics
    /// On a size other than a supported block size, or if the slot is already mapped (-EEXIST).
    pub fn map<G: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &G,
        alloc: &mut Alloc,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    ) -> u64 {
        let leaf_level = match size {
            0x1000 => 3,
            0x20_0000 => 2,
            0x4000_0000 => 1,
            _ => panic!("unsupported mapping size {size:#x}"),
        };
        let mut table = self.root;
        for level in self.start_level..leaf_level {
            let slot = table + 8 * Self::index(iova, level);
            let d = mem::read_u64_le(mem, slot).expect("table in RAM");
            if d & 3 == TYPE_TABLE {
                table = d & ADDR_MASK;
            } else {
                assert_eq!(d & 1, 0, "{iova:#x} already mapped by a block");
                let next = alloc.alloc_zeroed(mem, 4096, 4096);
                mem::write_u64_le(mem, slot, next | TYPE_TABLE).expect("table in RAM");
                table = next;
            }
        }
        let slot = table + 8 * Self::index(iova, leaf_level);
        let old = mem::read_u64_le(mem, slot).expect("table in RAM");
        assert_eq!(old & 1, 0, "{iova:#x} already mapped (-EEXIST)");
        let pte = (pa & ADDR_MASK) | leaf_bits(self.stage, prot, leaf_level == 3);
        mem::write_u64_le(mem, slot, pte).expect("table in RAM");
        slot
    }

    /// Map `len` bytes of 4 KiB pages from `iova` to `pa`.
    pub fn map_pages<G: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &G,
        alloc: &mut Alloc,
        iova: u64,
        pa: u64,
        len: u64,
        prot: Prot,
    ) {
        let mut off = 0;
        while off < len {
            self.map(mem, alloc, iova + off, pa + off, 0x1000, prot);
            off += 0x1000;
        }
    }

    /// Clear the leaf descriptor mapping `iova` (whatever its size). Returns the size unmapped
    /// (0 if nothing was mapped). Tables are not freed (io-pgtable frees them lazily too).
    pub fn unmap<G: GuestMemoryBackend + ?Sized>(&self, mem: &G, iova: u64) -> u64 {
        let mut table = self.root;
        for level in self.start_level..=3 {
            let slot = table + 8 * Self::index(iova, level);
            let d = mem::read_u64_le(mem, slot).unwrap_or(0);
            if d & 1 == 0 {
                return 0;
            }
            if level < 3 && d & 3 == TYPE_TABLE {
                table = d & ADDR_MASK;
                continue;
            }
            mem::write_u64_le(mem, slot, 0).expect("table in RAM");
            return 1 << (12 + 9 * (3 - level));
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf values match linux-driver.md §15.3 (io-pgtable-arm output).
    #[test]
    fn test_io_pgtable_leaf_values() {
        assert_eq!(leaf_bits(Stage::S1, Prot::RW, true), 0x0060_0000_0000_0F47);
        assert_eq!(leaf_bits(Stage::S1, Prot::RW, false), 0x0060_0000_0000_0F45);
        assert_eq!(leaf_bits(Stage::S2, Prot::RW, true), 0x0060_0000_0000_07FF);
        assert_eq!(leaf_bits(Stage::S2, Prot::RW, false), 0x0060_0000_0000_07FD);
        let wo = Prot {
            write: true,
            ..Prot::default()
        };
        assert_eq!(leaf_bits(Stage::S1, wo, true), 0xE43);
        assert_eq!(leaf_bits(Stage::S2, wo, true), 0x697);
    }

    /// 4K, ias 48: start level 0, VTCR 0x53590 (linux-driver.md §7.1).
    #[test]
    fn test_io_pgtable_geometry() {
        let m = viommu_common::testing::guest_ram(0x4000_0000, 0x10_0000);
        let mut a = Alloc::new(0x4000_0000, 0x10_0000);
        let t = IoPgtable::new(&m, &mut a, Stage::S2, 48);
        assert_eq!(t.start_level, 0);
        assert_eq!(t.vtcr(), 0x53590);
        let s1 = IoPgtable::new(&m, &mut a, Stage::S1, 39);
        assert_eq!(s1.start_level, 1);
        let slot = t.map(&m, &mut a, 0x1234_5000, 0x8000_0000, 0x1000, Prot::RW);
        assert_eq!(
            mem::read_u64_le(&m, slot).unwrap(),
            0x8000_0000 | 0x0060_0000_0000_07FF
        );
        assert_eq!(t.unmap(&m, 0x1234_5000), 0x1000);
        assert_eq!(t.unmap(&m, 0x1234_5000), 0);
    }
}
