//! Interrupt sinks over KVM (feature `kvm`; Linux on x86_64 or aarch64): an emulated IOMMU's
//! wired interrupts and MSIs delivered into a VM's in-kernel interrupt controller.
//!
//! [`KvmInterruptSink`] implements [`InterruptSink`] for one device. The VMM tells it, per
//! device line, how the line reaches KVM, and how MSIs do:
//!
//! - a wired line, level or edge: `KVM_IRQ_LINE`, the kernel holding the level
//!   ([`KvmInterruptSink::wire_irq_line`]);
//! - a wired line, edge: an irqfd, an eventfd registered on a GSI with `KVM_IRQFD`
//!   ([`KvmInterruptSink::wire_irqfd`]);
//! - an MSI to any doorbell: `KVM_SIGNAL_MSI`, with the ITS DeviceID on arm64 (the default;
//!   [`KvmInterruptSink::msi_devid`]);
//! - an MSI with a known (address, data) pair: an MSI GSI route plus an irqfd on it
//!   ([`KvmInterruptSink::route_msi`], [`KvmInterruptSink::install_routing`]).
//!
//! `KVM_IRQ_LINE`'s `irq` is a GSI on x86 (an IOAPIC pin under the default routing) and an
//! [`arm::ArmIrqLine`] on arm64 (SPI *n* is `ArmIrqLine::spi(n)`). An irqfd's GSI on arm64 is
//! the SPI number under the vGIC's default routing (Linux `vgic_irqfd_set_irq` adds 32).
//!
//! # Level lines and irqfds
//! Writing an irqfd injects an edge: KVM asserts and deasserts the GSI. A line wired with
//! [`KvmInterruptSink::wire_irqfd`] is therefore edge-triggered: [`InterruptSink::pulse`] and a
//! rising [`InterruptSink::set_line`] each write the eventfd once; a falling edge sends nothing.
//! A level-sensitive line (PAMU's access-violation and error lines stay asserted until the
//! guest clears the cause) belongs on `KVM_IRQ_LINE`, where the in-kernel controller sees the
//! level itself and re-signals after EOI while it is high. A resamplefd would do the same over
//! an irqfd, but needs a thread watching it to re-assert; for a line driven from register
//! writes on the vCPU thread that buys nothing over one ioctl. The SMMUv3's lines are edge
//! (it only ever pulses them), so either mechanism suits it.
//!
//! # Failures
//! [`InterruptSink`] cannot fail, so a delivery KVM refuses (an errno, an unwired line) is
//! counted in [`KvmSinkStats`], as is an MSI that `KVM_SIGNAL_MSI` reports no vCPU accepted
//! (the guest had it masked or misprogrammed). Sends take no lock.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kvm_ioctls::Kvm;
//! use viommu_common::kvm::KvmInterruptSink;
//! use viommu_common::traits::InterruptSink;
//!
//! let kvm = Kvm::new()?;
//! let vm = Arc::new(kvm.create_vm()?);
//! vm.create_irq_chip()?;
//! let mut sink = KvmInterruptSink::new(vm.clone());
//! sink.wire_irq_line(0, 20)?       // device line 0 -> GSI 20 by KVM_IRQ_LINE
//!     .wire_irqfd(3, 21)?;        // device line 3 -> GSI 21 by irqfd
//! sink.route_msi(0xFEE0_0000, 0x22, 24)?;
//! sink.install_routing(&[])?;      // this VM routes nothing else
//! let sink = Arc::new(sink);
//! sink.pulse(3);
//! sink.send_msi(0xFEE0_0000, 0x21); // no route: KVM_SIGNAL_MSI
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arm;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use kvm_bindings::{
    kvm_irq_routing_entry, kvm_irq_routing_msi, kvm_irq_routing_msi__bindgen_ty_1, kvm_msi,
    KvmIrqRouting, KVM_IRQ_ROUTING_MSI, KVM_MSI_VALID_DEVID,
};
use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::traits::InterruptSink;

