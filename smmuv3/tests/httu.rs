//! Hardware translation table updates through the device (IHI 0070 §3.13):
//! CD.HA/HD and STE.S2HA/S2HD set the access flag and the dirty state in guest page tables with
//! compare-and-swap, the IOTLB re-walks a cached writable-clean entry on a write, and the CD/STE
//! decoder accepts the bits only when IDR0.HTTU advertises them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::mem;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::{DmaRequest, Perms};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::idr::Httu;
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{DriverOptions, GuestDriver, Prot, S1Domain};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x1000_0000;
const PA: u64 = RAM + 0x0200_0000;

/// Descriptor bits (Arm ARM D8.3).
const AF: u64 = 1 << 10;
const AP_RO: u64 = 1 << 7;
const S2AP_W: u64 = 1 << 7;
const DBM: u64 = 1 << 51;
/// Software-defined descriptor bits [58:55]: the "guest" marks its own updates with them.
const SW: [u64; 4] = [1 << 55, 1 << 56, 1 << 57, 1 << 58];
/// CD word 0 HD [42], HA [43].
const CD_HD: u64 = 1 << 42;
const CD_HA: u64 = 1 << 43;
/// STE word 2 S2HD [55], S2HA [56].
const STE_S2HD: u64 = 1 << 55;
const STE_S2HA: u64 = 1 << 56;

type Dev<'a> = SmmuV3<&'a GuestMemoryMmap>;
type Drv<'a> = GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap>;

fn config(httu: Httu) -> SmmuConfig {
    SmmuConfig {
        httu,
        ..SmmuConfig::default()
    }
}

fn device(ram: &GuestMemoryMmap, httu: Httu) -> Dev<'_> {
    SmmuV3::new(&config(httu), ram, Arc::new(RecordingIrq::new())).unwrap()
}

fn driver<'a>(smmu: &'a Dev<'a>, ram: &'a GuestMemoryMmap) -> Drv<'a> {
    let mut drv = GuestDriver::new(smmu, ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    drv
}

/// Attach SID to `dom` with CD word 0 OR `cd_bits` (HA/HD).
fn attach(drv: &mut Drv<'_>, dom: &S1Domain, cd_bits: u64) {
    let (table, fmt, cdmax) = drv.cd_table(SID, 0);
    let mut cd = drv.s1_cd(dom);
    cd[0] |= cd_bits;
    drv.write_cd_steps(SID, 0, cd, &mut || {}).unwrap();
    let ste = drv.cdtable_ste(table, fmt, cdmax, 2);
    drv.write_ste(SID, ste).unwrap();
}

/// Map one RW page at IOVA and rewrite its leaf as `f(pte)`; returns the leaf's address.
fn map_page(
    drv: &mut Drv<'_>,
    ram: &GuestMemoryMmap,
    dom: &S1Domain,
    f: impl Fn(u64) -> u64,
) -> u64 {
    let slot = dom
        .pgtable
        .map(ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    let pte = mem::read_u64_le(ram, slot).unwrap();
    assert_eq!(pte & (AF | AP_RO), AF, "io-pgtable maps RW pages with AF");
    mem::write_u64_le(ram, slot, f(pte)).unwrap();
    slot
}

/// A stage-1 domain (ASID 1) mapping one RW page at IOVA with its leaf rewritten as `f(pte)`,
/// attached to SID with CD word 0 OR `cd_bits` (HA/HD); returns the domain and the leaf's
/// address.
fn attached_page(
    drv: &mut Drv<'_>,
    ram: &GuestMemoryMmap,
    f: impl Fn(u64) -> u64,
    cd_bits: u64,
) -> (S1Domain, u64) {
    let dom = drv.new_s1_domain(1);
    let slot = map_page(drv, ram, &dom, f);
    attach(drv, &dom, cd_bits);
    (dom, slot)
}

fn pte(ram: &GuestMemoryMmap, slot: u64) -> u64 {
    mem::read_u64_le(ram, slot).unwrap()
}

/// IDR0.HTTU (bits 7:6) advertises the configured level.
#[test]
fn test_httu_advertised_in_idr0() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    for (h, bits) in [
        (Httu::NONE, 0),
        (Httu::ACCESS, 0x40),
        (Httu::ACCESS_DIRTY, 0x80),
    ] {
        let smmu = device(&ram, h);
        let drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
        assert_eq!(drv.read32(r::IDR0), 0x094C_301B | bits, "{h:?}");
    }
}

