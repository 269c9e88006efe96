//! `mmkit log` through the real binary: records appended and printed back byte for byte,
//! JSON output, stats against the file, check and recovery on a log damaged by a bit
//! flip, a follower in one process seeing appends from another, and one writer at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common;
use common::{assert_code, flip, mmkit, p, run, run_with, stderr, stdout, wait_or_kill};

/// Append `records` one `mmkit log append` run each (one batch each).
fn append_each(log: &Path, records: &[&str]) {
    for r in records {
        let o = run_with(&["log", "append", p(log)], format!("{r}\n").as_bytes());
        assert_code(&o, 0);
    }
}

/// The bytes a record of `len` takes: a 16-byte frame and the payload padded to 8.
fn record_size(len: u64) -> u64 {
    16 + len.div_ceil(8) * 8
}

#[test]
fn lines_and_raw_records_come_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let lines = b"first\n\n  spaced  \n\tx\r\n\nlast without newline";
    let o = run_with(&["log", "append", p(&log)], lines);
    assert_code(&o, 0);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", stderr(&o));
    let raw: Vec<u8> = b"raw\nwith\n\nnewlines \xff\xfe\x00 and not UTF-8\n".to_vec();
    let o = run_with(&["log", "append", "--raw", p(&log)], &raw);
    assert_code(&o, 0);

    let o = run(&["log", "cat", p(&log)]);
    assert_code(&o, 0);
    let mut expected = lines.to_vec();
    expected.push(b'\n');
    expected.extend_from_slice(&raw);
    expected.push(b'\n');
    assert_eq!(o.stdout, expected);

    // An empty stdin appends nothing; --raw with an empty stdin appends one empty record.
    assert_code(&run_with(&["log", "append", p(&log)], b""), 0);
    let o = run_with(&["log", "append", "--raw", "--json", p(&log)], b"");
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"first": 8, "last": 8, "records": 1}));
}

#[test]
fn json_lines_and_from() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("j.log");
    let o = run_with(&["log", "append", "--json", p(&log)], b"a\nb\"c\n\n");
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"first": 1, "last": 3, "records": 3}));
    let o = run_with(&["log", "append", "--raw", "--json", p(&log)], b"\xffok");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"first": 4, "last": 4, "records": 1}));
    // Nothing appended: first and last are null.
    let o = run_with(&["log", "append", "--json", p(&log)], b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"first": null, "last": null, "records": 0})
    );

    let o = run(&["log", "cat", "--json", p(&log)]);
    assert_code(&o, 0);
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            serde_json::json!({"seq": 1, "len": 1, "encoding": "utf8", "data": "a"}),
            serde_json::json!({"seq": 2, "len": 3, "encoding": "utf8", "data": "b\"c"}),
            serde_json::json!({"seq": 3, "len": 0, "encoding": "utf8", "data": ""}),
            serde_json::json!({"seq": 4, "len": 3, "encoding": "hex", "data": "ff6f6b"}),
        ]
    );

    let o = run(&["log", "cat", "--from", "2", p(&log)]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"b\"c\n\n\xffok\n");
    // Past the last record: nothing, and no error.
    let o = run(&["log", "cat", "--from", "99", p(&log)]);
    assert_code(&o, 0);
    assert!(o.stdout.is_empty());
    // Records are numbered from 1.
    let o = run(&["log", "cat", "--from", "0", p(&log)]);
    assert_code(&o, 2);
}

#[test]
fn tail_prints_the_last_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let input: String = (1..=25).map(|i| format!("line {i}\n")).collect();
    assert_code(&run_with(&["log", "append", p(&log)], input.as_bytes()), 0);
    let tail = |args: &[&str]| {
        let mut all = vec!["log", "tail"];
        all.extend_from_slice(args);
        all.push(p(&log));
        let o = run(&all);
        assert_code(&o, 0);
        stdout(&o)
    };
    let last10: String = (16..=25).map(|i| format!("line {i}\n")).collect();
    assert_eq!(tail(&[]), last10);
    assert_eq!(tail(&["-n", "2"]), "line 24\nline 25\n");
    assert_eq!(tail(&["-n", "0"]), "");
    assert_eq!(tail(&["-n", "1000"]), input);
    assert_eq!(tail(&["--from", "24"]), "line 24\nline 25\n");
}

