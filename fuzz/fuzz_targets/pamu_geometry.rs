//! The PAMU window-geometry API on arbitrary requests.
//!
//! A [`Domain`] (on a PAMU allowing 2^1..2^16 subwindows, as PC3.MWCE can say) with tables of
//! input-chosen sizes in 64 KiB of guest RAM (so some entries fall outside it) takes a list of
//! calls: aperture, window count, attach/detach, window enable/disable, domain enable, stash/OMI/
//! snoop IDs, VFIO-style DMA and MSI-bank mappings, and the geometry solver [`plan`]. Checked
//! after every call:
//! - nothing panics;
//! - the aperture is a naturally aligned power of two >= 4 KiB; the window count a power of two
//!   no larger than the maximum; windows are >= 4 KiB and tile the aperture exactly;
//! - every mapped window maps a power of two >= 4 KiB, at most the window size, at a physical
//!   address aligned to it and not wrapping past 2^64, with read and/or write permission;
//! - attached LIODNs are distinct and inside the PPAACT;
//! - a refused call (other than for a table entry outside RAM) changes nothing;
//! - a plan is self-consistent (power-of-two counts and sizes, windows cover RAM plus the MSI
//!   banks, aperture aligned) and a fresh domain accepts it.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use viommu_common::access::Perms;
use viommu_common::testing::guest_ram;
use viommu_pamu::caps::PamuConfig;
use viommu_pamu::geometry::{plan, Domain, GeometryError, Tables};
use viommu_pamu::msi::MsiBanks;
use vm_memory::GuestMemoryMmap;

/// Guest RAM holding the tables.
const RAM_SIZE: usize = 64 << 10;

/// Permission bits: read, write.
fn perms(sel: u8) -> Perms {
    match sel % 4 {
        0 => Perms::NONE,
        1 => Perms::R,
        2 => Perms::W,
        _ => Perms::RW,
    }
}

/// One call.
#[derive(Arbitrary, Debug)]
enum Call {
    /// DOMAIN_ATTR_GEOMETRY with raw bounds.
    Geometry { start: u64, end: u64 },
    /// DOMAIN_ATTR_GEOMETRY with a power-of-two size 2^(12 + log % 52) at `index` times it.
    GeometryPow2 { log: u8, index: u64 },
    /// DOMAIN_ATTR_WINDOWS with a raw count.
    Windows { count: u32 },
    /// DOMAIN_ATTR_WINDOWS with 2^(log % 18).
    WindowsPow2 { log: u8 },
    /// Attach a LIODN.
    Attach { liodn: u16 },
    /// Detach a LIODN.
    Detach { liodn: u16 },
    /// Map a window: 2^(size_log % 64) bytes at `paddr`.
    WindowEnable {
        wnd: u32,
        paddr: u64,
        size_log: u8,
        prot: u8,
    },
    /// Map a window with a raw size.
    WindowEnableRaw {
        wnd: u32,
        paddr: u64,
        size: u64,
        prot: u8,
    },
    /// Unmap a window.
    WindowDisable { wnd: u32 },
    /// Set or clear V on every LIODN.
    Enable { on: bool },
    /// Stash target.
    Stash { cid: Option<u8> },
    /// OMT index.
    Omi { omi: Option<u16> },
    /// Snoop ID.
    Snoop { id: Option<u8> },
    /// VFIO MAP_DMA at window `wnd` (or at a raw IOVA) of `n` windows (or a raw length).
    MapDma {
        wnd: u32,
        raw_iova: Option<u64>,
        n: u32,
        raw_len: Option<u64>,
        paddr: u64,
        prot: u8,
    },
    /// VFIO UNMAP_DMA.
    UnmapDma {
        wnd: u32,
        raw_iova: Option<u64>,
        n: u32,
        raw_len: Option<u64>,
    },
    /// Option B: bank at window `wnd`.
    MapMsiBank { bank: u8, wnd: u32, prot: u8 },
    /// Unmap an MSI window.
    UnmapMsiBank { wnd: u32 },
    /// Option A: the top windows.
    ReserveMsi,
    /// The geometry solver.
    Plan {
        ram_start: u64,
        ram_size: u64,
        msi_banks: u8,
        max_window: u64,
        max_windows: u32,
    },
}

/// One input: the PAMU and table layout, then the calls.
#[derive(Arbitrary, Debug)]
struct Input {
    /// PC3.MWCE + 1.
    subwindows_log2: u8,
    /// PPAACT entries.
    ppaace_count: u8,
    /// SPAACT entries.
    spaace_count: u8,
    /// MSI banks (0..=4).
    msi_banks: u8,
    calls: Vec<Call>,
}

