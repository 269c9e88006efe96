//! The ring channel: ordering and contents under load, blocking and timeouts, errors,
//! peers that close or die, and a damaged ring.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mmkit::process::{fork, Exit};
use mmkit::shm::ring::{Ring, RingOptions};
use mmkit::ErrorKind;

use crate::ring_common;
use ring_common::{expected, Pattern};

#[test]
fn threads_exchange_millions_of_random_messages_in_order() {
    let ring = Ring::anonymous(1 << 16).unwrap();
    let pat = Pattern::new(ring.max_message());
    let n = 2_000_000u64;
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for seq in 0..n {
                // Half the messages zero-copy, half copied in.
                let got = if seq % 2 == 0 {
                    let mut r = tx.reserve(pat.len(seq)).unwrap();
                    pat.write(seq, &mut r);
                    r.commit()
                } else {
                    tx.send(&pat.message(seq)).unwrap()
                };
                assert_eq!(got, seq);
            }
        });
        for seq in 0..n {
            let m = rx.recv().unwrap();
            assert_eq!(m.seq(), seq);
            assert!(pat.matches(seq, &m), "message {seq} differs");
        }
    });
    assert!(rx.try_recv().unwrap().is_none());
    assert_eq!(ring.used(), 0);
}

#[test]
fn try_and_timeout_calls_do_not_wait_past_their_time() {
    let ring = RingOptions::new().capacity(4096).anonymous().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert!(rx.try_recv().unwrap().is_none());
    let t = Instant::now();
    assert!(rx
        .recv_timeout(Duration::from_millis(30))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(30));
    // Fill the ring with 1000-byte messages (1016-byte records): 4 fit in 4096.
    let msg = [7u8; 1000];
    let mut sent = 0;
    while tx.try_send(&msg).unwrap().is_some() {
        sent += 1;
    }
    assert_eq!(sent, 4);
    assert!(tx
        .send_timeout(&msg, Duration::from_millis(20))
        .unwrap()
        .is_none());
    assert!(tx.try_reserve(1000).unwrap().is_none());
    // One release makes room for exactly one more.
    rx.recv().unwrap().release();
    assert_eq!(tx.try_send(&msg).unwrap(), Some(4));
    for seq in 1..=4 {
        assert_eq!(rx.recv().unwrap().seq(), seq);
    }
}

#[test]
fn sizes_from_zero_to_the_largest_and_one_too_many() {
    let ring = Ring::anonymous(4096).unwrap();
    let max = ring.max_message();
    assert_eq!(max, 4096 / 4 - 16);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for len in [0, 1, 15, 16, 17, max - 1, max] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        tx.send(&data).unwrap();
        assert_eq!(rx.recv().unwrap().to_vec(), data, "length {len}");
    }
    let e = tx.send(&vec![0; max + 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    assert!(
        e.to_string().contains(&format!("at most {max} bytes")),
        "{e}"
    );
    // A reservation shortened before commit, and one abandoned.
    let mut r = tx.reserve(100).unwrap();
    r[..3].copy_from_slice(b"abc");
    r.truncate(3);
    r.commit();
    {
        let mut abandoned = tx.reserve(50).unwrap();
        abandoned.fill(9);
    }
    tx.send(b"after").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"abc");
    let m = rx.recv().unwrap();
    assert_eq!((&*m, m.seq()), (&b"after"[..], 8));
}

#[test]
fn a_role_is_taken_once_and_freed_by_drop() {
    let ring = Ring::anonymous(4096).unwrap();
    let tx = ring.producer().unwrap();
    let e = ring.producer().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy);
    assert!(
        e.to_string().contains(&std::process::id().to_string()),
        "{e}"
    );
    let rx = ring.consumer().unwrap();
    assert_eq!(ring.consumer().unwrap_err().kind(), ErrorKind::Busy);
    assert_eq!(ring.peers(), (std::process::id(), std::process::id()));
    drop((tx, rx));
    assert_eq!(ring.peers(), (0, 0));
    ring.producer().unwrap();
}

#[test]
fn consumer_drains_a_closed_producer_then_gets_closed() {
    let ring = Ring::anonymous(1 << 16).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for i in 0..10u8 {
        tx.send(&[i; 10]).unwrap();
    }
    drop(tx);
    for i in 0..10u8 {
        assert_eq!(&*rx.recv().unwrap(), &[i; 10]);
    }
    let e = rx.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    // A new producer reopens it and continues the numbering.
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.next_seq(), 10);
    tx.send(b"again").unwrap();
    assert_eq!(rx.recv().unwrap().seq(), 10);
}