#[test]
fn stats_match_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("s.log");
    let records = ["", "a", "12345678", "123456789", "x".repeat(100).leak()];
    let input: String = records.iter().map(|r| format!("{r}\n")).collect();
    assert_code(&run_with(&["log", "append", p(&log)], input.as_bytes()), 0);
    let o = run(&["log", "stats", "--json", p(&log)]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let used: u64 = records.iter().map(|r| record_size(r.len() as u64)).sum();
    let md = std::fs::metadata(&log).unwrap();
    assert_eq!(v["first"], 1);
    assert_eq!(v["last"], 5);
    assert_eq!(v["records"], 5);
    assert_eq!(v["used_bytes"], used);
    assert_eq!(v["file_bytes"], md.len());
    assert_eq!(
        v["allocated_bytes"],
        std::os::unix::fs::MetadataExt::blocks(&md) * 512
    );
    // The table shows sizes for people.
    let o = run(&["log", "stats", p(&log)]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(
        text.contains("records") && text.contains(&format!("{used} B")),
        "{text}"
    );
}

#[test]
fn check_finds_a_flipped_bit_and_salvage_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.log");
    append_each(&log, &["one", "two", "three"]);
    let o = run(&["log", "check", p(&log)]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("intact: 3 records, 1..=3"),
        "{}",
        stdout(&o)
    );

    // Data starts at 4096; record 1 ("one") takes 16 + 8 bytes; record 2's payload
    // starts after its 16-byte frame.
    let second = 4096 + record_size(3);
    flip(&log, second + 16, 0x10);
    let o = run(&["log", "check", p(&log)]);
    assert_code(&o, 1);
    let end = second + record_size(3);
    let line = format!("bytes {second}..{end} damaged: records 2..=2 lost");
    assert!(stdout(&o).contains(&line), "{}", stdout(&o));
    let o = run(&["log", "check", "--json", p(&log)]);
    assert_code(&o, 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["intact"], false);
    assert_eq!(v["records"], 2);
    assert_eq!(
        v["damage"],
        serde_json::json!([{"offset": second, "bytes": end - second, "first_lost": 2, "next_intact": 3}])
    );

    // cat prints what comes before the damage, then the error: exit 1.
    let o = run(&["log", "cat", p(&log)]);
    assert_code(&o, 1);
    assert_eq!(o.stdout, b"one\n");
    assert!(stderr(&o).starts_with("mmkit: log cat: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("record 2"), "{}", stderr(&o));

    // A strict writer refuses (exit 2), naming --recover; salvage keeps the survivors.
    let o = run_with(&["log", "append", p(&log)], b"four\n");
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--recover salvage"), "{}", stderr(&o));
    let o = run_with(
        &["log", "append", "--recover", "salvage", p(&log)],
        b"four\n",
    );
    assert_code(&o, 0);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("recovered 2 records") && err.contains("records 2..=2 lost"),
        "{err}"
    );
    let o = run(&["log", "cat", p(&log)]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"one\nthree\nfour\n");
    assert_code(&run(&["log", "check", p(&log)]), 0);
    // And a later writer opens it cleanly, saying nothing.
    let o = run_with(&["log", "append", p(&log)], b"five\n");
    assert_code(&o, 0);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn errors_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_log = dir.path().join("text");
    std::fs::write(&not_a_log, vec![b'x'; 8192]).unwrap();
    let missing = dir.path().join("missing");
    for args in [
        vec!["log", "cat", p(&missing)],
        vec!["log", "check", p(&missing)],
        vec!["log", "stats", p(&not_a_log)],
        vec!["log", "check", p(&not_a_log)],
        vec!["log", "tail", "-f", p(&not_a_log)],
        vec!["log", "append", p(dir.path())],
    ] {
        let o = run(&args);
        assert_code(&o, 2);
        let err = stderr(&o);
        assert!(err.starts_with("mmkit: log "), "{args:?}: {err}");
        assert!(err.lines().count() <= 2, "{args:?}: {err}");
    }
    // A check never creates the file.
    assert!(!missing.exists());
}

#[test]
fn a_big_stdin_streams_and_cat_into_head_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let n = 200_000;
    let input: String = (0..n).map(|i| format!("record number {i}\n")).collect();
    let o = run_with(&["log", "append", "--json", p(&log)], input.as_bytes());
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["records"], n);
    let o = run(&["log", "cat", p(&log)]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, input.as_bytes());

    // The reader goes away after a few lines: a broken pipe is not an error.
    let mut child = mmkit()
        .args(["log", "cat", "--json", p(&log)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("record number 0"), "{first}");
    let status = wait_or_kill(&mut child, Duration::from_secs(30)).expect("cat hung");
    let err = stderr_of(&mut child);
    assert!(status.success() && err.is_empty(), "{status:?}: {err}");
}

