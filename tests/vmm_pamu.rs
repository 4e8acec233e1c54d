//! A PAMU inside a PowerPC VMM: the PCI topology and `iommu-map` give an endpoint its LIODN, the
//! pre-5.13 Linux window geometry API lays out the PAACE windows, and an emulated virtio-like
//! device DMAs through `vm_memory::IommuMemory` + `EndpointIommu` over the `Pamu`. A violation is
//! read back the way software sees it: big-endian MMIO reads of AVS1, AVAH:AVAL and PICS (offsets
//! and field values from Linux `fsl_pamu.h` and the crate's policies), and the AV interrupt line.

#[allow(dead_code, reason = "shared by several test files; each uses a part")]
mod vmm_support;

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, IommuMemory};

use viommu::common::access::Perms;
use viommu::common::id::StreamId;
use viommu::common::testing::Irq;
use viommu::common::topology::{
    BridgeKind, IdMap, IdMapRange, NodeId, PciTopology, PciTopologyBuilder, Route,
};
use viommu::common::traits::MmioDevice;
use viommu::common::vmm::EndpointIommu;
use viommu::pamu::geometry::Domain;
use viommu::pamu::testing::{GuestDriver, LinuxVersion, Rig, RigMem};
use viommu::pamu::{Pamu, PamuConfig};
use vmm_support::{post_request, read_pa, routed_view, Ram, ToyVirtioDevice, OP_FILL, OP_SUM};

/// Register offsets inside a PAMU instance (Linux `fsl_pamu.h`).
const AVS1: u64 = 0x050;
const AVAH: u64 = 0x058;
const PICS: u64 = 0xC1C;
/// PICS bits: AVICS (status, W1C) and AVIE (enable).
const PICS_AVICS: u32 = 0x8;
const PICS_AVIE: u32 = 0x4;
/// AVS1 flags: AV, APV field = 1 (Policy row 1), WAV field = 1.
const AVS1_AV: u32 = 0x1;
const AVS1_APV: u32 = 0x8;

/// Aperture of the device's DMA domain: 1 MiB at 0x8000_0000, four 256 KiB windows.
const APERTURE: u64 = 0x8000_0000;
const WIN: u64 = 0x4_0000;
/// Window 0: descriptors and buffers, read-write.
const W0_PA: u64 = 0x200_0000;
/// Window 1: 64 KiB read-only (smaller than the window).
const W1_PA: u64 = 0x280_0000;
/// Window 3: read-write. Window 2 stays unmapped.
const W3_PA: u64 = 0x300_0000;

struct Board {
    rig: Rig,
    topo: Arc<PciTopology>,
    nic: NodeId,
    gap: NodeId,
}

/// A PCIe controller whose `iommu-map` gives bus 1 LIODNs 0xC0.. (root-complex devices are in
/// no range); the NIC at 01:00.0 gets LIODN 0xC0.
fn board() -> Board {
    let mut b = PciTopologyBuilder::new();
    let rp = b.root_bridge(0, 0x00, BridgeKind::PciePort).unwrap();
    let nic = b.endpoint_behind(rp, 0x00).unwrap();
    let gap = b.root_endpoint(0, 0x08).unwrap();
    let mut map = IdMap::new();
    map.map(IdMapRange {
        rid_base: 0x0100,
        out_base: 0xC0,
        len: 0x100,
    })
    .unwrap();
    let topo = Arc::new(b.build(map));
    topo.set_secondary_bus(rp, Some(1)).unwrap();
    Board {
        rig: Rig::new(PamuConfig::p4080()),
        topo,
        nic,
        gap,
    }
}

fn liodn_of(b: &Board, node: NodeId) -> u16 {
    match b.topo.route(node) {
        Ok(Route::Translate(l)) => u16::try_from(l).unwrap(),
        other => panic!("{node:?} has no LIODN: {other:?}"),
    }
}

/// `fsl_pamu` probe, then the domain of `liodn` through the geometry API: geometry, 4
/// windows, windows 0, 1, 3 enabled, domain enabled.
fn setup(rig: &Rig, liodn: u16) -> (GuestDriver<'_, RigMem>, Domain) {
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let mut dom = drv.new_domain();
    let t = &mut drv.tables;
    dom.attach(t, mem, liodn).unwrap();
    dom.set_geometry(t, mem, APERTURE, APERTURE + 4 * WIN - 1)
        .unwrap();
    dom.set_windows(t, mem, 4).unwrap();
    dom.window_enable(t, mem, 0, W0_PA, WIN, Perms::RW).unwrap();
    dom.window_enable(t, mem, 1, W1_PA, 0x1_0000, Perms::R)
        .unwrap();
    dom.window_enable(t, mem, 3, W3_PA, WIN, Perms::RW).unwrap();
    dom.enable(t, mem, true).unwrap();
    (drv, dom)
}

