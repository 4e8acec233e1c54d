//! Stage-2 and emulated nested translation driven through guest memory and commands: CD and
//! stage-1 table fetches through stage 2, combined permissions, and stage-2 faults reported with
//! S2 = 1, the right CLASS and the IPA.

use std::sync::Arc;

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::mem;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::{DmaRequest, Perms};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::testing::cmd;
use viommu_smmuv3::testing::pgtable::{leaf_bits, PgFormat, IOMMU_PRIV};
use viommu_smmuv3::testing::{DriverOptions, GuestDriver, Prot, S1Domain};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
/// The guest's IPA window and where it lives in PA.
const IPA_BASE: u64 = 0x1000_0000;
const PA_BASE: u64 = RAM + 0x0200_0000;

fn setup(ram: &GuestMemoryMmap) -> (SmmuV3<&GuestMemoryMmap>, Arc<RecordingIrq>) {
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&SmmuConfig::default(), ram, irq.clone()).unwrap();
    (smmu, irq)
}

/// Decode the fields of an event record the tests check: (id, S2, CLASS, IPA, input addr).
fn fields(ev: &[u64; 4]) -> (u64, u64, u64, u64, u64) {
    (
        ev[0] & 0xFF,
        ev[1] >> 39 & 1,
        ev[1] >> 40 & 3,
        ev[3] & 0x000F_FFFF_FFFF_F000,
        ev[2],
    )
}

/// A stage-2 domain translates IPAs; an unmapped IPA faults with S2 = 1, CLASS = IN and the
/// IPA recorded (STE.S2R = 1).
#[test]
fn test_stage2_translation_and_fault() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = setup(&ram);
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s2_domain(3);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IPA_BASE, PA_BASE, 0x4000, Prot::RW);
    drv.attach_s2(0x40, &dom).unwrap();
    let m = smmu
        .translate(&DmaRequest::write(0x40, IPA_BASE + 0x2010, 8))
        .unwrap();
    assert_eq!(m.output, PA_BASE + 0x2010);
    assert_eq!(m.perms, Perms::RW);
    let f = smmu
        .translate(&DmaRequest::read(0x40, IPA_BASE + 0x5000, 8))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Translation);
    let ev = drv.read_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        fields(&ev[0]),
        (0x10, 1, 2, IPA_BASE + 0x5000, IPA_BASE + 0x5000)
    );
}

/// Guest-side stage-1 structures that live in IPA space.
struct Nested {
    /// IPAs of the four stage-1 tables (L0..L3).
    tables: [u64; 4],
    /// IPA of the CD.
    cd: u64,
    /// IPA of the data page.
    data: u64,
    va: u64,
}

/// PA of an IPA in the window.
fn pa(ipa: u64) -> u64 {
    ipa - IPA_BASE + PA_BASE
}

/// Write a stage-1 4-level table for one VA whose tables and output are IPAs, and a CD.
fn build_nested(
    ram: &GuestMemoryMmap,
    drv: &GuestDriver<'_, &GuestMemoryMmap, GuestMemoryMmap>,
) -> Nested {
    let n = Nested {
        tables: [
            IPA_BASE,
            IPA_BASE + 0x1000,
            IPA_BASE + 0x2000,
            IPA_BASE + 0x3000,
        ],
        cd: IPA_BASE + 0x9000,
        data: IPA_BASE + 0x8000,
        va: 0x0000_0080_4060_3000,
    };
    for level in 0..4u64 {
        let idx = (n.va >> (39 - 9 * level)) & 511;
        let slot = pa(n.tables[level as usize]) + 8 * idx;
        let desc = if level < 3 {
            n.tables[level as usize + 1] | 3
        } else {
            n.data | leaf_bits(PgFormat::Stage1, Prot::RW.0, true)
        };
        mem::write_u64_le(ram, slot, desc).unwrap();
    }
    let dom = S1Domain {
        asid: 9,
        pgtable: viommu_smmuv3::testing::IoPgtable {
            format: PgFormat::Stage1,
            ias: 48,
            root: n.tables[0],
            start_level: 0,
        },
    };
    let cd = drv.s1_cd(&dom);
    for (i, w) in cd.iter().enumerate() {
        mem::write_u64_le(ram, pa(n.cd) + 8 * i as u64, *w).unwrap();
    }
    n
}

