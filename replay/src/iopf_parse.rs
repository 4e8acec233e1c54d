//! Parsing of the I/O-page-fault operations (`stall_result`, `page_request`, `pri_response`;
//! see [`crate::iopf`]). A child of `parse` so it shares its field accessors.

use super::{parse_dma_expect, Fields};
use crate::iopf::{IopfOp, PprSpec};

const PPR_EXPECT: [&str; 5] = ["queued", "dropped", "success", "invalid", "failure"];
const PRI_EXPECT: [&str; 4] = ["success", "invalid", "failure", "none"];

fn group(f: &mut Fields<'_>) -> Result<u16, String> {
    let g = f.num("group")?;
    u16::try_from(g)
        .ok()
        .filter(|g| *g <= 0x1FF)
        .ok_or_else(|| f.err("group", &format!("{g:#x} is not a 9-bit PRG index")))
}

fn one_of(f: &mut Fields<'_>, allowed: &[&str]) -> Result<Option<String>, String> {
    if !f.has("expect") {
        return Ok(None);
    }
    let s = f.string("expect")?;
    if allowed.contains(&s.as_str()) {
        Ok(Some(s))
    } else {
        Err(f.err("expect", &format!("must be one of {allowed:?}, not {s:?}")))
    }
}

/// Parse one of the I/O-page-fault operations named `name`.
pub(super) fn parse(name: &str, f: &mut Fields<'_>) -> Result<IopfOp, String> {
    let dev = f.string("dev")?;
    let stream = f.num_u32("stream")?;
    Ok(match name {
        "stall_result" => {
            let stag = f.num("stag")?;
            let stag = u16::try_from(stag)
                .map_err(|_| f.err("stag", &format!("{stag:#x} does not fit in 16 bits")))?;
            let expect = f.opt_object("expect", parse_dma_expect)?;
            IopfOp::StallResult {
                dev,
                stream,
                stag,
                expect,
            }
        }
        "page_request" => {
            let substream = if f.has("substream") {
                Some(f.num_u32("substream")?)
            } else {
                None
            };
            let addr = f.num("addr")?;
            let access = f.string("access")?;
            if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'x')) {
                return Err(f.err("access", "must be a non-empty string of `r`, `w`, `x`"));
            }
            let req = PprSpec {
                substream,
                addr,
                read: access.contains('r'),
                write: access.contains('w'),
                exec: access.contains('x'),
                privileged: f.opt_bool("privileged")?,
                last: f.opt_bool("last")?,
                group: group(f)?,
            };
            let expect = one_of(f, &PPR_EXPECT)?;
            IopfOp::PageRequest {
                dev,
                stream,
                req,
                expect,
            }
        }
        _ => {
            let group = group(f)?;
            let expect = one_of(f, &PRI_EXPECT)?;
            IopfOp::PriResponse {
                dev,
                stream,
                group,
                expect,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::iopf::{IopfOp, PprSpec};
    use crate::parse::{parse_line, DmaExpect, Op};

    fn op(s: &str) -> Op {
        parse_line(s).expect("parses").expect("an op")
    }

    /// `dma` accepts `{"stalled": true}`; the three new ops parse their fields.
    #[test]
    fn test_parse_iopf_ops() {
        let Op::Dma { expect, .. } = op(
            r#"{"op":"dma","dev":"d","stream":1,"addr":0,"size":4,"access":"read","expect":{"stalled":true}}"#,
        ) else {
            panic!()
        };
        assert_eq!(expect, Some(DmaExpect::Stalled));
        assert_eq!(
            op(
                r#"{"op":"stall_result","dev":"d","stream":"0x10","stag":3,"expect":{"addr":"0x1000"}}"#
            ),
            Op::Iopf(IopfOp::StallResult {
                dev: "d".into(),
                stream: 0x10,
                stag: 3,
                expect: Some(DmaExpect::Addr(0x1000)),
            })
        );
        assert_eq!(
            op(
                r#"{"op":"page_request","dev":"d","stream":2,"substream":5,"addr":"0x7000","access":"rx","privileged":true,"last":true,"group":"0x1ff","expect":"queued"}"#
            ),
            Op::Iopf(IopfOp::PageRequest {
                dev: "d".into(),
                stream: 2,
                req: PprSpec {
                    substream: Some(5),
                    addr: 0x7000,
                    read: true,
                    write: false,
                    exec: true,
                    privileged: true,
                    last: true,
                    group: 0x1FF,
                },
                expect: Some("queued".into()),
            })
        );
        assert_eq!(
            op(r#"{"op":"pri_response","dev":"d","stream":2,"group":7,"expect":"none"}"#),
            Op::Iopf(IopfOp::PriResponse {
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
