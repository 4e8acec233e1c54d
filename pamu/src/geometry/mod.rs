//! The window geometry API: a programming model mirroring the Linux (pre-5.13) PAMU domain
//! attributes and the NXP VFIO-PAMU proposal (Linux pre-5.13
//! `fsl_pamu_domain.c`, the NXP SDK's `vfio_iommu_fsl_pamu.c`; MSI options in pamu/README.md).
//!
//! A [`Domain`] owns an aperture (a naturally aligned power of two ≥ 4 KiB), a power-of-two
//! window count up to the PC3 maximum, per-window mappings and the LIODNs attached to it. Every
//! call validates its arguments against the rules the Linux domain layer enforces (with the SDK
//! quirks removed: every refusal is a typed [`GeometryError`] and leaves nothing changed), then
//! writes the PAACE/SPAACE contents Linux's `pamu_config_ppaace`/`pamu_config_spaace` would
//! write into the tables in guest memory. The translation path reads those entries back, so the
//! two sides share one arithmetic (round-trip tests in `tests/pamu_geometry.rs`).
//!
//! MSI windows (pamu/README.md): [`Domain::reserve_msi_windows`] is option A (top k windows),
//! [`Domain::map_msi_bank`] option B (a chosen bank at a chosen window), and option C is
//! [`crate::msi::MsiBankRegion`] mapped with [`Domain::window_enable`] like memory. The
//! VFIO-style whole-window layer and the geometry solver are in `vfio.rs`; table placement and
//! the SPAACE allocator in `tables.rs`.

use viommu_common::access::Perms;
use viommu_common::mem::{read_obj, write_u32_be, MemError};
use vm_memory::GuestMemoryBackend;

use crate::spec::paace::{Ap, Atm, Otm, PaaceW3, PaaceW7Idx, PaaceWin};

mod tables;
mod vfio;

pub use tables::Tables;
pub use vfio::{plan, Plan};

/// Why a geometry call was refused. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// The aperture is not a power of two ≥ 4 KiB, or not aligned to its size.
    #[error("aperture [{start:#x}, {end:#x}] is not a naturally aligned power of two >= 4 KiB")]
    BadAperture {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// The domain is enabled (EBUSY).
    #[error("the domain is enabled")]
    Busy,
    /// No geometry has been set.
    #[error("no geometry set")]
    NoGeometry,
    /// No window count has been set (ENODEV).
    #[error("no window count set")]
    NoWindows,
    /// The window count is 0, not a power of two, above the PC3 maximum, or makes windows
    /// smaller than 4 KiB.
    #[error("window count {count} is not a power of two in 1..={max} giving windows >= 4 KiB")]
    BadWindowCount {
        /// Count asked for.
        count: u32,
        /// Maximum (PC3).
        max: u32,
    },
    /// The window index is beyond the window count.
    #[error("window {wnd} does not exist (count {count})")]
    NoSuchWindow {
        /// Window asked for.
        wnd: u32,
        /// Window count.
        count: u32,
    },
    /// The mapped size is not a power of two ≥ 4 KiB, or exceeds the window size.
    #[error("mapping size {size:#x} is not a power of two in [4 KiB, {max:#x}]")]
    BadSize {
        /// Size asked for.
        size: u64,
        /// Window size.
        max: u64,
    },
    /// The physical address is not aligned to the mapped size.
    #[error("physical address {paddr:#x} is not aligned to the mapped size {size:#x}")]
    Misaligned {
        /// Physical address.
        paddr: u64,
        /// Mapped size.
        size: u64,
    },
    /// A single-window domain's aperture start is not aligned to the mapped size.
    #[error("aperture start is not aligned to the mapped size {size:#x}")]
    ApertureNotAligned {
        /// Mapped size.
        size: u64,
    },
    /// No permissions given (at least read or write is needed).
    #[error("no access permissions given")]
    NoPermissions,
    /// The window is already mapped.
    #[error("window {0} is already mapped")]
    WindowBusy(u32),
    /// The window is not mapped.
    #[error("window {0} is not mapped")]
    NotMapped(u32),
    /// Enabling needs at least one mapped window (ENODEV).
    #[error("no window is mapped")]
    NoMappings,
    /// The LIODN has no entry in the PPAACT.
    #[error("LIODN {0:#x} is outside the PPAACT")]
    LiodnOutOfRange(u32),
    /// The LIODN is already attached.
    #[error("LIODN {0:#x} is already attached")]
    AlreadyAttached(u16),
    /// The SPAACT has no free run of the size needed.
    #[error("no {0} contiguous free SPAACEs")]
    SpaaceExhausted(u32),
    /// A DMA mapping's physical range runs past the top of the 64-bit address space.
    #[error("physical range of {len:#x} bytes at {paddr:#x} wraps past 2^64")]
    PhysicalWrap {
        /// Physical address.
        paddr: u64,
        /// Length.
        len: u64,
    },
    /// A DMA mapping does not start at a window start.
    #[error("IOVA {0:#x} is not the start of a window")]
    NotWindowStart(u64),
    /// A DMA mapping is not a whole number of windows inside the aperture.
    #[error("length {len:#x} is not a non-zero multiple of the window size {window:#x} inside the aperture")]
    NotWholeWindows {
        /// Length asked for.
        len: u64,
        /// Window size.
        window: u64,
    },
    /// The MSI bank does not exist.
    #[error("MSI bank {0} does not exist")]
    NoSuchBank(u8),
    /// Not enough windows for the MSI banks plus at least one other window.
    #[error("{banks} MSI windows need more than {windows} windows")]
    NoRoomForMsi {
        /// Banks.
        banks: u8,
        /// Window count.
        windows: u32,
    },
    /// A table entry is outside guest RAM.
    #[error("table entry outside guest RAM: {0}")]
    Memory(#[from] MemError),
}

/// One window's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowMap {
    /// Physical base.
    pub paddr: u64,
    /// Mapped size (power of two ≤ the window size).
    pub size: u64,
    /// Permissions (read and/or write).
    pub prot: Perms,
    /// This window holds an MSI bank page (options A/B), with the bank index.
    pub msi_bank: Option<u8>,
}

