//! Opening a log: create or check the header, map, and (for a writer) scan and recover.
//!
//! # Safety
//!
//! Recovery zeroes a cut tail and writes pad frames into holes through the mapping,
//! under the SIGBUS guard: only past the log's end or inside damage the scan found, in
//! bytes the file holds.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::append::Writer;
use super::maps::Maps;
use super::report::{Damage, RecoveryReport};
use super::scan::Scan;
use super::{read, LogOptions, ReadOnlyLog};
use crate::map::Protection;
use crate::store::format::{self, FixedError, Meta, DATA_START, HEADER_LEN, META_SLOTS};
use crate::store::storage::StoreFile;
use crate::store::{file, Durability, Recovery};
use rustix::io::Errno;

use crate::{Error, ErrorKind, Op, Result};

/// The space a new log reserves past its header.
const FIRST_RESERVE: u64 = 64 << 10;

pub(super) fn open(opts: &LogOptions, path: &Path, write: bool) -> Result<ReadOnlyLog> {
    let (file, header_write, alone, len) = open_file(opts, path, write)?;
    let (meta, version) = read_header(&file, path, len)?;
    settle(&file, opts, write, alone, version)?;
    let maps = Maps::new(&file, path, write, header_write, len)?;
    let mut log = ReadOnlyLog {
        path: path.to_path_buf(),
        file,
        maps,
        shared: write && opts.shared,
        writer: None,
        flush_lock: Mutex::new(false),
        flushed: std::sync::Condvar::new(),
        synced_end: AtomicU64::new(0),
        published_end: AtomicU64::new(0),
        index: Mutex::new(read::Index::new(meta)),
        recovered: RecoveryReport::default(),
        appends: AtomicU64::new(0),
        flushes: AtomicU64::new(0),
        cap: None,
        owner: Mutex::new(None),
    };
    if write {
        start_writer(&mut log, meta, len, opts.recovery)?;
    } else {
        log.cap = read_only_cap(&log, meta, len)?;
    }
    Ok(log)
}

/// Open the file (a writer creates it when asked, and takes its lock) and return it,
/// whether its header may be written, whether this writer is alone with it (its
/// exclusive flock), and its length.
fn open_file(opts: &LogOptions, path: &Path, write: bool) -> Result<(StoreFile, bool, bool, u64)> {
    if write && opts.create && std::fs::symlink_metadata(path).is_err() {
        create_new(path, opts.durability)?;
    }
    let (file, header_write) = if write {
        (file::open_store_file(path, true, false)?, true)
    } else {
        open_reader(path)?
    };
    let file = StoreFile::from_file(file, path, opts.durability);
    // A writer alone with the file (its exclusive flock) clears what a writer of another
    // boot left in the header (`clear_stale_lock`) once the header checks out; a shared
    // writer then shares the lock.
    let mut alone = false;
    if write && opts.shared {
        match file::lock_writer(&file, path) {
            Ok(()) => alone = true,
            Err(e) if e.kind() == ErrorKind::Busy => lock_shared_waiting(&file, path)?,
            Err(e) => return Err(e),
        }
    } else if write {
        file::lock_writer(&file, path)?;
        alone = true;
    }
    let mut len = file_len(&file, path)?;
    // An empty file named as a new log (also what a creation killed before its header
    // was written leaves): this writer holds the lock and writes the header. A file of
    // zeros is refused as another program's (a shared memory segment starts so): a new
    // log is written whole and flushed before it is linked into place, so no power cut
    // leaves one of mmkit's as zeros.
    if write && opts.create && len == 0 {
        if opts.shared {
            create_shared(&file)?; // shares the lock from then on: a fresh header's word is 0
            alone = false;
        } else {
            create(&file)?;
        }
        len = file_len(&file, path)?;
    }
    Ok((file, header_write, alone, len))
}

