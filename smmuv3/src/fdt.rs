//! Device-tree description of the SMMUv3 and its masters (feature `fdt`), written with `vm-fdt`.
//!
//! [`SmmuV3Node`] writes the `arm,smmu-v3` node Linux's `arm-smmu-v3` driver probes
//! (binding: `Documentation/devicetree/bindings/iommu/arm,smmu-v3.yaml`):
//! - `reg = <base 0x20000>`: register pages 0 and 1; the driver refuses less than 128 KiB;
//! - wired interrupts by name (`eventq`, `gerror`, `priq`, `cmdq-sync`, any subset, or the single
//!   `combined`), each with the caller's interrupt-controller specifier (three GIC cells on
//!   arm64), and/or `msi-parent` when the SMMU signals through MSIs (`*_IRQ_CFG0..2`);
//! - `#iommu-cells = <1>` (the cell is the StreamID), `dma-coherent` when the VMM's guest RAM
//!   is coherent with the SMMU's table walks (Linux takes coherency from firmware, not from
//!   IDR0.COHACC), and the phandle masters refer to.
//!
//! Masters: [`add_iommus`] for platform devices (`iommus = <&smmu SID>`), [`add_iommu_map`] for a
//! PCI host bridge (generated from the [`IdMap`](viommu_common::topology::IdMap) the model routes
//! with; see [`viommu_common::fdt`] for how gaps and bypass ranges are described).
//!
//! `reg` is written with two address and two size cells, as on every arm64 VMM's root node.

use vm_fdt::FdtWriter;

/// The `vm-fdt` these writers take, so a VMM can name the exact `FdtWriter` type.
pub use viommu_common::fdt::vm_fdt;
pub use viommu_common::fdt::{add_iommu_map, add_iommus, iommu_map_cells, iommus_cells, FdtError};

/// Size of the register space in `reg`: pages 0 and 1 (IHI 0070 6.1), 128 KiB.
pub const SMMU_REG_SIZE: u64 = 0x2_0000;

/// A named SMMUv3 interrupt of the device-tree binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmmuIrq {
    /// Event queue not empty.
    EventQ,
    /// Global error activated.
    Gerror,
    /// PRI queue not empty.
    PriQ,
    /// CMD_SYNC completion signalled by interrupt.
    CmdqSync,
    /// One line for all sources; the binding allows it only on its own.
    Combined,
}

impl SmmuIrq {
    /// The `interrupt-names` string.
    pub fn name(self) -> &'static str {
        match self {
            SmmuIrq::EventQ => "eventq",
            SmmuIrq::Gerror => "gerror",
            SmmuIrq::PriQ => "priq",
            SmmuIrq::CmdqSync => "cmdq-sync",
            SmmuIrq::Combined => "combined",
        }
    }
}

/// The `arm,smmu-v3` node; build with the `with_*` methods, then [`SmmuV3Node::write`].
///
/// # Example
/// ```
/// use viommu_common::topology::IdMap;
/// use viommu_smmuv3::fdt::{add_iommu_map, add_iommus, SmmuIrq, SmmuV3Node};
/// use vm_fdt::FdtWriter;
///
/// const SMMU: u32 = 1; // the phandle the VMM picked
/// const GIC_SPI: u32 = 0;
/// const EDGE_RISING: u32 = 1;
/// let mut fdt = FdtWriter::new().unwrap();
/// let root = fdt.begin_node("").unwrap();
/// SmmuV3Node::new(0x0905_0000, SMMU)
///     .with_interrupt(SmmuIrq::EventQ, &[GIC_SPI, 74, EDGE_RISING])
///     .with_interrupt(SmmuIrq::Gerror, &[GIC_SPI, 75, EDGE_RISING])
///     .with_dma_coherent(true)
///     .write(&mut fdt)
///     .unwrap();
/// let blk = fdt.begin_node("virtio_mmio@a000000").unwrap();
/// add_iommus(&mut fdt, SMMU, &[0x10]).unwrap();
/// fdt.end_node(blk).unwrap();
/// let pcie = fdt.begin_node("pcie@10000000").unwrap();
/// add_iommu_map(&mut fdt, &IdMap::identity(), SMMU, None).unwrap();
/// fdt.end_node(pcie).unwrap();
/// fdt.end_node(root).unwrap();
/// fdt.finish().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmmuV3Node {
    /// MMIO base of page 0 (64 KiB aligned).
    pub base: u64,
    /// The node's phandle, which masters' `iommus` / `iommu-map` name.
    pub phandle: u32,
    /// Wired interrupts in the order written, with their specifier cells.
    pub interrupts: Vec<(SmmuIrq, Vec<u32>)>,
    /// `msi-parent` cells: the MSI controller's phandle followed by its `#msi-cells`
    /// arguments (for a GICv3 ITS, the SMMU's DeviceID).
    pub msi_parent: Option<Vec<u32>>,
    /// Write `dma-coherent`.
    pub dma_coherent: bool,
}

