//! Page-cache control for the bench: warm a file, evict it, count what is cached.

use std::fs::File;
use std::io::Read;

use mmkit::lab_seam::ErrorExt;
use mmkit::{Error, Op, Result};

/// Read the whole file once, so its pages are in the page cache.
pub(crate) fn warm(file: &File, buf: &mut [u8]) -> Result<()> {
    let mut f = file;
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(Op::Read, &e))?;
    while f.read(buf).map_err(|e| Error::io(Op::Read, &e))? != 0 {}
    Ok(())
}

/// Drop the file's clean pages: `fsync`, then `posix_fadvise(POSIX_FADV_DONTNEED)`.
pub(crate) fn evict(file: &File) -> Result<()> {
    rustix::fs::fsync(file).map_err(|e| Error::os(Op::Flush, e))?;
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| Error::os(Op::Advise, e).detail("posix_fadvise(DONTNEED)"))
}

/// Pages of the file in the page cache (`cachestat(2)`), `None` where the kernel lacks it.
pub(crate) fn cached_pages(file: &File) -> Option<u64> {
    mmkit::probe::cachestat(file, 0, 0).ok().map(|c| c.cached)
}
