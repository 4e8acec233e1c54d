//! The VMM: command line, VM and vCPU creation, loading, the vCPU loop and statistics.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, kvm_regs,
    kvm_userspace_memory_region, kvm_vcpu_init, user_pt_regs, KVM_ARM_VCPU_PSCI_0_2,
    KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
    KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64, KVM_SYSTEM_EVENT_RESET,
    KVM_SYSTEM_EVENT_SHUTDOWN, KVM_VGIC_V3_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use linux_loader::loader::{pe::PE, KernelLoader};
use viommu_common::id::StreamId;
use viommu_common::kvm::arm::ArmIrqLine;
use viommu_common::kvm::KvmInterruptSink;
use viommu_common::traits::MmioDevice;
use viommu_common::vmm::EndpointIommu;
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::{lines, SmmuV3};
use viommu_smmuv3::fdt::SMMU_REG_SIZE;
use viommu_smmuv3::trace::TraceRecord;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, IommuMemory};

use crate::block::Block;
use crate::fdt::{self, FdtConfig};
use crate::layout::*;
use crate::serial::{Console, SpiTrigger};
use crate::virtio_mmio::VirtioMmio;

/// Guest RAM as the SMMU sees it (its table walks and queue accesses are untranslated).
type Ram = Arc<GuestMemoryMmap<()>>;
/// Our SMMUv3 over that RAM.
type Smmu = SmmuV3<Ram>;
/// The block device's view of memory: every access translated by the SMMU for its StreamID.
type DmaMemory = IommuMemory<GuestMemoryMmap<()>, EndpointIommu<Smmu>>;

/// Boots an arm64 Linux guest under KVM with viommu's SMMUv3 in front of a virtio-mmio disk.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The arm64 kernel `Image`.
    #[arg(long, required_unless_present = "exit_bench")]
    kernel: Option<PathBuf>,
    /// An initramfs (cpio, possibly compressed) for the kernel.
    #[arg(long)]
    initramfs: Option<PathBuf>,
    /// The virtio-blk disk image (read and written in place).
    #[arg(long, required_unless_present = "exit_bench")]
    disk: Option<PathBuf>,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 256)]
    mem_mib: u64,
    /// Appended to the kernel command line (`console=ttyS0` and the like come first).
    #[arg(long, default_value = "")]
    cmdline: String,
    /// The same guest without the SMMU: no SMMU node, the disk's DMA is untranslated.
    #[arg(long)]
    no_iommu: bool,
    /// Test hook: leave the disk out of the device tree's SMMU mapping (no `iommus`) while its
    /// DMA still goes through the SMMU. Linux then never configures the disk's StreamID, so
    /// every access faults (C_BAD_STREAMID or an aborting STE) and the driver must report it.
    #[arg(long)]
    unmapped_disk: bool,
    /// Give up (and print statistics) after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Measure the MMIO exit round trip with this many exits of a tiny guest, then exit.
    #[arg(long)]
    exit_bench: Option<u32>,
}

/// Counters the vCPU loop keeps.
#[derive(Default)]
struct ExitStats {
    exits: AtomicU64,
    mmio: AtomicU64,
    mmio_smmu: AtomicU64,
    mmio_virtio: AtomicU64,
    mmio_uart: AtomicU64,
    mmio_unclaimed: AtomicU64,
    handler_ns: AtomicU64,
}

/// Commands, events and interrupts by name, from the SMMU's trace hook.
#[derive(Default)]
struct SmmuActivity {
    commands: BTreeMap<String, u64>,
    events: BTreeMap<String, u64>,
    irqs: BTreeMap<String, u64>,
    command_errors: u64,
}

fn first_word(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '{' || c == '(')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// The devices on the MMIO bus.
struct Bus {
    console: Console,
    smmu: Option<Arc<Smmu>>,
    blk: VirtioMmio<DmaMemory>,
}

