//! The record both student examples keep: `student_records` in a shared mapping,
//! `student_records_file` in a checksummed record file.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The names the examples fill their records with.
pub(crate) const NAMES: [&str; 3] = ["Ada Lovelace", "Alan Turing", "Grace Hopper"];

/// One record. `#[repr(C)]` fixes the layout, and the zerocopy derives prove it has no
/// padding and that any bytes make a valid value, so it can be copied in and out of the
/// file as it is.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Student {
    pub(crate) id: u32,
    pub(crate) score: u32,
    /// UTF-8, padded with zero bytes.
    name: [u8; 24],
}

impl Student {
    pub(crate) fn new(id: u32, name: &str, score: u32) -> Student {
        let mut student = Student {
            id,
            score,
            name: [0; 24],
        };
        student.name[..name.len()].copy_from_slice(name.as_bytes());
        student
    }

    pub(crate) fn name(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(24);
        std::str::from_utf8(&self.name[..end]).unwrap_or("?")
    }
}
