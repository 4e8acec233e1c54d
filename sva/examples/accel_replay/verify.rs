//! Performing a trace's `dma` operation with a real DMA engine behind the host SMMU, and turning
//! what happened (bytes moved, events in the guest event queue) into the operation's outcome.
//!
//! A successful translation is checked by a round trip through the same IOVA: the bytes at the
//! expected output address are replaced by a pattern, the device reads the IOVA into its buffer,
//! the RAM is overwritten with the complement, the device writes its buffer back to the IOVA, and
//! the RAM at the output address must hold the pattern again (both legs went through the expected
//! page). The original bytes are restored afterwards, so the trace's own memory checks are not
//! disturbed. A fault is checked in the guest's event queue: a record with the expected event
//! number, the guest's StreamID, the input address and the direction. QEMU retries a failing DMA
//! in 4-byte pieces, so the number of records is not compared.

use std::time::{Duration, Instant};

use viommu_common::mem::{read_bytes, write_bytes};
use viommu_smmuv3::spec::evt::{EventId, EvtEntry};
use viommu_smmuv3::spec::regs::{QueueBase, QueueIndex, EVENTQ_BASE, EVENTQ_PROD_P1};
use vm_memory::GuestMemoryMmap;

use crate::edu::{Dir, Edu, BUF_LEN};

/// How long a fault's event may take to reach the guest queue (host IRQ thread, vEVENTQ, pump).
const EVENT_WAIT: Duration = Duration::from_secs(3);
/// How long the round trip's write-back leg waits for stray host events it must not inject.
const DISCARD_WAIT: Duration = Duration::from_millis(50);
const PAGE: u64 = 4096;

/// The vSMMU as this module needs it: register reads and the host event pump.
pub trait Vsmmu {
    /// Read a register (the VMM's view; no guest-visible side effect for the queue registers).
    fn reg(&self, offset: u64, size: u8) -> u64;
    /// Move every host event available now into the guest event queue.
    ///
    /// # Errors
    /// The host event source failed.
    fn pump(&mut self) -> Result<(), String>;
    /// Read and drop every host event available now (events of the round trip's own legs).
    ///
    /// # Errors
    /// The host event source failed.
    fn discard(&mut self) -> Result<usize, String>;
}

/// What a `dma` operation of the trace expects (the parts this module acts on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Success at this output address.
    Addr(u64),
    /// A fault with an event of this name (`F_TRANSLATION`, ...).
    Fault(String),
    /// Any fault (possibly terminated without an event).
    AnyFault,
    /// No expectation, or one edu cannot produce (stalls).
    Other,
}

/// One `dma` operation on the passthrough stream.
#[derive(Debug, Clone)]
pub struct DmaOp {
    /// Trace line.
    pub line: usize,
    /// Input address (IOVA).
    pub addr: u64,
    /// Bytes.
    pub size: u64,
    /// A write (device to memory) rather than a read.
    pub write: bool,
    /// The expectation.
    pub expect: Expect,
}

/// What the real DMA showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The bytes moved through the expected output address.
    Addr(u64),
    /// The guest event queue received this event for the stream at the input address.
    Fault(String),
    /// Terminated or moved elsewhere without an event (cannot be told apart by edu).
    Silent,
}

/// The guest event queue's new records since `prod0` (the PROD value before the DMA).
fn new_records(v: &dyn Vsmmu, mem: &GuestMemoryMmap<()>, prod0: u32) -> Vec<EvtEntry> {
    let base = QueueBase::from_bits(v.reg(EVENTQ_BASE, 8));
    let log2 = u32::from(base.log2size()).min(19);
    let prod = QueueIndex::from_bits(v.reg(EVENTQ_PROD_P1, 4) as u32).wrap_index();
    let wrap_mask = (2u32 << log2) - 1;
    let n = prod.wrapping_sub(prod0) & wrap_mask;
    let n = n.min(1 << log2);
    (0..n)
        .filter_map(|k| {
            let idx = u64::from((prod0 + k) & ((1 << log2) - 1));
            let mut b = [0u8; 32];
            read_bytes(mem, base.addr() + idx * EvtEntry::SIZE, &mut b).ok()?;
            let w =
                |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            Some(EvtEntry::from_words([w(0), w(1), w(2), w(3)]))
        })
        .collect()
}

fn evtq_prod(v: &dyn Vsmmu) -> u32 {
    QueueIndex::from_bits(v.reg(EVENTQ_PROD_P1, 4) as u32).wrap_index()
}

/// Whether `e` is the fault of `op` on `vsid` (name `want`, or any event when `None`).
fn matches(e: &EvtEntry, op: &DmaOp, len: u64, vsid: u32, want: Option<&str>) -> bool {
    let id = e.w0.event_id();
    if e.w0.sid() != vsid {
        return false;
    }
    if let Some(w) = want {
        if id.name() != Some(w) {
            return false;
        }
    }
    // translation-stage faults carry the input address and the direction
    if matches!(
        id,
        EventId::F_TRANSLATION | EventId::F_ADDR_SIZE | EventId::F_ACCESS | EventId::F_PERMISSION
    ) {
        let a = e.w2.input_addr();
        return (op.addr..op.addr + len).contains(&a) && e.w1.rnw() != op.write;
    }
    true
}

