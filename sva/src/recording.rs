//! A backend that records every host operation as a typed log instead of calling a kernel.
//!
//! It implements [`HostViommu`], [`AttachPort`] and [`HostEventSource`], mirrors the kernel's
//! observable rules (ids from one counter; HWPT_INVALIDATE stops at the first command outside the
//! forwardable set and reports how many were applied), and can be scripted to fail the n-th call
//! of any operation. Tests snapshot [`Recorder::render`] with insta.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use viommu_common::StreamId;

use crate::canon::CanonicalSte;
use crate::caps::HostCaps;
use crate::error::{Errno, EventError, HostOp, InvalidateError, TeardownError, ViommuError};
use crate::events::{EventItem, VeventDecoder};
use crate::host::{
    AttachPort, DevId, HostEventSource, HostViommu, HwptId, SharedHwpt, VdevId, MAX_BATCH,
};
use crate::spec::cmd::{forwarding, opcode_name, Forwarding};
use viommu_smmuv3::spec::cmd::{CmdEntry, Opcode};

/// One recorded host operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// IOMMU_HWPT_ALLOC(NEST_PARENT) + IOMMU_VIOMMU_ALLOC + the shared abort/bypass HWPTs.
    CreateViommu {
        /// vIOMMU id.
        viommu: u32,
        /// Shared abort HWPT.
        abort: HwptId,
        /// Shared bypass HWPT.
        bypass: HwptId,
    },
    /// Nested HWPT allocation.
    AllocNested {
        /// Device.
        dev: DevId,
        /// vSTE words.
        ste: [u64; 2],
        /// Result.
        hwpt: HwptId,
    },
    /// vDEVICE allocation.
    AllocVdevice {
        /// Device.
        dev: DevId,
        /// Guest StreamID.
        vsid: StreamId,
        /// Result.
        vdev: VdevId,
    },
    /// Attach (replace).
    Attach {
        /// Device.
        dev: DevId,
        /// Target.
        hwpt: HwptId,
    },
    /// Detach.
    Detach {
        /// Device.
        dev: DevId,
    },
    /// Destroy of an object.
    Destroy {
        /// Kind of object.
        what: &'static str,
        /// Its id.
        id: u32,
    },
    /// One HWPT_INVALIDATE call.
    Invalidate {
        /// The commands submitted.
        cmds: Vec<CmdEntry>,
        /// How many the host applied.
        applied: usize,
    },
    /// One read of the event queue.
    ReadEvents {
        /// Bytes returned.
        bytes: usize,
    },
    /// The previous operation failed.
    Failed {
        /// Which.
        op: HostOp,
        /// With what.
        errno: Errno,
    },
}

/// A scripted failure: the `nth` (0-based) call of `op` fails with `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Operation.
    pub op: HostOp,
    /// Which call of it.
    pub nth: usize,
    /// The errno returned.
    pub errno: Errno,
}

/// A scripted partial batch: the `nth` (0-based) HWPT_INVALIDATE applies the commands before
/// `index` and refuses the one at `index` with `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFault {
    /// Which invalidate call.
    pub nth: usize,
    /// Index of the refused command in that batch.
    pub index: usize,
    /// The errno returned.
    pub errno: Errno,
}

#[derive(Debug, Default)]
struct State {
    log: Vec<Op>,
    next_id: u32,
    calls: Vec<(HostOp, usize)>,
    faults: Vec<Fault>,
    batch_faults: Vec<BatchFault>,
    live_hwpts: Vec<HwptId>,
}

/// The shared log and fault script of one recording setup.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

impl Recorder {
    /// An empty recorder; ids start at 1.
    pub fn new() -> Self {
        let r = Self::default();
        r.lock().next_id = 1;
        r
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Script a failure.
    pub fn fail(&self, op: HostOp, nth: usize, errno: Errno) {
        self.lock().faults.push(Fault { op, nth, errno });
    }

    /// Script a partial batch: the `nth` invalidate call refuses its command at `index`.
    pub fn fail_batch_at(&self, nth: usize, index: usize, errno: Errno) {
        self.lock()
            .batch_faults
            .push(BatchFault { nth, index, errno });
    }

    /// How many calls of `op` were made so far (the `nth` of the next one).
    pub fn calls(&self, op: HostOp) -> usize {
        self.lock()
            .calls
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0, |(_, n)| *n)
    }

