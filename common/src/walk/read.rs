//! Descriptor fetches for one walk: each read is one bounds- and alignment-checked 64-bit
//! atomic load (single-copy atomic, as the Arm ARM requires of descriptor reads), from the
//! guest memory region the previous read found.
//!
//! A walk's tables almost always live in one region of guest RAM, so the reader looks the
//! region up (`GuestMemoryBackend::find_region`) on its first read and then only checks that
//! each next address falls inside it; an address outside it looks its region up again. An
//! address in no region, or a load the region's slice refuses, is [`MemError::OutOfRange`],
//! exactly as [`crate::mem::load_u64_le`] reports it. Device table fetches (a whole STE or CD)
//! use it too ([`DescReader::read_words`]).

use std::sync::atomic::Ordering;

use vm_memory::bitmap::BS;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion, VolatileSlice};

use crate::mem::MemError;

/// The region slice of the last read, and its first guest physical address.
type Cached<'m, M> = (
    u64,
    VolatileSlice<'m, BS<'m, <<M as GuestMemoryBackend>::R as GuestMemoryRegion>::B>>,
);

/// Reads little-endian descriptors from guest memory for one walk (see the module docs).
pub struct DescReader<'m, M: GuestMemoryBackend + ?Sized> {
    mem: &'m M,
    last: Option<Cached<'m, M>>,
}

impl<'m, M: GuestMemoryBackend + ?Sized> DescReader<'m, M> {
    /// A reader with no region looked up yet.
    #[inline]
    pub fn new(mem: &'m M) -> Self {
        Self { mem, last: None }
    }

    /// Atomically load the naturally aligned little-endian u64 at `addr`.
    ///
    /// # Errors
    /// [`MemError::Misaligned`] for an unaligned address, [`MemError::OutOfRange`] outside RAM.
    #[inline]
    pub fn read(&mut self, addr: u64) -> Result<u64, MemError> {
        if addr % 8 != 0 {
            return Err(MemError::Misaligned { addr, size: 8 });
        }
        if let Some((start, slice)) = &self.last {
            if let Some(off) = addr.checked_sub(*start) {
                if off < slice.len() as u64 {
                    return slice
                        .load::<u64>(off as usize, Ordering::Acquire)
                        .map(u64::from_le)
                        .map_err(|_| MemError::OutOfRange { addr, len: 8 });
                }
            }
        }
        self.read_new_region(addr)
    }