fn pattern(line: usize, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(151)
                .wrapping_add((line as u8).wrapping_mul(7))
                ^ 0x5a
        })
        .collect()
}

/// Bytes of `op` edu moves: within one page of the input address and the device buffer.
fn span(op: &DmaOp) -> u64 {
    op.size.clamp(1, BUF_LEN).min(PAGE - (op.addr % PAGE))
}

/// Run `op` with edu as the endpoint of `vsid`, returning what it showed.
///
/// # Errors
/// The program could not carry the operation out (edu timeout, output outside RAM, a byte
/// mismatch that no event explains, a missing event).
pub fn perform(
    op: &DmaOp,
    vsid: u32,
    edu: &Edu<'_>,
    mem: &GuestMemoryMmap<()>,
    v: &mut dyn Vsmmu,
) -> Result<Observed, String> {
    v.pump()?;
    let len = span(op);
    let prod0 = evtq_prod(v);
    let dir = if op.write { Dir::Write } else { Dir::Read };
    match &op.expect {
        Expect::Addr(out) => {
            let mut orig = vec![0u8; len as usize];
            read_bytes(mem, *out, &mut orig)
                .map_err(|_| format!("output {out:#x}+{len:#x} is outside guest RAM"))?;
            let p = pattern(op.line, len);
            let not_p: Vec<u8> = p.iter().map(|b| !b).collect();
            let w = |bytes: &[u8]| write_bytes(mem, *out, bytes).map_err(|e| e.to_string());
            w(&p)?;
            let r = round_trip(op, len, edu, mem, v, *out, &not_p, prod0, vsid);
            w(&orig)?;
            r
        }
        Expect::Fault(_) | Expect::AnyFault | Expect::Other => {
            edu.dma(op.addr, len, dir)?;
            let want = match &op.expect {
                Expect::Fault(n) => Some(n.as_str()),
                _ => None,
            };
            let wait = if want.is_some() {
                EVENT_WAIT
            } else {
                Duration::from_millis(300)
            };
            let t = Instant::now();
            loop {
                v.pump()?;
                let recs = new_records(v, mem, prod0);
                if let Some(e) = recs.iter().find(|e| matches(e, op, len, vsid, want)) {
                    let name = e.w0.event_id().name().unwrap_or("UNKNOWN");
                    return Ok(Observed::Fault(name.to_string()));
                }
                if t.elapsed() >= wait {
                    if let Some(e) = recs.first() {
                        return Err(format!(
                            "{} new event(s), none matching; first: {} sid {:#x} addr {:#x} rnw {}",
                            recs.len(),
                            e.w0.event_id().name().unwrap_or("UNKNOWN"),
                            e.w0.sid(),
                            e.w2.input_addr(),
                            e.w1.rnw()
                        ));
                    }
                    return match want {
                        Some(n) => Err(format!("no {n} event for SID {vsid:#x} in {wait:?}")),
                        None => Ok(Observed::Silent),
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The success check (see the module documentation); RAM at `out` holds the pattern on entry.
#[allow(clippy::too_many_arguments)]
fn round_trip(
    op: &DmaOp,
    len: u64,
    edu: &Edu<'_>,
    mem: &GuestMemoryMmap<()>,
    v: &mut dyn Vsmmu,
    out: u64,
    not_p: &[u8],
    prod0: u32,
    vsid: u32,
) -> Result<Observed, String> {
    let fault_of = |v: &mut dyn Vsmmu, write: bool| -> Result<Option<String>, String> {
        v.pump()?;
        let leg = DmaOp {
            write,
            ..op.clone()
        };
        Ok(new_records(v, mem, prod0)
            .iter()
            .find(|e| matches(e, &leg, len, vsid, None))
            .map(|e| e.w0.event_id().name().unwrap_or("UNKNOWN").to_string()))
    };
    edu.dma(op.addr, len, Dir::Read)?;
    if let Some(f) = fault_of(v, false)? {
        return Ok(Observed::Fault(f));
    }
    write_bytes(mem, out, not_p).map_err(|e| e.to_string())?;
    edu.dma(op.addr, len, Dir::Write)?;
    // a write fault here belongs to the operation only if it is a write
    if op.write {
        if let Some(f) = fault_of(v, true)? {
            return Ok(Observed::Fault(f));
        }
    } else {
        std::thread::sleep(DISCARD_WAIT);
        let dropped = v.discard()?;
        if dropped != 0 {
            return Err(format!(
                "read verified only up to the write-back leg: {dropped} host event(s) \
                 (a read-only mapping cannot be checked by a round trip)"
            ));
        }
    }
    let mut got = vec![0u8; len as usize];
    read_bytes(mem, out, &mut got).map_err(|e| e.to_string())?;
    let want: Vec<u8> = not_p.iter().map(|b| !b).collect();
    if got == want {
        Ok(Observed::Addr(out))
    } else if got == not_p {
        Err(format!(
            "no event, but the data did not go through {out:#x} (RAM unchanged)"
        ))
    } else {
        Err(format!(
            "no event, but RAM at {out:#x} holds {:02x?}.. instead of {:02x?}..",
            &got[..8.min(got.len())],
            &want[..8.min(want.len())]
        ))
    }
}
