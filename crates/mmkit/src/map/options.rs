//! [`MapOptions`]: the builder that checks a request up front (file type and open mode,
//! offset, length) and makes the mapping.
//!
//! # Safety
//!
//! Makes the mapping: calls `sys::mmap`/`sys::munmap` (over-reserving and trimming for
//! alignment) and adopts the result with the `unsafe` `Region::from_raw`.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags, SealFlags};
use rustix::mm::MapFlags;

use super::poison::FileId;
use super::region::{FileInfo, RawParts, Region};
use super::{HugePageSize, LockMode, MapKind, Mapping, Memory, Protection};
use crate::error::{os_hint, Error, ErrorKind, Op, Result};
use crate::sys;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A builder for every kind of mapping.
///
/// Defaults: the whole file from offset 0, shared, read-only; for anonymous memory the
/// length is required.
///
/// ```
/// use mmkit::MapOptions;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("data");
/// std::fs::write(&path, b"hello, mapped world")?;
/// // Any offset works, aligned or not.
/// let map = MapOptions::new().offset(7).map_path(&path)?;
/// let mut buf = [0u8; 6];
/// map.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"mapped");
///
/// // Private anonymous memory lends ordinary slices.
/// let mut mem = MapOptions::new().len(1 << 20).map_anon()?;
/// mem[..5].copy_from_slice(b"zeros");
/// assert!(mem[5..].iter().all(|&b| b == 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    offset: u64,
    len: Option<usize>,
    write: bool,
    private: bool,
    populate: bool,
    no_reserve: bool,
    huge_tlb: Option<HugePageSize>,
    thp: bool,
    scan: bool,
    lock: Option<LockMode>,
    name: Option<String>,
    past_eof: bool,
}

impl MapOptions {
    /// Defaults: whole file, shared, read-only.
    pub fn new() -> MapOptions {
        MapOptions::default()
    }

    /// Start `offset` bytes into the file. Need not be page-aligned: mmkit maps from the
    /// page below and starts the view at the offset.
    pub fn offset(&mut self, offset: u64) -> &mut Self {
        self.offset = offset;
        self
    }

    /// Map `len` bytes (default: from the offset to the end of the file).
    pub fn len(&mut self, len: usize) -> &mut Self {
        self.len = Some(len);
        self
    }

    /// Map for reading and writing. With [`shared`](Self::shared) writes reach the file;
    /// the file must be open for writing.
    pub fn write(&mut self) -> &mut Self {
        self.write = true;
        self
    }

    /// `MAP_SHARED` (the default): writes are seen by the file and by other processes.
    pub fn shared(&mut self) -> &mut Self {
        self.private = false;
        self
    }

    /// `MAP_PRIVATE`: writes are copy-on-write and stay in this process.
    pub fn private(&mut self) -> &mut Self {
        self.private = true;
        self
    }

    /// `MAP_PRIVATE` with write access: a private, writable copy that works on a file
    /// opened read-only.
    pub fn copy_on_write(&mut self) -> &mut Self {
        self.private().write()
    }

    /// `MAP_POPULATE`: fault every page in now (read-ahead for files).
    pub fn populate(&mut self) -> &mut Self {
        self.populate = true;
        self
    }

    /// `MAP_NORESERVE`: reserve no swap space (writes may then fail with SIGSEGV under
    /// memory pressure when overcommit is strict).
    pub fn no_reserve(&mut self) -> &mut Self {
        self.no_reserve = true;
        self
    }

    /// `MAP_HUGETLB`: back anonymous memory with pages of the hugetlb pool. The length is
    /// rounded up to the page size. Fails when the pool (`vm.nr_hugepages`) is short.
    pub fn huge_tlb(&mut self, size: HugePageSize) -> &mut Self {
        self.huge_tlb = Some(size);
        self
    }

    /// `MADV_HUGEPAGE` after mapping, so the kernel may use transparent huge pages.
    /// Anonymous memory is also aligned to 2 MiB so that whole huge pages fit.
    pub fn transparent_huge(&mut self) -> &mut Self {
        self.thp = true;
        self
    }

