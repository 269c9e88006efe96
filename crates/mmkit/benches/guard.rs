//! What the SIGBUS guard costs: a guarded copy (`Mapping::read_at` on a file mapping,
//! which publishes the range to the handler, copies, and checks for a fault) against an
//! unguarded copy of the same bytes out of `as_slice`, for 64 B, 4 KiB and 1 MiB reads
//! from a warm, populated mapping.
//!
//! ```text
//! cargo bench -p mmkit --bench guard
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "common/guard_file.rs"]
mod guard_file;
use guard_file::{guard_file, FILE_LEN};

fn bench_guard(c: &mut Criterion) {
    let (_dir, map) = guard_file();
    // SAFETY: the bench owns the file; nothing writes or truncates it while mapped.
    let slice = unsafe { map.as_slice() };

    let mut group = c.benchmark_group("guard");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for len in [64usize, 4096, 1 << 20] {
        let name = match len {
            64 => "64B",
            4096 => "4KiB",
            _ => "1MiB",
        };
        let mut buf = vec![0u8; len];
        // Offsets step through the file so each read is a different place, page cache warm.
        let offsets: Vec<usize> = (0..1024)
            .map(|i| (i * 7919 * 4096 + i * 64) % (FILE_LEN - len))
            .collect();
        group.throughput(Throughput::Bytes(len as u64));
        let mut i = 0;
        group.bench_function(BenchmarkId::new("guarded_read_at", name), |b| {
            b.iter(|| {
                i = (i + 1) % offsets.len();
                map.read_at(offsets[i], &mut buf).expect("read");
                black_box(&buf);
            })
        });
        group.bench_function(BenchmarkId::new("unguarded_copy", name), |b| {
            b.iter(|| {
                i = (i + 1) % offsets.len();
                let off = offsets[i];
                buf.copy_from_slice(black_box(&slice[off..off + len]));
                black_box(&buf);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_guard);
criterion_main!(benches);
