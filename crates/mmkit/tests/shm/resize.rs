//! Resizing a named segment that a forked peer has mapped: a grow is seen after the
//! peer remaps to `Segment::size()`; a shrink under a reading peer gives it
//! `Err(Truncated)` (no SIGBUS), after which it remaps and carries on.
//!
//! Every wait is bounded, so a bug fails a test instead of hanging it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mmkit::process::Exit;
use mmkit::shm::segment::Segment;
use mmkit::{ErrorKind, MapOptions, RemapMode};

use common::Name;
use mmkit_testkit as common;

const PAGE: usize = 4096;
/// The bound on every wait: far beyond any honest one.
const LIMIT: Duration = Duration::from_secs(20);

/// Wait until `flag` is set (parent → child signal); false on timeout.
fn wait_flag(flag: &AtomicU32) -> bool {
    let end = Instant::now() + LIMIT;
    while flag.load(Ordering::Acquire) == 0 {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// The child of the grow test. Exit codes: 0 ok, 1 open/map failed, 2 no signal,
/// 3 old mapping reached past its end, 4 wrong size, 5 remap failed, 6 wrong bytes.
fn grow_peer(name: &str, flag: &AtomicU32, link: &mut mmkit::process::ChildLink) -> i32 {
    let Ok(seg) = Segment::open(name) else {
        return 1;
    };
    let Ok(mut map) = seg.map() else { return 1 };
    link.send(1);
    if !wait_flag(flag) {
        return 2;
    }
    let mut buf = [0u8; 5];
    match map.read_at(2 * PAGE, &mut buf) {
        Err(e) if e.kind() == ErrorKind::OutOfRange => {}
        _ => return 3,
    }
    let Ok(size) = seg.size() else { return 4 };
    if size != 3 * PAGE as u64 {
        return 4;
    }
    if map.remap(size as usize, RemapMode::MayMove).is_err() {
        return 5;
    }
    match map.read_at(2 * PAGE, &mut buf) {
        Ok(()) if &buf == b"grown" => 0,
        _ => 6,
    }
}

#[test]
fn a_grow_is_seen_by_a_peer_after_it_remaps() {
    let name = Name::new("grow");
    let seg = Segment::create(&name.0, PAGE as u64).unwrap();
    let flags = MapOptions::new().len(PAGE).map_anon_shared().unwrap();
    let flag = &flags.atomic_u32s(0, 1).unwrap()[0];
    // SAFETY: the child opens and maps a segment, copies bytes and returns.
    let mut child = unsafe { mmkit::process::fork(|link| grow_peer(&name.0, flag, link)) }.unwrap();
    assert_eq!(child.recv(), Some(1));
    seg.resize(3 * PAGE as u64).unwrap();
    assert_eq!(seg.size().unwrap(), 3 * PAGE as u64);
    seg.map().unwrap().write_at(2 * PAGE, b"grown").unwrap();
    flag.store(1, Ordering::Release);
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}

/// The child of the shrink test: reads the last page until it is truncated away, then
/// remaps to the new size and reads the first page. Exit codes: 0 ok, 1 open/map
/// failed, 2 never truncated, 3 wrong error, 4 bad bytes, 5 remap failed,
/// 6 the lost page is still readable after the remap.
fn shrink_peer(name: &str, link: &mut mmkit::process::ChildLink) -> i32 {
    let Ok(seg) = Segment::open(name) else {
        return 1;
    };
    let Ok(mut map) = seg.map() else { return 1 };
    link.send(1);
    let end = Instant::now() + LIMIT;
    let mut buf = [0u8; 64];
    loop {
        match map.read_at(2 * PAGE, &mut buf) {
            Ok(()) if buf == [0xab; 64] => {}
            Ok(()) => return 4,
            Err(e) if e.kind() == ErrorKind::Truncated => break,
            Err(_) => return 3,
        }
        if Instant::now() > end {
            return 2;
        }
    }
    // Lost pages stay lost: a second read fails at once, still without SIGBUS.
    if !matches!(map.read_at(2 * PAGE, &mut buf), Err(e) if e.kind() == ErrorKind::Truncated) {
        return 3;
    }
    let size = match seg.size() {
        Ok(s) if s > 0 => s as usize,
        _ => return 5,
    };
    if map.remap(size, RemapMode::MayMove).is_err() {
        return 5;
    }
    if map.read_at(2 * PAGE, &mut buf).is_ok() {
        return 6;
    }
    match map.read_at(0, &mut buf) {
        Ok(()) if buf == [0xcd; 64] => 0,
        _ => 4,
    }
}

#[test]
fn a_shrink_under_a_reading_peer_gives_truncated_then_it_remaps() {
    const ROUNDS: u32 = 10;
    for round in 0..ROUNDS {
        let name = Name::new(&format!("shrink{round}"));
        let seg = Segment::create(&name.0, 3 * PAGE as u64).unwrap();
        let mut map = seg.map().unwrap();
        map.write_at(0, &[0xcd; PAGE]).unwrap();
        map.write_at(2 * PAGE, &[0xab; PAGE]).unwrap();
        // SAFETY: the child opens and maps a segment, copies bytes and returns.
        let mut child = unsafe { mmkit::process::fork(|link| shrink_peer(&name.0, link)) }.unwrap();
        assert_eq!(child.recv(), Some(1));
        std::thread::sleep(Duration::from_micros(u64::from(round) * 200));
        seg.resize(PAGE as u64).unwrap();
        assert_eq!(child.wait().unwrap(), Exit::Code(0), "round {round}");
        // The resizer's own mapping is guarded too.
        let mut buf = [0u8; 8];
        let e = map.read_at(2 * PAGE, &mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated);
    }
}
