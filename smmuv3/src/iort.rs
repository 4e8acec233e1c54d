//! ACPI IORT (IO Remapping Table, Arm DEN 0049 revision E.e) for the SMMUv3 (feature `acpi`).
//!
//! `acpi_tables` (rust-vmm) has no IORT support, so this module lays the table out with typed
//! little-endian zerocopy records of its own and lets `acpi_tables::sdt::Sdt` provide the
//! standard header and the checksum. The table has, in this order:
//! - an **ITS group** node, when the caller gives one ([`IortItsGroup`]);
//! - one **SMMUv3** node ([`IortSmmuV3`]): base address, flags (COHACC override, HTTU
//!   override, DeviceID-mapping-index valid), model 0 (generic SMMUv3: Linux then maps 128 KiB,
//!   pages 0 and 1), and the event / PRI / GERROR / CMD_SYNC GSIVs (0 = not wired, MSI);
//! - one **root-complex** node per PCI segment ([`IortRootComplex`]), its ID mappings generated
//!   from the same [`IdMap`] the model routes with.
//!
//! ## ID mappings
//! - Root complex: each mapped range of the [`IdMap`] becomes one mapping to the SMMU
//!   (`input_base = rid_base`, `output_base = out_base`; the table's "number of IDs" field holds
//!   the count minus one). Gaps have no mapping: Linux's `iort_node_map_id()`
//!   (drivers/acpi/arm64/iort.c) then finds no IOMMU and the device runs without one, while the
//!   model denies its DMA, so a device the firmware left out fails visibly. A bypass range maps
//!   straight to the ITS group when there is one (so its MSIs still get a DeviceID, equal to
//!   the requester ID), and has no mapping otherwise; either way Linux gives it no IOMMU, which
//!   is what the model does with its DMA.
//! - SMMUv3, with an ITS group: every StreamID a root complex maps to is forwarded to the ITS
//!   with DeviceID = StreamID (overlapping ranges merged), so masters' MSIs resolve. If the
//!   SMMU signals its own interrupts by MSI ([`IortSmmuV3::msi_device_id`]), one more
//!   single-ID mapping carries the SMMU's DeviceID; the node's "DeviceID mapping index" points
//!   at it and its flag bit 4 says so (node revision 5, which Linux reads by the flag).
//!
//! # Example
//! ```
//! use viommu_common::topology::IdMap;
//! use viommu_smmuv3::iort::{Iort, IortItsGroup, IortRootComplex, IortSmmuV3};
//!
//! let smmu = IortSmmuV3 {
//!     event_gsiv: Some(106),
//!     gerr_gsiv: Some(107),
//!     ..IortSmmuV3::new(0x0905_0000)
//! };
//! let table = Iort::new(smmu)
//!     .with_its(IortItsGroup { its_ids: vec![0] })
//!     .with_root_complex(IortRootComplex::new(0, IdMap::identity()))
//!     .to_bytes()
//!     .unwrap();
//! assert_eq!(&table[..4], b"IORT");
//! assert_eq!(table.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0); // checksum
//! ```

use acpi_tables::sdt::Sdt;
use viommu_common::topology::{IdMap, IdMapEntry};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// IORT table revision written (DEN 0049 E.e).
pub const IORT_REVISION: u8 = 6;
/// Offset of the first node: the 36-byte ACPI header plus node count, node offset, reserved.
const NODES_OFFSET: usize = 48;

/// IORT node types (DEN 0049 table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeType {
    /// ITS group.
    ItsGroup = 0,
    /// PCI root complex.
    RootComplex = 2,
    /// SMMUv3.
    SmmuV3 = 4,
}

/// Common header of every IORT node.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NodeHeader {
    /// [`NodeType`] value.
    pub node_type: u8,
    /// Length of the node in bytes, ID mappings included.
    pub length: U16,
    /// Node revision.
    pub revision: u8,
    /// Identifier unique among the table's nodes.
    pub identifier: U32,
    /// Number of ID mappings.
    pub mapping_count: U32,
    /// Offset of the ID mapping array from the start of the node.
    pub mapping_offset: U32,
}

/// One ID mapping.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IdMapping {
    /// Lowest input ID.
    pub input_base: U32,
    /// Number of IDs **minus one**.
    pub id_count: U32,
    /// Output ID of `input_base`.
    pub output_base: U32,
    /// Offset of the output node from the start of the table.
    pub output_reference: U32,
    /// Bit 0: single mapping (input ignored, one output ID).
    pub flags: U32,
}

