//! The scenarios (see `main.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use viommu_common::mem::{read_bytes, write_bytes, write_u64_le};
use viommu_common::StreamId;
use viommu_smmuv3::spec::cd::{Cd, CdW0};
use viommu_smmuv3::spec::cmd::CmdEntry;
use viommu_smmuv3::spec::evt::EventId;
use viommu_smmuv3::spec::{Cacheability, Shareability};
use viommu_sva::iommufd::{IommufdContext, IommufdEventQueue, IommufdViommu, MappedRam, VfioPort};
use viommu_sva::pasid::{PasidBinder, Stage1Table};
use viommu_sva::spec::cmd;
use viommu_sva::{
    canonicalise, clamp, AttachPort, Endpoint, Errno, EventItem, GuestProfile, HostEndpoint,
    HostEventSource, HostOp, HostViommu, InvalidateError, SteContext, StreamConfig, ViommuError,
};

const RAM_BASE: u64 = 0x0100_0000;
const RAM_SIZE: usize = 4 << 20;
const SRC: u64 = 0x0110_0000;
const DST: u64 = 0x0111_0000;
const DST2: u64 = 0x0112_0000;
const PAGE_A: u64 = 0x0113_0000;
const PAGE_B: u64 = 0x0114_0000;
const VA_SRC: u64 = 0x0020_0000;
const VA_DST: u64 = 0x0030_0000;
const VA_UNMAPPED: u64 = 0x0040_0000;
const EDU_BUF: u64 = 0x4_0000;
const VSID_A: u32 = 0x42;
const VSID_B: u32 = 0x43;
const ASID_A: u16 = 1;
const ASID_B: u16 = 2;

type Ep = Endpoint<IommufdViommu, VfioPort>;

struct Report {
    failures: u32,
}

impl Report {
    fn check(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => println!("SVA-TEST {name} PASS"),
            Err(e) => {
                self.failures += 1;
                println!("SVA-TEST {name} FAIL: {e}");
            }
        }
    }
}

fn edu_devices() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let r = |f: &str| {
            std::fs::read_to_string(p.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        r("vendor") == "0x1234" && r("device") == "0x11e8"
    });
    v.sort();
    v
}

/// The `edu` DMA engine through its VFIO regions.
struct Edu<'a> {
    port: &'a VfioPort,
}

