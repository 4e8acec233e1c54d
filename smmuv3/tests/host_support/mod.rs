//! A recording [`HostBackend`] with scriptable failures, and a Linux-driven device around it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use viommu_common::id::StreamId;
use viommu_common::testing::{guest_ram, RecordingIrq};
use viommu_smmuv3::caps::SmmuConfig;
use viommu_smmuv3::device::SmmuV3;
use viommu_smmuv3::host::{HostBackend, HostBatchError, HostStreamConfig, HostStreamError};
use viommu_smmuv3::spec::cmd::CmdEntry;
use viommu_smmuv3::trace::TraceRecord;
use vm_memory::GuestMemoryMmap;

pub const RAM: u64 = 0x4000_0000;
pub const RAM_SIZE: u64 = 64 << 20;
/// A host-backed (assigned) device.
pub const HOST_SID: u32 = 0x20;
/// An emulated device.
pub const EMU_SID: u32 = 0x10;

/// One backend call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `invalidate` with the raw command words.
    Invalidate(Vec<[u64; 2]>),
    /// `configure_stream`.
    Configure(u32, HostStreamConfig),
}

type Hook = Box<dyn Fn(&[CmdEntry]) + Send + Sync>;

/// Records every call; failures are scripted per call.
#[derive(Default)]
pub struct Fake {
    pub calls: Mutex<Vec<Call>>,
    /// Outcome of the next `invalidate` calls (`Some(i)`: fail at index i), front first.
    pub batch_results: Mutex<VecDeque<Option<usize>>>,
    /// Reject every `Translate` configuration.
    pub reject_translate: Mutex<bool>,
    /// Fail (host error) the next `configure_stream`.
    pub fail_configure: Mutex<bool>,
    pub max: usize,
    /// Runs inside every `invalidate`.
    pub hook: Mutex<Option<Hook>>,
}

impl Fake {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            ..Self::default()
        })
    }

    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn batches(&self) -> Vec<Vec<[u64; 2]>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| match c {
                Call::Invalidate(v) => Some(v.clone()),
                Call::Configure(..) => None,
            })
            .collect()
    }

    pub fn configs(&self) -> Vec<(u32, HostStreamConfig)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter_map(|c| match c {
                Call::Configure(s, c) => Some((*s, *c)),
                Call::Invalidate(_) => None,
            })
            .collect()
    }
}

impl HostBackend for Fake {
    fn invalidate(&self, cmds: &[CmdEntry]) -> Result<(), HostBatchError> {
        assert!(cmds.len() <= self.max.max(1), "batch above max_batch");
        assert!(!cmds.is_empty(), "empty batch");
        if let Some(h) = self.hook.lock().unwrap().as_ref() {
            h(cmds);
        }
        self.calls
            .lock()
            .unwrap()
            .push(Call::Invalidate(cmds.iter().map(|c| c.words()).collect()));
        match self.batch_results.lock().unwrap().pop_front().flatten() {
            None => Ok(()),
            Some(index) => Err(HostBatchError {
                index,
                reason: "scripted".into(),
            }),
        }
    }

    fn configure_stream(
        &self,
        sid: StreamId,
        cfg: &HostStreamConfig,
    ) -> Result<(), HostStreamError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Configure(sid.0, *cfg));
        if std::mem::take(&mut *self.fail_configure.lock().unwrap()) {
            return Err(HostStreamError::Failed {
                reason: "scripted".into(),
            });
        }
        if *self.reject_translate.lock().unwrap()
            && matches!(cfg, HostStreamConfig::Translate { .. })
        {
            return Err(HostStreamError::Rejected {
                reason: "stage 2 not supported".into(),
            });
        }
        Ok(())
    }

    fn max_batch(&self) -> usize {
        self.max
    }
}

pub type Dev<'a> = SmmuV3<&'a GuestMemoryMmap>;

pub fn ram() -> GuestMemoryMmap {
    guest_ram(RAM, RAM_SIZE as usize)
}

pub fn device(ram: &GuestMemoryMmap) -> (Dev<'_>, Arc<RecordingIrq>) {
    let irq = Arc::new(RecordingIrq::new());
    let smmu = SmmuV3::new(&SmmuConfig::default(), ram, irq.clone()).unwrap();
    (smmu, irq)
}

/// Install a tracer collecting every record.
pub fn collect(dev: &Dev<'_>) -> Arc<Mutex<Vec<TraceRecord>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    dev.set_tracer(Some(Arc::new(move |r: &TraceRecord| {
        l.lock().unwrap().push(r.clone())
    })));
    log
}
