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

use serde::Deserialize;
use serde_json::{json, Value};

use crate::num::{self, hex};
use crate::parse::DmaExpect;

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

const PPR_EXPECT: [&str; 5] = ["queued", "dropped", "success", "invalid", "failure"];
const PRI_EXPECT: [&str; 4] = ["success", "invalid", "failure", "none"];

/// `stall_result`: what the endpoint of a stalled DMA sees now.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StallResult {
    /// Device name.
    pub dev: String,
    /// StreamID.
    #[serde(deserialize_with = "num::de")]
    pub stream: u32,
    /// STAG.
    #[serde(deserialize_with = "num::de")]
    pub stag: u16,
    /// Expected outcome.
    #[serde(default)]
    pub expect: Option<DmaExpect>,
}

/// `page_request`: an endpoint's PCIe Page Request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// Device name.
    pub dev: String,
    /// StreamID.
    #[serde(deserialize_with = "num::de")]
    pub stream: u32,
    /// PASID.
    #[serde(default, deserialize_with = "num::opt")]
    pub substream: Option<u32>,
    /// Page address.
    #[serde(deserialize_with = "num::de")]
    pub addr: u64,
    /// Access requested: a non-empty string of `r`, `w`, `x`.
    pub access: String,
    /// Privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Last request of the group.
    #[serde(default)]
    pub last: bool,
    /// PRG index (9 bits).
    #[serde(deserialize_with = "num::de")]
    pub group: u16,
    /// Expected outcome: `queued`, `dropped`, `success`, `invalid`, `failure`.
    #[serde(default)]
    pub expect: Option<String>,
}

impl PageRequest {
    /// The request in device-neutral terms.
    pub fn spec(&self) -> PprSpec {
        PprSpec {
            substream: self.substream,
            addr: self.addr,
            read: self.access.contains('r'),
            write: self.access.contains('w'),
            exec: self.access.contains('x'),
            privileged: self.privileged,
            last: self.last,
            group: self.group,
        }
    }

    /// Check the access letters, the PRG index and the expectation.
    ///
    /// # Errors
    /// The field at fault and why.
    pub fn validate(&self) -> Result<(), String> {
        let a = &self.access;
        if a.is_empty() || !a.chars().all(|c| matches!(c, 'r' | 'w' | 'x')) {
            return Err("field `access` must be a non-empty string of `r`, `w`, `x`".into());
        }
        check_group(self.group)?;
        one_of(self.expect.as_deref(), &PPR_EXPECT)
    }
}

/// `pri_response`: the PRG response an endpoint received.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriResponse {
    /// Device name.
    pub dev: String,
    /// StreamID.
    #[serde(deserialize_with = "num::de")]
    pub stream: u32,
    /// PRG index (9 bits).
    #[serde(deserialize_with = "num::de")]
    pub group: u16,
    /// Expected response: `success`, `invalid`, `failure`, `none`.
    #[serde(default)]
    pub expect: Option<String>,
}

impl PriResponse {
    /// Check the PRG index and the expectation.
    ///
    /// # Errors
    /// The field at fault and why.
    pub fn validate(&self) -> Result<(), String> {
        check_group(self.group)?;
        one_of(self.expect.as_deref(), &PRI_EXPECT)
    }
}

fn check_group(g: u16) -> Result<(), String> {
    if g > 0x1FF {
        return Err(format!("field `group` {g:#x} is not a 9-bit PRG index"));
    }
    Ok(())
}

fn one_of(expect: Option<&str>, allowed: &[&str]) -> Result<(), String> {
    match expect {
        Some(s) if !allowed.contains(&s) => Err(format!(
            "field `expect` must be one of {allowed:?}, not {s:?}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{PprSpec, PriResponse, StallResult};
    use crate::parse::{parse_line, parse_op as op, DmaExpect, Op};

    /// `dma` accepts `{"stalled": true}`; the three new ops parse their fields.
    #[test]
    fn test_parse_iopf_ops() {
        let Op::Dma(d) = op(
            r#"{"op":"dma","dev":"d","stream":1,"addr":0,"size":4,"access":"read","expect":{"stalled":true}}"#,
        ) else {
            panic!()
        };
        assert_eq!(d.expect, Some(DmaExpect::Stalled));
        assert_eq!(
            op(
                r#"{"op":"stall_result","dev":"d","stream":"0x10","stag":3,"expect":{"addr":"0x1000"}}"#
            ),
            Op::StallResult(StallResult {
                dev: "d".into(),
                stream: 0x10,
                stag: 3,
                expect: Some(DmaExpect::Addr(0x1000)),
            })
        );
        let Op::PageRequest(p) = op(
            r#"{"op":"page_request","dev":"d","stream":2,"substream":5,"addr":"0x7000","access":"rx","privileged":true,"last":true,"group":"0x1ff","expect":"queued"}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (p.dev.as_str(), p.stream, p.expect.as_deref()),
            ("d", 2, Some("queued"))
        );
        assert_eq!(
            p.spec(),
            PprSpec {
                substream: Some(5),
                addr: 0x7000,
                read: true,
                write: false,
                exec: true,
                privileged: true,
                last: true,
                group: 0x1FF,
            }
        );
        assert_eq!(
            op(r#"{"op":"pri_response","dev":"d","stream":2,"group":7,"expect":"none"}"#),
            Op::PriResponse(PriResponse {
                dev: "d".into(),
                stream: 2,
                group: 7,
                expect: Some("none".into()),
            })
        );
    }

    /// Out-of-range PRG indices and STAGs, bad access strings and expectations are malformed.
    #[test]
    fn test_parse_iopf_errors() {
        for bad in [
            r#"{"op":"page_request","dev":"d","stream":2,"addr":0,"access":"rw","group":512}"#,
            r#"{"op":"page_request","dev":"d","stream":2,"addr":0,"access":"q","group":1}"#,
            r#"{"op":"page_request","dev":"d","stream":2,"addr":0,"access":"r","group":1,"expect":"maybe"}"#,
            r#"{"op":"stall_result","dev":"d","stream":1,"stag":65536}"#,
            r#"{"op":"pri_response","dev":"d","stream":1,"group":1,"expect":"queued"}"#,
            r#"{"op":"stall_result","dev":"d","stream":1,"stag":1,"expect":{"stalled":false}}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
