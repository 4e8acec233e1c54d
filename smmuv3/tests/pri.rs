//! PRI: an endpoint's page requests land in the guest's PRI queue (page-1 PROD/CONS, PRIQ
//! interrupt), the guest answers the group with CMD_PRI_RESP and the endpoint receives it;
//! overflow, a disabled queue and write aborts get the architecture's automatic responses
//! (IHI 0070 §8.1, §8.2).

use std::sync::Arc;
use std::time::Duration;

use viommu_common::mem;
use viommu_common::testing::{guest_ram, Irq, RecordingIrq};
use viommu_common::{StreamId, SubstreamId};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::cmdq::command::PriResponse;
use viommu_smmuv3::device::{lines, SmmuV3};
use viommu_smmuv3::priq::{PageRequest, PageRequestOutcome, PrgResponse, PriError};
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{cmd, DriverOptions, GuestDriver};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x0108;
const PRIQ_DOORBELL: u64 = 0x0800_0080;

fn pri_config(priq_log2: u8) -> SmmuConfig {
    SmmuConfig {
        ats: true,
        pri: true,
        priq_log2,
        ..SmmuConfig::default()
    }
}

type Drv<'a> = GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap>;

/// Linux bring-up with PRI (PRIQ_BASE, PRIQEN, IRQ_CTRL = 0x7), plus the priq MSI that
/// `arm_smmu_write_msi_msg` programs.
fn bring_up<'a>(smmu: &'a SmmuV3<&'a GuestMemoryMmap>, ram: &'a GuestMemoryMmap) -> Drv<'a> {
    let mut drv = GuestDriver::new(smmu, ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    let info = drv.probe().unwrap();
    assert!(info.pri && info.ats);
    drv.reset().unwrap();
    assert_eq!(drv.read32(r::CR0ACK), 0x1F, "PRIQEN and ATSCHK on");
    assert_eq!(
        drv.read32(r::IRQ_CTRLACK),
        0x7,
        "PRIQ_IRQEN accepted with PRI"
    );
    drv.write64(r::PRIQ_IRQ_CFG0, PRIQ_DOORBELL);
    drv.write32(r::PRIQ_IRQ_CFG1, 0x23);
    drv
}

/// The PRI thread (`arm_smmu_priq_thread`): read PROD, consume 16-byte records, write CONS with
/// the overflow flag copied from PROD.
fn read_priq(drv: &Drv<'_>, log2: u32) -> (Vec<[u64; 2]>, u32) {
    let base = u64::from(drv.read32(r::PRIQ_BASE)) & !0x1F;
    let prod = drv.read32(r::PRIQ_PROD_P1);
    let mut cons = drv.read32(r::PRIQ_CONS_P1);
    let mask = (2u32 << log2) - 1;
    let mut out = Vec::new();
    while cons & mask != prod & mask {
        let a = base + 16 * u64::from(cons & ((1 << log2) - 1));
        out.push([
            mem::read_u64_le(drv.mem, a).unwrap(),
            mem::read_u64_le(drv.mem, a + 8).unwrap(),
        ]);
        cons = (cons + 1) & mask;
    }
    drv.write32(r::PRIQ_CONS_P1, (cons & mask) | (prod & 1 << 31));
    (out, prod)
}

fn ppr(group: u16, addr: u64, last: bool) -> PageRequest {
    PageRequest {
        substream: Some(SubstreamId(5)),
        addr,
        read: true,
        write: true,
        last,
        group,
        ..PageRequest::default()
    }
}

