//! PAMU faults: access violations (AVS1/AVS2/AVA) and operation errors (POES1/POES2/POEA), and the
//! per-instance status registers that capture them (Linux `fsl_pamu.h` AVS1/POES1,
//! `pamu_av_isr()`).
//!
//! Translation returns a typed [`PamuFault`]; [`StatusRegs::capture`] is the one place that turns
//! it into register values. The host-side cause (which rule failed, which
//! entry) is kept in the typed value even where the guest-visible register cannot show it.

use viommu_common::fault::{FaultId, PamuFaultId};
use viommu_common::traits::FaultKind;

use crate::spec::regs::{Avs1, EccBits, Eeattr, Pics, Poes1};

/// Why a window access violation (AVS1.WAV) was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowCause {
    /// The address is outside the primary window [WBA, WBA + 2^(WSE+1)).
    OutsideWindow,
    /// The subwindow's SPAACE has V = 0.
    SubwindowInvalid {
        /// Subwindow index.
        subwindow: u32,
    },
    /// The access runs past the (sub)window's mapped size 2^(SWSE+1) (or crosses into the next
    /// subwindow: policy 7 in the crate docs, crossing a boundary faults).
    PastMapped {
        /// Subwindow index (0 for single-window entries).
        subwindow: u32,
    },
}

/// An access violation (Linux `fsl_pamu.h` `PAMU_AVS1_*`): captured in AVS1/AVS2/AVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// PC.PGC = 1: the gate is closed (AVS1.GCV).
    GateClosed,
    /// The LIODN's PPAACE lies at or beyond PPLA, or the LIODN exceeds PC2.MLIODN
    /// (AVS1.LAV = 1, "LIODN not in PPAACT").
    LiodnNotInTable,
    /// The PPAACE has V = 0 (AVS1.PDV; policy 1).
    Disabled,
    /// Window access violation (AVS1.WAV = 1).
    Window(WindowCause),
    /// The (sub)window's AP does not allow the access (AVS1.APV = 1).
    Permission,
    /// OTM = 2 and the OMT entry's MOE for this operation is not valid (AVS1.OTV = 1).
    OperationTranslation,
}

/// A malformed table: an operation error (policy 12 in the crate docs), captured in
/// POES1/POES2/POEA.
///
/// Policies 4, 6, 12: every malformed-table case below is an operation error, never a
/// crash and never an access violation. POEA holds the address of the entry being processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpError {
    /// The entry (PAACE, SPAACE or OME) at `addr` is not in guest RAM.
    Fetch {
        /// Address of the entry.
        addr: u64,
    },
    /// A PPAACE has PT = 1 (Policy: a primary must say it is one).
    PrimaryPt {
        /// Address of the entry.
        entry: u64,
    },
    /// WSE < 11 (window smaller than 4 KiB).
    WindowSize {
        /// Address of the entry.
        entry: u64,
        /// The WSE found.
        wse: u8,
    },
    /// MW = 1 with WCE above PC3.MWCE, or subwindows smaller than 4 KiB.
    SubwindowCount {
        /// Address of the entry.
        entry: u64,
        /// The WCE found.
        wce: u8,
    },
    /// SWSE < 11 in the (sub)window's entry.
    MappedSize {
        /// Address of the entry.
        entry: u64,
        /// The SWSE found.
        swse: u8,
    },
    /// FSPI + i − 1 puts the SPAACE at or beyond SPLA (POEA = the primary's address).
    SpaaceLimit {
        /// Address of the primary entry.
        entry: u64,
        /// The SPAACT index computed.
        index: u64,
    },
    /// A valid SPAACE whose PT is 0 or whose LIODN field names another LIODN (policy 4).
    SpaaceOwner {
        /// Address of the SPAACE.
        entry: u64,
        /// The LIODN field found.
        liodn: u16,
        /// The PT bit found.
        pt: bool,
    },
    /// ATM = 2 or 3: page translation is not implemented (policy 6).
    PageTranslation {
        /// Address of the entry.
        entry: u64,
        /// The ATM found.
        atm: u8,
    },
    /// OTM = 3 (reserved).
    OtmReserved {
        /// Address of the entry.
        entry: u64,
    },
    /// OTM = 2 with OMI at or beyond the OMT limit.
    OmiLimit {
        /// Address of the entry.
        entry: u64,
        /// The OMI found.
        omi: u16,
    },
}

impl OpError {
    /// POEAH:POEAL: the entry being processed.
    pub fn poea(&self) -> u64 {
        match *self {
            OpError::Fetch { addr } => addr,
            OpError::PrimaryPt { entry }
            | OpError::WindowSize { entry, .. }
            | OpError::SubwindowCount { entry, .. }
            | OpError::MappedSize { entry, .. }
            | OpError::SpaaceLimit { entry, .. }
            | OpError::SpaaceOwner { entry, .. }
            | OpError::PageTranslation { entry, .. }
            | OpError::OtmReserved { entry }
            | OpError::OmiLimit { entry, .. } => entry,
        }
    }

