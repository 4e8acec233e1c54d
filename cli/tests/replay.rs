//! `viommu replay`: the recorded Linux trace (tests/data/), every scenario file under tests/replay/, and the
//! command-line contract (exit status 0/1/2, line-numbered errors, compressed input), all through
//! the built binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn viommu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_viommu"))
        .args(args)
        .output()
        .expect("run the viommu binary")
}

fn replay(path: &Path, extra: &[&str]) -> Output {
    let p = path.to_str().expect("utf-8 path");
    let mut args = vec!["replay", p];
    args.extend_from_slice(extra);
    viommu(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `N passed, M failed` summary (the last stdout line).
fn summary(o: &Output) -> (u64, u64) {
    let out = stdout(o);
    let last = out.lines().last().unwrap_or_default().to_owned();
    let nums: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        last.ends_with(" failed") && nums.len() == 2,
        "no summary line in {out:?} (stderr {:?})",
        stderr(o)
    );
    (nums[0], nums[1])
}

/// Run `path` and require exit status 0, a summary with 0 failures and at least one check.
fn assert_replay_passes(path: &Path) {
    let o = replay(path, &["--quiet"]);
    let (passed, failed) = summary(&o);
    assert_eq!(
        (o.status.code(), failed),
        (Some(0), 0),
        "{}: failures:\n{}\nstderr: {}",
        path.display(),
        stdout(&o),
        stderr(&o)
    );
    assert!(passed > 0, "{}: no checks ran", path.display());
}

/// A scratch file for one test (removed on drop).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("viommu-replay-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A path in the repository (this crate lives in `cli/`).
fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The recorded Linux 6.12 bring-up trace, vendored in `tests/data/`.
fn recorded_trace() -> PathBuf {
    let path = repo_path("tests/data/linux612-bringup-passthrough.replay.jsonl.xz");
    assert!(path.exists(), "recorded trace missing: {}", path.display());
    path
}

const RAM: &str = "{\"op\":\"ram\",\"base\":\"0x40000000\",\"size\":\"0x100000\"}\n";

/// The real Linux 6.12 arm-smmu-v3 bring-up, recorded against another SMMUv3 implementation,
/// replays with 0 failures: every ID register, ACK and CMDQ_CONS value matches.
#[test]
fn test_replay_linux612_bringup_passthrough() {
    let path = recorded_trace();
    assert_replay_passes(&path);
}

/// The recorded bring-up leaves SIDs 8 and 0x10 (virtio devices under `iommu.passthrough=1`) with
/// bypass STEs (w0 = 0x9) in the recorded stream table: DMA appended to the trace passes through
/// untranslated there, is terminated on an abort STE, and an SID whose level-1 descriptor is
/// invalid gets C_BAD_STREAMID (CR2.RECINVSID = 1 was written) as an event in the recorded
/// event queue, signalled on the wired event-queue line.
#[test]
fn test_replay_linux612_trace_then_dma() {
    use std::io::Read;
    let path = recorded_trace();
    let mut text = String::new();
    xz2::read::XzDecoder::new(std::fs::File::open(&path).expect("recorded trace"))
        .read_to_string(&mut text)
        .expect("decompress");
    let dma = |sid: u32, expect: &str| {
        format!(
            r#"{{"op":"dma","dev":"smmu0","stream":{sid},"addr":"0x40001000","size":8,"access":"write","expect":{expect}}}"#
        )
    };
    for line in [
        dma(8, r#"{"addr":"0x40001000"}"#),
        dma(0x10, r#"{"addr":"0x40001000"}"#),
        dma(0x11, r#"{"fault":true}"#),
        r#"{"op":"mmio_read","dev":"smmu0","offset":"0x100a8","size":4,"expect":"0x0"}"#.into(),
        dma(0x100, r#"{"fault":"C_BAD_STREAMID"}"#),
        r#"{"op":"mmio_read","dev":"smmu0","offset":"0x100a8","size":4,"expect":"0x1"}"#.into(),
        // EVTQ_BASE 0x5b60000f: the record's first word is C_BAD_STREAMID (0x02) | SID << 32.
        r#"{"op":"read_mem","addr":"0x5b600000","len":8,"expect":"0200000000010000"}"#.into(),
        // IDR0.MSI = 0 in the recording: the event interrupt is the wired EVENTQ line.
        format!(
            r#"{{"op":"expect_irq","dev":"smmu0","kind":"wired","line":{},"count":1}}"#,
            viommu_smmuv3::device::lines::EVENTQ
        ),
    ] {
        text.push_str(&line);
        text.push('\n');
    }
    let f = TempFile::new("linux612-dma.jsonl", text.as_bytes());
    assert_replay_passes(&f.0);
    assert_eq!(summary(&replay(&f.0, &["--quiet"])), (16 + 8, 0));
}

/// `--trace` adds the device's trace records (commands consumed, CONS changes) as JSON lines;
/// `--quiet` prints nothing but the summary when everything passes.
#[test]
fn test_replay_trace_and_quiet_output() {
    let path = recorded_trace();
    let traced = replay(&path, &["--trace"]);
    let out = stdout(&traced);
    let trace_lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.contains("\"trace\""))
        .map(|l| serde_json::from_str(l).expect("trace lines are JSON"))
        .collect();
    assert!(trace_lines.len() > 10, "{out}");
    assert!(trace_lines
        .iter()
        .all(|v| v["dev"] == "smmu0" && v["line"].is_u64()));
    assert_eq!(summary(&traced).1, 0);
    let quiet = replay(&path, &["--quiet"]);
    let (passed, _) = summary(&quiet);
    assert_eq!(stdout(&quiet), format!("{passed} passed, 0 failed\n"));
}

/// Every scenario file under tests/replay/ replays with 0 failures.
#[test]
fn test_replay_scenario_files() {
    let dir = repo_path("tests/replay");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/replay exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".jsonl") || n.ends_with(".jsonl.xz") || n.ends_with(".jsonl.gz")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    for f in &files {
        assert_replay_passes(f);
    }
}

/// All checks passing gives exit status 0 and one result line per check.
#[test]
fn test_cli_exit_status_0_when_all_pass() {
    let f = TempFile::new(
        "pass.jsonl",
        format!("{RAM}{{\"op\":\"write_mem\",\"addr\":\"0x40000010\",\"data\":\"0102\"}}\n{{\"op\":\"read_mem\",\"addr\":\"0x40000010\",\"len\":2,\"expect\":\"0102\"}}\n").as_bytes(),
    );
    let o = replay(&f.0, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{\"line\":3,\"op\":\"read_mem\",\"actual\":\"0102\",\"ok\":true}\n1 passed, 0 failed\n"
    );
}

/// A failed check gives exit status 1 and still runs the rest of the file.
#[test]
fn test_cli_exit_status_1_on_failed_check() {
    let f = TempFile::new(
        "fail.jsonl",
        format!("{RAM}{{\"op\":\"read_mem\",\"addr\":\"0x40000010\",\"len\":1,\"expect\":\"ff\"}}\n{{\"op\":\"read_mem\",\"addr\":\"0x40000010\",\"len\":1,\"expect\":\"00\"}}\n").as_bytes(),
    );
    let o = replay(&f.0, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(summary(&o), (1, 1));
    let quiet = replay(&f.0, &["--quiet"]);
    assert_eq!(
        stdout(&quiet),
        "{\"line\":2,\"op\":\"read_mem\",\"actual\":\"00\",\"ok\":false,\"expect\":\"ff\"}\n1 passed, 1 failed\n"
    );
}

/// Malformed files give exit status 2, name the line and the reason on stderr, and execute
/// nothing (no result lines on stdout). A device whose ID registers or configuration the model
/// cannot support fails to start with the unsupported field named.
#[test]
fn test_cli_exit_status_2_with_line_numbers() {
    let cases = [
        ("{\"op\":\"teleport\"}", "line 3: unknown op \"teleport\""),
        (
            "{\"op\":\"write_mem\",\"data\":\"00\"}",
            "line 3: write_mem: missing field `addr`",
        ),
        (
            "{\"op\":\"write_mem\",\"addr\":\"0x10\",\"data\":\"00\"}",
            "line 3: write_mem: 1 bytes at 0x10 are not all inside guest RAM",
        ),
        (
            "{\"op\":\"mmio_read\",\"dev\":\"nope\",\"offset\":0,\"size\":4}",
            "line 3: no device named \"nope\"",
        ),
        (
            "{\"op\":\"read_mem\",\"addr\":\"0x4000001z\",\"len\":1}",
            "line 3: read_mem: field `addr`",
        ),
        ("not json", "line 3: invalid JSON"),
        (
            r#"{"op":"device","name":"s","kind":"smmuv3","config":{"id_regs":{"idr0":"0x094C701B","idr1":"0x02730510"}}}"#,
            "line 3: device \"s\" (smmuv3): config.id_regs: IDR0.SEV",
        ),
        (
            r#"{"op":"device","name":"p","kind":"pamu","config":{"instances":0}}"#,
            "line 3: device \"p\" (pamu): config: instances = 0",
        ),
    ];
    for (bad, want) in cases {
        let f = TempFile::new(
            "bad.jsonl",
            format!("{RAM}{{\"op\":\"read_mem\",\"addr\":\"0x40000000\",\"len\":1,\"expect\":\"00\"}}\n{bad}\n").as_bytes(),
        );
        let o = replay(&f.0, &[]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).contains(want), "{bad}: stderr {:?}", stderr(&o));
        assert!(
            stdout(&o).is_empty(),
            "{bad}: half-applied: {:?}",
            stdout(&o)
        );
    }
    let o = viommu(&["replay", "/nonexistent/viommu.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot open"));
}

/// `.xz` and `.gz` files are decompressed by extension; a corrupt one is malformed (exit 2).
#[test]
fn test_cli_compressed_input() {
    let text = format!(
        "{RAM}{{\"op\":\"read_mem\",\"addr\":\"0x40000000\",\"len\":4,\"expect\":\"00000000\"}}\n"
    );
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(text.as_bytes()).unwrap();
    let xz = TempFile::new("c.jsonl.xz", &xz.finish().unwrap());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = TempFile::new("c.jsonl.gz", &gz.finish().unwrap());
    for f in [&xz, &gz] {
        let o = replay(&f.0, &[]);
        assert_eq!(
            (o.status.code(), summary(&o)),
            (Some(0), (1, 0)),
            "{}",
            f.0.display()
        );
    }
    let corrupt = TempFile::new("corrupt.jsonl.xz", text.as_bytes());
    let o = replay(&corrupt.0, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 1: cannot read"), "{}", stderr(&o));
}

/// `-` reads the replay from standard input.
#[test]
fn test_cli_stdin() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_viommu"))
        .args(["replay", "-", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn viommu");
    let text = format!(
        "{RAM}{{\"op\":\"read_mem\",\"addr\":\"0x40000000\",\"len\":1,\"expect\":\"00\"}}\n"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1 passed, 0 failed\n");
}

/// Command-line usage errors (no FILE) exit with status 2, like a malformed file.
#[test]
fn test_cli_usage_error() {
    let o = viommu(&["replay"]);
    assert_eq!(o.status.code(), Some(2));
}