/// A write through a writable-clean page (DBM = 1, AP[2] = 1) with CD.HA/HD marks it dirty
/// (AP[2] = 0) in guest memory; a read before it does not, and its cached writable-clean
/// IOTLB entry does not satisfy the write (the write walks again).
#[test]
fn test_write_to_clean_page_marks_dirty_read_does_not() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = device(&ram, Httu::ACCESS_DIRTY);
    let mut drv = driver(&smmu, &ram);
    let (_dom, slot) = attached_page(&mut drv, &ram, |p| p | DBM | AP_RO, CD_HA | CD_HD);
    let clean = pte(&ram, slot);

    let m = smmu.translate(&DmaRequest::read(SID, IOVA + 8, 8)).unwrap();
    assert_eq!(m.output, PA + 8);
    assert_eq!(m.perms, Perms::R, "writable-clean: no W until dirty");
    assert_eq!(
        pte(&ram, slot),
        clean,
        "a read does not set the dirty state"
    );
    // The read cached the entry; the write must still reach the tables.
    assert!(smmu.translate(&DmaRequest::read(SID, IOVA + 16, 8)).is_ok());
    let m = smmu
        .translate(&DmaRequest::write(SID, IOVA + 8, 8))
        .unwrap();
    assert_eq!(m.output, PA + 8);
    assert!(m.perms.write());
    assert_eq!(pte(&ram, slot), clean & !AP_RO, "dirty: AP[2] cleared");
    assert!(drv.read_events().is_empty());
}

/// Without CD.HD (HTTU advertised), DBM is ignored: the write is a permission fault and the
/// descriptor is unchanged.
#[test]
fn test_write_to_clean_page_without_hd_faults() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = device(&ram, Httu::ACCESS_DIRTY);
    let mut drv = driver(&smmu, &ram);
    let (_dom, slot) = attached_page(&mut drv, &ram, |p| p | DBM | AP_RO, CD_HA);
    let clean = pte(&ram, slot);
    let f = smmu
        .translate(&DmaRequest::write(SID, IOVA, 8))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Permission);
    assert_eq!(pte(&ram, slot), clean);
}

/// AF = 0: with CD.HA the access flag is set in guest memory and no F_ACCESS occurs; without
/// HA the same page faults with F_ACCESS.
#[test]
fn test_access_flag_set_by_hardware_with_ha() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = device(&ram, Httu::ACCESS);
    let mut drv = driver(&smmu, &ram);
    let (dom, slot) = attached_page(&mut drv, &ram, |p| p & !AF, 0);
    let f = smmu.translate(&DmaRequest::read(SID, IOVA, 8)).unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Access);
    assert_eq!(pte(&ram, slot) & AF, 0);
    drv.read_events();

    // Same tables, CD.HA = 1.
    let mut cd = drv.s1_cd(&dom);
    cd[0] |= CD_HA;
    drv.write_cd_steps(SID, 0, cd, &mut || {}).unwrap();
    let m = smmu.translate(&DmaRequest::read(SID, IOVA, 8)).unwrap();
    assert_eq!(m.output, PA);
    assert_eq!(pte(&ram, slot) & AF, AF, "AF set in guest memory");
    assert!(drv.read_events().is_empty(), "no F_ACCESS");
}

/// The decoder accepts CD.HA only with IDR0.HTTU >= 1 and CD.HD only with HTTU = 2
/// (C_BAD_CD otherwise).
#[test]
fn test_cd_ha_hd_need_idr0_httu() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    for (h, cd_bits, ok) in [
        (Httu::NONE, CD_HA, false),
        (Httu::ACCESS, CD_HA, true),
        (Httu::ACCESS, CD_HA | CD_HD, false),
        (Httu::ACCESS_DIRTY, CD_HA | CD_HD, true),
    ] {
        let smmu = device(&ram, h);
        let mut drv = driver(&smmu, &ram);
        attached_page(&mut drv, &ram, |p| p, cd_bits);
        let r = smmu.translate(&DmaRequest::read(SID, IOVA, 8));
        match ok {
            true => assert!(r.is_ok(), "{h:?} {cd_bits:#x}: {r:?}"),
            false => assert_eq!(
                r.unwrap_err().event,
                Smmuv3FaultId::BadCd,
                "{h:?} {cd_bits:#x}"
            ),
        }
    }
}