/// Nested (Config 0b111): the CD and every stage-1 table are fetched through stage 2, the
/// output IPA too; stage-2 faults on each report CLASS = CD / TT / IN with S2 = 1 and the IPA.
#[test]
fn test_nested_translation_and_stage2_fault_classes() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = setup(&ram);
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let s2 = drv.new_s2_domain(5);
    // Stage 2 maps the IPA window read-write, except the data page, which is read-only.
    for page in 0..16u64 {
        let prot = if IPA_BASE + page * 0x1000 == IPA_BASE + 0x8000 {
            Prot::RO
        } else {
            Prot::RW
        };
        s2.pgtable.map(
            &ram,
            &mut drv.alloc,
            IPA_BASE + page * 0x1000,
            PA_BASE + page * 0x1000,
            0x1000,
            prot,
        );
    }
    let n = build_nested(&ram, &drv);
    let sid = 0x50;
    let mut ste = drv.s2_ste(&s2);
    // Config 0b111 with the stage-1 fields: S1ContextPtr (an IPA), S1CDMax 0, CIR/COR/CSH.
    ste[0] = 1 | 7 << 1 | (n.cd & 0x000F_FFFF_FFFF_FFC0);
    ste[1] |= 0xD4;
    drv.write_ste(sid, ste).unwrap();

    let m = smmu
        .translate(&DmaRequest::read(sid, n.va + 0x44, 4))
        .unwrap();
    assert_eq!(m.output, pa(n.data) + 0x44);
    assert_eq!(m.perms, Perms::R, "S1 RW intersected with S2 read-only");
    // A write is allowed by stage 1 and refused by stage 2: F_PERMISSION, S2 = 1, CLASS = IN.
    let f = smmu
        .translate(&DmaRequest::write(sid, n.va + 0x44, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Permission);
    let ev = drv.read_events();
    assert_eq!(fields(&ev[0]), (0x13, 1, 2, n.data, n.va + 0x44));

    // Remove the stage-2 mapping of the L2 table: a stage-1 table fetch faults (CLASS = TT).
    let invalidate = |drv: &mut GuestDriver<'_, &GuestMemoryMmap, GuestMemoryMmap>, ipa: u64| {
        s2.pgtable.unmap(&ram, ipa);
        drv.issue_sync(&[
            cmd::tlbi_range(0x2A, 5, 0, ipa, true, 0, 0, 0, 0),
            cmd::tlbi_nh_all(5),
            cmd::cfgi_cd(sid, 0, true),
        ])
        .unwrap();
    };
    invalidate(&mut drv, n.tables[2]);
    let f = smmu.translate(&DmaRequest::read(sid, n.va, 4)).unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Translation);
    let ev = drv.read_events();
    let (id, s2bit, class, ipa, input) = fields(&ev[0]);
    assert_eq!(
        (id, s2bit, class, ipa, input),
        (0x10, 1, 1, n.tables[2], n.va)
    );
    assert_eq!(
        ev[0][1] >> 44 & 1,
        1,
        "TTRnW: the descriptor access was a read"
    );

    // Remove the stage-2 mapping of the CD: CLASS = CD, IPA = the CD's address.
    invalidate(&mut drv, n.cd);
    let f = smmu.translate(&DmaRequest::read(sid, n.va, 4)).unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Translation);
    let ev = drv.read_events();
    let (id, s2bit, class, ipa, _) = fields(&ev[0]);
    assert_eq!((id, s2bit, class, ipa), (0x10, 1, 0, n.cd));
}

