//! Device-tree description of the PAMU for PowerPC VMMs (feature `fdt`), written with `vm-fdt`.
//!
//! What Linux reads (drivers/iommu/fsl_pamu.c, fsl_pamu_domain.c, and the binding
//! `Documentation/devicetree/bindings/powerpc/fsl/pamu.txt`):
//! - [`PamuNode`]: the one `fsl,pamu` node (`compatible = "fsl,pamu-v1.0", "fsl,pamu"`).
//!   `fsl_pamu_probe()` maps its first `reg` and derives the instance count from its size
//!   (0x1000 per instance), and takes interrupt 0 (access violations); the binding adds
//!   interrupt 1 (operation and ECC errors), `ranges`, `#address-cells`/`#size-cells`, and one
//!   child `pamu@N` per instance (`reg`, cache geometry) that masters name in
//!   `fsl,iommu-parent`.
//! - [`GutsNode`]: the global-utilities block (`fsl,qoriq-device-config-1.0` / `-2.0`). The
//!   probe fails without it; Linux clears PAMUBYPENR (GUTS + 0x604) through it, and
//!   `fsl,liodn-bits` gives the LIODN width.
//! - [`add_liodn`]: `fsl,liodn` on every DMA master (for PCIe, on the controller node: all
//!   functions share its LIODN). `setup_liodns()` enables each listed LIODN below 0x500 with
//!   identity access at boot, and `fsl_pamu_domain` attaches devices by it.
//! - [`add_iommu_parent`]: `fsl,iommu-parent`, the instance a master sits behind (a cache-topology
//!   hint to Linux; the model uses it as `PamuConfig::liodn_parents`).
//!
//! All nodes live under the CCSR `soc` node, whose `#address-cells` and `#size-cells` are 1
//! (offsets within CCSR), as on every QorIQ device tree.

use vm_fdt::FdtWriter;

/// The `vm-fdt` these writers take, so a VMM can name the exact `FdtWriter` type.
pub use viommu_common::fdt::vm_fdt;
pub use viommu_common::fdt::FdtError;

use crate::caps::PamuConfig;

/// Offset of the first PAMU instance in CCSR.
pub const PAMU_CCSR_OFFSET: u32 = 0x2_0000;
/// Register block size of one instance.
pub const PAMU_INSTANCE_SIZE: u32 = 0x1000;
/// Offset of the GUTS (device configuration) block in CCSR.
pub const GUTS_CCSR_OFFSET: u32 = 0xe_0000;

/// The `fsl,pamu` node and its per-instance children.
///
/// # Example
/// ```
/// use viommu_pamu::fdt::{add_iommu_parent, add_liodn, GutsNode, PamuNode};
/// use viommu_pamu::PamuConfig;
/// use vm_fdt::FdtWriter;
///
/// let mut fdt = FdtWriter::new().unwrap();
/// let soc = fdt.begin_node("soc@ffe000000").unwrap();
/// fdt.property_u32("#address-cells", 1).unwrap();
/// fdt.property_u32("#size-cells", 1).unwrap();
/// // MPIC specifiers: internal interrupt 24 (level), error summary 16 sub-source 30.
/// let pamu = PamuNode::from_config(&PamuConfig::p4080(), &[24, 2, 0, 0], &[16, 2, 1, 30])
///     .with_child_phandles(0x100);
/// pamu.write(&mut fdt).unwrap();
/// GutsNode::default().write(&mut fdt).unwrap();
/// let dma = fdt.begin_node("dma@100300").unwrap();
/// add_liodn(&mut fdt, &[0x93]).unwrap();
/// add_iommu_parent(&mut fdt, pamu.child_phandle(0).unwrap()).unwrap();
/// fdt.end_node(dma).unwrap();
/// fdt.end_node(soc).unwrap();
/// fdt.finish().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamuNode {
    /// Offset of instance 0 in CCSR ([`PAMU_CCSR_OFFSET`]).
    pub ccsr_offset: u32,
    /// Number of instances (1..=16).
    pub instances: u8,
    /// The version-specific compatible string written before `fsl,pamu`.
    pub version_compatible: String,
    /// Interrupt specifier of the access-violation interrupt (first `interrupts` tuple).
    pub av_interrupt: Vec<u32>,
    /// Interrupt specifier of the operation-error / ECC interrupt (second tuple).
    pub err_interrupt: Vec<u32>,
    /// `fsl,portid-mapping` (CoreNet snoop-domain bits), when the VMM models them.
    pub portid_mapping: Option<u32>,
    /// `fsl,primary-cache-geometry` of each child: (lines, ways).
    pub primary_cache: (u32, u32),
    /// `fsl,secondary-cache-geometry` of each child: (lines, ways).
    pub secondary_cache: (u32, u32),
    /// Phandle of child 0; child `i` gets `first + i`. `None`: children have no phandle.
    pub first_child_phandle: Option<u32>,
}

