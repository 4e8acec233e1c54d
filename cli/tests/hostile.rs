//! `viommu replay` on hostile files, through the built binary: malformed, truncated, binary
//! garbage, deeply nested, enormous (RAM requests, lines, files), compressed garbage and
//! decompression bombs. Each must end with exit status 2, `line N: reason` on stderr and
//! nothing on stdout, in bounded memory; on Linux some run under an address-space limit
//! (`ulimit -v`), so an allocation the limits should have prevented aborts the process and
//! fails the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch file for one test (removed on drop).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("viommu-hostile-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn viommu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_viommu"))
        .args(args)
        .output()
        .expect("run the viommu binary")
}

/// `viommu replay FILE EXTRA...`.
fn replay(file: &TempFile, extra: &[&str]) -> Output {
    let mut args = vec!["replay", file.path()];
    args.extend_from_slice(extra);
    viommu(&args)
}

/// `viommu replay FILE EXTRA...` with the address space limited to `kib` KiB (`ulimit -v`).
#[cfg(target_os = "linux")]
fn replay_limited(kib: u64, file: &str, extra: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" replay \"$@\""))
        .arg(env!("CARGO_BIN_EXE_viommu"))
        .arg(file)
        .args(extra)
        .output()
        .expect("run sh")
}

/// Require exit status 2, nothing on stdout, and stderr naming `line` and containing `reason`.
fn assert_malformed(o: &Output, line: usize, reason: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "status {:?}, stderr {err:?}",
        o.status
    );
    assert!(
        o.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(&format!("line {line}: ")) && err.contains(reason),
        "expected line {line} and {reason:?} in {err:?}"
    );
    assert_eq!(err.lines().count(), 1, "one error line: {err:?}");
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(bytes).expect("compress");
    e.finish().expect("compress")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("compress");
    e.finish().expect("compress")
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

const SETUP: &str = "{\"op\":\"ram\",\"base\":\"0x40000000\",\"size\":\"0x10000\"}\n\
                     {\"op\":\"device\",\"name\":\"smmu0\",\"kind\":\"smmuv3\"}\n";

