//! `store::Log` when its file system fills up (an 8 MiB tmpfs, as root), and when another
//! process cuts its file under an open writer.
//!
//! A full disk is `NoSpace` from the append that needs space, with nothing written and
//! no signal; the handle stays usable, and appends go on once space is freed. A file cut
//! under the log is `Truncated` from every access that reaches past the cut, never a
//! SIGBUS.

use mmkit_testkit as common;

use std::path::Path;

use mmkit::store::{Durability, Log, LogOptions};
use mmkit::ErrorKind;

use common::{note, skip, SmallTmpfs};

/// Record `seq`'s bytes: `len` of them, following from `seq`.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131) as usize ^ i ^ (i >> 8)) as u8)
        .collect()
}

/// Every record `1..=last` reads back, through `get` and `iter`, and `check` finds the
/// log intact.
fn verify(log: &Log, len_of: &dyn Fn(u64) -> usize, last: u64, what: &str) {
    assert_eq!(log.last().unwrap(), Some(last), "{what}");
    let mut seq = 1;
    for e in log.iter() {
        let e = e.unwrap_or_else(|e| panic!("{what}: record {seq}: {e}"));
        assert_eq!(e.seq(), seq, "{what}");
        assert!(
            e.read().unwrap() == payload(seq, len_of(seq)),
            "{what}: record {seq}"
        );
        seq += 1;
    }
    assert_eq!(seq, last + 1, "{what}: iter stopped early");
    for s in [1, last / 2 + 1, last] {
        assert!(
            log.get(s).unwrap() == payload(s, len_of(s)),
            "{what}: get({s})"
        );
    }
    let check = log.check().unwrap();
    assert!(
        check.is_intact() && check.torn_tail.is_none() && check.records == last,
        "{what}: {check:?}"
    );
}

/// Fill an 8 MiB tmpfs with a log of `len`-byte records (after a filler of
/// `filler` bytes) until `NoSpace`; then free the filler and go on.
fn fills_up(what: &str, len: usize, filler: usize, durability: Durability) {
    let Some(fs) = SmallTmpfs::mount("8m") else {
        return skip("could not mount a tmpfs here");
    };
    let path = fs.path().join("log");
    let log = LogOptions::new()
        .durability(durability)
        .open(&path)
        .unwrap();
    let wrote = fs.fill_with("filler", filler);
    assert!(wrote > 0, "{what}: no room for the filler");
    let len_of = |_: u64| len;
    let mut last = 0;
    let err = loop {
        match log.append(&payload(last + 1, len)) {
            Ok(seq) => {
                assert_eq!(seq, last + 1, "{what}");
                last = seq;
            }
            Err(e) => break e,
        }
        assert!(last < 1_000_000, "{what}: the tmpfs never filled up");
    };
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{what}: {err}");
    assert!(last > 0, "{what}: not one record fit");
    let full_at = last;

    // The same handle reads everything acknowledged, and a retry fails the same way.
    verify(&log, &len_of, last, what);
    for _ in 0..3 {
        let again = log.append(&payload(last + 1, len)).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::NoSpace, "{what}: {again}");
    }
    let batch = [payload(last + 1, len), payload(last + 2, len)];
    assert_eq!(
        log.append_batch(&batch).unwrap_err().kind(),
        ErrorKind::NoSpace,
        "{what}"
    );
    assert_eq!(
        log.last().unwrap(),
        Some(last),
        "{what}: a failed append left a record"
    );
    verify(&log, &len_of, last, what);

    // Room again: the same handle appends on.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let more = if len > 64 << 10 { 4 } else { 200 };
    for _ in 0..more {
        assert_eq!(
            log.append(&payload(last + 1, len)).unwrap(),
            last + 1,
            "{what}"
        );
        last += 1;
    }
    log.sync().unwrap();
    verify(&log, &len_of, last, what);
    drop(log);

    let log = LogOptions::new()
        .durability(durability)
        .open(&path)
        .unwrap();
    assert!(
        log.recovery_report().is_clean(),
        "{what}: {}",
        log.recovery_report()
    );
    verify(&log, &len_of, last, what);
    note(&format!(
        "log full disk ({what}): {full_at} records of {len} bytes before NoSpace, {last} \
         after the filler was freed"
    ));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_full_disk_is_no_space_and_appends_go_on_once_space_is_freed() {
    // `mount` and `umount` are children: not while another test holds a writer.
    let _serial = common::serial::forks();
    if !common::is_root() {
        return skip("needs root to mount a small tmpfs");
    }
    // Small records: the disk is full at once, the log appends into the space it
    // reserved ahead until it needs more.
    fills_up("small records", 100, usize::MAX, Durability::Process);
    // Big records need the file to grow: a chunk ahead, then exactly what they need.
    fills_up("300 KiB records", 300 << 10, 4 << 20, Durability::Process);
    fills_up("small records, Sync", 100, usize::MAX, Durability::Sync);
    fills_up(
        "300 KiB records, Sync",
        300 << 10,
        4 << 20,
        Durability::Sync,
    );
}

/// Cut the log's file to `to` bytes behind the writer's back, as a hostile process
/// could (any handle can), and use the log.
fn cut_under(to: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = Log::open(&path).unwrap();
    let len_of = |_: u64| 100;
    for seq in 1..=3000 {
        assert_eq!(log.append(&payload(seq, 100)).unwrap(), seq);
    }
    verify(&log, &len_of, 3000, "before the cut");
    hostile_cut(&path, to);

    let what = format!("cut to {to} bytes");
    let truncated = |r: mmkit::Result<()>, op: &str| match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Truncated, "{what}: {op}: {e}"),
        Ok(()) => panic!("{what}: {op} succeeded on a cut file"),
    };
    // Appends reach past the cut: Truncated, and again on a retry.
    for _ in 0..3 {
        truncated(log.append(b"after the cut").map(drop), "append");
    }
    truncated(log.get(3000).map(drop), "get(3000)");
    // The records before the cut still read; past it, iteration ends with Truncated.
    let mut n = 0;
    let mut ended = None;
    for e in log.iter() {
        match e.and_then(|e| e.read().map(|b| (e.seq(), b))) {
            Ok((seq, bytes)) => {
                assert!(bytes == payload(seq, 100), "{what}: record {seq}");
                n += 1;
            }
            Err(e) => ended = Some(e.kind()),
        }
    }
    assert_eq!(
        ended,
        Some(ErrorKind::Truncated),
        "{what}: after {n} records"
    );
    match log.check() {
        Ok(c) => assert!(c.records <= n, "{what}: {c:?}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Truncated, "{what}: check: {e}"),
    }
    let _ = log.stats();
    let _ = log.sync();
    drop(log);
    note(&format!(
        "log cut under its writer ({what}): appends and reads past the cut are Truncated, \
         {n} records before it still read"
    ));
}

fn hostile_cut(path: &Path, to: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(to).unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_file_cut_under_the_writer_is_truncated_not_sigbus() {
    let _serial = common::serial::forks();
    // Inside the records, and the whole file (the header included).
    cut_under(8192);
    cut_under(0);
}
