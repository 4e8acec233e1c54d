//! The PAMU test vectors TV-0..TV-5 of pamu/README.md, exactly: entry words written by the
//! Linux-shaped driver and the geometry API, translations, faults and the AVS1/AVA/PICS values
//! the guest reads back through big-endian MMIO.

use viommu_common::access::{AccessKind, DmaRequest, Perms};
use viommu_common::traits::DmaTranslator;
use viommu_pamu::geometry::{Domain, GeometryError, Tables};
use viommu_pamu::spec::regs::Reg;
use viommu_pamu::testing::{
    DtDevice, DtKind, GuestDriver, LinuxVersion, PaactBuilder, Rig, RigMem,
};
use viommu_pamu::PamuConfig;

type Drv<'a> = GuestDriver<'a, RigMem>;

/// Translate by LIODN and return the output address or the fault name.
fn dma(rig: &Rig, liodn: u32, addr: u64, access: AccessKind) -> Result<u64, &'static str> {
    rig.pamu
        .translate(&DmaRequest::new(liodn, addr, 1, access))
        .map(|m| m.output)
        .map_err(|f| f.event.name())
}

fn r(rig: &Rig, liodn: u32, addr: u64) -> Result<u64, &'static str> {
    dma(rig, liodn, addr, AccessKind::Read)
}

fn w(rig: &Rig, liodn: u32, addr: u64) -> Result<u64, &'static str> {
    dma(rig, liodn, addr, AccessKind::Write)
}

/// Assert the captured violation (AVS1, AVA, PICS.AVICS) on instance 0, then clear it the
/// way the Linux ISR clears the registers (without disabling the LIODN).
fn expect_av(drv: &Drv<'_>, avs1: u32, ava: u64) {
    assert_eq!(drv.read(0, Reg::Avs1), avs1, "AVS1");
    let got = (u64::from(drv.read(0, Reg::Avah)) << 32) | u64::from(drv.read(0, Reg::Aval));
    assert_eq!(got, ava, "AVA");
    assert_eq!(drv.read(0, Reg::Pics) & 0x8, 0x8, "PICS.AVICS");
    drv.write(0, Reg::Avs1, avs1 & 0x7FFF);
    drv.write(0, Reg::Pics, drv.read(0, Reg::Pics));
    assert_eq!(drv.read(0, Reg::Avs1) & 0x7FFF, 0);
    assert_eq!(drv.read(0, Reg::Pics), 0x4);
}

fn words(drv: &Drv<'_>, rig: &Rig, addr: u64) -> [u32; 8] {
    PaactBuilder::new(rig.mem(), drv.tables.clone())
        .read_words(addr)
        .unwrap()
}

