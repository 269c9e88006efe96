//! The process-shared condition variable against real child processes: a one-slot
//! producer/consumer passing counters for many rounds, `notify_all` reaching every
//! waiter, timeouts, and a mutex owner killed with `kill -9` while a waiter waits.
//!
//! Every wait is bounded: a lost wakeup shows as a timed-out wait whose condition is
//! still false, which fails the test instead of hanging it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use mmkit::process::{Child, Exit};
use mmkit::shm::condvar::Condvar;
use mmkit::shm::sync::{LockResult, RobustMutex, RobustMutexGuard};
use mmkit::Mapping;

use common::shared;
use mmkit_testkit as common;

/// The bound on every wait: far beyond any honest one.
const LIMIT: Duration = Duration::from_secs(20);

/// Exit codes of the children.
const LOST_WAKEUP: i32 = 5;
const LOCK_FAILED: i32 = 1;
const WRONG_VALUE: i32 = 3;

/// The shared words: mutex, two condvars, a full flag, the slot, a sum.
struct Words<'a> {
    mutex: RobustMutex<'a>,
    not_empty: Condvar<'a>,
    not_full: Condvar<'a>,
    full: &'a AtomicU32,
    slot: &'a AtomicU64,
    sum: &'a AtomicU64,
}

fn words(map: &Mapping) -> Words<'_> {
    Words {
        mutex: RobustMutex::from_mapping(map, 0).unwrap(),
        not_empty: Condvar::from_mapping(map, 4).unwrap(),
        not_full: Condvar::from_mapping(map, 8).unwrap(),
        full: &map.atomic_u32s(12, 1).unwrap()[0],
        slot: &map.atomic_u64s(16, 1).unwrap()[0],
        sum: &map.atomic_u64s(24, 1).unwrap()[0],
    }
}

/// Wait on `cv` until `ready()` holds; `Err(exit code)` on a lost wakeup or lock error.
fn wait_for<'m>(
    cv: &Condvar<'_>,
    mut g: RobustMutexGuard<'m>,
    ready: impl Fn() -> bool,
) -> Result<RobustMutexGuard<'m>, i32> {
    while !ready() {
        let (r, timed_out) = cv.wait_timeout(g, LIMIT).map_err(|_| LOCK_FAILED)?;
        let LockResult::Acquired(next) = r else {
            return Err(LOCK_FAILED);
        };
        g = next;
        if timed_out && !ready() {
            return Err(LOST_WAKEUP);
        }
    }
    Ok(g)
}

/// Take the mutex (an owner's death is ignored: the tests that kill owners check it).
fn lock<'a>(w: &'a Words<'_>) -> Result<RobustMutexGuard<'a>, i32> {
    let r = w.mutex.lock_timeout(LIMIT).map_err(|_| LOCK_FAILED)?;
    Ok(r.into_guard())
}

/// Put `first..first+n` into the slot, one at a time.
fn produce(w: &Words<'_>, first: u64, n: u64) -> Result<(), i32> {
    for v in first..first + n {
        let g = lock(w)?;
        let g = wait_for(&w.not_full, g, || w.full.load(Relaxed) == 0)?;
        w.slot.store(v, Relaxed);
        w.full.store(1, Relaxed);
        drop(g);
        w.not_empty.notify_one();
    }
    Ok(())
}

/// Take `n` values out of the slot, adding them to the sum.
fn consume(w: &Words<'_>, n: u64) -> Result<(), i32> {
    for _ in 0..n {
        let g = lock(w)?;
        let g = wait_for(&w.not_empty, g, || w.full.load(Relaxed) == 1)?;
        let v = w.slot.load(Relaxed);
        if v == 0 {
            return Err(WRONG_VALUE);
        }
        w.sum.fetch_add(v, Relaxed);
        w.full.store(0, Relaxed);
        drop(g);
        w.not_full.notify_one();
    }
    Ok(())
}

/// A child running `f`: exit code 0 for `Ok`, the code of `Err`. The children lock,
/// touch shared atomics and return; they take no lock another thread of the harness
/// could hold.
fn spawn(f: impl FnOnce() -> Result<(), i32>) -> Child {
    common::spawn(|| f().err().unwrap_or(0))
}

#[test]
fn producers_and_consumers_pass_every_counter_through_one_slot() {
    const PER_PRODUCER: u64 = 3000;
    let map = shared();
    let w = words(&map);
    let kids = vec![
        spawn(|| produce(&w, 1, PER_PRODUCER)),
        spawn(|| produce(&w, 1 + PER_PRODUCER, PER_PRODUCER)),
        spawn(|| consume(&w, PER_PRODUCER)),
        spawn(|| consume(&w, PER_PRODUCER)),
    ];
    for k in kids {
        assert_eq!(k.wait().unwrap(), Exit::Code(0));
    }
    let n = 2 * PER_PRODUCER;
    assert_eq!(
        w.sum.load(Relaxed),
        n * (n + 1) / 2,
        "a counter was lost or doubled"
    );
    assert_eq!(w.full.load(Relaxed), 0);
}

