//! What the ring's own code costs a message, without another CPU in the way: one thread
//! sends a batch of messages and then receives them, so every cache line stays in this
//! CPU's cache. Against the same batch through a pipe made 1 MiB (`write` then `read`
//! of each message). `mmkit shm bench` measures the ring between two processes; this is the
//! floor under those figures (60 ns a 64-byte message before the send and receive fast
//! paths were inlined, 13 ns after).
//!
//! ```text
//! cargo bench -p mmkit --features shm --bench ring
//! ```

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mmkit::shm::ring::RingOptions;

/// Messages sent before they are received: they fit both the ring and the pipe.
const BATCH: u64 = 256;

fn ring_vs_pipe(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_one_thread");
    for size in [64usize, 1024] {
        let msg = vec![0x5au8; size];
        g.throughput(Throughput::Elements(BATCH));
        let ring = RingOptions::new()
            .capacity(4 << 20)
            .anonymous()
            .expect("ring");
        let mut tx = ring.producer().expect("producer");
        let mut rx = ring.consumer().expect("consumer");
        g.bench_with_input(BenchmarkId::new("ring", size), &size, |b, _| {
            b.iter(|| {
                for _ in 0..BATCH {
                    tx.send(black_box(&msg)).expect("send");
                }
                for _ in 0..BATCH {
                    let m = rx.recv().expect("recv");
                    black_box(m.last());
                }
            })
        });
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        rustix::pipe::fcntl_setpipe_size(&w, 1 << 20).expect("a 1 MiB pipe");
        let (mut r, mut w) = (File::from(r), File::from(w));
        let mut buf = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("pipe", size), &size, |b, _| {
            b.iter(|| {
                for _ in 0..BATCH {
                    w.write_all(black_box(&msg)).expect("write");
                }
                for _ in 0..BATCH {
                    r.read_exact(&mut buf).expect("read");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ring_vs_pipe);
criterion_main!(benches);
