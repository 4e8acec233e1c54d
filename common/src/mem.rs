//! Bounds-checked, typed access to guest memory through `vm-memory`.
//!
//! Every device table, queue and page-table entry is fetched through these helpers. They take
//! any [`GuestMemoryBackend`] (for example `GuestMemoryMmap`, or what a
//! `GuestMemoryAtomic<GuestMemoryMmap>` guard dereferences to), never panic on a guest-chosen
//! address, and return [`MemError`] for anything outside guest RAM.
//!
//! Byte order is explicit in the name: SMMUv3 structures are little-endian, PAMU tables are
//! big-endian. Whole records go through zerocopy ([`read_obj`]/[`write_obj`]); a record type
//! carries its own byte order in its field types.
//!
//! A device does not hold a backend itself but a [`GuestRam`]: the VMM's address space, from
//! which it takes a snapshot of the current memory map once per access (so memory hot-added
//! through `GuestMemoryAtomic` is visible to the next access).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemoryBackend, VolatileMemory};
use zerocopy::byteorder::{BigEndian, LittleEndian, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A guest-memory access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// Some byte of `[addr, addr + len)` is not backed by guest RAM.
    #[error("guest memory access of {len} bytes at {addr:#x} is outside guest RAM")]
    OutOfRange {
        /// First byte of the access.
        addr: u64,
        /// Length of the access.
        len: u64,
    },
    /// An atomic access was not naturally aligned.
    #[error("atomic guest memory access at {addr:#x} is not {size}-byte aligned")]
    Misaligned {
        /// Address of the access.
        addr: u64,
        /// Required alignment.
        size: u64,
    },
}

impl MemError {
    /// The faulting guest physical address.
    pub const fn addr(&self) -> u64 {
        match *self {
            MemError::OutOfRange { addr, .. } | MemError::Misaligned { addr, .. } => addr,
        }
    }
}

/// The guest memory a device DMAs into: any vm-memory [`GuestAddressSpace`] whose memory is a
/// [`GuestMemoryBackend`] (`&GuestMemoryMmap`, `Arc<GuestMemoryMmap>`,
/// `GuestMemoryAtomic<GuestMemoryMmap>`).
pub trait GuestRam: Send + Sync {
    /// The memory map.
    type Backend: GuestMemoryBackend + ?Sized;
    /// A snapshot of the memory map, held for one access.
    type Guard: std::ops::Deref<Target = Self::Backend>;
    /// The current memory map.
    fn ram(&self) -> Self::Guard;
}

impl<A> GuestRam for A
where
    A: GuestAddressSpace + Send + Sync,
    A::M: GuestMemoryBackend,
{
    type Backend = A::M;
    type Guard = A::T;
    fn ram(&self) -> A::T {
        self.memory()
    }
}

/// The error for an access of `len` bytes at `addr` that leaves guest RAM.
fn out_of_range(addr: u64, len: usize) -> MemError {
    MemError::OutOfRange {
        addr,
        len: len as u64,
    }
}

/// Read `buf.len()` bytes at `addr`.
///
/// # Errors
/// [`MemError::OutOfRange`] if any byte is outside guest RAM (including address wrap-around).
pub fn read_bytes<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    buf: &mut [u8],
) -> Result<(), MemError> {
    if addr.checked_add(buf.len() as u64).is_none() {
        return Err(out_of_range(addr, buf.len()));
    }
    mem.read_slice(buf, GuestAddress(addr))
        .map_err(|_| out_of_range(addr, buf.len()))
}

/// Write `buf` at `addr`.
///
/// # Errors
/// [`MemError::OutOfRange`] if any byte is outside guest RAM. Nothing is written in that case
/// when the range starts outside RAM; a range that starts inside RAM and runs off its end may
/// have written its in-range prefix (as a real bus would).
pub fn write_bytes<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    buf: &[u8],
) -> Result<(), MemError> {
    if addr.checked_add(buf.len() as u64).is_none() {
        return Err(out_of_range(addr, buf.len()));
    }
    mem.write_slice(buf, GuestAddress(addr))
        .map_err(|_| out_of_range(addr, buf.len()))
}

/// Read a zerocopy record at `addr`.
///
/// # Errors
/// [`MemError::OutOfRange`] if the record is not entirely inside guest RAM.
pub fn read_obj<T: FromBytes + IntoBytes, M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
) -> Result<T, MemError> {
    let mut v = T::new_zeroed();
    read_bytes(mem, addr, v.as_mut_bytes())?;
    Ok(v)
}

/// Write a zerocopy record at `addr`.
///
/// # Errors
/// [`MemError::OutOfRange`] if the record is not entirely inside guest RAM.
pub fn write_obj<T: IntoBytes + Immutable, M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    v: &T,
) -> Result<(), MemError> {
    write_bytes(mem, addr, v.as_bytes())
}

