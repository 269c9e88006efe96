//! Tens of millions of messages through a ring between two processes while the test
//! kills the producer and the consumer with SIGKILL at random moments and starts new
//! ones: every committed message must arrive, in order, once, byte for byte.
//!
//! Each side keeps a log word in shared memory, `seq << 1 | done`: the producer stores
//! `seq << 1` before committing message `seq` and sets the low bit after; the consumer
//! stores it on receiving `seq` and sets the bit after releasing it. A new incarnation
//! checks the ring against its predecessor's log:
//!
//! - a new producer's `next_seq` must be `s + 1` after a finished commit, `s` or `s + 1`
//!   when the predecessor died inside one (the ring decides: committed or not);
//! - a new consumer's first message must be `s + 1` after a finished release, `s` or
//!   `s + 1` when the predecessor died holding message `s` (redelivered unless
//!   released).
//!
//! Within an incarnation every message must be the next number with the expected bytes.
//! Set `MMKIT_RING_MESSAGES` to change the count (default 20 million).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mmkit::helpers::XorShift;
use mmkit::process::{Child, Exit};
use mmkit::shm::ring::Ring;
use mmkit::ErrorKind;

use crate::ring_common;
use common::spawn;
use mmkit_testkit as common;
use ring_common::Pattern;

const NONE: u64 = u64::MAX;

/// Exit codes of a child that found a fault.
const BAD_ATTACH: i32 = 10;
const BAD_NEXT_SEQ: i32 = 11;
const BAD_COMMIT: i32 = 12;
const BAD_RECV: i32 = 21;
const BAD_FIRST: i32 = 22;
const BAD_ORDER: i32 = 23;
const BAD_BYTES: i32 = 24;

struct Logs<'a> {
    producer: &'a AtomicU64,
    consumer: &'a AtomicU64,
    /// What a failing child saw (the sequence number it got).
    detail: &'a AtomicU64,
}

/// Whether `got` may follow the log word `prev` (see the module docs).
fn follows(prev: u64, got: u64) -> bool {
    if prev == NONE {
        return got == 0;
    }
    let (s, done) = (prev >> 1, prev & 1 == 1);
    got == s + 1 || (!done && got == s)
}

fn produce(ring: &Ring, pat: &Pattern, log: &Logs<'_>, n: u64) -> i32 {
    let prev = log.producer.load(Ordering::Acquire);
    let Ok(mut tx) = ring.producer() else {
        return BAD_ATTACH;
    };
    let next = tx.next_seq();
    if !follows(prev, next) {
        log.detail.store(next, Ordering::Release);
        return BAD_NEXT_SEQ;
    }
    for seq in next..n {
        log.producer.store(seq << 1, Ordering::Release);
        let mut r = loop {
            match tx.reserve(pat.len(seq)) {
                Ok(r) => break r,
                // The ring is full and its consumer died: wait for the next one.
                Err(e) if matches!(e.kind(), ErrorKind::PeerDied | ErrorKind::Closed) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return BAD_COMMIT,
            }
        };
        pat.write(seq, &mut r);
        if r.commit() != seq {
            return BAD_COMMIT;
        }
        log.producer.store(seq << 1 | 1, Ordering::Release);
    }
    0
}

fn consume(ring: &Ring, pat: &Pattern, log: &Logs<'_>, n: u64) -> i32 {
    let prev = log.consumer.load(Ordering::Acquire);
    let Ok(mut rx) = ring.consumer() else {
        return BAD_ATTACH;
    };
    let mut expect = None;
    loop {
        let m = match rx.recv() {
            Ok(m) => m,
            // Between a producer's death and its successor: wait for the next one.
            Err(e) if matches!(e.kind(), ErrorKind::PeerDied | ErrorKind::Closed) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(_) => return BAD_RECV,
        };
        let seq = m.seq();
        let in_order = match expect {
            None => follows(prev, seq),
            Some(e) => seq == e,
        };
        if !in_order {
            log.detail.store(seq, Ordering::Release);
            return if expect.is_none() {
                BAD_FIRST
            } else {
                BAD_ORDER
            };
        }
        if !pat.matches(seq, &m) {
            log.detail.store(seq, Ordering::Release);
            return BAD_BYTES;
        }
        log.consumer.store(seq << 1, Ordering::Release);
        drop(m);
        log.consumer.store(seq << 1 | 1, Ordering::Release);
        if seq == n - 1 {
            return 0;
        }
        expect = Some(seq + 1);
    }
}

#[test]
fn killed_and_restarted_peers_lose_duplicate_and_corrupt_nothing() {
    let n: u64 = std::env::var("MMKIT_RING_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    let ring = Ring::anonymous(1 << 16).unwrap();
    let pat = Pattern::new(ring.max_message());
    let words = mmkit::MapOptions::new()
        .len(4096)
        .map_anon_shared()
        .unwrap();
    let w = words.atomic_u64s(0, 3).unwrap();
    w[0].store(NONE, Ordering::Relaxed);
    w[1].store(NONE, Ordering::Relaxed);
    let log = Logs {
        producer: &w[0],
        consumer: &w[1],
        detail: &w[2],
    };
    let finished = |word: &AtomicU64| word.load(Ordering::Acquire) == ((n - 1) << 1 | 1);
    let start_producer = || spawn(|| produce(&ring, &pat, &log, n));
    let start_consumer = || spawn(|| consume(&ring, &pat, &log, n));

    let mut producer = Some(start_producer());
    let mut consumer = Some(start_consumer());
    let (mut kills, mut rng) = ([0u32; 2], XorShift::new(0x2545_f491_4f6c_dd1d));
    let deadline = Instant::now() + Duration::from_secs(600);
    let state = |log: &Logs<'_>| {
        format!(
            "producer log {:#x}, consumer log {:#x}, detail {}, ring {:?}",
            log.producer.load(Ordering::Acquire),
            log.consumer.load(Ordering::Acquire),
            log.detail.load(Ordering::Acquire),
            ring
        )
    };
    let reap = |child: Child, who: &str| {
        let exit = child.wait().unwrap();
        assert!(
            matches!(exit, Exit::Signal(libc::SIGKILL) | Exit::Code(0)),
            "the {who} ended with {}: {}",
            exit.describe(),
            state(&log)
        );
    };
    while !finished(log.consumer) {
        assert!(Instant::now() < deadline, "no progress: {}", state(&log));
        std::thread::sleep(Duration::from_millis(2 + rng.next_u64() % 40));
        if finished(log.consumer) {
            break;
        }
        let kill_producer = rng.next_u64() % 2 == 0 && !finished(log.producer);
        if kill_producer {
            let p = producer.take().unwrap();
            let _ = p.signal(libc::SIGKILL);
            reap(p, "producer");
            producer = Some(start_producer());
            kills[0] += 1;
        } else {
            let c = consumer.take().unwrap();
            let _ = c.signal(libc::SIGKILL);
            reap(c, "consumer");
            kills[1] += 1;
            if finished(log.consumer) {
                break;
            }
            consumer = Some(start_consumer());
        }
    }
    if let Some(c) = consumer {
        assert_eq!(c.wait().unwrap(), Exit::Code(0), "{}", state(&log));
    }
    if let Some(p) = producer {
        reap(p, "producer");
    }
    assert!(finished(log.producer));
    println!(
        "{n} messages; producer killed {} times, consumer {} times",
        kills[0], kills[1]
    );
    assert!(
        kills[0] > 0 && kills[1] > 0,
        "the run ended before any kill"
    );
}
