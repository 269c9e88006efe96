//! [`ZstdSource`]: zstd-compressed data — a local file or any [`Source`], such as an
//! object in a store — seen as its uncompressed bytes.

mod compress;
mod index;
mod raw;
mod xxh64;

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use compress::{compress_seekable, CompressStats};
use index::{corrupt, Frame, Index};
use raw::{source_error, Raw};

use super::source::{open_source_file, Source, FILE_READAHEAD};
use crate::error::{Error, Op, Result};

/// Frames up to this size are decompressed whole; larger ones are read through a
/// streaming decoder in chunks of [`CHUNK`].
const WHOLE_FRAME_MAX: u64 = 4 << 20;
/// The piece of a large frame decoded and cached at a time.
const CHUNK: u64 = 1 << 20;
/// How many decoded frames (or chunks) are kept.
const CACHE_ENTRIES: usize = 8;
/// The largest window a streaming decoder accepts (`zstd --long=31`).
const WINDOW_LOG_MAX: u32 = 31;

/// A zstd-compressed file seen as its uncompressed bytes, read through a frame index.
///
/// The compressed bytes come from a local file ([`open`](ZstdSource::open), read with
/// `pread`) or from any other [`Source`] ([`from_source`](ZstdSource::from_source)):
/// an object in a store, say, of which only the frames a read touches are fetched.
///
/// The file is a sequence of independent zstd frames (skippable frames are skipped). At
/// open the frames are indexed: from the [seekable format]'s seek table when the file
/// ends with one (as [`compress_seekable`] writes), else by walking the frame and block
/// headers, which reads a few bytes per 128 KiB block. A read decompresses only the
/// frames it covers, reading each small frame's compressed bytes in one call.
///
/// Decoded frames are cached, the last 8 of them (most recently used), so sequential
/// page reads decompress each frame once. Frames up to 4 MiB are decoded whole. Larger
/// frames — a file made by the `zstd` command line is one frame of the whole input —
/// are read with a streaming decoder kept where the last read stopped, and cached in
/// 1 MiB chunks: reading forward costs decompressing up to the offset once, memory stays
/// O(window + cache), but reading backwards in such a frame restarts its decoder from
/// the frame's start, so random access to a single-frame file costs O(offset) per miss.
/// Recompress with [`compress_seekable`] for random access.
///
/// A frame whose header has no content size (written by a streaming compressor, e.g.
/// `zstd` reading stdin) is decompressed once at open to learn its size.
///
/// Reads may come from several threads at once; two threads missing the same frame may
/// both decode it.
///
/// # Integrity
///
/// A frame is checked against its checksum when it has one, and a damaged frame gives
/// `Corrupt` on read (the other frames still read): its own content checksum, which
/// [`compress_seekable`] and the `zstd` command line write; or the one the seek table
/// holds for it, as the seekable format's reference compressor writes them (frames up to
/// 4 MiB, which are decoded whole, before any of their bytes is served). In a larger
/// frame, streamed in chunks, a content checksum is checked when the decoder reaches the
/// frame's end, after its earlier chunks were served, and a seek table's checksum is not
/// checked. A frame with no checksum is not checked at all: a damaged byte in it may
/// decode to a wrong byte. This is what checks the bytes of an object in a store, whose
/// ranged reads are not checked otherwise (see [`ObjectSource`](super::ObjectSource)).
///
/// ```
/// use mmkit::pager::{compress_seekable, Source, ZstdSource};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("data.zst");
/// let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
/// let mut out = std::fs::File::create(&path)?;
/// let stats = compress_seekable(&mut &data[..], &mut out, 64 << 10, 3)?;
/// assert_eq!(stats.frames, 5);
///
/// let src = ZstdSource::open(&path)?;
/// assert_eq!(src.len(), 300_000);
/// let mut page = vec![0u8; 4096];
/// src.read_at(200_704, &mut page)?;
/// assert_eq!(&page[..], &data[200_704..200_704 + 4096]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [seekable format]: https://github.com/facebook/zstd/blob/dev/contrib/seekable_format/zstd_seekable_compression_format.md
#[derive(Debug)]
pub struct ZstdSource {
    raw: Arc<Raw>,
    index: Index,
    len: u64,
    cache: Mutex<Vec<(Key, Arc<Vec<u8>>)>>,
    cursor: Mutex<Option<Cursor>>,
}

/// A cached piece: frame number and offset of the piece inside the frame.
type Key = (usize, u64);

/// A streaming decoder positioned inside a large frame.
struct Cursor {
    frame: usize,
    pos: u64,
    dec: Decoder,
}

/// A streaming decoder of one frame, reading the compressed data through a buffer.
type Decoder = ::zstd::stream::read::Decoder<'static, io::BufReader<raw::Range>>;

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("frame", &self.frame)
            .field("pos", &self.pos)
            .finish()
    }
}

/// A streaming decoder of one frame.
fn frame_decoder(raw: &Arc<Raw>, f: &Frame) -> io::Result<Decoder> {
    let mut dec = Decoder::with_buffer(raw.range(f.coff, f.csize))?.single_frame();
    dec.window_log_max(WINDOW_LOG_MAX)?;
    Ok(dec)
}

