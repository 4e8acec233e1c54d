//! The window geometry API: every rule's typed error, and outcome-first round trips — random
//! geometries and mappings are written through the API, and the translation path must give
//! exactly what an independent model of the domain (aperture, windows, mapped sizes) predicts.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use viommu_common::access::{AccessKind, Perms};
use viommu_pamu::geometry::{plan, Domain, GeometryError, Plan, Tables};
use viommu_pamu::testing::{LinuxVersion, Rig};
use viommu_pamu::PamuConfig;

/// Expected result of one access under the model: output, or the fault name.
fn model(d: &Domain, a: u64, access: AccessKind) -> Result<u64, &'static str> {
    let (start, end) = d.geometry().expect("geometry");
    if a < start || a > end {
        return Err("AV_WINDOW");
    }
    let s = d.window_size().expect("windows");
    let wnd = ((a - start) / s) as u32;
    let off = (a - start) % s;
    let Some(m) = d.window(wnd) else {
        // Unmapped subwindow 0 lives in the primary with AP = 0; others are invalid SPAACEs.
        return Err(if wnd == 0 && d.window_count() > 1 {
            "AV_PERMISSION"
        } else {
            "AV_WINDOW"
        });
    };
    if off >= m.size {
        return Err("AV_WINDOW");
    }
    let ok = match access {
        AccessKind::Write => m.prot.write(),
        _ => m.prot.read(),
    };
    if !ok {
        return Err("AV_PERMISSION");
    }
    Ok(m.paddr + off)
}

/// Random domains written through the API translate exactly as the model predicts.
#[test]
fn test_geometry_roundtrip_random() {
    let mut rng = StdRng::seed_from_u64(0x9A3_0005);
    for round in 0..200 {
        let rig = Rig::new(PamuConfig::p4080());
        let mut drv = rig.driver(LinuxVersion::Pre513);
        drv.probe().unwrap();
        let mem = rig.mem();
        let mut d = drv.new_domain();
        let t = &mut drv.tables;
        let liodn = rng.random_range(0..0x500u16);
        d.attach(t, mem, liodn).unwrap();
        let ap_log2 = rng.random_range(12..=40u32);
        let start = rng.random_range(0..16u64) << ap_log2;
        d.set_geometry(t, mem, start, start + (1u64 << ap_log2) - 1)
            .unwrap();
        let max_cnt_log2 = (ap_log2 - 12).min(8);
        let cnt = 1u32 << rng.random_range(0..=max_cnt_log2);
        d.set_windows(t, mem, cnt).unwrap();
        let s = d.window_size().unwrap();
        let s_log2 = s.trailing_zeros();
        for wnd in 0..cnt {
            if rng.random_bool(0.4) {
                continue;
            }
            let size = 1u64 << rng.random_range(12..=s_log2.min(36));
            let paddr = rng.random_range(0..(1u64 << 36) / size) * size;
            let prot = Perms::from_bits(rng.random_range(1..=3u8));
            d.window_enable(t, mem, wnd, paddr, size, prot).unwrap();
        }
        if d.enable(t, mem, true).is_err() {
            continue;
        }
        for _ in 0..64 {
            let a = match rng.random_range(0..4) {
                0 => rng.random_range(start.saturating_sub(s)..start + (1u64 << ap_log2) + s),
                1 => start + u64::from(rng.random_range(0..cnt)) * s,
                2 => start + u64::from(rng.random_range(0..cnt)) * s + rng.random_range(0..s),
                _ => {
                    start + u64::from(rng.random_range(0..cnt)) * s + (s >> rng.random_range(0..8))
                }
            };
            let acc = if rng.random_bool(0.5) {
                AccessKind::Read
            } else {
                AccessKind::Write
            };
            let got = rig
                .pamu
                .probe(u32::from(liodn), a, 1, acc, 0)
                .map(|t| t.output)
                .map_err(|f| f.event().name());
            assert_eq!(
                got,
                model(&d, a, acc),
                "round {round}: {acc:?} {a:#x} in {d:?}"
            );
        }
    }
}

