//! PCI requester-ID topology: which StreamID (SMMUv3) or LIODN (PAMU) a device's DMA carries.
//!
//! Two pieces:
//! - [`IdMap`]: device-tree `iommu-map`-style ranges `(rid_base, out_base, len)` from requester
//!   IDs to IOMMU device identifiers, plus explicitly declared bypass ranges. Anything else is
//!   **denied**: a gap or a mistyped entry never turns into bypass.
//! - [`PciTopology`]: the PCI hierarchy between endpoints and the IOMMU, so the requester ID the
//!   IOMMU sees is computed the way the fabric forms it:
//!   - an endpoint on a bus is `(bus, devfn)`;
//!   - a PCIe-to-PCI(-X) bridge takes ownership of its children's transactions: they arrive as
//!     `(bridge secondary bus, devfn 0)`;
//!   - a conventional PCI-to-PCI bridge forwards them under its own requester ID;
//!   - PCIe root and switch ports are transparent; chains compose (the bridge closest to the
//!     IOMMU has the last word).
//!
//! Bus numbers are not fixed: the guest assigns bridges' secondary bus numbers during
//! enumeration (and may renumber later), while devfn never changes. The VMM reports each
//! secondary-bus write with [`PciTopology::set_secondary_bus`]; resolution happens lazily at DMA
//! time and is cached per endpoint. A bus-number change bumps a generation and clears the cache,
//! so nothing resolved under the old numbering survives. Lookups take no lock.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use crate::id::RequesterId;

/// A topology or map configuration error, or a denied requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The requester ID is in no map range and not declared bypass: deny its DMA.
    #[error("requester ID {0} is not mapped to an IOMMU device identifier")]
    Unmapped(RequesterId),
    /// A bridge on the path has no secondary bus number yet (guest has not enumerated it).
    #[error("bridge {0:?} has no secondary bus number assigned")]
    BusUnassigned(NodeId),
    /// A map range is empty, runs past the 16-bit requester-ID space or the 32-bit output space.
    #[error("map range at requester ID {rid_base:#x} with length {len:#x} is invalid")]
    BadRange {
        /// First requester ID of the range.
        rid_base: u16,
        /// Number of requester IDs.
        len: u32,
    },
    /// Two map or bypass ranges overlap.
    #[error("map ranges overlap at requester ID {0:#x}")]
    Overlap(u16),
    /// A node was attached to a parent that is not a bus owner (an endpoint), or does not exist.
    #[error("node {0:?} cannot have children")]
    NotABridge(NodeId),
    /// The node is not a bridge (no secondary bus) or does not exist.
    #[error("node {0:?} is not a bridge of this topology")]
    NoSuchBridge(NodeId),
    /// The node is not an endpoint of this topology.
    #[error("node {0:?} is not an endpoint of this topology")]
    NoSuchEndpoint(NodeId),
}

/// Where a requester's DMA goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Translate with this IOMMU device identifier (StreamID or LIODN).
    Translate(u32),
    /// Explicitly declared to bypass the IOMMU.
    Bypass,
}

/// One `iommu-map` entry: requester IDs `rid_base..rid_base+len` map to `out_base..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdMapRange {
    /// First requester ID.
    pub rid_base: u16,
    /// Device identifier of `rid_base`.
    pub out_base: u32,
    /// Number of requester IDs (1..=0x10000).
    pub len: u32,
}

/// Requester ID to IOMMU device identifier map, deny by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    /// Sorted, non-overlapping: (first rid, last rid, Some(out_base) | None for bypass).
    ranges: Vec<(u16, u16, Option<u32>)>,
}

impl IdMap {
    /// An empty map: every requester is denied.
    pub fn new() -> Self {
        Self::default()
    }

    /// The identity map for all 65536 requester IDs (StreamID = RID), as on systems whose
    /// `iommu-map` is `<0 &smmu 0 0x10000>`.
    pub fn identity() -> Self {
        let mut m = Self::new();
        m.ranges.push((0, u16::MAX, Some(0)));
        m
    }

    fn check(rid_base: u16, len: u32) -> Result<u16, TopologyError> {
        if len == 0 || u32::from(rid_base) + len > 0x1_0000 {
            return Err(TopologyError::BadRange { rid_base, len });
        }
        // Checked above: rid_base + len - 1 <= 0xffff.
        Ok(u16::try_from(u32::from(rid_base) + len - 1).unwrap_or(u16::MAX))
    }

