//! `mmkit log append`: stdin into a log, a record per line or all of it as one.

use std::io::{BufRead, Read, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use mmkit::store::{Durability, Log, LogOptions, Recovery, Seq};
use mmkit::ErrorKind;

use super::log_error;

/// Lines per `append_batch`.
const BATCH_LINES: usize = 1000;
/// Bytes per `append_batch` (a batch closes once it holds this much).
const BATCH_BYTES: usize = 1 << 20;
/// The largest record the log takes (1 GiB less a frame and its padding).
const MAX_RECORD: u64 = (1 << 30) - 24;

/// Arguments of `mmkit log append`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {
    /// The log; created when missing.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Append the whole of stdin as one record (any bytes, newlines included), not a
    /// record per line.
    #[arg(long)]
    raw: bool,
    /// Durability::Sync: each batch is on storage (fdatasync) before the next is read,
    /// and the command returns. Without it (Durability::Process), a record is safe from
    /// the writer's crash once appended, but not from a power loss.
    #[arg(long)]
    sync: bool,
    /// What opening does with damage: strict refuses a log with damaged records followed
    /// by intact ones (a torn tail alone is always cut); truncate cuts at the first
    /// damage, dropping what follows; salvage skips each damaged range and keeps every
    /// intact record.
    #[arg(long, value_enum, default_value_t = RecoverArg::Strict, value_name = "POLICY")]
    recover: RecoverArg,
    /// Print {"first": seq, "last": seq, "records": n} of the records appended (first
    /// and last null when none were).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RecoverArg {
    Strict,
    Truncate,
    Salvage,
}

impl From<RecoverArg> for Recovery {
    fn from(r: RecoverArg) -> Recovery {
        match r {
            RecoverArg::Strict => Recovery::Strict,
            RecoverArg::Truncate => Recovery::Truncate,
            RecoverArg::Salvage => Recovery::Salvage,
        }
    }
}

pub(crate) fn run(args: &AppendArgs) -> anyhow::Result<ExitCode> {
    let log = LogOptions::new()
        .durability(if args.sync {
            Durability::Sync
        } else {
            Durability::Process
        })
        .recovery(args.recover.into())
        .create(true)
        .open(&args.file)
        .map_err(|e| {
            if e.kind() == ErrorKind::Busy {
                anyhow::anyhow!(
                    "log append: {}: another process is appending to this log (one writer at \
                     a time, and a second is refused, not queued); try again once it is done",
                    args.file.display()
                )
            } else {
                log_error("append", &e)
            }
        })?;
    let report = log.recovery_report();
    if !report.is_clean() {
        crate::report(&format!("log append: {}: {report}", args.file.display()));
    }
    let stdin = std::io::stdin().lock();
    let appended = if args.raw {
        append_raw(&log, stdin)?
    } else {
        append_lines(&log, stdin)?
    };
    if args.json {
        let none = appended.is_empty();
        let v = serde_json::json!({
            "first": (!none).then_some(appended.start),
            "last": (!none).then(|| appended.end - 1),
            "records": appended.end - appended.start,
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}")?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// All of `input` as one record.
fn append_raw(log: &Log, input: impl Read) -> anyhow::Result<Range<Seq>> {
    let mut record = Vec::new();
    input
        .take(MAX_RECORD + 1)
        .read_to_end(&mut record)
        .map_err(|e| anyhow::anyhow!("log append: reading stdin: {e}"))?;
    if record.len() as u64 > MAX_RECORD {
        anyhow::bail!(
            "log append: stdin is over the largest record ({MAX_RECORD} bytes); append it as lines, or split it"
        );
    }
    log.append_batch(&[&record])
        .map_err(|e| log_error("append", &e))
}

/// A record per line of `input`, streamed in batches. A last line without a newline is a
/// record too; an empty input appends nothing.
fn append_lines(log: &Log, mut input: impl BufRead) -> anyhow::Result<Range<Seq>> {
    let mut batch = Batch {
        buf: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
        ends: Vec::with_capacity(BATCH_LINES),
    };
    let mut appended: Option<Range<Seq>> = None;
    loop {
        let line_start = batch.buf.len();
        let n = input
            .read_until(b'\n', &mut batch.buf)
            .map_err(|e| anyhow::anyhow!("log append: reading stdin: {e}"))?;
        if n == 0 {
            break;
        }
        if batch.buf.last() == Some(&b'\n') {
            batch.buf.pop();
        }
        if (batch.buf.len() - line_start) as u64 > MAX_RECORD {
            anyhow::bail!(
                "log append: a line of stdin is over the largest record ({MAX_RECORD} bytes); split it"
            );
        }
        batch.ends.push(batch.buf.len());
        if batch.ends.len() >= BATCH_LINES || batch.buf.len() >= BATCH_BYTES {
            batch.append(log, &mut appended)?;
        }
    }
    batch.append(log, &mut appended)?;
    Ok(appended.unwrap_or(0..0))
}

/// Lines read and not yet appended: their bytes back to back, and where each ends.
struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Append the lines as one batch, widen `appended` to cover them, and empty it.
    fn append(&mut self, log: &Log, appended: &mut Option<Range<Seq>>) -> anyhow::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            records.push(&self.buf[start..end]);
            start = end;
        }
        let r = log
            .append_batch(&records)
            .map_err(|e| log_error("append", &e))?;
        let first = appended.as_ref().map_or(r.start, |a| a.start);
        *appended = Some(first..r.end);
        self.buf.clear();
        self.ends.clear();
        Ok(())
    }
}
