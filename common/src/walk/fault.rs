//! Typed walk faults (Arm ARM D8.15 "MMU faults"; IHI 0070 §3.12, §7.3).
//!
//! A walk returns a [`WalkFault`]: what went wrong ([`WalkFaultKind`]), at which stage and
//! lookup level, and the context an SMMU event record needs (CLASS, faulting IPA, whether a
//! stage-2 fault happened on a stage-1 descriptor read or write). The device crate turns it into
//! its wire record (`F_TRANSLATION`, `F_ADDR_SIZE`, `F_ACCESS`, `F_PERMISSION`, `F_WALK_EABT`) in
//! one place; the walker never encodes events.

use crate::traits::FaultKind;

use super::config::ConfigError;

/// Translation stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Stage 1 (VA -> IPA/PA, context descriptor tables).
    S1,
    /// Stage 2 (IPA -> PA, STE/VTTB tables).
    S2,
}

impl Stage {
    /// 1 or 2.
    pub const fn number(self) -> u8 {
        match self {
            Stage::S1 => 1,
            Stage::S2 => 2,
        }
    }
}

/// What the faulting access was doing (the CLASS field of an SMMU event record, IHI 0070 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultClass {
    /// Fetching a context descriptor (set by the device crate, never by the walker).
    Cd,
    /// Fetching or updating a stage-1 translation table descriptor (only stage-2 faults of a
    /// nested walk carry this class).
    Tt,
    /// Translating the input address itself (every stage-1 fault, and stage-2 faults on the
    /// final output of stage 1 or of a stage-2-only translation).
    In,
}

/// Why a walk failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WalkFaultKind {
    /// Invalid or reserved descriptor, or an input address outside the configured range.
    #[error("translation fault")]
    Translation,
    /// A table base, next-level table or output address beyond the configured output size.
    #[error("address size fault")]
    AddressSize,
    /// Access flag clear, hardware update (HA) disabled and AFFD clear.
    #[error("access flag fault")]
    AccessFlag,
    /// The mapping does not permit the access.
    #[error("permission fault")]
    Permission,
    /// A descriptor fetch (or HTTU update) hit an address outside guest RAM.
    #[error("external abort on descriptor access at {fetch_addr:#x}")]
    ExternalAbort {
        /// Physical address of the descriptor access that aborted.
        fetch_addr: u64,
    },
    /// The configuration itself is invalid; callers should have rejected it with
    /// [`Stage1Config::validate`](super::Stage1Config::validate) /
    /// [`Stage2Config::validate`](super::Stage2Config::validate) (C_BAD_CD / C_BAD_STE).
    #[error("invalid configuration: {0}")]
    InvalidConfig(ConfigError),
}

/// A failed walk, with everything an SMMU event record or a PAMU fault register needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("stage-{} {kind} at level {level}", stage.number())]
pub struct WalkFault {
    /// What went wrong.
    pub kind: WalkFaultKind,
    /// Which stage faulted.
    pub stage: Stage,
    /// Lookup level of the fault (0..=3). Input-range and table-base faults report level 0,
    /// as the Arm ARM does.
    pub level: u8,
    /// What was being translated when the fault happened (see [`FaultClass`]).
    pub class: FaultClass,
    /// For stage-2 faults: the IPA whose translation faulted (a stage-1 descriptor address for
    /// [`FaultClass::Tt`], the stage-1 output for [`FaultClass::In`]). `None` for stage 1.
    pub ipa: Option<u64>,
    /// The faulting access was a write to a descriptor (a hardware access-flag/dirty update of a
    /// stage-1 descriptor under nesting): an SMMU records TTRnW = 0. False for descriptor reads
    /// and for input-address faults.
    pub desc_write: bool,
}

impl WalkFault {
    /// A fault of `kind` at `stage`/`level` on the input address (CLASS = IN, no IPA).
    pub const fn new(kind: WalkFaultKind, stage: Stage, level: u8) -> Self {
        Self {
            kind,
            stage,
            level,
            class: FaultClass::In,
            ipa: None,
            desc_write: false,
        }
    }

    /// The same fault with another CLASS (the device crate uses this for CD fetches).
    pub const fn with_class(mut self, class: FaultClass) -> Self {
        self.class = class;
        self
    }

    /// The same fault with the faulting IPA recorded.
    pub const fn with_ipa(mut self, ipa: u64) -> Self {
        self.ipa = Some(ipa);
        self
    }

    /// The architecture-neutral class of this fault (for [`crate::traits::DmaFault`]).
    pub const fn fault_kind(&self) -> FaultKind {
        match self.kind {
            WalkFaultKind::Translation => FaultKind::Translation,
            WalkFaultKind::AddressSize => FaultKind::AddressSize,
            WalkFaultKind::AccessFlag => FaultKind::AccessFlag,
            WalkFaultKind::Permission => FaultKind::Permission,
            WalkFaultKind::ExternalAbort { .. } => FaultKind::ExternalAbort,
            WalkFaultKind::InvalidConfig(_) => FaultKind::Configuration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The display form names the stage, the kind and the level.
    #[test]
    fn test_walk_fault_display() {
        let f = WalkFault::new(WalkFaultKind::Translation, Stage::S2, 3).with_ipa(0x1000);
        assert_eq!(f.to_string(), "stage-2 translation fault at level 3");
        assert_eq!(f.ipa, Some(0x1000));
        assert_eq!(f.fault_kind(), FaultKind::Translation);
        let e = WalkFault::new(
            WalkFaultKind::ExternalAbort { fetch_addr: 0x40 },
            Stage::S1,
            1,
        );
        assert_eq!(e.fault_kind(), FaultKind::ExternalAbort);
        assert_eq!(e.with_class(FaultClass::Cd).class, FaultClass::Cd);
    }
}
