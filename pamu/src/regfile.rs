//! The device's register storage, split by who reads it.
//!
//! - [`TranslationRegs`]: what a translation reads (PC and the six table base/limit registers
//!   of each instance), as atomics, so the DMA path takes no lock. PAMUBYPENR, the other
//!   register translation reads, is an atomic in the device itself.
//! - [`LockedState`]: everything else (status, interrupt, ECC and storage registers of all
//!   instances, and the two line levels), behind one mutex taken by register accesses and fault
//!   capture only. It keeps "latch fault, recompute line levels, signal the sink" atomic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use viommu_common::reg64::Half;

use crate::fault::StatusRegs;
use crate::paact::TableRegs;
use crate::spec::regs::Pamubypenr;

/// The registers a translation reads, per instance: PC and the six table base/limit
/// registers. Each is an independent atomic: a guest writing a 64-bit base as two 32-bit
/// halves can be observed half-updated, as on hardware.
#[derive(Debug, Default)]
pub(crate) struct TranslationRegs {
    /// PC.
    pub(crate) pc: AtomicU32,
    /// PPBA, PPLA, SPBA, SPLA, OBA, OLA (high and low halves combined).
    pub(crate) tables: [AtomicU64; 6],
    /// This instance's PAMUBYPENR bit ([`Pamubypenr::bit`]), a constant.
    pub(crate) bypass_bit: u32,
}

impl TranslationRegs {
    /// The reset registers of instance `inst`.
    pub(crate) fn new(inst: u8) -> Self {
        Self {
            bypass_bit: Pamubypenr::bit(inst),
            ..Self::default()
        }
    }

    #[inline(always)]
    pub(crate) fn table_regs(&self) -> TableRegs {
        // Acquire pairs with the Release store in `set_half`, so a translation that sees a new
        // base also sees the table memory the guest wrote before programming it.
        let l = |i: usize| self.tables[i].load(Ordering::Acquire);
        TableRegs {
            ppba: l(0),
            ppla: l(1),
            spba: l(2),
            spla: l(3),
            oba: l(4),
            ola: l(5),
        }
    }

    /// PPBA and PPLA only (what the translation hit path needs), loaded as in `table_regs`.
    #[inline(always)]
    pub(crate) fn primary_table(&self) -> (u64, u64) {
        (
            self.tables[0].load(Ordering::Acquire),
            self.tables[1].load(Ordering::Acquire),
        )
    }

    pub(crate) fn set_half(&self, idx: usize, half: Half, v: u32) {
        // Relaxed: writers are serialised by `Pamu::locked`, so this reads our own last store.
        let old = self.tables[idx].load(Ordering::Relaxed);
        // Release: see `table_regs`. Writers are serialised by `Pamu::locked`.
        self.tables[idx].store(half.merge(old, v), Ordering::Release);
    }

    pub(crate) fn half(&self, idx: usize, half: Half) -> u32 {
        half.read(self.tables[idx].load(Ordering::Acquire))
    }
}

/// The registers of one instance that translation does not read; they sit behind the device
/// mutex.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LockedRegs {
    /// Fault status, interrupt control and ECC registers.
    pub(crate) status: StatusRegs,
    /// PFA1 (storage).
    pub(crate) pfa1: u32,
    /// PFA2 (storage).
    pub(crate) pfa2: u32,
    /// PD1-PD4 (storage).
    pub(crate) pd: [u32; 4],
}

/// Everything behind the device mutex: each instance's [`LockedRegs`] and the levels last
/// driven on the two interrupt lines.
#[derive(Debug, Default)]
pub(crate) struct LockedState {
    /// Per instance.
    pub(crate) regs: Vec<LockedRegs>,
    /// Level of the access-violation line.
    pub(crate) av_level: bool,
    /// Level of the operation-error / ECC line.
    pub(crate) err_level: bool,
}
