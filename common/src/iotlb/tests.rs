//! Unit tests: one property per test, named after the behaviour.

use super::*;
use crate::access::Perms;

pub(super) const NH0: Regime = Regime::Nh { vmid: Vmid(0) };

/// A block of `1 << size_log2` bytes at `input` -> `output`, leaf level `level`.
pub(super) fn block(input: u64, output: u64, size_log2: u8, level: i8) -> TlbEntry {
    TlbEntry {
        input,
        output,
        size_log2,
        level,
        perms: Perms::R,
        priv_perms: Perms::RW,
        attrs: MemAttrs {
            mair: 0xff,
            shareability: 3,
            device: 0xdead_beef,
        },
        global: false,
        ipa: None,
        flags: 0x1234_5678,
    }
}

/// A 4 KiB page.
pub(super) fn page(input: u64, output: u64) -> TlbEntry {
    block(input, output, 12, 3)
}

/// Fill `tag` with `entry` through a fresh token, asserting it was stored.
pub(super) fn fill(tlb: &Iotlb, tag: TlbTag, entry: TlbEntry) {
    let token = tlb.begin_fill(tag);
    assert!(
        tlb.insert(token, entry),
        "insert of {entry:x?} under {tag:?} refused"
    );
}

pub(super) fn s1(asid: u16) -> TlbTag {
    TlbTag::stage1(Vmid(0), Asid(asid))
}

fn hit(tlb: &Iotlb, tag: TlbTag, iova: u64) -> bool {
    tlb.lookup(tag, iova).is_some()
}

/// A stored entry comes back unchanged, field by field, and translates addresses inside it.
#[test]
fn test_iotlb_insert_then_lookup_returns_entry() {
    let tlb = Iotlb::new(64);
    let mut e = page(0x1234_5000, 0x8_0000_0000);
    e.ipa = Some(0x40_0000_0000);
    e.level = -1;
    fill(&tlb, s1(5), e);
    assert_eq!(tlb.lookup(s1(5), 0x1234_5fff), Some(e));
    let got = tlb.lookup(s1(5), 0x1234_5678).unwrap();
    assert_eq!(got.translate(0x1234_5678), 0x8_0000_0678);
    let m = got.mapping(0x1234_5678, true);
    assert_eq!(
        (m.output, m.len, m.perms),
        (0x8_0000_0678, 0x988, Perms::RW)
    );
    assert_eq!(got.mapping(0x1234_5678, false).perms, Perms::R);
    assert!(!hit(&tlb, s1(5), 0x1234_6000));
    assert!(!hit(&tlb, s1(5), 0x1234_4fff));
}

/// A 2 MiB and a 1 GiB block are found for any address inside them, next to 4 KiB pages.
#[test]
fn test_iotlb_block_entries_found_for_any_address_inside() {
    let tlb = Iotlb::new(64);
    fill(&tlb, s1(1), page(0x1000, 0x9000));
    fill(&tlb, s1(1), block(0x20_0000, 0x4000_0000, 21, 2));
    fill(&tlb, s1(1), block(0x4000_0000, 0x8000_0000, 30, 1));
    for iova in [0x20_0000, 0x20_1234, 0x3f_ffff] {
        assert_eq!(
            tlb.lookup(s1(1), iova).unwrap().translate(iova),
            0x4000_0000 + iova - 0x20_0000
        );
    }
    for iova in [0x4000_0000u64, 0x5234_5678, 0x7fff_ffff] {
        assert_eq!(
            tlb.lookup(s1(1), iova).unwrap().translate(iova),
            iova + 0x4000_0000
        );
    }
    assert_eq!(tlb.lookup(s1(1), 0x1abc).unwrap().translate(0x1abc), 0x9abc);
    assert!(!hit(&tlb, s1(1), 0x40_0000));
    assert!(!hit(&tlb, s1(1), 0x8000_0000));
}

/// Entries are private to their tag: other ASIDs, VMIDs, stage 2, streams and regimes miss.
#[test]
fn test_iotlb_tags_do_not_alias() {
    let tlb = Iotlb::new(256);
    let tags = [
        s1(1),
        s1(2),
        TlbTag::stage1(Vmid(1), Asid(1)),
        TlbTag::stage1_in(Regime::El2, Asid(1)),
        TlbTag::stage2(Vmid(0)),
        TlbTag::stage2(Vmid(1)),
        TlbTag::stream(StreamId(1), None),
        TlbTag::stream(StreamId(1), Some(SubstreamId(0))),
        TlbTag::stream(StreamId(2), None),
    ];
    for (i, &tag) in tags.iter().enumerate() {
        fill(&tlb, tag, page(0x1000, 0x10_0000 * (i as u64 + 1)));
    }
    for (i, &tag) in tags.iter().enumerate() {
        assert_eq!(
            tlb.lookup(tag, 0x1000).unwrap().output,
            0x10_0000 * (i as u64 + 1),
            "{tag:?}"
        );
    }
}

