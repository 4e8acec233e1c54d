//! In-guest real-kernel scenarios for the iommufd backend (run by `sva/tests/kernel/run.sh` inside
//! an emulated aarch64 guest with QEMU's SMMUv3 and `edu` DMA engines; needs /dev/iommu).
//!
//! Prints `SVA-TEST <name> PASS|FAIL: <why>` per scenario, `SVA-MEASURE ...` lines and a final
//! `SVA-GUEST DONE failures=<n>`. Booted without `arm_smmu_v3.force_canwbs=1` it runs only the
//! negative scenario (vIOMMU allocation must fail with EOPNOTSUPP).

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[path = "../common/edu.rs"]
mod edu;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod guest;

fn main() {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    std::process::exit(guest::run());
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        eprintln!("kernel_guest runs only on Linux (x86_64/aarch64)");
        std::process::exit(2);
    }
}
