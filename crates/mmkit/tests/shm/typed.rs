//! `Shared<T>` against real child processes: the create-or-open race on a named segment
//! (initialiser runs exactly once), fork-inherited anonymous memory, takeover from an
//! initialiser killed with `kill -9`, and the layout errors (too small, wrong magic,
//! wrong version, wrong type size), and the futex wait: many waiters in other processes,
//! each with its own mapping of a memfd, all released with the initialised value, by a
//! publish, by a failing initialiser's give-back, or out of `open` before anyone claimed.
//!
//! Every wait is bounded (`SharedOptions::timeout`), so a bug fails instead of hanging.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use mmkit::process::{Child, Exit};
use mmkit::shm::segment::Segment;
use mmkit::shm::typed::{Shared, SharedOptions, SharedSafe, HEADER_SIZE, MAGIC};
use mmkit::shm::{Memfd, SealedSegment};
use mmkit::{ErrorKind, MapOptions, Mapping};

use common::Name;
use mmkit_testkit as common;

#[repr(C)]
#[derive(Debug)]
struct Counters {
    /// Set to 7 by the initialiser.
    seeded: AtomicU64,
    hits: AtomicU64,
}
// SAFETY: repr(C), two atomic integers, no padding; any bits are valid.
unsafe impl SharedSafe for Counters {}

fn opts() -> SharedOptions {
    let mut o = SharedOptions::new(1);
    o.timeout(Duration::from_secs(30));
    o
}

/// The initialiser: counts its runs in `runs` (outside the segment) and seeds.
fn seed<'a>(runs: &'a AtomicU64) -> impl FnOnce(&mut Shared<Counters>) -> mmkit::Result<()> + 'a {
    move |s| {
        runs.fetch_add(1, Relaxed);
        // Widen the race window so losers really wait.
        std::thread::sleep(Duration::from_millis(2));
        s.with(|c| c.seeded.store(7, Relaxed))
    }
}

fn anon(len: usize) -> Mapping {
    MapOptions::new().len(len).map_anon_shared().unwrap()
}

/// A child that creates-or-opens `name`, checks the seed and counts a hit. Exit codes:
/// 0 ok, 1 open failed, 2 not seeded, 3 access failed.
fn racer(name: &str, runs: &AtomicU64) -> Child {
    // SAFETY: the child opens a segment, touches shared memory and returns.
    unsafe {
        mmkit::process::fork(|_| {
            let Ok((_seg, shared)) = opts().create_or_open_segment(name, seed(runs)) else {
                return 1;
            };
            match shared.with(|c| (c.seeded.load(Relaxed), c.hits.fetch_add(1, Relaxed))) {
                Ok((7, _)) => 0,
                Ok(_) => 2,
                Err(_) => 3,
            }
        })
    }
    .unwrap()
}

#[test]
fn racing_creators_on_a_named_segment_initialise_exactly_once() {
    const ROUNDS: u64 = 25;
    const RACERS: u64 = 4;
    let counts = anon(4096);
    let runs = &counts.atomic_u64s(0, 1).unwrap()[0];
    for round in 0..ROUNDS {
        let name = Name::new(&format!("race{round}"));
        runs.store(0, Relaxed);
        let kids: Vec<Child> = (0..RACERS).map(|_| racer(&name.0, runs)).collect();
        for k in kids {
            assert_eq!(k.wait().unwrap(), Exit::Code(0), "round {round}");
        }
        assert_eq!(runs.load(Relaxed), 1, "round {round}: initialiser runs");
        let (_seg, shared) = opts()
            .create_or_open_segment::<Counters>(&name.0, |_| panic!("initialised twice"))
            .unwrap();
        let hits = shared.with(|c| c.hits.load(Relaxed)).unwrap();
        assert_eq!(hits, RACERS, "round {round}");
    }
}