/// Binary garbage: invalid UTF-8 is reported at its line and column; garbage without a newline
/// is cut at the line-length limit instead of being read whole.
#[test]
fn test_hostile_binary_garbage() {
    let mut bytes = SETUP.as_bytes().to_vec();
    bytes.extend_from_slice(b"{\"op\":\"comment\",\"text\":\"\xff\xfe\"}\n");
    let f = TempFile::new("utf8.jsonl", &bytes);
    assert_malformed(
        &replay(&f, &[]),
        3,
        "not UTF-8 text (invalid byte at column 25)",
    );

    let mut bytes = garbage(3 << 20, 1);
    bytes.retain(|&b| b != b'\n');
    bytes[0] = b'{';
    let f = TempFile::new("noline.bin", &bytes);
    assert_malformed(
        &replay(&f, &[]),
        1,
        "line is longer than the limit of 1048576 bytes",
    );

    // Arbitrary garbage: some line fails (UTF-8, JSON, length), never a crash.
    for seed in 1..20 {
        let f = TempFile::new("garbage.bin", &garbage(64 << 10, seed));
        let o = replay(&f, &[]);
        assert_eq!(o.status.code(), Some(2), "seed {seed}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("line "));
    }
}

/// Truncated files: a line cut anywhere (a JSON object without its end, a final line without a
/// newline) is reported at that line; cutting only the trailing newline is harmless.
#[test]
fn test_hostile_truncated() {
    let text = format!(
        "{SETUP}{{\"op\":\"mmio_read\",\"dev\":\"smmu0\",\"offset\":\"0x0\",\"size\":4}}\n"
    );
    let ends_of_line2 = SETUP.find('\n').expect("two lines") + 1;
    for cut in [
        ends_of_line2 + 1,
        ends_of_line2 + 20,
        SETUP.len() + 30,
        text.len() - 2,
    ] {
        let f = TempFile::new("trunc.jsonl", &text.as_bytes()[..cut]);
        let line = text[..cut].lines().count();
        assert_malformed(&replay(&f, &[]), line, "invalid JSON: EOF while parsing");
    }
    let f = TempFile::new("trunc-nl.jsonl", &text.as_bytes()[..text.len() - 1]);
    assert_eq!(replay(&f, &["--quiet"]).status.code(), Some(0));
}

/// Deep nesting stops at serde_json's recursion limit (128), in an operation and in a device
/// configuration, without exhausting the stack.
#[test]
fn test_hostile_deep_nesting() {
    let f = TempFile::new(
        "deep.jsonl",
        format!("{}\n", "[".repeat(500_000)).as_bytes(),
    );
    assert_malformed(&replay(&f, &[]), 1, "recursion limit exceeded");
    let config = format!("{}1{}", "{\"a\":".repeat(129), "}".repeat(129));
    let text =
        format!("{{\"op\":\"device\",\"name\":\"d\",\"kind\":\"smmuv3\",\"config\":{config}}}\n");
    let f = TempFile::new("deep-config.jsonl", text.as_bytes());
    assert_malformed(&replay(&f, &[]), 1, "recursion limit exceeded");
    // Wide instead of deep: a configuration tree is bounded too.
    let wide = format!("{{\"x\":[{}0]}}", "0,".repeat(5000));
    let text =
        format!("{{\"op\":\"device\",\"name\":\"d\",\"kind\":\"smmuv3\",\"config\":{wide}}}\n");
    let f = TempFile::new("wide-config.jsonl", text.as_bytes());
    assert_malformed(
        &replay(&f, &[]),
        1,
        "field `config` has more than 1024 values",
    );
}

/// Enormous requests: RAM beyond the limit (in one region or summed), sizes and lengths that
/// overflow, a read_mem beyond its limit, more devices than the limit.
#[test]
fn test_hostile_enormous_requests() {
    let cases: [(&str, usize, &str); 6] = [
        (
            "{\"op\":\"ram\",\"base\":\"0x0\",\"size\":\"0x10000000000\"}\n",
            1,
            "total RAM exceeds the limit of 0x100000000 bytes",
        ),
        (
            "{\"op\":\"ram\",\"base\":\"0x0\",\"size\":\"0xc0000000\"}\n\
             {\"op\":\"ram\",\"base\":\"0x100000000\",\"size\":\"0xc0000000\"}\n",
            2,
            "total RAM exceeds the limit",
        ),
        (
            "{\"op\":\"ram\",\"base\":\"0x1000\",\"size\":\"0xfffffffffffff001\"}\n",
            1,
            "past the end of the address space",
        ),
        (
            "{\"op\":\"read_mem\",\"addr\":0,\"len\":\"0x100000000\"}\n",
            1,
            "field `len` must be between 1 and 0x1000000",
        ),
        (
            "{\"op\":\"dma\",\"dev\":\"d\",\"stream\":0,\"addr\":\"0xffffffffffffff00\",\
             \"size\":\"0x1000\",\"access\":\"read\"}\n",
            1,
            "access runs past the end of the address space",
        ),
        (
            "{\"op\":\"write_mem\",\"addr\":\"0xffffffffffffffff\",\"data\":\"0000\"}\n",
            1,
            "not all inside guest RAM",
        ),
    ];
    for (text, line, reason) in cases {
        let f = TempFile::new("enormous.jsonl", text.as_bytes());
        assert_malformed(&replay(&f, &[]), line, reason);
    }
    let devices: String = (0..65)
        .map(|i| format!("{{\"op\":\"device\",\"name\":\"p{i}\",\"kind\":\"pamu\"}}\n"))
        .collect();
    let f = TempFile::new("devices.jsonl", devices.as_bytes());
    assert_malformed(&replay(&f, &[]), 65, "more than the limit of 64 devices");
    // The RAM limit is the caller's to raise (and lower).
    let f = TempFile::new(
        "ram.jsonl",
        b"{\"op\":\"ram\",\"base\":\"0x0\",\"size\":\"0x2000\"}\n",
    );
    assert_malformed(
        &replay(&f, &["--max-ram", "0x1000"]),
        1,
        "limit of 0x1000 bytes",
    );
    assert_eq!(replay(&f, &["--max-ram", "8192"]).status.code(), Some(0));
}

/// Decompression bombs and compressed garbage: the text after decompression is held to
/// `--max-input` (read as it is decompressed, never whole), an xz header asking for more decoder
/// memory than the limit fails, and corrupt streams are read errors at the line they hit.
#[test]
fn test_hostile_compressed() {
    // 16 MiB of comment-only lines, a few KiB compressed.
    let bomb: Vec<u8> = b"# padding padding padding padding padding padding padding\n"
        .iter()
        .copied()
        .cycle()
        .take(16 << 20)
        .collect();
    let lines_in_4mib = (4 << 20) / 58 + 1;
    let x = TempFile::new("bomb.jsonl.xz", &xz(&bomb));
    assert!(std::fs::metadata(&x.0).expect("stat").len() < 64 << 10);
    let o = replay(&x, &["--max-input", "0x400000"]);
    assert_malformed(
        &o,
        lines_in_4mib,
        "the file is longer than the limit of 4194304 bytes",
    );
    let g = TempFile::new("bomb.jsonl.gz", &gz(&bomb));
    let o = replay(&g, &["--max-input", "4194304"]);
    assert_malformed(
        &o,
        lines_in_4mib,
        "the file is longer than the limit of 4194304 bytes",
    );

    // Garbage with an .xz/.gz name, and a valid stream cut short or bit-flipped.
    let g = TempFile::new("g.jsonl.xz", &garbage(4096, 7));
    assert_malformed(&replay(&g, &[]), 1, "cannot read the file");
    let g = TempFile::new("g.jsonl.gz", &garbage(4096, 8));
    assert_malformed(&replay(&g, &[]), 1, "cannot read the file");
    let good = xz(format!(
        "{SETUP}{}",
        "{\"op\":\"comment\",\"text\":\"x\"}\n".repeat(1000)
    )
    .as_bytes());
    let cut = TempFile::new("cut.jsonl.xz", &good[..good.len() / 2]);
    let o = replay(&cut, &[]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("line "));
    for i in (12..good.len()).step_by(7) {
        let mut flipped = good.clone();
        flipped[i] ^= 0x10;
        let f = TempFile::new("flip.jsonl.xz", &flipped);
        let o = replay(&f, &["--quiet"]);
        // The integrity check catches every flip before the text is used; a flip that happens
        // to leave valid text (none in practice) would run it.
        assert!(matches!(o.status.code(), Some(0 | 2)), "byte {i}: {o:?}");
    }

    // An xz block header asking for a 4 GiB dictionary (patched into a valid file, its CRC32
    // recomputed): refused by the decoder's memory limit, not allocated.
    let mut big = xz(b"{\"op\":\"comment\",\"text\":\"x\"}\n");
    // Stream header (12 bytes), then the block header: size, flags, filter ID 0x21 (LZMA2),
    // properties size 1, the dictionary-size byte, padding, CRC32 of the preceding 8 bytes.
    assert_eq!(&big[12..16], &[0x02, 0x00, 0x21, 0x01]);
    big[16] = 40;
    let mut crc = flate2::Crc::new();
    crc.update(&big[12..20]);
    big[20..24].copy_from_slice(&crc.sum().to_le_bytes());
    let f = TempFile::new("dict.jsonl.xz", &big);
    assert_malformed(
        &replay(&f, &[]),
        1,
        "cannot read the file: memory limit reached",
    );
}

/// Standard input gets the same treatment as a file.
#[test]
fn test_hostile_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_viommu"))
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = garbage(2 << 20, 3);
    input.retain(|&b| b != b'\n');
    input[..5].copy_from_slice(b"# ok\n");
    let mut stdin = child.stdin.take().expect("stdin");
    // The replay stops reading at the line limit; the rest of the write may find the pipe
    // closed.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert_malformed(&o, 2, "line is longer than the limit");
}