/// A page request group of two requests travels to the guest's PRI queue (record layout as
/// Linux decodes it, PRIQ MSI), the guest answers with CMD_PRI_RESP(Success) and the endpoint,
/// waiting on its own thread, receives the response with the PASID.
#[test]
fn test_page_request_round_trip() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&pri_config(19), &ram, irq.clone()).unwrap();
    let mut drv = bring_up(&smmu, &ram);
    irq.take();
    let sid = StreamId(SID);
    assert_eq!(
        smmu.page_request(sid, &ppr(0x42, 0x7000_1234, false)),
        Ok(PageRequestOutcome::Queued)
    );
    assert_eq!(
        smmu.page_request(sid, &ppr(0x42, 0x7000_2000, true)),
        Ok(PageRequestOutcome::Queued)
    );
    assert_eq!(smmu.pri_response(sid, 0x42), None, "not answered yet");
    let msis = irq
        .take()
        .into_iter()
        .filter(|i| {
            *i == Irq::Msi {
                addr: PRIQ_DOORBELL,
                data: 0x23,
            }
        })
        .count();
    assert_eq!(msis, 2, "PRIQ MSI per record");
    let (recs, prod) = read_priq(&drv, 8);
    assert_eq!(prod, 2);
    assert_eq!(recs.len(), 2);
    // SID [31:0], SSID 5 [51:32], READ 60, WRITE 61, SSID_V 63; Last 62 on the second.
    assert_eq!(recs[0][0], 0xB000_0005_0000_0108);
    assert_eq!(recs[0][1], 0x7000_1042);
    assert_eq!(recs[1][0], 0xF000_0005_0000_0108);
    assert_eq!(recs[1][1], 0x7000_2042);

    std::thread::scope(|s| {
        let endpoint = s.spawn(|| smmu.wait_pri_response(sid, 0x42, Duration::from_secs(10)));
        let mut resp = cmd::pri_resp(SID, 0x42, 2);
        resp[0] |= 1 << 11 | 5 << 12; // SSV, SSID 5
        drv.issue_sync(&[resp]).unwrap();
        assert_eq!(
            endpoint.join().unwrap(),
            Some(PrgResponse {
                code: PriResponse::Success,
                pasid: Some(SubstreamId(5)),
                automatic: false,
            })
        );
    });
    assert_eq!(smmu.pri_response(sid, 0x42), None, "delivered once");
    // A response for a group nobody asked about changes nothing.
    drv.issue_sync(&[cmd::pri_resp(SID, 0x7, 0)]).unwrap();
    assert_eq!(smmu.pri_response(sid, 0x7), None);
    assert_eq!(drv.read32(r::GERROR), 0);
}

/// A two-entry PRI queue overflows: OVFLG toggles once, the active overflow inhibits every new
/// record (even after the guest consumed), Last = 1 requests get an automatic Success, Last = 0
/// requests are dropped; after the OVACKFLG acknowledge records are written again.
#[test]
fn test_priq_overflow_auto_responds_and_inhibits_until_acknowledged() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&pri_config(1), &ram, irq).unwrap();
    let drv = bring_up(&smmu, &ram);
    let sid = StreamId(SID);
    for g in 0..2 {
        assert_eq!(
            smmu.page_request(sid, &ppr(g, 0x1000, true)),
            Ok(PageRequestOutcome::Queued)
        );
    }
    assert_eq!(
        smmu.page_request(sid, &ppr(2, 0x1000, false)),
        Ok(PageRequestOutcome::Discarded { response: None })
    );
    assert_eq!(drv.read32(r::PRIQ_PROD_P1), 0x8000_0002, "OVFLG toggled");
    let auto = PrgResponse {
        code: PriResponse::Success,
        pasid: Some(SubstreamId(5)),
        automatic: true,
    };
    assert_eq!(
        smmu.page_request(sid, &ppr(3, 0x1000, true)),
        Ok(PageRequestOutcome::Discarded {
            response: Some(auto)
        })
    );
    assert_eq!(smmu.pri_response(sid, 3), Some(auto));
    assert_eq!(
        drv.read32(r::PRIQ_PROD_P1),
        0x8000_0002,
        "toggled only once"
    );
    // Consume without acknowledging: the overflow condition still inhibits writes.
    drv.write32(r::PRIQ_CONS_P1, 0x2);
    assert!(matches!(
        smmu.page_request(sid, &ppr(4, 0x1000, true)),
        Ok(PageRequestOutcome::Discarded { .. })
    ));
    // Acknowledge (OVACKFLG = OVFLG): records flow again.
    drv.write32(r::PRIQ_CONS_P1, 0x8000_0002);
    assert_eq!(
        smmu.page_request(sid, &ppr(5, 0x5000, true)),
        Ok(PageRequestOutcome::Queued)
    );
    let (recs, prod) = read_priq(&drv, 1);
    assert_eq!(prod, 0x8000_0003);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0][1], 0x5005);
    assert_eq!(drv.read32(r::GERROR), 0, "overflow is not PRIQ_ABT_ERR");
}

