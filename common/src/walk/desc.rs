//! VMSAv8-64 translation table descriptors (Arm ARM D8.3 "Translation table descriptor
//! formats"; IHI 0070 §3.4; Linux io-pgtable-arm.c `ARM_LPAE_PTE_*`).
//!
//! The descriptor words are `#[bitfield(u64)]` types named after the architecture.
//! [`Descriptor::decode`] classifies a raw word for a lookup level and granule into
//! `{Invalid, Table, Block, Page}`; everything else reads typed fields.
//!
//! Output addresses use the 48-bit formats: OA = desc\[47:g\]. With the 64K granule and a 52-bit
//! output size (FEAT_LPA), desc\[15:12\] hold OA\[51:48\]. FEAT_LPA2 (DS) layouts are not
//! supported. RES0 bits inside or above the address field (for example the low bits of a block's
//! address) are ignored: CONSTRAINED UNPREDICTABLE, we treat them as zero.

use bitfield_struct::bitfield;

use crate::addr::{low_mask, Granule};

/// A table descriptor (levels 0..=2, bits \[1:0\] = 0b11).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct TableDesc {
    /// Valid (bit \[0\]).
    pub valid: bool,
    /// Table (bit \[1\]): 1 for a table descriptor.
    pub table: bool,
    #[bits(10)]
    __: u16,
    /// Next-level table address bits \[47:12\] (bits below the granule shift are RES0;
    /// with 64K/52-bit, bits \[15:12\] are address bits \[51:48\]).
    #[bits(36)]
    pub addr: u64,
    #[bits(4)]
    __: u8,
    #[bits(7)]
    __: u8,
    /// PXNTable (bit \[59\]): privileged execute-never for everything below.
    pub pxn_table: bool,
    /// UXNTable / XNTable (bit \[60\]): unprivileged execute-never below.
    pub uxn_table: bool,
    /// APTable (bits \[62:61\]): bit 61 removes unprivileged access, bit 62 removes write.
    #[bits(2)]
    pub ap_table: u8,
    /// NSTable (bit \[63\]): ignored by a Non-secure walk.
    pub ns_table: bool,
}

/// A stage-1 block or page descriptor.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct S1Leaf {
    /// Valid (bit \[0\]).
    pub valid: bool,
    /// Bit \[1\]: 1 for a page (level 3), 0 for a block.
    pub page: bool,
    /// AttrIndx (bits \[4:2\]): index of the MAIR byte.
    #[bits(3)]
    pub attr_indx: u8,
    /// NS (bit \[5\]): ignored by a Non-secure walk.
    pub ns: bool,
    /// AP\[1\] (bit \[6\]): unprivileged (EL0) access allowed.
    pub ap_el0: bool,
    /// AP\[2\] (bit \[7\]): read-only.
    pub ap_ro: bool,
    /// SH (bits \[9:8\]): shareability.
    #[bits(2)]
    pub sh: u8,
    /// AF (bit \[10\]): access flag.
    pub af: bool,
    /// nG (bit \[11\]): not global (ASID-tagged).
    pub ng: bool,
    /// Output address bits \[47:12\] (see the module doc for 64K/52-bit).
    #[bits(36)]
    pub addr: u64,
    #[bits(3)]
    __: u8,
    /// DBM (bit \[51\]): dirty bit modifier (writable-clean when AP\[2\] = 1 and HD).
    pub dbm: bool,
    /// Contiguous (bit \[52\]): a caching hint, ignored by the walker.
    pub contiguous: bool,
    /// PXN (bit \[53\]): privileged execute-never.
    pub pxn: bool,
    /// UXN / XN (bit \[54\]): unprivileged execute-never.
    pub uxn: bool,
    #[bits(9)]
    __: u16,
}

