//! `mmkit log check` and `mmkit log stats`: a log verified, and its numbers and sizes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::{Cell, CellAlignment};
use mmkit::size::format_size;
use mmkit::store::{CheckReport, Seq};

use super::{log_error, open_reader};

/// Arguments of `mmkit log check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The log.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print {"intact", "records", "first", "last", "damage": [{"offset", "bytes",
    /// "first_lost", "next_intact"}], "torn_tail"} (torn_tail null or as a damage entry).
    #[arg(long)]
    json: bool,
}

/// Arguments of `mmkit log stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// The log.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print {"first", "last", "records", "used_bytes", "file_bytes", "allocated_bytes"}
    /// (numbers of bytes, not sizes; first and last null when the log is empty).
    #[arg(long)]
    json: bool,
}

pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let log = open_reader("check", &args.file)?;
    let report = log.check().map_err(|e| log_error("check", &e))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["intact"] = report.is_intact().into();
        writeln!(out, "{v}")?;
    } else {
        let path = args.file.display();
        writeln!(out, "{path}: {}", summary(&report))?;
        for d in &report.damage {
            writeln!(out, "  {d}")?;
        }
    }
    out.flush()?;
    Ok(crate::code(report.is_intact(), 1))
}

/// One line: intact or damaged, records, first..last, and a torn tail's note.
pub(crate) fn summary(r: &CheckReport) -> String {
    let range = match (r.first, r.last) {
        (Some(f), Some(l)) => format!(", {f}..={l}"),
        _ => String::new(),
    };
    let mut s = if r.is_intact() {
        format!("intact: {} records{range}", r.records)
    } else {
        let n = r.damage.len();
        format!(
            "damaged: {} intact records{range}; {n} damaged range{}:",
            r.records,
            if n == 1 { "" } else { "s" }
        )
    };
    if let Some(torn) = &r.torn_tail {
        s.push_str(&format!(
            " (and a {torn}: not damage, the next writer cuts it)"
        ));
    }
    s
}

/// What `stats` shows: the log's, not this reader's handle's, numbers.
#[derive(Debug, serde::Serialize)]
struct Stats {
    first: Option<Seq>,
    last: Option<Seq>,
    records: u64,
    used_bytes: u64,
    file_bytes: u64,
    allocated_bytes: u64,
}

pub(crate) fn stats(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let log = open_reader("stats", &args.file)?;
    let s = log.stats().map_err(|e| log_error("stats", &e))?;
    let s = Stats {
        first: s.first,
        last: s.last,
        records: s.records,
        used_bytes: s.used_bytes,
        file_bytes: s.file_bytes,
        allocated_bytes: s.allocated_bytes,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&s)?)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let seq = |s: Option<Seq>| s.map_or("-".to_string(), |n| n.to_string());
    let mut table = crate::table::plain_table(&[]);
    let rows = [
        ("first", seq(s.first)),
        ("last", seq(s.last)),
        ("records", s.records.to_string()),
        ("used", format_size(s.used_bytes)),
        ("file", format_size(s.file_bytes)),
        ("allocated", format_size(s.allocated_bytes)),
    ];
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
