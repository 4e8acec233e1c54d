//! A deliberately simple stage-1 table walker, the reference for the `walk` fuzz target's
//! differential check against `viommu_common::walk`.
//!
//! It is written from the architecture (Arm ARM DDI 0487 D8.2 table walks, D8.3 descriptor
//! formats, D8.4 permissions), not from the walker under test, and trades speed and generality
//! for obviousness: memory is a sparse map of 64-bit words, every level is visited by a plain
//! loop over 0..=3, and permissions come from the AP\[2:1\] table written out case by case.
//!
//! Supported (anything else is [`RefConfig::supported`] = false and only the no-panic check
//! runs): 4K/16K/64K granules, TxSZ 16..=39, output sizes 32/36/40/42/44/48 bits, TTB0/TTB1
//! regions with or without TBI, EPD, hierarchical permissions (or HPD), WXN, PAN, AFFD. Not
//! supported: hardware AF/dirty updates, 52-bit inputs or outputs, nesting.

use std::collections::HashMap;

/// Translation granule: log2 of the page size (12, 14 or 16).
pub type GranuleShift = u32;

/// What the reference walker needs of a stage-1 configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefConfig {
    /// 12, 14 or 16.
    pub granule_shift: GranuleShift,
    /// T0SZ / T1SZ.
    pub txsz: u8,
    /// Table base.
    pub ttb: u64,
    /// Output size in bits.
    pub oas_bits: u32,
    /// TTB1 region.
    pub upper: bool,
    /// Top byte ignored.
    pub tbi: bool,
    /// Walks disabled.
    pub epd: bool,
    /// Hierarchical permissions disabled.
    pub hpd: bool,
    /// Access-flag faults disabled.
    pub affd: bool,
    /// Write implies execute-never.
    pub wxn: bool,
    /// Privileged access never.
    pub pan: bool,
}

impl RefConfig {
    /// Whether this walker models the configuration (see the module doc).
    pub fn supported(&self) -> bool {
        matches!(self.granule_shift, 12 | 14 | 16)
            && (16..=39).contains(&self.txsz)
            && matches!(self.oas_bits, 32 | 36 | 40 | 42 | 44 | 48)
    }
}

/// Permissions as (read, write, execute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefPerms {
    /// Readable.
    pub r: bool,
    /// Writable.
    pub w: bool,
    /// Executable.
    pub x: bool,
}

/// A successful reference walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefHit {
    /// Output address.
    pub output: u64,
    /// log2 of the block or page size.
    pub size_log2: u32,
    /// Level of the leaf.
    pub level: u8,
    /// Permissions of privileged accesses.
    pub privileged: RefPerms,
    /// Permissions of unprivileged accesses.
    pub unprivileged: RefPerms,
    /// nG clear.
    pub global: bool,
}

/// Why a reference walk failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefFault {
    /// Translation fault at a level.
    Translation(u8),
    /// Address-size fault at a level.
    AddressSize(u8),
    /// Access-flag fault at a level.
    AccessFlag(u8),
    /// Permission fault at a level.
    Permission(u8),
    /// A descriptor read outside RAM, at this address, at a level.
    ExternalAbort(u64, u8),
}

/// The access a transaction makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefAccess {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch (needs read and execute).
    Exec,
}

/// Guest memory as the reference sees it: RAM `[base, base + size)`, zero except for the
/// 64-bit words stored.
#[derive(Debug, Clone, Default)]
pub struct RefMem {
    /// First byte of RAM.
    pub base: u64,
    /// RAM size in bytes.
    pub size: u64,
    /// Stored words by (8-byte aligned) address.
    pub words: HashMap<u64, u64>,
}

impl RefMem {
    /// The word at `addr` (8-byte aligned), or `None` outside RAM.
    pub fn read(&self, addr: u64) -> Option<u64> {
        if addr < self.base || addr - self.base > self.size - 8 {
            return None;
        }
        Some(self.words.get(&addr).copied().unwrap_or(0))
    }
}

/// Bits `[hi:lo]` of `v` (inclusive), in place.
fn bits(v: u64, hi: u32, lo: u32) -> u64 {
    let width = hi - lo + 1;
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    v & (mask << lo)
}

