//! An SMMUv3 inside a VMM: a PCI topology resolved to StreamIDs, the SMMU brought up by the
//! Linux-shaped guest driver, and an emulated virtio-like device DMAing through
//! `vm_memory::IommuMemory` + `viommu::common::vmm::EndpointIommu`. Only MMIO, guest memory and
//! the device's DMA are used; results are checked in guest-physical memory and in the guest's
//! event queue (record fields decoded with Linux's EVTQ masks, IHI 0070 §7.3).

#[allow(dead_code, reason = "shared by several test files; each uses a part")]
mod vmm_support;

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryError, IommuMemory};

use viommu::common::id::{StreamId, SubstreamId};
use viommu::common::testing::{guest_ram, Irq, RecordingIrq};
use viommu::common::topology::{
    BridgeKind, IdMap, IdMapRange, NodeId, PciTopology, PciTopologyBuilder, Route, TopologyError,
};
use viommu::common::vmm::EndpointIommu;
use viommu::common::RequesterId;
use viommu::smmuv3::caps::SmmuConfig;
use viommu::smmuv3::device::{GuestRam, SmmuV3};
use viommu::smmuv3::testing::{DriverOptions, GuestDriver, Prot, S1Domain};
use vmm_support::{
    post_request, read_pa, routed_view, Counting, Ram, ToyVirtioDevice, OP_FILL, OP_SUM,
};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
/// Where the guest driver's MSIs go (outside RAM: delivered to the interrupt sink).
const DOORBELL: u64 = 0x0800_0040;
/// EVTQ MSI data programmed by the driver (`DriverOptions::default`).
const EVTQ_MSI_DATA: u32 = 0x21;

/// Event IDs (IHI 0070 §7.3, Linux `EVT_ID_*`).
const F_TRANSLATION: u8 = 0x10;
const C_BAD_STREAMID: u8 = 0x02;
const C_BAD_CD: u8 = 0x0A;

type Smmu = SmmuV3<Arc<Ram>>;

/// The nodes of the test platform's PCI hierarchy.
struct Nodes {
    /// 00:01.0, PCIe root port, secondary bus 1.
    rp1: NodeId,
    /// 01:00.0: virtio-net-like device.
    net: NodeId,
    /// 01:00.1: a PASID-capable function.
    acc: NodeId,
    /// 00:02.0, PCIe root port, secondary bus 2.
    rp2: NodeId,
    /// 02:00.0, PCIe-to-PCI bridge, secondary bus 3 (renumbered by some tests).
    bridge: NodeId,
    /// 03:01.0 and 03:02.0: conventional devices behind the bridge.
    legacy_a: NodeId,
    legacy_b: NodeId,
    /// 00:03.0: integrated device whose RID is in no map range.
    gap: NodeId,
    /// 00:1f.0: integrated device declared to bypass the SMMU.
    bypass: NodeId,
}

struct Platform {
    ram: Arc<Ram>,
    irq: Arc<RecordingIrq>,
    smmu: Arc<Smmu>,
    topo: Arc<PciTopology>,
    n: Nodes,
}

/// The `iommu-map`: RIDs 0x0000-0x000f -> SIDs 0x0000.., RIDs 0x00f8-0x00ff bypass, buses 1-3
/// -> SIDs 0x1100.., bus 5 -> SIDs 0x2500..; everything else (e.g. 00:03.0, bus 4) is a gap.
fn id_map() -> IdMap {
    let mut m = IdMap::new();
    m.map(IdMapRange {
        rid_base: 0x0000,
        out_base: 0x0000,
        len: 0x10,
    })
    .unwrap()
    .bypass(0x00f8, 8)
    .unwrap()
    .map(IdMapRange {
        rid_base: 0x0100,
        out_base: 0x1100,
        len: 0x300,
    })
    .unwrap()
    .map(IdMapRange {
        rid_base: 0x0500,
        out_base: 0x2500,
        len: 0x100,
    })
    .unwrap();
    m
}

