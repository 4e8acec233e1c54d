//! Test helpers shared by unit tests, integration tests, benches and users (feature `test-utils`).

pub mod pgtable;
pub mod tools;

use std::sync::Mutex;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::traits::InterruptSink;

/// Guest RAM for tests: one region of `size` bytes at `base`.
///
/// # Panics
/// If the mapping cannot be created (a test environment problem).
pub fn guest_ram(base: u64, size: usize) -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(base), size)]).expect("create guest RAM")
}

/// An interrupt delivered to a [`RecordingIrq`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Irq {
    /// Wired line changed level.
    Line {
        /// Line number.
        line: u32,
        /// New level.
        level: bool,
    },
    /// MSI write.
    Msi {
        /// Doorbell address.
        addr: u64,
        /// Payload.
        data: u32,
    },
}

/// An [`InterruptSink`] that records every interrupt, for assertions.
#[derive(Debug, Default)]
pub struct RecordingIrq {
    log: Mutex<Vec<Irq>>,
}

impl RecordingIrq {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take everything recorded so far.
    pub fn take(&self) -> Vec<Irq> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Vec<Irq> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl InterruptSink for RecordingIrq {
    fn set_line(&self, line: u32, level: bool) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Irq::Line { line, level });
    }

    fn send_msi(&self, addr: u64, data: u32) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Irq::Msi { addr, data });
    }
}
