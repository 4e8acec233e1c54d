//! The virtio-mmio transport, version 2 only (VIRTIO 1.2 §4.2.2), of one block device with one
//! queue. Feature negotiation requires VIRTIO_F_VERSION_1 and VIRTIO_F_ACCESS_PLATFORM: without
//! ACCESS_PLATFORM Linux would give the device guest-physical addresses and bypass the DMA API,
//! so the SMMU would see no traffic.

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_ACCESS_PLATFORM,
    VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;

use crate::block::Block;
use crate::serial::SpiTrigger;
use vm_superio::Trigger;

/// "virt" in little-endian.
const MAGIC: u32 = 0x7472_6976;
/// virtio device ID of a block device.
const DEVICE_ID_BLOCK: u32 = 2;
/// Our vendor ID ("VIOM").
const VENDOR_ID: u32 = 0x4d4f_4956;
/// Largest queue the device accepts.
const QUEUE_MAX: u16 = 256;

/// The transport: registers, the queue and the device behind it.
pub struct VirtioMmio<M> {
    device: Block,
    mem: M,
    irq: SpiTrigger,
    queue: Queue,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
    /// Interrupts sent to the driver.
    pub interrupts: u64,
    /// Why the device stopped, if it did (a queue access the IOMMU refused).
    pub broken: Option<String>,
}

impl<M: GuestMemory> VirtioMmio<M> {
    /// A transport for `device`, whose DMA goes through `mem`, interrupting on `irq`.
    pub fn new(device: Block, mem: M, irq: SpiTrigger) -> Self {
        Self {
            device,
            mem,
            irq,
            queue: Queue::new(QUEUE_MAX).expect("QUEUE_MAX is a power of two"),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
            interrupts: 0,
            broken: None,
        }
    }

    /// The device behind the transport.
    pub fn device(&self) -> &Block {
        &self.device
    }

    fn device_features(&self) -> u64 {
        crate::block::FEATURES | 1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_F_ACCESS_PLATFORM
    }

    fn reset(&mut self) {
        self.queue.reset();
        self.driver_features = 0;
        self.status = 0;
        self.interrupt_status = 0;
        self.broken = None;
    }

    fn interrupt(&mut self, cause: u32) {
        self.interrupt_status |= cause;
        self.interrupts += 1;
        let _ = self.irq.trigger();
    }

    /// A guest load at `offset`.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            return self
                .device
                .config_read(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
        }
        let value = match u32::try_from(offset).unwrap_or(u32::MAX) {
            _ if data.len() != 4 => 0,
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => 2,
            VIRTIO_MMIO_DEVICE_ID => DEVICE_ID_BLOCK,
            VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX if self.queue_sel == 0 => u32::from(QUEUE_MAX),
            VIRTIO_MMIO_QUEUE_READY if self.queue_sel == 0 => u32::from(self.queue.ready()),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt_status,
            VIRTIO_MMIO_STATUS => self.status,
            VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            _ => 0,
        };
        data.fill(0);
        if data.len() == 4 {
            data.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// A guest store at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        let v = u32::from_le_bytes(bytes);
        let q = self.queue_sel == 0;
        match u32::try_from(offset).unwrap_or(u32::MAX) {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => match self.driver_features_sel {
                0 => self.driver_features = self.driver_features & !0xffff_ffff | u64::from(v),
                1 => self.driver_features = self.driver_features & 0xffff_ffff | u64::from(v) << 32,
                _ => {}
            },
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM if q => self.queue.set_size(v as u16),
            VIRTIO_MMIO_QUEUE_READY if q => self.queue.set_ready(v == 1),
            VIRTIO_MMIO_QUEUE_DESC_LOW if q => self.queue.set_desc_table_address(Some(v), None),
            VIRTIO_MMIO_QUEUE_DESC_HIGH if q => self.queue.set_desc_table_address(None, Some(v)),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW if q => self.queue.set_avail_ring_address(Some(v), None),
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH if q => self.queue.set_avail_ring_address(None, Some(v)),
            VIRTIO_MMIO_QUEUE_USED_LOW if q => self.queue.set_used_ring_address(Some(v), None),
            VIRTIO_MMIO_QUEUE_USED_HIGH if q => self.queue.set_used_ring_address(None, Some(v)),
            VIRTIO_MMIO_QUEUE_NOTIFY if v == 0 => self.notify(),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt_status &= !v,
            VIRTIO_MMIO_STATUS => self.set_status(v),
            _ => {}
        }
    }

    fn set_status(&mut self, v: u32) {
        if v == 0 {
            return self.reset();
        }
        // FEATURES_OK sticks only when the driver accepted what the device requires.
        let required = 1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_F_ACCESS_PLATFORM;
        let newly_ok =
            v & VIRTIO_CONFIG_S_FEATURES_OK != 0 && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
        if newly_ok
            && (self.driver_features & required != required
                || self.driver_features & !self.device_features() != 0)
        {
            eprintln!(
                "arm64_vmm: virtio-blk: driver features {:#x} lack VERSION_1/ACCESS_PLATFORM",
                self.driver_features
            );
            self.status = v & !VIRTIO_CONFIG_S_FEATURES_OK;
            return;
        }
        self.status = v | self.status & VIRTIO_CONFIG_S_NEEDS_RESET;
    }

    fn notify(&mut self) {
        if self.broken.is_some() || !self.queue.ready() {
            return;
        }
        match self.device.process(&mut self.queue, &self.mem) {
            Ok(true) => self.interrupt(VIRTIO_MMIO_INT_VRING),
            Ok(false) => {}
            Err(fault) => {
                // VIRTIO 1.2 §2.1.2: the device cannot go on; tell the driver.
                eprintln!("arm64_vmm: virtio-blk: queue access refused: {}", fault.0);
                self.broken = Some(fault.0);
                self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                self.config_generation = self.config_generation.wrapping_add(1);
                self.interrupt(VIRTIO_MMIO_INT_CONFIG);
            }
        }
    }
}
