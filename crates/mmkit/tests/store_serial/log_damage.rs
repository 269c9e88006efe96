//! `store::Log` against damage: 10,000 copies of one closed log, each with bits flipped,
//! a range zeroed or garbled, or the file cut, at random offsets (the header included),
//! opened read-only and as a writer under each recovery policy in turn.
//!
//! Every record the log returns must be the one written under that number; the records
//! before the first damaged byte must survive every policy that opens; `Salvage` must
//! keep every record the damage did not touch; errors are of the documented kinds only.

use mmkit_testkit as common;

use std::collections::BTreeMap;
use std::path::Path;

use mmkit::store::{Log, LogOptions, ReadOnlyLog, Recovery};
use mmkit::ErrorKind;

use common::note;

/// Seeded xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `lo..hi` (`lo` when empty).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next() % (hi - lo)
        }
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Record `seq`'s bytes: 0..300 of them, following from `seq` (made once).
fn payload(seq: u64) -> &'static [u8] {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        (0..=RECORDS + 1)
            .map(|seq| {
                let len = (mix(seq) % 300) as usize;
                (0..len)
                    .map(|i| (mix((seq << 16) | (i as u64 / 8)) >> (8 * (i % 8))) as u8)
                    .collect()
            })
            .collect()
    });
    &all[seq as usize]
}

const RECORDS: u64 = 200;
const DATA_START: u64 = 4096;
const CASES: u64 = 10_000;

