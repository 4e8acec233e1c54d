//! Hand-built tables for walker unit tests: a 4K-granule, 48-bit, four-level chain whose
//! descriptors each test can set bit by bit.

use vm_memory::GuestMemoryMmap;

use crate::addr::Granule;
use crate::mem::{read_u64_le, write_u64_le};
use crate::testing::guest_ram;
use crate::walk::{Stage1Config, Stage2Config};

/// Guest RAM base for hand-built tables.
pub const RAM: u64 = 0x4000_0000;
/// Table addresses: L0, L1, L2, L3 (4K each).
pub const T: [u64; 4] = [RAM, RAM + 0x1000, RAM + 0x2000, RAM + 0x3000];
/// The VA most tests translate: indexes 1, 2, 3, 4 at levels 0..3, offset 0x567.
pub const VA: u64 = (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x567;
/// Valid table descriptor type bits.
pub const TABLE: u64 = 3;
/// Leaf: page at level 3 (0b11) with AF.
pub const PAGE_AF: u64 = 3 | (1 << 10);
/// Leaf: block at level 1/2 (0b01) with AF.
pub const BLOCK_AF: u64 = 1 | (1 << 10);

/// Fresh RAM with the four tables zeroed.
pub fn ram() -> GuestMemoryMmap<()> {
    guest_ram(RAM, 0x10_0000)
}

/// Address of the descriptor for `va` at `level` in the chain.
pub const fn slot(level: usize, va: u64) -> u64 {
    let shift = 39 - 9 * level as u32;
    T[level] + ((va >> shift) & 0x1FF) * 8
}

/// Link the chain L0 -> L1 -> L2 -> L3 for `VA` with extra bits on each table descriptor, and
/// put `leaf` (including its type bits and output address) at level 3.
pub fn chain(m: &GuestMemoryMmap<()>, table_bits: [u64; 3], leaf: u64) {
    for l in 0..3 {
        write_u64_le(m, slot(l, VA), T[l + 1] | TABLE | table_bits[l]).unwrap();
    }
    write_u64_le(m, slot(3, VA), leaf).unwrap();
}

/// Read a descriptor back.
pub fn read(m: &GuestMemoryMmap<()>, addr: u64) -> u64 {
    read_u64_le(m, addr).unwrap()
}

/// Stage-1 config for the chain: 4K, TxSZ 16, TTB = L0, 48-bit output, MAIR 0xFF at index 0.
pub const fn s1_cfg() -> Stage1Config {
    let mut c = Stage1Config::new(Granule::K4, 16, T[0], 48);
    c.mair = 0x0000_0000_0000_04FF;
    c
}

/// Stage-2 config for the chain: 4K, T0SZ 16, SL0 2 (level 0), VTTB = L0, 48-bit PA.
pub const fn s2_cfg() -> Stage2Config {
    Stage2Config::new(Granule::K4, 16, 2, T[0], 48)
}
