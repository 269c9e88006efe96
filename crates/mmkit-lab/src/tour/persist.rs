//! Tour claim 18: persistence, as MMKV promises it. Records appended to an mmkit
//! [`Log`] (durability [`Process`](mmkit::store::Durability::Process): an append is done
//! once the record is in the shared mapping) survive `kill -9` of the writer; and a torn
//! tail, what a crash in the middle of an append leaves, is cut on the next open at the
//! first record whose CRC32C does not match.
//!
//! A forked writer appends records as fast as it can and publishes the last sequence
//! number it got back in shared memory; it is killed with `SIGKILL` at a random moment
//! 0–3 ms after it opened the log, 20 times over the same log. After each kill the log
//! is reopened and every acknowledged record is read back and compared. Then a torn
//! append is forged at the end (a frame with a wrong checksum and part of its payload).
//!
//! # Safety
//!
//! Forks writers with the `unsafe` [`mmkit::process::fork`]: each opens the log and
//! appends; it takes no lock another thread of the tour could hold.
#![allow(unsafe_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Ctx, Outcome};
use libc::SIGKILL;
use mmkit::helpers::XorShift;
use mmkit::lab_seam::ErrorExt;
use mmkit::lab_seam::DATA_START;
use mmkit::process::{fork, Exit};
use mmkit::store::{Log, Seq};
use mmkit::MapOptions;
use mmkit::{Error, ErrorKind, Op, Result};

const KILLS: u32 = 20;

/// The record with sequence number `seq`: its number repeated, 1 to 60 times.
fn record(seq: Seq) -> Vec<u8> {
    format!("record {seq};")
        .repeat(1 + (seq % 60) as usize)
        .into_bytes()
}

/// Claim 18.
pub(super) fn log_survives_kill9(ctx: &Ctx) -> Result<Outcome> {
    let path = ctx.dir.join("claim18.log");
    drop(Log::open(&path)?);
    let mut shared = MapOptions::new()
        .len(mmkit::page_size())
        .map_anon_shared()?;
    let ack_ptr = shared.as_mut_ptr().cast::<AtomicU64>();
    // SAFETY: the page is zeroed, aligned and lives until the end of this function; it is
    // only accessed atomically, here and in the children that inherit it.
    let acked = unsafe { &*ack_ptr };
    let mut rng = XorShift::new(18);
    let (mut torn_by_kills, mut checked) = (0u32, 0u64);
    for _ in 0..KILLS {
        let exit = kill_a_writer(&path, acked, Duration::from_micros(rng.next_u64() % 3000))?;
        let log = Log::open(&path)?;
        torn_by_kills += u32::from(log.recovery_report().cut.is_some());
        let last = acked.load(Ordering::Acquire);
        if let Some(bad) = first_missing(&log, checked + 1, last)? {
            let measured = format!(
                "after a kill ({}), acknowledged record {bad} is missing or wrong",
                exit.describe()
            );
            return Ok(Outcome::check(false, measured));
        }
        checked = last;
    }
    let (cut_at, cut) = forge_torn_tail(&path)?;
    let log = Log::open(&path)?;
    let report = log.recovery_report().clone();
    let intact_after = first_missing(&log, 1, checked)?.is_none();
    let cut_right = report
        .cut
        .as_ref()
        .is_some_and(|c| c.offset == cut_at && c.bytes == cut);
    let measured = format!(
        "{KILLS} writers killed with SIGKILL 0–3 ms into their appends: each acknowledged \
         record was read back intact after the reopen that followed its writer's kill \
         ({checked} in all; {torn_by_kills} kills tore an append, cut on reopen); a forged torn \
         append of {cut} bytes at byte {cut_at}: reopening said \"{report}\", and the {checked} \
         records {}",
        if intact_after {
            "were all still there"
        } else {
            "were NOT all there"
        }
    );
    Ok(Outcome::check(
        cut_right && intact_after && checked > 0,
        measured,
    ))
}

/// Fork a writer appending to the log at `path`, publishing each acknowledged sequence
/// number in `acked`; kill it `after` it opened the log.
fn kill_a_writer(path: &Path, acked: &AtomicU64, after: Duration) -> Result<Exit> {
    // SAFETY: the child opens the log, appends and publishes with atomics until it is
    // killed; it takes no lock another thread could hold (see the module's note).
    let mut child = unsafe {
        fork(|link| {
            let Ok(log) = Log::open(path) else { return 2 };
            let Ok(last) = log.last() else { return 3 };
            let mut next = last.map_or(1, |s| s + 1);
            link.send(1);
            loop {
                match log.append(&record(next)) {
                    Ok(seq) if seq == next => acked.store(seq, Ordering::Release),
                    _ => return 4,
                }
                next += 1;
            }
        })?
    };
    if child.recv() != Some(1) {
        let exit = child.wait()?;
        return Err(
            Error::new(Op::Write, ErrorKind::Unsupported).detail(format!(
                "the log writer could not start ({})",
                exit.describe()
            )),
        );
    }
    std::thread::sleep(after);
    child.signal(SIGKILL)?;
    child.wait()
}

/// The first of `from..=to` that is not in the log with its contents.
fn first_missing(log: &Log, from: Seq, to: Seq) -> Result<Option<Seq>> {
    for seq in from..=to {
        match log.get(seq) {
            Ok(bytes) if bytes == record(seq) => {}
            _ => return Ok(Some(seq)),
        }
    }
    Ok(None)
}

/// Write a torn append after the log's last record: a frame for a 200-byte record with a
/// wrong CRC32C, and 64 bytes of its payload. Returns where it starts and its size.
fn forge_torn_tail(path: &Path) -> Result<(u64, u64)> {
    let (end, next) = {
        let log = Log::open(path)?;
        let stats = log.stats()?;
        (
            DATA_START + stats.used_bytes,
            stats.last.map_or(1, |s| s + 1),
        )
    };
    let mut frame = [0u8; 16];
    frame[0..4].copy_from_slice(&200u32.to_le_bytes());
    frame[4..8].copy_from_slice(&0x0bad_c0deu32.to_le_bytes());
    frame[8..16].copy_from_slice(&next.to_le_bytes());
    let io = |e: std::io::Error| Error::io(Op::Write, &e).with_path(Some(path));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    file.write_all_at(&frame, end).map_err(io)?;
    file.write_all_at(&[0x42; 64], end + 16).map_err(io)?;
    Ok((end, 16 + 64))
}
