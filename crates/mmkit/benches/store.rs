//! What a `Log` append costs: `Log::append` of 16 B, 256 B and 4 KiB records with
//! `Durability::Process` against one `write(2)` per record (a 4-byte length, then the
//! payload) on an `O_APPEND` file; and with `Durability::Sync` against `write` +
//! `fdatasync`, with few samples (each is an `fdatasync`, a fraction of a millisecond
//! to several on a disk). `mmkit log bench` measures the same side by side with group
//! commit and medians; this is the criterion view.
//!
//! ```text
//! cargo bench -p mmkit --features store --bench store
//! cargo bench -p mmkit --features store --bench store -- --quick
//! ```

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mmkit::store::{Durability, Log, LogOptions};

const SIZES: [(usize, &str); 3] = [(16, "16B"), (256, "256B"), (4096, "4KiB")];

/// A log's file grows with every append; start a fresh one past this many bytes, so the
/// bench's files stay small whatever criterion's iteration counts.
const ROLL_BYTES: u64 = 256 << 20;

struct Logs {
    dir: tempfile::TempDir,
    durability: Durability,
    n: u32,
    written: u64,
}

impl Logs {
    fn new(durability: Durability) -> Logs {
        Logs {
            dir: tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir"),
            durability,
            n: 0,
            written: 0,
        }
    }

    fn log(&mut self) -> Log {
        self.n += 1;
        self.written = 0;
        let path = self.dir.path().join(format!("{}.log", self.n));
        let _ = std::fs::remove_file(self.dir.path().join(format!("{}.log", self.n - 1)));
        LogOptions::new()
            .durability(self.durability)
            .open(path)
            .expect("open log")
    }

    fn file(&mut self) -> File {
        self.n += 1;
        self.written = 0;
        let _ = std::fs::remove_file(self.dir.path().join(format!("{}.peer", self.n - 1)));
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join(format!("{}.peer", self.n)))
            .expect("open peer")
    }

    /// Whether the current file is due to be replaced after `bytes` more.
    fn roll(&mut self, bytes: usize) -> bool {
        self.written += bytes as u64;
        self.written > ROLL_BYTES
    }
}

fn write_record(mut file: &File, buf: &mut [u8], payload: &[u8]) {
    buf[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    buf[4..].copy_from_slice(payload);
    let n = file.write(buf).expect("write");
    assert_eq!(n, buf.len(), "short write");
}

fn bench_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_process");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (size, name) in SIZES {
        let payload = vec![0xA5u8; size];
        group.throughput(Throughput::Elements(1));
        let mut logs = Logs::new(Durability::Process);
        let mut log = logs.log();
        group.bench_function(BenchmarkId::new("mmkit_append", name), |b| {
            b.iter(|| {
                black_box(log.append(black_box(&payload)).expect("append"));
                if logs.roll(size) {
                    log = logs.log();
                }
            })
        });
        let mut peers = Logs::new(Durability::Process);
        let mut file = peers.file();
        let mut buf = vec![0u8; 4 + size];
        group.bench_function(BenchmarkId::new("o_append_write", name), |b| {
            b.iter(|| {
                write_record(&file, &mut buf, black_box(&payload));
                if peers.roll(size) {
                    file = peers.file();
                }
            })
        });
    }
    group.finish();
}

fn bench_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_sync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for (size, name) in SIZES {
        let payload = vec![0x5Au8; size];
        group.throughput(Throughput::Elements(1));
        let mut logs = Logs::new(Durability::Sync);
        let log = logs.log();
        group.bench_function(BenchmarkId::new("mmkit_append", name), |b| {
            b.iter(|| black_box(log.append(black_box(&payload)).expect("append")))
        });
        let mut peers = Logs::new(Durability::Sync);
        let file = peers.file();
        let mut buf = vec![0u8; 4 + size];
        group.bench_function(BenchmarkId::new("write_fdatasync", name), |b| {
            b.iter(|| {
                write_record(&file, &mut buf, black_box(&payload));
                file.sync_data().expect("fdatasync");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_process, bench_sync);
criterion_main!(benches);
