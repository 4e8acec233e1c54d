//! The SMMUv3 architecture's data formats, as types only (Arm IHI 0070).
//!
//! This module contains only type definitions and pure accessors, not algorithms: one file per
//! structure the architecture defines. Behaviour (decode into typed configuration, command
//! execution, event production) lives in [`crate::config`], [`crate::cmdq`] and
//! [`crate::event`], which import from here.
//!
//! - [`idr`]: the ID registers IDR0..IDR5, IIDR, AIDR (§6.3.1..§6.3.6).
//! - [`regs`]: the operational registers (CR0.., queues, GERROR, IRQ_CFG).
//! - [`ste`]: the Stream Table Entry (§5.2).
//! - [`cd`]: the Context Descriptor (§5.4).
//! - [`strtab`]: level-1 stream-table and CD-table descriptors (§5.1, §5.3).
//! - [`cmd`]: command-queue entries, both words of every command family typed (§4).
//! - [`evt`]: event-queue records and event numbers (§7.3).
//!
//! Conventions:
//! - Words of in-memory structures (STE, CD, commands, events, L1 descriptors) are
//!   `#[bitfield(u64)]` types whose representation is a little-endian
//!   [`Le64`](zerocopy::little_endian::U64), so a record read from guest memory with zerocopy is
//!   correct on any host. Each word type has `from_raw(u64)` / `raw()` for the architectural value.
//! - Register words (ID registers) are native `#[bitfield(u32)]` values.
//! - Raw multi-bit fields are *open enums* (`open_enum!`): `#[repr(transparent)]` newtypes with
//!   the manual's names as SCREAMING consts, so every bit pattern a guest writes is representable.
//! - Field docs give the absolute bit range as the manual numbers it (bit = 64 * word + bit).

pub mod cd;
pub mod cmd;
pub mod evt;
pub mod idr;
pub mod regs;
pub mod ste;
pub mod strtab;

/// A little-endian 64-bit word as stored in SMMU memory structures.
pub type Le64 = zerocopy::little_endian::U64;

/// Open enums: see [`viommu_common::open_enum`].
pub(crate) use viommu_common::open_enum;

/// Adds `from_raw(u64)` / `raw()` to little-endian bitfield word types.
macro_rules! le_word {
    ($($name:ident),* $(,)?) => {
        $(
            impl $name {
                /// Build from the architectural 64-bit value of the word.
                pub const fn from_raw(v: u64) -> Self {
                    Self::from_bits($crate::spec::Le64::new(v))
                }

                /// The architectural 64-bit value of the word.
                pub const fn raw(self) -> u64 {
                    self.into_bits().get()
                }
            }
        )*
    };
}
pub(crate) use le_word;

/// Adds `from_words([u64; N])` / `words()` to a record whose fields `w0..` are [`le_word!`]
/// words, listed in order with their types. The array pattern in `from_words` makes a count
/// that disagrees with the field list a compile error.
macro_rules! le_record {
    ($rec:ident[$n:literal] { $($w:ident: $ty:ident),* $(,)? }) => {
        impl $rec {
            /// Build from the architectural word values, `w0` first (as loaded one 64-bit
            /// access at a time).
            pub const fn from_words(w: [u64; $n]) -> Self {
                let [$($w),*] = w;
                Self {
                    $($w: $ty::from_raw($w),)*
                }
            }

            /// The architectural word values, `w0` first.
            pub const fn words(&self) -> [u64; $n] {
                [$(self.$w.raw()),*]
            }
        }
    };
}
pub(crate) use le_record;

/// Mask of bits `[hi:lo]` of a u64 (for address fields stored in place).
pub(crate) const fn bits_mask(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & !((1u64 << lo) - 1)
}

open_enum! {
    /// A cacheability code of a table-walk or fetch attribute field (S1CIR/S1COR, IRGNx/ORGNx,
    /// S2IR0/S2OR0): stored only, the model has no caches to honour it.
    pub struct Cacheability(u8) {
        /// Non-cacheable.
        NC = 0,
        /// Write-back, read-allocate, write-allocate.
        WBRA = 1,
        /// Write-through, read-allocate.
        WT = 2,
        /// Write-back, read-allocate, no write-allocate.
        WB = 3,
    }
}

open_enum! {
    /// A shareability code (S1CSH, SHx, S2SH0): stored only.
    pub struct Shareability(u8) {
        /// Non-shareable.
        NSH = 0,
        /// Reserved (STE.SHCFG: use the incoming attribute).
        RSVD = 1,
        /// Outer shareable.
        OSH = 2,
        /// Inner shareable.
        ISH = 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bits_mask` covers exactly the requested inclusive range.
    #[test]
    fn test_bits_mask() {
        assert_eq!(bits_mask(51, 6), 0x000F_FFFF_FFFF_FFC0);
        assert_eq!(bits_mask(51, 12), 0x000F_FFFF_FFFF_F000);
        assert_eq!(bits_mask(63, 0), u64::MAX);
        assert_eq!(bits_mask(0, 0), 1);
    }

    /// Open enums print the manual's name, or the raw value when it has none.
    #[test]
    fn test_open_enum_names() {
        assert_eq!(Cacheability::WBRA.to_string(), "WBRA");
        assert_eq!(Shareability(3).name(), Some("ISH"));
        assert_eq!(format!("{:?}", Cacheability(9)), "Cacheability(0x9)");
    }
}
