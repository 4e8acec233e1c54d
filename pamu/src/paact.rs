//! PAACT / SPAACT / OMT fetch and decode (Linux `fsl_pamu.h` `struct paace`, `fsl_pamu.c`
//! `pamu_config_ppaace()` / `pamu_config_spaace()`, `setup_omt()`).
//!
//! Fetch reads big-endian entries from guest memory ([`fetch_entry`], [`fetch_moe`]); decode is
//! pure: raw words plus the advertised capabilities in, a typed window configuration or a typed
//! fault out ([`decode_primary`], [`decode_spaace`], [`decode_mapping`], [`locate`]).
//!
//! Policy 13 (table caching): nothing is cached. Every translation re-reads the 32
//! window-mode bytes of the PPAACE (and of the SPAACE it selects) from guest memory, so the Linux
//! driver's "clear V, update, set V" sequence and the hypervisor's in-place AP toggling are
//! observed immediately without any invalidation; PC.PPCC/SPCC/OCE are stored and ignored.
//! The one thing the translation hit path remembers between calls is where to look: the index
//! of the guest-memory region that held the last PPAACE it read (`fetch_entry_hinted`), a
//! hint checked against the region's bounds on every use, never table contents.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress, VolatileMemory,
};

use crate::caps::Caps;
use crate::fault::{OpError, PamuFault, Violation, WindowCause};
use crate::spec::paace::{Ap, Atm, Moe, Otm, PaaceWin, MIN_WSE, OME_SIZE, PAACE_SIZE};

/// The table base/limit registers one translation uses (limits exclusive, policy 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableRegs {
    /// PPBA: primary PAACT base.
    pub ppba: u64,
    /// PPLA: primary PAACT limit (exclusive).
    pub ppla: u64,
    /// SPBA: secondary PAACT base.
    pub spba: u64,
    /// SPLA: secondary PAACT limit (exclusive).
    pub spla: u64,
    /// OBA: OMT base.
    pub oba: u64,
    /// OLA: OMT limit (exclusive).
    pub ola: u64,
}

/// How a primary entry splits its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// MW = 0: one window, mapped size = window size.
    Single,
    /// MW = 1: 2^`count_log2` subwindows; subwindow 0 is the primary itself, subwindow i ≥ 1 is
    /// SPAACT[`fspi` + i − 1].
    Multi {
        /// WCE + 1.
        count_log2: u8,
        /// FSPI.
        fspi: u32,
    },
}

/// A decoded, valid PPAACE: the window it covers and how it is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Address of the PPAACE.
    pub entry: u64,
    /// Window base (masked to the window size: Policy, a misaligned WBA's low bits are ignored,
    /// as a masked compare in hardware would).
    pub wba: u64,
    /// log2 of the window size = WSE + 1 (12..=64).
    pub size_log2: u8,
    /// Single window or subwindows.
    pub layout: Layout,
}

/// Operation translation of a (sub)window (Linux `fsl_pamu.h` `PAACE_OTM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpMap {
    /// OTM = 0.
    None,
    /// OTM = 1: IOEA -> MOEA, IOEB -> MOEB, others unchanged (policy 10).
    Immediate {
        /// Inbound operation A.
        ioea: u8,
        /// Mapped operation A.
        moea: u8,
        /// Inbound operation B.
        ioeb: u8,
        /// Mapped operation B.
        moeb: u8,
    },
    /// OTM = 2: through `OMT[omi]`.
    Indexed {
        /// OMT index.
        omi: u16,
    },
}

/// How a (sub)window translates addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrMap {
    /// ATM = 0: the address passes unchanged.
    Identity,
    /// ATM = 1: output = TWBA (masked to the mapped size) | offset.
    Window {
        /// TWBA, masked to the physical address width.
        twba: u64,
    },
}

/// Snoop/stash/domain attributes of a (sub)window (metadata for the VMM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryAttrs {
    /// DID: destination ID.
    pub did: u8,
    /// PID: partition ID.
    pub pid: u8,
    /// SNPID: snoop ID.
    pub snpid: u8,
    /// CR: coherency required.
    pub cr: bool,
    /// DD: destination domain (1 = to I/O).
    pub dd: bool,
    /// CID: cache / stash target ID.
    pub cid: u8,
}

