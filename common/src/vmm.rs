//! Adapters that let a VMM's emulated devices DMA through our IOMMUs.
//!
//! [`EndpointIommu`] implements vm-memory's [`Iommu`] trait (feature `iommu`) for one endpoint
//! (a StreamID/LIODN and optional SubstreamID) over any [`DmaTranslator`]. Wrap guest memory in
//! a [`vm_memory::IommuMemory`] with it and a rust-vmm virtio device's reads and writes go
//! through the emulated IOMMU:
//!
//! ```
//! use std::sync::Arc;
//! use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, IommuMemory};
//! use viommu_common::{DmaFault, DmaMapping, DmaRequest, DmaTranslator, Perms, StreamId};
//! use viommu_common::fault::Smmuv3FaultId;
//! use viommu_common::traits::{FaultKind, MemAttrs};
//! use viommu_common::vmm::EndpointIommu;
//!
//! /// A toy IOMMU: IOVA x maps to x + 0x10000 for 64 KiB, everything else faults.
//! struct Offset;
//! impl DmaTranslator for Offset {
//!     fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
//!         if req.addr < 0x1_0000 {
//!             Ok(DmaMapping { output: req.addr + 0x1_0000, len: 0x1_0000 - req.addr,
//!                             perms: Perms::RW, attrs: MemAttrs::default() })
//!         } else {
//!             Err(DmaFault { kind: FaultKind::Translation,
//!                            event: Smmuv3FaultId::Translation.into(),
//!                            addr: req.addr, stall_tag: None })
//!         }
//!     }
//! }
//!
//! let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x2_0000)]).unwrap();
//! let iommu = EndpointIommu::new(Arc::new(Offset), StreamId(7), None);
//! let dma = IommuMemory::new(ram.clone(), iommu, true, ());
//! dma.write_obj(0xdead_beef_u32, GuestAddress(0x100)).unwrap();
//! assert_eq!(ram.read_obj::<u32>(GuestAddress(0x1_0100)).unwrap(), 0xdead_beef);
//! assert!(dma.read_obj::<u32>(GuestAddress(0x1_0000)).is_err());
//! ```
//!
//! # Caching and invalidation
//! vm-memory's `Iotlb` is untagged and never evicts, so a long-lived copy would need every
//! CFGI/TLBI fanned out to each adapter. We avoid that class of staleness entirely: each
//! `translate` call builds a private `Iotlb` for exactly the requested range from the device's
//! own (tagged, lock-free, invalidation-correct) IOTLB and returns it inside the guard
//! ([`PinnedIotlb`]). The guard also holds the device's [`DmaPin`], taken before translating,
//! so the access it covers behaves like a transaction in flight: an invalidation of what it
//! uses does not complete (the guest's CMD_SYNC does not finish) until the access is done, and
//! the next access sees every invalidation that completed before it started.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use vm_memory::iommu::{Error as IommuError, IotlbIterator, IovaRange};
use vm_memory::{GuestAddress, Iommu, Iotlb, Permissions};

use crate::access::{AccessKind, DmaRequest, Perms};
use crate::id::{StreamId, SubstreamId};
use crate::traits::{DmaPin, DmaTranslator};

/// Translations one `translate` call may perform beyond one per 4 KiB page of the request.
///
/// A request is translated piece by piece (one mapping each); the work is bounded by
/// [`piece_budget`]: every page-granular translator fits (a mapping never ends before the end of
/// its smallest, 4 KiB page), while a misbehaving translator that keeps returning tiny mappings
/// gets a `Fragmented` error instead of looping (and allocating) in proportion to bytes.
pub const EXTRA_PIECES_PER_ACCESS: usize = 4096;

/// How many translations an access of `length` bytes may take (see
/// [`EXTRA_PIECES_PER_ACCESS`]).
pub const fn piece_budget(length: usize) -> usize {
    (length >> 12).saturating_add(EXTRA_PIECES_PER_ACCESS)
}

/// One endpoint's view of an IOMMU, as a vm-memory [`Iommu`].
pub struct EndpointIommu<T: ?Sized> {
    translator: Arc<T>,
    stream: StreamId,
    substream: Option<SubstreamId>,
    privileged: bool,
}

impl<T: ?Sized> fmt::Debug for EndpointIommu<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointIommu")
            .field("stream", &self.stream)
            .field("substream", &self.substream)
            .field("privileged", &self.privileged)
            .finish_non_exhaustive()
    }
}

impl<T: DmaTranslator + ?Sized> EndpointIommu<T> {
    /// An adapter for the endpoint `stream` (StreamID or LIODN) and optional `substream`,
    /// issuing unprivileged data accesses.
    pub fn new(translator: Arc<T>, stream: StreamId, substream: Option<SubstreamId>) -> Self {
        Self {
            translator,
            stream,
            substream,
            privileged: false,
        }
    }