#[test]
fn fork_inherited_anonymous_memory_lends_a_reference() {
    const CHILDREN: u64 = 4;
    const EACH: u64 = 5000;
    let map = anon(Shared::<Counters>::required_len());
    let shared: Shared<Counters> = opts()
        .create_or_open(map, |s: &mut Shared<Counters>| {
            s.with(|c| c.seeded.store(7, Relaxed))
        })
        .unwrap();
    let kids: Vec<Child> = (0..CHILDREN)
        .map(|_| {
            // SAFETY: the children only touch shared atomics and return.
            unsafe {
                mmkit::process::fork(|_| {
                    let Ok(c) = shared.get() else { return 1 };
                    for _ in 0..EACH {
                        c.hits.fetch_add(1, Relaxed);
                    }
                    0
                })
            }
            .unwrap()
        })
        .collect();
    for k in kids {
        assert_eq!(k.wait().unwrap(), Exit::Code(0));
    }
    let c = shared.get().unwrap();
    assert_eq!(c.seeded.load(Relaxed), 7);
    assert_eq!(c.hits.load(Relaxed), CHILDREN * EACH);
}

#[test]
fn get_is_refused_on_a_segment_that_can_shrink() {
    let name = Name::new("get");
    let (_seg, shared) = opts()
        .create_or_open_segment::<Counters>(&name.0, |_| Ok(()))
        .unwrap();
    let e = shared.get().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("Shared::with"), "{e}");
}