fn view(pamu: &Arc<Pamu<RigMem>>, liodn: u16) -> IommuMemory<Ram, EndpointIommu<Pamu<RigMem>>> {
    IommuMemory::new(
        Ram::clone(pamu.memory()),
        EndpointIommu::new(pamu.clone(), StreamId(u32::from(liodn)), None),
        true,
        (),
    )
}

/// A 32-bit big-endian MMIO read of instance 0's register at `off`.
fn mmio32(pamu: &Pamu<RigMem>, off: u64) -> u32 {
    let mut b = [0u8; 4];
    pamu.mmio_read(off, &mut b).unwrap();
    u32::from_be_bytes(b)
}

/// A 64-bit big-endian MMIO read (two registers) of instance 0 at `off`.
fn mmio64(pamu: &Pamu<RigMem>, off: u64) -> u64 {
    let mut b = [0u8; 8];
    pamu.mmio_read(off, &mut b).unwrap();
    u64::from_be_bytes(b)
}

/// The topology and iommu-map give the NIC its LIODN; the root-complex device has none.
#[test]
fn test_topology_resolves_endpoint_to_liodn() {
    // The PCI topology and `iommu-map` give the NIC its LIODN; the root-complex device is in no
    // range.
    let b = board();
    assert_eq!(liodn_of(&b, b.nic), 0xC0);
    assert!(b.topo.route(b.gap).is_err());
}

/// Device DMA lands at the windows' physical addresses, also when crossing two windows.
#[test]
fn test_device_dma_through_pamu_windows() {
    // The device's descriptor reads, buffer writes and buffer reads land at the physical addresses
    // of the windows the geometry API set up, including a read that spans two windows with
    // different physical bases.
    let b = board();
    let liodn = liodn_of(&b, b.nic);
    let (_drv, _dom) = setup(&b.rig, liodn);
    let ram = b.rig.mem();
    let dma = view(&b.rig.pamu, liodn);
    let dev = ToyVirtioDevice { seed: 0x3c };

    // Fill into window 3.
    post_request(ram, W0_PA, APERTURE + 3 * WIN + 0x100, 0x200, OP_FILL);
    assert_eq!(dev.process(&dma, APERTURE).unwrap(), 0x200);
    let want: Vec<u8> = (0..0x200).map(|i| dev.pattern(i)).collect();
    assert_eq!(read_pa(ram, W3_PA + 0x100, 0x200), want);
    assert_eq!(
        ram.read_obj::<u32>(GuestAddress(W0_PA + 16)).unwrap(),
        0x200
    );

    // Read across the window 0 / window 1 boundary: two physical ranges.
    let lo: Vec<u8> = (0..0x80u32).map(|i| (i * 5) as u8).collect();
    let hi: Vec<u8> = (0..0x80u32).map(|i| (i * 11 + 3) as u8).collect();
    ram.write_slice(&lo, GuestAddress(W0_PA + WIN - 0x80))
        .unwrap();
    ram.write_slice(&hi, GuestAddress(W1_PA)).unwrap();
    post_request(ram, W0_PA, APERTURE + WIN - 0x80, 0x100, OP_SUM);
    let sum: u32 = lo.iter().chain(&hi).map(|&x| u32::from(x)).sum();
    assert_eq!(dev.process(&dma, APERTURE).unwrap(), sum);
    assert_eq!(mmio32(&b.rig.pamu, AVS1), 0, "no violation");
    assert!(b.rig.irq.take().is_empty());
}

