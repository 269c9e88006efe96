//! Helpers shared by the map-pillar integration tests: temporary files with known
//! contents, opening them in each mode, and small checks for privileges and tools.
//!
//! The remote tests' S3 server on loopback (`s3.rs`) and a server that hangs (`hang.rs`)
//! live here too, but only the tests that serve S3 include them (by `#[path]`): they pull
//! in hyper, s3s and tokio, a second of compiling for every test binary otherwise.
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

mod damage;
mod peer;
mod shm_name;
mod tmpfs;

#[allow(unused_imports)] // Only the stores' tests damage files.
pub(crate) use damage::flip;
#[allow(unused_imports)] // Not every test binary skips.
pub(crate) use peer::{note, on_path, peer, resident_pages, skip};
#[allow(unused_imports)] // Only the shared-memory tests name segments.
pub(crate) use shm_name::Name;
#[allow(unused_imports)] // Only the full-disk tests mount one.
pub(crate) use tmpfs::SmallTmpfs;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The base page size.
pub(crate) fn page() -> usize {
    mmkit::page_size()
}

/// A temporary directory holding one file `data` with `bytes` in it.
pub(crate) struct TempFile {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
}

impl TempFile {
    pub(crate) fn new(bytes: &[u8]) -> TempFile {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, bytes).expect("write temp file");
        TempFile { dir, path }
    }

    /// A file of `len` bytes where byte `i` is `pattern(i)`.
    pub(crate) fn patterned(len: usize) -> TempFile {
        TempFile::new(&pattern(len))
    }

    pub(crate) fn read(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read temp file")
    }

    pub(crate) fn open_ro(&self) -> File {
        File::open(&self.path).expect("open read-only")
    }

    pub(crate) fn open_rw(&self) -> File {
        open_rw(&self.path)
    }
}

pub(crate) fn open_rw_result(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

pub(crate) fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open read-write")
}

/// A byte pattern that differs from page to page and within pages, and is never all zero.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8 ^ (i / 4096) as u8) | 1)
        .collect()
}

/// `len` bytes of xorshift data seeded with `seed`, with no zero byte (so zeros in a
/// copy stand out).
pub(crate) fn random_nonzero(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = mmkit::helpers::XorShift::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend(rng.next_u64().to_ne_bytes().map(|b| b | 1));
    }
    out.truncate(len);
    out
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// In a forked child about to take a deliberate SIGSEGV/SIGBUS: no core file.
pub(crate) fn no_core_dump() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// Bytes as lower-case hex, two digits a byte: `[0xab, 1]` is `"ab01"`.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One page of shared anonymous memory: what a forked child and its parent both see.
pub(crate) fn shared() -> mmkit::Mapping {
    mmkit::MapOptions::new()
        .len(4096)
        .map_anon_shared()
        .unwrap()
}

/// Fork a child that runs `f` and exits with its return value.
///
/// For the tests' children, which only touch shared memory, atomics and read-only data,
/// and take no lock another thread of the harness could hold: what `fork` asks.
pub(crate) fn spawn(f: impl FnOnce() -> i32) -> mmkit::process::Child {
    // SAFETY: see above; every caller's child keeps to shared memory and atomics.
    unsafe { mmkit::process::fork(move |_| f()) }.unwrap()
}

/// CRC32C, bitwise (the tests' own, independent of the library's).
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