/// Body of an SMMUv3 node (after the header), node revision 5.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SmmuV3Body {
    /// Base address of register page 0.
    pub base_address: U64,
    /// Bit 0 COHACC override, bits 2:1 HTTU override, bit 3 proximity domain valid, bit 4
    /// DeviceID mapping index valid.
    pub flags: U32,
    /// Reserved, zero.
    pub reserved: U32,
    /// VATOS base address (0: none).
    pub vatos_address: U64,
    /// Model: 0 generic SMMUv3.
    pub model: U32,
    /// Event queue GSIV (0: none).
    pub event_gsiv: U32,
    /// PRI queue GSIV (0: none).
    pub pri_gsiv: U32,
    /// GERROR GSIV (0: none).
    pub gerr_gsiv: U32,
    /// CMD_SYNC GSIV (0: none).
    pub sync_gsiv: U32,
    /// Proximity domain.
    pub proximity_domain: U32,
    /// Index of the ID mapping that carries the SMMU's own MSI DeviceID.
    pub device_id_mapping_index: U32,
}

/// Body of a root-complex node (after the header), node revision 4.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RootComplexBody {
    /// Memory access properties: cache coherency attribute (1 = fully coherent).
    pub cache_coherency: U32,
    /// Memory access properties: allocation hints.
    pub hints: u8,
    /// Reserved, zero.
    pub reserved0: U16,
    /// Memory access properties: bit 0 CPM (coherent path to memory), bit 1 DACS.
    pub memory_flags: u8,
    /// Bit 0 ATS supported, bit 1 PRI supported, bit 2 PASID forwarding supported.
    pub ats_attribute: U32,
    /// PCI segment number.
    pub pci_segment: U32,
    /// Memory address size limit in bits.
    pub memory_address_limit: u8,
    /// PASID capabilities: bits 4:0 maximum PASID width.
    pub pasid_capabilities: U16,
    /// Reserved, zero.
    pub reserved1: u8,
}

/// SMMUv3 node flag: the COHACC override (table walks and queues are coherent).
pub const SMMU_FLAG_COHACC: u32 = 1 << 0;
/// SMMUv3 node flag: DeviceID mapping index valid.
pub const SMMU_FLAG_DEVICEID_VALID: u32 = 1 << 4;
/// Root-complex memory flag: coherent path to memory (CPM).
pub const RC_MF_CPM: u8 = 1 << 0;
/// Root-complex memory flag: device attributes are cacheable and inner shareable (DACS).
pub const RC_MF_DACS: u8 = 1 << 1;
/// ID mapping flag: single mapping.
pub const ID_SINGLE_MAPPING: u32 = 1;

/// The HTTU override of the SMMUv3 node flags (bits 2:1). Linux takes HTTU from here on ACPI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttuOverride {
    /// No hardware update of flags.
    #[default]
    None,
    /// Hardware update of the Access flag.
    Access,
    /// Hardware update of the Access flag and the dirty state.
    AccessDirty,
}

/// The ITS group node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IortItsGroup {
    /// GIC ITS identifiers (as in the MADT's GIC ITS structures).
    pub its_ids: Vec<u32>,
}

/// The SMMUv3 node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IortSmmuV3 {
    /// Base address of register page 0.
    pub base: u64,
    /// Set the COHACC override: the SMMU's accesses are coherent (Linux maps it `dma-coherent`).
    pub coherent: bool,
    /// HTTU override.
    pub httu: HttuOverride,
    /// Event queue interrupt (GSIV, edge), `None` when signalled by MSI.
    pub event_gsiv: Option<u32>,
    /// PRI queue interrupt.
    pub pri_gsiv: Option<u32>,
    /// GERROR interrupt.
    pub gerr_gsiv: Option<u32>,
    /// CMD_SYNC interrupt.
    pub sync_gsiv: Option<u32>,
    /// The SMMU's own DeviceID at the ITS, when it signals by MSI (needs an ITS group).
    pub msi_device_id: Option<u32>,
}

impl IortSmmuV3 {
    /// A coherent SMMU at `base` with no interrupt and no MSI.
    pub fn new(base: u64) -> Self {
        Self {
            base,
            coherent: true,
            httu: HttuOverride::None,
            event_gsiv: None,
            pri_gsiv: None,
            gerr_gsiv: None,
            sync_gsiv: None,
            msi_device_id: None,
        }
    }
}