/// Build the platform, with bus numbers assigned as firmware enumeration would.
fn platform() -> Platform {
    let mut b = PciTopologyBuilder::new();
    let rp1 = b.root_bridge(0, 0x08, BridgeKind::PciePort).unwrap();
    let net = b.endpoint_behind(rp1, 0x00).unwrap();
    let acc = b.endpoint_behind(rp1, 0x01).unwrap();
    let rp2 = b.root_bridge(0, 0x10, BridgeKind::PciePort).unwrap();
    let bridge = b.bridge_behind(rp2, 0x00, BridgeKind::PcieToPci).unwrap();
    let legacy_a = b.endpoint_behind(bridge, 0x08).unwrap();
    let legacy_b = b.endpoint_behind(bridge, 0x10).unwrap();
    let gap = b.root_endpoint(0, 0x18).unwrap();
    let bypass = b.root_endpoint(0, 0xf8).unwrap();
    let topo = Arc::new(b.build(id_map()));
    topo.set_secondary_bus(rp1, Some(1)).unwrap();
    topo.set_secondary_bus(rp2, Some(2)).unwrap();
    topo.set_secondary_bus(bridge, Some(3)).unwrap();

    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let irq = Arc::new(RecordingIrq::new());
    let smmu = Arc::new(SmmuV3::new(&SmmuConfig::default(), ram.clone(), irq.clone()).unwrap());
    Platform {
        ram,
        irq,
        smmu,
        topo,
        n: Nodes {
            rp1,
            net,
            acc,
            rp2,
            bridge,
            legacy_a,
            legacy_b,
            gap,
            bypass,
        },
    }
}

/// The guest kernel's arm-smmu-v3 probe and reset.
fn bring_up(p: &Platform) -> GuestDriver<'_, Arc<Ram>, Ram> {
    GuestDriver::bring_up(&p.smmu, &*p.ram, RAM, RAM_SIZE)
}

/// The StreamID the topology gives `node`.
fn sid_of(p: &Platform, node: NodeId) -> u32 {
    match p.topo.route(node) {
        Ok(Route::Translate(sid)) => sid,
        other => panic!("{node:?} does not translate: {other:?}"),
    }
}

/// A DMA view for a fixed StreamID (and optional SubstreamID).
fn view(p: &Platform, sid: u32, ssid: Option<u32>) -> IommuMemory<Ram, EndpointIommu<Smmu>> {
    IommuMemory::new(
        (*p.ram).clone(),
        EndpointIommu::new(p.smmu.clone(), StreamId(sid), ssid.map(SubstreamId)),
        true,
        (),
    )
}

/// An event record decoded with Linux's masks (IHI 0070 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Evt {
    id: u8,
    sid: u32,
    ssid: Option<u32>,
    read: bool,
    addr: u64,
}

fn decode_evt(r: [u64; 4]) -> Evt {
    Evt {
        id: (r[0] & 0xff) as u8,
        sid: (r[0] >> 32) as u32,
        ssid: (r[0] >> 11 & 1 == 1).then_some((r[0] >> 12 & 0xf_ffff) as u32),
        read: r[1] >> 35 & 1 == 1,
        addr: r[2],
    }
}

fn events<M: GuestRam>(drv: &mut GuestDriver<'_, M, Ram>) -> Vec<Evt> {
    drv.read_events().into_iter().map(decode_evt).collect()
}

/// Guest-side layout of one device's DMA: a descriptor page and a two-page data buffer whose
/// pages are not contiguous in guest-physical memory.
struct Buffers {
    ring_iova: u64,
    ring_pa: u64,
    buf_iova: u64,
    page_pa: [u64; 2],
}

/// Map the layout into `dom` (`arm_smmu_map_pages` through io-pgtable).
fn map_buffers<M: GuestRam>(
    drv: &mut GuestDriver<'_, M, Ram>,
    dom: &S1Domain,
    iova_base: u64,
    pa_base: u64,
) -> Buffers {
    let b = Buffers {
        ring_iova: iova_base,
        ring_pa: pa_base,
        buf_iova: iova_base + 0x10_0000,
        page_pa: [pa_base + 0x3_3000, pa_base + 0x1_1000],
    };
    let mem = drv.mem;
    dom.pgtable.map(
        mem,
        &mut drv.alloc,
        b.ring_iova,
        b.ring_pa,
        0x1000,
        Prot::RW,
    );
    for (i, pa) in b.page_pa.iter().enumerate() {
        dom.pgtable.map(
            mem,
            &mut drv.alloc,
            b.buf_iova + 0x1000 * i as u64,
            *pa,
            0x1000,
            Prot::RW,
        );
    }
    b
}

