//! Opening a record file: its header read and checked, a new file created whole, the
//! file mapped.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::io::Errno;

use super::format::{self, Fixed, FixedError, HEADER_LEN};
use super::RecordFileOptions;
use crate::store::file::lock_writer;
use crate::store::storage::StoreFile;
use crate::store::Durability;
use crate::{Error, ErrorKind, MapOptions, Mapping, Op, Result};

pub(super) fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))
}

pub(super) fn map_file(file: &File, write: bool) -> Result<Mapping> {
    let mut opts = MapOptions::new();
    opts.shared();
    if write {
        opts.write();
    }
    opts.map(file)
}

/// The file's first page, or as much of it as there is.
pub(super) fn read_header(file: &File, path: &Path) -> Result<Vec<u8>> {
    let mut page = vec![0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read_at(&mut page[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(Op::Open, &e).with_path(Some(path))),
        }
    }
    page.truncate(got);
    Ok(page)
}

/// Open the file at `path` (a writer creates it when asked, and takes its lock).
pub(super) fn open_file(
    path: &Path,
    opts: &RecordFileOptions,
    write: bool,
    record: usize,
    slot: usize,
) -> Result<StoreFile> {
    let file = match StoreFile::open(path, write, false, opts.durability) {
        Ok(file) => file,
        Err(e) if e.errno() == Some(Errno::NOENT.raw_os_error()) => {
            if !(write && opts.create) {
                return Err(Error::new(Op::Open, ErrorKind::NotFound)
                    .with_path(Some(path))
                    .detail("no such record file")
                    .hint("create it with RecordFileOptions::create(true)"));
            }
            create(path, record as u32, slot as u32, opts.type_tag)?;
            StoreFile::open(path, write, false, opts.durability)?
        }
        Err(e) => return Err(e),
    };
    if write {
        lock_writer(&file, path)?;
    }
    Ok(file)
}

/// Check the header's fixed part: a record file, of records of `record` bytes, tagged
/// `type_tag`.
pub(super) fn check_fixed(header: &[u8], path: &Path, record: usize, type_tag: u64) -> Result<()> {
    let fixed = Fixed::decode(header).map_err(|e| fixed_error(e, path))?;
    if fixed.record_size as usize != record {
        return Err(format_error(path).detail(format!(
            "the file holds records of {} bytes; this type is {record} bytes",
            fixed.record_size
        )));
    }
    if fixed.type_tag != type_tag {
        return Err(format_error(path).detail(format!(
            "the file's type tag is {:#x}, not {:#x}",
            fixed.type_tag, type_tag
        )));
    }
    Ok(())
}

fn format_error(path: &Path) -> Error {
    Error::new(Op::Open, ErrorKind::Format).with_path(Some(path))
}

fn fixed_error(e: FixedError, path: &Path) -> Error {
    match e {
        FixedError::Short(n) => format_error(path)
            .detail(format!(
                "the header is cut short: {n} bytes of {HEADER_LEN}"
            ))
            .hint("the file is not a record file, or was truncated"),
        FixedError::Magic(m) if m == format::LOG_MAGIC => format_error(path)
            .detail("this is an mmkit log, not a record file")
            .hint("open it with store::Log"),
        FixedError::Magic(m) => format_error(path).detail(format!(
            "not a record file: it starts with {:?}, not \"MMKITREC\"",
            String::from_utf8_lossy(&m)
        )),
        FixedError::Newer(v) => format_error(path)
            .detail(format!(
                "format version {v} is newer than this build reads ({})",
                format::VERSION
            ))
            .hint("open it with a newer mmkit"),
        FixedError::Damaged => Error::new(Op::Open, ErrorKind::Corrupt)
            .with_path(Some(path))
            .at(0, HEADER_LEN as u64)
            .detail("the record file's header fails its checksum"),
    }
}

/// Create the record file at `path`: the header is written to a temporary file in the
/// same directory, made durable, and hard-linked into place, which fails when another
/// process created the file first (then its file is used).
fn create(path: &Path, record: u32, slot: u32, type_tag: u64) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or("records".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(
        ".{name}.mmkit-new.{}.{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let io = |e: &std::io::Error| Error::io(Op::Open, e).with_path(Some(path));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io(&e))?;
    let file = StoreFile::from_file(file, &tmp, Durability::Sync);
    let made = (|| {
        file.reserve(0, HEADER_LEN as u64)?;
        file.write_all_at(&Fixed::new_page(record, slot, type_tag), 0)?;
        file.sync_data()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&e)),
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&e))
    })();
    let _ = std::fs::remove_file(&tmp);
    made
}
