//! insta snapshots of SMMUv3 command-queue processing, one readable log per scenario: every
//! register write, command consumed and what it did (configuration dropped, IOTLB scopes
//! invalidated, CMD_SYNC completion), events written, interrupts sent, CONS and GERROR changes.
//! The lines are exactly the device's trace text (`viommu_smmuv3::trace`), plus `DMA` lines the
//! scenario adds for translations it performs.
//!
//! Each scenario also asserts what its log shows: the DMA outcomes, the event records the driver
//! reads, and the register values it leaves behind (register reads are not traced, so the
//! assertions do not change the logs).

use std::sync::{Arc, Mutex};

use viommu::smmuv3::caps::SmmuConfig;
use viommu::smmuv3::device::SmmuV3;
use viommu::smmuv3::spec::evt::{EventId, EvtEntry};
use viommu::smmuv3::spec::regs::{self as r, CmdqCons, CmdqErr, Gerror, QueueBase, QueueIndex};
use viommu::smmuv3::testing::{cmd, DriverOptions, GuestDriver, Prot, S1Domain};
use viommu::smmuv3::trace::TraceRecord;
use viommu_common::access::Perms;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_common::traits::DmaTranslator;
use viommu_common::DmaRequest;
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 64 << 20;

type Log = Arc<Mutex<Vec<String>>>;

struct Rig {
    ram: GuestMemoryMmap,
    log: Log,
}