impl Edu<'_> {
    fn enable_bus_master(&self) {
        let dev = self.port.device();
        let mut cmd = [0u8; 2];
        dev.region_read(7, &mut cmd, 4);
        let v = u16::from_le_bytes(cmd) | 0x6;
        dev.region_write(7, &v.to_le_bytes(), 4);
    }

    fn w64(&self, off: u64, v: u64) {
        self.port.device().region_write(0, &v.to_le_bytes(), off);
    }

    fn r32(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.port.device().region_read(0, &mut b, off);
        u32::from_le_bytes(b)
    }

    /// Start a DMA: `to_ram` false reads `addr` into the device buffer, true writes it back.
    fn start(&self, addr: u64, len: u64, to_ram: bool) {
        let (src, dst) = if to_ram {
            (EDU_BUF, addr)
        } else {
            (addr, EDU_BUF)
        };
        self.w64(0x80, src);
        self.w64(0x88, dst);
        self.w64(0x90, len);
        self.port
            .device()
            .region_write(0, &(1u32 | (u32::from(to_ram) << 1)).to_le_bytes(), 0x98);
    }

    fn wait(&self) -> Result<(), String> {
        let t = Instant::now();
        while self.r32(0x98) & 1 != 0 {
            if t.elapsed() > Duration::from_secs(5) {
                return Err("edu DMA did not complete in 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn dma(&self, addr: u64, len: u64, to_ram: bool) -> Result<(), String> {
        self.start(addr, len, to_ram);
        self.wait()
    }

    /// Copy `len` bytes from IOVA `from` to IOVA `to` through the device buffer.
    fn copy(&self, from: u64, to: u64, len: u64) -> Result<(), String> {
        self.dma(from, len, false)?;
        self.dma(to, len, true)
    }
}

/// Stage-1 4K tables (T0SZ 25: levels 1–3) built in guest RAM from a bump allocator.
struct S1 {
    root: u64,
    next: u64,
}

const DESC_VALID_TABLE: u64 = 0b11;
// AF | SH=ISH | AP=01 (RW at EL0 and EL1) | nG | page
const S1_PAGE: u64 = 1 << 10 | 3 << 8 | 1 << 6 | 1 << 11 | 0b11;

impl S1 {
    fn new(ram: &MappedRam, pool: u64) -> Self {
        let _ = write_bytes(&ram.mem, pool, &[0u8; 4096]);
        Self {
            root: pool,
            next: pool + 4096,
        }
    }

    fn table(&mut self, ram: &MappedRam, at: u64) -> u64 {
        let mut b = [0u8; 8];
        let _ = read_bytes(&ram.mem, at, &mut b);
        let d = u64::from_le_bytes(b);
        if d & 3 == 3 {
            return d & 0x0000_FFFF_FFFF_F000;
        }
        let t = self.next;
        self.next += 4096;
        let _ = write_bytes(&ram.mem, t, &[0u8; 4096]);
        let _ = write_u64_le(&ram.mem, at, t | DESC_VALID_TABLE);
        t
    }

    fn map(&mut self, ram: &MappedRam, va: u64, ipa: u64) {
        let l2 = self.table(ram, self.root + 8 * ((va >> 30) & 511));
        let l3 = self.table(ram, l2 + 8 * ((va >> 21) & 511));
        let _ = write_u64_le(&ram.mem, l3 + 8 * ((va >> 12) & 511), ipa | S1_PAGE);
    }

    fn stage1(&self, asid: u16) -> (Stage1Table, u16) {
        (
            Stage1Table {
                ttb0: self.root,
                t0sz: 25,
                tg0: 0,
                ips: 2,
                mair: 0xff,
            },
            asid,
        )
    }
}

/// A guest-written CD (binding model a: the guest owns its CD table).
fn write_guest_cd(ram: &MappedRam, at: u64, s1: &S1, asid: u16) {
    let w0 = CdW0::new()
        .with_t0sz(25)
        .with_ir0(Cacheability::WBRA)
        .with_or0(Cacheability::WBRA)
        .with_sh0(Shareability::ISH)
        .with_epd1(true)
        .with_v(true)
        .with_ips(2)
        .with_aa64(true)
        .with_r(true)
        .with_a(true)
        .with_asid(asid);
    let ttb0 = Cd::default().with_ttb0(s1.root).w1.raw();
    let _ = write_u64_le(&ram.mem, at + 8, ttb0);
    let _ = write_u64_le(&ram.mem, at + 16, 0);
    let _ = write_u64_le(&ram.mem, at + 24, 0xff);
    let _ = write_u64_le(&ram.mem, at, w0.raw());
}

fn fill(ram: &MappedRam, at: u64, seed: u8, len: usize) -> Vec<u8> {
    let v: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let _ = write_bytes(&ram.mem, at, &v);
    v
}

fn read(ram: &MappedRam, at: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let _ = read_bytes(&ram.mem, at, &mut v);
    v
}

fn expect_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: bytes differ (got {:02x?}.., want {:02x?}..)",
            &got[..8.min(got.len())],
            &want[..8.min(want.len())]
        ))
    }
}