/// Offset into the buffer where requests start: 0x100 bytes before the page boundary.
const BUF_OFF: u64 = 0xf00;
const LEN: usize = 0x200;

/// Post an OP_FILL request on `b`'s descriptor page: [`LEN`] bytes from [`BUF_OFF`] into its
/// buffer (straddling its two pages).
fn post_fill(ram: &Ram, b: &Buffers) {
    post_request(ram, b.ring_pa, b.buf_iova + BUF_OFF, LEN as u32, OP_FILL);
}

/// Attach the net device (01:00.0) to a fresh domain (ASID 1) holding its buffers at IOVA
/// 0x1000_0000; returns its StreamID, the domain and the buffer layout.
fn attach_net<M: GuestRam>(
    p: &Platform,
    drv: &mut GuestDriver<'_, M, Ram>,
) -> (u32, S1Domain, Buffers) {
    let sid = sid_of(p, p.n.net);
    let dom = drv.new_s1_domain(1);
    let b = map_buffers(drv, &dom, 0x1000_0000, RAM + 0x100_0000);
    drv.attach_s1(sid, &dom).unwrap();
    (sid, dom, b)
}

/// Check that a fill request's data is in guest-physical memory, split across the two pages.
fn assert_filled(ram: &Ram, b: &Buffers, dev: &ToyVirtioDevice) {
    let want: Vec<u8> = (0..LEN).map(|i| dev.pattern(i)).collect();
    let mut got = read_pa(ram, b.page_pa[0] + BUF_OFF, 0x100);
    got.extend(read_pa(ram, b.page_pa[1], LEN - 0x100));
    assert_eq!(got, want);
}

/// Endpoints (aliased behind the bridge) resolve to map StreamIDs; gaps deny, bypass bypasses.
#[test]
fn test_topology_resolves_endpoints_to_stream_ids() {
    // The PCI topology resolves endpoints to the StreamIDs the `iommu-map` gives their (aliased)
    // requester IDs; the gap is denied and the declared range bypasses.
    let p = platform();
    assert_eq!(p.topo.requester_id(p.n.net), Ok(RequesterId::new(1, 0, 0)));
    assert_eq!(sid_of(&p, p.n.net), 0x1100);
    assert_eq!(sid_of(&p, p.n.acc), 0x1101);
    // Conventional devices behind the PCIe-to-PCI bridge alias to (secondary bus, devfn 0).
    assert_eq!(
        p.topo.requester_id(p.n.legacy_a),
        Ok(RequesterId::new(3, 0, 0))
    );
    assert_eq!(sid_of(&p, p.n.legacy_a), 0x1300);
    assert_eq!(sid_of(&p, p.n.legacy_b), 0x1300);
    assert_eq!(
        p.topo.route(p.n.gap),
        Err(TopologyError::Unmapped(RequesterId::new(0, 3, 0)))
    );
    assert_eq!(p.topo.route(p.n.bypass), Ok(Route::Bypass));
    // Bridges are not endpoints.
    for b in [p.n.rp1, p.n.rp2, p.n.bridge] {
        assert_eq!(p.topo.route(b), Err(TopologyError::NoSuchEndpoint(b)));
    }
}

/// Device descriptor reads and buffer reads/writes land at the pages the page tables give.
#[test]
fn test_virtio_dma_lands_at_translated_addresses() {
    // A virtio-like device's descriptor reads, buffer writes (across two non-contiguous pages) and
    // buffer reads all land at the guest-physical addresses the guest's page tables give.
    let p = platform();
    let mut drv = bring_up(&p);
    let (sid, _dom, b) = attach_net(&p, &mut drv);
    let dma = view(&p, sid, None);
    let dev = ToyVirtioDevice { seed: 0x5a };

    post_fill(&p.ram, &b);
    assert_eq!(dev.process(&dma, b.ring_iova).unwrap(), LEN as u32);
    assert_filled(&p.ram, &b, &dev);
    assert_eq!(
        p.ram.read_obj::<u32>(GuestAddress(b.ring_pa + 16)).unwrap(),
        LEN as u32
    );

    // The guest writes data at the physical pages; the device reads it through the IOVA.
    let data: Vec<u8> = (0..LEN as u32).map(|i| (i * 3 + 1) as u8).collect();
    p.ram
        .write_slice(&data[..0x100], GuestAddress(b.page_pa[0] + BUF_OFF))
        .unwrap();
    p.ram
        .write_slice(&data[0x100..], GuestAddress(b.page_pa[1]))
        .unwrap();
    post_request(&p.ram, b.ring_pa, b.buf_iova + BUF_OFF, LEN as u32, OP_SUM);
    let sum: u32 = data.iter().map(|&x| u32::from(x)).sum();
    assert_eq!(dev.process(&dma, b.ring_iova).unwrap(), sum);
    assert_eq!(events(&mut drv), vec![], "no faults");
}

