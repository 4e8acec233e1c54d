//! The event-queue producer (IHI 0070 §7.2, §7.4).
//!
//! Writes 32-byte event records into the guest's event queue and maintains EVENTQ_PROD:
//!
//! - records are discarded while the queue is disabled (CR0.EVENTQEN = 0 or CR0.SMMUEN = 0);
//! - a **full queue drops the record** and toggles EVENTQ_PROD.OVFLG, but only if no overflow is
//!   outstanding (PROD.OVFLG == CONS.OVACKFLG); the guest acknowledges by copying OVFLG into
//!   EVENTQ_CONS.OVACKFLG. A full queue never raises GERROR.EVENTQ_ABT_ERR;
//! - GERROR.EVENTQ_ABT_ERR is raised only when the record write itself fails (the queue lies
//!   outside guest RAM);
//! - order: write the record, then advance PROD, then signal (the device signals after this
//!   module returns [`Produced::Written`]).
//!
//! The state here is plain data ([`EvtqState`]) so it can be saved and restored.

use vm_memory::GuestMemoryBackend;

use viommu_common::mem;

use std::sync::atomic::Ordering;

use crate::device::{lock, GuestRam, SmmuV3};
use crate::queue::QueueGeometry;
use crate::regs::IrqSource;
use crate::spec::regs::{Gerror, QueueBase, QueueIndex};
use crate::trace::TraceRecord;

/// Bytes per event record.
pub const EVENT_SIZE: u64 = 32;

/// Architectural state of the event queue: its three registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EvtqState {
    /// EVENTQ_BASE.
    pub base: u64,
    /// EVENTQ_PROD (WR + wrap, OVFLG \[31\]); written by the SMMU, and by software while disabled.
    pub prod: u32,
    /// EVENTQ_CONS (RD + wrap, OVACKFLG \[31\]); written by software.
    pub cons: u32,
}

/// What happened to a record handed to [`EvtqState::produce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Produced {
    /// Written at `addr`; PROD advanced from `old_prod` to `new_prod`.
    Written {
        /// Entry address.
        addr: u64,
        /// EVENTQ_PROD before.
        old_prod: u32,
        /// EVENTQ_PROD after.
        new_prod: u32,
    },
    /// The queue was full: the record was dropped. `toggled` says whether OVFLG was toggled
    /// (it is not while an earlier overflow is unacknowledged).
    Overflow {
        /// OVFLG toggled by this drop.
        toggled: bool,
        /// EVENTQ_PROD after.
        prod: u32,
    },
    /// The record write hit memory outside guest RAM: raise GERROR.EVENTQ_ABT_ERR.
    Abort {
        /// Entry address that could not be written.
        addr: u64,
    },
}

impl EvtqState {
    /// The queue geometry with LOG2SIZE clamped to `max_log2size` (IDR1.EVENTQS).
    pub fn geometry(&self, max_log2size: u32) -> QueueGeometry {
        QueueGeometry::from_base(QueueBase::from_bits(self.base), max_log2size, EVENT_SIZE)
    }

    /// Number of records written and not yet consumed.
    pub fn pending(&self, max_log2size: u32) -> u32 {
        self.geometry(max_log2size).used(self.prod, self.cons)
    }

    /// Records were lost: toggle OVFLG, but only when the previous overflow has been
    /// acknowledged (OVFLG == OVACKFLG, IHI 0070 §7.4). Returns whether it toggled.
    pub fn signal_overflow(&mut self) -> bool {
        // IHI 0070 §7.4: overflow is signalled by toggling OVFLG only when the previous
        // overflow has been acknowledged (OVFLG == OVACKFLG).
        let prod = QueueIndex::from_bits(self.prod);
        let toggled = !QueueIndex::overflow_pending(prod, QueueIndex::from_bits(self.cons));
        if toggled {
            self.prod = prod.with_ovflg(!prod.ovflg()).into_bits();
        }
        toggled
    }

    /// Append `record` to the queue (the caller has checked the queue is enabled).
    pub fn produce<M: GuestMemoryBackend + ?Sized>(
        &mut self,
        mem: &M,
        max_log2size: u32,
        record: &[u8; 32],
    ) -> Produced {
        let g = self.geometry(max_log2size);
        let prod = QueueIndex::from_bits(self.prod);
        if g.is_full(self.prod, self.cons) {
            let toggled = self.signal_overflow();
            return Produced::Overflow {
                toggled,
                prod: self.prod,
            };
        }
        let addr = g.entry_addr(self.prod);
        if mem::write_bytes(mem, addr, record).is_err() {
            return Produced::Abort { addr };
        }
        let old_prod = self.prod;
        let next = g.next(g.pos(self.prod));
        self.prod = QueueIndex::from_bits(next)
            .with_ovflg(prod.ovflg())
            .into_bits();
        Produced::Written {
            addr,
            old_prod,
            new_prod: self.prod,
        }
    }
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Record `event` in the event queue (see [`SmmuV3::record_event`]).
    pub(crate) fn record(&self, event: &crate::event::Event) {
        let entry = event.encode();
        let bytes: [u8; 32] = zerocopy::transmute!(entry);
        self.record_event(&bytes, || event.to_string());
    }