fn drain(q: &mut IommufdEventQueue, wait: Duration) -> Result<Vec<EventItem>, String> {
    let mut out = Vec::new();
    let t = Instant::now();
    loop {
        q.read_available(&mut out).map_err(|e| e.to_string())?;
        if t.elapsed() >= wait {
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run every scenario; the exit code is 1 if any failed.
pub fn run() -> i32 {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let forced = cmdline.contains("arm_smmu_v3.force_canwbs=1");
    let mut rep = Report { failures: 0 };
    match setup(forced, &mut rep) {
        Ok(()) => {}
        Err(e) => rep.check("setup", Err(e)),
    }
    println!("SVA-GUEST DONE failures={}", rep.failures);
    i32::from(rep.failures != 0)
}

fn setup(forced: bool, rep: &mut Report) -> Result<(), String> {
    let edus = edu_devices();
    if edus.len() < 2 {
        return Err(format!(
            "need 2 edu devices bound to vfio-pci, found {}",
            edus.len()
        ));
    }
    let ctx = IommufdContext::open().map_err(|e| e.to_string())?;
    let ram = MappedRam::new(&ctx, RAM_BASE, RAM_SIZE).map_err(|e| e.to_string())?;
    let pa = ctx.bind_device(&edus[0]).map_err(|e| e.to_string())?;
    let pb = ctx.bind_device(&edus[1]).map_err(|e| e.to_string())?;
    if !forced {
        // the same kernel without the CANWBS test parameter: VIOMMU_ALLOC must refuse, typed
        let r = ctx.create_viommu(pa.dev_id());
        rep.check(
            "viommu_alloc_without_canwbs_is_eopnotsupp",
            match r {
                Err(ViommuError::Host {
                    op: HostOp::ViommuAlloc,
                    errno: Errno::EOPNOTSUPP,
                }) => Ok(()),
                Err(e) => Err(format!("unexpected error: {e}")),
                Ok(_) => Err("vIOMMU allocated without CANWBS/S2FWB".into()),
            },
        );
        return Ok(());
    }
    let caps = ctx.hw_info(pa.dev_id()).map_err(|e| e.to_string())?;
    println!(
        "SVA-INFO hw_info idr {:08x?} iidr {:#x} aidr {:#x} max_pasid_log2 {} caps {:#x}",
        caps.raw.idr, caps.raw.iidr, caps.raw.aidr, caps.max_pasid_log2, caps.capabilities
    );
    let guest = clamp(&caps, &GuestProfile::default()).map_err(|e| e.to_string())?;
    println!(
        "SVA-INFO guest idr {:08x?} aidr {:#x}",
        guest.idr, guest.aidr
    );
    let sctx = SteContext::from_guest(&guest, false);
    let viommu = Arc::new(ctx.create_viommu(pa.dev_id()).map_err(|e| e.to_string())?);
    let mut q = viommu.alloc_event_queue(256).map_err(|e| e.to_string())?;
    let mut a = Endpoint::new(
        viommu.clone(),
        pa.clone(),
        StreamId(VSID_A),
        StreamConfig::Bypass,
    )
    .map_err(|e| e.to_string())?;
    let mut b = Endpoint::new(
        viommu.clone(),
        pb.clone(),
        StreamId(VSID_B),
        StreamConfig::Bypass,
    )
    .map_err(|e| e.to_string())?;
    let edu_a = Edu { port: &pa };
    let edu_b = Edu { port: &pb };
    edu_a.enable_bus_master();
    edu_b.enable_bus_master();

    rep.check("s2_only_dma_bypass_vste", s2_only(&ram, &edu_a));
    let mut s1a = S1::new(&ram, 0x0120_1000);
    rep.check(
        "nested_s1_s2_dma_guest_cd_table",
        nested(&ram, &viommu, &mut a, &edu_a, &mut s1a, &sctx),
    );
    rep.check(
        "remap_stale_until_tlbi_nh_va",
        stale_until_tlbi(&ram, &viommu, &edu_a, &mut s1a),
    );
    rep.check(
        "unmapped_iova_gives_f_translation_with_vsid",
        unmapped(&edu_a, &mut q),
    );
    rep.check(
        "illegal_command_batch_reports_failing_index",
        illegal_batch(&viommu),
    );
    rep.check(
        "two_devices_isolated_by_vsid",
        isolation(&ram, &viommu, &mut a, &mut b, &edu_a, &edu_b, &mut q, &sctx),
    );
    rep.check(
        "replacements_during_dma_never_abort",
        replace_under_dma(&ram, &viommu, &mut a, &edu_a, &mut q),
    );
    rep.check(
        "per_pasid_binding_vmm_cd_table",
        per_pasid(&ram, &viommu, &mut b, &edu_b),
    );
    measure(&viommu);
    let q = match lost_events(&viommu, q, &mut a, &edu_a, &sctx) {
        Ok(q) => {
            rep.check("event_overflow_reports_exact_lost_count", Ok(()));
            Some(q)
        }
        Err((q, e)) => {
            rep.check("event_overflow_reports_exact_lost_count", Err(e));
            q
        }
    };
    let r = viommu_sva::teardown_all(q, vec![a, b], &*viommu).map_err(|e| e.to_string());
    let r = r.and_then(|()| ram.unmap(&ctx).map_err(|e| e.to_string()));
    rep.check("teardown_in_kernel_order", r);
    Ok(())
}

fn s2_only(ram: &MappedRam, edu: &Edu<'_>) -> Result<(), String> {
    let want = fill(ram, SRC, 1, 256);
    fill(ram, DST, 0, 256);
    edu.copy(SRC, DST, 256)?;
    expect_eq("bypass copy", &read(ram, DST, 256), &want)
}

fn nested(
    ram: &MappedRam,
    v: &IommufdViommu,
    a: &mut Ep,
    edu: &Edu<'_>,
    s1: &mut S1,
    sctx: &SteContext,
) -> Result<(), String> {
    s1.map(ram, VA_SRC, SRC);
    s1.map(ram, VA_DST, DST);
    let cd = 0x0120_0000;
    write_guest_cd(ram, cd, s1, ASID_A);
    // the guest's STE: V, Config=S1, S1ContextPtr=cd; w1 as Linux writes it (S1DSS, CIR/COR/CSH, SHCFG)
    let ste = [0xb | cd, 2 | 1 << 2 | 1 << 4 | 3 << 6 | 1 << 44];
    a.apply_guest_ste(ste, sctx).map_err(|e| e.to_string())?;
    v.invalidate(&[cmd::cfgi_cd_all(VSID_A), cmd::tlbi_nh_all()])
        .map_err(|e| e.to_string())?;
    let want = fill(ram, SRC, 2, 256);
    fill(ram, DST, 0, 256);
    edu.copy(VA_SRC, VA_DST, 256)?;
    expect_eq("nested copy", &read(ram, DST, 256), &want)
}

fn stale_until_tlbi(
    ram: &MappedRam,
    v: &IommufdViommu,
    edu: &Edu<'_>,
    s1: &mut S1,
) -> Result<(), String> {
    fill(ram, DST, 0, 256);
    fill(ram, DST2, 0, 256);
    s1.map(ram, VA_DST, DST2);
    let want = fill(ram, SRC, 3, 256);
    edu.copy(VA_SRC, VA_DST, 256)?;
    if read(ram, DST, 256) != want || read(ram, DST2, 256) == want {
        return Err(
            "the remapped page was used before TLBI_NH_VA (no stale entry observed)".into(),
        );
    }
    v.invalidate(&[cmd::tlbi_nh_va(ASID_A, VA_DST, true)])
        .map_err(|e| e.to_string())?;
    let want = fill(ram, SRC, 4, 256);
    edu.copy(VA_SRC, VA_DST, 256)?;
    expect_eq("after TLBI_NH_VA", &read(ram, DST2, 256), &want)
}

fn unmapped(edu: &Edu<'_>, q: &mut IommufdEventQueue) -> Result<(), String> {
    let _ = drain(q, Duration::from_millis(0))?;
    edu.dma(VA_UNMAPPED, 16, false)?;
    let ev = drain(q, Duration::from_millis(300))?;
    let recs: Vec<_> = ev
        .iter()
        .filter_map(|i| {
            if let EventItem::Record(e) = i {
                Some(*e)
            } else {
                None
            }
        })
        .collect();
    println!(
        "SVA-INFO unmapped DMA produced {} records, {} items",
        recs.len(),
        ev.len()
    );
    let first = recs
        .first()
        .ok_or("no event for a DMA to an unmapped IOVA")?;
    if first.id() != EventId::F_TRANSLATION || first.vsid() != VSID_A {
        return Err(format!(
            "got {} vsid {:#x}",
            first.id().name().unwrap_or("UNKNOWN"),
            first.vsid()
        ));
    }
    if !(VA_UNMAPPED..VA_UNMAPPED + 16).contains(&first.input_addr()) {
        return Err(format!("input address {:#x}", first.input_addr()));
    }
    Ok(())
}

fn illegal_batch(v: &IommufdViommu) -> Result<(), String> {
    let batch = [
        cmd::tlbi_nh_va(ASID_A, VA_SRC, true),
        cmd::tlbi_nh_va(ASID_A, VA_DST, true),
        cmd::cfgi_cd_all(VSID_A),
        cmd::cfgi_ste(VSID_A, true),
        cmd::tlbi_nh_all(),
    ];
    match v.invalidate(&batch) {
        Err(InvalidateError::Rejected {
            index: 3,
            applied: 3,
            errno: Errno::EIO,
            ..
        }) => {}
        other => return Err(format!("CFGI_STE at 3: {other:?}")),
    }
    // an unknown vSID in CFGI_CD_ALL is refused at its own index
    match v.invalidate(&[cmd::tlbi_nh_all(), cmd::cfgi_cd_all(0x999)]) {
        Err(InvalidateError::Rejected {
            index: 1,
            errno: Errno::EIO,
            ..
        }) => Ok(()),
        other => Err(format!("unknown vSID at 1: {other:?}")),
    }
}

#[allow(clippy::too_many_arguments)]
fn isolation(
    ram: &MappedRam,
    v: &IommufdViommu,
    a: &mut Ep,
    b: &mut Ep,
    edu_a: &Edu<'_>,
    edu_b: &Edu<'_>,
    q: &mut IommufdEventQueue,
    sctx: &SteContext,
) -> Result<(), String> {
    // same VA, different pages per device; B has no mapping for VA_SRC
    let mut s1b = S1::new(ram, 0x0122_1000);
    s1b.map(ram, VA_DST, PAGE_B);
    s1b.map(ram, VA_DST + 0x1000, SRC);
    write_guest_cd(ram, 0x0122_0000, &s1b, ASID_B);
    b.apply_guest_ste([0xb | 0x0122_0000, 0], sctx)
        .map_err(|e| e.to_string())?;
    let mut s1a = S1::new(ram, 0x0121_1000);
    s1a.map(ram, VA_DST, PAGE_A);
    s1a.map(ram, VA_SRC, SRC);
    write_guest_cd(ram, 0x0121_0000, &s1a, ASID_A);
    a.apply_guest_ste([0xb | 0x0121_0000, 0], sctx)
        .map_err(|e| e.to_string())?;
    v.invalidate(&[
        cmd::cfgi_cd_all(VSID_A),
        cmd::cfgi_cd_all(VSID_B),
        cmd::tlbi_nh_all(),
    ])
    .map_err(|e| e.to_string())?;
    fill(ram, PAGE_A, 0, 128);
    fill(ram, PAGE_B, 0, 128);
    let want = fill(ram, SRC, 5, 128);
    edu_a.copy(VA_SRC, VA_DST, 128)?;
    edu_b.copy(VA_DST + 0x1000, VA_DST, 128)?;
    expect_eq("device A page", &read(ram, PAGE_A, 128), &want)?;
    expect_eq("device B page", &read(ram, PAGE_B, 128), &want)?;
    let _ = drain(q, Duration::from_millis(0))?;
    // B reading A's VA_SRC faults, and the event carries B's vSID
    edu_b.dma(VA_SRC, 4, false)?;
    let ev = drain(q, Duration::from_millis(300))?;
    let recs: Vec<_> = ev
        .iter()
        .filter_map(|i| {
            if let EventItem::Record(e) = i {
                Some(*e)
            } else {
                None
            }
        })
        .collect();
    match recs.first() {
        Some(e) if e.vsid() == VSID_B && e.id() == EventId::F_TRANSLATION => Ok(()),
        Some(e) => Err(format!(
            "event {} vsid {:#x}",
            e.id().name().unwrap_or("UNKNOWN"),
            e.vsid()
        )),
        None => Err("no event for device B's unmapped access".into()),
    }
}

fn replace_under_dma(
    ram: &MappedRam,
    v: &IommufdViommu,
    a: &mut Ep,
    edu: &Edu<'_>,
    q: &mut IommufdEventQueue,
) -> Result<(), String> {
    // two different stage-1 configurations, both identity-mapping SRC and DST (= the bypass view)
    let mut t1 = S1::new(ram, 0x0123_1000);
    let mut t2 = S1::new(ram, 0x0124_1000);
    for t in [&mut t1, &mut t2] {
        t.map(ram, SRC, SRC);
        t.map(ram, DST, DST);
    }
    write_guest_cd(ram, 0x0123_0000, &t1, 3);
    write_guest_cd(ram, 0x0124_0000, &t2, 4);
    let ctx = SteContext {
        oas_bits: 44,
        ssid_bits: 0,
        cd2l: false,
        ats: false,
    };
    let c1 = canonicalise([0xb | 0x0123_0000, 0], &ctx).map_err(|e| e.to_string())?;
    let c2 = canonicalise([0xb | 0x0124_0000, 0], &ctx).map_err(|e| e.to_string())?;
    let _ = drain(q, Duration::from_millis(0))?;
    let mut replaced = 0;
    for round in 0..8u8 {
        let want = fill(ram, SRC, 10 + round, 512);
        fill(ram, DST, 0, 512);
        edu.start(SRC, 512, false);
        for cfg in [StreamConfig::Bypass, c1, c2] {
            a.set_config(cfg).map_err(|e| e.to_string())?;
            replaced += 1;
        }
        edu.wait()?;
        a.set_config(StreamConfig::Bypass)
            .map_err(|e| e.to_string())?;
        edu.start(DST, 512, true);
        for cfg in [c1, c2, StreamConfig::Bypass] {
            a.set_config(cfg).map_err(|e| e.to_string())?;
            replaced += 1;
        }
        edu.wait()?;
        expect_eq(&format!("round {round}"), &read(ram, DST, 512), &want)?;
        v.invalidate(&[cmd::tlbi_nh_all()])
            .map_err(|e| e.to_string())?;
    }
    let ev = drain(q, Duration::from_millis(200))?;
    println!(
        "SVA-INFO {replaced} replacements during DMA, {} events",
        ev.len()
    );
    if ev.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} events during replacements: {:?}",
            ev.len(),
            ev.first()
        ))
    }
}