impl Rig {
    fn new() -> Self {
        Self {
            ram: guest_ram(RAM, RAM_SIZE as usize),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn smmu(&self, cfg: &SmmuConfig) -> SmmuV3<&GuestMemoryMmap> {
        let s = SmmuV3::new(cfg, &self.ram, Arc::new(RecordingIrq::new())).unwrap();
        let log = self.log.clone();
        s.set_tracer(Some(Arc::new(move |r: &TraceRecord| {
            log.lock().unwrap().push(r.to_string());
        })));
        s
    }

    /// The Linux driver over `smmu`, probed and reset (its trace lines stay in the log).
    fn brought_up<'a>(
        &'a self,
        smmu: &'a SmmuV3<&'a GuestMemoryMmap>,
    ) -> GuestDriver<'a, &'a GuestMemoryMmap, GuestMemoryMmap> {
        let mut drv = GuestDriver::new(smmu, &self.ram, RAM, RAM_SIZE, DriverOptions::default());
        drv.probe().unwrap();
        drv.reset().unwrap();
        drv
    }

    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// What a translation gave: output address, contiguous length and permissions, or the fault.
type Dma = Result<(u64, u64, Perms), &'static str>;

/// Translate `req` once, log it as a `DMA` line and return the outcome.
fn dma(rig: &Rig, smmu: &SmmuV3<&GuestMemoryMmap>, req: DmaRequest) -> Dma {
    match smmu.translate(&req) {
        Ok(m) => {
            rig.note(format!(
                "DMA  SID={:#x} {:?} {:#x} -> {:#x} (len {:#x}, {})",
                req.stream.0, req.access, req.addr, m.output, m.len, m.perms
            ));
            Ok((m.output, m.len, m.perms))
        }
        Err(f) => {
            rig.note(format!(
                "DMA  SID={:#x} {:?} {:#x} -> fault {}",
                req.stream.0, req.access, req.addr, f.event
            ));
            Err(f.event.name())
        }
    }
}

/// A 64-bit register read as the two 32-bit halves a driver may use.
fn read64(drv: &GuestDriver<'_, &GuestMemoryMmap, GuestMemoryMmap>, off: u64) -> u64 {
    u64::from(drv.read32(off)) | u64::from(drv.read32(off + 4)) << 32
}

/// The event records between EVENTQ_CONS and EVENTQ_PROD, read without consuming them (so
/// without a traced EVENTQ_CONS write).
fn unread_events(drv: &GuestDriver<'_, &GuestMemoryMmap, GuestMemoryMmap>) -> Vec<[u64; 4]> {
    let base = QueueBase::from_bits(read64(drv, r::EVENTQ_BASE));
    let entries = 1u32 << base.log2size();
    let prod = QueueIndex::from_bits(drv.read32(r::EVENTQ_PROD_P1)).wrap_index();
    let mut cons = QueueIndex::from_bits(drv.read32(r::EVENTQ_CONS_P1)).wrap_index();
    let mut out = Vec::new();
    while cons != prod && out.len() < entries as usize {
        let at = base.addr() + 32 * u64::from(cons % entries);
        let mut rec = [0u64; 4];
        for (i, w) in rec.iter_mut().enumerate() {
            *w = viommu_common::mem::read_u64_le(drv.mem, at + 8 * i as u64).unwrap();
        }
        out.push(rec);
        cons = (cons + 1) % (2 * entries);
    }
    out
}

/// `(event, StreamID, SubstreamID if SSV, InputAddr)` of an event record.
fn event(rec: &[u64; 4]) -> (EventId, u32, Option<u32>, u64) {
    let e = EvtEntry::from_words(*rec);
    (
        e.w0.event_id(),
        e.w0.sid(),
        e.w0.ssv().then(|| e.w0.ssid()),
        e.w2.input_addr(),
    )
}

fn outcome(smmu: &SmmuV3<&GuestMemoryMmap>, req: DmaRequest) -> Result<u64, &'static str> {
    smmu.translate(&req)
        .map(|m| m.output)
        .map_err(|f| f.event.name())
}

/// The Linux driver's full bring-up (`arm_smmu_device_reset` in Linux
/// `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c`).
#[test]
fn snapshot_linux_bringup() {
    let rig = Rig::new();
    let smmu = rig.smmu(&SmmuConfig::default());
    let drv = rig.brought_up(&smmu);
    // The registers hold what the driver wrote (CR0ACK and IRQ_CTRLACK acknowledge it).
    assert_eq!(drv.read32(r::CR0), 0x0D, "CMDQEN | EVENTQEN | SMMUEN");
    assert_eq!(drv.read32(r::CR0ACK), 0x0D);
    assert_eq!(drv.read32(r::CR1), 0xD75);
    assert_eq!(drv.read32(r::CR2), 0x6);
    assert_eq!(read64(&drv, r::STRTAB_BASE), 0x4000_0000_4080_0000);
    assert_eq!(drv.read32(r::STRTAB_BASE_CFG), 0x0001_0210);
    assert_eq!(read64(&drv, r::CMDQ_BASE), 0x4000_0000_4000_0012);
    assert_eq!(read64(&drv, r::EVENTQ_BASE), 0x4000_0000_4040_0011);
    assert_eq!(drv.read32(r::IRQ_CTRL), 0x5, "GERROR_IRQEN | EVENTQ_IRQEN");
    assert_eq!(drv.read32(r::IRQ_CTRLACK), 0x5);
    assert_eq!(read64(&drv, r::EVENTQ_IRQ_CFG0), 0x0800_0040);
    assert_eq!(drv.read32(r::EVENTQ_IRQ_CFG1), 0x21);
    assert_eq!(drv.read32(r::EVENTQ_IRQ_CFG2), 0x1);
    assert_eq!(read64(&drv, r::GERROR_IRQ_CFG0), 0x0800_0040);
    assert_eq!(drv.read32(r::GERROR_IRQ_CFG1), 0x22);
    // Both CMD_SYNCs completed: CONS caught up with PROD, no error, no event.
    assert_eq!(drv.read32(r::CMDQ_PROD), 4);
    assert_eq!(drv.read32(r::CMDQ_CONS), 4);
    assert_eq!(drv.read32(r::GERROR), 0);
    assert_eq!(drv.read32(r::GERRORN), 0);
    assert_eq!(drv.read32(r::EVENTQ_PROD_P1), 0);
    let stats = smmu.stats();
    assert_eq!((stats.commands, stats.events), (4, 0));
    insta::assert_snapshot!("smmuv3_linux_bringup", rig.text());
}

/// Attaching a PCI device (RID 01:00.0 = SID 0x100) with PASID support: two-level CD table,
/// L1 CD descriptor + CFGI_CD leaf 0, CD 0, CD-table STE, io-pgtable mappings, DMA.
#[test]
fn snapshot_attach_pci_cd_table() {
    let rig = Rig::new();
    let smmu = rig.smmu(&SmmuConfig::default());
    let mut drv = rig.brought_up(&smmu);
    rig.clear();
    let sid = 0x100;
    let dom = drv.new_s1_domain(1);
    dom.pgtable.map_pages(
        &rig.ram,
        &mut drv.alloc,
        0x8000_0000,
        RAM + 0x0100_0000,
        0x2000,
        Prot::RW,
    );
    dom.pgtable.map(
        &rig.ram,
        &mut drv.alloc,
        0x4000_0000,
        RAM + 0x0200_0000,
        0x20_0000,
        Prot::RO,
    );
    drv.attach_s1_pasid(sid, &dom, 16).unwrap();
    // Pages and the 2 MiB block translate with their permissions; the rest faults.
    assert_eq!(
        dma(&rig, &smmu, DmaRequest::read(sid, 0x8000_0010, 4)),
        Ok((RAM + 0x0100_0010, 0xff0, Perms::RW))
    );
    assert_eq!(
        dma(&rig, &smmu, DmaRequest::write(sid, 0x8000_1ff8, 8)),
        Ok((RAM + 0x0100_1ff8, 0x8, Perms::RW))
    );
    assert_eq!(
        dma(&rig, &smmu, DmaRequest::read(sid, 0x4012_3456, 4)),
        Ok((RAM + 0x0212_3456, 0x4020_0000 - 0x4012_3456, Perms::R))
    );
    assert_eq!(
        dma(&rig, &smmu, DmaRequest::write(sid, 0x4012_3456, 4)),
        Err("F_PERMISSION")
    );
    assert_eq!(
        dma(&rig, &smmu, DmaRequest::read(sid, 0x9000_0000, 4)),
        Err("F_TRANSLATION")
    );
    // SSID 5 is in range of the CD table but its CD was never written (V = 0).
    assert_eq!(
        dma(
            &rig,
            &smmu,
            DmaRequest::read(sid, 0x8000_0010, 4).with_substream(5)
        ),
        Err("C_BAD_CD")
    );
    let ev = drv.read_events();
    rig.note(format!("driver read {} event records", ev.len()));
    let got: Vec<_> = ev.iter().map(event).collect();
    assert_eq!(
        got,
        [
            (EventId::F_PERMISSION, sid, None, 0x4012_3456),
            (EventId::F_TRANSLATION, sid, None, 0x9000_0000),
            (EventId::C_BAD_CD, sid, Some(5), 0),
        ]
    );
    insta::assert_snapshot!("smmuv3_attach_pci_cd_table", rig.text());
}

/// Hitless and breaking STE/CD transitions as `arm_smmu_write_entry` performs them: after every
/// CFGI + CMD_SYNC a DMA on the stream gives the old or the new outcome, never a third one.
#[test]
fn snapshot_hitless_transitions() {
    let rig = Rig::new();
    let smmu = rig.smmu(&SmmuConfig::default());
    let mut drv = rig.brought_up(&smmu);
    rig.clear();
    let sid = 0x20;
    let iova = 0x1000;
    let pa = RAM + 0x0300_0000;
    let dom = drv.new_s1_domain(3);
    dom.pgtable
        .map(&rig.ram, &mut drv.alloc, iova, pa, 0x1000, Prot::RW);
    let dom2 = drv.new_s1_domain(4);
    dom2.pgtable.map(
        &rig.ram,
        &mut drv.alloc,
        iova,
        pa + 0x1000,
        0x1000,
        Prot::RW,
    );
    let s2 = drv.new_s2_domain(2);
    s2.pgtable.map(
        &rig.ram,
        &mut drv.alloc,
        iova,
        pa + 0x2000,
        0x1000,
        Prot::RW,
    );
    let (cdtab, fmt, cdmax) = drv.cd_table(sid, 0);
    let cd = drv.s1_cd(&dom);
    drv.write_cd_steps(sid, 0, cd, &mut || {}).unwrap();

    let abort = drv.abort_ste();
    let bypass = drv.bypass_ste();
    let cdt = drv.cdtable_ste(cdtab, fmt, cdmax, 2);
    let cdt_bypass = drv.cdtable_ste(cdtab, fmt, cdmax, 1);
    let s2ste = drv.s2_ste(&s2);
    let other_ptr = drv.cdtable_ste(0x4B_4B4B_4B40, fmt, cdmax, 1);
    // Each step: the name, the target STE, and what the log shows: a breaking update or not,
    // the number of CMD_SYNCs, and the DMA outcome once the update is complete.
    let bypassed = Ok(iova);
    let via_s1 = Ok(pa);
    let via_s2 = Ok(pa + 0x2000);
    type Step<'a> = (&'a str, [u64; 8], bool, usize, Result<u64, &'static str>);
    let steps: Vec<Step<'_>> = vec![
        ("abort -> bypass", bypass, false, 1, bypassed),
        ("bypass -> abort", abort, false, 1, Err("STE_ABORT")),
        ("abort -> CD table (SSID0)", cdt, false, 2, via_s1),
        ("CD table -> bypass", bypass, false, 2, bypassed),
        ("bypass -> CD table", cdt, false, 2, via_s1),
        (
            "CD table SSID0 -> S1DSS=BYPASS",
            cdt_bypass,
            false,
            1,
            via_s1,
        ),
        ("S1DSS=BYPASS -> SSID0", cdt, false, 1, via_s1),
        (
            "S1 CD table -> S2 (VMID 2: breaking)",
            s2ste,
            true,
            3,
            via_s2,
        ),
        ("S2 -> S1 CD table", cdt, true, 3, via_s1),
        (
            "CD table -> CD table at another pointer (breaking)",
            other_ptr,
            true,
            3,
            Err("F_CD_FETCH"),
        ),
        ("back to CD table", cdt, true, 3, via_s1),
    ];
    let req = DmaRequest::read(sid, iova, 4);
    for (name, target, want_breaking, want_syncs, want_after) in steps {
        let before = outcome(&smmu, req);
        rig.note(format!("== {name}"));
        let mut seen = Vec::new();
        let smmu_ref = &smmu;
        drv.write_ste_steps(sid, target, &mut || seen.push(outcome(smmu_ref, req)))
            .unwrap();
        let after = outcome(&smmu, req);
        let breaking = drv.last_write_breaking;
        rig.note(format!(
            "   {} update in {} syncs",
            if breaking { "breaking" } else { "hitless" },
            seen.len()
        ));
        for (i, o) in seen.iter().enumerate() {
            rig.note(format!("   after sync {}: {:x?}", i + 1, o));
            // A breaking update's only intermediate is the V = 0 entry.
            let allowed_breaking = breaking && *o == Err("C_BAD_STE");
            assert!(
                *o == before || *o == after || allowed_breaking,
                "{name}: sync {} gave {o:?}, neither {before:?} nor {after:?}",
                i + 1
            );
        }
        assert_eq!(
            (breaking, seen.len(), after),
            (want_breaking, want_syncs, want_after),
            "{name}"
        );
    }
    // CD updates: ASID change only (hitless), another domain (ASID + TTB0: breaking), and
    // CD zero <-> S1 CD (breaking).
    let same_tables = S1Domain {
        asid: 4,
        pgtable: dom.pgtable.clone(),
    };
    let cd_asid4 = drv.s1_cd(&same_tables);
    let cd2 = drv.s1_cd(&dom2);
    // The ASID-4 translation cached before the switch to `dom2` stays valid until a TLBI for
    // ASID 4 (none is sent here), so the DMA after that switch still gives the old output.
    for (name, target, want_syncs, want_after) in [
        ("S1 CD ASID 3 -> 4, same tables", cd_asid4, 1, via_s1),
        ("S1 CD -> another domain (ASID and TTB0)", cd2, 1, via_s1),
        ("S1 CD -> zero", [0u64; 8], 2, Err("C_BAD_CD")),
        ("zero -> S1 CD", cd, 2, via_s1),
    ] {
        let before = outcome(&smmu, req);
        rig.note(format!("== {name}"));
        let mut seen = Vec::new();
        let smmu_ref = &smmu;
        drv.write_cd_steps(sid, 0, target, &mut || seen.push(outcome(smmu_ref, req)))
            .unwrap();
        let after = outcome(&smmu, req);
        let breaking = drv.last_write_breaking;
        rig.note(format!(
            "   {} update in {} syncs",
            if breaking { "breaking" } else { "hitless" },
            seen.len()
        ));
        for (i, o) in seen.iter().enumerate() {
            rig.note(format!("   after sync {}: {:x?}", i + 1, o));
            let allowed_breaking = breaking && *o == Err("C_BAD_CD");
            assert!(
                *o == before || *o == after || allowed_breaking,
                "{name}: {o:?}"
            );
        }
        assert_eq!(
            (breaking, seen.len(), after),
            (false, want_syncs, want_after),
            "{name}"
        );
    }
    insta::assert_snapshot!("smmuv3_hitless_transitions", rig.text());
}

