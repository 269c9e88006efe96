//! Power loss, modelled inside the library: workloads run under the crash backend
//! (`storage::crash`), which takes, at calls of the storage seam, the images a power
//! cut can leave: the bytes the last completed flush made durable, with none, all, the
//! header page only, random pages or random sectors of what was written since, and the
//! file's size from before or after. Each image is opened as after a reboot (another
//! file, so not the writer's epoch): first read-only, then by a writer, then once more.
//!
//! What must hold, with [`Durability::Sync`]: every open succeeds (no refusal, no
//! hang); every append or put acknowledged before the cut is there; a batch is whole or
//! absent; every record read back is one that was written; a reader of the image sees
//! what the writer's recovery then keeps; and the recovered store reopens clean.
//!
//! `power_counts` prints the figures (cuts, acknowledged records checked, lost, half
//! batches, refused, torn tails cut) with `--nocapture`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::storage::crash::{self, Image, Loss};
use super::{Batch, Durability, KvOptions, LogOptions, Seq};
use crate::rng::XorShift;

/// A record's payload, a function of its number: mostly small, some over a page, some
/// of zeros (a zero sector inside a record must not read as a torn write when the
/// record is whole).
fn payload(seq: Seq) -> Vec<u8> {
    let mut rng = XorShift::new(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    if seq % 11 == 0 {
        return vec![0; 1500];
    }
    let len = match seq % 7 {
        0 => 3000 + rng.below(3000),
        1 => 1 + rng.below(16),
        _ => 20 + rng.below(400),
    };
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// What the figures count, over every image.
#[derive(Debug, Default)]
struct Tally {
    cuts: u64,
    acked_checked: u64,
    lost: u64,
    half_batches: u64,
    refused: u64,
    wrong: u64,
    torn_cut: u64,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }

    fn assert_clean(&self, what: &str) {
        let line = format!(
            "power loss ({what}): {} cuts, {} acknowledged records checked, {} lost, {} half-applied batches, {} opens refused or blocked, {} wrong records, {} torn tails cut",
            self.cuts, self.acked_checked, self.lost, self.half_batches, self.refused, self.wrong, self.torn_cut
        );
        println!("{line}");
        assert!(
            self.failures.is_empty()
                && self.lost + self.half_batches + self.refused + self.wrong == 0,
            "{line}\n{}",
            self.failures.join("\n")
        );
    }
}

/// Every image worth opening for one cut: each loss, the random ones three times.
fn images_of(image: &Image, seed: u64) -> Vec<(Loss, Vec<u8>)> {
    let mut rng = XorShift::new(seed);
    let mut coin = move || rng.next_u64() & 1 == 1;
    let mut out = Vec::new();
    for loss in Loss::EVERY {
        let draws = if matches!(loss, Loss::Pages | Loss::Sectors) {
            3
        } else {
            1
        };
        for _ in 0..draws {
            out.push((loss, image.cut(loss, &mut coin)));
        }
    }
    out
}

/// One batch of the log workload: its numbers, the seam's call count when it began and
/// when it was acknowledged.
struct Appended {
    seqs: std::ops::Range<Seq>,
    began: u64,
    acked: u64,
}

/// A `truncate_before(seq)`: the call count when it began.
struct Dropped {
    seq: Seq,
    began: u64,
}

fn log_workload(
    path: &Path,
    ops: usize,
    durability: Durability,
) -> (Vec<Appended>, Vec<Dropped>, Vec<(u64, Image)>) {
    drop(LogOptions::new().durability(durability).open(path).unwrap());
    crash::install(|_| true);
    crash::assume_durable(&std::fs::File::open(path).unwrap());
    let log = LogOptions::new().durability(durability).open(path).unwrap();
    let mut rng = XorShift::new(0x5eed);
    let (mut appended, mut dropped) = (Vec::new(), Vec::new());
    let mut next: Seq = 1;
    for op in 0..ops {
        if op % 40 == 39 {
            let first = log.first().unwrap().unwrap_or(next);
            let seq = first + rng.below((next - first) as usize / 2) as u64;
            let began = crash::calls();
            log.truncate_before(seq).unwrap();
            dropped.push(Dropped { seq, began });
        }
        let n = if rng.below(3) == 0 {
            2 + rng.below(5)
        } else {
            1
        } as u64;
        let records: Vec<Vec<u8>> = (next..next + n).map(payload).collect();
        let began = crash::calls();
        let seqs = log.append_batch(&records).unwrap();
        assert_eq!(seqs, next..next + n);
        appended.push(Appended {
            seqs,
            began,
            acked: crash::calls(),
        });
        next += n;
    }
    drop(log);
    (appended, dropped, crash::finish())
}

#[test]
fn power_loss_never_loses_an_acknowledged_log_record_nor_half_a_batch() {
    log_power_loss(Durability::Sync);
}

/// A `Process` log promises nothing of a power cut but this: it opens, with whole
/// batches of records that were written (truncations included: a punched page never
/// reaches the disk before the start that drops it).
#[test]
fn power_loss_leaves_a_process_log_that_opens_with_whole_batches() {
    log_power_loss(Durability::Process);
}

fn log_power_loss(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let (mut appended, dropped, images) = log_workload(&dir.path().join("log"), 150, durability);
    if durability == Durability::Process {
        for a in &mut appended {
            a.acked = u64::MAX; // nothing is promised across a power cut
        }
    }
    let mut tally = Tally::default();
    let img = dir.path().join("image");
    for (k, image) in &images {
        for (loss, bytes) in images_of(image, *k + 1) {
            tally.cuts += 1;
            std::fs::write(&img, &bytes).unwrap();
            let ctx = format!("cut at call {k} ({:?}), {loss:?}", image.event);
            check_log_image(&img, *k, &appended, &dropped, &ctx, &mut tally);
        }
    }
    tally.assert_clean(&format!("log, {durability:?}"));
}

/// Open one log image as after a reboot and check it (see the module's docs).
fn check_log_image(
    img: &Path,
    k: u64,
    appended: &[Appended],
    dropped: &[Dropped],
    ctx: &str,
    tally: &mut Tally,
) {
    let seen = match read_as_reader(img) {
        Ok(seen) => seen,
        Err(e) => {
            tally.refused += 1;
            return tally.fail(format!("{ctx}: a reader of the image: {e}"));
        }
    };
    let log = match LogOptions::new().durability(Durability::Sync).open(img) {
        Ok(log) => log,
        Err(e) => {
            tally.refused += 1;
            return tally.fail(format!("{ctx}: the writer's open refused: {e}"));
        }
    };
    tally.torn_cut += u64::from(log.recovery_report().cut.is_some());
    let kept = records_of(&log).unwrap_or_else(|e| panic!("{ctx}: reading the recovered log: {e}"));
    let report = log.recovery_report().to_string();
    drop(log);
    // The reader trusts the image's header, which may be older than the records a
    // power cut let reach storage (recovery keeps those): it sees a prefix.
    if !kept.starts_with(&seen) {
        tally.wrong += 1;
        tally.fail(format!(
            "{ctx}: the reader saw {} records, not a prefix of the {} recovery kept ({report})",
            seen.len(),
            kept.len()
        ));
    }
    check_log_view(
        &seen,
        k,
        appended,
        dropped,
        &format!("{ctx}, reader"),
        tally,
    );
    check_log_view(
        &kept,
        k,
        appended,
        dropped,
        &format!("{ctx}, writer ({report})"),
        tally,
    );
    match LogOptions::new().open(img) {
        Ok(again) if again.recovery_report().is_clean() => {}
        Ok(again) => tally.fail(format!("{ctx}: reopened: {}", again.recovery_report())),
        Err(e) => tally.fail(format!("{ctx}: reopened: {e}")),
    }
}

/// The records of a log image as a reader sees them, after a check that found no
/// damage (a read-only check calls a torn write what it is, not damage).
fn read_as_reader(img: &Path) -> crate::Result<Vec<(Seq, Vec<u8>)>> {
    let log = LogOptions::new().open_read_only(img)?;
    let check = log.check()?;
    if !check.damage.is_empty() {
        return Err(
            crate::Error::new(crate::Op::Recover, crate::ErrorKind::Corrupt)
                .detail(format!("check found damage: {check:?}")),
        );
    }
    records_of(&log)
}

/// Every record of `log`, with its number.
fn records_of(log: &super::ReadOnlyLog) -> crate::Result<Vec<(Seq, Vec<u8>)>> {
    log.iter()
        .map(|e| e.and_then(|e| Ok((e.seq(), e.read()?))))
        .collect()
}

/// Check the records one view of an image holds.
fn check_log_view(
    kept: &[(Seq, Vec<u8>)],
    k: u64,
    appended: &[Appended],
    dropped: &[Dropped],
    ctx: &str,
    tally: &mut Tally,
) {
    // The start may be any that a truncation begun before the cut set, no later.
    let latest_start = dropped
        .iter()
        .filter(|d| d.began <= k)
        .map(|d| d.seq)
        .max()
        .unwrap_or(1);
    let held: HashMap<Seq, &Vec<u8>> = kept.iter().map(|(s, p)| (*s, p)).collect();
    for (seq, p) in kept {
        if *p != payload(*seq)
            || !appended
                .iter()
                .any(|a| a.seqs.contains(seq) && a.began <= k)
        {
            tally.wrong += 1;
            tally.fail(format!("{ctx}: record {seq} was never written so"));
        }
    }
    let first = kept.first().map_or(Seq::MAX, |(s, _)| *s);
    for a in appended {
        let counted: Vec<Seq> = a
            .seqs
            .clone()
            .filter(|&s| s >= first.min(latest_start))
            .collect();
        let there = counted.iter().filter(|s| held.contains_key(s)).count();
        if there != 0 && there != counted.len() {
            tally.half_batches += 1;
            tally.fail(format!(
                "{ctx}: batch {:?}: {there} of {} records",
                a.seqs,
                counted.len()
            ));
        }
        if a.acked <= k {
            for s in a.seqs.clone().filter(|&s| s >= latest_start) {
                tally.acked_checked += 1;
                if !held.contains_key(&s) {
                    tally.lost += 1;
                    tally.fail(format!("{ctx}: acknowledged record {s} lost"));
                }
            }
        }
    }
}

/// One operation of the key-value workload: the keys it set, with their values.
struct Put {
    keys: Vec<(Vec<u8>, Vec<u8>)>,
    /// The counter's value it wrote, if it wrote the counter.
    counter: Option<u64>,
    began: u64,
    acked: u64,
}

fn kv_workload(path: &Path, ops: usize) -> (Vec<Put>, Vec<(u64, Image)>) {
    let mut opts = KvOptions::new();
    opts.durability(Durability::Sync).compact_below(0.0, 0);
    drop(opts.open(path).unwrap());
    crash::install(|_| true);
    crash::assume_durable(&std::fs::File::open(path).unwrap());
    let kv = opts.open(path).unwrap();
    let mut rng = XorShift::new(0xcafe);
    let mut puts = Vec::new();
    for op in 0..ops as u64 {
        let began = crash::calls();
        let (keys, counter) = match op % 4 {
            0 => {
                let mut batch = Batch::new();
                let keys: Vec<_> = (0..2 + rng.below(5))
                    .map(|j| {
                        (
                            format!("b{op}-{j}").into_bytes(),
                            payload(op * 10 + j as u64),
                        )
                    })
                    .collect();
                for (k, v) in &keys {
                    batch.put(k, v);
                }
                kv.write(&batch).unwrap();
                (keys, None)
            }
            1 => {
                kv.put(b"counter", &op.to_le_bytes()).unwrap();
                (Vec::new(), Some(op))
            }
            _ => {
                // Now and then a large value, so that the file grows (a reservation
                // inside the writers' lock, where a cut leaves the lock word held).
                let v = if op % 40 == 2 {
                    vec![7u8; 200 << 10]
                } else {
                    payload(op)
                };
                let k = format!("k{op}").into_bytes();
                kv.put(&k, &v).unwrap();
                (vec![(k, v)], None)
            }
        };
        puts.push(Put {
            keys,
            counter,
            began,
            acked: crash::calls(),
        });
    }
    drop(kv);
    (puts, crash::finish())
}

#[test]
fn power_loss_never_loses_an_acknowledged_put_nor_half_a_batch_nor_wedges_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (puts, images) = kv_workload(&dir.path().join("kv"), 100);
    let mut tally = Tally::default();
    let img = dir.path().join("image");
    for (k, image) in &images {
        for (loss, bytes) in images_of(image, *k + 7) {
            tally.cuts += 1;
            std::fs::write(&img, &bytes).unwrap();
            let ctx = format!("cut at call {k} ({:?}), {loss:?}", image.event);
            check_kv_image(&img, *k, &puts, &ctx, &mut tally);
        }
    }
    tally.assert_clean("kv, Sync");
}

