//! Decode of the TLB invalidations (IHI 0070 chapter 4): TLBI_NH_*, TLBI_EL2_*, TLBI_EL3_*
//! (refused: Secure queue only), TLBI_S12_VMALL, TLBI_S2_IPA and TLBI_NSNH_ALL, with the range
//! fields (NUM, SCALE, TG, TTL) of the address-based forms.

use viommu_common::id::{Asid, Vmid};

use super::{reject_res0, require_feature, Command, CommandError};
use crate::caps::Caps;
use crate::cmdq::command::TlbiRange;
use crate::spec::cmd::{CmdTlbiW0, CmdTlbiW1, Opcode};

/// Which optional parts of a TLBI word 0 a command defines.
#[derive(Clone, Copy)]
struct TlbiFields {
    vmid: bool,
    asid: bool,
    range: bool,
}

const fn fields(vmid: bool, asid: bool, range: bool) -> TlbiFields {
    TlbiFields { vmid, asid, range }
}

/// Decode a command of this family (`op` is one of its opcodes).
pub(super) fn decode(op: Opcode, w0: u64, w1: u64, caps: &Caps) -> Result<Command, CommandError> {
    Ok(match op {
        Opcode::TLBI_NH_ALL => {
            require_feature(op, caps.s1(), "IDR0.S1P")?;
            let w = tlbi_w0(op, w0, fields(true, false, false), caps)?;
            reject_res0(op, 1, w1, 0)?;
            Command::TlbiNhAll {
                vmid: Vmid(w.vmid()),
            }
        }
        Opcode::TLBI_NH_ASID => {
            require_feature(op, caps.s1(), "IDR0.S1P")?;
            let w = tlbi_w0(op, w0, fields(true, true, false), caps)?;
            reject_res0(op, 1, w1, 0)?;
            Command::TlbiNhAsid {
                vmid: Vmid(w.vmid()),
                asid: Asid(w.asid()),
            }
        }
        Opcode::TLBI_NH_VA => {
            require_feature(op, caps.s1(), "IDR0.S1P")?;
            let w = tlbi_w0(op, w0, fields(true, true, true), caps)?;
            Command::TlbiNhVa {
                vmid: Vmid(w.vmid()),
                asid: Asid(w.asid()),
                range: tlbi_range(op, w, w1, caps, false)?,
            }
        }
        Opcode::TLBI_NH_VAA => {
            require_feature(op, caps.s1(), "IDR0.S1P")?;
            let w = tlbi_w0(op, w0, fields(true, false, true), caps)?;
            Command::TlbiNhVaa {
                vmid: Vmid(w.vmid()),
                range: tlbi_range(op, w, w1, caps, false)?,
            }
        }
        Opcode::TLBI_EL3_ALL | Opcode::TLBI_EL3_VA => {
            return Err(CommandError::Unsupported {
                opcode: op,
                feature: "the EL3 regime (Secure queue only)",
            })
        }
        Opcode::TLBI_EL2_ALL => {
            require_feature(op, caps.hyp(), "IDR0.HYP")?;
            tlbi_w0(op, w0, fields(false, false, false), caps)?;
            reject_res0(op, 1, w1, 0)?;
            Command::TlbiEl2All
        }
        Opcode::TLBI_EL2_ASID => {
            require_feature(op, caps.hyp(), "IDR0.HYP")?;
            let w = tlbi_w0(op, w0, fields(false, true, false), caps)?;
            reject_res0(op, 1, w1, 0)?;
            Command::TlbiEl2Asid {
                asid: Asid(w.asid()),
            }
        }
        Opcode::TLBI_EL2_VA => {
            require_feature(op, caps.hyp(), "IDR0.HYP")?;
            let w = tlbi_w0(op, w0, fields(false, true, true), caps)?;
            Command::TlbiEl2Va {
                asid: Asid(w.asid()),
                range: tlbi_range(op, w, w1, caps, false)?,
            }
        }
        Opcode::TLBI_EL2_VAA => {
            require_feature(op, caps.hyp(), "IDR0.HYP")?;
            let w = tlbi_w0(op, w0, fields(false, false, true), caps)?;
            Command::TlbiEl2Vaa {
                range: tlbi_range(op, w, w1, caps, false)?,
            }
        }
        Opcode::TLBI_S12_VMALL => {
            require_feature(op, caps.s2(), "IDR0.S2P")?;
            let w = tlbi_w0(op, w0, fields(true, false, false), caps)?;
            reject_res0(op, 1, w1, 0)?;
            Command::TlbiS12Vmall {
                vmid: Vmid(w.vmid()),
            }
        }
        Opcode::TLBI_S2_IPA => {
            require_feature(op, caps.s2(), "IDR0.S2P")?;
            let w = tlbi_w0(op, w0, fields(true, false, true), caps)?;
            Command::TlbiS2Ipa {
                vmid: Vmid(w.vmid()),
                range: tlbi_range(op, w, w1, caps, true)?,
            }
        }
        Opcode::TLBI_NSNH_ALL => {
            tlbi_w0(op, w0, fields(false, false, false), caps)?;
            reject_res0(op, 1, w1, 0)?;
            Command::TlbiNsnhAll
        }
        Opcode(other) => return Err(CommandError::UnknownOpcode(other)),
    })
}