    /// The operations so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().log.clone()
    }

    /// Forget the log (keeps ids and faults).
    pub fn clear(&self) {
        self.lock().log.clear();
    }

    /// HWPTs allocated and not yet destroyed (nested ones only).
    pub fn live_nested(&self) -> Vec<HwptId> {
        self.lock().live_hwpts.clone()
    }

    fn id(&self) -> u32 {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        id
    }

    /// Count a call of `op`; `Err(errno)` if scripted to fail (the failure is logged).
    fn call(&self, op: HostOp) -> Result<(), Errno> {
        self.call_n(op).1
    }

    /// As [`Self::call`], also returning which call of `op` this is (0-based).
    fn call_n(&self, op: HostOp) -> (usize, Result<(), Errno>) {
        let mut s = self.lock();
        let n = match s.calls.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                s.calls.push((op, 1));
                0
            }
        };
        let fault = s.faults.iter().find(|f| f.op == op && f.nth == n).copied();
        let r = match fault {
            Some(f) => {
                s.log.push(Op::Failed { op, errno: f.errno });
                Err(f.errno)
            }
            None => Ok(()),
        };
        (n, r)
    }

    fn push(&self, op: Op) {
        self.lock().log.push(op);
    }

    /// One line per operation, for snapshots.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for op in self.lock().log.iter() {
            let _ = match op {
                Op::CreateViommu {
                    viommu,
                    abort,
                    bypass,
                } => {
                    writeln!(
                        out,
                        "create_viommu -> viommu {viommu}, abort hwpt {}, bypass hwpt {}",
                        abort.0, bypass.0
                    )
                }
                Op::AllocNested { dev, ste, hwpt } => {
                    writeln!(
                        out,
                        "alloc_nested dev {} ste [{:#018x}, {:#018x}] -> hwpt {}",
                        dev.0, ste[0], ste[1], hwpt.0
                    )
                }
                Op::AllocVdevice { dev, vsid, vdev } => {
                    writeln!(
                        out,
                        "alloc_vdevice dev {} vsid {vsid} -> vdev {}",
                        dev.0, vdev.0
                    )
                }
                Op::Attach { dev, hwpt } => {
                    writeln!(out, "attach dev {} -> hwpt {}", dev.0, hwpt.0)
                }
                Op::Detach { dev } => writeln!(out, "detach dev {}", dev.0),
                Op::Destroy { what, id } => writeln!(out, "destroy {what} {id}"),
                Op::Invalidate { cmds, applied } => {
                    let _ = writeln!(out, "invalidate {} cmds, applied {applied}", cmds.len());
                    for (i, c) in cmds.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "  [{i}] {:<14} {:#018x} {:#018x}",
                            opcode_name(c.opcode()),
                            c.words()[0],
                            c.words()[1]
                        );
                    }
                    Ok(())
                }
                Op::ReadEvents { bytes } => writeln!(out, "read_events -> {bytes} bytes"),
                Op::Failed { op, errno } => writeln!(out, "  FAILED {op}: {errno}"),
            };
        }
        out
    }
}

/// A recorded vIOMMU.
#[derive(Debug)]
pub struct RecordingViommu {
    rec: Recorder,
    caps: HostCaps,
    viommu: u32,
    nest_parent: u32,
    abort: HwptId,
    bypass: HwptId,
}

