//! A creator killed between `shm_open` and `ftruncate` leaves a 0-byte name: the next
//! create-or-open takes it over at once (no timeout), while a live creator that has not
//! sized its segment yet is waited for, never robbed. Real child processes, real SIGKILL.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mmkit::process::{fork, Child, Exit};
use mmkit::shm::segment::{Segment, SegmentOptions};
use mmkit::shm::typed::SharedOptions;

use common::Name;
use mmkit_testkit as common;

/// A child that creates `name` with `size` bytes and stops at `step` ("opened": the name
/// exists, no lock yet; "locked": the sizing lock is held, no size yet), says `p`, then
/// waits for a byte on `go` (or for SIGKILL); then it finishes the create, writes `b"C"`
/// at offset 0 and exits 0 if its handle says it created the segment with at least
/// `size` bytes.
fn creator(name: &str, size: u64, step: &'static str, go: Option<UnixStream>) -> Child {
    let name = name.to_string();
    // SAFETY: the child creates a segment and sleeps or reads a socket; it takes no lock
    // another thread of the test harness could hold (the allocator is fork-safe) and
    // every failure is an exit code.
    unsafe {
        fork(move |link| {
            let mut go = go;
            let seg = SegmentOptions::new().create_pausing(&name, size, |at| {
                if at != step {
                    return;
                }
                link.send(b'p');
                match go.as_mut() {
                    Some(s) => {
                        let _ = s.read_exact(&mut [0u8]);
                    }
                    None => loop {
                        std::thread::sleep(Duration::from_secs(1));
                    },
                }
            });
            let Ok(seg) = seg else { return 2 };
            if !seg.created() || seg.size().unwrap_or(0) < size {
                return 3;
            }
            match seg.map().and_then(|mut m| m.write_at(0, b"C")) {
                Ok(()) => 0,
                Err(_) => 4,
            }
        })
    }
    .expect("fork")
}

#[test]
fn a_creator_killed_before_sizing_is_taken_over_at_once() {
    for round in 0..40 {
        let name = Name::new("killed");
        let step = if round % 2 == 0 { "opened" } else { "locked" };
        let mut child = creator(&name.0, 8192, step, None);
        assert_eq!(child.recv(), Some(b'p'), "round {round}");
        child.signal(libc::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGKILL));
        assert_eq!(
            name.len(),
            0,
            "round {round}: the dead creator left 0 bytes"
        );

        if round % 4 < 2 {
            // A plain open_or_create sizes it (grow only) and opens it.
            let seg = SegmentOptions::new()
                .open_or_create()
                .create(&name.0, 4096)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(!seg.created());
            assert_eq!(seg.size().unwrap(), 4096, "round {round}");
            seg.map().unwrap().write_at(4095, b"x").unwrap();
        } else {
            // The typed layer initialises it. A long timeout: before the fix this waited
            // it out and failed with "nobody initialised it".
            let (seg, shared) = SharedOptions::new(1)
                .timeout(Duration::from_secs(60))
                .create_or_open_segment::<AtomicU64>(&name.0, |s| {
                    s.with(|v| v.store(42, Ordering::Relaxed))
                })
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(shared.with(|v| v.load(Ordering::Relaxed)).unwrap(), 42);
            assert!(seg.size().unwrap() >= 8);
        }
    }
}

#[test]
fn a_plain_open_of_an_empty_segment_says_how_to_remove_it() {
    let name = Name::new("empty");
    let mut child = creator(&name.0, 4096, "locked", None);
    assert_eq!(child.recv(), Some(b'p'));
    child.signal(libc::SIGKILL).unwrap();
    child.wait().unwrap();
    let e = Segment::open(&name.0).unwrap().map().unwrap_err();
    let text = e.to_string();
    assert!(text.contains("0 bytes") && text.contains("died"), "{text}");
    assert!(
        e.hint_text()
            .unwrap()
            .contains(&format!("mmkit shm rm {}", name.0)),
        "{text}"
    );
}

#[test]
fn a_live_creator_holding_the_sizing_lock_is_waited_for_not_robbed() {
    for round in 0..5 {
        let name = Name::new("slow");
        let (mut go, go_child) = UnixStream::pair().unwrap();
        let mut child = creator(&name.0, 8192, "locked", Some(go_child));
        assert_eq!(child.recv(), Some(b'p'));
        // The opener asks for more than the creator: had it sized the segment itself,
        // the size would be its 16384 (sizing only grows).
        let seg_name = name.0.clone();
        let opener = std::thread::spawn(move || {
            SegmentOptions::new()
                .open_or_create()
                .create(&seg_name, 16384)
        });
        // Give the opener time to find 0 bytes and the lock busy (no assertion on time:
        // it is correct whether or not it got there first).
        std::thread::sleep(Duration::from_millis(20));
        go.write_all(b"g").unwrap();
        let seg = opener.join().unwrap().expect("opener");
        assert_eq!(child.wait().unwrap(), Exit::Code(0), "round {round}");
        assert!(!seg.created());
        assert_eq!(
            seg.size().unwrap(),
            8192,
            "round {round}: the opener sized it"
        );
        let mut c = [0u8];
        seg.map().unwrap().read_at(0, &mut c).unwrap();
        assert_eq!(&c, b"C");
    }
}

#[test]
fn a_live_creator_sized_first_in_its_window_keeps_the_name_and_its_size() {
    // Stopped after shm_open, before taking the lock: an opener finds 0 bytes and a free
    // lock and sizes the segment; the creator then finishes, still the creator, with at
    // least its own size, and nothing shrinks under the opener.
    for (opener_size, want) in [(4096u64, 8192u64), (16384, 16384)] {
        let name = Name::new("window");
        let (mut go, go_child) = UnixStream::pair().unwrap();
        let mut child = creator(&name.0, 8192, "opened", Some(go_child));
        assert_eq!(child.recv(), Some(b'p'));
        let seg = SegmentOptions::new()
            .open_or_create()
            .create(&name.0, opener_size)
            .unwrap();
        assert!(!seg.created());
        assert_eq!(seg.size().unwrap(), opener_size);
        go.write_all(b"g").unwrap();
        assert_eq!(child.wait().unwrap(), Exit::Code(0));
        assert_eq!(seg.size().unwrap(), want);
    }
}
