//! The VMSAv8-64 table walker (`viommu_common::walk`) on arbitrary tables and configurations.
//!
//! 256 KiB of guest RAM at 1 GiB, zero except for the descriptors the input stores (raw
//! words, or table/leaf descriptors built to point into RAM so walks get deep), one stage-1
//! configuration and one stage-2 configuration from the input, then a list of walks: stage 1,
//! stage 2 and nested (stage 1 through stage 2), with any address, access and privilege.
//! Checked:
//! - nothing panics or loops (libFuzzer's timeout);
//! - every successful walk is consistent: the output lies in the mapping, below the output
//!   size, and its permissions allow the access;
//! - stage-1 walks the simple reference walker (`viommu_fuzz::refwalk`) supports, with
//!   hardware AF/dirty updates off, agree with it on the output address, mapping size, level,
//!   permissions of both privileges and global bit, or on the fault kind and level.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use viommu_common::mem::write_u64_le;
use viommu_common::testing::guest_ram;
use viommu_common::walk::{
    walk_stage1, walk_stage2, Stage1Config, Stage2Config, WalkFault, WalkFaultKind, WalkResult,
};
use viommu_common::{AccessKind, Granule, Perms};
use viommu_fuzz::refwalk::{self, RefAccess, RefConfig, RefFault, RefHit, RefMem, RefPerms};

/// First byte of guest RAM.
const RAM_BASE: u64 = 0x4000_0000;
/// Guest RAM size: four 64K-granule tables, sixty-four 4K ones.
const RAM_SIZE: u64 = 256 << 10;

/// A descriptor value.
#[derive(Arbitrary, Debug)]
enum Value {
    /// Any word.
    Raw(u64),
    /// A table descriptor for the 4K-aligned RAM page `page`, with bits \[63:59\] from `hi`.
    Table { page: u8, hi: u8 },
    /// A block (`block`) or page descriptor: output address `oa` (its low bits are dropped by
    /// the walker), lower attributes \[11:2\] from `lo`, upper \[54:51\] from `hi`.
    Leaf {
        oa: u64,
        lo: u16,
        hi: u8,
        block: bool,
    },
    /// A block or page mapping RAM page `page`.
    RamLeaf {
        page: u8,
        lo: u16,
        hi: u8,
        block: bool,
    },
}

impl Value {
    fn raw(&self) -> u64 {
        match *self {
            Value::Raw(v) => v,
            Value::Table { page, hi } => {
                (RAM_BASE + u64::from(page % 64) * 0x1000) | 3 | (u64::from(hi) & 0x1f) << 59
            }
            Value::Leaf { oa, lo, hi, block } => leaf(oa, lo, hi, block),
            Value::RamLeaf {
                page,
                lo,
                hi,
                block,
            } => leaf(RAM_BASE + u64::from(page) * 0x1000, lo, hi, block),
        }
    }
}

fn leaf(oa: u64, lo: u16, hi: u8, block: bool) -> u64 {
    let kind = if block { 1 } else { 3 };
    (oa & 0x0000_FFFF_FFFF_F000) | (u64::from(lo) & 0x3ff) << 2 | (u64::from(hi) & 0xf) << 51 | kind
}

/// A store into guest RAM.
#[derive(Arbitrary, Debug)]
struct Store {
    /// Word index into RAM (wrapped).
    slot: u16,
    value: Value,
}

/// A granule selector.
fn granule(sel: u8) -> Granule {
    match sel % 3 {
        0 => Granule::K4,
        1 => Granule::K16,
        _ => Granule::K64,
    }
}

/// An output size: mostly the encodable ones, sometimes anything.
fn oas(sel: u8) -> u32 {
    const SIZES: [u32; 7] = [32, 36, 40, 42, 44, 48, 52];
    SIZES
        .get(usize::from(sel % 8))
        .copied()
        .unwrap_or(u32::from(sel))
}

/// A table base: a RAM page, or any address.
fn table_base(page: u8, raw: Option<u64>) -> u64 {
    raw.unwrap_or(RAM_BASE + u64::from(page) * 0x1000)
}

/// The stage-1 configuration.
#[derive(Arbitrary, Debug)]
struct S1 {
    granule: u8,
    txsz: u8,
    ttb_page: u8,
    ttb_raw: Option<u64>,
    oas: u8,
    /// upper, tbi, epd, hpd, ha, hd, affd, wxn, pan, lva.
    flags: u16,
    mair: u64,
}

