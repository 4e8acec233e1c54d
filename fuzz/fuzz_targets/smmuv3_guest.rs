//! A hostile guest against an SMMUv3 that its Linux driver has brought up.
//!
//! Setup (the same for every input): 32 MiB of guest RAM, the SMMU probed and reset by the
//! Linux-shaped `GuestDriver`, StreamID 1 attached to a stage-1 domain and StreamID 2 to a
//! stage-2 domain, both with pages mapped. Then the input, as a list of operations: MMIO
//! accesses of any offset and size, stores anywhere into the STEs, CDs, page tables, queues or
//! RAM, raw commands through the command queue, DMA translations and ATS requests of any
//! StreamID/SubstreamID/address, and the driver's event and GERROR handlers.
//!
//! Checked: nothing panics or hangs (libFuzzer's timeout), and every successful translation
//! maps at least one byte.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use viommu_common::access::DmaRequest;
use viommu_common::id::{StreamId, SubstreamId};
use viommu_common::mem;
use viommu_common::testing::guest_ram;
use viommu_common::traits::{DmaTranslator, MmioDevice, NoInterrupts};
use viommu_fuzz::{access_kind, MmioOp};
use viommu_smmuv3::ats::AtsRequest;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs::{self, QueueBase};
use viommu_smmuv3::testing::{DriverOptions, GuestDriver, Prot};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 32 << 20;
const IOVA: u64 = 0x1_0000_0000;
const IPA: u64 = 0x8000_0000;

/// Which guest structure a store lands in.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Region {
    /// The STE of StreamID `index / 8 % 4`, word `index % 8`.
    Ste,
    /// The stage-1 domain's CD table (word `index`).
    Cd,
    /// From the stage-1 page-table root on (the lower levels follow it in the allocator).
    S1Tables,
    /// From the stage-2 page-table root on.
    S2Tables,
    /// The command queue.
    Cmdq,
    /// Anywhere in RAM (8-byte word `index * 61`).
    Ram,
}

/// One guest action.
#[derive(Arbitrary, Debug)]
enum Op {
    /// An MMIO load or store.
    Mmio(MmioOp),
    /// An 8-byte store into guest memory.
    Store {
        region: Region,
        index: u16,
        value: u64,
    },
    /// Raw commands through the driver's command queue, optionally followed by a CMD_SYNC.
    Commands { cmds: Vec<[u64; 2]>, sync: bool },
    /// A DMA translation.
    Dma {
        sid: u8,
        ssid: Option<u32>,
        page: u16,
        offset: u16,
        len: u16,
        raw_addr: Option<u64>,
        access: u8,
        privileged: bool,
    },
    /// An ATS Translation Request.
    Ats {
        sid: u8,
        ssid: Option<u32>,
        addr: u64,
        write: bool,
        exec: bool,
        privileged: bool,
    },
    /// The driver's event queue and GERROR handlers.
    Handlers,
    /// Continue deferred command-queue work.
    ProcessPending,
}

fuzz_target!(|ops: Vec<Op>| {
    let ram: GuestMemoryMmap = guest_ram(RAM, RAM_SIZE as usize);
    // The setup does not depend on the input: failing it is a harness bug, reported loudly.
    let smmu = SmmuV3::new(&SmmuConfig::default(), &ram, Arc::new(NoInterrupts))
        .expect("default SMMU configuration");
    // 256-entry command and event queues (the SMMU advertises 2^19 of each; Linux would take
    // 2^18 and 2^17): the queues wrap and the event queue overflows within a few hundred
    // commands or faulting DMAs, and a queue kick or the event handler, which run until PROD
    // however the input left it, handle at most 256 entries instead of 2^18 or 2^17.
    let opts = DriverOptions {
        cmdq_max_log2: 8,
        evtq_max_log2: 8,
        ..DriverOptions::default()
    };
    let mut drv = GuestDriver::new(&smmu, &ram, RAM, RAM_SIZE, opts);
    drv.probe().expect("SMMU probe");
    drv.reset().expect("SMMU reset");
    let s1 = drv.new_s1_domain(1);
    s1.pgtable.map_pages(
        &ram,
        &mut drv.alloc,
        IOVA,
        RAM + 0x10_0000,
        0x8000,
        Prot::RW,
    );
    let s2 = drv.new_s2_domain(2);
    s2.pgtable
        .map_pages(&ram, &mut drv.alloc, IPA, RAM + 0x20_0000, 0x8000, Prot::RW);
    drv.attach_s1(1, &s1).expect("attach stage 1");
    drv.attach_s2(2, &s2).expect("attach stage 2");
    let (cd_table, _, _) = drv.cd_table(1, 0);
    let stes: Vec<u64> = (0..4).map(|sid| drv.ste_addr(sid)).collect();
    let mut base = [0u8; 8];
    smmu.mmio_read(regs::CMDQ_BASE, &mut base)
        .expect("CMDQ_BASE read");
    let cmdq = QueueBase::from_bits(u64::from_le_bytes(base)).addr();

    for op in ops.into_iter().take(256) {
        match op {
            Op::Mmio(op) => op.apply(&smmu, false),
            Op::Store {
                region,
                index,
                value,
            } => {
                let i = u64::from(index);
                let addr = match region {
                    Region::Ste => stes[(i / 8 % 4) as usize] + 8 * (i % 8),
                    Region::Cd => cd_table + 8 * (i % 64),
                    Region::S1Tables => s1.pgtable.root + 8 * i,
                    Region::S2Tables => s2.pgtable.root + 8 * i,
                    Region::Cmdq => cmdq + 8 * (i % 512),
                    Region::Ram => RAM + (8 * 61 * i) % RAM_SIZE,
                };
                let _ = mem::write_u64_le(&ram, addr, value);
            }
            Op::Commands { cmds, sync } => {
                let cmds: Vec<[u64; 2]> = cmds.into_iter().take(64).collect();
                let _ = if sync {
                    drv.issue_sync(&cmds)
                } else {
                    drv.issue(&cmds).map(|_| ())
                };
            }
            Op::Dma {
                sid,
                ssid,
                page,
                offset,
                len,
                raw_addr,
                access,
                privileged,
            } => {
                let base = if sid % 4 == 2 { IPA } else { IOVA };
                let addr = raw_addr
                    .unwrap_or(base + u64::from(page % 16) * 0x1000 + u64::from(offset % 0x1000));
                let req = DmaRequest {
                    stream: StreamId(u32::from(sid % 8)),
                    substream: ssid.map(SubstreamId),
                    addr,
                    len: u64::from(len).max(1),
                    access: access_kind(access),
                    privileged,
                };
                if let Ok(m) = smmu.translate(&req) {
                    assert!(m.len >= 1, "empty mapping for {req:?}: {m:?}");
                }
            }
            Op::Ats {
                sid,
                ssid,
                addr,
                write,
                exec,
                privileged,
            } => {
                let req = AtsRequest {
                    stream: StreamId(u32::from(sid % 8)),
                    substream: ssid.map(SubstreamId),
                    addr,
                    no_write: !write,
                    exec,
                    privileged,
                };
                let _ = smmu.ats_translate(&req);
            }
            Op::Handlers => {
                let _ = drv.read_events();
                let _ = drv.handle_gerror();
            }
            Op::ProcessPending => {
                let _ = smmu.process_pending();
            }
        }
    }
});
