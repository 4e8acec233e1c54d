//! The arm64 `KVM_IRQ_LINE` interrupt number (Linux `arch/arm64/include/uapi/asm/kvm.h`,
//! `KVM_ARM_IRQ_*`; Documentation/virt/kvm/api.rst, "KVM_IRQ_LINE").
//!
//! On arm64 the `irq` field of `KVM_IRQ_LINE` is not a GSI: it packs an interrupt type, a target
//! vCPU and an interrupt number. A wired SPI of an in-kernel vGIC is type SPI, vCPU 0, and the
//! GIC INTID (32 + SPI number) as the number.

use bitfield_struct::bitfield;

/// `KVM_ARM_IRQ_TYPE_CPU`: the vCPU's IRQ/FIQ line (no in-kernel GIC).
pub const IRQ_TYPE_CPU: u8 = 0;
/// `KVM_ARM_IRQ_TYPE_SPI`: a shared peripheral interrupt of the in-kernel vGIC.
pub const IRQ_TYPE_SPI: u8 = 1;
/// `KVM_ARM_IRQ_TYPE_PPI`: a private peripheral interrupt of one vCPU.
pub const IRQ_TYPE_PPI: u8 = 2;

/// First SPI INTID of a GIC (INTIDs 0-15 are SGIs, 16-31 PPIs).
pub const SPI_BASE: u32 = 32;
/// Last SPI INTID a GICv3 defines (1020-1023 are special).
pub const SPI_LAST: u32 = 1019;

/// The `irq` argument of `KVM_IRQ_LINE` on arm64.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct ArmIrqLine {
    /// `KVM_ARM_IRQ_NUM` (bits \[15:0\]): for SPIs and PPIs the GIC INTID.
    #[bits(16)]
    pub num: u16,
    /// `KVM_ARM_IRQ_VCPU` (bits \[23:16\]): target vCPU index, low 8 bits (PPI, CPU lines).
    #[bits(8)]
    pub vcpu: u8,
    /// `KVM_ARM_IRQ_TYPE` (bits \[27:24\]): [`IRQ_TYPE_CPU`], [`IRQ_TYPE_SPI`] or
    /// [`IRQ_TYPE_PPI`].
    #[bits(4)]
    pub irq_type: u8,
    /// `KVM_ARM_IRQ_VCPU2` (bits \[31:28\]): target vCPU index, bits \[11:8\].
    #[bits(4)]
    pub vcpu2: u8,
}

impl ArmIrqLine {
    /// The line of SPI number `spi` (INTID 32 + `spi`), or `None` past the last SPI INTID.
    /// KVM itself refuses INTIDs beyond the vGIC's configured number of interrupts.
    ///
    /// ```
    /// use viommu_common::kvm::arm::ArmIrqLine;
    /// // SPI 74 (INTID 106), the way a device tree's `interrupts = <0 74 1>` names it.
    /// assert_eq!(ArmIrqLine::spi(74).unwrap().into_bits(), 1 << 24 | 106);
    /// assert!(ArmIrqLine::spi(988).is_none());
    /// ```
    pub fn spi(spi: u32) -> Option<Self> {
        let intid = SPI_BASE.checked_add(spi).filter(|&i| i <= SPI_LAST)?;
        Some(
            Self::new()
                .with_irq_type(IRQ_TYPE_SPI)
                .with_num(u16::try_from(intid).ok()?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_spi_encoding() {
        assert_eq!(
            ArmIrqLine::spi(0).map(ArmIrqLine::into_bits),
            Some(0x0100_0020)
        );
        assert_eq!(
            ArmIrqLine::spi(SPI_LAST - SPI_BASE).map(ArmIrqLine::into_bits),
            Some(0x0100_0000 | SPI_LAST)
        );
        assert_eq!(ArmIrqLine::spi(SPI_LAST - SPI_BASE + 1), None);
        assert_eq!(ArmIrqLine::spi(u32::MAX), None);
    }

    /// The field layout is the kernel's, as kvm-bindings spells it.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn test_layout_matches_kvm_bindings() {
        use kvm_bindings as b;
        let l = ArmIrqLine::new()
            .with_num(0xABCD)
            .with_vcpu(0x5A)
            .with_irq_type(IRQ_TYPE_PPI)
            .with_vcpu2(0x3);
        let want = 0xABCD << b::KVM_ARM_IRQ_NUM_SHIFT
            | 0x5A << b::KVM_ARM_IRQ_VCPU_SHIFT
            | b::KVM_ARM_IRQ_TYPE_PPI << b::KVM_ARM_IRQ_TYPE_SHIFT
            | 0x3 << b::KVM_ARM_IRQ_VCPU2_SHIFT;
        assert_eq!(l.into_bits(), want);
        assert_eq!(u32::from(IRQ_TYPE_SPI), b::KVM_ARM_IRQ_TYPE_SPI);
        assert_eq!(u32::from(IRQ_TYPE_CPU), b::KVM_ARM_IRQ_TYPE_CPU);
    }
}
