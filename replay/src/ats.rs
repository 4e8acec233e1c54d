//! Replay extension for PCIe ATS (SMMUv3 only): Translation Requests, Translated transactions
//! and the invalidations an endpoint's ATC receives.
//!
//! | op | fields | meaning |
//! |---|---|---|
//! | `ats_request` | `dev`, `stream`, `substream` (optional PASID), `addr`, `read_only` (optional bool: NW = 1), `expect` (optional: `{"addr": OUT, "perms": P}` with either key optional, or `{"error": "UR"}` / `{"error": "CA"}`) | an endpoint's ATS Translation Request. `addr` of the result is the translated address of `addr` itself (range base + offset); `perms` is a string of `r`, `w`, `x` granted (`""`: the "R = W = 0" answer, no `addr`). `UR` = Unsupported Request, `CA` = Completer Abort |
//! | `translated` | the fields of `dma` | a transaction the endpoint marked Translated (its address came from its ATC); `expect` in the `dma` shapes |
//! | `expect_atc_inv` | `dev`, `stream`, `expect`: a list of `{"start": A, "last": B, "ssid": N (optional; absent = every PASID), "global": bool (optional, default false)}` | the invalidations the endpoint's ATC received (from CMD_ATC_INV) since the previous `expect_atc_inv` for that stream, in order; the list must match exactly (`[]`: none) |
//!
//! An endpoint has an ATC from its first `ats_request` on: the replay registers a recording ATC
//! for that stream then (the VMM's `register_atc`), so `expect_atc_inv` for a stream that never
//! sent a Translation Request is a failed check.

use serde_json::{json, Value};

use super::iopf::{expect_json, DmaOutcome};
use super::num::hex;
use super::parse::DmaExpect;

/// An ATS Translation Request in device-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtsSpec {
    /// PASID.
    pub substream: Option<u32>,
    /// Untranslated address.
    pub addr: u64,
    /// NW: read-only access requested.
    pub read_only: bool,
}

/// The completion of a Translation Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtsOutcome {
    /// Successful completion: the translated address of the request's address (`None` when
    /// nothing is granted) and the permissions granted (`r`, `w`, `x`).
    Granted {
        /// Translated address.
        addr: Option<u64>,
        /// Permissions granted.
        perms: String,
    },
    /// Unsuccessful completion: `"UR"` or `"CA"`, and the model's reason.
    Error {
        /// Completion status.
        status: &'static str,
        /// Why.
        reason: String,
    },
}

impl AtsOutcome {
    /// The JSON value printed as `actual`.
    pub fn to_json(&self) -> Value {
        match self {
            AtsOutcome::Granted {
                addr: Some(a),
                perms,
            } => json!({"addr": hex(*a), "perms": perms}),
            AtsOutcome::Granted { addr: None, perms } => json!({"perms": perms}),
            AtsOutcome::Error { status, reason } => json!({"error": status, "reason": reason}),
        }
    }

    /// Whether this outcome satisfies `e`.
    pub fn matches(&self, e: &AtsExpect) -> bool {
        match (e, self) {
            (
                AtsExpect::Granted { addr, perms },
                AtsOutcome::Granted {
                    addr: got_addr,
                    perms: got_perms,
                },
            ) => {
                addr.is_none_or(|a| *got_addr == Some(a))
                    && perms.as_ref().is_none_or(|p| p == got_perms)
            }
            (AtsExpect::Error(s), AtsOutcome::Error { status, .. }) => s == status,
            _ => false,
        }
    }
}

/// What an `ats_request` expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtsExpect {
    /// A successful completion with this translated address and/or these permissions.
    Granted {
        /// Translated address of the request's address.
        addr: Option<u64>,
        /// Permissions, normalised to the order `r`, `w`, `x`.
        perms: Option<String>,
    },
    /// `"UR"` or `"CA"`.
    Error(String),
}