impl ZstdSource {
    /// Open the zstd file at `path` and index its frames.
    ///
    /// # Errors
    ///
    /// The open's errno as `Op::Open`; `NotMappable` for a directory or pipe; `Corrupt`
    /// for a file that is not zstd, is truncated, or has a seek table that does not add
    /// up; and any decoding error of a frame without a content size.
    pub fn open(path: impl AsRef<Path>) -> Result<ZstdSource> {
        let path = path.as_ref();
        let (file, len) = open_source_file(path, false)?;
        ZstdSource::with_raw(Raw::File {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// Read the zstd data held by `raw` (an object in a store, a [`FileSource`], a
    /// [`MemSource`], ...) and index its frames, as [`open`](ZstdSource::open) does for
    /// a file.
    ///
    /// Every byte comes through `raw.read_at`, within `raw.len()` as it is now. For a
    /// remote source each call is a round trip, so the reads are few and whole: opening
    /// a file with a seek table reads its end in one call (two when the table is over
    /// 64 KiB), and reading a page fetches the one frame holding it in one call (a frame
    /// over 4 MiB streams in 1 MiB reads). Without a seek table, opening reads every
    /// frame header and every block header in turn, a call for each 128 KiB block or
    /// so: recompress with [`compress_seekable`] to avoid that.
    ///
    /// Errors name the source by its [`describe`](Source::describe) (as their path);
    /// an error of `raw` itself is passed on as it is.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mmkit::pager::{compress_seekable, MemSource, Source, ZstdSource};
    /// let data: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
    /// let mut zst = Vec::new();
    /// compress_seekable(&mut &data[..], &mut zst, 64 << 10, 3)?;
    ///
    /// let src = ZstdSource::from_source(Arc::new(MemSource::new(zst)))?;
    /// assert!(src.has_seek_table());
    /// assert_eq!((src.len(), src.path()), (300_000, None));
    /// let mut page = vec![0u8; 4096];
    /// src.read_at(200_704, &mut page)?;
    /// assert_eq!(&page[..], &data[200_704..200_704 + 4096]);
    /// # Ok::<(), mmkit::Error>(())
    /// ```
    ///
    /// [`FileSource`]: super::FileSource
    /// [`MemSource`]: super::MemSource
    ///
    /// # Errors
    ///
    /// As [`open`](ZstdSource::open) after the file is open: `Corrupt` for data that is
    /// not zstd, is truncated, or has a seek table that does not add up; the source's
    /// own read errors; any decoding error of a frame without a content size.
    pub fn from_source(raw: Arc<dyn Source>) -> Result<ZstdSource> {
        ZstdSource::with_raw(Raw::source(raw))
    }

    fn with_raw(raw: Raw) -> Result<ZstdSource> {
        let raw = Arc::new(raw);
        let measure = |f: &Frame| measure_frame(&raw, f);
        let index = index::build(&raw, &measure)?;
        let len = index.frames.last().map_or(0, |f| f.uoff + f.usize);
        Ok(ZstdSource {
            raw,
            index,
            len,
            cache: Mutex::new(Vec::new()),
            cursor: Mutex::new(None),
        })
    }

    /// How many zstd frames the file holds.
    pub fn frames(&self) -> usize {
        self.index.frames.len()
    }

    /// Whether the index came from a seek table (else the frames were walked at open).
    pub fn has_seek_table(&self) -> bool {
        self.index.seek_table
    }

    /// How many frames had no content size in their header, and were decompressed at
    /// open to learn it.
    pub fn unsized_frames(&self) -> usize {
        self.index.unsized_frames
    }

    /// The path of the file the source was [opened](ZstdSource::open) from, or `None`
    /// when it reads another [`Source`] ([`from_source`](ZstdSource::from_source)).
    pub fn path(&self) -> Option<&Path> {
        self.raw.path()
    }

    fn decode_err(&self, f: &Frame, what: impl std::fmt::Display) -> Error {
        corrupt(
            Op::Read,
            &self.raw,
            f.coff,
            format!(
                "frame at compressed offset {} ({} bytes): {what}",
                f.coff, f.csize
            ),
        )
    }

    /// The decoded piece holding uncompressed offset `off` of frame `i`, and where the
    /// piece starts inside the frame.
    fn piece(&self, i: usize, off: u64) -> Result<(u64, Arc<Vec<u8>>)> {
        let f = &self.index.frames[i];
        let start = if f.usize <= WHOLE_FRAME_MAX {
            0
        } else {
            off / CHUNK * CHUNK
        };
        if let Some(hit) = self.cache_get((i, start)) {
            return Ok((start, hit));
        }
        let data = if f.usize <= WHOLE_FRAME_MAX {
            self.decode_whole(f)?
        } else {
            self.decode_chunk(i, start)?
        };
        let data = Arc::new(data);
        self.cache_put((i, start), Arc::clone(&data));
        Ok((start, data))
    }

    fn cache_get(&self, key: Key) -> Option<Arc<Vec<u8>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let at = cache.iter().position(|(k, _)| *k == key)?;
        let entry = cache.remove(at);
        let data = Arc::clone(&entry.1);
        cache.push(entry);
        Some(data)
    }

    fn cache_put(&self, key: Key, data: Arc<Vec<u8>>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.iter().any(|(k, _)| *k == key) {
            return;
        }
        if cache.len() >= CACHE_ENTRIES {
            cache.remove(0);
        }
        cache.push((key, data));
    }

    fn decode_whole(&self, f: &Frame) -> Result<Vec<u8>> {
        let mut comp = vec![0u8; f.csize as usize];
        let got = self
            .raw
            .read(f.coff, &mut comp)
            .map_err(|e| self.raw.error(Op::Read, e, f.coff, f.csize))?;
        if got < comp.len() {
            return Err(self.decode_err(f, "the file was truncated after it was opened"));
        }
        // One byte of slack: a frame decoding to more than its size is an error, not a
        // silent cut.
        let out = ::zstd::bulk::decompress(&comp, f.usize as usize + 1)
            .map_err(|e| self.decode_err(f, e))?;
        if out.len() as u64 != f.usize {
            return Err(self.decode_err(
                f,
                format!("decoded to {} bytes, the index says {}", out.len(), f.usize),
            ));
        }
        if let Some(want) = f.checksum {
            let got = xxh64::xxh64(&out) as u32;
            if got != want {
                return Err(self.decode_err(
                    f,
                    format!(
                        "checksum mismatch: the seek table says {want:08x}, the decoded \
                         frame hashes to {got:08x} (the compressed bytes were damaged, \
                         on disk or on the way)"
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// Decode `CHUNK` bytes (fewer at the frame's end) from `start` inside the large
    /// frame `i`, with the shared streaming cursor.
    fn decode_chunk(&self, i: usize, start: u64) -> Result<Vec<u8>> {
        let f = &self.index.frames[i];
        let mut slot = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let cur = match slot.as_mut() {
            Some(c) if c.frame == i && c.pos <= start => c,
            _ => {
                let dec = frame_decoder(&self.raw, f).map_err(|e| self.decode_err(f, e))?;
                slot.insert(Cursor {
                    frame: i,
                    pos: 0,
                    dec,
                })
            }
        };
        let n = CHUNK.min(f.usize - start) as usize;
        let mut out = vec![0u8; n];
        let res = skip(&mut cur.dec, start - cur.pos).and_then(|()| cur.dec.read_exact(&mut out));
        if let Err(e) = res {
            *slot = None;
            return Err(source_error(e).unwrap_or_else(|e| self.decode_err(f, e)));
        }
        cur.pos = start + n as u64;
        Ok(out)
    }

    /// The frame holding uncompressed offset `off` (`off < len`).
    fn frame_of(&self, off: u64) -> usize {
        self.index
            .frames
            .partition_point(|f| f.uoff + f.usize <= off)
    }
}

/// Read and drop `n` bytes.
fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "frame ended early",
        ));
    }
    Ok(())
}

/// Decode a frame without a content size to count its bytes.
fn measure_frame(raw: &Arc<Raw>, f: &Frame) -> Result<u64> {
    let err = |e: io::Error| {
        source_error(e).unwrap_or_else(|e| {
            corrupt(
                Op::Open,
                raw,
                f.coff,
                format!(
                    "frame at compressed offset {} (no content size, decoded to learn it): {e}",
                    f.coff
                ),
            )
        })
    };
    let mut dec = frame_decoder(raw, f).map_err(err)?;
    io::copy(&mut dec, &mut io::sink()).map_err(err)
}

impl Source for ZstdSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset.saturating_add(done as u64);
            if pos >= self.len {
                buf[done..].fill(0);
                break;
            }
            let i = self.frame_of(pos);
            let f = self.index.frames[i];
            let (start, piece) = self
                .piece(i, pos - f.uoff)
                .map_err(|e| e.at(offset, buf.len() as u64))?;
            let within = (pos - f.uoff - start) as usize;
            let n = (piece.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&piece[within..within + n]);
            done += n;
        }
        Ok(())
    }

    /// `false` when a frame is decoded in streamed chunks (larger than 4 MiB): one
    /// decoder serves it, and reading it out of order restarts it from the frame's start.
    /// Measured on a 1 GiB file made by `zstd -3` (one frame): a scan with asynchronous
    /// read-ahead took 100 s, against 1 s in order.
    fn reads_out_of_order(&self) -> bool {
        self.index.frames.iter().all(|f| f.usize <= WHOLE_FRAME_MAX)
    }

    /// For a zstd file opened with [`open`](ZstdSource::open), a file's window (1 MiB,
    /// see [`FileSource`](super::FileSource)); none for data read through another
    /// source (the pager's default applies).
    fn readahead_hint(&self) -> Option<usize> {
        (!self.raw.is_source()).then_some(FILE_READAHEAD)
    }

    fn describe(&self) -> String {
        let n = self.frames();
        let s = if n == 1 { "" } else { "s" };
        format!("zstd {} ({n} frame{s})", self.raw.name().display())
    }
}
