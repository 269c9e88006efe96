//! `mmkit log check` and `mmkit log stats`: a log verified, and its numbers and sizes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use mmkit::size::format_size;
use mmkit::store::{CheckReport, Seq};

use super::{log_error, open_reader};
use crate::args::FileReport;

pub(crate) fn check(args: &FileReport) -> anyhow::Result<ExitCode> {
    let log = open_reader("check", &args.file)?;
    let report = log.check().map_err(|e| log_error("check", &e))?;
    print_check(args.json, &args.file, &report)
}

/// Print the check of the log at `path` (for `log check` and `kv check`): with `json`,
/// the report with `intact` added, in one line; else its summary and one line a damaged
/// range. The exit status is 1 when damage was found.
pub(crate) fn print_check(
    json: bool,
    path: &Path,
    report: &CheckReport,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = serde_json::to_value(report)?;
        v["intact"] = report.is_intact().into();
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{}: {}", path.display(), summary(report))?;
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

pub(crate) fn stats(args: &FileReport) -> anyhow::Result<ExitCode> {
    let log = open_reader("stats", &args.file)?;
    let s = log.stats().map_err(|e| log_error("stats", &e))?;
    let seq = |s: Option<Seq>| s.map_or("-".to_string(), |n| n.to_string());
    // The log's, not this reader's handle's, numbers: its appends and flushes are left out.
    let rows = [
        ("first", "first", seq(s.first)),
        ("last", "last", seq(s.last)),
        ("records", "records", s.records.to_string()),
        ("used", "used_bytes", format_size(s.used_bytes)),
        ("file", "file_bytes", format_size(s.file_bytes)),
        (
            "allocated",
            "allocated_bytes",
            format_size(s.allocated_bytes),
        ),
    ];
    crate::table::print_stats(args.json, &s, &rows)
}
