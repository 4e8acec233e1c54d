//! A hostile guest against a PAMU that its Linux driver has brought up.
//!
//! Setup (the same for every input): the test rig's 64 MiB of RAM, the PAMU probed by the
//! Linux-shaped `GuestDriver` (pre-5.13 flavour), LIODNs 0x10 and 0x20 set up from a device
//! tree, LIODN 0x10 attached to a windowed domain with an MSI bank mapped. Then the input, as a
//! list of operations: MMIO accesses of any offset and size, stores into the PPAACT, SPAACT,
//! OMT or anywhere in RAM, PAMUBYPENR writes, DMA translations (with any I/O operation) of any
//! LIODN and address, and the driver's access-violation handler.
//!
//! Checked: nothing panics or hangs (libFuzzer's timeout), and every successful translation
//! maps at least one byte.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use viommu_common::access::Perms;
use viommu_common::mem;
use viommu_fuzz::{access_kind, MmioOp};
use viommu_pamu::caps::PamuConfig;
use viommu_pamu::testing::{DtDevice, DtKind, LinuxVersion, Rig, RIG_RAM};

/// Which guest table a store lands in.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Region {
    /// The primary table (32-bit word `index`).
    Ppaact,
    /// The secondary (subwindow) table.
    Spaact,
    /// The operation mapping table.
    Omt,
    /// Anywhere in RAM (32-bit word `index * 61`).
    Ram,
}

/// One guest action.
#[derive(Arbitrary, Debug)]
enum Op {
    /// An MMIO load or store.
    Mmio(MmioOp),
    /// A 4-byte big-endian store into guest memory.
    Store {
        region: Region,
        index: u16,
        value: u32,
    },
    /// PAMUBYPENR.
    Bypass { value: u32 },
    /// A DMA translation.
    Dma {
        liodn: u16,
        addr: u64,
        len: u32,
        access: u8,
        ioe: u8,
    },
    /// The driver's access-violation interrupt handler.
    AvIsr,
}

fuzz_target!(|ops: Vec<Op>| {
    let rig = Rig::new(PamuConfig::default());
    let mut drv = rig.driver(LinuxVersion::Pre513);
    drv.probe().expect("PAMU probe");
    let dt = [
        DtDevice {
            name: "pcie",
            liodns: vec![0x10],
            kind: DtKind::Plain,
        },
        DtDevice {
            name: "qman-portal",
            liodns: vec![0x20],
            kind: DtKind::QmanPortal,
        },
    ];
    drv.setup_liodns(&dt).expect("PAMU LIODN setup");
    let mem = rig.mem();
    let banks = rig.pamu.msi_banks();
    let mut dom = drv.new_domain();
    let t = &mut drv.tables;
    let ready = dom.attach(t, mem, 0x10).is_ok()
        && dom.set_geometry(t, mem, 0, 0x7FFF_FFFF).is_ok()
        && dom.set_windows(t, mem, 8).is_ok()
        && dom
            .map_dma(t, mem, 0, 0x2_0000_0000, 0x4000_0000, Perms::RW)
            .is_ok()
        && dom
            .map_msi_bank(t, mem, &banks, 0, 0x7000_0000, Perms::W)
            .is_ok();
    // The setup does not depend on the input: failing it is a harness bug, reported loudly.
    assert!(ready, "PAMU domain setup failed");
    let (ppba, spba, oba) = (drv.tables.ppba, drv.tables.spba, drv.tables.oba);

    for op in ops.into_iter().take(256) {
        match op {
            Op::Mmio(op) => op.apply(&*rig.pamu, true),
            Op::Store {
                region,
                index,
                value,
            } => {
                let i = u64::from(index);
                let addr = match region {
                    Region::Ppaact => ppba + 4 * i,
                    Region::Spaact => spba + 4 * i,
                    Region::Omt => oba + 4 * (i % 4096),
                    Region::Ram => (4 * 61 * i) % RIG_RAM as u64,
                };
                let _ = mem::write_u32_be(mem, addr, value);
            }
            Op::Bypass { value } => rig.pamu.write_bypass_register(value),
            Op::Dma {
                liodn,
                addr,
                len,
                access,
                ioe,
            } => {
                let access = access_kind(access);
                let len = u64::from(len).max(1);
                let liodn = u32::from(liodn % 0x40);
                if let Ok(t) = rig.pamu.translate_op(liodn, addr, len, access, ioe) {
                    let m = t.to_mapping();
                    assert!(
                        m.len >= 1,
                        "empty mapping for LIODN {liodn} {addr:#x}: {m:?}"
                    );
                }
            }
            Op::AvIsr => {
                let _ = drv.av_isr();
            }
        }
    }
});
