//! The translation pipeline: LIODN -> PPAACE -> window/subwindow -> output + access check
//! (the window arithmetic of Linux `fsl_pamu.c` `pamu_config_ppaace()` / `pamu_config_spaace()`).
//!
//! [`translate`] is lock-free and allocation-free: it reads the instance's control and table
//! registers (passed in by value) and the table entries from guest memory, and returns either a
//! [`PamuTranslation`] or a typed [`PamuFault`]. Capturing the fault into registers is the
//! device's job (`device.rs`), so this module has no side effects.

use std::sync::atomic::AtomicUsize;

use viommu_common::access::{AccessKind, Perms};
use viommu_common::mem::GuestRam;
use viommu_common::traits::{DmaMapping, MemAttrs};
use vm_memory::GuestMemoryBackend;

use crate::caps::Caps;
use crate::fault::{PamuFault, Violation, WindowCause};
use crate::paact::{
    decode_mapping, decode_primary, decode_spaace, fetch_entry, fetch_entry_hinted, fetch_moe,
    locate, low_mask, ppaace_addr, primary_entry_in_range, spaace_addr, AddrMap, Layout, Mapping,
    OpMap, TableRegs,
};
use crate::spec::paace::{ioe, Ap, Atm, Otm, PaaceW3, PaaceWin, MIN_WSE};
use crate::spec::regs::Pc;

/// The control state of the instance checking a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Control {
    /// This instance's PAMUBYPENR bit is set.
    pub bypass: bool,
    /// PC.
    pub pc: Pc,
}

/// Snoop/stash/operation attributes reported with a translation.
///
/// They travel to the VMM in [`MemAttrs::device`], encoded by [`PamuAttrs::device_bits`]:
///
/// | Bits | Field |
/// |---|---|
/// | 7:0 | outbound CoreNet operation after OTM (read 0x00, write 0x01 when OTM = 0) |
/// | 15:8 | CID (cache / stash target) |
/// | 23:16 | SNPID |
/// | 24 | CR (coherency required) |
/// | 25 | DD (destination domain, 1 = to I/O) |
/// | 27:26 | OTM of the entry used |
/// | 28 | the transaction was not checked (bypass or PE = 0) |
/// | 31:29 | 0 |
///
/// DID and PID do not fit and are only in [`PamuAttrs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PamuAttrs {
    /// Outbound CoreNet operation.
    pub op: u8,
    /// CID.
    pub cid: u8,
    /// SNPID.
    pub snpid: u8,
    /// CR.
    pub cr: bool,
    /// DD.
    pub dd: bool,
    /// DID.
    pub did: u8,
    /// PID.
    pub pid: u8,
    /// OTM of the entry.
    pub otm: Otm,
    /// Not checked (bypassed or PAMU disabled).
    pub unchecked: bool,
}

impl PamuAttrs {
    /// The [`MemAttrs::device`] encoding (see the type's table).
    #[inline]
    pub fn device_bits(&self) -> u32 {
        u32::from(self.op)
            | (u32::from(self.cid) << 8)
            | (u32::from(self.snpid) << 16)
            | (u32::from(self.cr) << 24)
            | (u32::from(self.dd) << 25)
            | (u32::from(self.otm.0 & 3) << 26)
            | (u32::from(self.unchecked) << 28)
    }
}

/// Which path a transaction took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// PAMUBYPENR bypass: no checks.
    Bypass,
    /// PC.PE = 0 (policy 3: pass through like bypass).
    Disabled,
    /// Checked and translated by a (sub)window.
    Window {
        /// Address of the entry that described the (sub)window.
        entry: u64,
        /// Subwindow index (0 for single-window entries).
        subwindow: u32,
    },
}

/// A successful PAMU translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PamuTranslation {
    /// Output address of the first byte.
    pub output: u64,
    /// Bytes contiguous from `output` up to the end of the mapped region.
    pub len: u64,
    /// What the (sub)window allows: AP bit 0 gives R (and X: the PAMU has no execute
    /// control), AP bit 1 gives W.
    pub perms: Perms,
    /// Attributes.
    pub attrs: PamuAttrs,
    /// Path taken.
    pub path: Path,
}

