//! `mmkit kv stats`, `mmkit kv compact` and `mmkit kv check`: a store's sizes, its file
//! rewritten, and its records verified.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use comfy_table::{Cell, CellAlignment};
use mmkit::size::format_size;
use mmkit::store::LogOptions;

use super::{kv_error, open, open_to_read};
use crate::args::FileReport;
use crate::table::plain_table;

pub(crate) fn stats(args: &FileReport) -> anyhow::Result<ExitCode> {
    let kv = open_to_read("stats", &args.file)?;
    let s = kv.stats().map_err(|e| kv_error("stats", &e))?;
    let live_share = if s.total_bytes == 0 {
        String::new()
    } else {
        format!(
            " ({:.0}% of total)",
            100.0 * s.live_bytes as f64 / s.total_bytes as f64
        )
    };
    // The library's `last_compaction` is left out: it is the handle's, and the CLI's
    // fresh handle has run none.
    let rows = [
        ("keys", "keys", s.keys.to_string()),
        (
            "live",
            "live_bytes",
            format!("{}{live_share}", format_size(s.live_bytes)),
        ),
        ("total", "total_bytes", format_size(s.total_bytes)),
        ("file", "file_bytes", format_size(s.file_bytes)),
        (
            "allocated",
            "allocated_bytes",
            format_size(s.allocated_bytes),
        ),
    ];
    crate::table::print_stats(args.json, &s, &rows)
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

pub(crate) fn compact(args: &FileReport) -> anyhow::Result<ExitCode> {
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

pub(crate) fn check(args: &FileReport) -> anyhow::Result<ExitCode> {
    // Read-only, as a log: opening a `Kv` would skip (and mark) the damage it finds, and
    // then there would be none left to report.
    let log = LogOptions::new()
        .open_read_only(&args.file)
        .map_err(|e| kv_error("check", &e))?;
    let report = log.check().map_err(|e| kv_error("check", &e))?;
    crate::log::print_check(args.json, &args.file, &report)
}

/// The size of the file at `path` now.
fn file_size(path: &Path) -> anyhow::Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| anyhow::anyhow!("kv compact: {}: {e}", path.display()))
}
