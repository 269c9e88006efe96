//! The [`Source`] trait and the simple sources: a file, a function, a vector.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use super::view::SourceView;
use crate::sys::fs as sys;
use crate::{Error, ErrorKind, Op, Result};

/// Where a pager's bytes come from (and, optionally, go back to).
///
/// The pager calls [`read_at`](Source::read_at) for each page on first touch, possibly
/// from several threads at once, and [`write_at`](Source::write_at) for dirty pages when
/// the source is [`writable`](Source::writable). The built-in sources accept any offset
/// and length; only the pager's own calls are promised to be page-aligned.
pub trait Source: Send + Sync {
    /// Length of the data in bytes. The pager maps this many bytes (rounded up to pages).
    fn len(&self) -> u64;

    /// Whether the data is empty (`len() == 0`).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` with the bytes at `offset`. `offset` is page-aligned and `buf` a whole
    /// number of pages; bytes past `len()` must be zero-filled.
    ///
    /// # Errors
    ///
    /// Whatever the source could not read, with its offset and length.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Fill several buffers, each with the bytes at its offset (as
    /// [`read_at`](Source::read_at) would, zeros past `len()`). A source with a high cost
    /// per call (a remote object: a round trip each) fetches them at once; the default
    /// reads them one after another.
    ///
    /// # Errors
    ///
    /// The first read that failed.
    fn read_ranges(&self, reads: &mut [(u64, &mut [u8])]) -> Result<()> {
        for (offset, buf) in reads.iter_mut() {
            self.read_at(*offset, buf)?;
        }
        Ok(())
    }

    /// The read-ahead window this source works best with, in bytes, used by a pager
    /// whose [`readahead`](super::PagerOptions::readahead) was not set. `None` (the
    /// default), or a hint under one of the pager's pages, leaves the pager's own
    /// default (32 pages); a [`FileSource`] asks for 1 MiB, a remote object for
    /// megabytes, as each request costs a round trip.
    fn readahead_hint(&self) -> Option<usize> {
        None
    }

    /// Whether reading ahead out of order costs about what reading in order does. The
    /// pager's asynchronous read-ahead reads the next two windows of a scan on two
    /// threads at once, ahead of (and in another order than) the reader; a source for
    /// which a jump back is expensive says `false` — a zstd frame larger than a window,
    /// decoded by one streaming decoder that restarts from the frame's start on every
    /// jump back — and the pager then reads ahead synchronously only. Default `true`.
    fn reads_out_of_order(&self) -> bool {
        true
    }

    /// The source's bytes as a read-only mapping of its file, which the pager copies
    /// pages from directly (one copy instead of a read and a copy). Only the crate's
    /// [`FileSource`] has one; the default is `None`.
    fn view(&self) -> Option<&SourceView> {
        None
    }

    /// Whether `write_at` is supported.
    fn writable(&self) -> bool {
        false
    }

    /// Write back dirty bytes at `offset` (page-aligned; the pager never writes past
    /// `len()`; it clips the last page).
    ///
    /// # Errors
    ///
    /// `Unsupported` unless the source is [`writable`](Source::writable); the write's
    /// own failure otherwise.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        Err(Error::new(Op::Write, ErrorKind::Unsupported)
            .at(offset, data.len() as u64)
            .detail(format!("{} is read-only", self.describe())))
    }

    /// Make written bytes durable (`fdatasync` for files). The default does nothing.
    ///
    /// # Errors
    ///
    /// The sync's failure (for a file: `EIO` when write-back failed).
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// A short name for stats and errors, e.g. `"file /x/y"`,
    /// `"zstd /x/y.zst (128 frames)"`.
    fn describe(&self) -> String;
}

/// The read-ahead window a local file asks for, in bytes: 1 MiB (see [`FileSource`]).
pub(super) const FILE_READAHEAD: usize = 1 << 20;

/// The error for a range whose end overflows `u64`.
fn overflow(op: Op, offset: u64, len: usize) -> Error {
    Error::new(op, ErrorKind::LengthOverflow).at(offset, len as u64)
}