/// Every rule of the API has its typed error, and a refused call changes nothing.
#[test]
fn test_geometry_rules_typed_errors() {
    let rig = Rig::new(PamuConfig::p4080_rev1());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let mut d = drv.new_domain();
    let t = &mut drv.tables;
    use GeometryError as E;
    assert_eq!(d.set_windows(t, mem, 4), Err(E::NoGeometry));
    assert_eq!(
        d.window_enable(t, mem, 0, 0, 0x1000, Perms::R),
        Err(E::NoWindows)
    );
    assert_eq!(
        d.set_geometry(t, mem, 0, 0x7FF),
        Err(E::BadAperture {
            start: 0,
            end: 0x7FF
        })
    );
    assert_eq!(
        d.set_geometry(t, mem, 0, 0x2FFF),
        Err(E::BadAperture {
            start: 0,
            end: 0x2FFF
        })
    );
    assert_eq!(
        d.set_geometry(t, mem, 5, 4),
        Err(E::BadAperture { start: 5, end: 4 })
    );
    assert_eq!(
        d.set_geometry(t, mem, 0, u64::MAX),
        Err(E::BadAperture {
            start: 0,
            end: u64::MAX
        })
    );
    d.set_geometry(t, mem, 0x4000_0000, 0x7FFF_FFFF).unwrap();
    assert_eq!(
        d.set_windows(t, mem, 0),
        Err(E::BadWindowCount { count: 0, max: 16 })
    );
    assert_eq!(
        d.set_windows(t, mem, 32),
        Err(E::BadWindowCount { count: 32, max: 16 })
    );
    d.attach(t, mem, 3).unwrap();
    assert_eq!(d.attach(t, mem, 3), Err(E::AlreadyAttached(3)));
    assert_eq!(d.attach(t, mem, 0x500), Err(E::LiodnOutOfRange(0x500)));
    d.set_windows(t, mem, 16).unwrap();
    assert_eq!(d.window_size(), Some(0x400_0000));
    assert_eq!(d.enable(t, mem, true), Err(E::NoMappings));
    assert_eq!(
        d.window_enable(t, mem, 16, 0, 0x1000, Perms::R),
        Err(E::NoSuchWindow { wnd: 16, count: 16 })
    );
    assert_eq!(
        d.window_enable(t, mem, 1, 0, 0x800_0000, Perms::R),
        Err(E::BadSize {
            size: 0x800_0000,
            max: 0x400_0000
        })
    );
    assert_eq!(
        d.window_enable(t, mem, 1, 0, 0x3000, Perms::R),
        Err(E::BadSize {
            size: 0x3000,
            max: 0x400_0000
        })
    );
    assert_eq!(
        d.window_enable(t, mem, 1, 0x1000, 0x2000, Perms::R),
        Err(E::Misaligned {
            paddr: 0x1000,
            size: 0x2000
        })
    );
    assert_eq!(
        d.window_enable(t, mem, 1, 0, 0x1000, Perms::NONE),
        Err(E::NoPermissions)
    );
    d.window_enable(t, mem, 1, 0, 0x1000, Perms::R).unwrap();
    assert_eq!(
        d.window_enable(t, mem, 1, 0, 0x1000, Perms::R),
        Err(E::WindowBusy(1))
    );
    assert_eq!(d.window_disable(t, mem, 2), Err(E::NotMapped(2)));
    d.enable(t, mem, true).unwrap();
    assert_eq!(d.set_windows(t, mem, 8), Err(E::Busy));
    assert_eq!(d.set_geometry(t, mem, 0, 0xFFF), Err(E::Busy));
    d.enable(t, mem, false).unwrap();
    d.set_windows(t, mem, 1).unwrap();
    assert_eq!(
        d.window_enable(t, mem, 0, 0, 0x8000_0000, Perms::R),
        Err(E::BadSize {
            size: 0x8000_0000,
            max: 0x4000_0000
        })
    );
    // Single window: the aperture start must be aligned to the mapped size... which a
    // naturally aligned aperture always is for sizes up to its own; busy once enabled.
    d.window_enable(t, mem, 0, 0, 0x1000_0000, Perms::RW)
        .unwrap();
    d.enable(t, mem, true).unwrap();
    d.window_disable(t, mem, 0).unwrap();
    assert!(
        !d.is_enabled(),
        "disabling the only window disables the domain"
    );
    let banks = rig.pamu.msi_banks();
    assert_eq!(
        d.reserve_msi_windows(t, mem, &banks),
        Err(E::NoRoomForMsi {
            banks: 3,
            windows: 1
        })
    );
    assert_eq!(
        d.map_msi_bank(t, mem, &banks, 3, 0x4000_0000, Perms::W),
        Err(E::NoSuchBank(3))
    );
}

