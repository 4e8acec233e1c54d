//! Replay file lines -> typed operations, with a reason for every malformed line.
//!
//! Each line is one JSON object deserialized by serde into [`Op`] (internally tagged by `op`,
//! unknown fields rejected), then checked on its own ([`Op::validate`]: sizes, ranges, values
//! that fit their access). Cross-line checks (device names, addresses inside RAM) are done when
//! a [`crate::Session`] is built.

use std::io::{BufRead, Read};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use viommu_common::{AccessKind, DmaRequest, StreamId, SubstreamId};

use crate::ats::{AtsRequest, ExpectAtcInv};
use crate::iopf::{PageRequest, PriResponse, StallResult};
use crate::limits::{self, Limits, MAX_CONFIG_VALUES};
use crate::num;

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

/// A parsed replay file: its operations in order, each with its line number.
pub type Script = Vec<Line>;

/// One operation of a replay file (see the crate documentation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Add a guest RAM region.
    Ram(Ram),
    /// Create a device.
    Device(Device),
    /// Guest CPU store to RAM.
    WriteMem(WriteMem),
    /// Guest CPU load from RAM.
    ReadMem(ReadMem),
    /// Register store.
    MmioWrite(MmioWrite),
    /// Register load.
    MmioRead(MmioRead),
    /// An endpoint's DMA translation request.
    Dma(Dma),
    /// Check the interrupts a device raised.
    ExpectIrq(ExpectIrq),
    /// What the endpoint of a stalled DMA sees now (I/O page faults).
    StallResult(StallResult),
    /// An endpoint's PCIe Page Request (PRI).
    PageRequest(PageRequest),
    /// The PRG response an endpoint received (PRI).
    PriResponse(PriResponse),
    /// An endpoint's ATS Translation Request.
    AtsRequest(AtsRequest),
    /// A transaction the endpoint marked Translated (ATS).
    Translated(Dma),
    /// The invalidations an endpoint's ATC received (ATS).
    ExpectAtcInv(ExpectAtcInv),
    /// Printed, nothing else.
    Comment(Comment),
}

/// `ram`: a guest RAM region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ram {
    /// Guest physical base.
    #[serde(deserialize_with = "num::de")]
    pub base: u64,
    /// Size in bytes.
    #[serde(deserialize_with = "num::de")]
    pub size: u64,
}

/// `device`: a device to create.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Name later operations use in `dev`.
    pub name: String,
    /// `smmuv3` or `pamu`.
    pub kind: String,
    /// Device configuration (may be empty), read by the backend of `kind`.
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// `write_mem`: a guest CPU store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteMem {
    /// Guest physical address.
    #[serde(deserialize_with = "num::de")]
    pub addr: u64,
    /// Bytes in memory order.
    #[serde(deserialize_with = "num::bytes")]
    pub data: Vec<u8>,
}

/// `read_mem`: a guest CPU load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadMem {
    /// Guest physical address.
    #[serde(deserialize_with = "num::de")]
    pub addr: u64,
    /// Number of bytes.
    #[serde(deserialize_with = "num::de")]
    pub len: u64,
    /// Expected bytes (same length as `len`).
    #[serde(default, deserialize_with = "num::opt_bytes")]
    pub expect: Option<Vec<u8>>,
}

/// `mmio_write`: a register store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmioWrite {
    /// Device name.
    pub dev: String,
    /// Offset in the device's region.
    #[serde(deserialize_with = "num::de")]
    pub offset: u64,
    /// Access size: 1, 2, 4 or 8.
    #[serde(deserialize_with = "num::access_size")]
    pub size: u8,
    /// Register value (fits in `size` bytes).
    #[serde(deserialize_with = "num::de")]
    pub value: u64,
}

/// `mmio_read`: a register load.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmioRead {
    /// Device name.
    pub dev: String,
    /// Offset in the device's region.
    #[serde(deserialize_with = "num::de")]
    pub offset: u64,
    /// Access size: 1, 2, 4 or 8.
    #[serde(deserialize_with = "num::access_size")]
    pub size: u8,
    /// Expected value.
    #[serde(default, deserialize_with = "num::opt")]
    pub expect: Option<u64>,
    /// Bits compared (default: all bits of the access).
    #[serde(default, deserialize_with = "num::opt")]
    pub mask: Option<u64>,
}

