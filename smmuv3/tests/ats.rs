//! PCIe ATS through the device: translation requests answered per STE.EATS (IHI 0070
//! §3.9.1.2), translated transactions checked per CR0.ATSCHK (§3.9.1.3), and CMD_ATC_INV
//! reaching the endpoint's ATC with CMD_SYNC failing (CERROR_ATC_INV_SYNC) when it cannot
//! complete.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use viommu_common::fault::Smmuv3FaultId;
use viommu_common::id::StreamId;
use viommu_common::testing::{guest_ram, Irq, RecordingIrq};
use viommu_common::{DmaRequest, Perms};
use viommu_smmuv3::ats::{
    AtcEndpoint, AtcError, AtcInvalidation, AtsCompletion, AtsError, AtsRequest,
};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::spec::regs as r;
use viommu_smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot, S1Domain};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;
const SID: u32 = 0x10;
const IOVA: u64 = 0x1000_0000;
const PA: u64 = RAM + 0x0200_0000;
/// STE word 1 EATS = 0b01 (full ATS).
const EATS_FULL: u64 = 1 << 28;

fn ats_config() -> SmmuConfig {
    SmmuConfig {
        ats: true,
        ..SmmuConfig::default()
    }
}

type Dev<'a> = SmmuV3<&'a GuestMemoryMmap>;
type Drv<'a> = GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap>;

/// An endpoint's ATC: completions cached by untranslated range, invalidated by the SMMU.
#[derive(Default)]
struct Atc {
    entries: Mutex<Vec<AtsCompletion>>,
    invalidations: Mutex<Vec<AtcInvalidation>>,
    fail: AtomicBool,
    calls: AtomicUsize,
}

impl Atc {
    /// The device's ATC lookup: the translated address if a cached entry covers `addr`.
    fn lookup(&self, addr: u64) -> Option<u64> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .find_map(|c| c.translate(addr))
    }

    /// Use `addr` the way an ATS endpoint does: ATC hit, or a translation request whose
    /// completion is cached. Returns the translated address if access is granted.
    fn access(&self, smmu: &Dev<'_>, addr: u64) -> Option<u64> {
        if let Some(pa) = self.lookup(addr) {
            return Some(pa);
        }
        let c = smmu.ats_translate(&AtsRequest::new(SID, addr)).ok()?;
        self.entries.lock().unwrap().push(c);
        c.translate(addr)
    }
}

impl AtcEndpoint for Atc {
    fn invalidate(&self, inv: &AtcInvalidation) -> Result<(), AtcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(AtcError::Timeout);
        }
        self.invalidations.lock().unwrap().push(*inv);
        self.entries
            .lock()
            .unwrap()
            .retain(|c| !inv.overlaps(c.input, c.size_log2));
        Ok(())
    }
}

/// Attach `sid` to `dom` with a CD-table STE whose word 1 also has `w1_extra` (EATS).
fn attach_with(drv: &mut Drv<'_>, sid: u32, dom: &S1Domain, w1_extra: u64) {
    let (table, fmt, cdmax) = drv.cd_table(sid, 0);
    let cd = drv.s1_cd(dom);
    drv.write_cd_steps(sid, 0, cd, &mut || {}).unwrap();
    let mut ste = drv.cdtable_ste(table, fmt, cdmax, 2);
    ste[1] |= w1_extra;
    drv.write_ste(sid, ste).unwrap();
}

/// A fresh stage-1 domain (ASID 1) mapping `len` bytes at IOVA -> PA read/write, attached to
/// SID with `w1_extra` (EATS) in STE word 1.
fn attach_rw(drv: &mut Drv<'_>, ram: &GuestMemoryMmap, len: u64, w1_extra: u64) -> S1Domain {
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(ram, &mut drv.alloc, IOVA, PA, len, Prot::RW);
    attach_with(drv, SID, &dom, w1_extra);
    dom
}

/// Give SID + 1 a bypass STE and SID + 2 an abort STE, then drain the event queue.
fn add_bypass_and_abort_streams(drv: &mut Drv<'_>) {
    let bypass = drv.bypass_ste();
    drv.write_ste(SID + 1, bypass).unwrap();
    let abort = drv.abort_ste();
    drv.write_ste(SID + 2, abort).unwrap();
    drv.read_events();
}

