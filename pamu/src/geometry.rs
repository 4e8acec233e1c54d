//! The window geometry API: a programming model mirroring the Linux (pre-5.13) PAMU domain
//! attributes and the NXP VFIO-PAMU proposal (`pamu.md` §7, §13.2-§13.3, §14, §15).
//!
//! A [`Domain`] owns an aperture (a naturally aligned power of two ≥ 4 KiB), a power-of-two
//! window count up to the PC3 maximum, per-window mappings and the LIODNs attached to it. Every
//! call validates its arguments against the rules the Linux domain layer enforces (with the SDK
//! quirks removed: every refusal is a typed [`GeometryError`] and leaves nothing changed), then
//! writes the PAACE/SPAACE contents Linux's `pamu_config_ppaace`/`pamu_config_spaace` would
//! write into the tables in guest memory. The translation path reads those entries back, so the
//! two sides share one arithmetic (round-trip tests in `tests/pamu_geometry.rs`).
//!
//! MSI windows (§15): [`Domain::reserve_msi_windows`] is option A (top k windows), [`Domain::
//! map_msi_bank`] option B (a chosen bank at a chosen window), and option C is
//! [`crate::msi::MsiBankRegion`] mapped with [`Domain::window_enable`] like memory.

use viommu_common::access::Perms;
use viommu_common::mem::{read_obj, write_u32_be, MemError};
use vm_memory::GuestMemoryBackend;

use crate::msi::MsiBanks;
use crate::spec::paace::{Ap, Atm, Otm, PaaceW7Idx, PaaceWin, OME_SIZE, OMT_ENTRIES, PAACE_SIZE};
use crate::spec::regs::Reg;

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

/// Where the tables are, and which SPAACEs are free (a first-fit allocator with 64-byte
/// granularity, like Linux's gen_pool over the SPAACT).
#[derive(Debug, Clone)]
pub struct Tables {
    /// PPAACT base.
    pub ppba: u64,
    /// PPAACT entries.
    pub ppaace_count: u32,
    /// SPAACT base.
    pub spba: u64,
    /// SPAACT entries.
    pub spaace_count: u32,
    /// OMT base.
    pub oba: u64,
    used: Vec<bool>,
}

impl Tables {
    /// Tables at the given places.
    pub fn new(ppba: u64, ppaace_count: u32, spba: u64, spaace_count: u32, oba: u64) -> Self {
        Self {
            ppba,
            ppaace_count,
            spba,
            spaace_count,
            oba,
            used: vec![false; spaace_count as usize],
        }
    }

    /// Linux's layout in one block at `base`: PPAACT (0x500 entries), SPAACT (0x800), OMT (16).
    pub fn linux(base: u64) -> Self {
        Self::new(base, 0x500, base + 0x14000, 0x800, base + 0x34000)
    }

    /// Bytes the tables span from `ppba` (for the Linux layout: 0x34800).
    pub fn span(&self) -> u64 {
        (self.oba + OMT_ENTRIES * OME_SIZE).saturating_sub(self.ppba)
    }

    /// PPLA (exclusive).
    pub fn ppla(&self) -> u64 {
        self.ppba + u64::from(self.ppaace_count) * PAACE_SIZE
    }

    /// SPLA (exclusive).
    pub fn spla(&self) -> u64 {
        self.spba + u64::from(self.spaace_count) * PAACE_SIZE
    }

    /// OLA (exclusive).
    pub fn ola(&self) -> u64 {
        self.oba + OMT_ENTRIES * OME_SIZE
    }

