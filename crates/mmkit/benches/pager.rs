//! Sequential scan through a [`Pager`] against the kernel's own file mapping of the
//! same warm file, as ratios measured in one run (medians of several interleaved runs).
//!
//! The file (64 MiB, or `MMKIT_BENCH_PAGER_MIB`) is written, synced and read once so it
//! is in the page cache; nothing measures disk I/O. Each run, for each variant: build
//! the mapping or pager fresh, scan it once (a wrapping sum of native-endian `u64`
//! words; every variant must give the same sum), drop it — all timed. Variants:
//!
//! - `mmap_lazy`: `MapOptions::new().map(&file)`, pages faulted in by the kernel
//!   (with fault-around) during the scan.
//! - `pager_raN`: `PagerOptions::new().readahead(N)` over a `FileSource` of the file,
//!   for N = 1, 8, 32 (the default), 256 pages.
//!
//! Run with `cargo bench -p mmkit --bench pager` (release build). Prints one line a
//! variant: median, min, max time, throughput, and the ratio of the median to
//! `mmap_lazy`'s.

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmkit::helpers::{median_time, XorShift};
use mmkit::pager::{FileSource, PagerOptions};
use mmkit::MapOptions;

fn sum(bytes: &[u8]) -> u64 {
    let mut s = 0u64;
    for c in bytes.chunks_exact(8) {
        s = s.wrapping_add(u64::from_ne_bytes(c.try_into().unwrap()));
    }
    s
}

fn main() {
    let mib: usize = std::env::var("MMKIT_BENCH_PAGER_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let runs = 7;
    let len = mib << 20;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let path = dir.path().join("data");
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15);
    let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let want = sum(&std::fs::read(&path).unwrap());
    drop(data);

    let probe = PagerOptions::new().build(Arc::new(FileSource::open(&path).unwrap()));
    if let Err(e) = probe {
        println!("skipped: {e}");
        return;
    }
    drop(probe);

    let ras = [1usize, 8, 32, 256];
    let names: Vec<String> = std::iter::once("mmap_lazy".to_string())
        .chain(ras.iter().map(|r| format!("pager_ra{r}")))
        .collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        let file = std::fs::File::open(&path).unwrap();
        let t = Instant::now();
        let map = MapOptions::new().map(&file).unwrap();
        // SAFETY: the file lives in a private temporary directory nobody else writes
        // or truncates while the mapping exists.
        let s = sum(black_box(unsafe { map.as_slice() }));
        drop(map);
        times[0].push(t.elapsed());
        assert_eq!(s, want, "mmap_lazy");
        for (i, &ra) in ras.iter().enumerate() {
            let src = Arc::new(FileSource::open(&path).unwrap());
            let t = Instant::now();
            let pager = PagerOptions::new().readahead(ra).build(src).unwrap();
            let s = sum(black_box(pager.as_slice()));
            drop(pager);
            times[i + 1].push(t.elapsed());
            assert_eq!(s, want, "pager ra {ra}");
        }
    }
    let base = median_time(&mut times[0]);
    println!(
        "sequential scan of {mib} MiB (warm page cache), {runs} runs, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, v) in names.iter().zip(times.iter_mut()) {
        let m = median_time(v);
        println!(
            "{name:>12}: median {:>9.2?} (min {:>9.2?}, max {:>9.2?}) {:>7.2} GiB/s  x{:.2} of mmap_lazy",
            m,
            v[0],
            v[v.len() - 1],
            len as f64 / m.as_secs_f64() / f64::from(1 << 30),
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
}
