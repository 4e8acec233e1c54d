//! VMSAv8-64 page-table walker: stage 1, stage 2 and nested (Arm ARM DDI 0487 chapter D8
//! "The AArch64 Virtual Memory System Architecture"; IHI 0070 SMMUv3 §3.4 (address sizes), §3.13
//! (HTTU), §5.2/§5.4 (STE/CD walk fields), §13 (attributes and permissions); Linux
//! drivers/iommu/io-pgtable-arm.c for the tables the Linux driver builds).
//!
//! # Shape
//! - [`config`]: [`Stage1Config`] (one TTBx region of a CD) and [`Stage2Config`] (STE S2
//!   fields), with pure `validate()` computing the start level and concatenation
//!   ([`TableGeometry`]) or a typed [`ConfigError`] (C_BAD_CD / C_BAD_STE).
//! - [`desc`]: descriptor words as bitfields and [`Descriptor::decode`] by level and granule.
//! - [`fault`]: [`WalkFault`] (kind, stage, level, CLASS, IPA).
//! - [`walk_stage1`] / [`walk_stage2`]: one walk from guest memory, with permission check for the
//!   access, access-flag handling and hardware dirty-state update (HTTU), returning a
//!   [`WalkResult`] that holds enough (per-privilege permissions, mapping size) to be cached.
//!
//! # Example
//! ```
//! use vm_memory::{GuestAddress, GuestMemoryMmap};
//! use viommu_common::mem::write_u64_le;
//! use viommu_common::walk::{walk_stage1, Stage1Config};
//! use viommu_common::{AccessKind, Granule};
//!
//! let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
//! // 4K granule, 39-bit input (TxSZ 25): the walk starts at level 1.
//! let cfg = Stage1Config::new(Granule::K4, 25, 0x1000, 48);
//! write_u64_le(&ram, 0x1000, 0x2000 | 0b11).unwrap(); // L1[0]: table at 0x2000
//! write_u64_le(&ram, 0x2000, 0x4000_0000 | 0x441).unwrap(); // L2[0]: 2 MiB block, AF, AP[1]
//! let r = walk_stage1(&ram, &cfg, 0x1234, AccessKind::Write, false, None).unwrap();
//! assert_eq!((r.output, r.size(), r.level), (0x4000_1234, 2 << 20, 2));
//! ```
//!
//! # Nesting
//! [`walk_stage1`] takes an optional [`Stage2Hook`]: every stage-1 descriptor address (an IPA)
//! is translated through it with a read (or, for an HTTU update, a write) before the access, and
//! the stage-1 output IPA is translated with the transaction's access. A stage-2 fault on a
//! descriptor is reported with [`FaultClass::Tt`] (TTRnW from [`WalkFault::desc_write`]), on the
//! output with [`FaultClass::In`]. The combined result has S1 ∩ S2 permissions, the smaller of
//! the two mapping sizes, and combined attributes. The hook is usually
//! `|ipa, acc| walk_stage2(mem, &s2, ipa, acc, privileged)`, possibly through a stage-2 TLB.
//!
//! # Policies (where the architecture leaves a choice)
//! - Fault priority for a leaf: translation/address size, then access flag, then permission;
//!   a faulting walk never writes a descriptor (no AF/dirty update on a permission fault).
//! - HTTU: AF and dirty updates are one compare-and-swap on the leaf. If the guest changed the
//!   descriptor in between, the walk restarts from the root; after [`HTTU_MAX_ATTEMPTS`] lost
//!   races the access takes the fault it would have taken without HTTU. HD is effective only with
//!   HA (Arm ARM D8.4.6). Hardware never updates table descriptors (no FEAT_HAFT).
//! - Hierarchical permissions (APTable, PXNTable, UXNTable) apply unless `hpd` (CD.HADx).
//! - The contiguous bit is ignored (a caching hint); RES0 address bits are ignored.
//! - Unprivileged execution does not need AP\[1\] (execute-only memory), but
//!   [`AccessKind::Exec`] needs read permission too ([`crate::access`]).

use vm_memory::GuestMemoryBackend;

use crate::access::{AccessKind, Perms};
use crate::addr::low_mask;
use crate::traits::MemAttrs;

mod attrs;
pub mod config;
pub mod desc;
mod engine;
pub mod fault;
mod read;
mod stage1;
mod stage2;
#[cfg(test)]
mod tests;

