//! The iommufd backend (Linux, x86_64/aarch64): iommufd-ioctls 0.4 and vfio-ioctls 0.10, with the
//! raw ioctl wrappers where the crates' typed objects hide object ids (the vIOMMU id is needed for
//! batched HWPT_INVALIDATE, so the whole vIOMMU is built from the raw calls here).
//!
//! Sequence: [`IommufdContext::open`] (open /dev/iommu, IOAS) → [`IommufdContext::map_ram`] /
//! [`MappedRam`] (guest RAM at IOVA = GPA) → [`IommufdContext::bind_device`] (VFIO cdev bound, not
//! attached) → [`IommufdContext::hw_info`] → [`IommufdContext::create_viommu`] (NEST_PARENT,
//! vIOMMU, shared abort/bypass HWPTs) → [`crate::Endpoint::new`] per device (vDEVICE + attach) →
//! [`IommufdViommu::alloc_event_queue`].
//!
//! A VMM normally does not drive endpoints itself: it builds an [`IommufdAccelSmmu`] (the
//! accelerated vSMMU over this backend) and attaches VFIO devices to it by guest StreamID;
//! `examples/accel_vmm.rs` is the whole sequence.

mod raw;

use std::ffi::CStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use iommufd_bindings::iommufd::*;
use iommufd_ioctls::{IommuFd, IommufdHwInfoData, IommufdIoas};
use vfio_ioctls::{VfioDevice, VfioIommufd};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};
use zerocopy::IntoBytes;

use crate::canon::CanonicalSte;
use crate::caps::HostCaps;
use crate::error::{Errno, EventError, HostOp, InvalidateError, TeardownError, ViommuError};
use crate::events::{EventItem, VeventDecoder};
use crate::host::{
    AttachPort, DevId, HostEventSource, HostViommu, HwptId, SharedHwpt, VdevId, MAX_BATCH,
};
use crate::spec::hwinfo::HwInfoArmSmmuv3;
use viommu_common::StreamId;
use viommu_smmuv3::spec::cmd::{CmdEntry, Opcode};
use viommu_smmuv3::spec::ste::{SteConfig, SteW0, SteW1};

/// The errno carried anywhere in an error's source chain (EIO if none).
fn errno_of(e: &(dyn std::error::Error + 'static)) -> Errno {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(s) = err.downcast_ref::<vmm_sys_util::errno::Error>() {
            return Errno(s.errno());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Errno(n);
            }
        }
        cur = err.source();
    }
    Errno::EIO
}

fn host(op: HostOp) -> impl Fn(iommufd_ioctls::IommufdError) -> ViommuError {
    move |e| ViommuError::Host {
        op,
        errno: errno_of(&e),
    }
}

/// The accelerated vSMMU over iommufd: guest memory `M`, one vIOMMU, VFIO cdev devices, the
/// vIOMMU's vEVENTQ.
pub type IommufdAccelSmmu<M> =
    crate::accel::AcceleratedSmmu<M, IommufdViommu, VfioPort, IommufdEventQueue>;

/// An open iommufd with the IOAS holding guest RAM (IOVA = GPA).
pub struct IommufdContext {
    fd: Arc<IommuFd>,
    ioas: Arc<IommufdIoas>,
    vfio: Arc<VfioIommufd>,
}

impl std::fmt::Debug for IommufdContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IommufdContext")
            .field("ioas", &self.ioas.id())
            .finish()
    }
}

impl IommufdContext {
    /// Open `/dev/iommu` and allocate the IOAS.
    pub fn open() -> Result<Self, ViommuError> {
        let fd = Arc::new(IommuFd::new().map_err(host(HostOp::OpenIommufd))?);
        let ioas = Arc::new(IommufdIoas::new(fd.clone()).map_err(host(HostOp::IoasAlloc))?);
        let vfio = VfioIommufd::new(fd.clone(), Some(ioas.clone()), None).map_err(|e| {
            ViommuError::Host {
                op: HostOp::IoasAlloc,
                errno: errno_of(&e),
            }
        })?;
        Ok(Self {
            fd,
            ioas,
            vfio: Arc::new(vfio),
        })
    }

