//! PAACE / SPAACE table entries and the OMT (Linux `fsl_pamu.h`).
//!
//! An entry is 64 bytes = sixteen big-endian 32-bit words. Window translation only uses words
//! 0-7 ([`PaaceWin`]); words 8-15 ([`PaacePage`]) belong to page translation, which the model
//! rejects. Primary (PPAACE) and secondary (SPAACE) entries share the layout except for word 1.

use bitfield_struct::bitfield;
use zerocopy::byteorder::{BigEndian, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::open_enum;

/// Size of one PAACE or SPAACE in bytes.
pub const PAACE_SIZE: u64 = 64;
/// Size of one OMT entry (OME) in bytes.
pub const OME_SIZE: u64 = 128;
/// Number of OMT entries Linux allocates.
pub const OMT_ENTRIES: u64 = 16;
/// Smallest legal WSE/SWSE (4 KiB window).
pub const MIN_WSE: u8 = 11;

open_enum! {
    /// AP: access permissions of a window or subwindow.
    pub struct Ap(u8) {
        /// No access.
        DENIED = 0,
        /// Read only (QUERY).
        QUERY = 1,
        /// Write only (UPDATE).
        UPDATE = 2,
        /// Read and write.
        ALL = 3,
    }
}

open_enum! {
    /// ATM: address translation mode.
    pub struct Atm(u8) {
        /// No translation: the address passes unchanged.
        NONE = 0,
        /// Window translation (TWBA).
        WINDOW = 1,
        /// Page translation (TCTBA/PSE/TCEF).
        PAGE = 2,
        /// Window and page translation.
        WINDOW_PAGE = 3,
    }
}

open_enum! {
    /// OTM: operation translation mode.
    pub struct Otm(u8) {
        /// Operations pass unchanged.
        NONE = 0,
        /// Immediate: IOEA -> MOEA, IOEB -> MOEB.
        IMMEDIATE = 1,
        /// Indexed through `OMT[OMI]`.
        INDEXED = 2,
        /// Reserved.
        RESERVED = 3,
    }
}

/// PPAACE word 1 (offset 0x04): window base low, size, flags.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct PaaceW1 {
    /// WBAL (bits 0-19; mask 0xFFFF_F000): window base address [31:12].
    #[bits(20)]
    pub wbal: u32,
    /// WSE (bits 20-25; mask 0x0FC0): window size = 2^(WSE+1).
    #[bits(6)]
    pub wse: u8,
    /// MW (bit 26; mask 0x20): multiple (sub)windows in use.
    pub mw: bool,
    /// AP (bits 27-28; mask 0x18): access permissions.
    #[bits(2)]
    pub ap: Ap,
    /// DD (bit 29; mask 0x4): destination domain, 0 = to host, 1 = to I/O.
    pub dd: bool,
    /// PT (bit 30; mask 0x2): 0 = primary entry.
    pub pt: bool,
    /// V (bit 31; mask 0x1): valid.
    pub v: bool,
}

/// SPAACE word 1 (offset 0x04): owner LIODN and flags.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct SpaaceW1 {
    /// LIODN (bits 0-15; mask 0xFFFF_0000): owning LIODN (written by Linux).
    #[bits(16)]
    pub liodn: u16,
    /// Reserved (bits 16-26).
    #[bits(11)]
    __: u16,
    /// AP (bits 27-28; mask 0x18): access permissions.
    #[bits(2)]
    pub ap: Ap,
    /// DD (bit 29; mask 0x4): destination domain.
    pub dd: bool,
    /// PT (bit 30; mask 0x2): 1 = secondary entry.
    pub pt: bool,
    /// V (bit 31; mask 0x1): valid.
    pub v: bool,
}

/// Word 2 (offset 0x08): domain attributes (to-host layout; with DD = 1 only DID is defined).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct PaaceW2 {
    /// DID (bits 0-7; mask 0xFF00_0000): destination ID.
    pub did: u8,
    /// PID (bits 8-15; mask 0x00FF_0000): partition ID.
    pub pid: u8,
    /// SNPID (bits 16-23; mask 0xFF00): snoop ID.
    pub snpid: u8,
    /// CR (bit 24; mask 0x80): coherency required.
    pub cr: bool,
    /// Reserved (bits 25-31).
    #[bits(7)]
    __: u8,
}