    /// The same adapter issuing privileged accesses (PnU = 1).
    pub fn privileged(mut self, privileged: bool) -> Self {
        self.privileged = privileged;
        self
    }

    /// The translator behind this adapter.
    pub fn translator(&self) -> &Arc<T> {
        &self.translator
    }

    fn request(&self, addr: u64, len: u64, access: AccessKind) -> DmaRequest {
        DmaRequest {
            stream: self.stream,
            substream: self.substream,
            addr,
            len,
            access,
            privileged: self.privileged,
        }
    }
}

fn to_vm_perms(p: Perms) -> Permissions {
    match (p.read(), p.write()) {
        (true, true) => Permissions::ReadWrite,
        (true, false) => Permissions::Read,
        (false, true) => Permissions::Write,
        (false, false) => Permissions::No,
    }
}

fn range(base: u64, length: usize) -> IovaRange {
    IovaRange {
        base: GuestAddress(base),
        length,
    }
}

/// The guard [`EndpointIommu`] returns: the translations of one access, and the device pin that
/// keeps invalidations of them from completing while the access is in progress.
#[derive(Debug)]
pub struct PinnedIotlb<'a> {
    tlb: Iotlb,
    _pin: DmaPin<'a>,
}

impl Deref for PinnedIotlb<'_> {
    type Target = Iotlb;

    fn deref(&self) -> &Iotlb {
        &self.tlb
    }
}

impl<T: DmaTranslator + ?Sized> Iommu for EndpointIommu<T> {
    type IotlbGuard<'a>
        = PinnedIotlb<'a>
    where
        Self: 'a;

