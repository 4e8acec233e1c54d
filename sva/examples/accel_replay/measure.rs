//! Batching measured in the guest: a 64-command TLBI_NH_VA run written into the guest command
//! queue with one CMDQ_PROD write and one CMD_SYNC, forwarded by the vSMMU as one host call
//! (HWPT_INVALIDATE with 64 entries), against the same run consumed one command per step
//! (command-queue batch limit 1), which forwards one host call per command.
//!
//! Two times per run: the whole run as the guest sees it (the PROD write until CONS has caught
//! up, the vSMMU's own command work included) and the time spent inside the host calls (a timing
//! wrapper around the vSMMU's host backend for the measurement).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use viommu_common::mem::write_bytes;
use viommu_common::StreamId;
use viommu_smmuv3::device::DEFAULT_CMDQ_BATCH;
use viommu_smmuv3::host::{HostBackend, HostBatchError, HostStreamConfig, HostStreamError};
use viommu_smmuv3::spec::cmd::CmdEntry;
use viommu_smmuv3::spec::regs::{QueueBase, QueueIndex, CMDQ_BASE, CMDQ_CONS, CMDQ_PROD, CR0ACK};
use viommu_sva::spec::cmd;
use zerocopy::IntoBytes;

use crate::verify::Vsmmu;
use crate::vmm::Vmm;

const RUN: u64 = 64;
const ROUNDS: usize = 40;
/// ASID of the invalidated addresses (any: nothing is mapped there).
const ASID: u16 = 0x7e;
/// CR0.CMDQEN.
const CMDQEN: u64 = 1 << 3;
/// CMDQ_CONS.ERR (bits [30:24]).
const CONS_ERR: u32 = 0x7f << 24;

/// The vSMMU's host backend with the time spent in `invalidate` counted.
struct Timed {
    inner: Arc<dyn HostBackend>,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl HostBackend for Timed {
    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<(), HostBatchError> {
        let t = Instant::now();
        let r = self.inner.invalidate(cmds);
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(ns, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn configure_stream(
        &self,
        sid: StreamId,
        cfg: &HostStreamConfig,
    ) -> Result<(), HostStreamError> {
        self.inner.configure_stream(sid, cfg)
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
}

/// A backend that applies nothing: the same runs with it time the vSMMU's own command work.
struct Nop;

impl HostBackend for Nop {
    fn invalidate(&self, _cmds: &[CmdEntry]) -> Result<(), HostBatchError> {
        Ok(())
    }

    fn configure_stream(
        &self,
        _sid: StreamId,
        _cfg: &HostStreamConfig,
    ) -> Result<(), HostStreamError> {
        Ok(())
    }
}

/// One run's guest-visible time, time inside host calls, and number of host calls.
struct Sample {
    total: Duration,
    host: Duration,
    calls: u64,
}

fn one_run(vmm: &mut Vmm, timed: &Timed, round: usize) -> Result<Sample, String> {
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
        let va = 0x1000_0000 + ((round as u64) << 24) + (k << 12);
        let c = cmd::tlbi_nh_va(ASID, va, true);
        write_bytes(&**vmm.mem(), slot(k), c.as_bytes()).map_err(|e| e.to_string())?;
    }
    let sync = cmd::cmd_sync();
    write_bytes(&**vmm.mem(), slot(RUN), sync.as_bytes()).map_err(|e| e.to_string())?;
    let prod = (prod0 + RUN as u32 + 1) & wrap_mask;
    let (calls0, ns0) = (
        timed.calls.load(Ordering::Relaxed),
        timed.nanos.load(Ordering::Relaxed),
    );
    let dev = vmm.accel.device().clone();
    let t = Instant::now();
    viommu_replay::device::BusOrder::Little
        .write(dev.as_ref(), CMDQ_PROD, 4, u64::from(prod))
        .map_err(|e| e.to_string())?;
    dev.finish_pending();
    let cons = vmm.reg(CMDQ_CONS, 4) as u32;
    let total = t.elapsed();
    if cons & CONS_ERR != 0 || cons & wrap_mask != prod {
        return Err(format!("CMDQ_CONS {cons:#x} after PROD {prod:#x}"));
    }
    Ok(Sample {
        total,
        host: Duration::from_nanos(timed.nanos.load(Ordering::Relaxed) - ns0),
        calls: timed.calls.load(Ordering::Relaxed) - calls0,
    })
}

/// Median and best of `ROUNDS` runs, in µs: (total median, total best, host median, calls).
fn series(vmm: &mut Vmm, timed: &Timed) -> Result<(f64, f64, f64, u64), String> {
    let mut s = Vec::with_capacity(ROUNDS);
    for r in 0..ROUNDS {
        s.push(one_run(vmm, timed, r)?);
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut total: Vec<f64> = s.iter().map(|x| us(x.total)).collect();
    let mut host: Vec<f64> = s.iter().map(|x| us(x.host)).collect();
    total.sort_by(f64::total_cmp);
    host.sort_by(f64::total_cmp);
    let calls = s.iter().map(|x| x.calls).max().unwrap_or(0);
    Ok((total[ROUNDS / 2], total[0], host[ROUNDS / 2], calls))
}

/// Measure and print an `SVA-MEASURE accel_tlbi_nh_va_x64 ...` line (or the reason it could
/// not be measured).
pub fn measure(vmm: &mut Vmm) {
    if vmm.reg(CR0ACK, 4) & CMDQEN == 0 {
        println!("SVA-MEASURE accel error: the trace left the command queue disabled");
        return;
    }
    let dev = vmm.accel.device().clone();
    let bridge: Arc<dyn HostBackend> = vmm.accel.bridge().clone();
    let timed = Arc::new(Timed {
        inner: Arc::clone(&bridge),
        calls: AtomicU64::new(0),
        nanos: AtomicU64::new(0),
    });
    dev.set_host_backend(Some(timed.clone()));
    let one = series(vmm, &timed);
    dev.set_cmdq_batch_limit(1);
    let each = series(vmm, &timed);
    dev.set_cmdq_batch_limit(DEFAULT_CMDQ_BATCH);
    // the vSMMU alone: the same one-batch run with a backend that applies nothing
    let local = Arc::new(Timed {
        inner: Arc::new(Nop),
        calls: AtomicU64::new(0),
        nanos: AtomicU64::new(0),
    });
    dev.set_host_backend(Some(local.clone()));
    let alone = series(vmm, &local);
    dev.set_host_backend(Some(bridge));
    match (one, each, alone) {
        (Ok((bt, bb, bh, bc)), Ok((st, sb, sh, sc)), Ok((lt, lb, _, _))) => println!(
            "SVA-MEASURE accel_tlbi_nh_va_x64 (median of {ROUNDS}, us) one_batch: run={bt:.0} \
             (best {bb:.0}) in_host={bh:.0} host_calls={bc}; per_command: run={st:.0} (best {sb:.0}) \
             in_host={sh:.0} host_calls={sc}; ratio run={:.1} in_host={:.1}; \
             vsmmu_alone: run={lt:.0} (best {lb:.0})",
            st / bt.max(1e-9),
            sh / bh.max(1e-9)
        ),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            println!("SVA-MEASURE accel error: {e}")
        }
    }
}