/// Word 3 (offset 0x0C): implementation attributes and modes.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct PaaceW3 {
    /// Implementation-specific (bits 0-7).
    pub impl_a: u8,
    /// CID (bits 8-15; mask 0x00FF_0000): cache / stash target ID.
    pub cid: u8,
    /// Implementation-specific (bits 16-23).
    pub impl_b: u8,
    /// WCE (bits 24-27; mask 0xF0): subwindow count = 2^(WCE+1) (primary only).
    #[bits(4)]
    pub wce: u8,
    /// ATM (bits 28-29; mask 0xC): address translation mode.
    #[bits(2)]
    pub atm: Atm,
    /// OTM (bits 30-31; mask 0x3): operation translation mode.
    #[bits(2)]
    pub otm: Otm,
}

/// Word 5 (offset 0x14): translated base low and the (sub)window mapped size.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct PaaceW5 {
    /// TWBAL (bits 0-19; mask 0xFFFF_F000): translated window base [31:12].
    #[bits(20)]
    pub twbal: u32,
    /// SWSE (bits 20-25; mask 0x0FC0): mapped size = 2^(SWSE+1).
    #[bits(6)]
    pub swse: u8,
    /// Reserved (bits 26-31).
    #[bits(6)]
    __: u8,
}

/// Word 7 (offset 0x1C) with OTM = 1 (immediate operation mapping).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct PaaceW7Imm {
    /// IOEA (bits 0-7): inbound operation A.
    pub ioea: u8,
    /// MOEA (bits 8-15): mapped operation for IOEA.
    pub moea: u8,
    /// IOEB (bits 16-23): inbound operation B.
    pub ioeb: u8,
    /// MOEB (bits 24-31): mapped operation for IOEB.
    pub moeb: u8,
}

/// Word 7 (offset 0x1C) with OTM = 2 (indexed operation mapping).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct PaaceW7Idx {
    /// Reserved (bits 0-15).
    #[bits(16)]
    __: u16,
    /// OMI (bits 16-31; mask 0xFFFF): OMT index.
    pub omi: u16,
}

/// The window-mode half of a PAACE or SPAACE: words 0-7 (offsets 0x00-0x1F), big-endian.
#[derive(
    FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[repr(C)]
pub struct PaaceWin {
    /// Word 0: WBAH (primary: window base `[63:32]`; secondary: reserved).
    pub w0: U32<BigEndian>,
    /// Word 1: [`PaaceW1`] or [`SpaaceW1`].
    pub w1: U32<BigEndian>,
    /// Word 2: [`PaaceW2`].
    pub w2: U32<BigEndian>,
    /// Word 3: [`PaaceW3`].
    pub w3: U32<BigEndian>,
    /// Word 4: TWBAH, translated base `[63:32]`.
    pub w4: U32<BigEndian>,
    /// Word 5: [`PaaceW5`].
    pub w5: U32<BigEndian>,
    /// Word 6: FSPI, first secondary PAACE index (primary only).
    pub w6: U32<BigEndian>,
    /// Word 7: [`PaaceW7Imm`] or [`PaaceW7Idx`] depending on OTM.
    pub w7: U32<BigEndian>,
}

/// The page-translation half of an entry: words 8-15 (never used by Linux; kept for layout).
#[derive(
    FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[repr(C)]
pub struct PaacePage {
    /// Words 8-9: SBAH/SBAL+SSE; 10-11: TCTBAH/TCTBAL+PSE+TCEF; 12-15 reserved.
    pub words: [U32<BigEndian>; 8],
}

/// A whole 64-byte PAACE / SPAACE.
#[derive(
    FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[repr(C)]
pub struct Paace {
    /// Words 0-7.
    pub win: PaaceWin,
    /// Words 8-15.
    pub page: PaacePage,
}

const _: () = assert!(core::mem::size_of::<PaaceWin>() == 32);
const _: () = assert!(core::mem::size_of::<Paace>() as u64 == PAACE_SIZE);