impl Bus {
    fn read(&mut self, addr: u64, data: &mut [u8], stats: &ExitStats) {
        match addr {
            UART..UART_END => {
                stats.mmio_uart.fetch_add(1, Ordering::Relaxed);
                self.console.read(addr - UART, data)
            }
            SMMU..SMMU_END if self.smmu.is_some() => {
                stats.mmio_smmu.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = &self.smmu {
                    if s.mmio_read(addr - SMMU, data).is_err() {
                        data.fill(0);
                    }
                }
            }
            VIRTIO_BLK..VIRTIO_BLK_END => {
                stats.mmio_virtio.fetch_add(1, Ordering::Relaxed);
                self.blk.read(addr - VIRTIO_BLK, data)
            }
            _ => {
                stats.mmio_unclaimed.fetch_add(1, Ordering::Relaxed);
                data.fill(0)
            }
        }
    }

    fn write(&mut self, addr: u64, data: &[u8], stats: &ExitStats) {
        match addr {
            UART..UART_END => {
                stats.mmio_uart.fetch_add(1, Ordering::Relaxed);
                self.console.write(addr - UART, data)
            }
            SMMU..SMMU_END if self.smmu.is_some() => {
                stats.mmio_smmu.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = &self.smmu {
                    let _ = s.mmio_write(addr - SMMU, data);
                }
            }
            VIRTIO_BLK..VIRTIO_BLK_END => {
                stats.mmio_virtio.fetch_add(1, Ordering::Relaxed);
                self.blk.write(addr - VIRTIO_BLK, data)
            }
            _ => {
                stats.mmio_unclaimed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The entry point on aarch64 Linux.
pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("arm64_vmm: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn ctx<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Result<T, Error> {
    r.map_err(|e| format!("{what}: {e}").into())
}

/// The KVM register ID of a core register at byte `offset` of `struct kvm_regs`.
fn core_reg(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | (offset / 4) as u64
}

fn set_core_reg(vcpu: &VcpuFd, offset: usize, value: u64) -> Result<(), Error> {
    ctx(
        vcpu.set_one_reg(core_reg(offset), &value.to_le_bytes()),
        "KVM_SET_ONE_REG",
    )?;
    Ok(())
}

fn pc_offset() -> usize {
    std::mem::offset_of!(kvm_regs, regs) + std::mem::offset_of!(user_pt_regs, pc)
}

/// Guest RAM at `RAM_START`, registered with KVM as slot 0.
fn guest_ram(vm: &VmFd, size: u64) -> Result<Ram, Error> {
    let ram = ctx(
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(RAM_START), size as usize)]),
        "guest RAM",
    )?;
    let host = ctx(
        ram.get_host_address(GuestAddress(RAM_START)),
        "guest RAM address",
    )?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: RAM_START,
        memory_size: size,
        userspace_addr: host as u64,
    };
    // SAFETY: the region is a live, exclusively owned mmap of `size` bytes (`ram`); callers
    // keep `ram` alive until the vCPU loop has returned, and KVM touches the mapping only
    // inside KVM_RUN.
    let set = unsafe { vm.set_user_memory_region(region) };
    ctx(set, "KVM_SET_USER_MEMORY_REGION")?;
    Ok(Arc::new(ram))
}

/// The in-kernel vGICv3: distributor and redistributor frames; initialised after the vCPUs.
fn create_vgic(vm: &VmFd) -> Result<kvm_ioctls::DeviceFd, Error> {
    let mut dev = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = ctx(vm.create_device(&mut dev), "KVM_CREATE_DEVICE (vGICv3)")?;
    for (attr, addr) in [
        (KVM_VGIC_V3_ADDR_TYPE_DIST, GIC_DIST),
        (KVM_VGIC_V3_ADDR_TYPE_REDIST, GIC_REDIST),
    ] {
        let a = kvm_device_attr {
            group: KVM_DEV_ARM_VGIC_GRP_ADDR,
            attr: u64::from(attr),
            addr: &addr as *const u64 as u64,
            flags: 0,
        };
        ctx(gic.set_device_attr(&a), "vGIC address")?;
    }
    Ok(gic)
}

