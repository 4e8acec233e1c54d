//! The replay library (`viommu-replay`) on hostile files: parser, session setup and engine.
//!
//! The input is the file's bytes. It is parsed ([`parse_script`]); a file that declares more
//! than [`RAM_CAP`] bytes of guest RAM in total is not run (the engine's own limit,
//! [`MAX_TOTAL_RAM`], bounds address space, not what a fuzzer should map per input); otherwise
//! the session is prepared and run with the printer `viommu replay --trace` uses, into a sink.
//! Checked: nothing panics or hangs (libFuzzer's timeout), and a malformed file is refused with
//! a line number inside the file.

#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use viommu_replay::engine::MAX_TOTAL_RAM;
use viommu_replay::{parse_script, JsonPrinter, Op, Options, Session};

/// Largest total guest RAM a fuzzed file may declare.
const RAM_CAP: u64 = 256 << 20;

/// Number of lines in `data` (a trailing line without a newline counts).
fn line_count(data: &[u8]) -> usize {
    data.split(|&b| b == b'\n').count()
}

fuzz_target!(|data: &[u8]| {
    let lines = match parse_script(data) {
        Ok(l) => l,
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= line_count(data),
                "error outside the file: {e}"
            );
            return;
        }
    };
    let ram: u64 = lines
        .iter()
        .map(|l| match &l.op {
            Op::Ram(r) => r.size,
            _ => 0,
        })
        .fold(0, u64::saturating_add);
    if ram > RAM_CAP.min(MAX_TOTAL_RAM) {
        return;
    }
    let session = match Session::prepare(lines) {
        Ok(s) => s,
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= line_count(data),
                "error outside the file: {e}"
            );
            return;
        }
    };
    let mut out = io::sink();
    let opts = Options {
        quiet: false,
        trace: true,
    };
    let _ = session.run_with(&mut JsonPrinter::new(opts, &mut out));
});