fn per_pasid(ram: &MappedRam, v: &IommufdViommu, b: &mut Ep, edu: &Edu<'_>) -> Result<(), String> {
    // binding model (b): the VMM composes the CD table (SSIDSIZE is 0 here: CD 0 only)
    let mut t = S1::new(ram, 0x0125_1000);
    t.map(ram, VA_SRC, SRC);
    t.map(ram, VA_DST, PAGE_B);
    let mut binder = PasidBinder::new(ram.mem.clone(), 0x0125_0000, 0, StreamId(VSID_B), 20)
        .map_err(|e| e.to_string())?;
    let (table, _) = t.stage1(20);
    let mut cmds = binder.bind_default(&table).map_err(|e| e.to_string())?;
    b.set_config(StreamConfig::Translate(binder.ste()))
        .map_err(|e| e.to_string())?;
    cmds.push(cmd::tlbi_nh_all());
    v.invalidate(&cmds).map_err(|e| e.to_string())?;
    let want = fill(ram, SRC, 6, 200);
    fill(ram, PAGE_B, 0, 200);
    edu.copy(VA_SRC, VA_DST, 200)?;
    expect_eq("per-PASID binding", &read(ram, PAGE_B, 200), &want)
}

/// Replace the vEVENTQ by one of depth 8, then make 64 faults (a 256-byte DMA in 4-byte pieces):
/// every event must be accounted for, delivered or reported lost.
#[allow(clippy::type_complexity)]
fn lost_events(
    v: &IommufdViommu,
    q: IommufdEventQueue,
    a: &mut Ep,
    edu: &Edu<'_>,
    sctx: &SteContext,
) -> Result<IommufdEventQueue, (Option<IommufdEventQueue>, String)> {
    q.close().map_err(|e| (None, e.to_string()))?;
    let mut q = v.alloc_event_queue(8).map_err(|e| (None, e.to_string()))?;
    if let Err(e) = a.apply_guest_ste([0xb | 0x0121_0000, 0], sctx) {
        return Err((Some(q), e.to_string()));
    }
    if let Err(e) = edu.dma(VA_UNMAPPED, 256, false) {
        return Err((Some(q), e));
    }
    let items = match drain(&mut q, Duration::from_millis(300)) {
        Ok(i) => i,
        Err(e) => return Err((Some(q), e)),
    };
    let records = items
        .iter()
        .filter(|i| matches!(i, EventItem::Record(_)))
        .count() as u32;
    let lost: u32 = items
        .iter()
        .map(|i| {
            if let EventItem::Lost { count } = i {
                *count
            } else {
                0
            }
        })
        .sum();
    println!("SVA-INFO depth-8 queue after 64 faults: {records} records, {lost} reported lost, items {:?}",
        items.iter().map(|i| match i { EventItem::Record(e) => format!("#{}", e.sequence), EventItem::Lost { count } => format!("lost{count}") }).collect::<Vec<_>>());
    if records > 8 || lost == 0 || records + lost != 64 {
        return Err((
            Some(q),
            format!("{records} records + {lost} lost != 64 faults"),
        ));
    }
    Ok(q)
}