/// A decoded (sub)window mapping: what the access at hand is checked and translated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// Address of the entry describing it (PPAACE or SPAACE).
    pub entry: u64,
    /// Access permissions.
    pub ap: Ap,
    /// log2 of the mapped size (SWSE + 1, or WSE + 1 for a single window), clamped to the
    /// (sub)window size.
    pub mapped_log2: u8,
    /// Address translation.
    pub addr_map: AddrMap,
    /// Operation translation.
    pub op_map: OpMap,
    /// Attributes.
    pub attrs: EntryAttrs,
}

/// Where an access falls inside a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Subwindow index (0 for single-window entries).
    pub subwindow: u32,
    /// Offset of the access inside its (sub)window.
    pub sub_off: u64,
    /// log2 of the (sub)window size.
    pub sub_log2: u8,
}

/// Mask of the low `log2` bits (all ones for 64 and above).
#[inline(always)]
pub(crate) const fn low_mask(log2: u8) -> u64 {
    if log2 >= 64 {
        u64::MAX
    } else {
        (1u64 << log2) - 1
    }
}

/// Fetch the window-mode words of the entry at `addr`.
///
/// Fast path (the translation hot path, `fetch_entry_atomic`): the 32 bytes are read as
/// four single-copy-atomic 64-bit loads from one guest-memory slice, the first (words 0-1,
/// holding V) with Acquire so that a guest which writes the other words before setting V
/// (Linux's barrier sequence) is seen consistently. Misaligned or region-straddling entries
/// take the generic byte copy. (The alignment that single-copy atomicity needs is the host
/// address's, which `get_atomic_ref` checks; a guest-misaligned entry in a region whose host
/// mapping starts page-aligned is host-misaligned too.)
///
/// # Errors
/// [`OpError::Fetch`] if the 32 bytes are not all in guest RAM.
#[inline(always)]
pub fn fetch_entry<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
) -> Result<PaaceWin, OpError> {
    match fetch_entry_atomic(mem, addr) {
        Some(raw) => Ok(raw),
        None => viommu_common::mem::read_obj::<PaaceWin, M>(mem, addr)
            .map_err(|_| OpError::Fetch { addr }),
    }
}

/// The fast path of [`fetch_entry`]: the entry at `addr` as four single-copy-atomic 64-bit
/// loads (the first with Acquire) from the one guest-memory region that holds all 32 bytes,
/// or `None` if the bytes are not all in one region or their host address is not 8-byte
/// aligned (then only the generic copy of [`fetch_entry`] can tell whether they are in guest
/// RAM).
#[inline(always)]
pub(crate) fn fetch_entry_atomic<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
) -> Option<PaaceWin> {
    // The region is looked up directly rather than through `GuestMemoryBackend::get_slice`,
    // which builds (and drops) an error value on every call, hit or not.
    let region = mem.find_region(GuestAddress(addr))?;
    load_entry(region, addr)
}

/// [`fetch_entry_atomic`] with the region found through a hint: `hint` holds the index, in
/// the memory map, of the region the last call found. The hinted region is used only if it
/// holds all 32 bytes at `addr`, which is checked on every call, so a stale hint (tables
/// moved, memory map replaced) costs a lookup and is never wrong: the hint needs no
/// invalidation. The entry itself is read from guest memory on every call.
#[inline(always)]
pub(crate) fn fetch_entry_hinted<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    hint: &AtomicUsize,
) -> Option<PaaceWin> {
    // Relaxed: the hint is only an index, validated below.
    if let Some(region) = mem.iter().nth(hint.load(Ordering::Relaxed)) {
        if let Some(raw) = load_entry(region, addr) {
            return Some(raw);
        }
    }
    fetch_entry_rehint(mem, addr, hint)
}