    fn insert(&mut self, first: u16, last: u16, out: Option<u32>) -> Result<(), TopologyError> {
        let pos = self.ranges.partition_point(|r| r.1 < first);
        if let Some(r) = self.ranges.get(pos) {
            if r.0 <= last {
                return Err(TopologyError::Overlap(first.max(r.0)));
            }
        }
        self.ranges.insert(pos, (first, last, out));
        Ok(())
    }

    /// Add an `iommu-map` range.
    ///
    /// # Errors
    /// [`TopologyError::BadRange`] for an empty range or one past the RID or output space,
    /// [`TopologyError::Overlap`] if it overlaps an existing range.
    pub fn map(&mut self, range: IdMapRange) -> Result<&mut Self, TopologyError> {
        let last = Self::check(range.rid_base, range.len)?;
        if u64::from(range.out_base) + u64::from(range.len) > 1 << 32 {
            return Err(TopologyError::BadRange {
                rid_base: range.rid_base,
                len: range.len,
            });
        }
        self.insert(range.rid_base, last, Some(range.out_base))?;
        Ok(self)
    }

    /// Declare requester IDs `rid_base..rid_base+len` as bypassing the IOMMU.
    ///
    /// # Errors
    /// As for [`IdMap::map`].
    pub fn bypass(&mut self, rid_base: u16, len: u32) -> Result<&mut Self, TopologyError> {
        let last = Self::check(rid_base, len)?;
        self.insert(rid_base, last, None)?;
        Ok(self)
    }

    /// Route a requester ID.
    ///
    /// # Errors
    /// [`TopologyError::Unmapped`] for a requester in no range: its DMA must be denied.
    pub fn route(&self, rid: RequesterId) -> Result<Route, TopologyError> {
        let pos = self.ranges.partition_point(|r| r.1 < rid.0);
        match self.ranges.get(pos) {
            Some(&(first, _, out)) if first <= rid.0 => Ok(match out {
                Some(base) => Route::Translate(base.wrapping_add(u32::from(rid.0 - first))),
                None => Route::Bypass,
            }),
            _ => Err(TopologyError::Unmapped(rid)),
        }
    }

    /// The declared ranges in requester-ID order: every `iommu-map` range and every bypass
    /// range. Gaps (denied requesters) are simply absent. Firmware-table generators
    /// (device tree `iommu-map`, ACPI IORT ID mappings) describe the map from this list.
    pub fn entries(&self) -> impl Iterator<Item = IdMapEntry> + '_ {
        self.ranges.iter().map(|&(first, last, out)| {
            let len = u32::from(last) - u32::from(first) + 1;
            match out {
                Some(out_base) => IdMapEntry::Map(IdMapRange {
                    rid_base: first,
                    out_base,
                    len,
                }),
                None => IdMapEntry::Bypass {
                    rid_base: first,
                    len,
                },
            }
        })
    }
}

/// One declared range of an [`IdMap`], as [`IdMap::entries`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdMapEntry {
    /// Requester IDs translated with identifiers from `out_base`.
    Map(IdMapRange),
    /// Requester IDs `rid_base..rid_base+len` declared to bypass the IOMMU.
    Bypass {
        /// First requester ID.
        rid_base: u16,
        /// Number of requester IDs (1..=0x10000).
        len: u32,
    },
}

/// A node of a [`PciTopology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// What a bridge does to the requester IDs of transactions it forwards upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BridgeKind {
    /// PCIe root port or switch port: transparent, the requester ID is kept.
    PciePort,
    /// PCIe-to-PCI/PCI-X bridge: children appear as (secondary bus, devfn 0).
    PcieToPci,
    /// Conventional PCI-to-PCI bridge: children appear as the bridge's own requester ID.
    PciToPci,
}

#[derive(Debug, Clone, Copy)]
enum Parent {
    /// On a root bus with a fixed number.
    RootBus(u8),
    /// On the secondary bus of a bridge node.
    Bridge(usize),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bridge(BridgeKind),
    Endpoint,
}

#[derive(Debug)]
struct Node {
    parent: Parent,
    devfn: u8,
    kind: Kind,
}