type Pairs = HashMap<Vec<u8>, Vec<u8>>;

/// Open `img` with `opts` (for writing, or read-only) on another thread, within a time
/// limit: a lock word left held must not make an open wait forever.
fn open_kv_within(img: &Path, opts: KvOptions, write: bool) -> Result<Pairs, String> {
    let (tx, rx) = mpsc::channel();
    let path = img.to_path_buf();
    std::thread::spawn(move || {
        let pairs = |kv: &super::ReadOnlyKv| kv.iter()?.collect::<crate::Result<Pairs>>();
        let all = if write {
            opts.open(&path).and_then(|kv| pairs(&kv))
        } else {
            opts.open_read_only(&path).and_then(|kv| pairs(&kv))
        };
        let _ = tx.send(all.map_err(|e| e.to_string()));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| Err("blocked for 20 s".into()))
}

fn check_kv_image(img: &Path, k: u64, puts: &[Put], ctx: &str, tally: &mut Tally) {
    let reader = KvOptions::new();
    let seen = match open_kv_within(img, reader, false) {
        Ok(seen) => seen,
        Err(e) => {
            tally.refused += 1;
            return tally.fail(format!("{ctx}: a read-only open: {e}"));
        }
    };
    let mut writer = KvOptions::new();
    writer.durability(Durability::Sync).compact_below(0.0, 0);
    let kept = match open_kv_within(img, writer, true) {
        Ok(kept) => kept,
        Err(e) => {
            tally.refused += 1;
            return tally.fail(format!("{ctx}: the writer's open: {e}"));
        }
    };
    // The reader may see an older state than recovery keeps (see the log's check).
    check_kv_view(&seen, k, puts, &format!("{ctx}, reader"), tally);
    check_kv_view(&kept, k, puts, &format!("{ctx}, writer"), tally);
}

/// Check the keys one view of an image holds.
fn check_kv_view(kept: &Pairs, k: u64, puts: &[Put], ctx: &str, tally: &mut Tally) {
    let counter = kept
        .get(&b"counter"[..])
        .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()));
    let last_acked = puts
        .iter()
        .filter(|p| p.acked <= k)
        .filter_map(|p| p.counter)
        .max();
    if counter < last_acked
        || counter.is_some_and(|c| !puts.iter().any(|p| p.counter == Some(c) && p.began <= k))
    {
        tally.wrong += 1;
        tally.fail(format!(
            "{ctx}: counter {counter:?}, last acknowledged {last_acked:?}"
        ));
    }
    for p in puts {
        let there = p
            .keys
            .iter()
            .filter(|(key, v)| kept.get(key) == Some(v))
            .count();
        let wrong = p
            .keys
            .iter()
            .filter(|(key, v)| kept.get(key).is_some_and(|got| got != v))
            .count();
        tally.wrong += wrong as u64;
        if there != 0 && there != p.keys.len() {
            tally.half_batches += 1;
            tally.fail(format!(
                "{ctx}: a batch of {} keys shows {there}",
                p.keys.len()
            ));
        }
        if p.acked <= k {
            tally.acked_checked += p.keys.len() as u64;
            if there < p.keys.len() {
                tally.lost += (p.keys.len() - there) as u64;
                tally.fail(format!(
                    "{ctx}: acknowledged keys lost ({there} of {})",
                    p.keys.len()
                ));
            }
        }
    }
}

