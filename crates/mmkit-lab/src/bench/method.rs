//! The methods, patterns and cache states, and one pass of each method.
//!
//! # Safety
//!
//! Scans the benchmark's own file mapping through the `unsafe` `Mapping::with_bytes`;
//! nothing truncates or writes that file while it runs.
#![allow(unsafe_code)]

use mmkit::helpers::XorShift;
use mmkit::lab_seam::ErrorExt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use mmkit::{Advice, MapOptions};
use mmkit::{Error, ErrorKind, Op, Result};

/// A way to read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Method {
    /// A fresh mapping, pages faulted in lazily by the scan.
    #[cfg_attr(feature = "serde", serde(rename = "mmap"))]
    MmapLazy,
    /// A fresh mapping with `MAP_POPULATE`.
    #[cfg_attr(feature = "serde", serde(rename = "mmap-populate"))]
    MmapPopulate,
    /// A fresh mapping with `MADV_SEQUENTIAL`.
    #[cfg_attr(feature = "serde", serde(rename = "mmap-seq"))]
    MmapSequential,
    /// A fresh mapping with `MADV_WILLNEED`.
    #[cfg_attr(feature = "serde", serde(rename = "mmap-willneed"))]
    MmapWillNeed,
    /// A fresh mapping with `MADV_HUGEPAGE` (file THP needs
    /// `CONFIG_READ_ONLY_THP_FOR_FS`; without it this measures the advice's cost).
    #[cfg_attr(feature = "serde", serde(rename = "mmap-thp"))]
    MmapHugePage,
    /// A fresh mapping made with [`MapOptions::scan`] (`MADV_SEQUENTIAL` and
    /// `MADV_HUGEPAGE`): 2 MiB read-ahead folios on a cold file.
    #[cfg_attr(feature = "serde", serde(rename = "mmap-scan"))]
    MmapScan,
    /// `read(2)` into a buffer.
    #[cfg_attr(feature = "serde", serde(rename = "read"))]
    Read,
    /// `pread(2)` into a buffer.
    #[cfg_attr(feature = "serde", serde(rename = "pread"))]
    Pread,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 8] = [
        Method::MmapLazy,
        Method::MmapPopulate,
        Method::MmapSequential,
        Method::MmapWillNeed,
        Method::MmapHugePage,
        Method::MmapScan,
        Method::Read,
        Method::Pread,
    ];

    /// The short name (`mmap`, `mmap-populate`, `mmap-seq`, `mmap-willneed`, `mmap-thp`,
    /// `mmap-scan`, `read`, `pread`), as in `--methods` and the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Method::MmapLazy => "mmap",
            Method::MmapPopulate => "mmap-populate",
            Method::MmapSequential => "mmap-seq",
            Method::MmapWillNeed => "mmap-willneed",
            Method::MmapHugePage => "mmap-thp",
            Method::MmapScan => "mmap-scan",
            Method::Read => "read",
            Method::Pread => "pread",
        }
    }

    /// The method of a short name (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    fn is_mapped(self) -> bool {
        !matches!(self, Method::Read | Method::Pread)
    }
}

/// An access pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum Pattern {
    /// One pass over the whole file, summed.
    Seq,
    /// 4 KiB reads at fixed pseudo-random page offsets, each summed.
    Random,
}

impl Pattern {
    /// `seq` or `random`.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Seq => "seq",
            Pattern::Random => "random",
        }
    }
}

/// The page-cache state of the file before a timed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum CacheState {
    /// The file is in the page cache.
    Warm,
    /// The file was evicted from the page cache before each timed pass.
    Cold,
}

impl CacheState {
    /// `warm` or `cold`.
    pub fn name(self) -> &'static str {
        match self {
            CacheState::Warm => "warm",
            CacheState::Cold => "cold",
        }
    }
}

/// The bytes of one random read.
pub(crate) const BLOCK: usize = 4096;

/// The scan every method does: a wrapping sum of 64-bit words (vectorised).
pub(crate) fn scan(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut sum = 0u64;
    for w in &mut words {
        sum = sum.wrapping_add(u64::from_ne_bytes(w.try_into().expect("8 bytes")));
    }
    words
        .remainder()
        .iter()
        .fold(sum, |s, &b| s.wrapping_add(b as u64))
}

/// Fixed page-aligned offsets (xorshift64), the same for every method.
pub(crate) fn random_offsets(size: u64, count: usize) -> Vec<u64> {
    random_offsets_iter(size, count).collect()
}