/// The stage-2 configuration.
#[derive(Arbitrary, Debug)]
struct S2 {
    granule: u8,
    t0sz: u8,
    sl0: u8,
    vttb_page: u8,
    vttb_raw: Option<u64>,
    ps: u8,
    /// ha, hd, affd, xnx, fwb.
    flags: u8,
}

/// One walk.
#[derive(Arbitrary, Debug)]
enum Walk {
    /// Stage 1 of `va`, or of an address built from per-level indexes.
    S1 {
        va: VaSel,
        access: u8,
        privileged: bool,
    },
    /// Stage 2.
    S2 {
        ipa: u64,
        access: u8,
        privileged: bool,
    },
    /// Stage 1 nested through stage 2.
    Nested {
        va: VaSel,
        access: u8,
        privileged: bool,
    },
}

/// An input address.
#[derive(Arbitrary, Debug)]
enum VaSel {
    /// Any address.
    Raw(u64),
    /// Index bits for each level (wrapped by the walker) plus a page offset; top bits set for
    /// the TTB1 region.
    Indexes {
        idx: [u16; 4],
        offset: u16,
        upper: bool,
    },
}

impl VaSel {
    fn va(&self, g: Granule) -> u64 {
        match *self {
            VaSel::Raw(v) => v,
            VaSel::Indexes { idx, offset, upper } => {
                let mut va = u64::from(offset) & ((1 << g.shift()) - 1);
                for (level, i) in idx.iter().enumerate() {
                    let shift = g.level_shift(level as i8);
                    va |= (u64::from(*i) & ((1 << g.bits_per_level()) - 1)).wrapping_shl(shift);
                }
                if upper {
                    va |= 0xFFFF_0000_0000_0000;
                }
                va
            }
        }
    }
}

/// One input.
#[derive(Arbitrary, Debug)]
struct Input {
    s1: S1,
    s2: S2,
    stores: Vec<Store>,
    walks: Vec<Walk>,
}

fn access_kind(sel: u8) -> (AccessKind, RefAccess) {
    match sel % 3 {
        0 => (AccessKind::Read, RefAccess::Read),
        1 => (AccessKind::Write, RefAccess::Write),
        _ => (AccessKind::Exec, RefAccess::Exec),
    }
}

/// Invariants of any successful walk.
fn check_result(r: &WalkResult, access: AccessKind, privileged: bool, oas_bits: u32) {
    assert!(
        r.size_log2 >= 12 && r.size_log2 < 64,
        "mapping size 2^{}: {r:?}",
        r.size_log2
    );
    assert!(
        r.base() <= r.output && r.output - r.base() < r.size(),
        "{r:?}"
    );
    if oas_bits < 64 {
        assert_eq!(
            r.output >> oas_bits,
            0,
            "output beyond {oas_bits} bits: {r:?}"
        );
    }
    assert_eq!(r.perms, r.by_privilege.get(privileged), "{r:?}");
    assert!(
        r.perms.allows(access),
        "a {access:?} succeeded without permission: {r:?}"
    );
}

fn to_perms(p: RefPerms) -> Perms {
    let mut out = Perms::NONE;
    if p.r {
        out = out.union(Perms::R);
    }
    if p.w {
        out = out.union(Perms::W);
    }
    if p.x {
        out = out.union(Perms::X);
    }
    out
}

/// Compare the walker with the reference.
fn compare(
    got: &Result<WalkResult, WalkFault>,
    want: &Result<RefHit, RefFault>,
    why: &dyn Fn() -> String,
) {
    match (got, want) {
        (Ok(r), Ok(h)) => {
            let same = r.output == h.output
                && r.size_log2 == h.size_log2
                && r.level == h.level
                && r.by_privilege.privileged == to_perms(h.privileged)
                && r.by_privilege.unprivileged == to_perms(h.unprivileged)
                && r.global == h.global
                && !r.writable_clean;
            assert!(same, "walker {r:?} != reference {h:?}: {}", why());
        }
        (Err(f), Err(e)) => {
            let same = match (f.kind, *e) {
                (WalkFaultKind::Translation, RefFault::Translation(l))
                | (WalkFaultKind::AddressSize, RefFault::AddressSize(l))
                | (WalkFaultKind::AccessFlag, RefFault::AccessFlag(l))
                | (WalkFaultKind::Permission, RefFault::Permission(l)) => f.level == l,
                (WalkFaultKind::ExternalAbort { fetch_addr }, RefFault::ExternalAbort(a, l)) => {
                    fetch_addr == a && f.level == l
                }
                _ => false,
            };
            assert!(same, "walker {f:?} != reference {e:?}: {}", why());
        }
        _ => panic!("walker {got:?} != reference {want:?}: {}", why()),
    }
}