/// Bus numbers of bridges with no secondary bus assigned read as this.
const NO_BUS: u16 = u16::MAX;
/// Cache word: bit 63 valid, bit 62 bypass, bits 61:32 generation (30 bits), 31:0 identifier.
const CACHE_VALID: u64 = 1 << 63;
const CACHE_BYPASS: u64 = 1 << 62;
const GEN_MASK: u64 = (1 << 30) - 1;

/// A PCI hierarchy plus an [`IdMap`]: resolves endpoints to [`Route`]s at DMA time.
#[derive(Debug)]
pub struct PciTopology {
    nodes: Vec<Node>,
    /// Secondary bus number per node (bridges only; [`NO_BUS`] when unassigned).
    secondary: Vec<AtomicU16>,
    /// Per-node resolved route cache (endpoints only), see [`CACHE_VALID`].
    cache: Vec<AtomicU64>,
    /// Bumped by every bus-number change. Ordering: the bump happens-before the cache clear, and
    /// a resolver re-checks the generation before publishing, so a route computed under an old
    /// numbering is never served after `set_secondary_bus` returns.
    generation: AtomicU64,
    map: IdMap,
}

/// Builds a [`PciTopology`].
#[derive(Debug, Default)]
pub struct PciTopologyBuilder {
    nodes: Vec<Node>,
}

impl PciTopologyBuilder {
    /// An empty hierarchy.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, parent: Parent, devfn: u8, kind: Kind) -> Result<NodeId, TopologyError> {
        if let Parent::Bridge(p) = parent {
            match self.nodes.get(p) {
                Some(Node {
                    kind: Kind::Bridge(_),
                    ..
                }) => {}
                _ => return Err(TopologyError::NotABridge(NodeId(p))),
            }
        }
        self.nodes.push(Node {
            parent,
            devfn,
            kind,
        });
        Ok(NodeId(self.nodes.len() - 1))
    }

    /// A bridge at `devfn` on root bus `bus`.
    ///
    /// # Errors
    /// Never for root buses; kept fallible for symmetry with [`Self::bridge_behind`].
    pub fn root_bridge(
        &mut self,
        bus: u8,
        devfn: u8,
        kind: BridgeKind,
    ) -> Result<NodeId, TopologyError> {
        self.add(Parent::RootBus(bus), devfn, Kind::Bridge(kind))
    }

    /// A bridge at `devfn` on the secondary bus of `parent`.
    ///
    /// # Errors
    /// [`TopologyError::NotABridge`] if `parent` is not a bridge.
    pub fn bridge_behind(
        &mut self,
        parent: NodeId,
        devfn: u8,
        kind: BridgeKind,
    ) -> Result<NodeId, TopologyError> {
        self.add(Parent::Bridge(parent.0), devfn, Kind::Bridge(kind))
    }

    /// An endpoint at `devfn` on root bus `bus`.
    ///
    /// # Errors
    /// Never for root buses.
    pub fn root_endpoint(&mut self, bus: u8, devfn: u8) -> Result<NodeId, TopologyError> {
        self.add(Parent::RootBus(bus), devfn, Kind::Endpoint)
    }

    /// An endpoint at `devfn` on the secondary bus of `parent`.
    ///
    /// # Errors
    /// [`TopologyError::NotABridge`] if `parent` is not a bridge.
    pub fn endpoint_behind(&mut self, parent: NodeId, devfn: u8) -> Result<NodeId, TopologyError> {
        self.add(Parent::Bridge(parent.0), devfn, Kind::Endpoint)
    }

    /// Finish with the requester-ID map to apply after aliasing.
    pub fn build(self, map: IdMap) -> PciTopology {
        let n = self.nodes.len();
        PciTopology {
            nodes: self.nodes,
            secondary: (0..n).map(|_| AtomicU16::new(NO_BUS)).collect(),
            cache: (0..n).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            map,
        }
    }
}

