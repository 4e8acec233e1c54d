//! Insta snapshot of a Linux-like PAMU bring-up, rendered from the device's typed trace
//! events: probe (table registers, PICS, PC on every instance, PAMUBYPENR), identity entries
//! for every LIODN of a device-tree-like list, a VFIO-style geometry and window configuration,
//! DMA through it, an MSI through a bank window, and an access violation handled by the
//! Linux ISR.
//!
//! Next to the snapshot the test asserts the behaviour it records: the DMA and MSI results,
//! the fault capture registers, the interrupt lines and the register values. Register values
//! are checked through `Pamu::save`, which does not trace, so the log stays as recorded.

use viommu_common::access::{DmaRequest, Perms};
use viommu_common::testing::Irq;
use viommu_common::traits::{DmaTranslator, FaultKind};
use viommu_pamu::msi::MsiVector;
use viommu_pamu::testing::{AvReport, DtDevice, DtKind, LinuxVersion, PaactBuilder, Rig};
use viommu_pamu::PamuConfig;

/// P4080 bank 0's MSIIR through its alias page.
const MSIIR_BANK0: u64 = 0xF_FE04_4140;

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
    // Every instance holds the same tables, AVIE and PC = PE | OCE | SPCC | PPCC; probe
    // cleared PAMUBYPENR.
    assert_eq!(max, 256);
    let state = rig.pamu.save();
    assert_eq!(state.bypass, 0);
    assert_eq!(state.instances.len(), 5);
    for st in &state.instances {
        assert_eq!(
            st.tables,
            [0x100_0000, 0x101_4000, 0x101_4000, 0x103_4000, 0x103_4000, 0x103_4800]
        );
        assert_eq!((st.pc, st.pics), (0x4000_1011, 0x4));
    }

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
    let m = rig
        .pamu
        .translate(&DmaRequest::write(0x48, 0x1234_5000, 64))
        .expect("identity entry maps the boot-default DMA");
    assert_eq!((m.output, m.perms), (0x1234_5000, Perms::RWX));
    assert_eq!(m.attrs.device, 0x0100_0001);
    note(
        &rig,
        "QMan portal enhanced read (IOE_EREAD0) through OMT[0]: RSA",
    );
    let t = rig
        .pamu
        .translate_op(0x30, 0x8000, 64, viommu_common::access::AccessKind::Read, 2)
        .expect("QMan portal read maps through OMT[0]");
    assert_eq!((t.output, t.perms), (0x8000, Perms::RWX));
    assert_eq!(t.attrs.device_bits(), 0x0900_1C16);

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
    let r = rig
        .pamu
        .translate(&DmaRequest::read(0x10, 0x0000_1000, 4096))
        .expect("window 0 is mapped");
    assert_eq!((r.output, r.perms), (0x2_0000_1000, Perms::RWX));
    let w = rig
        .pamu
        .translate(&DmaRequest::write(0x10, 0x3FFF_FFC0, 64))
        .expect("window 3 is mapped");
    assert_eq!((w.output, w.perms), (0x2_3FFF_FFC0, Perms::RWX));
    note(&rig, format!("device MSI to {msi:#x}, data 0x23"));
    assert!(rig.irq.take().is_empty(), "no interrupt before the MSI");
    let (t, vector) = rig
        .pamu
        .msi_write(0x10, msi, 0x23)
        .expect("the MSI window maps bank 0's MSIIR");
    assert_eq!(
        (msi, t.output, t.perms),
        (0x7000_0140, MSIIR_BANK0, Perms::W)
    );
    // MPIC 4.2 MSIIR 0x23: SRS 1, IBS 3, delivered as vector 1 * 32 + 3.
    assert_eq!(
        vector,
        Some(MsiVector {
            bank: 0,
            srs: 1,
            ibs: 3
        })
    );
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Msi {
            addr: MSIIR_BANK0,
            data: 35
        }]
    );

    note(
        &rig,
        "device DMA into unmapped window 5 -> access violation, pamu_av_isr",
    );
    let f = rig
        .pamu
        .translate(&DmaRequest::read(0x10, 0x5000_0000, 4))
        .expect_err("window 5 is not mapped");
    assert_eq!((f.kind, f.addr), (FaultKind::Translation, 0x5000_0000));
    // Captured by instance 0: AVS1 = LIODN 0x10 | WAV | AV, a read, AVA = the input address,
    // PICS.AVICS | AVIE, and the AV line (0) is raised.
    let st = rig.pamu.save().instances[0];
    assert_eq!(
        (st.avs1, st.avs2, st.ava, st.pics),
        (0x0010_0081, 0, 0x5000_0000, 0xC)
    );
    assert!(rig.pamu.av_line_level() && !rig.pamu.err_line_level());
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: true
        }]
    );

    let reports = drv.av_isr().unwrap();
    note(&rig, format!("ISR handled {reports:x?}"));
    assert_eq!(
        reports,
        vec![AvReport {
            instance: 0,
            avs1: 0x0010_0081,
            ava: 0x5000_0000,
            av_disabled: false
        }]
    );
    // The ISR cleared the AVS1 flags (LIODN kept) and AVICS, and the line dropped.
    let st = rig.pamu.save().instances[0];
    assert_eq!((st.avs1, st.pics), (0x0010_0000, 0x4));
    assert!(!rig.pamu.av_line_level());
    assert_eq!(
        rig.irq.take(),
        vec![Irq::Line {
            line: 0,
            level: false
        }]
    );

    note(&rig, "the LIODN is now disabled by the ISR");
    let f = rig
        .pamu
        .translate(&DmaRequest::read(0x10, 0x0000_1000, 4))
        .expect_err("the ISR cleared V in the LIODN's entry");
    assert_eq!((f.kind, f.addr), (FaultKind::Translation, 0x1000));
    // AVS1 = LIODN 0x10 | PDV | AV.
    let st = rig.pamu.save().instances[0];
    assert_eq!((st.avs1, st.ava, st.pics), (0x0010_4001, 0x1000, 0xC));
    assert!(rig.pamu.av_line_level());

    let log = rig.take_log().join("\n");
    insta::assert_snapshot!("linux_bringup", log);
}