fn bring_up<'a>(ram: &'a GuestMemoryMmap, cfg: &SmmuConfig) -> (Dev<'a>, Arc<RecordingIrq>) {
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(cfg, ram, irq.clone()).unwrap();
    (smmu, irq)
}

fn driver<'a>(smmu: &'a Dev<'a>, ram: &'a GuestMemoryMmap) -> Drv<'a> {
    let mut drv = GuestDriver::new(smmu, ram, RAM, RAM_SIZE / 2, DriverOptions::default());
    drv.probe().unwrap();
    drv.reset().unwrap();
    drv
}

/// IDR0.ATS (bit 10) is advertised when configured, and the Linux driver then sets
/// CR0.ATSCHK (bit 4).
#[test]
fn test_ats_advertised_in_idr0_and_atschk_enabled() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let drv = driver(&smmu, &ram);
    assert_eq!(drv.read32(r::IDR0), 0x094C_301B | 0x400);
    assert!(drv.info.ats);
    assert_eq!(drv.read32(r::CR0) & 0x10, 0x10);
}

/// The endpoint caches a translation, the guest unmaps (TLBI + SYNC) then invalidates the ATC
/// (ATC_INV + CMD_SYNC): the endpoint's next use misses its ATC and the new request is denied
/// (R = W = 0).
#[test]
fn test_atc_inv_reaches_endpoint_and_next_use_misses() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    let dom = attach_rw(&mut drv, &ram, 0x4000, EATS_FULL);
    let atc = Arc::new(Atc::default());
    assert!(smmu.register_atc(StreamId(SID), atc.clone()).is_none());

    let c = smmu
        .ats_translate(&AtsRequest::new(SID, IOVA + 0x1234))
        .unwrap();
    assert_eq!(
        c,
        AtsCompletion {
            input: IOVA + 0x1000,
            output: PA + 0x1000,
            size_log2: 12,
            perms: Perms::RW,
            privileged: false,
            global: false, // io-pgtable maps with nG = 1
        }
    );
    assert_eq!(atc.access(&smmu, IOVA + 0x1010), Some(PA + 0x1010));
    // Translated traffic with the PA passes (full ATS, ATSCHK = 1).
    let m = smmu
        .translated_access(&DmaRequest::write(SID, PA + 0x1010, 8))
        .unwrap();
    assert_eq!(m.output, PA + 0x1010);
    assert_eq!(atc.lookup(IOVA + 0x1800), Some(PA + 0x1800), "ATC hit");

    drv.unmap_s1(&dom, IOVA + 0x1000, 0x1000).unwrap();
    assert_eq!(
        atc.calls.load(Ordering::SeqCst),
        0,
        "TLBI does not reach the ATC"
    );
    // arm_smmu_atc_inv_to_cmd for one page: Size 0, SSV clear.
    drv.issue_sync(&[cmd::atc_inv(SID, None, IOVA + 0x1000, 0)])
        .unwrap();
    assert_eq!(
        *atc.invalidations.lock().unwrap(),
        vec![AtcInvalidation {
            ssid: None,
            global: false,
            start: IOVA + 0x1000,
            last: IOVA + 0x1FFF,
        }]
    );
    assert_eq!(atc.lookup(IOVA + 0x1800), None, "the ATC entry is gone");
    assert_eq!(
        atc.access(&smmu, IOVA + 0x1800),
        None,
        "unmapped: no access"
    );
    let c = smmu
        .ats_translate(&AtsRequest::new(SID, IOVA + 0x1800))
        .unwrap();
    assert_eq!(
        (c.perms, c.input, c.size_log2),
        (Perms::NONE, IOVA + 0x1000, 12)
    );
    // Translation faults for ATS requests are not recorded.
    assert!(drv.read_events().is_empty());
    // The neighbouring page is still mapped.
    assert_eq!(atc.access(&smmu, IOVA + 0x2000), Some(PA + 0x2000));
}

