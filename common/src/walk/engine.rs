//! The table-walk loop shared by stage 1 and stage 2 (Arm ARM D8.2 "Translation table walk").
//!
//! Starting from the root, index each level with the input address, fetch the descriptor
//! atomically (64-bit single-copy atomic, through a [`DescReader`] that keeps the guest memory
//! region of the previous level), classify it and either descend or
//! stop at a leaf. The loop runs at most four times (the level strictly increases and
//! [`Descriptor::decode`] never returns a table at level 3), so it terminates on any memory
//! contents. All arithmetic on guest values is masked or checked.

use vm_memory::GuestMemoryBackend;

use crate::addr::low_mask;

use super::config::TableGeometry;
use super::desc::{output_address, Descriptor, TableDesc};
use super::fault::{Stage, WalkFault, WalkFaultKind};
use super::read::DescReader;

/// Hierarchical attributes accumulated from table descriptors (stage 1 only; Arm ARM D8.4.2):
/// the OR of the tables' PXNTable, UXNTable and APTable bits, kept in [`TableDesc`]'s layout
/// shifted down by [`Hierarchy::SHIFT`] so that merging a table is one shift and one OR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hierarchy(u8);

impl Hierarchy {
    /// Bit position of PXNTable, the lowest of [`TableDesc`]'s hierarchical controls
    /// (PXNTable \[59\], UXNTable \[60\], APTable \[62:61\], adjacent in that order).
    /// (`test_hierarchy_bits_match_table_desc` checks it against the typed fields.)
    const SHIFT: u32 = 59;
    const PXN: u8 = 1 << 0;
    const UXN: u8 = 1 << 1;
    const NO_UNPRIV: u8 = 1 << 2;
    const NO_WRITE: u8 = 1 << 3;

    /// No hierarchical control (also what CD.HADx = 1 makes of any).
    pub const NONE: Hierarchy = Hierarchy(0);

    #[inline(always)]
    fn merge(&mut self, t: TableDesc) {
        self.0 |= (t.into_bits() >> Self::SHIFT) as u8 & 0xF;
    }

    /// Some APTable\[0\] (bit 61) was set: no unprivileged access below.
    #[inline(always)]
    pub const fn no_unpriv(self) -> bool {
        self.0 & Self::NO_UNPRIV != 0
    }

    /// Some APTable\[1\] (bit 62) was set: no write access below.
    #[inline(always)]
    pub const fn no_write(self) -> bool {
        self.0 & Self::NO_WRITE != 0
    }

    /// Some PXNTable was set.
    #[inline(always)]
    pub const fn pxn(self) -> bool {
        self.0 & Self::PXN != 0
    }

    /// Some UXNTable was set.
    #[inline(always)]
    pub const fn uxn(self) -> bool {
        self.0 & Self::UXN != 0
    }
}

/// The leaf a walk ended at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// The descriptor as read.
    pub raw: u64,
    /// Its lookup level.
    pub level: u8,
    /// Its address in the table address space (an IPA for a nested stage-1 walk).
    pub desc_addr: u64,
    /// Its physical address (where it was read).
    pub desc_pa: u64,
    /// Hierarchical attributes of the tables above it.
    pub hier: Hierarchy,
    /// Output address of the start of the block/page.
    pub oa_base: u64,
    /// log2 of the block/page size.
    pub size_log2: u32,
}

/// Everything fixed for one walk.
pub(crate) struct WalkParams {
    /// Root geometry.
    pub geo: TableGeometry,
    /// Root table address (in the table address space).
    pub root: u64,
    /// Output (and table address) size in bits.
    pub oas_bits: u32,
    /// 64K granule with 52-bit output addresses.
    pub pa52: bool,
    /// Stage, for faults.
    pub stage: Stage,
}

