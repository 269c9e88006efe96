//! A producer and a consumer after `fork`, talking through shared memory.
//!
//! The Linux docs show this with `mmap(MAP_SHARED | MAP_ANONYMOUS)` before `fork`, a
//! buffer and a pair of semaphores. Here the shared memory holds an mmkit ring: the
//! parent makes it, forks, and the child produces readings (variable-size text messages,
//! written in place with `reserve`/`commit`) while the parent consumes them (borrowed in
//! place, released on drop). The ring numbers every message, so the consumer can check
//! that none was lost or repeated; when the producer is done it drops its end and the
//! consumer learns the channel is closed.
//!
//! Run it with `cargo run -p mmkit --example producer_consumer`.

use mmkit::process::{fork, Exit};
use mmkit::shm::ring::Ring;
use mmkit::ErrorKind;

const READINGS: u64 = 100_000;

/// The text of reading `i`: its own number and a value derived from it.
fn reading(i: u64) -> String {
    format!(
        "sensor {} reading {i}: {} mK",
        i % 7,
        273_150 + (i * 7919) % 10_000
    )
}

/// The child: produce every reading, then close the ring by dropping the producer.
fn produce(ring: &Ring) -> i32 {
    let Ok(mut tx) = ring.producer() else {
        return 2;
    };
    for i in 0..READINGS {
        let text = reading(i);
        // Zero-copy: reserve space in the ring and write the message in place.
        let Ok(mut slot) = tx.reserve(text.len()) else {
            return 3;
        };
        slot.copy_from_slice(text.as_bytes());
        slot.commit();
    }
    0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 64 KiB of shared anonymous memory: inherited by the child at fork.
    let ring = Ring::anonymous(64 * 1024)?;
    // The consumer end is taken before the fork, so the producer never writes into a
    // ring nobody reads.
    let mut rx = ring.consumer()?;

    // SAFETY: this program has one thread when it forks, so the child cannot inherit a
    // lock another thread holds; the child only uses the ring and returns.
    let child = unsafe { fork(|_| produce(&ring)) }?;
    println!(
        "producer is pid {}, consumer is pid {}",
        child.pid(),
        std::process::id()
    );

    let (mut count, mut bytes) = (0u64, 0usize);
    loop {
        let msg = match rx.recv() {
            Ok(m) => m,
            // The producer dropped its end and everything it sent was received.
            Err(e) if e.kind() == ErrorKind::Closed => break,
            Err(e) => return Err(e.into()),
        };
        let i = msg.seq();
        if i != count || *msg != *reading(i).as_bytes() {
            return Err(format!(
                "message {count}: got #{i} {:?}",
                String::from_utf8_lossy(&msg)
            )
            .into());
        }
        if i % 25_000 == 0 {
            println!("consumer got #{i}: {}", String::from_utf8_lossy(&msg));
        }
        bytes += msg.len();
        count += 1;
    }
    let exit = child.wait()?;
    println!("producer ended with {}", exit.describe());
    if exit != Exit::Code(0) || count != READINGS {
        return Err(format!(
            "received {count} of {READINGS}; producer {}",
            exit.describe()
        )
        .into());
    }
    println!("verified: {count} readings ({bytes} bytes) arrived in order, each once, intact");
    Ok(())
}
