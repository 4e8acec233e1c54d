//! Context descriptor (IHI 0070 §5.4), for CD tables the VMM composes itself (per-PASID binding).

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// CD word 0.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct CdW0 {
    /// T0SZ (bits \[5:0\]).
    #[bits(6)]
    pub t0sz: u8,
    /// TG0 (bits \[7:6\]): 0 4K, 1 64K, 2 16K.
    #[bits(2)]
    pub tg0: u8,
    /// IR0 (bits \[9:8\]).
    #[bits(2)]
    pub ir0: u8,
    /// OR0 (bits \[11:10\]).
    #[bits(2)]
    pub or0: u8,
    /// SH0 (bits \[13:12\]).
    #[bits(2)]
    pub sh0: u8,
    /// EPD0 (bit \[14\]).
    pub epd0: bool,
    /// ENDI (bit \[15\]).
    pub endi: bool,
    /// T1SZ (bits \[21:16\]).
    #[bits(6)]
    pub t1sz: u8,
    /// TG1 (bits \[23:22\]).
    #[bits(2)]
    pub tg1: u8,
    /// IR1 (bits \[25:24\]).
    #[bits(2)]
    pub ir1: u8,
    /// OR1 (bits \[27:26\]).
    #[bits(2)]
    pub or1: u8,
    /// SH1 (bits \[29:28\]).
    #[bits(2)]
    pub sh1: u8,
    /// EPD1 (bit \[30\]).
    pub epd1: bool,
    /// V (bit \[31\]).
    pub v: bool,
    /// IPS (bits \[34:32\]).
    #[bits(3)]
    pub ips: u8,
    /// AFFD (bit \[35\]).
    pub affd: bool,
    /// WXN (bit \[36\]).
    pub wxn: bool,
    /// UWXN (bit \[37\]).
    pub uwxn: bool,
    /// TBI0 (bit \[38\]).
    pub tbi0: bool,
    /// TBI1 (bit \[39\]).
    pub tbi1: bool,
    /// PAN (bit \[40\]).
    pub pan: bool,
    /// AA64 (bit \[41\]).
    pub aa64: bool,
    /// HD (bit \[42\]).
    pub hd: bool,
    /// HA (bit \[43\]).
    pub ha: bool,
    /// S (bit \[44\]): stall faults.
    pub s: bool,
    /// R (bit \[45\]): record faults.
    pub r: bool,
    /// A (bit \[46\]): abort terminated transactions.
    pub a: bool,
    /// ASET (bit \[47\]).
    pub aset: bool,
    /// ASID (bits \[63:48\]).
    #[bits(16)]
    pub asid: u16,
}

/// CD word 1 (TTB0) and, with the same layout, word 2 (TTB1).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct CdTtb {
    /// NSCFGx (bit \[0\]).
    pub nscfg: bool,
    /// HADx (bit \[1\]).
    pub had: bool,
    /// Bits \[3:2\]: reserved.
    #[bits(2)]
    pub res0_2: u8,
    /// TTBx (bits \[51:4\]) shifted right by 4 (see [`CdTtb::ttb`]).
    #[bits(48)]
    pub ttb_4: u64,
    /// Bits \[63:52\]: reserved.
    #[bits(12)]
    pub res0_52: u16,
}

impl CdTtb {
    /// The table base address.
    pub const fn ttb(&self) -> u64 {
        self.ttb_4() << 4
    }
    /// Set the table base address (bits \[3:0\] and \[63:52\] dropped).
    pub const fn with_ttb(self, addr: u64) -> Self {
        self.with_ttb_4((addr >> 4) & ((1 << 48) - 1))
    }
}

/// A 64-byte context descriptor.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Cd {
    /// Words 0–7 (0: TCR/ASID, 1: TTB0, 2: TTB1, 3: MAIR, 4–7: AMAIR, IMPDEF, MPAM, reserved).
    pub w: [u64; 8],
}
const _: () = assert!(core::mem::size_of::<Cd>() == 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cd_fields_sit_at_linux_positions() {
        assert_eq!(CdW0::new().with_t0sz(0x3f).into_bits(), 0x3f);
        assert_eq!(CdW0::new().with_tg0(3).into_bits(), 0xc0);
        assert_eq!(CdW0::new().with_ir0(3).into_bits(), 0x300);
        assert_eq!(CdW0::new().with_or0(3).into_bits(), 0xc00);
        assert_eq!(CdW0::new().with_sh0(3).into_bits(), 0x3000);
        assert_eq!(CdW0::new().with_epd0(true).into_bits(), 1 << 14);
        assert_eq!(CdW0::new().with_endi(true).into_bits(), 1 << 15);
        assert_eq!(CdW0::new().with_epd1(true).into_bits(), 1 << 30);
        assert_eq!(CdW0::new().with_v(true).into_bits(), 1 << 31);
        assert_eq!(CdW0::new().with_ips(7).into_bits(), 7 << 32);
        assert_eq!(CdW0::new().with_tbi0(true).into_bits(), 1 << 38);
        assert_eq!(CdW0::new().with_aa64(true).into_bits(), 1 << 41);
        assert_eq!(CdW0::new().with_hd(true).into_bits(), 1 << 42);
        assert_eq!(CdW0::new().with_ha(true).into_bits(), 1 << 43);
        assert_eq!(CdW0::new().with_s(true).into_bits(), 1 << 44);
        assert_eq!(CdW0::new().with_r(true).into_bits(), 1 << 45);
        assert_eq!(CdW0::new().with_a(true).into_bits(), 1 << 46);
        assert_eq!(CdW0::new().with_aset(true).into_bits(), 1 << 47);
        assert_eq!(CdW0::new().with_asid(0xffff).into_bits(), 0xffff << 48);
        assert_eq!(
            CdTtb::new().with_ttb(u64::MAX).into_bits(),
            0x000F_FFFF_FFFF_FFF0
        );
    }
}