    /// The IOAS id.
    pub fn ioas_id(&self) -> u32 {
        self.ioas.id()
    }

    /// Map `len` bytes of `file` from `offset` at IOVA `iova` (guest RAM: IOVA = GPA).
    pub fn map_ram(
        &self,
        file: &File,
        offset: u64,
        len: u64,
        iova: u64,
        writable: bool,
    ) -> Result<(), ViommuError> {
        self.ioas
            .map_file(file.as_raw_fd(), offset, len, iova, writable)
            .map_err(host(HostOp::IoasMap))
    }

    /// Unmap an IOVA range.
    pub fn unmap_ram(&self, iova: u64, len: u64) -> Result<(), ViommuError> {
        self.ioas.unmap(iova, len).map_err(host(HostOp::IoasUnmap))
    }

    /// Open the VFIO cdev of the PCI device at `sysfs` and bind it to this iommufd (not attached).
    pub fn bind_device(&self, sysfs: &Path) -> Result<VfioPort, ViommuError> {
        let file = VfioDevice::open_cdev(sysfs).map_err(|e| ViommuError::Host {
            op: HostOp::OpenCdev,
            errno: errno_of(&e),
        })?;
        let dev = VfioDevice::new_from_fd(file, self.vfio.clone(), false).map_err(|e| {
            ViommuError::Host {
                op: HostOp::BindDevice,
                errno: errno_of(&e),
            }
        })?;
        let id = dev.iommufd_dev_id().ok_or(ViommuError::Host {
            op: HostOp::BindDevice,
            errno: Errno::ENODEV,
        })?;
        Ok(VfioPort {
            dev: Arc::new(dev),
            id: DevId(id),
        })
    }

    /// IOMMU_GET_HW_INFO for an SMMUv3 (requested by type, so other IOMMUs fail with EOPNOTSUPP).
    pub fn hw_info(&self, dev: DevId) -> Result<HostCaps, ViommuError> {
        let mut data = IommufdHwInfoData::Smmuv3(iommu_hw_info_arm_smmuv3::default());
        let IommufdHwInfoData::Smmuv3(ref mut d) = data;
        let mut info = iommu_hw_info {
            size: size_of::<iommu_hw_info>() as u32,
            flags: iommufd_hw_info_flags_IOMMU_HW_INFO_FLAG_INPUT_TYPE,
            dev_id: dev.0,
            data_len: size_of::<iommu_hw_info_arm_smmuv3>() as u32,
            data_uptr: d as *mut iommu_hw_info_arm_smmuv3 as u64,
            __bindgen_anon_1: iommu_hw_info__bindgen_ty_1 {
                in_data_type: iommu_hw_info_type_IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
            },
            ..Default::default()
        };
        self.fd
            .get_hw_info(&mut info)
            .map_err(host(HostOp::GetHwInfo))?;
        let raw = HwInfoArmSmmuv3 {
            flags: d.flags,
            reserved: d.__reserved,
            idr: d.idr,
            iidr: d.iidr,
            aidr: d.aidr,
        };
        Ok(HostCaps::new(
            raw,
            info.out_max_pasid_log2,
            info.out_capabilities,
        ))
    }