/// An ATC that cannot complete: the CMD_SYNC after the ATC_INV stops with CONS at the SYNC,
/// CMDQ_CONS.ERR = CERROR_ATC_INV_SYNC (3) and GERROR.CMDQ_ERR; once acknowledged, the
/// re-fetched CMD_SYNC completes.
#[test]
fn test_atc_inv_failure_fails_next_sync() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    attach_rw(&mut drv, &ram, 0x1000, EATS_FULL);
    let atc = Arc::new(Atc::default());
    smmu.register_atc(StreamId(SID), atc.clone());
    atc.fail.store(true, Ordering::SeqCst);
    irq.take();

    let cons0 = drv.read32(r::CMDQ_CONS);
    // Everything (Size 52) for PASID 5.
    drv.issue(&[cmd::atc_inv(SID, Some(5), 0, 52), cmd::sync_none()])
        .unwrap();
    let cons = drv.read32(r::CMDQ_CONS);
    assert_eq!(cons >> 24 & 0x7F, 3, "CERROR_ATC_INV_SYNC");
    assert_eq!(
        cons & 0xFF_FFFF,
        (cons0 + 1) & 0xFF_FFFF,
        "CONS at the SYNC"
    );
    assert_eq!((drv.read32(r::GERROR) ^ drv.read32(r::GERRORN)) & 1, 1);
    assert!(irq
        .take()
        .iter()
        .any(|i| matches!(i, Irq::Msi { data: 0x22, .. })));
    assert_eq!(atc.calls.load(Ordering::SeqCst), 1);

    // The driver's GERROR handler acknowledges; the SYNC is re-fetched and completes.
    atc.fail.store(false, Ordering::SeqCst);
    drv.handle_gerror();
    let cons = drv.read32(r::CMDQ_CONS);
    assert_eq!(cons >> 24 & 0x7F, 0);
    assert_eq!(cons & 0xFF_FFFF, (cons0 + 2) & 0xFF_FFFF, "SYNC consumed");
    // Later invalidations work normally.
    drv.issue_sync(&[cmd::atc_inv(SID, Some(5), 0, 52)])
        .unwrap();
    assert_eq!(
        *atc.invalidations.lock().unwrap(),
        vec![AtcInvalidation {
            ssid: Some(5),
            global: false,
            start: 0,
            last: u64::MAX,
        }]
    );
}

/// ATC_INV's Size field: 2^Size pages from Addr aligned down (Linux's span encoding), to a
/// stream without a registered ATC: completes at once.
#[test]
fn test_atc_inv_size_encoding_and_unregistered_stream() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    let atc = Arc::new(Atc::default());
    smmu.register_atc(StreamId(SID), atc.clone());
    // Size 3 = 8 pages; Addr 0x1000_5000 aligns down to 0x1000_0000.
    drv.issue_sync(&[cmd::atc_inv(SID, None, 0x1000_5000, 3)])
        .unwrap();
    drv.issue_sync(&[cmd::atc_inv(SID + 1, None, 0, 52)])
        .unwrap();
    assert_eq!(
        *atc.invalidations.lock().unwrap(),
        vec![AtcInvalidation {
            ssid: None,
            global: false,
            start: 0x1000_0000,
            last: 0x1000_7FFF,
        }]
    );
    assert!(smmu.unregister_atc(StreamId(SID)).is_some());
    drv.issue_sync(&[cmd::atc_inv(SID, None, 0, 52)]).unwrap();
    assert_eq!(atc.calls.load(Ordering::SeqCst), 1);
}

/// Responses per configuration: EATS = 0 and a bypass STE give UR with F_BAD_ATS_TREQ; an
/// abort STE gives UR silently; an invalid STE gives CA without an event; SMMUEN = 0 gives UR.
#[test]
fn test_ats_request_refused_per_ste() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    attach_rw(&mut drv, &ram, 0x1000, 0);
    add_bypass_and_abort_streams(&mut drv);

    let e = smmu.ats_translate(&AtsRequest::new(SID, IOVA)).unwrap_err();
    assert!(matches!(e, AtsError::UnsupportedRequest(_)), "{e}");
    let e = smmu
        .ats_translate(&AtsRequest::new(SID + 1, IOVA))
        .unwrap_err();
    assert!(matches!(e, AtsError::UnsupportedRequest(_)), "{e}");
    let ev = drv.read_events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0][0], 0x05 | u64::from(SID) << 32, "F_BAD_ATS_TREQ");
    assert_eq!(ev[1][0], 0x05 | u64::from(SID + 1) << 32);
    assert_eq!(ev[0][2], IOVA, "input address");

    let e = smmu
        .ats_translate(&AtsRequest::new(SID + 2, IOVA))
        .unwrap_err();
    assert!(matches!(e, AtsError::UnsupportedRequest(_)));
    // An invalid STE (V = 0):
    let ste_addr = drv.ste_addr(SID + 3);
    viommu_common::mem::write_u64_le(&ram, ste_addr, 0).unwrap();
    let e = smmu
        .ats_translate(&AtsRequest::new(SID + 3, IOVA))
        .unwrap_err();
    assert_eq!(e, AtsError::CompleterAbort("C_BAD_STE"));
    assert!(drv.read_events().is_empty(), "abort and CA record nothing");

    drv.disable().unwrap();
    let e = smmu.ats_translate(&AtsRequest::new(SID, IOVA)).unwrap_err();
    assert_eq!(e, AtsError::UnsupportedRequest("SMMUEN = 0"));
}