impl RecordingViommu {
    /// "Allocate" a vIOMMU with its shared HWPTs.
    pub fn new(rec: &Recorder, caps: HostCaps) -> Result<Self, ViommuError> {
        rec.call(HostOp::HwptAllocNestParent)
            .map_err(|errno| ViommuError::Host {
                op: HostOp::HwptAllocNestParent,
                errno,
            })?;
        let nest_parent = rec.id();
        rec.call(HostOp::ViommuAlloc)
            .map_err(|errno| ViommuError::Host {
                op: HostOp::ViommuAlloc,
                errno,
            })?;
        let viommu = rec.id();
        let abort = HwptId(rec.id());
        let bypass = HwptId(rec.id());
        rec.push(Op::CreateViommu {
            viommu,
            abort,
            bypass,
        });
        Ok(Self {
            rec: rec.clone(),
            caps,
            viommu,
            nest_parent,
            abort,
            bypass,
        })
    }

    fn destroy(&self, what: &'static str, id: u32) -> Result<(), Errno> {
        self.rec.push(Op::Destroy { what, id });
        self.rec.call(HostOp::Destroy)
    }
}

impl HostViommu for RecordingViommu {
    fn caps(&self) -> &HostCaps {
        &self.caps
    }

    fn shared_hwpt(&self, which: SharedHwpt) -> HwptId {
        match which {
            SharedHwpt::Abort => self.abort,
            SharedHwpt::Bypass => self.bypass,
        }
    }

    fn alloc_nested(&self, dev: DevId, ste: &CanonicalSte) -> Result<HwptId, ViommuError> {
        self.rec
            .call(HostOp::HwptAllocNested)
            .map_err(|errno| ViommuError::Host {
                op: HostOp::HwptAllocNested,
                errno,
            })?;
        let hwpt = HwptId(self.rec.id());
        self.rec.push(Op::AllocNested {
            dev,
            ste: ste.words(),
            hwpt,
        });
        self.rec.lock().live_hwpts.push(hwpt);
        Ok(hwpt)
    }

    fn destroy_hwpt(&self, hwpt: HwptId) -> Result<(), ViommuError> {
        if !self.rec.lock().live_hwpts.contains(&hwpt) {
            return Err(ViommuError::UnknownHwpt(hwpt));
        }
        self.destroy("hwpt", hwpt.0)
            .map_err(|errno| ViommuError::Host {
                op: HostOp::Destroy,
                errno,
            })?;
        self.rec.lock().live_hwpts.retain(|h| *h != hwpt);
        Ok(())
    }

    fn alloc_vdevice(&self, dev: DevId, vsid: StreamId) -> Result<VdevId, ViommuError> {
        self.rec
            .call(HostOp::VdeviceAlloc)
            .map_err(|errno| ViommuError::Host {
                op: HostOp::VdeviceAlloc,
                errno,
            })?;
        let vdev = VdevId(self.rec.id());
        self.rec.push(Op::AllocVdevice { dev, vsid, vdev });
        Ok(vdev)
    }

    fn destroy_vdevice(&self, vdev: VdevId) -> Result<(), ViommuError> {
        self.destroy("vdevice", vdev.0)
            .map_err(|errno| ViommuError::Host {
                op: HostOp::Destroy,
                errno,
            })
    }

    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<usize, InvalidateError> {
        if cmds.len() > MAX_BATCH {
            return Err(InvalidateError::TooLarge {
                len: cmds.len(),
                max: MAX_BATCH,
            });
        }
        // the kernel converts in order and stops at the first command it refuses
        let (nth, scripted) = self.rec.call_n(HostOp::Invalidate);
        let mut scripted = scripted.err();
        let mut first_bad = cmds
            .iter()
            .position(|c| forwarding(c.opcode()) != Forwarding::Forward);
        let partial = self
            .rec
            .lock()
            .batch_faults
            .iter()
            .find(|f| f.nth == nth && f.index < cmds.len())
            .copied();
        if let Some(f) = partial {
            if first_bad.is_none_or(|b| f.index < b) {
                first_bad = Some(f.index);
                scripted = Some(f.errno);
            }
        }
        let (applied, errno) = match (first_bad, scripted) {
            (Some(i), Some(e)) if partial.is_some_and(|f| f.index == i) => (i, Some(e)),
            (Some(i), _) => (i, Some(Errno::EIO)),
            (None, Some(e)) => (0, Some(e)),
            (None, None) => (cmds.len(), None),
        };
        self.rec.push(Op::Invalidate {
            cmds: cmds.to_vec(),
            applied,
        });
        match errno {
            None => Ok(applied),
            Some(errno) => Err(InvalidateError::Rejected {
                op: HostOp::Invalidate,
                applied,
                index: applied,
                opcode: cmds.get(applied).map(|c| c.opcode()).unwrap_or(Opcode(0)),
                errno,
            }),
        }
    }