/// An I/O domain: aperture, windows and attached LIODNs (the pre-5.13 `fsl_dma_domain`).
#[derive(Debug, Clone)]
pub struct Domain {
    max_windows: u32,
    /// (start, log2 size).
    aperture: Option<(u64, u8)>,
    win_cnt: u32,
    windows: Vec<Option<WindowMap>>,
    enabled: bool,
    /// Attached LIODNs with their first SPAACE index (if subwindows are allocated).
    liodns: Vec<(u16, Option<u32>)>,
    stash_id: Option<u8>,
    snoop_id: Option<u8>,
    omi: Option<u16>,
}

/// Log2 of a power of two.
fn log2(v: u64) -> u8 {
    // trailing_zeros of a u64 is at most 64.
    v.trailing_zeros() as u8
}

fn prot_ap(p: Perms) -> Ap {
    Ap((u8::from(p.read())) | (u8::from(p.write()) << 1))
}

/// Read an entry, apply `f`, write it back with word 1 (which holds V) stored last, so a
/// concurrent translation never sees V = 1 with half-written fields.
fn update_entry<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    f: impl FnOnce(&mut PaaceWin),
) -> Result<(), GeometryError> {
    let mut e: PaaceWin = read_obj(mem, addr)?;
    f(&mut e);
    let w = e.words();
    for (i, v) in w.iter().enumerate().filter(|(i, _)| *i != 1) {
        write_u32_be(mem, addr + 4 * i as u64, *v)?;
    }
    write_u32_be(mem, addr + 4, w[1])?;
    Ok(())
}

/// The attributes every window of a LIODN carries, primary and secondary alike: coherent
/// (CR), the operation-mapping index (OTM = indexed, OMI), the snoop ID and the stash target.
/// `w3` is the caller's pending word 3, which the caller stores.
fn set_window_attrs(
    e: &mut PaaceWin,
    w3: &mut PaaceW3,
    omi: Option<u16>,
    snoop: Option<u8>,
    stash: Option<u8>,
) {
    e.set_w2(e.w2().with_cr(true));
    if let Some(omi) = omi {
        w3.set_otm(Otm::INDEXED);
        e.w7 = PaaceW7Idx::new().with_omi(omi).into_bits().into();
    }
    if let Some(s) = snoop {
        e.set_w2(e.w2().with_snpid(s));
    }
    if let Some(c) = stash {
        w3.set_cid(c);
    }
}

