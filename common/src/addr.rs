//! Address-space helpers: translation granules and address-size arithmetic (Arm ARM D8.1).

/// A VMSAv8-64 translation granule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granule {
    /// 4 KiB pages, 512 descriptors per table.
    K4,
    /// 16 KiB pages, 2048 descriptors per table.
    K16,
    /// 64 KiB pages, 8192 descriptors per table.
    K64,
}

impl Granule {
    /// log2 of the page size (12, 14 or 16).
    pub const fn shift(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }

    /// Page size in bytes.
    pub const fn size(self) -> u64 {
        1 << self.shift()
    }

    /// Bits of input address resolved per level (`shift - 3`).
    pub const fn bits_per_level(self) -> u32 {
        self.shift() - 3
    }

    /// log2 of the size of the region a descriptor at `level` maps (level 3 = one page).
    ///
    /// Levels below 3 map `bits_per_level` more bits each. The result is only meaningful for
    /// levels the granule allows (-1..=3 for 4K with FEAT_LPA2, 0..=3 otherwise).
    pub const fn level_shift(self, level: i8) -> u32 {
        let steps = (3 - level) as u32;
        self.shift() + steps * self.bits_per_level()
    }
}

/// Mask with the low `bits` bits set (`bits` up to 64).
pub const fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Decode an Arm physical-address-size field (IPS/PS/OAS encoding 0..=6) into bits.
///
/// Returns `None` for reserved encodings.
pub const fn pa_size_bits(encoding: u8) -> Option<u32> {
    match encoding {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

/// Encode a physical-address size in bits into the Arm IPS/PS/OAS field.
pub const fn pa_size_encoding(bits: u32) -> Option<u8> {
    match bits {
        32 => Some(0),
        36 => Some(1),
        40 => Some(2),
        42 => Some(3),
        44 => Some(4),
        48 => Some(5),
        52 => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Level sizes match the Arm ARM tables: 4K L1 = 1 GiB, 16K L2 = 32 MiB, 64K L2 = 512 MiB.
    #[test]
    fn test_granule_level_shift() {
        assert_eq!(Granule::K4.level_shift(3), 12);
        assert_eq!(Granule::K4.level_shift(2), 21);
        assert_eq!(Granule::K4.level_shift(1), 30);
        assert_eq!(Granule::K4.level_shift(0), 39);
        assert_eq!(Granule::K16.level_shift(2), 25);
        assert_eq!(Granule::K64.level_shift(2), 29);
        assert_eq!(Granule::K64.level_shift(1), 42);
    }

    /// IPS encodings round-trip and reserved values are refused.
    #[test]
    fn test_pa_size_codec() {
        for enc in 0..=6u8 {
            assert_eq!(pa_size_encoding(pa_size_bits(enc).unwrap()), Some(enc));
        }
        assert_eq!(pa_size_bits(7), None);
        assert_eq!(pa_size_encoding(47), None);
        assert_eq!(low_mask(64), u64::MAX);
        assert_eq!(low_mask(12), 0xfff);
    }
}
