//! io-pgtable-arm page tables for the [`GuestDriver`](super::GuestDriver): 4 KiB granule,
//! stage 1 (`ARM_64_LPAE_S1`) or stage 2 (`ARM_64_LPAE_S2`).
//!
//! The tables are built by viommu-common's [`LpaeBuilder`] (descriptor values exactly as
//! io-pgtable writes them, tested against its selftest values there). [`IoPgtable`] is only the
//! table's description plus the driver's allocation model: every table takes its memory from
//! the one bump [`Alloc`] the driver shares between queues, stream tables, CD tables and page
//! tables, so a builder is opened over the table for each operation.

use vm_memory::GuestMemoryBackend;

use viommu_common::addr::Granule;
pub use viommu_common::testing::pgtable::{
    leaf_bits, PgFormat, IOMMU_CACHE, IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_PRIV, IOMMU_READ,
    IOMMU_WRITE, LINUX_MAIR,
};
use viommu_common::testing::pgtable::{LpaeBuilder, PgError};

use super::Alloc;

/// The output address size the driver's tables are built for (VTCR.PS = 48 bits).
const OAS: u32 = 48;

/// `IOMMU_*` mapping flags (Linux `include/linux/iommu.h`), as viommu-common defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prot(pub u32);

impl Prot {
    /// IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE: what DMA API mappings use.
    pub const RW: Prot = Prot(IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE);
    /// IOMMU_READ | IOMMU_NOEXEC | IOMMU_CACHE.
    pub const RO: Prot = Prot(IOMMU_READ | IOMMU_NOEXEC | IOMMU_CACHE);
}

/// A 4 KiB-granule io-pgtable in guest memory: the description of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPgtable {
    /// Format.
    pub format: PgFormat,
    /// Input address size in bits (stage 1: 64 - T0SZ; stage 2: 64 - S2T0SZ).
    pub ias: u32,
    /// Root table address (TTB0 / S2TTB).
    pub root: u64,
    /// Lookup level of the root table.
    pub start_level: u32,
}