/// Range invalidation batches as `__arm_smmu_tlb_inv_range` issues them (RIL and not).
#[test]
fn snapshot_range_invalidation() {
    let rig = Rig::new();
    for ril in [true, false] {
        let cfg = SmmuConfig {
            range_invalidation: ril,
            ..SmmuConfig::default()
        };
        let smmu = rig.smmu(&cfg);
        let mut drv = rig.brought_up(&smmu);
        rig.clear();
        rig.note(format!("##### IDR3.RIL = {}", u8::from(ril)));
        let dom = drv.new_s1_domain(5);
        let base = 0x1000_0000;
        dom.pgtable.map_pages(
            &rig.ram,
            &mut drv.alloc,
            base,
            RAM + 0x0100_0000,
            64 * 0x1000,
            Prot::RW,
        );
        drv.attach_s1(0x8, &dom).unwrap();
        rig.clear();
        rig.note(format!("##### IDR3.RIL = {}", u8::from(ril)));
        let page = |p: u64| Ok((RAM + 0x0100_0000 + p * 0x1000, 0x1000, Perms::RW));
        for p in [0u64, 5, 36, 40] {
            let got = dma(&rig, &smmu, DmaRequest::read(0x8, base + p * 0x1000, 4));
            assert_eq!(got, page(p), "page {p} before the unmap");
        }
        rig.note("== unmap 37 pages at 0x10000000".into());
        let prod_before = drv.read32(r::CMDQ_PROD);
        drv.unmap_s1(&dom, base, 37 * 0x1000).unwrap();
        // With RIL two range commands cover the 37 pages; without it one command per page.
        // Either way one CMD_SYNC follows and CONS catches up.
        let issued = drv.read32(r::CMDQ_PROD).wrapping_sub(prod_before);
        assert_eq!(issued, if ril { 2 + 1 } else { 37 + 1 });
        assert_eq!(drv.read32(r::CMDQ_CONS), drv.read32(r::CMDQ_PROD));
        // Pages 0..=36 are gone (the IOTLB may not keep any of them), page 40 stays.
        for p in [0u64, 5, 36, 40] {
            let got = dma(&rig, &smmu, DmaRequest::read(0x8, base + p * 0x1000, 4));
            let want = if p < 37 {
                Err("F_TRANSLATION")
            } else {
                page(p)
            };
            assert_eq!(got, want, "page {p} after the unmap");
        }
        let faults: Vec<_> = unread_events(&drv).iter().map(event).collect();
        assert_eq!(
            faults,
            [0u64, 5, 36].map(|p| (EventId::F_TRANSLATION, 0x8, None, base + p * 0x1000))
        );
        if ril {
            rig.note("== 8 pages at v, ASID 1; three 2 MiB blocks; non-leaf 33 pages".into());
            let mut cmds =
                cmd::tlbi_range_cmds(0x12, 0, 1, 0x2000_0000, 8 * 0x1000, 0x1000, true, true);
            cmds.extend(cmd::tlbi_range_cmds(
                0x12,
                0,
                5,
                0x4000_0000,
                3 << 21,
                1 << 21,
                true,
                true,
            ));
            cmds.extend(cmd::tlbi_range_cmds(
                0x12,
                0,
                5,
                0x5000_0000,
                33 * 0x1000,
                0x1000,
                false,
                true,
            ));
            assert_eq!(cmds.len(), 3, "one range command each");
            drv.issue_sync(&cmds).unwrap();
            assert_eq!(drv.read32(r::CMDQ_CONS), drv.read32(r::CMDQ_PROD));
        }
        insta::assert_snapshot!(
            if ril {
                "smmuv3_range_invalidation_ril"
            } else {
                "smmuv3_range_invalidation_no_ril"
            },
            rig.text()
        );
    }
}