/// With PRIQEN = 0 every PPR gets an automatic Response Failure without PASID (§8.2); a queue
/// outside RAM raises PRIQ_ABT_ERR and fails the PPR; without IDR0.PRI the API refuses.
#[test]
fn test_priq_disabled_abort_and_unsupported() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&pri_config(19), &ram, irq.clone()).unwrap();
    let drv = bring_up(&smmu, &ram);
    let sid = StreamId(SID);
    let failure = PrgResponse {
        code: PriResponse::ResponseFailure,
        pasid: None,
        automatic: true,
    };
    drv.write32(r::CR0, 0x1D); // PRIQEN off
    assert_eq!(
        smmu.page_request(sid, &ppr(1, 0x1000, false)),
        Ok(PageRequestOutcome::Discarded {
            response: Some(failure)
        })
    );
    assert_eq!(smmu.pri_response(sid, 1), Some(failure));
    // A queue base outside guest RAM: the record write aborts.
    drv.write64(r::PRIQ_BASE, 0x1_0000_0000 | 4);
    drv.write32(r::CR0, 0x1F);
    irq.take();
    assert_eq!(
        smmu.page_request(sid, &ppr(2, 0x1000, true)),
        Ok(PageRequestOutcome::Discarded {
            response: Some(failure)
        })
    );
    assert_eq!(drv.read32(r::GERROR) & (1 << 3), 1 << 3, "PRIQ_ABT_ERR");
    assert_eq!(
        smmu.page_request(sid, &ppr(3, 0x1000, true)),
        Ok(PageRequestOutcome::Discarded {
            response: Some(failure)
        }),
        "no entries while PRIQ_ABT_ERR is active"
    );
    assert_eq!(
        smmu.page_request(sid, &ppr(0x200, 0, true)),
        Err(PriError::BadGroup(0x200))
    );

    let ram2 = guest_ram(RAM, RAM_SIZE as usize);
    let plain = SmmuV3::new(&SmmuConfig::default(), &ram2, Arc::new(RecordingIrq::new())).unwrap();
    assert_eq!(
        plain.page_request(sid, &ppr(0, 0, true)),
        Err(PriError::NotSupported)
    );
}

/// Without a PRIQ MSI the wired PRIQ line pulses; with PRIQ_IRQEN clear nothing is signalled.
#[test]
fn test_priq_wired_interrupt_and_irqen_gate() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&pri_config(19), &ram, irq.clone()).unwrap();
    let drv = bring_up(&smmu, &ram);
    drv.write64(r::PRIQ_IRQ_CFG0, 0);
    irq.take();
    smmu.page_request(StreamId(SID), &ppr(1, 0x1000, true))
        .unwrap();
    assert!(irq.take().iter().any(|i| matches!(
        i,
        Irq::Line {
            line: lines::PRIQ,
            level: true
        }
    )));
    drv.write32(r::IRQ_CTRL, 0x5);
    smmu.page_request(StreamId(SID), &ppr(2, 0x1000, true))
        .unwrap();
    assert!(irq.take().is_empty(), "PRIQ_IRQEN = 0 suppresses");
}