/// TV-0: encodings and the register values after the Linux probe.
#[test]
fn test_tv0_probe_registers_and_encodings() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    assert_eq!(drv.probe().unwrap(), 256);
    let base = drv.tables.ppba;
    for inst in 0..5 {
        assert_eq!(drv.read(inst, Reg::Pc), 0x4000_1011);
        assert_eq!(drv.read(inst, Reg::Pics), 0x0000_0004);
        assert_eq!(drv.read(inst, Reg::Pc3), 0x00E0_0000);
        assert_eq!(drv.read(inst, Reg::Ppbal), base as u32);
        assert_eq!(drv.read(inst, Reg::Pplal), (base + 0x14000) as u32);
        assert_eq!(
            drv.read(inst, Reg::Splal),
            (drv.tables.spba + 0x20000) as u32
        );
        assert_eq!(drv.read(inst, Reg::Olal), (drv.tables.oba + 0x800) as u32);
    }
    assert_eq!(rig.pamu.bypass_register(), 0);
    let r1 = Rig::new(PamuConfig::p4080_rev1());
    assert_eq!(
        r1.driver(LinuxVersion::Pre513).read(0, Reg::Pc3),
        0x0060_0000
    );
    // WSE and WCE encodings as the geometry API writes them.
    let mem = rig.mem();
    for (size, wse) in [
        (0x1000u64, 11u32),
        (1 << 20, 19),
        (1 << 30, 29),
        (1 << 32, 31),
        (1 << 36, 35),
        (1 << 40, 39),
    ] {
        let mut t = Tables::linux(0x200_0000);
        let mut d = Domain::new(256);
        d.attach(&mut t, mem, 1).unwrap();
        d.set_geometry(&mut t, mem, 0, size - 1).unwrap();
        d.set_windows(&mut t, mem, 1).unwrap();
        let e = PaactBuilder::new(mem, t.clone())
            .read_words(t.ppba + 64)
            .unwrap();
        assert_eq!((e[1] >> 6) & 0x3F, wse, "WSE for {size:#x}");
    }
    for (count, wce) in [(2u32, 0u32), (4, 1), (8, 2), (16, 3), (256, 7)] {
        let mut t = Tables::linux(0x200_0000);
        let mut d = Domain::new(256);
        d.attach(&mut t, mem, 1).unwrap();
        d.set_geometry(&mut t, mem, 0, (1 << 30) - 1).unwrap();
        d.set_windows(&mut t, mem, count).unwrap();
        let e = PaactBuilder::new(mem, t.clone())
            .read_words(t.ppba + 64)
            .unwrap();
        assert_eq!((e[3] >> 4) & 0xF, wce, "WCE for {count}");
        assert_eq!(e[1] & 0x20, 0x20, "MW");
    }
}

const TV1_WORDS: [u32; 8] = [0, 0x8000_06D9, 0x80, 4, 1, 0x2000_0000, 0, 0];

/// TV-1 through the geometry API: a single translated window, its words and translations.
#[test]
fn test_tv1_single_window_geometry_api() {
    let rig = Rig::new(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let l = 0x30u16;
    let mut d = drv.new_domain();
    d.attach(&mut drv.tables, mem, l).unwrap();
    d.set_geometry(&mut drv.tables, mem, 0x8000_0000, 0x8FFF_FFFF)
        .unwrap();
    d.set_windows(&mut drv.tables, mem, 1).unwrap();
    d.window_enable(
        &mut drv.tables,
        mem,
        0,
        0x1_2000_0000,
        0x1000_0000,
        Perms::RW,
    )
    .unwrap();
    d.enable(&mut drv.tables, mem, true).unwrap();
    let pe = drv.tables.ppba + u64::from(l) * 64;
    assert_eq!(words(&drv, &rig, pe), TV1_WORDS);

    let l = u32::from(l);
    assert_eq!(r(&rig, l, 0x8000_0000), Ok(0x1_2000_0000));
    assert_eq!(w(&rig, l, 0x8123_4568), Ok(0x1_2123_4568));
    assert_eq!(r(&rig, l, 0x8FFF_FFFF), Ok(0x1_2FFF_FFFF));
    assert_eq!(r(&rig, l, 0x9000_0000), Err("AV_WINDOW"));
    expect_av(&drv, 0x0030_0081, 0x9000_0000);
    assert_eq!(r(&rig, l, 0x7FFF_FFFF), Err("AV_WINDOW"));
    expect_av(&drv, 0x0030_0081, 0x7FFF_FFFF);
}

/// TV-1 read-only variant written as raw words: reads translate, writes are APV.
#[test]
fn test_tv1_read_only_variant() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    let mut ro = TV1_WORDS;
    ro[1] = 0x8000_06C9;
    b.ppaace(9, ro).unwrap();
    assert_eq!(r(&rig, 9, 0x8000_1000), Ok(0x1_2000_1000));
    assert_eq!(w(&rig, 9, 0x8000_1000), Err("AV_PERMISSION"));
    assert_eq!(drv.read(0, Reg::Avs2), 1, "Policy: AVS2 bit 0 = write");
    expect_av(&drv, 0x0009_0009, 0x8000_1000);
}

