//! Save and restore of the device state (for VMM snapshots and live migration).
//!
//! A saved state is untrusted input (a file, a migration stream): serde refuses unknown,
//! missing and mistyped fields, and [`Pamu::restore`] refuses register values the device could
//! not hold, so an accepted state is restored exactly (saving right after gives it back).
//!
//! [`PamuState`] is plain serde data. `save` destructures every register store exhaustively, so
//! adding a register is a compile error here until someone decides whether it migrates. Table
//! contents live in guest memory and migrate with it; the model keeps no other state (no cache).

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use viommu_common::mem::GuestRam;

use crate::device::Pamu;
use crate::fault::StatusRegs;
use crate::regfile::LockedRegs;
use crate::spec::regs::{Avs1, Avs2, EccBits, Eeattr, Eectl, Pamubypenr, Pc, Pics, Poes1};

/// One instance's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceState {
    /// PC.
    pub pc: u32,
    /// PPBA, PPLA, SPBA, SPLA, OBA, OLA.
    pub tables: [u64; 6],
    /// AVS1.
    pub avs1: u32,
    /// AVS2.
    pub avs2: u32,
    /// AVAH:AVAL.
    pub ava: u64,
    /// POES1.
    pub poes1: u32,
    /// POES2.
    pub poes2: u32,
    /// POEAH:POEAL.
    pub poea: u64,
    /// PICS.
    pub pics: u32,
    /// EECTL.
    pub eectl: u32,
    /// EEDIS.
    pub eedis: u32,
    /// EEINTEN.
    pub eeinten: u32,
    /// EEDET.
    pub eedet: u32,
    /// EEATTR.
    pub eeattr: u32,
    /// PFA1.
    pub pfa1: u32,
    /// PFA2.
    pub pfa2: u32,
    /// PD1-PD4.
    pub pd: [u32; 4],
}

/// The whole device state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PamuState {
    /// Per-instance registers.
    pub instances: Vec<InstanceState>,
    /// PAMUBYPENR.
    pub bypass: u32,
}

/// A state cannot be restored into this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The state has a different number of instances than the device.
    #[error("state has {state} instances, the device {device}")]
    Instances {
        /// Instances in the state.
        state: usize,
        /// Instances of the device.
        device: usize,
    },
    /// A register value the device could not hold: one its guest-write sanitiser (or, for a
    /// register only the device writes, its defined bits) would change.
    #[error("instance {instance}: {register} = {value:#x} cannot be held by this device")]
    InvalidRegister {
        /// The instance (0 for PAMUBYPENR, which is global).
        instance: usize,
        /// Register name.
        register: &'static str,
        /// Value in the state.
        value: u64,
    },
}

impl InstanceState {
    pub(crate) fn from_parts(
        pc: u32,
        tables: [u64; 6],
        status: &StatusRegs,
        pfa1: u32,
        pfa2: u32,
        pd: [u32; 4],
    ) -> Self {
        let StatusRegs {
            avs1,
            avs2,
            ava,
            poes1,
            poes2,
            poea,
            pics,
            eectl,
            eedis,
            eeinten,
            eedet,
            eeattr,
        } = *status;
        Self {
            pc,
            tables,
            avs1: avs1.into_bits(),
            avs2,
            ava,
            poes1: poes1.into_bits(),
            poes2,
            poea,
            pics: pics.into_bits(),
            eectl: eectl.into_bits(),
            eedis: eedis.into_bits(),
            eeinten: eeinten.into_bits(),
            eedet: eedet.into_bits(),
            eeattr: eeattr.into_bits(),
            pfa1,
            pfa2,
            pd,
        }
    }

    /// The status registers, sanitised to the defined bits (a restored state is guest input
    /// too).
    pub(crate) fn status(&self) -> StatusRegs {
        StatusRegs {
            avs1: Avs1::sanitise(self.avs1),
            avs2: Avs2::sanitise(self.avs2).into_bits(),
            ava: self.ava,
            poes1: Poes1::sanitise(self.poes1),
            poes2: self.poes2,
            poea: self.poea,
            pics: Pics::sanitise(self.pics),
            eectl: Eectl::sanitise(self.eectl),
            eedis: EccBits::sanitise(self.eedis),
            eeinten: EccBits::sanitise(self.eeinten),
            eedet: EccBits::sanitise(self.eedet),
            eeattr: Eeattr::sanitise(self.eeattr),
        }
    }
}

