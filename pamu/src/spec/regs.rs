//! The per-instance PAMU register block: offsets and bit layouts (Linux `fsl_pamu.h`).
//!
//! One 4 KiB block per instance at stride 0x1000, 32-bit big-endian registers. Bit numbering in
//! the `///` of each field is the manual's (bit 0 = MSB of the 32-bit word); the LSB-0 mask of
//! Linux `fsl_pamu.h` is given next to it so the two can be checked against each other.

use bitfield_struct::bitfield;

/// Register offsets inside one instance's 4 KiB block (Linux `fsl_pamu.h`).
pub mod offset {
    /// Primary PAACT base, high word.
    pub const PPBAH: u64 = 0x000;
    /// Primary PAACT base, low word.
    pub const PPBAL: u64 = 0x004;
    /// Primary PAACT limit (exclusive), high word.
    pub const PPLAH: u64 = 0x008;
    /// Primary PAACT limit (exclusive), low word.
    pub const PPLAL: u64 = 0x00C;
    /// Secondary PAACT base, high word.
    pub const SPBAH: u64 = 0x010;
    /// Secondary PAACT base, low word.
    pub const SPBAL: u64 = 0x014;
    /// Secondary PAACT limit (exclusive), high word.
    pub const SPLAH: u64 = 0x018;
    /// Secondary PAACT limit (exclusive), low word.
    pub const SPLAL: u64 = 0x01C;
    /// OMT base, high word.
    pub const OBAH: u64 = 0x020;
    /// OMT base, low word.
    pub const OBAL: u64 = 0x024;
    /// OMT limit (exclusive), high word.
    pub const OLAH: u64 = 0x028;
    /// OMT limit (exclusive), low word.
    pub const OLAL: u64 = 0x02C;
    /// Operation error status 1.
    pub const POES1: u64 = 0x040;
    /// Operation error status 2.
    pub const POES2: u64 = 0x044;
    /// Operation error address, high word.
    pub const POEAH: u64 = 0x048;
    /// Operation error address, low word.
    pub const POEAL: u64 = 0x04C;
    /// Access violation status 1.
    pub const AVS1: u64 = 0x050;
    /// Access violation status 2.
    pub const AVS2: u64 = 0x054;
    /// Access violation address, high word.
    pub const AVAH: u64 = 0x058;
    /// Access violation address, low word.
    pub const AVAL: u64 = 0x05C;
    /// ECC control.
    pub const EECTL: u64 = 0x060;
    /// ECC detect disable.
    pub const EEDIS: u64 = 0x064;
    /// ECC interrupt enable.
    pub const EEINTEN: u64 = 0x068;
    /// ECC detected (write 1 to clear).
    pub const EEDET: u64 = 0x06C;
    /// ECC capture attributes.
    pub const EEATTR: u64 = 0x070;
    /// ECC error address, high word.
    pub const EEAHI: u64 = 0x074;
    /// ECC error address, low word.
    pub const EEALO: u64 = 0x078;
    /// ECC error data, high word.
    pub const EEDHI: u64 = 0x07C;
    /// ECC error data, low word.
    pub const EEDLO: u64 = 0x080;
    /// ECC syndrome.
    pub const EECC: u64 = 0x084;
    /// Unknown register dumped by the Linux AV handler.
    pub const UDAD: u64 = 0x090;
    /// Revision 1.
    pub const PR1: u64 = 0xBF8;
    /// Revision 2.
    pub const PR2: u64 = 0xBFC;
    /// Capabilities 1.
    pub const PC1: u64 = 0xC00;
    /// Capabilities 2 (MLIODN).
    pub const PC2: u64 = 0xC04;
    /// Capabilities 3 (MWCE).
    pub const PC3: u64 = 0xC08;
    /// Capabilities 4.
    pub const PC4: u64 = 0xC0C;
    /// Control.
    pub const PC: u64 = 0xC10;
    /// Table-fetch attributes 1.
    pub const PFA1: u64 = 0xC14;
    /// Table-fetch attributes 2.
    pub const PFA2: u64 = 0xC18;
    /// Interrupt control and status.
    pub const PICS: u64 = 0xC1C;
    /// Debug 1.
    pub const PD1: u64 = 0xF00;
    /// Debug 2.
    pub const PD2: u64 = 0xF04;
    /// Debug 3.
    pub const PD3: u64 = 0xF08;
    /// Debug 4.
    pub const PD4: u64 = 0xF0C;
}