#[test]
fn blocked_consumer_learns_the_producer_died_after_draining_it() {
    let ring = Ring::anonymous(1 << 16).unwrap();
    let marks = mmkit::MapOptions::new()
        .len(4096)
        .map_anon_shared()
        .unwrap();
    let committed = &marks.atomic_u64s(0, 1).unwrap()[0];
    // SAFETY: the child uses the ring and an atomic, then parks; it takes no locks.
    let mut child = unsafe {
        fork(|link| {
            let Ok(mut tx) = ring.producer() else {
                return 2;
            };
            for i in 0..1000u64 {
                if tx.send(&i.to_le_bytes()).is_err() {
                    return 3;
                }
                committed.store(i + 1, Ordering::Release);
            }
            link.send(b'r');
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(b'r'));
    let pid = child.pid() as u32;
    let mut rx = ring.consumer().unwrap();
    for i in 0..1000u64 {
        assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes());
    }
    child.signal(libc::SIGKILL).unwrap();
    let e = rx.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerDied, "{e}");
    assert!(e.to_string().contains(&pid.to_string()), "{e}");
    assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGKILL));
    assert_eq!(committed.load(Ordering::Acquire), 1000);
    // The dead producer's role is free for this process.
    let tx = ring.producer().unwrap();
    assert_eq!(tx.next_seq(), 1000);
}

#[test]
fn blocked_producer_learns_the_consumer_died() {
    let ring = RingOptions::new().capacity(4096).anonymous().unwrap();
    // SAFETY: the child uses the ring, then parks; it takes no locks.
    let mut child = unsafe {
        fork(|link| {
            let Ok(_rx) = ring.consumer() else { return 2 };
            link.send(b'r');
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(b'r'));
    let mut tx = ring.producer().unwrap();
    while tx.try_send(&[1; 500]).unwrap().is_some() {}
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        child.signal(libc::SIGKILL).unwrap();
        child.wait().unwrap()
    });
    let e = tx.send(&[1; 500]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerDied, "{e}");
    assert_eq!(killer.join().unwrap(), Exit::Signal(libc::SIGKILL));
    // A new consumer takes over and sees every committed message.
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.recv().unwrap().seq(), 0);
}

#[test]
fn an_idle_waiter_sleeps_instead_of_spinning() {
    let ring = Ring::anonymous(4096).unwrap();
    // SAFETY: the child uses the ring only.
    let mut child = unsafe {
        fork(|link| {
            let Ok(mut rx) = ring.consumer() else {
                return 2;
            };
            link.send(b'r');
            let ok = rx.recv().is_ok_and(|m| &*m == b"wake");
            if ok {
                0
            } else {
                3
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(b'r'));
    std::thread::sleep(Duration::from_millis(400));
    let cpu = cpu_time(child.pid());
    let mut tx = ring.producer().unwrap();
    tx.send(b"wake").unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    // A spinning waiter would have used about 400 ms of CPU.
    assert!(
        cpu < Duration::from_millis(100),
        "the idle consumer used {cpu:?} of CPU in 400 ms"
    );
}

/// User plus system CPU time of a process, from /proc/PID/stat.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn damaged_positions_and_foreign_memory_are_errors() {
    let name = format!("mmkit-ring-bad-{}", std::process::id());
    // SAFETY: this test is the only user of the segment, and damages it on purpose
    // through atomics only.
    let ring = unsafe { Ring::create_named(&name, 4096) }.unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"fine").unwrap();
    // Another mapping of the segment, written without the protocol. The first record's
    // header starts the data area (offset 4096): length, flags, mark (seq + 1).
    let mut raw = mmkit::shm::Segment::open(&name).unwrap().map().unwrap();
    raw.write_at(4096, &(1u32 << 30).to_le_bytes()).unwrap();
    let e = rx.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("record of length 1073741824"), "{e}");
    // Positions out of order: tail (first word of the third 128-byte line) past head.
    raw.write_at(4096, &4u32.to_le_bytes()).unwrap();
    raw.write_at(256, &(1u64 << 20).to_le_bytes()).unwrap();
    drop(tx);
    let e = ring.producer().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("tail 1048576"), "{e}");
    drop((rx, ring));
    mmkit::shm::Segment::unlink(&name).unwrap();

    // A segment that holds no ring.
    let plain = format!("mmkit-ring-plain-{}", std::process::id());
    mmkit::shm::Segment::create(&plain, 8192).unwrap();
    // SAFETY: nobody else uses the segment.
    let e = unsafe { Ring::open_named(&plain) }.unwrap_err();
    mmkit::shm::Segment::unlink(&plain).unwrap();
    assert_eq!(e.kind(), ErrorKind::Layout);
    assert!(e.to_string().contains("not an mmkit ring"), "{e}");
    let e = RingOptions::new().capacity(5000).anonymous().unwrap_err();
    assert!(e.to_string().contains("power of two"), "{e}");
}

