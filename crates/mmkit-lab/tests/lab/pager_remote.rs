//! `mmkit_lab::pager::run_remote` over `file://` URLs (object_store's local file system): the
//! report's invariants (requests to the first byte, bytes scanned, bytes fetched against
//! bytes touched), never its timings; and the refusals before anything is measured.
//!
//! Tests that need userfaultfd print `skipped: <reason>` where it is not allowed.

use std::sync::Arc;

use mmkit::helpers::XorShift;
use mmkit::pager::{MemSource, PagerOptions};
use mmkit_lab::pager::{run_remote, RemoteBenchOptions};

/// Whether this process may build a pager; prints why not.
fn uffd_allowed() -> bool {
    match PagerOptions::new().build(Arc::new(MemSource::zeroed(4096))) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: {e}");
            false
        }
    }
}

/// A file of `size` xorshift bytes in `dir`, and its `file://` URL.
fn object(dir: &std::path::Path, size: usize) -> String {
    let mut rng = XorShift::new(0x5eed);
    let mut data = vec![0u8; size];
    for w in data.chunks_mut(8) {
        let x = rng.next_u64().to_ne_bytes();
        w.copy_from_slice(&x[..w.len()]);
    }
    let path = dir.join("obj");
    std::fs::write(&path, &data).unwrap();
    format!("file://{}", path.display())
}

/// A 16 MiB object (and a partial last page) through `file://`.
#[test]
fn a_file_url_run_fetches_at_least_what_it_touches() {
    if !uffd_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let size = (16u64 << 20) + 123;
    let url = object(dir.path(), size as usize);
    let opts = RemoteBenchOptions {
        runs: 1,
        ..RemoteBenchOptions::default()
    };
    let mut steps = Vec::new();
    let r = run_remote(&url, &opts, |s| steps.push((s.done, s.total))).unwrap();
    // A run: the first byte, two scans, the download, the random reads.
    assert_eq!(steps, (0..5).map(|i| (i, 5)).collect::<Vec<_>>());
    assert_eq!((r.size, r.runs, r.url.as_str()), (size, 1, url.as_str()));
    assert_eq!(r.first_byte.requests, 2, "HEAD and one GET: {r:?}");
    let methods: Vec<_> = r.rows.iter().map(|row| row.method).collect();
    assert_eq!(
        methods,
        [
            "scan, async read-ahead",
            "scan, sync read-ahead",
            "download",
            "random 4 KiB"
        ]
    );
    for row in &r.rows[..3] {
        assert_eq!(row.bytes, size, "{row:?}");
        assert!(row.bytes_fetched >= size, "{row:?}");
        assert!(row.bytes_per_sec > 0.0, "{row:?}");
    }
    assert_eq!(r.rows[2].requests, 1, "one plain GET: {r:?}");
    assert_eq!(r.rows[2].vs_download, 1.0);
    // The pager counts whole pages, the last one's tail of zeros too.
    let page = r.page_size as u64;
    assert_eq!(r.scan_stats.bytes_read, size.div_ceil(page) * page, "{r:?}");
    assert_eq!(
        r.readahead_pages,
        (8 << 20) / r.page_size,
        "the source's 8 MiB"
    );
    let rnd = &r.random;
    assert_eq!(rnd.reads, (size as f64 * 0.01 / 4096.0).ceil() as usize);
    assert!(rnd.bytes_touched > 0 && rnd.bytes_touched <= rnd.reads as u64 * 4096);
    assert!(rnd.bytes_fetched >= rnd.bytes_touched, "{rnd:?}");
    assert!(rnd.fetched_over_touched >= 1.0, "{rnd:?}");
    assert!(rnd.touched_percent <= rnd.fetched_percent, "{rnd:?}");
    assert_eq!(r.rows[3].bytes, rnd.bytes_touched);
    assert!(r.sync_scan_stats.is_some_and(|s| s.prefetched_pages == 0));

    // Without the sync comparison: three passes a run, and a given read-ahead.
    let opts = RemoteBenchOptions {
        compare_sync: false,
        random_fraction: 0.001,
        readahead: Some(64),
        ..opts
    };
    let r = run_remote(&url, &opts, |_| {}).unwrap();
    assert_eq!(r.rows.len(), 3);
    assert!(r.sync_scan_stats.is_none());
    assert_eq!(r.readahead_pages, 64);
    assert!(r.random.bytes_fetched >= r.random.bytes_touched, "{r:?}");
}

#[test]
fn bad_options_missing_and_empty_objects_are_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").unwrap();
    let url = format!("file://{}", path.display());
    let e = run_remote(&url, &RemoteBenchOptions::default(), |_| {}).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    for bad in [
        RemoteBenchOptions {
            runs: 0,
            ..RemoteBenchOptions::default()
        },
        RemoteBenchOptions {
            random_fraction: 0.0,
            ..RemoteBenchOptions::default()
        },
    ] {
        let mut called = false;
        assert!(run_remote(&url, &bad, |_| called = true).is_err());
        assert!(!called, "refused before the first pass");
    }
    let missing = format!("file://{}/missing", dir.path().display());
    let e = run_remote(&missing, &RemoteBenchOptions::default(), |_| {}).unwrap_err();
    assert!(e.to_string().contains(&missing), "{e}");
}
