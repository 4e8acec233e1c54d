//! Decode-level tests: parse the generated table back with the same typed records.

use super::*;
use viommu_common::topology::IdMapRange;

struct Node {
    offset: usize,
    header: NodeHeader,
    body: Vec<u8>,
    maps: Vec<IdMapping>,
}

fn nodes(t: &[u8]) -> Vec<Node> {
    assert_eq!(&t[..4], b"IORT");
    assert_eq!(
        u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize,
        t.len()
    );
    assert_eq!(t[8], IORT_REVISION);
    assert_eq!(t.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
    let count = u32::from_le_bytes(t[36..40].try_into().unwrap());
    let mut off = u32::from_le_bytes(t[40..44].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        let (header, _) = NodeHeader::read_from_prefix(&t[off..]).unwrap();
        let len = usize::from(header.length.get());
        let moff = header.mapping_offset.get() as usize;
        let n = header.mapping_count.get() as usize;
        let body_end = if n == 0 { len } else { moff };
        let body = t[off + size_of::<NodeHeader>()..off + body_end].to_vec();
        let maps = (0..n)
            .map(|i| {
                IdMapping::read_from_bytes(&t[off + moff + 20 * i..off + moff + 20 * (i + 1)])
                    .unwrap()
            })
            .collect();
        out.push(Node {
            offset: off,
            header,
            body,
            maps,
        });
        off += len;
    }
    assert_eq!(off, t.len(), "nodes cover the table exactly");
    out
}

fn m(input: u32, count_minus_one: u32, output: u32, reference: usize, flags: u32) -> IdMapping {
    IdMapping {
        input_base: input.into(),
        id_count: count_minus_one.into(),
        output_base: output.into(),
        output_reference: (reference as u32).into(),
        flags: flags.into(),
    }
}

fn sample_map() -> IdMap {
    let mut map = IdMap::new();
    map.map(IdMapRange {
        rid_base: 0,
        out_base: 0,
        len: 0x100,
    })
    .unwrap();
    map.bypass(0x100, 0x10).unwrap();
    map.map(IdMapRange {
        rid_base: 0x200,
        out_base: 0x1000,
        len: 0x20,
    })
    .unwrap();
    map
}

#[test]
fn wired_smmu_without_its() {
    let smmu = IortSmmuV3 {
        event_gsiv: Some(106),
        pri_gsiv: Some(107),
        gerr_gsiv: Some(108),
        sync_gsiv: Some(109),
        httu: HttuOverride::AccessDirty,
        ..IortSmmuV3::new(0x0905_0000)
    };
    let t = Iort::new(smmu)
        .with_root_complex(IortRootComplex::new(0, sample_map()))
        .to_bytes()
        .unwrap();
    let n = nodes(&t);
    assert_eq!(n.len(), 2);

    let s = &n[0];
    assert_eq!(s.offset, 48);
    assert_eq!(s.header.node_type, NodeType::SmmuV3 as u8);
    assert_eq!(s.header.revision, 5);
    assert_eq!(s.header.length.get(), 68);
    assert!(s.maps.is_empty());
    let (b, _) = SmmuV3Body::read_from_prefix(&s.body).unwrap();
    assert_eq!(b.base_address.get(), 0x0905_0000);
    assert_eq!(b.flags.get(), SMMU_FLAG_COHACC | (2 << 1));
    assert_eq!(b.model.get(), 0);
    let gsivs = [
        b.event_gsiv.get(),
        b.pri_gsiv.get(),
        b.gerr_gsiv.get(),
        b.sync_gsiv.get(),
    ];
    assert_eq!(gsivs, [106, 107, 108, 109]);

    let rc = &n[1];
    assert_eq!(rc.header.node_type, NodeType::RootComplex as u8);
    assert_eq!(rc.header.identifier.get(), 1);
    assert_eq!(rc.header.length.get(), 36 + 2 * 20);
    let (b, _) = RootComplexBody::read_from_prefix(&rc.body).unwrap();
    assert_eq!(b.cache_coherency.get(), 1);
    assert_eq!(b.memory_flags, RC_MF_CPM | RC_MF_DACS);
    assert_eq!(b.memory_address_limit, 64);
    // The gap 0x110..0x200 and the bypass range (no ITS to send it to) have no mapping.
    assert_eq!(
        rc.maps,
        [m(0, 0xff, 0, 48, 0), m(0x200, 0x1f, 0x1000, 48, 0)]
    );
}

#[test]
fn its_forwards_streams_bypass_and_the_smmu_device_id() {
    let smmu = IortSmmuV3 {
        gerr_gsiv: Some(108),
        msi_device_id: Some(0x10000),
        ..IortSmmuV3::new(0x0905_0000)
    };
    let mut second = IdMap::new();
    second
        .map(IdMapRange {
            rid_base: 0,
            out_base: 0x80,
            len: 0x100,
        })
        .unwrap();
    let t = Iort::new(smmu)
        .with_its(IortItsGroup {
            its_ids: vec![0, 1],
        })
        .with_root_complex(IortRootComplex::new(0, sample_map()))
        .with_root_complex(IortRootComplex {
            ats: true,
            ..IortRootComplex::new(1, second)
        })
        .to_bytes()
        .unwrap();
    let n = nodes(&t);
    assert_eq!(n.len(), 4);
    let its = &n[0];
    assert_eq!(its.header.node_type, NodeType::ItsGroup as u8);
    assert_eq!(its.header.length.get(), 16 + 4 + 8);
    assert_eq!(its.body, [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);

    let s = &n[1];
    let (b, _) = SmmuV3Body::read_from_prefix(&s.body).unwrap();
    assert_eq!(b.flags.get(), SMMU_FLAG_COHACC | SMMU_FLAG_DEVICEID_VALID);
    assert_eq!(b.device_id_mapping_index.get(), 2);
    // StreamIDs 0..0xff and 0x80..0x17f merge; 0x1000..0x101f stays apart; then the SMMU's own.
    assert_eq!(
        s.maps,
        [
            m(0, 0x17f, 0, 48, 0),
            m(0x1000, 0x1f, 0x1000, 48, 0),
            m(0, 0, 0x10000, 48, 1)
        ]
    );

    let rc0 = &n[2];
    assert_eq!(
        rc0.maps,
        [
            m(0, 0xff, 0, s.offset, 0),
            m(0x100, 0xf, 0x100, 48, 0),
            m(0x200, 0x1f, 0x1000, s.offset, 0)
        ]
    );
    let (b, _) = RootComplexBody::read_from_prefix(&n[3].body).unwrap();
    assert_eq!(b.ats_attribute.get(), 1);
    assert_eq!(b.pci_segment.get(), 1);
}

#[test]
fn msi_without_its_is_refused() {
    let smmu = IortSmmuV3 {
        msi_device_id: Some(1),
        ..IortSmmuV3::new(0)
    };
    assert_eq!(
        Iort::new(smmu).to_bytes().unwrap_err(),
        IortError::MsiWithoutIts
    );
}

#[test]
fn too_many_mappings_are_refused() {
    let mut map = IdMap::new();
    for i in 0..4000u16 {
        map.map(IdMapRange {
            rid_base: i * 2,
            out_base: u32::from(i),
            len: 1,
        })
        .unwrap();
    }
    let e = Iort::new(IortSmmuV3::new(0))
        .with_root_complex(IortRootComplex::new(0, map))
        .to_bytes()
        .unwrap_err();
    assert_eq!(e, IortError::TooManyMappings(4000));
}

#[test]
fn record_sizes_match_the_specification() {
    assert_eq!(size_of::<NodeHeader>(), 16);
    assert_eq!(size_of::<IdMapping>(), 20);
    assert_eq!(size_of::<SmmuV3Body>(), 52);
    assert_eq!(size_of::<RootComplexBody>(), 20);
}