/// A global (nG = 0) entry matches every ASID of its regime, but not other VMIDs or stage 2.
#[test]
fn test_iotlb_global_entry_matches_every_asid_of_regime() {
    let tlb = Iotlb::new(64);
    let mut e = page(0xffff_0000, 0x5000);
    e.global = true;
    fill(&tlb, s1(3), e);
    assert!(hit(&tlb, s1(3), 0xffff_0010));
    assert!(hit(&tlb, s1(999), 0xffff_0010));
    assert!(tlb.lookup(s1(7), 0xffff_0000).unwrap().global);
    assert!(!hit(&tlb, TlbTag::stage1(Vmid(4), Asid(3)), 0xffff_0000));
    assert!(!hit(&tlb, TlbTag::stage2(Vmid(0)), 0xffff_0000));
    // `global` means nothing for a stage-2 tag: stored as a plain entry of that tag.
    fill(&tlb, TlbTag::stage2(Vmid(9)), e);
    assert!(
        !tlb.lookup(TlbTag::stage2(Vmid(9)), 0xffff_0000)
            .unwrap()
            .global
    );
}

/// Invalidation::All removes every kind of entry.
#[test]
fn test_iotlb_invalidate_all() {
    let tlb = Iotlb::new(64);
    let tags = [
        s1(1),
        TlbTag::stage2(Vmid(3)),
        TlbTag::stream(StreamId(4), None),
    ];
    for tag in tags {
        fill(&tlb, tag, page(0x1000, 0x2000));
    }
    tlb.invalidate(Invalidation::All);
    for tag in tags {
        assert!(!hit(&tlb, tag, 0x1000));
    }
}

/// TLBI_NH_ALL: every stage-1 entry of the VMID (all ASIDs, global too) goes; its stage-2
/// entries and other VMIDs stay.
#[test]
fn test_iotlb_invalidate_stage1_all_keeps_stage2() {
    let tlb = Iotlb::new(64);
    let v = Vmid(7);
    let mut g = page(0x9000, 0x1000);
    g.global = true;
    fill(&tlb, TlbTag::stage1(v, Asid(1)), page(0x1000, 0x2000));
    fill(&tlb, TlbTag::stage1(v, Asid(2)), page(0x1000, 0x3000));
    fill(&tlb, TlbTag::stage1(v, Asid(2)), g);
    fill(&tlb, TlbTag::stage2(v), page(0x1000, 0x4000));
    fill(&tlb, TlbTag::stage1(Vmid(8), Asid(1)), page(0x1000, 0x5000));
    tlb.invalidate(Invalidation::Stage1All(Regime::Nh { vmid: v }));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(1)), 0x1000));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(2)), 0x1000));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(2)), 0x9000));
    assert!(hit(&tlb, TlbTag::stage2(v), 0x1000));
    assert!(hit(&tlb, TlbTag::stage1(Vmid(8), Asid(1)), 0x1000));
}

/// TLBI_EL2_ALL removes EL2 entries only.
#[test]
fn test_iotlb_invalidate_el2_all_keeps_el1() {
    let tlb = Iotlb::new(64);
    fill(
        &tlb,
        TlbTag::stage1_in(Regime::El2, Asid(1)),
        page(0x1000, 0x2000),
    );
    fill(&tlb, s1(1), page(0x1000, 0x3000));
    tlb.invalidate(Invalidation::Stage1All(Regime::El2));
    assert!(!hit(&tlb, TlbTag::stage1_in(Regime::El2, Asid(1)), 0x1000));
    assert!(hit(&tlb, s1(1), 0x1000));
}

/// TLBI_EL2_VA removes the EL2 entry of that ASID and address; the EL1 entry with the same ASID
/// and address stays (different regime).
#[test]
fn test_iotlb_invalidate_el2_va_keeps_el1() {
    let tlb = Iotlb::new(64);
    let el2 = TlbTag::stage1_in(Regime::El2, Asid(1));
    fill(&tlb, el2, page(0x1000, 0x2000));
    fill(&tlb, el2, page(0x2000, 0x3000));
    fill(&tlb, s1(1), page(0x1000, 0x4000));
    tlb.invalidate(Invalidation::Va {
        regime: Regime::El2,
        asid: Some(Asid(1)),
        range: InvRange::address(0x1000),
    });
    assert!(!hit(&tlb, el2, 0x1000));
    assert!(hit(&tlb, el2, 0x2000));
    assert!(hit(&tlb, s1(1), 0x1000));
}