/// Size of one instance's register block; instance *i* sits at `i * INSTANCE_STRIDE`.
pub const INSTANCE_STRIDE: u64 = 0x1000;

/// PAMUBYPENR: offset of the PAMU bypass-enable register inside the SoC's GUTS/DCFG block (Linux
/// `fsl_pamu.c` `fsl_pamu_probe()`). PAMU *i* is bypassed while bit `0x8000_0000 >> i` is set.
pub const PAMUBYPENR_OFFSET: u64 = 0x604;

/// Every named register of an instance, decoded from its offset.
///
/// Decoding is pure: [`Reg::decode`] never has side effects, so the device's MMIO path can
/// decode first and apply the effect separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    missing_docs,
    reason = "variants are the manual's register mnemonics (see `offset`)"
)]
pub enum Reg {
    Ppbah,
    Ppbal,
    Pplah,
    Pplal,
    Spbah,
    Spbal,
    Splah,
    Splal,
    Obah,
    Obal,
    Olah,
    Olal,
    Poes1,
    Poes2,
    Poeah,
    Poeal,
    Avs1,
    Avs2,
    Avah,
    Aval,
    Eectl,
    Eedis,
    Eeinten,
    Eedet,
    Eeattr,
    Eeahi,
    Eealo,
    Eedhi,
    Eedlo,
    Eecc,
    Udad,
    Pr1,
    Pr2,
    Pc1,
    Pc2,
    Pc3,
    Pc4,
    Pc,
    Pfa1,
    Pfa2,
    Pics,
    Pd1,
    Pd2,
    Pd3,
    Pd4,
}

impl Reg {
    /// All registers, in offset order.
    pub const ALL: [Reg; 45] = [
        Reg::Ppbah,
        Reg::Ppbal,
        Reg::Pplah,
        Reg::Pplal,
        Reg::Spbah,
        Reg::Spbal,
        Reg::Splah,
        Reg::Splal,
        Reg::Obah,
        Reg::Obal,
        Reg::Olah,
        Reg::Olal,
        Reg::Poes1,
        Reg::Poes2,
        Reg::Poeah,
        Reg::Poeal,
        Reg::Avs1,
        Reg::Avs2,
        Reg::Avah,
        Reg::Aval,
        Reg::Eectl,
        Reg::Eedis,
        Reg::Eeinten,
        Reg::Eedet,
        Reg::Eeattr,
        Reg::Eeahi,
        Reg::Eealo,
        Reg::Eedhi,
        Reg::Eedlo,
        Reg::Eecc,
        Reg::Udad,
        Reg::Pr1,
        Reg::Pr2,
        Reg::Pc1,
        Reg::Pc2,
        Reg::Pc3,
        Reg::Pc4,
        Reg::Pc,
        Reg::Pfa1,
        Reg::Pfa2,
        Reg::Pics,
        Reg::Pd1,
        Reg::Pd2,
        Reg::Pd3,
        Reg::Pd4,
    ];

    /// The register at `off` (an offset inside one instance's block), if any.
    pub fn decode(off: u64) -> Option<Reg> {
        Reg::ALL.iter().copied().find(|r| r.offset() == off)
    }