/// The slow path of [`fetch_entry_hinted`]: look the region up, record its index as the new
/// hint, and read the entry.
#[cold]
#[inline(never)]
fn fetch_entry_rehint<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    addr: u64,
    hint: &AtomicUsize,
) -> Option<PaaceWin> {
    let start = mem.find_region(GuestAddress(addr))?.start_addr();
    let (index, region) = mem
        .iter()
        .enumerate()
        .find(|(_, r)| r.start_addr() == start)?;
    hint.store(index, Ordering::Relaxed);
    load_entry(region, addr)
}

/// The entry at `addr` from `region`, if the region holds all 32 bytes at an 8-byte aligned
/// host address: four single-copy-atomic 64-bit loads, the first with Acquire (see
/// [`fetch_entry`]).
#[inline(always)]
fn load_entry<R: GuestMemoryRegion>(region: &R, addr: u64) -> Option<PaaceWin> {
    let offset = addr.checked_sub(region.start_addr().0)?;
    // Checked here as well as by `get_slice`, so that its error path (an error value to build
    // and drop) is visibly dead to the optimiser.
    if offset.checked_add(32)? > region.len() {
        return None;
    }
    let slice = region.get_slice(MemoryRegionAddress(offset), 32).ok()?;
    let load = |i: usize, order| {
        slice
            .get_atomic_ref::<AtomicU64>(i * 8)
            .ok()
            .map(|a| a.load(order))
    };
    // The 32 bytes in memory order: each 8-byte load is kept as its native-endian value, so
    // the four values are the memory image and the record's big-endian fields convert on
    // access.
    let image: [u64; 4] = [
        load(0, Ordering::Acquire)?,
        load(1, Ordering::Relaxed)?,
        load(2, Ordering::Relaxed)?,
        load(3, Ordering::Relaxed)?,
    ];
    Some(zerocopy::transmute!(image))
}

/// Address of LIODN `liodn`'s PPAACE, checked against PC2.MLIODN and the exclusive PPLA.
///
/// # Errors
/// [`Violation::LiodnNotInTable`] (AVS1.LAV = 1).
#[inline(always)]
pub fn ppaace_addr(regs: &TableRegs, caps: &Caps, liodn: u32) -> Result<u64, Violation> {
    if liodn > u32::from(caps.max_liodn()) {
        return Err(Violation::LiodnNotInTable);
    }
    primary_entry_in_range(regs.ppba, regs.ppla, liodn).ok_or(Violation::LiodnNotInTable)
}

/// [`ppaace_addr`] from the PPBA and PPLA values alone (what the translation hit path reads),
/// for a LIODN already checked against PC2.MLIODN; `None` for LAV. (`liodn` * 64 + 64 fits in
/// 39 bits, so only the table bounds can overflow.)
#[inline(always)]
pub(crate) fn primary_entry_in_range(ppba: u64, ppla: u64, liodn: u32) -> Option<u64> {
    // Policy: the whole entry must lie below the exclusive limit, so the table must be at
    // least `end` bytes long; then `ppba` + `off` < `ppla` does not overflow either.
    let table = ppla.checked_sub(ppba)?;
    let off = u64::from(liodn) * PAACE_SIZE;
    if off + PAACE_SIZE > table {
        return None;
    }
    Some(ppba + off)
}

/// Decode a PPAACE (step 4 of `translate::translate` and the static checks of steps 5-6).
///
/// # Errors
/// [`Violation::Disabled`] for V = 0; operation errors for PT = 1, WSE < 11, WCE above
/// PC3.MWCE or subwindows under 4 KiB.
#[inline(always)]
pub fn decode_primary(raw: &PaaceWin, entry: u64, caps: &Caps) -> Result<WindowConfig, PamuFault> {
    let w1 = raw.pw1();
    if !w1.v() {
        return Err(PamuFault::Violation(Violation::Disabled));
    }
    if w1.pt() {
        return Err(PamuFault::Operation(OpError::PrimaryPt { entry }));
    }
    let wse = w1.wse();
    if wse < MIN_WSE {
        return Err(PamuFault::Operation(OpError::WindowSize { entry, wse }));
    }
    let size_log2 = wse + 1;
    let layout = if w1.mw() {
        let wce = raw.w3().wce();
        let count_log2 = wce + 1;
        // Policy 12: WCE above PC3.MWCE, or subwindows below 4 KiB, is an operation
        // error rather than a clamp.
        if wce > caps.max_wce() || size_log2 < count_log2 + 12 {
            return Err(PamuFault::Operation(OpError::SubwindowCount { entry, wce }));
        }
        Layout::Multi {
            count_log2,
            fspi: raw.fspi(),
        }
    } else {
        Layout::Single
    };
    Ok(WindowConfig {
        entry,
        wba: raw.wba() & !low_mask(size_log2),
        size_log2,
        layout,
    })
}