fn cases() -> u64 {
    std::env::var("LOG_DAMAGE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

/// The model: the closed log's bytes and each record's span `[offset, end)` (frame,
/// payload and padding), index `seq - 1`.
struct Model {
    bytes: Vec<u8>,
    spans: Vec<(u64, u64)>,
}

impl Model {
    fn build(path: &Path) -> Model {
        let log = Log::open(path).unwrap();
        let mut spans = Vec::new();
        let mut at = DATA_START;
        for seq in 1..=RECORDS {
            let p = payload(seq);
            assert_eq!(log.append(p).unwrap(), seq);
            let size = (16 + p.len()).next_multiple_of(8) as u64;
            spans.push((at, at + size));
            at += size;
        }
        assert_eq!(log.stats().unwrap().used_bytes, at - DATA_START);
        // Damage to records at rest: flushed, so the header's durable end covers them.
        // (Zeros past the durable end are what a power cut leaves of a write in flight:
        // a torn write, cut; `store_power` tests those.)
        log.sync().unwrap();
        drop(log);
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() as u64 > at + 4096, "room past the records");
        Model { bytes, spans }
    }

    fn data_end(&self) -> u64 {
        self.spans.last().unwrap().1
    }
}

#[derive(Debug)]
#[allow(dead_code)] // The fields are read through `Debug`, to name a failing case.
enum Harm {
    Flip(Vec<u64>),
    Zero(u64, u64),
    Garble(u64, u64),
    Cut(u64),
}

/// What was done to the file, and the byte ranges it may have changed.
struct Damage {
    harm: Harm,
    ranges: Vec<(u64, u64)>,
}

impl Damage {
    fn touches(&self, lo: u64, hi: u64) -> bool {
        self.ranges.iter().any(|&(a, b)| a < hi && lo < b)
    }

    /// The first damaged byte at or past the records' start.
    fn first_in_data(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(a, b)| {
                if b > DATA_START {
                    a.max(DATA_START)
                } else {
                    u64::MAX
                }
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Whether the open must refuse the header: the fixed part or the current meta slot
    /// changed, or the file ends inside the header.
    fn may_refuse_header(&self) -> bool {
        self.touches(0, 24)
            || self.touches(64, 96)
            || matches!(self.harm, Harm::Cut(l) if l < DATA_START)
    }
}

/// An offset: mostly in the header or the records (or just past them), else anywhere.
fn offset(rng: &mut Rng, model: &Model) -> u64 {
    let len = model.bytes.len() as u64;
    match rng.next() % 10 {
        0 => rng.range(0, 256),
        1..=6 => rng.range(DATA_START, model.data_end() + 32),
        _ => rng.range(0, len),
    }
}

fn damage(rng: &mut Rng, model: &Model, bytes: &mut Vec<u8>) -> Damage {
    let len = model.bytes.len() as u64;
    match rng.next() % 4 {
        0 => {
            let n = 1 + rng.next() % 4;
            let mut at = Vec::new();
            for _ in 0..n {
                let o = offset(rng, model);
                bytes[o as usize] ^= 1 << (rng.next() % 8);
                at.push(o);
            }
            let ranges = at.iter().map(|&o| (o, o + 1)).collect();
            Damage {
                harm: Harm::Flip(at),
                ranges,
            }
        }
        k @ (1 | 2) => {
            let lo = offset(rng, model);
            let hi = (lo + 1 + rng.next() % 300).min(len);
            for b in &mut bytes[lo as usize..hi as usize] {
                *b = if k == 1 { 0 } else { rng.next() as u8 };
            }
            let harm = if k == 1 {
                Harm::Zero(lo, hi)
            } else {
                Harm::Garble(lo, hi)
            };
            Damage {
                harm,
                ranges: vec![(lo, hi)],
            }
        }
        _ => {
            let cut = match rng.next() % 8 {
                0 => rng.range(0, DATA_START + 64),
                _ => rng.range(DATA_START, model.data_end() + 64),
            };
            bytes.truncate(cut as usize);
            Damage {
                harm: Harm::Cut(cut),
                ranges: vec![(cut, len)],
            }
        }
    }
}

/// Make the file at `path` hold `bytes`: overwritten in place and cut to length, not
/// truncated to zero first (ext4 flushes a file rewritten that way when it is closed).
fn rewrite(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
}

/// Says which case failed when a check in it panics.
struct Context(String);

impl Drop for Context {
    fn drop(&mut self) {
        if std::thread::panicking() {
            common::note(&format!("failing case: {}", self.0));
        }
    }
}

#[derive(Default)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, what: impl Into<String>) {
        *self.0.entry(what.into()).or_default() += 1;
    }
}

/// Every record `log` returns, through `iter` and `get`, is the model's; returns the
/// numbers it holds and the errors met (kinds).
fn read_all(log: &ReadOnlyLog, allowed: &[ErrorKind], ctx: &str) -> (Vec<u64>, Vec<ErrorKind>) {
    let mut held = Vec::new();
    let mut errors = Vec::new();
    let mut check = |r: mmkit::Result<(u64, Vec<u8>)>| match r {
        Ok((seq, bytes)) => {
            assert!(
                (1..=RECORDS + 1).contains(&seq) && bytes == payload(seq),
                "{ctx}: record {seq} is not the one written"
            );
            Some(seq)
        }
        Err(e) => {
            assert!(allowed.contains(&e.kind()), "{ctx}: {e}");
            errors.push(e.kind());
            None
        }
    };
    let mut iter_failed = false;
    for e in log.iter() {
        match check(e.and_then(|e| Ok((e.seq(), e.read()?)))) {
            Some(seq) => held.push(seq),
            None => iter_failed = true,
        }
    }
    assert!(
        held.windows(2).all(|w| w[0] < w[1]),
        "{ctx}: iter out of order: {held:?}"
    );
    // Every third number, from a different first one each time (`iter` read them all);
    // past a failed iteration, `get` walks from the damage each time: fewer still.
    let step = if iter_failed { 7 } else { 3 };
    let first = 1 + held.len() % step;
    for seq in (first..=RECORDS as usize + 1)
        .step_by(step)
        .map(|s| s as u64)
    {
        let by_iter = held.binary_search(&seq).is_ok();
        let by_get = check(log.get(seq).map(|b| (seq, b))).is_some();
        // An iterator stops at its first error; `get` may find records after it.
        assert!(
            by_get == by_iter || (by_get && iter_failed),
            "{ctx}: get({seq}) and iter disagree"
        );
    }
    (held, errors)
}

#[test]
#[cfg_attr(miri, ignore)]
fn ten_thousand_damaged_logs_never_return_a_bad_record_nor_lose_a_good_one() {
    // Ten thousand writer opens: a child forked or spawned meanwhile would hold one's lock.
    let _serial = common::serial::forks();
    let dir = tempfile::tempdir().unwrap();
    let model = Model::build(&dir.path().join("model"));
    let path = dir.path().join("case");
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    let mut per_policy = [std::time::Duration::ZERO; 4];
    let mut case_started = started;
    for case in 0..cases() {
        if case > 0 {
            per_policy[(case as usize - 1) % 4] += case_started.elapsed();
        }
        case_started = std::time::Instant::now();
        let mut bytes = model.bytes.clone();
        let d = damage(&mut rng, &model, &mut bytes);
        rewrite(&path, &bytes);
        let policy = case % 4;
        let ctx = format!("case {case}, policy {policy}, {:?}", d.harm);
        let _ctx = Context(ctx.clone());
        let first_bad = d.first_in_data();
        let kept_before = model
            .spans
            .iter()
            .enumerate()
            .filter(|(_, &(_, end))| end <= first_bad)
            .map(|(i, _)| i as u64 + 1);
        if policy == 0 {
            read_only_case(&path, &model, &d, &ctx, &mut tally);
            continue;
        }
        let recovery =
            [Recovery::Strict, Recovery::Truncate, Recovery::Salvage][policy as usize - 1];
        let name = ["strict", "truncate", "salvage"][policy as usize - 1];
        let log = match LogOptions::new().recovery(recovery).open(&path) {
            Ok(log) => log,
            Err(e) => {
                match e.kind() {
                    ErrorKind::Format => assert!(d.may_refuse_header(), "{ctx}: {e}"),
                    ErrorKind::Corrupt => assert!(
                        recovery == Recovery::Strict && first_bad != u64::MAX,
                        "{ctx}: {e}"
                    ),
                    _ => panic!("{ctx}: an unexpected error: {e}"),
                }
                tally.add(format!("{name}: refused ({:?})", e.kind()));
                continue;
            }
        };
        let report = log.recovery_report().clone();
        // Recovered: no read fails any more.
        let (held, errors) = read_all(&log, &[ErrorKind::NotFound], &ctx);
        assert!(
            errors.iter().all(|&k| k == ErrorKind::NotFound),
            "{ctx}: {errors:?}"
        );
        for seq in kept_before {
            assert!(
                held.binary_search(&seq).is_ok(),
                "{ctx}: record {seq} lies before the damage and was lost ({report})"
            );
        }
        match recovery {
            Recovery::Salvage => {
                for (i, &(lo, hi)) in model.spans.iter().enumerate() {
                    let seq = i as u64 + 1;
                    if !d.touches(lo, hi) {
                        assert!(
                            held.binary_search(&seq).is_ok(),
                            "{ctx}: record {seq} at {lo}..{hi} is untouched and was not \
                             salvaged ({report})"
                        );
                    }
                }
            }
            _ => {
                // Strict and Truncate keep a prefix: 1..=n, nothing after.
                let n = held.len() as u64;
                assert!(held.iter().copied().eq(1..=n), "{ctx}: {held:?}");
                assert_eq!(log.last().unwrap().unwrap_or(0), n, "{ctx}");
            }
        }
        let outcome = if !report.holes.is_empty() {
            "holes skipped"
        } else if report.dropped_records > 0 {
            "records dropped after damage"
        } else if report.cut.is_some() {
            "torn tail cut"
        } else {
            "opened clean"
        };
        tally.add(format!("{name}: {outcome}"));
        // The recovered log takes appends, checks intact, and (every third case, for
        // time) reopens clean.
        let next = log.last().unwrap().map_or(1, |l| l + 1);
        assert_eq!(log.append(payload(next)).unwrap(), next, "{ctx}");
        assert!(log.get(next).unwrap() == payload(next), "{ctx}");
        let check = log.check().unwrap();
        assert!(
            check.is_intact() && check.torn_tail.is_none(),
            "{ctx}: after recovery ({report}) and an append: {check:?}"
        );
        drop(log);
        if case % 3 != 0 {
            continue;
        }
        let again = LogOptions::new()
            .open(&path)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(
            again.recovery_report().is_clean(),
            "{ctx}: reopened after recovery: {}",
            again.recovery_report()
        );
        assert!(again.get(next).unwrap() == payload(next), "{ctx}");
    }
    let took = started.elapsed();
    note(&format!(
        "log damage: {CASES} cases in {took:.1?} (flips, zeroed/garbled ranges, cuts; \
         read-only, strict, truncate, salvage took {per_policy:.1?})"
    ));
    for (what, n) in &tally.0 {
        note(&format!("  {what}: {n}"));
    }
}

fn read_only_case(path: &Path, model: &Model, d: &Damage, ctx: &str, tally: &mut Tally) {
    let log = match LogOptions::new().open_read_only(path) {
        Ok(log) => log,
        Err(e) => {
            assert!(
                e.kind() == ErrorKind::Format && d.may_refuse_header(),
                "{ctx}: {e}"
            );
            tally.add("read-only: refused (Format)");
            return;
        }
    };
    let check = log.check().unwrap_or_else(|e| panic!("{ctx}: check: {e}"));
    // A reader trusts the header's committed end: after a cut it may find the file
    // shorter than that (Truncated), and damage below it is Corrupt.
    let (held, errors) = read_all(
        &log,
        &[
            ErrorKind::Corrupt,
            ErrorKind::NotFound,
            ErrorKind::Truncated,
        ],
        ctx,
    );
    // A reader takes the committed end and last number from the header as they are (a
    // writer rewrites them on open): with those damaged, it may see fewer records.
    let first_bad = if d.touches(128, 144) {
        0
    } else {
        d.first_in_data()
    };
    for (i, &(_, end)) in model.spans.iter().enumerate() {
        let seq = i as u64 + 1;
        if end <= first_bad {
            assert!(held.contains(&seq), "{ctx}: record {seq} unreadable");
        }
    }
    let untouched = model
        .spans
        .iter()
        .filter(|&&(lo, hi)| !d.touches(lo, hi))
        .count() as u64;
    assert!(
        check.records >= untouched,
        "{ctx}: check counts {} intact records, {untouched} are untouched: {check:?}",
        check.records
    );
    if !check.is_intact() || check.torn_tail.is_some() {
        assert!(first_bad != u64::MAX, "{ctx}: damage reported: {check:?}");
    }
    let outcome = match (check.is_intact(), check.torn_tail.is_some()) {
        (false, _) => "check finds damage",
        (true, true) => "check finds a torn tail",
        (true, false) => "check finds it intact",
    };
    tally.add(format!("read-only: {outcome}"));
    for k in errors {
        tally.add(format!("read-only: a read fails ({k:?})"));
    }
}
