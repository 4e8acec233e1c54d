//! Memory attributes of a translation (Arm ARM D8.6 "Memory region attributes": MAIR
//! indirection, stage-2 MemAttr, FEAT_S2FWB, combining stage 1 and stage 2; IHI 0070 §13.1).
//!
//! Results are reported as a MAIR-format byte plus an SH code in [`MemAttrs`], the
//! architecture-neutral form devices hand to VMMs.

use crate::traits::MemAttrs;

/// SH code: Non-shareable.
const SH_NS: u8 = 0;
/// SH code: Outer Shareable.
const SH_OS: u8 = 2;
/// SH code: Inner Shareable.
const SH_IS: u8 = 3;

/// MAIR byte for Normal Non-cacheable (inner and outer).
const MAIR_NORMAL_NC: u8 = 0x44;
/// MAIR byte for Normal Write-Back read/write-allocate (inner and outer).
const MAIR_NORMAL_WB: u8 = 0xFF;

/// True if a MAIR byte encodes Device memory (`0b0000_dd00`; other low-nibble values with a zero
/// high nibble are UNPREDICTABLE and treated as Device too).
const fn is_device(mair: u8) -> bool {
    mair & 0xF0 == 0
}

/// Cacheability rank of one MAIR nibble of Normal memory: 0 Non-cacheable, 1 Write-Through,
/// 2 Write-Back (transient or not).
const fn nibble_rank(n: u8) -> u8 {
    match n & 0xF {
        0b0100 => 0,
        0b1000..=0b1011 | 0b0001..=0b0011 => 1,
        0b1100..=0b1111 | 0b0101..=0b0111 => 2,
        // 0b0000 as an inner nibble of Normal memory is UNPREDICTABLE: treated as NC.
        _ => 0,
    }
}

/// Shareability as the architecture reports it: Device and Normal inner-NC/outer-NC memory is
/// always Outer Shareable (Arm ARM D8.6.2). Policy: the reserved SH code 0b01 reads as
/// Non-shareable.
const fn effective_sh(mair: u8, sh: u8) -> u8 {
    if is_device(mair) || mair == MAIR_NORMAL_NC {
        SH_OS
    } else if sh == SH_IS || sh == SH_OS {
        sh
    } else {
        SH_NS
    }
}

/// Stage-1 attributes: the MAIR byte selected by AttrIndx, and the leaf's SH.
pub const fn s1_attrs(mair: u64, attr_indx: u8, sh: u8) -> MemAttrs {
    let byte = (mair >> ((attr_indx as u32 & 7) * 8)) as u8;
    MemAttrs {
        mair: byte,
        shareability: effective_sh(byte, sh),
        device: 0,
    }
}

/// Decode stage-2 MemAttr\[3:0\] (Arm ARM D8.6.5; D8.6.6 for FEAT_S2FWB) into a MAIR-format
/// byte.
///
/// Policy for FWB: 0b0110 (forced Write-Back) and 0b0111 (use stage-1 attributes) both read as
/// Normal Write-Back, the weakest restriction, so combining with stage 1 yields stage 1's
/// attributes (exact for 0b0111; for 0b0110 a stage-1 Device or Non-cacheable type is kept
/// rather than upgraded). Reserved encodings read as Normal Non-cacheable.
const fn s2_mair(mem_attr: u8, fwb: bool) -> u8 {
    let m = mem_attr & 0xF;
    if fwb {
        return match m & 0b0111 {
            0b0110 | 0b0111 => MAIR_NORMAL_WB,
            0b0100 | 0b0101 => MAIR_NORMAL_NC,
            dev => (dev & 3) << 2,
        };
    }
    if m >> 2 == 0 {
        // Device: MemAttr[1:0] = nGnRnE, nGnRE, nGRE, GRE (same as MAIR dd).
        return (m & 3) << 2;
    }
    const fn nibble(c: u8) -> u8 {
        match c {
            0b10 => 0xB, // Write-Through, read/write-allocate
            0b11 => 0xF, // Write-Back, read/write-allocate
            _ => 0x4,    // Non-cacheable (0b00 inner is reserved: treated as NC)
        }
    }
    (nibble(m >> 2) << 4) | nibble(m & 3)
}

/// Stage-2 attributes of a leaf (MemAttr and SH).
pub const fn s2_attrs(mem_attr: u8, sh: u8, fwb: bool) -> MemAttrs {
    let byte = s2_mair(mem_attr, fwb);
    MemAttrs {
        mair: byte,
        shareability: effective_sh(byte, sh),
        device: 0,
    }
}