/// Typed word accessors: each reads or writes a zerocopy byte-order type
/// ([`zerocopy::byteorder`]) through [`read_obj`]/[`write_obj`], so the conversion is
/// zerocopy's and the bounds checks are those of every other access.
macro_rules! word_access {
    ($read:ident, $write:ident, $t:ty, $wire:ty, $doc:literal) => {
        #[doc = concat!("Read a ", $doc, " at `addr`.")]
        ///
        /// # Errors
        /// [`MemError::OutOfRange`] if any byte is outside guest RAM.
        pub fn $read<M: GuestMemoryBackend + ?Sized>(mem: &M, addr: u64) -> Result<$t, MemError> {
            read_obj::<$wire, M>(mem, addr).map(<$wire>::get)
        }

        #[doc = concat!("Write a ", $doc, " at `addr`.")]
        ///
        /// # Errors
        /// [`MemError::OutOfRange`] if any byte is outside guest RAM.
        pub fn $write<M: GuestMemoryBackend + ?Sized>(
            mem: &M,
            addr: u64,
            v: $t,
        ) -> Result<(), MemError> {
            write_obj(mem, addr, &<$wire>::new(v))
        }
    };
}

word_access!(
    read_u32_le,
    write_u32_le,
    u32,
    U32<LittleEndian>,
    "little-endian u32"
);
word_access!(
    read_u64_le,
    write_u64_le,
    u64,
    U64<LittleEndian>,
    "little-endian u64"
);
word_access!(
    read_u32_be,
    write_u32_be,
    u32,
    U32<BigEndian>,
    "big-endian u32"
);
word_access!(
    read_u64_be,
    write_u64_be,
    u64,
    U64<BigEndian>,
    "big-endian u64"
);

/// Atomically load a naturally aligned little-endian u64 (a page-table descriptor).
///
/// Page-table walkers use this so that a descriptor the guest is rewriting concurrently is seen
/// either before or after, never torn (Arm ARM: 64-bit single-copy atomicity of descriptor reads).
///
/// # Errors
/// [`MemError::Misaligned`] for an unaligned address, [`MemError::OutOfRange`] outside RAM.
pub fn load_u64_le<M: GuestMemoryBackend + ?Sized>(mem: &M, addr: u64) -> Result<u64, MemError> {
    if addr % 8 != 0 {
        return Err(MemError::Misaligned { addr, size: 8 });
    }
    let v: u64 = mem
        .load(GuestAddress(addr), Ordering::Acquire)
        .map_err(|_| out_of_range(addr, 8))?;
    Ok(u64::from_le(v))
}