fn vgic_init(gic: &kvm_ioctls::DeviceFd) -> Result<(), Error> {
    let init = kvm_device_attr {
        group: KVM_DEV_ARM_VGIC_GRP_CTRL,
        attr: u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
        addr: 0,
        flags: 0,
    };
    ctx(gic.set_device_attr(&init), "vGIC CTRL_INIT")
}

/// vCPU 0 with the preferred target and PSCI 0.2 (the guest powers off through PSCI).
fn create_vcpu(vm: &VmFd) -> Result<VcpuFd, Error> {
    let vcpu = ctx(vm.create_vcpu(0), "KVM_CREATE_VCPU")?;
    let mut init = kvm_vcpu_init::default();
    ctx(
        vm.get_preferred_target(&mut init),
        "KVM_ARM_PREFERRED_TARGET",
    )?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    ctx(vcpu.vcpu_init(&init), "KVM_ARM_VCPU_INIT")?;
    Ok(vcpu)
}

fn run(args: Args) -> Result<ExitCode, Error> {
    let kvm = ctx(Kvm::new(), "opening /dev/kvm")?;
    if let Some(n) = args.exit_bench {
        return exit_bench(&kvm, n);
    }
    let t0 = Instant::now();
    let vm = Arc::new(ctx(kvm.create_vm(), "KVM_CREATE_VM")?);
    let mem_size = args.mem_mib.clamp(64, 4096) << 20;
    let ram = guest_ram(&vm, mem_size)?;
    let gic = create_vgic(&vm)?;
    let vcpu = create_vcpu(&vm)?;
    vgic_init(&gic)?;

    // The kernel at the start of RAM (2 MiB aligned, text_offset from the Image header).
    let kernel_path = args.kernel.as_deref().ok_or("--kernel is required")?;
    let mut kernel = ctx(File::open(kernel_path), "opening the kernel")?;
    let loaded = ctx(
        PE::load(
            ram.as_ref(),
            Some(GuestAddress(RAM_START)),
            &mut kernel,
            None,
        ),
        "loading the kernel Image",
    )?;
    let entry = loaded.kernel_load.0;

    // The DTB in the last 2 MiB of RAM, the initramfs page-aligned below it.
    let dtb_addr = RAM_START + mem_size - DTB_SIZE_MAX;
    let initrd = match &args.initramfs {
        Some(path) => {
            let data = ctx(std::fs::read(path), "reading the initramfs")?;
            let start = (dtb_addr - data.len() as u64) & !0xfff;
            if start < loaded.kernel_end + 0x100_0000 {
                return Err("the initramfs does not fit in guest RAM; raise --mem-mib".into());
            }
            ctx(
                ram.write_slice(&data, GuestAddress(start)),
                "writing the initramfs",
            )?;
            Some((start, start + data.len() as u64))
        }
        None => None,
    };
    let smmu_on = !args.no_iommu;
    let cmdline = format!(
        "console=ttyS0 earlycon=uart8250,mmio,{UART:#x} {}",
        args.cmdline
    );
    let dtb = fdt::build(&FdtConfig {
        mem_size,
        cmdline: cmdline.trim(),
        initrd,
        smmu: smmu_on,
        blk_iommus: !args.unmapped_disk,
    })?;
    ctx(
        ram.write_slice(&dtb, GuestAddress(dtb_addr)),
        "writing the DTB",
    )?;

    // Our SMMUv3: DMA to guest RAM, its four wired lines as SPIs 74..77 by KVM_IRQ_LINE.
    let mut sink = KvmInterruptSink::new(vm.clone());
    for line in [lines::EVENTQ, lines::PRIQ, lines::CMD_SYNC, lines::GERROR] {
        let irq = ArmIrqLine::spi(SMMU_SPI_BASE + line).ok_or("SMMU SPI out of range")?;
        ctx(
            sink.wire_irq_line(line, irq.into_bits()),
            "wiring the SMMU's SPIs",
        )?;
    }
    let sink = Arc::new(sink);
    let smmu = Arc::new(ctx(
        SmmuV3::new(&SmmuConfig::default(), ram.clone(), sink.clone()),
        "SMMUv3 configuration",
    )?);
    if smmu.mmio_size() != SMMU_REG_SIZE || SMMU_END - SMMU != SMMU_REG_SIZE {
        return Err("the SMMU's register window does not match the layout".into());
    }
    let activity = Arc::new(Mutex::new(SmmuActivity::default()));
    let act = activity.clone();
    smmu.set_tracer(Some(Arc::new(move |rec: &TraceRecord| {
        let mut a = act.lock().unwrap_or_else(|e| e.into_inner());
        match rec {
            TraceRecord::Command { command, .. } => {
                *a.commands.entry(command.name().to_owned()).or_default() += 1
            }
            TraceRecord::CommandError { .. } => a.command_errors += 1,
            TraceRecord::Event { event, .. } | TraceRecord::EventDropped { event, .. } => {
                *a.events.entry(first_word(event)).or_default() += 1
            }
            TraceRecord::Irq { signal, .. } => {
                *a.irqs.entry(format!("{signal:?}")).or_default() += 1
            }
            _ => {}
        }
    })));

    // The disk: its DMA through the SMMU as StreamID VIRTIO_BLK_SID (or untranslated).
    let disk = ctx(
        File::options()
            .read(true)
            .write(true)
            .open(args.disk.as_deref().ok_or("--disk is required")?),
        "opening the disk image",
    )?;
    let endpoint = EndpointIommu::new(smmu.clone(), StreamId(VIRTIO_BLK_SID), None);
    let dma = IommuMemory::new(ram.as_ref().clone(), endpoint, smmu_on, ());
    let blk = VirtioMmio::new(
        ctx(Block::new(disk), "disk image")?,
        dma,
        SpiTrigger::new(vm.clone(), VIRTIO_BLK_SPI),
    );
    let mut bus = Bus {
        console: Console::new(SpiTrigger::new(vm.clone(), UART_SPI)),
        smmu: smmu_on.then(|| smmu.clone()),
        blk,
    };

    // Registers at reset (Linux arm64 booting.rst): x0 = DTB, PC = Image entry, EL1h with
    // DAIF masked. Set before the first KVM_RUN only: after an MMIO exit the next KVM_RUN
    // completes the access and advances PC itself.
    set_core_reg(&vcpu, std::mem::offset_of!(kvm_regs, regs), dtb_addr)?;
    set_core_reg(&vcpu, pc_offset(), entry)?;
    let pstate = std::mem::offset_of!(kvm_regs, regs) + std::mem::offset_of!(user_pt_regs, pstate);
    set_core_reg(&vcpu, pstate, 0x3c5)?;

    let stats = Arc::new(ExitStats::default());
    let report = {
        let (stats, smmu, activity, sink) =
            (stats.clone(), smmu.clone(), activity.clone(), sink.clone());
        move |why: &str, bus_stats: Option<String>| {
            print_stats(
                why,
                t0,
                &stats,
                smmu_on.then_some(&*smmu),
                &activity,
                bus_stats,
            );
            let s = sink.stats();
            println!("VMM-STATS irq-sink {s:?}");
            let _ = std::io::stdout().flush();
        }
    };
    let watchdog_report = report.clone();
    let timeout = Duration::from_secs(args.timeout);
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        println!();
        watchdog_report("timeout", None);
        std::process::exit(3);
    });

    println!(
        "VMM-BOOT kernel at {entry:#x}, dtb at {dtb_addr:#x}, smmu {}",
        if smmu_on { "on" } else { "off" }
    );
    let why = vcpu_loop(vcpu, &mut bus, &stats)?;
    bus.console.flush();
    let b = bus.blk.device().stats;
    let blk = format!(
        "VMM-STATS virtio-blk requests={} read_bytes={} written_bytes={} errors={} dma_faults={} interrupts={} broken={}",
        b.requests, b.read_bytes, b.written_bytes, b.errors, b.dma_faults, bus.blk.interrupts,
        bus.blk.broken.as_deref().unwrap_or("no")
    );
    report(&why, Some(blk));
    Ok(ExitCode::SUCCESS)
}