const TV2_PPAACE: [u32; 8] = [0, 0x779, 0x80, 0x24, 2, 0x680, 0x10, 0];
const TV2_W1: [u32; 8] = [0, 0x0021_000B, 0x80, 4, 1, 0x0800_03C0, 0, 0];
const TV2_UNMAPPED: [u32; 8] = [0, 0x0021_0002, 0x80, 4, 0, 0x680, 0, 0];
const TV2_W7: [u32; 8] = [0, 0x0021_0013, 0x80, 4, 0xF, 0xFE04_42C0, 0, 0];

/// TV-2: 1 GiB aperture, 8 subwindows, FSPI 0x10, LIODN 0x21: words and translations.
#[test]
fn test_tv2_subwindows() {
    let rig = Rig::new(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    // Sixteen SPAACEs belong to someone else, so this domain's FSPI is 0x10.
    assert_eq!(drv.tables.alloc_spaace(0x10), Ok(0));
    let mut d = drv.new_domain();
    let t = &mut drv.tables;
    d.attach(t, mem, 0x21).unwrap();
    d.set_geometry(t, mem, 0, 0x3FFF_FFFF).unwrap();
    d.set_windows(t, mem, 8).unwrap();
    d.window_enable(t, mem, 0, 0x2_0000_0000, 0x800_0000, Perms::RW)
        .unwrap();
    d.window_enable(t, mem, 1, 0x1_0800_0000, 0x1_0000, Perms::R)
        .unwrap();
    d.window_enable(t, mem, 7, 0xF_FE04_4000, 0x1000, Perms::W)
        .unwrap();
    d.enable(t, mem, true).unwrap();

    let pe = drv.tables.ppba + 0x840;
    let sp = |i: u64| drv.tables.spba + i * 64;
    assert_eq!(words(&drv, &rig, pe), TV2_PPAACE);
    assert_eq!(sp(0x10) - drv.tables.spba, 0x400);
    assert_eq!(words(&drv, &rig, sp(0x10)), TV2_W1);
    for i in 0x11..=0x15 {
        assert_eq!(words(&drv, &rig, sp(i)), TV2_UNMAPPED, "SPAACT[{i:#x}]");
    }
    assert_eq!(words(&drv, &rig, sp(0x16)), TV2_W7);

    assert_eq!(r(&rig, 0x21, 0x0000_1234), Ok(0x2_0000_1234));
    assert_eq!(r(&rig, 0x21, 0x07FF_FFFF), Ok(0x2_07FF_FFFF));
    assert_eq!(r(&rig, 0x21, 0x0800_0010), Ok(0x1_0800_0010));
    assert_eq!(w(&rig, 0x21, 0x0800_0010), Err("AV_PERMISSION"));
    expect_av(&drv, 0x0021_0009, 0x0800_0010);
    assert_eq!(r(&rig, 0x21, 0x0800_FFFF), Ok(0x1_0800_FFFF));
    assert_eq!(r(&rig, 0x21, 0x0801_0000), Err("AV_WINDOW"));
    expect_av(&drv, 0x0021_0081, 0x0801_0000);
    assert_eq!(r(&rig, 0x21, 0x1000_0000), Err("AV_WINDOW"));
    expect_av(&drv, 0x0021_0081, 0x1000_0000);
    assert_eq!(w(&rig, 0x21, 0x3800_0140), Ok(0xF_FE04_4140));
    assert_eq!(r(&rig, 0x21, 0x3800_0140), Err("AV_PERMISSION"));
    expect_av(&drv, 0x0021_0009, 0x3800_0140);
    assert_eq!(w(&rig, 0x21, 0x3800_1000), Err("AV_WINDOW"));
    expect_av(&drv, 0x0021_0081, 0x3800_1000);
    assert_eq!(r(&rig, 0x21, 0x4000_0000), Err("AV_WINDOW"));
    expect_av(&drv, 0x0021_0081, 0x4000_0000);

    d.window_disable(&mut drv.tables, mem, 0).unwrap();
    assert_eq!(words(&drv, &rig, pe)[1], 0x761);
    assert_eq!(r(&rig, 0x21, 0x1234), Err("AV_PERMISSION"));
    expect_av(&drv, 0x0021_0009, 0x1234);
}

/// TV-2 written as raw words (no geometry API) translates identically: the decode does not
/// depend on our writer.
#[test]
fn test_tv2_raw_words_translate() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let b = PaactBuilder::new(rig.mem(), drv.tables.clone());
    b.ppaace(0x21, TV2_PPAACE).unwrap();
    b.spaace(0x10, TV2_W1).unwrap();
    for i in 0x11..=0x15 {
        b.spaace(i, TV2_UNMAPPED).unwrap();
    }
    b.spaace(0x16, TV2_W7).unwrap();
    assert_eq!(r(&rig, 0x21, 0x0800_FFFF), Ok(0x1_0800_FFFF));
    assert_eq!(w(&rig, 0x21, 0x3800_0140), Ok(0xF_FE04_4140));
    assert_eq!(r(&rig, 0x21, 0x2000_0000), Err("AV_WINDOW"));
}