impl PaaceWin {
    /// Build from the eight words as the manual lists them (word 0 first).
    #[inline]
    pub fn from_words(w: [u32; 8]) -> Self {
        Self {
            w0: w[0].into(),
            w1: w[1].into(),
            w2: w[2].into(),
            w3: w[3].into(),
            w4: w[4].into(),
            w5: w[5].into(),
            w6: w[6].into(),
            w7: w[7].into(),
        }
    }

    /// The eight words, word 0 first.
    pub fn words(&self) -> [u32; 8] {
        [
            self.w0.get(),
            self.w1.get(),
            self.w2.get(),
            self.w3.get(),
            self.w4.get(),
            self.w5.get(),
            self.w6.get(),
            self.w7.get(),
        ]
    }

    /// Word 1 read as a primary entry.
    pub fn pw1(&self) -> PaaceW1 {
        PaaceW1::from_bits(self.w1.get())
    }

    /// Word 1 read as a secondary entry.
    pub fn sw1(&self) -> SpaaceW1 {
        SpaaceW1::from_bits(self.w1.get())
    }

    /// Word 2.
    pub fn w2(&self) -> PaaceW2 {
        PaaceW2::from_bits(self.w2.get())
    }

    /// Word 3.
    pub fn w3(&self) -> PaaceW3 {
        PaaceW3::from_bits(self.w3.get())
    }

    /// Word 5.
    pub fn w5(&self) -> PaaceW5 {
        PaaceW5::from_bits(self.w5.get())
    }

    /// Word 7 as immediate operation mapping (OTM = 1).
    pub fn w7_imm(&self) -> PaaceW7Imm {
        PaaceW7Imm::from_bits(self.w7.get())
    }

    /// Word 7 as indexed operation mapping (OTM = 2).
    pub fn w7_idx(&self) -> PaaceW7Idx {
        PaaceW7Idx::from_bits(self.w7.get())
    }

    /// PT (bit 30 of word 1; the same position in both layouts).
    pub fn pt(&self) -> bool {
        self.pw1().pt()
    }

    /// V (bit 31 of word 1; the same position in both layouts).
    pub fn v(&self) -> bool {
        self.pw1().v()
    }

    /// WBA = (WBAH << 32) | (WBAL << 12): the primary's window base.
    pub fn wba(&self) -> u64 {
        (u64::from(self.w0.get()) << 32) | (u64::from(self.pw1().wbal()) << 12)
    }

    /// TWBA = (TWBAH << 32) | (TWBAL << 12): the translated base.
    pub fn twba(&self) -> u64 {
        (u64::from(self.w4.get()) << 32) | (u64::from(self.w5().twbal()) << 12)
    }

    /// FSPI (word 6): first secondary PAACE index.
    pub fn fspi(&self) -> u32 {
        self.w6.get()
    }

    /// Set WBA (the low 12 bits of `wba` are dropped, as the format has no room for them).
    pub fn set_wba(&mut self, wba: u64) {
        self.w0 = ((wba >> 32) as u32).into();
        let w1 = self.pw1().with_wbal(((wba >> 12) & 0xF_FFFF) as u32);
        self.w1 = w1.into_bits().into();
    }

    /// Set TWBA (the low 12 bits of `twba` are dropped).
    pub fn set_twba(&mut self, twba: u64) {
        self.w4 = ((twba >> 32) as u32).into();
        let w5 = self.w5().with_twbal(((twba >> 12) & 0xF_FFFF) as u32);
        self.w5 = w5.into_bits().into();
    }

    /// Replace word 1 with a primary layout value.
    pub fn set_pw1(&mut self, w: PaaceW1) {
        self.w1 = w.into_bits().into();
    }

    /// Replace word 1 with a secondary layout value.
    pub fn set_sw1(&mut self, w: SpaaceW1) {
        self.w1 = w.into_bits().into();
    }

    /// Replace word 2.
    pub fn set_w2(&mut self, w: PaaceW2) {
        self.w2 = w.into_bits().into();
    }

