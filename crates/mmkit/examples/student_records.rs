//! Two processes share an array of student records through ONE FILE, each with its own
//! `MAP_SHARED` mapping of it: what one writes into its mapping, the other reads from
//! its own, with no `read()` or `write()` calls on the file.
//!
//! This is the scenario the Linux docs (mmap(2), "MAP_SHARED") describe: updates to a
//! shared mapping are visible to other processes mapping the same region of the file.
//!
//! ```text
//! cargo run -p mmkit --example student_records
//! ```
//!
//! With no arguments it runs the whole demo: it creates the file in a temporary
//! directory, fills in the records, starts a second process (itself again, with the
//! argument `writer`) that raises every score through its own mapping, then reads the
//! raised scores back through the first mapping and checks them. The two processes take
//! turns through two semaphores in a small sealed memfd, handed to the writer as its
//! stdin (sealed against shrinking, its atomics are safe from SIGBUS).

use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Student, NAMES};
use mmkit::shm::sync::Semaphore;
use mmkit::shm::{Memfd, ReceivedSegment, Seals};
use mmkit::{MapOptions, Mapping};

mod common;

const SIZE: usize = std::mem::size_of::<Student>();
const BONUS: u32 = 7;
/// Byte offsets of the two semaphores in the sync memfd.
const FILLED: usize = 0; // parent -> writer: the records are there
const RAISED: usize = 4; // writer -> parent: the scores are raised
const WAIT: Duration = Duration::from_secs(10);

/// Map a file shared and read-write: both processes call this on the same path.
fn map(path: &Path) -> mmkit::Result<Mapping> {
    MapOptions::new().write().shared().map_path(path)
}

fn show(who: &str, records: &Mapping) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..NAMES.len() {
        let s: Student = records.read_value(i * SIZE)?;
        println!(
            "[{who} pid {}] #{} {:<14} score {}",
            std::process::id(),
            s.id,
            s.name(),
            s.score
        );
    }
    Ok(())
}

/// The second process: wait for the records, raise every score in place, say so.
fn writer(records: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut records = map(records)?;
    // stdin is the sync memfd: check its seals and size before trusting it.
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let sync = ReceivedSegment::from_fd(fd)
        .verify(Seals::SHRINK | Seals::GROW, 4096)?
        .map()?;
    if !Semaphore::from_mapping(&sync, FILLED)?.wait_timeout(WAIT)? {
        return Err("the parent never filled in the records".into());
    }
    show("writer sees", &records)?;
    for i in 0..NAMES.len() {
        let mut s: Student = records.read_value(i * SIZE)?;
        s.score += BONUS;
        records.write_value(i * SIZE, &s)?;
    }
    Semaphore::from_mapping(&sync, RAISED)?.post()?;
    Ok(())
}

/// The demo: fill in the records, start the writer, check what it did.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let records_path = dir.path().join("students");
    std::fs::File::create(&records_path)?.set_len((NAMES.len() * SIZE) as u64)?;
    let mut records = map(&records_path)?;
    let sync_fd = Memfd::new("student-sync").size(4096).create(&[])?;
    let sync = sync_fd.map()?;
    for (i, name) in NAMES.iter().enumerate() {
        let student = Student::new(100 + i as u32, name, 80 + i as u32);
        records.write_value(i * SIZE, &student)?;
    }
    show("parent wrote", &records)?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("writer")
        .arg(&records_path)
        .stdin(Stdio::from(sync_fd.as_fd().try_clone_to_owned()?))
        .spawn()?;
    Semaphore::from_mapping(&sync, FILLED)?.post()?;
    let raised = Semaphore::from_mapping(&sync, RAISED)?.wait_timeout(WAIT)?;
    let status = child.wait()?;
    if !raised || !status.success() {
        return Err(format!("the writer failed ({status})").into());
    }

    show("parent sees", &records)?;
    for (i, name) in NAMES.iter().enumerate() {
        let s: Student = records.read_value(i * SIZE)?;
        if s.score != 80 + i as u32 + BONUS || s.name() != *name {
            return Err(format!("record {i} is {s:?}, not the raised score").into());
        }
    }
    println!(
        "verified: the parent saw all {} updates of the writer through its own mapping",
        NAMES.len()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo(),
        [mode, records] if mode == "writer" => writer(records.as_ref()),
        _ => Err("usage: student_records [writer RECORDS < SYNC-MEMFD]".into()),
    }
}