    /// Offset of the register inside an instance's block.
    pub const fn offset(self) -> u64 {
        use offset::*;
        match self {
            Reg::Ppbah => PPBAH,
            Reg::Ppbal => PPBAL,
            Reg::Pplah => PPLAH,
            Reg::Pplal => PPLAL,
            Reg::Spbah => SPBAH,
            Reg::Spbal => SPBAL,
            Reg::Splah => SPLAH,
            Reg::Splal => SPLAL,
            Reg::Obah => OBAH,
            Reg::Obal => OBAL,
            Reg::Olah => OLAH,
            Reg::Olal => OLAL,
            Reg::Poes1 => POES1,
            Reg::Poes2 => POES2,
            Reg::Poeah => POEAH,
            Reg::Poeal => POEAL,
            Reg::Avs1 => AVS1,
            Reg::Avs2 => AVS2,
            Reg::Avah => AVAH,
            Reg::Aval => AVAL,
            Reg::Eectl => EECTL,
            Reg::Eedis => EEDIS,
            Reg::Eeinten => EEINTEN,
            Reg::Eedet => EEDET,
            Reg::Eeattr => EEATTR,
            Reg::Eeahi => EEAHI,
            Reg::Eealo => EEALO,
            Reg::Eedhi => EEDHI,
            Reg::Eedlo => EEDLO,
            Reg::Eecc => EECC,
            Reg::Udad => UDAD,
            Reg::Pr1 => PR1,
            Reg::Pr2 => PR2,
            Reg::Pc1 => PC1,
            Reg::Pc2 => PC2,
            Reg::Pc3 => PC3,
            Reg::Pc4 => PC4,
            Reg::Pc => PC,
            Reg::Pfa1 => PFA1,
            Reg::Pfa2 => PFA2,
            Reg::Pics => PICS,
            Reg::Pd1 => PD1,
            Reg::Pd2 => PD2,
            Reg::Pd3 => PD3,
            Reg::Pd4 => PD4,
        }
    }

    /// The manual's mnemonic (for logs and snapshots).
    pub const fn name(self) -> &'static str {
        match self {
            Reg::Ppbah => "PPBAH",
            Reg::Ppbal => "PPBAL",
            Reg::Pplah => "PPLAH",
            Reg::Pplal => "PPLAL",
            Reg::Spbah => "SPBAH",
            Reg::Spbal => "SPBAL",
            Reg::Splah => "SPLAH",
            Reg::Splal => "SPLAL",
            Reg::Obah => "OBAH",
            Reg::Obal => "OBAL",
            Reg::Olah => "OLAH",
            Reg::Olal => "OLAL",
            Reg::Poes1 => "POES1",
            Reg::Poes2 => "POES2",
            Reg::Poeah => "POEAH",
            Reg::Poeal => "POEAL",
            Reg::Avs1 => "AVS1",
            Reg::Avs2 => "AVS2",
            Reg::Avah => "AVAH",
            Reg::Aval => "AVAL",
            Reg::Eectl => "EECTL",
            Reg::Eedis => "EEDIS",
            Reg::Eeinten => "EEINTEN",
            Reg::Eedet => "EEDET",
            Reg::Eeattr => "EEATTR",
            Reg::Eeahi => "EEAHI",
            Reg::Eealo => "EEALO",
            Reg::Eedhi => "EEDHI",
            Reg::Eedlo => "EEDLO",
            Reg::Eecc => "EECC",
            Reg::Udad => "UDAD",
            Reg::Pr1 => "PR1",
            Reg::Pr2 => "PR2",
            Reg::Pc1 => "PC1",
            Reg::Pc2 => "PC2",
            Reg::Pc3 => "PC3",
            Reg::Pc4 => "PC4",
            Reg::Pc => "PC",
            Reg::Pfa1 => "PFA1",
            Reg::Pfa2 => "PFA2",
            Reg::Pics => "PICS",
            Reg::Pd1 => "PD1",
            Reg::Pd2 => "PD2",
            Reg::Pd3 => "PD3",
            Reg::Pd4 => "PD4",
        }
    }
}

/// AVS1: access violation status 1 (0x050, Linux `PAMU_AVS1_*`).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Avs1 {
    /// LIODN (bits 0-15; mask 0xFFFF_0000): LIODN of the violating transaction.
    #[bits(16)]
    pub liodn: u16,
    /// Reserved (bit 16).
    #[bits(1)]
    __: u8,
    /// PDV (bit 17; mask 0x4000): PAACE disabled (V = 0).
    pub pdv: bool,
    /// GCV (bit 18; mask 0x2000): gate-closed violation (PC.PGC = 1).
    pub gcv: bool,
    /// LAV (bits 19-21; mask 0x1C00): LIODN violation; 1 = LIODN not in the PPAACT.
    #[bits(3)]
    pub lav: u8,
    /// WAV (bits 22-24; mask 0x0380): window access violation.
    #[bits(3)]
    pub wav: u8,
    /// APV (bits 25-28; mask 0x0078): access permission violation.
    #[bits(4)]
    pub apv: u8,
    /// OTV (bits 29-30; mask 0x0006): operation translation violation.
    #[bits(2)]
    pub otv: u8,
    /// AV (bit 31; mask 0x0001): a violation is captured.
    pub av: bool,
}