/// TV-3: the boot default (ATM 0) and the post-5.13 identity (ATM 1, TWBA 0), 36- and 40-bit.
#[test]
fn test_tv3_boot_default_and_post513_identity() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let dev = DtDevice {
        name: "dma0",
        liodns: vec![0x40],
        kind: DtKind::Plain,
    };
    drv.setup_liodns(&[dev]).unwrap();
    let pe = drv.tables.ppba + 0x40 * 64;
    assert_eq!(words(&drv, &rig, pe), [0, 0x8D9, 0x80, 0, 0, 0, 0, 0]);
    for (acc, a) in [
        (AccessKind::Write, 0),
        (AccessKind::Write, 0xF_FE04_4140),
        (AccessKind::Read, 0xF_FFFF_FFFF),
    ] {
        assert_eq!(dma(&rig, 0x40, a, acc), Ok(a));
    }
    assert_eq!(r(&rig, 0x40, 0x10_0000_0000), Err("AV_WINDOW"));
    expect_av(&drv, 0x0040_0081, 0x10_0000_0000);

    let post = rig.driver(LinuxVersion::Post513 { addr_bits: 36 });
    post.attach_identity(0x40, None).unwrap();
    assert_eq!(words(&drv, &rig, pe), [0, 0x8D9, 0x80, 4, 0, 0, 0, 0]);
    assert_eq!(w(&rig, 0x40, 0xF_FE04_4140), Ok(0xF_FE04_4140));
    assert_eq!(r(&rig, 0x40, 0xF_FFFF_FFFF), Ok(0xF_FFFF_FFFF));
    assert_eq!(r(&rig, 0x40, 0x10_0000_0000), Err("AV_WINDOW"));

    let rig40 = Rig::new(PamuConfig::t4240());
    let d40 = rig40.driver(LinuxVersion::Post513 { addr_bits: 40 });
    d40.probe().unwrap();
    d40.attach_identity(0x40, None).unwrap();
    let pe40 = d40.tables.ppba + 0x40 * 64;
    assert_eq!(words(&d40, &rig40, pe40)[1], 0x9D9);
    assert_eq!(r(&rig40, 0x40, 0xFF_FFFF_FFFF), Ok(0xFF_FFFF_FFFF));
    assert_eq!(r(&rig40, 0x40, 0x100_0000_0000), Err("AV_WINDOW"));
}

/// TV-4: a LIODN beyond PPLA latches AVS1 = 0x0500_0401; the ISR's write of 0x0401 clears it.
#[test]
fn test_tv4_liodn_outside_table() {
    let rig = Rig::new(PamuConfig::p4080());
    let drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    assert_eq!(r(&rig, 0x500, 0x1000), Err("AV_LIODN"));
    assert_eq!(drv.read(0, Reg::Avs1), 0x0500_0401);
    assert!(rig.pamu.av_line_level());
    let reports = drv.av_isr().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].avs1, 0x0500_0401);
    assert_eq!(drv.read(0, Reg::Avs1) & 0x7FFF, 0);
    assert_eq!(drv.read(0, Reg::Pics) & 0x8, 0);
    assert!(!rig.pamu.av_line_level());
}

