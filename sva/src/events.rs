//! Decoding the vEVENTQ byte stream: `{u32 flags, u32 sequence}` headers, each followed by a
//! 32-byte SMMUv3 event record unless it is a LOST_EVENTS header.
//!
//! Every event the kernel produced, delivered or dropped, consumes one sequence number (mod 2^31).
//! So a jump from `s` to `s + d` means `d − 1` records were lost, and a LOST_EVENTS header with
//! sequence `s` accounts for every number up to and including `s`. Both are surfaced as
//! [`EventItem::Lost`] with the exact count, in stream order.

use viommu_smmuv3::spec::evt::{EventId, EvtEntry};
use zerocopy::FromBytes;

use crate::error::EventError;
use crate::spec::event::{VeventHeader, VEVENTQ_FLAG_LOST_EVENTS, VEVENT_SEQUENCE_MODULUS};

/// One host event, its StreamID already the guest's vSID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostEvent {
    /// The kernel's sequence number.
    pub sequence: u32,
    /// The record, ready to copy into the guest EVENTQ.
    pub record: EvtEntry,
}

impl HostEvent {
    /// Event ID.
    pub const fn id(&self) -> EventId {
        self.record.w0.event_id()
    }
    /// The vSID.
    pub const fn vsid(&self) -> u32 {
        self.record.w0.sid()
    }
    /// The input address.
    pub const fn input_addr(&self) -> u64 {
        self.record.w2.input_addr()
    }
}

/// A decoded vEVENTQ item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventItem {
    /// A record.
    Record(HostEvent),
    /// `count` records were dropped by the host before this point.
    Lost {
        /// How many.
        count: u32,
    },
}

/// Stateful decoder (sequence tracking spans reads).
#[derive(Debug, Clone, Default)]
pub struct VeventDecoder {
    next: Option<u32>,
}

impl VeventDecoder {
    /// A decoder that has seen nothing yet (the first sequence number is taken as a start).
    pub const fn new() -> Self {
        Self { next: None }
    }

    fn gap(&self, seq: u32) -> u32 {
        match self.next {
            None => 0,
            Some(n) => {
                ((u64::from(seq) + VEVENT_SEQUENCE_MODULUS - u64::from(n))
                    % VEVENT_SEQUENCE_MODULUS) as u32
            }
        }
    }

    fn advance(&mut self, seq: u32) {
        self.next = Some(((u64::from(seq) + 1) % VEVENT_SEQUENCE_MODULUS) as u32);
    }

    /// Decode one read(2) worth of bytes, appending to `out`. Returns the number of items added.
    /// A truncated trailing record is an error; items before it are still appended.
    pub fn decode(
        &mut self,
        mut bytes: &[u8],
        out: &mut Vec<EventItem>,
    ) -> Result<usize, EventError> {
        let start = out.len();
        let total = bytes.len();
        while !bytes.is_empty() {
            let offset = total - bytes.len();
            let Ok((hdr, rest)) = VeventHeader::read_from_prefix(bytes) else {
                return Err(EventError::Truncated {
                    offset,
                    len: bytes.len(),
                });
            };
            if hdr.flags & VEVENTQ_FLAG_LOST_EVENTS != 0 {
                // the header stands for the dropped event that carried its sequence number
                let count = self.gap(hdr.sequence).saturating_add(1);
                out.push(EventItem::Lost { count });
                self.advance(hdr.sequence);
                bytes = rest;
                continue;
            }
            let Ok((record, rest)) = EvtEntry::read_from_prefix(rest) else {
                return Err(EventError::Truncated {
                    offset,
                    len: bytes.len(),
                });
            };
            let gap = self.gap(hdr.sequence);
            if gap != 0 {
                out.push(EventItem::Lost { count: gap });
            }
            self.advance(hdr.sequence);
            out.push(EventItem::Record(HostEvent {
                sequence: hdr.sequence,
                record,
            }));
            bytes = rest;
        }
        Ok(out.len() - start)
    }
}