/// Open a builder over `[alloc.next_free(), end)`, run `f`, and move the allocator past what
/// the builder took.
///
/// # Panics
/// If the table's memory or the allocator's range is exhausted (a test sizing problem), or on
/// whatever `f` refuses (see [`IoPgtable::map`]).
fn with_builder<G: GuestMemoryBackend + ?Sized, R>(
    mem: &G,
    alloc: &mut Alloc,
    format: PgFormat,
    ias: u32,
    root: Option<u64>,
    f: impl FnOnce(&mut LpaeBuilder<'_, G>) -> Result<R, PgError>,
) -> R {
    let base = alloc.next_free();
    let size = alloc.end() - base;
    let mut b = match root {
        None => LpaeBuilder::new(mem, format, Granule::K4, ias, OAS, base, size),
        Some(pgd) => LpaeBuilder::open(mem, format, Granule::K4, ias, OAS, pgd, base, size),
    }
    .unwrap_or_else(|e| panic!("io-pgtable ({format:?}, ias {ias}): {e}"));
    let r = f(&mut b);
    alloc.advance_to(b.next_free());
    match r {
        Ok(r) => r,
        Err(PgError::NoMem) => panic!("test guest RAM exhausted"),
        Err(e) => panic!("io-pgtable refused: {e}"),
    }
}

impl IoPgtable {
    /// A new, empty table of `ias` input bits (4 KiB granule; 25 <= ias <= 48).
    pub fn new<G: GuestMemoryBackend + ?Sized>(
        mem: &G,
        alloc: &mut Alloc,
        format: PgFormat,
        ias: u32,
    ) -> Self {
        with_builder(mem, alloc, format, ias, None, |b| {
            Ok(Self {
                format,
                ias,
                root: b.pgd(),
                start_level: u32::from(b.start_level()),
            })
        })
    }

    /// T0SZ / S2T0SZ.
    pub fn tsz(&self) -> u64 {
        u64::from(64 - self.ias)
    }

    /// VTCR for a stage-2 table as `arm_smmu_make_s2_domain_ste` writes it (coherent, PS 48).
    pub fn vtcr(&self) -> u64 {
        // 4K granule: SL0 = ~(start level + 1) & 3.
        let sl0 = u64::from(!(self.start_level + 1) & 3);
        // T0SZ | SL0 | IRGN0 WBWA | ORGN0 WBWA | SH0 IS | TG 4K | PS 48.
        self.tsz() | (sl0 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (5 << 16)
    }

    /// Map `size` bytes (4 KiB, 2 MiB or 1 GiB) at `iova` to `pa` with `prot`, allocating
    /// intermediate tables from `alloc`. Returns the descriptor's address.
    ///
    /// # Panics
    /// On what io-pgtable refuses: a size other than a supported block size, a misaligned or
    /// out-of-range address, no READ or WRITE in `prot`, or a slot already mapped (-EEXIST).
    pub fn map<G: GuestMemoryBackend + ?Sized>(
        &self,
        mem: &G,
        alloc: &mut Alloc,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    ) -> u64 {
        with_builder(mem, alloc, self.format, self.ias, Some(self.root), |b| {
            b.map(iova, pa, size, prot.0)?;
            Ok(b.leaf(iova)?.map_or(0, |(slot, _, _)| slot))
        })
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
        let Ok(mut b) = LpaeBuilder::open(
            mem,
            self.format,
            Granule::K4,
            self.ias,
            OAS,
            self.root,
            0,
            0,
        ) else {
            return 0;
        };
        let Ok(Some((_, _, level))) = b.leaf(iova) else {
            return 0;
        };
        let size = 1u64 << Granule::K4.level_shift(level as i8);
        b.unmap(iova & !(size - 1), size).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_common::mem;

    /// Leaf values match io-pgtable-arm.c's `arm_lpae_prot_to_pte()` output.
    #[test]
    fn test_io_pgtable_leaf_values() {
        assert_eq!(
            leaf_bits(PgFormat::Stage1, Prot::RW.0, true),
            0x0060_0000_0000_0F47
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage1, Prot::RW.0, false),
            0x0060_0000_0000_0F45
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage2, Prot::RW.0, true),
            0x0060_0000_0000_07FF
        );
        assert_eq!(
            leaf_bits(PgFormat::Stage2, Prot::RW.0, false),
            0x0060_0000_0000_07FD
        );
        let wo = Prot(IOMMU_WRITE);
        assert_eq!(leaf_bits(PgFormat::Stage1, wo.0, true), 0xE43);
        assert_eq!(leaf_bits(PgFormat::Stage2, wo.0, true), 0x697);
    }

    /// 4K, ias 48: start level 0, VTCR 0x53590 (`arm_smmu_make_s2_domain_ste()`); tables come from
    /// the driver's allocator.
    #[test]
    fn test_io_pgtable_geometry() {
        let m = viommu_common::testing::guest_ram(0x4000_0000, 0x10_0000);
        let mut a = Alloc::new(0x4000_0000, 0x10_0000);
        let t = IoPgtable::new(&m, &mut a, PgFormat::Stage2, 48);
        assert_eq!(t.start_level, 0);
        assert_eq!(t.root, 0x4000_0000);
        assert_eq!(t.vtcr(), 0x53590);
        let s1 = IoPgtable::new(&m, &mut a, PgFormat::Stage1, 39);
        assert_eq!(s1.start_level, 1);
        assert_eq!(s1.root, 0x4000_1000);
        let slot = t.map(&m, &mut a, 0x1234_5000, 0x8000_0000, 0x1000, Prot::RW);
        assert_eq!(
            mem::read_u64_le(&m, slot).unwrap(),
            0x8000_0000 | 0x0060_0000_0000_07FF
        );
        // L1, L2, L3 tables for the S2 mapping
        assert_eq!(a.next_free(), 0x4000_5000);
        assert_eq!(t.unmap(&m, 0x1234_5000), 0x1000);
        assert_eq!(t.unmap(&m, 0x1234_5000), 0);
        t.map(&m, &mut a, 0x4000_0000, 0x8000_0000, 0x20_0000, Prot::RO);
        assert_eq!(t.unmap(&m, 0x4000_3000), 0x20_0000, "a block goes whole");
    }
}