/// CD.R = 0 suppresses stage-1 fault records (the DMA still faults); STE abort is silent.
#[test]
fn test_fault_recording_rules() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = setup(&ram);
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(2);
    drv.attach_s1(0x60, &dom).unwrap();
    let mut cd = drv.s1_cd(&dom);
    cd[0] &= !(1 << 45); // R = 0
    drv.write_cd_steps(0x60, 0, cd, &mut || {}).unwrap();
    let f = smmu
        .translate(&DmaRequest::read(0x60, 0x1000, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Translation);
    assert!(drv.read_events().is_empty(), "CD.R = 0: not recorded");
    let abort = drv.abort_ste();
    drv.write_ste(0x60, abort).unwrap();
    assert_eq!(
        smmu.translate(&DmaRequest::read(0x60, 0x1000, 4))
            .unwrap_err()
            .event,
        Smmuv3FaultId::SteAbort
    );
    assert!(drv.read_events().is_empty(), "abort STE: silent");
    // An SSID on a stream without substreams: C_BAD_SUBSTREAMID.
    drv.attach_s1(0x61, &dom).unwrap();
    let f = smmu
        .translate(&DmaRequest::read(0x61, 0x1000, 4).with_substream(1))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::BadSubstreamId);
    let ev = drv.read_events();
    assert_eq!(
        ev[0][0],
        0x08 | 1 << 11 | 1 << 12 | 0x61 << 32,
        "SSV and SSID recorded"
    );
}

/// Stage-1 fault kinds with their exact records: F_ACCESS (AF = 0), F_WALK_EABT (a table
/// pointer outside guest RAM, FetchAddr recorded), F_ADDR_SIZE (output beyond CD.IPS), and
/// F_PERMISSION for a privileged-only page accessed unprivileged.
#[test]
fn test_stage1_fault_kinds_and_records() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = setup(&ram);
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(6);
    let sid = 0x70;
    // 0x1000: AF clear. 0x2000: privileged-only. 0x4000_0000 region: L1 table outside RAM.
    let af = dom.pgtable.map(
        &ram,
        &mut drv.alloc,
        0x1000,
        RAM + 0x0100_0000,
        0x1000,
        Prot::RW,
    );
    let d = mem::read_u64_le(&ram, af).unwrap();
    mem::write_u64_le(&ram, af, d & !(1 << 10)).unwrap();
    let privileged = Prot(Prot::RW.0 | IOMMU_PRIV);
    dom.pgtable.map(
        &ram,
        &mut drv.alloc,
        0x2000,
        RAM + 0x0100_1000,
        0x1000,
        privileged,
    );
    let l0 = dom.pgtable.root;
    // L0 index 1 covers VAs from 0x80_0000_0000.
    let l0_slot = l0 + 8;
    mem::write_u64_le(&ram, l0_slot, 0x1_0000_0000 | 3).unwrap();
    drv.attach_s1(sid, &dom).unwrap();

    let ev_of = |drv: &mut GuestDriver<'_, &GuestMemoryMmap, GuestMemoryMmap>| {
        let ev = drv.read_events();
        assert_eq!(ev.len(), 1);
        ev[0]
    };
    let f = smmu
        .translate(&DmaRequest::read(sid, 0x1008, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Access);
    assert_eq!(ev_of(&mut drv)[0] & 0xFF, 0x12);

    let f = smmu
        .translate(&DmaRequest::write(sid, 0x2008, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Permission);
    let ev = ev_of(&mut drv);
    assert_eq!(ev[0] & 0xFF, 0x13);
    assert_eq!(ev[1] >> 35 & 1, 0, "RnW = 0: a write");
    assert_eq!(ev[1] >> 33 & 1, 0, "PnU = 0: unprivileged");
    assert!(smmu
        .translate(&DmaRequest::write(sid, 0x2008, 4).privileged())
        .is_ok());

    let f = smmu
        .translate(&DmaRequest::read(sid, 0x0080_0000_1000, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::WalkEabt);
    let ev = ev_of(&mut drv);
    assert_eq!(ev[0] & 0xFF, 0x0B);
    assert_eq!(
        ev[3] & 0x000F_FFFF_FFFF_FFF8,
        0x1_0000_0000,
        "FetchAddr: the L1 descriptor read (index 0)"
    );

    // CD.IPS = 32 bits: an output address at 4 GiB is an address-size fault.
    let high = dom.pgtable.map(
        &ram,
        &mut drv.alloc,
        0x3000,
        0x1_0000_0000,
        0x1000,
        Prot::RW,
    );
    assert!(high != 0);
    let mut cd = drv.s1_cd(&dom);
    cd[0] &= !(7 << 32);
    drv.write_cd_steps(sid, 0, cd, &mut || {}).unwrap();
    let f = smmu
        .translate(&DmaRequest::read(sid, 0x3000, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::AddrSize);
    assert_eq!(ev_of(&mut drv)[0] & 0xFF, 0x11);
}
