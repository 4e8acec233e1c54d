//! Replay file lines -> typed operations, with a reason for every malformed line.
//!
//! Parsing is purely syntactic: each line is checked on its own (fields present, of the right
//! type, in range, no unknown fields). Cross-line checks (device names, addresses inside RAM)
//! are done by [`super::engine::Session::prepare`].

use std::io::BufRead;

use serde_json::{Map, Value};
use viommu_common::AccessKind;

use super::num::{kind_of, parse_hex_bytes, parse_u64};

#[path = "ats_parse.rs"]
mod ats_parse;
#[path = "iopf_parse.rs"]
mod iopf_parse;

/// Largest `read_mem.len` accepted (bounds the buffer a file can make us allocate).
pub const MAX_READ_LEN: u64 = 16 << 20;

/// One line of a replay file that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ScriptError {
    /// 1-based line number in the (decompressed) file.
    pub line: usize,
    /// Why the line is malformed.
    pub reason: String,
}

/// An operation and the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// 1-based line number.
    pub line: usize,
    /// The operation.
    pub op: Op,
}

/// What a `dma` operation expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaExpect {
    /// Success with this output address.
    Addr(u64),
    /// Any fault.
    AnyFault,
    /// A fault with this architectural event/fault name.
    Fault(String),
    /// Held by the stall model (`{"stalled": true}`; see [`super::iopf`]).
    Stalled,
}

/// The interrupt an `expect_irq` operation looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqMatch {
    /// An MSI: a 32-bit write of `data` to `addr`.
    Msi {
        /// Doorbell address.
        addr: u64,
        /// Payload.
        data: u32,
    },
    /// A wired line asserted.
    Wired {
        /// Line number (device-defined).
        line: u32,
    },
}

/// One operation of a replay file (see the module documentation of [`super`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Add a guest RAM region.
    Ram {
        /// Guest physical base.
        base: u64,
        /// Size in bytes.
        size: u64,
    },
    /// Create a device.
    Device {
        /// Name later operations use in `dev`.
        name: String,
        /// `smmuv3` or `pamu`.
        kind: String,
        /// Device configuration (may be empty).
        config: Map<String, Value>,
    },
    /// Guest CPU store to RAM.
    WriteMem {
        /// Guest physical address.
        addr: u64,
        /// Bytes in memory order.
        data: Vec<u8>,
    },
    /// Guest CPU load from RAM.
    ReadMem {
        /// Guest physical address.
        addr: u64,
        /// Number of bytes.
        len: u64,
        /// Expected bytes (same length as `len`).
        expect: Option<Vec<u8>>,
    },
    /// Register store.
    MmioWrite {
        /// Device name.
        dev: String,
        /// Offset in the device's region.
        offset: u64,
        /// Access size: 1, 2, 4 or 8.
        size: u8,
        /// Register value (fits in `size` bytes).
        value: u64,
    },
    /// Register load.
    MmioRead {
        /// Device name.
        dev: String,
        /// Offset in the device's region.
        offset: u64,
        /// Access size: 1, 2, 4 or 8.
        size: u8,
        /// Expected value.
        expect: Option<u64>,
        /// Bits compared (default: all bits of the access).
        mask: Option<u64>,
    },
    /// An endpoint's DMA translation request.
    Dma {
        /// Device name.
        dev: String,
        /// StreamID (SMMUv3) or LIODN (PAMU).
        stream: u32,
        /// SubstreamID / PASID.
        substream: Option<u32>,
        /// Input address.
        addr: u64,
        /// Bytes accessed (at least 1).
        size: u64,
        /// Read, write or instruction fetch.
        access: AccessKind,
        /// Privileged access.
        privileged: bool,
        /// Expected outcome.
        expect: Option<DmaExpect>,
    },
    /// Check the interrupts a device raised.
    ExpectIrq {
        /// Device name.
        dev: String,
        /// The interrupt looked for.
        irq: IrqMatch,
        /// Exact number of matching interrupts; `None`: at least one.
        count: Option<u64>,
    },
    /// An I/O-page-fault operation: `stall_result`, `page_request`, `pri_response`.
    Iopf(super::iopf::IopfOp),
    /// An ATS operation: `ats_request`, `translated`, `expect_atc_inv`.
    Ats(super::ats::AtsOp),
    /// Printed, nothing else.
    Comment {
        /// The text.
        text: String,
    },
}