/// Translate `va` for `access` (privileged or not) through the tables in `mem`.
pub fn walk(
    mem: &RefMem,
    cfg: &RefConfig,
    va: u64,
    access: RefAccess,
    privileged: bool,
) -> Result<RefHit, RefFault> {
    let g = cfg.granule_shift;
    let per_level = g - 3;
    let ia = 64 - u32::from(cfg.txsz);
    // The region check: VA[63:ia] (VA[55:ia] with TBI) all zero for TTB0, all ones for TTB1.
    let top = if cfg.tbi { 55 } else { 63 };
    let region = bits(va, top, ia);
    let expect = if cfg.upper {
        bits(u64::MAX, top, ia)
    } else {
        0
    };
    if cfg.epd || region != expect {
        return Err(RefFault::Translation(0));
    }
    let oa_limit = 1u64 << cfg.oas_bits;
    if cfg.ttb >= oa_limit {
        return Err(RefFault::AddressSize(0));
    }
    // Level L resolves VA[shift + per_level - 1 : shift], shift = g + (3 - L) * per_level; the
    // walk starts at the first level whose field lies (partly) below the input size.
    let shift_of = |level: u32| g + (3 - level) * per_level;
    let start = (0..=3).find(|&l| shift_of(l) < ia).unwrap_or(3);
    // The root table holds 2^(ia - shift) entries and is aligned to its size (at least 64
    // bytes): base bits below that are ignored.
    let root_bytes_log2 = (ia - shift_of(start) + 3).max(6);
    let mut table = cfg.ttb & !((1u64 << root_bytes_log2) - 1);
    let (mut no_write, mut no_unpriv, mut pxn_table, mut uxn_table) = (false, false, false, false);
    for level in start..=3 {
        let shift = shift_of(level);
        let index_bits = if level == start {
            ia - shift
        } else {
            per_level
        };
        let index = (va >> shift) & ((1u64 << index_bits) - 1);
        let addr = table + 8 * index;
        let lvl = level as u8;
        let Some(desc) = mem.read(addr) else {
            return Err(RefFault::ExternalAbort(addr, lvl));
        };
        let kind = desc & 3;
        if kind == 0 || kind == 2 {
            return Err(RefFault::Translation(lvl));
        }
        if kind == 3 && level < 3 {
            // A table descriptor: next table at desc[47:g].
            let next = bits(desc, 47, g);
            if next >= oa_limit {
                return Err(RefFault::AddressSize(lvl));
            }
            no_unpriv |= desc & (1 << 61) != 0;
            no_write |= desc & (1 << 62) != 0;
            pxn_table |= desc & (1 << 59) != 0;
            uxn_table |= desc & (1 << 60) != 0;
            table = next;
            continue;
        }
        // A page (0b11 at level 3) or a block (0b01): blocks exist at levels 1 and 2 for 4K,
        // level 2 for 16K and 64K (64K level 1 needs 52-bit outputs, unsupported here).
        let block_ok = match g {
            12 => level == 1 || level == 2,
            _ => level == 2,
        };
        if kind == 1 && !block_ok {
            return Err(RefFault::Translation(lvl));
        }
        let oa = bits(desc, 47, shift);
        if oa >= oa_limit {
            return Err(RefFault::AddressSize(lvl));
        }
        let af = desc & (1 << 10) != 0;
        if !af && !cfg.affd {
            return Err(RefFault::AccessFlag(lvl));
        }
        let (p, u) = perms(cfg, desc, [no_write, no_unpriv, pxn_table, uxn_table]);
        let mine = if privileged { p } else { u };
        let ok = match access {
            RefAccess::Read => mine.r,
            RefAccess::Write => mine.w,
            RefAccess::Exec => mine.r && mine.x,
        };
        if !ok {
            return Err(RefFault::Permission(lvl));
        }
        return Ok(RefHit {
            output: oa | (va & ((1u64 << shift) - 1)),
            size_log2: shift,
            level: lvl,
            privileged: p,
            unprivileged: u,
            global: desc & (1 << 11) == 0,
        });
    }
    unreachable!("level 3 always ends the walk")
}

/// (privileged, unprivileged) permissions of leaf `desc` under the table attributes
/// `[APTable[1], APTable[0], PXNTable, UXNTable]` seen on the way.
fn perms(cfg: &RefConfig, desc: u64, table: [bool; 4]) -> (RefPerms, RefPerms) {
    let [mut no_write, mut no_unpriv, mut pxn_t, mut uxn_t] = table;
    if cfg.hpd {
        (no_write, no_unpriv, pxn_t, uxn_t) = (false, false, false, false);
    }
    // AP[2:1]: 00 privileged RW; 01 both RW; 10 privileged RO; 11 both RO.
    let ap = (desc >> 6) & 3;
    let (mut pr, mut pw, mut ur, mut uw) = match ap {
        0b00 => (true, true, false, false),
        0b01 => (true, true, true, true),
        0b10 => (true, false, false, false),
        _ => (true, false, true, false),
    };
    if no_write {
        pw = false;
        uw = false;
    }
    if no_unpriv {
        ur = false;
        uw = false;
    }
    let pxn = desc & (1 << 53) != 0;
    let uxn = desc & (1 << 54) != 0;
    // Unprivileged execution: not with UXN; with WXN not if unprivileged-writable.
    let ux = !(uxn || uxn_t || (cfg.wxn && uw));
    // Privileged execution: never from memory unprivileged code can write; not with PXN; with
    // WXN not if privileged-writable.
    let px = !(pxn || pxn_t || uw || (cfg.wxn && pw));
    // PAN: privileged data accesses to memory unprivileged code can read fault.
    if cfg.pan && ur {
        pr = false;
        pw = false;
    }
    (
        RefPerms {
            r: pr,
            w: pw,
            x: px,
        },
        RefPerms {
            r: ur,
            w: uw,
            x: ux,
        },
    )
}