    /// Map for one pass in order (a scan): `MADV_SEQUENTIAL` and `MADV_HUGEPAGE` on the
    /// new mapping. On a cold file the kernel then reads ahead in 2 MiB page-cache folios
    /// and maps each with one fault, where a plain mapping reads around each fault in
    /// smaller folios and maps 16 pages a fault.
    ///
    /// Why, measured on the 2-vCPU VM (ext4 on virtio, `read_ahead_kb` 8192): a cold
    /// 16 MiB file summed once, device reads from `/sys/block/vda/stat`, faults from
    /// `getrusage`, speed against `read()` with a 1 MiB buffer (`mmkit bench --cache cold
    /// --methods mmap,mmap-seq,mmap-thp,mmap-scan,read`, two runs of 5):
    ///
    /// | way | device reads | faults | vs `read()` |
    /// |---|---|---|---|
    /// | `read()`, 1 MiB buffer | 9 of 1.8 MiB | — | 1.00x |
    /// | plain mapping | 20 of 819 KiB | 258 (16 pages each) | 0.74x–0.91x |
    /// | `MADV_SEQUENTIAL` | 20 of 819 KiB | 257 | 0.76x–0.86x |
    /// | `MADV_HUGEPAGE` | 4 of 4 MiB | 9 (one per 2 MiB folio) | 1.17x–1.34x |
    /// | `scan()`: both | 4 of 4 MiB | 9 | 1.26x–1.31x |
    ///
    /// At 256 MiB the disk is the limit: `scan()` 1.00x–1.08x, a plain mapping
    /// 0.97x–1.03x. Warm, the advice changes nothing (1 MiB to 256 MiB within 3%).
    /// `MADV_WILLNEED` reads the whole range before the first byte is used (0.53x–0.76x).
    ///
    /// Not for random access: each fault on a cold region reads a 2 MiB folio. A kernel
    /// without transparent huge pages ignores the huge page advice (the mapping still
    /// works, with sequential read-ahead only).
    pub fn scan(&mut self) -> &mut Self {
        self.scan = true;
        self
    }

    /// Lock the pages in memory once mapped (`mlock`, or `mlock2(MLOCK_ONFAULT)`).
    pub fn lock(&mut self, mode: LockMode) -> &mut Self {
        self.lock = Some(mode);
        self
    }

    /// Name anonymous memory in `/proc/PID/maps` as `[anon:NAME]` (`PR_SET_VMA_ANON_NAME`).
    pub fn name(&mut self, name: &str) -> &mut Self {
        self.name = Some(name.to_string());
        self
    }

    /// Allow the range to end past the last page of the file. Touching a page wholly past
    /// the end raises SIGBUS; use this when the file will grow before those pages are used.
    pub fn allow_past_eof(&mut self) -> &mut Self {
        self.past_eof = true;
        self
    }

    /// Open `path` with the access the options need and map it.
    pub fn map_path(&self, path: impl AsRef<Path>) -> Result<Mapping> {
        let path = path.as_ref();
        let want_write = self.write && !self.private;
        let file = super::open::open_for_map(path, want_write, false)?;
        self.map_fd(file.as_fd(), Some(path.to_path_buf()))
    }

    /// Map an open file. Its open mode is checked against the options first.
    ///
    /// Errors name the file (looked up through `/proc/self/fd` only when an error
    /// happens); the mapping itself does not keep the path, so errors of later operations
    /// on it give offsets only. Use [`map_path`](Self::map_path) to keep it.
    pub fn map(&self, file: &File) -> Result<Mapping> {
        self.map_fd(file.as_fd(), None)
    }

    /// Map an open file descriptor (a `File`, a memfd, a shared-memory object); `path`
    /// names it in errors.
    pub fn map_fd(&self, fd: BorrowedFd<'_>, path: Option<PathBuf>) -> Result<Mapping> {
        self.map_fd_inner(fd, path).map_err(|e| match e.path() {
            Some(_) => e,
            None => e.with_path(fd_path(fd).as_deref()),
        })
    }