/// Address of the first byte of window `wnd` (wrapping: the domain must refuse what is not one).
fn window_iova(dom: &Domain, wnd: u32) -> u64 {
    let start = dom.geometry().map_or(0, |g| g.0);
    let size = dom.window_size().unwrap_or(0);
    start.wrapping_add(u64::from(wnd).wrapping_mul(size))
}

/// Everything a domain promises about itself.
fn check_domain(dom: &Domain, t: &Tables, max_windows: u32) {
    let Some((start, end)) = dom.geometry() else {
        assert!(
            dom.window_size().is_none(),
            "windows without an aperture: {dom:?}"
        );
        return;
    };
    assert!(end >= start, "aperture wraps: {dom:?}");
    let size = u128::from(end - start) + 1;
    assert!(
        size.is_power_of_two() && size >= 0x1000 && u128::from(start) % size == 0,
        "aperture [{start:#x}, {end:#x}] not a naturally aligned power of two >= 4 KiB"
    );
    let ids: Vec<u16> = dom.liodns().collect();
    for (i, l) in ids.iter().enumerate() {
        assert!(
            !ids[..i].contains(l),
            "LIODN {l:#x} attached twice: {dom:?}"
        );
        assert!(
            u32::from(*l) < t.ppaace_count,
            "LIODN {l:#x} outside the PPAACT"
        );
    }
    let Some(ws) = dom.window_size() else {
        return;
    };
    let n = dom.window_count();
    assert!(
        n.is_power_of_two() && n <= max_windows,
        "window count {n} (max {max_windows})"
    );
    assert!(ws.is_power_of_two() && ws >= 0x1000, "window size {ws:#x}");
    assert_eq!(
        u128::from(ws) * u128::from(n),
        size,
        "windows do not tile the aperture"
    );
    for w in 0..n {
        let Some(m) = dom.window(w) else { continue };
        assert!(
            m.size.is_power_of_two() && m.size >= 0x1000 && m.size <= ws,
            "window {w} maps {:#x} bytes (window size {ws:#x})",
            m.size
        );
        assert_eq!(m.paddr % m.size, 0, "window {w} misaligned: {m:?}");
        assert!(
            m.paddr.checked_add(m.size - 1).is_some(),
            "window {w} wraps: {m:?}"
        );
        assert!(
            m.prot.read() || m.prot.write(),
            "window {w} without permissions"
        );
    }
    assert!(
        dom.window(n).is_none(),
        "a window beyond the count is mapped"
    );
}

/// A plan's promises, and a fresh domain must accept it.
#[allow(clippy::too_many_arguments)]
fn check_plan(
    ram_start: u64,
    ram_size: u64,
    msi_banks: u8,
    max_window: u64,
    max_windows: u32,
    mem: &GuestMemoryMmap,
) {
    let Ok(p) = plan(ram_start, ram_size, msi_banks, max_window, max_windows) else {
        return;
    };
    let why = format!(
        "plan({ram_start:#x}, {ram_size:#x}, {msi_banks}, {max_window:#x}, {max_windows}) = {p:?}"
    );
    assert!(
        p.windows.is_power_of_two() && p.windows <= max_windows,
        "{why}"
    );
    assert!(
        p.window_size.is_power_of_two() && p.window_size >= 0x1000,
        "{why}"
    );
    let cap = 1u64 << (63 - max_window.max(1).leading_zeros());
    assert!(
        p.window_size <= cap.max(0x1000),
        "{why}: window above the host's unit"
    );
    assert_eq!(
        u128::from(p.aperture_size),
        u128::from(p.window_size) * u128::from(p.windows),
        "{why}"
    );
    assert_eq!(p.aperture_start, ram_start, "{why}");
    assert_eq!(p.aperture_start % p.aperture_size, 0, "{why}");
    assert!(
        p.aperture_start.checked_add(p.aperture_size - 1).is_some(),
        "{why}"
    );
    assert!(
        u128::from(p.ram_windows) * u128::from(p.window_size) >= u128::from(ram_size),
        "{why}: RAM not covered"
    );
    assert!(
        u64::from(p.ram_windows) + u64::from(msi_banks) <= u64::from(p.windows),
        "{why}"
    );
    // Applying it: a domain allocates one slot per window, so only modest counts.
    if p.windows <= 1 << 16 {
        let mut d = Domain::new(p.windows);
        let mut t = Tables::new(0, 4, 0x100, 4, 0x200);
        let end = p.aperture_start + (p.aperture_size - 1);
        assert_eq!(
            d.set_geometry(&mut t, mem, p.aperture_start, end),
            Ok(()),
            "{why}"
        );
        assert_eq!(d.set_windows(&mut t, mem, p.windows), Ok(()), "{why}");
        assert_eq!(d.window_size(), Some(p.window_size), "{why}");
    }
}

