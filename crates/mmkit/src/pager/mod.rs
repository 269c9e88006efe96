//! # page — user-space demand paging from any data source
//!
//! A pager maps a region whose pages are filled on first touch from a [`Source`], and
//! whose dirty pages are written back to it. This module holds the `Source` trait and the
//! built-in sources:
//!
//! | source | what it reads | writable |
//! |---|---|---|
//! | [`FileSource`] | a file, with `pread`/`pwrite`/`fdatasync` | with [`FileSource::open_rw`] |
//! | [`FnSource`] | bytes made by a function (synthetic data, tests) | no |
//! | [`MemSource`] | a `Vec<u8>` (write-back tests) | yes |
//! | [`ZstdSource`] | a zstd file, as its uncompressed bytes, through a frame index | no |
//!
//! [`compress_seekable`] writes zstd files that [`ZstdSource`] reads at random cheaply.
//!
//! ```
//! use mmkit::pager::{FileSource, Source};
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("data");
//! std::fs::write(&path, vec![7u8; 5000])?;
//!
//! let src = FileSource::open(&path)?;
//! let mut page = vec![0xffu8; 4096];
//! src.read_at(4096, &mut page)?;
//! // 904 bytes of the file, then zeros past its end.
//! assert!(page[..904].iter().all(|&b| b == 7));
//! assert!(page[904..].iter().all(|&b| b == 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod source;
mod zstd;

pub use self::source::{FileSource, FnSource, MemSource, Source};
pub use self::zstd::{compress_seekable, CompressStats, ZstdSource};
