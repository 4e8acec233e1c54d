//! The PAMU's architectural formats, as types only (house style §1.1).
//!
//! Nothing here has behaviour beyond pure accessors: [`regs`] holds the per-instance register
//! block (offsets and `#[bitfield]` layouts), [`paace`] the PAACE/SPAACE table entries and the
//! OMT. Everything is big-endian with the manuals' MSB-first bit numbering (bit 0 = MSB), declared
//! with bitfield-struct `order = Msb` so fields read in the same order as the manual's diagrams.
//! Source for every layout: `pamu.md` §2, §3, §6 and §10 (Linux `fsl_pamu.h`).

pub mod paace;
pub mod regs;

/// Declare an open enum: a `#[repr(transparent)]` newtype over a raw field with the manual's
/// names as SCREAMING consts (house style §1.4). Any bit pattern is representable.
macro_rules! open_enum {
    (
        $(#[$m:meta])*
        $name:ident($t:ty) {
            $($(#[$vm:meta])* $v:ident = $val:expr,)*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub $t);

        impl $name {
            $($(#[$vm])* pub const $v: $name = $name($val);)*

            /// Build from the raw field value (bitfield-struct conversion).
            pub const fn from_bits(v: $t) -> Self {
                Self(v)
            }

            /// The raw field value (bitfield-struct conversion).
            pub const fn into_bits(self) -> $t {
                self.0
            }

            /// The manual's name of this value, if it has one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(v if v == $val => Some(stringify!($v)),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }
    };
}
pub(crate) use open_enum;