/// `dma` (and `translated`): an endpoint's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dma {
    /// Device name.
    pub dev: String,
    /// StreamID (SMMUv3) or LIODN (PAMU).
    #[serde(deserialize_with = "num::de")]
    pub stream: u32,
    /// SubstreamID / PASID.
    #[serde(default, deserialize_with = "num::opt")]
    pub substream: Option<u32>,
    /// Input address.
    #[serde(deserialize_with = "num::de")]
    pub addr: u64,
    /// Bytes accessed (at least 1).
    #[serde(deserialize_with = "num::de")]
    pub size: u64,
    /// Read, write or instruction fetch.
    #[serde(deserialize_with = "num::access")]
    pub access: AccessKind,
    /// Privileged access.
    #[serde(default)]
    pub privileged: bool,
    /// Expected outcome.
    #[serde(default)]
    pub expect: Option<DmaExpect>,
}

impl Dma {
    /// The transaction as the devices take it.
    pub fn request(&self) -> DmaRequest {
        DmaRequest {
            stream: StreamId(self.stream),
            substream: self.substream.map(SubstreamId),
            addr: self.addr,
            len: self.size,
            access: self.access,
            privileged: self.privileged,
        }
    }
}

/// What a `dma` operation expects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DmaExpectFields")]
pub enum DmaExpect {
    /// Success with this output address.
    Addr(u64),
    /// Any fault.
    AnyFault,
    /// A fault with this architectural event/fault name.
    Fault(String),
    /// Held by the stall model (`{"stalled": true}`; see [`crate::iopf`]).
    Stalled,
}

/// The fields a `dma` expectation may have; exactly one shape is valid.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DmaExpectFields {
    #[serde(default, deserialize_with = "num::opt")]
    addr: Option<u64>,
    #[serde(default)]
    fault: Option<FaultField>,
    #[serde(default)]
    stalled: Option<bool>,
}

/// `fault`: `true` or a fault name.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultField {
    Any(bool),
    Name(String),
}

impl TryFrom<DmaExpectFields> for DmaExpect {
    type Error = String;

    fn try_from(f: DmaExpectFields) -> Result<Self, String> {
        match (f.addr, f.fault, f.stalled) {
            (Some(a), None, None) => Ok(DmaExpect::Addr(a)),
            (None, Some(FaultField::Any(true)), None) => Ok(DmaExpect::AnyFault),
            (None, Some(FaultField::Name(s)), None) if !s.is_empty() => Ok(DmaExpect::Fault(s)),
            (None, Some(FaultField::Any(false) | FaultField::Name(_)), None) => {
                Err("`fault` must be true or a fault name, found false or \"\"".into())
            }
            (None, None, Some(true)) => Ok(DmaExpect::Stalled),
            _ => Err(
                "must be exactly one of {\"addr\": N}, {\"fault\": true}, {\"fault\": \"NAME\"}, \
                 {\"stalled\": true}"
                    .into(),
            ),
        }
    }
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

/// `expect_irq`: check the interrupts a device raised.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ExpectIrqFields")]
pub struct ExpectIrq {
    /// Device name.
    pub dev: String,
    /// The interrupt looked for.
    pub irq: IrqMatch,
    /// Exact number of matching interrupts; `None`: at least one.
    pub count: Option<u64>,
}

/// The fields of an `expect_irq` line: `kind` decides which of the others it needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectIrqFields {
    dev: String,
    kind: String,
    #[serde(default, deserialize_with = "num::opt")]
    addr: Option<u64>,
    #[serde(default, deserialize_with = "num::opt")]
    data: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    line: Option<u32>,
    #[serde(default, deserialize_with = "num::opt")]
    count: Option<u64>,
}

impl TryFrom<ExpectIrqFields> for ExpectIrq {
    type Error = String;

