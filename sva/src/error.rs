//! Errors, one enum per boundary, each keeping the failed host operation and its errno.

use crate::host::{DevId, HwptId};
use viommu_smmuv3::spec::cmd::Opcode;

use crate::spec::cmd::opcode_name;

/// A host operation (an ioctl or syscall), named in errors and in the recording log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostOp {
    /// open("/dev/iommu").
    OpenIommufd,
    /// IOMMU_IOAS_ALLOC.
    IoasAlloc,
    /// IOMMU_IOAS_MAP_FILE.
    IoasMap,
    /// IOMMU_IOAS_UNMAP.
    IoasUnmap,
    /// open of the VFIO cdev.
    OpenCdev,
    /// VFIO_DEVICE_BIND_IOMMUFD.
    BindDevice,
    /// IOMMU_GET_HW_INFO.
    GetHwInfo,
    /// IOMMU_HWPT_ALLOC(NEST_PARENT).
    HwptAllocNestParent,
    /// IOMMU_VIOMMU_ALLOC.
    ViommuAlloc,
    /// IOMMU_VDEVICE_ALLOC.
    VdeviceAlloc,
    /// IOMMU_HWPT_ALLOC on the vIOMMU (nested).
    HwptAllocNested,
    /// VFIO_DEVICE_ATTACH_IOMMUFD_PT.
    Attach,
    /// VFIO_DEVICE_DETACH_IOMMUFD_PT.
    Detach,
    /// IOMMU_DESTROY.
    Destroy,
    /// IOMMU_HWPT_INVALIDATE on the vIOMMU.
    Invalidate,
    /// IOMMU_VEVENTQ_ALLOC.
    VeventqAlloc,
    /// read(2) on the vEVENTQ fd.
    VeventqRead,
    /// memfd_create / ftruncate for test memory.
    Memfd,
}

impl HostOp {
    /// The kernel interface name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::OpenIommufd => "open(/dev/iommu)",
            Self::IoasAlloc => "IOMMU_IOAS_ALLOC",
            Self::IoasMap => "IOMMU_IOAS_MAP_FILE",
            Self::IoasUnmap => "IOMMU_IOAS_UNMAP",
            Self::OpenCdev => "open(vfio cdev)",
            Self::BindDevice => "VFIO_DEVICE_BIND_IOMMUFD",
            Self::GetHwInfo => "IOMMU_GET_HW_INFO",
            Self::HwptAllocNestParent => "IOMMU_HWPT_ALLOC(NEST_PARENT)",
            Self::ViommuAlloc => "IOMMU_VIOMMU_ALLOC",
            Self::VdeviceAlloc => "IOMMU_VDEVICE_ALLOC",
            Self::HwptAllocNested => "IOMMU_HWPT_ALLOC(nested)",
            Self::Attach => "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
            Self::Detach => "VFIO_DEVICE_DETACH_IOMMUFD_PT",
            Self::Destroy => "IOMMU_DESTROY",
            Self::Invalidate => "IOMMU_HWPT_INVALIDATE",
            Self::VeventqAlloc => "IOMMU_VEVENTQ_ALLOC",
            Self::VeventqRead => "read(vEVENTQ)",
            Self::Memfd => "memfd_create",
        }
    }
}

impl core::fmt::Display for HostOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Linux errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

#[allow(missing_docs)]
impl Errno {
    pub const EPERM: Self = Self(1);
    pub const ENOENT: Self = Self(2);
    pub const EIO: Self = Self(5);
    pub const ENXIO: Self = Self(6);
    pub const EBADF: Self = Self(9);
    pub const EAGAIN: Self = Self(11);
    pub const ENOMEM: Self = Self(12);
    pub const EFAULT: Self = Self(14);
    pub const EBUSY: Self = Self(16);
    pub const EEXIST: Self = Self(17);
    pub const ENODEV: Self = Self(19);
    pub const EINVAL: Self = Self(22);
    pub const ENOTTY: Self = Self(25);
    pub const ENOSPC: Self = Self(28);
    pub const EOVERFLOW: Self = Self(75);
    pub const EOPNOTSUPP: Self = Self(95);
}