    /// Build a vIOMMU for the physical SMMU behind `dev`: NEST_PARENT HWPT over the IOAS, the
    /// vIOMMU, and its shared abort and bypass nested HWPTs. Partial work is undone on failure.
    /// On a host without S2FWB or CANWBS the kernel refuses VIOMMU_ALLOC with EOPNOTSUPP.
    pub fn create_viommu(&self, dev: DevId) -> Result<IommufdViommu, ViommuError> {
        let caps = self.hw_info(dev)?;
        let destroy = |id: u32| {
            let _ = self.fd.destroy_iommu_object(id);
        };
        let mut parent = iommu_hwpt_alloc {
            size: size_of::<iommu_hwpt_alloc>() as u32,
            flags: iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_NEST_PARENT,
            dev_id: dev.0,
            pt_id: self.ioas.id(),
            data_type: iommu_hwpt_data_type_IOMMU_HWPT_DATA_NONE,
            ..Default::default()
        };
        self.fd
            .alloc_iommu_hwpt(&mut parent)
            .map_err(host(HostOp::HwptAllocNestParent))?;
        let mut va = iommu_viommu_alloc {
            size: size_of::<iommu_viommu_alloc>() as u32,
            type_: iommu_viommu_type_IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
            dev_id: dev.0,
            hwpt_id: parent.out_hwpt_id,
            ..Default::default()
        };
        if let Err(e) = self.fd.alloc_iommu_viommu(&mut va) {
            destroy(parent.out_hwpt_id);
            return Err(host(HostOp::ViommuAlloc)(e));
        }
        let mut v = IommufdViommu {
            fd: self.fd.clone(),
            caps,
            nest_parent: parent.out_hwpt_id,
            viommu: va.out_viommu_id,
            abort: HwptId(0),
            bypass: HwptId(0),
            _ioas: self.ioas.clone(),
        };
        let shared = |cfg: SteConfig| CanonicalSte {
            w0: SteW0::new().with_v(true).with_config(cfg),
            w1: SteW1::new(),
        };
        match v.alloc_nested(dev, &shared(SteConfig::ABORT)) {
            Ok(a) => v.abort = a,
            Err(e) => {
                destroy(v.viommu);
                destroy(v.nest_parent);
                return Err(e);
            }
        }
        match v.alloc_nested(dev, &shared(SteConfig::BYPASS)) {
            Ok(b) => v.bypass = b,
            Err(e) => {
                destroy(v.abort.0);
                destroy(v.viommu);
                destroy(v.nest_parent);
                return Err(e);
            }
        }
        Ok(v)
    }
}

/// A VFIO cdev device bound to the iommufd: the [`AttachPort`] of the iommufd backend.
#[derive(Clone)]
pub struct VfioPort {
    dev: Arc<VfioDevice>,
    id: DevId,
}

impl std::fmt::Debug for VfioPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioPort")
            .field("dev_id", &self.id)
            .finish()
    }
}

impl VfioPort {
    /// The VFIO device (regions, config space, interrupts).
    pub fn device(&self) -> &VfioDevice {
        &self.dev
    }
}

impl AttachPort for VfioPort {
    fn dev_id(&self) -> DevId {
        self.id
    }
    fn attach(&self, hwpt: HwptId) -> Result<(), Errno> {
        self.dev.attach_hwpt(hwpt.0).map_err(|e| errno_of(&e))
    }
    fn detach(&self) -> Result<(), Errno> {
        self.dev.detach_hwpt().map_err(|e| errno_of(&e))
    }
}

/// A vIOMMU object on one physical SMMU, with its ids kept for raw calls.
pub struct IommufdViommu {
    fd: Arc<IommuFd>,
    caps: HostCaps,
    nest_parent: u32,
    viommu: u32,
    abort: HwptId,
    bypass: HwptId,
    // keeps the IOAS (destroyed last) alive as long as the vIOMMU
    _ioas: Arc<IommufdIoas>,
}

impl std::fmt::Debug for IommufdViommu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IommufdViommu")
            .field("viommu", &self.viommu)
            .field("nest_parent", &self.nest_parent)
            .field("abort", &self.abort)
            .field("bypass", &self.bypass)
            .finish()
    }
}

impl IommufdViommu {
    /// The vIOMMU object id.
    pub fn id(&self) -> u32 {
        self.viommu
    }

    /// IOMMU_VEVENTQ_ALLOC (type ARM_SMMUV3) with `depth` entries; the fd is non-blocking.
    pub fn alloc_event_queue(&self, depth: u32) -> Result<IommufdEventQueue, ViommuError> {
        let mut a = iommu_veventq_alloc {
            size: size_of::<iommu_veventq_alloc>() as u32,
            viommu_id: self.viommu,
            type_: iommu_veventq_type_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
            veventq_depth: depth,
            ..Default::default()
        };
        let (id, file) = self
            .fd
            .alloc_veventq(&mut a)
            .map_err(host(HostOp::VeventqAlloc))?;
        Ok(IommufdEventQueue {
            fd: self.fd.clone(),
            id,
            file,
            decoder: VeventDecoder::new(),
            buf: vec![0; 64 * 40],
        })
    }

