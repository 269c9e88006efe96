//! `store::Kv` under `kill -9`: writers and compactions killed at random moments, in one
//! process and in four at once. Every acknowledged write must read back with its last
//! value (or the one write in flight after it), and no value is ever torn.

use mmkit_testkit as common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{note, spawn};
use mmkit::helpers::XorShift;
use mmkit::process::Exit;
use mmkit::store::{Kv, KvOptions};

/// Forks in these tests copy every descriptor open at the moment: one test at a time
/// (every test of this binary takes the one lock, `common::serial::forks`).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    common::serial::forks()
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

/// A value that proves itself: the key's number and the version, then filler computed
/// from both, so a torn or misplaced value is recognised.
fn value(i: u32, version: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(12));
    v.extend_from_slice(&i.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    let mut x = (i as u64) << 32 ^ version ^ 0x9e37_79b9_7f4a_7c15;
    while v.len() < len.max(12) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

/// The version a value holds, when it is a whole value of key `i`.
fn version_of(i: u32, v: &[u8]) -> Option<u64> {
    let version = u64::from_le_bytes(v.get(4..12)?.try_into().ok()?);
    (value(i, version, v.len()) == v).then_some(version)
}

/// Exit codes of a child that found a fault.
const CHILD_OPEN: i32 = 10;
const CHILD_TORN: i32 = 11;
const CHILD_WRITE: i32 = 12;
const CHILD_COMPACT: i32 = 13;
const CHILD_READ: i32 = 14;

/// A writer child: put new versions of keys `keys` (its own), now and then read another
/// child's key and check it is whole, now and then compact; every acknowledged put is
/// reported as (key, version).
fn writer(
    path: &Path,
    keys: std::ops::Range<u32>,
    all: u32,
    mut acks: UnixStream,
    seed: u64,
    compact_every: usize,
) -> i32 {
    let Ok(kv) = KvOptions::new().compact_below(0.0, 0).open(path) else {
        return CHILD_OPEN;
    };
    let mut rng = XorShift::new(seed);
    let mut versions: HashMap<u32, u64> = HashMap::new();
    for n in 0.. {
        let i = keys.start + rng.below((keys.end - keys.start) as usize) as u32;
        let now = match versions.get(&i) {
            Some(&v) => v,
            None => match kv.get(&key(i)) {
                Ok(Some(v)) => match version_of(i, &v) {
                    Some(version) => version,
                    None => return CHILD_TORN,
                },
                Ok(None) => 0,
                Err(e) => {
                    let line = format!("writer: reading its key {i} failed: {e}\n");
                    let _ = std::io::stderr().write_all(line.as_bytes());
                    return CHILD_READ;
                }
            },
        };
        let next = now + 1;
        if let Err(e) = kv.put(&key(i), &value(i, next, 8 + rng.below(120))) {
            let _ = std::io::stderr().write_all(format!("writer: put failed: {e}\n").as_bytes());
            return CHILD_WRITE;
        }
        versions.insert(i, next);
        let mut ack = [0u8; 12];
        ack[..4].copy_from_slice(&i.to_le_bytes());
        ack[4..].copy_from_slice(&next.to_le_bytes());
        if acks.write_all(&ack).is_err() {
            return 0;
        }
        let other = rng.below(all as usize) as u32;
        match kv.get(&key(other)) {
            Ok(Some(v)) if version_of(other, &v).is_none() => return CHILD_TORN,
            Err(e) => {
                let line = format!("writer: reading key {other} failed: {e}\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
                return CHILD_READ;
            }
            _ => {}
        }
        if compact_every > 0 && n % compact_every == compact_every - 1 {
            if let Err(e) = kv.compact() {
                let _ = std::io::stderr()
                    .write_all(format!("writer: compact failed: {e}\n").as_bytes());
                return CHILD_COMPACT;
            }
        }
    }
    0
}

/// Read every acknowledgement a (dead) child sent: (key, version) pairs.
fn drain(mut sock: UnixStream, acked: &mut HashMap<u32, u64>) -> u64 {
    let mut bytes = Vec::new();
    let _ = sock.read_to_end(&mut bytes);
    let mut n = 0;
    for ack in bytes.chunks_exact(12) {
        let i = u32::from_le_bytes(ack[..4].try_into().unwrap());
        let v = u64::from_le_bytes(ack[4..].try_into().unwrap());
        let slot = acked.entry(i).or_default();
        *slot = (*slot).max(v);
        n += 1;
    }
    n
}

/// Open the store and check every acknowledged key: present, whole, at its last
/// acknowledged version or (the one put in flight) one more.
fn verify(path: &Path, acked: &HashMap<u32, u64>, all: u32, round: u32) -> u64 {
    let kv = Kv::open(path).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    assert!(kv.check().unwrap().is_intact(), "round {round}: damage");
    let mut ahead = 0;
    for i in 0..all {
        let got = kv.get(&key(i)).unwrap();
        let Some(&want) = acked.get(&i) else {
            if let Some(v) = got {
                assert_eq!(version_of(i, &v), Some(1), "round {round}: key {i} torn");
            }
            continue;
        };
        let v =
            got.unwrap_or_else(|| panic!("round {round}: key {i} acknowledged at {want} is gone"));
        let have = version_of(i, &v).unwrap_or_else(|| panic!("round {round}: key {i} torn"));
        assert!(
            have == want || have == want + 1,
            "round {round}: key {i} reads version {have}, acknowledged {want}"
        );
        ahead += (have > want) as u64;
    }
    ahead
}

#[test]
fn compactions_killed_at_random_moments_lose_no_acknowledged_key() {
    let _serial = serial();
    const KILLS: u32 = 200;
    const KEYS: u32 = 400;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv");
    {
        let kv = Kv::open(&path).unwrap();
        for i in 0..KEYS {
            kv.put(&key(i), &value(i, 1, 64)).unwrap();
        }
    }
    let mut acked: HashMap<u32, u64> = (0..KEYS).map(|i| (i, 1)).collect();
    let mut rng = XorShift::new(0x5eed_c0de);
    let started = Instant::now();
    let (mut acks, mut ahead, mut leftovers) = (0, 0, 0);
    for round in 0..KILLS {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let seed = rng.next_u64();
        // A compaction every few puts: most kills land inside one.
        let child = spawn(|| writer(&path, 0..KEYS, KEYS, theirs, seed, 3));
        std::thread::sleep(Duration::from_micros(rng.below(20_000) as u64));
        child.signal(libc::SIGKILL).unwrap();
        let exit = child.wait().unwrap();
        assert!(
            matches!(exit, Exit::Signal(libc::SIGKILL) | Exit::Code(0)),
            "round {round}: the writer {}",
            exit.describe()
        );
        acks += drain(ours, &mut acked);
        leftovers += dir.path().join("kv.compact").exists() as u32;
        ahead += verify(&path, &acked, KEYS, round);
    }
    note(&format!(
        "kv kill -9 during compaction: {KILLS} kills in {:.1?}, {acks} acknowledged puts, \
         {leftovers} kills left a half-written fresh file behind (ignored, then replaced), \
         {ahead} unacknowledged puts landed whole",
        started.elapsed()
    ));
}

#[test]
fn four_processes_write_read_and_compact_while_kills_land() {
    let _serial = serial();
    const KILLS: u32 = 100;
    const PER: u32 = 100;
    const WRITERS: u32 = 4;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv");
    drop(Kv::open(&path).unwrap());
    let mut acked: HashMap<u32, u64> = HashMap::new();
    let mut rng = XorShift::new(0xfeed_beef);
    let mut children: Vec<Option<(mmkit::process::Child, UnixStream)>> =
        (0..WRITERS).map(|_| None).collect();
    let start_writer = |w: u32, seed: u64| {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let keys = w * PER..(w + 1) * PER;
        // Writer 0 also compacts now and then.
        let every = if w == 0 { 50 } else { 0 };
        let child = spawn(|| writer(&path, keys, WRITERS * PER, theirs, seed, every));
        (child, ours)
    };
    for (w, slot) in children.iter_mut().enumerate() {
        *slot = Some(start_writer(w as u32, rng.next_u64()));
    }
    let started = Instant::now();
    let mut acks = 0;
    for round in 0..KILLS {
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(20_000) as u64));
        let w = rng.below(WRITERS as usize);
        let (child, sock) = children[w].take().unwrap();
        child.signal(libc::SIGKILL).unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(
            exit,
            Exit::Signal(libc::SIGKILL),
            "round {round}: writer {w} {}",
            exit.describe()
        );
        acks += drain(sock, &mut acked);
        children[w] = Some(start_writer(w as u32, rng.next_u64()));
    }
    for (w, slot) in children.iter_mut().enumerate() {
        let (child, sock) = slot.take().unwrap();
        child.signal(libc::SIGKILL).unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(
            exit,
            Exit::Signal(libc::SIGKILL),
            "writer {w} {}",
            exit.describe()
        );
        acks += drain(sock, &mut acked);
    }
    let ahead = verify(&path, &acked, WRITERS * PER, KILLS);
    note(&format!(
        "kv 4 processes: {KILLS} kills in {:.1?}, {acks} acknowledged puts, {} keys, \
         {ahead} unacknowledged puts landed whole",
        started.elapsed(),
        acked.len()
    ));
}