fuzz_target!(|inp: Input| {
    let ram = guest_ram(RAM_BASE, RAM_SIZE as usize);
    let mut refmem = RefMem {
        base: RAM_BASE,
        size: RAM_SIZE,
        ..RefMem::default()
    };
    for st in inp.stores.iter().take(256) {
        let addr = RAM_BASE + 8 * (u64::from(st.slot) % (RAM_SIZE / 8));
        let v = st.value.raw();
        write_u64_le(&ram, addr, v).expect("store inside RAM");
        refmem.words.insert(addr, v);
    }

    let f = |bit: u32| inp.s1.flags & (1 << bit) != 0;
    let s1 = Stage1Config {
        upper: f(0),
        tbi: f(1),
        epd: f(2),
        hpd: f(3),
        ha: f(4),
        hd: f(5),
        affd: f(6),
        wxn: f(7),
        pan: f(8),
        lva: f(9),
        mair: inp.s1.mair,
        ..Stage1Config::new(
            granule(inp.s1.granule),
            inp.s1.txsz % 64,
            table_base(inp.s1.ttb_page, inp.s1.ttb_raw),
            oas(inp.s1.oas),
        )
    };
    let reference = RefConfig {
        granule_shift: s1.granule.shift(),
        txsz: s1.txsz,
        ttb: s1.ttb,
        oas_bits: s1.oas_bits,
        upper: s1.upper,
        tbi: s1.tbi,
        epd: s1.epd,
        hpd: s1.hpd,
        affd: s1.affd,
        wxn: s1.wxn,
        pan: s1.pan,
    };
    let g2 = |bit: u32| inp.s2.flags & (1 << bit) != 0;
    let s2 = Stage2Config {
        ha: g2(0),
        hd: g2(1),
        affd: g2(2),
        xnx: g2(3),
        fwb: g2(4),
        ..Stage2Config::new(
            granule(inp.s2.granule),
            inp.s2.t0sz % 64,
            inp.s2.sl0 % 4,
            table_base(inp.s2.vttb_page, inp.s2.vttb_raw),
            oas(inp.s2.ps),
        )
    };
    // Hardware updates (either stage) change memory, and the reference does not model them.
    let differential = reference.supported() && !s1.ha && !s1.hd && !s2.ha;
    let s1_oas = if s1.validate().is_ok() {
        s1.effective_oas()
    } else {
        64
    };
    let s2_oas = if s2.validate().is_ok() {
        s2.effective_ps()
    } else {
        64
    };

    for w in inp.walks.iter().take(64) {
        match w {
            Walk::S1 {
                va,
                access,
                privileged,
            } => {
                let va = va.va(s1.granule);
                let (acc, racc) = access_kind(*access);
                let got = walk_stage1(&ram, &s1, va, acc, *privileged, None);
                if let Ok(r) = &got {
                    check_result(r, acc, *privileged, s1_oas);
                }
                if differential {
                    let want = refwalk::walk(&refmem, &reference, va, racc, *privileged);
                    let why = || format!("{s1:?} va {va:#x} {acc:?} privileged {privileged}");
                    compare(&got, &want, &why);
                }
            }
            Walk::S2 {
                ipa,
                access,
                privileged,
            } => {
                let (acc, _) = access_kind(*access);
                if let Ok(r) = walk_stage2(&ram, &s2, *ipa, acc, *privileged) {
                    check_result(&r, acc, *privileged, s2_oas);
                }
            }
            Walk::Nested {
                va,
                access,
                privileged,
            } => {
                let va = va.va(s1.granule);
                let (acc, _) = access_kind(*access);
                let hook = |ipa: u64, a: AccessKind| walk_stage2(&ram, &s2, ipa, a, *privileged);
                if let Ok(r) = walk_stage1(&ram, &s1, va, acc, *privileged, Some(&hook)) {
                    check_result(&r, acc, *privileged, s2_oas);
                }
            }
        }
    }
});