impl AtsExpect {
    fn to_json(&self) -> Value {
        match self {
            AtsExpect::Granted { addr, perms } => {
                let mut m = serde_json::Map::new();
                if let Some(a) = addr {
                    m.insert("addr".into(), json!(hex(*a)));
                }
                if let Some(p) = perms {
                    m.insert("perms".into(), json!(p));
                }
                Value::Object(m)
            }
            AtsExpect::Error(s) => json!({"error": s}),
        }
    }
}

/// One ATC invalidation as the endpoint received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtcInvSpec {
    /// PASID, or `None`: every PASID and the non-PASID entries.
    pub ssid: Option<u32>,
    /// Global entries too.
    pub global: bool,
    /// First untranslated address covered.
    pub start: u64,
    /// Last untranslated address covered (inclusive).
    pub last: u64,
}

impl AtcInvSpec {
    fn to_json(self) -> Value {
        let mut v =
            json!({"start": hex(self.start), "last": hex(self.last), "global": self.global});
        if let (Some(s), Value::Object(m)) = (self.ssid, &mut v) {
            m.insert("ssid".into(), json!(s));
        }
        v
    }
}

/// An ATS operation (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtsOp {
    /// `ats_request`.
    Request {
        /// Device name.
        dev: String,
        /// StreamID.
        stream: u32,
        /// The request.
        req: AtsSpec,
        /// Expected completion.
        expect: Option<AtsExpect>,
    },
    /// `translated`.
    Translated {
        /// Device name.
        dev: String,
        /// The transaction (substream and privilege are ignored by the SMMUv3: Translated
        /// transactions are unprivileged data without a PASID).
        req: viommu_common::DmaRequest,
        /// Expected outcome.
        expect: Option<DmaExpect>,
    },
    /// `expect_atc_inv`.
    ExpectAtcInv {
        /// Device name.
        dev: String,
        /// StreamID.
        stream: u32,
        /// The invalidations expected, in order.
        expect: Vec<AtcInvSpec>,
    },
}

impl AtsOp {
    /// The operation's name as files spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            AtsOp::Request { .. } => "ats_request",
            AtsOp::Translated { .. } => "translated",
            AtsOp::ExpectAtcInv { .. } => "expect_atc_inv",
        }
    }

    /// The device the operation addresses.
    pub fn dev(&self) -> &str {
        match self {
            AtsOp::Request { dev, .. }
            | AtsOp::Translated { dev, .. }
            | AtsOp::ExpectAtcInv { dev, .. } => dev,
        }
    }

    /// Run the operation on `dev`: `(actual, ok, expect)` of its result line.
    pub fn exec(&self, dev: &dyn super::device::ReplayDevice) -> (Value, Option<bool>, Value) {
        match self {
            AtsOp::Request {
                stream,
                req,
                expect,
                ..
            } => {
                let out = dev.ats_request(*stream, req);
                let actual = match &out {
                    Ok(o) => o.to_json(),
                    Err(e) => json!({"unsupported": e}),
                };
                let ok = expect
                    .as_ref()
                    .map(|e| out.as_ref().is_ok_and(|o| o.matches(e)));
                (
                    actual,
                    ok,
                    expect.as_ref().map_or(Value::Null, AtsExpect::to_json),
                )
            }
            AtsOp::Translated { req, expect, .. } => {
                let out = dev.translated(req);
                let actual = match &out {
                    Ok(o) => o.to_json(),
                    Err(e) => json!({"unsupported": e}),
                };
                let ok = expect
                    .as_ref()
                    .map(|e| out.as_ref().is_ok_and(|o: &DmaOutcome| o.matches(e)));
                (actual, ok, expect.as_ref().map_or(Value::Null, expect_json))
            }
            AtsOp::ExpectAtcInv { stream, expect, .. } => {
                let out = dev.atc_invalidations(*stream);
                let actual = match &out {
                    Ok(v) => Value::Array(v.iter().map(|i| i.to_json()).collect()),
                    Err(e) => json!({"error": e}),
                };
                let ok = out.as_ref().is_ok_and(|v| v == expect);
                (
                    actual,
                    Some(ok),
                    Value::Array(expect.iter().map(|i| i.to_json()).collect()),
                )
            }
        }
    }
}