    fn translate(
        &self,
        iova: GuestAddress,
        length: usize,
        access: Permissions,
    ) -> Result<IotlbIterator<Self::IotlbGuard<'_>>, IommuError> {
        let start = iova.0;
        let Some(end) = start.checked_add(length as u64) else {
            return Err(IommuError::CannotResolve {
                iova_range: range(start, length),
                reason: "I/O virtual address range wraps around".into(),
            });
        };
        // A read-write access must be allowed for both; the translator checks one access kind,
        // so ask for the write and require read in the granted permissions too.
        let kind = match access {
            Permissions::Write | Permissions::ReadWrite => AccessKind::Write,
            Permissions::Read | Permissions::No => AccessKind::Read,
        };
        // Pin before translating: invalidations that complete after this point wait for the
        // access (the guard returned below) to finish.
        let pin = self.translator.pin();
        let mut tlb = Iotlb::new();
        let mut cur = start;
        let mut pieces = 0usize;
        let budget = piece_budget(length);
        while cur < end {
            pieces += 1;
            if pieces > budget {
                return Err(IommuError::Fragmented {
                    iova_range: range(start, length),
                    continuous_length: usize::try_from(cur - start).unwrap_or(usize::MAX),
                });
            }
            let mapping = self
                .translator
                .translate(&self.request(cur, end - cur, kind))
                .map_err(|fault| IommuError::CannotResolve {
                    iova_range: range(cur, usize::try_from(end - cur).unwrap_or(usize::MAX)),
                    reason: format!("{} ({:?})", fault.event, fault.kind),
                })?;
            let n = mapping.len.min(end - cur);
            if n == 0 || mapping.output.checked_add(n).is_none() {
                return Err(IommuError::IommuMisconfigured {
                    reason: format!("translator returned an empty or wrapping mapping at {cur:#x}"),
                });
            }
            let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
            tlb.set_mapping(
                GuestAddress(cur),
                GuestAddress(mapping.output),
                n_usize,
                to_vm_perms(mapping.perms),
            )?;
            cur += n;
        }
        let guard = PinnedIotlb { tlb, _pin: pin };
        Iotlb::lookup(guard, iova, length, access).map_err(|fails| {
            let bad = fails
                .access_fails
                .first()
                .or(fails.misses.first())
                .cloned()
                .unwrap_or(range(start, length));
            IommuError::CannotResolve {
                iova_range: bad,
                reason: "mapping does not grant the requested access".into(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Smmuv3FaultId;
    use crate::traits::{DmaFault, DmaMapping, FaultKind, MemAttrs};
    use std::sync::Mutex;
    use vm_memory::{Bytes, GuestMemoryMmap, IommuMemory};

    /// Page-granular test IOMMU: a list of (iova page, pa page, perms) and a request log.
    #[derive(Default)]
    struct Pages {
        pages: Vec<(u64, u64, Perms)>,
        log: Mutex<Vec<DmaRequest>>,
    }

    impl DmaTranslator for Pages {
        fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
            self.log.lock().unwrap().push(*req);
            let page = req.addr & !0xfff;
            let fault = |kind, event| DmaFault {
                kind,
                event,
                addr: req.addr,
                stall_tag: None,
            };
            let (_, pa, perms) =
                self.pages
                    .iter()
                    .find(|(iova, _, _)| *iova == page)
                    .ok_or(fault(
                        FaultKind::Translation,
                        Smmuv3FaultId::Translation.into(),
                    ))?;
            if !perms.allows(req.access) {
                return Err(fault(
                    FaultKind::Permission,
                    Smmuv3FaultId::Permission.into(),
                ));
            }
            Ok(DmaMapping {
                output: pa + (req.addr & 0xfff),
                len: 0x1000 - (req.addr & 0xfff),
                perms: *perms,
                attrs: MemAttrs::default(),
            })
        }
    }

    fn setup(pages: Vec<(u64, u64, Perms)>) -> (GuestMemoryMmap<()>, Arc<Pages>) {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let t = Arc::new(Pages {
            pages,
            ..Default::default()
        });
        (ram, t)
    }

    /// Reads and writes through IommuMemory land at the translated addresses, across pages that
    /// are not contiguous in guest physical memory.
    #[test]
    fn test_iommu_memory_reads_and_writes_through_translation() {
        let (ram, t) = setup(vec![
            (0x4000, 0x9000, Perms::RW),
            (0x5000, 0x2000, Perms::RW),
        ]);
        let mem = IommuMemory::new(
            ram.clone(),
            EndpointIommu::new(t.clone(), StreamId(3), Some(SubstreamId(1))),
            true,
            (),
        );
        let data: Vec<u8> = (0..32).collect();
        mem.write_slice(&data, GuestAddress(0x4ff0)).unwrap();
        let mut lo = [0u8; 16];
        let mut hi = [0u8; 16];
        ram.read_slice(&mut lo, GuestAddress(0x9ff0)).unwrap();
        ram.read_slice(&mut hi, GuestAddress(0x2000)).unwrap();
        assert_eq!(&lo[..], &data[..16]);
        assert_eq!(&hi[..], &data[16..]);
        let mut back = [0u8; 32];
        mem.read_slice(&mut back, GuestAddress(0x4ff0)).unwrap();
        assert_eq!(&back[..], &data[..]);
        let log = t.log.lock().unwrap();
        assert!(log.iter().all(|r| r.stream == StreamId(3)
            && r.substream == Some(SubstreamId(1))
            && !r.privileged));
        assert!(log.iter().any(|r| r.access == AccessKind::Write));
    }

    /// A fault (unmapped page, or write to a read-only page) fails the access and writes nothing.
    #[test]
    fn test_iommu_memory_fails_on_fault() {
        let (ram, t) = setup(vec![(0x4000, 0x9000, Perms::R)]);
        let mem = IommuMemory::new(
            ram.clone(),
            EndpointIommu::new(t, StreamId(3), None),
            true,
            (),
        );
        ram.write_obj(0x1122_3344u32, GuestAddress(0x9010)).unwrap();
        assert_eq!(
            mem.read_obj::<u32>(GuestAddress(0x4010)).unwrap(),
            0x1122_3344
        );
        assert!(mem.write_obj(0u32, GuestAddress(0x4010)).is_err());
        assert_eq!(
            ram.read_obj::<u32>(GuestAddress(0x9010)).unwrap(),
            0x1122_3344
        );
        assert!(mem.read_obj::<u32>(GuestAddress(0x6000)).is_err());
        // A range that wraps the address space is refused, not a panic.
        let it = EndpointIommu::new(Arc::new(Pages::default()), StreamId(0), None);
        assert!(it
            .translate(GuestAddress(u64::MAX - 1), 16, Permissions::Read)
            .is_err());
    }

    /// The adapter's guard holds the device pin: an invalidation's completion
    /// (`Iotlb::synchronize`) started while an access is in progress waits until it finishes.
    #[test]
    fn test_guard_holds_up_invalidation_completion() {
        use crate::iotlb::Iotlb as Tlb;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;

        struct Pinned {
            inner: Pages,
            tlb: Tlb,
        }
        impl DmaTranslator for Pinned {
            fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
                self.inner.translate(req)
            }
            fn pin(&self) -> DmaPin<'_> {
                DmaPin::new(self.tlb.pin())
            }
        }
        let t = Arc::new(Pinned {
            inner: Pages {
                pages: vec![(0x4000, 0x9000, Perms::RW)],
                ..Default::default()
            },
            tlb: Tlb::new(64),
        });
        let it = EndpointIommu::new(t.clone(), StreamId(1), None);
        let access_done = AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel();
        let synced_before_done = std::thread::scope(|s| {
            s.spawn(|| {
                let guard = it
                    .translate(GuestAddress(0x4000), 8, Permissions::Write)
                    .unwrap();
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                access_done.store(true, Ordering::SeqCst);
                drop(guard);
            });
            rx.recv().unwrap();
            t.tlb.synchronize();
            !access_done.load(Ordering::SeqCst)
        });
        assert!(
            !synced_before_done,
            "synchronize returned during the access"
        );
        // With no access in progress, completion does not wait.
        t.tlb.synchronize();
        assert!(!DmaPin::none().is_active());
    }

    /// A translator that keeps returning one-byte mappings cannot make one access loop forever.
    #[test]
    fn test_fragmented_access_is_bounded() {
        struct OneByte;
        impl DmaTranslator for OneByte {
            fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
                Ok(DmaMapping {
                    output: req.addr * 2,
                    len: 1,
                    perms: Perms::RW,
                    attrs: MemAttrs::default(),
                })
            }
        }
        let it = EndpointIommu::new(Arc::new(OneByte), StreamId(0), None);
        let err = it
            .translate(GuestAddress(0), 1 << 20, Permissions::Read)
            .unwrap_err();
        assert!(
            matches!(err, IommuError::Fragmented { continuous_length, .. }
            if continuous_length == piece_budget(1 << 20))
        );
        assert_eq!(piece_budget(1 << 20), 256 + EXTRA_PIECES_PER_ACCESS);
    }

