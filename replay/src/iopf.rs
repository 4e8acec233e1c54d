//! Replay extension for I/O page faults: stalled DMA and PCIe PRI (SMMUv3 only).
//!
//! | op | fields | meaning |
//! |---|---|---|
//! | `dma` | as in the format, plus `expect` `{"stalled": true}` | the transaction is held by the stall model; the result line says `{"stalled": STAG, "fault": NAME}` |
//! | `stall_result` | `dev`, `stream`, `stag`, `expect` (optional: `{"addr": OUT}`, `{"fault": true}`, `{"fault": NAME}`, `{"stalled": true}`) | what the endpoint that issued the stalled DMA now sees: the retried translation, the fault it was terminated with, or still stalled. A resolved result is reported once (like the device API) |
//! | `page_request` | `dev`, `stream`, `substream` (optional PASID), `addr`, `access` (string of `r`, `w`, `x`, e.g. `"rw"`), `privileged` (optional), `last` (optional bool), `group` (PRG index), `expect` (optional: `"queued"`, `"dropped"`, or an automatic response `"success"`, `"invalid"`, `"failure"`) | an endpoint's PCIe Page Request |
//! | `pri_response` | `dev`, `stream`, `group`, `expect` (optional: `"success"`, `"invalid"`, `"failure"`, `"none"`) | the PRG response the endpoint has received for the group (from CMD_PRI_RESP or automatic); reported once |
//!
//! STAGs are allocated by the SMMUv3 model from 0 upwards, so a scenario file can RESUME a
//! stall it provoked with a known STAG (and check it in the event record with `read_mem`).

use serde_json::{json, Value};

use super::num::hex;
use super::parse::DmaExpect;

/// The outcome of a DMA (or of a stalled DMA later) on a device with a stall model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaOutcome {
    /// Translated to this output address.
    Addr(u64),
    /// Faulted / terminated, with the architectural fault name.
    Fault(String),
    /// Held by the stall model under this STAG (`fault`: the event recorded, when known).
    Stalled {
        /// The STAG.
        stag: u16,
        /// The event recorded.
        fault: Option<String>,
    },
    /// (`stall_result`) no such stall: never existed or already reported.
    Unknown,
}

impl DmaOutcome {
    /// The JSON value printed as `actual`.
    pub fn to_json(&self) -> Value {
        match self {
            DmaOutcome::Addr(a) => json!({"addr": hex(*a)}),
            DmaOutcome::Fault(f) => json!({"fault": f}),
            DmaOutcome::Stalled {
                stag,
                fault: Some(f),
            } => json!({"stalled": stag, "fault": f}),
            DmaOutcome::Stalled { stag, fault: None } => json!({"stalled": stag}),
            DmaOutcome::Unknown => json!({"unknown": true}),
        }
    }

    /// Whether this outcome satisfies `e`.
    pub fn matches(&self, e: &DmaExpect) -> bool {
        match (e, self) {
            (DmaExpect::Addr(a), DmaOutcome::Addr(got)) => a == got,
            (DmaExpect::AnyFault, DmaOutcome::Fault(_)) => true,
            (DmaExpect::Fault(name), DmaOutcome::Fault(got)) => name == got,
            (DmaExpect::Stalled, DmaOutcome::Stalled { .. }) => true,
            _ => false,
        }
    }
}

/// The JSON form of a `dma`-style expectation.
pub fn expect_json(e: &DmaExpect) -> Value {
    match e {
        DmaExpect::Addr(a) => json!({"addr": hex(*a)}),
        DmaExpect::AnyFault => json!({"fault": true}),
        DmaExpect::Fault(name) => json!({"fault": name}),
        DmaExpect::Stalled => json!({"stalled": true}),
    }
}

/// A PCIe Page Request in device-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PprSpec {
    /// PASID.
    pub substream: Option<u32>,
    /// Page address.
    pub addr: u64,
    /// Read requested.
    pub read: bool,
    /// Write requested.
    pub write: bool,
    /// Execute requested.
    pub exec: bool,
    /// Privileged.
    pub privileged: bool,
    /// Last request of the group.
    pub last: bool,
    /// PRG index.
    pub group: u16,
}

/// An I/O-page-fault operation (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IopfOp {
    /// `stall_result`.
    StallResult {
        /// Device name.
        dev: String,
        /// StreamID.
        stream: u32,
        /// STAG.
        stag: u16,
        /// Expected outcome.
        expect: Option<DmaExpect>,
    },
    /// `page_request`.
    PageRequest {
        /// Device name.
        dev: String,
        /// StreamID.
        stream: u32,
        /// The request.
        req: PprSpec,
        /// Expected outcome: `queued`, `dropped`, `success`, `invalid`, `failure`.
        expect: Option<String>,
    },
    /// `pri_response`.
    PriResponse {
        /// Device name.
        dev: String,
        /// StreamID.
        stream: u32,
        /// PRG index.
        group: u16,
        /// Expected response: `success`, `invalid`, `failure`, `none`.
        expect: Option<String>,
    },
}

impl IopfOp {
    /// The operation's name as files spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            IopfOp::StallResult { .. } => "stall_result",
            IopfOp::PageRequest { .. } => "page_request",
            IopfOp::PriResponse { .. } => "pri_response",
        }
    }

    /// The device the operation addresses.
    pub fn dev(&self) -> &str {
        match self {
            IopfOp::StallResult { dev, .. }
            | IopfOp::PageRequest { dev, .. }
            | IopfOp::PriResponse { dev, .. } => dev,
        }
    }

    /// Run the operation on `dev`: `(actual, ok, expect)` of its result line.
    pub fn exec(&self, dev: &dyn super::device::ReplayDevice) -> (Value, Option<bool>, Value) {
        match self {
            IopfOp::StallResult {
                stream,
                stag,
                expect,
                ..
            } => {
                let out = dev.stall_result(*stream, *stag);
                let actual = match &out {
                    Ok(o) => o.to_json(),
                    Err(e) => json!({"error": e}),
                };
                let ok = expect
                    .as_ref()
                    .map(|e| out.as_ref().is_ok_and(|o| o.matches(e)));
                (actual, ok, expect.as_ref().map_or(Value::Null, expect_json))
            }
            IopfOp::PageRequest {
                stream,
                req,
                expect,
                ..
            } => named(dev.page_request(*stream, req), expect),
            IopfOp::PriResponse {
                stream,
                group,
                expect,
                ..
            } => named(
                dev.pri_response(*stream, *group)
                    .map(|r| r.unwrap_or_else(|| "none".into())),
                expect,
            ),
        }
    }
}

fn named(out: Result<String, String>, expect: &Option<String>) -> (Value, Option<bool>, Value) {
    let actual = match &out {
        Ok(s) => json!(s),
        Err(e) => json!({"error": e}),
    };
    let ok = expect
        .as_ref()
        .map(|e| out.as_ref().is_ok_and(|got| got == e));
    (
        actual,
        ok,
        expect.as_ref().map_or(Value::Null, |e| json!(e)),
    )
}
