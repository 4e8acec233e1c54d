//! The VM's RAM: one memfd per trace `ram` region, pinned into the IOAS as stage 2 at
//! IOVA = GPA, and mapped into this process (shared) as the vSMMU's guest memory.

use std::sync::Arc;

use viommu_sva::iommufd::{IommufdContext, MappedRam};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

/// Largest total RAM a trace may ask for here: every page is pinned by IOAS_MAP, inside a test
/// VM that has a few GiB at most.
pub const MAX_RAM: u64 = 1 << 30;

/// Linux reserves its software MSI window (`MSI_IOVA_BASE`, 1 MiB) in every IOAS on Arm.
const SW_MSI: (u64, u64) = (0x0800_0000, 0x0810_0000);

/// Guest RAM over memfds, mapped in the IOAS.
pub struct VmRam {
    /// The regions as the IOAS sees them (kept for unmapping).
    regions: Vec<MappedRam>,
    /// All regions in one guest address space, over the same memfds.
    pub mem: GuestMemoryMmap<()>,
}

impl VmRam {
    /// Allocate and map `regions` (GPA base, size).
    ///
    /// # Errors
    /// A region is not page-aligned, overlaps the software MSI window, the total exceeds
    /// [`MAX_RAM`], or the kernel refused the memfd or the IOAS mapping.
    pub fn new(ctx: &IommufdContext, regions: &[(u64, u64)]) -> Result<Self, String> {
        let total: u64 = regions.iter().map(|r| r.1).sum();
        if total > MAX_RAM {
            return Err(format!(
                "trace RAM {total:#x} bytes exceeds this program's {MAX_RAM:#x}"
            ));
        }
        let mut rams = Vec::new();
        let mut files = Vec::new();
        for &(base, size) in regions {
            if base % 4096 != 0 || size % 4096 != 0 || size == 0 {
                return Err(format!("RAM {base:#x}+{size:#x} is not page-aligned"));
            }
            if base < SW_MSI.1 && base + size > SW_MSI.0 {
                return Err(format!(
                    "RAM {base:#x}+{size:#x} overlaps the host's software MSI window {:#x}..{:#x}",
                    SW_MSI.0, SW_MSI.1
                ));
            }
            let r = MappedRam::new(ctx, base, size as usize)
                .map_err(|e| format!("RAM {base:#x}+{size:#x}: {e}"))?;
            let f = r.file().try_clone().map_err(|e| e.to_string())?;
            files.push((
                GuestAddress(base),
                size as usize,
                Some(FileOffset::from_arc(Arc::new(f), 0)),
            ));
            rams.push(r);
        }
        let mem = GuestMemoryMmap::from_ranges_with_files(files).map_err(|e| e.to_string())?;
        Ok(Self { regions: rams, mem })
    }

    /// Unmap every region from the IOAS (before it is destroyed).
    ///
    /// # Errors
    /// The first unmap the kernel refused.
    pub fn unmap(&self, ctx: &IommufdContext) -> Result<(), String> {
        for r in &self.regions {
            r.unmap(ctx).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
