//! Host event records into the guest event queue.
//!
//! The host reports faults of host-backed streams (for iommufd: the vEVENTQ) as 32-byte
//! SMMUv3 event records whose StreamID is already the guest's. They enter the guest event
//! queue through the same producer as the model's own events: discarded while CR0.EVENTQEN or
//! CR0.SMMUEN is 0, the EVENTQ interrupt (MSI or wired line) after the record is written, and a
//! full queue drops the record and toggles EVENTQ_PROD.OVFLG.
//!
//! Lost host records (a gap in the host's sequence, or its overflow report) are mapped to the
//! guest's overflow flag through the same protocol (IHI 0070 §7.4): OVFLG toggles once and not
//! again until the guest acknowledges through EVENTQ_CONS.OVACKFLG. The guest-visible meaning,
//! "event records were lost", is the same, and Linux logs it.

use std::sync::atomic::Ordering;

use super::{HostRecord, LostOutcome};
use crate::device::{lock, GuestRam, SmmuV3};
use crate::spec::evt::EvtEntry;
use crate::trace::TraceRecord;

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Write a host event record (words 0-3, StreamID already the guest's) into the guest event
    /// queue and signal it, as for the model's own events.
    pub fn inject_host_event(&self, record: [u64; 4]) {
        self.trace(|| TraceRecord::Host(HostRecord::Event { w0: record[0] }));
        let entry = EvtEntry::from_words(record);
        let bytes: [u8; 32] = zerocopy::transmute!(entry);
        self.record_event(&bytes, || {
            format!(
                "host event id={:#04x} sid={:#x} words {:#018x} {:#018x} {:#018x} {:#018x}",
                record[0] & 0xff,
                record[0] >> 32,
                record[0],
                record[1],
                record[2],
                record[3]
            )
        });
    }

    /// The host lost event records: set the guest queue's overflow flag (toggle OVFLG unless an
    /// overflow is already unacknowledged). Ignored while the event queue is disabled, like the
    /// records themselves. Counted as one dropped record in [`SmmuV3::stats`] (the host may
    /// have lost more).
    pub fn host_events_lost(&self) -> LostOutcome {
        let outcome = {
            let mut q = lock(&self.evtq);
            if !q.enabled {
                LostOutcome::Disabled
            } else if q.regs.signal_overflow() {
                LostOutcome::Toggled
            } else {
                LostOutcome::Outstanding
            }
        };
        if outcome != LostOutcome::Disabled {
            self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.trace(|| TraceRecord::Host(HostRecord::Lost(outcome)));
        outcome
    }
}