fn vcpu_loop(mut vcpu: VcpuFd, bus: &mut Bus, stats: &ExitStats) -> Result<String, Error> {
    loop {
        let exit = ctx(vcpu.run(), "KVM_RUN")?;
        stats.exits.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        match exit {
            VcpuExit::MmioRead(addr, data) => {
                stats.mmio.fetch_add(1, Ordering::Relaxed);
                bus.read(addr, data, stats);
            }
            VcpuExit::MmioWrite(addr, data) => {
                stats.mmio.fetch_add(1, Ordering::Relaxed);
                bus.write(addr, data, stats);
            }
            VcpuExit::SystemEvent(kind, _) => {
                return Ok(match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => "guest powered off (PSCI SYSTEM_OFF)".into(),
                    KVM_SYSTEM_EVENT_RESET => "guest reset (PSCI SYSTEM_RESET)".into(),
                    k => format!("system event {k}"),
                });
            }
            VcpuExit::Hlt | VcpuExit::Shutdown => return Ok("vCPU stopped".into()),
            other => return Err(format!("unexpected vCPU exit: {other:?}").into()),
        }
        stats
            .handler_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

fn print_stats(
    why: &str,
    t0: Instant,
    s: &ExitStats,
    smmu: Option<&Smmu>,
    activity: &Mutex<SmmuActivity>,
    blk: Option<String>,
) {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "VMM-STATS exit: {why} after {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    println!(
        "VMM-STATS exits total={} mmio={} smmu={} virtio={} uart={} unclaimed={} handler_us_per_mmio={:.1}",
        l(&s.exits),
        l(&s.mmio),
        l(&s.mmio_smmu),
        l(&s.mmio_virtio),
        l(&s.mmio_uart),
        l(&s.mmio_unclaimed),
        l(&s.handler_ns) as f64 / 1000.0 / l(&s.mmio).max(1) as f64
    );
    if let Some(b) = blk {
        println!("{b}");
    }
    let Some(smmu) = smmu else {
        println!("VMM-STATS smmu absent");
        return;
    };
    let d = smmu.stats();
    println!(
        "VMM-STATS smmu translations={} faults={} events={} events_dropped={} commands={} iotlb_hits={} iotlb_misses={} iotlb_inserts={} iotlb_invalidations={}",
        d.translations, d.faults, d.events, d.events_dropped, d.commands, d.iotlb.hits,
        d.iotlb.misses, d.iotlb.inserts, d.iotlb.invalidations
    );
    let a = activity.lock().unwrap_or_else(|e| e.into_inner());
    let join = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "VMM-STATS smmu-commands {} errors={}",
        join(&a.commands),
        a.command_errors
    );
    println!("VMM-STATS smmu-events {}", join(&a.events));
    println!("VMM-STATS smmu-irqs {}", join(&a.irqs));
}