/// A violation is captured in AVS1/AVA/PICS (read by MMIO) and raises the AV line.
#[test]
fn test_access_violation_captured_in_avs1_ava_and_raises_line() {
    // A device write into the read-only window is dropped; the violation is captured in AVS1
    // (LIODN, AV, APV) and AVAH:AVAL (the faulting address), PICS.AVICS is set and the AV line
    // rises. A second violation while AV = 1 is dropped without overwriting the capture; Linux's
    // ISR then clears it, the line falls and the LIODN is disabled.
    let b = board();
    let liodn = liodn_of(&b, b.nic);
    let (drv, _dom) = setup(&b.rig, liodn);
    let pamu = &b.rig.pamu;
    let ram = pamu.memory();
    let dma = view(pamu, liodn);
    let dev = ToyVirtioDevice { seed: 0x11 };
    b.rig.irq.take();

    let target = APERTURE + WIN + 0x40;
    post_request(ram, W0_PA, target, 0x10, OP_FILL);
    let err = dev.process(&dma, APERTURE).unwrap_err();
    assert!(err.to_string().contains("AV_PERMISSION"), "{err}");
    assert_eq!(read_pa(ram, W1_PA + 0x40, 0x10), vec![0u8; 0x10]);
    assert_eq!(
        mmio32(pamu, AVS1),
        u32::from(liodn) << 16 | AVS1_APV | AVS1_AV
    );
    assert_eq!(mmio64(pamu, AVAH), target);
    assert_eq!(mmio32(pamu, PICS), PICS_AVICS | PICS_AVIE);
    assert_eq!(
        b.rig.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: true
        }]
    );
    assert!(pamu.av_line_level());

    // Window 2 is unmapped: a second violation, dropped while AV = 1.
    post_request(ram, W0_PA, APERTURE + 2 * WIN, 8, OP_SUM);
    assert!(dev.process(&dma, APERTURE).is_err());
    assert_eq!(mmio64(pamu, AVAH), target, "first capture kept");

    // pamu_av_isr: clears AVS1 and AVICS, disables the LIODN.
    let rep = drv.av_isr().unwrap();
    assert_eq!(rep.len(), 1);
    assert_eq!(
        (rep[0].avs1, rep[0].ava),
        (u32::from(liodn) << 16 | AVS1_APV | AVS1_AV, target)
    );
    assert_eq!(mmio32(pamu, AVS1) & 0x7fff, 0);
    assert_eq!(mmio32(pamu, PICS), PICS_AVIE);
    assert!(!pamu.av_line_level());
    assert_eq!(
        b.rig.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: false
        }]
    );
    let err = dma.read_obj::<u32>(GuestAddress(APERTURE)).unwrap_err();
    assert!(err.to_string().contains("AV_DISABLED"), "{err}");
}

/// A requester in no iommu-map range is denied before the PAMU; nothing is captured.
#[test]
fn test_unmapped_requester_denied_before_pamu() {
    // A requester in no `iommu-map` range is denied by the VMM before it reaches the PAMU: its DMA
    // fails and nothing is captured.
    let b = board();
    let liodn = liodn_of(&b, b.nic);
    let (_drv, _dom) = setup(&b.rig, liodn);
    b.rig.irq.take();
    let gap = routed_view(b.rig.mem(), &b.topo, b.gap, &b.rig.pamu);
    assert!(gap.read_obj::<u32>(GuestAddress(APERTURE)).is_err());
    assert!(gap.write_obj(1u32, GuestAddress(W0_PA)).is_err());
    assert_eq!(mmio32(&b.rig.pamu, AVS1), 0);
    assert!(b.rig.irq.take().is_empty());
    // The NIC's routed view works through the same topology.
    let nic = routed_view(b.rig.mem(), &b.topo, b.nic, &b.rig.pamu);
    nic.write_obj(0xfeed_u32, GuestAddress(APERTURE + 0x800))
        .unwrap();
    assert_eq!(
        b.rig
            .pamu
            .memory()
            .read_obj::<u32>(GuestAddress(W0_PA + 0x800))
            .unwrap(),
        0xfeed
    );
}

/// A write spanning a disallowed and a writable window is refused whole.
#[test]
fn test_write_into_unmapped_window_is_refused_whole() {
    // A device write that spans an unmapped (or read-only) window and a writable one is refused as
    // a whole: nothing lands in the writable part, and the capture names the first byte the window
    // does not allow (WAV for the unmapped window, APV for the read-only one).
    let b = board();
    let liodn = liodn_of(&b, b.nic);
    let (_drv, _dom) = setup(&b.rig, liodn);
    let pamu = &b.rig.pamu;
    let ram = pamu.memory();
    let dma = view(pamu, liodn);
    // Window 2 is unmapped: a write from its last 0x40 bytes into window 3.
    let start = APERTURE + 3 * WIN - 0x40;
    let err = dma
        .write_slice(&[0xAA; 0x80], GuestAddress(start))
        .unwrap_err();
    assert!(err.to_string().contains("AV_WINDOW"), "{err}");
    assert_eq!(read_pa(ram, W3_PA, 0x40), vec![0u8; 0x40]);
    assert_eq!(mmio64(pamu, AVAH), start);
    assert_eq!(mmio32(pamu, AVS1) >> 16, u32::from(liodn));

    // From window 0 into read-only window 1: the write is refused before window 0 is touched.
    let b2 = board();
    let (_drv2, _dom2) = setup(&b2.rig, liodn);
    let pamu2 = &b2.rig.pamu;
    let dma2 = view(pamu2, liodn);
    let start = APERTURE + WIN - 0x40;
    assert!(dma2
        .write_slice(&[0xBB; 0x80], GuestAddress(start))
        .is_err());
    assert_eq!(
        read_pa(pamu2.memory(), W0_PA + WIN - 0x40, 0x40),
        vec![0u8; 0x40]
    );
    assert_eq!(mmio64(pamu2, AVAH), APERTURE + WIN);
    assert_eq!(mmio32(pamu2, AVS1) & 0x7fff, AVS1_APV | AVS1_AV);
}