/// Decode a TLBI word 0, checking its reserved bits and the fields the command does not define.
fn tlbi_w0(op: Opcode, w0: u64, f: TlbiFields, caps: &Caps) -> Result<CmdTlbiW0, CommandError> {
    let w = CmdTlbiW0::from_raw(w0);
    reject_res0(op, 0, w.rsvd_11_8().into(), 8)?;
    reject_res0(op, 0, w.rsvd_19_17().into(), 17)?;
    reject_res0(op, 0, w.rsvd_31_25().into(), 25)?;
    if !f.vmid {
        reject_res0(op, 0, w.vmid().into(), 32)?;
    }
    if !f.asid {
        reject_res0(op, 0, w.asid().into(), 48)?;
    }
    if !(f.range && caps.ril()) {
        // NUM and SCALE exist only in the range forms, and only with IDR3.RIL.
        if w.num() != 0 || w.scale() != 0 {
            return if f.range {
                Err(CommandError::Unsupported {
                    opcode: op,
                    feature: "IDR3.RIL (range invalidation)",
                })
            } else {
                Err(CommandError::Reserved {
                    opcode: op,
                    word: 0,
                    bits: CmdTlbiW0::new()
                        .with_num(w.num())
                        .with_scale(w.scale())
                        .raw(),
                })
            };
        }
    }
    Ok(w)
}

/// Decode word 1 of an address-based TLBI into a range.
fn tlbi_range(
    op: Opcode,
    w0: CmdTlbiW0,
    w1: u64,
    caps: &Caps,
    ipa: bool,
) -> Result<TlbiRange, CommandError> {
    let w = CmdTlbiW1::from_raw(w1);
    reject_res0(op, 1, w.rsvd_7_1().into(), 1)?;
    if ipa {
        reject_res0(op, 1, w.ipa_rsvd_hi(), 52)?;
    }
    if !caps.ril() && (w.tg() != 0 || w.ttl() != 0) {
        return Err(CommandError::Unsupported {
            opcode: op,
            feature: "IDR3.RIL (range invalidation)",
        });
    }
    if w.tg() == 0 {
        // NUM, SCALE and TTL are RES0 when TG = 0 (IHI 0070 §4.4.1.1).
        reject_res0(op, 0, u64::from(w0.num()), 12)?;
        reject_res0(op, 0, u64::from(w0.scale()), 20)?;
        reject_res0(op, 1, u64::from(w.ttl()), 8)?;
    }
    if w.tg() == 2 && w.ttl() == 1 {
        // Without IDR5.DS, 16K with TTL = 1 is CERROR_ILL (IHI 0070 §4.4.1.1).
        return Err(CommandError::ReservedValue {
            opcode: op,
            field: "TTL (16K granule)",
            value: 1,
        });
    }
    Ok(TlbiRange {
        addr: if ipa { w.ipa() } else { w.addr() },
        leaf: w.leaf(),
        ttl: w.ttl(),
        tg: w.tg(),
        num: w0.num(),
        scale: w0.scale(),
    })
}
