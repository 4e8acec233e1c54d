//! The PRI queue producer and PRG responses (IHI 0070 chapter 8, §4.5.2
//! CMD_PRI_RESP).
//!
//! A PCIe endpoint emulated by the VMM issues Page Requests (PPRs) through
//! [`SmmuV3::page_request`]; the SMMU writes them as 16-byte records into the guest's PRI queue
//! (PRIQ_BASE/PROD/CONS, page-1 PROD/CONS aliases) and signals the PRIQ interrupt (MSI per
//! PRIQ_IRQ_CFG0/1/2, or wired line [`lines::PRIQ`](crate::device::lines::PRIQ), gated by
//! IRQ_CTRL.PRIQ_IRQEN). The guest answers a Page Request Group with CMD_PRI_RESP; the endpoint
//! collects the answer with [`SmmuV3::pri_response`] (poll) or [`SmmuV3::wait_pri_response`]
//! (Condvar, from its own thread).
//!
//! Record layout (§8, Linux `PRIQ_0_*`/`PRIQ_1_*`): word 0 StreamID \[31:0\], SubstreamID
//! \[51:32\], Priv \[58\], Exec \[59\], Read \[60\], Write \[61\], Last \[62\], SSV \[63\]; word 1
//! PRGIndex \[8:0\], page address \[63:12\].
//!
//! Architectural answers without the guest (§8.1, §8.2):
//! - PRIQEN = 0 (or SMMUEN = 0) or GERROR.PRIQ_ABT_ERR active: every PPR is discarded and
//!   answered automatically with Response Failure, no PASID.
//! - Full queue: OVFLG toggles (once, until OVACKFLG acknowledges it) and, unlike the event
//!   queue, the **active overflow condition inhibits every new entry** until acknowledged.
//!   Discarded PPRs with Last = 1 are answered automatically with Success (PASID kept when the
//!   request had one and IDR3.PPS = 1); Last = 0 are dropped silently.
//! - A record write outside guest RAM raises GERROR.PRIQ_ABT_ERR (a synchronous abort here) and
//!   answers that PPR with Response Failure.
//!
//! Policies:
//! - STE.PPAR is not decoded: with IDR3.PPS = 0 an overflow auto-response to a PASID request
//!   keeps the PASID, as if STE.PPAR = 1 (Linux never relies on overflow responses).
//! - The PRIQ interrupt is signalled for every record written (no Last-only coalescing).
//! - Responses are remembered per (StreamID, PRGIndex) for groups that have a request
//!   outstanding, at most [`PRI_MAX_GROUPS`] (oldest answered groups are forgotten first, then
//!   the oldest outstanding); a CMD_PRI_RESP for a group with no request is a no-op.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use bitfield_struct::bitfield;

use viommu_common::id::{StreamId, SubstreamId};
use viommu_common::mem;

use crate::cmdq::command::PriResponse;
use crate::device::{lock, GuestRam, SmmuV3};
use crate::queue::QueueGeometry;
use crate::regs::IrqSource;
use crate::spec::regs::{Cr0, Gerror, QueueBase, QueueIndex};
use crate::trace::{Effect, Effects, TraceRecord};

/// Bytes per PRI queue record.
pub const PRI_SIZE: u64 = 16;

/// Page Request Groups whose response is tracked at once.
pub const PRI_MAX_GROUPS: usize = 4096;

/// PRI record word 0.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct PriW0 {
    /// StreamID (bits \[31:0\]).
    pub sid: u32,
    /// SubstreamID (bits \[51:32\]).
    #[bits(20)]
    pub ssid: u32,
    /// Bits \[57:52\]: reserved.
    #[bits(6)]
    __: u8,
    /// Priv (bit \[58\]): privileged access requested.
    pub perm_priv: bool,
    /// Exec (bit \[59\]).
    pub perm_exec: bool,
    /// Read (bit \[60\]).
    pub perm_read: bool,
    /// Write (bit \[61\]).
    pub perm_write: bool,
    /// Last (bit \[62\]): last request of its group.
    pub last: bool,
    /// SSV (bit \[63\]): the request carried a PASID.
    pub ssv: bool,
}

/// PRI record word 1.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct PriW1 {
    /// PRGIndex (bits \[8:0\]).
    #[bits(9)]
    pub prg_index: u16,
    /// Bits \[11:9\]: reserved.
    #[bits(3)]
    __: u8,
    /// Page address \[63:12\], stored shifted right by 12.
    #[bits(52)]
    pub page: u64,
}