impl Op {
    /// The operation's name as files spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            Op::Ram { .. } => "ram",
            Op::Device { .. } => "device",
            Op::WriteMem { .. } => "write_mem",
            Op::ReadMem { .. } => "read_mem",
            Op::MmioWrite { .. } => "mmio_write",
            Op::MmioRead { .. } => "mmio_read",
            Op::Dma { .. } => "dma",
            Op::ExpectIrq { .. } => "expect_irq",
            Op::Iopf(o) => o.name(),
            Op::Ats(o) => o.name(),
            Op::Comment { .. } => "comment",
        }
    }
}

/// Parse a whole replay file.
///
/// # Errors
/// The first malformed line (or a read/decompression/UTF-8 error, at the line it happened).
pub fn parse_script<R: BufRead>(mut reader: R) -> Result<Vec<Line>, ScriptError> {
    let mut lines = Vec::new();
    let mut buf = String::new();
    let mut line = 0usize;
    loop {
        line += 1;
        buf.clear();
        match reader.read_line(&mut buf) {
            Ok(0) => return Ok(lines),
            Ok(_) => {}
            Err(e) => {
                return Err(ScriptError {
                    line,
                    reason: format!("cannot read the file: {e}"),
                })
            }
        }
        match parse_line(&buf) {
            Ok(Some(op)) => lines.push(Line { line, op }),
            Ok(None) => {}
            Err(reason) => return Err(ScriptError { line, reason }),
        }
    }
}

/// Parse one line: `Ok(None)` for a blank or `#` line.
///
/// # Errors
/// Why the line is malformed.
pub fn parse_line(text: &str) -> Result<Option<Op>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(t).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(map) = v else {
        return Err(format!("expected a JSON object, found {}", kind_of(&v)));
    };
    let op_name = match map.get("op") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "field `op` must be a string, found {}",
                kind_of(other)
            ))
        }
        None => return Err("missing field `op`".into()),
    };
    let mut f = Fields::new(&op_name, &map);
    let op = parse_op(&op_name, &mut f)?;
    f.finish()?;
    Ok(Some(op))
}

fn parse_op(name: &str, f: &mut Fields<'_>) -> Result<Op, String> {
    Ok(match name {
        "ram" => {
            let base = f.num("base")?;
            let size = f.num("size")?;
            if size == 0 {
                return Err(f.err("size", "must not be 0"));
            }
            if base.checked_add(size).is_none() {
                return Err(f.err("size", "region runs past the end of the address space"));
            }
            Op::Ram { base, size }
        }
        "device" => {
            let name = f.string("name")?;
            let kind = f.string("kind")?;
            let config = f
                .opt_object("config", |m| Ok(m.clone()))?
                .unwrap_or_default();
            Op::Device { name, kind, config }
        }
        "write_mem" => {
            let addr = f.num("addr")?;
            let data = f.bytes("data")?;
            Op::WriteMem { addr, data }
        }
        "read_mem" => {
            let addr = f.num("addr")?;
            let len = f.num("len")?;
            if len == 0 || len > MAX_READ_LEN {
                return Err(f.err("len", &format!("must be between 1 and {MAX_READ_LEN:#x}")));
            }
            let expect = if f.has("expect") {
                Some(f.bytes("expect")?)
            } else {
                None
            };
            if let Some(e) = &expect {
                if e.len() as u64 != len {
                    return Err(f.err(
                        "expect",
                        &format!("has {} bytes but `len` is {len}", e.len()),
                    ));
                }
            }
            Op::ReadMem { addr, len, expect }
        }
        "mmio_write" => {
            let dev = f.string("dev")?;
            let offset = f.num("offset")?;
            let size = f.access_size()?;
            let value = f.num("value")?;
            check_fits(f, "value", value, size)?;
            Op::MmioWrite {
                dev,
                offset,
                size,
                value,
            }
        }
        "mmio_read" => {
            let dev = f.string("dev")?;
            let offset = f.num("offset")?;
            let size = f.access_size()?;
            let expect = f.opt_num("expect")?;
            if let Some(e) = expect {
                check_fits(f, "expect", e, size)?;
            }
            let mask = f.opt_num("mask")?;
            Op::MmioRead {
                dev,
                offset,
                size,
                expect,
                mask,
            }
        }
        "dma" => parse_dma(f)?,
        "expect_irq" => {
            let dev = f.string("dev")?;
            let kind = f.string("kind")?;
            let irq = match kind.as_str() {
                "msi" => IrqMatch::Msi {
                    addr: f.num("addr")?,
                    data: f.num_u32("data")?,
                },
                "wired" => IrqMatch::Wired {
                    line: f.num_u32("line")?,
                },
                other => {
                    return Err(f.err(
                        "kind",
                        &format!("must be \"msi\" or \"wired\", not {other:?}"),
                    ))
                }
            };
            let count = f.opt_num("count")?;
            Op::ExpectIrq { dev, irq, count }
        }
        "stall_result" | "page_request" | "pri_response" => Op::Iopf(iopf_parse::parse(name, f)?),
        "ats_request" | "translated" | "expect_atc_inv" => Op::Ats(ats_parse::parse(name, f)?),
        "comment" => Op::Comment {
            text: f.string("text")?,
        },
        other => return Err(format!("unknown op {other:?}")),
    })
}