    /// A large access over many separate 4 KiB pages is translated whole (the piece budget grows
    /// with the request).
    #[test]
    fn test_large_access_over_many_pages() {
        struct Scatter;
        impl DmaTranslator for Scatter {
            fn translate(&self, req: &DmaRequest) -> Result<DmaMapping, DmaFault> {
                // Every page maps to a distinct, non-adjacent frame.
                let page = req.addr >> 12;
                Ok(DmaMapping {
                    output: ((page * 2) << 12) + (req.addr & 0xfff),
                    len: 0x1000 - (req.addr & 0xfff),
                    perms: Perms::RW,
                    attrs: MemAttrs::default(),
                })
            }
        }
        let it = EndpointIommu::new(Arc::new(Scatter), StreamId(0), None);
        let len = 17 << 20;
        let pieces: Vec<_> = it
            .translate(GuestAddress(0x800), len, Permissions::Read)
            .unwrap()
            .collect();
        assert_eq!(pieces.len(), (len >> 12) + 1);
        assert_eq!(pieces.iter().map(|p| p.length).sum::<usize>(), len);
    }

    /// No access is answered with an old translation: when the device's mapping of a page
    /// changes (target or permissions) between two accesses on one thread, the second access
    /// follows the new mapping.
    #[test]
    fn test_recycled_iotlb_follows_changed_mappings() {
        let (ram, t) = setup(vec![(0x4000, 0x9000, Perms::RW)]);
        ram.write_obj(0x1111_u32, GuestAddress(0x9010)).unwrap();
        ram.write_obj(0x2222_u32, GuestAddress(0x2010)).unwrap();
        let dma = IommuMemory::new(
            ram.clone(),
            EndpointIommu::new(t.clone(), StreamId(1), None),
            true,
            (),
        );
        assert_eq!(dma.read_obj::<u32>(GuestAddress(0x4010)).unwrap(), 0x1111);
        // Same page, other offset: same answer.
        assert_eq!(
            dma.read_obj::<u32>(GuestAddress(0x4000 + 0x10)).unwrap(),
            0x1111
        );
        let page = |pa, perms| Pages {
            pages: vec![(0x4000, pa, perms)],
            ..Default::default()
        };
        let moved = Arc::new(page(0x2000, Perms::RW));
        let dma2 = IommuMemory::new(
            ram.clone(),
            EndpointIommu::new(moved, StreamId(1), None),
            true,
            (),
        );
        assert_eq!(dma2.read_obj::<u32>(GuestAddress(0x4010)).unwrap(), 0x2222);
        let read_only = Arc::new(page(0x2000, Perms::R));
        let dma3 = IommuMemory::new(
            ram.clone(),
            EndpointIommu::new(read_only, StreamId(1), None),
            true,
            (),
        );
        assert!(dma3.write_obj(0x3333_u32, GuestAddress(0x4010)).is_err());
        assert_eq!(dma3.read_obj::<u32>(GuestAddress(0x4010)).unwrap(), 0x2222);
        // And back: the first translator's mapping again.
        assert_eq!(dma.read_obj::<u32>(GuestAddress(0x4010)).unwrap(), 0x1111);
        assert_eq!(ram.read_obj::<u32>(GuestAddress(0x2010)).unwrap(), 0x2222);
    }
}
