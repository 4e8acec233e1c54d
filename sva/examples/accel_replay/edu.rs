//! QEMU's `edu` PCI device as a DMA engine, driven through its VFIO regions.
//!
//! BAR0 registers: DMA source 0x80, destination 0x88, count 0x90, command 0x98 (bit 0 start and
//! busy, bit 1 direction: 0 = RAM to device, 1 = device to RAM). The device-side buffer is
//! 0x40000..0x41000; a range outside it stops the emulator, so every transfer is bounded here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use viommu_sva::iommufd::VfioPort;

/// Start of edu's DMA buffer on the device side.
pub const BUF: u64 = 0x4_0000;
/// Size of edu's DMA buffer.
pub const BUF_LEN: u64 = 0x1000;

const REG_SRC: u64 = 0x80;
const REG_DST: u64 = 0x88;
const REG_CNT: u64 = 0x90;
const REG_CMD: u64 = 0x98;
const CMD_START: u32 = 1;
const CMD_TO_RAM: u32 = 2;
/// PCI config region index of a VFIO PCI device, and the command register in it.
const CONFIG_REGION: u32 = 7;
const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY_MASTER: u16 = 0x6;

/// The sysfs directories of every edu device (vendor 0x1234, device 0x11e8), sorted.
pub fn devices() -> Vec<PathBuf> {
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

/// Direction of one edu transfer, seen from guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The device reads memory at the bus address into its buffer.
    Read,
    /// The device writes its buffer to memory at the bus address.
    Write,
}

/// One edu device bound to iommufd.
pub struct Edu<'a> {
    port: &'a VfioPort,
}

impl<'a> Edu<'a> {
    /// Wrap a bound device and enable memory decoding and bus mastering.
    pub fn new(port: &'a VfioPort) -> Self {
        let dev = port.device();
        let mut cmd = [0u8; 2];
        dev.region_read(CONFIG_REGION, &mut cmd, PCI_COMMAND);
        let v = u16::from_le_bytes(cmd) | PCI_COMMAND_MEMORY_MASTER;
        dev.region_write(CONFIG_REGION, &v.to_le_bytes(), PCI_COMMAND);
        Self { port }
    }

    fn w64(&self, off: u64, v: u64) {
        self.port.device().region_write(0, &v.to_le_bytes(), off);
    }

    fn r32(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.port.device().region_read(0, &mut b, off);
        u32::from_le_bytes(b)
    }

    /// Move `len` bytes (at most [`BUF_LEN`]) between bus address `addr` and the start of the
    /// device buffer, and wait for completion (edu completes on a 100 ms virtual-clock timer).
    ///
    /// # Errors
    /// `len` is 0 or larger than the buffer, or the transfer did not complete within 5 s.
    pub fn dma(&self, addr: u64, len: u64, dir: Dir) -> Result<(), String> {
        if len == 0 || len > BUF_LEN {
            return Err(format!("edu transfer of {len} bytes (1..={BUF_LEN})"));
        }
        let (src, dst, cmd) = match dir {
            Dir::Read => (addr, BUF, CMD_START),
            Dir::Write => (BUF, addr, CMD_START | CMD_TO_RAM),
        };
        self.w64(REG_SRC, src);
        self.w64(REG_DST, dst);
        self.w64(REG_CNT, len);
        self.port
            .device()
            .region_write(0, &cmd.to_le_bytes(), REG_CMD);
        let t = Instant::now();
        while self.r32(REG_CMD) & CMD_START != 0 {
            if t.elapsed() > Duration::from_secs(5) {
                return Err("edu DMA did not complete in 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}
