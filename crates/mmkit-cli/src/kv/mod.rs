//! `mmkit kv`: a key-value store ([`mmkit::store::Kv`]) from the shell: set, get and
//! delete keys, list them, show sizes, compact and check the file. The library does the
//! work; this module parses and presents.
//!
//! Each subcommand is one variant of [`KvCommand`] with its own `clap::Args` struct and
//! a `run` function returning the exit code: `write` (set, del), `read` (get, ls),
//! `admin` (stats, compact, check).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use mmkit::store::{Durability, Kv, KvOptions, ReadOnlyKv};

mod admin;
mod read;
mod write;

/// The longest key the store takes, in bytes (a key's length is a u16 in each record).
const MAX_KEY: usize = u16::MAX as usize;

/// Arguments of `mmkit kv`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Keys are given as arguments: any bytes but NUL (not only UTF-8), at most 65535 bytes; \
the empty key is a key. Values are any bytes, up to about 1 GiB; `-` as VALUE reads the \
value from stdin (to store a literal `-`, pipe it: printf - | mmkit kv set FILE KEY -).

`get`, `ls` and `stats` open the store for writing when they may (so that damage is \
skipped and marked, and a torn tail cut), and read-only when the file is not writable \
by this user; `check` only reads.

Examples:
  mmkit kv set settings.kv theme dark
  mmkit kv get settings.kv theme            # prints `dark`, no newline added
  head -c 100 /dev/urandom | mmkit kv set settings.kv blob -
  mmkit kv ls settings.kv --values
  mmkit kv del settings.kv theme || echo 'was not there'
  mmkit kv check settings.kv && mmkit kv stats settings.kv

Exit status: 0 on success; 1 when `get` or `del` find no such key (nothing printed, as \
grep), or `check` finds damage; 2 on any error (a missing file, not a store, a key too \
long, ...).")]
pub(crate) struct KvArgs {
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KvCommand {
    /// Set KEY to VALUE (`-`: the value from stdin) in a store, created when missing.
    ///
    /// Prints nothing on success. Once it returns, the value is safe from any process's
    /// crash; with --sync also from a power loss. Other processes may read and write the
    /// store meanwhile.
    Set(write::SetArgs),
    /// Print the value of KEY: its bytes exactly as stored, with no newline added (so
    /// `mmkit kv get f k > out` gives back what was set), or a JSON line with --json.
    ///
    /// Exit 1 when the key is not there (nothing printed), 2 on errors (a missing file
    /// is an error, not an absent key).
    Get(read::GetArgs),
    /// Delete KEY: exit 0 when it was there, 1 when it was not.
    Del(write::DelArgs),
    /// List the keys, sorted by their bytes (the store keeps no order), one per line;
    /// with --values as KEY<TAB>VALUE lines; JSON lines with --json.
    ///
    /// Keys and values print as raw bytes, so one holding a newline or a tab makes the
    /// lines ambiguous: --json is exact.
    Ls(read::LsArgs),
    /// Keys, the bytes of the records holding current values (live) and of every record
    /// (total: overwritten and deleted ones too, until a compaction), the file's size
    /// (with the space reserved ahead of writes) and the bytes allocated on storage.
    ///
    /// --json: Print {"keys", "live_bytes", "total_bytes", "file_bytes", "allocated_bytes"}
    /// (numbers of bytes, not sizes).
    Stats(crate::args::FileReport),
    /// Rewrite the live records into a fresh file that replaces the store's: the file
    /// shrinks to what the current values need. Prints the sizes before and after.
    ///
    /// Safe against a crash at any point (the old file or the new one, never a mix) and
    /// against other processes using the store: they move to the new file on their next
    /// call. Writes compact automatically too, once the log holds 4 MiB and less than
    /// half of it is live.
    ///
    /// --json: Print {"keys", "bytes_before", "bytes_after", "file_before", "file_after",
    /// "allocated_before", "allocated_after", "seconds"} (bytes: the records'; file: the
    /// file's size; allocated: on storage).
    Compact(crate::args::FileReport),
    /// Verify every record's checksum and framing, read-only. Exit 0 when intact (one
    /// summary line), 1 listing each damaged range, 2 on errors.
    ///
    /// Run it before any other command on a store you suspect: the other commands open
    /// the store for writing, which skips damage for good (the keys in a damaged record
    /// are lost, every other key is kept) and says so in one line on stderr; after
    /// that, check finds the store intact.
    ///
    /// --json: Print {"intact", "records", "first", "last", "damage": [{"offset", "bytes",
    /// "first_lost", "next_intact"}], "torn_tail"}, as `mmkit log check --json` (a store is
    /// a log: each set or del is one record).
    Check(crate::args::FileReport),
}

pub(crate) fn run(args: &KvArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        KvCommand::Set(a) => write::set(a),
        KvCommand::Get(a) => read::get(a),
        KvCommand::Del(a) => write::del(a),
        KvCommand::Ls(a) => read::ls(a),
        KvCommand::Stats(a) => admin::stats(a),
        KvCommand::Compact(a) => admin::compact(a),
        KvCommand::Check(a) => admin::check(a),
    }
}