    /// POES2. Policy (layout unknown; Linux only dumps it): our own cause code, 1-based in
    /// declaration order.
    pub fn poes2(&self) -> u32 {
        match self {
            OpError::Fetch { .. } => 1,
            OpError::PrimaryPt { .. } => 2,
            OpError::WindowSize { .. } => 3,
            OpError::SubwindowCount { .. } => 4,
            OpError::MappedSize { .. } => 5,
            OpError::SpaaceLimit { .. } => 6,
            OpError::SpaaceOwner { .. } => 7,
            OpError::PageTranslation { .. } => 8,
            OpError::OtmReserved { .. } => 9,
            OpError::OmiLimit { .. } => 10,
        }
    }
}

/// Why a PAMU refused a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PamuFault {
    /// An access violation.
    Violation(Violation),
    /// A malformed table.
    Operation(OpError),
}

impl PamuFault {
    /// The identity a [`DmaFault`](viommu_common::DmaFault) reports (`DmaFault::event`), named
    /// `AV_GATE` (GCV), `AV_LIODN` (LAV), `AV_DISABLED` (PDV), `AV_WINDOW` (WAV),
    /// `AV_PERMISSION` (APV), `AV_OPERATION` (OTV) or `OPERATION_ERROR` (POES1.POED).
    pub fn event(&self) -> FaultId {
        FaultId::Pamu(match self {
            PamuFault::Violation(Violation::GateClosed) => PamuFaultId::AvGate,
            PamuFault::Violation(Violation::LiodnNotInTable) => PamuFaultId::AvLiodn,
            PamuFault::Violation(Violation::Disabled) => PamuFaultId::AvDisabled,
            PamuFault::Violation(Violation::Window(_)) => PamuFaultId::AvWindow,
            PamuFault::Violation(Violation::Permission) => PamuFaultId::AvPermission,
            PamuFault::Violation(Violation::OperationTranslation) => PamuFaultId::AvOperation,
            PamuFault::Operation(_) => PamuFaultId::OperationError,
        })
    }

    /// The architecture-neutral class.
    pub fn kind(&self) -> FaultKind {
        match self {
            PamuFault::Violation(Violation::Window(_) | Violation::Disabled) => {
                FaultKind::Translation
            }
            PamuFault::Violation(Violation::Permission | Violation::OperationTranslation) => {
                FaultKind::Permission
            }
            PamuFault::Violation(Violation::GateClosed | Violation::LiodnNotInTable) => {
                FaultKind::Configuration
            }
            PamuFault::Operation(OpError::Fetch { .. }) => FaultKind::ExternalAbort,
            PamuFault::Operation(_) => FaultKind::Configuration,
        }
    }
}

impl Violation {
    /// The AVS1 cause bits (without LIODN and AV). Policy 1: every multi-bit field
    /// holds 1 whatever the sub-cause; V = 0 sets PDV.
    pub fn avs1_cause(&self) -> Avs1 {
        let a = Avs1::new();
        match self {
            Violation::GateClosed => a.with_gcv(true),
            Violation::LiodnNotInTable => a.with_lav(1),
            Violation::Disabled => a.with_pdv(true),
            Violation::Window(_) => a.with_wav(1),
            Violation::Permission => a.with_apv(1),
            Violation::OperationTranslation => a.with_otv(1),
        }
    }
}

/// The fault-status, interrupt and ECC registers of one instance.
///
/// All W1C semantics live here; the device serialises access with one mutex
/// (see `device.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusRegs {
    /// AVS1.
    pub avs1: Avs1,
    /// AVS2. Policy 1: bit 0 = 1 for a write, 0 for a read; other bits 0.
    pub avs2: u32,
    /// AVAH:AVAL: the device's I/O address before translation.
    pub ava: u64,
    /// POES1.
    pub poes1: Poes1,
    /// POES2 ([`OpError::poes2`]).
    pub poes2: u32,
    /// POEAH:POEAL.
    pub poea: u64,
    /// PICS.
    pub pics: Pics,
    /// EECTL (storage, defined bits only).
    pub eectl: crate::spec::regs::Eectl,
    /// EEDIS (storage, defined bits only).
    pub eedis: EccBits,
    /// EEINTEN (defined bits only).
    pub eeinten: EccBits,
    /// EEDET (W1C; the model never detects ECC errors).
    pub eedet: EccBits,
    /// EEATTR (capture valid; W1C re-arms).
    pub eeattr: Eeattr,
}

/// What [`StatusRegs::capture`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// The fault was latched into the status registers.
    Latched,
    /// A previous fault of the same class is pending; this one was only dropped
    /// (policy 8: keep the first).
    Dropped,
}