/// A stage-2 block or page descriptor.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct S2Leaf {
    /// Valid (bit \[0\]).
    pub valid: bool,
    /// Bit \[1\]: 1 for a page (level 3), 0 for a block.
    pub page: bool,
    /// MemAttr (bits \[5:2\]).
    #[bits(4)]
    pub mem_attr: u8,
    /// S2AP\[0\] (bit \[6\]): read allowed.
    pub s2ap_read: bool,
    /// S2AP\[1\] (bit \[7\]): write allowed.
    pub s2ap_write: bool,
    /// SH (bits \[9:8\]): shareability.
    #[bits(2)]
    pub sh: u8,
    /// AF (bit \[10\]): access flag.
    pub af: bool,
    #[bits(1)]
    __: u8,
    /// Output address bits \[47:12\] (see the module doc for 64K/52-bit).
    #[bits(36)]
    pub addr: u64,
    #[bits(3)]
    __: u8,
    /// DBM (bit \[51\]): writable-clean when S2AP\[1\] = 0 and HD.
    pub dbm: bool,
    /// Contiguous (bit \[52\]): a caching hint, ignored by the walker.
    pub contiguous: bool,
    /// XN (bits \[54:53\]): XN\[1\] = bit 54 is execute-never; with FEAT_XNX, XN\[0\] = bit 53
    /// distinguishes privileged and unprivileged execution.
    #[bits(2)]
    pub xn: u8,
    #[bits(9)]
    __: u16,
}

/// A raw leaf (block or page) descriptor word, read as stage 1 or stage 2 by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeafDesc(pub u64);

impl LeafDesc {
    /// The stage-1 view.
    pub const fn s1(self) -> S1Leaf {
        S1Leaf::from_bits(self.0)
    }

    /// The stage-2 view.
    pub const fn s2(self) -> S2Leaf {
        S2Leaf::from_bits(self.0)
    }
}

/// A descriptor classified for its lookup level and granule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Descriptor {
    /// Not valid at this level: bit 0 clear, a block at a level that has none for the granule,
    /// or 0b01 at level 3. The walk takes a translation fault.
    Invalid,
    /// Points to a next-level table.
    Table(TableDesc),
    /// A block mapping (levels 1..=2 as the granule allows).
    Block(LeafDesc),
    /// A page mapping (level 3).
    Page(LeafDesc),
}

/// Whether `granule` allows block descriptors at `level` (Arm ARM D8.3.1, no FEAT_LPA2).
///
/// 4K: level 1 (1 GiB) and 2 (2 MiB). 16K: level 2 (32 MiB). 64K: level 2 (512 MiB), and level 1
/// (4 TiB) only with a 52-bit output size (FEAT_LPA, `pa52`).
pub const fn block_allowed(granule: Granule, level: u8, pa52: bool) -> bool {
    match (granule, level) {
        (Granule::K4, 1 | 2) | (Granule::K16, 2) | (Granule::K64, 2) => true,
        (Granule::K64, 1) => pa52,
        _ => false,
    }
}

/// True when the output-address format carries OA\[51:48\] in desc\[15:12\] (64K granule with a
/// 52-bit output size).
pub const fn uses_pa52(granule: Granule, oas_bits: u32) -> bool {
    matches!(granule, Granule::K64) && oas_bits >= 52
}

/// The output (or next-level table) address held in a table, block or page descriptor:
/// desc\[47:g\], plus desc\[15:12\] as OA\[51:48\] when `pa52`. Bits below `g` are not address
/// bits and are dropped; the caller masks a block's low bits by its level.
pub const fn output_address(raw: u64, granule: Granule, pa52: bool) -> u64 {
    let g = granule.shift();
    let mut oa = raw & low_mask(48) & !low_mask(g);
    if pa52 {
        oa |= ((raw >> 12) & 0xf) << 48;
    }
    oa
}

