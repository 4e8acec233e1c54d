//! VMM-side glue shared by the `vmm_*` integration tests: what a VMM author writes around our
//! devices. A per-endpoint DMA view that follows the PCI topology at access time, and a small
//! virtio-like emulated device that DMAs through `vm_memory::IommuMemory`.
//!
//! Included with `mod vmm_support;` by each test file; not every file uses every item.

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryError, GuestMemoryMmap, IommuMemory};

use viommu::common::access::{DmaRequest, Perms};
use viommu::common::fault::FaultId;
use viommu::common::id::StreamId;
use viommu::common::topology::{NodeId, PciTopology, Route};
use viommu::common::traits::{DmaFault, DmaMapping, DmaTranslator, FaultKind, MemAttrs};
use viommu::common::vmm::EndpointIommu;

/// Guest RAM as the VMM owns it.
pub type Ram = GuestMemoryMmap<()>;

/// The fault a [`RoutedEndpoint`] reports when the requester-ID map denies the endpoint.
pub const RID_UNMAPPED: FaultId = FaultId::RequesterUnmapped;

/// One endpoint's DMA as the VMM routes it: the endpoint's requester ID is resolved through the
/// PCI topology and `iommu-map` **at every access** (so a guest renumbering a bridge's
/// secondary bus takes effect on the next DMA), then translated by the IOMMU under the resulting
/// StreamID/LIODN. Declared-bypass requesters go straight to guest physical memory; requesters
/// in no map range are denied before they reach the IOMMU.
pub struct RoutedEndpoint<T: ?Sized> {
    /// The platform's PCI hierarchy and requester-ID map.
    pub topology: Arc<PciTopology>,
    /// The endpoint.
    pub node: NodeId,
    /// The IOMMU.
    pub iommu: Arc<T>,
}

impl<T: DmaTranslator + ?Sized> DmaTranslator for RoutedEndpoint<T> {
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        match self.topology.route(self.node) {
            Ok(Route::Translate(id)) => self.iommu.translate(&DmaRequest {
                stream: StreamId(id),
                ..*req
            }),
            Ok(Route::Bypass) => Ok(DmaMapping {
                output: req.addr,
                len: req.len.max(1),
                perms: Perms::RWX,
                attrs: MemAttrs::default(),
            }),
            // Unmapped requester, bus not yet numbered: deny, never bypass.
            Err(_) => Err(DmaFault {
                kind: FaultKind::Configuration,
                event: RID_UNMAPPED,
                addr: req.addr,
                stall_tag: None,
            }),
        }
    }
}

/// A DMA view for `node`: guest memory seen through the topology and `iommu`.
pub fn routed_view<T: DmaTranslator + ?Sized>(
    ram: &Ram,
    topology: &Arc<PciTopology>,
    node: NodeId,
    iommu: &Arc<T>,
) -> IommuMemory<Ram, EndpointIommu<RoutedEndpoint<T>>> {
    let ep = RoutedEndpoint {
        topology: topology.clone(),
        node,
        iommu: iommu.clone(),
    };
    // The StreamID given to the adapter is replaced per access by the routed one.
    IommuMemory::new(
        ram.clone(),
        EndpointIommu::new(Arc::new(ep), StreamId(u32::MAX), None),
        true,
        (),
    )
}

/// Size of one request descriptor of [`ToyVirtioDevice`].
pub const DESC_SIZE: u64 = 16;

/// A virtio-blk-like emulated device. The driver places a 16-byte request descriptor in I/O
/// virtual memory, little-endian `{ buf: u64, len: u32, op: u32 }`, followed by a 4-byte used
/// field the device writes. `op` [`OP_FILL`]: the device writes `len` bytes of its pattern
/// into `buf` (a disk read); [`OP_SUM`]: the device reads `len` bytes from `buf` and reports
/// their byte sum (a disk write). Every access goes through the given `GuestMemory`, so with an
/// `IommuMemory` every byte is translated.
pub struct ToyVirtioDevice {
    /// The byte pattern's seed.
    pub seed: u8,
}

/// Device writes its pattern into the buffer.
pub const OP_FILL: u32 = 0;
/// Device reads the buffer and reports its byte sum.
pub const OP_SUM: u32 = 1;

impl ToyVirtioDevice {
    /// The pattern byte at offset `i`.
    pub fn pattern(&self, i: usize) -> u8 {
        self.seed.wrapping_add((i as u8).wrapping_mul(7))
    }

    /// Process the request whose descriptor is at `desc`; returns the value written to the used
    /// field (bytes filled, or the byte sum).
    pub fn process<G: GuestMemory>(&self, mem: &G, desc: u64) -> Result<u32, GuestMemoryError> {
        let buf: u64 = mem.read_obj(GuestAddress(desc))?;
        let len: u32 = mem.read_obj(GuestAddress(desc + 8))?;
        let op: u32 = mem.read_obj(GuestAddress(desc + 12))?;
        let len = len.min(1 << 20) as usize;
        let used = if op == OP_FILL {
            let data: Vec<u8> = (0..len).map(|i| self.pattern(i)).collect();
            mem.write_slice(&data, GuestAddress(buf))?;
            len as u32
        } else {
            let mut data = vec![0u8; len];
            mem.read_slice(&mut data, GuestAddress(buf))?;
            data.iter().map(|&b| u32::from(b)).sum()
        };
        mem.write_obj(used, GuestAddress(desc + DESC_SIZE))?;
        Ok(used)
    }
}

/// The driver side: write a request descriptor into guest-physical memory at `desc_pa`.
pub fn post_request(ram: &Ram, desc_pa: u64, buf_iova: u64, len: u32, op: u32) {
    ram.write_obj(buf_iova, GuestAddress(desc_pa)).unwrap();
    ram.write_obj(len, GuestAddress(desc_pa + 8)).unwrap();
    ram.write_obj(op, GuestAddress(desc_pa + 12)).unwrap();
    ram.write_obj(0u32, GuestAddress(desc_pa + DESC_SIZE))
        .unwrap();
}

/// Read `n` bytes of guest-physical memory.
pub fn read_pa(ram: &Ram, pa: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    ram.read_slice(&mut v, GuestAddress(pa)).unwrap();
    v
}

/// A translator wrapper that counts the requests reaching the wrapped IOMMU.
pub struct Counting<T> {
    /// The IOMMU.
    pub inner: Arc<T>,
    /// Requests forwarded so far.
    pub count: std::sync::atomic::AtomicU64,
}

impl<T> Counting<T> {
    /// Wrap `inner`.
    pub fn new(inner: Arc<T>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            count: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Requests forwarded so far.
    pub fn count(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<T: DmaTranslator> DmaTranslator for Counting<T> {
    fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.translate(req)
    }
}