/// With the header checked: a writer alone with the file upgrades an older format and
/// clears a stale lock word (a shared one then shares the lock); a writer that is not
/// alone refuses a file an older build's writer holds.
fn settle(
    file: &StoreFile,
    opts: &LogOptions,
    write: bool,
    alone: bool,
    version: u32,
) -> Result<()> {
    let path = file.path();
    if alone {
        if version < format::VERSION {
            upgrade(file)?;
        }
        clear_stale_lock(file)?;
        if opts.shared {
            lock_shared_waiting(file, path)?;
        }
    } else if write && version < format::VERSION {
        return Err(Error::new(Op::Open, ErrorKind::Busy)
            .with_path(Some(path))
            .detail(format!(
                "a writer of format {version} has this store open: an older mmkit, whose lock this build does not share"
            ))
            .hint("close it there, or upgrade it; the first writer of this build to open the store alone upgrades the file"));
    }
    Ok(())
}

/// Recover the log (see [`recover`]) and give the handle its append side.
fn start_writer(log: &mut ReadOnlyLog, meta: Meta, len: u64, policy: Recovery) -> Result<()> {
    let reader = &*log;
    let (writer, report) = if reader.shared {
        // The length and start read before the lock are stale once another writer
        // appended meanwhile: scanning only up to them would cut its records.
        reader.with_write_lock(|| {
            let len = file_len(&reader.file, &reader.path)?;
            recover(reader, reader.meta()?, len, policy)
        })?
    } else {
        recover(reader, meta, len, policy)?
    };
    log.published_end = AtomicU64::new(writer.end);
    log.synced_end = AtomicU64::new(writer.end);
    log.writer = Some(Mutex::new(writer));
    log.recovered = report;
    Ok(())
}

/// A reader opens the file read-write when it may (to register as a waiter in the
/// header, so that following needs no polling), read-only otherwise.
fn open_reader(path: &Path) -> Result<(File, bool)> {
    match file::open_store_file(path, true, false) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == ErrorKind::Os => {
            let denied = [Errno::ACCESS, Errno::ROFS, Errno::PERM, Errno::TXTBSY]
                .iter()
                .any(|n| e.errno() == Some(n.raw_os_error()));
            if !denied {
                return Err(e);
            }
            Ok((file::open_store_file(path, false, false)?, false))
        }
        Err(e) => Err(e),
    }
}

/// Create a new log at `path` whole: its header is written into a fresh file under a
/// temporary name, which is then linked into place (`link(2)` fails when the path
/// exists, so two processes creating the log at once end up with one, and nobody ever
/// opens a half-written header).
fn create_new(path: &Path, durability: Durability) -> Result<()> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".new-{}-{stamp}", std::process::id()));
    let tmp = path.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(&tmp)))?;
    let written =
        create(&StoreFile::from_file(file, &tmp, durability)).and_then(
            |()| match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(Error::io(Op::Open, &e).with_path(Some(path))),
            },
        );
    let _ = std::fs::remove_file(&tmp);
    written?;
    if durability == Durability::Sync {
        sync_dir(path)?;
    }
    Ok(())
}

/// Clear the shared writers' lock word when it is held: the caller holds the file's
/// exclusive `flock`, so no other writer has the file open, and no live process can
/// hold the word. A holder that did is gone (its flock went with it): killed, or of
/// another boot (the word reached storage while held, and a power cut or reboot
/// followed), or of the file this one was copied or restored from. Its thread id means
/// nothing now (another process may have it: waiting on it would wait forever), as LMDB
/// and SQLite reinitialise their lock files when they are first to open them.
fn clear_stale_lock(file: &StoreFile) -> Result<()> {
    if file_len(file, file.path())? < HEADER_LEN as u64 {
        return Ok(());
    }
    let mut word = [0u8; 4];
    file.read_exact_at(&mut word, format::WRITE_LOCK as u64)
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(file.path())))?;
    if word != [0; 4] {
        file.write_all_at(&[0; 4], format::WRITE_LOCK as u64)?;
    }
    Ok(())
}

/// Rewrite the fixed header with this build's format version, and flush it (the caller
/// has the file to itself: see `format::VERSION`).
fn upgrade(file: &StoreFile) -> Result<()> {
    file.write_all_at(&format::encode_fixed(), 0)?;
    file.sync_data()
}