impl PamuTranslation {
    /// As the common [`DmaMapping`]. `mair` is 0xFF (normal memory) and shareability 2 (outer)
    /// when CR = 1, else 0: PAMU targets are memory or CCSR, which the VMM routes by address.
    #[inline(always)]
    pub fn to_mapping(&self) -> DmaMapping {
        DmaMapping {
            output: self.output,
            len: self.len,
            perms: self.perms,
            attrs: MemAttrs {
                mair: 0xFF,
                shareability: u8::from(self.attrs.cr) << 1,
                device: self.attrs.device_bits(),
            },
        }
    }
}

/// The inbound operation index of a plain access (`IOE_READ_IDX` / `IOE_WRITE_IDX`).
#[inline]
pub fn default_ioe(access: AccessKind) -> u8 {
    if access.is_write() {
        ioe::WRITE
    } else {
        ioe::READ
    }
}

/// What each AP value allows: bit 0 gives R (and X: the PAMU has no execute control), bit 1
/// gives W.
const AP_PERMS: [Perms; 4] = [Perms::NONE, Perms::RX, Perms::W, Perms::RWX];

#[inline(always)]
fn ap_perms(ap: Ap) -> Perms {
    AP_PERMS[usize::from(ap.0 & 3)]
}

/// Word 3 with the high bit of ATM and of OTM set: an entry with ATM and OTM both 0 or 1
/// has neither.
const ATM_OTM_HIGH: u32 = PaaceW3::new()
    .with_atm(Atm::PAGE)
    .with_otm(Otm::INDEXED)
    .into_bits();

/// The mask of a window of 2^(`wse` + 1) bytes, `wse` <= 63: `low_mask(wse + 1)` without the
/// 64-bit special case (2 << 63 wraps to 0, and 0 - 1 is all ones).
#[inline(always)]
fn window_mask(wse: u8) -> u64 {
    (2u64 << (wse & 63)).wrapping_sub(1)
}

/// Steps 4-10 for the common entry, a valid single-window primary (MW = 0) with window or
/// identity address translation (ATM 0/1) and no or immediate operation translation
/// (OTM 0/1) that lets the access through, in the fewest instructions: the same answer the
/// full decode gives for such an entry. `None` for any other entry or outcome (subwindows,
/// OMT lookups, faults, malformed entries), which the full decode then handles.
#[inline(always)]
fn single_window(
    raw: &PaaceWin,
    entry: u64,
    caps: &Caps,
    addr: u64,
    len: u64,
    access: AccessKind,
    ioe: u8,
) -> Option<PamuTranslation> {
    let w1 = raw.pw1();
    let w3 = raw.w3();
    if !w1.v() || w1.pt() || w1.mw() || w1.wse() < MIN_WSE || w3.into_bits() & ATM_OTM_HIGH != 0 {
        return None;
    }
    // The window (size 2^(WSE+1), base masked to it) must hold every byte of the access; the
    // mapped size of a single window is the window. An address below the base wraps to an
    // offset above the mask (a WSE = 63 window has base 0).
    let mask = window_mask(w1.wse());
    let off = addr.wrapping_sub(raw.wba() & !mask);
    if off > mask || len.max(1) - 1 > mask - off {
        return None;
    }
    let ap = w1.ap();
    let need = if access.is_write() { 2 } else { 1 };
    if ap.0 & need == 0 {
        return None;
    }
    let output = if w3.atm() == Atm::WINDOW {
        (raw.twba() & caps.phys_mask & !mask) | off
    } else {
        addr
    };
    let (op, otm) = if w3.otm() == Otm::IMMEDIATE {
        let w7 = raw.w7_imm();
        let op = if ioe == w7.ioea() {
            w7.moea()
        } else if ioe == w7.ioeb() {
            w7.moeb()
        } else {
            ioe
        };
        (op, Otm::IMMEDIATE)
    } else {
        (ioe, Otm::NONE)
    };
    let w2 = raw.w2();
    Some(PamuTranslation {
        output,
        len: (mask - off).saturating_add(1),
        perms: ap_perms(ap),
        attrs: PamuAttrs {
            op,
            cid: w3.cid(),
            snpid: w2.snpid(),
            cr: w2.cr(),
            dd: w1.dd(),
            did: w2.did(),
            pid: w2.pid(),
            otm,
            unchecked: false,
        },
        path: Path::Window {
            entry,
            subwindow: 0,
        },
    })
}