#[test]
fn notify_all_wakes_every_waiting_process() {
    const ROUNDS: u32 = 10;
    const WAITERS: usize = 4;
    for _ in 0..ROUNDS {
        let map = shared();
        let w = words(&map);
        let kids: Vec<Child> = (0..WAITERS)
            .map(|_| {
                spawn(|| {
                    let g = w
                        .mutex
                        .lock_timeout(LIMIT)
                        .map_err(|_| LOCK_FAILED)?
                        .into_guard();
                    let g = wait_for(&w.not_empty, g, || w.full.load(Relaxed) == 1)?;
                    w.sum.fetch_add(1, Relaxed);
                    drop(g);
                    Ok(())
                })
            })
            .collect();
        let g = w.mutex.lock().unwrap().into_guard();
        w.full.store(1, Relaxed);
        drop(g);
        w.not_empty.notify_all();
        for k in kids {
            assert_eq!(k.wait().unwrap(), Exit::Code(0));
        }
        assert_eq!(w.sum.load(Relaxed), WAITERS as u64);
    }
}

#[test]
fn wait_timeout_returns_timed_out_with_the_lock_held() {
    let map = shared();
    let w = words(&map);
    let g = w.mutex.lock().unwrap().into_guard();
    let (r, timed_out) = w
        .not_empty
        .wait_timeout(g, Duration::from_millis(20))
        .unwrap();
    assert!(timed_out);
    assert!(matches!(r, LockResult::Acquired(_)));
    assert!(w.mutex.is_locked());
    drop(r);
    assert!(!w.mutex.is_locked());
}

/// A child that locks, sets the flag, notifies, reports and holds the lock until killed.
fn notifier_that_dies_holding(w: &Words<'_>) -> Child {
    // SAFETY: as in `spawn`.
    let mut child = unsafe {
        mmkit::process::fork(|link| {
            let Ok(g) = w.mutex.lock_timeout(LIMIT) else {
                return LOCK_FAILED;
            };
            w.full.store(1, Relaxed);
            w.not_empty.notify_all();
            link.send(1);
            loop {
                std::thread::sleep(Duration::from_millis(50));
                std::hint::black_box(&g);
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(1), "the notifier did not report");
    child
}

#[test]
fn a_waiter_relocks_with_owner_died_when_the_owner_is_killed() {
    const ROUNDS: u64 = 8;
    for round in 0..ROUNDS {
        let map = shared();
        let w = words(&map);
        // SAFETY: as in `spawn`.
        let mut waiter = unsafe {
            mmkit::process::fork(|link| {
                let Ok(LockResult::Acquired(mut g)) = w.mutex.lock_timeout(LIMIT) else {
                    return LOCK_FAILED;
                };
                link.send(1);
                while w.full.load(Relaxed) == 0 {
                    match w.not_empty.wait_timeout(g, LIMIT) {
                        Ok((LockResult::OwnerDied(mut g), _)) => {
                            g.mark_consistent();
                            return if w.full.load(Relaxed) == 1 {
                                0
                            } else {
                                WRONG_VALUE
                            };
                        }
                        Ok((LockResult::Acquired(next), false)) => g = next,
                        Ok((LockResult::Acquired(_), true)) => return LOST_WAKEUP,
                        Err(_) => return LOCK_FAILED,
                    }
                }
                2 // relocked normally although the notifier died holding the lock
            })
        }
        .unwrap();
        assert_eq!(waiter.recv(), Some(1));
        let victim = notifier_that_dies_holding(&w);
        std::thread::sleep(Duration::from_millis(round % 4));
        victim.signal(libc::SIGKILL).unwrap();
        assert_eq!(victim.wait().unwrap(), Exit::Signal(libc::SIGKILL));
        assert_eq!(waiter.wait().unwrap(), Exit::Code(0), "round {round}");
        assert!(!w.mutex.is_locked());
    }
}

/// A notifier that spins on `try_lock` grabs the mutex the moment `wait` releases it and
/// notifies at once: the narrowest window between the waiter's read of the word and
/// its sleep. A lost wakeup there leaves the wait to time out, and the test fails.
#[test]
fn a_notifier_spinning_on_the_lock_loses_no_wakeup() {
    const ROUNDS: u64 = 2000;
    let map = shared();
    let w = words(&map);
    let turn = w.slot; // odd: the waiter asks; even: the notifier answered
    let notifier = spawn(|| {
        let end = std::time::Instant::now() + LIMIT;
        while turn.load(Relaxed) < 2 * ROUNDS {
            if std::time::Instant::now() > end {
                return Err(LOST_WAKEUP);
            }
            let Some(r) = w.mutex.try_lock().map_err(|_| LOCK_FAILED)? else {
                continue;
            };
            let t = turn.load(Relaxed);
            if t % 2 == 1 {
                turn.store(t + 1, Relaxed);
                drop(r);
                w.not_empty.notify_one();
            }
        }
        Ok(())
    });
    for i in 0..ROUNDS {
        let g = w.mutex.lock_timeout(LIMIT).unwrap().into_guard();
        turn.store(2 * i + 1, Relaxed);
        let g = wait_for(&w.not_empty, g, || turn.load(Relaxed) == 2 * i + 2)
            .unwrap_or_else(|code| panic!("round {i}: exit code {code} (5: lost wakeup)"));
        drop(g);
    }
    assert_eq!(notifier.wait().unwrap(), Exit::Code(0));
}