/// TLBI_S12_VMALL: stage-1 and stage-2 entries of the VMID go; other VMIDs stay.
#[test]
fn test_iotlb_invalidate_vmid_removes_both_stages() {
    let tlb = Iotlb::new(64);
    let v = Vmid(7);
    fill(&tlb, TlbTag::stage1(v, Asid(1)), page(0x1000, 0x2000));
    fill(&tlb, TlbTag::stage2(v), page(0x1000, 0x4000));
    fill(&tlb, TlbTag::stage2(Vmid(8)), page(0x1000, 0x5000));
    tlb.invalidate(Invalidation::Vmid(v));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(1)), 0x1000));
    assert!(!hit(&tlb, TlbTag::stage2(v), 0x1000));
    assert!(hit(&tlb, TlbTag::stage2(Vmid(8)), 0x1000));
}

/// TLBI_NH_ASID removes that ASID's non-global entries; global entries and other ASIDs stay.
#[test]
fn test_iotlb_invalidate_asid_keeps_global_and_other_asids() {
    let tlb = Iotlb::new(64);
    let mut g = page(0x9000, 0x1000);
    g.global = true;
    fill(&tlb, s1(1), page(0x1000, 0x2000));
    fill(&tlb, s1(1), g);
    fill(&tlb, s1(2), page(0x1000, 0x3000));
    tlb.invalidate(Invalidation::Asid(NH0, Asid(1)));
    assert!(!hit(&tlb, s1(1), 0x1000));
    assert!(hit(&tlb, s1(1), 0x9000));
    assert!(hit(&tlb, s1(2), 0x1000));
}

/// TLBI_NH_VA removes exactly the entries of the ASID overlapping the range, whatever their size,
/// plus global entries in range; neighbours, other ASIDs and globals outside stay.
#[test]
fn test_iotlb_invalidate_va_range_removes_overlapping_only() {
    let tlb = Iotlb::new(256);
    for i in 0..8u64 {
        fill(
            &tlb,
            s1(1),
            page(0x1000_0000 + i * 0x1000, 0x100_0000 + i * 0x1000),
        );
        fill(
            &tlb,
            s1(2),
            page(0x1000_0000 + i * 0x1000, 0x200_0000 + i * 0x1000),
        );
    }
    fill(&tlb, s1(1), block(0x2000_0000, 0x4000_0000, 21, 2));
    let mut g_in = page(0x1000_3000, 0x7000);
    g_in.global = true;
    let mut g_out = page(0x5000_0000, 0x8000);
    g_out.global = true;
    fill(&tlb, s1(9), g_in);
    fill(&tlb, s1(9), g_out);
    // Pages 2..=4, plus the last page of the 2 MiB block region boundary probe below.
    tlb.invalidate(Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(1)),
        range: InvRange::new(0x1000_2000, 0x3000).with_leaf(true),
    });
    for i in 0..8u64 {
        let iova = 0x1000_0000 + i * 0x1000;
        assert_eq!(hit(&tlb, s1(1), iova), !(2..=4).contains(&i), "page {i}");
        assert!(hit(&tlb, s1(2), iova));
    }
    // The global page at 0x1000_3000 was in range (any ASID's lookup misses it now).
    assert_eq!(tlb.lookup(s1(2), 0x1000_3000).unwrap().output, 0x200_3000);
    assert!(!hit(&tlb, s1(5), 0x1000_3000));
    assert!(hit(&tlb, s1(5), 0x5000_0000));
    // A one-page invalidation inside the 2 MiB block removes the whole block.
    assert!(hit(&tlb, s1(1), 0x2000_0000));
    tlb.invalidate(Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(1)),
        range: InvRange::address(0x201f_f000),
    });
    assert!(!hit(&tlb, s1(1), 0x2000_0000));
}

/// A leaf invalidation with TTL spares entries of other levels; without Leaf, TTL is ignored.
#[test]
fn test_iotlb_invalidate_va_ttl_honoured_for_leaf_only() {
    let tlb = Iotlb::new(64);
    // A nested entry: 4 KiB combined size, but its stage-1 leaf was a level-2 block.
    fill(&tlb, s1(1), block(0x20_0000, 0x4000_0000, 12, 2));
    fill(&tlb, s1(1), page(0x20_1000, 0x5000_0000));
    let va = |range| Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(1)),
        range,
    };
    tlb.invalidate(va(InvRange::new(0x20_0000, 0x2000)
        .with_leaf(true)
        .with_ttl(3)));
    assert!(hit(&tlb, s1(1), 0x20_0000), "level-2 entry spared by TTL 3");
    assert!(!hit(&tlb, s1(1), 0x20_1000));
    fill(&tlb, s1(1), page(0x20_1000, 0x5000_0000));
    tlb.invalidate(va(InvRange::new(0x20_0000, 0x2000)
        .with_leaf(false)
        .with_ttl(1)));
    assert!(!hit(&tlb, s1(1), 0x20_0000), "non-leaf: TTL ignored");
    assert!(!hit(&tlb, s1(1), 0x20_1000));
}