/// Every command error: CONS stops at the failing command with CMDQ_CONS.ERR, GERROR.CMDQ_ERR
/// toggles and interrupts, nothing is consumed until GERRORN, then the (fixed) entry at CONS is
/// re-fetched.
#[test]
fn snapshot_command_errors() {
    let rig = Rig::new();
    let smmu = rig.smmu(&SmmuConfig::default());
    let mut drv = rig.brought_up(&smmu);
    rig.clear();
    let bad: Vec<(&str, cmd::Cmd)> = vec![
        ("unknown opcode 0x07 (not CFGI_ALL)", [0x07, 0]),
        ("CMD_SYNC CS=0b11", [0x3046, 0]),
        ("CFGI_STE with SSec=1", [0x03 | 1 << 10 | 0x10 << 32, 1]),
        ("TLBI_EL2_ALL without IDR0.HYP", [0x20, 0]),
        ("TLBI_EL3_ALL", [0x18, 0]),
        ("ATC_INV without IDR0.ATS", cmd::atc_inv(0x10, None, 0, 52)),
        ("PRI_RESP without IDR0.PRI", cmd::pri_resp(0x10, 1, 0)),
        ("RESUME without stalls", cmd::resume(0x10, 1, 1)),
    ];
    let cmdq_base = QueueBase::from_bits(read64(&drv, r::CMDQ_BASE));
    let cmdq_entries = 1u32 << cmdq_base.log2size();
    let slot = |pos: u32| cmdq_base.addr() + 16 * u64::from(pos % cmdq_entries);
    let cmdq_err = Gerror::new().with_cmdq_err(true).into_bits();
    for (name, c) in bad {
        rig.note(format!("== {name}"));
        let prod_before = drv.read32(r::CMDQ_PROD);
        let gerror_before = drv.read32(r::GERROR);
        // A good command, the bad one, a good one: the SYNC completes only after the
        // driver's GERROR handler rewrote the bad slot.
        drv.issue_sync(&[cmd::cfgi_ste(0x10), c, cmd::tlbi_nh_asid(0, 1)])
            .unwrap();
        // CMDQ_ERR toggled once and was acknowledged; CONS passed everything without an ERR.
        let gerror = drv.read32(r::GERROR);
        assert_eq!(
            gerror ^ gerror_before,
            cmdq_err,
            "{name}: GERROR.CMDQ_ERR toggled"
        );
        assert_eq!(drv.read32(r::GERRORN), gerror, "{name}: acknowledged");
        let cons = CmdqCons::from_bits(drv.read32(r::CMDQ_CONS));
        assert_eq!(cons.err(), CmdqErr::CERROR_NONE, "{name}");
        assert_eq!(cons.wrap_index(), drv.read32(r::CMDQ_PROD), "{name}");
        // The driver rewrites the slot as a CMD_SYNC only for CERROR_ILL.
        let bad_slot = slot(prod_before + 1);
        let w0 = viommu_common::mem::read_u64_le(&rig.ram, bad_slot).unwrap();
        assert_eq!(
            w0,
            cmd::sync_sev()[0],
            "{name}: slot rewritten after CERROR_ILL"
        );
    }
    rig.note("== CERROR_ABT: command queue outside guest RAM".into());
    drv.disable().unwrap();
    drv.write64(r::CMDQ_BASE, 0x1_0000_0000 | 8);
    drv.write32(r::CMDQ_PROD, 0);
    drv.write32(r::CMDQ_CONS, 0);
    drv.write32(r::CR0, 0x8);
    drv.write32(r::CMDQ_PROD, 1);
    let gerror = drv.read32(r::GERROR);
    let cons = drv.read32(r::CMDQ_CONS);
    rig.note(format!("GERROR={gerror:#x} CMDQ_CONS={cons:#x}"));
    // The fetch of entry 0 aborted: CONS stays at 0 with ERR = CERROR_ABT, CMDQ_ERR active.
    assert!(Gerror::from_bits(gerror ^ drv.read32(r::GERRORN)).cmdq_err());
    let cons = CmdqCons::from_bits(cons);
    assert_eq!((cons.err(), cons.wrap_index()), (CmdqErr::CERROR_ABT, 0));
    insta::assert_snapshot!("smmuv3_command_errors", rig.text());
}
