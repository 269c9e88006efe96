//! The `std::io` traits for [`MappedFile`]: it reads, writes and seeks like a `File`, and
//! `fill_buf` lends a small buffer filled with `read_at` (never a slice of the mapping).

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use super::{MappedFile, READ_BUF};

impl Read for MappedFile {
    /// Copy from the position; 0 at the end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_into(buf)?)
    }
}

impl BufRead for MappedFile {
    /// The bytes at the position, from a buffer of up to 8 KiB copied out of the mapping;
    /// empty at the end. Every change through this object empties the buffer.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let end = self.rbuf_start + self.rbuf.len();
        if !(self.rbuf_start <= self.pos && self.pos < end) {
            self.rbuf.clear();
            let n = READ_BUF.min(self.len.saturating_sub(self.pos));
            if n > 0 {
                self.rbuf.resize(n, 0);
                if let Err(e) = self.map.read_at(self.pos, &mut self.rbuf) {
                    self.rbuf.clear();
                    return Err(e.into());
                }
                self.rbuf_start = self.pos;
            }
        }
        if self.rbuf.is_empty() {
            return Ok(&[]);
        }
        Ok(&self.rbuf[self.pos - self.rbuf_start..])
    }

    /// Move the position past `amt` buffered bytes (at most what `fill_buf` returned).
    fn consume(&mut self, amt: usize) {
        let end = self.rbuf_start + self.rbuf.len();
        if self.rbuf_start <= self.pos && self.pos < end {
            self.pos += amt.min(end - self.pos);
        }
    }
}

impl Write for MappedFile {
    /// Write what fits before the end (all of it when growable), as `std::io` expects of a
    /// fixed-size sink; when nothing fits, the `OutOfRange` error of
    /// [`MappedFile::write`].
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.len.saturating_sub(self.pos);
        let take = if self.growable || room == 0 {
            buf.len()
        } else {
            buf.len().min(room)
        };
        Ok(MappedFile::write(self, &buf[..take])?)
    }

    /// [`MappedFile::flush`]: `msync`, and cut spare capacity.
    fn flush(&mut self) -> io::Result<()> {
        Ok(MappedFile::flush(self)?)
    }
}

impl Seek for MappedFile {
    /// [`MappedFile::seek`]: before the start, or past the end unless growable, is an
    /// `InvalidInput` error.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        Ok(MappedFile::seek(self, pos)? as u64)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos as u64)
    }
}
