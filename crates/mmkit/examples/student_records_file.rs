//! The docs' student records, kept in a crash-safe [`RecordFile`]: each run raises every
//! score by one, and the records (and their scores) survive from run to run, also when
//! a run is killed halfway through an update.
//!
//! ```text
//! cargo run -p mmkit --features store --example student_records_file [FILE]
//! ```
//!
//! FILE defaults to `mmkit-students.rec` in the temporary directory; delete it to start
//! over.

use common::{Student, NAMES};
use mmkit::store::{Durability, RecordFile, RecordFileOptions};

mod common;

/// The record type and its schema version, checked each time the file is opened.
const STUDENT_V1: u64 = 0x5354_5544_0001;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join("mmkit-students.rec"),
        Into::into,
    );
    let mut students: RecordFile<Student> = RecordFileOptions::new()
        .create(true)
        .type_tag(STUDENT_V1)
        .durability(Durability::Sync)
        .open(&path)?;
    if students.is_empty() {
        for (i, name) in NAMES.iter().enumerate() {
            students.push(&Student::new(100 + i as u32, name, 80 + i as u32))?;
        }
        println!(
            "created {} with {} students",
            path.display(),
            students.len()
        );
    }
    for i in 0..students.len() {
        let mut s = students.get(i)?.expect("below len");
        s.score += 1;
        students.set(i, &s)?;
        println!("#{} {:<14} score {}", s.id, s.name(), s.score);
    }
    let check = students.check()?;
    println!(
        "verified: {} records read back intact ({} fell back to their previous value) in {}",
        check.records,
        check.fell_back.len(),
        path.display()
    );
    Ok(())
}
