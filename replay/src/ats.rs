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

use serde::Deserialize;
use serde_json::{json, Value};

use crate::num::{self, hex};

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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AtsExpectFields")]
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
    /// The JSON form printed as `expect`.
    pub fn to_json(&self) -> Value {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtcInvSpec {
    /// PASID, or `None`: every PASID and the non-PASID entries.
    #[serde(default, deserialize_with = "num::opt")]
    pub ssid: Option<u32>,
    /// Global entries too.
    #[serde(default)]
    pub global: bool,
    /// First untranslated address covered.
    #[serde(deserialize_with = "num::de")]
    pub start: u64,
    /// Last untranslated address covered (inclusive).
    #[serde(deserialize_with = "num::de")]
    pub last: u64,
}

impl AtcInvSpec {
    /// The JSON form printed in `actual` and `expect`.
    pub fn to_json(self) -> Value {
        let mut v =
            json!({"start": hex(self.start), "last": hex(self.last), "global": self.global});
        if let (Some(s), Value::Object(m)) = (self.ssid, &mut v) {
            m.insert("ssid".into(), json!(s));
        }
        v
    }
}

/// `ats_request`: an endpoint's ATS Translation Request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtsRequest {
    /// Device name.
    pub dev: String,
    /// StreamID.
    #[serde(deserialize_with = "num::de")]
    pub stream: u32,
    /// PASID.
    #[serde(default, deserialize_with = "num::opt")]
    pub substream: Option<u32>,
    /// Untranslated address.
    #[serde(deserialize_with = "num::de")]
    pub addr: u64,
    /// NW: read-only access requested.
    #[serde(default)]
    pub read_only: bool,
    /// Expected completion.
    #[serde(default)]
    pub expect: Option<AtsExpect>,
}

impl AtsRequest {
    /// The request in device-neutral terms.
    pub fn spec(&self) -> AtsSpec {
        AtsSpec {
            substream: self.substream,
            addr: self.addr,
            read_only: self.read_only,
        }
    }
}

/// `expect_atc_inv`: the invalidations an endpoint's ATC received.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectAtcInv {
    /// Device name.
    pub dev: String,
    /// StreamID.
    #[serde(deserialize_with = "num::de")]
    pub stream: u32,
    /// The invalidations expected, in order (`[]`: none).
    pub expect: Vec<AtcInvSpec>,
}

/// The fields an `ats_request` expectation may have.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AtsExpectFields {
    #[serde(default, deserialize_with = "num::opt")]
    addr: Option<u64>,
    #[serde(default)]
    perms: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl TryFrom<AtsExpectFields> for AtsExpect {
    type Error = String;

    fn try_from(f: AtsExpectFields) -> Result<Self, String> {
        match (f.addr, f.perms, f.error) {
            (None, None, Some(e)) if e == "UR" || e == "CA" => Ok(AtsExpect::Error(e)),
            (_, _, Some(_)) => Err("`error` must be \"UR\" or \"CA\", alone".into()),
            (None, None, None) => Err(
                "must be {\"addr\": N, \"perms\": \"rw\"} (either key optional) or {\"error\": \"UR\" | \"CA\"}"
                    .into(),
            ),
            (addr, perms, None) => Ok(AtsExpect::Granted {
                addr,
                perms: perms.as_deref().map(normalise_perms).transpose()?,
            }),
        }
    }
}

/// `rwx` letters, each at most once, normalised to the order `r`, `w`, `x`.
fn normalise_perms(s: &str) -> Result<String, String> {
    let mut seen = [false; 3];
    for c in s.chars() {
        let i = match c {
            'r' => 0,
            'w' => 1,
            'x' => 2,
            _ => {
                return Err(format!(
                    "`perms` must be a string of `r`, `w`, `x`, not {s:?}"
                ))
            }
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("`perms` names {c:?} twice"));
        }
    }
    Ok(['r', 'w', 'x']
        .iter()
        .zip(seen)
        .filter_map(|(c, s)| s.then_some(*c))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{AtcInvSpec, AtsExpect, AtsRequest, ExpectAtcInv};
    use crate::parse::{parse_line, parse_op as op, DmaExpect, Op};
    use viommu_common::AccessKind;

    /// The three ATS ops parse their fields; permissions are normalised to `rwx` order.
    #[test]
    fn test_parse_ats_ops() {
        assert_eq!(
            op(
                r#"{"op":"ats_request","dev":"d","stream":"0x10","substream":5,"addr":"0x5000","read_only":true,"expect":{"addr":"0x40801000","perms":"wr"}}"#
            ),
            Op::AtsRequest(AtsRequest {
                dev: "d".into(),
                stream: 0x10,
                substream: Some(5),
                addr: 0x5000,
                read_only: true,
                expect: Some(AtsExpect::Granted {
                    addr: Some(0x4080_1000),
                    perms: Some("rw".into()),
                }),
            })
        );
        assert_eq!(
            op(r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{"error":"UR"}}"#),
            Op::AtsRequest(AtsRequest {
                dev: "d".into(),
                stream: 1,
                substream: None,
                addr: 0,
                read_only: false,
                expect: Some(AtsExpect::Error("UR".into())),
            })
        );
        let Op::Translated(t) = op(
            r#"{"op":"translated","dev":"d","stream":2,"addr":"0x1000","size":8,"access":"write","expect":{"fault":"F_TRANSL_FORBIDDEN"}}"#,
        ) else {
            panic!()
        };
        let req = t.request();
        assert_eq!(
            (req.stream.0, req.addr, req.len, req.access),
            (2, 0x1000, 8, AccessKind::Write)
        );
        assert_eq!(
            t.expect,
            Some(DmaExpect::Fault("F_TRANSL_FORBIDDEN".into()))
        );
        assert_eq!(
            op(
                r#"{"op":"expect_atc_inv","dev":"d","stream":2,"expect":[{"start":"0x1000","last":"0x1fff"},{"start":0,"last":"0xffffffffffffffff","ssid":3,"global":true}]}"#
            ),
            Op::ExpectAtcInv(ExpectAtcInv {
                dev: "d".into(),
                stream: 2,
                expect: vec![
                    AtcInvSpec {
                        ssid: None,
                        global: false,
                        start: 0x1000,
                        last: 0x1FFF,
                    },
                    AtcInvSpec {
                        ssid: Some(3),
                        global: true,
                        start: 0,
                        last: u64::MAX,
                    },
                ],
            })
        );
    }

    /// Bad permissions, completion statuses, invalidation lists and unknown fields are
    /// malformed.
    #[test]
    fn test_parse_ats_errors() {
        for bad in [
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{"perms":"rq"}}"#,
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{"perms":"rr"}}"#,
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{"error":"XX"}}"#,
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{"error":"UR","addr":0}}"#,
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{}}"#,
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"read_only":1}"#,
            r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"nw":true}"#,
            r#"{"op":"translated","dev":"d","stream":1,"addr":0,"size":0,"access":"read"}"#,
            r#"{"op":"expect_atc_inv","dev":"d","stream":1}"#,
            r#"{"op":"expect_atc_inv","dev":"d","stream":1,"expect":[{"start":0}]}"#,
            r#"{"op":"expect_atc_inv","dev":"d","stream":1,"expect":[{"start":0,"last":1,"size":2}]}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}