/// Without IDR0.ATS there is no ATS interface: every request is UR.
#[test]
fn test_ats_request_without_idr0_ats_is_unsupported() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &SmmuConfig::default());
    let mut drv = driver(&smmu, &ram);
    attach_rw(&mut drv, &ram, 0x1000, EATS_FULL);
    assert_eq!(
        smmu.ats_translate(&AtsRequest::new(SID, IOVA)),
        Err(AtsError::UnsupportedRequest("IDR0.ATS = 0"))
    );
}

/// Permissions: a read-only page answers a read/write request with R only; NW asks for R only;
/// a request with a PASID is not Global.
#[test]
fn test_ats_grants_available_permissions() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    let dom = drv.new_s1_domain(1);
    dom.pgtable
        .map_pages(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RO);
    dom.pgtable.map_pages(
        &ram,
        &mut drv.alloc,
        IOVA + 0x1000,
        PA + 0x1000,
        0x1000,
        Prot::RW,
    );
    attach_with(&mut drv, SID, &dom, EATS_FULL);
    let c = smmu.ats_translate(&AtsRequest::new(SID, IOVA)).unwrap();
    assert_eq!((c.output, c.perms), (PA, Perms::R));
    let c = smmu
        .ats_translate(&AtsRequest::new(SID, IOVA + 0x1000).read_only())
        .unwrap();
    assert_eq!((c.output, c.perms), (PA + 0x1000, Perms::R));
    let c = smmu
        .ats_translate(&AtsRequest::new(SID, IOVA + 0x1000))
        .unwrap();
    assert_eq!(c.perms, Perms::RW);
    // Served from the IOTLB the same way.
    let c2 = smmu
        .ats_translate(&AtsRequest::new(SID, IOVA + 0x1000))
        .unwrap();
    assert_eq!(c, c2);
}