/// TLBI_NH_VAA removes the address in every ASID of the VMID (and global entries), found by a
/// scan; other addresses, stage-2 entries and other VMIDs stay.
#[test]
fn test_iotlb_invalidate_vaa_covers_all_asids() {
    let tlb = Iotlb::new(64);
    let v = Vmid(3);
    let mut g = page(0x1000, 0x9000);
    g.global = true;
    fill(&tlb, TlbTag::stage1(v, Asid(1)), page(0x1000, 0x2000));
    fill(&tlb, TlbTag::stage1(v, Asid(1)), page(0x2000, 0x2000));
    fill(&tlb, TlbTag::stage1(v, Asid(2)), page(0x1000, 0x3000));
    fill(&tlb, TlbTag::stage1(v, Asid(3)), g);
    fill(&tlb, TlbTag::stage2(v), page(0x1000, 0x4000));
    fill(&tlb, TlbTag::stage1(Vmid(4), Asid(1)), page(0x1000, 0x5000));
    tlb.invalidate(Invalidation::Va {
        regime: Regime::Nh { vmid: v },
        asid: None,
        range: InvRange::address(0x1000),
    });
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(1)), 0x1000));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(2)), 0x1000));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(7)), 0x1000));
    assert!(hit(&tlb, TlbTag::stage1(v, Asid(1)), 0x2000));
    assert!(hit(&tlb, TlbTag::stage2(v), 0x1000));
    assert!(hit(&tlb, TlbTag::stage1(Vmid(4), Asid(1)), 0x1000));
}

/// Policy: in a table too large to scan, TLBI_NH_VAA removes the VMID's whole stage-1 space.
#[test]
fn test_iotlb_invalidate_vaa_in_huge_table_removes_stage1_space() {
    let tlb = Iotlb::new(1 << 17);
    let v = Vmid(3);
    fill(&tlb, TlbTag::stage1(v, Asid(1)), page(0x2000, 0x2000));
    fill(&tlb, TlbTag::stage2(v), page(0x1000, 0x4000));
    tlb.invalidate(Invalidation::Va {
        regime: Regime::Nh { vmid: v },
        asid: None,
        range: InvRange::address(0x1000),
    });
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(1)), 0x2000));
    assert!(hit(&tlb, TlbTag::stage2(v), 0x1000));
}

/// A range too large to probe block by block is handled by scanning the table: still exact
/// (entries outside the range and other ASIDs stay).
#[test]
fn test_iotlb_invalidate_large_range_scans_exactly() {
    let tlb = Iotlb::new(64);
    fill(&tlb, s1(1), page(0x7000_0000_0000, 0x2000));
    fill(&tlb, s1(1), block(0x7fff_ffe0_0000, 0x4000_0000, 21, 2));
    fill(&tlb, s1(1), page(0x1000, 0x2000));
    fill(&tlb, s1(2), page(0x7000_0000_0000, 0x3000));
    tlb.invalidate(Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(1)),
        range: InvRange::new(0x7000_0000_0000, 0x1000_0000_0000),
    });
    assert!(!hit(&tlb, s1(1), 0x7000_0000_0000));
    assert!(!hit(&tlb, s1(1), 0x7fff_ffff_f000));
    assert!(hit(&tlb, s1(1), 0x1000));
    assert!(hit(&tlb, s1(2), 0x7000_0000_0000));
}

/// Policy: when both probing and scanning would visit more than 64 Ki slots, the whole ASID is
/// invalidated instead (bounded cost); other ASIDs stay.
#[test]
fn test_iotlb_invalidate_huge_range_in_huge_table_falls_back_to_whole_asid() {
    let tlb = Iotlb::new(1 << 17);
    fill(&tlb, s1(1), page(0x7000_0000_0000, 0x2000));
    fill(&tlb, s1(1), page(0x1000, 0x2000));
    fill(&tlb, s1(2), page(0x1000, 0x3000));
    tlb.invalidate(Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(1)),
        range: InvRange::new(0x7000_0000_0000, u64::MAX),
    });
    assert!(!hit(&tlb, s1(1), 0x7000_0000_0000));
    assert!(
        !hit(&tlb, s1(1), 0x1000),
        "outside the range, but the whole ASID went"
    );
    assert!(hit(&tlb, s1(2), 0x1000));
}