/// After unmap + TLBI_NH_VA + CMD_SYNC, DMA fails whole; F_TRANSLATION record and EVTQ MSI.
#[test]
fn test_unmap_tlbi_sync_then_dma_faults_with_event() {
    // After the guest unmaps a page and issues TLBI_NH_VA + CMD_SYNC, the device's next access
    // fails without writing anything, an F_TRANSLATION record (SID, address, RnW) appears in the
    // guest's event queue and the EVTQ MSI is sent.
    let p = platform();
    let mut drv = bring_up(&p);
    let (sid, dom, b) = attach_net(&p, &mut drv);
    let dma = view(&p, sid, None);
    let first = ToyVirtioDevice { seed: 1 };
    post_fill(&p.ram, &b);
    first.process(&dma, b.ring_iova).unwrap();
    p.irq.take();

    // Unmap the second data page: TLBI_NH_VA (range form with RIL) + CMD_SYNC.
    let syncs = drv.syncs;
    drv.unmap_s1(&dom, b.buf_iova + 0x1000, 0x1000).unwrap();
    assert_eq!(drv.syncs, syncs + 1);

    let second = ToyVirtioDevice { seed: 2 };
    let err = second.process(&dma, b.ring_iova).unwrap_err();
    assert!(
        matches!(&err, GuestMemoryError::IommuError(e) if e.to_string().contains("F_TRANSLATION")),
        "{err:?}"
    );
    // The whole access was refused: the still-mapped first page keeps the old data.
    assert_filled(&p.ram, &b, &first);
    assert_eq!(
        events(&mut drv),
        vec![Evt {
            id: F_TRANSLATION,
            sid,
            ssid: None,
            read: false,
            addr: b.buf_iova + 0x1000,
        }]
    );
    assert_eq!(
        p.irq.take(),
        vec![Irq::Msi {
            addr: DOORBELL,
            data: EVTQ_MSI_DATA
        }]
    );

    // A read of the unmapped page is recorded with RnW = 1.
    post_request(&p.ram, b.ring_pa, b.buf_iova + 0x1000, 8, OP_SUM);
    assert!(second.process(&dma, b.ring_iova).is_err());
    let ev = events(&mut drv);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].id, ev[0].read), (F_TRANSLATION, true));
}