#[test]
fn a_named_ring_is_shared_with_a_forked_process_that_opens_it() {
    let name = format!("mmkit-ring-named-{}", std::process::id());
    // SAFETY: only this test's processes use the segment, through `Ring`.
    let ring = unsafe { Ring::create_named(&name, 1 << 16) }.unwrap();
    let pat = Pattern::new(ring.max_message());
    // SAFETY: the child opens the ring and sends; it takes no locks.
    let child = unsafe {
        fork(|_| {
            // (unsafe: as above; the enclosing block covers it.)
            let Ok(ring) = Ring::open_named(&name) else {
                return 2;
            };
            let Ok(mut tx) = ring.producer() else {
                return 3;
            };
            for seq in 0..50_000 {
                if tx.send(&pat.message(seq)).is_err() {
                    return 4;
                }
            }
            0
        })
    }
    .unwrap();
    let mut rx = ring.consumer().unwrap();
    for seq in 0..50_000 {
        let m = rx.recv().unwrap();
        assert_eq!(expected(&pat, &m), Ok(seq));
    }
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    mmkit::shm::Segment::unlink(&name).unwrap();
}

/// A named ring and a second, raw mapping of it to put it in the states a process
/// killed between two stores leaves behind. Header words: `head` 128, `last_start` 136,
/// `last_seq` 144 (producer line); `tail` 256, `next_seq` 264 (consumer line). Record
/// slots start at 4096: length u32, flags u32, mark u64 (seq + 1).
struct Crashed {
    name: String,
    ring: Ring,
    raw: mmkit::Mapping,
}

impl Crashed {
    fn new(tag: &str) -> Crashed {
        let name = format!("mmkit-ring-{tag}-{}", std::process::id());
        // SAFETY: only this test uses the segment; it writes the header on purpose to
        // reproduce what a dying peer leaves.
        let ring = unsafe { Ring::create_named(&name, 4096) }.unwrap();
        let raw = mmkit::shm::Segment::open(&name).unwrap().map().unwrap();
        Crashed { name, ring, raw }
    }

    fn set(&mut self, off: usize, v: u64) {
        self.raw.write_at(off, &v.to_le_bytes()).unwrap();
    }

    fn get(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.raw.read_at(off, &mut b).unwrap();
        u64::from_le_bytes(b)
    }
}

impl Drop for Crashed {
    fn drop(&mut self) {
        let _ = mmkit::shm::Segment::unlink(&self.name);
    }
}

#[test]
fn a_producer_dead_after_its_commit_point_is_finished_by_the_next() {
    let mut c = Crashed::new("after-commit");
    let mut tx = c.ring.producer().unwrap();
    tx.send(b"first").unwrap();
    drop(tx);
    // Died after the mark, before head: head still 0.
    assert_eq!(c.get(128), 32);
    c.set(128, 0);
    let mut tx = c.ring.producer().unwrap();
    assert_eq!(tx.next_seq(), 1);
    assert_eq!(c.get(128), 32, "head repaired");
    tx.send(b"second").unwrap();
    let mut rx = c.ring.consumer().unwrap();
    assert_eq!(
        &*rx.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a message within 5 s"),
        b"first"
    );
    let m = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a message within 5 s");
    assert_eq!((&*m, m.seq()), (&b"second"[..], 1));
}