/// How long a shared writer waits for an exclusive lock to go away: another shared
/// writer may hold it for a moment, writing the header of a log created in place.
const CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Take the shared writers' flock, waiting up to [`CREATE_WAIT`] while it is held
/// exclusively.
fn lock_shared_waiting(file: &File, path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + CREATE_WAIT;
    loop {
        match file::lock_shared_writer(file, path) {
            Err(e) if e.kind() == ErrorKind::Busy && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            done => return done,
        }
    }
}

/// Write the header of an empty file named as a shared log: the shared lock becomes an
/// exclusive one for the write (other shared writers wait for it in
/// [`lock_shared_waiting`]), and the file is checked again once it is held.
fn create_shared(file: &StoreFile) -> Result<()> {
    let path = file.path();
    let deadline = std::time::Instant::now() + CREATE_WAIT;
    loop {
        match file::lock_writer(file, path) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::Busy && std::time::Instant::now() < deadline => {
                // Another shared writer holds the file: it may have written the header.
                if file_len(file, path)? > 0 {
                    return lock_shared_waiting(file, path);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
    let made = if file_len(file, path)? == 0 {
        create(file)
    } else {
        Ok(()) // another shared writer wrote it first
    };
    file::lock_shared_writer(file, path)?;
    made
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))
}

/// Write a new log's header: the fixed part and meta slot 0 (the log starts at
/// `DATA_START` with seq 1), then reserve the first space. The header reaches storage
/// whatever the durability; with `Sync`, the directory entry too.
fn create(file: &StoreFile) -> Result<()> {
    let path = file.path();
    // The whole header page in one write of one page, first: a writer killed in the
    // middle leaves an empty file or a whole header (a fatal signal stops a write only
    // between pages), never a file of zeros that no open could tell from another
    // program's file. The records' first space is reserved after it.
    let meta = Meta {
        generation: 1,
        start: DATA_START,
        start_seq: 1,
    };
    let mut page = vec![0u8; HEADER_LEN];
    page[..24].copy_from_slice(&format::encode_fixed());
    page[META_SLOTS[0]..META_SLOTS[0] + 32].copy_from_slice(&meta.encode());
    file.write_all_at(&page, 0).map_err(nothing_created)?;
    file.reserve(DATA_START, FIRST_RESERVE)
        .map_err(nothing_created)?;
    // Whatever the durability, the header reaches the disk before the log is used (or,
    // for a new file, linked into place): a power cut must not leave a file of zeros,
    // which an open refuses as another program's.
    file.sync_data()?;
    if file.durability() == Durability::Sync {
        sync_dir(path)?;
    }
    Ok(())
}

/// A full disk while a store is created: nothing was opened, so the hint says so.
fn nothing_created(e: Error) -> Error {
    if e.kind() == ErrorKind::NoSpace {
        e.hint("free space on the file system and open it again: no store was created")
    } else {
        e
    }
}

/// `fsync` the directory holding `path`, so a new file's name survives a power loss.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let d = File::open(dir).map_err(|e| Error::io(Op::Sync, &e).with_path(Some(dir)))?;
    d.sync_all()
        .map_err(|e| Error::io(Op::Sync, &e).with_path(Some(dir)))
}

