//! `store::Log` under crashes and contention: appenders killed with SIGKILL at random
//! moments (single records, batches, `Durability::Sync`), checked on reopen against what
//! they acknowledged; a follower in another process; appenders and readers racing on one
//! handle.
//!
//! Every record's bytes follow from its sequence number (length and content), so any
//! record read back is checked against the one that must be there.

use mmkit_testkit as common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use mmkit::helpers::XorShift;
use mmkit::process::Exit;
use mmkit::store::{Durability, Log, LogOptions};

use common::{note, spawn};

/// Taken by every test here: a forked child gets a copy of every descriptor open in the
/// process at the fork, so it would hold another test's writer lock (its next open is
/// `Busy`) (every test of this binary takes the one lock, `common::serial::forks`).
fn no_forks() -> MutexGuard<'static, ()> {
    common::serial::forks()
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Record `seq`'s bytes: 0..600 of them, all following from `seq`.
fn payload(seq: u64) -> Vec<u8> {
    let len = (mix(seq) % 600) as usize;
    let mut s = mix(seq ^ 0x5555_aaaa);
    (0..len)
        .map(|i| {
            if i % 8 == 0 {
                s = mix(s);
            }
            (s >> (8 * (i % 8))) as u8
        })
        .collect()
}

/// The size of the batch that starts at `seq` (1..=8): the same for every child that
/// starts a batch there, so the parent knows where each batch ends.
fn batch_len(seq: u64) -> u64 {
    1 + mix(seq ^ 0xba7c) % 8
}

/// FNV-1a, for a follower to report what it read.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

const OPENED: u64 = u64::MAX;
const CHILD_OPEN: i32 = 11;
const CHILD_SEQ: i32 = 12;
const CHILD_APPEND: i32 = 13;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Single,
    Batch,
}

/// The child: open the log, say so, then append records (or batches) in a loop and
/// acknowledge each range `[start, end)` once `append` returned.
fn appender(path: &Path, mut acks: UnixStream, mode: Mode, durability: Durability) -> i32 {
    let Ok(log) = LogOptions::new().durability(durability).open(path) else {
        return CHILD_OPEN;
    };
    let Ok(last) = log.last() else {
        return CHILD_OPEN;
    };
    let mut next = last.map_or(1, |l| l + 1);
    let mut msg = [0u8; 16];
    msg[..8].copy_from_slice(&OPENED.to_le_bytes());
    if acks.write_all(&msg).is_err() {
        return 0;
    }
    loop {
        let n = match mode {
            Mode::Single => 1,
            Mode::Batch => batch_len(next),
        };
        let got = match mode {
            Mode::Single => log.append(&payload(next)).map(|s| s..s + 1),
            Mode::Batch => {
                let recs: Vec<Vec<u8>> = (next..next + n).map(payload).collect();
                log.append_batch(&recs)
            }
        };
        match got {
            Ok(r) if r == (next..next + n) => {}
            Ok(_) => return CHILD_SEQ,
            Err(_) => return CHILD_APPEND,
        }
        msg[..8].copy_from_slice(&next.to_le_bytes());
        msg[8..].copy_from_slice(&(next + n).to_le_bytes());
        if acks.write_all(&msg).is_err() {
            return 0;
        }
        next += n;
    }
}

#[derive(Default)]
struct Tally {
    kills: u32,
    /// Kills that landed while the child was still opening the log.
    in_open: u32,
    acked_records: u64,
    torn_tails: u32,
    unacked_survived: u64,
    logs: u32,
}

