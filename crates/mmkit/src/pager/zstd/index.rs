//! The frame index of a zstd file: where each frame lies, compressed and uncompressed.
//!
//! Built from the seekable format's seek table when the file ends with one, else by
//! walking the frames: each frame header gives its content size, each 3-byte block
//! header the block's compressed size (RFC 8878, sections 3.1.1 and 3.1.1.2).
//!
//! The bytes are read through [`Raw`], which may be a remote object where each read is a
//! round trip: the seek table is read with the footer in one call when it is small (two
//! calls at most), and the walk reads each frame header together with its first block
//! header, then each further block header once.

use super::raw::Raw;
use crate::error::{Error, ErrorKind, Op, Result};

/// The magic number starting a zstd frame.
pub(super) const FRAME_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames start with `0x184D2A50..=0x184D2A5F`.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_BASE: u32 = 0x184D_2A50;
/// The skippable magic number the seekable format uses for its seek table.
pub(super) const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
/// The magic number closing a seek table's footer.
pub(super) const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// The seek table footer: frame count (4), descriptor (1), magic (4).
pub(super) const FOOTER_LEN: u64 = 9;
/// How many bytes at the end of a source are read in one call when looking for a seek
/// table: the footer and, for up to about 8000 frames, the table itself. (A local file
/// reads the footer alone.)
const SOURCE_TAIL: u64 = 64 << 10;
/// The longest frame header (magic 4, descriptor 1, window 1, dictionary id 4, content
/// size 8).
const FRAME_HEADER_MAX: usize = 18;
/// Bytes read at the start of each frame in the walk: the longest frame header and the
/// 3-byte header of the first block, so a one-block frame costs one read.
const HEAD_READ: usize = FRAME_HEADER_MAX + 3;

/// One frame of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frame {
    /// Where the frame starts in the compressed file.
    pub(super) coff: u64,
    /// The frame's compressed size in bytes.
    pub(super) csize: u64,
    /// Where its bytes start in the uncompressed data.
    pub(super) uoff: u64,
    /// Its uncompressed size in bytes.
    pub(super) usize: u64,
    /// The frame's checksum from the seek table, when the table carries them: the low 32
    /// bits of the XXH64 of its uncompressed bytes (the frame may have none of its own,
    /// as the seekable format's reference compressor writes them).
    pub(super) checksum: Option<u32>,
}

/// What the index was built from.
#[derive(Debug)]
pub(super) struct Index {
    pub(super) frames: Vec<Frame>,
    /// Whether a seek table gave the frames (no walk was needed).
    pub(super) seek_table: bool,
    /// How many frames had no content size in their header (each was decompressed once
    /// at open to learn it).
    pub(super) unsized_frames: usize,
}

/// A `Corrupt` error about the compressed data (named by its path or description).
pub(super) fn corrupt(op: Op, raw: &Raw, offset: u64, detail: String) -> Error {
    Error::new(op, ErrorKind::Corrupt)
        .with_path(Some(raw.name()))
        .at(offset, 0)
        .detail(detail)
        .hint("the file is damaged or not zstd; check it with `zstd -t`")
}

/// Read up to `buf.len()` bytes at `off` in one call; fewer at the end of the data.
fn read_some(raw: &Raw, off: u64, buf: &mut [u8]) -> Result<usize> {
    raw.read(off, buf)
        .map_err(|e| raw.error(Op::Open, e, off, buf.len() as u64))
}

/// The error for data that ends inside `what`, which starts at `off`.
fn truncated(raw: &Raw, off: u64, what: &str) -> Error {
    corrupt(
        Op::Open,
        raw,
        off,
        format!("truncated: the file ends inside {what} at offset {off}"),
    )
}