/// Setting up a [`KvmInterruptSink`] failed.
#[derive(Debug, thiserror::Error)]
pub enum KvmSinkError {
    /// An eventfd could not be created.
    #[error("eventfd: {0}")]
    EventFd(#[source] std::io::Error),
    /// A KVM ioctl failed.
    #[error("{op}: {source}")]
    Ioctl {
        /// The ioctl (`KVM_IRQFD`, `KVM_SET_GSI_ROUTING`).
        op: &'static str,
        /// KVM's error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The routing table is larger than KVM accepts.
    #[error("GSI routing table of {0} entries is too large")]
    RoutingTable(usize),
    /// The device line or MSI is already wired.
    #[error("{0} is already wired")]
    Duplicate(String),
}

/// How one device line reaches KVM.
enum Target {
    IrqLine(u32),
    Irqfd { gsi: u32, fd: EventFd },
}

struct Wire {
    line: u32,
    target: Target,
    /// Last level the device drove (edge detection for irqfd lines).
    level: AtomicBool,
}

struct MsiRoute {
    addr: u64,
    data: u32,
    gsi: u32,
    fd: EventFd,
}

#[derive(Default)]
struct Counters {
    irq_line: AtomicU64,
    irqfd: AtomicU64,
    signal_msi: AtomicU64,
    msi_unaccepted: AtomicU64,
    unwired: AtomicU64,
    errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a [`KvmInterruptSink`] has delivered (a snapshot of its counters).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KvmSinkStats {
    /// `KVM_IRQ_LINE` calls that succeeded (each level change counts).
    pub irq_line: u64,
    /// irqfd writes that succeeded (wired edges and routed MSIs).
    pub irqfd: u64,
    /// `KVM_SIGNAL_MSI` calls that succeeded.
    pub signal_msi: u64,
    /// Of those, the ones no vCPU accepted (the ioctl returned 0: blocked by the guest).
    pub msi_unaccepted: u64,
    /// Signals on a device line nothing was wired to.
    pub unwired: u64,
    /// Deliveries KVM or the eventfd refused.
    pub errors: u64,
}

/// An [`InterruptSink`] delivering one device's interrupts into a KVM VM (see the module
/// docs). Configure it with `&mut self` methods, then share it (`Arc`) with the device.
pub struct KvmInterruptSink {
    vm: Arc<VmFd>,
    wires: Vec<Wire>,
    routes: Vec<MsiRoute>,
    devid: Option<u32>,
    stats: Counters,
}

impl fmt::Debug for KvmInterruptSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvmInterruptSink")
            .field(
                "wired_lines",
                &self.wires.iter().map(|w| w.line).collect::<Vec<_>>(),
            )
            .field("msi_routes", &self.routes.len())
            .field("devid", &self.devid)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl KvmInterruptSink {
    /// A sink for `vm` (which must have an in-kernel interrupt controller) with no line wired;
    /// MSIs go by `KVM_SIGNAL_MSI` without a DeviceID.
    pub fn new(vm: Arc<VmFd>) -> Self {
        Self {
            vm,
            wires: Vec::new(),
            routes: Vec::new(),
            devid: None,
            stats: Counters::default(),
        }
    }

    /// The VM the sink delivers into.
    pub fn vm(&self) -> &Arc<VmFd> {
        &self.vm
    }

    fn check_line(&self, line: u32) -> Result<(), KvmSinkError> {
        if self.wires.iter().any(|w| w.line == line) {
            return Err(KvmSinkError::Duplicate(format!("device line {line}")));
        }
        Ok(())
    }

    /// Deliver device line `line` with `KVM_IRQ_LINE` on `irq` (x86: a GSI; arm64: an
    /// [`arm::ArmIrqLine`]'s bits). Levels are passed through, so this suits level-sensitive
    /// lines. Nothing is checked with KVM until the first signal.
    ///
    /// # Errors
    /// `line` is already wired.
    pub fn wire_irq_line(&mut self, line: u32, irq: u32) -> Result<&mut Self, KvmSinkError> {
        self.check_line(line)?;
        self.wires.push(Wire {
            line,
            target: Target::IrqLine(irq),
            level: AtomicBool::new(false),
        });
        Ok(self)
    }

    /// Deliver device line `line` through an irqfd on `gsi` (edge-triggered: see the module
    /// docs). Creates the eventfd and registers it with `KVM_IRQFD`.
    ///
    /// # Errors
    /// The eventfd or the ioctl failed, or `line` is already wired.
    pub fn wire_irqfd(&mut self, line: u32, gsi: u32) -> Result<&mut Self, KvmSinkError> {
        self.check_line(line)?;
        let fd = self.irqfd(gsi)?;
        self.wires.push(Wire {
            line,
            target: Target::Irqfd { gsi, fd },
            level: AtomicBool::new(false),
        });
        Ok(self)
    }

    /// Send MSIs without a route with `devid` as the requester's DeviceID
    /// (`KVM_MSI_VALID_DEVID`), and give MSI routes added later the same DeviceID. An arm64
    /// vGIC-ITS needs it (the DeviceID the firmware description gives the IOMMU's MSIs, e.g.
    /// the `msi-parent` specifier); x86 ignores it.
    pub fn msi_devid(&mut self, devid: Option<u32>) -> &mut Self {
        self.devid = devid;
        self
    }

    /// Deliver the MSI `(addr, data)` through GSI `gsi` and an irqfd instead of
    /// `KVM_SIGNAL_MSI`: creates and registers the irqfd; the route itself is installed by
    /// [`Self::install_routing`] (or by the VMM from [`Self::routing_entries`]). For a VMM that
    /// pre-routes the vectors the guest will program, so sending takes no ioctl.
    ///
    /// # Errors
    /// The eventfd or the ioctl failed, or the pair is already routed.
    pub fn route_msi(&mut self, addr: u64, data: u32, gsi: u32) -> Result<&mut Self, KvmSinkError> {
        if self.routes.iter().any(|r| r.addr == addr && r.data == data) {
            return Err(KvmSinkError::Duplicate(format!("MSI {addr:#x}/{data:#x}")));
        }
        let fd = self.irqfd(gsi)?;
        self.routes.push(MsiRoute {
            addr,
            data,
            gsi,
            fd,
        });
        Ok(self)
    }

    fn irqfd(&self, gsi: u32) -> Result<EventFd, KvmSinkError> {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(KvmSinkError::EventFd)?;
        self.vm
            .register_irqfd(&fd, gsi)
            .map_err(|source| KvmSinkError::Ioctl {
                op: "KVM_IRQFD",
                source,
            })?;
        Ok(fd)
    }

    /// The GSI routing entries of the MSI routes ([`Self::route_msi`]), for a VMM that builds
    /// the VM's routing table itself.
    pub fn routing_entries(&self) -> Vec<kvm_irq_routing_entry> {
        self.routes
            .iter()
            .map(|r| {
                let mut entry = kvm_irq_routing_entry {
                    gsi: r.gsi,
                    type_: KVM_IRQ_ROUTING_MSI,
                    ..Default::default()
                };
                if self.devid.is_some() {
                    entry.flags = KVM_MSI_VALID_DEVID;
                }
                entry.u.msi = kvm_irq_routing_msi {
                    address_lo: r.addr as u32,
                    address_hi: (r.addr >> 32) as u32,
                    data: r.data,
                    __bindgen_anon_1: kvm_irq_routing_msi__bindgen_ty_1 {
                        devid: self.devid.unwrap_or(0),
                    },
                };
                entry
            })
            .collect()
    }

    /// Install the VM's GSI routing table: `others` followed by [`Self::routing_entries`].
    /// `KVM_SET_GSI_ROUTING` replaces the whole table, so `others` must hold every other route
    /// the VM uses (on x86 that includes the IOAPIC and PIC pins a wired line needs).
    ///
    /// # Errors
    /// The table is too large or KVM refused it.
    pub fn install_routing(&self, others: &[kvm_irq_routing_entry]) -> Result<(), KvmSinkError> {
        let mut entries = others.to_vec();
        entries.extend(self.routing_entries());
        let table = KvmIrqRouting::from_entries(&entries)
            .map_err(|_| KvmSinkError::RoutingTable(entries.len()))?;
        self.vm
            .set_gsi_routing(&table)
            .map_err(|source| KvmSinkError::Ioctl {
                op: "KVM_SET_GSI_ROUTING",
                source,
            })
    }

    /// The eventfd behind device line `line`, if it is wired by irqfd (to hand to a thread
    /// that signals it directly, like Cloud Hypervisor's `InterruptSourceGroup::notifier`).
    pub fn line_eventfd(&self, line: u32) -> Option<&EventFd> {
        self.wires
            .iter()
            .find(|w| w.line == line)
            .and_then(|w| match &w.target {
                Target::Irqfd { fd, .. } => Some(fd),
                Target::IrqLine(_) => None,
            })
    }

    /// The GSI device line `line` is wired to by irqfd.
    pub fn line_gsi(&self, line: u32) -> Option<u32> {
        self.wires
            .iter()
            .find(|w| w.line == line)
            .and_then(|w| match &w.target {
                Target::Irqfd { gsi, .. } => Some(*gsi),
                Target::IrqLine(_) => None,
            })
    }

    /// What the sink has delivered so far.
    pub fn stats(&self) -> KvmSinkStats {
        let c = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KvmSinkStats {
            irq_line: get(&c.irq_line),
            irqfd: get(&c.irqfd),
            signal_msi: get(&c.signal_msi),
            msi_unaccepted: get(&c.msi_unaccepted),
            unwired: get(&c.unwired),
            errors: get(&c.errors),
        }
    }

    fn wire(&self, line: u32) -> Option<&Wire> {
        let w = self.wires.iter().find(|w| w.line == line);
        if w.is_none() {
            bump(&self.stats.unwired);
        }
        w
    }

    fn kick(&self, fd: &EventFd) {
        match fd.write(1) {
            Ok(()) => bump(&self.stats.irqfd),
            Err(_) => bump(&self.stats.errors),
        }
    }

    fn irq_line(&self, irq: u32, level: bool) {
        match self.vm.set_irq_line(irq, level) {
            Ok(()) => bump(&self.stats.irq_line),
            Err(_) => bump(&self.stats.errors),
        }
    }
}

impl InterruptSink for KvmInterruptSink {
    fn set_line(&self, line: u32, level: bool) {
        let Some(w) = self.wire(line) else { return };
        let was = w.level.swap(level, Ordering::AcqRel);
        match &w.target {
            Target::IrqLine(irq) => self.irq_line(*irq, level),
            Target::Irqfd { fd, .. } => {
                if level && !was {
                    self.kick(fd);
                }
            }
        }
    }

    fn pulse(&self, line: u32) {
        let Some(w) = self.wire(line) else { return };
        match &w.target {
            Target::IrqLine(irq) => {
                self.irq_line(*irq, true);
                self.irq_line(*irq, false);
            }
            Target::Irqfd { fd, .. } => self.kick(fd),
        }
        w.level.store(false, Ordering::Release);
    }

    fn send_msi(&self, addr: u64, data: u32) {
        if let Some(r) = self
            .routes
            .iter()
            .find(|r| r.addr == addr && r.data == data)
        {
            self.kick(&r.fd);
            return;
        }
        let msi = kvm_msi {
            address_lo: addr as u32,
            address_hi: (addr >> 32) as u32,
            data,
            flags: if self.devid.is_some() {
                KVM_MSI_VALID_DEVID
            } else {
                0
            },
            devid: self.devid.unwrap_or(0),
            ..Default::default()
        };
        match self.vm.signal_msi(msi) {
            Ok(accepted) => {
                bump(&self.stats.signal_msi);
                if accepted == 0 {
                    bump(&self.stats.msi_unaccepted);
                }
            }
            Err(_) => bump(&self.stats.errors),
        }
    }
}

impl Drop for KvmInterruptSink {
    fn drop(&mut self) {
        // Detach the irqfds so the GSIs can be reused by a later sink on the same VM.
        for w in &self.wires {
            if let Target::Irqfd { gsi, fd } = &w.target {
                let _ = self.vm.unregister_irqfd(fd, *gsi);
            }
        }
        for r in &self.routes {
            let _ = self.vm.unregister_irqfd(&r.fd, r.gsi);
        }
    }
}