/// Open `path` for a source: a regular file or a block device, never a directory, pipe
/// or socket. Opening is non-blocking so a FIFO without a writer is refused rather than
/// waited on. Returns the file and its length.
pub(super) fn open_source_file(path: &Path, write: bool) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(sys::O_NONBLOCK | sys::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    let ft = meta.file_type();
    let what = if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a pipe (FIFO)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if !(ft.is_file() || ft.is_block_device()) {
        Some("not a regular file")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(Error::new(Op::Open, ErrorKind::NotMappable)
            .with_path(Some(path))
            .detail(format!("cannot page from {what}"))
            .hint(
                "a source reads a regular file or a block device; copy the data to a file first",
            ));
    }
    let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| Error::os(Op::Open, e))?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| Error::os(Op::Open, e).with_path(Some(path)))?;
    // A block device's metadata says 0 bytes; seeking to the end gives its size.
    let len = (&file)
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    Ok((file, len))
}

/// Read up to `buf.len()` bytes at `offset` with `pread`, retrying on `EINTR`; stops
/// early at end of file. Returns how many bytes were read.
pub(super) fn pread_full(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A file as a source, read with `pread` and written with `pwrite`.
///
/// The length is fixed at open. If the file shrinks afterwards, reads past its new end
/// give zeros (as a page past the end of a mapped file would, without the SIGBUS); if it
/// grows, bytes past the length seen at open stay invisible (read as zeros).
///
/// A pager whose [`readahead`](super::PagerOptions::readahead) was not set reads a file
/// ahead in windows of up to 1 MiB (256 pages of 4 KiB; see
/// [`Source::readahead_hint`]): measured with `mmkit page bench` on a 2-vCPU VM (a warm
/// 256 MiB file), that brought a sequential pass to the cost of touching fresh anonymous
/// memory, the floor for filling private pages, where the pager's general default of 32
/// pages costs more a page.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
    len: u64,
    writable: bool,
    /// Made on first use (see [`Source::view`]).
    view: OnceLock<Option<SourceView>>,
}

impl FileSource {
    /// Open `path` read-only.
    ///
    /// # Errors
    ///
    /// The open's errno (`ENOENT`, `EACCES`, ...) as `Op::Open`; `NotMappable` for a
    /// directory, a pipe or a socket.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSource> {
        FileSource::open_mode(path.as_ref(), false)
    }

    /// Open `path` for reading and writing: [`write_at`](Source::write_at) uses `pwrite`
    /// and [`sync`](Source::sync) `fdatasync`.
    ///
    /// # Errors
    ///
    /// As [`open`](FileSource::open); `EISDIR` for a directory.
    pub fn open_rw(path: impl AsRef<Path>) -> Result<FileSource> {
        FileSource::open_mode(path.as_ref(), true)
    }

    fn open_mode(path: &Path, writable: bool) -> Result<FileSource> {
        let (file, len) = open_source_file(path, writable)?;
        Ok(FileSource {
            file,
            path: path.to_path_buf(),
            len,
            writable,
            view: OnceLock::new(),
        })
    }

    /// The path the source was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: &io::Error, op: Op, offset: u64, len: usize) -> Error {
        Error::io(op, e)
            .with_path(Some(&self.path))
            .at(offset, len as u64)
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| overflow(Op::Read, offset, buf.len()).with_path(Some(&self.path)))?;
        let want = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        let got = pread_full(&self.file, offset, &mut buf[..want])
            .map_err(|e| self.err(&e, Op::Read, offset, buf.len()))?;
        buf[got..].fill(0);
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::new(Op::Write, ErrorKind::Unsupported)
                .with_path(Some(&self.path))
                .at(offset, data.len() as u64)
                .detail("the source was opened read-only")
                .hint("open it with FileSource::open_rw"));
        }
        check_write_range(offset, data.len(), self.len)
            .map_err(|e| e.with_path(Some(&self.path)))?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| self.err(&e, Op::Write, offset, data.len()))
    }

    fn sync(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| Error::io(Op::Flush, &e).with_path(Some(&self.path)))
    }

    fn view(&self) -> Option<&SourceView> {
        self.view
            .get_or_init(|| SourceView::map(&self.file, self.len))
            .as_ref()
    }

    /// 1 MiB: see [`FileSource`] for the measurement.
    fn readahead_hint(&self) -> Option<usize> {
        Some(FILE_READAHEAD)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// Refuse a write that ends past `len` (a source never grows).
fn check_write_range(offset: u64, n: usize, len: u64) -> Result<()> {
    let end = offset
        .checked_add(n as u64)
        .ok_or_else(|| overflow(Op::Write, offset, n))?;
    if end > len {
        return Err(Error::new(Op::Write, ErrorKind::OutOfRange)
            .at(offset, n as u64)
            .detail(format!(
                "write ends at {end}, past the source's {len} bytes"
            )));
    }
    Ok(())
}

/// The generator of an [`FnSource`].
type Generate = dyn Fn(u64, &mut [u8]) + Send + Sync;

/// Generated data: a function fills each range on demand. Read-only.
///
/// The function is called as `f(offset, buf)` with `buf` clipped to the source's length
/// (so it never sees bytes past the end; the source zero-fills those itself). It must
/// give the same bytes each time for the same offset, since the pager may read a page
/// again after evicting it, and may be called from several threads at once.
///
/// ```
/// use mmkit::pager::{FnSource, Source};
/// // Each byte is its offset, mod 251.
/// let src = FnSource::new(10_000, |off, buf| {
///     for (i, b) in buf.iter_mut().enumerate() {
///         *b = ((off + i as u64) % 251) as u8;
///     }
/// });
/// let mut page = vec![0xff; 4096];
/// src.read_at(8192, &mut page)?;
/// assert_eq!(page[0], (8192 % 251) as u8);
/// assert!(page[10_000 - 8192..].iter().all(|&b| b == 0));
/// # Ok::<(), mmkit::Error>(())
/// ```
pub struct FnSource {
    len: u64,
    f: Box<Generate>,
}

impl FnSource {
    /// A source of `len` bytes made by `f(offset, buf)`.
    pub fn new<F>(len: u64, f: F) -> FnSource
    where
        F: Fn(u64, &mut [u8]) + Send + Sync + 'static,
    {
        FnSource {
            len,
            f: Box::new(f),
        }
    }
}

impl fmt::Debug for FnSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSource").field("len", &self.len).finish()
    }
}

