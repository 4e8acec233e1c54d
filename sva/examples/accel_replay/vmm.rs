//! The VMM around the accelerated vSMMU: iommufd, the VM's RAM, the vIOMMU and its vEVENTQ,
//! the accelerated SmmuV3 presenting the trace's ID registers, and the edu device attached as
//! the passthrough endpoint of one guest StreamID.

use std::path::Path;
use std::sync::{Arc, Mutex};

use viommu_common::StreamId;
use viommu_replay::device::ReplayIrq;
use viommu_smmuv3::caps::IdRegs;
use viommu_sva::accel::{AcceleratedSmmu, GuestRegs};
use viommu_sva::error::TeardownError;
use viommu_sva::iommufd::{IommufdContext, IommufdEventQueue, IommufdViommu, VfioPort};
use viommu_sva::{Compat, EventError, EventItem, HostCaps, HostEventSource, HostViommu};
use vm_memory::GuestMemoryMmap;

use crate::ram::VmRam;
use crate::verify::Vsmmu;

/// Guest memory as the device sees it.
pub type Mem = Arc<GuestMemoryMmap<()>>;
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

/// Everything the run needs; drop order is handled by [`Vmm::teardown`].
pub struct Vmm {
    /// iommufd.
    pub ctx: IommufdContext,
    /// The VM's RAM.
    pub ram: VmRam,
    /// Guest memory handed to the device.
    pub mem: Mem,
    /// The passthrough device's VFIO port.
    pub port: VfioPort,
    /// The accelerated vSMMU.
    pub accel: Accel,
    /// Interrupts the vSMMU raised.
    pub irq: Arc<ReplayIrq>,
    /// The guest StreamID of the passthrough device.
    pub vsid: u32,
    /// The vEVENTQ (also inside `accel`).
    gate: Gate,
    /// Host capabilities of the edu device's SMMU.
    pub caps: HostCaps,
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
    /// Build the VM: RAM at `ram` (GPA base, size), the edu device at `edu` as vSID `vsid`,
    /// an accelerated vSMMU presenting `regs`.
    ///
    /// # Errors
    /// The first step that failed, with the kernel's or the model's reason.
    pub fn new(
        ram: &[(u64, u64)],
        edu: &Path,
        vsid: u32,
        regs: IdRegs,
    ) -> Result<(Self, Fit), String> {
        let ctx = IommufdContext::open().map_err(|e| format!("open /dev/iommu: {e}"))?;
        let vm_ram = VmRam::new(&ctx, ram)?;
        let mem: Mem = Arc::new(vm_ram.mem.clone());
        let port = ctx
            .bind_device(edu)
            .map_err(|e| format!("bind {}: {e}", edu.display()))?;
        let caps = ctx
            .hw_info(viommu_sva::AttachPort::dev_id(&port))
            .map_err(|e| format!("hw_info: {e}"))?;
        let viommu = Arc::new(
            ctx.create_viommu(viommu_sva::AttachPort::dev_id(&port))
                .map_err(|e| format!("vIOMMU: {e}"))?,
        );
        let q = viommu
            .alloc_event_queue(VEVENTQ_DEPTH)
            .map_err(|e| format!("vEVENTQ: {e}"))?;
        let gate = Gate(Arc::new(Mutex::new(Some(q))));
        let irq = ReplayIrq::new();
        let mut fit = Fit::Strict;
        let make = |compat| {
            AcceleratedSmmu::new(
                Arc::clone(&viommu),
                Some(gate.clone()),
                Arc::clone(&mem),
                irq.clone(),
                GuestRegs::Supplied { regs, compat },
            )
        };
        let accel = match make(Compat::Strict) {
            Ok(a) => a,
            Err(strict) => {
                fit = Fit::Mixed;
                make(Compat::Mixed).map_err(|e| {
                    format!("the trace's ID registers do not fit this host: {e} (strict: {strict})")
                })?
            }
        };
        accel
            .attach(port.clone(), StreamId(vsid), viommu.caps())
            .map_err(|e| format!("attach edu as vSID {vsid:#x}: {e}"))?;
        Ok((
            Self {
                ctx,
                ram: vm_ram,
                mem,
                port,
                accel,
                irq,
                vsid,
                gate,
                caps,
            },
            fit,
        ))
    }

    /// Tear down in the kernel's order: the vSMMU (streams, vEVENTQ, endpoint, vIOMMU), then
    /// the RAM's IOAS mappings.
    ///
    /// # Errors
    /// Every step that failed.
    pub fn teardown(self) -> Result<(), String> {
        let r1 = self.accel.teardown().map_err(|e| e.to_string());
        let r2 = self.ram.unmap(&self.ctx);
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
        match self.gate.lock().as_mut() {
            Some(q) => q.read_available(&mut items).map_err(|e| e.to_string())?,
            None => 0,
        };
        Ok(items.len())
    }
}
