//! A minimal arm64 KVM VMM that boots Linux with viommu's SMMUv3 in front of a virtio-mmio disk:
//! the reference for integrating viommu into a VMM (README, "Integrating viommu into a VMM").
//!
//! The guest gets one vCPU, RAM at 1 GiB, an in-kernel vGICv3, a 16550 console, our SMMUv3 on
//! the MMIO bus with its interrupts wired to SPIs, and a virtio-mmio block device whose every
//! queue and buffer access goes through the SMMU (`vm_memory::IommuMemory` +
//! `viommu_common::vmm::EndpointIommu`). The device tree says so with `iommus`.
//!
//! ```text
//! arm64_vmm --kernel Image --initramfs initrd.cpio.gz --disk disk.img [--no-iommu] [--strict]
//! ```
//!
//! Layout of the example (one concept per file):
//! - `vmm.rs`: command line, VM/vCPU/vGIC creation, loading, the vCPU loop, statistics;
//! - `layout.rs`: the guest physical memory map and interrupt numbers;
//! - `fdt.rs`: the device tree (memory, cpus, psci, gic, timer, chosen, uart, virtio, smmu);
//! - `serial.rs`: the 16550 console (vm-superio) and the SPI trigger;
//! - `virtio_mmio.rs`: the virtio-mmio (version 2) transport of one device;
//! - `block.rs`: the virtio-blk request handling over any `vm_memory::GuestMemory`.
//!
//! Only aarch64 Linux runs it; on other targets `main` says so and exits.

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod block;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod fdt;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod layout;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod serial;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod virtio_mmio;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod vmm;

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
fn main() -> std::process::ExitCode {
    vmm::main()
}

#[cfg(not(all(target_os = "linux", target_arch = "aarch64")))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "arm64_vmm needs aarch64 Linux with KVM (/dev/kvm); this build is for another target"
    );
    std::process::ExitCode::FAILURE
}