/// Time MMIO exits of a guest that loads from an unbacked address in a loop.
fn exit_bench(kvm: &Kvm, n: u32) -> Result<ExitCode, Error> {
    let vm = ctx(kvm.create_vm(), "KVM_CREATE_VM")?;
    let ram = guest_ram(&vm, 0x10_0000)?;
    // movz x1, #0x0900, lsl #16 (the UART's address, unbacked here); ldr w2, [x1]; b .-4
    let code: [u32; 3] = [0xd2a1_2001, 0xb940_0022, 0x17ff_ffff];
    for (i, insn) in code.iter().enumerate() {
        ctx(
            ram.write_obj(*insn, GuestAddress(RAM_START + 4 * i as u64)),
            "writing code",
        )?;
    }
    let mut vcpu = create_vcpu(&vm)?;
    set_core_reg(&vcpu, pc_offset(), RAM_START)?;
    let n = n.max(1);
    let t = Instant::now();
    for _ in 0..n {
        match ctx(vcpu.run(), "KVM_RUN")? {
            VcpuExit::MmioRead(_, data) => data.fill(0),
            other => return Err(format!("unexpected exit in the bench: {other:?}").into()),
        }
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("VMM-EXIT-BENCH exits={n} us_per_exit={us:.1}");
    let _ = ram.last_addr();
    Ok(ExitCode::SUCCESS)
}