impl InstanceState {
    /// Each register whose value its sanitiser would change (the first is reported): PC and
    /// the status, interrupt and ECC registers. The table registers, PFA1/2, PD1-4, POES2 and
    /// the capture addresses hold any value a guest or a fault can write.
    fn check(&self, instance: usize) -> Result<(), RestoreError> {
        let status = self.status();
        let regs: [(&'static str, u32, u32); 10] = [
            ("PC", self.pc, Pc::sanitise(self.pc).into_bits()),
            ("AVS1", self.avs1, status.avs1.into_bits()),
            ("AVS2", self.avs2, status.avs2),
            ("POES1", self.poes1, status.poes1.into_bits()),
            ("PICS", self.pics, status.pics.into_bits()),
            ("EECTL", self.eectl, status.eectl.into_bits()),
            ("EEDIS", self.eedis, status.eedis.into_bits()),
            ("EEINTEN", self.eeinten, status.eeinten.into_bits()),
            ("EEDET", self.eedet, status.eedet.into_bits()),
            ("EEATTR", self.eeattr, status.eeattr.into_bits()),
        ];
        match regs.into_iter().find(|(_, v, s)| v != s) {
            Some((register, value, _)) => Err(RestoreError::InvalidRegister {
                instance,
                register,
                value: value.into(),
            }),
            None => Ok(()),
        }
    }
}

impl<M: GuestRam> Pamu<M> {
    /// Capture the device state.
    pub fn save(&self) -> PamuState {
        let s = self.lock();
        let instances = self
            .translation
            .iter()
            .zip(s.regs.iter())
            .map(|(h, r)| {
                let LockedRegs {
                    status,
                    pfa1,
                    pfa2,
                    pd,
                } = *r;
                let t = h.table_regs();
                InstanceState::from_parts(
                    h.pc.load(Ordering::Acquire),
                    [t.ppba, t.ppla, t.spba, t.spla, t.oba, t.ola],
                    &status,
                    pfa1,
                    pfa2,
                    pd,
                )
            })
            .collect();
        PamuState {
            instances,
            bypass: self.bypass_register(),
        }
    }

    /// Restore a saved state (registers, PAMUBYPENR), then drive the interrupt lines to match.
    /// A state is untrusted input: it is restored exactly, or refused.
    ///
    /// # Errors
    /// [`RestoreError::Instances`] if the instance counts differ, [`RestoreError::InvalidRegister`]
    /// for a register value the device could not hold (reserved bits, bypass bits of
    /// instances it lacks); nothing changes then.
    pub fn restore(&self, state: &PamuState) -> Result<(), RestoreError> {
        if state.instances.len() != self.translation.len() {
            return Err(RestoreError::Instances {
                state: state.instances.len(),
                device: self.translation.len(),
            });
        }
        for (i, st) in state.instances.iter().enumerate() {
            st.check(i)?;
        }
        if Pamubypenr::sanitise(state.bypass, self.caps.instances).0 != state.bypass {
            return Err(RestoreError::InvalidRegister {
                instance: 0,
                register: "PAMUBYPENR",
                value: state.bypass.into(),
            });
        }
        let mut s = self.lock();
        for ((h, r), st) in self
            .translation
            .iter()
            .zip(s.regs.iter_mut())
            .zip(&state.instances)
        {
            // Release: pairs with the Acquire loads of a translation (`Pamu::probe`).
            h.pc.store(Pc::sanitise(st.pc).into_bits(), Ordering::Release);
            for (a, v) in h.tables.iter().zip(st.tables) {
                a.store(v, Ordering::Release);
            }
            *r = LockedRegs {
                status: st.status(),
                pfa1: st.pfa1,
                pfa2: st.pfa2,
                pd: st.pd,
            };
        }
        let bypass = Pamubypenr::sanitise(state.bypass, self.caps.instances);
        self.bypass.store(bypass.0, Ordering::Release);
        self.update_lines_locked(&mut s);
        Ok(())
    }
}