/// Shareability precedence when combining stages: Outer > Inner > Non-shareable.
const fn sh_rank(sh: u8) -> u8 {
    match sh {
        SH_OS => 2,
        SH_IS => 1,
        _ => 0,
    }
}

/// Combine two MAIR-format bytes: Device beats Normal and the stronger Device type wins;
/// for Normal memory each of inner and outer takes the weaker cacheability.
const fn combine_mair(a: u8, b: u8) -> u8 {
    match (is_device(a), is_device(b)) {
        (true, true) => {
            if a < b {
                a
            } else {
                b
            }
        }
        (true, false) => a,
        (false, true) => b,
        (false, false) => {
            let hi = if nibble_rank(a >> 4) <= nibble_rank(b >> 4) {
                a >> 4
            } else {
                b >> 4
            };
            let lo = if nibble_rank(a) <= nibble_rank(b) {
                a & 0xF
            } else {
                b & 0xF
            };
            (hi << 4) | lo
        }
    }
}

/// Combine stage-1 and stage-2 attributes (nested translation, Arm ARM D8.6.7): the stronger
/// memory type, the weaker cacheability, the wider shareability (Outer > Inner > Non).
pub const fn combine(s1: MemAttrs, s2: MemAttrs) -> MemAttrs {
    let mair = combine_mair(s1.mair, s2.mair);
    let sh = if sh_rank(s2.shareability) > sh_rank(s1.shareability) {
        s2.shareability
    } else {
        s1.shareability
    };
    MemAttrs {
        mair,
        shareability: effective_sh(mair, sh),
        device: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's MAIR 0xF404_FF44 (`arm_64_lpae_alloc_pgtable_s1()`): idx0 NC, idx1 WB, idx2 device
    /// nGnRE.
    #[test]
    fn test_attrs_s1_linux_mair() {
        let mair = 0x0000_0000_F404_FF44;
        assert_eq!(
            s1_attrs(mair, 0, 3),
            MemAttrs {
                mair: 0x44,
                shareability: 2,
                device: 0
            }
        );
        assert_eq!(
            s1_attrs(mair, 1, 3),
            MemAttrs {
                mair: 0xFF,
                shareability: 3,
                device: 0
            }
        );
        assert_eq!(
            s1_attrs(mair, 2, 0),
            MemAttrs {
                mair: 0x04,
                shareability: 2,
                device: 0
            }
        );
        assert_eq!(s1_attrs(mair, 3, 0).mair, 0xF4);
    }

    /// Stage-2 MemAttr values Linux writes: 0x1 Device-nGnRE, 0x5 NC, 0xF WB; 0x6 with FWB.
    #[test]
    fn test_attrs_s2_memattr() {
        assert_eq!(s2_attrs(0x1, 3, false).mair, 0x04);
        assert_eq!(s2_attrs(0x5, 3, false).mair, 0x44);
        assert_eq!(
            s2_attrs(0xF, 3, false),
            MemAttrs {
                mair: 0xFF,
                shareability: 3,
                device: 0
            }
        );
        assert_eq!(s2_attrs(0x6, 3, true).mair, 0xFF);
    }

    /// Nested: device wins, weakest cacheability wins, OS beats IS; FWB "use S1" keeps S1.
    #[test]
    fn test_attrs_combine() {
        let wb = s1_attrs(0xFF, 0, 3);
        let s2 = |m, sh, fwb| s2_attrs(m, sh, fwb);
        assert_eq!(combine(wb, s2(0x1, 3, false)).mair, 0x04);
        assert_eq!(combine(wb, s2(0x5, 3, false)).mair, 0x44);
        assert_eq!(
            combine(wb, s2(0xF, 3, false)),
            MemAttrs {
                mair: 0xFF,
                shareability: 3,
                device: 0
            }
        );
        assert_eq!(combine(wb, s2(0xF, 2, false)).shareability, 2);
        // Write-through outer, write-back inner on stage 2: outer becomes WT.
        assert_eq!(combine(wb, s2(0xB, 3, false)).mair, 0xBF);
        let dev = s1_attrs(0x00, 0, 0);
        assert_eq!(combine(dev, s2(0x1, 0, false)).mair, 0x00);
        assert_eq!(combine(dev, s2(0x7, 3, true)).mair, 0x00);
        assert_eq!(combine(s1_attrs(0x04, 0, 0), s2(0x0, 0, false)).mair, 0x00);
    }
}
