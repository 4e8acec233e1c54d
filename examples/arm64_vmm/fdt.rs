//! The guest's device tree, written with vm-fdt; the SMMU node and the master's `iommus` come
//! from `viommu_smmuv3::fdt`.

use viommu_smmuv3::device::lines;
use viommu_smmuv3::fdt::{add_iommus, SmmuIrq, SmmuV3Node};
use vm_fdt::{Error, FdtWriter};

use crate::layout::*;

/// What the device tree describes beyond the fixed layout.
pub struct FdtConfig<'a> {
    /// Guest RAM size.
    pub mem_size: u64,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Guest-physical range of the initramfs, if any.
    pub initrd: Option<(u64, u64)>,
    /// Describe the SMMU.
    pub smmu: bool,
    /// Give the block device `iommus = <&smmu SID>` (the fault test leaves it out).
    pub blk_iommus: bool,
}

/// The DTB.
pub fn build(cfg: &FdtConfig<'_>) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", PHANDLE_GIC)?;

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", cfg.cmdline)?;
    fdt.property_string("stdout-path", &format!("/uart@{UART:x}"))?;
    if let Some((start, end)) = cfg.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    let memory = fdt.begin_node(&format!("memory@{RAM_START:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[RAM_START, cfg.mem_size])?;
    fdt.end_node(memory)?;

    cpus(&mut fdt)?;
    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    let gic = fdt.begin_node(&format!("intc@{GIC_DIST:x}"))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u64(
        "reg",
        &[GIC_DIST, GIC_DIST_SIZE, GIC_REDIST, GIC_REDIST_SIZE],
    )?;
    fdt.property_phandle(PHANDLE_GIC)?;
    fdt.end_node(gic)?;

    // Secure, non-secure, virtual and hypervisor physical timers: PPIs 13, 14, 11, 10.
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let ppis: Vec<u32> = [13, 14, 11, 10]
        .iter()
        .flat_map(|&n| [GIC_PPI, n, IRQ_LEVEL_HIGH])
        .collect();
    fdt.property_array_u32("interrupts", &ppis)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let uart = fdt.begin_node(&format!("uart@{UART:x}"))?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[UART, UART_SIZE])?;
    fdt.property_u32("clock-frequency", 1_843_200)?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_EDGE_RISING])?;
    fdt.end_node(uart)?;

    if cfg.smmu {
        let spi = |line: u32| [GIC_SPI, SMMU_SPI_BASE + line, IRQ_EDGE_RISING];
        SmmuV3Node::new(SMMU, PHANDLE_SMMU)
            .with_interrupt(SmmuIrq::EventQ, &spi(lines::EVENTQ))
            .with_interrupt(SmmuIrq::PriQ, &spi(lines::PRIQ))
            .with_interrupt(SmmuIrq::CmdqSync, &spi(lines::CMD_SYNC))
            .with_interrupt(SmmuIrq::Gerror, &spi(lines::GERROR))
            .with_dma_coherent(true)
            .write(&mut fdt)?;
    }

    let blk = fdt.begin_node(&format!("virtio_mmio@{VIRTIO_BLK:x}"))?;
    fdt.property_string("compatible", "virtio,mmio")?;
    fdt.property_array_u64("reg", &[VIRTIO_BLK, VIRTIO_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, VIRTIO_BLK_SPI, IRQ_EDGE_RISING])?;
    fdt.property_null("dma-coherent")?;
    if cfg.smmu && cfg.blk_iommus {
        add_iommus(&mut fdt, PHANDLE_SMMU, &[VIRTIO_BLK_SID])?;
    }
    fdt.end_node(blk)?;

    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

fn cpus(fdt: &mut FdtWriter) -> Result<(), Error> {
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    let cpu = fdt.begin_node("cpu@0")?;
    fdt.property_string("device_type", "cpu")?;
    fdt.property_string("compatible", "arm,arm-v8")?;
    fdt.property_string("enable-method", "psci")?;
    fdt.property_u32("reg", 0)?;
    fdt.end_node(cpu)?;
    fdt.end_node(cpus)
}