    /// The base/limit register values, in the order PPBAH..OLAL, as the driver writes them.
    pub fn register_values(&self) -> [(Reg, u32); 12] {
        let hl = |v: u64| ((v >> 32) as u32, v as u32);
        let (a, b) = hl(self.ppba);
        let (c, d) = hl(self.ppla());
        let (e, f) = hl(self.spba);
        let (g, h) = hl(self.spla());
        let (i, j) = hl(self.oba);
        let (k, l) = hl(self.ola());
        [
            (Reg::Ppbah, a),
            (Reg::Ppbal, b),
            (Reg::Pplah, c),
            (Reg::Pplal, d),
            (Reg::Spbah, e),
            (Reg::Spbal, f),
            (Reg::Splah, g),
            (Reg::Splal, h),
            (Reg::Obah, i),
            (Reg::Obal, j),
            (Reg::Olah, k),
            (Reg::Olal, l),
        ]
    }

    /// Address of LIODN `liodn`'s PPAACE.
    ///
    /// # Errors
    /// [`GeometryError::LiodnOutOfRange`].
    pub fn ppaace_addr(&self, liodn: u32) -> Result<u64, GeometryError> {
        if liodn >= self.ppaace_count {
            return Err(GeometryError::LiodnOutOfRange(liodn));
        }
        Ok(self.ppba + u64::from(liodn) * PAACE_SIZE)
    }

    /// Address of SPAACT[`index`].
    pub fn spaace_addr(&self, index: u32) -> u64 {
        self.spba + u64::from(index) * PAACE_SIZE
    }

    /// Allocate `n` contiguous SPAACEs, returning the first index.
    ///
    /// # Errors
    /// [`GeometryError::SpaaceExhausted`].
    pub fn alloc_spaace(&mut self, n: u32) -> Result<u32, GeometryError> {
        let n_us = n as usize;
        if n == 0 || n_us > self.used.len() {
            return Err(GeometryError::SpaaceExhausted(n));
        }
        let mut run = 0usize;
        for i in 0..self.used.len() {
            run = if self.used[i] { 0 } else { run + 1 };
            if run == n_us {
                let first = i + 1 - n_us;
                self.used[first..=i].iter_mut().for_each(|u| *u = true);
                return u32::try_from(first).map_err(|_| GeometryError::SpaaceExhausted(n));
            }
        }
        Err(GeometryError::SpaaceExhausted(n))
    }

    /// Free `n` SPAACEs from `first` (out-of-range indexes are ignored).
    pub fn free_spaace(&mut self, first: u32, n: u32) {
        let end = (first as usize)
            .saturating_add(n as usize)
            .min(self.used.len());
        if let Some(s) = self.used.get_mut(first as usize..end) {
            s.iter_mut().for_each(|u| *u = false);
        }
    }
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

/// A geometry plan for a guest: RAM mapped by whole windows plus one window per MSI bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Aperture start (= RAM start).
    pub aperture_start: u64,
    /// Aperture size.
    pub aperture_size: u64,
    /// Window count (a power of two).
    pub windows: u32,
    /// Window size.
    pub window_size: u64,
    /// Windows covering RAM (0..ram_windows).
    pub ram_windows: u32,
}