/// Linux `__arm_smmu_tlb_inv_range()` with RIL (IHI 0070 §4.4.1.1): Linux unmaps 37 pages at
/// 0x1000_0000 in ASID 5 with two range commands, (NUM 4, SCALE 0) and (NUM 0, SCALE 5), 4 KiB
/// granule, TTL 3, Leaf. Exactly those 37 pages go.
#[test]
fn test_iotlb_linux_37_page_unmap_removes_exactly_those_pages() {
    let tlb = Iotlb::new(1024);
    let tag = TlbTag::stage1(Vmid(0), Asid(5));
    for i in 0..40u64 {
        fill(&tlb, tag, page(0x0fff_f000 + (i << 12), i << 12));
    }
    // (NUM + 1) << SCALE pages from Addr.
    for (addr, num, scale) in [(0x1000_0000u64, 4u64, 0u32), (0x1000_5000, 0, 5)] {
        let range = InvRange::new(addr, (num + 1) << (scale + 12))
            .with_leaf(true)
            .with_ttl(3);
        tlb.invalidate(Invalidation::Va {
            regime: NH0,
            asid: Some(Asid(5)),
            range,
        });
    }
    for i in 0..40u64 {
        let iova = 0x0fff_f000 + (i << 12);
        let gone = (0x1000_0000..0x1002_5000).contains(&iova);
        assert_eq!(hit(&tlb, tag, iova), !gone, "{iova:#x}");
    }
}

/// Linux's RIL block unmap: three 2 MiB blocks at 0x4000_0000 (SCALE 9, NUM 2, TTL 2, Leaf)
/// remove those blocks and keep the fourth.
#[test]
fn test_iotlb_linux_three_block_unmap() {
    let tlb = Iotlb::new(1024);
    let tag = TlbTag::stage1(Vmid(0), Asid(5));
    for i in 0..4u64 {
        fill(&tlb, tag, block(0x4000_0000 + (i << 21), i << 21, 21, 2));
    }
    let range = InvRange::new(0x4000_0000, 3 << (9 + 12))
        .with_leaf(true)
        .with_ttl(2);
    tlb.invalidate(Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(5)),
        range,
    });
    for i in 0..4u64 {
        assert_eq!(
            hit(&tlb, tag, 0x4000_0000 + (i << 21) + 0x1234),
            i == 3,
            "block {i}"
        );
    }
}

/// TLBI_S2_IPA removes stage-2 entries overlapping the IPA range, and (policy) every nested
/// entry of the VMID; plain stage-1 entries of a VMID without nested entries stay.
#[test]
fn test_iotlb_invalidate_ipa_removes_stage2_and_nested() {
    let tlb = Iotlb::new(256);
    let v = Vmid(5);
    fill(&tlb, TlbTag::stage2(v), page(0x8000_0000, 0x1_0000_0000));
    fill(&tlb, TlbTag::stage2(v), page(0x8000_1000, 0x1_0000_1000));
    let mut nested = page(0x1000, 0x1_0000_0000);
    nested.ipa = Some(0x8000_0000);
    fill(&tlb, TlbTag::stage1(v, Asid(1)), nested);
    fill(&tlb, TlbTag::stage1(Vmid(6), Asid(1)), page(0x1000, 0x2000));
    fill(&tlb, TlbTag::stage2(Vmid(6)), page(0x8000_0000, 0x2000));
    tlb.invalidate(Invalidation::Ipa {
        vmid: v,
        range: InvRange::address(0x8000_0000),
    });
    assert!(!hit(&tlb, TlbTag::stage2(v), 0x8000_0000));
    assert!(hit(&tlb, TlbTag::stage2(v), 0x8000_1000));
    assert!(!hit(&tlb, TlbTag::stage1(v, Asid(1)), 0x1000));
    assert!(hit(&tlb, TlbTag::stage1(Vmid(6), Asid(1)), 0x1000));
    tlb.invalidate(Invalidation::Ipa {
        vmid: Vmid(6),
        range: InvRange::address(0x8000_0000),
    });
    assert!(!hit(&tlb, TlbTag::stage2(Vmid(6)), 0x8000_0000));
    assert!(
        hit(&tlb, TlbTag::stage1(Vmid(6), Asid(1)), 0x1000),
        "no nested entries in VMID 6"
    );
}