/// Atomically compare-and-swap a naturally aligned little-endian u64 in guest memory.
///
/// Returns `Ok(Ok(()))` if the word held `old` and now holds `new`, `Ok(Err(current))` if it
/// held something else (nothing written). This is how hardware access-flag and dirty-state
/// updates (HTTU) modify descriptors without losing a concurrent guest update.
///
/// # Errors
/// [`MemError::Misaligned`] for an unaligned address, [`MemError::OutOfRange`] outside RAM.
pub fn cmpxchg_u64_le<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    old: u64,
    new: u64,
) -> Result<Result<(), u64>, MemError> {
    if addr % 8 != 0 {
        return Err(MemError::Misaligned { addr, size: 8 });
    }
    let slice = mem
        .get_slice(GuestAddress(addr), 8)
        .map_err(|_| out_of_range(addr, 8))?;
    let atomic: &AtomicU64 = slice.get_atomic_ref(0).map_err(|_| out_of_range(addr, 8))?;
    Ok(atomic
        .compare_exchange(
            old.to_le(),
            new.to_le(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(u64::from_le))
}

/// Atomically compare-and-swap a naturally aligned big-endian u32 in guest memory.
///
/// # Errors
/// [`MemError::Misaligned`] for an unaligned address, [`MemError::OutOfRange`] outside RAM.
pub fn cmpxchg_u32_be<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    old: u32,
    new: u32,
) -> Result<Result<(), u32>, MemError> {
    if addr % 4 != 0 {
        return Err(MemError::Misaligned { addr, size: 4 });
    }
    let slice = mem
        .get_slice(GuestAddress(addr), 4)
        .map_err(|_| out_of_range(addr, 4))?;
    let atomic: &AtomicU32 = slice.get_atomic_ref(0).map_err(|_| out_of_range(addr, 4))?;
    Ok(atomic
        .compare_exchange(
            old.to_be(),
            new.to_be(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(u32::from_be))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;
    use zerocopy::KnownLayout;

    fn ram() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0x1000), 0x2000)]).unwrap()
    }

    #[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, PartialEq)]
    #[repr(C)]
    struct Rec {
        a: U32<BigEndian>,
        b: U64<LittleEndian>,
        c: U32<LittleEndian>,
    }

    /// Byte order is applied as named: the same value lands in memory in LE and BE order.
    #[test]
    fn test_endian_words() {
        let m = ram();
        write_u32_le(&m, 0x1000, 0x1122_3344).unwrap();
        write_u32_be(&m, 0x1004, 0x1122_3344).unwrap();
        let mut b = [0u8; 8];
        read_bytes(&m, 0x1000, &mut b).unwrap();
        assert_eq!(b, [0x44, 0x33, 0x22, 0x11, 0x11, 0x22, 0x33, 0x44]);
        write_u64_be(&m, 0x1008, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(read_u64_le(&m, 0x1008).unwrap(), 0x0807_0605_0403_0201);
        assert_eq!(read_u32_be(&m, 0x1004).unwrap(), 0x1122_3344);
        assert_eq!(load_u64_le(&m, 0x1008).unwrap(), 0x0807_0605_0403_0201);
    }

    /// zerocopy records keep each field's byte order.
    #[test]
    fn test_record_roundtrip_layout() {
        let m = ram();
        let r = Rec {
            a: U32::new(0xaabb_ccdd),
            b: U64::new(0x1),
            c: U32::new(0x2),
        };
        write_obj(&m, 0x1100, &r).unwrap();
        assert_eq!(read_u32_be(&m, 0x1100).unwrap(), 0xaabb_ccdd);
        assert_eq!(read_u64_le(&m, 0x1104).unwrap(), 1);
        assert_eq!(read_obj::<Rec, _>(&m, 0x1100).unwrap(), r);
    }

    /// Guest-chosen addresses outside RAM, straddling its end, or wrapping, are errors.
    #[test]
    fn test_out_of_range_is_error() {
        let m = ram();
        assert_eq!(
            read_u32_le(&m, 0).unwrap_err(),
            MemError::OutOfRange { addr: 0, len: 4 }
        );
        assert!(read_u64_le(&m, 0x2ffc).is_err());
        assert!(read_u64_le(&m, u64::MAX - 3).is_err());
        assert!(write_u32_be(&m, 0x3000, 1).is_err());
        let mut big = vec![0u8; 0x3000];
        assert!(read_bytes(&m, 0x1000, &mut big).is_err());
        assert!(load_u64_le(&m, 0x1004).is_err());
        assert!(cmpxchg_u64_le(&m, u64::MAX - 7, 0, 1).is_err());
    }

    /// Compare-and-swap writes only when the old value matches and reports the current value.
    #[test]
    fn test_cmpxchg() {
        let m = ram();
        write_u64_le(&m, 0x1010, 5).unwrap();
        assert_eq!(cmpxchg_u64_le(&m, 0x1010, 4, 9).unwrap(), Err(5));
        assert_eq!(cmpxchg_u64_le(&m, 0x1010, 5, 9).unwrap(), Ok(()));
        assert_eq!(read_u64_le(&m, 0x1010).unwrap(), 9);
        write_u32_be(&m, 0x1020, 7).unwrap();
        assert_eq!(cmpxchg_u32_be(&m, 0x1020, 7, 8).unwrap(), Ok(()));
        assert_eq!(read_u32_be(&m, 0x1020).unwrap(), 8);
        assert_eq!(
            cmpxchg_u32_be(&m, 0x1022, 7, 8).unwrap_err(),
            MemError::Misaligned {
                addr: 0x1022,
                size: 4
            }
        );
    }

    /// Reads `addr` through a fresh snapshot of `m`'s memory map, as a device does per access.
    fn read_through<M: GuestRam>(m: &M, addr: u64) -> Result<u32, MemError> {
        read_u32_le(&*m.ram(), addr)
    }

    /// `GuestRam` covers a borrowed map, a shared map and a VMM's mutable map; through the
    /// latter, a region added after the device took the address space is visible to `ram()`.
    #[test]
    fn test_guest_ram_borrowed_shared_and_atomic() {
        use std::sync::Arc;
        use vm_memory::{GuestMemoryAtomic, GuestRegionMmap};

        let m = ram();
        write_u32_le(&m, 0x1000, 0xfeed).unwrap();
        assert_eq!(read_through(&&m, 0x1000), Ok(0xfeed));
        let shared = Arc::new(m);
        assert_eq!(read_through(&shared, 0x1000), Ok(0xfeed));

        let atomic = GuestMemoryAtomic::new(ram());
        let device_view = atomic.clone();
        assert!(read_through(&device_view, 0x10_0000).is_err());
        let region = GuestRegionMmap::from_range(GuestAddress(0x10_0000), 0x1000, None).unwrap();
        let grown = atomic.memory().insert_region(Arc::new(region)).unwrap();
        atomic.lock().unwrap().replace(grown);
        write_u32_le(&*atomic.memory(), 0x10_0000, 0xbeef).unwrap();
        assert_eq!(read_through(&device_view, 0x10_0000), Ok(0xbeef));
        assert_eq!(device_view.ram().num_regions(), 2);
    }
}
