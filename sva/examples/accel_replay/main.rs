//! The in-guest VMM of the real-kernel test: replays an SMMUv3 trace through an accelerated
//! vSMMU whose passthrough endpoint is a real DMA engine behind the host's SMMU.
//!
//! ```text
//! accel_replay [--stream SID] [--edu N] [--measure] TRACE.jsonl
//! ```
//!
//! - The VM's RAM is a memfd per `ram` region of the trace, pinned into the IOAS at IOVA = GPA
//!   (stage 2) and mapped into this program as the vSMMU's guest memory.
//! - The vSMMU presents the trace's `id_regs` (checked against the host: strictly, else in mixed
//!   mode; an incompatible set fails naming the field), on the iommufd backend.
//! - QEMU's `edu` device (the N-th, default 0) is attached as the passthrough endpoint of the
//!   trace's StreamID: `--stream`, else the stream of the trace's first successful `dma`.
//! - The trace then drives the vSMMU through register accesses and RAM stores, as the guest
//!   driver did. Each `dma` on the passthrough stream is performed by edu through the host SMMU,
//!   which walks the CD and page tables the trace wrote, nested over stage 2; success is checked
//!   by the bytes (a round trip through the expected output address), a fault by the event in
//!   the guest's event queue (event number, StreamID, address, direction). Every other check of
//!   the trace is applied as the replay format defines it.
//! - `--measure` then times a 64-command TLBI run forwarded as one batch against one host call
//!   per command.
//!
//! Any trace with compatible ID registers works, including recordings of the Linux driver. The
//! input is plain JSON Lines (decompress `.xz`/`.gz` first).
//!
//! Output markers: `ACCEL-REPLAY <file> PASS` or `ACCEL-REPLAY <file> FAIL: <why>`, with
//! `ACCEL-CHECK`, `ACCEL-DMA`, `ACCEL-OP`, `ACCEL-INFO` and `SVA-MEASURE` lines before it.
//! Exit status 0 on PASS, 1 on FAIL, 2 on a usage error.

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod edu;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod measure;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod ram;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod run;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod verify;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod vmm;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod program {
    use std::io::BufReader;
    use std::path::{Path, PathBuf};

    use viommu_replay::parse::DmaExpect;
    use viommu_replay::{parse_script, Line, Op, Session};

    use crate::edu::{self, Edu};
    use crate::run::Hardware;
    use crate::vmm::{Fit, Host, Vmm};

    /// Command-line options.
    pub struct Args {
        stream: Option<u32>,
        edu: usize,
        measure: bool,
        trace: PathBuf,
    }

    fn num(s: &str) -> Option<u64> {
        match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        }
    }

    impl Args {
        /// The trace's file name, for the result marker.
        pub fn file_name(&self) -> String {
            self.trace
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    }

    /// Parse the command line.
    pub fn args() -> Result<Args, String> {
        let mut a = std::env::args().skip(1);
        let (mut stream, mut edu, mut measure, mut trace) = (None, 0, false, None);
        while let Some(s) = a.next() {
            match s.as_str() {
                "--stream" => {
                    let v = a
                        .next()
                        .and_then(|v| num(&v))
                        .ok_or("--stream needs a number")?;
                    stream = Some(u32::try_from(v).map_err(|_| "--stream out of range")?);
                }
                "--edu" => {
                    edu = a
                        .next()
                        .and_then(|v| num(&v))
                        .ok_or("--edu needs a number")? as usize;
                }
                "--measure" => measure = true,
                _ if s.starts_with("--") => return Err(format!("unknown option {s}")),
                _ => trace = Some(PathBuf::from(s)),
            }
        }
        let trace =
            trace.ok_or("usage: accel_replay [--stream SID] [--edu N] [--measure] TRACE")?;
        Ok(Args {
            stream,
            edu,
            measure,
            trace,
        })
    }

    /// What the setup lines of a trace ask for.
    struct Setup {
        ram: Vec<(u64, u64)>,
        smmu: String,
        stream: u32,
    }

    fn setup(lines: &[Line], stream: Option<u32>) -> Result<Setup, String> {
        let ram: Vec<(u64, u64)> = lines
            .iter()
            .filter_map(|l| match &l.op {
                Op::Ram(r) => Some((r.base, r.size)),
                _ => None,
            })
            .collect();
        if ram.is_empty() {
            return Err("the trace declares no RAM".into());
        }
        let devices: Vec<_> = lines
            .iter()
            .filter_map(|l| match &l.op {
                Op::Device(d) => Some(d),
                _ => None,
            })
            .collect();
        let smmu = match devices.as_slice() {
            [d] if d.kind == "smmuv3" => d.name.clone(),
            _ => {
                return Err(format!(
                    "the trace must create exactly one smmuv3 device (one vSMMU on one host SMMU), \
                     it creates {:?}",
                    devices.iter().map(|d| &d.kind).collect::<Vec<_>>()
                ))
            }
        };
        let stream = match stream {
            Some(s) => s,
            None => lines
                .iter()
                .find_map(|l| match &l.op {
                    Op::Dma(d) if matches!(d.expect, Some(DmaExpect::Addr(_))) => Some(d.stream),
                    _ => None,
                })
                .ok_or(
                    "no successful dma in the trace to pick the passthrough stream from (use --stream)",
                )?,
        };
        Ok(Setup { ram, smmu, stream })
    }

    /// Replay `args.trace`; `Err` is the reason for FAIL.
    pub fn replay(args: &Args) -> Result<(), String> {
        let name = args.trace.display().to_string();
        if name.ends_with(".xz") || name.ends_with(".gz") {
            return Err("compressed trace: decompress it first".into());
        }
        let f = std::fs::File::open(&args.trace).map_err(|e| format!("open: {e}"))?;
        let lines = parse_script(BufReader::new(f)).map_err(|e| e.to_string())?;
        let s = setup(&lines, args.stream)?;
        let edus = edu::devices();
        let dev: &Path = edus
            .get(args.edu)
            .ok_or_else(|| format!("edu device {} not present ({} found)", args.edu, edus.len()))?;
        let host = Host::new(&s.ram, dev)?;
        let session = Session::builder()
            .memory(host.mem.clone())
            .build(lines)
            .map_err(|e| e.to_string())?;
        let smmu = session
            .smmuv3(&s.smmu)
            .ok_or_else(|| format!("no SMMUv3 {:?} in the session", s.smmu))?;
        let (mut vmm, fit) = Vmm::new(host, smmu, s.stream)?;
        println!(
            "ACCEL-INFO host idr {:08x?}; guest idr {:08x?} accepted {}; edu {} as vSID {:#x}; RAM {:x?}",
            vmm.caps().raw.idr,
            vmm.accel.guest_idrs().idr,
            match fit {
                Fit::Strict => "strictly",
                Fit::Mixed => "in mixed mode (emulated-only features left to emulated streams)",
            },
            dev.display(),
            s.stream,
            s.ram
        );
        let port = vmm.port().clone();
        let edu = Edu::new(&port);
        let mut hw = Hardware {
            vmm: &mut vmm,
            edu: &edu,
            tally: Default::default(),
        };
        let summary = session.run_with(&mut hw);
        let t = hw.tally;
        let stats = vmm.accel.pump_stats();
        println!(
            "ACCEL-INFO {} checks passed, {} failed; {} dma by edu through the host SMMU, {} skipped \
             (counted as expected); host events injected {} (lost reports {}, dropped {})",
            summary.passed,
            summary.failed,
            t.real_dma,
            t.skipped,
            stats.injected,
            stats.lost_reports,
            stats.dropped
        );
        if args.measure && summary.failed == 0 {
            crate::measure::measure(&mut vmm);
        }
        let td = vmm.teardown();
        if summary.failed != 0 {
            return Err(format!("{} check(s) failed", summary.failed));
        }
        if t.real_dma == 0 {
            return Err(format!(
                "no dma of the trace ran on the passthrough stream {:#x}",
                s.stream
            ));
        }
        td.map_err(|e| format!("teardown: {e}"))
    }
}
fn main() {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        let args = match program::args() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("accel_replay: {e}");
                std::process::exit(2);
            }
        };
        let file = args.file_name();
        match program::replay(&args) {
            Ok(()) => {
                println!("ACCEL-REPLAY {file} PASS");
                std::process::exit(0);
            }
            Err(e) => {
                println!("ACCEL-REPLAY {file} FAIL: {e}");
                std::process::exit(1);
            }
        }
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        eprintln!("accel_replay runs only on Linux (x86_64/aarch64)");
        std::process::exit(2);
    }
}