/// Each SubstreamID uses its own CD; faults carry SSV/SSID; an invalid CD gives C_BAD_CD.
#[test]
fn test_pasid_endpoint_dma_uses_its_context_descriptor() {
    // A PASID-capable endpoint's substreams use their own context descriptors: the same IOVA lands
    // in different pages for SSID 0 and SSID 5, a fault on SSID 5 is recorded with SSV and the
    // SubstreamID, and a substream without a valid CD is refused with C_BAD_CD.
    let p = platform();
    let mut drv = bring_up(&p);
    let sid = sid_of(&p, p.n.acc);
    let dom0 = drv.new_s1_domain(2);
    let dom5 = drv.new_s1_domain(3);
    let b0 = map_buffers(&mut drv, &dom0, 0x3000_0000, RAM + 0x180_0000);
    let b5 = map_buffers(&mut drv, &dom5, 0x3000_0000, RAM + 0x200_0000);
    // 2^8 CDs, SSID 0 for DMA without PASID (S1DSS = SSID0), then PASID 5.
    drv.attach_s1_pasid(sid, &dom0, 8).unwrap();
    let cd = drv.s1_cd(&dom5);
    drv.write_cd_steps(sid, 5, cd, &mut || {}).unwrap();

    let plain = view(&p, sid, None);
    let pasid = view(&p, sid, Some(5));
    let d0 = ToyVirtioDevice { seed: 0x10 };
    let d5 = ToyVirtioDevice { seed: 0x50 };
    post_fill(&p.ram, &b0);
    post_fill(&p.ram, &b5);
    assert_eq!(d0.process(&plain, b0.ring_iova).unwrap(), LEN as u32);
    assert_eq!(d5.process(&pasid, b5.ring_iova).unwrap(), LEN as u32);
    assert_filled(&p.ram, &b0, &d0);
    assert_filled(&p.ram, &b5, &d5);

    drv.unmap_s1(&dom5, b5.buf_iova, 0x2000).unwrap();
    assert!(d5.process(&pasid, b5.ring_iova).is_err());
    assert_eq!(
        events(&mut drv),
        vec![Evt {
            id: F_TRANSLATION,
            sid,
            ssid: Some(5),
            read: false,
            addr: b5.buf_iova + BUF_OFF,
        }]
    );
    // Substream 0's tables were not touched.
    assert_eq!(d0.process(&plain, b0.ring_iova).unwrap(), LEN as u32);

    // PASID 6 has an all-zero CD (V = 0).
    let unbound = view(&p, sid, Some(6));
    assert!(d0.process(&unbound, b0.ring_iova).is_err());
    let ev = events(&mut drv);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].id, ev[0].sid, ev[0].ssid), (C_BAD_CD, sid, Some(6)));
}

/// A requester in a map gap is denied before and after SMMU enable, never reaching the SMMU.
#[test]
fn test_endpoint_in_map_gap_is_denied_never_bypassed() {
    // An endpoint whose requester ID is in a gap of the `iommu-map` is denied both before the SMMU
    // is enabled (GBPA bypass) and after, and never reaches the SMMU; the declared-bypass endpoint
    // goes straight to guest-physical memory; an unattached mapped endpoint is refused by the SMMU
    // with C_BAD_STREAMID.
    let p = platform();
    let target = RAM + 0x30_0000;
    let smmu = Counting::new(p.smmu.clone());
    let gap = routed_view(&p.ram, &p.topo, p.n.gap, &smmu);
    let byp = routed_view(&p.ram, &p.topo, p.n.bypass, &smmu);
    let net = routed_view(&p.ram, &p.topo, p.n.net, &smmu);

    // Reset state: SMMUEN = 0 and GBPA bypass, so a mapped endpoint passes untranslated...
    net.write_obj(0x1111_1111u32, GuestAddress(target)).unwrap();
    assert_eq!(
        p.ram.read_obj::<u32>(GuestAddress(target)).unwrap(),
        0x1111_1111
    );
    // ...but the gap endpoint is refused before it reaches the SMMU.
    let err = gap
        .write_obj(0x2222_2222u32, GuestAddress(target))
        .unwrap_err();
    assert!(
        err.to_string().contains(vmm_support::RID_UNMAPPED.name()),
        "{err}"
    );
    assert_eq!(
        p.ram.read_obj::<u32>(GuestAddress(target)).unwrap(),
        0x1111_1111
    );

    let mut drv = bring_up(&p);
    assert!(gap.read_obj::<u32>(GuestAddress(target)).is_err());
    assert!(gap.write_obj(0x3333_3333u32, GuestAddress(target)).is_err());
    byp.write_obj(0x4444_4444u32, GuestAddress(target)).unwrap();
    assert_eq!(
        p.ram.read_obj::<u32>(GuestAddress(target)).unwrap(),
        0x4444_4444
    );
    assert_eq!(
        smmu.count(),
        1,
        "only the mapped endpoint's first write reached the SMMU"
    );
    assert_eq!(events(&mut drv), vec![]);

    // The enabled SMMU refuses the mapped but unattached endpoint (no L2 stream table).
    assert!(net.read_obj::<u32>(GuestAddress(target)).is_err());
    let ev = events(&mut drv);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].id, ev[0].sid), (C_BAD_STREAMID, 0x1100));
}

