//! `mmkit page` over object URLs, through the real binary: `cat file:///…` byte for byte
//! against the file, `stats --json` with the object's requests and bytes fetched against
//! bytes touched, `bench --url` rows, and URLs that name nothing reachable (a bad scheme,
//! a missing object, a dead server) refused in one line that names the URL.
//!
//! `file://` URLs are served by object_store's local file system: the same requests,
//! checks and counters as a store, without a server.

use std::process::Output;

use mmkit::helpers::XorShift;

use crate::common;
use common::uffd_allowed;
use common::{assert_code, assert_refused, run, seekable_zstd, stderr, stdout};

/// `len` bytes, half compressible and half not.
fn data(len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(0x0b1e_c7ed);
    (0..len)
        .map(|i| {
            if (i / 65536) % 2 == 0 {
                (i % 251) as u8
            } else {
                rng.next_u64() as u8
            }
        })
        .collect()
}

/// A temporary directory with `obj`, `len` bytes of [`data`], and its `file://` URL.
fn object(len: usize) -> (tempfile::TempDir, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(len);
    let path = dir.path().join("obj");
    std::fs::write(&path, &bytes).unwrap();
    let url = format!("file://{}", path.display());
    (dir, bytes, url)
}

/// The JSON a successful run printed.
#[track_caller]
fn json(out: &Output) -> serde_json::Value {
    assert_code(out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn cat_of_a_file_url_is_the_file() {
    if !uffd_allowed() {
        return;
    }
    let (_dir, bytes, url) = object(3 * 1024 * 1024 + 4321);
    let out = run(&["page", "cat", &url]);
    assert_code(&out, 0);
    assert!(out.stdout == bytes, "page cat {url} differs from the file");
    // With --stats, the object's figures follow the pager's on stderr.
    let out = run(&[
        "page",
        "cat",
        "--stats",
        "--no-async",
        "--readahead",
        "8",
        &url,
    ]);
    assert!(out.stdout == bytes);
    let err = stderr(&out);
    for row in [
        "pages filled",
        "prefetched pages",
        "object requests",
        "bytes fetched",
    ] {
        assert!(err.contains(row), "{row}: {err}");
    }
}

#[test]
fn stats_json_has_the_object_and_fetches_at_least_what_it_touches() {
    if !uffd_allowed() {
        return;
    }
    let len = 2 * 1024 * 1024 + 100;
    let (_dir, _bytes, url) = object(len);
    let seq = json(&run(&["page", "stats", "--json", &url]));
    let obj = &seq["object"];
    assert_eq!(obj["url"], url.as_str(), "{seq}");
    assert_eq!(obj["size"], len, "{seq}");
    assert_eq!(obj["bytes_touched"], len, "a scan touches it all: {seq}");
    assert!(
        obj["bytes_fetched"].as_u64().unwrap() >= len as u64,
        "{seq}"
    );
    assert!(
        obj["requests"].as_u64().unwrap() >= 2,
        "HEAD and a GET: {seq}"
    );
    assert!(obj["bytes_touched_is"]
        .as_str()
        .unwrap()
        .contains("distinct pages"));
    for field in ["prefetched_pages", "prefetch_waits", "prefetch_errors"] {
        assert!(seq["stats"][field].is_u64(), "{field}: {seq}");
    }
    // The source's choice: 8 MiB, clamped to the object's 513 pages.
    assert_eq!(seq["readahead_pages"], 513, "{seq}");
    assert_eq!(seq["async_readahead"], true, "{seq}");

    let rnd = json(&run(&common::random_stats("50", &url)));
    let obj = &rnd["object"];
    let touched = obj["bytes_touched"].as_u64().unwrap();
    assert!(touched > 0 && touched <= 50 * 4096, "{rnd}");
    assert!(obj["bytes_fetched"].as_u64().unwrap() >= touched, "{rnd}");
    assert!(
        obj["fetched_over_touched"].as_f64().unwrap() >= 1.0,
        "{rnd}"
    );

    // --no-async: nothing fetched in the background; the same bytes.
    let sync = json(&run(&[
        "page",
        "stats",
        "--json",
        "--no-async",
        "--readahead",
        "64",
        &url,
    ]));
    assert_eq!(sync["async_readahead"], false, "{sync}");
    assert_eq!(sync["readahead_pages"], 64, "{sync}");
    assert_eq!(sync["stats"]["prefetched_pages"], 0, "{sync}");
    assert_eq!(sync["checksum"], seq["checksum"]);
    // A file has no object member, and the CLI's 256-page default.
    let path = url.trim_start_matches("file://");
    let file = json(&run(&["page", "stats", "--json", path]));
    assert!(file["object"].is_null(), "{file}");
    assert_eq!(file["readahead_pages"], 256, "{file}");
    assert_eq!(file["checksum"], seq["checksum"]);
}

#[test]
fn urls_that_reach_nothing_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("file://{}/missing", dir.path().display());
    let a_dir = format!("file://{}", dir.path().display());
    // Opening a FIFO would wait for a writer: refused before it is opened.
    let fifo_path = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo_path)
        .status()
        .unwrap()
        .success());
    let fifo = format!("file://{}", fifo_path.display());
    // (URL, what the error says); the dead server refuses connections at once, and the
    // short timeout bounds the retries.
    let cases: [(&str, &str); 8] = [
        ("s3://", "not an object URL"),
        ("nope://x", "not an object URL"),
        ("http://", "not an object URL"),
        ("file://relative/x", "not an object URL"),
        (&missing, "not found"),
        (&a_dir, "directory"),
        (&fifo, "not a regular file"),
        ("http://127.0.0.1:1/x", "Connection refused"),
    ];
    for (url, want) in cases {
        for cmd in [
            &["page", "cat", "--timeout", "2s", url][..],
            &["page", "stats", "--json", "--timeout", "2s", url],
            &[
                "page",
                "bench",
                "--url",
                url,
                "--runs",
                "1",
                "--timeout",
                "2s",
            ],
        ] {
            assert_refused(&run(cmd), url, want);
        }
    }
}