impl Errno {
    /// The symbolic name, or `"E?"`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            5 => "EIO",
            6 => "ENXIO",
            9 => "EBADF",
            11 => "EAGAIN",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            19 => "ENODEV",
            22 => "EINVAL",
            25 => "ENOTTY",
            28 => "ENOSPC",
            75 => "EOVERFLOW",
            95 => "EOPNOTSUPP",
            _ => "E?",
        }
    }

    /// From an `io::Error` (`EIO` when it carries no OS error).
    pub fn from_io(e: &std::io::Error) -> Self {
        Self(e.raw_os_error().unwrap_or(Self::EIO.0))
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Why a guest STE cannot be expressed as a host nested HWPT. Each maps to C_BAD_STE for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SteError {
    /// Config 0b110/0b111 asks for stage 2, which the vSMMU does not advertise (S1P only).
    #[error("STE.Config = {0:#05b} needs stage 2, which this vSMMU does not advertise")]
    Config(u8),
    /// S1Fmt = 3 is reserved.
    #[error("STE.S1Fmt = 3 is reserved")]
    S1FmtReserved,
    /// A two-level CD table without CD2L.
    #[error("STE.S1Fmt = {0} needs IDR0.CD2L, which is not advertised")]
    S1FmtNeedsCd2l(u8),
    /// S1CDMax above the advertised SSIDSIZE.
    #[error("STE.S1CDMax = {s1cdmax} exceeds the advertised SSIDSIZE {ssidsize}")]
    S1CdMax {
        /// The guest value.
        s1cdmax: u8,
        /// The advertised IDR1.SSIDSIZE.
        ssidsize: u8,
    },
    /// EATS that the host cannot express (split-stage, reserved).
    #[error("STE.EATS = {0} is not supported for nested translation")]
    Eats(u8),
    /// STRW other than NS-EL1 (EL2 needs IDR0.HYP, which is not advertised).
    #[error("STE.STRW = {0} selects a translation regime this vSMMU does not advertise")]
    Strw(u8),
    /// PRIVCFG / INSTCFG overrides change permission checks and cannot be passed to the host.
    #[error("STE.{field} = {value} overrides permissions, which the host cannot express")]
    PermissionOverride {
        /// "PRIVCFG" or "INSTCFG".
        field: &'static str,
        /// The guest value.
        value: u8,
    },
}

impl SteError {
    /// The STE field at fault, by its architectural name.
    pub const fn field(&self) -> &'static str {
        match self {
            Self::Config(_) => "Config",
            Self::S1FmtReserved | Self::S1FmtNeedsCd2l(_) => "S1Fmt",
            Self::S1CdMax { .. } => "S1CDMax",
            Self::Eats(_) => "EATS",
            Self::Strw(_) => "STRW",
            Self::PermissionOverride { field, .. } => field,
        }
    }
}

