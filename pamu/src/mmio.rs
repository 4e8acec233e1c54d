//! Register effects: a decoded register access ([`Reg`]) applied to the device, and the
//! big-endian MMIO region of all instances (instance *i* at `i * INSTANCE_STRIDE`).
//!
//! Decoding an offset is pure ([`Reg::decode`]); the values a write stores are the pure
//! sanitisers beside each register type in [`crate::spec::regs`]. This module only applies them.

use std::sync::atomic::Ordering;

use viommu_common::mem::GuestRam;
use viommu_common::reg64::Half;
use viommu_common::traits::{MmioDevice, MmioError};

use crate::device::Pamu;
use crate::spec::regs::{EccBits, Eectl, Pc, Reg, INSTANCE_STRIDE};
use crate::trace::PamuEvent;

/// A register access outcome that the guest may observe and the VMM may log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegOp {
    Read,
    Write(u32),
}

impl<M: GuestRam> Pamu<M> {
    /// Read register `reg` of instance `inst` (32-bit value).
    pub fn read_reg(&self, inst: u8, reg: Reg) -> u32 {
        self.reg_access(inst, reg, RegOp::Read)
    }

    /// Write register `reg` of instance `inst` with its architectural side effects.
    pub fn write_reg(&self, inst: u8, reg: Reg, v: u32) {
        self.reg_access(inst, reg, RegOp::Write(v));
    }

    fn reg_access(&self, inst: u8, reg: Reg, op: RegOp) -> u32 {
        let Some(tr) = self.translation.get(usize::from(inst)) else {
            return 0;
        };
        let mut s = self.lock();
        let Some(r) = s.regs.get_mut(usize::from(inst)) else {
            return 0;
        };
        let table = |i: usize, half: Half| match op {
            RegOp::Read => tr.half(i, half),
            RegOp::Write(v) => {
                // Policy: a base write invalidates cached table entries on hardware (the
                // Freescale hypervisor sets PC.OCE first for erratum A-005982); the model caches
                // nothing, so there is nothing to flush.
                tr.set_half(i, half, v);
                v
            }
        };
        let st = &mut r.status;
        let value = match (reg, op) {
            (Reg::Ppbah, _) => table(0, Half::High),
            (Reg::Ppbal, _) => table(0, Half::Low),
            (Reg::Pplah, _) => table(1, Half::High),
            (Reg::Pplal, _) => table(1, Half::Low),
            (Reg::Spbah, _) => table(2, Half::High),
            (Reg::Spbal, _) => table(2, Half::Low),
            (Reg::Splah, _) => table(3, Half::High),
            (Reg::Splal, _) => table(3, Half::Low),
            (Reg::Obah, _) => table(4, Half::High),
            (Reg::Obal, _) => table(4, Half::Low),
            (Reg::Olah, _) => table(5, Half::High),
            (Reg::Olal, _) => table(5, Half::Low),
            (Reg::Pc, RegOp::Write(v)) => {
                // Reserved bits read as zero; cache enables are stored and have no effect.
                // Release: pairs with the Acquire in `Pamu::control` (device.rs).
                let pc = Pc::sanitise(v).into_bits();
                tr.pc.store(pc, Ordering::Release);
                pc
            }
            (Reg::Pc, RegOp::Read) => tr.pc.load(Ordering::Acquire),
            (Reg::Pics, RegOp::Write(v)) => {
                st.write_pics(v);
                st.pics.into_bits()
            }
            (Reg::Pics, RegOp::Read) => st.pics.into_bits(),
            (Reg::Avs1, RegOp::Write(v)) => {
                st.write_avs1(v);
                st.avs1.into_bits()
            }
            (Reg::Avs1, RegOp::Read) => st.avs1.into_bits(),
            (Reg::Poes1, RegOp::Write(v)) => {
                st.write_poes1(v);
                st.poes1.into_bits()
            }
            (Reg::Poes1, RegOp::Read) => st.poes1.into_bits(),
            // Policy: capture registers are read-only.
            (Reg::Avs2, _) => st.avs2,
            (Reg::Avah, _) => Half::High.read(st.ava),
            (Reg::Aval, _) => Half::Low.read(st.ava),
            (Reg::Poes2, _) => st.poes2,
            (Reg::Poeah, _) => Half::High.read(st.poea),
            (Reg::Poeal, _) => Half::Low.read(st.poea),
            // Policy (ECC block): control registers are storage (defined bits only), EEDET and
            // EEATTR.valid are W1C, the capture registers read 0: the model never sees an ECC
            // error.
            (Reg::Eectl, RegOp::Write(v)) => {
                st.eectl = Eectl::sanitise(v);
                st.eectl.into_bits()
            }
            (Reg::Eectl, RegOp::Read) => st.eectl.into_bits(),
            (Reg::Eedis, RegOp::Write(v)) => {
                st.eedis = EccBits::sanitise(v);
                st.eedis.into_bits()
            }
            (Reg::Eedis, RegOp::Read) => st.eedis.into_bits(),
            (Reg::Eeinten, RegOp::Write(v)) => {
                st.eeinten = EccBits::sanitise(v);
                st.eeinten.into_bits()
            }
            (Reg::Eeinten, RegOp::Read) => st.eeinten.into_bits(),
            (Reg::Eedet, RegOp::Write(v)) => {
                st.eedet = st.eedet.write_one_to_clear(v);
                st.eedet.into_bits()
            }
            (Reg::Eedet, RegOp::Read) => st.eedet.into_bits(),
            (Reg::Eeattr, RegOp::Write(v)) => {
                st.eeattr = st.eeattr.write(v);
                st.eeattr.into_bits()
            }
            (Reg::Eeattr, RegOp::Read) => st.eeattr.into_bits(),
            (Reg::Eeahi | Reg::Eealo | Reg::Eedhi | Reg::Eedlo | Reg::Eecc, _) => 0,
            // Policy: UDAD reads 0 (meaning unknown).
            (Reg::Udad, _) => 0,
            (Reg::Pr1, _) => self.caps.pr1.into_bits(),
            (Reg::Pr2, _) => self.caps.pr2,
            (Reg::Pc2, _) => self.caps.pc2.into_bits(),
            (Reg::Pc3, _) => self.caps.pc3.into_bits(),
            (Reg::Pc1 | Reg::Pc4, _) => 0,
            (Reg::Pfa1, RegOp::Write(v)) => {
                r.pfa1 = v;
                v
            }
            (Reg::Pfa1, RegOp::Read) => r.pfa1,
            (Reg::Pfa2, RegOp::Write(v)) => {
                r.pfa2 = v;
                v
            }
            (Reg::Pfa2, RegOp::Read) => r.pfa2,
            (Reg::Pd1 | Reg::Pd2 | Reg::Pd3 | Reg::Pd4, op) => {
                let i = match reg {
                    Reg::Pd1 => 0,
                    Reg::Pd2 => 1,
                    Reg::Pd3 => 2,
                    _ => 3,
                };
                if let RegOp::Write(v) = op {
                    r.pd[i] = v;
                }
                r.pd[i]
            }
        };
        match op {
            RegOp::Read => self.trace(PamuEvent::RegRead {
                instance: inst,
                reg,
                value,
            }),
            RegOp::Write(v) => {
                self.trace(PamuEvent::RegWrite {
                    instance: inst,
                    reg,
                    value: v,
                });
                self.update_lines_locked(&mut s);
            }
        }
        value
    }

