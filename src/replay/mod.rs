//! `viommu replay FILE`: drive emulated IOMMUs with a recorded or hand-written trace and check
//! the results.
//!
//! # Usage
//!
//! ```text
//! viommu replay FILE [--quiet] [--trace]
//! cargo run --release -- replay ../shared/replay/linux612-bringup-passthrough.replay.jsonl.xz
//! ```
//!
//! - `FILE`: a replay file (format version 1, `../shared/reference/replay-format.md`), plain or
//!   compressed; `.xz` and `.gz` files are decompressed by extension.
//! - `--quiet`: print only failed checks and the summary.
//! - `--trace`: also print each device's trace records (commands consumed, events written, ...),
//!   in the text its insta snapshots use, as `{"line": N, "dev": NAME, "trace": TEXT}` lines.
//!
//! Exit status: **0** every check passed, **1** a check failed, **2** the file is malformed or
//! cannot be read (the reason and line number go to stderr; nothing was executed).
//!
//! # Format (summary)
//!
//! JSON Lines, one object per line; blank lines and lines starting with `#` are ignored. Every
//! number is a JSON integer or a hex (`"0x1f"`) or decimal (`"31"`) string. Setup: `ram`
//! (`base`, `size`; all before the first device), `device` (`name`, `kind` = `smmuv3` | `pamu`,
//! optional `config`). Operations: `write_mem`, `read_mem`, `mmio_write`, `mmio_read`, `dma`,
//! `expect_irq`, `comment`, with the fields of the format document.
//!
//! Device configuration:
//! - `smmuv3`: `config.id_regs` = `{idr0..idr5, iidr, aidr}` raw values: the model advertises
//!   exactly those features or the file is rejected naming the one it cannot support; other keys
//!   name fields of the SMMUv3 configuration (see [`smmuv3`]).
//! - `pamu`: `instances`, `max_liodn`, `max_subwindows_log2`, `msi_banks`, `mpic_version` (see
//!   [`pamu`]). Register values are the numbers the CPU sees; the PAMU backend applies its
//!   big-endian bus order. `dma.stream` is the LIODN.
//!
//! # Output
//!
//! One JSON line per operation that produced a value or a check:
//! `{"line": N, "op": OP, "actual": VALUE, "ok": BOOL}`. `ok` is present only when the line had
//! an expectation; failed checks also carry `expect` (and `mask`). Values: `mmio_read` a hex
//! number, `read_mem` a hex byte string, `dma` `{"addr": HEX}` or `{"fault": NAME}`, `expect_irq`
//! the number of matching interrupts. An MMIO access the device refused (the architecture's
//! RAZ/WI answer) adds `"error"` (for a refused `mmio_write` that is the only line it prints).
//! Interrupts are reported as they happen: `{"irq": {"dev", "kind": "msi", "addr", "data"}, "line": N}`
//! or `{"irq": {"dev", "kind": "wired", "line", "level"}, "line": N}`; comments as
//! `{"line": N, "comment": TEXT}`. The last line is the plain summary `N passed, M failed`,
//! counting checks only.
//!
//! # Interpretations of the format (no extensions)
//!
//! - The whole file is parsed and checked before anything runs: syntax, unknown fields (a
//!   misspelt key is an error, not silently ignored), device names defined on an earlier line,
//!   `write_mem`/`read_mem` ranges inside RAM, MMIO accesses inside the device's region, device
//!   configurations. So exit status 2 never comes with a half-executed file.
//! - "Before a read, the device finishes all work it has pending": the engine asks the device to
//!   settle before `mmio_read`, `dma` and `expect_irq` on it, and all devices before `read_mem`.
//! - `expect_irq`: the interrupts raised on a device since the previous `expect_irq` for it form a
//!   window; consecutive `expect_irq` lines for one device share the same window, so several
//!   interrupts raised together can each be checked. Without `count` the check needs at least one
//!   match; with `count` exactly that many (`"count": 0` asserts that none was raised). A wired
//!   interrupt matches when its line was asserted.
//! - `mmio_read.mask` defaults to all ones; `expect` and `value` must fit in the access size.
//! - A panic inside a device model (a model bug) does not crash the replay: it is reported on
//!   the operation's line as a failed check with `"error": "device model panicked: ..."`, and
//!   the run stops there (exit status 1).

pub mod device;
pub mod engine;
#[cfg(test)]
mod fake;
pub mod num;
pub mod pamu;
pub mod parse;
pub mod smmuv3;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// Output options of a replay run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Print only failures and the summary.
    pub quiet: bool,
    /// Print the devices' trace records.
    pub trace: bool,
}

/// Outcome of a replay, mapped to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed (exit 0).
    Passed,
    /// At least one check failed (exit 1).
    Failed,
    /// The file is malformed or unreadable (exit 2).
    Malformed,
}

impl Outcome {
    /// The process exit status for this outcome.
    pub const fn exit_code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Malformed => 2,
        }
    }
}

/// Replay `path`, printing results to `out` and errors to `err`.
pub fn run_file(path: &Path, opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "viommu replay: {}: cannot open: {e}", path.display());
            return Outcome::Malformed;
        }
    };
    let name = path.to_string_lossy();
    let reader: Box<dyn Read> = if name.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new(file))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    run_reader(&name, BufReader::new(reader), opts, out, err)
}

/// Replay the file text read from `reader` (`name` is used in error messages).
pub fn run_reader<R: BufRead>(
    name: &str,
    reader: R,
    opts: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    let session = parse::parse_script(reader).and_then(engine::Session::prepare);
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "viommu replay: {name}: {e}");
            return Outcome::Malformed;
        }
    };
    let summary = session.run(opts, out);
    let _ = writeln!(out, "{} passed, {} failed", summary.passed, summary.failed);
    if summary.failed == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}

#[cfg(test)]
mod tests;
