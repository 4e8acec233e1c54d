//! Table placement and the SPAACE allocator used by the geometry API.

use crate::spec::paace::{OME_SIZE, OMT_ENTRIES, PAACE_SIZE};
use crate::spec::regs::Reg;
use viommu_common::reg64::Half;

use super::GeometryError;

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
        let hl = |v: u64| (Half::High.read(v), Half::Low.read(v));
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

    /// Address of `SPAACT[index]`.
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