/// A PCI root-complex node whose requester IDs go through the SMMU as its [`IdMap`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IortRootComplex {
    /// PCI segment (matches the MCFG / `_SEG` of the host bridge).
    pub segment: u32,
    /// Requester ID to StreamID map (the one the model routes with).
    pub map: IdMap,
    /// The root complex's DMA is cache coherent (sets CCA = 1, CPM and DACS).
    pub coherent: bool,
    /// The root complex supports ATS.
    pub ats: bool,
    /// Memory address size limit in bits.
    pub memory_address_limit: u8,
}

impl IortRootComplex {
    /// A coherent, non-ATS root complex on `segment` with a 64-bit address limit.
    pub fn new(segment: u32, map: IdMap) -> Self {
        Self {
            segment,
            map,
            coherent: true,
            ats: false,
            memory_address_limit: 64,
        }
    }
}

/// An IORT generation error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IortError {
    /// [`IortSmmuV3::msi_device_id`] needs an ITS group to map to.
    #[error("the SMMU's MSI DeviceID needs an ITS group node")]
    MsiWithoutIts,
    /// A node's ID mappings do not fit the 16-bit node length.
    #[error("IORT node has too many ID mappings ({0})")]
    TooManyMappings(usize),
}

/// The whole IORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iort {
    /// OEM ID of the table header.
    pub oem_id: [u8; 6],
    /// OEM table ID of the table header.
    pub oem_table_id: [u8; 8],
    /// OEM revision of the table header.
    pub oem_revision: u32,
    /// The ITS group node, if MSIs go through a GICv3 ITS.
    pub its: Option<IortItsGroup>,
    /// The SMMUv3 node.
    pub smmu: IortSmmuV3,
    /// Root-complex nodes.
    pub root_complexes: Vec<IortRootComplex>,
}

fn mapping(input: u32, count: u32, output: u32, reference: usize, flags: u32) -> IdMapping {
    IdMapping {
        input_base: input.into(),
        id_count: count.saturating_sub(1).into(),
        output_base: output.into(),
        output_reference: u32::try_from(reference).unwrap_or(u32::MAX).into(),
        flags: flags.into(),
    }
}