/// Read exactly `buf.len()` bytes at `off`, or say the file ends too soon.
fn read_exact(raw: &Raw, off: u64, buf: &mut [u8], what: &str) -> Result<()> {
    if read_some(raw, off, buf)? < buf.len() {
        return Err(truncated(raw, off, what));
    }
    Ok(())
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Build the index of the compressed data. `measure` decompresses a frame whose header
/// has no content size and returns its size.
pub(super) fn build(raw: &Raw, measure: &dyn Fn(&Frame) -> Result<u64>) -> Result<Index> {
    if let Some(frames) = read_seek_table(raw)? {
        return Ok(Index {
            frames,
            seek_table: true,
            unsized_frames: 0,
        });
    }
    walk(raw, measure)
}

/// Walk the frames from the start, skipping skippable frames.
fn walk(raw: &Raw, measure: &dyn Fn(&Frame) -> Result<u64>) -> Result<Index> {
    let len = raw.len();
    let mut frames = Vec::new();
    let (mut coff, mut uoff, mut unsized_frames) = (0u64, 0u64, 0usize);
    while coff < len {
        // One read for the magic and whatever header follows it.
        let mut head = [0u8; HEAD_READ];
        let n = (len - coff).min(HEAD_READ as u64) as usize;
        let got = read_some(raw, coff, &mut head[..n])?;
        if got < 4 {
            return Err(truncated(raw, coff, "a frame header"));
        }
        let head = &head[..got];
        let magic = le32(head);
        if magic & SKIPPABLE_MASK == SKIPPABLE_BASE {
            coff = skip_frame(raw, coff, head)?;
            continue;
        }
        if magic != FRAME_MAGIC {
            return Err(corrupt(
                Op::Open,
                raw,
                coff,
                format!("no zstd frame at offset {coff} (magic {magic:#010x})"),
            ));
        }
        let (csize, content) = frame_extent(raw, coff, head)?;
        let mut frame = Frame {
            coff,
            csize,
            uoff,
            usize: content.unwrap_or(0),
            checksum: None,
        };
        if content.is_none() {
            frame.usize = measure(&frame)?;
            unsized_frames += 1;
        }
        uoff = uoff
            .checked_add(frame.usize)
            .ok_or_else(|| corrupt(Op::Open, raw, coff, "uncompressed size overflows".into()))?;
        frames.push(frame);
        coff += csize;
    }
    Ok(Index {
        frames,
        seek_table: false,
        unsized_frames,
    })
}

/// Where the skippable frame at `coff`, whose first bytes are `head`, ends.
fn skip_frame(raw: &Raw, coff: u64, head: &[u8]) -> Result<u64> {
    if head.len() < 8 {
        return Err(truncated(raw, coff, "a skippable frame header"));
    }
    let end = coff + 8 + u64::from(le32(&head[4..]));
    if end > raw.len() {
        return Err(corrupt(
            Op::Open,
            raw,
            end,
            "truncated: a skippable frame ends past the end of the file".into(),
        ));
    }
    Ok(end)
}

/// The parsed frame header: its length and the content size, if written.
fn parse_header(h: &[u8; FRAME_HEADER_MAX]) -> Option<(u64, Option<u64>)> {
    let fhd = h[4];
    let fcs_flag = fhd >> 6;
    let single = fhd & 0x20 != 0;
    if fhd & 0x08 != 0 {
        return None; // reserved bit set
    }
    let did_len = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match (fcs_flag, single) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let at = 5 + usize::from(!single) + did_len;
    let mut bytes = [0u8; 8];
    bytes[..fcs_len].copy_from_slice(&h[at..at + fcs_len]);
    let raw = u64::from_le_bytes(bytes);
    let content = match fcs_len {
        0 => None,
        2 => Some(raw + 256),
        _ => Some(raw),
    };
    Some(((at + fcs_len) as u64, content))
}

/// The compressed size of the frame at `coff` (header, blocks and checksum) and its
/// content size when the header gives one. `head` holds the bytes read at `coff` (up to
/// [`HEAD_READ`]); block headers past them are read one by one.
fn frame_extent(raw: &Raw, coff: u64, head: &[u8]) -> Result<(u64, Option<u64>)> {
    let len = raw.len();
    let mut h = [0u8; FRAME_HEADER_MAX];
    let n = head.len().min(FRAME_HEADER_MAX);
    h[..n].copy_from_slice(&head[..n]);
    let bad = || {
        corrupt(
            Op::Open,
            raw,
            coff,
            format!("bad zstd frame header at offset {coff}"),
        )
    };
    let (hlen, content) = parse_header(&h).ok_or_else(bad)?;
    if hlen > n as u64 {
        return Err(bad());
    }
    let checksum = h[4] & 0x04 != 0;
    let mut pos = coff + hlen;
    loop {
        let mut b = [0u8; 3];
        let at = (pos - coff) as usize;
        match head.get(at..at + 3) {
            Some(read) => b.copy_from_slice(read),
            None => read_exact(raw, pos, &mut b, "a block header")?,
        }
        let head = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        let (last, kind, size) = (head & 1 != 0, (head >> 1) & 3, u64::from(head >> 3));
        let body = match kind {
            0 | 2 => size,
            1 => 1,
            _ => {
                return Err(corrupt(
                    Op::Open,
                    raw,
                    pos,
                    format!("reserved block type at offset {pos}"),
                ))
            }
        };
        pos += 3 + body;
        if last {
            break;
        }
    }
    pos += if checksum { 4 } else { 0 };
    if pos > len {
        return Err(corrupt(
            Op::Open,
            raw,
            coff,
            format!("truncated: the frame at offset {coff} ends at {pos}, past the end of the file ({len} bytes)"),
        ));
    }
    Ok((pos - coff, content))
}

/// The frames listed by a seek table at the end of the file, if there is one.
///
/// The end is read in one call of [`Raw::tail_len`] bytes (the footer alone for a file;
/// for a source, enough to hold a table of thousands of frames too), and the table in a
/// second call only when it did not fit.
///
/// A footer with the seekable magic but a table that does not add up to the file is an
/// error: the file claims to be seekable and is not.
fn read_seek_table(raw: &Raw) -> Result<Option<Vec<Frame>>> {
    let len = raw.len();
    if len < 8 + FOOTER_LEN {
        return Ok(None);
    }
    // A local file reads the footer alone; a source, where each read may be a round
    // trip, the table with it.
    let tail_len = if raw.is_source() {
        SOURCE_TAIL
    } else {
        FOOTER_LEN
    };
    let tail_start = len - tail_len.clamp(FOOTER_LEN, len);
    let mut tail = vec![0u8; (len - tail_start) as usize];
    read_exact(raw, tail_start, &mut tail, "the seek table footer")?;
    let foot = &tail[tail.len() - FOOTER_LEN as usize..];
    if le32(&foot[5..]) != SEEKABLE_MAGIC {
        return Ok(None);
    }
    let count = u64::from(le32(foot));
    let entry = if foot[4] & 0x80 != 0 { 12 } else { 8 };
    let bad = |what: &str| {
        corrupt(
            Op::Open,
            raw,
            len - FOOTER_LEN,
            format!("bad seek table: {what}"),
        )
    };
    let table_len = count * entry + FOOTER_LEN;
    let start = len
        .checked_sub(8 + table_len)
        .ok_or_else(|| bad("longer than the file"))?;
    let read;
    let table = if start >= tail_start {
        &tail[(start - tail_start) as usize..]
    } else {
        let mut buf = vec![0u8; (8 + table_len) as usize];
        read_exact(raw, start, &mut buf, "the seek table")?;
        read = buf;
        &read[..]
    };
    if le32(table) != SEEK_TABLE_MAGIC || u64::from(le32(&table[4..])) != table_len {
        return Err(bad("its skippable frame header does not match the footer"));
    }
    let frames = table_frames(&table[8..8 + (count * entry) as usize], entry as usize);
    let coff = frames.last().map_or(0, |f| f.coff + f.csize);
    if coff != start {
        return Err(bad(&format!(
            "its frames add up to {coff} compressed bytes, but the table starts at {start}"
        )));
    }
    Ok(Some(frames))
}

/// The frames a seek table's `entries` (of `entry` bytes each: sizes, and a checksum
/// when 12) describe, one after another from the start.
fn table_frames(entries: &[u8], entry: usize) -> Vec<Frame> {
    let mut frames = Vec::with_capacity(entries.len() / entry);
    let (mut coff, mut uoff) = (0u64, 0u64);
    for e in entries.chunks_exact(entry) {
        let (csize, usize) = (u64::from(le32(e)), u64::from(le32(&e[4..])));
        frames.push(Frame {
            coff,
            csize,
            uoff,
            usize,
            checksum: (entry == 12).then(|| le32(&e[8..])),
        });
        coff += csize;
        uoff += usize;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::parse_header;

    #[test]
    fn header_sizes() {
        let mut h = [0u8; 18];
        h[..4].copy_from_slice(&super::FRAME_MAGIC.to_le_bytes());
        // Single segment, 1-byte content size 200.
        h[4] = 0x20;
        h[5] = 200;
        assert_eq!(parse_header(&h), Some((6, Some(200))));
        // Window descriptor, 2-byte content size (value + 256).
        h[4] = 0x40;
        h[6..8].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(parse_header(&h), Some((8, Some(1256))));
        // No content size, 4-byte dictionary id.
        h[4] = 0x03;
        assert_eq!(parse_header(&h), Some((10, None)));
        // 8-byte content size.
        h[4] = 0xe0;
        h[5..13].copy_from_slice(&(5u64 << 32).to_le_bytes());
        assert_eq!(parse_header(&h), Some((13, Some(5 << 32))));
        h[4] = 0x08;
        assert_eq!(parse_header(&h), None);
    }
}