    /// Write a 32-byte event record to the event queue and signal EVENTQ (IHI 0070 §3.5, §7.2).
    ///
    /// `describe` renders the event for the trace. Records are discarded while the queue is
    /// disabled; a full queue drops the record and sets the overflow flag; a write outside guest
    /// RAM raises GERROR.EVENTQ_ABT_ERR.
    pub(crate) fn record_event(&self, record: &[u8; 32], describe: impl Fn() -> String) {
        let max = u32::from(self.caps.idr1.eventqs());
        let produced = {
            let mut q = lock(&self.evtq);
            if !q.enabled {
                drop(q);
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: describe(),
                    reason: "event queue disabled".into(),
                });
                return;
            }
            let mem = self.mem.ram();
            q.regs.produce(&*mem, max, record)
        };
        match produced {
            Produced::Written { old_prod, .. } => {
                self.counters.events.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::Event {
                    pos: QueueIndex::from_bits(old_prod).wrap_index(),
                    event: describe(),
                });
                self.signal(IrqSource::Eventq);
            }
            Produced::Overflow { toggled, prod } => {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: describe(),
                    reason: if toggled {
                        format!("queue full, OVFLG toggled, PROD={prod:#010x}")
                    } else {
                        "queue full, overflow already signalled".into()
                    },
                });
            }
            Produced::Abort { addr } => {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                self.trace(|| TraceRecord::EventDropped {
                    event: describe(),
                    reason: format!("write abort at {addr:#x}"),
                });
                self.raise_gerror(Gerror::new().with_eventq_abt_err(true).into_bits());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use viommu_common::testing::guest_ram;

    const BASE: u64 = 0x1000_0000;

    fn q(log2: u64) -> EvtqState {
        EvtqState {
            base: BASE | log2,
            prod: 0,
            cons: 0,
        }
    }

    fn rec(id: u8) -> [u8; 32] {
        let mut r = [0u8; 32];
        r[0] = id;
        r
    }

    /// Records land at base + 32 * index and PROD advances with its wrap bit.
    #[test]
    fn test_evtq_write_positions() {
        let m = guest_ram(BASE, 0x1000);
        let mut s = q(1);
        assert!(matches!(
            s.produce(&m, 19, &rec(0x10)),
            Produced::Written {
                addr: BASE,
                old_prod: 0,
                new_prod: 1
            }
        ));
        s.cons = 1;
        s.produce(&m, 19, &rec(0x11));
        assert_eq!(s.prod, 0b10);
        s.cons = 0b10;
        // index wraps to 0 with wrap bit 1 -> position 0b10 written at entry 0.
        assert!(matches!(
            s.produce(&m, 19, &rec(0x12)),
            Produced::Written { addr: BASE, .. }
        ));
        assert_eq!(s.prod, 0b11);
        assert_eq!(mem::read_u32_le(&m, BASE).unwrap(), 0x12);
        assert_eq!(mem::read_u32_le(&m, BASE + 32).unwrap(), 0x11);
    }

    /// A full queue drops, toggles OVFLG once, and toggles again only after the guest
    /// acknowledges through OVACKFLG; it never reports an abort.
    #[test]
    fn test_evtq_overflow_toggles_once_until_acked() {
        let m = guest_ram(BASE, 0x1000);
        let mut s = q(1);
        s.produce(&m, 19, &rec(1));
        s.produce(&m, 19, &rec(2));
        assert_eq!(s.prod, 0b10);
        assert_eq!(
            s.produce(&m, 19, &rec(3)),
            Produced::Overflow {
                toggled: true,
                prod: 0x8000_0002
            }
        );
        assert_eq!(
            s.produce(&m, 19, &rec(4)),
            Produced::Overflow {
                toggled: false,
                prod: 0x8000_0002
            }
        );
        // The driver drains and acknowledges: CONS = PROD incl. the flag.
        s.cons = 0x8000_0002;
        assert!(matches!(
            s.produce(&m, 19, &rec(5)),
            Produced::Written {
                new_prod: 0x8000_0003,
                ..
            }
        ));
        s.produce(&m, 19, &rec(6));
        assert_eq!(
            s.produce(&m, 19, &rec(7)),
            Produced::Overflow {
                toggled: true,
                prod: 0x0000_0000
            }
        );
    }

    /// A queue outside guest RAM is an abort (EVENTQ_ABT_ERR) and PROD does not move.
    #[test]
    fn test_evtq_write_outside_ram_aborts() {
        let m = guest_ram(BASE, 0x1000);
        let mut s = EvtqState {
            base: 0x4000_0000 | 3,
            prod: 0,
            cons: 0,
        };
        assert_eq!(
            s.produce(&m, 19, &rec(1)),
            Produced::Abort { addr: 0x4000_0000 }
        );
        assert_eq!(s.prod, 0);
    }
}
