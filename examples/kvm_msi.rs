//! Deliver an emulated SMMUv3's MSIs into a real KVM VM (Linux x86_64 only).
//!
//! A VMM gives the device an [`InterruptSink`] over its hypervisor. This example uses the one
//! viommu ships for KVM, `viommu_common::kvm::KvmInterruptSink` (feature `kvm`), on a VM with
//! the in-kernel irqchip (PIC, IOAPIC, local APICs) and one vCPU whose local APIC is
//! software-enabled. MSIs reach KVM two ways:
//!
//! - `KVM_SIGNAL_MSI` (the default): the SMMU's doorbell address/data pair is injected as is;
//!   the ioctl returns the number of vCPUs that accepted it (0: blocked by the guest).
//! - irqfd routing: a GSI routing entry of type MSI plus an eventfd registered with
//!   `KVM_IRQFD` (`KvmInterruptSink::route_msi`); the sink only writes the eventfd, and KVM
//!   injects without an ioctl on the interrupt path (what a VMM uses when the SMMU runs on a
//!   worker thread).
//!
//! The example brings an SMMUv3 up the way Linux does (with the x86 MSI doorbell 0xFEE0_0000,
//! APIC ID 0), provokes a translation fault (EVTQ MSI, vector 0x21, through `KVM_SIGNAL_MSI`)
//! and a command-queue error (GERROR MSI, vector 0x22, through irqfd), then reads the vCPU's
//! local APIC IRR to show both vectors pending. Run: `cargo run --example kvm_msi` (needs
//! /dev/kvm). `tests/vmm_kvm.rs` runs the same and checks the result.