/// Find the (sub)window of the access `[addr, addr + len)` (steps 5-6 of `translate::translate`).
///
/// # Errors
/// [`Violation::Window`] if any byte is outside the window.
#[inline(always)]
pub fn locate(w: &WindowConfig, addr: u64, len: u64) -> Result<Location, Violation> {
    let outside = Violation::Window(WindowCause::OutsideWindow);
    if addr < w.wba {
        return Err(outside);
    }
    let off = addr - w.wba;
    let last = off.checked_add(len.max(1) - 1).ok_or(outside)?;
    let mask = low_mask(w.size_log2);
    if off > mask || last > mask {
        return Err(outside);
    }
    Ok(match w.layout {
        Layout::Single => Location {
            subwindow: 0,
            sub_off: off,
            sub_log2: w.size_log2,
        },
        Layout::Multi { count_log2, .. } => {
            let shift = w.size_log2 - count_log2;
            Location {
                // shift >= 12 and the index has at most 16 bits (count_log2 <= 16).
                subwindow: u32::try_from(off >> shift).unwrap_or(u32::MAX),
                sub_off: off & low_mask(shift),
                sub_log2: shift,
            }
        }
    })
}

/// Address of the SPAACE describing subwindow `i` ≥ 1: SPAACT[FSPI + i − 1], checked against
/// the exclusive SPLA.
///
/// # Errors
/// [`OpError::SpaaceLimit`] (POEA = the primary entry).
#[inline(always)]
pub fn spaace_addr(regs: &TableRegs, w: &WindowConfig, fspi: u32, i: u32) -> Result<u64, OpError> {
    let index = u64::from(fspi) + u64::from(i) - 1;
    let err = OpError::SpaaceLimit {
        entry: w.entry,
        index,
    };
    let e = regs.spba.checked_add(index * PAACE_SIZE).ok_or(err)?;
    match e.checked_add(PAACE_SIZE) {
        Some(end) if end <= regs.spla => Ok(e),
        _ => Err(err),
    }
}

/// Decode a SPAACE for subwindow `subwindow` of LIODN `liodn`.
///
/// # Errors
/// [`WindowCause::SubwindowInvalid`] for V = 0; [`OpError::SpaaceOwner`] for PT = 0 or a LIODN
/// field naming another LIODN (policy 4); then as [`decode_mapping`].
#[inline(always)]
pub fn decode_spaace(
    raw: &PaaceWin,
    entry: u64,
    liodn: u32,
    subwindow: u32,
    sub_log2: u8,
    caps: &Caps,
) -> Result<Mapping, PamuFault> {
    let w1 = raw.sw1();
    if !w1.v() {
        return Err(PamuFault::Violation(Violation::Window(
            WindowCause::SubwindowInvalid { subwindow },
        )));
    }
    if !w1.pt() || u32::from(w1.liodn()) != liodn {
        return Err(PamuFault::Operation(OpError::SpaaceOwner {
            entry,
            liodn: w1.liodn(),
            pt: w1.pt(),
        }));
    }
    decode_mapping(raw, entry, w1.ap(), Some(raw.w5().swse()), sub_log2, caps)
}