/// The SPAACT allocator: re-splitting a domain frees the old SPAACEs, detaching frees them,
/// exhaustion is a typed error that leaves the domain as it was.
#[test]
fn test_spaace_allocation_lifecycle() {
    let rig = Rig::new(PamuConfig::p4080());
    let mem = rig.mem();
    let mut t = Tables::new(0x100_0000, 0x500, 0x101_4000, 0x20, 0x102_0000);
    let mut d = Domain::new(256);
    d.attach(&mut t, mem, 1).unwrap();
    d.attach(&mut t, mem, 2).unwrap();
    d.set_geometry(&mut t, mem, 0, (1 << 30) - 1).unwrap();
    for _ in 0..10 {
        d.set_windows(&mut t, mem, 16).unwrap();
    }
    assert_eq!(t.alloc_spaace(2), Ok(30), "2 x 15 in use");
    t.free_spaace(30, 2);
    assert_eq!(
        d.set_windows(&mut t, mem, 32),
        Err(GeometryError::SpaaceExhausted(31))
    );
    assert_eq!(d.window_count(), 16);
    d.detach(&mut t, mem, 2).unwrap();
    assert_eq!(t.alloc_spaace(17), Ok(15));
    // A LIODN attached after the windows are mapped gets the same mappings.
    d.window_enable(&mut t, mem, 3, 0x4000_0000, 0x1000, Perms::RW)
        .unwrap();
    t.free_spaace(15, 17);
    d.attach(&mut t, mem, 9).unwrap();
    d.enable(&mut t, mem, true).unwrap();
    let rig_tables = (t.ppba, t.spba);
    assert_eq!(rig_tables, (0x100_0000, 0x101_4000));
}

/// The geometry solver picks the fewest windows, rounds the count up to a power of two (so
/// MSI windows may double it) and respects the host's window-size cap.
#[test]
fn test_plan_solver() {
    let p = plan(0, 0x8000_0000, 3, u64::MAX, 256).unwrap();
    assert_eq!(
        p,
        Plan {
            aperture_start: 0,
            aperture_size: 0x2_0000_0000,
            windows: 4,
            window_size: 0x8000_0000,
            ram_windows: 1
        }
    );
    let p = plan(0, 0x8000_0000, 3, 0x4000_0000, 256).unwrap();
    assert_eq!(
        (p.windows, p.window_size, p.ram_windows),
        (8, 0x4000_0000, 2)
    );
    let p = plan(0, 0x8000_0000, 4, 0x1000_0000, 256).unwrap();
    assert_eq!(
        (p.windows, p.ram_windows),
        (16, 8),
        "8 RAM + 4 MSI windows round up to 16"
    );
    assert!(
        plan(0, 0x8000_0000, 3, 0x20_0000, 256).is_err(),
        "1024 + 3 windows > 256"
    );
    assert!(
        plan(0x1000_0000, 0x1000_0000, 1, u64::MAX, 256).is_err(),
        "aperture not aligned"
    );
}

/// Stash (CID), snoop ID and OMI written by the domain travel with every translation in
/// `MemAttrs::device` (CID [15:8], SNPID [23:16], CR [24], OTM [27:26], operation [7:0]).
#[test]
fn test_domain_attributes_reported_with_translation() {
    use viommu_common::access::DmaRequest;
    use viommu_common::traits::DmaTranslator;
    let rig = Rig::new(PamuConfig::p4080());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().unwrap();
    let mem = rig.mem();
    let mut d = drv.new_domain();
    let t = &mut drv.tables;
    d.set_omi(Some(1));
    d.set_snoop_id(Some(0x5A));
    d.attach(t, mem, 0x20).unwrap();
    d.set_geometry(t, mem, 0, 0x3FFF_FFFF).unwrap();
    d.set_windows(t, mem, 4).unwrap();
    d.window_enable(t, mem, 0, 0x1000_0000, 0x1000_0000, Perms::RW)
        .unwrap();
    d.window_enable(t, mem, 2, 0x8000_0000, 0x1000_0000, Perms::RW)
        .unwrap();
    d.enable(t, mem, true).unwrap();
    d.set_stash(t, mem, Some(0x21)).unwrap();
    for iova in [0x100u64, 0x2000_0100] {
        let r = rig
            .pamu
            .translate(&DmaRequest::read(0x20, iova, 4))
            .unwrap();
        // OMT[1] (FMan, from setup_omt): read -> READI 0x18.
        assert_eq!(
            r.attrs.device,
            0x18 | (0x21 << 8) | (0x5A << 16) | (1 << 24) | (2 << 26),
            "{iova:#x}"
        );
        let w = rig
            .pamu
            .translate(&DmaRequest::write(0x20, iova, 4))
            .unwrap();
        assert_eq!(w.attrs.device & 0xFF, 0x01);
    }
}
