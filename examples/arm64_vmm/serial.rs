//! The guest console: vm-superio's 16550 UART, its interrupt an SPI of the in-kernel vGIC.

use std::io::{self, Write};
use std::sync::Arc;

use kvm_ioctls::VmFd;
use viommu_common::kvm::arm::ArmIrqLine;
use vm_superio::{Serial, Trigger};

/// Pulses one SPI of the vGIC with `KVM_IRQ_LINE` (the device tree declares it edge-triggered).
#[derive(Clone)]
pub struct SpiTrigger {
    vm: Arc<VmFd>,
    irq: u32,
}

impl SpiTrigger {
    /// A trigger for SPI `spi`.
    pub fn new(vm: Arc<VmFd>, spi: u32) -> Self {
        let irq = ArmIrqLine::spi(spi).expect("SPI numbers of the layout are valid");
        Self {
            vm,
            irq: irq.into_bits(),
        }
    }
}

impl Trigger for SpiTrigger {
    type E = kvm_ioctls::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        self.vm.set_irq_line(self.irq, true)?;
        self.vm.set_irq_line(self.irq, false)
    }
}

/// The UART: output goes to our stdout; there is no input (the guest runs a script).
pub struct Console {
    uart: Serial<SpiTrigger, vm_superio::serial::NoEvents, io::Stdout>,
}

impl Console {
    /// A UART raising `trigger`.
    pub fn new(trigger: SpiTrigger) -> Self {
        Self {
            uart: Serial::new(trigger, io::stdout()),
        }
    }

    /// A guest load from register `offset` (byte-wide registers; wider loads read the first).
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (Ok(off), Some(first)) = (u8::try_from(offset), data.first_mut()) {
            *first = self.uart.read(off);
        }
    }

    /// A guest store to register `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), Some(&value)) = (u8::try_from(offset), data.first()) {
            // An interrupt KVM refused is lost; the driver polls LSR anyway.
            let _ = self.uart.write(off, value);
        }
    }

    /// Flush what the guest printed.
    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush();
    }
}