/// Kill `kills` appenders at random moments; after each, reopen the log as a writer and
/// hold it to what was acknowledged. A fresh log every `rotate` kills keeps each
/// reopen's scan short (and has children create logs too).
fn kill_loop(mode: Mode, durability: Durability, kills: u32, rotate: u32, seed: u64) -> Tally {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift::new(seed);
    let mut t = Tally::default();
    // Per log: the last acknowledged seq, and the last seq verified byte for byte.
    let (mut acked, mut verified) = (0u64, 0u64);
    let mut path = dir.path().join("log-0");
    for kill in 0..kills {
        if kill % rotate == 0 {
            path = dir.path().join(format!("log-{}", kill / rotate));
            (acked, verified) = (0, 0);
            t.logs += 1;
        }
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let child = spawn(|| appender(&path, theirs, mode, durability));
        // One kill in eight lands anywhere, opening included (recovery's own writes);
        // the others once the log is open, 0-3 ms into the appends.
        let wait_open = rng.below(8) != 0;
        let mut head = [0u8; 16];
        if wait_open {
            ours.read_exact(&mut head)
                .expect("the appender opens the log");
            assert_eq!(u64::from_le_bytes(head[..8].try_into().unwrap()), OPENED);
        }
        let delay = match rng.below(6) {
            0 => 0,
            _ => rng.below(3000) as u64,
        };
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        child.signal(libc::SIGKILL).unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(
            exit,
            Exit::Signal(libc::SIGKILL),
            "kill {kill}: the appender {}",
            exit.describe()
        );
        t.kills += 1;
        let mut bytes = Vec::new();
        ours.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() % 16, 0, "kill {kill}: a torn acknowledgement");
        let mut msgs = bytes.chunks(16).map(|m| {
            (
                u64::from_le_bytes(m[..8].try_into().unwrap()),
                u64::from_le_bytes(m[8..].try_into().unwrap()),
            )
        });
        if !wait_open {
            match msgs.next() {
                Some((OPENED, _)) => {}
                None => t.in_open += 1,
                Some(m) => panic!("kill {kill}: {m:?} before the open"),
            }
        }
        for (start, end) in msgs {
            // Acknowledgements pick up where the last surviving record left off.
            assert!(
                start == acked + 1 && end > start,
                "kill {kill}: acknowledged {start}..{end} after {acked}"
            );
            if mode == Mode::Batch {
                assert_eq!(end - start, batch_len(start));
            }
            t.acked_records += end - start;
            acked = end - 1;
        }

        let log = LogOptions::new().durability(durability).open(&path);
        let log = match log {
            Ok(log) => log,
            Err(e) if acked == 0 && kill % rotate == 0 => {
                // Killed while creating the log: allowed only if nothing was written.
                panic!("kill {kill}: a log killed while being created does not open: {e}")
            }
            Err(e) => panic!("kill {kill}: reopening fails: {e}"),
        };
        let report = log.recovery_report().clone();
        assert!(
            report.holes.is_empty() && report.dropped_records == 0,
            "kill {kill}: {report}"
        );
        if report.cut.is_some() {
            t.torn_tails += 1;
        }
        let last = log.last().unwrap().unwrap_or(0);
        assert!(
            last >= acked,
            "kill {kill}: acknowledged up to {acked}, the log ends at {last} ({report})"
        );
        // Acknowledgements count from the records the last reopen saw, so a record
        // that survived unacknowledged is acknowledged by nobody; count them here.
        t.unacked_survived += last - acked;
        if mode == Mode::Batch && last > 0 {
            // The log ends at a batch boundary: the batch in flight is whole or absent.
            let mut s = 1;
            while s <= last {
                s += batch_len(s);
            }
            assert_eq!(
                s,
                last + 1,
                "kill {kill}: the log ends at {last}, inside a batch"
            );
        }
        // Byte for byte: what is new since the last reopen, a few records before it,
        // and one older record at random.
        let from = verified.saturating_sub(3).max(1);
        let mut expect = from;
        for e in log.iter_from(from) {
            let e = e.unwrap_or_else(|e| panic!("kill {kill}: record {expect}: {e}"));
            assert_eq!(e.seq(), expect, "kill {kill}: a gap");
            assert!(
                e.read().unwrap() == payload(expect),
                "kill {kill}: record {expect} differs"
            );
            expect += 1;
        }
        assert_eq!(expect, last + 1, "kill {kill}: the iterator stops early");
        if last > 0 {
            let s = 1 + rng.below(last as usize) as u64;
            assert!(log.get(s).unwrap() == payload(s), "kill {kill}: record {s}");
            assert_eq!(log.first().unwrap(), Some(1));
        }
        assert_eq!(
            log.get(last + 1).unwrap_err().kind(),
            mmkit::ErrorKind::NotFound,
            "kill {kill}: a record past the last"
        );
        let check = log.check().unwrap();
        assert!(check.is_intact(), "kill {kill}: {:?}", check.damage);
        assert!(check.torn_tail.is_none(), "kill {kill}: {check:?}");
        assert_eq!(check.records, last, "kill {kill}: {check:?}");
        assert_eq!(check.last, (last > 0).then_some(last));
        drop(log);
        acked = last;
        verified = last;
    }
    t
}