/// A write of the record file workload: record `index` set to `value`.
struct Update {
    index: usize,
    value: u64,
    began: u64,
    acked: u64,
}

#[test]
fn power_loss_leaves_every_record_of_a_record_file_old_or_new_never_torn() {
    use super::{RecordFile, RecordFileOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records");
    let opts = *RecordFileOptions::new().durability(Durability::Sync);
    drop(opts.open::<[u64; 40]>(&path).unwrap());
    crash::install(|_| true);
    crash::assume_durable(&std::fs::File::open(&path).unwrap());
    let mut file: RecordFile<[u64; 40]> = opts.open(&path).unwrap();
    let mut rng = XorShift::new(0x2ec0);
    let mut updates = Vec::new();
    for op in 1..=160u64 {
        let began = crash::calls();
        let index = if op <= 30 {
            file.push(&[op; 40]).unwrap()
        } else {
            let i = rng.below(30);
            file.set(i, &[op; 40]).unwrap();
            i
        };
        updates.push(Update {
            index,
            value: op,
            began,
            acked: crash::calls(),
        });
    }
    drop(file);
    let images = crash::finish();
    let mut tally = Tally::default();
    let img = dir.path().join("image");
    for (k, image) in &images {
        for (loss, bytes) in images_of(image, *k + 3) {
            tally.cuts += 1;
            std::fs::write(&img, &bytes).unwrap();
            let ctx = format!("cut at call {k} ({:?}), {loss:?}", image.event);
            let file = match opts.open::<[u64; 40]>(&img) {
                Ok(f) => f,
                Err(e) => {
                    tally.refused += 1;
                    tally.fail(format!("{ctx}: open: {e}"));
                    continue;
                }
            };
            check_record_image(&file, &updates, *k, &ctx, &mut tally);
        }
    }
    tally.assert_clean("record file, Sync");
}

/// Check every record of one image of the record file against the updates made: an
/// acknowledged value or a newer one, never lost, never torn.
fn check_record_image(
    file: &super::ReadOnlyRecordFile<[u64; 40]>,
    updates: &[Update],
    k: u64,
    ctx: &str,
    tally: &mut Tally,
) {
    for i in 0..30 {
        let mine: Vec<&Update> = updates.iter().filter(|u| u.index == i).collect();
        let floor = mine.iter().filter(|u| u.acked <= k).map(|u| u.value).max();
        let got = match file.get(i) {
            Ok(got) => got,
            Err(e) => {
                tally.wrong += 1;
                tally.fail(format!("{ctx}: record {i}: {e}"));
                continue;
            }
        };
        if floor.is_some() {
            tally.acked_checked += 1;
        }
        match got {
            None if floor.is_some() => {
                tally.lost += 1;
                tally.fail(format!("{ctx}: acknowledged record {i} lost"));
            }
            None => {}
            Some(v) => {
                let whole = v.iter().all(|&x| x == v[0]);
                let written = mine.iter().any(|u| u.value == v[0] && u.began <= k);
                if !whole || !written || Some(v[0]) < floor {
                    tally.wrong += 1;
                    tally.fail(format!(
                        "{ctx}: record {i} reads {} (acknowledged {floor:?})",
                        v[0]
                    ));
                }
            }
        }
    }
}
