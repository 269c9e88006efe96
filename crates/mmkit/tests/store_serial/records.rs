//! `store::RecordFile`: round trips and hostile files, updates killed with SIGKILL at
//! random moments, torn and bit-flipped slots written into the file by hand, and a full
//! disk.
//!
//! The record type makes every value check itself: all its fields derive from
//! `(index, counter)`, so a record mixed from two writes is never mistaken for a value.

use mmkit_testkit as common;

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mmkit::helpers::XorShift;
use mmkit::process::Exit;
use mmkit::store::{Durability, ReadOnlyRecordFile, RecordFileOptions};
use mmkit::ErrorKind;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use common::{spawn, SmallTmpfs};

/// A record type whose every field follows from its index and counter.
trait Checked:
    FromBytes + IntoBytes + Immutable + KnownLayout + Copy + PartialEq + std::fmt::Debug
{
    fn new(index: u64, counter: u64) -> Self;
    fn index(&self) -> u64;
    fn counter(&self) -> u64;
    /// Whether this is a value some write made whole (not a mix of two).
    fn consistent(&self) -> bool {
        *self == Self::new(self.index(), self.counter())
    }
}

macro_rules! checked_record {
    ($(#[$doc:meta])* $name:ident, $fields:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
        #[repr(C)]
        struct $name {
            index: u64,
            counter: u64,
            mix: [u64; $fields],
        }

        impl Checked for $name {
            fn new(index: u64, counter: u64) -> $name {
                $name {
                    index,
                    counter,
                    mix: mix(index, counter),
                }
            }
            fn index(&self) -> u64 {
                self.index
            }
            fn counter(&self) -> u64 {
                self.counter
            }
        }
    };
}

checked_record!(
    /// The record of most tests: 256 bytes.
    Rec,
    30
);
checked_record!(
    /// The kill test's record: 8 KiB, so that a kill often lands inside a slot's copy.
    Wide,
    1022
);

/// Fields that all differ when `index` or `counter` does (splitmix64's finaliser).
fn mix<const N: usize>(index: u64, counter: u64) -> [u64; N] {
    let mut out = [0u64; N];
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ counter.rotate_left(29) ^ 1;
    for m in &mut out {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        *m = z ^ (z >> 31);
    }
    out
}

const TAG: u64 = 0x5245_4331;
/// The format's layout, written out here to damage files by hand.
const HEADER: u64 = 4096;
const SLOT: u64 = 16 + std::mem::size_of::<Rec>() as u64;
const PAIR: u64 = 2 * SLOT;

fn slot_at(i: u64, slot: u64) -> u64 {
    HEADER + i * PAIR + slot * SLOT
}

fn opts() -> RecordFileOptions {
    *RecordFileOptions::new().type_tag(TAG).create(true)
}

fn reader<R: Checked>(path: &Path) -> mmkit::Result<ReadOnlyRecordFile<R>> {
    RecordFileOptions::new().type_tag(TAG).open_read_only(path)
}

/// CRC32C, bit by bit, to forge headers in the tests.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn write_at(path: &Path, off: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
}

/// Taken by every test here: the kill test's children get a copy of every descriptor
/// open in the process at the fork, and would hold another test's writer lock (`flock`,
/// so its next open is `Busy`) or keep a deleted filler file's space in use
/// (every test of this binary takes the one lock, `common::serial::forks`).
fn no_forks() -> std::sync::MutexGuard<'static, ()> {
    common::serial::forks()
}

fn stderr_line(line: String) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

