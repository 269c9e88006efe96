//! Read throughput of mmkit mappings against `read(2)` and `pread(2)`, on warm files.
//!
//! Every file lives in a temporary directory under `std::env::temp_dir()` (on disk, not
//! tmpfs as a rule), is written, synced and then read once fully, so all its pages are
//! in the page cache before anything is timed. Nothing measures disk I/O.
//!
//! Group `scan`: a sequential scan (a wrapping sum of native-endian `u64` words, the same
//! function for every variant) of a whole file of 4 KiB, 1 MiB, 64 MiB, and 256 MiB when
//! the environment variable `MMKIT_BENCH_LARGE` is set:
//!
//! - `mmap_fresh/SIZE`: map the file with `MapOptions::new().populate()`, scan the
//!   borrowed slice, unmap; all three inside the timed loop.
//! - `mmap_lazy/SIZE`: the same without `populate`: pages are faulted in by the scan.
//!   With large page-cache folios one fault maps a whole folio, and this beats
//!   `MAP_POPULATE` for a single pass.
//! - `mmap_steady/SIZE`: scan through one populated mapping made before the loop.
//! - `read/SIZE`: seek to 0, `read(2)` into a reused 1 MiB buffer, scan each chunk.
//! - `pread/SIZE`: `pread(2)` (`FileExt::read_at`) in 1 MiB chunks, scan each chunk.
//!
//! Group `random4k`: one 4 KiB copy per iteration from a page-aligned offset of a 256 MiB
//! warm file, the offsets taken in turn from one fixed xorshift sequence shared by all:
//!
//! - `mmap_read_at/256MiB`: `Mapping::read_at` (the safe, checked copy) from one populated
//!   mapping.
//! - `mmap_slice/256MiB`: `copy_from_slice` out of the same mapping's `as_slice`.
//! - `pread/256MiB`: `pread(2)` of 4 KiB.
//!
//! Run with
//!
//! ```text
//! cargo bench -p mmkit --bench scan
//! MMKIT_BENCH_LARGE=1 cargo bench -p mmkit --bench scan    # adds the 256 MiB scans
//! cargo bench -p mmkit --bench scan -- 'scan/mmap'         # a filter, as usual
//! ```
//!
//! Throughput is in bytes for `scan` (criterion prints GiB/s) and in reads for `random4k`.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mmkit::helpers::XorShift;
use mmkit::{MapOptions, Mapping};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Chunk size for `read` and `pread`.
const CHUNK: usize = MIB;
/// Size of the file for random reads.
const RANDOM_FILE: usize = 256 * MIB;
/// Size of one random read.
const PAGE: usize = 4 * KIB;
/// Number of precomputed random offsets (cycled through).
const OFFSETS: usize = 1 << 16;

/// The scan every variant runs: a wrapping sum of the native-endian `u64` words, plus
/// the remainder bytes. Written so the compiler can vectorize it.
#[inline]
fn scan(data: &[u8]) -> u64 {
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    let mut sum = 0u64;
    for w in words {
        sum = sum.wrapping_add(u64::from_ne_bytes(w.try_into().unwrap()));
    }
    for &b in tail {
        sum = sum.wrapping_add(u64::from(b));
    }
    sum
}

/// Write a file of `len` pseudo-random bytes, sync it, and read it back once fully so
/// that its pages are in the page cache. Returns it opened read-only.
fn warm_file(dir: &Path, len: usize) -> File {
    let path = dir.join(format!("data-{len}"));
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15 ^ len as u64);
    let mut f = File::create(&path).expect("create bench file");
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK);
        for w in buf[..n].chunks_mut(8) {
            let x = rng.next_u64().to_ne_bytes();
            w.copy_from_slice(&x[..w.len()]);
        }
        f.write_all(&buf[..n]).expect("write bench file");
        left -= n;
    }
    // Flush now so that write-back does not run during the measurements.
    f.sync_all().expect("sync bench file");
    drop(f);
    let mut f = File::open(&path).expect("open bench file");
    let mut total = 0;
    loop {
        let n = f.read(&mut buf).expect("warm bench file");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, len);
    f
}

fn label(len: usize) -> String {
    if len >= MIB {
        format!("{}MiB", len / MIB)
    } else {
        format!("{}KiB", len / KIB)
    }
}

fn map_populated(file: &File) -> Mapping {
    MapOptions::new()
        .populate()
        .map(file)
        .expect("map bench file")
}

/// Sum of the whole file through `read(2)` from offset 0, in chunks of `buf.len()`.
fn scan_read(file: &mut File, buf: &mut [u8]) -> u64 {
    file.seek(SeekFrom::Start(0)).expect("seek");
    let mut sum = 0u64;
    loop {
        let n = file.read(buf).expect("read");
        if n == 0 {
            return sum;
        }
        sum = sum.wrapping_add(scan(&buf[..n]));
    }
}