impl Avs1 {
    /// The flag bits software clears by writing them back (`PAMU_AV_MASK`, bits 17-31).
    pub const FLAGS_MASK: u32 = 0x7FFF;

    /// `raw` with the reserved bit 16 cleared: the value the register can hold.
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & !0x8000)
    }
}

/// AVS2: access violation status 2 (0x054). Its layout is not public; the model defines only
/// the transaction direction (Policy 1 in the crate documentation).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Avs2 {
    /// Not defined by the model (bits 0-30); read as zero.
    #[bits(31)]
    __: u32,
    /// Direction (bit 31; mask 0x1): 1 for a write, 0 for a read.
    pub write: bool,
}

impl Avs2 {
    /// `raw` with every bit but the direction cleared.
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & 1)
    }
}

/// PC: PAMU control (0xC10, Linux `PAMU_PC_*`).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Pc {
    /// PGC (bit 0; mask 0x8000_0000): gate closed, block all peripheral accesses.
    pub pgc: bool,
    /// PE (bit 1; mask 0x4000_0000): PAMU enable.
    pub pe: bool,
    /// Reserved (bits 2-18).
    #[bits(17)]
    __: u32,
    /// OCE (bit 19; mask 0x1000): OMT cache enable.
    pub oce: bool,
    /// Reserved (bits 20-26).
    #[bits(7)]
    __: u8,
    /// SPCC (bit 27; mask 0x10): secondary PAACE cache enable.
    pub spcc: bool,
    /// Reserved (bits 28-30).
    #[bits(3)]
    __: u8,
    /// PPCC (bit 31; mask 0x1): primary PAACE cache enable.
    pub ppcc: bool,
}

impl Pc {
    /// Bits that exist; every other bit reads as zero.
    pub const WRITABLE: u32 = 0xC000_1011;

    /// The value a write of `raw` leaves: reserved bits read as zero; the cache enables are
    /// stored (and have no effect on the model).
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & Self::WRITABLE)
    }
}

/// PICS: interrupt control and status (0xC1C, Linux `fsl_pamu.h` `PAMU_PICS`).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Pics {
    /// Reserved (bits 0-27).
    #[bits(28)]
    __: u32,
    /// AVICS (bit 28; mask 0x8): access-violation interrupt status, write 1 to clear.
    pub avics: bool,
    /// AVIE (bit 29; mask 0x4): access-violation interrupt enable.
    pub avie: bool,
    /// POEICS (bit 30; mask 0x2): operation-error interrupt status, write 1 to clear.
    pub poeics: bool,
    /// POEIE (bit 31; mask 0x1): operation-error interrupt enable.
    pub poeie: bool,
}

impl Pics {
    /// `raw` with the reserved bits cleared (a restored state; a guest write goes through the
    /// W1C rules instead).
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & 0xF)
    }
}

/// POES1: operation error status 1 (0x040).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Poes1 {
    /// Reserved (bits 0-30).
    #[bits(31)]
    __: u32,
    /// POED (bit 31; mask 0x1): operation error detected, write 1 to clear.
    pub poed: bool,
}

impl Poes1 {
    /// `raw` with the reserved bits cleared.
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & 1)
    }
}

/// PC2: capabilities 2 (0xC04).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Pc2 {
    /// MLIODN (bits 0-15; mask 0xFFFF_0000): maximum LIODN.
    #[bits(16)]
    pub mliodn: u16,
    /// Reserved (bits 16-31).
    #[bits(16)]
    __: u16,
}

/// PC3: capabilities 3 (0xC08).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Pc3 {
    /// Reserved (bits 0-6).
    #[bits(7)]
    __: u8,
    /// MWCE (bits 7-10; mask 0x01E0_0000): maximum subwindows per LIODN = 2^(MWCE+1).
    #[bits(4)]
    pub mwce: u8,
    /// Reserved (bits 11-31).
    #[bits(21)]
    __: u32,
}

/// PR1: revision 1 (0xBF8).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Pr1 {
    /// Reserved (bits 0-15).
    #[bits(16)]
    __: u16,
    /// Version (bits 16-31; mask 0xFFFF).
    #[bits(16)]
    pub version: u16,
}