/// The error of a library call for subcommand `cmd`, as `mmkit: kv CMD: ...` (the
/// library's text names the file; its hint, when there is one, follows on a second line).
fn kv_error(cmd: &str, e: &mmkit::Error) -> anyhow::Error {
    crate::args::cmd_error(format_args!("kv {cmd}"), e)
}

/// A key argument's bytes, refused (before the store is opened) when over the limit.
fn key_bytes<'a>(cmd: &str, key: &'a OsStr) -> anyhow::Result<&'a [u8]> {
    let key = key.as_bytes();
    if key.len() > MAX_KEY {
        anyhow::bail!(
            "kv {cmd}: a key of {} bytes is over the limit of {MAX_KEY} bytes",
            key.len()
        );
    }
    Ok(key)
}

/// Open the store at `path` to read it: for writing when this user may, read-only when
/// the file (or its file system) is not writable.
fn open_to_read(cmd: &str, path: &Path) -> anyhow::Result<ReadOnlyKv> {
    let kv = match KvOptions::new().create(false).open(path) {
        Ok(kv) => kv.into_read_only(),
        Err(e) if denied(&e) => KvOptions::new()
            .open_read_only(path)
            .map_err(|e| kv_error(cmd, &e))?,
        Err(e) => return Err(kv_error(cmd, &e)),
    };
    report_recovery(cmd, path, &kv);
    Ok(kv)
}

/// Whether opening for writing failed only for want of permission.
fn denied(e: &mmkit::Error) -> bool {
    const EACCES: i32 = 13;
    const EPERM: i32 = 1;
    const EROFS: i32 = 30;
    matches!(e.errno(), Some(EACCES | EPERM | EROFS))
}

/// Open the store at `path` (created when missing only if `create`), and report in one
/// line on stderr what opening skipped or cut, if anything.
fn open(cmd: &str, path: &Path, create: bool, sync: bool) -> anyhow::Result<Kv> {
    let kv = KvOptions::new()
        .create(create)
        .durability(if sync {
            Durability::Sync
        } else {
            Durability::Process
        })
        .open(path)
        .map_err(|e| kv_error(cmd, &e))?;
    report_recovery(cmd, path, &kv);
    Ok(kv)
}

/// Say in one line on stderr what opening skipped or cut, if anything.
fn report_recovery(cmd: &str, path: &Path, kv: &ReadOnlyKv) {
    let report = kv.recovery_report();
    if !report.is_clean() {
        crate::report(&format!("kv {cmd}: {}: {report}", path.display()));
    }
}

/// Bytes for JSON: the string itself when they are UTF-8 (encoding "utf8"), else
/// lowercase hex, two digits a byte (encoding "hex").
fn encoded(bytes: &[u8]) -> (&'static str, String) {
    match std::str::from_utf8(bytes) {
        Ok(text) => ("utf8", text.to_string()),
        Err(_) => ("hex", crate::args::hex(bytes)),
    }
}