/// TV-5: the VFIO geometry arithmetic with the SDK's quirks replaced by clean errors.
#[test]
fn test_tv5_vfio_geometry_arithmetic() {
    let rig = Rig::new(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let banks = rig.pamu.msi_banks();
    let mut d = drv.new_domain();
    let t = &mut drv.tables;
    assert_eq!(
        d.window_count(),
        256,
        "WINDOWS before SET reports the maximum"
    );
    d.attach(t, mem, 0x10).unwrap();
    d.set_geometry(t, mem, 0, 0x7FFF_FFFF).unwrap();
    d.set_windows(t, mem, 256).unwrap();
    assert_eq!(d.window_size(), Some(0x80_0000));
    let ram = 0x1_0000_0000u64;
    d.map_dma(t, mem, 0, ram, 0x4000_0000, Perms::RW).unwrap();
    assert!(d.is_enabled());
    assert!((0..128).all(|i| d.window(i).is_some()) && d.window(128).is_none());
    assert_eq!(
        d.map_dma(t, mem, 0x40_0000, ram, 0x80_0000, Perms::RW),
        Err(GeometryError::NotWindowStart(0x40_0000))
    );
    assert_eq!(
        d.map_dma(t, mem, 0x4000_0000, ram, 0xC0_0000, Perms::RW),
        Err(GeometryError::NotWholeWindows {
            len: 0xC0_0000,
            window: 0x80_0000
        })
    );
    assert!(d.window(128).is_none(), "nothing mapped by a refused call");
    assert_eq!(
        d.map_dma(t, mem, 0x4000_0000, ram, 0x40_0000, Perms::RW),
        Err(GeometryError::NotWholeWindows {
            len: 0x40_0000,
            window: 0x80_0000
        })
    );
    assert_eq!(
        d.map_msi_bank(t, mem, &banks, 0, 0x7E80_0000, Perms::W),
        Ok(0x7E80_0140)
    );
    assert_eq!(
        d.map_msi_bank(t, mem, &banks, 1, 0x7F00_0000, Perms::W),
        Ok(0x7F00_0140)
    );
    assert_eq!(
        d.map_msi_bank(t, mem, &banks, 2, 0x7F80_0000, Perms::W),
        Ok(0x7F80_0140)
    );
    assert_eq!(d.window(253).unwrap().paddr, 0xF_FE04_4000);
    assert_eq!(d.window(254).unwrap().msi_bank, Some(1));
    assert_eq!(d.window(255).unwrap().size, 0x1000);
    assert_eq!(w(&rig, 0x10, 0x7E80_0140), Ok(0xF_FE04_4140));
    assert_eq!(r(&rig, 0x10, 0x3FFF_FFFF), Ok(ram + 0x3FFF_FFFF));

    // Attribute changes on a fresh, disabled domain: refused without any state change.
    let mut e = Domain::new(256);
    e.set_geometry(t, mem, 0, 0x7FFF_FFFF).unwrap();
    assert_eq!(
        e.set_windows(t, mem, 3),
        Err(GeometryError::BadWindowCount { count: 3, max: 256 })
    );
    assert_eq!(
        e.set_windows(t, mem, 512),
        Err(GeometryError::BadWindowCount {
            count: 512,
            max: 256
        })
    );
    assert_eq!(e.window_count(), 256);
    assert_eq!(
        e.set_geometry(t, mem, 0x1000_0000, 0x2FFF_FFFF),
        Err(GeometryError::BadAperture {
            start: 0x1000_0000,
            end: 0x2FFF_FFFF
        })
    );
    assert_eq!(e.geometry(), Some((0, 0x7FFF_FFFF)));
}