/// CFGI_STE policy: Invalidation::Stream removes every substream of the stream, not others.
#[test]
fn test_iotlb_invalidate_stream_removes_all_substreams() {
    let tlb = Iotlb::new(64);
    let t0 = TlbTag::stream(StreamId(10), None);
    let t1 = TlbTag::stream(StreamId(10), Some(SubstreamId(3)));
    let other = TlbTag::stream(StreamId(11), None);
    for t in [t0, t1, other] {
        fill(&tlb, t, page(0x1000, 0x2000));
    }
    tlb.invalidate(Invalidation::Stream(StreamId(10)));
    assert!(!hit(&tlb, t0, 0x1000));
    assert!(!hit(&tlb, t1, 0x1000));
    assert!(hit(&tlb, other, 0x1000));
}

/// Invalidation::Tag removes exactly one tag (here one substream).
#[test]
fn test_iotlb_invalidate_tag_removes_one_tag() {
    let tlb = Iotlb::new(64);
    let t0 = TlbTag::stream(StreamId(10), None);
    let t1 = TlbTag::stream(StreamId(10), Some(SubstreamId(3)));
    fill(&tlb, t0, page(0x1000, 0x2000));
    fill(&tlb, t1, page(0x1000, 0x2000));
    tlb.invalidate(Invalidation::Tag(t1));
    assert!(hit(&tlb, t0, 0x1000));
    assert!(!hit(&tlb, t1, 0x1000));
}

/// An insert whose token predates a covering invalidation is refused, for every scope.
#[test]
fn test_iotlb_insert_refused_after_covering_invalidation() {
    let v = Vmid(2);
    let tag = TlbTag::stage1(v, Asid(4));
    let nh = Regime::Nh { vmid: v };
    let scopes = [
        Invalidation::All,
        Invalidation::Stage1All(nh),
        Invalidation::Vmid(v),
        Invalidation::Asid(nh, Asid(4)),
        Invalidation::Tag(tag),
        Invalidation::Va {
            regime: nh,
            asid: Some(Asid(4)),
            range: InvRange::address(0x1000),
        },
        Invalidation::Va {
            regime: nh,
            asid: None,
            range: InvRange::address(0x1000),
        },
    ];
    for scope in scopes {
        let tlb = Iotlb::new(64);
        let token = tlb.begin_fill(tag);
        tlb.invalidate(scope);
        assert!(!tlb.insert(token, page(0x1000, 0x2000)), "{scope:?}");
        assert!(!hit(&tlb, tag, 0x1000));
        assert_eq!(tlb.stats().refused, 1);
    }
    // Stage 2 and nested: TLBI_S2_IPA.
    let tlb = Iotlb::new(64);
    let s2 = tlb.begin_fill(TlbTag::stage2(v));
    let nested = tlb.begin_fill(tag);
    tlb.invalidate(Invalidation::Ipa {
        vmid: v,
        range: InvRange::address(0x8000_0000),
    });
    assert!(!tlb.insert(s2, page(0x8000_0000, 0x1000)));
    let mut n = page(0x1000, 0x1000);
    n.ipa = Some(0x8000_0000);
    assert!(!tlb.insert(nested, n));
}

/// An invalidation of something else does not refuse a fill.
#[test]
fn test_iotlb_insert_accepted_after_unrelated_invalidation() {
    let tlb = Iotlb::new(64);
    let token = tlb.begin_fill(s1(1));
    tlb.invalidate(Invalidation::Asid(NH0, Asid(2)));
    tlb.invalidate(Invalidation::Vmid(Vmid(9)));
    tlb.invalidate(Invalidation::Stream(StreamId(3)));
    assert!(tlb.insert(token, page(0x1000, 0x2000)));
    assert!(hit(&tlb, s1(1), 0x1000));
}

/// Sizes below 4 KiB, levels outside -1..=3 and misaligned addresses are refused.
#[test]
fn test_iotlb_malformed_entries_refused() {
    let tlb = Iotlb::new(64);
    let bad = [
        block(0x1000, 0x2000, 11, 3),
        block(0x1000, 0x2000, 64, 3),
        block(0x1000, 0x2000, 12, 4),
        block(0x1000, 0x2000, 12, -2),
        block(0x1800, 0x2000, 12, 3),
        block(0x1000, 0x2800, 12, 3),
        block(0x20_0000, 0x1000, 21, 2),
        TlbEntry {
            ipa: Some(0x1800),
            ..page(0x1000, 0x2000)
        },
    ];
    for e in bad {
        assert!(!tlb.insert(tlb.begin_fill(s1(1)), e), "{e:x?}");
    }
    assert_eq!(tlb.stats().refused, bad.len() as u64);
    assert!(!hit(&tlb, s1(1), 0x1000));
    // The largest block: the top half of the address space.
    fill(&tlb, s1(1), block(1 << 63, 0, 63, 0));
    assert_eq!(
        tlb.lookup(s1(1), u64::MAX).unwrap().translate(u64::MAX),
        u64::MAX >> 1
    );
}

