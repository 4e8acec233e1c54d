//! The `viommu` binary: the demo (no arguments, or `viommu demo`) and `viommu replay FILE`.

mod demo;

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Exit status: 0 all checks passed, 1 a check failed, 2 the file is malformed.
    Replay {
        /// The replay file (`.xz`/`.gz` decompressed by extension; `-` for standard input).
        file: PathBuf,
        /// Print only failures and the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Also print the commands each device consumed and the events it wrote.
        #[arg(long)]
        trace: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Demo) => {
            demo::run();
            ExitCode::SUCCESS
        }
        Some(Command::Replay { file, quiet, trace }) => {
            let opts = Options { quiet, trace };
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let outcome = replay_file(&file, &opts, &mut stdout.lock(), &mut stderr.lock());
            ExitCode::from(outcome.exit_code())
        }
    }
}

/// Replay `path` (`-`: standard input; `.xz` and `.gz` decompressed by extension), printing
/// results to `out` and errors to `err`.
fn replay_file(path: &Path, opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    if path == Path::new("-") {
        return viommu_replay::run_reader("<stdin>", std::io::stdin().lock(), opts, out, err);
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
        Box::new(xz2::read::XzDecoder::new(file))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    viommu_replay::run_reader(&name, BufReader::new(reader), opts, out, err)
}