fn parse_dma(f: &mut Fields<'_>) -> Result<Op, String> {
    let dev = f.string("dev")?;
    let stream = f.num_u32("stream")?;
    let substream = if f.has("substream") {
        Some(f.num_u32("substream")?)
    } else {
        None
    };
    let addr = f.num("addr")?;
    let size = f.num("size")?;
    if size == 0 {
        return Err(f.err("size", "must be at least 1"));
    }
    if addr.checked_add(size - 1).is_none() {
        return Err(f.err("size", "access runs past the end of the address space"));
    }
    let access = match f.string("access")?.as_str() {
        "read" => AccessKind::Read,
        "write" => AccessKind::Write,
        "exec" => AccessKind::Exec,
        other => {
            return Err(f.err(
                "access",
                &format!("must be \"read\", \"write\" or \"exec\", not {other:?}"),
            ))
        }
    };
    let privileged = f.opt_bool("privileged")?;
    let expect = f.opt_object("expect", parse_dma_expect)?;
    Ok(Op::Dma {
        dev,
        stream,
        substream,
        addr,
        size,
        access,
        privileged,
        expect,
    })
}

fn parse_dma_expect(m: &Map<String, Value>) -> Result<DmaExpect, String> {
    match (m.get("addr"), m.get("fault"), m.len()) {
        (Some(a), None, 1) => Ok(DmaExpect::Addr(
            parse_u64(a).map_err(|e| format!("`addr`: {e}"))?,
        )),
        (None, Some(Value::Bool(true)), 1) => Ok(DmaExpect::AnyFault),
        (None, None, 1) if m.get("stalled") == Some(&Value::Bool(true)) => Ok(DmaExpect::Stalled),
        (None, Some(Value::String(s)), 1) if !s.is_empty() => Ok(DmaExpect::Fault(s.clone())),
        (None, Some(other), 1) => Err(format!(
            "`fault` must be true or a fault name, found {}",
            if matches!(other, Value::Bool(false)) {
                "false"
            } else {
                kind_of(other)
            }
        )),
        _ => Err(
            "must be exactly one of {\"addr\": N}, {\"fault\": true}, {\"fault\": \"NAME\"}, \
             {\"stalled\": true}"
                .into(),
        ),
    }
}

fn check_fits(f: &Fields<'_>, key: &str, v: u64, size: u8) -> Result<(), String> {
    if size < 8 && v >> (u32::from(size) * 8) != 0 {
        return Err(f.err(key, &format!("{v:#x} does not fit in a {size}-byte access")));
    }
    Ok(())
}

