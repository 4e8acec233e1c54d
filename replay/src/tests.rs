//! Engine tests over the fake device: output lines, counting, exit outcomes, irq windows, and
//! rejection of malformed files before anything runs.

use super::*;

const SETUP: &str = r#"{"op":"ram","base":"0x40000000","size":"0x10000"}
{"op":"device","name":"f","kind":"fake"}
"#;

struct Run {
    outcome: Outcome,
    out: Vec<String>,
    err: String,
}

fn run_with(text: &str, opts: Options) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = run_reader("test", text.as_bytes(), &opts, &mut out, &mut err);
    Run {
        outcome,
        out: String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn run(body: &str) -> Run {
    run_with(&format!("{SETUP}{body}"), Options::default())
}

fn json_lines(r: &Run) -> Vec<serde_json::Value> {
    r.out
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A passing `mmio_read` prints `{"line", "op", "actual", "ok"}` in that order, and the
/// summary counts it.
#[test]
fn test_mmio_read_output_line_and_summary() {
    let r = run(r#"{"op":"mmio_read","dev":"f","offset":0,"size":4,"expect":"0xfa4e0001"}"#);
    assert_eq!(r.outcome, Outcome::Passed);
    assert_eq!(
        r.out,
        vec![
            r#"{"line":3,"op":"mmio_read","actual":"0xfa4e0001","ok":true}"#,
            "1 passed, 0 failed"
        ]
    );
}

/// A mismatch is a failure (exit 1) and the line shows what was expected; a mask limits the
/// compared bits.
#[test]
fn test_mmio_read_mismatch_and_mask() {
    let r = run(concat!(
        r#"{"op":"mmio_read","dev":"f","offset":0,"size":4,"expect":"0xfa4e0002"}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":0,"size":4,"expect":"0xfa4e0002","mask":"0xffff0000"}"#,
    ));
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.outcome.exit_code(), 1);
    let v = json_lines(&r);
    assert_eq!(v[0]["ok"], false);
    assert_eq!(v[0]["expect"], "0xfa4e0002");
    assert_eq!(v[1]["ok"], true);
    assert_eq!(r.out.last().unwrap(), "1 passed, 1 failed");
}

/// Writes go to the device and reads come back; reads without `expect` print a value but are
/// not counted as checks.
#[test]
fn test_mmio_write_then_read_unchecked() {
    let r = run(concat!(
        r#"{"op":"mmio_write","dev":"f","offset":"0x8","size":8,"value":"0x1122334455667788"}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":"0x8","size":8}"#,
    ));
    assert_eq!(
        r.out,
        vec![
            r#"{"line":4,"op":"mmio_read","actual":"0x1122334455667788"}"#,
            "0 passed, 0 failed"
        ]
    );
    assert_eq!(r.outcome, Outcome::Passed);
}

/// An access the device refuses is reported with `error`, reads as 0, and is not a failure by
/// itself.
#[test]
fn test_refused_mmio_access_reported() {
    let r = run(concat!(
        r#"{"op":"mmio_write","dev":"f","offset":"0x0","size":4,"value":1}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":"0x20","size":2,"expect":0}"#,
    ));
    let v = json_lines(&r);
    assert_eq!(v[0]["op"], "mmio_write");
    assert!(v[0]["error"]
        .as_str()
        .unwrap()
        .contains("unsupported 4-byte access"));
    assert_eq!(v[1]["actual"], "0x0");
    assert_eq!(v[1]["ok"], true);
    assert!(v[1]["error"].is_string());
}

/// `write_mem` then `read_mem` round-trips guest RAM; a wrong `expect` fails.
#[test]
fn test_ram_write_read() {
    let r = run(concat!(
        r#"{"op":"write_mem","addr":"0x40000ffe","data":"deadbeef"}"#,
        "\n",
        r#"{"op":"read_mem","addr":"0x40000ffe","len":4,"expect":"deadbeef"}"#,
        "\n",
        r#"{"op":"read_mem","addr":"0x40000fff","len":2,"expect":"adbf"}"#,
    ));
    let v = json_lines(&r);
    assert_eq!(v[0]["actual"], "deadbeef");
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[1]["actual"], "adbe");
    assert_eq!(v[1]["expect"], "adbf");
    assert_eq!(r.outcome, Outcome::Failed);
}

/// DMA results print the output address or the fault name, and all three expectation shapes
/// are checked.
#[test]
fn test_dma_expectations() {
    let r = run(concat!(
        r#"{"op":"dma","dev":"f","stream":1,"addr":"0x1000","size":4,"access":"read","expect":{"addr":"0x10001000"}}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":2,"substream":3,"addr":"0x1000","size":4,"access":"write","expect":{"addr":"0x300001000"}}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":9,"addr":"0x1000","size":4,"access":"exec","expect":{"fault":true}}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":9,"addr":"0x1000","size":4,"access":"read","expect":{"fault":"F_TRANSLATION"}}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":9,"addr":"0x1000","size":4,"access":"read","expect":{"fault":"C_BAD_STE"}}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":1,"addr":"0x1000","size":4,"access":"read","expect":{"fault":true}}"#,
    ));
    let v: Vec<_> = json_lines(&r)
        .into_iter()
        .filter(|v| v.get("op").is_some())
        .collect();
    assert_eq!(v[0]["actual"]["addr"], "0x10001000");
    assert_eq!(v[2]["actual"]["fault"], "F_TRANSLATION");
    let oks: Vec<_> = v.iter().map(|v| v["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [true, true, true, true, false, false]);
    assert_eq!(r.out.last().unwrap(), "4 passed, 2 failed");
}

/// Work queued by a register write completes before the next read ("the device finishes all
/// work it has pending"), and its MSI is printed as an `irq` line when it happens.
#[test]
fn test_settle_before_read_and_irq_lines() {
    let r = run(concat!(
        r#"{"op":"mmio_write","dev":"f","offset":"0x18","size":8,"value":"0x8000000"}"#,
        "\n",
        r#"{"op":"mmio_write","dev":"f","offset":"0x10","size":4,"value":2}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":"0x14","size":4,"expect":2}"#,
    ));
    assert_eq!(r.outcome, Outcome::Passed);
    let irq = r#"{"irq":{"dev":"f","kind":"msi","addr":"0x8000000","data":"0x2"},"line":5}"#;
    let read = r#"{"line":5,"op":"mmio_read","actual":"0x2","ok":true}"#;
    assert_eq!(r.out[..2], [irq, read]);
}

/// `expect_irq` sees the interrupts since the previous `expect_irq` for the device;
/// consecutive checks share one window; `count` is exact (0 asserts absence).
#[test]
fn test_expect_irq_windows() {
    let r = run(concat!(
        r#"{"op":"mmio_write","dev":"f","offset":"0x18","size":8,"value":"0x8000000"}"#,
        "\n",
        r#"{"op":"mmio_write","dev":"f","offset":"0x10","size":4,"value":1}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":7,"addr":0,"size":1,"access":"read"}"#,
        "\n",
        r#"{"op":"expect_irq","dev":"f","kind":"msi","addr":"0x8000000","data":1}"#,
        "\n",
        r#"{"op":"expect_irq","dev":"f","kind":"wired","line":3,"count":1}"#,
        "\n",
        r#"{"op":"comment","text":"new window"}"#,
        "\n",
        r#"{"op":"expect_irq","dev":"f","kind":"wired","line":3,"count":0}"#,
        "\n",
        r#"{"op":"expect_irq","dev":"f","kind":"wired","line":3}"#,
    ));
    let checks: Vec<_> = json_lines(&r)
        .into_iter()
        .filter(|v| v["op"] == "expect_irq")
        .map(|v| (v["actual"].as_u64().unwrap(), v["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(checks, [(1, true), (1, true), (0, true), (0, false)]);
    assert_eq!(r.outcome, Outcome::Failed);
}

/// `--quiet` prints only failed checks and the summary; `--trace` adds the device's records.
#[test]
fn test_quiet_and_trace_options() {
    let body = concat!(
        r#"{"op":"comment","text":"hello"}"#,
        "\n",
        r#"{"op":"mmio_write","dev":"f","offset":"0x10","size":4,"value":1}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":"0x14","size":4,"expect":1}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":"0x14","size":4,"expect":5}"#,
    );
    let quiet = run_with(
        &format!("{SETUP}{body}"),
        Options {
            quiet: true,
            trace: false,
        },
    );
    assert_eq!(quiet.out.len(), 2, "{:?}", quiet.out);
    assert!(quiet.out[0].contains(r#""line":6"#) && quiet.out[0].contains(r#""ok":false"#));
    assert_eq!(quiet.out[1], "1 passed, 1 failed");

    let traced = run_with(
        &format!("{SETUP}{body}"),
        Options {
            quiet: false,
            trace: true,
        },
    );
    assert!(traced
        .out
        .contains(&r#"{"line":3,"comment":"hello"}"#.to_owned()));
    assert!(traced
        .out
        .contains(&r#"{"line":4,"dev":"f","trace":"DOORBELL 1"}"#.to_owned()));
    assert!(traced
        .out
        .contains(&r#"{"line":5,"dev":"f","trace":"DONE 1"}"#.to_owned()));
}

/// Malformed files are rejected with their line number before anything runs (no output, exit
/// status 2): cross-line errors included.
#[test]
fn test_malformed_files_rejected_with_line_numbers() {
    let cases: &[(&str, usize, &str)] = &[
        (
            r#"{"op":"mmio_read","dev":"g","offset":0,"size":4}"#,
            3,
            "no device named \"g\"",
        ),
        (
            r#"{"op":"write_mem","addr":"0x4000fffe","data":"000000"}"#,
            3,
            "not all inside guest RAM",
        ),
        (
            r#"{"op":"read_mem","addr":"0x1000","len":1}"#,
            3,
            "not all inside guest RAM",
        ),
        (
            r#"{"op":"mmio_write","dev":"f","offset":"0xfc","size":8,"value":0}"#,
            3,
            "outside \"f\"'s 0x100-byte MMIO region",
        ),
        (
            r#"{"op":"device","name":"f","kind":"fake"}"#,
            3,
            "already exists",
        ),
        (
            r#"{"op":"device","name":"g","kind":"tpu"}"#,
            3,
            "unknown device kind",
        ),
        (
            r#"{"op":"device","name":"g","kind":"fake","config":{"unsupported":1}}"#,
            3,
            "cannot support",
        ),
        (
            r#"{"op":"ram","base":0,"size":16}"#,
            3,
            "before the first device (line 2)",
        ),
        (r#"{"op":"jump"}"#, 3, "unknown op"),
    ];
    for (line, n, reason) in cases {
        let text = format!("{SETUP}{{\"op\":\"comment\",\"text\":\"not printed\"}}\n{line}\n");
        let r = run_with(&text, Options::default());
        assert_eq!(r.outcome, Outcome::Malformed, "{line}");
        assert!(r.out.is_empty(), "{line}: output {:?}", r.out);
        let want = format!("line {}: ", n + 1);
        assert!(
            r.err.contains(&want) && r.err.contains(reason),
            "{line}: {}",
            r.err
        );
    }
}

/// Overlapping RAM regions are malformed; regions may be given in any order.
#[test]
fn test_ram_regions() {
    let r = run_with(
        "{\"op\":\"ram\",\"base\":\"0x2000\",\"size\":\"0x1000\"}\n{\"op\":\"ram\",\"base\":\"0x2800\",\"size\":\"0x1000\"}\n",
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Malformed);
    assert!(
        r.err
            .contains("line 2: ram: region overlaps the one on line 1"),
        "{}",
        r.err
    );
    let r = run_with(
        concat!(
            "{\"op\":\"ram\",\"base\":\"0x8000\",\"size\":\"0x1000\"}\n{\"op\":\"ram\",\"base\":\"0x2000\",\"size\":\"0x1000\"}\n",
            "{\"op\":\"write_mem\",\"addr\":\"0x2ffe\",\"data\":\"0102\"}\n",
            "{\"op\":\"read_mem\",\"addr\":\"0x8000\",\"len\":1,\"expect\":\"00\"}\n"
        ),
        Options::default(),
    );
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.err);
}

/// A compressed file that is corrupt is malformed at the line where reading failed.
#[test]
fn test_unreadable_input_is_malformed() {
    let bytes: &[u8] = b"{\"op\":\"comment\",\"text\":\"a\"}\n\xff\xfe\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let o = run_reader("bin", bytes, &Options::default(), &mut out, &mut err);
    assert_eq!(o, Outcome::Malformed);
    assert!(String::from_utf8(err)
        .unwrap()
        .contains("line 2: cannot read"));
}

/// A panic inside a device model is reported as a failed check on its line and stops the run;
/// the replay itself does not crash.
#[test]
fn test_device_panic_reported_as_failure() {
    let r = run(concat!(
        r#"{"op":"dma","dev":"f","stream":"0xdead","addr":0,"size":1,"access":"read"}"#,
        "\n",
        r#"{"op":"mmio_read","dev":"f","offset":0,"size":4,"expect":"0xfa4e0001"}"#,
    ));
    assert_eq!(r.outcome, Outcome::Failed);
    let v = json_lines(&r);
    assert_eq!(v.len(), 1, "{:?}", r.out);
    assert_eq!(v[0]["line"], 3);
    assert_eq!(v[0]["op"], "dma");
    assert_eq!(v[0]["error"], "device model panicked: fake model bug");
    assert_eq!(r.out.last().unwrap(), "0 passed, 1 failed");
}

/// Hostile input: random byte mutations of valid lines, and random ops over the fake device and
/// an SMMUv3 with random register offsets, values and DMA parameters, never panic; each file
/// ends either malformed (exit 2) or with a summary.
#[test]
fn test_random_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0003);
    let valid = [
        r#"{"op":"mmio_write","dev":"f","offset":"0x10","size":4,"value":"0x3"}"#,
        r#"{"op":"dma","dev":"f","stream":1,"addr":"0x1000","size":4,"access":"read","expect":{"addr":"0x10001000"}}"#,
        r#"{"op":"read_mem","addr":"0x40000000","len":4,"expect":"00000000"}"#,
        r#"{"op":"expect_irq","dev":"f","kind":"msi","addr":"0x0","data":1,"count":1}"#,
    ];
    for _ in 0..2000 {
        let mut line = valid[rng.random_range(0..valid.len())].as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..line.len());
            line[i] = rng.random();
        }
        let text = format!("{SETUP}{}\n", String::from_utf8_lossy(&line));
        let r = run_with(&text, Options::default());
        assert!(
            r.outcome == Outcome::Malformed || r.out.last().is_some_and(|l| l.ends_with(" failed")),
            "{text}"
        );
    }
    let setup = concat!(
        "{\"op\":\"ram\",\"base\":\"0x40000000\",\"size\":\"0x100000\"}\n",
        "{\"op\":\"device\",\"name\":\"s\",\"kind\":\"smmuv3\"}\n",
        "{\"op\":\"device\",\"name\":\"p\",\"kind\":\"pamu\"}\n",
    );
    for _ in 0..50 {
        let mut text = setup.to_owned();
        for _ in 0..200 {
            let dev = if rng.random() { "s" } else { "p" };
            let op = match rng.random_range(0..4) {
                0 => format!(
                    r#"{{"op":"mmio_write","dev":"{dev}","offset":"{:#x}","size":{},"value":"{:#x}"}}"#,
                    rng.random_range(0..0x1000u64) & !3,
                    [4, 8][rng.random_range(0..2)],
                    rng.random::<u32>()
                ),
                1 => format!(
                    r#"{{"op":"mmio_read","dev":"{dev}","offset":"{:#x}","size":4}}"#,
                    rng.random_range(0..0x1000u64) & !3
                ),
                2 => format!(
                    r#"{{"op":"write_mem","addr":"{:#x}","data":"{:016x}"}}"#,
                    0x4000_0000 + (rng.random_range(0..0x1_0000u64) & !7),
                    rng.random::<u64>()
                ),
                _ => format!(
                    r#"{{"op":"dma","dev":"{dev}","stream":{},"addr":"{:#x}","size":{},"access":"write"}}"#,
                    rng.random_range(0..0x1000u32),
                    rng.random::<u64>() >> 1,
                    rng.random_range(1..0x1000u64)
                ),
            };
            text.push_str(&op);
            text.push('\n');
        }
        let r = run_with(&text, Options::default());
        assert_ne!(r.outcome, Outcome::Malformed, "{}", r.err);
        assert!(r.out.last().is_some_and(|l| l == "0 passed, 0 failed"));
    }
}

/// Interrupt windows are per device: an interrupt raised by one device never satisfies an
/// `expect_irq` for another, and checking one device does not consume another's window.
#[test]
fn test_expect_irq_per_device() {
    let r = run(concat!(
        r#"{"op":"device","name":"g","kind":"fake"}"#,
        "\n",
        r#"{"op":"dma","dev":"f","stream":7,"addr":0,"size":1,"access":"read"}"#,
        "\n",
        r#"{"op":"expect_irq","dev":"g","kind":"wired","line":3,"count":0}"#,
        "\n",
        r#"{"op":"expect_irq","dev":"f","kind":"wired","line":3,"count":1}"#,
    ));
    let checks: Vec<_> = json_lines(&r)
        .into_iter()
        .filter(|v| v["op"] == "expect_irq")
        .map(|v| (v["actual"].as_u64().unwrap(), v["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(checks, [(0, true), (1, true)]);
    assert_eq!(r.outcome, Outcome::Passed);
}

/// The library API: caller-supplied guest memory (every `ram` line must lie inside it), an
/// SMMUv3 created by the caller's factory and reachable after setup, and an observer that
/// serves an operation itself and sees every typed result.
#[test]
fn test_session_builder_memory_factory_and_observer() {
    use std::sync::{Arc, Mutex};
    use vm_memory::{GuestAddress, GuestMemoryMmap};
    let text = concat!(
        "{\"op\":\"ram\",\"base\":\"0x40000000\",\"size\":\"0x10000\"}\n",
        "{\"op\":\"device\",\"name\":\"s\",\"kind\":\"smmuv3\",\"config\":{\"cmdq_batch_limit\":2}}\n",
        "{\"op\":\"write_mem\",\"addr\":\"0x40000010\",\"data\":\"0102\"}\n",
        "{\"op\":\"dma\",\"dev\":\"s\",\"stream\":3,\"addr\":\"0x1000\",\"size\":4,\"access\":\"read\",\"expect\":{\"addr\":\"0x5000\"}}\n",
        "{\"op\":\"read_mem\",\"addr\":\"0x40000010\",\"len\":2,\"expect\":\"0102\"}\n",
    );
    let small = Arc::new(
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0x4000_0000), 0x1000)]).unwrap(),
    );
    let e = Session::builder()
        .memory(small)
        .build(parse::parse_script(text.as_bytes()).unwrap())
        .err()
        .unwrap();
    assert_eq!(e.line, 1);
    assert!(
        e.reason.contains("not inside the supplied guest memory"),
        "{e}"
    );

    let mem = Arc::new(
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0x4000_0000), 0x10000)]).unwrap(),
    );
    let made = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&made);
    let session = Session::builder()
        .memory(Arc::clone(&mem))
        .smmuv3_factory(move |s| {
            seen.lock().unwrap().push(s.name.to_owned());
            viommu_smmuv3::device::SmmuV3::new(s.config, Arc::clone(s.mem), s.irq)
                .map_err(|e| e.to_string())
        })
        .build(parse::parse_script(text.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(*made.lock().unwrap(), ["s"]);
    assert!(session.smmuv3("s").is_some() && session.smmuv3("t").is_none());
    assert!(Arc::ptr_eq(session.memory(), &mem));

    struct Serve(Vec<OpResult>);
    impl Observer for Serve {
        fn before(&mut self, step: &parse::Line, _: &Session) -> Action {
            match &step.op {
                parse::Op::Dma(d) => {
                    Action::Replace(Actual::Dma(iopf::DmaOutcome::Addr(d.addr + 0x4000)))
                }
                _ => Action::Run,
            }
        }
        fn result(&mut self, _: &parse::Line, r: &OpResult) {
            self.0.push(r.clone());
        }
    }
    let mut obs = Serve(Vec::new());
    let summary = session.run_with(&mut obs);
    assert_eq!(
        summary,
        Summary {
            passed: 2,
            failed: 0
        }
    );
    let lines: Vec<_> = obs.0.iter().map(|r| (r.line, r.op, r.ok)).collect();
    assert_eq!(
        lines,
        [
            (1, "ram", None),
            (2, "device", None),
            (3, "write_mem", None),
            (4, "dma", Some(true)),
            (5, "read_mem", Some(true)),
        ]
    );
    // The caller's memory is the one the file wrote.
    let mut b = [0u8; 2];
    viommu_common::mem::read_bytes(&*mem, 0x4000_0010, &mut b).unwrap();
    assert_eq!(b, [1, 2]);
}

/// The parse limits: each is reported on the line that crosses it, exactly at the limit the
/// file is accepted.
#[test]
fn test_limits_are_enforced_at_the_crossing_line() {
    let limits = |f: &dyn Fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        l
    };
    let comment = "{\"op\":\"comment\",\"text\":\"x\"}\n"; // 28 bytes
    let text = format!("# a\n{}", comment.repeat(3));
    let check = |l: Limits, expect: Result<usize, (usize, &str)>| {
        let r = parse::parse_script_with(text.as_bytes(), &l);
        match (r, expect) {
            (Ok(s), Ok(n)) => assert_eq!(s.len(), n),
            (Err(e), Err((line, reason))) => {
                assert_eq!(e.line, line, "{e}");
                assert!(e.reason.contains(reason), "{e}");
            }
            (r, e) => panic!("{r:?}, expected {e:?}"),
        }
    };
    check(limits(&|l| l.max_ops = 3), Ok(3));
    check(
        limits(&|l| l.max_ops = 2),
        Err((4, "more than the limit of 2 operations")),
    );
    check(limits(&|l| l.max_line_bytes = 28), Ok(3));
    check(
        limits(&|l| l.max_line_bytes = 27),
        Err((2, "line is longer than the limit of 27 bytes")),
    );
    check(limits(&|l| l.max_input_bytes = 4 + 3 * 28), Ok(3));
    check(
        limits(&|l| l.max_input_bytes = 4 + 3 * 28 - 1),
        Err((4, "the file is longer than the limit of 87 bytes")),
    );
    let devs = "{\"op\":\"device\",\"name\":\"a\",\"kind\":\"fake\"}\n\
                {\"op\":\"device\",\"name\":\"b\",\"kind\":\"fake\"}\n";
    let l = limits(&|l| l.max_devices = 1);
    let e = parse::parse_script_with(devs.as_bytes(), &l).unwrap_err();
    assert_eq!(
        (e.line, e.reason.as_str()),
        (2, "device: more than the limit of 1 devices")
    );
    // The session holds a caller-built script to the same device limit, and to the RAM limit.
    let script = parse_script(devs.as_bytes()).unwrap();
    let e = Session::builder().limits(l).build(script).err().unwrap();
    assert_eq!(e.line, 2);
    let ram = "{\"op\":\"ram\",\"base\":0,\"size\":\"0x2000\"}\n";
    let script = parse_script(ram.as_bytes()).unwrap();
    let l = limits(&|l| l.max_total_ram = 0x1000);
    let e = Session::builder().limits(l).build(script).err().unwrap();
    assert!(e.reason.contains("limit of 0x1000 bytes"), "{e}");
    // run_reader_with applies its limits.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = run_reader_with(
        "test",
        text.as_bytes(),
        &Options::default(),
        &limits(&|l| l.max_ops = 1),
        &mut out,
        &mut err,
    );
    assert_eq!(outcome, Outcome::Malformed);
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("line 3: the file has more than the limit of 1 operations"),
        "{err}"
    );
}

/// Interrupts no `expect_irq` looked at are kept up to MAX_PENDING_IRQS per device (the
/// newest), so a file raising them without checking cannot grow memory without bound.
#[test]
fn test_pending_interrupts_are_bounded() {
    // Each faulting DMA of the fake device pulses wired line 3 (two level changes).
    let dma =
        "{\"op\":\"dma\",\"dev\":\"f\",\"stream\":9,\"addr\":0,\"size\":1,\"access\":\"read\"}\n";
    let pulses = limits::MAX_PENDING_IRQS / 2 + 100;
    let body = format!(
        "{}{{\"op\":\"expect_irq\",\"dev\":\"f\",\"kind\":\"wired\",\"line\":3,\"count\":{}}}\n",
        dma.repeat(pulses),
        limits::MAX_PENDING_IRQS / 2
    );
    let r = run_with(
        &format!("{SETUP}{body}"),
        Options {
            quiet: true,
            ..Options::default()
        },
    );
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.out.last());
}

/// Randomly corrupted scenario files (bytes flipped, inserted, deleted, lines cut and
/// duplicated, numbers replaced by extremes): parsing and running never panic, and a file is
/// either rejected with a line number or run to a summary.
#[test]
fn test_random_corruption_never_panics() {
    use rand::{Rng, SeedableRng};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/replay");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let extremes = [
        "0",
        "\"0xffffffffffffffff\"",
        "\"0x8000000000000000\"",
        "18446744073709551615",
        "-1",
        "1e999",
        "null",
        "[]",
        "{}",
        "\"\"",
        "4294967295",
        "\"0x100000000\"",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_f11e);
    for round in 0..150 {
        let path = &files[round % files.len()];
        let mut text = std::fs::read(path).unwrap();
        for _ in 0..rng.random_range(1..4) {
            let len = text.len().max(1);
            match rng.random_range(0..6) {
                0 => {
                    let i = rng.random_range(0..len);
                    if let Some(b) = text.get_mut(i) {
                        *b ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => {
                    let i = rng.random_range(0..=text.len());
                    text.insert(i, rng.random());
                }
                2 => {
                    let i = rng.random_range(0..len);
                    let end = (i + rng.random_range(1..64)).min(text.len());
                    text.drain(i.min(end)..end);
                }
                3 => text.truncate(rng.random_range(0..len)),
                4 => {
                    // Replace a number (a run of digits or a hex string) with an extreme.
                    let s = String::from_utf8_lossy(&text).into_owned();
                    let starts: Vec<_> = s.match_indices(": ").map(|(i, _)| i + 2).collect();
                    if let Some(&at) = starts.get(rng.random_range(0..starts.len().max(1))) {
                        let rest = &s[at..];
                        let end = rest.find([',', '}']).unwrap_or(rest.len());
                        let with = extremes[rng.random_range(0..extremes.len())];
                        text = format!("{}{with}{}", &s[..at], &rest[end..]).into_bytes();
                    }
                }
                _ => {
                    // Duplicate a line somewhere else.
                    let s = String::from_utf8_lossy(&text).into_owned();
                    let lines: Vec<&str> = s.lines().collect();
                    if !lines.is_empty() {
                        let l = lines[rng.random_range(0..lines.len())];
                        let at = rng.random_range(0..lines.len());
                        let mut out: Vec<&str> = lines.clone();
                        out.insert(at, l);
                        text = out.join("\n").into_bytes();
                    }
                }
            }
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = Options {
            quiet: true,
            ..Options::default()
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_reader("mutated", text.as_slice(), &opts, &mut out, &mut err)
        }))
        .unwrap_or_else(|_| panic!("round {round} ({}) panicked", path.display()));
        let err = String::from_utf8_lossy(&err);
        match outcome {
            Outcome::Malformed => assert!(err.contains(": line "), "round {round}: {err}"),
            Outcome::Passed | Outcome::Failed => {
                let out = String::from_utf8_lossy(&out);
                assert!(
                    out.lines().last().is_some_and(|l| l.ends_with(" failed")),
                    "round {round}: no summary"
                );
            }
        }
    }
}
