//! The vm-memory adapter (group `vm_memory`): what an emulated virtio device pays per
//! descriptor when it reads guest memory through [`EndpointIommu`] and vm-memory's
//! [`IommuMemory`], against the same read from the plain [`GuestMemoryMmap`].
//!
//! The endpoint is an SMMUv3 stream brought up by the Linux-style `GuestDriver` (stage 1, 4 KiB
//! pages); its IOTLB is warm, so every translation is a hit. The buffers are page-aligned, so a
//! 4 KiB read is one page and one translation.
//!
//! - `read_64/{plain,iommu}`: a 64-byte read (a virtio descriptor or a small header).
//! - `read_4k/{plain,iommu}`: a 4 KiB read (a data page).
//! - `translate_64`: the adapter's `Iommu::translate` of the 64-byte range alone (translation,
//!   device pin and the per-access `Iotlb`), without the copy.
//!
//! Targets: `iommu` at most 3x `plain` for 64 bytes and 1.3x for 4 KiB.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use viommu_common::testing::guest_ram;
use viommu_common::traits::NoInterrupts;
use viommu_common::vmm::EndpointIommu;
use viommu_common::StreamId;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::testing::{DriverOptions, GuestDriver, Prot};
use vm_memory::{Bytes, GuestAddress, Iommu, IommuMemory, Permissions};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x0000_7F12_3456_7000;
/// Where the IOVA pages land in guest physical memory.
const PA: u64 = RAM + 0x0200_0000;
const PAGES: u64 = 16;

fn bench_vm_memory(c: &mut Criterion) {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let smmu = Arc::new(SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(NoInterrupts)).unwrap());
    let mut drv = GuestDriver::new(&*smmu, &ram, RAM, RAM_SIZE, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, PAGES * 0x1000, Prot::RW);
    drv.attach_s1(SID, &dom).unwrap();

    // A recognisable pattern, checked through both paths before measuring.
    let pattern: Vec<u8> = (0..0x1000u32).map(|i| (i * 7 + 3) as u8).collect();
    ram.write_slice(&pattern, GuestAddress(PA)).unwrap();
    let iommu = EndpointIommu::new(smmu.clone(), StreamId(SID), None);
    let dma = IommuMemory::new(ram.clone(), iommu, true, ());
    let mut got = vec![0u8; 0x1000];
    dma.read_slice(&mut got, GuestAddress(IOVA)).unwrap();
    assert_eq!(got, pattern);

    let mut g = c.benchmark_group("vm_memory");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    let mut small = [0u8; 64];
    g.throughput(Throughput::Bytes(64));
    g.bench_function("read_64/plain", |b| {
        b.iter(|| {
            ram.read_slice(&mut small, black_box(GuestAddress(PA + 0x40)))
                .unwrap();
            black_box(&small);
        })
    });
    g.bench_function("read_64/iommu", |b| {
        b.iter(|| {
            dma.read_slice(&mut small, black_box(GuestAddress(IOVA + 0x40)))
                .unwrap();
            black_box(&small);
        })
    });
    let mut page = vec![0u8; 0x1000];
    g.throughput(Throughput::Bytes(0x1000));
    g.bench_function("read_4k/plain", |b| {
        b.iter(|| {
            ram.read_slice(&mut page, black_box(GuestAddress(PA)))
                .unwrap();
            black_box(&page);
        })
    });
    g.bench_function("read_4k/iommu", |b| {
        b.iter(|| {
            dma.read_slice(&mut page, black_box(GuestAddress(IOVA)))
                .unwrap();
            black_box(&page);
        })
    });
    g.throughput(Throughput::Elements(1));
    let adapter = EndpointIommu::new(smmu.clone(), StreamId(SID), None);
    g.bench_function("translate_64", |b| {
        b.iter(|| {
            let it = adapter
                .translate(black_box(GuestAddress(IOVA + 0x40)), 64, Permissions::Read)
                .unwrap();
            black_box(it.count())
        })
    });
    g.finish();
}

criterion_group!(vm_memory, bench_vm_memory);
criterion_main!(vm_memory);