    /// Apply a 32-bit access at `offset` of the MMIO region.
    fn access32(&self, offset: u64, op: RegOp) -> u32 {
        let inst = offset / INSTANCE_STRIDE;
        let Ok(inst) = u8::try_from(inst) else {
            return 0;
        };
        if inst >= self.caps.instances {
            return 0;
        }
        match Reg::decode(offset % INSTANCE_STRIDE) {
            Some(reg) => self.reg_access(inst, reg, op),
            // Policy: unnamed offsets inside the block read as zero and ignore writes.
            None => 0,
        }
    }

    fn check_access(&self, offset: u64, size: usize) -> Result<(), MmioError> {
        if offset.saturating_add(size as u64) > self.caps.mmio_size() {
            return Err(MmioError::OutOfRange { offset });
        }
        // Policy: 32-bit accesses, and 64-bit accesses as two big-endian registers
        // (high word at the lower offset); both naturally aligned.
        if !(size == 4 || size == 8) || offset % size as u64 != 0 {
            return Err(MmioError::BadAccessSize { offset, size });
        }
        Ok(())
    }
}

impl<M: GuestRam> MmioDevice for Pamu<M> {
    fn mmio_size(&self) -> u64 {
        self.caps.mmio_size()
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        self.check_access(offset, data.len())?;
        for (i, chunk) in data.chunks_exact_mut(4).enumerate() {
            let v = self.access32(offset + 4 * i as u64, RegOp::Read);
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        self.check_access(offset, data.len())?;
        for (i, chunk) in data.chunks_exact(4).enumerate() {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            self.access32(offset + 4 * i as u64, RegOp::Write(u32::from_be_bytes(b)));
        }
        Ok(())
    }
}