    fn try_from(f: ExpectIrqFields) -> Result<Self, String> {
        let irq = match (f.kind.as_str(), f.addr, f.data, f.line) {
            ("msi", Some(addr), Some(data), None) => IrqMatch::Msi { addr, data },
            ("msi", None, _, None) => return Err("missing field `addr`".into()),
            ("msi", _, None, None) => return Err("missing field `data`".into()),
            ("msi", _, _, Some(_)) => return Err("unknown field `line` for kind \"msi\"".into()),
            ("wired", None, None, Some(line)) => IrqMatch::Wired { line },
            ("wired", _, _, None) => return Err("missing field `line`".into()),
            ("wired", ..) => return Err("unknown field `addr` or `data` for kind \"wired\"".into()),
            (other, ..) => {
                return Err(format!(
                    "field `kind` must be \"msi\" or \"wired\", not {other:?}"
                ))
            }
        };
        Ok(ExpectIrq {
            dev: f.dev,
            irq,
            count: f.count,
        })
    }
}

/// `comment`: text printed in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    /// The text.
    pub text: String,
}

impl Op {
    /// The operation's name as files spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            Op::Ram(_) => "ram",
            Op::Device(_) => "device",
            Op::WriteMem(_) => "write_mem",
            Op::ReadMem(_) => "read_mem",
            Op::MmioWrite(_) => "mmio_write",
            Op::MmioRead(_) => "mmio_read",
            Op::Dma(_) => "dma",
            Op::ExpectIrq(_) => "expect_irq",
            Op::StallResult(_) => "stall_result",
            Op::PageRequest(_) => "page_request",
            Op::PriResponse(_) => "pri_response",
            Op::AtsRequest(_) => "ats_request",
            Op::Translated(_) => "translated",
            Op::ExpectAtcInv(_) => "expect_atc_inv",
            Op::Comment(_) => "comment",
        }
    }

    /// The device the operation addresses, if any.
    pub fn dev(&self) -> Option<&str> {
        match self {
            Op::Ram(_) | Op::Device(_) | Op::WriteMem(_) | Op::ReadMem(_) | Op::Comment(_) => None,
            Op::MmioWrite(o) => Some(&o.dev),
            Op::MmioRead(o) => Some(&o.dev),
            Op::Dma(o) | Op::Translated(o) => Some(&o.dev),
            Op::ExpectIrq(o) => Some(&o.dev),
            Op::StallResult(o) => Some(&o.dev),
            Op::PageRequest(o) => Some(&o.dev),
            Op::PriResponse(o) => Some(&o.dev),
            Op::AtsRequest(o) => Some(&o.dev),
            Op::ExpectAtcInv(o) => Some(&o.dev),
        }
    }

    /// Check the operation on its own: sizes, ranges, values that fit their access.
    ///
    /// # Errors
    /// Why the operation is malformed (`field `X` ...`).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Op::Ram(r) => {
                if r.size == 0 {
                    return Err(field_err("size", "must not be 0"));
                }
                if r.base.checked_add(r.size).is_none() {
                    return Err(field_err(
                        "size",
                        "region runs past the end of the address space",
                    ));
                }
            }
            Op::ReadMem(r) => {
                if r.len == 0 || r.len > MAX_READ_LEN {
                    return Err(field_err(
                        "len",
                        &format!("must be between 1 and {MAX_READ_LEN:#x}"),
                    ));
                }
                if let Some(e) = &r.expect {
                    if e.len() as u64 != r.len {
                        return Err(field_err(
                            "expect",
                            &format!("has {} bytes but `len` is {}", e.len(), r.len),
                        ));
                    }
                }
            }
            Op::MmioWrite(w) => check_fits("value", w.value, w.size)?,
            Op::MmioRead(r) => {
                if let Some(e) = r.expect {
                    check_fits("expect", e, r.size)?;
                }
            }
            Op::Dma(d) | Op::Translated(d) => {
                if d.size == 0 {
                    return Err(field_err("size", "must be at least 1"));
                }
                if d.addr.checked_add(d.size - 1).is_none() {
                    return Err(field_err(
                        "size",
                        "access runs past the end of the address space",
                    ));
                }
            }
            Op::Device(d) => {
                if !limits::config_within_limit(&d.config) {
                    return Err(field_err(
                        "config",
                        &format!("has more than {MAX_CONFIG_VALUES} values"),
                    ));
                }
            }
            Op::PageRequest(p) => p.validate()?,
            Op::PriResponse(p) => p.validate()?,
            Op::WriteMem(_)
            | Op::ExpectIrq(_)
            | Op::StallResult(_)
            | Op::AtsRequest(_)
            | Op::ExpectAtcInv(_)
            | Op::Comment(_) => {}
        }
        Ok(())
    }
}