/// PFA1: table-fetch attributes (0xC14). Stored, no effect on the model.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Pfa1 {
    /// PDID (bits 0-7): destination ID of table fetches.
    pub pdid: u8,
    /// PSNPID (bits 8-15): snoop ID of table fetches.
    pub psnpid: u8,
    /// PFOE (bits 16-23).
    pub pfoe: u8,
    /// PPID (bits 24-31).
    pub ppid: u8,
}

/// EEDIS / EEINTEN / EEDET: the ECC error bits (0x064 / 0x068 / 0x06C).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct EccBits {
    /// Reserved (bits 0-27).
    #[bits(28)]
    __: u32,
    /// MBE (bit 28; mask 0x8): multi-bit error.
    pub mbe: bool,
    /// SBE (bit 29; mask 0x4): single-bit error.
    pub sbe: bool,
    /// Reserved (bits 30-31).
    #[bits(2)]
    __: u8,
}

impl EccBits {
    /// The defined bits.
    pub const MASK: u32 = 0xC;

    /// `raw` with the reserved bits cleared: what a write to EEDIS or EEINTEN stores.
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & Self::MASK)
    }

    /// EEDET after a write of `raw`: the bits written as 1 are cleared (W1C).
    pub const fn write_one_to_clear(self, raw: u32) -> Self {
        Self::from_bits(self.into_bits() & !raw)
    }
}

/// EECTL: ECC control (0x060). Storage only: the model never detects an ECC error.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Eectl {
    /// Threshold (bits 0-15; mask 0xFFFF_0000): errors counted before one is reported.
    #[bits(16)]
    pub threshold: u16,
    /// Reserved (bits 16-23).
    #[bits(8)]
    __: u8,
    /// Count (bits 24-31; mask 0xFF): errors counted so far.
    pub count: u8,
}

impl Eectl {
    /// The defined bits.
    pub const MASK: u32 = 0xFFFF_00FF;

    /// `raw` with the reserved bits cleared: what a write stores.
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & Self::MASK)
    }
}

/// EEATTR: ECC capture attributes (0x070).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Eeattr {
    /// Reserved (bits 0-30).
    #[bits(31)]
    __: u32,
    /// Capture valid (bit 31; mask 0x1); writing 1 re-arms capture.
    pub valid: bool,
}

impl Eeattr {
    /// `raw` with the reserved bits cleared.
    pub const fn sanitise(raw: u32) -> Self {
        Self::from_bits(raw & 1)
    }

    /// EEATTR after a guest write of `raw`: writing 1 to the valid bit clears it (re-arms
    /// capture); other bits are read-only.
    pub const fn write(self, raw: u32) -> Self {
        if Self::from_bits(raw).valid() {
            self.with_valid(false)
        } else {
            self
        }
    }
}

/// PAMUBYPENR: the PAMU bypass-enable register in the GUTS/DCFG block
/// ([`PAMUBYPENR_OFFSET`]); bit *i* (manual numbering, mask `0x8000_0000 >> i`) bypasses
/// PAMU instance *i*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct Pamubypenr(pub u32);

impl Pamubypenr {
    /// The value a write of `raw` leaves on a SoC with `instances` PAMUs: only the bits of
    /// existing instances are writable, the others read as zero.
    pub const fn sanitise(raw: u32, instances: u8) -> Self {
        let mask = if instances >= 32 {
            u32::MAX
        } else {
            !(u32::MAX >> instances)
        };
        Self(raw & mask)
    }

    /// Instance `inst`'s bit (`0x8000_0000 >> inst`; none for instances past 31).
    #[inline]
    pub const fn bit(inst: u8) -> u32 {
        if inst < 32 {
            0x8000_0000 >> inst
        } else {
            0
        }
    }

    /// Whether instance `inst` is bypassed (instances past 31 never are).
    #[inline]
    pub const fn bypasses(self, inst: u8) -> bool {
        self.0 & Self::bit(inst) != 0
    }
}

/// MSIIR: the MPIC 4.2 shared message-signalled interrupt index register (bank offset 0x140).
/// A store of a vector sets bit IBS of MSIR\[SRS\] (Linux `fsl_msi.c`, `fsl_compose_msi_msg`
/// and `fsl_msi_cascade`).
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Msiir {
    /// Ignored (bits 0-23).
    #[bits(24)]
    __: u32,
    /// SRS (bits 24-26; mask 0xE0): shared-register select, MSIR0..MSIR7.
    #[bits(3)]
    pub srs: u8,
    /// IBS (bits 27-31; mask 0x1F): interrupt bit select inside the MSIR.
    #[bits(5)]
    pub ibs: u8,
}

