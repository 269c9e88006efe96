//! `mmkit bench sink` through the real binary: every row and JSON field, the table,
//! `n/a` for copy_file_range outside a file, and refused arguments. 16 MiB, one run; no
//! timing is asserted.

use crate::common;
use common::mmkit_output;

const METHODS: [&str; 5] = [
    "read+write",
    "mmap+write",
    "sendfile",
    "splice",
    "copy_file_range",
];

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn json_has_a_row_for_every_sink_cache_and_method() {
    let dir = tempfile::tempdir().unwrap();
    let out = mmkit_output(&[
        "bench",
        "sink",
        "--to",
        "pipe,socket,file",
        "--size",
        "16M",
        "--runs",
        "1",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(v["pipe_size"], 1 << 20);
    assert_eq!(v["buffer"], 1 << 20);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3 * 2 * METHODS.len());
    for sink in ["pipe", "socket", "file"] {
        for cache in ["warm", "cold"] {
            for method in METHODS {
                let r = results
                    .iter()
                    .find(|r| r["sink"] == sink && r["cache"] == cache && r["method"] == method)
                    .unwrap_or_else(|| panic!("no row for {method} to a {sink}, {cache}"));
                assert_eq!(r["size"], 16 << 20);
                if method == "copy_file_range" && sink != "file" {
                    // The kernel refuses it: n/a, and the errno says why.
                    assert!(r["refused"].as_str().unwrap().contains("EINVAL"), "{r}");
                    assert!(r["throughput_gbps"].is_null() && r["cpu_s_per_gb"].is_null());
                    continue;
                }
                assert!(r["refused"].is_null(), "{r}");
                assert_eq!(r["runs"], 1);
                assert_eq!(r["run_ns"].as_array().unwrap().len(), 1, "{r}");
                assert_eq!(r["run_cpu_s_per_gb"].as_array().unwrap().len(), 1, "{r}");
                for key in ["median_ns", "min_ns", "max_ns", "throughput_gbps"] {
                    assert!(r[key].as_f64().unwrap() > 0.0, "{key} in {r}");
                }
                for key in [
                    "cpu_s_per_gb",
                    "cpu_min_s_per_gb",
                    "cpu_max_s_per_gb",
                    "user_s_per_gb",
                    "sys_s_per_gb",
                    "process_cpu_s_per_gb",
                ] {
                    assert!(r[key].as_f64().unwrap() >= 0.0, "{key} in {r}");
                }
                // A reader thread drains a pipe or a socket; a file has none.
                assert_eq!(r["reader_cpu_s_per_gb"].is_f64(), sink != "file", "{r}");
                if method == "read+write" {
                    assert_eq!(r["cpu_ratio_to_read_write"], 1.0, "{r}");
                }
                if cache == "cold" {
                    assert_eq!(r["cached_pages_before"], 0, "{r}");
                }
            }
        }
    }
    // The generated file and the file sink are gone.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn the_table_says_n_a_where_the_kernel_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = mmkit_output(&[
        "bench",
        "sink",
        "--to",
        "socket",
        "--sizes",
        "16M",
        "--runs",
        "1",
        "--cache",
        "warm",
        "--methods",
        "read+write,sendfile,copy_file_range",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    for word in [
        "GB/s",
        "CPU s/GB",
        "vs read+write",
        "reader s/GB",
        "16 MiB",
        "socket",
    ] {
        assert!(table.contains(word), "{word} missing from\n{table}");
    }
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("16 MiB")).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows
        .iter()
        .any(|r| r.contains("read+write") && r.contains("1.00x")));
    assert!(rows.iter().any(|r| r.contains("sendfile")));
    assert!(rows
        .iter()
        .any(|r| r.contains("copy_file_range") && r.contains("n/a (EINVAL)")));
}

#[test]
fn a_given_file_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("given");
    std::fs::write(&path, vec![7u8; 300_001]).unwrap();
    let out = mmkit_output(&[
        "bench",
        "sink",
        path.to_str().unwrap(),
        "--to",
        "file",
        "--runs",
        "2",
        "--cache",
        "warm",
        "--json",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["file"].as_str().unwrap().ends_with("given"));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), METHODS.len());
    assert!(results
        .iter()
        .all(|r| r["size"] == 300_001 && r["runs"] == 2));
    // The given file is left as it was.
    assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 300_001]);
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Usage errors: exit 2 before measuring anything.
    for args in [
        &["bench", "sink", "--to", "pipe", "--methods", "read"][..],
        &["bench", "--methods", "sendfile", "--sizes", "4K"],
        &["bench", "sink", "--to", "tape"],
        &["bench", "sink", "--to", "pipe", "--plot", "x.svg"],
        &["bench", "sink", "--to", "pipe", "--pattern", "seq"],
        &[
            "bench",
            "sink",
            "--to",
            "pipe",
            "--methods",
            "sendfile,zerocopy",
        ],
        &["bench", "sink", "--to", "pipe", "--sizes", "0"],
    ] {
        let out = mmkit_output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
    // Refused by the bench: one line, exit 1.
    for args in [
        &[
            "bench", "sink", "--to", "pipe", "--runs", "0", "--sizes", "4K", "--dir", d,
        ][..],
        &[
            "bench", "sink", "--to", "pipe", "--buffer", "1G", "--sizes", "4K", "--dir", d,
        ],
        &["bench", "sink", d, "--to", "socket"],
    ] {
        let out = mmkit_output(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
