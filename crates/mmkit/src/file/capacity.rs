//! Capacity of a [`MappedFile`]: growing the file and the mapping together
//! (geometrically, for growable objects), and cutting the file to its exact length on
//! flush, close and drop; the `msync` of a range, waiting or not.

use super::*;

impl MappedFile {
    /// Make room for `end` bytes in a growable object and zero any gap left by a seek past
    /// the end; on return `len == end`.
    pub(super) fn grow_to(&mut self, end: usize) -> Result<()> {
        let cap = self.map.len();
        if end > cap {
            let want = end
                .max(cap.saturating_mul(2))
                .max(crate::page_size())
                .min(isize::MAX as usize);
            self.len_dirty = true;
            self.set_capacity(want)?;
        }
        if self.pos > self.len {
            // Bytes past the length are zeros from `ftruncate` unless someone else wrote
            // them; write the zeros so the gap is certain.
            let zeros = vec![0u8; (self.pos - self.len).min(MOVE_CHUNK)];
            let mut at = self.len;
            while at < self.pos {
                let n = zeros.len().min(self.pos - at);
                self.write_at(at, &zeros[..n])?;
                at += n;
            }
        }
        self.len = end;
        self.len_dirty = self.len != self.map.len() || self.len_dirty;
        Ok(())
    }

    /// `ftruncate` the file to `offset + len`.
    pub(super) fn set_file_len(&self, op: Op, len: usize) -> Result<()> {
        let total = self
            .offset
            .checked_add(len as u64)
            .ok_or_else(|| self.err(op, ErrorKind::LengthOverflow, 0, len))?;
        self.file.set_len(total).map_err(|e| {
            Error::io(op, &e)
                .with_path(self.path())
                .at(0, len as u64)
                .detail(format!(
                    "cannot set the file's length to {total} bytes: {e}"
                ))
        })
    }

    /// Change the file's length to `offset + cap` and the mapping to `cap` bytes: the file
    /// first when growing, the mapping first when shrinking, so no mapped page lies past
    /// the end of the file. `len` is cut to the new capacity.
    pub(super) fn set_capacity(&mut self, cap: usize) -> Result<()> {
        self.rbuf.clear();
        let old = self.map.len();
        if cap > old {
            self.set_file_len(Op::Remap, cap)?;
            self.remap_to(cap)?;
        } else if cap < old {
            self.remap_to(cap)?;
            self.len = self.len.min(cap);
            self.set_file_len(Op::Remap, cap)?;
        }
        Ok(())
    }

    pub(super) fn remap_to(&mut self, cap: usize) -> Result<()> {
        if cap == 0 || self.map.is_empty() {
            // mremap neither makes nor ends a mapping: map afresh.
            self.map = map_options(self.access, self.offset, Some(cap))
                .map_fd(self.file.as_fd(), self.path.clone())?;
            Ok(())
        } else {
            self.map.remap(cap, RemapMode::MayMove)
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `close` returns them.
        let _ = self.finish();
    }
}

impl MappedFile {
    /// Start writing the dirty pages back and return at once (`msync(MS_ASYNC)`). Unlike
    /// [`flush`](Self::flush) it does not cut a growable file's spare capacity. A no-op
    /// with read or copy access.
    ///
    /// # Errors
    /// The kernel's `msync` error.
    pub fn flush_async(&self) -> Result<()> {
        self.flush_range_with(0, self.len, FlushMode::Async)
    }

    /// Start writing back `len` bytes at `off` (widened to whole pages) and return at once.
    ///
    /// # Errors
    /// As [`flush_range`](Self::flush_range).
    pub fn flush_async_range(&self, off: usize, len: usize) -> Result<()> {
        self.flush_range_with(off, len, FlushMode::Async)
    }

    pub(super) fn flush_range_with(&self, off: usize, len: usize, mode: FlushMode) -> Result<()> {
        if off.checked_add(len).map_or(true, |e| e > self.len) {
            return Err(self
                .err(Op::Flush, ErrorKind::OutOfRange, off, len)
                .detail(format!("range leaves the object ({} bytes)", self.len)));
        }
        if self.access != Access::Write || len == 0 {
            return Ok(());
        }
        self.map.flush_range(off, len, mode)
    }
}