pub use config::{ConfigError, Stage1Config, Stage2Config, TableGeometry};
pub use desc::{Descriptor, LeafDesc, S1Leaf, S2Leaf, TableDesc};
pub use fault::{FaultClass, Stage, WalkFault, WalkFaultKind};
pub use read::DescReader;

/// How many times a walk retries a hardware descriptor update that lost a race with the guest.
pub const HTTU_MAX_ATTEMPTS: u32 = 8;

/// Permissions for privileged and unprivileged accesses (what a cache keeps per mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PrivPerms {
    /// Permissions of privileged (PnU = 1) accesses.
    pub privileged: Perms,
    /// Permissions of unprivileged (PnU = 0) accesses.
    pub unprivileged: Perms,
}

impl PrivPerms {
    /// The permissions for one privilege.
    pub const fn get(&self, privileged: bool) -> Perms {
        if privileged {
            self.privileged
        } else {
            self.unprivileged
        }
    }

    /// Per-privilege intersection (combining stages).
    pub const fn intersect(self, other: PrivPerms) -> PrivPerms {
        PrivPerms {
            privileged: self.privileged.intersect(other.privileged),
            unprivileged: self.unprivileged.intersect(other.unprivileged),
        }
    }
}

/// A successful walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalkResult {
    /// Output address of the input address (PA; for a stage-1 walk without a hook, the IPA/PA
    /// stage 1 produced).
    pub output: u64,
    /// log2 of the size of the mapping that matched (for nested, the smaller of the two stages).
    pub size_log2: u32,
    /// Lookup level of the leaf (stage 1's for nested).
    pub level: u8,
    /// Permissions for the privilege of this access.
    pub perms: Perms,
    /// Permissions for both privileges, for caching.
    pub by_privilege: PrivPerms,
    /// Memory attributes (MAIR-format type and shareability, combined over stages).
    pub attrs: MemAttrs,
    /// Not ASID-tagged (stage-1 nG = 0; always true for stage 2).
    pub global: bool,
    /// Writable-clean (DBM with HD, not yet dirty): `perms` lack W; a write must walk again so
    /// the dirty state is set, rather than fault from a cache.
    pub writable_clean: bool,
    /// For nested walks: the intermediate physical address stage 1 produced.
    pub ipa: Option<u64>,
}

impl WalkResult {
    /// Size in bytes of the matched mapping (a hook-made result with `size_log2` >= 64 reads
    /// as 2^63 rather than overflowing).
    pub const fn size(&self) -> u64 {
        1u64 << if self.size_log2 > 63 {
            63
        } else {
            self.size_log2
        }
    }

    /// Output address of the start of the mapping.
    pub const fn base(&self) -> u64 {
        self.output & !low_mask(self.size_log2)
    }

    /// Bytes from `output` to the end of the mapping (at least 1).
    pub const fn len_from_output(&self) -> u64 {
        self.size() - (self.output & (self.size() - 1))
    }
}

/// Stage-2 translation used by a nested stage-1 walk: `(ipa, access)` to the stage-2
/// [`WalkResult`] or a stage-2 [`WalkFault`]. The walker sets the fault's CLASS and
/// `desc_write`; the hook must check permissions for `access` (as [`walk_stage2`] does).
pub type Stage2Hook<'a> = &'a dyn Fn(u64, AccessKind) -> Result<WalkResult, WalkFault>;

/// Translate `va` through one stage-1 region.
///
/// `privileged` is the transaction's PnU (after any STE.PRIVCFG override) and `access` its
/// direction and instruction/data kind (after STE.INSTCFG). With `s2`, table addresses and the
/// output are IPAs translated through stage 2 (see the module doc).
///
/// # Errors
/// A [`WalkFault`]: stage-1 faults with [`FaultClass::In`], or stage-2 faults from the hook.
#[inline(always)]
pub fn walk_stage1<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    cfg: &Stage1Config,
    va: u64,
    access: AccessKind,
    privileged: bool,
    s2: Option<Stage2Hook<'_>>,
) -> Result<WalkResult, WalkFault> {
    stage1::walk(mem, cfg, va, access, privileged, s2)
}

/// Translate `ipa` through stage 2.
///
/// `privileged` only matters for instruction fetches with FEAT_XNX.
///
/// # Errors
/// A stage-2 [`WalkFault`] with [`FaultClass::In`] and the IPA recorded.
pub fn walk_stage2<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    cfg: &Stage2Config,
    ipa: u64,
    access: AccessKind,
    privileged: bool,
) -> Result<WalkResult, WalkFault> {
    stage2::walk(mem, cfg, ipa, access, privileged)
}