/// MSIIR1: the MPIC 4.3 form of the same register (bank offset 0x148), with 16 MSIRs.
#[bitfield(u32, order = Msb)]
#[derive(PartialEq, Eq)]
pub struct Msiir1 {
    /// Ignored (bits 0-22).
    #[bits(23)]
    __: u32,
    /// IBS (bits 23-27; mask 0x1F0): interrupt bit select inside the MSIR.
    #[bits(5)]
    pub ibs: u8,
    /// SRS (bits 28-31; mask 0xF): shared-register select, MSIR0..MSIR15.
    #[bits(4)]
    pub srs: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AVS1 fields sit at the masks of Linux `fsl_pamu.h` (`PAMU_AVS1_*`, LSB-0 masks).
    #[test]
    fn test_avs1_bit_positions() {
        assert_eq!(Avs1::new().with_av(true).into_bits(), 0x0000_0001);
        assert_eq!(Avs1::new().with_otv(3).into_bits(), 0x0000_0006);
        assert_eq!(Avs1::new().with_apv(0xF).into_bits(), 0x0000_0078);
        assert_eq!(Avs1::new().with_wav(7).into_bits(), 0x0000_0380);
        assert_eq!(Avs1::new().with_lav(7).into_bits(), 0x0000_1C00);
        assert_eq!(Avs1::new().with_lav(1).into_bits(), 0x0000_0400);
        assert_eq!(Avs1::new().with_gcv(true).into_bits(), 0x0000_2000);
        assert_eq!(Avs1::new().with_pdv(true).into_bits(), 0x0000_4000);
        assert_eq!(Avs1::new().with_liodn(0xFFFF).into_bits(), 0xFFFF_0000);
        // TV-4: LIODN 0x500 outside the table.
        let tv4 = Avs1::new().with_liodn(0x500).with_lav(1).with_av(true);
        assert_eq!(tv4.into_bits(), 0x0500_0401);
        assert_eq!(tv4.into_bits() & Avs1::FLAGS_MASK, 0x0401);
    }

    /// The generated offset/width consts agree with the LSB-0 masks of Linux `fsl_pamu.h`.
    #[test]
    fn test_avs1_offsets_and_widths() {
        assert_eq!((Avs1::LIODN_OFFSET, Avs1::LIODN_BITS), (16, 16));
        assert_eq!((Avs1::PDV_OFFSET, Avs1::GCV_OFFSET), (14, 13));
        assert_eq!((Avs1::LAV_OFFSET, Avs1::LAV_BITS), (10, 3));
        assert_eq!((Avs1::WAV_OFFSET, Avs1::WAV_BITS), (7, 3));
        assert_eq!((Avs1::APV_OFFSET, Avs1::APV_BITS), (3, 4));
        assert_eq!((Avs1::OTV_OFFSET, Avs1::OTV_BITS), (1, 2));
        assert_eq!(Avs1::AV_OFFSET, 0);
        assert_eq!((Pc3::MWCE_OFFSET, Pc3::MWCE_BITS), (21, 4));
        assert_eq!((Pc2::MLIODN_OFFSET, Pc2::MLIODN_BITS), (16, 16));
    }