impl PamuNode {
    /// The node for a model configured with `config`, with its two interrupt specifiers and the
    /// P4080 cache geometry of the binding's example (32 × 1, 128 × 2).
    pub fn from_config(config: &PamuConfig, av_interrupt: &[u32], err_interrupt: &[u32]) -> Self {
        Self {
            ccsr_offset: PAMU_CCSR_OFFSET,
            instances: config.instances,
            version_compatible: "fsl,pamu-v1.0".to_owned(),
            av_interrupt: av_interrupt.to_vec(),
            err_interrupt: err_interrupt.to_vec(),
            portid_mapping: None,
            primary_cache: (32, 1),
            secondary_cache: (128, 2),
            first_child_phandle: None,
        }
    }

    /// Give the children phandles `first..first + instances`.
    pub fn with_child_phandles(mut self, first: u32) -> Self {
        self.first_child_phandle = Some(first);
        self
    }

    /// Phandle of child `instance`, if children have phandles and the instance exists.
    pub fn child_phandle(&self, instance: u8) -> Option<u32> {
        (instance < self.instances)
            .then_some(self.first_child_phandle?)
            .map(|p| p + u32::from(instance))
    }

    /// Total register size of all instances.
    pub fn size(&self) -> u32 {
        u32::from(self.instances) * PAMU_INSTANCE_SIZE
    }

    /// The node name, `iommu@<offset>`.
    pub fn node_name(&self) -> String {
        format!("iommu@{:x}", self.ccsr_offset)
    }

    /// Write the node and its children as a child of the open (CCSR) node.
    ///
    /// # Errors
    /// [`FdtError::Invalid`] for 0 or more than 16 instances, [`FdtError::InterruptCells`] for
    /// empty or unequal interrupt specifiers, [`FdtError::Writer`] if the writer refuses a node.
    pub fn write(&self, fdt: &mut FdtWriter) -> Result<(), FdtError> {
        if !(1..=16).contains(&self.instances) {
            return Err(FdtError::Invalid("a PAMU node needs 1..=16 instances"));
        }
        let want = self.av_interrupt.len();
        if want == 0 || self.err_interrupt.len() != want {
            return Err(FdtError::InterruptCells {
                name: if want == 0 {
                    "access-violation"
                } else {
                    "error"
                },
                got: if want == 0 {
                    0
                } else {
                    self.err_interrupt.len()
                },
                want,
            });
        }
        let size = self.size();
        let node = fdt.begin_node(&self.node_name())?;
        fdt.property_string_list(
            "compatible",
            vec![self.version_compatible.clone(), "fsl,pamu".to_owned()],
        )?;
        fdt.property_array_u32("reg", &[self.ccsr_offset, size])?;
        fdt.property_array_u32("ranges", &[0, self.ccsr_offset, size])?;
        if let Some(mask) = self.portid_mapping {
            fdt.property_u32("fsl,portid-mapping", mask)?;
        }
        fdt.property_u32("#address-cells", 1)?;
        fdt.property_u32("#size-cells", 1)?;
        let irqs: Vec<u32> = self
            .av_interrupt
            .iter()
            .chain(&self.err_interrupt)
            .copied()
            .collect();
        fdt.property_array_u32("interrupts", &irqs)?;
        for i in 0..self.instances {
            let off = u32::from(i) * PAMU_INSTANCE_SIZE;
            let child = fdt.begin_node(&format!("pamu@{off:x}"))?;
            fdt.property_array_u32("reg", &[off, PAMU_INSTANCE_SIZE])?;
            let (l, w) = self.primary_cache;
            fdt.property_array_u32("fsl,primary-cache-geometry", &[l, w])?;
            let (l, w) = self.secondary_cache;
            fdt.property_array_u32("fsl,secondary-cache-geometry", &[l, w])?;
            if let Some(p) = self.child_phandle(i) {
                fdt.property_phandle(p)?;
            }
            fdt.end_node(child)?;
        }
        fdt.end_node(node)?;
        Ok(())
    }
}