/// A full set replaces one way per insert (no flush), counting evictions; the newest entry is
/// always present and the set never holds more than its ways.
#[test]
fn test_iotlb_full_set_replaces_without_flush() {
    let tlb = Iotlb::new(4); // one set of four ways
    assert_eq!(tlb.capacity(), 4);
    for i in 0..20u64 {
        fill(&tlb, s1(1), page(i << 12, i << 20));
        assert!(hit(&tlb, s1(1), i << 12), "newest entry {i}");
    }
    let present = (0..20u64).filter(|i| hit(&tlb, s1(1), i << 12)).count();
    assert_eq!(present, 4);
    let st = tlb.stats();
    assert_eq!((st.inserts, st.evictions), (20, 16));
}

/// Dead (invalidated) and same-key slots are reused before live entries are evicted.
#[test]
fn test_iotlb_dead_and_same_key_slots_reused_first() {
    let tlb = Iotlb::new(4);
    for i in 0..4u64 {
        fill(&tlb, s1(1), page(i << 12, i << 20));
    }
    fill(&tlb, s1(1), page(0, 0x77 << 20)); // same key: updated in place
    assert_eq!(tlb.lookup(s1(1), 0).unwrap().output, 0x77 << 20);
    tlb.invalidate(Invalidation::Asid(NH0, Asid(1)));
    for i in 0..4u64 {
        fill(&tlb, s1(2), page(i << 12, i << 20));
    }
    assert_eq!(tlb.stats().evictions, 0);
    assert_eq!((0..4u64).filter(|i| hit(&tlb, s1(2), i << 12)).count(), 4);
}

/// Statistics count hits, misses, inserts, refusals and invalidations.
#[test]
fn test_iotlb_stats_count_operations() {
    let tlb = Iotlb::new(64);
    assert_eq!(tlb.stats(), IotlbStats::default());
    assert!(!hit(&tlb, s1(1), 0x1000));
    fill(&tlb, s1(1), page(0x1000, 0x2000));
    assert!(hit(&tlb, s1(1), 0x1000));
    assert!(hit(&tlb, s1(1), 0x1fff));
    // Counts from other threads are summed in.
    std::thread::scope(|s| {
        s.spawn(|| assert!(hit(&tlb, s1(1), 0x1000)));
    });
    std::thread::scope(|s| {
        s.spawn(|| assert!(tlb.lookup(TlbTag::stage2(Vmid(1)), 0).is_none()));
    });
    let token = tlb.begin_fill(s1(1));
    tlb.invalidate(Invalidation::All);
    assert!(!tlb.insert(token, page(0x3000, 0x2000)));
    assert_eq!(
        tlb.stats(),
        IotlbStats {
            hits: 3,
            misses: 2,
            inserts: 1,
            refused: 1,
            evictions: 0,
            invalidations: 1
        }
    );
}

/// Generations are exact for up to 256 consecutive ASIDs of a VMID and 64 consecutive VMIDs:
/// invalidating one never hides another (ASIDs and VMIDs are allocated sequentially).
#[test]
fn test_iotlb_consecutive_asids_and_vmids_invalidate_independently() {
    let tlb = Iotlb::new(4096);
    for a in 1..=256u16 {
        fill(&tlb, s1(a), page(0x1000, 0x2000));
    }
    for v in 1..=64u16 {
        fill(&tlb, TlbTag::stage2(Vmid(v)), page(0x1000, 0x2000));
        fill(&tlb, TlbTag::stage1(Vmid(v), Asid(1)), page(0x1000, 0x2000));
    }
    tlb.invalidate(Invalidation::Asid(NH0, Asid(77)));
    tlb.invalidate(Invalidation::Vmid(Vmid(33)));
    for a in 1..=256u16 {
        assert_eq!(hit(&tlb, s1(a), 0x1000), a != 77, "ASID {a}");
    }
    for v in 1..=64u16 {
        assert_eq!(
            hit(&tlb, TlbTag::stage2(Vmid(v)), 0x1000),
            v != 33,
            "VMID {v}"
        );
        assert_eq!(
            hit(&tlb, TlbTag::stage1(Vmid(v), Asid(1)), 0x1000),
            v != 33,
            "VMID {v}"
        );
    }
}

