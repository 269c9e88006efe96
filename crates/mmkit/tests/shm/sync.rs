//! The robust process-shared mutex against real child processes: exact counts under
//! contention, `kill -9` of holders at random points (the next locker must get
//! `OwnerDied` and repair the state), and `ENOTRECOVERABLE` after an unrepaired release.
//!
//! Every wait is bounded (`lock_timeout`), so a bug fails a test instead of hanging it.

use std::time::Duration;

use mmkit::process::{Child, Exit};
use mmkit::shm::sync::{LockResult, RobustMutex};
use mmkit::Mapping;

use common::shared;
use mmkit_testkit as common;

/// The bound on every lock in these tests: far beyond any honest wait.
const LIMIT: Duration = Duration::from_secs(60);

// Layout of the data mapping.
const COUNTER: usize = 0;
const A: usize = 8;
const B: usize = 16;
const DIRTY: usize = 24;

fn read(map: &Mapping, off: usize) -> u64 {
    map.read_value::<u64>(off).unwrap()
}

/// A racy read-modify-write: only the lock makes it exact.
fn bump(map: &mut Mapping, off: usize) -> mmkit::Result<()> {
    let v = map.read_value::<u64>(off)?;
    map.write_value(off, &(v + 1))
}

/// Fork a child that increments the counter `n` times under the lock, checking the
/// invariant (a == b, not dirty) each time. Exit codes: 0 ok, 1 lock error,
/// 2 unexpected OwnerDied, 3 invariant broken, 4 I/O.
fn incrementer(mutex: RobustMutex<'_>, data: &mut Mapping, n: u32) -> Child {
    // SAFETY: the child only locks, copies to and from shared memory and returns; it
    // takes no lock another thread of the test harness could hold (allocation is
    // fork-safe in glibc).
    unsafe {
        mmkit::process::fork(|_link| {
            for _ in 0..n {
                let g = match mutex.lock_timeout(LIMIT) {
                    Ok(LockResult::Acquired(g)) => g,
                    Ok(LockResult::OwnerDied(_)) => return 2,
                    Err(_) => return 1,
                };
                let (Ok(a), Ok(b), Ok(d)) = (
                    data.read_value::<u64>(A),
                    data.read_value::<u64>(B),
                    data.read_value::<u64>(DIRTY),
                ) else {
                    return 4;
                };
                if a != b || d != 0 {
                    return 3;
                }
                if bump(data, COUNTER).is_err() {
                    return 4;
                }
                drop(g);
            }
            0
        })
    }
    .unwrap()
}

/// Fork a child that takes the lock, marks the state dirty, half-updates it (a += 1),
/// reports over its link and then keeps updating (b catches up, a runs ahead again)
/// until it is killed, so the kill lands at a random point.
/// `kill -9` a child and check that the signal ended it.
fn kill(victim: Child) {
    victim.signal(libc::SIGKILL).unwrap();
    assert_eq!(victim.wait().unwrap(), Exit::Signal(libc::SIGKILL));
}