impl StatusRegs {
    /// Latch `fault` for LIODN `liodn` at input address `addr`.
    ///
    /// Access violations: if AVS1.AV = 0, AVS1 = LIODN | cause | AV, AVS2 = direction, AVA =
    /// `addr`, PICS.AVICS = 1. Operation errors: if POES1.POED = 0, POED = 1, POES2 = cause code,
    /// POEA = entry, PICS.POEICS = 1. Otherwise nothing changes (first-fault capture).
    pub fn capture(&mut self, fault: &PamuFault, liodn: u16, addr: u64, write: bool) -> Capture {
        match fault {
            PamuFault::Violation(v) => {
                if self.avs1.av() {
                    return Capture::Dropped;
                }
                self.avs1 = v.avs1_cause().with_liodn(liodn).with_av(true);
                self.avs2 = u32::from(write);
                self.ava = addr;
                self.pics.set_avics(true);
            }
            PamuFault::Operation(e) => {
                if self.poes1.poed() {
                    return Capture::Dropped;
                }
                self.poes1.set_poed(true);
                self.poes2 = e.poes2();
                self.poea = e.poea();
                self.pics.set_poeics(true);
            }
        }
        Capture::Latched
    }

    /// A guest store to AVS1: the flag bits written as 1 are cleared (W1C); the LIODN field is
    /// kept until the next capture.
    pub fn write_avs1(&mut self, v: u32) {
        let keep = self.avs1.into_bits() & !(v & Avs1::FLAGS_MASK);
        self.avs1 = Avs1::from_bits(keep);
    }

    /// A guest store to POES1: POED is W1C.
    pub fn write_poes1(&mut self, v: u32) {
        if Poes1::from_bits(v).poed() {
            self.poes1.set_poed(false);
        }
    }

    /// A guest store to PICS: AVICS and POEICS are W1C, AVIE and POEIE are plain.
    /// Policy 15: no errata emulation (no double-write, no set-on-1).
    pub fn write_pics(&mut self, v: u32) {
        let w = Pics::from_bits(v);
        let mut p = self.pics;
        p.set_avie(w.avie());
        p.set_poeie(w.poeie());
        if w.avics() {
            p.set_avics(false);
        }
        if w.poeics() {
            p.set_poeics(false);
        }
        self.pics = p;
    }

    /// Level of this instance's contribution to the access-violation line.
    pub fn av_level(&self) -> bool {
        self.pics.avics() && self.pics.avie()
    }

    /// Level of this instance's contribution to the operation-error / ECC line.
    pub fn err_level(&self) -> bool {
        (self.pics.poeics() && self.pics.poeie())
            || (self.eedet.into_bits() & self.eeinten.into_bits() & EccBits::MASK) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TV-4: LIODN 0x500 outside the table latches AVS1 = 0x0500_0401; the Linux ISR's write
    /// of AVS1 & 0x7FFF clears the flags and leaves the LIODN.
    #[test]
    fn test_capture_tv4_avs1_value() {
        let mut s = StatusRegs::default();
        let f = PamuFault::Violation(Violation::LiodnNotInTable);
        assert_eq!(s.capture(&f, 0x500, 0x1000, false), Capture::Latched);
        assert_eq!(s.avs1.into_bits(), 0x0500_0401);
        assert_eq!(s.pics.into_bits(), 0x8);
        s.write_avs1(0x0500_0401 & 0x7FFF);
        assert_eq!(s.avs1.into_bits(), 0x0500_0000);
    }

    /// A second violation while AV = 1 is dropped and the first one's fields stay.
    #[test]
    fn test_capture_keeps_first_violation() {
        let mut s = StatusRegs::default();
        let w = PamuFault::Violation(Violation::Window(WindowCause::OutsideWindow));
        let p = PamuFault::Violation(Violation::Permission);
        s.capture(&w, 7, 0x9000_0000, true);
        assert_eq!(s.capture(&p, 8, 0x1234, false), Capture::Dropped);
        assert_eq!(s.avs1.into_bits(), 0x0007_0081);
        assert_eq!(s.ava, 0x9000_0000);
        assert_eq!(s.avs2, 1);
    }

    /// Cause bits follow policy 1: 1 in the multi-bit fields, PDV for V = 0.
    #[test]
    fn test_violation_cause_bits() {
        assert_eq!(Violation::Permission.avs1_cause().into_bits(), 0x08);
        assert_eq!(
            Violation::OperationTranslation.avs1_cause().into_bits(),
            0x02
        );
        assert_eq!(Violation::Disabled.avs1_cause().into_bits(), 0x4000);
        assert_eq!(Violation::GateClosed.avs1_cause().into_bits(), 0x2000);
    }

    /// PICS: status bits are W1C, enables are plain; line levels need status and enable.
    #[test]
    fn test_pics_w1c_and_levels() {
        let mut s = StatusRegs::default();
        s.write_pics(0xF);
        assert_eq!(
            s.pics.into_bits(),
            0x5,
            "writing 1 to clear status bits does not set them"
        );
        s.capture(
            &PamuFault::Operation(OpError::OtmReserved { entry: 0x40 }),
            1,
            0,
            false,
        );
        assert!(s.err_level() && !s.av_level());
        assert_eq!((s.poes1.into_bits(), s.poes2, s.poea), (1, 9, 0x40));
        s.write_poes1(1);
        s.write_pics(0x2 | 0x4);
        assert_eq!(s.pics.into_bits(), 0x4);
        assert!(!s.err_level());
    }
}