    /// Replace word 3.
    pub fn set_w3(&mut self, w: PaaceW3) {
        self.w3 = w.into_bits().into();
    }

    /// Replace word 5.
    pub fn set_w5(&mut self, w: PaaceW5) {
        self.w5 = w.into_bits().into();
    }
}

/// One MOE byte of an OMT entry: bit 7 (manual bit 0) = valid, bits 6:0 = CoreNet operation.
#[bitfield(u8, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Moe {
    /// Valid (bit 0; mask 0x80, `EOE_VALID`).
    pub valid: bool,
    /// The outbound ("external") CoreNet operation (bits 1-7; mask 0x7F).
    #[bits(7)]
    pub op: u8,
}

/// Inbound I/O operation indexes into an OME (`IOE_*_IDX`, Linux `fsl_pamu.h`).
pub mod ioe {
    /// Read.
    pub const READ: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Enhanced read 0.
    pub const EREAD0: u8 = 0x02;
    /// Enhanced write 0.
    pub const EWRITE0: u8 = 0x03;
    /// Direct 0.
    pub const DIRECT0: u8 = 0x04;
    /// Enhanced read 1.
    pub const EREAD1: u8 = 0x05;
    /// Enhanced write 1.
    pub const EWRITE1: u8 = 0x06;
    /// Direct 1.
    pub const DIRECT1: u8 = 0x07;
}

/// Outbound CoreNet operation codes (`EOE_*`, Linux `fsl_pamu.h`).
pub mod eoe {
    /// Read.
    pub const READ: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Load-decrement.
    pub const LDEC: u8 = 0x10;
    /// Load-decrement with stash.
    pub const LDECPE: u8 = 0x12;
    /// Read with stash allocate.
    pub const RSA: u8 = 0x16;
    /// Read with intent to cache.
    pub const READI: u8 = 0x18;
    /// Write with stash allocate.
    pub const WWSA: u8 = 0x1B;
    /// Write with stash allocate, ordered.
    pub const WWSAO: u8 = 0x1D;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word-1 fields sit at the masks of `fsl_pamu.h`, checked against TV-1's `800006D9`.
    #[test]
    fn test_paace_w1_bit_positions() {
        let w = PaaceW1::from_bits(0x8000_06D9);
        assert_eq!(w.wbal(), 0x80000);
        assert_eq!(w.wse(), 0x1B);
        assert!(!w.mw());
        assert_eq!(w.ap(), Ap::ALL);
        assert!(!w.dd() && !w.pt() && w.v());
        assert_eq!(PaaceW1::new().with_mw(true).into_bits(), 0x20);
        assert_eq!(PaaceW1::new().with_dd(true).into_bits(), 0x4);
        assert_eq!(PaaceW1::new().with_pt(true).into_bits(), 0x2);
        assert_eq!(PaaceW1::new().with_ap(Ap::QUERY).into_bits(), 0x8);
        assert_eq!(PaaceW1::new().with_wse(0x3F).into_bits(), 0x0FC0);
        assert_eq!(PaaceW1::new().with_wbal(0xF_FFFF).into_bits(), 0xFFFF_F000);
        let s = SpaaceW1::from_bits(0x0021_0013);
        assert_eq!(s.liodn(), 0x21);
        assert_eq!(s.ap(), Ap::UPDATE);
        assert!(s.pt() && s.v());
    }