fuzz_target!(|inp: Input| {
    let mem = guest_ram(0, RAM_SIZE);
    let max_windows = 1u32 << (inp.subwindows_log2 % 16 + 1);
    let cfg = PamuConfig {
        msi_banks: inp.msi_banks % 5,
        ..PamuConfig::default()
    };
    let Ok(caps) = cfg.caps() else { return };
    let banks = MsiBanks::new(&caps);
    let mut t = Tables::new(
        0,
        u32::from(inp.ppaace_count),
        0x2000,
        u32::from(inp.spaace_count),
        0x8000,
    );
    let mut dom = Domain::new(max_windows);
    for call in inp.calls.into_iter().take(64) {
        // The state before, to compare after a refusal (skipped for huge window counts, whose
        // text would dominate the run time).
        let before = (dom.window_count() <= 1024).then(|| format!("{dom:?} {t:?}"));
        let r: Result<(), GeometryError> = match call {
            Call::Geometry { start, end } => dom.set_geometry(&mut t, &mem, start, end),
            Call::GeometryPow2 { log, index } => {
                let l = 12 + u32::from(log % 52);
                let start = index.wrapping_shl(l);
                dom.set_geometry(&mut t, &mem, start, start.wrapping_add((1u64 << l) - 1))
            }
            Call::Windows { count } => dom.set_windows(&mut t, &mem, count),
            Call::WindowsPow2 { log } => dom.set_windows(&mut t, &mem, 1 << (log % 18)),
            Call::Attach { liodn } => dom.attach(&mut t, &mem, liodn),
            Call::Detach { liodn } => dom.detach(&mut t, &mem, liodn),
            Call::WindowEnable {
                wnd,
                paddr,
                size_log,
                prot,
            } => dom.window_enable(&mut t, &mem, wnd, paddr, 1 << (size_log % 64), perms(prot)),
            Call::WindowEnableRaw {
                wnd,
                paddr,
                size,
                prot,
            } => dom.window_enable(&mut t, &mem, wnd, paddr, size, perms(prot)),
            Call::WindowDisable { wnd } => dom.window_disable(&mut t, &mem, wnd),
            Call::Enable { on } => dom.enable(&mut t, &mem, on),
            Call::Stash { cid } => dom.set_stash(&t, &mem, cid),
            Call::Omi { omi } => {
                dom.set_omi(omi);
                Ok(())
            }
            Call::Snoop { id } => {
                dom.set_snoop_id(id);
                Ok(())
            }
            Call::MapDma {
                wnd,
                raw_iova,
                n,
                raw_len,
                paddr,
                prot,
            } => {
                let iova = raw_iova.unwrap_or_else(|| window_iova(&dom, wnd));
                let len = raw_len
                    .unwrap_or_else(|| u64::from(n).wrapping_mul(dom.window_size().unwrap_or(0)));
                let r = dom.map_dma(&mut t, &mem, iova, paddr, len, perms(prot));
                if r.is_ok() {
                    assert!(
                        paddr.checked_add(len - 1).is_some(),
                        "MAP_DMA of {len:#x} bytes at {paddr:#x} wraps past 2^64"
                    );
                }
                r
            }
            Call::UnmapDma {
                wnd,
                raw_iova,
                n,
                raw_len,
            } => {
                let iova = raw_iova.unwrap_or_else(|| window_iova(&dom, wnd));
                let len = raw_len
                    .unwrap_or_else(|| u64::from(n).wrapping_mul(dom.window_size().unwrap_or(0)));
                dom.unmap_dma(&mut t, &mem, iova, len)
            }
            Call::MapMsiBank { bank, wnd, prot } => {
                let iova = window_iova(&dom, wnd);
                dom.map_msi_bank(&mut t, &mem, &banks, bank, iova, perms(prot))
                    .map(|_| ())
            }
            Call::UnmapMsiBank { wnd } => {
                let iova = window_iova(&dom, wnd);
                dom.unmap_msi_bank(&mut t, &mem, iova)
            }
            Call::ReserveMsi => dom.reserve_msi_windows(&mut t, &mem, &banks).map(|_| ()),
            Call::Plan {
                ram_start,
                ram_size,
                msi_banks,
                max_window,
                max_windows,
            } => {
                check_plan(
                    ram_start,
                    ram_size,
                    msi_banks,
                    max_window,
                    max_windows,
                    &mem,
                );
                Ok(())
            }
        };
        match r {
            Ok(()) | Err(GeometryError::Memory(_)) => {}
            Err(e) => {
                if let Some(before) = before {
                    let after = format!("{dom:?} {t:?}");
                    assert_eq!(before, after, "refused call ({e}) changed the domain");
                }
            }
        }
        check_domain(&dom, &t, max_windows);
    }
});