#[test]
fn zstd_over_a_url_is_the_uncompressed_bytes() {
    if !uffd_allowed() {
        return;
    }
    let (dir, bytes, _) = object(1024 * 1024 + 77);
    let zst = dir.path().join("obj.zst");
    std::fs::write(&zst, seekable_zstd(&bytes, 256 << 10)).unwrap();
    let url = format!("file://{}", zst.display());
    let out = run(&["page", "cat", "--zstd", &url]);
    common::assert_prints(&out, &bytes, &format!("page cat --zstd {url}"));
}

#[test]
fn bench_url_prints_every_pass_and_its_json_has_them() {
    if !uffd_allowed() {
        return;
    }
    let (_dir, _bytes, url) = object(4 * 1024 * 1024);
    let out = run(&["page", "bench", "--url", &url, "--runs", "1"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for want in [
        "first byte",
        "2 requests",
        "scan, async read-ahead",
        "scan, sync read-ahead",
        "download",
        "random 4 KiB",
        "scan / download",
        "the bytes touched",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let v = json(&run(&[
        "page",
        "bench",
        "--url",
        &url,
        "--runs",
        "1",
        "--no-async-compare",
        "--random-fraction",
        "0.05",
        "--json",
    ]));
    let rows = v["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        ["scan, async read-ahead", "download", "random 4 KiB"],
        "{v}"
    );
    for r in rows {
        assert!(
            r["bytes_fetched"].as_u64().unwrap() >= r["bytes"].as_u64().unwrap(),
            "{r}"
        );
    }
    assert_eq!(v["first_byte"]["requests"], 2, "{v}");
    assert_eq!(v["random"]["reads"], 52, "5% of 4 MiB in 4 KiB reads: {v}");
    let rnd = &v["random"];
    assert!(
        rnd["bytes_fetched"].as_u64() >= rnd["bytes_touched"].as_u64(),
        "{v}"
    );
    assert!(v["scan_vs_download"].as_f64().unwrap() > 0.0, "{v}");
    // The local bench's options are not the remote one's.
    let out = run(&["page", "bench", "--url", &url, "--size", "4M"]);
    assert_code(&out, 2);
    let out = run(&["page", "bench", "--random-fraction", "0.5"]);
    assert_code(&out, 2);
}