impl PciTopology {
    /// Record the secondary bus number the guest programmed into `bridge` (`None`: unassigned).
    /// Invalidates every cached route.
    ///
    /// # Errors
    /// [`TopologyError::NoSuchBridge`] if `bridge` is not a bridge node.
    pub fn set_secondary_bus(&self, bridge: NodeId, bus: Option<u8>) -> Result<(), TopologyError> {
        match self.nodes.get(bridge.0) {
            Some(Node {
                kind: Kind::Bridge(_),
                ..
            }) => {}
            _ => return Err(TopologyError::NoSuchBridge(bridge)),
        }
        let new = bus.map_or(NO_BUS, u16::from);
        if self.secondary[bridge.0].swap(new, Ordering::SeqCst) != new {
            // SeqCst: the bump is ordered after the bus store and before the clears, and a
            // resolver's final generation check (SeqCst load) sees either the old generation
            // before our clear (its store is then cleared) or the new one (it does not store).
            self.generation.fetch_add(1, Ordering::SeqCst);
            for c in &self.cache {
                c.store(0, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// The generation of the bus numbering (changes with every effective renumbering).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn bus_of(&self, parent: Parent) -> Result<u8, TopologyError> {
        match parent {
            Parent::RootBus(b) => Ok(b),
            Parent::Bridge(p) => {
                let v = self.secondary[p].load(Ordering::SeqCst);
                u8::try_from(v).map_err(|_| TopologyError::BusUnassigned(NodeId(p)))
            }
        }
    }

    /// The requester ID the IOMMU sees for DMA from `endpoint` under the current numbering.
    ///
    /// # Errors
    /// [`TopologyError::NoSuchEndpoint`], or [`TopologyError::BusUnassigned`] if a bridge on the
    /// path has no bus number yet.
    pub fn requester_id(&self, endpoint: NodeId) -> Result<RequesterId, TopologyError> {
        let node = match self.nodes.get(endpoint.0) {
            Some(
                n @ Node {
                    kind: Kind::Endpoint,
                    ..
                },
            ) => n,
            _ => return Err(TopologyError::NoSuchEndpoint(endpoint)),
        };
        let mut rid =
            RequesterId((u16::from(self.bus_of(node.parent)?) << 8) | u16::from(node.devfn));
        let mut up = node.parent;
        // Each step moves to a node with a smaller index (parents are created first), so the
        // walk is bounded by the node count.
        while let Parent::Bridge(b) = up {
            let bridge = &self.nodes[b];
            if let Kind::Bridge(kind) = bridge.kind {
                match kind {
                    BridgeKind::PciePort => {}
                    BridgeKind::PcieToPci => {
                        rid = RequesterId(u16::from(self.bus_of(Parent::Bridge(b))?) << 8);
                    }
                    BridgeKind::PciToPci => {
                        rid = RequesterId(
                            (u16::from(self.bus_of(bridge.parent)?) << 8) | u16::from(bridge.devfn),
                        );
                    }
                }
            }
            up = bridge.parent;
        }
        Ok(rid)
    }

    /// Route DMA from `endpoint`: resolve its (aliased) requester ID and look it up in the map.
    /// Served from a per-endpoint cache after the first call under a given bus numbering.
    ///
    /// # Errors
    /// As [`Self::requester_id`], and [`TopologyError::Unmapped`] when the map denies it.
    pub fn route(&self, endpoint: NodeId) -> Result<Route, TopologyError> {
        let gen = self.generation.load(Ordering::SeqCst);
        let slot = self
            .cache
            .get(endpoint.0)
            .ok_or(TopologyError::NoSuchEndpoint(endpoint))?;
        let cached = slot.load(Ordering::SeqCst);
        if cached & CACHE_VALID != 0 && (cached >> 32) & GEN_MASK == gen & GEN_MASK {
            return Ok(if cached & CACHE_BYPASS != 0 {
                Route::Bypass
            } else {
                Route::Translate(cached as u32)
            });
        }
        let route = self.map.route(self.requester_id(endpoint)?)?;
        let word = CACHE_VALID
            | ((gen & GEN_MASK) << 32)
            | match route {
                Route::Bypass => CACHE_BYPASS,
                Route::Translate(id) => u64::from(id),
            };
        // Publish only if no renumbering happened meanwhile (otherwise the clear may already
        // have run and our word would be computed from the old numbering).
        if self.generation.load(Ordering::SeqCst) == gen {
            slot.store(word, Ordering::SeqCst);
            if self.generation.load(Ordering::SeqCst) != gen {
                slot.store(0, Ordering::SeqCst);
            }
        }
        Ok(route)
    }

    /// The requester-ID map.
    pub fn id_map(&self) -> &IdMap {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(bus: u8, dev: u8, func: u8) -> RequesterId {
        RequesterId::new(bus, dev, func)
    }

    /// Ranges map with offsets; gaps are denied, never bypassed.
    #[test]
    fn test_id_map_ranges_and_gaps() {
        let mut m = IdMap::new();
        m.map(IdMapRange {
            rid_base: 0x100,
            out_base: 0x1000,
            len: 0x100,
        })
        .unwrap()
        .bypass(0x300, 8)
        .unwrap();
        assert_eq!(m.route(RequesterId(0x100)), Ok(Route::Translate(0x1000)));
        assert_eq!(m.route(RequesterId(0x1ff)), Ok(Route::Translate(0x10ff)));
        assert_eq!(
            m.route(RequesterId(0x200)),
            Err(TopologyError::Unmapped(RequesterId(0x200)))
        );
        assert_eq!(
            m.route(RequesterId(0xff)),
            Err(TopologyError::Unmapped(RequesterId(0xff)))
        );
        assert_eq!(m.route(RequesterId(0x307)), Ok(Route::Bypass));
        assert_eq!(
            m.route(RequesterId(0x308)),
            Err(TopologyError::Unmapped(RequesterId(0x308)))
        );
        assert_eq!(
            IdMap::new().route(RequesterId(0)),
            Err(TopologyError::Unmapped(RequesterId(0)))
        );
        assert_eq!(
            IdMap::identity().route(RequesterId(0xbeef)),
            Ok(Route::Translate(0xbeef))
        );
    }

    /// Overlapping, empty, and out-of-space ranges are configuration errors.
    #[test]
    fn test_id_map_rejects_bad_ranges() {
        let mut m = IdMap::new();
        m.map(IdMapRange {
            rid_base: 0x10,
            out_base: 0,
            len: 0x10,
        })
        .unwrap();
        assert_eq!(
            m.map(IdMapRange {
                rid_base: 0x1f,
                out_base: 0,
                len: 1
            })
            .unwrap_err(),
            TopologyError::Overlap(0x1f)
        );
        assert_eq!(
            m.bypass(0x8, 0x10).unwrap_err(),
            TopologyError::Overlap(0x10)
        );
        assert_eq!(
            m.map(IdMapRange {
                rid_base: 0x100,
                out_base: 0,
                len: 0
            })
            .unwrap_err(),
            TopologyError::BadRange {
                rid_base: 0x100,
                len: 0
            }
        );
        assert!(m
            .map(IdMapRange {
                rid_base: 0xffff,
                out_base: 0,
                len: 2
            })
            .is_err());
        assert!(m
            .map(IdMapRange {
                rid_base: 0x200,
                out_base: u32::MAX,
                len: 2
            })
            .is_err());
        // The failed inserts left the map as it was.
        assert_eq!(
            m.route(RequesterId(0x8)),
            Err(TopologyError::Unmapped(RequesterId(0x8)))
        );
        assert_eq!(m.route(RequesterId(0x1f)), Ok(Route::Translate(0xf)));
    }

    /// Root port -> PCIe-to-PCI bridge -> conventional PCI bridge -> endpoint, plus endpoints at
    /// each level: aliasing composes, the bridge nearest the IOMMU wins.
    #[test]
    fn test_bridge_aliasing_chains() {
        let mut b = PciTopologyBuilder::new();
        let rc_ep = b.root_endpoint(0, 0x08).unwrap(); // 00:01.0
        let rp = b.root_bridge(0, 0x10, BridgeKind::PciePort).unwrap(); // 00:02.0
        let pcie_ep = b.endpoint_behind(rp, 0x00).unwrap();
        let x = b.bridge_behind(rp, 0x00, BridgeKind::PcieToPci).unwrap();
        let x_child = b.endpoint_behind(x, 0x28).unwrap(); // dev 5
        let p2p = b.bridge_behind(x, 0x30, BridgeKind::PciToPci).unwrap();
        let deep = b.endpoint_behind(p2p, 0x09).unwrap();
        let rp2 = b.root_bridge(0, 0x18, BridgeKind::PciePort).unwrap();
        let p2p_only = b.bridge_behind(rp2, 0x00, BridgeKind::PciToPci).unwrap();
        let conv_child = b.endpoint_behind(p2p_only, 0x10).unwrap();
        let t = b.build(IdMap::identity());
        t.set_secondary_bus(rp, Some(1)).unwrap();
        t.set_secondary_bus(x, Some(2)).unwrap();
        t.set_secondary_bus(p2p, Some(3)).unwrap();
        t.set_secondary_bus(rp2, Some(4)).unwrap();
        t.set_secondary_bus(p2p_only, Some(5)).unwrap();
        assert_eq!(t.requester_id(rc_ep), Ok(rid(0, 1, 0)));
        assert_eq!(t.requester_id(pcie_ep), Ok(rid(1, 0, 0)));
        // Behind the PCIe-to-PCI bridge: (secondary bus 2, devfn 0).
        assert_eq!(t.requester_id(x_child), Ok(rid(2, 0, 0)));
        // Behind a conventional bridge behind the PCIe-to-PCI bridge: still (2, 0).
        assert_eq!(t.requester_id(deep), Ok(rid(2, 0, 0)));
        // Behind a conventional bridge only: the bridge's own RID 04:00.0.
        assert_eq!(t.requester_id(conv_child), Ok(rid(4, 0, 0)));
        assert_eq!(t.route(deep), Ok(Route::Translate(0x200)));
        assert_eq!(t.requester_id(rp), Err(TopologyError::NoSuchEndpoint(rp)));
    }

    /// Renumbering in the middle of a run: routes follow the new bus numbers immediately, and an
    /// unassigned bus denies DMA.
    #[test]
    fn test_renumbering_invalidates_cached_routes() {
        let mut b = PciTopologyBuilder::new();
        let rp = b.root_bridge(0, 0x08, BridgeKind::PciePort).unwrap();
        let ep = b.endpoint_behind(rp, 0x00).unwrap();
        let mut map = IdMap::new();
        map.map(IdMapRange {
            rid_base: 0x100,
            out_base: 0x10,
            len: 0x100,
        })
        .unwrap();
        map.map(IdMapRange {
            rid_base: 0x300,
            out_base: 0x30,
            len: 0x100,
        })
        .unwrap();
        let t = b.build(map);
        assert_eq!(t.route(ep), Err(TopologyError::BusUnassigned(rp)));
        t.set_secondary_bus(rp, Some(1)).unwrap();
        assert_eq!(t.route(ep), Ok(Route::Translate(0x10)));
        assert_eq!(t.route(ep), Ok(Route::Translate(0x10)), "cached");
        let g = t.generation();
        t.set_secondary_bus(rp, Some(1)).unwrap();
        assert_eq!(
            t.generation(),
            g,
            "rewriting the same number changes nothing"
        );
        t.set_secondary_bus(rp, Some(3)).unwrap();
        assert_eq!(t.route(ep), Ok(Route::Translate(0x30)));
        t.set_secondary_bus(rp, Some(2)).unwrap();
        assert_eq!(t.route(ep), Err(TopologyError::Unmapped(rid(2, 0, 0))));
        t.set_secondary_bus(rp, None).unwrap();
        assert_eq!(t.route(ep), Err(TopologyError::BusUnassigned(rp)));
        assert_eq!(
            t.set_secondary_bus(ep, Some(1)),
            Err(TopologyError::NoSuchBridge(ep))
        );
    }

    /// Routes resolved concurrently with renumbering never outlive the renumbering: once
    /// `set_secondary_bus` returns, every later lookup sees the new route.
    #[test]
    fn test_concurrent_renumbering_never_serves_stale_route() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let mut b = PciTopologyBuilder::new();
        let rp = b.root_bridge(0, 0x08, BridgeKind::PciePort).unwrap();
        let ep = b.endpoint_behind(rp, 0x00).unwrap();
        let t = Arc::new(b.build(IdMap::identity()));
        t.set_secondary_bus(rp, Some(1)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (t, stop) = (t.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = t.route(ep);
                    }
                })
            })
            .collect();
        for i in 0..2000u32 {
            let bus = (i % 250) as u8 + 1;
            t.set_secondary_bus(rp, Some(bus)).unwrap();
            assert_eq!(t.route(ep), Ok(Route::Translate(u32::from(bus) << 8)));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }

    /// Children can only hang below bridges.
    #[test]
    fn test_builder_rejects_endpoint_parent() {
        let mut b = PciTopologyBuilder::new();
        let ep = b.root_endpoint(0, 0).unwrap();
        assert_eq!(
            b.endpoint_behind(ep, 0).unwrap_err(),
            TopologyError::NotABridge(ep)
        );
        assert_eq!(
            b.bridge_behind(NodeId(99), 0, BridgeKind::PciePort)
                .unwrap_err(),
            TopologyError::NotABridge(NodeId(99))
        );
    }
}