/// Renumbering the bridge between DMAs reroutes them to the new StreamID; a gap bus denies.
#[test]
fn test_bridge_renumbering_routes_to_new_stream_id() {
    // A guest renumbering the bridge's secondary bus between two DMAs of the same device view
    // reroutes them to the new StreamID's domain; a number that falls in a map gap denies them,
    // and going back restores the original route.
    let p = platform();
    let mut drv = bring_up(&p);
    let dom_a = drv.new_s1_domain(4);
    let dom_b = drv.new_s1_domain(5);
    let ba = map_buffers(&mut drv, &dom_a, 0x5000_0000, RAM + 0x280_0000);
    let bb = map_buffers(&mut drv, &dom_b, 0x5000_0000, RAM + 0x300_0000);
    drv.attach_s1(0x1300, &dom_a).unwrap();
    drv.attach_s1(0x2500, &dom_b).unwrap();

    let dma_a = routed_view(&p.ram, &p.topo, p.n.legacy_a, &p.smmu);
    let dma_b = routed_view(&p.ram, &p.topo, p.n.legacy_b, &p.smmu);
    let dev = ToyVirtioDevice { seed: 0x77 };
    let other = ToyVirtioDevice { seed: 0x99 };
    for ring in [ba.ring_pa, bb.ring_pa] {
        post_request(&p.ram, ring, ba.buf_iova + BUF_OFF, LEN as u32, OP_FILL);
    }

    // Both children alias to 03:00.0 -> SID 0x1300 -> domain A.
    dev.process(&dma_a, ba.ring_iova).unwrap();
    assert_filled(&p.ram, &ba, &dev);
    other.process(&dma_b, ba.ring_iova).unwrap();
    assert_filled(&p.ram, &ba, &other);

    // The guest renumbers the bridge to bus 5: RID 05:00.0 -> SID 0x2500 -> domain B.
    p.topo.set_secondary_bus(p.n.bridge, Some(5)).unwrap();
    dev.process(&dma_a, bb.ring_iova).unwrap();
    assert_filled(&p.ram, &bb, &dev);
    assert_filled(&p.ram, &ba, &other);

    // Bus 4 is in no map range: denied, and nothing reaches the SMMU's event queue.
    p.topo.set_secondary_bus(p.n.bridge, Some(4)).unwrap();
    assert!(other.process(&dma_a, bb.ring_iova).is_err());
    assert!(other.process(&dma_b, bb.ring_iova).is_err());
    assert_filled(&p.ram, &bb, &dev);

    p.topo.set_secondary_bus(p.n.bridge, Some(3)).unwrap();
    dev.process(&dma_b, ba.ring_iova).unwrap();
    assert_filled(&p.ram, &ba, &dev);
    assert_eq!(events(&mut drv), vec![]);
}

/// SmmuV3::stats() counts the translations and faults the device served.
#[test]
fn test_device_stats_count_translations_and_faults() {
    // `SmmuV3::stats()` counts the translations and faults the device served (its documented
    // meaning: "Translations requested", "Translations that faulted").
    let p = platform();
    let mut drv = bring_up(&p);
    let dom = drv.new_s1_domain(1);
    dom.pgtable.map(
        &*p.ram,
        &mut drv.alloc,
        0x1000,
        RAM + 0x10_0000,
        0x1000,
        Prot::RW,
    );
    drv.attach_s1(0x10, &dom).unwrap();
    let dma = view(&p, 0x10, None);
    dma.write_obj(1u32, GuestAddress(0x1000)).unwrap();
    assert!(dma.write_obj(1u32, GuestAddress(0x2000)).is_err());
    let s = p.smmu.stats();
    assert_eq!(events(&mut drv).len(), 1);
    assert_eq!(s.events, 1);
    assert!(s.translations >= 2, "{s:?}");
    assert!(s.faults >= 1, "{s:?}");
}