/// A PCIe Page Request as an endpoint issues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PageRequest {
    /// PASID, if the request carries a PASID prefix.
    pub substream: Option<SubstreamId>,
    /// Page address (bits below 4 KiB are ignored).
    pub addr: u64,
    /// Read access requested.
    pub read: bool,
    /// Write access requested.
    pub write: bool,
    /// Execute access requested (meaningful with a PASID only).
    pub exec: bool,
    /// Privileged access requested (meaningful with a PASID only).
    pub privileged: bool,
    /// Last request of its group.
    pub last: bool,
    /// Page Request Group index (9 bits).
    pub group: u16,
}

impl PageRequest {
    /// The 16-byte PRI queue record for this request from `stream` (§8). Without a PASID, Exec
    /// and Priv are 0 as the architecture requires.
    pub fn encode(&self, stream: StreamId) -> [u64; 2] {
        let pasid = self.substream.is_some();
        let w0 = PriW0::new()
            .with_sid(stream.0)
            .with_ssid(self.substream.map_or(0, |s| s.0 & 0xF_FFFF))
            .with_perm_priv(pasid && self.privileged)
            .with_perm_exec(pasid && self.exec)
            .with_perm_read(self.read)
            .with_perm_write(self.write)
            .with_last(self.last)
            .with_ssv(pasid);
        let w1 = PriW1::new()
            .with_prg_index(self.group & 0x1FF)
            .with_page(self.addr >> 12);
        [w0.into_bits(), w1.into_bits()]
    }
}

/// A PRG Response as the endpoint receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrgResponse {
    /// Response code.
    pub code: PriResponse,
    /// PASID prefix of the response, if any.
    pub pasid: Option<SubstreamId>,
    /// Generated by the SMMU itself (queue disabled, overflow, abort), not by CMD_PRI_RESP.
    pub automatic: bool,
}

/// What happened to a page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageRequestOutcome {
    /// Written to the PRI queue; the guest will answer the group with CMD_PRI_RESP.
    Queued,
    /// Not written. `response` is the automatic response, if the architecture generates one
    /// (it is also what [`SmmuV3::pri_response`] returns for the group).
    Discarded {
        /// The automatic PRG response (None: silently ignored, Last = 0 during overflow).
        response: Option<PrgResponse>,
    },
}

/// Why a page request cannot be issued at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PriError {
    /// The SMMU does not advertise IDR0.PRI.
    #[error("the SMMU does not implement PRI (IDR0.PRI = 0)")]
    NotSupported,
    /// PRGIndex does not fit in 9 bits.
    #[error("PRG index {0} does not fit in 9 bits")]
    BadGroup(u16),
}

#[derive(Debug, Clone, Copy)]
struct Group {
    response: Option<PrgResponse>,
    seq: u64,
}

#[derive(Debug, Default)]
struct PriInner {
    groups: HashMap<(u32, u16), Group>,
    seq: u64,
}

impl PriInner {
    fn make_room(&mut self) {
        while self.groups.len() >= PRI_MAX_GROUPS {
            let victim = self
                .groups
                .iter()
                .min_by_key(|(_, g)| (g.response.is_none(), g.seq))
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    self.groups.remove(&k);
                }
                None => break,
            }
        }
    }

    fn open(&mut self, key: (u32, u16)) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(g) = self.groups.get_mut(&key) {
            g.response = None;
            g.seq = seq;
            return;
        }
        self.make_room();
        self.groups.insert(
            key,
            Group {
                response: None,
                seq,
            },
        );
    }

    fn answer(&mut self, key: (u32, u16), r: PrgResponse) {
        self.seq += 1;
        let seq = self.seq;
        if !self.groups.contains_key(&key) {
            self.make_room();
        }
        self.groups.insert(
            key,
            Group {
                response: Some(r),
                seq,
            },
        );
    }
}

