//! The VMM side of an accelerated vSMMU, end to end: open iommufd, map guest RAM at IOVA = GPA,
//! bind a VFIO cdev device, create the accelerated SMMUv3 on the host's vIOMMU, attach the
//! device under its guest StreamID, run the event pump, tear down.
//!
//! ```text
//! accel_vmm <sysfs path of a vfio-pci bound device> [vSID]
//! e.g. accel_vmm /sys/bus/pci/devices/0000:00:03.0 0x18
//! ```
//!
//! Needs `/dev/iommu`, a host SMMUv3 with nesting and a device bound to `vfio-pci`. Where the
//! guest's vCPUs would run, this program only reads the SMMU's ID registers through MMIO: a real
//! VMM puts the vSMMU on its MMIO bus and lets the guest's `arm-smmu-v3` driver program it.

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod vmm {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use viommu_common::traits::{InterruptSink, MmioDevice};
    use viommu_common::StreamId;
    use viommu_sva::accel::GuestRegs;
    use viommu_sva::iommufd::{IommufdAccelSmmu, IommufdContext, MappedRam};
    use viommu_sva::{AttachPort, GuestProfile};

    /// Where a VMM would inject interrupts into its guest (KVM_SIGNAL_MSI, an irqfd, a GIC line).
    struct PrintIrq;

    impl InterruptSink for PrintIrq {
        fn set_line(&self, line: u32, level: bool) {
            println!("irq line {line} -> {level}");
        }
        fn send_msi(&self, addr: u64, data: u32) {
            println!("msi {addr:#x} <- {data:#x}");
        }
    }

    /// Guest RAM: 256 MiB at 1 GiB (clear of the host's software MSI window at 128 MiB).
    const RAM_GPA: u64 = 0x4000_0000;
    const RAM_LEN: usize = 256 << 20;

    pub fn run() -> Result<(), Box<dyn std::error::Error>> {
        let mut args = std::env::args().skip(1);
        let sysfs = PathBuf::from(args.next().ok_or("usage: accel_vmm <sysfs path> [vSID]")?);
        let vsid = match args.next() {
            Some(s) => u32::from_str_radix(s.trim_start_matches("0x"), 16)?,
            None => 0x8,
        };

        // 1. iommufd, guest RAM pinned in the IOAS at IOVA = GPA
        let ctx = IommufdContext::open()?;
        let ram = MappedRam::new(&ctx, RAM_GPA, RAM_LEN)?;

        // 2. the VFIO device, bound to the iommufd but not attached
        let port = ctx.bind_device(&sysfs)?;
        let caps = ctx.hw_info(port.dev_id())?;

        // 3. the vIOMMU of its physical SMMU, its event queue, and the accelerated vSMMU with
        //    ID registers clamped from the host's (frozen before the guest can read them)
        let viommu = ctx.create_viommu(port.dev_id())?;
        let events = viommu.alloc_event_queue(1 << 7)?;
        let smmu: Arc<IommufdAccelSmmu<Arc<vm_memory::GuestMemoryMmap>>> =
            Arc::new(IommufdAccelSmmu::new(
                Arc::new(viommu),
                Some(events),
                Arc::new(ram.mem.clone()),
                Arc::new(PrintIrq),
                GuestRegs::Clamp(GuestProfile::default()),
            )?);

        // 4. the device under its guest StreamID (hot plug works the same at any time)
        smmu.attach(port, StreamId(vsid), &caps)?;

        // 5. events: a thread polling the vEVENTQ fd (or: epoll smmu.poll_fd(), call pump())
        let pump = smmu.spawn_event_thread(Duration::from_millis(50))?;

        // 6. the guest runs: its MMIO accesses go to the vSMMU
        let mut idr0 = [0u8; 4];
        smmu.mmio_read(0, &mut idr0)?;
        println!(
            "vSMMU IDR0 = {:#010x}, passthrough vSIDs {:x?}",
            u32::from_le_bytes(idr0),
            smmu.bridge().vsids()
        );

        // 7. teardown: the pump, then the host objects in the kernel's order, then guest RAM
        let injected = pump.stop()?;
        smmu.teardown()?;
        ram.unmap(&ctx)?;
        println!("{injected} host events injected; torn down");
        Ok(())
    }
}

fn main() {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    if let Err(e) = vmm::run() {
        eprintln!("accel_vmm: {e}");
        std::process::exit(1);
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        eprintln!("accel_vmm runs only on Linux (x86_64/aarch64)");
        std::process::exit(2);
    }
}
