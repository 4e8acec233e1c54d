//! virtio-blk request handling (VIRTIO 1.2 §5.2) over any `vm_memory::GuestMemory`: behind the
//! SMMU it is an `IommuMemory`, so every descriptor, header, data buffer and status byte is a
//! DMA the SMMU translates for the device's StreamID.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

/// Sector size of the virtio-blk protocol.
pub const SECTOR: u64 = 512;
/// Bytes moved per bounce-buffer step: requests of any size use a fixed buffer.
const CHUNK: usize = 64 * 1024;
/// Most descriptors one request may have (advertised as `seg_max` plus header and status).
const SEG_MAX: u32 = 126;
/// The serial number GET_ID returns.
const DISK_ID: &[u8] = b"viommu-ref-vmm-disk";

/// Device-specific feature bits (the transport adds VERSION_1 and ACCESS_PLATFORM).
pub const FEATURES: u64 = 1 << VIRTIO_BLK_F_FLUSH | 1 << VIRTIO_BLK_F_SEG_MAX;

/// Request statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct BlockStats {
    /// Requests completed.
    pub requests: u64,
    /// Bytes read from the disk into guest buffers.
    pub read_bytes: u64,
    /// Bytes written from guest buffers to the disk.
    pub written_bytes: u64,
    /// Requests failed with IOERR (bad sector range, DMA refused, host I/O error).
    pub errors: u64,
    /// Guest-memory accesses refused (by the SMMU, or outside RAM).
    pub dma_faults: u64,
}

/// The queue itself could not be read or written: the device stops (`DEVICE_NEEDS_RESET`).
#[derive(Debug)]
pub struct QueueFault(pub String);

/// A virtio-blk device backed by a host file.
pub struct Block {
    disk: File,
    capacity: u64,
    buf: Vec<u8>,
    /// Statistics.
    pub stats: BlockStats,
}

impl Block {
    /// A device for `disk` (its size is rounded down to whole sectors).
    pub fn new(disk: File) -> io::Result<Self> {
        let capacity = disk.metadata()?.len() / SECTOR;
        Ok(Self {
            disk,
            capacity,
            buf: vec![0; CHUNK],
            stats: BlockStats::default(),
        })
    }