    fn map_fd_inner(&self, fd: BorrowedFd<'_>, path: Option<PathBuf>) -> Result<Mapping> {
        let facts = check_file(fd, path.as_deref(), self.write && !self.private)?;
        let len = match (facts.regular, self.len) {
            (true, _) => self.file_range(facts.len, path.as_deref())?,
            (false, Some(len)) => len,
            (false, None) => {
                return Err(Error::new(Op::Map, ErrorKind::Unsupported)
                    .with_path(path.as_deref())
                    .detail("a device has no length to default to")
                    .hint("give the length with .len(bytes)"))
            }
        };
        let kind = if self.private {
            MapKind::FilePrivate
        } else {
            MapKind::FileShared
        };
        let seals = rustix::fs::fcntl_get_seals(fd).unwrap_or(SealFlags::empty());
        let file = FileInfo {
            offset: self.offset - self.offset % sys::page_size() as u64,
            id: facts.id,
            can_shrink: !seals.contains(SealFlags::SHRINK),
            frozen: seals.contains(SealFlags::SHRINK | SealFlags::WRITE),
        };
        self.make(Some((fd, file)), len, kind, path)
            .map(Mapping::from_region)
    }

    /// Private anonymous memory: zero-filled, readable and writable, lent as slices.
    pub fn map_anon(&self) -> Result<Memory> {
        let len = self.anon_len()?;
        self.make(None, len, MapKind::AnonPrivate, None)
            .map(Memory::from_region)
    }

    /// Shared anonymous memory: zero-filled, seen by children after `fork`.
    pub fn map_anon_shared(&self) -> Result<Mapping> {
        let len = self.anon_len()?;
        self.make(None, len, MapKind::AnonShared, None)
            .map(Mapping::from_region)
    }

    fn anon_len(&self) -> Result<usize> {
        self.len.ok_or_else(|| {
            Error::new(Op::Map, ErrorKind::Unsupported)
                .detail("anonymous memory needs a length")
                .hint("call .len(bytes)")
        })
    }

    /// The view's length for a file of `file_len` bytes.
    fn file_range(&self, file_len: u64, path: Option<&Path>) -> Result<usize> {
        let err = |kind| {
            Error::new(Op::Map, kind)
                .with_path(path)
                .at(self.offset, self.len.unwrap_or(0) as u64)
        };
        if self.offset > file_len {
            return Err(err(ErrorKind::OffsetPastEnd).detail(format!(
                "offset is past the end of the file ({file_len} bytes)"
            )));
        }
        let len = match self.len {
            Some(l) => l,
            None => usize::try_from(file_len - self.offset)
                .map_err(|_| err(ErrorKind::LengthOverflow))?,
        };
        let end = self
            .offset
            .checked_add(len as u64)
            .ok_or_else(|| err(ErrorKind::LengthOverflow))?;
        let page = sys::page_size() as u64;
        if !self.past_eof && end.div_ceil(page) > file_len.div_ceil(page) {
            return Err(err(ErrorKind::RangePastEnd)
                .detail(format!("range ends at {end}, past the last page of the file ({file_len} bytes)"))
                .hint("grow the file first (File::set_len), or allow_past_eof() if it will grow before use"));
        }
        Ok(len)
    }

    fn make(
        &self,
        file: Option<(BorrowedFd<'_>, FileInfo)>,
        len: usize,
        kind: MapKind,
        path: Option<PathBuf>,
    ) -> Result<Region> {
        let fd = file.map(|(fd, _)| fd);
        let page = sys::page_size();
        let granule = self.huge_tlb.map_or(page, HugePageSize::bytes);
        let delta = (self.offset % page as u64) as usize;
        let aligned_offset = self.offset - delta as u64;
        let prot = if self.write || fd.is_none() {
            Protection::READ_WRITE
        } else {
            Protection::READ
        };
        let ctx = |e: Error| e.with_path(path.as_deref()).at(self.offset, len as u64);
        let map_len = delta
            .checked_add(len)
            .and_then(|l| l.checked_next_multiple_of(granule))
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| ctx(Error::new(Op::Map, ErrorKind::LengthOverflow)))?;
        let parts = |base, map_len| RawParts {
            base,
            map_len,
            delta,
            len,
            granule,
            kind,
            huge: self.huge_tlb.is_some(),
            path: path.clone(),
            prot,
            file: file.map(|(_, info)| info),
        };
        if len == 0 {
            // SAFETY: no mapping is adopted.
            return Ok(unsafe { Region::from_raw(parts(None, 0)) });
        }
        let base = self
            .mmap_aligned(fd, map_len, prot, kind, aligned_offset)
            .map_err(|e| {
                let err = ctx(Error::os(Op::Map, e));
                match os_hint(Op::Map, e.raw_os_error(), self.huge_tlb.is_some()) {
                    Some(h) => err.hint(h),
                    None => err,
                }
            })?;
        // SAFETY: `base, map_len` was just mapped by us with protection `prot`.
        let region = unsafe { Region::from_raw(parts(Some(base), map_len)) };
        self.finish(&region)?;
        Ok(region)
    }