impl Descriptor {
    /// Classify `raw` read at lookup `level` (0..=3) of a `granule` table.
    ///
    /// Bits \[1:0\]: 0bx0 invalid; 0b11 table at levels 0..=2, page at level 3; 0b01 block
    /// where [`block_allowed`], otherwise invalid (reserved). Levels above 3 are invalid.
    pub const fn decode(raw: u64, level: u8, granule: Granule, pa52: bool) -> Descriptor {
        match (raw & 3, level) {
            (3, 0..=2) => Descriptor::Table(TableDesc::from_bits(raw)),
            (3, 3) => Descriptor::Page(LeafDesc(raw)),
            (1, _) if block_allowed(granule, level, pa52) => Descriptor::Block(LeafDesc(raw)),
            _ => Descriptor::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field offsets match Arm ARM D8.3 / io-pgtable-arm.c `ARM_LPAE_PTE_*` (not our own round
    /// trips).
    #[test]
    fn test_desc_bit_positions() {
        assert_eq!(TableDesc::PXN_TABLE_OFFSET, 59);
        assert_eq!(TableDesc::UXN_TABLE_OFFSET, 60);
        assert_eq!(
            (TableDesc::AP_TABLE_OFFSET, TableDesc::AP_TABLE_BITS),
            (61, 2)
        );
        assert_eq!(TableDesc::NS_TABLE_OFFSET, 63);
        assert_eq!((TableDesc::ADDR_OFFSET, TableDesc::ADDR_BITS), (12, 36));
        assert_eq!((S1Leaf::ATTR_INDX_OFFSET, S1Leaf::ATTR_INDX_BITS), (2, 3));
        assert_eq!(S1Leaf::NS_OFFSET, 5);
        assert_eq!(S1Leaf::AP_EL0_OFFSET, 6);
        assert_eq!(S1Leaf::AP_RO_OFFSET, 7);
        assert_eq!((S1Leaf::SH_OFFSET, S1Leaf::SH_BITS), (8, 2));
        assert_eq!(S1Leaf::AF_OFFSET, 10);
        assert_eq!(S1Leaf::NG_OFFSET, 11);
        assert_eq!(S1Leaf::DBM_OFFSET, 51);
        assert_eq!(S1Leaf::CONTIGUOUS_OFFSET, 52);
        assert_eq!(S1Leaf::PXN_OFFSET, 53);
        assert_eq!(S1Leaf::UXN_OFFSET, 54);
        assert_eq!((S2Leaf::MEM_ATTR_OFFSET, S2Leaf::MEM_ATTR_BITS), (2, 4));
        assert_eq!(S2Leaf::S2AP_READ_OFFSET, 6);
        assert_eq!(S2Leaf::S2AP_WRITE_OFFSET, 7);
        assert_eq!(S2Leaf::AF_OFFSET, 10);
        assert_eq!(S2Leaf::DBM_OFFSET, 51);
        assert_eq!((S2Leaf::XN_OFFSET, S2Leaf::XN_BITS), (53, 2));
    }

    /// Linux's reference PTEs (`arm_lpae_prot_to_pte()`) decode to the documented fields.
    #[test]
    fn test_desc_linux_reference_ptes() {
        // S1 R|W|NOEXEC|CACHE page at PA 0x1234_5000.
        let raw = 0x0060_0000_0000_0F47 | 0x1234_5000;
        let Descriptor::Page(l) = Descriptor::decode(raw, 3, Granule::K4, false) else {
            panic!("not a page");
        };
        let s1 = l.s1();
        assert_eq!(s1.attr_indx(), 1);
        assert!(s1.ap_el0() && !s1.ap_ro() && s1.af() && s1.ng() && s1.pxn() && s1.uxn());
        assert_eq!(s1.sh(), 3);
        assert_eq!(output_address(raw, Granule::K4, false), 0x1234_5000);
        // Same, block at level 2.
        let blk = 0x0060_0000_0000_0F45 | 0x4020_0000;
        assert!(matches!(
            Descriptor::decode(blk, 2, Granule::K4, false),
            Descriptor::Block(_)
        ));
        // S1 WRITE-only page: RW, outer shareable, no XN.
        let wo = LeafDesc(0xE43).s1();
        assert!(!wo.ap_ro() && wo.ap_el0() && wo.sh() == 2 && !wo.uxn() && !wo.pxn());
        // S2 R|W|NOEXEC|CACHE page.
        let s2 = LeafDesc(0x0060_0000_0000_07FF).s2();
        assert_eq!(s2.mem_attr(), 0xF);
        assert!(s2.s2ap_read() && s2.s2ap_write() && s2.af());
        assert_eq!((s2.sh(), s2.xn()), (3, 3));
        // S2 WRITE-only page: Normal-NC (0x5), write only.
        let s2w = LeafDesc(0x697).s2();
        assert_eq!(s2w.mem_attr(), 0x5);
        assert!(!s2w.s2ap_read() && s2w.s2ap_write() && s2w.sh() == 2);
    }

    /// Types per level and granule: 0b01 is a block only where the granule has blocks, 0b11 a
    /// table above level 3 and a page at level 3, bit 0 clear is invalid everywhere.
    #[test]
    fn test_desc_decode_by_level_and_granule() {
        use Descriptor as D;
        let cases: &[(Granule, u8, bool, bool)] = &[
            // granule, level, block valid (48-bit OA), block valid (52-bit OA)
            (Granule::K4, 0, false, false),
            (Granule::K4, 1, true, true),
            (Granule::K4, 2, true, true),
            (Granule::K4, 3, false, false),
            (Granule::K16, 0, false, false),
            (Granule::K16, 1, false, false),
            (Granule::K16, 2, true, true),
            (Granule::K16, 3, false, false),
            (Granule::K64, 1, false, true),
            (Granule::K64, 2, true, true),
            (Granule::K64, 3, false, false),
        ];
        for &(g, level, blk48, blk52) in cases {
            assert_eq!(
                matches!(D::decode(0x1, level, g, false), D::Block(_)),
                blk48,
                "{g:?} L{level}"
            );
            assert_eq!(matches!(D::decode(0x1, level, g, true), D::Block(_)), blk52);
            if !blk48 {
                assert_eq!(D::decode(0x1, level, g, false), D::Invalid);
            }
            for raw in [0u64, 2, !1] {
                assert_eq!(D::decode(raw, level, g, false), D::Invalid);
            }
            let t = D::decode(0x3, level, g, false);
            if level == 3 {
                assert!(matches!(t, D::Page(_)));
            } else {
                assert!(matches!(t, D::Table(_)));
            }
        }
        assert_eq!(D::decode(3, 4, Granule::K4, false), D::Invalid);
        assert_eq!(D::decode(3, 255, Granule::K4, false), D::Invalid);
    }

    /// Output addresses: bits below the granule are dropped, bits above 47 are not address
    /// bits, and 64K/52-bit takes OA\[51:48\] from desc\[15:12\].
    #[test]
    fn test_desc_output_address() {
        let raw = 0xFFF0_FFFF_FFFF_FFFF;
        assert_eq!(
            output_address(raw, Granule::K4, false),
            0x0000_FFFF_FFFF_F000
        );
        assert_eq!(
            output_address(raw, Granule::K16, false),
            0x0000_FFFF_FFFF_C000
        );
        assert_eq!(
            output_address(raw, Granule::K64, false),
            0x0000_FFFF_FFFF_0000
        );
        assert_eq!(
            output_address(raw, Granule::K64, true),
            0x000F_FFFF_FFFF_0000
        );
        assert_eq!(
            output_address(0x0000_1234_5678_A003, Granule::K64, true),
            0x000A_1234_5678_0000
        );
        let t = TableDesc::from_bits(0xF800_0000_0000_0003);
        assert!(t.pxn_table() && t.uxn_table() && t.ns_table());
        assert_eq!(t.ap_table(), 3);
    }
}