/// A child that claims the initialisation, reports, and hangs until killed.
fn stuck_initialiser(name: &str, runs: &AtomicU64) -> Child {
    // SAFETY: as in `racer`.
    let mut child = unsafe {
        mmkit::process::fork(|link| {
            let _ = opts().create_or_open_segment::<Counters>(name, |s| {
                runs.fetch_add(1, Relaxed);
                let _ = s.with(|c| c.seeded.store(99, Relaxed)); // half-built
                link.send(1);
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            1
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(1), "the initialiser did not start");
    child
}

#[test]
fn a_waiter_takes_over_from_an_initialiser_killed_mid_init() {
    const ROUNDS: u64 = 5;
    let counts = anon(4096);
    let runs = &counts.atomic_u64s(0, 1).unwrap()[0];
    for round in 0..ROUNDS {
        let name = Name::new(&format!("takeover{round}"));
        runs.store(0, Relaxed);
        let stuck = stuck_initialiser(&name.0, runs);
        // Peers already waiting when the initialiser dies: exactly one takes over, and
        // every one sees its value.
        let waiters: Vec<Child> = (0..3).map(|_| racer(&name.0, runs)).collect();
        std::thread::sleep(Duration::from_millis(round * 5));
        stuck.signal(libc::SIGKILL).unwrap();
        assert_eq!(stuck.wait().unwrap(), Exit::Signal(libc::SIGKILL));
        for w in waiters {
            assert_eq!(w.wait().unwrap(), Exit::Code(0), "round {round}");
        }
        assert_eq!(
            runs.load(Relaxed),
            2,
            "round {round}: the dead run and the takeover"
        );
        let (_seg, shared) = opts()
            .create_or_open_segment::<Counters>(&name.0, |_| panic!("initialised again"))
            .unwrap();
        assert_eq!(shared.with(|c| c.seeded.load(Relaxed)).unwrap(), 7);
    }
}

#[test]
fn a_failing_initialiser_hands_the_claim_back() {
    let name = Name::new("fail");
    let err = opts()
        .create_or_open_segment::<Counters>(&name.0, |s| {
            s.with(|c| c.seeded.store(1, Relaxed))?;
            Err(mmkit::shm::segment::Segment::open("/").unwrap_err())
        })
        .unwrap_err();
    assert!(err.to_string().contains("bad segment name"), "{err}");
    let (_seg, shared) = opts()
        .create_or_open_segment::<Counters>(&name.0, |s| s.with(|c| c.seeded.store(7, Relaxed)))
        .unwrap();
    assert_eq!(shared.with(|c| c.seeded.load(Relaxed)).unwrap(), 7);
}

#[test]
fn a_segment_too_small_is_a_layout_error_naming_the_sizes() {
    let name = Name::new("small");
    let seg = Segment::create(&name.0, 16).unwrap();
    let e = opts()
        .create_or_open::<Counters>(seg.map().unwrap(), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Layout);
    let need = Shared::<Counters>::required_len();
    assert!(e.to_string().contains("is 16 bytes"), "{e}");
    assert!(e.to_string().contains(&format!("need {need}")), "{e}");
    // The same through the segment helper, which finds the existing small segment.
    let e = opts()
        .create_or_open_segment::<Counters>(&name.0, |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Layout);
}

#[test]
fn a_wrong_magic_is_refused() {
    let name = Name::new("magic");
    let seg = Segment::create(&name.0, 4096).unwrap();
    let mut map = seg.map().unwrap();
    map.write_value(0, &0x1234_5678_u64).unwrap(); // magic
    map.write_value(8, &2u32).unwrap(); // state: ready
    let e = opts()
        .create_or_open::<Counters>(map, |_| panic!("must not initialise"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Layout);
    assert!(e.to_string().contains("magic 0x0000000012345678"), "{e}");
    assert!(e.to_string().contains(&format!("{MAGIC:#018x}")), "{e}");
}

#[test]
fn a_wrong_version_or_type_size_is_refused_naming_both() {
    let name = Name::new("version");
    let (_seg, _v2) = SharedOptions::new(2)
        .create_or_open_segment::<Counters>(&name.0, |_| Ok(()))
        .unwrap();
    let e = SharedOptions::new(1)
        .create_or_open_segment::<Counters>(&name.0, |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Layout);
    assert!(
        e.to_string()
            .contains("layout version 2, this program expects 1"),
        "{e}"
    );
    let e = SharedOptions::new(2)
        .open::<[AtomicU64; 1]>(Segment::open(&name.0).unwrap().map().unwrap())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("type size 16 bytes, this program's type is 8 bytes"),
        "{e}"
    );
}

#[test]
fn open_without_an_initialiser_times_out() {
    let map = anon(4096);
    let e = SharedOptions::new(1)
        .timeout(Duration::from_millis(30))
        .open::<Counters>(map)
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
    assert!(e.to_string().contains("nobody initialised it"), "{e}");
}

#[test]
fn plain_data_is_copied_across_processes() {
    let map = anon(4096);
    let mut shared: Shared<[u64; 4]> = opts()
        .create_or_open(map, |s| s.write(&[1, 2, 3, 4]))
        .unwrap();
    // SAFETY: the child copies to and from shared memory and returns.
    let child = unsafe {
        mmkit::process::fork(|_| match shared.read() {
            Ok([1, 2, 3, 4]) => match shared.write(&[5, 6, 7, 8]) {
                Ok(()) => 0,
                Err(_) => 3,
            },
            Ok(_) => 2,
            Err(_) => 1,
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    assert_eq!(shared.read().unwrap(), [5, 6, 7, 8]);
    assert_eq!(Shared::<[u64; 4]>::offset(), HEADER_SIZE);
}

#[test]
fn a_panicking_initialiser_hands_the_claim_back() {
    let name = Name::new("panic");
    let caught = std::panic::catch_unwind(|| {
        opts().create_or_open_segment::<Counters>(&name.0, |_| panic!("init failed"))
    });
    assert!(caught.is_err());
    // Without the claim given back this would wait for a live initialiser and time out.
    let (_seg, shared) = SharedOptions::new(1)
        .timeout(Duration::from_secs(30))
        .create_or_open_segment::<Counters>(&name.0, |s| s.with(|c| c.seeded.store(7, Relaxed)))
        .unwrap();
    assert_eq!(shared.with(|c| c.seeded.load(Relaxed)).unwrap(), 7);
}

#[test]
fn a_live_initialiser_that_never_finishes_times_the_waiter_out_naming_it() {
    let name = Name::new("stuck");
    let counts = anon(4096);
    let runs = &counts.atomic_u64s(0, 1).unwrap()[0];
    let stuck = stuck_initialiser(&name.0, runs);
    let e = SharedOptions::new(1)
        .timeout(Duration::from_millis(50))
        .create_or_open_segment::<Counters>(&name.0, |_| panic!("the holder lives"))
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ETIMEDOUT), "{e}");
    let holder = format!("process {} is still initialising it", stuck.pid());
    assert!(e.to_string().contains(&holder), "{e}");
    stuck.signal(libc::SIGKILL).unwrap();
    assert_eq!(stuck.wait().unwrap(), Exit::Signal(libc::SIGKILL));
    assert_eq!(runs.load(Relaxed), 1);
}

fn memfd() -> SealedSegment {
    Memfd::new("shm_typed")
        .size(Shared::<Counters>::required_len() as u64)
        .create(&[])
        .unwrap()
}

/// A child that maps `seg` itself (its own address, as an unrelated process would),
/// says 'w', then waits in `create_or_open` (or `open`) for a value someone else
/// initialises. Exit codes: 0 saw 7, 1 open failed, 2 another value, 5 it initialised.
fn waiter(seg: &SealedSegment, use_open: bool) -> Child {
    // SAFETY: the child maps a memfd, touches shared atomics and returns.
    let mut child = unsafe {
        mmkit::process::fork(|link| {
            let Ok(map) = seg.map() else { return 1 };
            link.send(b'w');
            let got = if use_open {
                opts().open::<Counters>(map)
            } else {
                opts().create_or_open::<Counters>(map, |_| Err(Segment::open("/").unwrap_err()))
            };
            match got.map(|s| s.with(|c| c.seeded.load(Relaxed))) {
                Ok(Ok(7)) => 0,
                Ok(_) => 2,
                Err(e) if e.to_string().contains("bad segment name") => 5,
                Err(_) => 1,
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(b'w'), "the waiter did not start");
    child
}

#[test]
fn many_waiters_in_other_processes_all_see_the_published_value() {
    const WAITERS: usize = 12;
    for use_open in [false, true] {
        let seg = memfd();
        let mut kids = Vec::new();
        let shared = opts()
            .create_or_open::<Counters>(seg.map().unwrap(), |s| {
                kids = (0..WAITERS).map(|_| waiter(&seg, use_open)).collect();
                // Widen the window so the waiters really sleep (not a timing check).
                std::thread::sleep(Duration::from_millis(20));
                s.with(|c| c.seeded.store(7, Relaxed))
            })
            .unwrap();
        for k in kids {
            assert_eq!(k.wait().unwrap(), Exit::Code(0), "open: {use_open}");
        }
        assert_eq!(shared.with(|c| c.seeded.load(Relaxed)).unwrap(), 7);
    }
}

#[test]
fn waiters_in_open_before_anyone_claims_are_released_by_the_initialiser() {
    let seg = memfd();
    let kids: Vec<Child> = (0..6).map(|_| waiter(&seg, true)).collect();
    std::thread::sleep(Duration::from_millis(20));
    let shared = opts()
        .create_or_open::<Counters>(seg.map().unwrap(), |s| {
            s.with(|c| c.seeded.store(7, Relaxed))
        })
        .unwrap();
    for k in kids {
        assert_eq!(k.wait().unwrap(), Exit::Code(0));
    }
    assert_eq!(shared.with(|c| c.seeded.load(Relaxed)).unwrap(), 7);
}

#[test]
fn a_waiter_claims_what_a_failing_initialiser_gives_back() {
    let seg = memfd();
    let mut kid = None;
    let e = opts()
        .create_or_open::<Counters>(seg.map().unwrap(), |_| {
            kid = Some(racer_on(&seg));
            std::thread::sleep(Duration::from_millis(20));
            Err(Segment::open("/").unwrap_err())
        })
        .unwrap_err();
    assert!(e.to_string().contains("bad segment name"), "{e}");
    assert_eq!(kid.unwrap().wait().unwrap(), Exit::Code(0));
    let shared = opts()
        .create_or_open::<Counters>(seg.map().unwrap(), |_| panic!("initialised again"))
        .unwrap();
    assert_eq!(shared.with(|c| c.seeded.load(Relaxed)).unwrap(), 7);
}

/// A child that waits in `create_or_open` on its own mapping of `seg` and, once the
/// claim is given back, initialises with 7. Exit 0 when it sees 7.
fn racer_on(seg: &SealedSegment) -> Child {
    // SAFETY: as in `waiter`.
    let mut child = unsafe {
        mmkit::process::fork(|link| {
            let Ok(map) = seg.map() else { return 1 };
            link.send(b'w');
            let got =
                opts().create_or_open::<Counters>(map, |s| s.with(|c| c.seeded.store(7, Relaxed)));
            match got.map(|s| s.with(|c| c.seeded.load(Relaxed))) {
                Ok(Ok(7)) => 0,
                Ok(_) => 2,
                Err(_) => 1,
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(b'w'), "the racer did not start");
    child
}
