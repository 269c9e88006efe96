//! # mmkit — the whole of Linux `mmap` for Rust
//!
//! Map files and memory safely, share memory between processes, page memory in from any
//! source, and see what the kernel does with all of it.
//!
//! | pillar | module | what it gives |
//! |---|---|---|
//! | map | [`map`] | file and anonymous mappings, shared or private, any offset; flush, protect, advise, lock, residency, remap, huge pages, typed and atomic views |
//! | guard | [`guard`] | a file truncated under a mapping gives `Err(Truncated)`, never a SIGBUS crash |
//! | file | [`file`](mod@file) | [`MappedFile`]: a file object with Python-`mmap` parity |
//! | search | [`search`] | fixed-string search through a mapping (offsets, lines, counts) |
//! | copy | [`copy`] | a byte range of a file to a pipe, socket or file with `sendfile`, `splice` or `copy_file_range`, falling back to a mapping + `write`; a file truncated meanwhile gives a short count, never a signal |
//! | share | [`shm`] | named and memfd segments, typed shared structs, robust mutex, condvar and semaphore in shared memory, a ring channel between processes |
//! | page | [`pager`] | user-space demand paging over `userfaultfd`: a region filled on first touch from a file, generated data or a zstd file, with read-ahead, a memory budget and write-back |
//! | observe | [`probe`] | per-mapping RSS/PSS/dirty from smaps, fault counters, locked memory |
//!
//! ## Features
//!
//! The default build is map, guard, file, search and copy, on four small dependencies (7 crates in
//! `cargo tree -e normal`, this one included). Everything else is opt-in:
//!
//! | feature | modules | extra dependencies |
//! |---|---|---|
//! | *(default, always on)* | [`map`], [`guard`], [`file`](mod@file), [`search`], [`copy`] | `rustix`, `libc`, `memchr`, `zerocopy` |
//! | `shm` | `shm` | — |
//! | `pager` | `pager` | — |
//! | `zstd` (implies `pager`) | `pager::ZstdSource`, `pager::compress_seekable` | `zstd` (builds zstd's C sources) |
//! | `probe` | `probe` | `procfs`, `walkdir`, `globset` |
//! | `process` | `process` (test support: fork a child with a pipe back) | — |
//! | `serde` | `serde::Serialize` on the report types | `serde` |
//! | `store` (implies `shm`) | `store`: the crash-safe [`store::Log`], [`store::Kv`] and [`store::RecordFile`] | `crc32c` |
//! | `remote` (implies `pager`) | `pager::ObjectSource`: objects in S3, GCS, Azure, HTTP(S), `file://`, paged in with range GETs | `object_store`, `tokio`, `futures`, `url`, `bytes` |
//!
//! ```toml
//! [dependencies]
//! mmkit = { version = "0.1", features = ["shm", "pager"] }
//! ```
//!
//! Types with typed views (`FromBytes`, `IntoBytes`, ...) derive them with your own
//! `zerocopy = { version = "0.8", features = ["derive"] }`.
//!
//! ## Safety model
//!
//! - Private anonymous memory ([`Memory`]) is lent as `&[u8]`/`&mut [u8]`: nothing outside
//!   this process can change it.
//! - File and shared mappings ([`Mapping`]) can change behind a borrow (another process, a
//!   truncation), so the safe API copies in and out and gives atomic views; borrowing a
//!   slice is `unsafe`, with the conditions written on the method.
//! - Advice that throws contents away needs `&mut self`, and is `unsafe` where a slice
//!   could still observe the change later (`MADV_FREE` on [`Memory`]).
//! - Every `unsafe` block in this crate carries a `// SAFETY:` comment; the syscalls go
//!   through one private module, `sys`: every `libc` call and every `unsafe` syscall is
//!   there; the pillars call only `rustix`'s safe wrappers (on descriptors they own) directly.
//! - `unsafe` is denied at the crate root; each module that needs it opts in with
//!   `#![allow(unsafe_code)]` and a `# Safety` paragraph saying why, so the unsafe
//!   surface is a list: `grep -rl '^#!\[allow(unsafe_code)' crates/mmkit/src`.
//!
//! ## Example
//!
//! ```
//! use mmkit::{MapOptions, Protection};
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("data");
//! std::fs::write(&path, vec![b'x'; 10_000])?;
//!
//! // A shared, writable mapping starting at an unaligned offset.
//! let file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
//! let mut map = MapOptions::new().offset(5000).write().map(&file)?;
//! map.write_at(0, b"hello")?;
//! map.flush()?;
//! assert_eq!(&std::fs::read(&path)?[5000..5005], b"hello");
//!
//! // Protection is checked: a write to read-only pages is an error, not a crash.
//! map.protect(Protection::READ)?;
//! assert!(map.write_at(0, b"x").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod copy;
mod error;
pub mod file;
pub mod guard;
#[doc(hidden)]
pub mod lab_seam;
pub mod map;
#[cfg(feature = "pager")]
#[cfg_attr(docsrs, doc(cfg(feature = "pager")))]
pub mod pager;
#[cfg(feature = "probe")]
#[cfg_attr(docsrs, doc(cfg(feature = "probe")))]
pub mod probe;
mod proc;
#[cfg(feature = "process")]
pub mod process;
mod rng;
pub mod search;
#[cfg(feature = "shm")]
#[cfg_attr(docsrs, doc(cfg(feature = "shm")))]
pub mod shm;
pub mod size;
mod stats;
#[cfg(feature = "store")]
#[cfg_attr(docsrs, doc(cfg(feature = "store")))]
pub mod store;
mod sys;

pub use error::{Error, ErrorKind, Op, Result};
pub use file::MappedFile;
pub use map::{
    Advice, Discard, FlushMode, HugePageSize, LockMode, MapKind, MapOptions, Mapping, Memory,
    Protection, RemapMode, Residency,
};

/// Helpers the crate's own tests, benches, the lab (`crates/mmkit-lab`) and the CLI's
/// tests share with it: one xorshift, one median. Not part of the API.
#[doc(hidden)]
pub mod helpers {
    pub use crate::rng::XorShift;
    pub use crate::stats::{median, median_time};
}

/// The size of a base page on this machine, in bytes.
pub fn page_size() -> usize {
    sys::page_size()
}

/// The README's examples (one a pillar), compiled and run as doc tests.
#[cfg(all(
    doctest,
    feature = "shm",
    feature = "store",
    feature = "pager",
    feature = "probe"
))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