/// Memory hot-added through GuestMemoryAtomic holds new tables and DMA buffers at once.
#[test]
fn test_hot_added_memory_holds_tables_and_buffers() {
    // With the VMM's `GuestMemoryAtomic`, memory hot-added after bring-up is usable at once: the
    // guest puts a new domain's stream-table leaf, CD table, page tables and DMA buffers in the
    // new region, and DMA translates through them.
    use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestRegionMmap};
    const HOT: u64 = 0x8000_0000;
    const HOT_SIZE: u64 = 16 << 20;

    let atomic = GuestMemoryAtomic::new(guest_ram(RAM, RAM_SIZE as usize));
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&SmmuConfig::default(), atomic.clone(), irq.clone()).unwrap();
    let boot = atomic.memory();
    let mut drv = GuestDriver::bring_up(&smmu, &*boot, RAM, RAM_SIZE);

    // The VMM hot-adds 16 MiB; the guest onlines it and allocates from it.
    let region = GuestRegionMmap::from_range(GuestAddress(HOT), HOT_SIZE as usize, None).unwrap();
    let grown = atomic.memory().insert_region(Arc::new(region)).unwrap();
    atomic.lock().unwrap().replace(grown);
    let now = atomic.memory();
    drv.mem = &*now;
    drv.alloc = viommu::smmuv3::testing::Alloc::new(HOT, HOT_SIZE);

    let dom = drv.new_s1_domain(7);
    let b = map_buffers(&mut drv, &dom, 0x7000_0000, HOT + 0x80_0000);
    drv.attach_s1_pasid(0x4242, &dom, 4).unwrap();
    let dma = IommuMemory::new(
        (*now).clone(),
        EndpointIommu::new(Arc::new(&smmu), StreamId(0x4242), None),
        true,
        (),
    );
    let dev = ToyVirtioDevice { seed: 0x42 };
    post_fill(&now, &b);
    assert_eq!(dev.process(&dma, b.ring_iova).unwrap(), LEN as u32);
    assert_filled(&now, &b, &dev);
    assert_eq!(events(&mut drv), vec![]);
}

/// PASIDs past the first 4 KiB of a 256-entry linear CD table translate (size-aligned table).
#[test]
fn test_pasid_past_first_page_of_cd_table() {
    // Every substream of a 256-entry linear CD table works, including those past its first 4 KiB:
    // the Linux-shaped driver allocates the table aligned to its size (`dma_alloc_coherent`
    // returns size-order-aligned memory), which the SMMU requires (IHI 0070 §5.2: a misaligned
    // S1ContextPtr fetches "any CD in the table").
    let p = platform();
    let mut drv = bring_up(&p);
    let sid = sid_of(&p, p.n.acc);
    // Shift the allocator off 16 KiB alignment, as any earlier 4 KiB allocation would.
    drv.alloc.alloc(0x1000, 0x4000);
    let dom0 = drv.new_s1_domain(2);
    let dom255 = drv.new_s1_domain(3);
    let b = map_buffers(&mut drv, &dom255, 0x3000_0000, RAM + 0x200_0000);
    drv.attach_s1_pasid(sid, &dom0, 8).unwrap();
    let cd = drv.s1_cd(&dom255);
    drv.write_cd_steps(sid, 255, cd, &mut || {}).unwrap();

    let ste_w0 = p
        .ram
        .read_obj::<u64>(GuestAddress(drv.ste_addr(sid)))
        .unwrap();
    let cd_table = ste_w0 & 0x000f_ffff_ffff_ffc0;
    let dev = ToyVirtioDevice { seed: 0xff };
    post_fill(&p.ram, &b);
    let r = dev.process(&view(&p, sid, Some(255)), b.ring_iova);
    assert!(
        r.is_ok(),
        "SSID 255: {r:?}; CD table at {cd_table:#x} ({} 16 KiB-aligned)",
        if cd_table % 0x4000 == 0 {
            "is"
        } else {
            "is NOT"
        }
    );
    assert_filled(&p.ram, &b, &dev);
}