/// Sum of the first `len` bytes through `pread(2)`, in chunks of `buf.len()`.
fn scan_pread(file: &File, len: usize, buf: &mut [u8]) -> u64 {
    let mut sum = 0u64;
    let mut off = 0;
    while off < len {
        let want = buf.len().min(len - off);
        let n = file.read_at(&mut buf[..want], off as u64).expect("pread");
        assert!(n > 0, "file shorter than expected");
        sum = sum.wrapping_add(scan(&buf[..n]));
        off += n;
    }
    sum
}

fn bench_scan(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let mut sizes = vec![4 * KIB, MIB, 64 * MIB];
    if std::env::var_os("MMKIT_BENCH_LARGE").is_some() {
        sizes.push(256 * MIB);
    }

    let mut group = c.benchmark_group("scan");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // One buffer for all read/pread variants, touched now so no variant pays its faults.
    let mut buf = vec![0xA5u8; CHUNK];

    for &len in &sizes {
        let mut file = warm_file(dir.path(), len);
        let name = label(len);
        group.throughput(Throughput::Bytes(len as u64));

        let steady = map_populated(&file);
        // SAFETY: the bench owns the temporary file; nothing writes or truncates it while
        // the mapping exists, and the mapping is read-only.
        let steady_slice = unsafe { steady.as_slice() };
        let expect = scan(steady_slice);
        assert_eq!(scan_read(&mut file, &mut buf), expect);
        assert_eq!(scan_pread(&file, len, &mut buf), expect);

        group.bench_function(BenchmarkId::new("mmap_fresh", &name), |b| {
            b.iter(|| {
                let map = map_populated(&file);
                // SAFETY: as for `steady`: the bench owns the file and nobody writes or
                // truncates it while the mapping exists.
                let data = unsafe { map.as_slice() };
                black_box(scan(black_box(data)))
            })
        });

        group.bench_function(BenchmarkId::new("mmap_lazy", &name), |b| {
            b.iter(|| {
                let map = MapOptions::new().map(&file).expect("map bench file");
                // SAFETY: as for `steady`: the bench owns the file and nobody writes or
                // truncates it while the mapping exists.
                let data = unsafe { map.as_slice() };
                black_box(scan(black_box(data)))
            })
        });

        group.bench_function(BenchmarkId::new("mmap_steady", &name), |b| {
            b.iter(|| black_box(scan(black_box(steady_slice))))
        });

        group.bench_function(BenchmarkId::new("read", &name), |b| {
            b.iter(|| black_box(scan_read(&mut file, &mut buf)))
        });

        group.bench_function(BenchmarkId::new("pread", &name), |b| {
            b.iter(|| black_box(scan_pread(&file, len, &mut buf)))
        });

        drop(steady);
    }
    group.finish();
}

fn bench_random4k(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let file = warm_file(dir.path(), RANDOM_FILE);
    let name = label(RANDOM_FILE);

    let pages = (RANDOM_FILE / PAGE) as u64;
    let mut rng = XorShift::new(0x2545_F491_4F6C_DD1D);
    let offsets: Vec<usize> = (0..OFFSETS)
        .map(|_| (rng.next_u64() % pages) as usize * PAGE)
        .collect();

    let map = map_populated(&file);
    // SAFETY: the bench owns the temporary file; nothing writes or truncates it while the
    // mapping exists, and the mapping is read-only.
    let slice = unsafe { map.as_slice() };
    let mut buf = vec![0x5Au8; PAGE];

    let mut group = c.benchmark_group("random4k");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    // Each variant walks the same offset sequence from its start, cycling; the counter
    // lives outside the routine so that successive samples continue where the last ended.
    let mut i = 0;
    group.bench_function(BenchmarkId::new("mmap_read_at", &name), |b| {
        b.iter(|| {
            let off = offsets[i % OFFSETS];
            i += 1;
            map.read_at(black_box(off), &mut buf).expect("read_at");
            black_box(&buf);
        })
    });

    let mut i = 0;
    group.bench_function(BenchmarkId::new("mmap_slice", &name), |b| {
        b.iter(|| {
            let off = offsets[i % OFFSETS];
            i += 1;
            let off = black_box(off);
            buf.copy_from_slice(&slice[off..off + PAGE]);
            black_box(&buf);
        })
    });

    let mut i = 0;
    group.bench_function(BenchmarkId::new("pread", &name), |b| {
        b.iter(|| {
            let off = offsets[i % OFFSETS];
            i += 1;
            let n = file
                .read_at(&mut buf, black_box(off) as u64)
                .expect("pread");
            assert_eq!(n, PAGE);
            black_box(&buf);
        })
    });

    group.finish();
}

criterion_group!(benches, bench_scan, bench_random4k);
criterion_main!(benches);