impl SmmuV3Node {
    /// A node at `base` with `phandle`, no interrupts, not coherent.
    pub fn new(base: u64, phandle: u32) -> Self {
        Self {
            base,
            phandle,
            interrupts: Vec::new(),
            msi_parent: None,
            dma_coherent: false,
        }
    }

    /// Add the wired interrupt `irq` with the interrupt controller's specifier cells.
    pub fn with_interrupt(mut self, irq: SmmuIrq, specifier: &[u32]) -> Self {
        self.interrupts.push((irq, specifier.to_vec()));
        self
    }

    /// Signal through MSIs: `msi-parent = <&msi_controller args...>`.
    pub fn with_msi_parent(mut self, controller_phandle: u32, args: &[u32]) -> Self {
        let mut cells = vec![controller_phandle];
        cells.extend_from_slice(args);
        self.msi_parent = Some(cells);
        self
    }

    /// Set or clear `dma-coherent`.
    pub fn with_dma_coherent(mut self, coherent: bool) -> Self {
        self.dma_coherent = coherent;
        self
    }

    /// The node name, `iommu@<base>`.
    pub fn node_name(&self) -> String {
        format!("iommu@{:x}", self.base)
    }

    fn check_interrupts(&self) -> Result<(), FdtError> {
        let want = self.interrupts.first().map_or(0, |(_, s)| s.len());
        for (i, (irq, spec)) in self.interrupts.iter().enumerate() {
            if spec.is_empty() || spec.len() != want {
                return Err(FdtError::InterruptCells {
                    name: irq.name(),
                    got: spec.len(),
                    want,
                });
            }
            let twice = self.interrupts[..i].iter().any(|(o, _)| o == irq);
            let combined_mix = self.interrupts.len() > 1 && *irq == SmmuIrq::Combined;
            if twice || combined_mix {
                return Err(FdtError::InterruptNames(irq.name()));
            }
        }
        Ok(())
    }

