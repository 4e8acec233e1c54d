//! Parsing of the ATS operations (`ats_request`, `translated`, `expect_atc_inv`; see
//! [`crate::ats`]). A child of `parse` so it shares its field accessors.

use serde_json::{Map, Value};
use viommu_common::{DmaRequest, StreamId, SubstreamId};

use super::{kind_of, parse_dma, Fields, Op};
use crate::ats::{AtcInvSpec, AtsExpect, AtsOp, AtsSpec};
use crate::num::parse_u64;

/// `rwx` letters, each at most once, normalised to the order `r`, `w`, `x`.
fn perms(s: &str) -> Result<String, String> {
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

fn ats_expect(m: &Map<String, Value>) -> Result<AtsExpect, String> {
    if let Some(e) = m.get("error") {
        return match (e.as_str(), m.len()) {
            (Some(s @ ("UR" | "CA")), 1) => Ok(AtsExpect::Error(s.to_owned())),
            _ => Err("`error` must be \"UR\" or \"CA\", alone".into()),
        };
    }
    if m.is_empty() || m.keys().any(|k| k != "addr" && k != "perms") {
        return Err(
            "must be {\"addr\": N, \"perms\": \"rw\"} (either key optional) or {\"error\": \"UR\" | \"CA\"}"
                .into(),
        );
    }
    let addr = m
        .get("addr")
        .map(|a| parse_u64(a).map_err(|e| format!("`addr`: {e}")))
        .transpose()?;
    let perms = match m.get("perms") {
        None => None,
        Some(Value::String(s)) => Some(perms(s)?),
        Some(other) => {
            return Err(format!(
                "`perms`: expected a string, found {}",
                kind_of(other)
            ))
        }
    };
    Ok(AtsExpect::Granted { addr, perms })
}

fn atc_inv(v: &Value) -> Result<AtcInvSpec, String> {
    let Value::Object(m) = v else {
        return Err(format!("expected an object, found {}", kind_of(v)));
    };
    if let Some(k) = m
        .keys()
        .find(|k| !matches!(k.as_str(), "start" | "last" | "ssid" | "global"))
    {
        return Err(format!("unknown field `{k}`"));
    }
    let num = |k: &str| -> Result<u64, String> {
        m.get(k)
            .ok_or_else(|| format!("missing `{k}`"))
            .and_then(|v| parse_u64(v).map_err(|e| format!("`{k}`: {e}")))
    };
    let ssid = match m.get("ssid") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = parse_u64(v).map_err(|e| format!("`ssid`: {e}"))?;
            Some(u32::try_from(n).map_err(|_| format!("`ssid` {n:#x} does not fit in 32 bits"))?)
        }
    };
    let global = match m.get("global") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "`global`: expected a boolean, found {}",
                kind_of(other)
            ))
        }
    };
    Ok(AtcInvSpec {
        ssid,
        global,
        start: num("start")?,
        last: num("last")?,
    })
}

/// Parse one of the ATS operations named `name`.
pub(super) fn parse(name: &str, f: &mut Fields<'_>) -> Result<AtsOp, String> {
    if name == "translated" {
        let Op::Dma {
            dev,
            stream,
            substream,
            addr,
            size,
            access,
            privileged,
            expect,
        } = parse_dma(f)?
        else {
            return Err("translated: not a transaction".into());
        };
        return Ok(AtsOp::Translated {
            dev,
            req: DmaRequest {
                stream: StreamId(stream),
                substream: substream.map(SubstreamId),
                addr,
                len: size,
                access,
                privileged,
            },
            expect,
        });
    }
    let dev = f.string("dev")?;
    let stream = f.num_u32("stream")?;
    if name == "expect_atc_inv" {
        let expect = match f.opt("expect") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| atc_inv(v).map_err(|e| f.err("expect", &format!("[{i}]: {e}"))))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(f.err(
                    "expect",
                    &format!("expected a list, found {}", kind_of(other)),
                ))
            }
            None => return Err(f.err("expect", "is required (a list; [] for none)")),
        };
        return Ok(AtsOp::ExpectAtcInv {
            dev,
            stream,
            expect,
        });
    }
    let substream = if f.has("substream") {
        Some(f.num_u32("substream")?)
    } else {
        None
    };
    let addr = f.num("addr")?;
    let read_only = f.opt_bool("read_only")?;
    let expect = f.opt_object("expect", ats_expect)?;
    Ok(AtsOp::Request {
        dev,
        stream,
        req: AtsSpec {
            substream,
            addr,
            read_only,
        },
        expect,
    })
}

#[cfg(test)]
mod tests {
    use crate::ats::{AtcInvSpec, AtsExpect, AtsOp, AtsSpec};
    use crate::parse::{parse_line, DmaExpect, Op};
    use viommu_common::AccessKind;

    fn op(s: &str) -> Op {
        parse_line(s).expect("parses").expect("an op")
    }

    /// The three ATS ops parse their fields; permissions are normalised to `rwx` order.
    #[test]
    fn test_parse_ats_ops() {
        assert_eq!(
            op(
                r#"{"op":"ats_request","dev":"d","stream":"0x10","substream":5,"addr":"0x5000","read_only":true,"expect":{"addr":"0x40801000","perms":"wr"}}"#
            ),
            Op::Ats(AtsOp::Request {
                dev: "d".into(),
                stream: 0x10,
                req: AtsSpec {
                    substream: Some(5),
                    addr: 0x5000,
                    read_only: true,
                },
                expect: Some(AtsExpect::Granted {
                    addr: Some(0x4080_1000),
                    perms: Some("rw".into()),
                }),
            })
        );
        assert_eq!(
            op(r#"{"op":"ats_request","dev":"d","stream":1,"addr":0,"expect":{"error":"UR"}}"#),
            Op::Ats(AtsOp::Request {
                dev: "d".into(),
                stream: 1,
                req: AtsSpec::default(),
                expect: Some(AtsExpect::Error("UR".into())),
            })
        );
        let Op::Ats(AtsOp::Translated { req, expect, .. }) = op(
            r#"{"op":"translated","dev":"d","stream":2,"addr":"0x1000","size":8,"access":"write","expect":{"fault":"F_TRANSL_FORBIDDEN"}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (req.stream.0, req.addr, req.len, req.access),
            (2, 0x1000, 8, AccessKind::Write)
        );
        assert_eq!(expect, Some(DmaExpect::Fault("F_TRANSL_FORBIDDEN".into())));
        assert_eq!(
            op(
                r#"{"op":"expect_atc_inv","dev":"d","stream":2,"expect":[{"start":"0x1000","last":"0x1fff"},{"start":0,"last":"0xffffffffffffffff","ssid":3,"global":true}]}"#
            ),
            Op::Ats(AtsOp::ExpectAtcInv {
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