/// Decode the mapping fields shared by primaries and secondaries: mapped size, ATM, OTM and
/// attributes. `swse` is `None` for a single-window primary (its window size is the mapped
/// size).
///
/// # Errors
/// [`OpError::MappedSize`] for SWSE < 11, [`OpError::PageTranslation`] for ATM 2/3,
/// [`OpError::OtmReserved`] for OTM 3.
#[inline(always)]
pub fn decode_mapping(
    raw: &PaaceWin,
    entry: u64,
    ap: Ap,
    swse: Option<u8>,
    sub_log2: u8,
    caps: &Caps,
) -> Result<Mapping, PamuFault> {
    let mapped_log2 = match swse {
        None => sub_log2,
        Some(s) if s < MIN_WSE => {
            return Err(PamuFault::Operation(OpError::MappedSize { entry, swse: s }))
        }
        // Policy: a mapped size larger than the subwindow is clamped to the subwindow (the
        // subwindow index already consumed the upper offset bits).
        Some(s) => (s + 1).min(sub_log2),
    };
    let w3 = raw.w3();
    let addr_map = match w3.atm() {
        Atm::NONE => AddrMap::Identity,
        Atm::WINDOW => AddrMap::Window {
            twba: raw.twba() & caps.phys_mask,
        },
        other => {
            return Err(PamuFault::Operation(OpError::PageTranslation {
                entry,
                atm: other.0,
            }))
        }
    };
    let op_map = match w3.otm() {
        Otm::NONE => OpMap::None,
        Otm::IMMEDIATE => {
            let w7 = raw.w7_imm();
            OpMap::Immediate {
                ioea: w7.ioea(),
                moea: w7.moea(),
                ioeb: w7.ioeb(),
                moeb: w7.moeb(),
            }
        }
        Otm::INDEXED => OpMap::Indexed {
            omi: raw.w7_idx().omi(),
        },
        _ => return Err(PamuFault::Operation(OpError::OtmReserved { entry })),
    };
    let w2 = raw.w2();
    Ok(Mapping {
        entry,
        ap,
        mapped_log2,
        addr_map,
        op_map,
        attrs: EntryAttrs {
            did: w2.did(),
            pid: w2.pid(),
            snpid: w2.snpid(),
            cr: w2.cr(),
            dd: raw.pw1().dd(),
            cid: w3.cid(),
        },
    })
}