    /// The generated offset/width consts agree with the LSB-0 masks of Linux `fsl_pamu.h`.
    #[test]
    fn test_paace_offsets_and_widths() {
        assert_eq!((PaaceW1::WBAL_OFFSET, PaaceW1::WBAL_BITS), (12, 20));
        assert_eq!((PaaceW1::WSE_OFFSET, PaaceW1::WSE_BITS), (6, 6));
        assert_eq!(
            (PaaceW1::MW_OFFSET, PaaceW1::AP_OFFSET, PaaceW1::DD_OFFSET),
            (5, 3, 2)
        );
        assert_eq!((PaaceW1::PT_OFFSET, PaaceW1::V_OFFSET), (1, 0));
        assert_eq!((SpaaceW1::LIODN_OFFSET, SpaaceW1::LIODN_BITS), (16, 16));
        assert_eq!(
            (
                PaaceW2::DID_OFFSET,
                PaaceW2::SNPID_OFFSET,
                PaaceW2::CR_OFFSET
            ),
            (24, 8, 7)
        );
        assert_eq!(
            (PaaceW3::CID_OFFSET, PaaceW3::WCE_OFFSET, PaaceW3::WCE_BITS),
            (16, 4, 4)
        );
        assert_eq!((PaaceW3::ATM_OFFSET, PaaceW3::OTM_OFFSET), (2, 0));
        assert_eq!((PaaceW5::TWBAL_OFFSET, PaaceW5::SWSE_OFFSET), (12, 6));
        assert_eq!((PaaceW7Idx::OMI_OFFSET, PaaceW7Idx::OMI_BITS), (0, 16));
    }

    /// Words 2, 3, 5, 7 sit at the masks of `fsl_pamu.h`.
    #[test]
    fn test_paace_other_words_bit_positions() {
        assert_eq!(PaaceW2::new().with_cr(true).into_bits(), 0x80);
        assert_eq!(PaaceW2::new().with_did(0xFF).into_bits(), 0xFF00_0000);
        assert_eq!(PaaceW2::new().with_pid(0xFF).into_bits(), 0x00FF_0000);
        assert_eq!(PaaceW2::new().with_snpid(0xFF).into_bits(), 0x0000_FF00);
        let w3 = PaaceW3::from_bits(0x0000_0024);
        assert_eq!(w3.wce(), 2);
        assert_eq!(w3.atm(), Atm::WINDOW);
        assert_eq!(w3.otm(), Otm::NONE);
        assert_eq!(PaaceW3::new().with_cid(0xFF).into_bits(), 0x00FF_0000);
        assert_eq!(PaaceW3::new().with_otm(Otm::INDEXED).into_bits(), 0x2);
        let w5 = PaaceW5::from_bits(0xFE04_42C0);
        assert_eq!(w5.twbal(), 0xFE044);
        assert_eq!(w5.swse(), 0xB);
        let imm = PaaceW7Imm::from_bits(0x1122_3344);
        assert_eq!(
            (imm.ioea(), imm.moea(), imm.ioeb(), imm.moeb()),
            (0x11, 0x22, 0x33, 0x44)
        );
        assert_eq!(PaaceW7Idx::from_bits(0xFFFF_0005).omi(), 5);
        assert_eq!(Moe::from_bits(0x96).op(), 0x16);
        assert!(Moe::from_bits(0x96).valid());
        assert!(!Moe::from_bits(0x16).valid());
    }

    /// WBA and TWBA combine the high word with bits [31:12] of the low word (TV-2 w7).
    #[test]
    fn test_wba_twba_accessors() {
        let e = PaaceWin::from_words([0, 0x0021_0013, 0x80, 0x4, 0xF, 0xFE04_42C0, 0, 0]);
        assert_eq!(e.twba(), 0xF_FE04_4000);
        let p = PaaceWin::from_words([0x1, 0x8000_06D9, 0x80, 0x4, 0x1, 0x2000_0000, 0, 0]);
        assert_eq!(p.wba(), 0x1_8000_0000);
        assert_eq!(p.twba(), 0x1_2000_0000);
        let mut q = PaaceWin::default();
        q.set_wba(0x1_8000_0FFF);
        q.set_twba(0x1_2000_0000);
        assert_eq!(q.words()[..2], [0x1, 0x8000_0000]);
        assert_eq!(q.words()[4..6], [0x1, 0x2000_0000]);
        assert_eq!(core::mem::offset_of!(PaaceWin, w6), 0x18);
        assert_eq!(core::mem::offset_of!(Paace, page), 0x20);
    }

    /// Open enums name known values and keep unknown ones.
    #[test]
    fn test_open_enum_names() {
        assert_eq!(format!("{:?}", Atm::PAGE), "PAGE");
        assert_eq!(Otm(3).name(), Some("RESERVED"));
        assert_eq!(format!("{:?}", Ap(7)), "Ap(0x7)");
    }
}
