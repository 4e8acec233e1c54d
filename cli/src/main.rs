//! The `viommu` binary: the demo (no arguments, or `viommu demo`) and `viommu replay FILE`.

mod demo;

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use viommu_replay::limits::{self, Limits};
use viommu_replay::{Options, Outcome};

/// Emulated IOMMUs (Arm SMMUv3, NXP PAMU) for virtual machine monitors.
#[derive(Debug, Parser)]
#[command(name = "viommu", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo (the default when no command is given).
    Demo,
    /// Replay a trace file (JSON Lines, optionally .xz/.gz) against the device models.
    ///
    /// Exit status: 0 all checks passed, 1 a check failed, 2 the file is malformed, unreadable
    /// or over a limit (line number and reason on stderr; nothing was executed).
    ///
    /// Limits (a file over one is malformed): 256 MiB of text after decompression, 1 MiB per
    /// line, 1,048,576 operations, 4 GiB of guest RAM in total, 64 devices, 16 MiB per
    /// read_mem; xz input may need at most 256 MiB of decoder memory (`xz -9` needs 65 MiB).
    Replay {
        /// The replay file (`.xz`/`.gz` decompressed by extension; `-` for standard input).
        file: PathBuf,
        /// Print only failures and the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Also print the commands each device consumed and the events it wrote.
        #[arg(long)]
        trace: bool,
        /// Largest file accepted, in bytes of text after decompression (decimal or 0x hex).
        #[arg(long, value_name = "BYTES", value_parser = parse_size,
              default_value_t = limits::MAX_INPUT_BYTES)]
        max_input: u64,
        /// Largest total guest RAM the file may declare, in bytes (decimal or 0x hex).
        #[arg(long, value_name = "BYTES", value_parser = parse_size,
              default_value_t = limits::MAX_TOTAL_RAM)]
        max_ram: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Demo) => {
            demo::run();
            ExitCode::SUCCESS
        }
        Some(Command::Replay {
            file,
            quiet,
            trace,
            max_input,
            max_ram,
        }) => {
            let opts = Options { quiet, trace };
            let limits = Limits {
                max_input_bytes: max_input,
                max_total_ram: max_ram,
                ..Limits::default()
            };
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let outcome = replay_file(
                &file,
                &opts,
                &limits,
                &mut stdout.lock(),
                &mut stderr.lock(),
            );
            ExitCode::from(outcome.exit_code())
        }
    }
}

/// Most memory the xz decoder may use (`xz -9` files need 65 MiB).
const XZ_MEMLIMIT: u64 = 256 << 20;

/// A byte count as decimal or `0x` hex.
fn parse_size(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a byte count: {e}"))
}

/// Replay `path` (`-`: standard input; `.xz` and `.gz` decompressed by extension), printing
/// results to `out` and errors to `err`, within `limits`.
fn replay_file(
    path: &Path,
    opts: &Options,
    limits: &Limits,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    if path == Path::new("-") {
        let stdin = std::io::stdin().lock();
        return viommu_replay::run_reader_with("<stdin>", stdin, opts, limits, out, err);
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "viommu replay: {}: cannot open: {e}", path.display());
            return Outcome::Malformed;
        }
    };
    let name = path.to_string_lossy();
    let reader: Box<dyn Read> = if name.ends_with(".xz") {
        // A bounded decoder: an xz header asking for a larger dictionary fails at line 1
        // ("Memory usage limit was reached") instead of allocating it.
        let stream = match xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(
                    err,
                    "viommu replay: {}: cannot start xz: {e}",
                    path.display()
                );
                return Outcome::Malformed;
            }
        };
        Box::new(xz2::read::XzDecoder::new_stream(file, stream))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    viommu_replay::run_reader_with(&name, BufReader::new(reader), opts, limits, out, err)
}
