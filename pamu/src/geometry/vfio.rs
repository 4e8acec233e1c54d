//! The VFIO-style layer over [`Domain`]: whole-window DMA map/unmap, MSI bank windows
//! (options A and B, pamu/README.md) and the geometry solver.

use viommu_common::access::Perms;
use vm_memory::GuestMemoryBackend;

use crate::msi::MsiBanks;

use super::{Domain, GeometryError, Tables, WindowMap};

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

impl Domain {
    /// VFIO MAP_DMA (clean semantics, test vector TV-5 in pamu/README.md): `iova` must be a window
    /// start and `len` a non-zero whole number of windows inside the aperture, each window free;
    /// every window is mapped whole to the physically contiguous range at `paddr`, then the domain
    /// is enabled. All checks happen before anything is written.
    ///
    /// # Errors
    /// [`GeometryError::NotWindowStart`], [`GeometryError::NotWholeWindows`],
    /// [`GeometryError::PhysicalWrap`], and the [`Domain::window_enable`] errors.
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
        // `len` is a non-zero number of windows; every window's physical base below fits.
        if paddr.checked_add(len - 1).is_none() {
            return Err(GeometryError::PhysicalWrap { paddr, len });
        }
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
