//! `mmkit page` through the real binary: `cat` byte for byte against the file and
//! against `zstd -dc`, `stats` counters that match the scan, `bench` JSON, and errors.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mmkit::helpers::XorShift;

use crate::common;
use common::mmkit_output;
use common::uffd_allowed;

fn data(len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut x = 0;
    (0..len)
        .map(|i| {
            if i % 3 == 0 {
                x = rng.next_u64();
            }
            // Half compressible, half not.
            if (i / 65536) % 2 == 0 {
                (i % 251) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

#[test]
fn cat_streams_the_file_and_the_zstd_cli_output_byte_for_byte() {
    if !uffd_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let bytes = data(3 * 1024 * 1024 + 4321);
    std::fs::write(&path, &bytes).unwrap();
    let out = mmkit_output(&["page", "cat", "--stats", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == bytes, "page cat differs from the file");
    let err = String::from_utf8_lossy(&out.stderr);
    let filled = err
        .lines()
        .find(|l| l.contains("pages filled"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(filled, Some(bytes.len().div_ceil(4096)), "{err}");

    if !common::peer("zstd", "zstd") {
        return;
    }
    let zst = dir.path().join("data.bin.zst");
    let st = Command::new("zstd")
        .args(["-q", "-f", "-o"])
        .arg(&zst)
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    let reference = Command::new("zstd").arg("-dc").arg(&zst).output().unwrap();
    let out = mmkit_output(&["page", "cat", "--zstd", zst.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == reference.stdout,
        "page cat --zstd differs from zstd -dc"
    );
    assert!(out.stdout == bytes);
}

#[test]
fn stats_counts_one_fill_per_page_and_read_ahead_for_a_sequential_scan() {
    if !uffd_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, data(1 << 20)).unwrap();
    let p = path.to_str().unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = mmkit_output(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Synchronous read-ahead: every fault fills its page and a window after it.
    let seq = json(&[
        "page",
        "stats",
        "--json",
        "--no-async",
        "--readahead",
        "16",
        p,
    ]);
    let st = &seq["stats"];
    assert_eq!(st["prefetched_pages"], 0, "{seq}");
    assert_eq!(st["pages_filled"], 256, "{seq}");
    assert_eq!(st["bytes_read"], 1 << 20, "{seq}");
    let faults = st["faults"].as_u64().unwrap();
    assert!(
        (16..=64).contains(&faults),
        "256 pages, windows up to 16: {seq}"
    );
    assert_eq!(
        st["readahead_pages"].as_u64().unwrap() + faults - st["spurious_faults"].as_u64().unwrap(),
        256,
        "{seq}"
    );
    // Asynchronous (the default): windows fetched ahead of the reader, the same pages
    // filled once each.
    let ahead = json(&["page", "stats", "--json", "--readahead", "16", p]);
    let st = &ahead["stats"];
    assert_eq!(st["pages_filled"], 256, "{ahead}");
    assert_eq!(st["bytes_read"], 1 << 20, "{ahead}");
    assert!(st["prefetched_pages"].as_u64().unwrap() > 0, "{ahead}");
    assert_eq!(st["prefetch_errors"], 0, "{ahead}");
    assert_eq!(ahead["checksum"], seq["checksum"]);
    // No read-ahead: a fault a page.
    let one = json(&["page", "stats", "--json", "--readahead", "1", p]);
    assert_eq!(one["stats"]["readahead_pages"], 0, "{one}");
    assert_eq!(one["checksum"], seq["checksum"], "same bytes either way");
    // A budget keeps the resident set down by evicting.
    let budget = json(&["page", "stats", "--json", "--budget", "64K", p]);
    assert!(
        budget["stats"]["evictions"].as_u64().unwrap() >= 256 - 16 - 32,
        "{budget}"
    );
    assert_eq!(budget["checksum"], seq["checksum"]);
}

#[test]
fn bench_reports_every_method_and_the_fault_latencies() {
    if !uffd_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = mmkit_output(&[
        "page",
        "bench",
        "--size",
        "4M",
        "--runs",
        "1",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    // Two patterns × pager, pager thp, pager hugetlb, kernel mmap, pread.
    assert_eq!(rows.len(), 10, "{v}");
    for r in rows {
        assert!(r["bytes_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        if r["method"] == "kernel mmap" {
            assert_eq!(r["vs_kernel"].as_f64().unwrap(), 1.0, "{r}");
        }
        // Every pager row says what its pages were; a huge one that fell back, why.
        match r["method"].as_str().unwrap() {
            "pager" => assert_eq!(r["backing"], "base", "{r}"),
            "pager thp" | "pager hugetlb" => {
                let backing = r["backing"].as_str().unwrap();
                assert!(["base", "thp", "hugetlb"].contains(&backing), "{r}");
                assert_eq!(backing == "base", r["backing_note"].is_string(), "{r}");
            }
            _ => assert!(r["backing"].is_null(), "{r}"),
        }
    }
    let hugetlb = rows
        .iter()
        .find(|r| r["method"] == "pager hugetlb")
        .unwrap();
    if hugetlb["backing"] == "base" {
        // The pool is empty unless someone raised it: the reason says so.
        let note = hugetlb["backing_note"].as_str().unwrap();
        assert!(note.contains("hugetlb pool"), "{note}");
    }
    assert_eq!(v["sequential_stats"]["pages_filled"], 1024, "{v}");
    assert!(v["fault"]["pager_p50_ns"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["fault"]["kernel_p50_ns"].as_f64().unwrap() > 0.0, "{v}");
    // The copy-once ceiling was measured (its sum checked against the file's).
    assert!(v["copy_once_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["copy_once_vs_kernel"].as_f64().unwrap() > 0.0, "{v}");
    // The test file is removed afterwards.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, b"not compressed at all").unwrap();
    let cases: [(Vec<String>, &str); 3] = [
        (vec!["cat".into(), "/nonexistent/x".into()], "No such file"),
        (
            vec!["cat".into(), dir.path().display().to_string()],
            "directory",
        ),
        (
            vec!["cat".into(), "--zstd".into(), plain.display().to_string()],
            "zstd",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["page".to_string()];
        full.extend(args.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = mmkit_output(&refs);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.lines().count() <= 2, "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

/// Run mmkit, killing it if it has not finished within two minutes (a guard against a
/// hang, not a timing assertion): its output, and whether it had to be killed.
fn mmkit_or_kill(args: &[&str]) -> (Output, bool) {
    let mut child = common::mmkit()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mmkit");
    // Drain the pipes meanwhile, so a large output cannot block the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let finished = common::wait_or_kill(&mut child, Duration::from_secs(120));
    let killed = finished.is_none();
    let status = finished.unwrap_or_else(|| child.wait().unwrap());
    let output = Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    };
    (output, killed)
}

#[test]
fn huge_numbers_are_clamped_or_refused_never_a_signal_a_panic_or_a_hang() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let bytes = data(300_000);
    std::fs::write(&path, &bytes).unwrap();
    let p = path.to_str().unwrap();
    let max = u64::MAX.to_string();
    // Clamped to what can be used: the file comes out whole.
    let clamped: [&[&str]; 6] = [
        &["--readahead", "99999999999999"],
        &["--readahead", &max],
        &["--readahead", "4503599627370497"],
        &["--readahead", &max, "--threads", &max, "--budget", &max],
        &["--readahead", "0", "--threads", "0", "--budget", "1"],
        &["--threads", "3", "--budget", "4K"],
    ];
    if uffd_allowed() {
        for opts in clamped {
            let mut args = vec!["page", "cat"];
            args.extend_from_slice(opts);
            args.push(p);
            let (out, killed) = mmkit_or_kill(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!killed, "{opts:?}: hung; {err}");
            assert_eq!(out.status.signal(), None, "{opts:?}: {err}");
            assert!(out.status.success(), "{opts:?}: {err}");
            assert!(
                out.stdout == bytes,
                "{opts:?}: page cat differs from the file"
            );
        }
    }
    // Refused by the parser: a message naming the option, and a non-zero exit.
    let d = dir.path().to_str().unwrap();
    let refused: [(&[&str], &str); 5] = [
        // A test file larger than the disk's free space: refused before writing.
        (&["bench", "--size", "16777215G", "--dir", d], "free"),
        (&["cat", "--budget", "0", p], "budget"),
        (
            &["cat", "--readahead", "99999999999999999999999", p],
            "readahead",
        ),
        (&["cat", "--threads=-1", p], "threads"),
        (
            &["stats", "--pattern", "random", "--reads", &max, p],
            "reads",
        ),
    ];
    for (opts, want) in refused {
        let mut args = vec!["page"];
        args.extend_from_slice(opts);
        let (out, killed) = mmkit_or_kill(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!killed, "{opts:?}: hung; {err}");
        assert_eq!(out.status.signal(), None, "{opts:?}: {err}");
        assert!(!out.status.success(), "{opts:?}: {err}");
        assert!(err.contains(want), "{opts:?}: {err}");
        assert!(!err.contains("panicked"), "{opts:?}: {err}");
        assert!(out.stdout.is_empty(), "{opts:?}");
    }
}
