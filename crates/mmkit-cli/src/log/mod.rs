//! `mmkit log`: append-only logs of byte records ([`mmkit::store::Log`]) from the shell:
//! append stdin, print the records, follow a writer, check, and show sizes. The library
//! does the work; this module parses and presents.
//!
//! Each subcommand is one variant of [`LogCommand`] with its own `clap::Args` struct and
//! a `run` function returning the exit code. Adding one (such as `bench`) is a `mod`
//! line, a variant and its match arm in [`run`].

use std::path::Path;
use std::process::ExitCode;

use mmkit::store::{LogOptions, ReadOnlyLog, Seq};

mod append;
mod bench;
mod check;
mod read;

pub(crate) use check::print_check;

/// Arguments of `mmkit log`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  printf 'started\\nstopped\\n' | mmkit log append events.log
  mmkit log cat events.log --from 2
  mmkit log tail -f events.log --json
  mmkit log check events.log && mmkit log stats events.log

Exit status: 0 on success; 1 when `check` finds damage, or `cat`/`tail` reach a damaged \
record (the records before it are printed first); 2 on any other error (not a log, a \
missing file, another writer holding the log, ...).")]
pub(crate) struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LogCommand {
    /// Append stdin to a log (created when missing): one record per line, without its
    /// newline, or the whole of stdin as one record with --raw.
    ///
    /// Lines are appended in batches (up to 1000 lines or 1 MiB each); a batch is all or
    /// nothing, also across a crash. Prints nothing on success; a recovery that was not
    /// clean (a torn tail cut, damage skipped) is reported in one line on stderr.
    ///
    /// One writer at a time: a second `append` while one runs is refused at once (Busy,
    /// exit 2), it does not wait.
    Append(append::AppendArgs),
    /// Print the records in order, each as written followed by a newline (raw bytes, no
    /// escaping), or as JSON lines with --json.
    ///
    /// Opens the log read-only: it works while a writer appends, and never changes the
    /// file. A damaged record stops it: the records before it are printed, then the error
    /// (exit 1).
    Cat(read::CatArgs),
    /// Print the last records (10 by default) and, with -f, follow the log: print each
    /// new record as a writer (in any process) commits it, until SIGINT or SIGTERM.
    Tail(read::TailArgs),
    /// Verify every record's checksum, number and framing. Exit 0 when intact (one
    /// summary line), 1 listing each damaged range, 2 on errors. Changes nothing.
    ///
    /// A torn tail (an incomplete record past the committed end, what a writer's crash
    /// during an append leaves) is noted but is not damage: the next writer cuts it.
    ///
    /// --json: Print {"intact", "records", "first", "last", "damage": [{"offset", "bytes",
    /// "first_lost", "next_intact"}], "torn_tail"} (torn_tail null or as a damage entry).
    Check(crate::args::FileReport),
    /// Record numbers and sizes: first, last, records, bytes used by records, the file's
    /// size (with the space reserved ahead) and the bytes allocated on storage.
    ///
    /// --json: Print {"first", "last", "records", "used_bytes", "file_bytes",
    /// "allocated_bytes"} (numbers of bytes, not sizes; first and last null when the log is
    /// empty).
    Stats(crate::args::FileReport),
    /// Appends per second against a plain log written with write(2): 16 B, 256 B and 4
    /// KiB records, at Process durability against O_APPEND write, at Sync durability
    /// against write + fdatasync (one writer, and 8 concurrent appenders sharing flushes
    /// through group commit), medians of several runs with their spread.
    Bench(bench::BenchArgs),
}

pub(crate) fn run(args: &LogArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        LogCommand::Append(a) => append::run(a),
        LogCommand::Cat(a) => read::cat(a),
        LogCommand::Tail(a) => read::tail(a),
        LogCommand::Check(a) => check::check(a),
        LogCommand::Stats(a) => check::stats(a),
        LogCommand::Bench(a) => bench::run(a).map(|()| ExitCode::SUCCESS),
    }
}

/// A sequence number for --from: a whole number from 1 (records are numbered from 1).
fn seq_arg(s: &str) -> Result<Seq, String> {
    match s.parse::<Seq>() {
        Ok(0) => Err("records are numbered from 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{s}` is not a record number (a whole number from 1 to {})",
            Seq::MAX
        )),
    }
}

/// The error of a library call for subcommand `cmd`, as `mmkit: log CMD: ...` (the
/// library's text names the file; its hint, when there is one, follows on a second line).
fn log_error(cmd: &str, e: &mmkit::Error) -> anyhow::Error {
    crate::args::cmd_error(format_args!("log {cmd}"), e)
}

/// Open `path` read-only (no lock, no recovery, never changes the file).
fn open_reader(cmd: &str, path: &Path) -> anyhow::Result<ReadOnlyLog> {
    LogOptions::new()
        .open_read_only(path)
        .map_err(|e| log_error(cmd, &e))
}