/// Field access on one line's object, remembering which keys were consumed so unknown (e.g.
/// misspelt) fields are reported instead of silently ignored.
struct Fields<'a> {
    op: &'a str,
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(op: &'a str, map: &'a Map<String, Value>) -> Self {
        Self {
            op,
            map,
            used: vec!["op"],
        }
    }

    fn err(&self, key: &str, reason: &str) -> String {
        format!("{}: field `{key}` {reason}", self.op)
    }

    fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    fn opt(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn req(&mut self, key: &'static str) -> Result<&'a Value, String> {
        self.opt(key)
            .ok_or_else(|| format!("{}: missing field `{key}`", self.op))
    }

    /// An optional boolean; absent (or null) is `false`.
    fn opt_bool(&mut self, key: &'static str) -> Result<bool, String> {
        match self.opt(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(
                key,
                &format!("expected a boolean, found {}", kind_of(other)),
            )),
        }
    }

    /// An optional object, decoded by `decode` (whose error is reported against `key`).
    fn opt_object<T>(
        &mut self,
        key: &'static str,
        decode: impl FnOnce(&'a Map<String, Value>) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.opt(key) {
            None => Ok(None),
            Some(Value::Object(m)) => decode(m).map(Some).map_err(|r| self.err(key, &r)),
            Some(other) => Err(self.err(
                key,
                &format!("expected an object, found {}", kind_of(other)),
            )),
        }
    }

    fn num(&mut self, key: &'static str) -> Result<u64, String> {
        let v = self.req(key)?;
        parse_u64(v).map_err(|e| format!("{}: field `{key}`: {e}", self.op))
    }

    fn opt_num(&mut self, key: &'static str) -> Result<Option<u64>, String> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => parse_u64(v)
                .map(Some)
                .map_err(|e| format!("{}: field `{key}`: {e}", self.op)),
        }
    }

    fn num_u32(&mut self, key: &'static str) -> Result<u32, String> {
        let v = self.num(key)?;
        u32::try_from(v).map_err(|_| self.err(key, &format!("{v:#x} does not fit in 32 bits")))
    }

    fn string(&mut self, key: &'static str) -> Result<String, String> {
        match self.req(key)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.err(key, &format!("expected a string, found {}", kind_of(other)))),
        }
    }

    fn bytes(&mut self, key: &'static str) -> Result<Vec<u8>, String> {
        let s = self.string(key)?;
        parse_hex_bytes(&s).map_err(|e| format!("{}: field `{key}`: {e}", self.op))
    }

    fn access_size(&mut self) -> Result<u8, String> {
        match self.num("size")? {
            1 => Ok(1),
            2 => Ok(2),
            4 => Ok(4),
            8 => Ok(8),
            other => Err(self.err("size", &format!("must be 1, 2, 4 or 8, not {other}"))),
        }
    }

    /// Reject keys no accessor asked for.
    fn finish(self) -> Result<(), String> {
        let mut unknown: Vec<&str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|k| !self.used.contains(k))
            .collect();
        unknown.sort_unstable();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(format!("{}: unknown field `{k}`", self.op)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(s: &str) -> Op {
        match parse_line(s) {
            Ok(Some(op)) => op,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn bad(s: &str) -> String {
        match parse_line(s) {
            Err(e) => e,
            other => panic!("{s} accepted: {other:?}"),
        }
    }

    /// Blank lines and `#` lines are skipped.
    #[test]
    fn test_parse_skips_blank_and_hash_lines() {
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line("   \n"), Ok(None));
        assert_eq!(parse_line("# {\"op\": \"bogus\"}"), Ok(None));
    }

    /// A line from the recorded Linux trace parses with hex-string numbers and a numeric size.
    #[test]
    fn test_parse_recorded_mmio_lines() {
        assert_eq!(
            op(
                r#"{"op": "mmio_write", "dev": "smmu0", "offset": "0x80", "size": 8, "value": "0x4000000043bf3000"}"#
            ),
            Op::MmioWrite {
                dev: "smmu0".into(),
                offset: 0x80,
                size: 8,
                value: 0x4000_0000_43bf_3000
            }
        );
        assert_eq!(
            op(
                r#"{"op": "mmio_read", "dev": "smmu0", "offset": "0x4", "size": 4, "expect": "0x2730010"}"#
            ),
            Op::MmioRead {
                dev: "smmu0".into(),
                offset: 4,
                size: 4,
                expect: Some(0x273_0010),
                mask: None
            }
        );
    }

    /// `dma` accepts the three expectation shapes and defaults `privileged` to false.
    #[test]
    fn test_parse_dma_expectations() {
        let base = r#""op":"dma","dev":"d","stream":8,"addr":"0x1000","size":4,"access":"write""#;
        let Op::Dma {
            expect,
            privileged,
            access,
            ..
        } = op(&format!("{{{base},\"expect\":{{\"addr\":\"0x2000\"}}}}"))
        else {
            panic!()
        };
        assert_eq!(
            (expect, privileged, access),
            (Some(DmaExpect::Addr(0x2000)), false, AccessKind::Write)
        );
        let Op::Dma { expect, .. } = op(&format!("{{{base},\"expect\":{{\"fault\":true}}}}"))
        else {
            panic!()
        };
        assert_eq!(expect, Some(DmaExpect::AnyFault));
        let Op::Dma { expect, .. } = op(&format!(
            "{{{base},\"expect\":{{\"fault\":\"F_TRANSLATION\"}}}}"
        )) else {
            panic!()
        };
        assert_eq!(expect, Some(DmaExpect::Fault("F_TRANSLATION".into())));
        assert!(bad(&format!("{{{base},\"expect\":{{\"fault\":false}}}}")).contains("`fault`"));
        assert!(bad(&format!(
            "{{{base},\"expect\":{{\"addr\":1,\"fault\":true}}}}"
        ))
        .contains("exactly one"));
    }

    /// Malformed lines name the problem: unknown op, missing field, unknown field, bad size,
    /// value too wide for the access, bad hex, not an object, invalid JSON.
    #[test]
    fn test_parse_errors_name_the_problem() {
        assert!(bad(r#"{"op":"poke"}"#).contains("unknown op \"poke\""));
        assert!(bad(r#"{"op":"write_mem","data":"00"}"#).contains("missing field `addr`"));
        assert!(bad(r#"{"op":"write_mem","addr":0,"data":"00","dat":"1"}"#)
            .contains("unknown field `dat`"));
        assert!(bad(r#"{"op":"mmio_read","dev":"d","offset":0,"size":3}"#)
            .contains("must be 1, 2, 4 or 8"));
        assert!(
            bad(r#"{"op":"mmio_write","dev":"d","offset":0,"size":1,"value":"0x100"}"#)
                .contains("does not fit")
        );
        assert!(bad(r#"{"op":"write_mem","addr":0,"data":"0g"}"#).contains("non-hex"));
        assert!(bad(r#"[1,2]"#).contains("JSON object"));
        assert!(bad(r#"{"op":"comment","text":"x""#).contains("invalid JSON"));
        assert!(bad(r#"{"op":"read_mem","addr":0,"len":2,"expect":"00"}"#).contains("has 1 bytes"));
        assert!(
            bad(r#"{"op":"ram","base":"0xffffffffffff0000","size":"0x10000"}"#)
                .contains("past the end")
        );
        assert!(
            bad(r#"{"op":"expect_irq","dev":"d","kind":"edge","line":1}"#)
                .contains("\"msi\" or \"wired\"")
        );
        assert!(bad(
            r#"{"op":"dma","dev":"d","stream":"0x100000000","addr":0,"size":1,"access":"read"}"#
        )
        .contains("32 bits"));
    }

    /// `parse_script` reports the 1-based physical line of the first malformed line, counting
    /// skipped blank and comment lines.
    #[test]
    fn test_parse_script_line_numbers() {
        let text = "# header\n\n{\"op\":\"comment\",\"text\":\"a\"}\n{\"op\":\"nope\"}\n";
        let err = parse_script(text.as_bytes()).unwrap_err();
        assert_eq!(err.line, 4);
        let ok = parse_script("# x\n{\"op\":\"comment\",\"text\":\"a\"}\n".as_bytes()).unwrap();
        assert_eq!(
            ok,
            vec![Line {
                line: 2,
                op: Op::Comment { text: "a".into() }
            }]
        );
    }
}