/// [`translate`] for an access that the common entry lets through (see `single_window`), or
/// `None`: any other entry or outcome, including every fault, is left to [`translate`]. What
/// a VMM's DMA hit pays: no fault value is built, only PC, PPBA and PPLA (`ctl`, `ppba`,
/// `ppla`) and the PPAACE are read (through a snapshot of `mem`'s memory map held for that
/// read only), and the PPAACE's region is looked up through the hint `region` (see
/// [`fetch_entry_hinted`]). The caller has checked `liodn` against PC2.MLIODN.
///
/// The access starts at `addr` and does not cross a 4 KiB boundary (a bus transaction never
/// does), so its length does not matter: a window is at least 4 KiB and aligned to its size
/// (WSE >= 11, base masked), so it holds the whole access if it holds the first byte. The
/// answer is `translate`'s for any such length.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per input of the translation"
)]
#[inline(always)]
pub(crate) fn translate_hit<R: GuestRam>(
    mem: &R,
    region: &AtomicUsize,
    caps: &Caps,
    ctl: Control,
    ppba: u64,
    ppla: u64,
    liodn: u32,
    addr: u64,
    access: AccessKind,
) -> Option<PamuTranslation> {
    if ctl.bypass || !ctl.pc.pe() || ctl.pc.pgc() {
        return None;
    }
    let pe = primary_entry_in_range(ppba, ppla, liodn)?;
    // A snapshot of the memory map, taken only now and held only for the fetch: the decode
    // reads nothing else from memory.
    let praw = fetch_entry_hinted(&*mem.ram(), pe, region)?;
    // The first byte stands for the access (see above).
    single_window(&praw, pe, caps, addr, 1, access, default_ioe(access))
}

/// Translate one access of `len` bytes at `addr` by LIODN `liodn` (the steps are numbered in the
/// body).
///
/// `ioe` is the inbound operation index used by OTM (see [`default_ioe`]).
///
/// # Errors
/// The [`PamuFault`] the PAMU would raise; nothing is recorded here.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per input of the translation"
)]
#[inline(always)]
pub fn translate<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    caps: &Caps,
    ctl: Control,
    regs: &TableRegs,
    liodn: u32,
    addr: u64,
    len: u64,
    access: AccessKind,
    ioe: u8,
) -> Result<PamuTranslation, PamuFault> {
    // Step 1: bypass, or PE = 0 with the gate open, passes unchanged.
    if ctl.bypass || (!ctl.pc.pe() && !ctl.pc.pgc()) {
        return Ok(PamuTranslation {
            output: addr,
            len: (!addr).saturating_add(1),
            perms: Perms::RWX,
            attrs: PamuAttrs {
                op: ioe,
                unchecked: true,
                ..PamuAttrs::default()
            },
            path: if ctl.bypass {
                Path::Bypass
            } else {
                Path::Disabled
            },
        });
    }
    // Step 2: gate closed.
    if ctl.pc.pgc() {
        return Err(PamuFault::Violation(Violation::GateClosed));
    }
    // Steps 3-4: PPAACE by LIODN with the limit check and V.
    let pe = ppaace_addr(regs, caps, liodn).map_err(PamuFault::Violation)?;
    let praw = fetch_entry(mem, pe).map_err(PamuFault::Operation)?;
    if let Some(t) = single_window(&praw, pe, caps, addr, len, access, ioe) {
        return Ok(t);
    }
    translate_entry(mem, caps, regs, liodn, pe, &praw, addr, len, access, ioe)
}

