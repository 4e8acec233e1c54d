//! The `viommu` binary: the demo (no arguments, or `viommu demo`) and `viommu replay FILE`.

mod demo;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
            let opts = replay::Options { quiet, trace };
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let outcome = replay::run_file(&file, &opts, &mut stdout.lock(), &mut stderr.lock());
            ExitCode::from(outcome.exit_code())
        }
    }
}