#[test]
fn records_round_trip_and_persist_across_reopens() {
    let _serial = no_forks();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recs");
    let err = opts().create(false).open::<Rec>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!path.exists());

    let mut f = opts().open::<Rec>(&path).unwrap();
    assert!(f.is_empty());
    assert_eq!(f.get(0).unwrap(), None);
    for i in 0..100 {
        assert_eq!(f.push(&Rec::new(i, 0)).unwrap(), i as usize);
    }
    for round in 1..4 {
        for i in (0..100).step_by(round) {
            f.set(i as usize, &Rec::new(i, round as u64)).unwrap();
        }
    }
    let err = f.set(100, &Rec::new(100, 0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange, "{err}");
    let want = |i: u64| {
        Rec::new(
            i,
            if i % 3 == 0 {
                3
            } else if i % 2 == 0 {
                2
            } else {
                1
            },
        )
    };
    assert_eq!(f.get(4).unwrap(), Some(want(4)));
    assert_eq!(f.get(100).unwrap(), None);
    assert_eq!(f.check().unwrap().records, 100);
    assert!(f.check().unwrap().fell_back.is_empty());

    // A second writer is refused; a reader alongside the writer sees its updates, and
    // its pushes after a refresh.
    let err = opts().open::<Rec>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    let mut r = reader(&path).unwrap();
    f.set(7, &Rec::new(7, 99)).unwrap();
    assert_eq!(r.get(7).unwrap(), Some(Rec::new(7, 99)));
    for i in 100..1000 {
        f.push(&Rec::new(i, 0)).unwrap();
    }
    assert_eq!(r.len(), 100);
    assert_eq!(r.refresh().unwrap(), 1000);
    assert_eq!(r.get(999).unwrap(), Some(Rec::new(999, 0)));
    drop((f, r));

    let f = opts()
        .durability(Durability::Sync)
        .open::<Rec>(&path)
        .unwrap();
    assert_eq!(f.len(), 1000);
    for (i, rec) in f.iter().enumerate() {
        let rec = rec.unwrap();
        let want = match i {
            7 => Rec::new(7, 99),
            0..100 => want(i as u64),
            _ => Rec::new(i as u64, 0),
        };
        assert_eq!(rec, want, "record {i}");
    }
    drop(f);

    // A read-only handle writes nothing (it has no `set` or `push`: the type refuses
    // them, see `ReadOnlyRecordFile`'s compile_fail doc test).
    let before = std::fs::read(&path).unwrap();
    let r = reader::<Rec>(&path).unwrap();
    drop(r);
    assert!(std::fs::read(&path).unwrap() == before);

    // Sync durability round trips too.
    let mut f = opts()
        .durability(Durability::Sync)
        .open::<Rec>(&path)
        .unwrap();
    f.set(1, &Rec::new(1, 42)).unwrap();
    assert_eq!(f.push(&Rec::new(1000, 0)).unwrap(), 1000);
    drop(f);
    let r = reader(&path).unwrap();
    assert_eq!(r.get(1).unwrap(), Some(Rec::new(1, 42)));
    assert_eq!(r.len(), 1001);
}

/// Open `path` as a record file and expect `kind` with `words` in the message; the
/// file's bytes must not change.
fn refused(path: &Path, kind: ErrorKind, words: &str) {
    let before = std::fs::read(path).unwrap();
    for read_only in [false, true] {
        let err = if read_only {
            opts().open_read_only::<Rec>(path).map(drop)
        } else {
            opts().open::<Rec>(path).map(drop)
        }
        .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(words), "{err:?} lacks {words:?}");
    }
    assert!(
        std::fs::read(path).unwrap() == before,
        "the refused file was written"
    );
}