fn field_err(key: &str, reason: &str) -> String {
    format!("field `{key}` {reason}")
}

fn check_fits(key: &str, v: u64, size: u8) -> Result<(), String> {
    if size < 8 && v >> (u32::from(size) * 8) != 0 {
        return Err(field_err(
            key,
            &format!("{v:#x} does not fit in a {size}-byte access"),
        ));
    }
    Ok(())
}

/// Every operation name, as files spell them.
const OP_NAMES: [&str; 15] = [
    "ram",
    "device",
    "write_mem",
    "read_mem",
    "mmio_write",
    "mmio_read",
    "dma",
    "expect_irq",
    "stall_result",
    "page_request",
    "pri_response",
    "ats_request",
    "translated",
    "expect_atc_inv",
    "comment",
];

/// Parse a whole replay file within the default [`Limits`].
///
/// # Errors
/// As [`parse_script_with`].
pub fn parse_script<R: BufRead>(reader: R) -> Result<Script, ScriptError> {
    parse_script_with(reader, &Limits::default())
}

/// Parse a whole replay file, holding it to `limits` (input size, line length, number of
/// operations; see [`crate::limits`]). Memory use is bounded by the limits whatever the
/// reader yields: a line is never read past `limits.max_line_bytes`, nor the file past
/// `limits.max_input_bytes`.
///
/// # Errors
/// The first malformed line, the line that crosses a limit, or a read/decompression/UTF-8
/// error, at the line it happened.
pub fn parse_script_with<R: BufRead>(
    mut reader: R,
    limits: &Limits,
) -> Result<Script, ScriptError> {
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    let mut total: u64 = 0;
    let mut line = 0usize;
    let mut devices = 0usize;
    // One byte past the limit tells a line that is too long from one that is exactly as long.
    let cap = u64::try_from(limits.max_line_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    loop {
        line += 1;
        buf.clear();
        let n = match (&mut reader).take(cap).read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => n,
            Err(e) => {
                return Err(ScriptError {
                    line,
                    reason: format!("cannot read the file: {e}"),
                })
            }
        };
        let fail = |reason: String| Err(ScriptError { line, reason });
        if n > limits.max_line_bytes {
            return fail(format!(
                "line is longer than the limit of {} bytes",
                limits.max_line_bytes
            ));
        }
        total = total.saturating_add(n as u64);
        if total > limits.max_input_bytes {
            return fail(format!(
                "the file is longer than the limit of {} bytes",
                limits.max_input_bytes
            ));
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t,
            Err(e) => {
                return fail(format!(
                    "cannot read the file: not UTF-8 text (invalid byte at column {})",
                    e.valid_up_to() + 1
                ))
            }
        };
        match parse_line(text) {
            Ok(Some(op)) => {
                if matches!(op, Op::Device(_)) {
                    devices += 1;
                    if devices > limits.max_devices {
                        return fail(format!(
                            "device: more than the limit of {} devices",
                            limits.max_devices
                        ));
                    }
                }
                if lines.len() >= limits.max_ops {
                    return fail(format!(
                        "the file has more than the limit of {} operations",
                        limits.max_ops
                    ));
                }
                lines.push(Line { line, op });
            }
            Ok(None) => {}
            Err(reason) => return fail(reason),
        }
    }
}