/// Steps 4-10 of [`translate`] for the PPAACE `praw` at `pe`, every case decoded in full.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per input of the translation"
)]
#[inline(always)]
fn translate_entry<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    caps: &Caps,
    regs: &TableRegs,
    liodn: u32,
    pe: u64,
    praw: &PaaceWin,
    addr: u64,
    len: u64,
    access: AccessKind,
    ioe: u8,
) -> Result<PamuTranslation, PamuFault> {
    let window = decode_primary(praw, pe, caps)?;
    // Steps 5-6: window and subwindow.
    let loc = locate(&window, addr, len).map_err(PamuFault::Violation)?;
    let map: Mapping = match (window.layout, loc.subwindow) {
        (Layout::Single, _) => decode_mapping(praw, pe, praw.pw1().ap(), None, loc.sub_log2, caps)?,
        (Layout::Multi { .. }, 0) => decode_mapping(
            praw,
            pe,
            praw.pw1().ap(),
            Some(praw.w5().swse()),
            loc.sub_log2,
            caps,
        )?,
        (Layout::Multi { fspi, .. }, i) => {
            let se = spaace_addr(regs, &window, fspi, i).map_err(PamuFault::Operation)?;
            let sraw = fetch_entry(mem, se).map_err(PamuFault::Operation)?;
            decode_spaace(&sraw, se, liodn, i, loc.sub_log2, caps)?
        }
    };
    let mmask = low_mask(map.mapped_log2);
    let last = loc.sub_off.saturating_add(len.max(1) - 1);
    if last > mmask {
        return Err(PamuFault::Violation(Violation::Window(
            WindowCause::PastMapped {
                subwindow: loc.subwindow,
            },
        )));
    }
    // Step 7: permissions (an instruction fetch is a read).
    let perms = ap_perms(map.ap);
    let allowed = match access {
        AccessKind::Write => perms.write(),
        AccessKind::Read | AccessKind::Exec => perms.read(),
    };
    if !allowed {
        return Err(PamuFault::Violation(Violation::Permission));
    }
    // Step 8: address translation. Policy 2: a TWBA misaligned to the mapped size is
    // masked, not added.
    let output = match map.addr_map {
        AddrMap::Identity => addr,
        AddrMap::Window { twba } => (twba & !mmask) | (loc.sub_off & mmask),
    };
    // Step 9: operation translation.
    let (op, otm) = match map.op_map {
        OpMap::None => (ioe, Otm::NONE),
        // Policy 10: an operation that is neither IOEA nor IOEB passes unchanged.
        OpMap::Immediate {
            ioea,
            moea,
            ioeb,
            moeb,
        } => {
            let op = if ioe == ioea {
                moea
            } else if ioe == ioeb {
                moeb
            } else {
                ioe
            };
            (op, Otm::IMMEDIATE)
        }
        OpMap::Indexed { omi } => match fetch_moe(mem, regs, map.entry, omi, ioe) {
            Ok(Some(op)) => (op, Otm::INDEXED),
            Ok(None) => return Err(PamuFault::Violation(Violation::OperationTranslation)),
            Err(e) => return Err(PamuFault::Operation(e)),
        },
    };
    // Step 10: metadata.
    let a = map.attrs;
    Ok(PamuTranslation {
        output,
        len: (mmask - loc.sub_off.min(mmask)).saturating_add(1),
        perms,
        attrs: PamuAttrs {
            op,
            cid: a.cid,
            snpid: a.snpid,
            cr: a.cr,
            dd: a.dd,
            did: a.did,
            pid: a.pid,
            otm,
            unchecked: false,
        },
        path: Path::Window {
            entry: map.entry,
            subwindow: loc.subwindow,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::PamuConfig;
    use viommu_common::mem::write_u32_be;
    use viommu_common::testing::guest_ram;

    const PPBA: u64 = 0x10_0000;

    fn regs() -> TableRegs {
        TableRegs {
            ppba: PPBA,
            ppla: PPBA + 0x14000,
            spba: PPBA + 0x14000,
            spla: PPBA + 0x34000,
            oba: PPBA + 0x34000,
            ola: PPBA + 0x34800,
        }
    }

    fn on() -> Control {
        Control {
            bypass: false,
            pc: Pc::from_bits(0x4000_1011),
        }
    }

    fn put(m: &vm_memory::GuestMemoryMmap<()>, addr: u64, w: [u32; 8]) {
        for (i, v) in w.iter().enumerate() {
            write_u32_be(m, addr + 4 * i as u64, *v).unwrap();
        }
    }

    /// TV-1: a single translated window maps [0x8000_0000, 0x9000_0000) to 0x1_2000_0000.
    #[test]
    fn test_translate_tv1_single_window() {
        let m = guest_ram(0, 0x40_0000);
        let c = PamuConfig::p4080().caps().unwrap();
        let l = 5;
        put(
            &m,
            PPBA + l * 64,
            [0, 0x8000_06D9, 0x80, 4, 1, 0x2000_0000, 0, 0],
        );
        let t = |a, acc| translate(&m, &c, on(), &regs(), l as u32, a, 1, acc, 0);
        assert_eq!(
            t(0x8123_4568, AccessKind::Write).unwrap().output,
            0x1_2123_4568
        );
        assert_eq!(
            t(0x8FFF_FFFF, AccessKind::Read).unwrap().output,
            0x1_2FFF_FFFF
        );
        assert_eq!(t(0x8FFF_FFFF, AccessKind::Read).unwrap().len, 1);
        assert_eq!(
            t(0x9000_0000, AccessKind::Read),
            Err(PamuFault::Violation(Violation::Window(
                WindowCause::OutsideWindow
            )))
        );
    }

    /// Bypass and PE = 0 pass unchanged; PGC = 1 closes the gate even with PE = 0.
    #[test]
    fn test_translate_bypass_disabled_gate() {
        let m = guest_ram(0, 0x1000);
        let c = PamuConfig::p4080().caps().unwrap();
        let r = TableRegs::default();
        let off = Control::default();
        let t = translate(&m, &c, off, &r, 9, 0x1234, 4, AccessKind::Write, 1).unwrap();
        assert_eq!((t.output, t.path), (0x1234, Path::Disabled));
        let gate = Control {
            bypass: false,
            pc: Pc::new().with_pgc(true),
        };
        assert_eq!(
            translate(&m, &c, gate, &r, 9, 0, 4, AccessKind::Read, 0),
            Err(PamuFault::Violation(Violation::GateClosed))
        );
        let byp = Control {
            bypass: true,
            ..gate
        };
        assert_eq!(
            translate(&m, &c, byp, &r, 9, 0, 4, AccessKind::Read, 0)
                .unwrap()
                .path,
            Path::Bypass
        );
    }

    /// OTM = 2 maps the operation through OMT[OMI]; an invalid MOE is OTV.
    #[test]
    fn test_translate_omt_indexed() {
        let m = guest_ram(0, 0x40_0000);
        let c = PamuConfig::p4080().caps().unwrap();
        // Identity, 64 GiB, OTM = 2, OMI 1, CID 0x20.
        put(&m, PPBA + 64, [0, 0x8D9, 0x80, 0x0020_0002, 0, 0, 0, 1]);
        let ome1 = regs().oba + 128;
        viommu_common::mem::write_bytes(&m, ome1, &[0x80 | 0x18, 0x81]).unwrap();
        let r = translate(&m, &c, on(), &regs(), 1, 0x5000, 8, AccessKind::Read, 0).unwrap();
        assert_eq!(r.attrs.op, 0x18);
        assert_eq!(r.attrs.cid, 0x20);
        assert_eq!(
            r.to_mapping().attrs.device,
            0x18 | (0x20 << 8) | (1 << 24) | (2 << 26)
        );
        assert_eq!(
            translate(&m, &c, on(), &regs(), 1, 0x5000, 8, AccessKind::Read, 2),
            Err(PamuFault::Violation(Violation::OperationTranslation))
        );
    }

    /// Regression (found by `tests/pamu_robustness.rs`): a PPAACE with WSE = 63 covers the
    /// whole 64-bit space; the contiguous length "mapped size - offset" overflowed u64 in the
    /// translation result for offset 0. It now saturates.
    #[test]
    fn test_regression_full_address_space_window_len() {
        let m = guest_ram(0, 0x40_0000);
        let c = PamuConfig::p4080().caps().unwrap();
        put(&m, PPBA + 64, [0, (63 << 6) | 0x19, 0, 0, 0, 0, 0, 0]);
        let t = translate(&m, &c, on(), &regs(), 1, 0, 4, AccessKind::Read, 0).unwrap();
        assert_eq!((t.output, t.len), (0, u64::MAX));
    }

    /// Policy 2 and WBA alignment: a misaligned TWBA is masked to the mapped size, a
    /// misaligned WBA to the window size; a SWSE larger than the subwindow is clamped.
    #[test]
    fn test_misaligned_bases_are_masked() {
        let m = guest_ram(0, 0x40_0000);
        let c = PamuConfig::p4080().caps().unwrap();
        // 1 MiB window, WBA 0x8000_1000 (misaligned), TWBA 0x1_2000_3000 (misaligned).
        put(
            &m,
            PPBA + 64,
            [
                0,
                0x8000_1000 | (19 << 6) | 0x19,
                0,
                4,
                1,
                0x2000_3000,
                0,
                0,
            ],
        );
        let t =
            |a| translate(&m, &c, on(), &regs(), 1, a, 1, AccessKind::Read, 0).map(|t| t.output);
        assert_eq!(t(0x8000_0000), Ok(0x1_2000_0000));
        assert_eq!(t(0x800F_FFFF), Ok(0x1_200F_FFFF));
        // 2 subwindows of 512 KiB; subwindow 0's SWSE says 1 MiB: clamped to 512 KiB.
        put(
            &m,
            PPBA + 64,
            [0, (19 << 6) | 0x39, 0, 0x04, 0, 19 << 6, 0, 0],
        );
        assert_eq!(t(0x7_FFFF), Ok(0x7_FFFF));
        let crossing = translate(&m, &c, on(), &regs(), 1, 0x7_FFFF, 2, AccessKind::Read, 0);
        assert!(matches!(
            crossing,
            Err(PamuFault::Violation(Violation::Window(_)))
        ));
    }

    /// A random address around the window of entry `w` (`raw`): anywhere, inside it, or within
    /// 16 bytes below its end or its base.
    fn random_addr_near_window(rng: &mut impl rand::Rng, w: &[u32; 8], raw: &PaaceWin) -> u64 {
        let size = 1u64 << ((w[1] >> 6 & 0x3F) + 1).min(63);
        let base = raw.wba() & !(size.wrapping_sub(1));
        match rng.random_range(0..4) {
            0 => rng.random(),
            1 => base.wrapping_add(rng.random_range(0..size)),
            2 => base
                .wrapping_add(size)
                .wrapping_sub(rng.random_range(0..16)),
            _ => base.wrapping_sub(rng.random_range(0..16)),
        }
    }

    /// The words of a random PPAACE: nine times in ten a valid single-window entry (V = 1,
    /// PT = 0, MW = 0, a WSE of 11..=40 and sometimes 63, ATM and OTM 0 or 1), else anything.
    fn random_paace_words(rng: &mut impl rand::Rng) -> [u32; 8] {
        let mut w: [u32; 8] = rng.random();
        if rng.random_bool(0.9) {
            let wse: u32 = if rng.random_bool(0.05) {
                63
            } else {
                rng.random_range(11..=40)
            };
            w[1] = (w[1] & !0xFE3) | (wse << 6) | 1;
            w[3] &= !0xF;
            w[3] |= rng.random_range(0..=1) << 2 | rng.random_range(0..=1);
            w[0] &= 0xF;
        }
        w
    }

    /// The single-window shortcut gives exactly the full decode's answer whenever it answers,
    /// and answers every access a valid single-window entry with ATM 0/1 and OTM 0/1 lets
    /// through (so the hit path does not silently fall back). Random entries biased towards
    /// that case, random accesses around the window.
    #[test]
    fn test_single_window_matches_full_decode() {
        use rand::{Rng, SeedableRng};
        let m = guest_ram(0, 0x40_0000);
        let c = PamuConfig::p4080().caps().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let (mut answered, mut allowed) = (0u32, 0u32);
        for _ in 0..200_000 {
            let w = random_paace_words(&mut rng);
            let raw = PaaceWin::from_words(w);
            let addr = random_addr_near_window(&mut rng, &w, &raw);
            let len = [0, 1, 8, 64, 0x1000, u64::MAX][rng.random_range(0..6)];
            let access =
                [AccessKind::Read, AccessKind::Write, AccessKind::Exec][rng.random_range(0..3)];
            let ioe: u8 = rng.random_range(0..4);
            let pe = PPBA + 64;
            let full = translate_entry(&m, &c, &regs(), 1, pe, &raw, addr, len, access, ioe);
            let quick = single_window(&raw, pe, &c, addr, len, access, ioe);
            if let Some(t) = quick {
                answered += 1;
                assert_eq!(full, Ok(t), "words {w:08x?} addr {addr:#x} len {len:#x}");
            }
            let w1 = raw.pw1();
            let w3 = raw.w3();
            if full.is_ok() && !w1.mw() && w3.atm().0 <= 1 && w3.otm().0 <= 1 {
                allowed += 1;
                assert!(
                    quick.is_some(),
                    "words {w:08x?} addr {addr:#x} len {len:#x}"
                );
            }
        }
        assert!(
            answered > 10_000 && answered == allowed,
            "{answered} answered, {allowed} allowed"
        );
    }

    /// The hit path (`translate_hit`: region hint, PPAACT bounds from PPBA/PPLA alone, the
    /// window checked by the first byte) gives exactly `translate`'s answer whenever it
    /// answers, for any transaction that stays within one 4 KiB page, and answers every such
    /// access that a single-window entry with ATM 0/1 and OTM 0/1 lets through (unless the
    /// entry straddles two memory regions, which only the byte copy reads). Three memory
    /// regions (two adjacent, then a gap), tables in each and across their ends, random
    /// control and table registers, and a hint that is often stale or out of range.
    #[test]
    fn test_translate_hit_matches_translate() {
        use rand::{Rng, SeedableRng};
        use vm_memory::{GuestAddress, GuestMemoryMmap, GuestMemoryRegion};
        let m = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x10_0000),
            (GuestAddress(0x10_0000), 0x10_0000),
            (GuestAddress(0x40_0000), 0x10_0000),
        ])
        .unwrap();
        let c = PamuConfig::p4080().caps().unwrap();
        let hint = AtomicUsize::new(0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1313);
        // PPBA candidates: inside each region, 0x1F0 before the end of region 0 (LIODN 7
        // straddles regions 0 and 1), 0x100 before the end of region 1 (LIODN 4 and up are
        // outside RAM) and 0x1C0 before the end of region 2.
        let bases: [u64; 6] = [
            0x8_0000,
            0x18_0000,
            0x48_0000,
            0x10_0000 - 0x1F0,
            0x20_0000 - 0x100,
            0x50_0000 - 0x1C0,
        ];
        let region_start = |a: u64| m.find_region(GuestAddress(a)).map(|r| r.start_addr());
        let (mut answered, mut allowed) = (0u32, 0u32);
        let mut hints = std::collections::BTreeSet::new();
        for _ in 0..100_000 {
            let ppba = bases[rng.random_range(0..bases.len())];
            let liodn: u32 = rng.random_range(0..8);
            let ppla = match rng.random_range(0..8) {
                0 => rng.random(),
                1 => ppba.wrapping_sub(rng.random_range(0..0x100)),
                _ => ppba + 64 * rng.random_range(0..=8),
            };
            let ctl = Control {
                bypass: rng.random_bool(0.05),
                pc: Pc::from_bits(if rng.random_bool(0.9) {
                    0x4000_1011
                } else {
                    [0, 0x8000_0000, 0xC000_0000][rng.random_range(0..3)]
                }),
            };
            let pe = ppba + u64::from(liodn) * 64;
            let w = random_paace_words(&mut rng);
            // Outside RAM the write fails (in part): the entry is then what RAM holds.
            for (i, v) in w.iter().enumerate() {
                let _ = write_u32_be(&m, pe + 4 * i as u64, *v);
            }
            let raw = PaaceWin::from_words(w);
            let addr = random_addr_near_window(&mut rng, &w, &raw);
            // A transaction: within the 4 KiB page of `addr` (length 0 is one byte).
            let len = rng.random_range(0..=0x1000 - (addr & 0xFFF));
            let access =
                [AccessKind::Read, AccessKind::Write, AccessKind::Exec][rng.random_range(0..3)];
            if rng.random_bool(0.2) {
                hint.store(rng.random_range(0..5), std::sync::atomic::Ordering::Relaxed);
            }
            let table = TableRegs {
                ppba,
                ppla,
                ..regs()
            };
            let full = translate(
                &m,
                &c,
                ctl,
                &table,
                liodn,
                addr,
                len,
                access,
                default_ioe(access),
            );
            let hit = translate_hit(&&m, &hint, &c, ctl, ppba, ppla, liodn, addr, access);
            hints.insert(hint.load(std::sync::atomic::Ordering::Relaxed));
            let what = format!("ppba {ppba:#x} ppla {ppla:#x} liodn {liodn} {ctl:?} words {w:08x?} addr {addr:#x} len {len:#x} {access:?}");
            if let Some(t) = hit {
                answered += 1;
                assert_eq!(full, Ok(t), "{what}");
            }
            let entry = fetch_entry(&m, pe).unwrap_or_default();
            let single = matches!(
                full,
                Ok(PamuTranslation {
                    path: Path::Window { .. },
                    ..
                })
            ) && !entry.pw1().mw()
                && entry.w3().atm().0 <= 1
                && entry.w3().otm().0 <= 1;
            if single && region_start(pe).is_some() && region_start(pe) == region_start(pe + 31) {
                allowed += 1;
                assert!(hit.is_some(), "{what}");
            }
        }
        assert!(
            answered > 5_000 && answered == allowed,
            "{answered} answered, {allowed} allowed"
        );
        assert!(hints.len() >= 3, "hints seen: {hints:?}");
    }
}
