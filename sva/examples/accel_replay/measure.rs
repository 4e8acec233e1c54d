//! Batching measured in the guest: a 64-command TLBI_NH_VA run written into the guest command
//! queue with one CMDQ_PROD write and one CMD_SYNC, forwarded by the vSMMU as one host call
//! (HWPT_INVALIDATE with 64 entries), against the same run consumed one command per step
//! (command-queue batch limit 1), which forwards one host call per command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use viommu_common::mem::write_bytes;
use viommu_smmuv3::host::HostRecord;
use viommu_smmuv3::spec::regs::{QueueBase, QueueIndex, CMDQ_BASE, CMDQ_CONS, CMDQ_PROD, CR0ACK};
use viommu_smmuv3::trace::{TraceLog, TraceRecord};
use viommu_sva::spec::cmd;
use zerocopy::IntoBytes;

use crate::verify::Vsmmu;
use crate::vmm::Vmm;

const RUN: u64 = 64;
const ROUNDS: u32 = 20;
/// ASID of the invalidated addresses (any: nothing is mapped there).
const ASID: u16 = 0x7e;
/// CR0.CMDQEN.
const CMDQEN: u64 = 1 << 3;
/// CMDQ_CONS.ERR (bits [30:24]).
const CONS_ERR: u32 = 0x7f << 24;

/// One timed run: 64 TLBI_NH_VA + CMD_SYNC, one PROD write, wait for CONS; returns the time and
/// the number of host calls (batches) the device made.
fn one_run(vmm: &mut Vmm, log: &Arc<TraceLog>, round: u32) -> Result<(Duration, usize), String> {
    let base = QueueBase::from_bits(vmm.reg(CMDQ_BASE, 8));
    let log2 = u32::from(base.log2size()).min(19);
    let entries = 1u64 << log2;
    if entries < RUN + 1 {
        return Err(format!("command queue of {entries} entries < {}", RUN + 1));
    }
    let wrap_mask = (2u32 << log2) - 1;
    let prod0 = QueueIndex::from_bits(vmm.reg(CMDQ_PROD, 4) as u32).wrap_index() & wrap_mask;
    let slot = |k: u64| base.addr() + 16 * ((u64::from(prod0) + k) % entries);
    for k in 0..RUN {
        let va = 0x1000_0000 + (u64::from(round) << 24) + (k << 12);
        let c = cmd::tlbi_nh_va(ASID, va, true);
        write_bytes(&**vmm.mem(), slot(k), c.as_bytes()).map_err(|e| e.to_string())?;
    }
    let sync = cmd::cmd_sync();
    write_bytes(&**vmm.mem(), slot(RUN), sync.as_bytes()).map_err(|e| e.to_string())?;
    let prod = (prod0 + RUN as u32 + 1) & wrap_mask;
    let _ = log.take();
    let dev = vmm.accel.device().clone();
    let t = Instant::now();
    viommu_replay::device::BusOrder::Little
        .write(dev.as_ref(), CMDQ_PROD, 4, u64::from(prod))
        .map_err(|e| e.to_string())?;
    dev.finish_pending();
    let cons = vmm.reg(CMDQ_CONS, 4) as u32;
    let d = t.elapsed();
    if cons & CONS_ERR != 0 || cons & wrap_mask != prod {
        return Err(format!("CMDQ_CONS {cons:#x} after PROD {prod:#x}"));
    }
    let batches = log
        .take()
        .iter()
        .filter(|r| matches!(r, TraceRecord::Host(HostRecord::Batch { .. })))
        .count();
    Ok((d, batches))
}

fn series(vmm: &mut Vmm, log: &Arc<TraceLog>) -> Result<(f64, f64, usize), String> {
    let (mut total, mut best, mut calls) = (Duration::ZERO, Duration::MAX, 0);
    for r in 0..ROUNDS {
        let (d, b) = one_run(vmm, log, r)?;
        total += d;
        best = best.min(d);
        calls = calls.max(b);
    }
    Ok((
        total.as_secs_f64() * 1e6 / f64::from(ROUNDS),
        best.as_secs_f64() * 1e6,
        calls,
    ))
}

/// Measure and print an `SVA-MEASURE accel_tlbi_nh_va_x64 ...` line (or the reason it could
/// not be measured).
pub fn measure(vmm: &mut Vmm) {
    if vmm.reg(CR0ACK, 4) & CMDQEN == 0 {
        println!("SVA-MEASURE accel error: the trace left the command queue disabled");
        return;
    }
    let dev = vmm.accel.device().clone();
    let log = TraceLog::new();
    dev.set_tracer(Some(log.tracer()));
    let one = series(vmm, &log);
    dev.set_cmdq_batch_limit(1);
    let each = series(vmm, &log);
    dev.set_cmdq_batch_limit(viommu_smmuv3::device::DEFAULT_CMDQ_BATCH);
    dev.set_tracer(None);
    match (one, each) {
        (Ok((bm, bb, bc)), Ok((sm, sb, sc))) => println!(
            "SVA-MEASURE accel_tlbi_nh_va_x64 one_batch_us mean={bm:.1} best={bb:.1} host_calls={bc} \
             per_command_us mean={sm:.1} best={sb:.1} host_calls={sc} ratio={:.1}",
            sm / bm.max(1e-9)
        ),
        (Err(e), _) | (_, Err(e)) => println!("SVA-MEASURE accel error: {e}"),
    }
}