    /// `N` consecutive words from `addr` (a whole STE or CD), each one 64-bit single-copy
    /// atomic load, like `N` calls of [`DescReader::read`] but with one region lookup.
    ///
    /// # Errors
    /// The first word's [`MemError`].
    #[inline]
    pub fn read_words<const N: usize>(&mut self, addr: u64) -> Result<[u64; N], MemError> {
        let mut words = [0u64; N];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.read(addr.wrapping_add(8 * i as u64))?;
        }
        Ok(words)
    }

    /// The first `U` words of the `N`-word descriptor at `addr` whose other words are IGNORED
    /// (an STE's or CD's words 4..7): the same answer as [`DescReader::read_words`]`::<N>`
    /// (every word must be readable, the first failing word's error otherwise), but when the
    /// whole descriptor lies in the region of its first word only the `U` used words are
    /// loaded, each one 64-bit single-copy atomic load.
    ///
    /// # Errors
    /// As [`DescReader::read_words`]`::<N>`.
    #[inline]
    pub fn read_head<const N: usize, const U: usize>(
        &mut self,
        addr: u64,
    ) -> Result<[u64; U], MemError> {
        const { assert!(U >= 1 && U <= N) };
        let first = self.read(addr)?;
        let covered = match &self.last {
            Some((start, slice)) => addr
                .checked_sub(*start)
                .and_then(|off| off.checked_add(8 * N as u64))
                .is_some_and(|end| end <= slice.len() as u64),
            None => false,
        };
        if !covered {
            // Crosses into another region (or out of RAM): word by word, as read_words does.
            let all = self.read_words::<N>(addr)?;
            let mut words = [0u64; U];
            words.copy_from_slice(&all[..U]);
            return Ok(words);
        }
        let mut words = [0u64; U];
        words[0] = first;
        for (i, w) in words.iter_mut().enumerate().skip(1) {
            *w = self.read(addr.wrapping_add(8 * i as u64))?;
        }
        Ok(words)
    }

    /// [`DescReader::read`] from a region not looked up yet.
    #[cold]
    fn read_new_region(&mut self, addr: u64) -> Result<u64, MemError> {
        let out = MemError::OutOfRange { addr, len: 8 };
        let region = self.mem.find_region(GuestAddress(addr)).ok_or(out)?;
        let slice = region.as_volatile_slice().map_err(|_| out)?;
        let start = region.start_addr().0;
        let off = usize::try_from(addr - start).map_err(|_| out)?;
        let v = slice
            .load::<u64>(off, Ordering::Acquire)
            .map(u64::from_le)
            .map_err(|_| out)?;
        self.last = Some((start, slice));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{load_u64_le, write_u64_le};
    use vm_memory::GuestMemoryMmap;

    /// Reads agree with `load_u64_le` inside, across and outside two regions (with a hole
    /// between them), misaligned and at the very end.
    #[test]
    fn test_desc_reader_matches_load_u64_le() {
        let mem: GuestMemoryMmap<()> = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0x1000), 0x2000),
            (GuestAddress(0x8000), 0x1000),
        ])
        .unwrap();
        for (i, a) in (0x1000..0x3000u64).step_by(8).enumerate() {
            write_u64_le(&mem, a, 0x0101_0101_0101_0101 * (i as u64 % 255)).unwrap();
        }
        write_u64_le(&mem, 0x8ff8, 0xdead_beef_cafe_f00d).unwrap();
        let mut r = DescReader::new(&mem);
        for a in [
            0x1000,
            0x2ff8,
            0x8ff8,
            0x1008,
            0x3000,
            0x0ff8,
            0x8000,
            0x9000,
            0x1004,
            0x2ff0,
            0xffff_ffff_ffff_fff8,
            0x8ff8,
        ] {
            assert_eq!(r.read(a), load_u64_le(&mem, a), "{a:#x}");
        }
    }

    /// `read_head` answers as `read_words` does (head words, or the first failing word's
    /// error) for descriptors inside, at the end of, across and outside the regions.
    #[test]
    fn test_desc_reader_read_head_matches_read_words() {
        let mem: GuestMemoryMmap<()> = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0x1000), 0x2000),
            (GuestAddress(0x3000), 0x1000),
            (GuestAddress(0x8000), 0x1000),
        ])
        .unwrap();
        for (i, a) in (0x1000..0x4000u64).step_by(8).enumerate() {
            write_u64_le(&mem, a, 0x0101_0101_0101_0101 * (i as u64 % 255)).unwrap();
        }
        for a in [
            0x1000,
            0x1040,
            0x2fc0,
            0x2fe0,
            0x2ff8,
            0x3fc0,
            0x3fe0,
            0x8fc0,
            0x8fe0,
            0x8ff8,
            0x7fe0,
            0x0fe0,
            0x1004,
            0xffff_ffff_ffff_ffe0,
        ] {
            for fresh in [true, false] {
                let mut r = DescReader::new(&mem);
                let mut w = DescReader::new(&mem);
                if !fresh {
                    // A region already cached from an earlier read.
                    let _ = r.read(0x1000);
                    let _ = w.read(0x1000);
                }
                let want = w.read_words::<8>(a).map(|x| [x[0], x[1], x[2], x[3]]);
                assert_eq!(r.read_head::<8, 4>(a), want, "{a:#x}");
            }
        }
    }
}