/// All the child's standard error, to its end.
fn stderr_of(child: &mut std::process::Child) -> String {
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    stderr.read_to_string(&mut err).unwrap();
    err
}

/// Send `signal` to the child (through kill(1): the tests have no libc).
fn signal(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_follower_sees_another_process_append_and_stops_on_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("f.log");
    assert_code(&run_with(&["log", "append", p(&log)], b"old 1\nold 2\n"), 0);
    let mut last = "old 2".to_string();
    for sig in ["TERM", "INT"] {
        let mut child = mmkit()
            .args(["log", "tail", "-f", "-n", "1", "--json", p(&log)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let next = || {
            let line = rx.recv_timeout(Duration::from_secs(20));
            let line = line.unwrap_or_else(|_| panic!("the follower printed nothing"));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            v["data"].as_str().unwrap().to_string()
        };
        // The last record first (the follower is running), then what another process
        // appends.
        assert_eq!(next(), last);
        let words = [format!("new {sig} a"), format!("new {sig} b")];
        let o = run_with(&["log", "append", p(&log)], words.join("\n").as_bytes());
        assert_code(&o, 0);
        assert_eq!(next(), words[0]);
        assert_eq!(next(), words[1]);
        signal(child.id(), sig);
        let status = wait_or_kill(&mut child, Duration::from_secs(10))
            .expect("the follower did not stop on a signal");
        let err = stderr_of(&mut child);
        assert!(status.success(), "SIG{sig}: {status:?}: {err}");
        assert!(err.is_empty(), "{err}");
        last = words[1].clone();
    }
}

#[test]
fn a_second_writer_is_refused_while_one_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    // The first writer holds the log while its stdin stays open.
    let mut first = mmkit()
        .args(["log", "append", p(&log)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = first.stdin.take().unwrap();
    input.write_all(b"from the first\n").unwrap();
    input.flush().unwrap();
    // Wait until it has the log open (the file has its header).
    let start = std::time::Instant::now();
    while std::fs::metadata(&log).map_or(0, |m| m.len()) < 4096 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the writer never opened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = run_with(&["log", "append", p(&log)], b"from the second\n");
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("another process is appending"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Readers are not affected.
    assert_code(&run(&["log", "check", p(&log)]), 0);

    drop(input);
    let status = wait_or_kill(&mut first, Duration::from_secs(20)).expect("writer hung");
    assert!(status.success());
    // Once it is done, the next writer gets its turn.
    assert_code(
        &run_with(&["log", "append", p(&log)], b"then the second\n"),
        0,
    );
    let o = run(&["log", "cat", p(&log)]);
    assert_eq!(o.stdout, b"from the first\nthen the second\n");
}
