//! Regression tests for what the fuzz targets (`fuzz/`, see fuzz/README.md) found or checked:
//! each carries the input that went wrong, or the API call it boils down to, and asserts the
//! behaviour the fix gave.

use viommu_common::access::Perms;
use viommu_common::testing::guest_ram;
use viommu_pamu::geometry::{Domain, GeometryError, Tables};

/// `pamu_geometry`: VFIO MAP_DMA of two 4 KiB windows at the last page of the 64-bit physical
/// space. The second window's base is `paddr + 4 KiB`, which wraps to 0: the call used to map
/// window 1 to physical address 0 (and panic on the overflow in debug builds). It must be
/// refused, changing nothing, while the highest range that does fit is accepted.
#[test]
fn test_pamu_map_dma_physical_range_wrapping_past_2_64() {
    let mem = guest_ram(0, 64 << 10);
    let mut t = Tables::new(0, 4, 0x100, 4, 0x200);
    let mut d = Domain::new(256);
    d.attach(&mut t, &mem, 1).unwrap();
    d.set_geometry(&mut t, &mem, 0, 0x1FFF).unwrap();
    d.set_windows(&mut t, &mem, 2).unwrap();

    let top_page = u64::MAX - 0xFFF;
    assert_eq!(
        d.map_dma(&mut t, &mem, 0, top_page, 0x2000, Perms::RW),
        Err(GeometryError::PhysicalWrap {
            paddr: top_page,
            len: 0x2000
        })
    );
    assert_eq!((d.window(0), d.window(1)), (None, None));
    assert!(!d.is_enabled());

    let highest = u64::MAX - 0x1FFF;
    d.map_dma(&mut t, &mem, 0, highest, 0x2000, Perms::RW)
        .unwrap();
    assert_eq!(d.window(0).map(|m| m.paddr), Some(highest));
    assert_eq!(d.window(1).map(|m| m.paddr), Some(top_page));
    assert!(d.is_enabled());
}