/// The GUTS (global utilities / device configuration) node Linux's PAMU probe requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GutsNode {
    /// Offset in CCSR ([`GUTS_CCSR_OFFSET`]).
    pub ccsr_offset: u32,
    /// Register size; must cover PAMUBYPENR at 0x604.
    pub size: u32,
    /// `true`: `fsl,qoriq-device-config-2.0` (T4/B4 SoCs); `false`: `-1.0` (P4080 class).
    pub version2: bool,
    /// `fsl,liodn-bits` (12 on QorIQ).
    pub liodn_bits: u32,
}

impl Default for GutsNode {
    /// P4080-class GUTS at CCSR + 0xe0000, 4 KiB, 12 LIODN bits.
    fn default() -> Self {
        Self {
            ccsr_offset: GUTS_CCSR_OFFSET,
            size: 0x1000,
            version2: false,
            liodn_bits: 12,
        }
    }
}

impl GutsNode {
    /// The node name, `global-utilities@<offset>`.
    pub fn node_name(&self) -> String {
        format!("global-utilities@{:x}", self.ccsr_offset)
    }

    /// Write the node as a child of the open (CCSR) node.
    ///
    /// # Errors
    /// [`FdtError::Invalid`] if the block does not cover PAMUBYPENR,
    /// [`FdtError::Writer`] if the writer refuses the node.
    pub fn write(&self, fdt: &mut FdtWriter) -> Result<(), FdtError> {
        if u64::from(self.size) < crate::spec::regs::PAMUBYPENR_OFFSET + 4 {
            return Err(FdtError::Invalid("the GUTS block must cover PAMUBYPENR"));
        }
        let node = fdt.begin_node(&self.node_name())?;
        let compatible = if self.version2 {
            "fsl,qoriq-device-config-2.0"
        } else {
            "fsl,qoriq-device-config-1.0"
        };
        fdt.property_string("compatible", compatible)?;
        fdt.property_array_u32("reg", &[self.ccsr_offset, self.size])?;
        fdt.property_u32("fsl,liodn-bits", self.liodn_bits)?;
        fdt.end_node(node)?;
        Ok(())
    }
}

/// Add `fsl,liodn = <liodn ...>` to the master node being written.
///
/// # Errors
/// [`FdtError::Writer`] if the writer refuses the property.
pub fn add_liodn(fdt: &mut FdtWriter, liodns: &[u16]) -> Result<(), FdtError> {
    let cells: Vec<u32> = liodns.iter().map(|&l| u32::from(l)).collect();
    fdt.property_array_u32("fsl,liodn", &cells)?;
    Ok(())
}