fn holder(mutex: RobustMutex<'_>, data: &mut Mapping) -> Child {
    // SAFETY: as in `incrementer`.
    let mut child = unsafe {
        mmkit::process::fork(|link| {
            let g = match mutex.lock_timeout(LIMIT) {
                Ok(LockResult::Acquired(g)) => g,
                Ok(LockResult::OwnerDied(_)) => return 2,
                Err(_) => return 1,
            };
            if data.write_value(DIRTY, &1u64).is_err() || bump(data, A).is_err() {
                return 4;
            }
            link.send(1);
            loop {
                if bump(data, B).is_err() || bump(data, A).is_err() {
                    return 4;
                }
                std::hint::black_box(&g);
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(1), "the holder did not report");
    child
}

/// Repair after OwnerDied: b = a, clear the marker.
fn repair(data: &mut Mapping) -> mmkit::Result<()> {
    let a = data.read_value::<u64>(A)?;
    data.write_value(B, &a)?;
    data.write_value(DIRTY, &0u64)
}

#[test]
fn children_increment_a_racy_counter_exactly_under_the_lock() {
    const CHILDREN: u64 = 4;
    const EACH: u32 = 2000;
    let lock_map = shared();
    let mut data = shared();
    let mutex = RobustMutex::from_mapping(&lock_map, 0).unwrap();
    let kids: Vec<Child> = (0..CHILDREN)
        .map(|_| incrementer(mutex, &mut data, EACH))
        .collect();
    for k in kids {
        assert_eq!(k.wait().unwrap(), Exit::Code(0));
    }
    assert_eq!(read(&data, COUNTER), CHILDREN * u64::from(EACH));
    assert!(!mutex.is_locked());
}

#[test]
fn kill_9_of_holders_gives_owner_died_and_loses_no_update() {
    const ROUNDS: u32 = 30;
    const EACH: u32 = 100;
    let lock_map = shared();
    let mut data = shared();
    let mutex = RobustMutex::from_mapping(&lock_map, 0).unwrap();
    for round in 0..ROUNDS {
        let victim = holder(mutex, &mut data);
        // Vary where in its update loop the holder dies.
        std::thread::sleep(Duration::from_micros(u64::from(round % 7) * 300));
        match round % 3 {
            // A waiter in another process, already blocked, recovers.
            0 => {
                // SAFETY: as in `incrementer`.
                let mut rescuer = unsafe {
                    mmkit::process::fork(|link| {
                        link.send(1);
                        let mut g = match mutex.lock_timeout(LIMIT) {
                            Ok(LockResult::OwnerDied(g)) => g,
                            Ok(LockResult::Acquired(_)) => return 2,
                            Err(_) => return 1,
                        };
                        if repair(&mut data).is_err() {
                            return 4;
                        }
                        g.mark_consistent();
                        0
                    })
                }
                .unwrap();
                assert_eq!(rescuer.recv(), Some(1));
                victim.signal(libc::SIGKILL).unwrap();
                assert_eq!(rescuer.wait().unwrap(), Exit::Code(0), "round {round}");
                assert_eq!(victim.wait().unwrap(), Exit::Signal(libc::SIGKILL));
            }
            // The parent recovers while the victim is still an unreaped zombie.
            1 => {
                victim.signal(libc::SIGKILL).unwrap();
                recover_in_parent(mutex, &mut data, round);
                assert_eq!(victim.wait().unwrap(), Exit::Signal(libc::SIGKILL));
            }
            // The parent recovers after reaping (the TID is gone from /proc).
            _ => {
                kill(victim);
                recover_in_parent(mutex, &mut data, round);
            }
        }
        assert_eq!(
            read(&data, A),
            read(&data, B),
            "round {round}: not repaired"
        );
        assert_eq!(read(&data, DIRTY), 0);
        let kids = [
            incrementer(mutex, &mut data, EACH),
            incrementer(mutex, &mut data, EACH),
        ];
        for k in kids {
            assert_eq!(k.wait().unwrap(), Exit::Code(0), "round {round}");
        }
        assert_eq!(read(&data, COUNTER), u64::from((round + 1) * 2 * EACH));
    }
    assert!(!mutex.is_locked());
    // Normal locking afterwards.
    assert!(matches!(
        mutex.lock_timeout(LIMIT).unwrap(),
        LockResult::Acquired(_)
    ));
}

fn recover_in_parent(mutex: RobustMutex<'_>, data: &mut Mapping, round: u32) {
    let r = mutex.lock_timeout(LIMIT).unwrap();
    assert!(
        r.is_owner_died(),
        "round {round}: the death was not reported"
    );
    let mut g = r.into_guard();
    assert!(g.is_inconsistent());
    repair(data).unwrap();
    g.mark_consistent();
    assert!(!g.is_inconsistent());
}

#[test]
fn unrepaired_release_makes_the_mutex_not_recoverable() {
    let lock_map = shared();
    let mut data = shared();
    let mutex = RobustMutex::from_mapping(&lock_map, 0).unwrap();
    let victim = holder(mutex, &mut data);
    kill(victim);

    let r = mutex.lock_timeout(LIMIT).unwrap();
    assert!(r.is_owner_died());
    drop(r); // no mark_consistent

    let err = mutex.lock_timeout(LIMIT).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOTRECOVERABLE), "{err}");
    assert_eq!(
        mutex.try_lock().unwrap_err().errno(),
        Some(libc::ENOTRECOVERABLE)
    );
    // Another process sees the same.
    // SAFETY: as in `incrementer`.
    let child = unsafe {
        mmkit::process::fork(|_| match mutex.lock_timeout(LIMIT) {
            Err(e) if e.errno() == Some(libc::ENOTRECOVERABLE) => 0,
            _ => 1,
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}

#[test]
fn a_recovering_owner_that_dies_too_passes_owner_died_on() {
    let lock_map = shared();
    let mut data = shared();
    let mutex = RobustMutex::from_mapping(&lock_map, 0).unwrap();
    let victim = holder(mutex, &mut data);
    kill(victim);
    // The second owner takes over and dies before repairing.
    // SAFETY: as in `incrementer`.
    let mut second = unsafe {
        mmkit::process::fork(|link| match mutex.lock_timeout(LIMIT) {
            Ok(LockResult::OwnerDied(_g)) => {
                link.send(1);
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            _ => 1,
        })
    }
    .unwrap();
    assert_eq!(
        second.recv(),
        Some(1),
        "the second owner did not see OwnerDied"
    );
    second.signal(libc::SIGKILL).unwrap();
    let r = mutex.lock_timeout(LIMIT).unwrap();
    assert!(r.is_owner_died());
    let mut g = r.into_guard();
    repair(&mut data).unwrap();
    g.mark_consistent();
    drop(g);
    assert!(matches!(
        mutex.lock_timeout(LIMIT).unwrap(),
        LockResult::Acquired(_)
    ));
    assert_eq!(second.wait().unwrap(), Exit::Signal(libc::SIGKILL));
}

#[test]
fn timeout_relock_and_try_lock_report_without_hanging() {
    let lock_map = shared();
    let mutex = RobustMutex::from_mapping(&lock_map, 0).unwrap();
    let g = mutex.lock().unwrap().into_guard();
    assert!(!g.is_inconsistent());
    assert!(mutex.is_locked());
    // Same thread again: EDEADLK, not a hang.
    assert_eq!(
        mutex.lock_timeout(LIMIT).unwrap_err().errno(),
        Some(libc::EDEADLK)
    );
    // A live owner in another process: try_lock says no, a short timeout expires.
    // SAFETY: as in `incrementer`.
    let child = unsafe {
        mmkit::process::fork(|_| {
            if !matches!(mutex.try_lock(), Ok(None)) {
                return 1;
            }
            match mutex.lock_timeout(Duration::from_millis(50)) {
                Err(e) if e.errno() == Some(libc::ETIMEDOUT) => 0,
                _ => 2,
            }
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    drop(g);
    assert!(!mutex.is_locked());
    assert!(matches!(
        mutex.try_lock().unwrap(),
        Some(LockResult::Acquired(_))
    ));
}

#[test]
fn the_word_must_be_aligned() {
    let lock_map = shared();
    assert!(RobustMutex::from_mapping(&lock_map, 2).is_err());
    assert!(RobustMutex::from_mapping(&lock_map, 4096).is_err());
}

#[test]
fn semaphore_counts_posts_from_other_processes_exactly() {
    use mmkit::shm::sync::Semaphore;
    const POSTERS: u32 = 3;
    const EACH: u32 = 500;
    let map = shared();
    let sem = Semaphore::from_mapping(&map, 0).unwrap();
    let done = Semaphore::from_mapping(&map, 4).unwrap();
    assert!(!sem.try_wait());
    assert!(!sem.wait_timeout(Duration::from_millis(10)).unwrap());
    // Posters wait for a go signal so the parent is already blocked when posts begin.
    let kids: Vec<Child> = (0..POSTERS)
        .map(|_| {
            // SAFETY: the children only touch atomics in shared memory and return.
            unsafe {
                mmkit::process::fork(|_| {
                    if !matches!(done.wait_timeout(LIMIT), Ok(true)) {
                        return 1;
                    }
                    for _ in 0..EACH {
                        if sem.post().is_err() {
                            return 2;
                        }
                    }
                    0
                })
            }
            .unwrap()
        })
        .collect();
    for _ in 0..POSTERS {
        done.post().unwrap();
    }
    for i in 0..POSTERS * EACH {
        assert!(sem.wait_timeout(LIMIT).unwrap(), "post {i} never came");
    }
    for k in kids {
        assert_eq!(k.wait().unwrap(), Exit::Code(0));
    }
    assert!(!sem.try_wait(), "more taken than posted");
    assert_eq!(sem.value(), 0);
    assert_eq!(done.value(), 0);
}

#[test]
fn semaphore_wakes_a_waiter_in_another_process() {
    use mmkit::shm::sync::Semaphore;
    let map = shared();
    let ping = Semaphore::from_mapping(&map, 0).unwrap();
    let pong = Semaphore::from_mapping(&map, 64).unwrap();
    // SAFETY: the child only touches atomics in shared memory and returns.
    let child = unsafe {
        mmkit::process::fork(|_| {
            for _ in 0..200 {
                if !matches!(ping.wait_timeout(LIMIT), Ok(true)) || pong.post().is_err() {
                    return 1;
                }
            }
            0
        })
    }
    .unwrap();
    for _ in 0..200 {
        ping.post().unwrap();
        assert!(pong.wait_timeout(LIMIT).unwrap());
    }
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}