/// Append one node (header, body, ID mappings) to `out`.
fn push_node(
    out: &mut Vec<u8>,
    kind: NodeType,
    revision: u8,
    identifier: u32,
    body: &[u8],
    maps: &[IdMapping],
) -> Result<(), IortError> {
    let head = size_of::<NodeHeader>() + body.len();
    let len = head + std::mem::size_of_val(maps);
    let length = u16::try_from(len).map_err(|_| IortError::TooManyMappings(maps.len()))?;
    let header = NodeHeader {
        node_type: kind as u8,
        length: length.into(),
        revision,
        identifier: identifier.into(),
        mapping_count: u32::try_from(maps.len()).unwrap_or(u32::MAX).into(),
        mapping_offset: u32::try_from(if maps.is_empty() { 0 } else { head })
            .unwrap_or(0)
            .into(),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(maps.as_bytes());
    Ok(())
}

impl Iort {
    /// A table with `smmu` and no ITS or root complex; OEM fields "VIOMMU" / "VIOMMUIO".
    pub fn new(smmu: IortSmmuV3) -> Self {
        Self {
            oem_id: *b"VIOMMU",
            oem_table_id: *b"VIOMMUIO",
            oem_revision: 1,
            its: None,
            smmu,
            root_complexes: Vec::new(),
        }
    }

    /// Add the ITS group node.
    pub fn with_its(mut self, its: IortItsGroup) -> Self {
        self.its = Some(its);
        self
    }

    /// Add a root-complex node.
    pub fn with_root_complex(mut self, rc: IortRootComplex) -> Self {
        self.root_complexes.push(rc);
        self
    }

    /// StreamID ranges `(first, count)` some root complex maps to, sorted and merged.
    fn stream_ranges(&self) -> Vec<(u32, u32)> {
        let mut r: Vec<(u64, u64)> = self
            .root_complexes
            .iter()
            .flat_map(|rc| rc.map.entries())
            .filter_map(|e| match e {
                IdMapEntry::Map(m) => Some((u64::from(m.out_base), u64::from(m.len))),
                IdMapEntry::Bypass { .. } => None,
            })
            .collect();
        r.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (base, len) in r {
            match merged.last_mut() {
                Some((b, l)) if base <= *b + *l => *l = (*l).max(base + len - *b),
                _ => merged.push((base, len)),
            }
        }
        // IdMap::map keeps out_base + len <= 2^32; a merged range keeps that bound.
        merged
            .into_iter()
            .map(|(b, l)| {
                (
                    u32::try_from(b).unwrap_or(u32::MAX),
                    u32::try_from(l).unwrap_or(u32::MAX),
                )
            })
            .collect()
    }

    /// Build the table into an `acpi_tables` [`Sdt`] (checksum included), ready for the VMM's
    /// XSDT.
    ///
    /// # Errors
    /// [`IortError::MsiWithoutIts`] if the SMMU has an MSI DeviceID but there is no ITS group;
    /// [`IortError::TooManyMappings`] if a node's mappings overflow the 16-bit node length.
    pub fn to_sdt(&self) -> Result<Sdt, IortError> {
        if self.smmu.msi_device_id.is_some() && self.its.is_none() {
            return Err(IortError::MsiWithoutIts);
        }
        let mut nodes = Vec::new();
        let mut count = 0u32;

        let its_offset = match &self.its {
            Some(its) => {
                let offset = NODES_OFFSET;
                let mut body = u32::try_from(its.its_ids.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes()
                    .to_vec();
                body.extend(its.its_ids.iter().flat_map(|id| id.to_le_bytes()));
                push_node(&mut nodes, NodeType::ItsGroup, 1, count, &body, &[])?;
                count += 1;
                Some(offset)
            }
            None => None,
        };

        let smmu_offset = NODES_OFFSET + nodes.len();
        let s = &self.smmu;
        let mut maps: Vec<IdMapping> = Vec::new();
        let mut flags = 0;
        let mut index = 0;
        if let Some(its) = its_offset {
            maps.extend(
                self.stream_ranges()
                    .into_iter()
                    .map(|(b, l)| mapping(b, l, b, its, 0)),
            );
            if let Some(id) = s.msi_device_id {
                flags |= SMMU_FLAG_DEVICEID_VALID;
                index = u32::try_from(maps.len()).unwrap_or(u32::MAX);
                maps.push(mapping(0, 1, id, its, ID_SINGLE_MAPPING));
            }
        }
        if s.coherent {
            flags |= SMMU_FLAG_COHACC;
        }
        flags |= match s.httu {
            HttuOverride::None => 0,
            HttuOverride::Access => 1 << 1,
            HttuOverride::AccessDirty => 2 << 1,
        };
        let body = SmmuV3Body {
            base_address: s.base.into(),
            flags: flags.into(),
            model: 0.into(),
            event_gsiv: s.event_gsiv.unwrap_or(0).into(),
            pri_gsiv: s.pri_gsiv.unwrap_or(0).into(),
            gerr_gsiv: s.gerr_gsiv.unwrap_or(0).into(),
            sync_gsiv: s.sync_gsiv.unwrap_or(0).into(),
            device_id_mapping_index: index.into(),
            ..SmmuV3Body::default()
        };
        push_node(
            &mut nodes,
            NodeType::SmmuV3,
            5,
            count,
            body.as_bytes(),
            &maps,
        )?;
        count += 1;

        for rc in &self.root_complexes {
            let maps: Vec<IdMapping> =
                rc.map
                    .entries()
                    .filter_map(|e| match e {
                        IdMapEntry::Map(m) => Some(mapping(
                            m.rid_base.into(),
                            m.len,
                            m.out_base,
                            smmu_offset,
                            0,
                        )),
                        IdMapEntry::Bypass { rid_base, len } => its_offset
                            .map(|its| mapping(rid_base.into(), len, rid_base.into(), its, 0)),
                    })
                    .collect();
            let body = RootComplexBody {
                cache_coherency: u32::from(rc.coherent).into(),
                memory_flags: if rc.coherent {
                    RC_MF_CPM | RC_MF_DACS
                } else {
                    0
                },
                ats_attribute: u32::from(rc.ats).into(),
                pci_segment: rc.segment.into(),
                memory_address_limit: rc.memory_address_limit,
                ..RootComplexBody::default()
            };
            push_node(
                &mut nodes,
                NodeType::RootComplex,
                4,
                count,
                body.as_bytes(),
                &maps,
            )?;
            count += 1;
        }

        let mut sdt = Sdt::new(
            *b"IORT",
            NODES_OFFSET as u32,
            IORT_REVISION,
            self.oem_id,
            self.oem_table_id,
            self.oem_revision,
        );
        sdt.write_u32(36, count);
        sdt.write_u32(40, NODES_OFFSET as u32);
        sdt.append_slice(&nodes);
        Ok(sdt)
    }

    /// The table bytes (see [`Iort::to_sdt`]).
    ///
    /// # Errors
    /// As for [`Iort::to_sdt`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, IortError> {
        Ok(self.to_sdt()?.as_slice().to_vec())
    }
}

#[cfg(test)]
mod tests;