    fn destroy(&self, id: u32) -> Result<(), Errno> {
        self.fd.destroy_iommu_object(id).map_err(|e| errno_of(&e))
    }

    /// One IOMMU_HWPT_INVALIDATE on the vIOMMU with every command of the batch.
    fn submit(&self, cmds: &[CmdEntry]) -> Result<usize, InvalidateError> {
        let mut inv = iommu_hwpt_invalidate {
            size: size_of::<iommu_hwpt_invalidate>() as u32,
            hwpt_id: self.viommu,
            data_uptr: cmds.as_bytes().as_ptr() as u64,
            data_type: iommu_hwpt_invalidate_data_type_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
            entry_len: size_of::<CmdEntry>() as u32,
            entry_num: cmds.len() as u32,
            ..Default::default()
        };
        match self.fd.invalidate_hwpt(&mut inv) {
            Ok(()) => Ok(inv.entry_num as usize),
            Err(e) => {
                // The kernel sets entry_num to the number of commands it processed: a conversion
                // error (illegal command, unknown vSID) reports the refused command exactly; a
                // failure of the physical queue on a chunk (<= 63 commands + SYNC) reports the
                // chunk's last command, which can over-report (Cloud Hypervisor's observation).
                let applied = (inv.entry_num as usize).min(cmds.len());
                Err(InvalidateError::Rejected {
                    op: HostOp::Invalidate,
                    applied,
                    index: applied,
                    opcode: cmds.get(applied).map(|c| c.opcode()).unwrap_or(Opcode(0)),
                    errno: errno_of(&e),
                })
            }
        }
    }
}

impl HostViommu for IommufdViommu {
    fn caps(&self) -> &HostCaps {
        &self.caps
    }

    fn shared_hwpt(&self, which: SharedHwpt) -> HwptId {
        match which {
            SharedHwpt::Abort => self.abort,
            SharedHwpt::Bypass => self.bypass,
        }
    }

    fn alloc_nested(&self, dev: DevId, ste: &CanonicalSte) -> Result<HwptId, ViommuError> {
        let data = iommu_hwpt_arm_smmuv3 { ste: ste.words() };
        let mut a = iommu_hwpt_alloc {
            size: size_of::<iommu_hwpt_alloc>() as u32,
            dev_id: dev.0,
            pt_id: self.viommu,
            data_type: iommu_hwpt_data_type_IOMMU_HWPT_DATA_ARM_SMMUV3,
            data_len: size_of::<iommu_hwpt_arm_smmuv3>() as u32,
            data_uptr: &data as *const iommu_hwpt_arm_smmuv3 as u64,
            ..Default::default()
        };
        self.fd
            .alloc_iommu_hwpt(&mut a)
            .map_err(host(HostOp::HwptAllocNested))?;
        Ok(HwptId(a.out_hwpt_id))
    }

    fn destroy_hwpt(&self, hwpt: HwptId) -> Result<(), ViommuError> {
        self.destroy(hwpt.0).map_err(|errno| ViommuError::Host {
            op: HostOp::Destroy,
            errno,
        })
    }

    fn alloc_vdevice(&self, dev: DevId, vsid: StreamId) -> Result<VdevId, ViommuError> {
        let mut a = iommu_vdevice_alloc {
            size: size_of::<iommu_vdevice_alloc>() as u32,
            viommu_id: self.viommu,
            dev_id: dev.0,
            virt_id: u64::from(vsid.0),
            ..Default::default()
        };
        self.fd
            .alloc_iommu_vdevice(&mut a)
            .map_err(host(HostOp::VdeviceAlloc))?;
        Ok(VdevId(a.out_vdevice_id))
    }