    /// `mmap`, aligned to 2 MiB for transparent huge anonymous memory.
    fn mmap_aligned(
        &self,
        fd: Option<BorrowedFd<'_>>,
        map_len: usize,
        prot: Protection,
        kind: MapKind,
        offset: u64,
    ) -> std::result::Result<std::ptr::NonNull<u8>, rustix::io::Errno> {
        let mut flags = if kind.is_shared() {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        if self.populate {
            flags |= MapFlags::POPULATE;
        }
        if self.no_reserve {
            flags |= MapFlags::NORESERVE;
        }
        if let Some(size) = self.huge_tlb {
            flags |= MapFlags::HUGETLB | MapFlags::from_bits_retain(size.flag_bits());
        }
        let align = if self.thp && fd.is_none() && self.huge_tlb.is_none() {
            2 << 20
        } else {
            0
        };
        if align == 0 {
            // SAFETY: map_len > 0; no MAP_FIXED.
            return unsafe {
                sys::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    prot.prot_flags(),
                    flags,
                    fd,
                    offset,
                )
            };
        }
        sys::map_anon_aligned(map_len, align, prot.prot_flags(), flags)
    }

    /// Apply the options that act on a live mapping: THP advice, lock, name.
    fn finish(&self, region: &Region) -> Result<()> {
        let len = region.len();
        if self.thp {
            region.advise(0, len, super::Advice::HugePage)?;
        }
        if self.scan && len > 0 {
            region.advise(0, len, super::Advice::Sequential)?;
            // EINVAL without CONFIG_TRANSPARENT_HUGEPAGE: the scan keeps its read-ahead.
            let _ = region.advise(0, len, super::Advice::HugePage);
        }
        if let Some(mode) = self.lock {
            region.lock(0, len, mode)?;
        }
        if let Some(name) = &self.name {
            region.set_name(name)?;
        }
        Ok(())
    }
}

/// What `check_file` learns about a file.
struct FileFacts {
    len: u64,
    regular: bool,
    id: FileId,
}

/// Check the file can be mapped as asked.
fn check_file(fd: BorrowedFd<'_>, path: Option<&Path>, shared_write: bool) -> Result<FileFacts> {
    let open_err = |e| {
        Error::os(Op::Open, e)
            .with_path(path)
            .hint("the file descriptor is not open, or was opened with O_PATH")
    };
    let flags = rustix::fs::fcntl_getfl(fd).map_err(open_err)?;
    if flags.contains(OFlags::PATH) {
        return Err(open_err(rustix::io::Errno::BADF));
    }
    let acc = flags & OFlags::RWMODE;
    if acc == OFlags::WRONLY {
        return Err(Error::new(Op::Map, ErrorKind::NoReadAccess)
            .with_path(path)
            .hint("open it with read access too"));
    }
    if shared_write && acc == OFlags::RDONLY {
        return Err(Error::new(Op::Map, ErrorKind::ReadOnlyFile)
            .with_path(path)
            .hint("open the file for writing, or map it copy_on_write() for private changes"));
    }
    let st = rustix::fs::fstat(fd).map_err(|e| Error::os(Op::Open, e).with_path(path))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    let what = super::open::unmappable(ft);
    // /proc files claim a length of 0 (so a default-length map would silently be empty);
    // only then is the file system worth asking about.
    let pseudo =
        st.st_size == 0 && rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type == PROC_SUPER_MAGIC);
    let what = what.or(pseudo.then_some("a /proc file, which has no pages to map"));
    if let Some(what) = what {
        return Err(super::open::not_mappable(what, path));
    }
    Ok(FileFacts {
        len: st.st_size as u64,
        regular: ft == FileType::RegularFile,
        id: FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
    })
}

/// The path behind an open descriptor, for error messages.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}
