//! Device-tree properties that tie DMA masters to an IOMMU, written with `vm-fdt`.
//!
//! The generic IOMMU binding (Linux `Documentation/devicetree/bindings/iommu/iommu.txt`) has two
//! ways for a master to name its IOMMU, both covered here for one-cell IOMMUs
//! (`#iommu-cells = <1>`, the cell being the StreamID or LIODN):
//! - [`add_iommus`]: `iommus = <&iommu ID ...>` on a platform master (a virtio-mmio device);
//! - [`add_iommu_map`]: `iommu-map` (and optionally `iommu-map-mask`) on a PCI host bridge,
//!   generated from the [`IdMap`] the device model routes with, so the guest and the model agree.
//!
//! ## How an [`IdMap`] becomes an `iommu-map`
//! - Every mapped range becomes one entry `<rid_base &iommu out_base len>`, in requester-ID order.
//! - Bypass ranges and gaps produce **no** entry. A device tree cannot say "deny": Linux's
//!   `of_map_id()` (drivers/of/base.c) maps a requester ID outside every entry to itself with no
//!   target node, `of_iommu_xlate()` then fails with `-ENODEV`, and the device is probed with no
//!   IOMMU (dma-direct, physical addresses). For a bypass range that is exactly what the model
//!   does with its DMA (passes it untranslated). For a gap the model denies the DMA, so a device
//!   the firmware left out fails visibly instead of silently gaining access: gaps stay gaps.
//! - An [`IdMap`] with no mapped range writes no `iommu-map` at all; Linux treats a missing
//!   property like an empty one (no translation for any requester).
//!
//! ## The optional `iommu-map-mask`
//! Linux ANDs the requester ID with the mask before the lookup, and refuses (`-EFAULT`) a map
//! whose `rid_base` has bits outside the mask. The [`IdMap`] must then be written in masked IDs
//! (the model routes whatever requester ID it is given); [`add_iommu_map`] checks that every
//! mapped range lies inside the mask and returns [`FdtError::MaskTooNarrow`] otherwise.

use crate::topology::{IdMap, IdMapEntry};
use vm_fdt::FdtWriter;

pub use vm_fdt;

