//! MMIO decode (IHI 0070 §6.2): `(offset, size)` to the register it addresses.
//!
//! Pure and side-effect free: [`decode`] names the register and which part of it an access
//! covers; the device applies the effect. Access rules (IHI 0070 §6.2):
//!
//! - aligned 32-bit accesses to any register, including either half of a 64-bit register (the
//!   half is merged into the 64-bit value);
//! - aligned 64-bit accesses to the 64-bit registers `GERROR_IRQ_CFG0` (0x68), `STRTAB_BASE`
//!   (0x80), `CMDQ_BASE` (0x90), `EVENTQ_BASE` (0xA0), `EVENTQ_IRQ_CFG0` (0xB0), `PRIQ_BASE`
//!   (0xC0) and `PRIQ_IRQ_CFG0` (0xD0), which Linux writes with single `writeq` stores;
//! - **Policy:** a 64-bit access spanning two 32-bit registers, 8/16-bit or unaligned accesses
//!   are refused ([`MmioError::BadAccessSize`]: reads as zero, writes ignored).
//!
//! **Policy:** page 1 is a full alias of page 0 (QEMU does the same); Linux only uses it for the
//! event/PRI queue PROD/CONS registers at 0x100A8/0x100AC/0x100C8/0x100CC.

use viommu_common::reg64::Half;
use viommu_common::traits::MmioError;

use crate::spec::regs as r;

/// A register of the non-secure register file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// IDR0..IDR5 (index 0..=5).
    Idr(u8),
    /// IIDR.
    Iidr,
    /// AIDR.
    Aidr,
    /// CR0.
    Cr0,
    /// CR0ACK.
    Cr0Ack,
    /// CR1.
    Cr1,
    /// CR2.
    Cr2,
    /// STATUSR.
    Statusr,
    /// GBPA.
    Gbpa,
    /// AGBPA (IMPLEMENTATION DEFINED; RAZ/WI here).
    Agbpa,
    /// IRQ_CTRL.
    IrqCtrl,
    /// IRQ_CTRLACK.
    IrqCtrlAck,
    /// GERROR.
    Gerror,
    /// GERRORN.
    Gerrorn,
    /// `<source>_IRQ_CFG0` (64-bit MSI address).
    IrqCfg0(IrqSource),
    /// `<source>_IRQ_CFG1` (MSI data).
    IrqCfg1(IrqSource),
    /// `<source>_IRQ_CFG2` (MSI attributes).
    IrqCfg2(IrqSource),
    /// STRTAB_BASE (64-bit).
    StrtabBase,
    /// STRTAB_BASE_CFG.
    StrtabBaseCfg,
    /// `<queue>_BASE` (64-bit).
    QueueBase(Queue),
    /// `<queue>_PROD`.
    QueueProd(Queue),
    /// `<queue>_CONS`.
    QueueCons(Queue),
    /// Reads as zero, writes ignored: Secure bank, GATOS without ATOS, IMPLEMENTATION DEFINED
    /// and unallocated offsets.
    RazWi,
}

/// An interrupt source with its own `*_IRQ_CFG0/1/2` registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqSource {
    /// Global errors.
    Gerror,
    /// Event queue.
    Eventq,
    /// PRI queue.
    Priq,
}

/// One of the three queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Command queue (16-byte entries, page 0 PROD/CONS).
    Cmdq,
    /// Event queue (32-byte entries, PROD/CONS in page 1).
    Eventq,
    /// PRI queue (16-byte entries, PROD/CONS in page 1).
    Priq,
}

/// Which bytes of a register an access covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The whole register (32-bit access to a 32-bit register, 64-bit to a 64-bit one).
    Full,
    /// One 32-bit half of a 64-bit register (bits \[31:0\] or \[63:32\]).
    Half(Half),
}

/// A decoded MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// The register addressed.
    pub reg: Register,
    /// The part of it covered.
    pub part: Part,
}

impl Register {
    /// True for the 64-bit registers (`*_BASE`, `*_IRQ_CFG0`).
    pub const fn is_64bit(self) -> bool {
        matches!(
            self,
            Register::IrqCfg0(_) | Register::StrtabBase | Register::QueueBase(_)
        )
    }
}