    /// PC, PICS, PC2, PC3 and the ECC bits sit at the masks of Linux `fsl_pamu.h`.
    #[test]
    fn test_control_bit_positions() {
        assert_eq!(Pc::new().with_pgc(true).into_bits(), 0x8000_0000);
        assert_eq!(Pc::new().with_pe(true).into_bits(), 0x4000_0000);
        assert_eq!(Pc::new().with_oce(true).into_bits(), 0x0000_1000);
        assert_eq!(Pc::new().with_spcc(true).into_bits(), 0x0000_0010);
        assert_eq!(Pc::new().with_ppcc(true).into_bits(), 0x0000_0001);
        let linux = Pc::from_bits(0x4000_1011);
        assert!(linux.pe() && linux.oce() && linux.spcc() && linux.ppcc() && !linux.pgc());
        assert_eq!(Pics::new().with_avics(true).into_bits(), 0x8);
        assert_eq!(Pics::new().with_avie(true).into_bits(), 0x4);
        assert_eq!(Pics::new().with_poeics(true).into_bits(), 0x2);
        assert_eq!(Pics::new().with_poeie(true).into_bits(), 0x1);
        assert_eq!(Pc3::new().with_mwce(7).into_bits(), 0x00E0_0000);
        assert_eq!(Pc3::new().with_mwce(3).into_bits(), 0x0060_0000);
        assert_eq!(Pc2::new().with_mliodn(0x4FF).into_bits(), 0x04FF_0000);
        assert_eq!(Poes1::new().with_poed(true).into_bits(), 1);
        assert_eq!(EccBits::new().with_sbe(true).into_bits(), 0x4);
        assert_eq!(EccBits::new().with_mbe(true).into_bits(), 0x8);
        assert_eq!(Pr1::from_bits(0xABCD_1234).version(), 0x1234);
        assert_eq!(Pfa1::from_bits(0x1122_3344).pdid(), 0x11);
    }

    /// The sanitisers keep exactly the defined bits.
    #[test]
    fn test_sanitisers_keep_defined_bits() {
        assert_eq!(Pc::sanitise(u32::MAX).into_bits(), Pc::WRITABLE);
        assert_eq!(Eectl::sanitise(u32::MAX).into_bits(), 0xFFFF_00FF);
        let e = Eectl::sanitise(0x0003_AB07);
        assert_eq!((e.threshold(), e.count()), (3, 7));
        assert_eq!(EccBits::sanitise(u32::MAX).into_bits(), 0xC);
        assert_eq!(
            EccBits::sanitise(0xC).write_one_to_clear(0x4).into_bits(),
            0x8
        );
        assert_eq!(Avs1::sanitise(u32::MAX).into_bits(), 0xFFFF_7FFF);
        assert_eq!(Avs2::sanitise(u32::MAX).into_bits(), 1);
        assert!(Avs2::sanitise(1).write());
        assert_eq!(Poes1::sanitise(u32::MAX).into_bits(), 1);
        assert_eq!(Pics::sanitise(u32::MAX).into_bits(), 0xF);
        assert_eq!(Eeattr::sanitise(u32::MAX).into_bits(), 1);
        let armed = Eeattr::new().with_valid(true);
        assert_eq!(armed.write(0).into_bits(), 1);
        assert_eq!(armed.write(1).into_bits(), 0);
    }

    /// PAMUBYPENR: only existing instances' bits are writable; bit 0x8000_0000 >> i is instance i.
    #[test]
    fn test_pamubypenr() {
        assert_eq!(Pamubypenr::sanitise(u32::MAX, 5).0, 0xF800_0000);
        assert_eq!(Pamubypenr::sanitise(u32::MAX, 0).0, 0);
        assert_eq!(Pamubypenr::sanitise(u32::MAX, 32).0, u32::MAX);
        let b = Pamubypenr::sanitise(0x4000_0001, 6);
        assert!(b.bypasses(1) && !b.bypasses(0) && !b.bypasses(31) && !b.bypasses(200));
        assert_eq!(
            (Pamubypenr::bit(0), Pamubypenr::bit(31), Pamubypenr::bit(32)),
            (0x8000_0000, 1, 0)
        );
    }

    /// MSIIR: SRS = data[7:5], IBS = data[4:0]; MSIIR1: SRS = data[3:0], IBS = data[8:4].
    #[test]
    fn test_msiir_fields() {
        let m = Msiir::from_bits((5 << 5) | 3 | 0xFF00);
        assert_eq!((m.srs(), m.ibs()), (5, 3));
        let m1 = Msiir1::from_bits((0x1F << 4) | 0xE | 0xFE00);
        assert_eq!((m1.srs(), m1.ibs()), (0xE, 0x1F));
    }

    /// Register offsets decode back to the same register and nothing else decodes.
    #[test]
    fn test_reg_decode_offsets() {
        for r in Reg::ALL {
            assert_eq!(Reg::decode(r.offset()), Some(r));
        }
        assert_eq!(Reg::decode(0x0C1C), Some(Reg::Pics));
        assert_eq!(Reg::decode(0x0030), None);
        assert_eq!(Reg::decode(0x0C1E), None);
    }
}
