//! Writing seekable zstd files: independent frames of a fixed uncompressed size, then a
//! seek table.

use std::io::{self, Read, Write};

use super::index::{FOOTER_LEN, SEEKABLE_MAGIC, SEEK_TABLE_MAGIC};
use crate::error::{Error, ErrorKind, Op, Result};

/// What [`compress_seekable`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompressStats {
    /// How many zstd frames (not counting the seek table).
    pub frames: u64,
    /// Uncompressed bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written, seek table included.
    pub bytes_out: u64,
    /// Bytes of the seek table (a skippable frame at the end).
    pub seek_table_bytes: u64,
}

/// Compress `input` into `output` as a seekable zstd file, for
/// [`ZstdSource`](super::ZstdSource).
///
/// The input is cut into independent frames of `frame_size` uncompressed bytes (the
/// last one shorter), each compressed at `level` with its content size in the header and a
/// content checksum (so damage is found on decode),
/// followed by a seek table in the [seekable format] (a skippable frame, which `zstd -d`
/// skips). An empty input gives one empty frame. Any zstd decoder reproduces the input.
///
/// Smaller frames make random reads cheaper and compress a little worse: 256 KiB to
/// 1 MiB is a fair middle.
///
/// # Errors
///
/// `OutOfRange` for a `frame_size` of 0 or over 4 GiB − 1 (the seek table's limit), or a
/// level outside zstd's range; the input's errors as `Op::Read` and the output's as
/// `Op::Write`.
///
/// [seekable format]: https://github.com/facebook/zstd/blob/dev/contrib/seekable_format/zstd_seekable_compression_format.md
pub fn compress_seekable(
    input: &mut impl Read,
    output: &mut impl Write,
    frame_size: usize,
    level: i32,
) -> Result<CompressStats> {
    check_args(frame_size, level)?;
    let mut comp = ::zstd::bulk::Compressor::new(level).map_err(|e| Error::io(Op::Write, &e))?;
    comp.include_contentsize(true)
        .and_then(|()| comp.include_checksum(true))
        .map_err(|e| Error::io(Op::Write, &e))?;
    let mut buf = vec![0u8; frame_size];
    let mut table = Vec::new();
    let mut stats = CompressStats {
        frames: 0,
        bytes_in: 0,
        bytes_out: 0,
        seek_table_bytes: 0,
    };
    loop {
        let n = read_full(input, &mut buf).map_err(|e| Error::io(Op::Read, &e))?;
        if n == 0 && stats.frames > 0 {
            break;
        }
        let frame = comp
            .compress(&buf[..n])
            .map_err(|e| Error::io(Op::Write, &e))?;
        output
            .write_all(&frame)
            .map_err(|e| Error::io(Op::Write, &e))?;
        let csize = u32::try_from(frame.len()).map_err(|_| {
            Error::new(Op::Write, ErrorKind::OutOfRange)
                .detail("a frame compressed to 4 GiB or more")
        })?;
        table.extend_from_slice(&csize.to_le_bytes());
        table.extend_from_slice(&(n as u32).to_le_bytes());
        stats.frames += 1;
        stats.bytes_in += n as u64;
        stats.bytes_out += frame.len() as u64;
        if n < frame_size {
            break;
        }
    }
    stats.seek_table_bytes = write_seek_table(output, &table, stats.frames)?;
    stats.bytes_out += stats.seek_table_bytes;
    output.flush().map_err(|e| Error::io(Op::Write, &e))?;
    Ok(stats)
}

fn check_args(frame_size: usize, level: i32) -> Result<()> {
    if frame_size == 0 || frame_size as u64 > u64::from(u32::MAX) {
        return Err(Error::new(Op::Write, ErrorKind::OutOfRange)
            .detail(format!("frame size {frame_size} is not in 1..=4294967295")));
    }
    let (lo, hi) = (
        ::zstd::zstd_safe::min_c_level(),
        ::zstd::zstd_safe::max_c_level(),
    );
    if !(lo..=hi).contains(&level) {
        return Err(Error::new(Op::Write, ErrorKind::OutOfRange)
            .detail(format!("zstd level {level} is not in {lo}..={hi}")));
    }
    Ok(())
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Write the seek table (entries without checksums) and return its size.
fn write_seek_table(output: &mut impl Write, entries: &[u8], frames: u64) -> Result<u64> {
    let body = entries.len() as u64 + FOOTER_LEN;
    if body > u64::from(u32::MAX) {
        return Err(Error::new(Op::Write, ErrorKind::OutOfRange).detail(format!(
            "{frames} frames do not fit a seek table; use a larger frame size"
        )));
    }
    let mut t = Vec::with_capacity(8 + body as usize);
    t.extend_from_slice(&SEEK_TABLE_MAGIC.to_le_bytes());
    t.extend_from_slice(&(body as u32).to_le_bytes());
    t.extend_from_slice(entries);
    t.extend_from_slice(&(frames as u32).to_le_bytes());
    t.push(0); // descriptor: no checksums
    t.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    output.write_all(&t).map_err(|e| Error::io(Op::Write, &e))?;
    Ok(t.len() as u64)
}