/// Outstanding page request groups and their responses.
#[derive(Debug, Default)]
pub(crate) struct PriTable {
    inner: Mutex<PriInner>,
    cv: Condvar,
}

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// An endpoint's Page Request (PCIe PRI) from `stream`.
    ///
    /// # Errors
    /// [`PriError::NotSupported`] without IDR0.PRI, [`PriError::BadGroup`] for a PRGIndex
    /// above 511.
    pub fn page_request(
        &self,
        stream: StreamId,
        req: &PageRequest,
    ) -> Result<PageRequestOutcome, PriError> {
        if !self.caps.pri() {
            return Err(PriError::NotSupported);
        }
        if req.group > 0x1FF {
            return Err(PriError::BadGroup(req.group));
        }
        let key = (stream.0, req.group);
        let failure = PrgResponse {
            code: PriResponse::ResponseFailure,
            pasid: None,
            automatic: true,
        };
        let mut ctrl = lock(&self.ctrl);
        let cr0 = Cr0::from_bits(ctrl.cr0);
        let abt_active = {
            let irq = lock(&self.irq);
            Gerror::active(irq.gerror, irq.gerrorn).priq_abt_err()
        };
        lock(&self.pri.inner).open(key);
        if !(cr0.smmuen() && cr0.priqen()) || abt_active {
            // §8.2: every PPR is answered with Response Failure, without a PASID.
            drop(ctrl);
            self.respond_automatically(
                stream,
                req,
                failure,
                "PRI queue disabled or PRIQ_ABT_ERR active",
            );
            return Ok(PageRequestOutcome::Discarded {
                response: Some(failure),
            });
        }
        let max = self.caps.priq_log2_max();
        let g = QueueGeometry::from_base(QueueBase::from_bits(ctrl.priq.base), max, PRI_SIZE);
        let prod = QueueIndex::from_bits(ctrl.priq.prod);
        let cons = QueueIndex::from_bits(ctrl.priq.cons);
        let overflow_active = QueueIndex::overflow_pending(prod, cons);
        if overflow_active || g.is_full(ctrl.priq.prod, ctrl.priq.cons) {
            if !overflow_active {
                ctrl.priq.prod = prod.with_ovflg(!prod.ovflg()).into_bits();
            }
            let prod_now = ctrl.priq.prod;
            drop(ctrl);
            if !req.last {
                self.trace(|| TraceRecord::EventDropped {
                    event: pri_text(stream, req),
                    reason: format!("PRI queue overflow, PROD={prod_now:#010x}"),
                });
                return Ok(PageRequestOutcome::Discarded { response: None });
            }
            let r = PrgResponse {
                code: PriResponse::Success,
                pasid: req.substream.filter(|_| self.caps.idr1.ssidsize() > 0),
                automatic: true,
            };
            self.respond_automatically(stream, req, r, "PRI queue overflow (IHI 0070 §8.1)");
            return Ok(PageRequestOutcome::Discarded { response: Some(r) });
        }
        let addr = g.entry_addr(g.pos(ctrl.priq.prod));
        let [w0, w1] = req.encode(stream);
        let written = {
            let m = self.mem.ram();
            mem::write_u64_le(&*m, addr, w0).is_ok() && mem::write_u64_le(&*m, addr + 8, w1).is_ok()
        };
        if !written {
            drop(ctrl);
            self.raise_gerror(Gerror::new().with_priq_abt_err(true).into_bits());
            self.respond_automatically(
                stream,
                req,
                failure,
                "PRI record write aborted (PRIQ_ABT_ERR)",
            );
            return Ok(PageRequestOutcome::Discarded {
                response: Some(failure),
            });
        }
        let old = ctrl.priq.prod;
        ctrl.priq.prod = QueueIndex::from_bits(g.next(g.pos(old)))
            .with_ovflg(prod.ovflg())
            .into_bits();
        drop(ctrl);
        self.trace(|| TraceRecord::Event {
            pos: QueueIndex::from_bits(old).wrap_index(),
            event: pri_text(stream, req),
        });
        self.signal(IrqSource::Priq);
        Ok(PageRequestOutcome::Queued)
    }

    /// An automatic PRG response (§8.1, §8.2): deliver it and trace why.
    fn respond_automatically(
        &self,
        stream: StreamId,
        req: &PageRequest,
        r: PrgResponse,
        why: &str,
    ) {
        lock(&self.pri.inner).answer((stream.0, req.group), r);
        self.pri.cv.notify_all();
        self.trace(|| TraceRecord::EventDropped {
            event: pri_text(stream, req),
            reason: format!("{why}; automatic PRG response {:?}", r.code),
        });
    }

    /// CMD_PRI_RESP: deliver the guest's answer for group `prg_index` of `sid` to the endpoint.
    pub(crate) fn cmd_pri_resp(
        &self,
        sid: StreamId,
        ssid: Option<SubstreamId>,
        prg_index: u16,
        resp: PriResponse,
        fx: &mut Effects,
    ) {
        let key = (sid.0, prg_index);
        let mut t = lock(&self.pri.inner);
        if !t.groups.contains_key(&key) {
            fx.push(|| Effect::Nothing("no outstanding page request group"));
            return;
        }
        t.answer(
            key,
            PrgResponse {
                code: resp,
                pasid: ssid,
                automatic: false,
            },
        );
        drop(t);
        self.pri.cv.notify_all();
        fx.push(|| Effect::Pri { resp, prg_index });
    }

    /// The response to `stream`'s group `group`, if it has been answered (collected: reported
    /// once).
    pub fn pri_response(&self, stream: StreamId, group: u16) -> Option<PrgResponse> {
        let mut t = lock(&self.pri.inner);
        take_response(&mut t, (stream.0, group))
    }

    /// Wait up to `timeout` for the response to `stream`'s group `group`.
    pub fn wait_pri_response(
        &self,
        stream: StreamId,
        group: u16,
        timeout: Duration,
    ) -> Option<PrgResponse> {
        let deadline = Instant::now() + timeout;
        let mut t = lock(&self.pri.inner);
        loop {
            if let Some(r) = take_response(&mut t, (stream.0, group)) {
                return Some(r);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            t = match self.pri.cv.wait_timeout(t, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

fn take_response(t: &mut PriInner, key: (u32, u16)) -> Option<PrgResponse> {
    let r = t.groups.get(&key)?.response?;
    t.groups.remove(&key);
    Some(r)
}

fn pri_text(stream: StreamId, r: &PageRequest) -> String {
    let mut s = format!("PRI SID={stream}");
    if let Some(p) = r.substream {
        s.push_str(&format!(" SSID={p}"));
    }
    s.push_str(&format!(
        " addr={:#x} PRGI={:#x} R={} W={} X={} Priv={} Last={}",
        r.addr & !0xFFF,
        r.group,
        u8::from(r.read),
        u8::from(r.write),
        u8::from(r.exec),
        u8::from(r.privileged),
        u8::from(r.last)
    ));
    s
}

/// Save/restore of the tracked groups (see [`crate::snapshot`]).
impl PriTable {
    /// Every tracked group, oldest first: (StreamID, PRGIndex) and its response, if answered.
    pub(crate) fn saved_groups(&self) -> Vec<((u32, u16), Option<PrgResponse>)> {
        let inner = lock(&self.inner);
        let mut v: Vec<_> = inner
            .groups
            .iter()
            .map(|(k, g)| (g.seq, *k, g.response))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v.into_iter().map(|(_, k, r)| (k, r)).collect()
    }

    /// Replace the tracked groups with `groups` (oldest first), bounded as usual.
    pub(crate) fn restore_groups(&self, groups: &[((u32, u16), Option<PrgResponse>)]) {
        let mut inner = lock(&self.inner);
        *inner = PriInner::default();
        for (key, response) in groups {
            match response {
                Some(r) => inner.answer(*key, *r),
                None => inner.open(*key),
            }
        }
        drop(inner);
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field at the bit Linux's PRIQ_0_*/PRIQ_1_* masks read it from: SID [31:0], SSID
    /// [51:32], PERM_PRIV 58, PERM_EXEC 59, PERM_READ 60, PERM_WRITE 61, PRG_LAST 62, SSID_V 63;
    /// PRG_IDX [8:0], ADDR [63:12].
    #[test]
    fn test_pri_record_layout_matches_linux_masks() {
        let r = PageRequest {
            substream: Some(SubstreamId(0xABCDE)),
            addr: 0xFFFF_8000_1234_5678,
            read: true,
            write: true,
            exec: true,
            privileged: true,
            last: true,
            group: 0x1A5,
        };
        let [w0, w1] = r.encode(StreamId(0x1234_5678));
        assert_eq!(w0, 0xFC0A_BCDE_1234_5678);
        assert_eq!(w1, 0xFFFF_8000_1234_51A5);
        let plain = PageRequest {
            substream: None,
            exec: true,
            privileged: true,
            read: true,
            ..r
        };
        let [w0, _] = plain.encode(StreamId(7));
        assert_eq!(
            w0,
            1 << 60 | 1 << 61 | 1 << 62 | 7,
            "no PASID: SSV, Exec and Priv are 0"
        );
    }
}
