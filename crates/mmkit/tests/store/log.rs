//! `store::Log` through real files: round trips, recovery from a torn tail and from
//! damage in the middle (each policy), retention, bad input, following, group commit.

use common::flip;
use mmkit_testkit as common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mmkit::store::{Durability, Log, LogOptions, Recovery};
use mmkit::ErrorKind;

/// Open the log at `path` again: recovery must find nothing to do.
fn reopen_clean(path: &Path) -> Log {
    let log = Log::open(path).unwrap();
    let report = log.recovery_report();
    assert!(report.is_clean(), "{report}");
    log
}

/// A new log in a directory of its own (kept as long as the directory handle lives).
fn new_log() -> (tempfile::TempDir, std::path::PathBuf, Log) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = Log::open(&path).unwrap();
    (dir, path, log)
}

fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("record {i} {}", "x".repeat(i % 37)).into_bytes())
        .collect()
}

fn fill(path: &Path, recs: &[Vec<u8>]) {
    let log = Log::open(path).unwrap();
    for r in recs {
        log.append(r).unwrap();
    }
}

fn all(log: &Log) -> Vec<Vec<u8>> {
    log.iter().map(|e| e.unwrap().read().unwrap()).collect()
}

/// The file offset of record `seq` (1-based) in a log written by `fill` of `recs`.
fn offset_of(recs: &[Vec<u8>], seq: u64) -> u64 {
    4096 + recs[..seq as usize - 1]
        .iter()
        .map(|r| (16 + r.len()).next_multiple_of(8) as u64)
        .sum::<u64>()
}

