//! The VMM around the accelerated vSMMU: iommufd, the VM's RAM, the vIOMMU and its vEVENTQ,
//! the trace's SMMUv3 accelerated on them (presenting the trace's ID registers), and the edu
//! device attached as the passthrough endpoint of one guest StreamID.

use std::path::Path;
use std::sync::{Arc, Mutex};

use viommu_common::StreamId;
use viommu_replay::device::ReplayMem;
use viommu_replay::ReplaySmmuV3;
use viommu_sva::accel::AcceleratedSmmu;
use viommu_sva::error::TeardownError;
use viommu_sva::iommufd::{IommufdContext, IommufdEventQueue, IommufdViommu, VfioPort};
use viommu_sva::{Compat, EventError, EventItem, HostCaps, HostEventSource};

use crate::ram::VmRam;
use crate::verify::Vsmmu;

/// Guest memory as the device sees it.
pub type Mem = Arc<ReplayMem>;
/// The accelerated vSMMU on the iommufd backend.
pub type Accel = AcceleratedSmmu<Mem, IommufdViommu, VfioPort, Gate>;

/// Depth of the vEVENTQ: a 4 KiB faulting DMA is retried in 4-byte pieces by QEMU (1024
/// records); the queue takes a 256-byte one without loss.
const VEVENTQ_DEPTH: u32 = 256;

/// The vEVENTQ, shared between the vSMMU's event pump and this program, which reads and drops
/// the events its own verification transfers cause (they are not the guest's).
#[derive(Clone)]
pub struct Gate(Arc<Mutex<Option<IommufdEventQueue>>>);

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<IommufdEventQueue>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl HostEventSource for Gate {
    fn read_available(&mut self, out: &mut Vec<EventItem>) -> Result<usize, EventError> {
        match self.lock().as_mut() {
            Some(q) => q.read_available(out),
            None => Ok(0),
        }
    }

    fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        // pumped on this program's schedule (after each transfer and before each check)
        None
    }

    fn close(self) -> Result<(), TeardownError> {
        match self.lock().take() {
            Some(q) => q.close(),
            None => Ok(()),
        }
    }
}

/// The host side, before the vSMMU exists: iommufd, the VM's RAM in the IOAS, the edu device,
/// the vIOMMU and its vEVENTQ.
pub struct Host {
    ctx: IommufdContext,
    ram: VmRam,
    /// Guest memory (the memfds, mapped here).
    pub mem: Mem,
    port: VfioPort,
    viommu: Arc<IommufdViommu>,
    gate: Gate,
    /// Host capabilities of the edu device's SMMU.
    pub caps: HostCaps,
}

impl Host {
    /// RAM at `ram` (GPA base, size) pinned in a new IOAS, the edu device at `edu` bound, a
    /// vIOMMU with its vEVENTQ on its SMMU.
    ///
    /// # Errors
    /// The first step that failed, with the kernel's reason.
    pub fn new(ram: &[(u64, u64)], edu: &Path) -> Result<Self, String> {
        let ctx = IommufdContext::open().map_err(|e| format!("open /dev/iommu: {e}"))?;
        let vm_ram = VmRam::new(&ctx, ram)?;
        let mem: Mem = Arc::new(vm_ram.mem.clone());
        let port = ctx
            .bind_device(edu)
            .map_err(|e| format!("bind {}: {e}", edu.display()))?;
        let dev = viommu_sva::AttachPort::dev_id(&port);
        let caps = ctx.hw_info(dev).map_err(|e| format!("hw_info: {e}"))?;
        let viommu = Arc::new(ctx.create_viommu(dev).map_err(|e| format!("vIOMMU: {e}"))?);
        let q = viommu
            .alloc_event_queue(VEVENTQ_DEPTH)
            .map_err(|e| format!("vEVENTQ: {e}"))?;
        Ok(Self {
            ctx,
            ram: vm_ram,
            mem,
            port,
            viommu,
            gate: Gate(Arc::new(Mutex::new(Some(q)))),
            caps,
        })
    }
}

/// The VMM: the host side and the accelerated vSMMU with edu attached.
pub struct Vmm {
    host: Host,
    /// The accelerated vSMMU.
    pub accel: Accel,
    /// The guest StreamID of the passthrough device.
    pub vsid: u32,
}

/// How the trace's ID registers were accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Every advertised feature works on host-backed streams.
    Strict,
    /// Only with emulated-only features (S2P, HTTU, ...) left to emulated streams.
    Mixed,
}

impl Vmm {
    /// Accelerate the trace's SMMUv3 `smmu` (its ID registers are the trace's) on `host`, and
    /// attach the edu device as the passthrough endpoint of `vsid`.
    ///
    /// # Errors
    /// The registers do not fit the host (naming the field), or the attach failed.
    pub fn new(host: Host, smmu: Arc<ReplaySmmuV3>, vsid: u32) -> Result<(Self, Fit), String> {
        let make = |compat| {
            AcceleratedSmmu::with_device(
                Arc::clone(&smmu),
                Arc::clone(&host.viommu),
                Some(host.gate.clone()),
                compat,
            )
        };
        let (accel, fit) = match make(Compat::Strict) {
            Ok(a) => (a, Fit::Strict),
            Err(strict) => (
                make(Compat::Mixed).map_err(|e| {
                    format!("the trace's ID registers do not fit this host: {e} (strict: {strict})")
                })?,
                Fit::Mixed,
            ),
        };
        accel
            .attach(host.port.clone(), StreamId(vsid), &host.caps)
            .map_err(|e| format!("attach edu as vSID {vsid:#x}: {e}"))?;
        Ok((Self { host, accel, vsid }, fit))
    }

    /// Guest memory.
    pub fn mem(&self) -> &Mem {
        &self.host.mem
    }

    /// The edu device's VFIO port.
    pub fn port(&self) -> &VfioPort {
        &self.host.port
    }

    /// Host capabilities of the edu device's SMMU.
    pub fn caps(&self) -> &HostCaps {
        &self.host.caps
    }

    /// Tear down in the kernel's order: the vSMMU (streams, vEVENTQ, endpoint, vIOMMU), then
    /// the RAM's IOAS mappings.
    ///
    /// # Errors
    /// Every step that failed.
    pub fn teardown(self) -> Result<(), String> {
        let r1 = self.accel.teardown().map_err(|e| e.to_string());
        drop(self.accel);
        let r2 = self.host.ram.unmap(&self.host.ctx);
        r1.and(r2)
    }
}

impl Vsmmu for Vmm {
    fn reg(&self, offset: u64, size: u8) -> u64 {
        viommu_replay::device::BusOrder::Little
            .read(self.accel.device().as_ref(), offset, size)
            .unwrap_or(0)
    }

    fn pump(&mut self) -> Result<(), String> {
        self.accel.pump().map(|_| ()).map_err(|e| e.to_string())
    }

    fn discard(&mut self) -> Result<usize, String> {
        let mut items = Vec::new();
        match self.host.gate.lock().as_mut() {
            Some(q) => q.read_available(&mut items).map_err(|e| e.to_string())?,
            None => 0,
        };
        Ok(items.len())
    }
}
