//! `mmkit_lab::bench`: a tiny real bench; no timing is asserted.

use std::collections::HashSet;

use mmkit_lab::bench::{self, BenchOptions, CacheState, Method, Pattern};

fn tiny(dir: &std::path::Path) -> BenchOptions {
    let mut c = BenchOptions::quick();
    c.sizes = vec![4 << 10, 64 << 10];
    c.runs = 2;
    c.random_reads = 64;
    c.dir = Some(dir.to_path_buf());
    c.min_run_time = std::time::Duration::from_micros(200);
    c
}

#[test]
fn tiny_bench_covers_every_combination_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(dir.path());
    let mut calls = Vec::new();
    let report = bench::run(&config, &mut |p| calls.push((p.done, p.total))).unwrap();
    assert_eq!(calls.len(), 2 * 2 * 2);
    assert_eq!(calls.last(), Some(&(8, 8)));
    let mut seen = HashSet::new();
    for r in &report.results {
        assert!(seen.insert((r.size, r.pattern, r.cache, r.method)));
        assert_eq!(r.runs, 2);
        assert!(r.median_ns > 0.0 && r.min_ns <= r.median_ns && r.median_ns <= r.max_ns);
        assert!(r.ratio_to_read.unwrap() > 0.0);
        if r.method == Method::Read {
            assert_eq!(r.ratio_to_read, Some(1.0));
        }
        if r.cache == CacheState::Cold {
            assert_eq!(r.cached_pages_before, Some(0), "{r:?} was not cold");
            assert_eq!(r.passes_per_run, 1);
        } else {
            assert!(r.cached_pages_before.unwrap() > 0, "{r:?} was not warm");
        }
        assert_eq!(r.pattern == Pattern::Random, r.ops_per_sec.is_some());
    }
    for size in [4u64 << 10, 64 << 10] {
        for pattern in [Pattern::Seq, Pattern::Random] {
            for cache in [CacheState::Warm, CacheState::Cold] {
                let sums: HashSet<u64> = report
                    .results
                    .iter()
                    .filter(|r| r.size == size && r.pattern == pattern && r.cache == cache)
                    .map(|r| r.checksum)
                    .collect();
                assert_eq!(sums.len(), 1);
                for m in Method::ALL {
                    assert!(seen.contains(&(size, pattern, cache, m)), "{m:?} missing");
                }
            }
        }
    }
    // The same data gives the same seq checksum as a plain read of the file.
    assert_eq!(report.results.len(), 2 * 2 * 2 * Method::ALL.len());
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "scratch left behind"
    );
}

#[test]
fn given_file_checksum_matches_a_plain_sum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("given");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let mut config = tiny(dir.path());
    config.file = Some(path);
    config.runs = 1;
    config.patterns = vec![Pattern::Seq];
    config.caches = vec![CacheState::Warm];
    let report = bench::run(&config, &mut |_| {}).unwrap();
    let mut words = data.chunks_exact(8);
    let mut sum = 0u64;
    for w in &mut words {
        sum = sum.wrapping_add(u64::from_ne_bytes(w.try_into().unwrap()));
    }
    let sum = words
        .remainder()
        .iter()
        .fold(sum, |s, &b| s.wrapping_add(b as u64));
    assert_eq!(report.results.len(), Method::ALL.len());
    assert!(report
        .results
        .iter()
        .all(|r| r.checksum == sum && r.size == 10_000));
}

#[test]
fn bad_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny(dir.path());
    config.file = Some(dir.path().join("missing"));
    assert!(bench::run(&config, &mut |_| {}).is_err());
    config.file = Some(dir.path().to_path_buf());
    assert!(bench::run(&config, &mut |_| {}).is_err());
    assert_eq!(mmkit::size::parse_size("4K"), Some(4096));
    assert_eq!(mmkit::size::parse_size("256M"), Some(256 << 20));
    assert_eq!(mmkit::size::parse_size("0"), None);
    assert_eq!(mmkit::size::parse_size("K"), None);
    assert_eq!(mmkit::size::parse_size("3q"), None);
    assert_eq!(mmkit::size::format_size(64 << 10), "64 KiB");
    for m in Method::ALL {
        assert_eq!(Method::from_name(m.name()), Some(m));
    }
}

/// The sink bench: every sink, cache state and method once, each delivering the file's
/// bytes (checked inside the bench), with copy_file_range n/a outside a file.
#[test]
fn sink_bench_covers_every_sink_and_method() {
    use mmkit::copy::Method as Copy;
    use mmkit_lab::bench::{Sink, SinkOptions};
    let dir = tempfile::tempdir().unwrap();
    let options = SinkOptions {
        sizes: vec![(2 << 20) + 5],
        runs: 2,
        dir: Some(dir.path().to_path_buf()),
        ..SinkOptions::default()
    };
    let mut calls = Vec::new();
    let report = bench::run_sinks(&options, &mut |p| calls.push((p.done, p.total))).unwrap();
    assert_eq!(calls.last(), Some(&(6, 6)));
    assert_eq!(report.results.len(), 3 * 2 * Copy::ALL.len());
    for r in &report.results {
        let refused = r.method == Copy::CopyFileRange && r.sink != Sink::File;
        assert_eq!(r.refused.is_some(), refused, "{r:?}");
        assert_eq!(r.median_ns.is_some(), !refused, "{r:?}");
        if refused {
            continue;
        }
        assert_eq!(r.runs, 2);
        let (lo, mid, hi) = (r.min_ns.unwrap(), r.median_ns.unwrap(), r.max_ns.unwrap());
        assert!(lo <= mid && mid <= hi, "{r:?}");
        let cpu = r.cpu_s_per_gb.unwrap();
        assert!(r.cpu_min_s_per_gb.unwrap() <= cpu && cpu <= r.cpu_max_s_per_gb.unwrap());
        assert_eq!(r.reader_cpu_s_per_gb.is_some(), r.sink != Sink::File);
        if r.cache == CacheState::Cold {
            assert_eq!(r.cached_pages_before, Some(0), "{r:?}");
        }
    }
    // A sink bench of nothing is refused.
    let none = SinkOptions {
        methods: vec![],
        ..options
    };
    assert!(bench::run_sinks(&none, &mut |_| {}).is_err());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