/// Name a register from its page-0 offset (aligned to the register's start).
fn register_at(off: u64) -> Register {
    use Register::*;
    match off {
        r::IDR0..=r::IDR5 if off % 4 == 0 => Idr((off / 4) as u8),
        r::IIDR => Iidr,
        r::AIDR => Aidr,
        r::CR0 => Cr0,
        r::CR0ACK => Cr0Ack,
        r::CR1 => Cr1,
        r::CR2 => Cr2,
        r::STATUSR => Statusr,
        r::GBPA => Gbpa,
        r::AGBPA => Agbpa,
        r::IRQ_CTRL => IrqCtrl,
        r::IRQ_CTRLACK => IrqCtrlAck,
        r::GERROR => Gerror,
        r::GERRORN => Gerrorn,
        r::GERROR_IRQ_CFG0 => IrqCfg0(IrqSource::Gerror),
        r::GERROR_IRQ_CFG1 => IrqCfg1(IrqSource::Gerror),
        r::GERROR_IRQ_CFG2 => IrqCfg2(IrqSource::Gerror),
        r::STRTAB_BASE => StrtabBase,
        r::STRTAB_BASE_CFG => StrtabBaseCfg,
        r::CMDQ_BASE => QueueBase(Queue::Cmdq),
        r::CMDQ_PROD => QueueProd(Queue::Cmdq),
        r::CMDQ_CONS => QueueCons(Queue::Cmdq),
        r::EVENTQ_BASE => QueueBase(Queue::Eventq),
        r::EVENTQ_PROD => QueueProd(Queue::Eventq),
        r::EVENTQ_CONS => QueueCons(Queue::Eventq),
        r::EVENTQ_IRQ_CFG0 => IrqCfg0(IrqSource::Eventq),
        r::EVENTQ_IRQ_CFG1 => IrqCfg1(IrqSource::Eventq),
        r::EVENTQ_IRQ_CFG2 => IrqCfg2(IrqSource::Eventq),
        r::PRIQ_BASE => QueueBase(Queue::Priq),
        r::PRIQ_PROD => QueueProd(Queue::Priq),
        r::PRIQ_CONS => QueueCons(Queue::Priq),
        r::PRIQ_IRQ_CFG0 => IrqCfg0(IrqSource::Priq),
        r::PRIQ_IRQ_CFG1 => IrqCfg1(IrqSource::Priq),
        r::PRIQ_IRQ_CFG2 => IrqCfg2(IrqSource::Priq),
        _ => RazWi,
    }
}

/// Decode an access of `size` bytes at `offset` into the device's region.
///
/// # Errors
/// [`MmioError::OutOfRange`] beyond the 128 KiB region; [`MmioError::BadAccessSize`] for access
/// sizes and alignments the architecture does not allow (see the module documentation).
pub fn decode(offset: u64, size: usize) -> Result<Access, MmioError> {
    if offset >= r::REGION_SIZE {
        return Err(MmioError::OutOfRange { offset });
    }
    let bad = MmioError::BadAccessSize { offset, size };
    // Policy: page 1 aliases page 0.
    let off = offset % r::PAGE_SIZE;
    match size {
        4 if off % 4 == 0 => {
            let whole = register_at(off);
            if whole.is_64bit() {
                return Ok(Access {
                    reg: whole,
                    part: Part::Half(Half::Low),
                });
            }
            if let Some(lo) = off.checked_sub(4) {
                let below = register_at(lo);
                if below.is_64bit() {
                    return Ok(Access {
                        reg: below,
                        part: Part::Half(Half::High),
                    });
                }
            }
            Ok(Access {
                reg: whole,
                part: Part::Full,
            })
        }
        8 if off % 8 == 0 => {
            let reg = register_at(off);
            if reg.is_64bit() {
                Ok(Access {
                    reg,
                    part: Part::Full,
                })
            } else if reg == Register::RazWi && register_at(off + 4) == Register::RazWi {
                // Nothing there in either half: RAZ/WI like any unallocated offset.
                Ok(Access {
                    reg,
                    part: Part::Full,
                })
            } else {
                Err(bad)
            }
        }
        _ => Err(bad),
    }
}

impl Part {
    /// The value a read of this part returns, from the register's full value.
    pub const fn extract(self, full: u64) -> u64 {
        match self {
            Part::Full => full,
            Part::Half(h) => h.read(full) as u64,
        }
    }

