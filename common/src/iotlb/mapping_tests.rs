//! Unit tests of the DMA hit path, [`Iotlb::lookup_mapping`]: it must agree exactly with
//! [`Iotlb::lookup`] followed by [`TlbEntry::mapping`].

use super::tests::{block, fill, page, s1, NH0};
use super::*;
use crate::access::Perms;

/// Every address of interest (block edges, inside, just outside) under `tags`: the DMA fast path
/// returns exactly the mapping of the entry `lookup` returns, for both privileges.
fn assert_mapping_matches_lookup(tlb: &Iotlb, tags: &[TlbTag], bases: &[u64]) -> usize {
    let mut hits = 0;
    for &tag in tags {
        for &base in bases {
            for iova in [
                base,
                base + 0x123,
                base + 0xfff,
                base + 0x1000,
                base + 0x1f_ffff,
                base + 0x20_0000,
                base + 0x3fff_ffff,
                base.wrapping_sub(1),
            ] {
                for privileged in [false, true] {
                    let want = tlb.lookup(tag, iova).map(|e| e.mapping(iova, privileged));
                    hits += usize::from(want.is_some());
                    assert_eq!(
                        tlb.lookup_mapping(tag, iova, privileged),
                        want,
                        "{tag:?} {iova:#x} privileged {privileged}"
                    );
                }
            }
        }
    }
    hits
}

/// `lookup_mapping` (the DMA hit path) agrees with `lookup` + `TlbEntry::mapping` for pages,
/// blocks, global and stage-2 entries, whichever size classes are present, and after
/// invalidations.
#[test]
fn test_iotlb_lookup_mapping_matches_lookup_and_mapping() {
    let tags = [
        s1(1),
        s1(2),
        TlbTag::stage2(Vmid(3)),
        TlbTag::stream(StreamId(9), None),
    ];
    let bases = [0x4000_0000, 0x8000_0000, 0x1_0000_0000, 0x1_4000_0000];
    // Only blocks present (no 4 KiB size class): the probe of the smallest size is not a page.
    let tlb = Iotlb::new(256);
    fill(&tlb, s1(1), block(0x4000_0000, 0x80_0000_0000, 21, 2));
    fill(&tlb, s1(1), block(0x8000_0000, 0xc0_0000_0000, 30, 1));
    assert!(assert_mapping_matches_lookup(&tlb, &tags, &bases) > 0);
    // Then pages, global pages, stage-2 and stream entries too.
    let mut e = page(0x1_0000_0000, 0x7_0000_0000);
    e.perms = Perms::X;
    e.priv_perms = Perms::RWX;
    e.attrs = MemAttrs {
        mair: 0x04,
        shareability: 2,
        device: 0x0bad_cafe,
    };
    fill(&tlb, s1(2), e);
    let mut g = page(0x1_4000_0000, 0x9_0000_0000);
    g.global = true;
    fill(&tlb, s1(1), g);
    fill(&tlb, TlbTag::stage2(Vmid(3)), page(0x4000_0000, 0x5000));
    fill(
        &tlb,
        TlbTag::stream(StreamId(9), None),
        block(0x8000_0000, 0x1_0000, 16, 0),
    );
    let before = assert_mapping_matches_lookup(&tlb, &tags, &bases);
    assert!(before > 20, "{before}");
    tlb.invalidate(Invalidation::Asid(NH0, Asid(2)));
    tlb.invalidate(Invalidation::Va {
        regime: NH0,
        asid: Some(Asid(1)),
        range: InvRange::address(0x4000_0000),
    });
    let after = assert_mapping_matches_lookup(&tlb, &tags, &bases);
    assert!(after < before, "{after} < {before}");
    assert_eq!(tlb.lookup_mapping(s1(2), 0x1_0000_0123, true), None);
    assert_eq!(tlb.lookup_mapping(s1(1), 0x4000_0123, false), None);
}

/// `lookup_mapping` counts one hit or one miss per call, like `lookup`.
#[test]
fn test_iotlb_lookup_mapping_counts_hits_and_misses() {
    let tlb = Iotlb::new(64);
    fill(&tlb, s1(1), page(0x1000, 0x2000));
    fill(&tlb, s1(1), block(0x20_0000, 0x40_0000, 21, 2));
    assert!(tlb.lookup_mapping(s1(1), 0x1234, false).is_some());
    // A hit in the second size class, and a global-less miss.
    assert!(tlb.lookup_mapping(s1(1), 0x20_1234, false).is_some());
    assert!(tlb.lookup_mapping(s1(2), 0x1234, true).is_none());
    let st = tlb.stats();
    assert_eq!((st.hits, st.misses), (2, 1));
}
