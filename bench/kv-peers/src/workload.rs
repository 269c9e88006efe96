//! The workload, run against any [`Store`]: 16-byte keys in random order, values
//! of one size, then random gets, reopen, deletes of half the keys and compaction.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::store::{Durability, Store};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub keys: u64,
    pub value_len: usize,
    /// Gets timed (uniform over the stored keys).
    pub gets: u64,
    /// Puts in the batched no-sync phase's transactions, and gets per read transaction.
    pub batch: usize,
    /// Puts in the sync phase (one `fdatasync`ed commit each), into a fresh store.
    pub sync_puts: u64,
    pub seed: u64,
}

/// One run's figures for one store and value size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Puts per second, one put per transaction, no sync (random key order, fresh store).
    pub put_nosync_1: f64,
    /// Puts per second, `batch` puts per transaction, no sync (fresh store).
    pub put_nosync_batch: f64,
    /// Puts per second, one put per transaction, each commit synced (fresh store).
    pub put_sync_1: f64,
    /// Gets per second, uniform over the stored keys, `batch` per read transaction.
    pub get: f64,
    /// Seconds from opening the full store (closed before) to the first successful get.
    pub open_s: f64,
    /// Bytes the store's files occupy (allocated blocks) after all the puts and a flush.
    pub disk_full: u64,
    /// Apparent size (the files' lengths) at the same point.
    pub len_full: u64,
    /// Allocated bytes after deleting every other key (half) and a flush.
    pub disk_deleted: u64,
    pub len_deleted: u64,
    /// Allocated bytes after compaction; `None` when the store has none.
    pub disk_compacted: Option<u64>,
    pub len_compacted: Option<u64>,
    pub compact_s: Option<f64>,
}

/// SplitMix64's finalizer: a bijection on `u64`, so distinct `i` give distinct keys.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Key number `i`: 16 bytes that look random and never repeat.
pub fn key(seed: u64, i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&mix(i ^ seed).to_be_bytes());
    k[8..].copy_from_slice(&mix(i.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ seed).to_be_bytes());
    k
}

/// Value for key `i`: its number, then a filler byte.
fn fill_value(buf: &mut Vec<u8>, len: usize, i: u64) {
    buf.clear();
    buf.resize(len, (i as u8) | 1);
    let n = len.min(8);
    buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

/// xorshift64*, seeded.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(mix(seed) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        // Lemire's multiply-shift: uniform enough for n far below 2^64.
        ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) as u128 * n as u128) >> 64) as u64
    }
}