/// Stage 2: STE.S2HA/S2HD set AF and make a DBM page writable (S2AP[1]) on a write; S2HA
/// without HTTU is C_BAD_STE.
#[test]
fn test_stage2_httu_sets_af_and_dirty() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = device(&ram, Httu::ACCESS_DIRTY);
    let mut drv = driver(&smmu, &ram);
    let dom = drv.new_s2_domain(3);
    let slot = dom
        .pgtable
        .map(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    let p = pte(&ram, slot);
    assert_eq!(p & (AF | S2AP_W), AF | S2AP_W);
    let clean = (p & !(AF | S2AP_W)) | DBM;
    mem::write_u64_le(&ram, slot, clean).unwrap();
    let mut ste = drv.s2_ste(&dom);
    ste[2] |= STE_S2HA | STE_S2HD;
    drv.write_ste(SID, ste).unwrap();
    let m = smmu.translate(&DmaRequest::read(SID, IOVA, 4)).unwrap();
    assert_eq!(m.output, PA);
    assert_eq!(pte(&ram, slot), clean | AF, "read: AF only");
    let m = smmu.translate(&DmaRequest::write(SID, IOVA, 4)).unwrap();
    assert!(m.perms.write());
    assert_eq!(pte(&ram, slot), clean | AF | S2AP_W, "write: dirty");

    let smmu = device(&ram, Httu::NONE);
    let mut drv = driver(&smmu, &ram);
    let dom = drv.new_s2_domain(3);
    dom.pgtable
        .map(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    let mut ste = drv.s2_ste(&dom);
    ste[2] |= STE_S2HA;
    drv.write_ste(SID, ste).unwrap();
    let f = smmu.translate(&DmaRequest::read(SID, IOVA, 4)).unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::BadSte);
}

/// The guest updates software bits of the descriptor (with its own atomic read-modify-write,
/// re-cleaning the page each time) while DMA writes dirty it: no update of either side is
/// lost, because the SMMU's dirty update is a compare-and-swap.
#[test]
fn test_concurrent_guest_update_is_not_lost() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = device(&ram, Httu::ACCESS_DIRTY);
    let mut drv = driver(&smmu, &ram);
    let (_dom, slot) = attached_page(&mut drv, &ram, |p| p | DBM | AP_RO, CD_HA | CD_HD);
    let base = pte(&ram, slot);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let dma = s.spawn(|| {
            let (mut n, mut tries) = (0u32, 0u32);
            // At least 200 writes, and until the guest is done.
            while tries < 200 || !stop.load(Ordering::Relaxed) {
                tries += 1;
                // A VMM that changes nothing still has to see the guest's re-cleaning: drop the
                // cached entry so each write walks (and races with the guest's update).
                smmu.flush_iotlb();
                // (After HTTU_MAX_ATTEMPTS lost races the walker takes the fault; policy.)
                n += u32::from(smmu.translate(&DmaRequest::write(SID, IOVA, 4)).is_ok());
            }
            n
        });
        for round in 0..200 {
            let bit = SW[round % SW.len()];
            // Guest: toggle a software bit and re-clean (AP[2] = 1) with compare-and-swap.
            loop {
                let old = pte(&ram, slot);
                let new = (old ^ bit) | AP_RO;
                if mem::cmpxchg_u64_le(&ram, slot, old, new).unwrap().is_ok() {
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(dma.join().unwrap() > 0);
    });
    // 200 toggles over 4 bits: each toggled 50 times, so every software bit is back to 0.
    let p = pte(&ram, slot);
    assert_eq!(
        p & SW.iter().fold(0, |a, b| a | b),
        0,
        "a guest update was lost"
    );
    assert_eq!(p & !AP_RO, base & !AP_RO);
    // One more write leaves it dirty.
    smmu.flush_iotlb();
    assert!(smmu.translate(&DmaRequest::write(SID, IOVA, 4)).is_ok());
    assert_eq!(pte(&ram, slot) & AP_RO, 0);
}
