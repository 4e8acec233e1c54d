//! Shared declaration helpers for hardware-format types (the device crates' `spec` layers).

/// Defines an open enum: a `#[repr(transparent)]` newtype over a raw
/// hardware field with the manual's names as SCREAMING constants, so any bit pattern a guest
/// writes is representable and decode turns it into a closed enum.
///
/// Generates `from_bits`/`into_bits` (for bitfield-struct), `name()` (the manual's mnemonic, if
/// the value has one) and a `Debug`/`Display` that prints the mnemonic or the raw value.
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident($t:ty) {
            $( $(#[$cm:meta])* $c:ident = $v:literal, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        $vis struct $name(pub $t);

        impl $name {
            $( $(#[$cm])* pub const $c: Self = Self($v); )*

            /// The manual's mnemonic for this value, or `None` for an unnamed (reserved) value.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $v => Some(stringify!($c)), )*
                    _ => None,
                }
            }

            /// Build from the raw field value (used by bitfield-struct).
            pub const fn from_bits(v: $t) -> Self {
                Self(v)
            }

            /// The raw field value (used by bitfield-struct).
            pub const fn into_bits(self) -> $t {
                self.0
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

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::open_enum! {
        /// A test field.
        pub struct Mode(u8) {
            /// First.
            OFF = 0,
            /// Second.
            ON = 1,
        }
    }

    /// Named values print their mnemonic, others the type and raw value; bits round-trip.
    #[test]
    fn test_open_enum_names_and_bits() {
        assert_eq!(Mode::ON.name(), Some("ON"));
        assert_eq!(Mode(7).name(), None);
        assert_eq!(format!("{}", Mode::OFF), "OFF");
        assert_eq!(format!("{:?}", Mode(7)), "Mode(0x7)");
        assert_eq!(Mode::from_bits(1), Mode::ON);
        assert_eq!(Mode::ON.into_bits(), 1);
    }
}
