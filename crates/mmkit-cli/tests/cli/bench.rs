//! `mmkit bench` through the real binary: JSON shape, an SVG chart, errors. Tiny sizes,
//! one run; no timing is asserted.

use std::process::Output;

use crate::common;
use common::mmkit_output;

const METHODS: [&str; 8] = [
    "mmap",
    "mmap-populate",
    "mmap-seq",
    "mmap-willneed",
    "mmap-thp",
    "mmap-scan",
    "read",
    "pread",
];

#[test]
fn json_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = mmkit_output(&[
        "bench",
        "read",
        "--quick",
        "--json",
        "--sizes",
        "4K,64K",
        "--runs",
        "1",
        "--random-reads",
        "32",
        "--dir",
        d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(v["machine"]["kernel"].is_string());
    assert_eq!(v["buffer"], 1 << 20);
    assert_eq!(v["random_reads"], 32);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 * 2 * 2 * METHODS.len());
    for r in results {
        assert!([4096, 65536].contains(&r["size"].as_u64().unwrap()));
        assert!(["seq", "random"].contains(&r["pattern"].as_str().unwrap()));
        assert!(["warm", "cold"].contains(&r["cache"].as_str().unwrap()));
        let method = r["method"].as_str().unwrap();
        assert!(METHODS.contains(&method), "{method}");
        for key in [
            "median_ns",
            "min_ns",
            "max_ns",
            "throughput_gbps",
            "ratio_to_read",
        ] {
            assert!(r[key].as_f64().unwrap() > 0.0, "{key} in {r}");
        }
        assert_eq!(r["runs"], 1);
        assert!(r["checksum"].is_u64());
        if method == "read" {
            assert_eq!(r["ratio_to_read"], 1.0);
        }
        if r["cache"] == "cold" {
            assert_eq!(r["cached_pages_before"], 0, "{r}");
        }
        assert_eq!(r["pattern"] == "random", r["ops_per_sec"].is_f64());
    }
    // The scratch files are gone.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn table_and_svg_plot() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("out.svg");
    let out = mmkit_output(&[
        "bench",
        "--sizes",
        "4K,64K",
        "--runs",
        "1",
        "--random-reads",
        "16",
        "--dir",
        dir.path().to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    for word in [
        "size",
        "pattern",
        "median",
        "vs read()",
        "64 KiB",
        "mmap-willneed",
    ] {
        assert!(table.contains(word), "{word} missing from\n{table}");
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") || text.starts_with("<?xml"));
    assert!(text.trim_end().ends_with("</svg>"));
    for m in METHODS {
        assert!(text.contains(&format!(">{m}<")), "{m} missing from the SVG");
    }
    for title in ["seq reads, warm cache", "random reads, cold cache", "GB/s"] {
        assert!(text.contains(title), "{title}");
    }
}

#[test]
fn a_given_file_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("given");
    std::fs::write(&path, vec![7u8; 20_000]).unwrap();
    let out = mmkit_output(&[
        "bench",
        path.to_str().unwrap(),
        "--runs",
        "1",
        "--methods",
        "mmap,read",
        "--pattern",
        "seq",
        "--cache",
        "warm",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r["size"] == 20_000
        && r["checksum"] == 2500u64.wrapping_mul(u64::from_ne_bytes([7; 8]))));
}

fn one_line_error(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("bench: ")).collect();
    assert!(!lines.is_empty() && lines[0].contains(needle), "{err}");
    if code == 1 {
        assert_eq!(lines.len(), 1, "{err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let d = dir.path().to_str().unwrap();
    one_line_error(
        &mmkit_output(&["bench", missing.to_str().unwrap()]),
        1,
        "missing",
    );
    one_line_error(&mmkit_output(&["bench", d]), 1, "cannot map a directory");
    one_line_error(&mmkit_output(&["bench", "--sizes", "4K,12Q"]), 2, "12Q");
    one_line_error(
        &mmkit_output(&["bench", "--methods", "mmap,nope"]),
        2,
        "nope",
    );
    one_line_error(
        &mmkit_output(&["bench", "--plot", "out.gif"]),
        1,
        ".svg or .png",
    );
}

#[test]
fn find_races_ripgrep_and_grep_and_they_agree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = mmkit_output(&[
        "bench", "find", "--sizes", "2M", "--runs", "2", "--json", "--dir", d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (lines, matches) = (v["lines"].as_u64().unwrap(), v["matches"].as_u64().unwrap());
    assert!(lines >= 20 && matches >= lines, "{v}");
    assert_eq!(v["size"], 2 << 20);
    let results = v["results"].as_array().unwrap();
    let rows: Vec<(&str, &str)> = results
        .iter()
        .map(|r| (r["mode"].as_str().unwrap(), r["tool"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("count", "mmkit"),
            ("count", "ripgrep"),
            ("count", "grep"),
            ("offsets", "mmkit"),
            ("offsets", "ripgrep"),
            ("offsets", "grep"),
        ]
    );
    let has_rg = common::peer("rg", "ripgrep");
    for r in results {
        let measured = r["tool"] == "mmkit" || r["tool"] == "grep" || has_rg;
        if measured {
            assert!(r["skipped"].is_null(), "{r}");
            assert!(r["median_ns"].as_f64().unwrap() > 0.0, "{r}");
            assert_eq!(r["run_ns"].as_array().unwrap().len(), 2, "{r}");
            assert!(r["user_s"].as_f64().is_some(), "{r}");
        } else {
            assert!(
                r["skipped"].as_str().unwrap().contains("not installed"),
                "{r}"
            );
            assert!(r["median_ns"].is_null(), "{r}");
        }
        assert_eq!(r["vs_ripgrep"].is_null(), !(measured && has_rg), "{r}");
    }
    // The scratch directory is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn find_takes_no_options_of_the_other_benches() {
    for extra in [
        &["--to", "pipe"][..],
        &["--methods", "mmap"],
        &["--cache", "cold"],
    ] {
        let mut args = vec!["bench", "find"];
        args.extend_from_slice(extra);
        let out = mmkit_output(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot be used with"), "{extra:?}: {err}");
    }
    let out = mmkit_output(&["bench", "find", "--sizes", "4K"]);
    one_line_error(&out, 1, "under 1 MiB");
}
