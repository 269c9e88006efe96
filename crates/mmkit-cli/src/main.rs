//! `mmkit`: the command-line face of the mmkit library.
//!
//! Parses arguments, calls the library, presents the result. Errors print in one or two
//! lines and exit non-zero; a closed stdout (`mmkit tour | head`) is not an error.

#![forbid(unsafe_code)]

mod args;
mod bench;
mod cache;
mod cat;
mod find;
mod kv;
mod log;
mod maps;
mod page;
mod progress;
mod shm;
mod table;
mod tour;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mmkit: map files and memory, and see what the kernel does with them.
#[derive(Debug, Parser)]
#[command(name = "mmkit", version, about, long_about = None)]
#[command(
    after_help = "Start with `mmkit tour`: it checks what the Linux docs claim about mmap, live."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the claims the Linux docs make about mmap, live on this machine.
    ///
    /// Each claim is an experiment on files created in a temporary directory, measured
    /// with the kernel's own counters (smaps, getrusage, cachestat, mincore) and real child
    /// processes. The report gives the claim, what was measured, and a verdict: holds,
    /// differs, or skipped (with the reason). Exits 0 whenever the tour ran.
    Tour(tour::TourArgs),
    /// Write files to stdout without copying them through mmkit: into a pipe, a socket or
    /// a file the kernel moves the bytes (sendfile, splice, copy_file_range, else write
    /// from a mapping); to a terminal, straight from a mapping.
    ///
    /// A file truncated while it is written out is reported in one line naming it (exit
    /// 1), never a SIGBUS crash.
    Cat(cat::CatArgs),
    /// Find a fixed string in files: byte offsets of every match (like grep -b -o -F),
    /// matching lines with -n, counts with -c.
    ///
    /// Exits 0 when something matched, 1 when nothing did, 2 on an error (as grep). A file
    /// truncated while it is searched is an error naming it, never a SIGBUS crash.
    Find(find::FindArgs),
    /// Per-mapping memory of a process (like pmap -X): RSS, PSS, dirty, swap, by kind.
    Maps(maps::MapsArgs),
    /// Page-cache residency of files and trees (like vmtouch and fincore): query,
    /// touch, evict, lock.
    Cache(cache::CacheArgs),
    /// Benchmarks: ways to read a file (read, the default), to send one (sink), and
    /// `mmkit find` against ripgrep and grep (find).
    Bench(bench::BenchArgs),
    /// Named shared-memory segments: list, create, remove, read and write them.
    ///
    /// A segment is a named block of memory (POSIX shm_open) that any process can map by
    /// its name to share bytes with others, with no copying. Linux keeps each one as a file
    /// in the tmpfs at /dev/shm, so it stays there, holding RAM, until it is removed
    /// (`mmkit shm rm`) or the machine reboots, even after every process using it exits.
    /// The names are the ones Python's multiprocessing.shared_memory.SharedMemory uses:
    /// SharedMemory(name="frames") and `mmkit shm cat frames` see the same bytes.
    Shm(shm::ShmArgs),
    /// User-space demand paging with userfaultfd: stream a file (or a zstd file's
    /// uncompressed bytes) through a pager, print its counters, benchmark it.
    Page(page::PageArgs),
    /// Append-only logs of byte records: append stdin, print, follow, check, sizes.
    ///
    /// A log is a file of records, each a frame (its number, length and a CRC-32C
    /// checksum) and the bytes, written through a shared mapping of the file and numbered
    /// from 1. It is crash-safe: an append is all or nothing, and a record counts only
    /// once it is committed. Durability says when that is: once in the page cache by
    /// default (the writer's kill -9 loses nothing appended), or on storage with --sync
    /// (fdatasync, one shared by concurrent appenders; a power loss loses nothing
    /// appended). Opening for writing checks every record: a torn tail left by a crash is
    /// cut; other damage is refused, cut or skipped as --recover says.
    ///
    /// One writer at a time (a second is refused at once); any number of readers, in any
    /// process, read while it appends, and followers (`tail -f`) wake as records commit.
    Log(log::LogArgs),
    /// A key-value store in one file: set, get, delete and list keys; sizes, compaction,
    /// a check.
    ///
    /// The store is a log (as `mmkit log`'s) of operations: each set or delete is one
    /// record appended, and the keys' places are indexed in memory when the store is
    /// opened. It is crash-safe: a set is all or nothing, and once `set` returns the
    /// value is safe from any process's crash (kill -9 included), or with --sync
    /// (fdatasync) from a power loss too. Damage (a bad sector, a flipped bit) costs only
    /// the keys in the damaged records: opening skips it, keeps every intact key and says
    /// so on stderr; `check` finds it first.
    ///
    /// Several processes may use one store at once, `set`s included: writers take turns
    /// for each record, and every command sees what the others committed before it. Old
    /// values stay in the file until a compaction rewrites the live ones into a fresh
    /// file (`compact`, or automatically once the log holds 4 MiB and less than half of
    /// it is live); the other processes move to the new file on their next call.
    Kv(kv::KvArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every subcommand returns `anyhow::Result<ExitCode>`; the second value is the exit
    // status of an `Err`: 2 for `find` (grep's "an error occurred", 1 meaning "no match"),
    // `log` (1 meaning damage found) and `kv` (1 meaning no such key, or damage found), 1
    // for the rest. Argument errors exit 2 from clap before this.
    let (result, on_error) = match cli.command {
        Command::Tour(args) => (tour::run(&args), 1),
        Command::Cat(args) => (cat::run(&args), 1),
        Command::Find(args) => (find::run(&args), 2),
        Command::Maps(args) => (maps::run(&args), 1),
        Command::Cache(args) => (cache::run(&args), 1),
        Command::Bench(args) => (bench::run(&args), 1),
        Command::Shm(args) => (shm::run(&args), 1),
        Command::Page(args) => (page::run(&args), 1),
        Command::Log(args) => (log::run(&args), 2),
        Command::Kv(args) => (kv::run(&args), 2),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmkit: {e:#}");
            ExitCode::from(on_error)
        }
    }
}

/// Success when `ok`, else the exit status `failure`.
pub(crate) fn code(ok: bool, failure: u8) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(failure)
    }
}

/// Print one error line to stderr.
pub(crate) fn report(line: &str) {
    eprintln!("mmkit: {line}");
}

/// The first line of an error's text (the CLI leaves the library's hints out where a
/// one-line report is the contract).
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Whether an errno is EPIPE (the reader of stdout went away).
pub(crate) fn is_epipe(errno: Option<i32>) -> bool {
    errno.is_some_and(|n| {
        std::io::Error::from_raw_os_error(n).kind() == std::io::ErrorKind::BrokenPipe
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