/// Errors at the vIOMMU boundary ([`crate::host::HostViommu`]).
#[derive(Debug, thiserror::Error)]
pub enum ViommuError {
    /// A host call failed.
    #[error("{op} failed: {errno}")]
    Host {
        /// What was attempted.
        op: HostOp,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The host IOMMU is not an SMMUv3.
    #[error("the host IOMMU is not an ARM SMMUv3 (hw_info type {0})")]
    UnsupportedIommu(u32),
    /// The host cannot back the guest-visible profile.
    #[error("host SMMU incompatible with the guest profile: {0}")]
    Incompatible(#[from] ClampError),
    /// The HWPT id is not one this vIOMMU handed out.
    #[error("HWPT {0:?} does not belong to this vIOMMU")]
    UnknownHwpt(HwptId),
}

impl ViommuError {
    /// The failed host operation and errno, when the host refused.
    pub fn host(&self) -> Option<(HostOp, Errno)> {
        match self {
            Self::Host { op, errno } => Some((*op, *errno)),
            _ => None,
        }
    }
    /// The errno, when the host refused.
    pub fn errno(&self) -> Option<Errno> {
        self.host().map(|(_, e)| e)
    }
}

/// Errors at the endpoint boundary ([`crate::host::HostEndpoint`]).
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A host call failed; the previously installed configuration is still attached.
    #[error("{op} failed for device {dev:?}: {errno}")]
    Host {
        /// The device.
        dev: DevId,
        /// What was attempted.
        op: HostOp,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A vIOMMU-scoped call failed; the previously installed configuration is still attached.
    #[error(transparent)]
    Viommu(#[from] ViommuError),
    /// The guest STE is invalid (the vSMMU reports C_BAD_STE).
    #[error("invalid guest STE: {0}")]
    Ste(#[from] SteError),
    /// The new configuration **is** installed, but destroying the replaced nested HWPT failed; the
    /// endpoint keeps it and retries at teardown.
    #[error("replaced HWPT {hwpt:?} could not be destroyed: {source}")]
    ReleaseFailed {
        /// The HWPT kept for teardown.
        hwpt: HwptId,
        /// Why.
        source: ViommuError,
    },
}

impl EndpointError {
    /// The failed host operation and errno, when the host refused.
    pub fn host(&self) -> Option<(HostOp, Errno)> {
        match self {
            Self::Host { op, errno, .. } => Some((*op, *errno)),
            Self::Viommu(v) | Self::ReleaseFailed { source: v, .. } => v.host(),
            Self::Ste(_) => None,
        }
    }
}

/// Errors from a batched invalidation ([`crate::host::HostViommu::invalidate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidateError {
    /// The host applied `applied` commands and refused the one at `index` (== `applied`); the vSMMU
    /// raises CERROR_ILL with CONS at that command.
    #[error("{op} applied {applied} commands, then refused command {index} ({}): {errno}", opcode_name(*opcode))]
    Rejected {
        /// Always [`HostOp::Invalidate`] (kept for uniform reporting).
        op: HostOp,
        /// Commands fully applied before the failure.
        applied: usize,
        /// Index of the first failing command in the batch.
        index: usize,
        /// Its opcode.
        opcode: Opcode,
        /// The kernel's answer (EIO: illegal command or unknown vSID).
        errno: Errno,
    },
    /// The batch is larger than one host call may carry.
    #[error("a batch of {len} commands exceeds the limit of {max}")]
    TooLarge {
        /// Batch length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Errors reading the event queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A host call failed.
    #[error("{op} failed: {errno}")]
    Host {
        /// What was attempted.
        op: HostOp,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The byte stream ended inside a record.
    #[error("vEVENTQ data truncated: {len} bytes at offset {offset} do not hold a whole record")]
    Truncated {
        /// Offset of the incomplete record.
        offset: usize,
        /// Bytes left.
        len: usize,
    },
}

/// Why host ID registers cannot back a guest vSMMU profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClampError {
    /// IDR0.TTF lacks AArch64 tables.
    #[error("host IDR0.TTF has no AArch64 table format")]
    NoAarch64,
    /// IDR0.TTENDIAN is big-endian only.
    #[error("host IDR0.TTENDIAN = {0} cannot walk little-endian tables")]
    NotLittleEndian(u8),
    /// No translation granule in IDR5.
    #[error("host IDR5 advertises no translation granule")]
    NoGranule,
    /// A guest register set advertises a feature host-backed streams cannot provide
    /// ([`Compat::Strict`](crate::caps::Compat::Strict)).
    #[error("guest {field} = {value} cannot be offered on host-backed streams")]
    NotNestable {
        /// The register field.
        field: &'static str,
        /// The guest value.
        value: u32,
    },
    /// A frozen guest profile needs more than this host offers (hot-plug check).
    #[error("host {field} = {host} cannot back the frozen guest value {guest}")]
    Mismatch {
        /// The register field.
        field: &'static str,
        /// Host value.
        host: u32,
        /// Frozen guest value.
        guest: u32,
    },
}

/// A failure during teardown; teardown continues past it and reports every one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("teardown: {} host call(s) failed: {failures:?}", failures.len())]
pub struct TeardownError {
    /// Each failed step in order: the operation, the object id, the errno.
    pub failures: Vec<(HostOp, u32, Errno)>,
}