    /// Write the node (as a child of the node currently open in `fdt`).
    ///
    /// # Errors
    /// [`FdtError::InterruptCells`] for an empty specifier or specifiers of different lengths,
    /// [`FdtError::InterruptNames`] for a name given twice or `combined` with others,
    /// [`FdtError::Writer`] if the writer refuses the node.
    pub fn write(&self, fdt: &mut FdtWriter) -> Result<(), FdtError> {
        self.check_interrupts()?;
        let node = fdt.begin_node(&self.node_name())?;
        fdt.property_string("compatible", "arm,smmu-v3")?;
        fdt.property_array_u64("reg", &[self.base, SMMU_REG_SIZE])?;
        if !self.interrupts.is_empty() {
            let cells: Vec<u32> = self
                .interrupts
                .iter()
                .flat_map(|(_, s)| s.iter().copied())
                .collect();
            fdt.property_array_u32("interrupts", &cells)?;
            let names = self
                .interrupts
                .iter()
                .map(|(i, _)| i.name().to_owned())
                .collect();
            fdt.property_string_list("interrupt-names", names)?;
        }
        if let Some(cells) = &self.msi_parent {
            fdt.property_array_u32("msi-parent", cells)?;
        }
        fdt.property_u32("#iommu-cells", 1)?;
        if self.dma_coherent {
            fdt.property_null("dma-coherent")?;
        }
        fdt.property_phandle(self.phandle)?;
        fdt.end_node(node)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_common::fdt::reader::{parse, Node};

    fn written(node: &SmmuV3Node) -> Node {
        let mut fdt = FdtWriter::new().unwrap();
        let root = fdt.begin_node("").unwrap();
        node.write(&mut fdt).unwrap();
        fdt.end_node(root).unwrap();
        let root = parse(&fdt.finish().unwrap()).unwrap();
        root.child(&node.node_name()).unwrap().clone()
    }

    #[test]
    fn full_node_decodes_back() {
        let node = SmmuV3Node::new(0x0905_0000, 0x8000)
            .with_interrupt(SmmuIrq::EventQ, &[0, 74, 1])
            .with_interrupt(SmmuIrq::PriQ, &[0, 75, 1])
            .with_interrupt(SmmuIrq::Gerror, &[0, 77, 1])
            .with_interrupt(SmmuIrq::CmdqSync, &[0, 76, 1])
            .with_msi_parent(0x8001, &[0xff_0000])
            .with_dma_coherent(true);
        let n = written(&node);
        assert_eq!(n.name, "iommu@9050000");
        assert_eq!(n.strings("compatible").unwrap(), ["arm,smmu-v3"]);
        assert_eq!(n.cells("reg").unwrap(), [0, 0x0905_0000, 0, 0x2_0000]);
        assert_eq!(
            n.cells("interrupts").unwrap(),
            [0, 74, 1, 0, 75, 1, 0, 77, 1, 0, 76, 1]
        );
        assert_eq!(
            n.strings("interrupt-names").unwrap(),
            ["eventq", "priq", "gerror", "cmdq-sync"]
        );
        assert_eq!(n.cells("msi-parent").unwrap(), [0x8001, 0xff_0000]);
        assert_eq!(n.cells("#iommu-cells").unwrap(), [1]);
        assert_eq!(n.prop("dma-coherent"), Some(&[][..]));
        assert_eq!(n.cells("phandle").unwrap(), [0x8000]);
    }

    #[test]
    fn msi_only_node_has_no_interrupt_properties() {
        let n = written(&SmmuV3Node::new(0x1_0000_0000, 2).with_msi_parent(3, &[0x40]));
        assert_eq!(n.cells("reg").unwrap(), [1, 0, 0, 0x2_0000]);
        assert_eq!(n.prop("interrupts"), None);
        assert_eq!(n.prop("interrupt-names"), None);
        assert_eq!(n.prop("dma-coherent"), None);
    }

    #[test]
    fn bad_interrupt_lists_are_refused() {
        let mut fdt = FdtWriter::new().unwrap();
        let twice = SmmuV3Node::new(0, 1)
            .with_interrupt(SmmuIrq::EventQ, &[0, 1, 1])
            .with_interrupt(SmmuIrq::EventQ, &[0, 2, 1]);
        assert!(matches!(
            twice.write(&mut fdt),
            Err(FdtError::InterruptNames("eventq"))
        ));
        let mixed = SmmuV3Node::new(0, 1)
            .with_interrupt(SmmuIrq::EventQ, &[0, 1, 1])
            .with_interrupt(SmmuIrq::Combined, &[0, 2, 1]);
        assert!(matches!(
            mixed.write(&mut fdt),
            Err(FdtError::InterruptNames("combined"))
        ));
        let cells = SmmuV3Node::new(0, 1)
            .with_interrupt(SmmuIrq::EventQ, &[0, 1, 1])
            .with_interrupt(SmmuIrq::Gerror, &[0, 2]);
        assert!(matches!(
            cells.write(&mut fdt),
            Err(FdtError::InterruptCells {
                name: "gerror",
                got: 2,
                want: 3
            })
        ));
    }
}