/// Check the header (with `pread`, before anything is mapped) and return the current
/// meta slot.
fn read_header(file: &File, path: &Path, len: u64) -> Result<(Meta, u32)> {
    let format_err = |detail: String| {
        Error::new(Op::Open, ErrorKind::Format)
            .with_path(Some(path))
            .detail(detail)
    };
    let bad_magic = || {
        format_err("not an mmkit log (bad magic)".into())
            .hint("name an mmkit log file; nothing was written to this one")
    };
    if len == 0 {
        return Err(format_err("not an mmkit log: the file is empty".into())
            .hint("open it for writing to create a log, or name another file"));
    }
    if len < HEADER_LEN as u64 {
        // Judge the bytes that are there: another program's short file is no log at
        // all, only a file that begins as a log does can be one cut short.
        let mut head = [0u8; 8];
        let n = (len as usize).min(head.len());
        file.read_exact_at(&mut head[..n], 0)
            .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
        if head[..n] != format::MAGIC[..n] {
            return Err(bad_magic());
        }
        return Err(format_err(format!(
            "an mmkit log cut inside its header ({len} of {HEADER_LEN} bytes)"
        ))
        .hint("its header is lost: move the file away to start a new log at this path"));
    }
    let mut head = [0u8; 128];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    let fixed: [u8; 24] = head[0..24].try_into().expect("24 bytes");
    let version = match format::check_fixed(&fixed) {
        Ok(v) => v,
        Err(FixedError::Magic) => return Err(bad_magic()),
        Err(FixedError::Newer(v)) => {
            return Err(format_err(format!(
                "the log has format version {v}, newer than this build reads ({})",
                format::VERSION
            ))
            .hint("open it with a newer mmkit"))
        }
        Err(FixedError::Damaged) => {
            return Err(format_err(
                "the log's header is damaged (its checksum fails)".into(),
            ))
        }
    };
    let slot = |i: usize| {
        let at = META_SLOTS[i];
        Meta::decode(head[at..at + 32].try_into().expect("32 bytes"))
    };
    match Meta::current([slot(0), slot(1)]) {
        Some((_, meta)) if meta.start <= len => Ok((meta, version)),
        _ => Err(format_err(
            "both of the log's meta slots are damaged".into(),
        )),
    }
}

/// Scan the writer's log and apply the recovery policy.
fn recover(
    log: &ReadOnlyLog,
    meta: Meta,
    len: u64,
    policy: Recovery,
) -> Result<(Writer, RecoveryReport)> {
    // This handle holds the writer lock: no other writer changes the bytes meanwhile.
    let durable = log.durable_from(meta, len)?;
    let found = log.scan_file(meta, len, durable)?;
    let mut report = RecoveryReport::default();
    let (end, next_seq) = apply(log, &found, policy, &mut report)?;
    report.records = count_kept(&found, policy);
    let writer = Writer::new(end, next_seq, len, meta);
    log.maps.publish(end, next_seq - 1)?;
    if !report.is_clean() {
        // Whatever the durability, the cut and the pads reach storage before anything
        // is appended over them: a power cut later must not bring back the bytes they
        // replaced (stale frames past the end would read as records).
        log.file.sync_data()?;
        log.maps.reset_durable(end)?;
    }
    log.maps.set_epoch(&file::epoch_of(&log.file))?;
    Ok((writer, report))
}

/// What a reader may trust of an image no writer has opened since it was made (the
/// header's epoch is not this boot's and this file's: a power cut, a reboot, a copy):
/// its committed end may claim records a power cut lost. The log is scanned as a
/// writer's recovery would, and when that would cut it shorter (a torn write), the
/// reader sees the log up to there, until a writer publishes again. Nothing is written.
fn read_only_cap(log: &ReadOnlyLog, meta: Meta, len: u64) -> Result<Option<super::Cap>> {
    if file::same_epoch(&log.maps.epoch()?, &log.file) {
        return Ok(None);
    }
    let (last, end) = log.maps.snapshot()?;
    let durable = log.durable_from(meta, len)?;
    let found = log.scan_file(meta, len, durable)?;
    let first = &found.runs[0];
    let whole = found.bad.is_empty() || (found.torn && found.bad.len() == 1);
    if !whole || first.end >= end {
        return Ok(None); // damage: readers meet it as `Corrupt`; or nothing to cut
    }
    Ok(Some(super::Cap {
        header: (last, end),
        view: (first.next_seq - 1, first.end),
    }))
}

fn count_kept(found: &Scan, policy: Recovery) -> u64 {
    match policy {
        Recovery::Salvage => found.runs.iter().map(|r| r.records).sum(),
        _ => found.runs[0].records,
    }
}