/// CR0.ATSCHK = 1: translated traffic from a stream whose STE does not allow ATS (EATS = 0,
/// bypass) is aborted with F_TRANSL_FORBIDDEN; an abort STE aborts silently. ATSCHK = 0: it
/// passes without a lookup, except an address beyond the OAS (policy: abort, no event).
#[test]
fn test_translated_traffic_checked_with_atschk() {
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    attach_rw(&mut drv, &ram, 0x1000, 0);
    add_bypass_and_abort_streams(&mut drv);

    let f = smmu
        .translated_access(&DmaRequest::write(SID, PA, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::TranslForbidden);
    let f = smmu
        .translated_access(&DmaRequest::read(SID + 1, PA, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::TranslForbidden);
    let f = smmu
        .translated_access(&DmaRequest::read(SID + 2, PA, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::SteAbort);
    let ev = drv.read_events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0][0], 0x07 | u64::from(SID) << 32);
    assert_eq!(ev[0][1] >> 35 & 1, 0, "RnW = 0: a write");
    assert_eq!(ev[1][0], 0x07 | u64::from(SID + 1) << 32);

    // ATSCHK = 0: fast mode.
    let cr0 = drv.read32(r::CR0) & !0x10;
    drv.write32(r::CR0, cr0);
    assert_eq!(drv.read32(r::CR0ACK), cr0);
    let m = smmu
        .translated_access(&DmaRequest::write(SID, PA, 4))
        .unwrap();
    assert_eq!(m.output, PA);
    let f = smmu
        .translated_access(&DmaRequest::read(SID, 1 << 48, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::AtsAddrSize);
    assert!(drv.read_events().is_empty());
}

/// Split-stage ATS (STE.EATS = 0b10, Config 0b111, CR0.ATSCHK = 1): the completion carries
/// the stage-1 output (an IPA) with permissions of both stages, and the endpoint's Translated
/// traffic with that IPA is translated by stage 2. With ATSCHK = 0 the request is refused.
#[test]
fn test_split_stage_ats_returns_ipa_and_translates_translated_traffic() {
    use viommu_smmuv3::testing::pgtable::{leaf_bits, PgFormat};
    use viommu_smmuv3::testing::IoPgtable;

    const IPA: u64 = 0x2000_0000;
    const IPA_PA: u64 = RAM + 0x0100_0000;
    const VA: u64 = 0x0000_0080_4060_3000;
    let pa = |ipa: u64| ipa - IPA + IPA_PA;
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    let mut drv = driver(&smmu, &ram);
    let s2 = drv.new_s2_domain(5);
    for page in 0..16u64 {
        // The data page (IPA + 0x8000) is read-only at stage 2.
        let prot = if page == 8 { Prot::RO } else { Prot::RW };
        s2.pgtable.map(
            &ram,
            &mut drv.alloc,
            IPA + page * 0x1000,
            IPA_PA + page * 0x1000,
            0x1000,
            prot,
        );
    }
    // Stage-1 tables at IPA .. IPA + 0x3000, CD at IPA + 0x9000, data at IPA + 0x8000 (RW at
    // stage 1) and IPA + 0xA000 (RW at both stages).
    let tables = [IPA, IPA + 0x1000, IPA + 0x2000, IPA + 0x3000];
    for (va, data) in [(VA, IPA + 0x8000), (VA + 0x1000, IPA + 0xA000)] {
        for level in 0..4u64 {
            let idx = (va >> (39 - 9 * level)) & 511;
            let slot = pa(tables[level as usize]) + 8 * idx;
            let desc = if level < 3 {
                tables[level as usize + 1] | 3
            } else {
                data | leaf_bits(PgFormat::Stage1, Prot::RW.0, true)
            };
            viommu_common::mem::write_u64_le(&ram, slot, desc).unwrap();
        }
    }
    let dom = S1Domain {
        asid: 9,
        pgtable: IoPgtable {
            format: PgFormat::Stage1,
            ias: 48,
            root: tables[0],
            start_level: 0,
        },
    };
    let cd_ipa = IPA + 0x9000;
    for (i, w) in drv.s1_cd(&dom).iter().enumerate() {
        viommu_common::mem::write_u64_le(&ram, pa(cd_ipa) + 8 * i as u64, *w).unwrap();
    }
    let mut ste = drv.s2_ste(&s2);
    ste[0] = 1 | 7 << 1 | (cd_ipa & 0x000F_FFFF_FFFF_FFC0);
    ste[1] |= 0xD4 | 2 << 28; // EATS = 0b10
    drv.write_ste(SID, ste).unwrap();

    let c = smmu
        .ats_translate(&AtsRequest::new(SID, VA + 0x1044))
        .unwrap();
    assert_eq!(
        (c.input, c.output, c.perms),
        (VA + 0x1000, IPA + 0xA000, Perms::RW)
    );
    let c = smmu
        .ats_translate(&AtsRequest::new(SID, VA + 0x44))
        .unwrap();
    assert_eq!(
        (c.output, c.perms),
        (IPA + 0x8000, Perms::R),
        "stage 1 RW intersected with stage 2 read-only"
    );
    // Translated traffic carries the IPA and goes through stage 2.
    let m = smmu
        .translated_access(&DmaRequest::write(SID, IPA + 0xA010, 4))
        .unwrap();
    assert_eq!(m.output, IPA_PA + 0xA010);
    let f = smmu
        .translated_access(&DmaRequest::write(SID, IPA + 0x8010, 4))
        .unwrap_err();
    assert_eq!(f.event, Smmuv3FaultId::Permission);
    let ev = drv.read_events();
    assert_eq!(ev.len(), 1, "recorded per STE.S2R, as for ordinary traffic");
    assert_eq!(ev[0][0] & 0xFF, 0x13);
    assert_eq!(ev[0][1] >> 39 & 1, 1, "S2");

    // ATSCHK = 0: split-stage ATS is unusable (§3.9.1.2): UR + F_BAD_ATS_TREQ.
    let cr0 = drv.read32(r::CR0) & !0x10;
    drv.write32(r::CR0, cr0);
    assert!(matches!(
        smmu.ats_translate(&AtsRequest::new(SID, VA + 0x1044)),
        Err(AtsError::UnsupportedRequest(_))
    ));
    let ev = drv.read_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0][0] & 0xFF, 0x05);
}