    /// The register's new full value after writing `value` to this part of `old` (a half
    /// write carries 32 bits; the other half keeps its value).
    pub const fn merge(self, old: u64, value: u64) -> u64 {
        match self {
            Part::Full => value,
            Part::Half(h) => h.merge(old, value as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(offset: u64, size: usize) -> Access {
        decode(offset, size).expect("decodes")
    }

    /// Linux's 64-bit stores at 0x68, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0 each hit one 64-bit
    /// register as a whole.
    #[test]
    fn test_linux_writeq_offsets_are_full_64bit_registers() {
        let expect = [
            (0x68, Register::IrqCfg0(IrqSource::Gerror)),
            (0x80, Register::StrtabBase),
            (0x90, Register::QueueBase(Queue::Cmdq)),
            (0xA0, Register::QueueBase(Queue::Eventq)),
            (0xB0, Register::IrqCfg0(IrqSource::Eventq)),
            (0xC0, Register::QueueBase(Queue::Priq)),
            (0xD0, Register::IrqCfg0(IrqSource::Priq)),
        ];
        for (off, r) in expect {
            assert_eq!(
                reg(off, 8),
                Access {
                    reg: r,
                    part: Part::Full
                }
            );
        }
    }

    /// 32-bit accesses to either half of a 64-bit register are merged halves.
    #[test]
    fn test_32bit_halves_of_64bit_registers() {
        let (low, high) = (Part::Half(Half::Low), Part::Half(Half::High));
        assert_eq!(reg(0x80, 4).part, low);
        assert_eq!(
            reg(0x84, 4),
            Access {
                reg: Register::StrtabBase,
                part: high
            }
        );
        assert_eq!(reg(0x6C, 4).reg, Register::IrqCfg0(IrqSource::Gerror));
        assert_eq!(reg(0x6C, 4).part, high);
        assert_eq!(high.merge(0x1111_2222, 0x3333), 0x3333_1111_2222);
        assert_eq!(low.merge(0xAAAA_0000_0000, 0x5), 0xAAAA_0000_0005);
        assert_eq!(high.extract(0x1234_5678_9ABC_DEF0), 0x1234_5678);
        assert_eq!(Part::Full.merge(0x1111, 0x2222_3333_4444), 0x2222_3333_4444);
    }

    /// Page 1 holds the event/PRI queue PROD/CONS (and aliases everything else).
    #[test]
    fn test_page1_queue_registers() {
        assert_eq!(reg(0x100A8, 4).reg, Register::QueueProd(Queue::Eventq));
        assert_eq!(reg(0x100AC, 4).reg, Register::QueueCons(Queue::Eventq));
        assert_eq!(reg(0x100C8, 4).reg, Register::QueueProd(Queue::Priq));
        assert_eq!(reg(0x100CC, 4).reg, Register::QueueCons(Queue::Priq));
        assert_eq!(reg(0x98, 4).reg, Register::QueueProd(Queue::Cmdq));
        assert_eq!(reg(0x9C, 4).reg, Register::QueueCons(Queue::Cmdq));
        assert_eq!(reg(0x10020, 4).reg, Register::Cr0);
    }

    /// 32-bit registers: the whole register, with Full part.
    #[test]
    fn test_32bit_registers() {
        assert_eq!(reg(0x0, 4).reg, Register::Idr(0));
        assert_eq!(reg(0x14, 4).reg, Register::Idr(5));
        assert_eq!(reg(0x20, 4).reg, Register::Cr0);
        assert_eq!(reg(0x24, 4).reg, Register::Cr0Ack);
        assert_eq!(reg(0x44, 4).reg, Register::Gbpa);
        assert_eq!(reg(0x64, 4).reg, Register::Gerrorn);
        assert_eq!(reg(0x70, 4).reg, Register::IrqCfg1(IrqSource::Gerror));
        assert_eq!(reg(0xBC, 4).reg, Register::IrqCfg2(IrqSource::Eventq));
        assert_eq!(reg(0x88, 4).part, Part::Full);
    }

    /// Secure bank, GATOS, IMPDEF ID space are RAZ/WI; bad sizes and offsets are refused.
    #[test]
    fn test_unallocated_and_bad_accesses() {
        assert_eq!(reg(0x8000, 4).reg, Register::RazWi);
        assert_eq!(reg(0x803C, 4).reg, Register::RazWi);
        assert_eq!(reg(0x100, 4).reg, Register::RazWi);
        assert_eq!(reg(0xFD0, 4).reg, Register::RazWi);
        assert_eq!(reg(0x8000, 8).reg, Register::RazWi);
        // 64-bit over CR0 + CR0ACK spans two 32-bit registers.
        assert!(matches!(
            decode(0x20, 8),
            Err(MmioError::BadAccessSize { .. })
        ));
        assert!(decode(0x84, 8).is_err());
        assert!(decode(0x21, 4).is_err());
        assert!(decode(0x20, 2).is_err());
        assert!(decode(0x20, 1).is_err());
        assert!(decode(0x20, 0).is_err());
        assert_eq!(
            decode(0x20000, 4),
            Err(MmioError::OutOfRange { offset: 0x20000 })
        );
        assert!(decode(u64::MAX, 8).is_err());
    }
}