impl Domain {
    /// An empty domain on a PAMU allowing `max_windows` subwindows (PC3).
    pub fn new(max_windows: u32) -> Self {
        Self {
            max_windows,
            aperture: None,
            win_cnt: 0,
            windows: Vec::new(),
            enabled: false,
            liodns: Vec::new(),
            stash_id: None,
            snoop_id: None,
            omi: None,
        }
    }

    /// The aperture as (start, end inclusive), if set.
    pub fn geometry(&self) -> Option<(u64, u64)> {
        self.aperture
            .map(|(s, l)| (s, s + ((1u128 << l) - 1) as u64))
    }

    /// The window count; before it is set, the maximum (what DOMAIN_ATTR_WINDOWS GET returns).
    pub fn window_count(&self) -> u32 {
        if self.win_cnt == 0 {
            self.max_windows
        } else {
            self.win_cnt
        }
    }

    /// Size of one window (aperture / count), once both are set.
    pub fn window_size(&self) -> Option<u64> {
        let (_, l) = self.aperture?;
        (self.win_cnt > 0).then(|| 1u64 << (l - log2(u64::from(self.win_cnt))))
    }

    /// Window `wnd`'s mapping.
    pub fn window(&self, wnd: u32) -> Option<WindowMap> {
        self.windows.get(wnd as usize).copied().flatten()
    }