/// Counts stay exact with more concurrent threads than per-thread stripes (the extra threads
/// share the overflow stripe) and across thread exit and index reuse.
#[test]
fn test_iotlb_stats_exact_beyond_stripe_count() {
    use std::sync::Barrier;
    let tlb = Iotlb::new(64);
    fill(&tlb, s1(1), page(0x1000, 0x2000));
    let threads = 80;
    let all_started = Barrier::new(threads);
    for _round in 0..2 {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    all_started.wait(); // all alive at once: more than 64 indices in use
                    for _ in 0..100 {
                        assert!(hit(&tlb, s1(1), 0x1000));
                        assert!(!hit(&tlb, s1(1), 0x9000));
                    }
                });
            }
        });
    }
    let st = tlb.stats();
    assert_eq!((st.hits, st.misses), (2 * 80 * 100, 2 * 80 * 100));
}

/// Tag packing keeps VMID, ASID, StreamID and SubstreamID apart (no two distinct ids collide).
#[test]
fn test_tlb_tag_packing_distinct() {
    let tags = [
        TlbTag::stage1(Vmid(1), Asid(0)),
        TlbTag::stage1(Vmid(0), Asid(1)),
        TlbTag::stage1(Vmid(0xffff), Asid(0xffff)),
        TlbTag::stage1_in(Regime::El2, Asid(1)),
        TlbTag::stage2(Vmid(1)),
        TlbTag::stream(StreamId(1), None),
        TlbTag::stream(StreamId(1), Some(SubstreamId(0))),
        TlbTag::stream(StreamId(0xffff_ffff), Some(SubstreamId(0xf_ffff))),
    ];
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // VMID [47:32], the kind copy (NH = 1) at [31:29], ASID [15:0].
    assert_eq!(
        TlbTag::stage1(Vmid(0x12), Asid(0x34)).raw() & 0xffff_ffff_ffff,
        0x12_2000_0034
    );
    // Stream tags keep all 32 StreamID bits (no kind copy).
    assert_eq!(
        TlbTag::stream(StreamId(0xe000_0001), None).raw() & 0xffff_ffff,
        0xe000_0001
    );
}

/// synchronize returns at once without guards, and waits for a guard taken before it.
#[test]
fn test_iotlb_synchronize_waits_for_live_guard() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Barrier;
    let tlb = Iotlb::new(64);
    tlb.synchronize();
    let dropped = AtomicBool::new(false);
    let pinned = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let g = tlb.pin();
            let nested = tlb.pin();
            drop(nested);
            pinned.wait();
            std::thread::sleep(std::time::Duration::from_millis(50));
            dropped.store(true, Ordering::SeqCst);
            drop(g);
        });
        pinned.wait();
        tlb.synchronize();
        assert!(
            dropped.load(Ordering::SeqCst),
            "synchronize returned while a guard was live"
        );
    });
}

/// A thread holding its own guard can still synchronize (its own guards are not waited for).
#[test]
fn test_iotlb_synchronize_skips_own_guards() {
    let tlb = Iotlb::new(64);
    let _g = tlb.pin();
    tlb.synchronize();
}

/// Guards taken continuously by other threads do not starve synchronize.
#[test]
fn test_iotlb_synchronize_not_starved_by_new_guards() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tlb = Iotlb::new(64);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _g = tlb.pin();
                    let _ = tlb.lookup(s1(1), 0x1000);
                }
            });
        }
        for _ in 0..200 {
            tlb.synchronize();
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// The masked global variant of a stage-1 tag is the tag `TlbTag::packed` builds for the
/// regime's global kind (same VMID, so same space), for every VMID bit and ASID; other tags
/// have none.
#[test]
fn test_iotlb_global_variant_matches_packed_construction() {
    for vmid in [0u16, 1, 0x3f, 0x40, 0x1234, 0xffff] {
        for asid in [0u16, 1, 0x8000, 0xffff] {
            let tag = TlbTag::stage1(Vmid(vmid), Asid(asid));
            let packed = TlbTag::packed((KIND_NH_GLOBAL << KIND_SHIFT) | (u64::from(vmid) << 32));
            assert_eq!(
                tag.global_variant(),
                Some(packed),
                "VMID {vmid} ASID {asid}"
            );
            assert_eq!(packed.space_bits(), tag.space_bits());
            let el2 = TlbTag::stage1_in(Regime::El2, Asid(asid));
            assert_eq!(
                el2.global_variant(),
                Some(TlbTag::packed(KIND_EL2_GLOBAL << KIND_SHIFT))
            );
        }
        assert_eq!(TlbTag::stage2(Vmid(vmid)).global_variant(), None);
    }
    assert_eq!(
        TlbTag::stream(StreamId(7), Some(SubstreamId(3))).global_variant(),
        None
    );
}