/// A device reset forgets a failed ATC invalidation: the first CMD_SYNC after the driver's
/// bring-up completes.
#[test]
fn test_reset_clears_pending_atc_sync_error() {
    struct Failing;
    impl AtcEndpoint for Failing {
        fn invalidate(&self, _: &AtcInvalidation) -> Result<(), AtcError> {
            Err(AtcError::Failed("link down".into()))
        }
    }
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let (smmu, _irq) = bring_up(&ram, &ats_config());
    smmu.register_atc(StreamId(SID), Arc::new(Failing));
    let mut drv = driver(&smmu, &ram);
    drv.issue(&[cmd::atc_inv(SID, None, 0, 52)]).unwrap();
    smmu.reset();
    let mut drv2 = driver(&smmu, &ram);
    assert_eq!(
        drv2.read32(r::GERROR),
        0,
        "bring-up's CMD_SYNCs completed without error"
    );
    drv2.issue(&[cmd::sync_none()]).unwrap();
    assert_eq!(
        drv2.read32(r::CMDQ_CONS) >> 24 & 0x7F,
        0,
        "no CERROR_ATC_INV_SYNC"
    );
    assert_eq!((drv2.read32(r::GERROR) ^ drv2.read32(r::GERRORN)) & 1, 0);
    drop(drv);
}

/// HTTU on ATS (§3.9.1): a request with NW = 0 for a writable-clean page marks it dirty (the
/// later Translated writes bypass the SMMU), a request with NW = 1 sets only the access flag.
#[test]
fn test_ats_request_updates_access_and_dirty_state() {
    use viommu_smmuv3::spec::idr::Httu;
    const AF: u64 = 1 << 10;
    const AP_RO: u64 = 1 << 7;
    const DBM: u64 = 1 << 51;
    let ram = guest_ram(RAM, RAM_SIZE as usize);
    let cfg = SmmuConfig {
        ats: true,
        httu: Httu::ACCESS_DIRTY,
        ..SmmuConfig::default()
    };
    let (smmu, _irq) = bring_up(&ram, &cfg);
    let mut drv = driver(&smmu, &ram);
    let dom = drv.new_s1_domain(1);
    let slot = dom
        .pgtable
        .map(&ram, &mut drv.alloc, IOVA, PA, 0x1000, Prot::RW);
    let rw = viommu_common::mem::read_u64_le(&ram, slot).unwrap();
    let clean = (rw & !AF) | DBM | AP_RO;
    viommu_common::mem::write_u64_le(&ram, slot, clean).unwrap();
    let (table, fmt, cdmax) = drv.cd_table(SID, 0);
    let mut cd = drv.s1_cd(&dom);
    cd[0] |= 3 << 42; // HD, HA
    drv.write_cd_steps(SID, 0, cd, &mut || {}).unwrap();
    let mut ste = drv.cdtable_ste(table, fmt, cdmax, 2);
    ste[1] |= EATS_FULL;
    drv.write_ste(SID, ste).unwrap();
    let read = |ram: &GuestMemoryMmap| viommu_common::mem::read_u64_le(ram, slot).unwrap();

    let c = smmu
        .ats_translate(&AtsRequest::new(SID, IOVA).read_only())
        .unwrap();
    assert_eq!(c.perms, Perms::R);
    assert_eq!(read(&ram), clean | AF, "NW = 1: access flag only");
    let c = smmu.ats_translate(&AtsRequest::new(SID, IOVA)).unwrap();
    assert_eq!(c.perms, Perms::RW);
    assert_eq!(read(&ram), (clean | AF) & !AP_RO, "NW = 0: dirty");
}