/// Parse one line: `Ok(None)` for a blank or `#` line.
///
/// # Errors
/// Why the line is malformed: invalid JSON, not an object, a missing or unknown `op`, or the
/// operation's own error (`OP: field `X`: ...`, `OP: missing field `X``, `OP: unknown field
/// `X``, ...).
pub fn parse_line(text: &str) -> Result<Option<Op>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(t).map_err(|e| format!("invalid JSON: {e}"))?;
    let name = match &v {
        Value::Object(m) => match m.get("op") {
            Some(Value::String(s)) if OP_NAMES.contains(&s.as_str()) => s.clone(),
            Some(Value::String(s)) => return Err(format!("unknown op {s:?}")),
            Some(other) => {
                return Err(format!(
                    "field `op` must be a string, found {}",
                    num::kind_of(other)
                ))
            }
            None => return Err("missing field `op`".into()),
        },
        other => {
            return Err(format!(
                "expected a JSON object, found {}",
                num::kind_of(other)
            ))
        }
    };
    let op = match Op::deserialize(&v) {
        Ok(op) => op,
        Err(e) => {
            return Err(format!(
                "{name}: {}",
                explain(&name, v).unwrap_or_else(|| e.to_string())
            ))
        }
    };
    op.validate().map_err(|r| format!("{name}: {r}"))?;
    Ok(Some(op))
}

/// Why the fields of operation `name` do not deserialize, naming the field at fault (the
/// tagged [`Op`] reports only the reason).
fn explain(name: &str, mut v: Value) -> Option<String> {
    fn why<T: serde::de::DeserializeOwned>(v: Value) -> Option<String> {
        let e = serde_path_to_error::deserialize::<_, T>(v).err()?;
        let path = e.path().to_string();
        let inner = e.into_inner();
        Some(if path == "." {
            inner.to_string()
        } else {
            format!("field `{path}`: {inner}")
        })
    }
    if let Value::Object(m) = &mut v {
        m.remove("op");
    }
    match name {
        "ram" => why::<Ram>(v),
        "device" => why::<Device>(v),
        "write_mem" => why::<WriteMem>(v),
        "read_mem" => why::<ReadMem>(v),
        "mmio_write" => why::<MmioWrite>(v),
        "mmio_read" => why::<MmioRead>(v),
        "dma" | "translated" => why::<Dma>(v),
        "expect_irq" => why::<ExpectIrq>(v),
        "stall_result" => why::<StallResult>(v),
        "page_request" => why::<PageRequest>(v),
        "pri_response" => why::<PriResponse>(v),
        "ats_request" => why::<AtsRequest>(v),
        "expect_atc_inv" => why::<ExpectAtcInv>(v),
        "comment" => why::<Comment>(v),
        _ => None,
    }
}

/// Parse `s`, which must be one op (a test helper; panics naming the line otherwise).
#[cfg(test)]
pub(crate) fn parse_op(s: &str) -> Op {
    match parse_line(s) {
        Ok(Some(op)) => op,
        other => panic!("{s}: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::parse_op as op;

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
            Op::MmioWrite(MmioWrite {
                dev: "smmu0".into(),
                offset: 0x80,
                size: 8,
                value: 0x4000_0000_43bf_3000
            })
        );
        assert_eq!(
            op(
                r#"{"op": "mmio_read", "dev": "smmu0", "offset": "0x4", "size": 4, "expect": "0x2730010"}"#
            ),
            Op::MmioRead(MmioRead {
                dev: "smmu0".into(),
                offset: 4,
                size: 4,
                expect: Some(0x273_0010),
                mask: None
            })
        );
    }

    /// `dma` accepts the three expectation shapes and defaults `privileged` to false.
    #[test]
    fn test_parse_dma_expectations() {
        let base = r#""op":"dma","dev":"d","stream":8,"addr":"0x1000","size":4,"access":"write""#;
        let Op::Dma(Dma {
            expect,
            privileged,
            access,
            ..
        }) = op(&format!("{{{base},\"expect\":{{\"addr\":\"0x2000\"}}}}"))
        else {
            panic!()
        };
        assert_eq!(
            (expect, privileged, access),
            (Some(DmaExpect::Addr(0x2000)), false, AccessKind::Write)
        );
        let Op::Dma(Dma { expect, .. }) = op(&format!("{{{base},\"expect\":{{\"fault\":true}}}}"))
        else {
            panic!()
        };
        assert_eq!(expect, Some(DmaExpect::AnyFault));
        let Op::Dma(Dma { expect, .. }) = op(&format!(
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
                op: Op::Comment(Comment { text: "a".into() })
            }]
        );
    }
}