#[test]
fn a_producer_dead_before_its_commit_point_leaves_nothing_visible() {
    let mut c = Crashed::new("before-commit");
    let mut tx = c.ring.producer().unwrap();
    tx.send(b"first").unwrap();
    drop(tx);
    // Died after announcing record 1 at 32, before marking it.
    c.set(144, 1);
    c.set(136, 32);
    let mut tx = c.ring.producer().unwrap();
    assert_eq!(tx.next_seq(), 1, "the unmarked record's number is reused");
    let mut rx = c.ring.consumer().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a message within 5 s")
            .seq(),
        0
    );
    assert!(rx.try_recv().unwrap().is_none());
    tx.send(b"again").unwrap();
    let m = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a message within 5 s");
    assert_eq!((&*m, m.seq()), (&b"again"[..], 1));
}

#[test]
fn a_producer_dead_before_marking_the_padding_is_finished_by_the_next() {
    let mut c = Crashed::new("pad");
    let mut tx = c.ring.producer().unwrap();
    let mut rx = c.ring.consumer().unwrap();
    // A 16-byte record, then 1024-byte ones: the fifth record needs padding at 3088.
    let big = [3u8; 1000];
    tx.send(b"").unwrap();
    for _ in 0..3 {
        tx.send(&big).unwrap();
    }
    for _ in 0..4 {
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("a message within 5 s")
            .release();
    }
    tx.send(&big).unwrap();
    drop(tx);
    assert_eq!(c.get(128), 4096 + 1024);
    // Died after marking record 4 at the lap start, before the padding and head.
    c.set(4096 + 3088 + 8, 0);
    c.set(128, 3088);
    assert!(
        rx.try_recv().unwrap().is_none(),
        "padding unmarked: record 4 not reachable"
    );
    let tx = c.ring.producer().unwrap();
    assert_eq!(tx.next_seq(), 5);
    assert_eq!(c.get(128), 4096 + 1024);
    let m = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a message within 5 s");
    assert_eq!((m.len(), m.seq()), (1000, 4));
}

#[test]
fn a_consumer_dead_between_its_two_stores_gets_the_message_again() {
    let mut c = Crashed::new("consumer");
    let mut tx = c.ring.producer().unwrap();
    tx.send(b"zero").unwrap();
    tx.send(b"one").unwrap();
    let mut rx = c.ring.consumer().unwrap();
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a message within 5 s")
        .release();
    drop(rx);
    assert_eq!((c.get(256), c.get(264)), (32, 1));
    // Died releasing message 1: next_seq stored, tail not.
    c.set(264, 2);
    let mut rx = c.ring.consumer().unwrap();
    let m = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a message within 5 s");
    assert_eq!((&*m, m.seq()), (&b"one"[..], 1));
}

#[test]
fn wait_stats_count_sleeps_and_wakes_and_the_spin_adapts() {
    let ring = RingOptions::new()
        .capacity(1 << 16)
        .spin(Duration::from_micros(20))
        .anonymous()
        .unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.wait_stats().spin_ns, 20_000);
    // Polling an empty ring says nothing about spinning: the budget is kept.
    for _ in 0..10 {
        assert!(rx.try_recv().unwrap().is_none());
    }
    assert_eq!(rx.wait_stats().spin_ns, 20_000);
    // A wait that spins its whole budget and then sleeps halves the next spin, down to
    // a 32nd of the limit.
    for want in [10_000, 5_000, 2_500, 1_250, 625, 625] {
        assert!(rx
            .recv_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none());
        assert_eq!(rx.wait_stats().spin_ns, want);
    }
    let w = rx.wait_stats();
    assert!(w.sleeps >= 6 && w.spun == 0 && w.wakes == 0, "{w:?}");
    // The counts are this side's: a consumer in another process that sleeps is woken by
    // the producer here, and gets every message.
    drop(rx);
    // SAFETY: the child only uses the ring and returns.
    let mut child = unsafe {
        fork(|link| {
            let Ok(mut rx) = ring.consumer() else {
                return 1;
            };
            link.send(b'r');
            for i in 0..100u32 {
                match rx.recv() {
                    Ok(m) if *m == i.to_le_bytes() => {}
                    _ => return 2,
                }
            }
            0
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(b'r'));
    std::thread::sleep(Duration::from_millis(20)); // let it fall asleep (not a timing check)
    for i in 0..100u32 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    assert_eq!(tx.wait_stats().sleeps, 0);
}