/// Under a 1 GiB address-space limit: the recorded Linux trace (512 MiB of guest RAM, mapped
/// lazily) still replays, a file declaring the maximum 4 GiB of RAM fails cleanly when it cannot
/// be mapped, and a file of large operations near the input limit is rejected at the limit
/// without the process running out of memory.
#[cfg(target_os = "linux")]
#[test]
fn test_hostile_bounded_memory() {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/linux612-bringup-passthrough.replay.jsonl.xz");
    let o = replay_limited(1 << 20, trace.to_str().expect("utf-8"), &["--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");

    let f = TempFile::new(
        "ram4g.jsonl",
        b"{\"op\":\"ram\",\"base\":\"0x0\",\"size\":\"0x100000000\"}\n",
    );
    let o = replay_limited(1 << 20, f.path(), &[]);
    assert_malformed(&o, 1, "ram: cannot create guest RAM");

    // 1 MiB write_mem lines: each fits the line limit; together they cross --max-input.
    let line = format!(
        "{{\"op\":\"write_mem\",\"addr\":\"0x40000000\",\"data\":\"{}\"}}\n",
        "00".repeat(500_000)
    );
    let text = format!("{SETUP}{}", line.repeat(48));
    let f = TempFile::new("big-ops.jsonl.xz", &xz(text.as_bytes()));
    let o = replay_limited(256 << 10, f.path(), &["--max-input", "0x2000000"]);
    let over = 2 + (32 << 20) / line.len() + 1;
    assert_malformed(
        &o,
        over,
        "the file is longer than the limit of 33554432 bytes",
    );
}
