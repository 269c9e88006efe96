//! `mmkit kv stats`, `mmkit kv compact` and `mmkit kv check`: a store's sizes, its file
//! rewritten, and its records verified.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use comfy_table::{Cell, CellAlignment};
use mmkit::size::format_size;
use mmkit::store::LogOptions;

use super::{kv_error, open, open_to_read};
use crate::table::plain_table;

/// Arguments of `mmkit kv stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// The store.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print {"keys", "live_bytes", "total_bytes", "file_bytes", "allocated_bytes"}
    /// (numbers of bytes, not sizes).
    #[arg(long)]
    json: bool,
}

/// Arguments of `mmkit kv compact`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompactArgs {
    /// The store.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print {"keys", "bytes_before", "bytes_after", "file_before", "file_after",
    /// "allocated_before", "allocated_after", "seconds"} (bytes: the records'; file: the
    /// file's size; allocated: on storage).
    #[arg(long)]
    json: bool,
}

/// Arguments of `mmkit kv check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The store.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print {"intact", "records", "first", "last", "damage": [{"offset", "bytes",
    /// "first_lost", "next_intact"}], "torn_tail"}, as `mmkit log check --json` (a store
    /// is a log: each set or del is one record).
    #[arg(long)]
    json: bool,
}

/// What `stats` shows (the library's `last_compaction` is left out: it is the handle's,
/// and the CLI's fresh handle has run none).
#[derive(Debug, serde::Serialize)]
struct Stats {
    keys: u64,
    live_bytes: u64,
    total_bytes: u64,
    file_bytes: u64,
    allocated_bytes: u64,
}

pub(crate) fn stats(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let kv = open_to_read("stats", &args.file)?;
    let s = kv.stats().map_err(|e| kv_error("stats", &e))?;
    let s = Stats {
        keys: s.keys,
        live_bytes: s.live_bytes,
        total_bytes: s.total_bytes,
        file_bytes: s.file_bytes,
        allocated_bytes: s.allocated_bytes,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&s)?)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let live_share = if s.total_bytes == 0 {
        String::new()
    } else {
        format!(
            " ({:.0}% of total)",
            100.0 * s.live_bytes as f64 / s.total_bytes as f64
        )
    };
    let rows = [
        ("keys", s.keys.to_string()),
        ("live", format!("{}{live_share}", format_size(s.live_bytes))),
        ("total", format_size(s.total_bytes)),
        ("file", format_size(s.file_bytes)),
        ("allocated", format_size(s.allocated_bytes)),
    ];
    let mut table = plain_table(&[]);
    for (name, value) in rows {
        table.add_row(vec![
            Cell::new(name),
            Cell::new(value).set_alignment(CellAlignment::Right),
        ]);
    }
    writeln!(out, "{table}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// What `compact` shows.
#[derive(Debug, serde::Serialize)]
struct Compacted {
    keys: u64,
    bytes_before: u64,
    bytes_after: u64,
    file_before: u64,
    file_after: u64,
    allocated_before: u64,
    allocated_after: u64,
    seconds: f64,
}

pub(crate) fn compact(args: &CompactArgs) -> anyhow::Result<ExitCode> {
    let kv = open("compact", &args.file, false, false)?;
    let file_before = file_size(&args.file)?;
    let r = kv.compact().map_err(|e| kv_error("compact", &e))?;
    let c = Compacted {
        keys: r.keys,
        bytes_before: r.bytes_before,
        bytes_after: r.bytes_after,
        file_before,
        file_after: file_size(&args.file)?,
        allocated_before: r.allocated_before,
        allocated_after: r.allocated_after,
        seconds: r.took.as_secs_f64(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&c)?)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{}: compacted in {:.1} ms, {} keys kept",
        args.file.display(),
        c.seconds * 1e3,
        c.keys
    )?;
    let mut table = plain_table(&[]);
    table.set_header(vec!["", "before", "after"]);
    for (name, before, after) in [
        ("records", c.bytes_before, c.bytes_after),
        ("file", c.file_before, c.file_after),
        ("allocated", c.allocated_before, c.allocated_after),
    ] {
        table.add_row(vec![
            Cell::new(name),
            Cell::new(format_size(before)).set_alignment(CellAlignment::Right),
            Cell::new(format_size(after)).set_alignment(CellAlignment::Right),
        ]);
    }
    writeln!(out, "{table}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    // Read-only, as a log: opening a `Kv` would skip (and mark) the damage it finds, and
    // then there would be none left to report.
    let log = LogOptions::new()
        .open_read_only(&args.file)
        .map_err(|e| kv_error("check", &e))?;
    let report = log.check().map_err(|e| kv_error("check", &e))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["intact"] = report.is_intact().into();
        writeln!(out, "{v}")?;
    } else {
        let path = args.file.display();
        writeln!(out, "{path}: {}", crate::log::check_summary(&report))?;
        for d in &report.damage {
            writeln!(out, "  {d}")?;
        }
    }
    out.flush()?;
    Ok(crate::code(report.is_intact(), 1))
}

/// The size of the file at `path` now.
fn file_size(path: &Path) -> anyhow::Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| anyhow::anyhow!("kv compact: {}: {e}", path.display()))
}