/// Every StreamID of a 16 KiB linear stream table works with small queues (size-aligned).
#[test]
fn test_linear_stream_table_with_small_queues() {
    // A linear stream table (no 2-level support) works for every StreamID when the guest's queues
    // are small: the Linux-shaped driver allocates the table aligned to its size, which the SMMU
    // requires (IHI 0070 §6.3.24: STRTAB_BASE low address bits below the table size are zero).
    let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
    let config = SmmuConfig {
        two_level_stream_table: false,
        sid_bits: 8,
        ..SmmuConfig::default()
    };
    let smmu = SmmuV3::new(&config, ram.clone(), Arc::new(RecordingIrq::new())).unwrap();
    let opts = DriverOptions {
        cmdq_max_log2: 8,
        evtq_max_log2: 7,
        ..DriverOptions::default()
    };
    let mut drv = GuestDriver::new(&smmu, &*ram, RAM, RAM_SIZE, opts);
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(1);
    dom.pgtable.map(
        &*ram,
        &mut drv.alloc,
        0x1000,
        RAM + 0x10_0000,
        0x1000,
        Prot::RW,
    );
    drv.attach_s1(0xf0, &dom).unwrap();
    let strtab = smmu.save().ctrl.strtab_base & 0x000f_ffff_ffff_ffc0;
    let dma = IommuMemory::new(
        (*ram).clone(),
        EndpointIommu::new(Arc::new(&smmu), StreamId(0xf0), None),
        true,
        (),
    );
    let r = dma.write_obj(0xabcd_u32, GuestAddress(0x1000));
    assert!(
        r.is_ok(),
        "SID 0xf0: {r:?}; stream table at {strtab:#x} ({} 16 KiB-aligned)",
        if strtab % 0x4000 == 0 { "is" } else { "is NOT" }
    );
    assert_eq!(
        ram.read_obj::<u32>(GuestAddress(RAM + 0x10_0000)).unwrap(),
        0xabcd
    );
}

/// One 17 MiB device access over mapped 4 KiB pages succeeds through IommuMemory.
#[test]
fn test_large_dma_over_many_pages_succeeds() {
    // A single large device access (17 MiB over 4 KiB pages, all mapped) succeeds through
    // `IommuMemory`: the adapter's bound on translation pieces must not refuse legitimate DMA that
    // the guest mapped page by page.
    const LEN: u64 = 17 << 20;
    let p = platform();
    let mut drv = bring_up(&p);
    let dom = drv.new_s1_domain(1);
    drv.map_s1(&dom, 0x1000_0000, RAM + (32 << 20), LEN, Prot::RW);
    drv.attach_s1(0x10, &dom).unwrap();
    let dma = view(&p, 0x10, None);
    let mut buf = vec![0u8; LEN as usize];
    let r = dma.read_slice(&mut buf, GuestAddress(0x1000_0000));
    assert!(r.is_ok(), "{:?}", r.map_err(|e| e.to_string()));
}

/// Guest tables pointing outside guest RAM fail the device's DMA with the architected event.
#[test]
fn test_tables_pointing_outside_ram_fail_dma_with_events() {
    // Output outside RAM: the translation succeeds, the memory access fails in the VMM.
    // A table descriptor outside RAM: F_WALK_EABT. A CD table outside RAM: F_CD_FETCH.
    const F_WALK_EABT: u8 = 0x0B;
    const F_CD_FETCH: u8 = 0x09;
    const OUTSIDE: u64 = 0xdead_0000_0000;
    let p = platform();
    let mut drv = bring_up(&p);
    let dom = drv.new_s1_domain(1);
    dom.pgtable.map(
        &*p.ram,
        &mut drv.alloc,
        0x1000,
        0x1_0000_0000,
        0x1000,
        Prot::RW,
    );
    // Level-0 entry 1 (IOVAs from 512 GiB) is a table descriptor to unbacked memory.
    p.ram
        .write_obj(OUTSIDE | 3, GuestAddress(dom.pgtable.root + 8))
        .unwrap();
    drv.attach_s1(0x10, &dom).unwrap();
    let dma = view(&p, 0x10, None);

    assert!(dma.write_obj(1u32, GuestAddress(0x1000)).is_err());
    assert_eq!(events(&mut drv), vec![]);

    assert!(dma.read_obj::<u32>(GuestAddress(0x80_0000_0000)).is_err());
    let ev = events(&mut drv);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].id, ev[0].sid, ev[0].addr),
        (F_WALK_EABT, 0x10, 0x80_0000_0000)
    );

    let ste = drv.cdtable_ste(OUTSIDE, 0, 0, 2);
    drv.write_ste(0x11, ste).unwrap();
    assert!(view(&p, 0x11, None)
        .read_obj::<u32>(GuestAddress(0x1000))
        .is_err());
    let ev = events(&mut drv);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].id, ev[0].sid), (F_CD_FETCH, 0x11));
}