fn measure(v: &IommufdViommu) {
    let cmds: Vec<CmdEntry> = (0..64u64)
        .map(|i| cmd::tlbi_nh_va(ASID_A, 0x1000_0000 + (i << 12), true))
        .collect();
    let rounds = 50;
    let mut best_batch = Duration::MAX;
    let mut best_single = Duration::MAX;
    let mut total_batch = Duration::ZERO;
    let mut total_single = Duration::ZERO;
    for _ in 0..rounds {
        let t = Instant::now();
        let ok = v.invalidate(&cmds).is_ok();
        let d = t.elapsed();
        if !ok {
            println!("SVA-MEASURE error: batch invalidation failed");
            return;
        }
        best_batch = best_batch.min(d);
        total_batch += d;
        let t = Instant::now();
        for c in &cmds {
            if v.invalidate(std::slice::from_ref(c)).is_err() {
                println!("SVA-MEASURE error: single invalidation failed");
                return;
            }
        }
        let d = t.elapsed();
        best_single = best_single.min(d);
        total_single += d;
    }
    println!(
        "SVA-MEASURE tlbi_nh_va_x64 one_batch_us mean={:.1} best={:.1} per_command_calls_us mean={:.1} best={:.1} ratio={:.1}",
        total_batch.as_secs_f64() * 1e6 / f64::from(rounds),
        best_batch.as_secs_f64() * 1e6,
        total_single.as_secs_f64() * 1e6 / f64::from(rounds),
        best_single.as_secs_f64() * 1e6,
        total_single.as_secs_f64() / total_batch.as_secs_f64().max(1e-9)
    );
}
