//! Hostile numbers against the public API: offsets, lengths and sizes at 0, 1, the type's
//! maximum and near it, through every call that turns a caller's number into a size or a
//! position. Each call runs on its own thread under a time limit and must return (`Ok` or
//! a clear `Err`): no panic, no signal, no hang. The CLI's suite (crates/mmkit-cli/tests/
//! hostile.rs) covers paths and the subcommands' options.

use std::io::{SeekFrom, Write};
use std::sync::mpsc;
use std::time::Duration;

use mmkit::shm::ring::RingOptions;
use mmkit::shm::segment::Segment;
use mmkit::{MapOptions, MappedFile, Protection, RemapMode};

use common::TempFile;
use mmkit_testkit as common;

/// How long one call may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(20);

const USIZES: &[usize] = &[
    0,
    1,
    4095,
    4097,
    usize::MAX / 2,
    usize::MAX / 2 + 1,
    usize::MAX - 4095,
    usize::MAX - 1,
    usize::MAX,
];

const U64S: &[u64] = &[
    0,
    1,
    4097,
    i64::MAX as u64,
    i64::MAX as u64 + 1,
    u64::MAX - 4095,
    u64::MAX,
];

/// Run `f` on a thread; a panic or a run past [`LIMIT`] is a failure named `what`.
fn within_limit<T: std::fmt::Debug + Send + 'static>(
    what: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(_) => {
            let _ = worker.join();
            Ok(())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("{what}: panicked")),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("{what}: hung past {LIMIT:?}")),
    }
}