/// The offsets of [`random_offsets`], one at a time: `count` 4 KiB-aligned offsets below
/// `size` (same seed, same sequence).
pub(crate) fn random_offsets_iter(size: u64, count: usize) -> impl Iterator<Item = u64> {
    let pages = size.div_ceil(BLOCK as u64).max(1);
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15);
    (0..count).map(move |_| (rng.next_u64() % pages) * BLOCK as u64)
}

/// What a pass works on: the open file, its size, the buffer, the random offsets.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub(crate) file: &'a File,
    pub(crate) size: u64,
    pub(crate) buf: &'a mut [u8],
    pub(crate) offsets: &'a [u64],
}

/// The sum of the random blocks of `bytes` (the whole file).
fn random_in(bytes: &[u8], offsets: &[u64]) -> u64 {
    let mut sum = 0u64;
    for &off in offsets {
        let off = off as usize;
        let end = (off + BLOCK).min(bytes.len());
        sum = sum.wrapping_add(scan(&bytes[off..end]));
    }
    sum
}

/// One pass of `method` over `t` with `pattern`; returns the checksum.
pub(crate) fn pass(method: Method, pattern: Pattern, t: &mut Target<'_>) -> Result<u64> {
    if method.is_mapped() {
        return mapped_pass(method, pattern, t);
    }
    match (method, pattern) {
        (Method::Read, Pattern::Seq) => {
            let mut f = t.file;
            f.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io(Op::Read, &e))?;
            let mut sum = 0u64;
            loop {
                let n = f.read(t.buf).map_err(|e| Error::io(Op::Read, &e))?;
                if n == 0 {
                    return Ok(sum);
                }
                sum = sum.wrapping_add(scan(&t.buf[..n]));
            }
        }
        (Method::Read, Pattern::Random) => {
            let mut f = t.file;
            let mut sum = 0u64;
            for &off in t.offsets {
                let len = block_len(t.size, off);
                f.seek(SeekFrom::Start(off))
                    .map_err(|e| Error::io(Op::Read, &e))?;
                f.read_exact(&mut t.buf[..len])
                    .map_err(|e| Error::io(Op::Read, &e))?;
                sum = sum.wrapping_add(scan(&t.buf[..len]));
            }
            Ok(sum)
        }
        (_, Pattern::Seq) => {
            let mut sum = 0u64;
            let mut off = 0u64;
            loop {
                let n = t
                    .file
                    .read_at(t.buf, off)
                    .map_err(|e| Error::io(Op::Read, &e))?;
                if n == 0 {
                    return Ok(sum);
                }
                sum = sum.wrapping_add(scan(&t.buf[..n]));
                off += n as u64;
            }
        }
        (_, Pattern::Random) => {
            let mut sum = 0u64;
            for &off in t.offsets {
                let len = block_len(t.size, off);
                t.file
                    .read_exact_at(&mut t.buf[..len], off)
                    .map_err(|e| Error::io(Op::Read, &e))?;
                sum = sum.wrapping_add(scan(&t.buf[..len]));
            }
            Ok(sum)
        }
    }
}

fn block_len(size: u64, off: u64) -> usize {
    (size - off).min(BLOCK as u64) as usize
}

fn mapped_pass(method: Method, pattern: Pattern, t: &mut Target<'_>) -> Result<u64> {
    let mut opts = MapOptions::new();
    if method == Method::MmapPopulate {
        opts.populate();
    }
    if method == Method::MmapScan {
        opts.scan();
    }
    let map = opts.map(t.file)?;
    match method {
        Method::MmapSequential => map.advise(Advice::Sequential)?,
        Method::MmapWillNeed => map.advise(Advice::WillNeed)?,
        Method::MmapHugePage => map.advise(Advice::HugePage)?,
        _ => {}
    }
    let len = usize::try_from(t.size)
        .map_err(|_| Error::new(Op::Map, ErrorKind::LengthOverflow).at(0, t.size))?;
    let offsets = t.offsets;
    // SAFETY: the bench owns its generated files and nothing writes them while it runs; a
    // file given by the caller must not be written during the bench (documented on
    // `BenchOptions::file`). A truncation is caught by the guard of `with_bytes`.
    unsafe {
        map.with_bytes(0, len, |bytes| match pattern {
            Pattern::Seq => scan(bytes),
            Pattern::Random => random_in(bytes, offsets),
        })
    }
}