#[test]
fn records_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let recs = records(500);
    fill(&path, &recs);
    let log = Log::open(&path).unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{}",
        log.recovery_report()
    );
    assert_eq!(log.recovery_report().records, 500);
    assert_eq!(all(&log), recs);
    assert_eq!(
        (
            log.first().unwrap(),
            log.last().unwrap(),
            log.len().unwrap()
        ),
        (Some(1), Some(500), 500)
    );
    assert_eq!(log.get(321).unwrap(), recs[320]);
    let from: Vec<_> = log.iter_from(499).map(|e| e.unwrap().seq()).collect();
    assert_eq!(from, [499, 500]);
    assert_eq!(log.get(501).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(log.get(0).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(log.append(b"").unwrap(), 501);
    assert_eq!(log.get(501).unwrap(), b"");
    let r = log.append_batch(&[b"a".as_slice(), b"bb"]).unwrap();
    assert_eq!(r, 502..504);
    assert!(log.check().unwrap().is_intact());
}

#[test]
fn a_log_grows_past_its_first_reservation_and_its_first_mapping() {
    let (_dir, path, log) = new_log();
    let reader = LogOptions::new().open_read_only(&path).unwrap();
    let big = vec![7u8; 1 << 20];
    for _ in 0..300 {
        log.append(&big).unwrap(); // 300 MiB: past the 256 MiB first mapping
    }
    assert_eq!(log.get(300).unwrap(), big);
    assert_eq!(log.get(1).unwrap(), big);
    // A reader opened when the file was small follows it past its first mapping.
    assert_eq!(reader.get(300).unwrap(), big);
    assert_eq!(reader.iter().count(), 300);
    drop(reader);
    drop(log);
    let log = Log::open(&path).unwrap();
    assert_eq!(log.recovery_report().records, 300);
}

#[test]
fn a_torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let recs = records(20);
    fill(&path, &recs);
    // A crash in the middle of record 21: its frame and half a payload.
    let end = offset_of(&recs, 21);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut frame = [0u8; 16];
    frame[0..4].copy_from_slice(&100u32.to_le_bytes());
    frame[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    frame[8..16].copy_from_slice(&21u64.to_le_bytes());
    f.write_all_at(&frame, end).unwrap();
    f.write_all_at(&[9u8; 40], end + 16).unwrap();
    let log = Log::open(&path).unwrap();
    let report = log.recovery_report().clone();
    let cut = report.cut.clone().expect("a cut");
    assert_eq!(
        (cut.offset, cut.bytes, cut.first_lost, cut.next_intact),
        (end, 56, 21, None)
    );
    assert_eq!(report.records, 20);
    assert!(report.to_string().contains("torn tail"), "{report}");
    assert_eq!(all(&log), recs);
    assert_eq!(log.append(b"next").unwrap(), 21);
    drop(log);
    let log = Log::open(&path).unwrap();
    assert!(log.recovery_report().is_clean());
    assert_eq!(log.get(21).unwrap(), b"next");
}

#[test]
fn damage_in_the_middle_follows_the_recovery_policy() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(100);
    let setup = |name: &str| {
        let path = dir.path().join(name);
        fill(&path, &recs);
        flip(&path, offset_of(&recs, 40) + 18, 0x5a); // record 40's payload
        path
    };
    // Strict refuses, naming the range; nothing changes.
    let path = setup("strict");
    let before = std::fs::read(&path).unwrap();
    let err = Log::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("records 40..=40 lost"), "{err}");
    assert!(
        err.to_string().contains("60 intact records follow"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a refused open writes nothing"
    );
    // A reader still reads the records before the damage, and gets Corrupt at it.
    let reader = LogOptions::new().open_read_only(&path).unwrap();
    assert_eq!(reader.get(39).unwrap(), recs[38]);
    assert_eq!(reader.get(40).unwrap_err().kind(), ErrorKind::Corrupt);
    let check = reader.check().unwrap();
    assert_eq!(check.damage.len(), 1);
    assert_eq!(check.records, 99);

    // Truncate cuts at the damage and counts what it dropped.
    let path = setup("truncate");
    let log = LogOptions::new()
        .recovery(Recovery::Truncate)
        .open(&path)
        .unwrap();
    assert_eq!(log.recovery_report().dropped_records, 60);
    assert_eq!(log.last().unwrap(), Some(39));
    assert_eq!(log.append(b"new 40").unwrap(), 40);
    drop(log);
    let log = reopen_clean(&path);
    assert_eq!(log.get(40).unwrap(), b"new 40");
    assert_eq!(log.len().unwrap(), 40);

    // Salvage keeps everything after the hole, and the hole is marked for good.
    let path = setup("salvage");
    let log = LogOptions::new()
        .recovery(Recovery::Salvage)
        .open(&path)
        .unwrap();
    let report = log.recovery_report();
    assert_eq!(report.holes.len(), 1, "{report}");
    assert_eq!(
        (report.holes[0].first_lost, report.holes[0].next_intact),
        (40, Some(41))
    );
    assert_eq!(report.records, 99);
    assert_eq!(log.get(40).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(log.get(41).unwrap(), recs[40]);
    let seqs: Vec<u64> = log.iter().map(|e| e.unwrap().seq()).collect();
    assert_eq!(seqs.len(), 99);
    assert!(!seqs.contains(&40));
    assert_eq!(log.append(b"101").unwrap(), 101);
    drop(log);
    let log = reopen_clean(&path);
    assert!(log.check().unwrap().is_intact());
}

#[test]
fn truncate_before_drops_records_and_frees_their_pages() {
    let (_dir, path, log) = new_log();
    let rec = vec![1u8; 4000];
    for _ in 0..1000 {
        log.append(&rec).unwrap();
    }
    let before = log.stats().unwrap();
    let dropped = log.truncate_before(900).unwrap();
    assert!(dropped > 899 * 4000, "{dropped}");
    let after = log.stats().unwrap();
    assert!(
        after.allocated_bytes + 3_000_000 < before.allocated_bytes,
        "{before:?} {after:?}"
    );
    assert_eq!(log.first().unwrap(), Some(900));
    assert_eq!(log.get(899).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(log.get(900).unwrap(), rec);
    assert_eq!(log.iter().count(), 101);
    assert_eq!(
        log.truncate_before(2000).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    drop(log);
    let log = Log::open(&path).unwrap();
    assert_eq!(
        (log.first().unwrap(), log.last().unwrap()),
        (Some(900), Some(1000))
    );
    log.truncate_before(1001).unwrap();
    assert!(log.is_empty().unwrap());
    assert_eq!(log.append(b"again").unwrap(), 1001);
    drop(log);
    let log = Log::open(&path).unwrap();
    assert_eq!(all(&log), [b"again".to_vec()]);
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &Path, kind: ErrorKind, words: &str| {
        // Only regular files are read back (reading the FIFO would wait for a writer; a
        // /proc file changes by itself).
        let contents =
            |p: &Path| (p.is_file() && !p.starts_with("/proc")).then(|| std::fs::read(p).unwrap());
        let before = contents(path);
        let err = Log::open(path).unwrap_err();
        assert_eq!(err.kind(), kind, "{}: {err}", path.display());
        assert!(err.to_string().contains(words), "{err}");
        assert_eq!(contents(path), before, "{} changed", path.display());
    };
    let not_log = dir.path().join("text");
    std::fs::write(&not_log, vec![b'a'; 8192]).unwrap();
    check(&not_log, ErrorKind::Format, "bad magic");
    let path = dir.path().join("log");
    fill(&path, &records(3));
    let mut newer = std::fs::read(&path).unwrap();
    newer[8..12].copy_from_slice(&9u32.to_le_bytes());
    let crc = common::crc32c(&newer[0..20]);
    newer[20..24].copy_from_slice(&crc.to_le_bytes());
    let newer_path = dir.path().join("newer");
    std::fs::write(&newer_path, &newer).unwrap();
    check(&newer_path, ErrorKind::Format, "version 9");
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &newer[..100]).unwrap();
    check(&cut, ErrorKind::Format, "cut inside its header");
    check(
        Path::new("/proc/self/status"),
        ErrorKind::NotMappable,
        "/proc",
    );
    check(dir.path(), ErrorKind::NotMappable, "directory");
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    check(&fifo, ErrorKind::NotMappable, "pipe");
    // Read-only handles have no `append` (the type refuses it: see `ReadOnlyLog`'s
    // compile_fail doc test) and do not keep a writer out; a second writer is Busy.
    let _reader = LogOptions::new().open_read_only(&path).unwrap();
    let writer = Log::open(&path).unwrap();
    assert_eq!(Log::open(&path).unwrap_err().kind(), ErrorKind::Busy);
    drop(writer);
    assert_eq!(
        LogOptions::new()
            .open_read_only(dir.path().join("missing"))
            .unwrap_err()
            .errno(),
        Some(2)
    );
}

#[test]
fn a_follower_sees_records_as_they_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = Arc::new(Log::open(&path).unwrap());
    let reader = LogOptions::new().open_read_only(&path).unwrap();
    let mut tail = reader.tail(1);
    assert!(tail
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..200u32 {
                log.append(&i.to_le_bytes()).unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    for i in 0..200u32 {
        let e = tail
            .next_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a record in time");
        assert_eq!(e.seq(), i as u64 + 1);
        assert_eq!(e.read().unwrap(), i.to_le_bytes());
    }
    writer.join().unwrap();
}

#[test]
fn sync_appenders_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = Arc::new(
        LogOptions::new()
            .durability(Durability::Sync)
            .open(&path)
            .unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    log.append(&[t as u8, i as u8]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = log.stats().unwrap();
    assert_eq!(stats.appends, 400);
    assert!(stats.flushes >= 1 && stats.flushes <= 400, "{stats:?}");
    common::note(&format!(
        "group commit: {} flushes for 400 appends from 8 threads",
        stats.flushes
    ));
    assert_eq!(log.iter().count(), 400);
}
