//! `mmkit shm`: named POSIX shared-memory segments (the `shm_open` objects Linux keeps as
//! files in `/dev/shm`), listed, created, removed, read and written from the shell. The
//! library's [`mmkit::shm::Segment`] does the work; this module parses and presents.
//!
//! Each subcommand is one variant of [`ShmCommand`] with its own `clap::Args` struct and a
//! `run` function returning the exit code. Adding one (such as `bench` in `bench.rs`) is a
//! `mod` line, a variant and its match arm in [`run`].

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

mod bench;

use anyhow::bail;
use comfy_table::{Cell, CellAlignment};
use mmkit::shm::segment::{Segment, SegmentOptions, SHM_DIR};

/// Arguments of `mmkit shm`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Names: \"frames\" and \"/frames\" are the same segment; a name is one path component (no \
'/' after the first character). Python sees the same names: \
multiprocessing.shared_memory.SharedMemory(name=\"frames\") opens /dev/shm/frames.

Examples:
  mmkit shm create frames --size 16M
  printf 'hello' | mmkit shm write frames --offset 4K
  mmkit shm cat frames --offset 4K --len 5
  mmkit shm ls --json
  mmkit shm rm frames
  mmkit shm bench --sizes 64,1K,64K --json")]
pub(crate) struct ShmArgs {
    #[command(subcommand)]
    command: ShmCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ShmCommand {
    /// List the segments in /dev/shm: size, mode, owner, last change; sorted by name.
    ///
    /// Symbolic links there are not segments: they are not listed (nor followed), and
    /// each is named in a note on stderr.
    Ls(LsArgs),
    /// Create a segment of a given size, zero-filled; fails if the name exists.
    Create(CreateArgs),
    /// Remove segments (shm_unlink). Processes that have one mapped keep it until they
    /// unmap it; the name is free at once. A symbolic link is removed itself, never the
    /// file it points to.
    Rm(RmArgs),
    /// Write a segment's bytes to stdout, straight from a mapping of it.
    ///
    /// A segment shrunk while it is written out is reported in one line (exit 1), never
    /// a SIGBUS crash.
    Cat(CatArgs),
    /// Copy stdin into a segment at an offset, through a mapping of it.
    Write(WriteArgs),
    /// Measure mmkit's ring channel against a pipe and a Unix socket between two
    /// processes: messages per second and round-trip latency (p50, p99, p99.9) for each
    /// message size, and the machine's floor (two processes spinning on shared words).
    ///
    /// Takes about 10-20 s with the defaults; --quick for a glance.
    Bench(bench::BenchArgs),
}

pub(crate) fn run(args: &ShmArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ShmCommand::Ls(a) => ls(a),
        ShmCommand::Create(a) => create(a),
        ShmCommand::Rm(a) => rm(a),
        ShmCommand::Cat(a) => cat(a),
        ShmCommand::Write(a) => write(a),
        ShmCommand::Bench(a) => bench::run(a),
    }
}

/// A byte count: a number, optionally with K, M, G (or KiB, MiB, GiB; powers of 1024).
/// The error of a library call on segment `name`, in one line, for subcommand `cmd`.
fn seg_error(cmd: &str, name: &str, e: &mmkit::Error) -> anyhow::Error {
    if is(e, std::io::ErrorKind::NotFound) {
        anyhow::anyhow!("shm {cmd}: no segment {name:?} in {SHM_DIR} (`mmkit shm ls` lists them)")
    } else {
        crate::args::cmd_error_line(format_args!("shm {cmd}"), e)
    }
}

/// Whether the kernel refused with an errno of this kind (`ENOENT` is `NotFound`, ...).
fn is(e: &mmkit::Error, kind: std::io::ErrorKind) -> bool {
    e.errno()
        .is_some_and(|n| std::io::Error::from_raw_os_error(n).kind() == kind)
}

// ---- ls ----

/// Arguments of `mmkit shm ls`.
#[derive(Debug, clap::Args)]
struct LsArgs {
    /// Print a JSON array of {name, size, mode, uid, mtime, modified}: size in bytes, mode
    /// an octal string, mtime in seconds since 1970, modified the same in UTC (RFC 3339).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
struct Entry {
    name: String,
    size: u64,
    mode: String,
    uid: u32,
    mtime: i64,
    modified: String,
}

fn ls(args: &LsArgs) -> anyhow::Result<ExitCode> {
    let names = Segment::list().map_err(|e| seg_error("ls", SHM_DIR, &e))?;
    let mut entries = Vec::new();
    for name in names {
        let meta = match std::fs::symlink_metadata(Path::new(SHM_DIR).join(&name)) {
            Ok(m) => m,
            // Removed since the listing: it is not there any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => bail!("shm ls: {SHM_DIR}/{name}: {e}"),
        };
        entries.push(Entry {
            size: meta.size(),
            mode: format!("{:04o}", meta.mode() & 0o7777),
            uid: meta.uid(),
            mtime: meta.mtime(),
            modified: utc(meta.mtime()),
            name,
        });
    }
    // Symbolic links are never segments (opens refuse them, O_NOFOLLOW) and are left out
    // of the list, unfollowed; one named like a segment may be planted, so say so.
    for (name, kind) in Segment::list_others().map_err(|e| seg_error("ls", SHM_DIR, &e))? {
        if kind == "a symbolic link" {
            crate::report(&format!(
                "shm ls: {SHM_DIR}/{name} is a symbolic link, not a segment (segments never \
                 follow links); `mmkit shm rm {name}` removes the link"
            ));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = crate::table::plain_table(&["NAME", "SIZE", "MODE", "UID", "MODIFIED (UTC)"]);
    for e in &entries {
        table.add_row(vec![
            Cell::new(&e.name),
            Cell::new(mmkit::size::format_size(e.size)).set_alignment(CellAlignment::Right),
            Cell::new(&e.mode),
            Cell::new(e.uid).set_alignment(CellAlignment::Right),
            Cell::new(&e.modified),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(ExitCode::SUCCESS)
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ` (UTC; Howard Hinnant's civil-from-days).
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---- create ----

/// Arguments of `mmkit shm create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The segment's name ("frames" or "/frames").
    name: String,
    /// Its size: bytes, or with K, M, G (KiB, MiB, GiB; powers of 1024). The memory is
    /// taken from RAM (tmpfs) as pages are first written.
    #[arg(long, value_parser = crate::args::size::<u64>)]
    size: u64,
    /// Permission bits in octal (the umask still clears bits).
    #[arg(long, value_parser = crate::args::mode, default_value = "0600")]
    mode: u32,
    /// Succeed when the segment exists already (keeping its size and contents).
    #[arg(long)]
    exist_ok: bool,
}

fn create(args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let mut opts = SegmentOptions::new();
    opts.mode(args.mode);
    if args.exist_ok {
        opts.open_or_create();
    }
    let seg = match opts.create(&args.name, args.size) {
        Ok(seg) => seg,
        Err(e) if is(&e, std::io::ErrorKind::AlreadyExists) => bail!(
            "shm create: segment {:?} exists already; pass --exist-ok to accept it, or remove \
             it first with `mmkit shm rm {}`",
            args.name,
            args.name
        ),
        Err(e) => return Err(seg_error("create", &args.name, &e)),
    };
    if !seg.created() {
        let size = seg
            .size()
            .map_err(|e| seg_error("create", &args.name, &e))?;
        if size != args.size {
            crate::report(&format!(
                "shm create: segment {:?} exists already with {size} bytes (not {}); kept as is",
                args.name, args.size
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---- rm ----

/// Arguments of `mmkit shm rm`.
#[derive(Debug, clap::Args)]
struct RmArgs {
    /// Segments to remove; a missing one is reported and the others are still removed.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Say nothing about names that do not exist.
    #[arg(short = 'f', long)]
    force: bool,
}

fn rm(args: &RmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for name in &args.names {
        match Segment::unlink(name) {
            Ok(()) => {}
            Err(e) if args.force && is(&e, std::io::ErrorKind::NotFound) => {}
            Err(e) => {
                crate::report(&format!("{:#}", seg_error("rm", name, &e)));
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// ---- cat ----

/// Arguments of `mmkit shm cat`.
#[derive(Debug, clap::Args)]
struct CatArgs {
    /// The segment's name.
    name: String,
    /// Start at this byte (K, M, G suffixes accepted).
    #[arg(long, value_parser = crate::args::bytes, default_value = "0")]
    offset: u64,
    /// Write this many bytes (default: to the end of the segment).
    #[arg(long, value_parser = crate::args::bytes)]
    len: Option<u64>,
}

fn cat(args: &CatArgs) -> anyhow::Result<ExitCode> {
    let err = |e: mmkit::Error| seg_error("cat", &args.name, &e);
    // Read-only: permission to read the segment is enough.
    let seg = Segment::open_read_only(&args.name).map_err(err)?;
    let size = seg.size().map_err(err)?;
    if args.offset > size {
        bail!(
            "shm cat: offset {} is past the end of segment {:?} ({size} bytes)",
            args.offset,
            args.name
        );
    }
    let len = args.len.unwrap_or(size - args.offset);
    if len > size - args.offset {
        bail!(
            "shm cat: {len} bytes at offset {} go past the end of segment {:?} ({size} bytes)",
            args.offset,
            args.name
        );
    }
    if len == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let map = seg.map().map_err(err)?;
    let stdout = std::io::stdout();
    match map.write_to(args.offset as usize, len as usize, stdout.as_fd()) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) if crate::is_epipe(e.errno()) => Ok(ExitCode::SUCCESS), // the reader went away
        Err(e) => Err(err(e)),
    }
}

// ---- write ----

/// Arguments of `mmkit shm write`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
All of stdin is read first, then copied into the segment in one go. Data that would go \
past the end of the segment is an error unless --grow.")]
struct WriteArgs {
    /// The segment's name.
    name: String,
    /// Write at this byte (K, M, G suffixes accepted).
    #[arg(long, value_parser = crate::args::bytes, default_value = "0")]
    offset: u64,
    /// Create the segment when it does not exist, sized to offset + the input's length.
    #[arg(long)]
    create: bool,
    /// Enlarge the segment (with zeros, by ftruncate) when the data goes past its end.
    #[arg(long)]
    grow: bool,
}

fn write(args: &WriteArgs) -> anyhow::Result<ExitCode> {
    let err = |e: mmkit::Error| seg_error("write", &args.name, &e);
    let mut data = Vec::new();
    std::io::stdin().lock().read_to_end(&mut data)?;
    let Some(end) = args.offset.checked_add(data.len() as u64) else {
        bail!(
            "shm write: offset {} + {} bytes overflows",
            args.offset,
            data.len()
        );
    };
    let seg = match Segment::open(&args.name) {
        Ok(seg) => seg,
        Err(e) if args.create && is(&e, std::io::ErrorKind::NotFound) => {
            if end == 0 {
                bail!(
                    "shm write: stdin is empty: cannot create segment {:?} with 0 bytes",
                    args.name
                );
            }
            SegmentOptions::new()
                .open_or_create()
                .create(&args.name, end)
                .map_err(err)?
        }
        Err(e) => return Err(err(e)),
    };
    let size = seg.size().map_err(err)?;
    if end > size {
        if !args.grow {
            bail!(
                "shm write: {} bytes at offset {} need {end} bytes but segment {:?} has {size}; \
                 pass --grow to enlarge it",
                data.len(),
                args.offset,
                args.name
            );
        }
        seg.resize(end).map_err(err)?;
    }
    if !data.is_empty() {
        seg.map()
            .and_then(|mut map| map.write_at(args.offset as usize, &data))
            .map_err(err)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_438_536), "2026-11-23T12:55:36Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }
}