/// Solve a geometry for RAM at `[ram_start, ram_start + ram_size)` plus `msi_banks` MSI
/// windows, with windows no larger than `max_window` (the host's contiguous-memory unit for
/// passthrough; `u64::MAX` for pure emulation) and at most `max_windows` windows. Picks the
/// largest window size (fewest windows: less PAMU cache pressure); the window count is rounded
/// up to a power of two, so reserving k MSI windows may double it.
///
/// # Errors
/// [`GeometryError::BadAperture`] if no aligned aperture fits, [`GeometryError::BadWindowCount`]
/// if more than `max_windows` would be needed.
pub fn plan(
    ram_start: u64,
    ram_size: u64,
    msi_banks: u8,
    max_window: u64,
    max_windows: u32,
) -> Result<Plan, GeometryError> {
    let bad = GeometryError::BadAperture {
        start: ram_start,
        end: ram_start.saturating_add(ram_size).saturating_sub(1),
    };
    // The largest power of two not above `max_window`.
    let cap = 1u64 << (63 - max_window.max(1).leading_zeros());
    let w = ram_size
        .max(0x1000)
        .checked_next_power_of_two()
        .ok_or(bad)?
        .min(cap)
        .max(0x1000);
    let ram_windows = ram_size.div_ceil(w);
    let total = (ram_windows + u64::from(msi_banks)).next_power_of_two();
    let windows = u32::try_from(total).map_err(|_| bad)?;
    if windows > max_windows {
        return Err(GeometryError::BadWindowCount {
            count: windows,
            max: max_windows,
        });
    }
    let aperture_size = w.checked_mul(total).ok_or(bad)?;
    if ram_start % aperture_size != 0 || ram_start.checked_add(aperture_size).is_none() {
        return Err(bad);
    }
    Ok(Plan {
        aperture_start: ram_start,
        aperture_size,
        windows,
        window_size: w,
        ram_windows: u32::try_from(ram_windows).map_err(|_| bad)?,
    })
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
                    e.set_w2(e.w2().with_cr(true));
                    let mut w3 = e.w3().with_atm(Atm::WINDOW);
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

    /// VFIO MAP_DMA (clean semantics, `pamu.md` §14.1/TV-5): `iova` must be a window start and
    /// `len` a non-zero whole number of windows inside the aperture, each window free; every
    /// window is mapped whole to the physically contiguous range at `paddr`, then the domain is
    /// enabled. All checks happen before anything is written.
    ///
    /// # Errors
    /// [`GeometryError::NotWindowStart`], [`GeometryError::NotWholeWindows`], and the
    /// [`Domain::window_enable`] errors.
    pub fn map_dma<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        iova: u64,
        paddr: u64,
        len: u64,
        prot: Perms,
    ) -> Result<(), GeometryError> {
        let (first, n, s) = self.window_range(iova, len)?;
        for i in 0..n {
            self.check_window(first + i, paddr + u64::from(i) * s, s, prot)?;
        }
        for i in 0..n {
            let m = WindowMap {
                paddr: paddr + u64::from(i) * s,
                size: s,
                prot,
                msi_bank: None,
            };
            self.apply_window(t, mem, first + i, m)?;
        }
        self.enable(t, mem, true)
    }

    /// VFIO UNMAP_DMA: unmap whole windows; when no DMA window remains (MSI windows excluded)
    /// the domain is disabled.
    ///
    /// # Errors
    /// [`GeometryError::NotWindowStart`], [`GeometryError::NotWholeWindows`],
    /// [`GeometryError::NotMapped`].
    pub fn unmap_dma<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        iova: u64,
        len: u64,
    ) -> Result<(), GeometryError> {
        let (first, n, _) = self.window_range(iova, len)?;
        if let Some(w) = (first..first + n).find(|&w| self.window(w).is_none()) {
            return Err(GeometryError::NotMapped(w));
        }
        for w in first..first + n {
            self.window_disable(t, mem, w)?;
        }
        let dma_left = self.windows.iter().flatten().any(|m| m.msi_bank.is_none());
        if !dma_left && self.enabled {
            self.enable(t, mem, false)?;
        }
        Ok(())
    }

    fn window_range(&self, iova: u64, len: u64) -> Result<(u32, u32, u64), GeometryError> {
        let (start, end) = self.geometry().ok_or(GeometryError::NoGeometry)?;
        let s = self.window_size().ok_or(GeometryError::NoWindows)?;
        if iova < start || iova > end || (iova - start) % s != 0 {
            return Err(GeometryError::NotWindowStart(iova));
        }
        let whole = GeometryError::NotWholeWindows { len, window: s };
        if len == 0 || len % s != 0 || len - 1 > end - iova {
            return Err(whole);
        }
        let first = u32::try_from((iova - start) / s).map_err(|_| whole)?;
        let n = u32::try_from(len / s).map_err(|_| whole)?;
        Ok((first, n, s))
    }

    /// Option B (MAP_MSI_BANK): map bank `bank`'s MSIIR alias page at the window starting at
    /// `iova`, 4 KiB, with `prot` (write needed for MSIs). Returns the MSI address a device
    /// must write (window IOVA + MSIIR page offset).
    ///
    /// # Errors
    /// [`GeometryError::NoSuchBank`], [`GeometryError::NotWindowStart`], and the
    /// [`Domain::window_enable`] errors.
    pub fn map_msi_bank<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        banks: &MsiBanks,
        bank: u8,
        iova: u64,
        prot: Perms,
    ) -> Result<u64, GeometryError> {
        let page = banks
            .alias_page(bank)
            .ok_or(GeometryError::NoSuchBank(bank))?;
        let (wnd, _, _) = self
            .window_range(iova, self.window_size().unwrap_or(0))
            .map_err(|e| match e {
                GeometryError::NotWholeWindows { .. } => GeometryError::NotWindowStart(iova),
                e => e,
            })?;
        self.check_window(wnd, page, 0x1000, prot)?;
        let m = WindowMap {
            paddr: page,
            size: 0x1000,
            prot,
            msi_bank: Some(bank),
        };
        self.apply_window(t, mem, wnd, m)?;
        Ok(iova + banks.msiir_page_offset())
    }

    /// UNMAP_MSI_BANK: unmap the MSI window starting at `iova`.
    ///
    /// # Errors
    /// [`GeometryError::NotWindowStart`], [`GeometryError::NotMapped`] (also when the window
    /// is not an MSI window).
    pub fn unmap_msi_bank<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        iova: u64,
    ) -> Result<(), GeometryError> {
        let s = self.window_size().ok_or(GeometryError::NoWindows)?;
        let (wnd, _, _) = self.window_range(iova, s)?;
        match self.window(wnd) {
            Some(WindowMap {
                msi_bank: Some(_), ..
            }) => self.window_disable(t, mem, wnd),
            _ => Err(GeometryError::NotMapped(wnd)),
        }
    }

    /// Option A: reserve the top k windows (k = bank count) and map bank j's alias page at
    /// window n − k + j, 4 KiB, write-only. Returns each bank's MSI address (IOVA of the
    /// MSIIR). Needs at least one window left for memory.
    ///
    /// # Errors
    /// [`GeometryError::NoRoomForMsi`], and the [`Domain::window_enable`] errors (a reserved
    /// window already mapped gives [`GeometryError::WindowBusy`]).
    pub fn reserve_msi_windows<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        t: &mut Tables,
        mem: &M,
        banks: &MsiBanks,
    ) -> Result<Vec<u64>, GeometryError> {
        let k = u32::from(banks.count());
        let n = self.win_cnt;
        if n == 0 {
            return Err(GeometryError::NoWindows);
        }
        if k >= n {
            return Err(GeometryError::NoRoomForMsi {
                banks: banks.count(),
                windows: n,
            });
        }
        let (start, _) = self.aperture.ok_or(GeometryError::NoGeometry)?;
        let s = self.window_size().unwrap_or(0);
        for j in 0..banks.count() {
            let page = banks.alias_page(j).ok_or(GeometryError::NoSuchBank(j))?;
            self.check_window(n - k + u32::from(j), page, 0x1000, Perms::W)?;
        }
        let mut out = Vec::with_capacity(banks.count().into());
        for j in 0..banks.count() {
            let wnd = n - k + u32::from(j);
            let page = banks.alias_page(j).ok_or(GeometryError::NoSuchBank(j))?;
            let m = WindowMap {
                paddr: page,
                size: 0x1000,
                prot: Perms::W,
                msi_bank: Some(j),
            };
            self.apply_window(t, mem, wnd, m)?;
            out.push(start + u64::from(wnd) * s + banks.msiir_page_offset());
        }
        Ok(out)
    }
}