    /// Whether the domain is enabled (V = 1 on every attached LIODN).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Attached LIODNs.
    pub fn liodns(&self) -> impl Iterator<Item = u16> + '_ {
        self.liodns.iter().map(|l| l.0)
    }

    /// Set the OMT index used for attached LIODNs' entries (OTM = 2), or `None` to leave OTM
    /// untouched (Linux's `~0`). Takes effect at the next `set_windows`/`attach`.
    pub fn set_omi(&mut self, omi: Option<u16>) {
        self.omi = omi;
    }

    /// Set the snoop ID written into entries (`None`: untouched). Takes effect as `set_omi`.
    pub fn set_snoop_id(&mut self, id: Option<u8>) {
        self.snoop_id = id;
    }

    /// Attach LIODN `liodn`: with windows configured, its entries are written now (disabled
    /// first, then every mapped window, then V = 1 if the domain is enabled).
    ///
    /// # Errors
    /// [`GeometryError::LiodnOutOfRange`], [`GeometryError::AlreadyAttached`], or as
    /// [`Domain::set_windows`].
    pub fn attach<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        liodn: u16,
    ) -> Result<(), GeometryError> {
        t.ppaace_addr(u32::from(liodn))?;
        if self.liodns.iter().any(|l| l.0 == liodn) {
            return Err(GeometryError::AlreadyAttached(liodn));
        }
        self.liodns.push((liodn, None));
        if self.win_cnt > 0 {
            let idx = self.liodns.len() - 1;
            let r = self.set_liodn(t, mem, idx).and_then(|_| {
                for w in 0..self.win_cnt {
                    if let Some(m) = self.window(w) {
                        self.map_one(t, mem, idx, w, m)?;
                    }
                }
                if self.enabled {
                    self.set_valid(t, mem, liodn, true)?;
                }
                Ok(())
            });
            if let Err(e) = r {
                self.detach(t, mem, liodn)?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Detach LIODN `liodn`: V = 0 and its SPAACEs freed.
    ///
    /// # Errors
    /// [`GeometryError::Memory`] if its entry is outside guest RAM.
    pub fn detach<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        liodn: u16,
    ) -> Result<(), GeometryError> {
        let Some(pos) = self.liodns.iter().position(|l| l.0 == liodn) else {
            return Ok(());
        };
        let (_, fspi) = self.liodns.remove(pos);
        if let Some(f) = fspi {
            t.free_spaace(f, self.win_cnt.saturating_sub(1));
        }
        self.set_valid(t, mem, liodn, false)
    }

    /// DOMAIN_ATTR_GEOMETRY: the aperture `[start, end]` (inclusive). Policy: a new geometry
    /// drops the window configuration (entries are disabled; set the window count again).
    ///
    /// # Errors
    /// [`GeometryError::Busy`] while enabled; [`GeometryError::BadAperture`].
    pub fn set_geometry<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        start: u64,
        end: u64,
    ) -> Result<(), GeometryError> {
        if self.enabled {
            return Err(GeometryError::Busy);
        }
        let bad = GeometryError::BadAperture { start, end };
        let size = end
            .checked_sub(start)
            .and_then(|s| s.checked_add(1))
            .ok_or(bad)?;
        if !size.is_power_of_two() || size < 0x1000 || start % size != 0 {
            return Err(bad);
        }
        if self.win_cnt > 0 {
            self.drop_windows(t, mem)?;
        }
        self.aperture = Some((start, log2(size)));
        Ok(())
    }

    fn drop_windows<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
    ) -> Result<(), GeometryError> {
        let n = self.win_cnt.saturating_sub(1);
        for i in 0..self.liodns.len() {
            let (l, fspi) = self.liodns[i];
            if let Some(f) = fspi {
                t.free_spaace(f, n);
            }
            self.liodns[i].1 = None;
            self.set_valid(t, mem, l, false)?;
        }
        self.win_cnt = 0;
        self.windows.clear();
        Ok(())
    }

    /// DOMAIN_ATTR_WINDOWS: split the aperture into `count` windows. Every attached LIODN's
    /// entries are rewritten: all windows unmapped (AP = 0, subwindows invalid), V = 0.
    ///
    /// # Errors
    /// [`GeometryError::Busy`], [`GeometryError::NoGeometry`], [`GeometryError::BadWindowCount`]
    /// (0 is refused, unlike the older Linux check), [`GeometryError::SpaaceExhausted`].
    pub fn set_windows<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        count: u32,
    ) -> Result<(), GeometryError> {
        if self.enabled {
            return Err(GeometryError::Busy);
        }
        let (_, l) = self.aperture.ok_or(GeometryError::NoGeometry)?;
        let bad = GeometryError::BadWindowCount {
            count,
            max: self.max_windows,
        };
        if count == 0 || !count.is_power_of_two() || count > self.max_windows {
            return Err(bad);
        }
        if u32::from(l) < count.trailing_zeros() + 12 {
            return Err(bad);
        }
        // Check the SPAACT can hold every LIODN's subwindows before changing anything.
        if count > 1 {
            let mut probe = t.clone();
            if self.win_cnt > 1 {
                for &(_, f) in &self.liodns {
                    if let Some(f) = f {
                        probe.free_spaace(f, self.win_cnt - 1);
                    }
                }
            }
            for _ in &self.liodns {
                probe.alloc_spaace(count - 1)?;
            }
        }
        if self.win_cnt > 0 {
            self.drop_windows(t, mem)?;
        }
        self.win_cnt = count;
        self.windows = vec![None; count as usize];
        for i in 0..self.liodns.len() {
            self.set_liodn(t, mem, i)?;
        }
        Ok(())
    }

    /// `pamu_set_liodn`: disable, configure the PPAACE for the aperture and allocate/initialise
    /// the SPAACEs, every window unmapped.
    fn set_liodn<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        idx: usize,
    ) -> Result<(), GeometryError> {
        let (start, l) = self.aperture.ok_or(GeometryError::NoGeometry)?;
        let (liodn, old) = self.liodns[idx];
        self.set_valid(t, mem, liodn, false)?;
        if let Some(f) = old {
            t.free_spaace(f, self.win_cnt.saturating_sub(1));
            self.liodns[idx].1 = None;
        }
        let n = self.win_cnt;
        let fspi = if n > 1 {
            Some(t.alloc_spaace(n - 1)?)
        } else {
            None
        };
        self.liodns[idx].1 = fspi;
        let pe = t.ppaace_addr(u32::from(liodn))?;
        let sub_l = l - log2(u64::from(n));
        let (omi, snoop, stash) = (self.omi, self.snoop_id, self.stash_id);
        update_entry(mem, pe, |e| {
            e.set_wba(start);
            let mut w1 = e.pw1().with_wse(l - 1).with_pt(false);
            let mut w3 = e.w3();
            set_window_attrs(e, &mut w3, omi, snoop, stash);
            match fspi {
                Some(f) => {
                    e.w6 = f.into();
                    w3.set_wce(log2(u64::from(n)) - 1);
                    w1.set_mw(true);
                    // Subwindow 0 lives in the primary: unmapped, AP = 0.
                    w1.set_ap(Ap::DENIED);
                    w3.set_atm(Atm::WINDOW);
                    e.set_twba(0);
                    e.set_w5(e.w5().with_swse(sub_l - 1));
                }
                None => {
                    w3.set_atm(Atm::WINDOW);
                    w3.set_wce(0);
                    w1.set_mw(false);
                    w1.set_ap(Ap::DENIED);
                    e.set_twba(0);
                    e.w6 = 0.into();
                }
            }
            e.set_pw1(w1);
            e.set_w3(w3);
        })?;
        if let Some(f) = fspi {
            for i in 1..n {
                update_entry(mem, t.spaace_addr(f + i - 1), |e| {
                    *e = PaaceWin::default();
                    e.set_sw1(e.sw1().with_liodn(liodn).with_pt(true));
                    let mut w3 = e.w3().with_atm(Atm::WINDOW);
                    set_window_attrs(e, &mut w3, omi, snoop, stash);
                    e.set_w3(w3);
                    e.set_w5(e.w5().with_swse(sub_l - 1));
                })?;
            }
        }
        Ok(())
    }

    fn set_valid<M: GuestMemoryBackend + ?Sized>(
        &self,
        t: &Tables,
        mem: &M,
        liodn: u16,
        v: bool,
    ) -> Result<(), GeometryError> {
        let pe = t.ppaace_addr(u32::from(liodn))?;
        update_entry(mem, pe, |e| e.set_pw1(e.pw1().with_v(v)))
    }

    /// Write window `wnd`'s mapping into LIODN #`idx`'s entries (`pamu_config_spaace` /
    /// `pamu_config_ppaace`).
    fn map_one<M: GuestMemoryBackend + ?Sized>(
        &self,
        t: &Tables,
        mem: &M,
        idx: usize,
        wnd: u32,
        m: WindowMap,
    ) -> Result<(), GeometryError> {
        let (start, _) = self.aperture.ok_or(GeometryError::NoGeometry)?;
        let (liodn, fspi) = self.liodns[idx];
        let pe = t.ppaace_addr(u32::from(liodn))?;
        let ap = prot_ap(m.prot);
        let ml = log2(m.size);
        if self.win_cnt == 1 {
            // The single window's WSE becomes the mapped size.
            return update_entry(mem, pe, |e| {
                e.set_wba(start);
                e.set_pw1(e.pw1().with_wse(ml - 1).with_ap(ap).with_mw(false));
                e.set_w3(e.w3().with_atm(Atm::WINDOW));
                e.set_twba(m.paddr);
            });
        }
        let addr = match (wnd, fspi) {
            (0, _) => pe,
            (w, Some(f)) => t.spaace_addr(f + w - 1),
            (_, None) => return Err(GeometryError::NoWindows),
        };
        update_entry(mem, addr, |e| {
            e.set_twba(m.paddr);
            e.set_w5(e.w5().with_swse(ml - 1));
            e.set_w3(e.w3().with_atm(Atm::WINDOW));
            if wnd == 0 {
                e.set_pw1(e.pw1().with_ap(ap));
            } else {
                e.set_sw1(e.sw1().with_ap(ap).with_v(true));
            }
        })
    }

    /// `fsl_pamu_window_enable`: map window `wnd` to `size` bytes at `paddr` with `prot`.
    /// Subwindows i ≥ 1 become valid at once; subwindow 0 and single windows take effect when
    /// the domain is enabled.
    ///
    /// # Errors
    /// [`GeometryError::NoWindows`], [`GeometryError::NoSuchWindow`], [`GeometryError::BadSize`],
    /// [`GeometryError::Misaligned`], [`GeometryError::NoPermissions`],
    /// [`GeometryError::ApertureNotAligned`] and [`GeometryError::Busy`] (single window),
    /// [`GeometryError::WindowBusy`].
    pub fn window_enable<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        wnd: u32,
        paddr: u64,
        size: u64,
        prot: Perms,
    ) -> Result<(), GeometryError> {
        self.check_window(wnd, paddr, size, prot)?;
        self.apply_window(
            t,
            mem,
            wnd,
            WindowMap {
                paddr,
                size,
                prot,
                msi_bank: None,
            },
        )
    }

    fn check_window(
        &self,
        wnd: u32,
        paddr: u64,
        size: u64,
        prot: Perms,
    ) -> Result<(), GeometryError> {
        if self.win_cnt == 0 {
            return Err(GeometryError::NoWindows);
        }
        let (start, _) = self.aperture.ok_or(GeometryError::NoGeometry)?;
        if wnd >= self.win_cnt {
            return Err(GeometryError::NoSuchWindow {
                wnd,
                count: self.win_cnt,
            });
        }
        let max = self.window_size().unwrap_or(0);
        if !size.is_power_of_two() || size < 0x1000 || size > max {
            return Err(GeometryError::BadSize { size, max });
        }
        if paddr % size != 0 {
            return Err(GeometryError::Misaligned { paddr, size });
        }
        if !prot.read() && !prot.write() {
            return Err(GeometryError::NoPermissions);
        }
        if self.win_cnt == 1 {
            if self.enabled {
                return Err(GeometryError::Busy);
            }
            if start % size != 0 {
                return Err(GeometryError::ApertureNotAligned { size });
            }
        }
        if self.window(wnd).is_some() {
            return Err(GeometryError::WindowBusy(wnd));
        }
        Ok(())
    }

    fn apply_window<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        wnd: u32,
        m: WindowMap,
    ) -> Result<(), GeometryError> {
        for i in 0..self.liodns.len() {
            self.map_one(t, mem, i, wnd, m)?;
        }
        if let Some(slot) = self.windows.get_mut(wnd as usize) {
            *slot = Some(m);
        }
        Ok(())
    }

    /// `fsl_pamu_window_disable`: unmap window `wnd`. A single-window enabled domain is
    /// disabled; subwindow 0 gets AP = 0; subwindow i ≥ 1 gets V = 0.
    ///
    /// # Errors
    /// [`GeometryError::NotMapped`], [`GeometryError::Memory`].
    pub fn window_disable<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        wnd: u32,
    ) -> Result<(), GeometryError> {
        if self.window(wnd).is_none() {
            return Err(GeometryError::NotMapped(wnd));
        }
        if self.win_cnt == 1 && self.enabled {
            self.enable(t, mem, false)?;
        } else {
            for &(liodn, fspi) in &self.liodns {
                let pe = t.ppaace_addr(u32::from(liodn))?;
                match (wnd, fspi) {
                    (0, _) => update_entry(mem, pe, |e| e.set_pw1(e.pw1().with_ap(Ap::DENIED)))?,
                    (w, Some(f)) => update_entry(mem, t.spaace_addr(f + w - 1), |e| {
                        e.set_sw1(e.sw1().with_v(false))
                    })?,
                    (_, None) => {}
                }
            }
        }
        if let Some(slot) = self.windows.get_mut(wnd as usize) {
            *slot = None;
        }
        Ok(())
    }

    /// DOMAIN_ATTR_FSL_PAMU_ENABLE: set (or clear) V on every attached LIODN.
    ///
    /// # Errors
    /// [`GeometryError::NoMappings`] when enabling with nothing mapped.
    pub fn enable<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        on: bool,
    ) -> Result<(), GeometryError> {
        if on && !self.windows.iter().any(Option::is_some) {
            return Err(GeometryError::NoMappings);
        }
        for &(liodn, _) in &self.liodns {
            self.set_valid(t, mem, liodn, on)?;
        }
        self.enabled = on;
        Ok(())
    }

    /// FSL_PAMU_STASH: set the stash target (CID) in every entry of every attached LIODN
    /// (`None` leaves future entries untouched).
    ///
    /// # Errors
    /// [`GeometryError::Memory`].
    pub fn set_stash<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &Tables,
        mem: &M,
        cid: Option<u8>,
    ) -> Result<(), GeometryError> {
        self.stash_id = cid;
        let Some(c) = cid else { return Ok(()) };
        for &(liodn, fspi) in &self.liodns {
            let pe = t.ppaace_addr(u32::from(liodn))?;
            update_entry(mem, pe, |e| e.set_w3(e.w3().with_cid(c)))?;
            if let Some(f) = fspi {
                for i in 1..self.win_cnt {
                    update_entry(mem, t.spaace_addr(f + i - 1), |e| {
                        e.set_w3(e.w3().with_cid(c))
                    })?;
                }
            }
        }
        Ok(())
    }
}