/// The scenario (shared with `tests/vmm_kvm.rs`).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod kvm {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kvm_ioctls::{Kvm, VcpuFd};

    use viommu::common::kvm::{KvmInterruptSink, KvmSinkStats};
    use viommu::common::testing::guest_ram;
    use viommu::common::traits::DmaTranslator;
    use viommu::common::DmaRequest;
    use viommu::smmuv3::caps::SmmuConfig;
    use viommu::smmuv3::device::SmmuV3;
    use viommu::smmuv3::testing::{DriverOptions, GuestDriver};

    /// x86 MSI address: fixed destination APIC ID 0, physical mode.
    pub const MSI_ADDR: u64 = 0xFEE0_0000;
    /// Vector the guest gives the SMMU's event queue interrupt.
    pub const EVTQ_VECTOR: u32 = 0x21;
    /// Vector the guest gives the SMMU's global error interrupt.
    pub const GERROR_VECTOR: u32 = 0x22;
    /// GSI of the irqfd route.
    pub const GERROR_GSI: u32 = 24;

    const RAM: u64 = 0x4000_0000;
    const RAM_SIZE: u64 = 16 << 20;

    /// What [`run`] observed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Report {
        /// What the sink had delivered after the translation fault.
        pub after_fault: KvmSinkStats,
        /// What the sink had delivered after the command error as well.
        pub after_gerror: KvmSinkStats,
        /// Raw event records the guest driver read from its event queue.
        pub events: Vec<[u64; 4]>,
        /// The vCPU's local APIC has [`EVTQ_VECTOR`] pending in IRR.
        pub evtq_pending: bool,
        /// The vCPU's local APIC has [`GERROR_VECTOR`] pending in IRR.
        pub gerror_pending: bool,
    }

    /// Local APIC register offsets (Intel SDM vol. 3, table 11-1).
    const APIC_SVR: usize = 0xF0;
    const APIC_IRR: usize = 0x200;

    fn lapic_reg(regs: &[std::os::raw::c_char; 1024], off: usize) -> u32 {
        let b = |i: usize| regs[off + i] as u8;
        u32::from_le_bytes([b(0), b(1), b(2), b(3)])
    }

    fn irr_has(vcpu: &VcpuFd, vector: u32) -> Result<bool, String> {
        let l = vcpu
            .get_lapic()
            .map_err(|e| format!("KVM_GET_LAPIC: {e}"))?;
        let word = lapic_reg(&l.regs, APIC_IRR + 0x10 * (vector as usize / 32));
        Ok(word >> (vector % 32) & 1 == 1)
    }

    /// Build the VM and the SMMU, provoke the two interrupts, report what KVM received.
    ///
    /// # Errors
    /// A description of the first KVM or SMMU step that failed (including a missing /dev/kvm).
    pub fn run() -> Result<Report, String> {
        let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
        vm.create_irq_chip()
            .map_err(|e| format!("KVM_CREATE_IRQCHIP: {e}"))?;
        let vcpu = vm
            .create_vcpu(0)
            .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
        // Software-enable the local APIC (SVR bit 8, spurious vector 0xFF) as the guest
        // kernel would; a disabled APIC drops fixed interrupts.
        let mut lapic = vcpu
            .get_lapic()
            .map_err(|e| format!("KVM_GET_LAPIC: {e}"))?;
        for (i, b) in 0x1FFu32.to_le_bytes().iter().enumerate() {
            lapic.regs[APIC_SVR + i] = *b as std::os::raw::c_char;
        }
        vcpu.set_lapic(&lapic)
            .map_err(|e| format!("KVM_SET_LAPIC: {e}"))?;

        let mut sink = KvmInterruptSink::new(Arc::new(vm));
        sink.route_msi(MSI_ADDR, GERROR_VECTOR, GERROR_GSI)
            .map_err(|e| format!("GERROR route: {e}"))?;
        // This VM routes nothing else, so the table holds just the GERROR route.
        sink.install_routing(&[])
            .map_err(|e| format!("GERROR route: {e}"))?;
        let sink = Arc::new(sink);
        let ram = Arc::new(guest_ram(RAM, RAM_SIZE as usize));
        let smmu = SmmuV3::new(&SmmuConfig::default(), ram.clone(), sink.clone())
            .map_err(|e| format!("SMMU config: {e}"))?;
        let mut drv = GuestDriver::new(
            &smmu,
            &*ram,
            RAM,
            RAM_SIZE,
            DriverOptions {
                msi_doorbell: Some(MSI_ADDR),
                evtq_msi_data: EVTQ_VECTOR,
                gerror_msi_data: GERROR_VECTOR,
                ..DriverOptions::default()
            },
        );
        drv.probe().map_err(|e| format!("SMMU probe: {e}"))?;
        drv.reset().map_err(|e| format!("SMMU reset: {e}"))?;

        // An endpoint attached to an empty domain: its DMA faults, F_TRANSLATION -> EVTQ MSI.
        let dom = drv.new_s1_domain(1);
        drv.attach_s1(8, &dom)
            .map_err(|e| format!("SMMU attach: {e}"))?;
        if smmu.translate(&DmaRequest::read(8, 0x1000, 4)).is_ok() {
            return Err("DMA to an unmapped IOVA was translated".into());
        }
        let events = drv.read_events();
        let after_fault = sink.stats();
        // An illegal command: CERROR_ILL -> GERROR.CMDQ_ERR -> GERROR MSI (irqfd).
        drv.issue(&[[0xFF, 0]])
            .map_err(|e| format!("SMMU command: {e}"))?;
        drv.handle_gerror();

        let after_gerror = sink.stats();

        // irqfd injection may complete asynchronously: wait (bounded) for the vector.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !irr_has(&vcpu, GERROR_VECTOR)? && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Report {
            after_fault,
            after_gerror,
            events,
            evtq_pending: irr_has(&vcpu, EVTQ_VECTOR)?,
            gerror_pending: irr_has(&vcpu, GERROR_VECTOR)?,
        })
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn main() {
    match kvm::run() {
        Ok(r) => {
            println!("after the translation fault: {:?}", r.after_fault);
            println!("after the command error:     {:?}", r.after_gerror);
            for e in &r.events {
                println!(
                    "guest EVTQ record: id={:#x} sid={:#x} addr={:#x}",
                    e[0] & 0xff,
                    e[0] >> 32,
                    e[2]
                );
            }
            println!(
                "vCPU 0 local APIC IRR: vector {:#x} {}, vector {:#x} {}",
                kvm::EVTQ_VECTOR,
                if r.evtq_pending {
                    "pending"
                } else {
                    "NOT pending"
                },
                kvm::GERROR_VECTOR,
                if r.gerror_pending {
                    "pending"
                } else {
                    "NOT pending"
                },
            );
        }
        Err(e) => {
            eprintln!("kvm_msi: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    println!("kvm_msi: needs Linux on x86_64 with /dev/kvm; nothing to do here");
}