/// Encode a vEVENTQ stream (feature `test-utils`: tests and the recording backend): `(sequence, Some(record))` for
/// an event, `(sequence, None)` for a LOST_EVENTS header.
#[cfg(any(test, feature = "test-utils"))]
pub fn encode_stream(items: &[(u32, Option<EvtEntry>)]) -> Vec<u8> {
    use zerocopy::IntoBytes;
    const HDR: usize = core::mem::size_of::<VeventHeader>();
    const REC: usize = core::mem::size_of::<EvtEntry>();
    let mut v = Vec::with_capacity(items.len() * (HDR + REC));
    for (seq, rec) in items {
        let flags = if rec.is_some() {
            0
        } else {
            VEVENTQ_FLAG_LOST_EVENTS
        };
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&seq.to_le_bytes());
        if let Some(r) = rec {
            v.extend_from_slice(r.as_bytes());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(vsid: u32, addr: u64) -> EvtEntry {
        EvtEntry::from_words([0x10 | u64::from(vsid) << 32, 1 << 35, addr, 0])
    }

    #[test]
    fn records_decode_with_vsid_and_address() {
        let mut d = VeventDecoder::new();
        let mut out = Vec::new();
        let bytes = encode_stream(&[
            (0, Some(fault(0x42, 0x1000))),
            (1, Some(fault(0x42, 0x1004))),
        ]);
        assert_eq!(d.decode(&bytes, &mut out), Ok(2));
        let EventItem::Record(e) = out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (e.id(), e.vsid(), e.input_addr(), e.sequence),
            (EventId::F_TRANSLATION, 0x42, 0x1004, 1)
        );
        assert!(e.record.w1.rnw());
    }

    #[test]
    fn sequence_gap_reports_exact_loss() {
        let mut d = VeventDecoder::new();
        let mut out = Vec::new();
        let _ = d.decode(&encode_stream(&[(5, Some(fault(1, 0)))]), &mut out);
        let _ = d.decode(&encode_stream(&[(9, Some(fault(1, 4)))]), &mut out);
        assert_eq!(out[1], EventItem::Lost { count: 3 });
    }

    #[test]
    fn lost_events_header_counts_itself_and_the_gap() {
        let mut d = VeventDecoder::new();
        let mut out = Vec::new();
        let bytes = encode_stream(&[(0, Some(fault(1, 0))), (4, None), (5, Some(fault(1, 8)))]);
        assert_eq!(d.decode(&bytes, &mut out), Ok(3));
        assert_eq!(out[1], EventItem::Lost { count: 4 });
        assert!(matches!(
            out[2],
            EventItem::Record(HostEvent { sequence: 5, .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_two_to_the_31() {
        let mut d = VeventDecoder::new();
        let mut out = Vec::new();
        let max = i32::MAX as u32;
        let bytes = encode_stream(&[
            (max - 1, Some(fault(1, 0))),
            (max, Some(fault(1, 0))),
            (0, Some(fault(1, 0))),
            (2, Some(fault(1, 0))),
        ]);
        assert_eq!(d.decode(&bytes, &mut out), Ok(5));
        assert_eq!(out[3], EventItem::Lost { count: 1 });
    }

    #[test]
    fn truncated_record_is_an_error_after_the_whole_ones() {
        let mut d = VeventDecoder::new();
        let mut out = Vec::new();
        let mut bytes = encode_stream(&[(0, Some(fault(1, 0))), (1, Some(fault(1, 0)))]);
        bytes.truncate(40 + 20);
        assert_eq!(
            d.decode(&bytes, &mut out),
            Err(EventError::Truncated {
                offset: 40,
                len: 20
            })
        );
        assert_eq!(out.len(), 1);
        let mut out = Vec::new();
        assert_eq!(
            VeventDecoder::new().decode(&[1, 2, 3], &mut out),
            Err(EventError::Truncated { offset: 0, len: 3 })
        );
    }
}