/// Cut, refuse or salvage; returns the log's end and next sequence number.
fn apply(
    log: &ReadOnlyLog,
    found: &Scan,
    policy: Recovery,
    report: &mut RecoveryReport,
) -> Result<(u64, u64)> {
    let first = &found.runs[0];
    if found.bad.is_empty() {
        return Ok((first.end, first.next_seq));
    }
    let later: u64 = found.runs[1..].iter().map(|r| r.records).sum();
    if found.runs.len() == 1 {
        // Only a torn tail: cut it, with what was written after a torn write.
        let cut = damage_at(found, 0);
        zero(log, cut.offset, cut.bytes)?;
        report.cut = Some(cut);
        report.dropped_records = found.after_tear;
        return Ok((first.end, first.next_seq));
    }
    match policy {
        Recovery::Strict => {
            let d = damage_at(found, 0);
            Err(Error::new(Op::Recover, ErrorKind::Corrupt)
                .with_path(Some(&log.path))
                .at(d.offset, d.bytes)
                .detail(format!("{d}; {later} intact records follow the damage"))
                .hint("open with Recovery::Salvage (mmkit log append --recover salvage) to keep them, or Recovery::Truncate (--recover truncate) to drop them; mmkit log check lists every damaged range"))
        }
        Recovery::Truncate => {
            let end_of_all = found
                .bad
                .last()
                .map(|b| b.end)
                .unwrap_or(first.end)
                .max(found.last_run().end);
            let mut cut = damage_at(found, 0);
            cut.bytes = end_of_all - cut.offset;
            zero(log, cut.offset, cut.bytes)?;
            report.cut = Some(cut);
            report.dropped_records = later + found.after_tear;
            Ok((first.end, first.next_seq))
        }
        Recovery::Salvage => salvage(log, found, report),
    }
}

/// [`Recovery::Salvage`]: mark every hole with pads, cut a torn tail; returns the log's
/// end and next sequence number.
fn salvage(log: &ReadOnlyLog, found: &Scan, report: &mut RecoveryReport) -> Result<(u64, u64)> {
    for i in 0..found.runs.len() - 1 {
        let d = damage_at(found, i);
        pad(log, &d, found.runs[i + 1].first_seq)?;
        report.holes.push(d);
    }
    if found.bad.len() == found.runs.len() {
        let cut = damage_at(found, found.bad.len() - 1);
        zero(log, cut.offset, cut.bytes)?;
        report.cut = Some(cut);
        report.dropped_records = found.after_tear;
    }
    let last = found.last_run();
    Ok((last.end, last.next_seq))
}

/// The scan's `i`th bad stretch as a [`Damage`].
fn damage_at(found: &Scan, i: usize) -> Damage {
    let bad = &found.bad[i];
    Damage {
        offset: bad.offset,
        bytes: bad.end - bad.offset,
        first_lost: bad.first_lost,
        next_intact: found.runs.get(i + 1).map(|r| r.first_seq),
    }
}

/// Zero `[at, at+len)` of the file through the mapping.
fn zero(log: &ReadOnlyLog, at: u64, len: u64) -> Result<()> {
    let (at, len) = (at as usize, len as usize);
    // SAFETY: past the log's end (nobody reads there), inside the file (the scan saw it).
    unsafe {
        log.maps
            .get()
            .with_raw(Op::Recover, at, len, Protection::READ_WRITE, |p| {
                std::ptr::write_bytes(p, 0, len)
            })
    }
}

/// Mark the hole `d` with pad frames (zeros inside), numbered so that the next record
/// expected after them is `next_seq`.
fn pad(log: &ReadOnlyLog, d: &Damage, next_seq: u64) -> Result<()> {
    use crate::store::format::{Frame, FRAME, MAX_PAYLOAD};
    zero(log, d.offset, d.bytes)?;
    let mut at = d.offset;
    let end = d.offset + d.bytes;
    while at < end {
        let mut payload = ((end - at) as usize - FRAME).min(MAX_PAYLOAD);
        if (end - at) as usize - (FRAME + payload) == 8 {
            payload -= 8; // leave room for the next pad's frame
        }
        let zeros = vec![0u8; payload];
        let frame = Frame::new(payload, next_seq - 1, false, true).encode(&zeros);
        // SAFETY: inside the hole, which was just zeroed and lies inside the file.
        unsafe {
            log.maps.get().with_raw(
                Op::Recover,
                at as usize,
                FRAME,
                Protection::READ_WRITE,
                |p| std::ptr::copy_nonoverlapping(frame.as_ptr(), p, FRAME),
            )
        }?;
        at += (FRAME + payload) as u64;
    }
    Ok(())
}