/// Fetch the MOE for inbound operation `ioe` from `OMT[omi]` and decode it.
///
/// Returns the outbound CoreNet operation, or `None` if the MOE is not valid (→ OTV).
///
/// # Errors
/// [`OpError::OmiLimit`] if the OME lies at or beyond OLA, [`OpError::Fetch`] outside RAM.
#[inline(always)]
pub fn fetch_moe<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    regs: &TableRegs,
    entry: u64,
    omi: u16,
    ioe: u8,
) -> Result<Option<u8>, OpError> {
    let limit = OpError::OmiLimit { entry, omi };
    let ome = regs
        .oba
        .checked_add(u64::from(omi) * OME_SIZE)
        .ok_or(limit)?;
    match ome.checked_add(OME_SIZE) {
        Some(end) if end <= regs.ola => {}
        _ => return Err(limit),
    }
    // ioe < 128 keeps the byte inside the 128-byte OME.
    let addr = ome + u64::from(ioe & 0x7F);
    let mut b = [0u8; 1];
    viommu_common::mem::read_bytes(mem, addr, &mut b).map_err(|_| OpError::Fetch { addr })?;
    let moe = Moe::from_bits(b[0]);
    Ok(moe.valid().then_some(moe.op()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::PamuConfig;

    fn caps() -> Caps {
        PamuConfig::p4080().caps().unwrap()
    }

    /// TV-2's PPAACE decodes to a 1 GiB window of 8 subwindows with FSPI 0x10.
    #[test]
    fn test_decode_primary_tv2_words() {
        let raw = PaaceWin::from_words([0, 0x779, 0x80, 0x24, 2, 0x680, 0x10, 0]);
        let w = decode_primary(&raw, 0x840, &caps()).unwrap();
        assert_eq!(w.wba, 0);
        assert_eq!(w.size_log2, 30);
        assert_eq!(
            w.layout,
            Layout::Multi {
                count_log2: 3,
                fspi: 0x10
            }
        );
        let loc = locate(&w, 0x3800_0140, 4).unwrap();
        assert_eq!((loc.subwindow, loc.sub_off, loc.sub_log2), (7, 0x140, 27));
    }

    /// V = 0, PT = 1, WSE < 11 and WCE above MWCE are refused with the documented faults.
    #[test]
    fn test_decode_primary_rejects() {
        let c = caps();
        let dis = PaaceWin::from_words([0, 0x6D8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_primary(&dis, 0, &c),
            Err(PamuFault::Violation(Violation::Disabled))
        );
        let pt = PaaceWin::from_words([0, 0x6DB, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_primary(&pt, 0x40, &c),
            Err(PamuFault::Operation(OpError::PrimaryPt { entry: 0x40 }))
        );
        let small = PaaceWin::from_words([0, (10 << 6) | 0x19, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_primary(&small, 0, &c),
            Err(PamuFault::Operation(OpError::WindowSize {
                entry: 0,
                wse: 10
            }))
        );
        let r1 = PamuConfig::p4080_rev1().caps().unwrap();
        let many = PaaceWin::from_words([0, 0x779, 0, 0x74, 0, 0x680, 0, 0]);
        assert_eq!(
            decode_primary(&many, 0, &r1),
            Err(PamuFault::Operation(OpError::SubwindowCount {
                entry: 0,
                wce: 7
            }))
        );
        assert!(decode_primary(&many, 0, &c).is_ok());
    }

    /// Accesses outside or straddling the window are WAV; the last byte is inside.
    #[test]
    fn test_locate_bounds() {
        let w = WindowConfig {
            entry: 0,
            wba: 0x8000_0000,
            size_log2: 28,
            layout: Layout::Single,
        };
        assert!(locate(&w, 0x8FFF_FFFF, 1).is_ok());
        assert!(locate(&w, 0x8FFF_FFFF, 2).is_err());
        assert!(locate(&w, 0x7FFF_FFFF, 1).is_err());
        assert!(locate(&w, 0x9000_0000, 1).is_err());
        assert!(locate(&w, u64::MAX, 2).is_err());
    }

    /// The SPAACE owner check and SWSE decode follow TV-2's entries.
    #[test]
    fn test_decode_spaace_tv2() {
        let c = caps();
        let w1 = PaaceWin::from_words([0, 0x0021_000B, 0x80, 4, 1, 0x0800_03C0, 0, 0]);
        let m = decode_spaace(&w1, 0x400, 0x21, 1, 27, &c).unwrap();
        assert_eq!(m.ap, Ap::QUERY);
        assert_eq!(m.mapped_log2, 16);
        assert_eq!(
            m.addr_map,
            AddrMap::Window {
                twba: 0x1_0800_0000
            }
        );
        assert!(m.attrs.cr);
        let inv = PaaceWin::from_words([0, 0x0021_0002, 0x80, 4, 0, 0x680, 0, 0]);
        assert!(matches!(
            decode_spaace(&inv, 0x440, 0x21, 2, 27, &c),
            Err(PamuFault::Violation(Violation::Window(
                WindowCause::SubwindowInvalid { .. }
            )))
        ));
        assert!(matches!(
            decode_spaace(&w1, 0x400, 0x22, 1, 27, &c),
            Err(PamuFault::Operation(OpError::SpaaceOwner {
                liodn: 0x21,
                ..
            }))
        ));
    }

    /// Outcome-first: random valid primary configurations encoded into words by hand (from the
    /// masks of Linux `fsl_pamu.h`, not our bitfield types) decode back to exactly those values.
    #[test]
    fn test_decode_primary_outcome_first_random() {
        use rand::{Rng, SeedableRng};
        let c = caps();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xA11CE);
        for _ in 0..2000 {
            let size_log2: u8 = rng.random_range(12..=40);
            let wba = (rng.random_range(0..1u64 << 36) >> size_log2) << size_log2;
            let multi = rng.random_bool(0.5) && size_log2 >= 13;
            let count_log2: u8 = if multi {
                rng.random_range(1..=8.min(size_log2 - 12))
            } else {
                0
            };
            let fspi: u32 = rng.random();
            let ap: u32 = rng.random_range(0..4);
            let atm: u32 = rng.random_range(0..2);
            let twba = rng.random_range(0..1u64 << 36) & !0xFFF;
            let sub_log2 = size_log2 - count_log2;
            let swse: u8 = rng.random_range(11..sub_log2);
            let w1 = (wba as u32 & 0xFFFF_F000)
                | (u32::from(size_log2 - 1) << 6)
                | (u32::from(multi) << 5)
                | (ap << 3)
                | 1;
            let w3 = if multi {
                u32::from(count_log2 - 1) << 4
            } else {
                0
            } | (atm << 2);
            let w5 = (twba as u32 & 0xFFFF_F000) | (u32::from(swse) << 6);
            let raw = PaaceWin::from_words([
                (wba >> 32) as u32,
                w1,
                0x80,
                w3,
                (twba >> 32) as u32,
                w5,
                fspi,
                0,
            ]);
            let w = decode_primary(&raw, 0x40, &c).unwrap();
            let layout = if multi {
                Layout::Multi { count_log2, fspi }
            } else {
                Layout::Single
            };
            assert_eq!(
                w,
                WindowConfig {
                    entry: 0x40,
                    wba,
                    size_log2,
                    layout
                }
            );
            let swse_in = multi.then_some(swse);
            let m = decode_mapping(&raw, 0x40, raw.pw1().ap(), swse_in, sub_log2, &c).unwrap();
            assert_eq!(m.ap, Ap(ap as u8));
            assert_eq!(m.mapped_log2, if multi { swse + 1 } else { sub_log2 });
            let am = if atm == 1 {
                AddrMap::Window { twba }
            } else {
                AddrMap::Identity
            };
            assert_eq!(m.addr_map, am);
            assert!(m.attrs.cr);
        }
    }

    /// Policy 11 at the edges: the whole PPAACE must lie below the exclusive PPLA; a PPLA
    /// below PPBA, or a table that would wrap past 2^64, holds no entry; a LIODN above
    /// PC2.MLIODN is LAV whatever the table size.
    #[test]
    fn test_ppaace_addr_limits() {
        use rand::{Rng, SeedableRng};
        let c = caps();
        let t = |ppba: u64, ppla: u64, liodn: u32| {
            let regs = TableRegs {
                ppba,
                ppla,
                ..TableRegs::default()
            };
            ppaace_addr(&regs, &c, liodn)
        };
        let lav = Err(Violation::LiodnNotInTable);
        assert_eq!(t(0x1000, 0x1000 + 3 * 64, 2), Ok(0x1000 + 2 * 64));
        assert_eq!(t(0x1000, 0x1000 + 3 * 64 - 1, 2), lav);
        assert_eq!(t(0x1000, 0x1000 + 3 * 64, 3), lav);
        assert_eq!(t(0x1000, 0x1000, 0), lav);
        assert_eq!(t(0x1000, 0xFFF, 0), lav);
        assert_eq!(t(u64::MAX - 63, u64::MAX, 0), lav);
        assert_eq!(t(u64::MAX - 127, u64::MAX, 0), Ok(u64::MAX - 127));
        assert_eq!(t(u64::MAX - 127, u64::MAX, 1), lav);
        let max = u32::from(c.max_liodn());
        assert_eq!(t(0, u64::MAX, max), Ok(u64::from(max) * 64));
        assert_eq!(t(0, u64::MAX, max + 1), lav);
        // The same as "entry = PPBA + 64 * LIODN and entry + 64 <= PPLA, neither overflowing"
        // for random registers.
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..100_000 {
            let ppba: u64 = if rng.random_bool(0.5) {
                rng.random()
            } else {
                u64::MAX - rng.random_range(0..0x1000)
            };
            let ppla = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => ppba.wrapping_add(rng.random_range(0..0x400)),
                _ => ppba.wrapping_sub(rng.random_range(0..0x400)),
            };
            let liodn = rng.random_range(0..=max);
            let expect = ppba
                .checked_add(u64::from(liodn) * 64)
                .filter(|e| e.checked_add(64).is_some_and(|end| end <= ppla));
            assert_eq!(
                t(ppba, ppla, liodn).ok(),
                expect,
                "{ppba:#x} {ppla:#x} {liodn}"
            );
        }
    }
}
