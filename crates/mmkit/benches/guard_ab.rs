//! What the SIGBUS guard costs, measured interleaved: the same guarded `read_at` and
//! unguarded `copy_from_slice` as `benches/guard.rs` (64 B, 4 KiB and 1 MiB, the same
//! offsets, the same buffer), but timed in alternating blocks inside one process, so that
//! both sides see the same machine. Criterion times one side after the other; on a VM
//! shared with other builds that alone moved the 4 KiB ratio between 0.72x and 1.28x
//! from run to run, while the interleaved ratio stays within a few percent.
//!
//! Each round times a block of guarded copies and a block of unguarded ones (their order
//! alternating between rounds) and keeps the ratio of the two; the median ratio, its
//! quartiles and extremes are printed for each size.
//!
//! ```text
//! cargo bench -p mmkit --bench guard_ab            # 41 rounds
//! cargo bench -p mmkit --bench guard_ab -- 101     # more rounds
//! MMKIT_BENCH_HOT=1 cargo bench -p mmkit --bench guard_ab
//! ```
//!
//! `MMKIT_BENCH_HOT` keeps the offsets inside the first MiB of the file, so the copies
//! come from cache and the guard's fixed cost is a larger part of each one.

use std::hint::black_box;
use std::time::Instant;

use mmkit::Mapping;

#[path = "common/guard_file.rs"]
mod guard_file;
use guard_file::{guard_file, FILE_LEN};

fn main() {
    // Cargo passes `--bench`; a number is the count of rounds.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(41)
        .max(1);
    let hot = std::env::var_os("MMKIT_BENCH_HOT").is_some();
    let (_dir, map) = guard_file();
    println!(
        "guard_ab: {rounds} rounds, offsets {}",
        if hot {
            "in the first MiB (cache-hot)"
        } else {
            "over 64 MiB"
        }
    );
    for len in [64usize, 4096, 1 << 20] {
        let span = if hot { (1 << 20) + len } else { FILE_LEN };
        let offsets: Vec<usize> = (0..1024)
            .map(|i| (i * 7919 * 4096 + i * 64) % (span - len))
            .collect();
        let ratios = measure(&map, &offsets, len, rounds);
        println!(
            "{len:>8} B  guarded/unguarded: median {:.3}  quartiles {:.3}-{:.3}  range {:.3}-{:.3}",
            ratios[ratios.len() / 2],
            ratios[(ratios.len() - 1) / 4],
            ratios[(ratios.len() - 1) * 3 / 4],
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
}

/// The sorted per-round ratios of guarded to unguarded time for copies of `len` bytes.
fn measure(map: &Mapping, offsets: &[usize], len: usize, rounds: usize) -> Vec<f64> {
    // SAFETY: the bench owns the file; nothing writes or truncates it while mapped.
    let slice = unsafe { map.as_slice() };
    let mut buf = vec![0u8; len];
    // About 4 MiB copied per block, and at least 64 copies.
    let n = (4 << 20) / len.max(256) * 4 + 64;
    // Two loops, not one with a flag: each side's loop is then the one criterion times.
    let mut i = 0;
    let mut guarded = |buf: &mut [u8]| {
        let t = Instant::now();
        for _ in 0..n {
            i = (i + 1) % offsets.len();
            map.read_at(offsets[i], buf).expect("read");
            black_box(&buf);
        }
        t.elapsed().as_secs_f64()
    };
    let mut j = 0;
    let mut unguarded = |buf: &mut [u8]| {
        let t = Instant::now();
        for _ in 0..n {
            j = (j + 1) % offsets.len();
            let off = offsets[j];
            buf.copy_from_slice(black_box(&slice[off..off + len]));
            black_box(&buf);
        }
        t.elapsed().as_secs_f64()
    };
    guarded(&mut buf);
    unguarded(&mut buf);
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|r| {
            let (g, u) = if r % 2 == 0 {
                let g = guarded(&mut buf);
                (g, unguarded(&mut buf))
            } else {
                let u = unguarded(&mut buf);
                (guarded(&mut buf), u)
            };
            g / u
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}