/// A device-tree generation error.
#[derive(Debug, thiserror::Error)]
pub enum FdtError {
    /// The `vm-fdt` writer refused a node or property.
    #[error("device tree writer: {0}")]
    Writer(#[from] vm_fdt::Error),
    /// A mapped range of the [`IdMap`] has requester-ID bits outside `iommu-map-mask`.
    #[error("iommu-map-mask {mask:#x} does not cover requester IDs {rid_base:#x}..={last:#x}")]
    MaskTooNarrow {
        /// The mask asked for.
        mask: u32,
        /// First requester ID of the offending range.
        rid_base: u32,
        /// Last requester ID of the offending range.
        last: u32,
    },
    /// Interrupt specifiers of one node must all have the caller's cell count (non-zero).
    #[error("interrupt specifier of {name} has {got} cells, expected {want}")]
    InterruptCells {
        /// Interrupt name.
        name: &'static str,
        /// Cells given.
        got: usize,
        /// Cells of the first specifier.
        want: usize,
    },
    /// The same named interrupt was given twice, or a combination the binding forbids.
    #[error("interrupt {0} given twice or combined with others")]
    InterruptNames(&'static str),
    /// A device-tree node description is inconsistent (for example zero instances).
    #[error("invalid node description: {0}")]
    Invalid(&'static str),
}

/// Cells of an `iommus` property for a one-cell IOMMU: `<&iommu id>` per identifier.
pub fn iommus_cells(iommu_phandle: u32, ids: &[u32]) -> Vec<u32> {
    ids.iter().flat_map(|&id| [iommu_phandle, id]).collect()
}

/// Add `iommus = <&iommu id ...>` to the node being written (a platform master such as a
/// virtio-mmio device). Each identifier is a StreamID (SMMUv3) or LIODN-like device ID.
///
/// # Errors
/// [`FdtError::Writer`] if the writer refuses the property.
///
/// # Example
/// ```
/// use viommu_common::fdt::{add_iommus, vm_fdt::FdtWriter};
/// let mut fdt = FdtWriter::new().unwrap();
/// let root = fdt.begin_node("").unwrap();
/// let dev = fdt.begin_node("virtio_mmio@a000000").unwrap();
/// add_iommus(&mut fdt, 1, &[0x10]).unwrap(); // iommus = <&smmu 0x10>
/// fdt.end_node(dev).unwrap();
/// fdt.end_node(root).unwrap();
/// assert!(!fdt.finish().unwrap().is_empty());
/// ```
pub fn add_iommus(fdt: &mut FdtWriter, iommu_phandle: u32, ids: &[u32]) -> Result<(), FdtError> {
    fdt.property_array_u32("iommus", &iommus_cells(iommu_phandle, ids))?;
    Ok(())
}

/// Cells of an `iommu-map` for a one-cell IOMMU: `<rid_base &iommu out_base len>` for every
/// mapped range of `map`, in requester-ID order. Bypass ranges and gaps produce no entry (see
/// the module documentation for what Linux does with them).
pub fn iommu_map_cells(map: &IdMap, iommu_phandle: u32) -> Vec<u32> {
    map.entries()
        .filter_map(|e| match e {
            IdMapEntry::Map(r) => Some([u32::from(r.rid_base), iommu_phandle, r.out_base, r.len]),
            IdMapEntry::Bypass { .. } => None,
        })
        .flatten()
        .collect()
}

/// Add `iommu-map` (and `iommu-map-mask` when `mask` is given) for a PCI host bridge to the node
/// being written, generated from the same [`IdMap`] the device model routes with.
///
/// # Errors
/// [`FdtError::MaskTooNarrow`] if a mapped range has bits outside `mask`;
/// [`FdtError::Writer`] if the writer refuses a property.
///
/// # Example
/// ```
/// use viommu_common::fdt::{add_iommu_map, iommu_map_cells, vm_fdt::FdtWriter};
/// use viommu_common::topology::{IdMap, IdMapRange};
/// let mut map = IdMap::new();
/// map.map(IdMapRange { rid_base: 0, out_base: 0x100, len: 0x100 }).unwrap();
/// map.bypass(0x100, 8).unwrap(); // no entry: Linux gives these no IOMMU
/// assert_eq!(iommu_map_cells(&map, 1), [0, 1, 0x100, 0x100]);
///
/// let mut fdt = FdtWriter::new().unwrap();
/// let root = fdt.begin_node("").unwrap();
/// let pcie = fdt.begin_node("pcie@10000000").unwrap();
/// add_iommu_map(&mut fdt, &map, 1, None).unwrap();
/// fdt.end_node(pcie).unwrap();
/// fdt.end_node(root).unwrap();
/// fdt.finish().unwrap();
/// ```
pub fn add_iommu_map(
    fdt: &mut FdtWriter,
    map: &IdMap,
    iommu_phandle: u32,
    mask: Option<u32>,
) -> Result<(), FdtError> {
    if let Some(mask) = mask {
        for e in map.entries() {
            if let IdMapEntry::Map(r) = e {
                let rid_base = u32::from(r.rid_base);
                let last = rid_base + r.len - 1;
                if rid_base & !mask != 0 || last & !mask != 0 {
                    return Err(FdtError::MaskTooNarrow {
                        mask,
                        rid_base,
                        last,
                    });
                }
            }
        }
    }
    let cells = iommu_map_cells(map, iommu_phandle);
    if cells.is_empty() {
        return Ok(());
    }
    fdt.property_array_u32("iommu-map", &cells)?;
    if let Some(mask) = mask {
        fdt.property_u32("iommu-map-mask", mask)?;
    }
    Ok(())
}

/// A minimal flattened-device-tree reader for tests: parses a DTB back into a node tree so
/// tests can check what the writers produced without external tools.
#[cfg(any(test, feature = "test-utils"))]
pub mod reader {
    /// One parsed node.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Node {
        /// Node name with unit address (`""` for the root).
        pub name: String,
        /// Properties in blob order.
        pub props: Vec<(String, Vec<u8>)>,
        /// Child nodes in blob order.
        pub children: Vec<Node>,
    }

    impl Node {
        /// Raw value of property `name`.
        pub fn prop(&self, name: &str) -> Option<&[u8]> {
            self.props
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice())
        }

        /// Property `name` as big-endian 32-bit cells.
        pub fn cells(&self, name: &str) -> Option<Vec<u32>> {
            let v = self.prop(name)?;
            (v.len() % 4 == 0).then(|| {
                v.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
        }

        /// Property `name` as a NUL-separated string list.
        pub fn strings(&self, name: &str) -> Option<Vec<String>> {
            let v = self.prop(name)?;
            let v = v.strip_suffix(&[0])?;
            Some(
                v.split(|&b| b == 0)
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            )
        }

        /// The child called `name`.
        pub fn child(&self, name: &str) -> Option<&Node> {
            self.children.iter().find(|c| c.name == name)
        }
    }

    fn be32(b: &[u8], off: usize) -> Result<u32, String> {
        b.get(off..off + 4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .ok_or_else(|| format!("truncated at {off:#x}"))
    }

    fn cstr(b: &[u8], off: usize) -> Result<&str, String> {
        let s = b.get(off..).ok_or("string offset out of range")?;
        let end = s
            .iter()
            .position(|&c| c == 0)
            .ok_or("unterminated string")?;
        std::str::from_utf8(&s[..end]).map_err(|e| e.to_string())
    }

    /// Parse a DTB (version 17) into its root node.
    ///
    /// # Errors
    /// A description of the first malformation found.
    pub fn parse(blob: &[u8]) -> Result<Node, String> {
        if be32(blob, 0)? != 0xd00d_feed {
            return Err("bad magic".into());
        }
        let total = be32(blob, 4)? as usize;
        let blob = blob.get(..total).ok_or("totalsize beyond buffer")?;
        let structs = be32(blob, 8)? as usize;
        let strings = be32(blob, 12)? as usize;
        let mut pos = structs;
        let mut stack: Vec<Node> = Vec::new();
        let mut root = None;
        loop {
            let token = be32(blob, pos)?;
            pos += 4;
            match token {
                1 => {
                    let name = cstr(blob, pos)?.to_owned();
                    pos = (pos + name.len() + 1 + 3) & !3;
                    stack.push(Node {
                        name,
                        ..Node::default()
                    });
                }
                2 => {
                    let node = stack.pop().ok_or("unbalanced END_NODE")?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                }
                3 => {
                    let len = be32(blob, pos)? as usize;
                    let name = cstr(blob, strings + be32(blob, pos + 4)? as usize)?.to_owned();
                    let val = blob
                        .get(pos + 8..pos + 8 + len)
                        .ok_or("property beyond blob")?
                        .to_vec();
                    pos = (pos + 8 + len + 3) & !3;
                    stack
                        .last_mut()
                        .ok_or("property outside a node")?
                        .props
                        .push((name, val));
                }
                4 => {}
                9 => return root.ok_or_else(|| "no root node".into()),
                t => return Err(format!("bad token {t:#x} at {:#x}", pos - 4)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reader::parse;
    use super::*;
    use crate::topology::IdMapRange;

    fn one_node(f: impl FnOnce(&mut FdtWriter) -> Result<(), FdtError>) -> reader::Node {
        let mut fdt = FdtWriter::new().unwrap();
        let root = fdt.begin_node("").unwrap();
        let n = fdt.begin_node("dev@0").unwrap();
        f(&mut fdt).unwrap();
        fdt.end_node(n).unwrap();
        fdt.end_node(root).unwrap();
        let root = parse(&fdt.finish().unwrap()).unwrap();
        root.child("dev@0").unwrap().clone()
    }

    #[test]
    fn iommus_pairs_phandle_and_id() {
        let n = one_node(|f| add_iommus(f, 7, &[0x10, 0x11]));
        assert_eq!(n.cells("iommus").unwrap(), [7, 0x10, 7, 0x11]);
    }

    #[test]
    fn iommu_map_keeps_gaps_and_omits_bypass() {
        let mut map = IdMap::new();
        map.map(IdMapRange {
            rid_base: 0x800,
            out_base: 0x20,
            len: 0x10,
        })
        .unwrap();
        map.bypass(0x100, 0x100).unwrap();
        map.map(IdMapRange {
            rid_base: 0,
            out_base: 0,
            len: 0x8,
        })
        .unwrap();
        let n = one_node(|f| add_iommu_map(f, &map, 3, None));
        // Sorted by requester ID; the bypass range and the gaps have no entry.
        assert_eq!(
            n.cells("iommu-map").unwrap(),
            [0, 3, 0, 8, 0x800, 3, 0x20, 0x10]
        );
        assert_eq!(n.prop("iommu-map-mask"), None);
    }

    #[test]
    fn identity_map_is_one_entry() {
        let n = one_node(|f| add_iommu_map(f, &IdMap::identity(), 1, None));
        assert_eq!(n.cells("iommu-map").unwrap(), [0, 1, 0, 0x1_0000]);
    }

    #[test]
    fn bypass_only_map_writes_no_property() {
        let mut map = IdMap::new();
        map.bypass(0, 0x1_0000).unwrap();
        let n = one_node(|f| add_iommu_map(f, &map, 1, Some(0xffff)));
        assert_eq!(n.prop("iommu-map"), None);
        assert_eq!(n.prop("iommu-map-mask"), None);
    }

    #[test]
    fn mask_is_written_and_checked() {
        let mut map = IdMap::new();
        map.map(IdMapRange {
            rid_base: 0,
            out_base: 0,
            len: 0x100,
        })
        .unwrap();
        let n = one_node(|f| add_iommu_map(f, &map, 1, Some(0xff)));
        assert_eq!(n.cells("iommu-map-mask").unwrap(), [0xff]);

        map.map(IdMapRange {
            rid_base: 0x100,
            out_base: 0x100,
            len: 1,
        })
        .unwrap();
        let mut fdt = FdtWriter::new().unwrap();
        let err = add_iommu_map(&mut fdt, &map, 1, Some(0xff)).unwrap_err();
        assert!(matches!(
            err,
            FdtError::MaskTooNarrow {
                mask: 0xff,
                rid_base: 0x100,
                last: 0x100
            }
        ));
    }

    #[test]
    fn reader_rejects_garbage() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 8]).is_err());
    }
}