    fn teardown(&self) -> Result<(), TeardownError> {
        let mut failures = Vec::new();
        for (what, id) in [
            ("hwpt", self.bypass.0),
            ("hwpt", self.abort.0),
            ("viommu", self.viommu),
            ("hwpt", self.nest_parent),
        ] {
            if let Err(e) = self.destroy(what, id) {
                failures.push((HostOp::Destroy, id, e));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(TeardownError { failures })
        }
    }
}

/// A recorded device attach port.
#[derive(Debug, Clone)]
pub struct RecordingPort {
    rec: Recorder,
    dev: DevId,
}

impl RecordingPort {
    /// A bound device with iommufd id `dev`.
    pub fn new(rec: &Recorder, dev: u32) -> Self {
        Self {
            rec: rec.clone(),
            dev: DevId(dev),
        }
    }
}

impl AttachPort for RecordingPort {
    fn dev_id(&self) -> DevId {
        self.dev
    }

    fn attach(&self, hwpt: HwptId) -> Result<(), Errno> {
        self.rec.push(Op::Attach {
            dev: self.dev,
            hwpt,
        });
        self.rec.call(HostOp::Attach)
    }

    fn detach(&self) -> Result<(), Errno> {
        self.rec.push(Op::Detach { dev: self.dev });
        self.rec.call(HostOp::Detach)
    }
}

/// A recorded vEVENTQ fed with raw vEVENTQ bytes (one `Vec` per read(2)).
#[derive(Debug)]
pub struct RecordingEvents {
    rec: Recorder,
    id: u32,
    reads: EventFeeder,
    decoder: VeventDecoder,
}

/// A handle that queues reads for a [`RecordingEvents`] after it was moved into its owner.
#[derive(Debug, Clone, Default)]
pub struct EventFeeder(Arc<Mutex<VecDeque<Vec<u8>>>>);

impl EventFeeder {
    /// Queue what one read(2) will return.
    pub fn push_read(&self, bytes: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(bytes);
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

impl RecordingEvents {
    /// An empty queue.
    pub fn new(rec: &Recorder) -> Self {
        Self {
            rec: rec.clone(),
            id: rec.id(),
            reads: EventFeeder::default(),
            decoder: VeventDecoder::new(),
        }
    }

    /// Queue what one read(2) will return.
    pub fn push_read(&mut self, bytes: Vec<u8>) {
        self.reads.push_read(bytes);
    }

    /// A handle to queue reads later (the queue itself usually belongs to a vSMMU by then).
    pub fn feeder(&self) -> EventFeeder {
        self.reads.clone()
    }
}

impl HostEventSource for RecordingEvents {
    fn read_available(&mut self, out: &mut Vec<EventItem>) -> Result<usize, EventError> {
        let mut n = 0;
        while let Some(bytes) = self.reads.pop() {
            self.rec.push(Op::ReadEvents { bytes: bytes.len() });
            self.rec
                .call(HostOp::VeventqRead)
                .map_err(|errno| EventError::Host {
                    op: HostOp::VeventqRead,
                    errno,
                })?;
            n += self.decoder.decode(&bytes, out)?;
        }
        Ok(n)
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn close(self) -> Result<(), TeardownError> {
        self.rec.push(Op::Destroy {
            what: "veventq",
            id: self.id,
        });
        self.rec.call(HostOp::Destroy).map_err(|e| TeardownError {
            failures: vec![(HostOp::Destroy, self.id, e)],
        })
    }
}