/// Add `fsl,iommu-parent = <&pamuN>` to the master node being written.
///
/// # Errors
/// [`FdtError::Writer`] if the writer refuses the property.
pub fn add_iommu_parent(fdt: &mut FdtWriter, pamu_child_phandle: u32) -> Result<(), FdtError> {
    fdt.property_u32("fsl,iommu-parent", pamu_child_phandle)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_common::fdt::reader::{parse, Node};

    fn soc(f: impl FnOnce(&mut FdtWriter)) -> Node {
        let mut fdt = FdtWriter::new().unwrap();
        let root = fdt.begin_node("").unwrap();
        f(&mut fdt);
        fdt.end_node(root).unwrap();
        parse(&fdt.finish().unwrap()).unwrap()
    }

    #[test]
    fn pamu_node_matches_the_binding_example() {
        let node = PamuNode::from_config(&PamuConfig::p4080(), &[24, 2, 0, 0], &[16, 2, 1, 30])
            .with_child_phandles(0x40);
        let root = soc(|f| node.write(f).unwrap());
        let n = root.child("iommu@20000").unwrap();
        assert_eq!(
            n.strings("compatible").unwrap(),
            ["fsl,pamu-v1.0", "fsl,pamu"]
        );
        assert_eq!(n.cells("reg").unwrap(), [0x20000, 0x5000]);
        assert_eq!(n.cells("ranges").unwrap(), [0, 0x20000, 0x5000]);
        assert_eq!(n.cells("#address-cells").unwrap(), [1]);
        assert_eq!(n.cells("#size-cells").unwrap(), [1]);
        assert_eq!(n.cells("interrupts").unwrap(), [24, 2, 0, 0, 16, 2, 1, 30]);
        assert_eq!(n.children.len(), 5);
        let c = n.child("pamu@3000").unwrap();
        assert_eq!(c.cells("reg").unwrap(), [0x3000, 0x1000]);
        assert_eq!(c.cells("fsl,primary-cache-geometry").unwrap(), [32, 1]);
        assert_eq!(c.cells("fsl,secondary-cache-geometry").unwrap(), [128, 2]);
        assert_eq!(c.cells("phandle").unwrap(), [0x43]);
        assert_eq!(node.child_phandle(5), None);
    }

    #[test]
    fn guts_and_masters() {
        let root = soc(|f| {
            GutsNode::default().write(f).unwrap();
            let d = f.begin_node("dma@100300").unwrap();
            add_liodn(f, &[0x93, 0x94]).unwrap();
            add_iommu_parent(f, 0x41).unwrap();
            f.end_node(d).unwrap();
        });
        let g = root.child("global-utilities@e0000").unwrap();
        assert_eq!(
            g.strings("compatible").unwrap(),
            ["fsl,qoriq-device-config-1.0"]
        );
        assert_eq!(g.cells("reg").unwrap(), [0xe0000, 0x1000]);
        assert_eq!(g.cells("fsl,liodn-bits").unwrap(), [12]);
        let d = root.child("dma@100300").unwrap();
        assert_eq!(d.cells("fsl,liodn").unwrap(), [0x93, 0x94]);
        assert_eq!(d.cells("fsl,iommu-parent").unwrap(), [0x41]);
    }

    #[test]
    fn inconsistent_descriptions_are_refused() {
        let mut fdt = FdtWriter::new().unwrap();
        let mut node = PamuNode::from_config(&PamuConfig::p4080(), &[24, 2], &[16, 2]);
        node.instances = 0;
        assert!(matches!(node.write(&mut fdt), Err(FdtError::Invalid(_))));
        let node = PamuNode::from_config(&PamuConfig::p4080(), &[24, 2], &[16, 2, 1]);
        assert!(matches!(
            node.write(&mut fdt),
            Err(FdtError::InterruptCells { .. })
        ));
        let guts = GutsNode {
            size: 0x600,
            ..GutsNode::default()
        };
        assert!(matches!(guts.write(&mut fdt), Err(FdtError::Invalid(_))));
    }
}
