//! Insta snapshot of a Linux-like PAMU bring-up, rendered from the device's typed trace
//! events: probe (table registers, PICS, PC on every instance, PAMUBYPENR), identity entries
//! for every LIODN of a device-tree-like list, a VFIO-style geometry and window configuration,
//! DMA through it, an MSI through a bank window, and an access violation handled by the
//! Linux ISR.

use viommu_common::access::{DmaRequest, Perms};
use viommu_common::traits::DmaTranslator;
use viommu_pamu::testing::{DtDevice, DtKind, LinuxVersion, PaactBuilder, Rig};
use viommu_pamu::PamuConfig;

fn note(rig: &Rig, s: impl Into<String>) {
    rig.log.lock().unwrap().push(format!("# {}", s.into()));
}

/// The whole bring-up as a readable log.
#[test]
fn test_linux_bringup_log() {
    let rig = Rig::traced(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    rig.pamu.write_bypass_register(0xF800_0000);
    note(
        &rig,
        "fsl_pamu_probe: tables at 0x1000000 (PPAACT 0x500, SPAACT 0x800, OMT 16)",
    );
    let max = drv.probe().unwrap();
    note(&rig, format!("max subwindows from PC3: {max}"));

    let dt = [
        DtDevice {
            name: "dma@100300",
            liodns: vec![0x48],
            kind: DtKind::Plain,
        },
        DtDevice {
            name: "pcie@ffe200000",
            liodns: vec![0x10],
            kind: DtKind::Plain,
        },
        DtDevice {
            name: "fman@400000",
            liodns: vec![0x20, 0x21, 0x22],
            kind: DtKind::Plain,
        },
        DtDevice {
            name: "qman-portal@0",
            liodns: vec![0x30],
            kind: DtKind::QmanPortal,
        },
        DtDevice {
            name: "qman@318000",
            liodns: vec![0x31],
            kind: DtKind::Qman,
        },
        DtDevice {
            name: "bman@31a000",
            liodns: vec![0x32],
            kind: DtKind::Bman,
        },
    ];
    for d in &dt {
        note(
            &rig,
            format!("setup_liodns: {} fsl,liodn = {:x?}", d.name, d.liodns),
        );
    }
    drv.setup_liodns(&dt).unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    for l in [0x48u64, 0x30, 0x31] {
        let w = b.read_words(drv.tables.ppba + l * 64).unwrap();
        note(
            &rig,
            format!(
                "PPAACE[{l:#x}] = {}",
                w.map(|x| format!("{x:08X}")).join(" ")
            ),
        );
    }
    note(&rig, "---- probe done ----");

    note(&rig, "boot-default DMA (identity, ATM 0)");
    let _ = rig
        .pamu
        .translate(&DmaRequest::write(0x48, 0x1234_5000, 64));
    note(
        &rig,
        "QMan portal enhanced read (IOE_EREAD0) through OMT[0]: RSA",
    );
    let _ = rig
        .pamu
        .translate_op(0x30, 0x8000, 64, viommu_common::access::AccessKind::Read, 2);

    note(
        &rig,
        "VFIO: attach pcie LIODN 0x10; GEOMETRY [0, 0x7fffffff]; WINDOWS 8",
    );
    let mem = rig.mem();
    let banks = rig.pamu.msi_banks();
    let mut dom = drv.new_domain();
    let t = &mut drv.tables;
    dom.attach(t, mem, 0x10).unwrap();
    dom.set_geometry(t, mem, 0, 0x7FFF_FFFF).unwrap();
    dom.set_windows(t, mem, 8).unwrap();
    note(&rig, "MAP_DMA iova 0 -> 0x2_0000_0000, 1 GiB (4 windows of 256 MiB); MAP_MSI_BANK 0 at 0x7000_0000");
    dom.map_dma(t, mem, 0, 0x2_0000_0000, 0x4000_0000, Perms::RW)
        .unwrap();
    let msi = dom
        .map_msi_bank(t, mem, &banks, 0, 0x7000_0000, Perms::W)
        .unwrap();
    let w = b.read_words(t.ppba + 0x10 * 64).unwrap();
    note(
        &rig,
        format!("PPAACE[0x10] = {}", w.map(|x| format!("{x:08X}")).join(" ")),
    );
    let _ = rig
        .pamu
        .translate(&DmaRequest::read(0x10, 0x0000_1000, 4096));
    let _ = rig
        .pamu
        .translate(&DmaRequest::write(0x10, 0x3FFF_FFC0, 64));
    note(&rig, format!("device MSI to {msi:#x}, data 0x23"));
    let _ = rig.pamu.msi_write(0x10, msi, 0x23);

    note(
        &rig,
        "device DMA into unmapped window 5 -> access violation, pamu_av_isr",
    );
    let _ = rig.pamu.translate(&DmaRequest::read(0x10, 0x5000_0000, 4));
    let reports = drv.av_isr().unwrap();
    note(&rig, format!("ISR handled {reports:x?}"));
    note(&rig, "the LIODN is now disabled by the ISR");
    let _ = rig.pamu.translate(&DmaRequest::read(0x10, 0x0000_1000, 4));

    let log = rig.take_log().join("\n");
    insta::assert_snapshot!("linux_bringup", log);
}