#[test]
fn hostile_and_foreign_files_are_refused_with_the_reason() {
    let _serial = no_forks();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recs");
    let mut f = opts().open::<Rec>(&path).unwrap();
    for i in 0..5 {
        f.push(&Rec::new(i, 0)).unwrap();
    }
    drop(f);
    let good = std::fs::read(&path).unwrap();
    let put = |bytes: &[u8]| std::fs::write(&path, bytes).unwrap();

    // Another type tag, another record size.
    let err = opts().type_tag(TAG + 1).open::<Rec>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(err.to_string().contains("type tag"), "{err}");
    let err = opts().open::<[u8; 16]>(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
    assert!(
        err.to_string()
            .contains("holds records of 256 bytes; this type is 16"),
        "{err}"
    );

    // Not a record file, an mmkit log, a cut header, an empty file.
    put(&[b'x'; 5000]);
    refused(&path, ErrorKind::Format, "not a record file");
    let mut log = good.clone();
    log[..8].copy_from_slice(b"MMKITLOG");
    put(&log);
    refused(&path, ErrorKind::Format, "log");
    put(&good[..100]);
    refused(&path, ErrorKind::Format, "cut short: 100 bytes");
    put(&good[..4]);
    refused(&path, ErrorKind::Format, "cut short: 4 bytes");
    put(b"");
    refused(&path, ErrorKind::Format, "cut short: 0 bytes");

    // A newer version (its header checksum intact).
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let c = crc32c(&newer[..32]);
    newer[32..36].copy_from_slice(&c.to_le_bytes());
    put(&newer);
    refused(&path, ErrorKind::Format, "version 2 is newer");

    // A damaged header; both length slots damaged; a length the file does not hold.
    let mut bad = good.clone();
    bad[20] ^= 1;
    put(&bad);
    refused(&path, ErrorKind::Corrupt, "checksum");
    let mut bad = good.clone();
    bad[70] ^= 1;
    bad[102] ^= 1;
    put(&bad);
    refused(&path, ErrorKind::Corrupt, "length slots");
    put(&good[..(HEADER + 3 * PAIR) as usize]);
    refused(&path, ErrorKind::Corrupt, "holds only 3");

    // A FIFO and a directory are not files a store lives in.
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    let err = opts().open::<Rec>(&fifo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable, "{err}");
    let err = opts().open::<Rec>(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable, "{err}");

    // The good file still opens.
    put(&good);
    assert_eq!(reader::<Rec>(&path).unwrap().len(), 5);
}

#[test]
fn a_torn_newest_slot_falls_back_and_two_damaged_slots_fail_only_that_record() {
    let _serial = no_forks();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recs");
    let mut f = opts().open::<Rec>(&path).unwrap();
    for i in 0..4 {
        f.push(&Rec::new(i, 1)).unwrap(); // slot A, generation 1
        f.set(i as usize, &Rec::new(i, 2)).unwrap(); // slot B, generation 2
    }
    drop(f);

    // Tear record 2's newest slot (B) in the middle of its value.
    write_at(&path, slot_at(2, 1) + 100, &[0xee; 40]);
    let r = reader(&path).unwrap();
    assert_eq!(
        r.get(2).unwrap(),
        Some(Rec::new(2, 1)),
        "the previous value"
    );
    let check = r.check().unwrap();
    assert_eq!(
        (check.fell_back.as_slice(), check.damaged.len()),
        (&[2][..], 0)
    );
    drop(r);

    // The next update goes into the torn slot, and reads back.
    let mut f = opts().open::<Rec>(&path).unwrap();
    f.set(2, &Rec::new(2, 3)).unwrap();
    assert_eq!(f.get(2).unwrap(), Some(Rec::new(2, 3)));
    assert!(f.check().unwrap().fell_back.is_empty());
    drop(f);

    // Both slots of record 1 damaged: that record is Err(Corrupt) naming it, the others
    // read on; set repairs it.
    write_at(&path, slot_at(1, 0) + 3, &[0x55]);
    write_at(&path, slot_at(1, 1) + 200, &[0x55]);
    let mut f = opts().open::<Rec>(&path).unwrap();
    let err = f.get(1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("record 1"), "{err}");
    assert_eq!(err.offset(), Some(slot_at(1, 0)));
    assert_eq!(f.get(0).unwrap(), Some(Rec::new(0, 2)));
    assert_eq!(f.get(3).unwrap(), Some(Rec::new(3, 2)));
    let results: Vec<_> = f.iter().map(|r| r.is_ok()).collect();
    assert_eq!(results, [true, false, true, true]);
    assert_eq!(f.check().unwrap().damaged, [1]);
    f.set(1, &Rec::new(1, 9)).unwrap();
    assert_eq!(f.get(1).unwrap(), Some(Rec::new(1, 9)));
    f.set(1, &Rec::new(1, 10)).unwrap();
    drop(f);
    assert_eq!(
        reader(&path).unwrap().get(1).unwrap(),
        Some(Rec::new(1, 10))
    );

    // A slot copied into another record's place fails its check there (the index is in
    // the checksum).
    let mut a = vec![0u8; PAIR as usize];
    let file = std::fs::File::open(&path).unwrap();
    file.read_exact_at(&mut a, slot_at(0, 0)).unwrap();
    write_at(&path, slot_at(3, 0), &a);
    let err = reader::<Rec>(&path).unwrap().get(3).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn random_bit_flips_and_cuts_never_panic_nor_read_back_a_value_never_written() {
    let _serial = no_forks();
    const RECORDS: u64 = 8;
    const ROUNDS: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recs");
    let mut f = opts().open::<Rec>(&path).unwrap();
    for i in 0..RECORDS {
        f.push(&Rec::new(i, 0)).unwrap();
    }
    for c in 1..=ROUNDS {
        for i in 0..RECORDS {
            if (i + c) % 3 != 0 {
                f.set(i as usize, &Rec::new(i, c)).unwrap();
            }
        }
    }
    drop(f);
    let used = (HEADER + RECORDS * PAIR) as usize;
    let good = std::fs::read(&path).unwrap()[..used].to_vec();
    let case_path = dir.path().join("case");
    let mut rng = XorShift::new(0x0123_4567_89ab_cdef);
    let (mut opened, mut values, mut corrupt) = (0, 0, 0);
    for case in 0..3000 {
        let mut bytes = good.clone();
        if case % 10 == 9 {
            bytes.truncate(rng.below(used + 1));
        } else {
            for _ in 0..1 + rng.below(3) {
                let bit = rng.below(used * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
        }
        std::fs::write(&case_path, &bytes).unwrap();
        let writer = case % 2 == 0;
        let (mut w, mut r) = (None, None);
        let outcome = if writer {
            opts().open::<Rec>(&case_path).map(|f| w = Some(f))
        } else {
            opts()
                .open_read_only::<Rec>(&case_path)
                .map(|f| r = Some(f))
        };
        match outcome {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Format | ErrorKind::Corrupt) => continue,
            Err(e) => panic!("case {case}: {e}"),
        };
        let f: &ReadOnlyRecordFile<Rec> = match (&w, &r) {
            (Some(w), _) => w,
            (None, r) => r.as_ref().expect("opened"),
        };
        opened += 1;
        assert!(
            [RECORDS - 1, RECORDS].contains(&(f.len() as u64)),
            "case {case}: length {}",
            f.len()
        );
        for i in 0..f.len() {
            match f.get(i) {
                Ok(Some(r)) => {
                    values += 1;
                    assert!(
                        r.consistent() && r.index == i as u64 && r.counter <= ROUNDS,
                        "case {case}: record {i} reads {r:?}, never written"
                    );
                }
                Ok(None) => panic!("case {case}: record {i} below the length is None"),
                Err(e) => {
                    corrupt += 1;
                    assert_eq!(e.kind(), ErrorKind::Corrupt, "case {case}: {e}");
                }
            }
        }
        let check = f.check().unwrap();
        assert_eq!(f.iter().filter(|r| r.is_err()).count(), check.damaged.len());
        if let Some(f) = w.as_mut() {
            f.set(0, &Rec::new(0, 7)).unwrap();
            let i = f.push(&Rec::new(f.len() as u64, 7)).unwrap();
            assert_eq!(f.get(0).unwrap(), Some(Rec::new(0, 7)));
            assert_eq!(f.get(i).unwrap(), Some(Rec::new(i as u64, 7)));
        }
    }
    stderr_line(format!(
        "bit flips: 3000 cases, {opened} opened, {values} records read back intact, \
         {corrupt} reported Corrupt"
    ));
    assert!(
        opened > 1000 && corrupt > 0,
        "{opened} opened, {corrupt} corrupt"
    );
}

/// Exit codes of an updater child that found a fault.
const CHILD_OPEN: i32 = 10;
const CHILD_BAD_READ: i32 = 11;
const CHILD_WRITE: i32 = 12;
const CHILD_PUSH: i32 = 13;
const MAX_RECORDS: usize = 48;

/// The child: update random records in a loop, each to its current counter + 1, now and
/// then push a new one, and report every acknowledged change as (index, counter).
fn updater<R: Checked>(path: &Path, mut acks: UnixStream, seed: u64) -> i32 {
    let Ok(mut f) = opts().open::<R>(path) else {
        return CHILD_OPEN;
    };
    let mut rng = XorShift::new(seed);
    loop {
        let (i, counter) = if rng.below(40) == 0 && f.len() < MAX_RECORDS {
            let i = f.len() as u64;
            if f.push(&R::new(i, 1)).is_err() {
                return CHILD_PUSH;
            }
            (i, 1)
        } else {
            let i = rng.below(f.len());
            let now = match f.get(i) {
                Ok(Some(r)) if r.consistent() && r.index() == i as u64 => r.counter(),
                _ => return CHILD_BAD_READ,
            };
            if f.set(i, &R::new(i as u64, now + 1)).is_err() {
                return CHILD_WRITE;
            }
            (i as u64, now + 1)
        };
        let mut ack = [0u8; 16];
        ack[..8].copy_from_slice(&i.to_le_bytes());
        ack[8..].copy_from_slice(&counter.to_le_bytes());
        if acks.write_all(&ack).is_err() {
            return 0;
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn updates_killed_at_random_moments_never_read_back_torn_or_lost() {
    let _serial = no_forks();
    const KILLS: u32 = 600;
    const START: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recs");
    let mut f = opts().open::<Wide>(&path).unwrap();
    for i in 0..START {
        f.push(&Wide::new(i, 0)).unwrap();
    }
    drop(f);
    // The counter each record had when last acknowledged or last seen (it never goes
    // back, and the next updater builds on what it finds).
    let mut floor: Vec<u64> = vec![0; START as usize];
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    let (mut acks_total, mut unacked_landed, mut tears) = (0u64, 0u32, 0u32);
    let mut fell_back_before: Vec<usize> = Vec::new();
    let started = Instant::now();
    for kill in 0..KILLS {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let seed = rng.next_u64();
        let child = spawn(|| updater::<Wide>(&path, theirs, seed));
        // Mostly mid-loop, sometimes while it opens the file.
        let wait = match rng.below(8) {
            0 => rng.below(200),
            _ => 500 + rng.below(4000),
        };
        std::thread::sleep(Duration::from_micros(wait as u64));
        child.signal(libc::SIGKILL).unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(
            exit,
            Exit::Signal(libc::SIGKILL),
            "kill {kill}: the updater {}",
            exit.describe()
        );

        let mut acked = Vec::new();
        ours.read_to_end(&mut acked).unwrap();
        assert_eq!(acked.len() % 16, 0, "a torn acknowledgement");
        for ack in acked.chunks(16) {
            let i = u64::from_le_bytes(ack[..8].try_into().unwrap()) as usize;
            let counter = u64::from_le_bytes(ack[8..].try_into().unwrap());
            if i == floor.len() {
                floor.push(0);
            }
            assert!(
                counter > floor[i],
                "kill {kill}: record {i} acknowledged {counter} after {}",
                floor[i]
            );
            floor[i] = counter;
            acks_total += 1;
        }

        let r = reader::<Wide>(&path).unwrap();
        let len = r.len();
        assert!(
            len == floor.len() || len == floor.len() + 1,
            "kill {kill}: {len} records, {} acknowledged",
            floor.len()
        );
        let mut ahead = 0;
        for i in 0..len {
            let rec = r.get(i).unwrap().unwrap();
            assert!(
                rec.consistent() && rec.index == i as u64,
                "kill {kill}: record {i} torn: {rec:?}"
            );
            if i == floor.len() {
                // A push that landed but was not acknowledged.
                assert_eq!(rec.counter, 1);
                floor.push(1);
                ahead += 1;
                continue;
            }
            assert!(
                rec.counter == floor[i] || rec.counter == floor[i] + 1,
                "kill {kill}: record {i} reads counter {}, last acknowledged {}",
                rec.counter,
                floor[i]
            );
            if rec.counter > floor[i] {
                ahead += 1;
                floor[i] = rec.counter;
            }
        }
        assert!(
            ahead <= 1,
            "kill {kill}: {ahead} records ahead of their acknowledgement; one update is in flight"
        );
        unacked_landed += ahead;
        let check = r.check().unwrap();
        assert!(
            check.damaged.is_empty(),
            "kill {kill}: damaged {:?}",
            check.damaged
        );
        // A record newly reading from its older slot: this kill tore an update.
        tears += check
            .fell_back
            .iter()
            .filter(|i| !fell_back_before.contains(i))
            .count() as u32;
        fell_back_before = check.fell_back;
    }
    stderr_line(format!(
        "kill -9 torture: {KILLS} kills in {:.1?}, {acks_total} acknowledged updates, \
         {unacked_landed} unacknowledged updates landed whole, {tears} torn (read back as the \
         previous value), {} records",
        started.elapsed(),
        floor.len()
    ));
    assert!(
        acks_total > u64::from(KILLS),
        "the updaters hardly ran: {acks_total} updates"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_full_disk_is_no_space_and_pushes_go_on_once_space_is_freed() {
    if !common::is_root() {
        return common::skip("needs root to mount a small tmpfs");
    }
    let _serial = no_forks();
    let Some(fs) = SmallTmpfs::mount("256k") else {
        return common::skip("could not mount a tmpfs here");
    };
    let path = fs.path().join("recs");
    let mut f = opts().open::<Rec>(&path).unwrap();
    let filler = fs.fill_with("filler", 64 << 10);
    assert!(filler > 0, "no room for the filler");
    let mut err = None;
    for i in 0..10_000u64 {
        match f.push(&Rec::new(i, 0)) {
            Ok(at) => assert_eq!(at as u64, i),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("a 256 KiB tmpfs never filled up");
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert!(
        err.hint_text().is_some_and(|h| h.contains("free space")),
        "{err}"
    );
    let pushed = f.len();
    assert!(pushed > 100, "only {pushed} records fit");

    // Every record pushed before the disk filled reads back; updates in place need no
    // space, so they go on.
    f.set(0, &Rec::new(0, 1)).unwrap();
    for (i, r) in f.iter().enumerate() {
        let want = Rec::new(i as u64, u64::from(i == 0));
        assert_eq!(r.unwrap(), want, "record {i}");
    }
    assert_eq!(
        f.push(&Rec::new(pushed as u64, 0)).unwrap_err().kind(),
        ErrorKind::NoSpace
    );
    assert_eq!(reader::<Rec>(&path).unwrap().len(), pushed);

    // Room again: the same handle pushes on.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    for i in pushed..pushed + 50 {
        assert_eq!(f.push(&Rec::new(i as u64, 0)).unwrap(), i);
    }
    drop(f);
    let r = reader(&path).unwrap();
    assert_eq!(r.len(), pushed + 50);
    assert!(r.check().unwrap().is_intact());
    assert_eq!(
        r.get(pushed + 49).unwrap(),
        Some(Rec::new((pushed + 49) as u64, 0))
    );
}