fn check_all(what: &str, failures: Vec<String>, total: usize) {
    let line = format!(
        "hostile {what}: {total} calls, {} broke the contract\n",
        failures.len()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mapping_options_and_region_calls() {
    let tf = TempFile::patterned(3 * 4096);
    let mut failures = Vec::new();
    let mut total = 0;
    for &off in U64S {
        for &len in USIZES {
            let path = tf.path.clone();
            total += 1;
            let r = within_limit(format!("map_path offset {off} len {len}"), move || {
                let map = MapOptions::new().offset(off).len(len).map_path(&path);
                map.map(|m| {
                    let mut b = [0u8; 1];
                    (m.len(), m.read_at(0, &mut b).is_ok())
                })
            });
            failures.extend(r.err());
        }
    }
    for &len in USIZES {
        total += 1;
        failures.extend(
            within_limit(format!("map_anon len {len}"), move || {
                MapOptions::new().len(len).map_anon().map(|m| m.len())
            })
            .err(),
        );
        total += 1;
        failures.extend(
            within_limit(format!("map_anon_shared len {len}"), move || {
                MapOptions::new()
                    .len(len)
                    .map_anon_shared()
                    .map(|m| m.len())
            })
            .err(),
        );
    }
    // Region calls with every offset and length, on anonymous and file memory.
    for &off in USIZES {
        for &len in USIZES {
            let path = tf.path.clone();
            total += 1;
            let r = within_limit(format!("region calls at {off}+{len}"), move || {
                let mut mem = MapOptions::new().len(8192).map_anon().unwrap();
                let mut map = MapOptions::new().write().map_path(&path).unwrap();
                let mut buf = vec![0u8; len.min(1 << 16)];
                [
                    mem.residency_range(off, len).is_ok(),
                    mem.lock_range(off, len, mmkit::LockMode::Now).is_ok(),
                    mem.discard(off, len).is_ok(),
                    map.read_at(off, &mut buf).is_ok(),
                    map.write_at(off, &buf).is_ok(),
                    map.flush_range(off, len, mmkit::FlushMode::Async).is_ok(),
                    map.protect_range(off, len, Protection::READ).is_ok(),
                    map.residency_range(off, len).is_ok(),
                    map.lock_range(off, len, mmkit::LockMode::Now).is_ok(),
                    mem.remap(len, RemapMode::MayMove).is_ok(),
                ]
            });
            failures.extend(r.err());
        }
    }
    check_all("mapping", failures, total);
}

#[test]
fn mapped_file_positions_and_sizes() {
    let tf = TempFile::patterned(3 * 4096);
    let mut failures = Vec::new();
    let mut total = 0;
    for &n in USIZES {
        let path = tf.path.clone();
        total += 1;
        let r = within_limit(format!("MappedFile calls with {n}"), move || {
            let mut f = MappedFile::options()
                .growable(true)
                .open(&path)
                .expect("open");
            let n64 = n as u64;
            let results = [
                f.seek(SeekFrom::Start(n64)).is_ok(),
                f.seek(SeekFrom::Current(n as i64)).is_ok(),
                f.seek(SeekFrom::End((n as i64).checked_neg().unwrap_or(i64::MIN)))
                    .is_ok(),
                f.read(n.min(1 << 20)).is_ok(),
                f.get(n..).is_ok(),
                f.get(..n).is_ok(),
                f.find_in(b"x", n..).is_ok(),
                f.rfind_in(b"x", ..n).is_ok(),
                f.move_within(n, 0, 1).is_ok(),
                f.move_within(0, n, n).is_ok(),
                f.flush_range(n, n).is_ok(),
                f.set(n..n, b"").is_ok(),
            ];
            // Sizes last: a growable file may take these.
            let resize = n <= 1 << 20 && f.resize(n).is_ok();
            (results, resize)
        });
        failures.extend(r.err());
        total += 1;
        let path = tf.path.clone();
        failures.extend(
            within_limit(format!("MappedFile resize to {n}"), move || {
                let mut f = MappedFile::open_rw(&path).expect("open");
                f.resize(n).is_ok()
            })
            .err(),
        );
        total += 1;
        let path = tf.path.with_file_name(format!("created-{n}"));
        failures.extend(
            within_limit(format!("MappedFile::create len {n}"), move || {
                MappedFile::create(&path, n).map(|f| f.len())
            })
            .err(),
        );
        total += 1;
        let path = tf.path.clone();
        failures.extend(
            within_limit(format!("MappedFile offset {n}"), move || {
                MappedFile::options()
                    .offset(n as u64)
                    .open(&path)
                    .map(|f| f.len())
            })
            .err(),
        );
    }
    check_all("mapped file", failures, total);
}

#[test]
fn segment_sizes_and_ring_capacities() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (i, &size) in U64S.iter().enumerate() {
        total += 1;
        let name = format!("mmkit-hostile-lib-{}-{i}", std::process::id());
        failures.extend(
            within_limit(format!("Segment::create size {size}"), move || {
                let made = Segment::create(&name, size)
                    .map(|s| (s.resize(size.wrapping_mul(2)).is_ok(), s.map().is_ok()));
                let _ = Segment::unlink(&name);
                made
            })
            .err(),
        );
    }
    for &cap in USIZES {
        total += 1;
        failures.extend(
            within_limit(format!("ring capacity {cap}"), move || {
                let opts = *RingOptions::new().capacity(cap);
                (opts.shared_bytes(), opts.anonymous().is_ok())
            })
            .err(),
        );
    }
    check_all("shm", failures, total);
}

/// The stores: sequence numbers and indices at the edges through every call that takes
/// one, on a log and a record file with a few records.
#[cfg(feature = "store")]
#[test]
fn store_numbers() {
    use mmkit::store::{Log, LogOptions, ReadOnlyLog, RecordFileOptions};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log");
    let log = Arc::new(Log::open(&log_path).unwrap());
    for i in 0..10u8 {
        log.append(&[i; 3]).unwrap();
    }
    let reader = Arc::new(LogOptions::new().open_read_only(&log_path).unwrap());
    let rec_path = dir.path().join("records");
    let mut records = RecordFileOptions::new().open::<u64>(&rec_path).unwrap();
    for i in 0..10 {
        records.push(&i).unwrap();
    }
    let records = Arc::new(std::sync::Mutex::new(records));
    let mut failures = Vec::new();
    let mut total = 0;
    for &seq in U64S.iter().chain(&[9, 10, 11, 12]) {
        for (name, writer, reader) in [
            ("writer", Some(log.clone()), None),
            ("reader", None, Some(reader.clone())),
        ] {
            total += 1;
            let r = within_limit(format!("{name} log calls with seq {seq}"), move || {
                let log: &ReadOnlyLog = match (&writer, &reader) {
                    (Some(w), _) => w,
                    (None, r) => r.as_ref().expect("one of them"),
                };
                let _ = log.get(seq);
                let _ = log.entry(seq).map(|e| e.read());
                let _ = log.iter_from(seq).take(3).count();
                let _ = log.tail(seq).next_timeout(Duration::from_millis(1));
                // A reader has no `truncate_before`.
                writer.map(|w| w.truncate_before(seq.min(2)).map(|_| ()))
            });
            failures.extend(r.err());
        }
    }
    for &seq in U64S {
        total += 1;
        let log = log.clone();
        let r = within_limit(format!("truncate_before({seq})"), move || {
            // Past the next number is refused; numbers within drop nothing kept here
            // (the log keeps starting at 2 from the calls above).
            let r = log.truncate_before(seq);
            assert!(seq <= 11 || r.is_err(), "truncate_before({seq}) accepted");
        });
        failures.extend(r.err());
    }
    for &i in USIZES {
        total += 1;
        let records = records.clone();
        let r = within_limit(format!("record file index {i}"), move || {
            let mut records = records.lock().unwrap();
            let _ = records.get(i);
            let _ = records.set(i, &7);
        });
        failures.extend(r.err());
    }
    check_all("store", failures, total);
}