/// Walk the tables for `input` and return the leaf.
///
/// `to_pa(addr, level)` maps a descriptor's table-space address to the physical address to read
/// (identity, or a stage-2 translation for nested stage 1; it returns the stage-2 fault).
///
/// # Errors
/// Address-size fault at level 0 for a root above the output size; external abort for a fetch
/// outside RAM; translation fault for an invalid descriptor; address-size fault at the level of a
/// table or leaf descriptor whose address is beyond the output size.
#[inline]
pub(crate) fn walk_tables<M, F>(
    mem: &M,
    p: &WalkParams,
    input: u64,
    to_pa: F,
) -> Result<Leaf, WalkFault>
where
    M: GuestMemoryBackend + ?Sized,
    F: Fn(u64, u8) -> Result<u64, WalkFault>,
{
    let g = p.geo.granule;
    let oa_mask = low_mask(p.oas_bits);
    let fault = |kind, level| WalkFault::new(kind, p.stage, level);
    if p.root & !oa_mask != 0 {
        return Err(fault(WalkFaultKind::AddressSize, 0));
    }
    // CONSTRAINED UNPREDICTABLE: TTB bits below the root table's size (at least 64 bytes) are
    // treated as zero, so the root table is naturally aligned and indexing cannot carry.
    let mut table = p.root & !low_mask(p.geo.root_index_bits.saturating_add(3).max(6));
    let mut level = p.geo.start_level;
    let mut index_bits = p.geo.root_index_bits;
    let mut hier = Hierarchy::NONE;
    let mut reader = DescReader::new(mem);
    // Bounded: `level` strictly increases and decode() never yields a table at level 3.
    while level <= 3 {
        let shift = g.level_shift(level as i8);
        let index = input.checked_shr(shift).unwrap_or(0) & low_mask(index_bits);
        // `table` is aligned to 8 << index_bits, so OR-ing the index cannot overflow.
        let desc_addr = table | (index << 3);
        let desc_pa = to_pa(desc_addr, level)?;
        let raw = reader.read(desc_pa).map_err(|_| {
            fault(
                WalkFaultKind::ExternalAbort {
                    fetch_addr: desc_pa,
                },
                level,
            )
        })?;
        match Descriptor::decode(raw, level, g, p.pa52) {
            Descriptor::Invalid => return Err(fault(WalkFaultKind::Translation, level)),
            Descriptor::Table(t) => {
                let next = output_address(raw, g, p.pa52);
                if next & !oa_mask != 0 {
                    return Err(fault(WalkFaultKind::AddressSize, level));
                }
                hier.merge(t);
                table = next;
                level += 1;
                index_bits = g.bits_per_level();
            }
            Descriptor::Block(_) | Descriptor::Page(_) => {
                let oa_base = output_address(raw, g, p.pa52) & !low_mask(shift);
                if oa_base & !oa_mask != 0 {
                    return Err(fault(WalkFaultKind::AddressSize, level));
                }
                return Ok(Leaf {
                    raw,
                    level,
                    desc_addr,
                    desc_pa,
                    hier,
                    oa_base,
                    size_log2: shift,
                });
            }
        }
    }
    // Unreachable for a valid geometry; kept so that no input can make the walker loop or panic.
    Err(fault(WalkFaultKind::Translation, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed hierarchy agrees with [`TableDesc`]'s typed fields for every combination.
    #[test]
    fn test_hierarchy_bits_match_table_desc() {
        for bits in 0u64..16 {
            let t = TableDesc::new()
                .with_valid(true)
                .with_table(true)
                .with_pxn_table(bits & 1 != 0)
                .with_uxn_table(bits & 2 != 0)
                .with_ap_table(((bits >> 2) & 3) as u8)
                .with_ns_table(true);
            let mut h = Hierarchy::NONE;
            h.merge(t);
            assert_eq!(h.pxn(), t.pxn_table());
            assert_eq!(h.uxn(), t.uxn_table());
            assert_eq!(h.no_unpriv(), t.ap_table() & 1 != 0);
            assert_eq!(h.no_write(), t.ap_table() & 2 != 0);
            // Merging accumulates (OR) and never clears.
            h.merge(TableDesc::new().with_valid(true).with_table(true));
            assert_eq!(h.pxn(), t.pxn_table());
            assert_eq!(h.no_write(), t.ap_table() & 2 != 0);
        }
    }
}