/// Bytes allocated and apparent length of every file under `dir`.
pub fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    let (mut disk, mut len) = (0, 0);
    for e in fs::read_dir(dir)? {
        let m = e?.metadata()?;
        if m.is_dir() {
            continue;
        }
        disk += m.blocks() * 512;
        len += m.len();
    }
    Ok((disk, len))
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// A fresh, empty directory for one phase; removed by [`Scratch::drop`].
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, name: &str) -> Result<Scratch> {
        let p = root.join(name);
        if p.exists() {
            fs::remove_dir_all(&p)?;
        }
        fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Put keys `0..n` with `per_txn` puts per commit; returns the time taken (the final
/// flush is not counted).
fn load<S: Store>(s: &mut S, dir: &Path, plan: &Plan, n: u64, per_txn: usize) -> Result<Duration> {
    let mut value = Vec::with_capacity(plan.value_len);
    let start = Instant::now();
    let mut staged = 0;
    for i in 0..n {
        if i % 8192 == 0 {
            guard(dir, plan, i)?;
        }
        fill_value(&mut value, plan.value_len, i);
        s.put(&key(plan.seed, i), &value);
        staged += 1;
        if staged == per_txn {
            s.commit()?;
            staged = 0;
        }
    }
    if staged > 0 {
        s.commit()?;
    }
    Ok(start.elapsed())
}

/// Stop a store whose files outgrow every reasonable bound (twelve times the raw data,
/// at least 256 MiB) before it fills a shared disk.
fn guard(dir: &Path, plan: &Plan, done: u64) -> Result<()> {
    let cap = (plan.keys * (16 + plan.value_len as u64) * 12).max(256 << 20);
    let (disk, _) = dir_size(dir)?;
    ensure!(
        disk <= cap,
        "files grew to {} MiB after {done} operations (cap {} MiB); stopped",
        disk >> 20,
        cap >> 20
    );
    Ok(())
}

/// Every phase of the workload for store `S`, in directories under `root`.
pub fn run<S: Store>(root: &Path, name: &str, plan: &Plan) -> Result<Sample> {
    let mut out = Sample::default();
    let n = plan.keys;

    // 1. One put per transaction, no sync, into a fresh store.
    let dir = Scratch::new(root, &format!("{name}-main"))?;
    let mut s = S::open(&dir.0, Durability::NoSync)?;
    let t = load(&mut s, &dir.0, plan, n, 1)?;
    out.put_nosync_1 = per_sec(n, t);
    s.flush()?;
    (out.disk_full, out.len_full) = dir_size(&dir.0)?;

    // 2. Random gets, `batch` per read transaction.
    let mut rng = XorShift::new(plan.seed ^ 0x6765_7473);
    let keys: Vec<[u8; 16]> = (0..plan.gets)
        .map(|_| key(plan.seed, rng.below(n)))
        .collect();
    let (mut hits, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    for chunk in keys.chunks(plan.batch) {
        let refs: Vec<&[u8]> = chunk.iter().map(|k| &k[..]).collect();
        s.get_many(&refs, &mut |v| {
            if let Some(v) = v {
                hits += 1;
                bytes += v.len() as u64 + u64::from(v[0]);
            }
        })?;
    }
    let t = start.elapsed();
    std::hint::black_box(bytes);
    ensure!(
        hits == plan.gets,
        "{name}: {} of {} gets missed",
        plan.gets - hits,
        plan.gets
    );
    out.get = per_sec(plan.gets, t);

    // 3. Close, reopen, time to the first successful get.
    s.close()?;
    let probe = key(plan.seed, n / 2);
    let start = Instant::now();
    let mut s = S::open(&dir.0, Durability::NoSync)?;
    let mut ok = false;
    s.get(&probe, &mut |v| {
        ok = v.is_some_and(|v| v.len() == plan.value_len)
    })?;
    out.open_s = start.elapsed().as_secs_f64();
    ensure!(ok, "{name}: the first get after reopening missed");

    // 4. Delete every other key, `batch` per transaction; then compact.
    let mut staged = 0;
    for i in (0..n).step_by(2) {
        if i % 8192 == 0 {
            guard(&dir.0, plan, i)?;
        }
        s.delete(&key(plan.seed, i));
        staged += 1;
        if staged == plan.batch {
            s.commit()?;
            staged = 0;
        }
    }
    s.commit()?;
    s.flush()?;
    (out.disk_deleted, out.len_deleted) = dir_size(&dir.0)?;
    let start = Instant::now();
    if s.compact()? {
        out.compact_s = Some(start.elapsed().as_secs_f64());
        let (d, l) = dir_size(&dir.0)?;
        out.disk_compacted = Some(d);
        out.len_compacted = Some(l);
    }
    let mut ok = false;
    s.get(&key(plan.seed, 1), &mut |v| ok = v.is_some())?;
    ensure!(ok, "{name}: a kept key is missing after compaction");
    let mut gone = true;
    s.get(&key(plan.seed, 0), &mut |v| gone = v.is_none())?;
    ensure!(gone, "{name}: a deleted key is back after compaction");
    s.close()?;
    drop(dir);

    // 5. Batched puts, no sync, into a fresh store.
    let dir = Scratch::new(root, &format!("{name}-batch"))?;
    let mut s = S::open(&dir.0, Durability::NoSync)?;
    let t = load(&mut s, &dir.0, plan, n, plan.batch)?;
    out.put_nosync_batch = per_sec(n, t);
    s.close()?;
    drop(dir);

    // 6. One put per transaction, each commit synced, into a fresh store.
    let dir = Scratch::new(root, &format!("{name}-sync"))?;
    let mut s = S::open(&dir.0, Durability::Sync)?;
    let t = load(&mut s, &dir.0, plan, plan.sync_puts, 1)?;
    out.put_sync_1 = per_sec(plan.sync_puts, t);
    s.close()?;
    drop(dir);

    Ok(out)
}