impl Source for FnSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| overflow(Op::Read, offset, buf.len()))?;
        let want = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        let (data, tail) = buf.split_at_mut(want);
        if !data.is_empty() {
            (self.f)(offset, data);
        }
        tail.fill(0);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("generated ({} bytes)", self.len)
    }
}

/// Bytes in memory, readable and writable: a stand-in for a file in write-back tests.
///
/// It counts the calls to [`write_at`](Source::write_at) and [`sync`](Source::sync), so
/// a test can see when the pager wrote back.
///
/// ```
/// use mmkit::pager::{MemSource, Source};
/// let src = MemSource::new(vec![1u8; 6000]);
/// src.write_at(4096, b"abc")?;
/// src.sync()?;
/// assert_eq!(&src.to_vec()[4096..4099], b"abc");
/// assert_eq!((src.writes(), src.syncs()), (1, 1));
/// # Ok::<(), mmkit::Error>(())
/// ```
#[derive(Debug)]
pub struct MemSource {
    data: RwLock<Vec<u8>>,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl MemSource {
    /// A source holding `data`; its length is fixed at `data.len()`.
    pub fn new(data: Vec<u8>) -> MemSource {
        MemSource {
            data: RwLock::new(data),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// A source of `len` zero bytes.
    pub fn zeroed(len: usize) -> MemSource {
        MemSource::new(vec![0; len])
    }

    /// A copy of the bytes as they are now.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times `write_at` succeeded.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// How many times `sync` was called.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl Source for MemSource {
    fn len(&self) -> u64 {
        self.data.read().unwrap_or_else(|p| p.into_inner()).len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| overflow(Op::Read, offset, buf.len()))?;
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        let start = (offset.min(data.len() as u64)) as usize;
        let n = (data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&data[start..start + n]);
        buf[n..].fill(0);
        Ok(())
    }

    fn writable(&self) -> bool {
        true
    }

    fn write_at(&self, offset: u64, src: &[u8]) -> Result<()> {
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        check_write_range(offset, src.len(), data.len() as u64)?;
        let start = offset as usize;
        data[start..start + src.len()].copy_from_slice(src);
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("memory ({} bytes)", self.len())
    }
}