    fn destroy_vdevice(&self, vdev: VdevId) -> Result<(), ViommuError> {
        self.destroy(vdev.0).map_err(|errno| ViommuError::Host {
            op: HostOp::Destroy,
            errno,
        })
    }

    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<usize, InvalidateError> {
        if cmds.len() > MAX_BATCH {
            return Err(InvalidateError::TooLarge {
                len: cmds.len(),
                max: MAX_BATCH,
            });
        }
        let n = self.submit(cmds)?;
        // erratum T264-SMMU-3: the kernel asks userspace to issue every TLBI/CFGI + SYNC twice
        if self.caps.errata_repeat_tlbi_cfgi() && !cmds.is_empty() {
            self.submit(cmds)?;
        }
        Ok(n)
    }

    fn teardown(&self) -> Result<(), TeardownError> {
        let mut failures = Vec::new();
        for id in [self.bypass.0, self.abort.0, self.viommu, self.nest_parent] {
            if let Err(e) = self.destroy(id) {
                failures.push((HostOp::Destroy, id, e));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(TeardownError { failures })
        }
    }
}

/// The vEVENTQ of an [`IommufdViommu`].
pub struct IommufdEventQueue {
    fd: Arc<IommuFd>,
    id: u32,
    file: File,
    decoder: VeventDecoder,
    buf: Vec<u8>,
}

impl std::fmt::Debug for IommufdEventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IommufdEventQueue")
            .field("id", &self.id)
            .finish()
    }
}

impl HostEventSource for IommufdEventQueue {
    fn read_available(&mut self, out: &mut Vec<EventItem>) -> Result<usize, EventError> {
        let mut total = 0;
        loop {
            match self.file.read(&mut self.buf) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += self
                        .decoder
                        .decode(self.buf.get(..n).unwrap_or_default(), out)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(EventError::Host {
                        op: HostOp::VeventqRead,
                        errno: Errno::from_io(&e),
                    })
                }
            }
        }
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }

    fn close(self) -> Result<(), TeardownError> {
        let id = self.id;
        drop(self.file);
        self.fd.destroy_iommu_object(id).map_err(|e| TeardownError {
            failures: vec![(HostOp::Destroy, id, errno_of(&e))],
        })
    }
}

/// Guest RAM mapped twice, for tests and simple VMMs: a memfd mapped into this process
/// (vm-memory) and pinned into the IOAS at IOVA = GPA, so the host SMMU translates the
/// device's DMA to the same pages. (Not [`viommu_common::mem::GuestRam`], the trait through
/// which devices reach guest memory.)
#[derive(Debug)]
pub struct MappedRam {
    /// The process mapping, addressed by GPA.
    pub mem: GuestMemoryMmap<()>,
    file: Arc<File>,
    base: u64,
    len: u64,
}

impl MappedRam {
    /// Allocate `len` bytes (page multiple) of guest RAM at `gpa` and map it into `ctx`'s IOAS.
    pub fn new(ctx: &IommufdContext, gpa: u64, len: usize) -> Result<Self, ViommuError> {
        const NAME: &CStr = c"viommu-sva-ram";
        let mfd = |e: std::io::Error| ViommuError::Host {
            op: HostOp::Memfd,
            errno: Errno::from_io(&e),
        };
        let file = raw::memfd(NAME).map_err(mfd)?;
        file.set_len(len as u64).map_err(mfd)?;
        let file = Arc::new(file);
        let mem = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(gpa),
            len,
            Some(FileOffset::from_arc(file.clone(), 0)),
        )])
        .map_err(|_| ViommuError::Host {
            op: HostOp::Memfd,
            errno: Errno::ENOMEM,
        })?;
        ctx.map_ram(&file, 0, len as u64, gpa, true)?;
        Ok(Self {
            mem,
            file,
            base: gpa,
            len: len as u64,
        })
    }

    /// The backing file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Unmap from the IOAS (before the IOAS is destroyed or the memory reused).
    pub fn unmap(&self, ctx: &IommufdContext) -> Result<(), ViommuError> {
        ctx.unmap_ram(self.base, self.len)
    }
}