fn report(what: &str, t: &Tally, took: Duration) {
    note(&format!(
        "{what}: {} kills in {took:.1?} over {} logs, {} killed while opening, {} records \
         acknowledged, {} torn tails cut on reopen, {} unacknowledged records survived whole",
        t.kills, t.logs, t.in_open, t.acked_records, t.torn_tails, t.unacked_survived
    ));
}

#[test]
#[cfg_attr(miri, ignore)]
fn appenders_killed_1000_times_lose_nothing_acknowledged() {
    let _serial = no_forks();
    let started = Instant::now();
    let t = kill_loop(
        Mode::Single,
        Durability::Process,
        1000,
        20,
        0x1234_5678_9abc,
    );
    report("log kill -9 (records)", &t, started.elapsed());
    assert!(
        t.acked_records > u64::from(t.kills),
        "the appenders hardly ran"
    );
    assert!(t.torn_tails > 0, "no kill tore an append");
}

#[test]
#[cfg_attr(miri, ignore)]
fn batches_killed_at_random_moments_are_all_or_nothing() {
    let _serial = no_forks();
    let started = Instant::now();
    let t = kill_loop(Mode::Batch, Durability::Process, 300, 30, 0xbadc_0ffe_e0dd);
    report("log kill -9 (batches of 1-8)", &t, started.elapsed());
    assert!(
        t.acked_records > u64::from(t.kills),
        "the appenders hardly ran"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn sync_appenders_killed_lose_nothing_acknowledged() {
    let _serial = no_forks();
    let started = Instant::now();
    let t = kill_loop(Mode::Single, Durability::Sync, 100, 25, 0x5eed_5eed);
    report("log kill -9 (Durability::Sync)", &t, started.elapsed());
    assert!(t.acked_records > 0, "the appenders hardly ran");
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass; CLOCK_MONOTONIC is system-wide,
    // so a parent's and a child's readings compare.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

const FOLLOWED: u64 = 400;

/// The follower child: one read-only handle, `tail(1)`, each record reported as
/// (seq, length, FNV of its bytes, when it arrived).
fn follower(path: &Path, mut out: UnixStream) -> i32 {
    let Ok(log) = LogOptions::new().open_read_only(path) else {
        return CHILD_OPEN;
    };
    let mut tail = log.tail(1);
    if out.write_all(&[0u8; 32]).is_err() {
        return 0;
    }
    for _ in 0..FOLLOWED {
        let e = match tail.next_timeout(Duration::from_secs(10)) {
            Ok(Some(e)) => e,
            Ok(None) => return 3,
            Err(_) => return 4,
        };
        let Ok(bytes) = e.read() else {
            return 5;
        };
        let at = now_ns();
        let mut msg = [0u8; 32];
        msg[..8].copy_from_slice(&e.seq().to_le_bytes());
        msg[8..16].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        msg[16..24].copy_from_slice(&fnv(&bytes).to_le_bytes());
        msg[24..].copy_from_slice(&at.to_le_bytes());
        if out.write_all(&msg).is_err() {
            return 6;
        }
    }
    // Nothing more comes.
    match tail.next_timeout(Duration::from_millis(50)) {
        Ok(None) => 0,
        _ => 7,
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_follower_in_another_process_sees_every_record_in_order() {
    let _serial = no_forks();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    drop(Log::open(&path).unwrap()); // create it; the child opens it read-only
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let child = spawn(|| follower(&path, theirs));
    let mut msg = [0u8; 32];
    ours.read_exact(&mut msg)
        .expect("the follower opens the log");
    // Opened after the fork: the child has no copy of the writer's descriptor.
    let log = Log::open(&path).unwrap();
    let mut rng = XorShift::new(77);
    let mut sent = Vec::new();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut msg = [0u8; 32];
        while ours.read_exact(&mut msg).is_ok() {
            let w = |i: usize| u64::from_le_bytes(msg[i * 8..i * 8 + 8].try_into().unwrap());
            got.push((w(0), w(1), w(2), w(3)));
        }
        got
    });
    for seq in 1..=FOLLOWED {
        // Mostly a pause first, so the follower is asleep on the futex when it lands.
        if rng.below(4) != 0 {
            std::thread::sleep(Duration::from_micros(200 + rng.below(1500) as u64));
        }
        let at = now_ns();
        assert_eq!(log.append(&payload(seq)).unwrap(), seq);
        sent.push(at);
    }
    let exit = child.wait().unwrap();
    assert_eq!(exit, Exit::Code(0), "the follower {}", exit.describe());
    let got = reader.join().unwrap();
    assert_eq!(got.len() as u64, FOLLOWED, "the follower saw {}", got.len());
    let mut lat: Vec<u64> = Vec::new();
    for (i, &(seq, len, sum, at)) in got.iter().enumerate() {
        let want = payload(i as u64 + 1);
        assert_eq!(seq, i as u64 + 1, "out of order");
        assert_eq!((len, sum), (want.len() as u64, fnv(&want)), "record {seq}");
        lat.push(at.saturating_sub(sent[i]));
    }
    lat.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    note(&format!(
        "log follower in another process: {FOLLOWED} records in order, wake latency (append \
         call -> follower has the bytes) median {:.0} us, p90 {:.0} us, max {:.0} us",
        us(lat[lat.len() / 2]),
        us(lat[lat.len() * 9 / 10]),
        us(lat[lat.len() - 1])
    ));
}

/// A record that checks itself: `[writer, i (u32), then bytes following from both]`.
fn keyed(writer: u8, i: u32) -> Vec<u8> {
    let mut v = vec![writer];
    v.extend_from_slice(&i.to_le_bytes());
    let body = payload(u64::from(writer) << 32 | u64::from(i));
    v.extend_from_slice(&body);
    v
}

fn unkey(bytes: &[u8]) -> Option<(u8, u32)> {
    let (&w, rest) = bytes.split_first()?;
    let i = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    (keyed(w, i) == bytes).then_some((w, i))
}

#[test]
#[cfg_attr(miri, ignore)]
fn appenders_and_readers_race_on_one_handle() {
    let _serial = no_forks();
    const WRITERS: u8 = 4;
    const EACH: u32 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("log")).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                let mut rng = XorShift::new(u64::from(w) + 1);
                while i < EACH {
                    let n = (1 + rng.below(4) as u32).min(EACH - i);
                    if n == 1 {
                        log.append(&keyed(w, i)).unwrap();
                    } else {
                        let recs: Vec<_> = (i..i + n).map(|k| keyed(w, k)).collect();
                        let r = log.append_batch(&recs).unwrap();
                        assert_eq!(r.end - r.start, u64::from(n));
                    }
                    i += n;
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (log, done, passes) = (log.clone(), done.clone(), passes.clone());
            std::thread::spawn(move || {
                let mut rng = XorShift::new(100 + r);
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let last = log.last().unwrap().unwrap_or(0);
                    // Every record up to the last committed one: no gap, no bad checksum,
                    // each writer's records in its order.
                    let mut seen = [None::<u32>; WRITERS as usize];
                    let mut expect = 1;
                    for e in log.iter() {
                        let e = e.unwrap_or_else(|e| panic!("reader {r}: record {expect}: {e}"));
                        assert_eq!(e.seq(), expect, "reader {r}: a gap");
                        let bytes = e.read().unwrap();
                        let (w, i) = unkey(&bytes)
                            .unwrap_or_else(|| panic!("reader {r}: record {expect} garbled"));
                        let prev = seen[w as usize].replace(i);
                        assert_eq!(prev.map_or(0, |p| p + 1), i, "writer {w} out of order");
                        expect += 1;
                    }
                    assert!(
                        expect > last,
                        "reader {r}: iter stopped at {expect} < {last}"
                    );
                    for _ in 0..50 {
                        let last = log.last().unwrap().unwrap_or(0);
                        if last > 0 {
                            let s = 1 + rng.below(last as usize) as u64;
                            let bytes = log.get(s).unwrap();
                            assert!(unkey(&bytes).is_some(), "reader {r}: get({s}) garbled");
                        }
                    }
                    // A check while appends run: what they are writing is not damage.
                    for _ in 0..5 {
                        let check = log.check().unwrap();
                        assert!(check.is_intact(), "reader {r}: {check:?}");
                    }
                    passes.fetch_add(1, Ordering::Relaxed);
                    if finished {
                        return;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    let total = u64::from(WRITERS) * u64::from(EACH);
    assert_eq!(log.last().unwrap(), Some(total));
    let mut count = vec![0u32; WRITERS as usize];
    for e in log.iter() {
        let (w, i) = unkey(&e.unwrap().read().unwrap()).unwrap();
        assert_eq!(count[w as usize], i);
        count[w as usize] += 1;
    }
    assert!(count.iter().all(|&c| c == EACH));
    assert!(log.check().unwrap().is_intact());
    note(&format!(
        "log race: {total} records from {WRITERS} threads, {} full read passes by 2 readers",
        passes.load(Ordering::Relaxed)
    ));
}

/// What `create` leaves when killed part way: an empty file (before its one-page write of
/// the header), or the header without the records' first space. Both open as a new log;
/// a file of zeros (what no mmkit ever leaves) is refused and left as it is.
#[test]
#[cfg_attr(miri, ignore)]
fn a_log_killed_while_being_created_opens_as_a_new_log() {
    use std::os::unix::fs::FileExt;
    let _serial = no_forks();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    drop(Log::open(&model).unwrap());
    let done = std::fs::read(&model).unwrap();
    let states: [(&str, Vec<u8>); 2] = [
        ("nothing written", Vec::new()),
        ("header written", done[..4096].to_vec()),
    ];
    for (what, bytes) in states {
        let path = dir.path().join(what.replace(' ', "-"));
        std::fs::write(&path, &bytes).unwrap();
        let log = Log::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(log.recovery_report().is_clean(), "{what}");
        assert_eq!(log.append(b"first").unwrap(), 1, "{what}");
        drop(log);
        let log = LogOptions::new().open_read_only(&path).unwrap();
        assert_eq!(log.get(1).unwrap(), b"first", "{what}");
    }
    for (what, bytes) in [
        ("zeros", vec![0u8; done.len()]),
        ("a page of zeros", vec![0u8; 4096]),
    ] {
        let path = dir.path().join(what.replace(' ', "-"));
        std::fs::write(&path, &bytes).unwrap();
        let err = Log::open(&path).unwrap_err();
        assert_eq!(err.kind(), mmkit::ErrorKind::Format, "{what}: {err}");
        assert!(std::fs::read(&path).unwrap() == bytes, "{what}: changed");
    }
    let f = std::fs::File::open(&model).unwrap();
    let mut magic = [0u8; 8];
    f.read_exact_at(&mut magic, 0).unwrap();
    assert_eq!(&magic, b"MMKITLOG");
}
