//! Segment names: checking and normalizing them, the `/dev/shm` path of one, the listing
//! of `/dev/shm`, the error of a refused name, and the open by name (`shm_open(3)` as
//! glibc does it).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{NAME_MAX, SHM_DIR};
use crate::error::{Error, Op, Result};
use crate::sys::errno::errno_text;
use crate::sys::fs::{open_regular, Purpose, Refusal, Takes};

/// Check and normalize a segment name: `"abc"` and `"/abc"` both give `"abc"`.
pub(super) fn normalize(name: &str) -> Result<&str> {
    let bad = |errno, why: String| {
        Err(Error::os(Op::Open, errno)
            .detail(format!("bad segment name {name:?}: {why}"))
            .hint("a segment name is one path component, like \"my-seg\" or \"/my-seg\""))
    };
    let short = name.strip_prefix('/').unwrap_or(name);
    if short.is_empty() {
        return bad(Errno::INVAL, "it is empty".into());
    }
    if short.contains('/') {
        return bad(
            Errno::INVAL,
            "it has a '/' after the first character".into(),
        );
    }
    if short.contains('\0') {
        return bad(Errno::INVAL, "it contains a NUL byte".into());
    }
    if short == "." || short == ".." {
        return bad(Errno::INVAL, "\".\" and \"..\" are not names".into());
    }
    if short.len() > NAME_MAX {
        return bad(
            Errno::NAMETOOLONG,
            format!("{} bytes, longer than {NAME_MAX}", short.len()),
        );
    }
    Ok(short)
}

/// The UTF-8 names in `/dev/shm` with their file type as the directory entry gives it
/// (no link is followed), sorted by name.
pub(super) fn shm_entries() -> Result<Vec<(String, Option<FileType>)>> {
    let dir_err = |e: &std::io::Error| {
        Error::io(Op::Open, e)
            .with_path(Some(std::path::Path::new(SHM_DIR)))
            .detail(format!("cannot list segments: {e}"))
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR).map_err(|e| dir_err(&e))? {
        let entry = entry.map_err(|e| dir_err(&e))?;
        // DirEntry::metadata is an lstat: it does not follow symbolic links.
        let ft = entry.metadata().ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            FileType::from_raw_mode(m.mode())
        });
        if let Some(name) = entry.file_name().to_str() {
            names.push((name.to_string(), ft));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// "a symbolic link", "a directory", ... for messages.
pub(super) fn file_kind(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "an unknown kind of file",
    }
}

pub(super) fn shm_path(short: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(short)
}

/// An error of a syscall on the segment named `short`, with a hint for the common errnos.
pub(super) fn seg_err(errno: Errno, short: &str, what: &str) -> Error {
    let path = shm_path(short);
    let hint = match errno {
        Errno::EXIST => Some(format!(
            "open it with Segment::open, use SegmentOptions::open_or_create, or unlink it first \
             (Segment::unlink(\"{short}\") or rm {})",
            path.display()
        )),
        Errno::NOENT => Some(format!(
            "no segment /{short} exists; create it first (ls {SHM_DIR} lists the segments)"
        )),
        Errno::ACCESS => Some(format!(
            "the segment's mode or owner forbids this; check `ls -l {}`",
            path.display()
        )),
        Errno::LOOP => Some(format!(
            "someone made /{short} a link to another file; check `ls -l {}`, then remove \
             the link (not its target) with Segment::unlink(\"{short}\")",
            path.display()
        )),
        _ => None,
    };
    // O_NOFOLLOW on a symbolic link: say what it is, and how to remove it, in one line.
    let why = match errno {
        Errno::LOOP => format!(
            "it is a symbolic link, which segments never follow; remove it with \
             `mmkit shm rm {short}`"
        ),
        _ => errno_text(errno),
    };
    let err = Error::os(Op::Open, errno)
        .with_path(Some(&path))
        .detail(format!("{what}: {why}"));
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// `shm_open(3)` as glibc does it — `open("/dev/shm/NAME", flags | O_NOFOLLOW |
/// O_CLOEXEC)` — through [`open_regular`], non-blocking, so that a FIFO planted under a
/// segment's name cannot block the open (it is refused by [`Segment::check_regular`]).
/// rustix's `shm::open` leaves `O_NOFOLLOW` out, so a symbolic link planted in the
/// world-writable `/dev/shm` would be followed.
pub(super) fn open_name(
    short: &str,
    flags: OFlags,
    mode: Mode,
) -> std::result::Result<OwnedFd, Errno> {
    let purpose = Purpose {
        flags: flags | OFlags::NOFOLLOW,
        mode,
        noatime: false,
        // Any kind: `check_regular` says what a segment is not, by its name.
        takes: Takes::Any,
    };
    match open_regular(&shm_path(short), purpose) {
        Ok((file, _)) => Ok(file.into()),
        Err(Refusal::Os(e)) => Err(e),
        Err(Refusal::Kind(_)) => Err(Errno::INVAL), // not with `Takes::Any`
    }
}