    /// The configuration space (`struct virtio_blk_config`): capacity, then `size_max` (unused),
    /// `seg_max`.
    pub fn config_read(&self, offset: u64, data: &mut [u8]) {
        let mut config = [0u8; 16];
        config[..8].copy_from_slice(&self.capacity.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        data.fill(0);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(config.len());
        let end = start.saturating_add(data.len()).min(config.len());
        data[..end - start].copy_from_slice(&config[start..end]);
    }

    /// Serve every available request of `queue`. Returns whether any completed (the driver
    /// is then interrupted).
    pub fn process<M: GuestMemory>(
        &mut self,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<bool, QueueFault> {
        let mut done = false;
        // Each pass reads the available index again; a queue holds at most 32768 chains, so
        // a guest that keeps adding cannot hold the vCPU thread beyond that many per pass.
        for _ in 0..queue.size().max(1) {
            let chain = match queue.iter(mem) {
                Ok(mut it) => it.next(),
                Err(e) => return Err(QueueFault(format!("available ring: {e}"))),
            };
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.take(SEG_MAX as usize + 2).collect();
            let used = self.request(mem, &descs);
            queue
                .add_used(mem, head, used)
                .map_err(|e| QueueFault(format!("used ring: {e}")))?;
            done = true;
        }
        Ok(done)
    }

    /// One request: header, data buffers, status. Returns the bytes written to the driver.
    fn request<M: GuestMemory>(&mut self, mem: &M, descs: &[Descriptor]) -> u32 {
        self.stats.requests += 1;
        let (Some(header), Some(status)) = (descs.first(), descs.last()) else {
            self.stats.errors += 1;
            return 0;
        };
        if descs.len() < 2 || header.is_write_only() || !status.is_write_only() || status.len() < 1
        {
            self.stats.errors += 1;
            return 0;
        }
        let mut hdr = [0u8; 16];
        let result = if header.len() < 16 || mem.read_slice(&mut hdr, header.addr()).is_err() {
            self.stats.dma_faults += 1;
            Err(VIRTIO_BLK_S_IOERR)
        } else {
            let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap_or_default());
            let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
            self.execute(mem, kind, sector, &descs[1..descs.len() - 1])
        };
        let (code, written) = match result {
            Ok(written) => (VIRTIO_BLK_S_OK, written),
            Err(code) => {
                if code == VIRTIO_BLK_S_IOERR {
                    self.stats.errors += 1;
                }
                (code, 0)
            }
        };
        if mem.write_obj(code as u8, status.addr()).is_err() {
            self.stats.dma_faults += 1;
            return written;
        }
        written.saturating_add(1)
    }

    fn execute<M: GuestMemory>(
        &mut self,
        mem: &M,
        kind: u32,
        sector: u64,
        data: &[Descriptor],
    ) -> Result<u32, u32> {
        match kind {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
                let write = kind == VIRTIO_BLK_T_OUT;
                let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
                let end = sector
                    .checked_mul(SECTOR)
                    .and_then(|start| start.checked_add(total));
                if end.is_none_or(|end| end > self.capacity * SECTOR)
                    || data.iter().any(|d| d.is_write_only() == write)
                {
                    return Err(VIRTIO_BLK_S_IOERR);
                }
                let mut pos = sector * SECTOR;
                for d in data {
                    self.transfer(mem, d.addr(), d.len(), pos, write)?;
                    pos += u64::from(d.len());
                }
                if write {
                    self.stats.written_bytes += total;
                    Ok(0)
                } else {
                    self.stats.read_bytes += total;
                    Ok(u32::try_from(total).unwrap_or(u32::MAX))
                }
            }
            VIRTIO_BLK_T_FLUSH => self
                .disk
                .sync_data()
                .map(|()| 0)
                .map_err(|_| VIRTIO_BLK_S_IOERR),
            VIRTIO_BLK_T_GET_ID => {
                let Some(d) = data.first().filter(|d| d.is_write_only()) else {
                    return Err(VIRTIO_BLK_S_IOERR);
                };
                let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
                id[..DISK_ID.len()].copy_from_slice(DISK_ID);
                let n = id.len().min(d.len() as usize);
                mem.write_slice(&id[..n], d.addr()).map_err(|_| {
                    self.stats.dma_faults += 1;
                    VIRTIO_BLK_S_IOERR
                })?;
                Ok(n as u32)
            }
            _ => Err(VIRTIO_BLK_S_UNSUPP),
        }
    }

    /// Move `len` bytes between guest address `addr` and disk offset `pos`, one chunk at a time.
    fn transfer<M: GuestMemory>(
        &mut self,
        mem: &M,
        addr: GuestAddress,
        len: u32,
        pos: u64,
        write: bool,
    ) -> Result<(), u32> {
        let mut done = 0usize;
        let len = len as usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            let at = addr
                .0
                .checked_add(done as u64)
                .map(GuestAddress)
                .ok_or(VIRTIO_BLK_S_IOERR)?;
            let buf = &mut self.buf[..n];
            let off = pos + done as u64;
            if write {
                if mem.read_slice(buf, at).is_err() {
                    self.stats.dma_faults += 1;
                    return Err(VIRTIO_BLK_S_IOERR);
                }
                self.disk
                    .write_all_at(buf, off)
                    .map_err(|_| VIRTIO_BLK_S_IOERR)?;
            } else {
                self.disk
                    .read_exact_at(buf, off)
                    .map_err(|_| VIRTIO_BLK_S_IOERR)?;
                if mem.write_slice(buf, at).is_err() {
                    self.stats.dma_faults += 1;
                    return Err(VIRTIO_BLK_S_IOERR);
                }
            }
            done += n;
        }
        Ok(())
    }
}
