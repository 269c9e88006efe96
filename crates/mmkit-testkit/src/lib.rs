//! Test helpers shared by mmkit's crates (the library's tests, examples and benches, the
//! CLI's tests): unpublished, a dev-dependency only.
//!
//! - Files: [`TempFile`] and its [`pattern`], [`random_nonzero`], [`damage::flip`], a full
//!   file system ([`SmallTmpfs`]), the hugetlb pool ([`hugetlb::PoolGuard`]).
//! - Processes: [`spawn`] a forked child, [`no_core_dump`], [`is_root`]; [`serial`], the
//!   locks of tests that would disturb each other in one process.
//! - Peers: [`peer()`](fn@peer) and [`skip`], the one `skipped: <tool> not installed` rule and
//!   `MMKIT_REQUIRE_PEERS` ([`peer`](mod@peer) has the details).
//! - Shared memory: a unique segment [`Name`].
//! - Servers on loopback (feature `s3`): a real S3 server (`s3`), one that never answers
//!   (`hang`), a plain HTTP server (`http`) and a faulty proxy (`proxy`). They pull in hyper,
//!   s3s and tokio, so only the crates whose tests serve S3 turn the feature on.
//!
//! It depends on `mmkit` with only the `process` feature, which every test build of the
//! library turns on already (its own dev-dependency): it adds no feature to the library
//! under test, so the library's per-feature CI loop builds what it asks for.

pub mod damage;
#[cfg(feature = "s3")]
pub mod hang;
#[cfg(feature = "s3")]
pub mod http;
pub mod hugetlb;
#[cfg(feature = "s3")]
mod listen;
pub mod peer;
#[cfg(feature = "s3")]
pub mod proxy;
#[cfg(feature = "s3")]
pub mod s3;
pub mod serial;
pub mod shm_name;
pub mod tmpfs;

pub use damage::flip;
pub use peer::{note, on_path, peer, resident_pages, skip};
pub use shm_name::Name;
pub use tmpfs::SmallTmpfs;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The base page size.
pub fn page() -> usize {
    mmkit::page_size()
}

/// A temporary directory holding one file `data` with `bytes` in it.
#[derive(Debug)]
pub struct TempFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(bytes: &[u8]) -> TempFile {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, bytes).expect("write temp file");
        TempFile { dir, path }
    }

    /// A file of `len` bytes where byte `i` is `pattern(i)`.
    pub fn patterned(len: usize) -> TempFile {
        TempFile::new(&pattern(len))
    }

    pub fn read(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read temp file")
    }

    pub fn open_ro(&self) -> File {
        File::open(&self.path).expect("open read-only")
    }

    pub fn open_rw(&self) -> File {
        open_rw(&self.path)
    }
}

pub fn open_rw_result(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

pub fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open read-write")
}

/// A byte pattern that differs from page to page and within pages, and is never all zero.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8 ^ (i / 4096) as u8) | 1)
        .collect()
}

/// `len` bytes of xorshift data seeded with `seed`, with no zero byte (so zeros in a
/// copy stand out).
pub fn random_nonzero(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = mmkit::helpers::XorShift::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend(rng.next_u64().to_ne_bytes().map(|b| b | 1));
    }
    out.truncate(len);
    out
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// In a forked child about to take a deliberate SIGSEGV/SIGBUS: no core file.
pub fn no_core_dump() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// Bytes as lower-case hex, two digits a byte: `[0xab, 1]` is `"ab01"`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One page of shared anonymous memory: what a forked child and its parent both see.
pub fn shared() -> mmkit::Mapping {
    mmkit::MapOptions::new()
        .len(4096)
        .map_anon_shared()
        .unwrap()
}

/// Fork a child that runs `f` and exits with its return value.
///
/// For the tests' children, which only touch shared memory, atomics and read-only data,
/// and take no lock another thread of the harness could hold: what `fork` asks.
pub fn spawn(f: impl FnOnce() -> i32) -> mmkit::process::Child {
    // SAFETY: see above; every caller's child keeps to shared memory and atomics.
    unsafe { mmkit::process::fork(move |_| f()) }.unwrap()
}

/// CRC32C, bitwise (the tests' own, independent of the library's).
pub fn crc32c(bytes: &[u8]) -> u32 {
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

/// Make a FIFO at `path` (mode 0600) that nobody writes to: opening it for reading
/// blocks, which is what the tests check every opener avoids.
pub fn mkfifo(path: impl AsRef<Path>) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path.as_ref(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
}
