//! `mmkit log cat` and `mmkit log tail`: records to stdout, raw or as JSON lines, and
//! following a writer.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mmkit::probe::cache::Termination;
use mmkit::store::{Entry, ReadOnlyLog, Seq};
use mmkit::ErrorKind;

use super::{log_error, open_reader, seq_arg};

/// How long a follower waits for a record before it looks for a signal again.
const POLL: Duration = Duration::from_millis(200);

/// Arguments of `mmkit log cat`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
JSON lines: {\"seq\": n, \"len\": bytes, \"encoding\": \"utf8\" or \"hex\", \"data\": ...}: data \
is the record as a string when it is valid UTF-8 (encoding \"utf8\"), else its bytes in \
lowercase hex, two digits a byte (encoding \"hex\").")]
pub(crate) struct CatArgs {
    /// The log.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Start at record SEQ (records are numbered from 1; an older number starts at the
    /// first record held, a newer one prints nothing).
    #[arg(long, value_name = "SEQ", value_parser = seq_arg)]
    from: Option<Seq>,
    /// Print JSON lines (see below) instead of the raw records.
    #[arg(long)]
    json: bool,
}

/// Arguments of `mmkit log tail`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With -f, records print as they commit, from any writer process: the follower sleeps on a \
futex in the log's shared header and the writer wakes it (a reader that may not write the \
file cannot register there, and polls every millisecond instead). SIGINT or SIGTERM ends \
it with exit 0, within a fifth of a second.

JSON lines as in `mmkit log cat --help`.")]
pub(crate) struct TailArgs {
    /// The log.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Follow: after the last records, print new ones as they are appended, until
    /// SIGINT or SIGTERM.
    #[arg(short = 'f', long)]
    follow: bool,
    /// How many of the last records to print first (0 for none: with -f, only new ones).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
    lines: u64,
    /// Start at record SEQ instead of the last N.
    #[arg(long, value_name = "SEQ", value_parser = seq_arg, conflicts_with = "lines")]
    from: Option<Seq>,
    /// Print JSON lines, as `mmkit log cat --json`.
    #[arg(long)]
    json: bool,
}

pub(crate) fn cat(args: &CatArgs) -> anyhow::Result<ExitCode> {
    let log = open_reader("cat", &args.file)?;
    let mut out = Printer::new(args.json);
    for entry in log.iter_from(args.from.unwrap_or(0)) {
        match entry.and_then(|e| out.record(&e)) {
            Ok(written) => written?,
            Err(e) => return out.failed("cat", &e),
        }
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn tail(args: &TailArgs) -> anyhow::Result<ExitCode> {
    // Block the signals first, so one sent as soon as the tail runs ends it cleanly.
    let stop = if args.follow {
        Some(stop_on_signal()?)
    } else {
        None
    };
    let log = open_reader("tail", &args.file)?;
    let start = match args.from {
        Some(seq) => seq,
        None => start_of_last(&log, args.lines)?,
    };
    let mut out = Printer::new(args.json);
    let Some(stop) = stop else {
        for entry in log.iter_from(start) {
            match entry.and_then(|e| out.record(&e)) {
                Ok(written) => written?,
                Err(e) => return out.failed("tail", &e),
            }
        }
        out.finish()?;
        return Ok(ExitCode::SUCCESS);
    };
    let mut tail = log.tail(start);
    let mut unflushed = false;
    while !stop.load(Ordering::Relaxed) {
        // Print what is there without waiting; flush when nothing more is.
        let wait = if unflushed { Duration::ZERO } else { POLL };
        match tail.next_timeout(wait) {
            Ok(Some(entry)) => {
                match out.record(&entry) {
                    Ok(written) => written?,
                    Err(e) => return out.failed("tail", &e),
                }
                unflushed = true;
            }
            Ok(None) => {
                if unflushed {
                    out.flush()?;
                    unflushed = false;
                }
            }
            Err(e) => return out.failed("tail", &e),
        }
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// The number of the first of the last `n` records (0, from the start, when the log is
/// empty: every record to come is new).
fn start_of_last(log: &ReadOnlyLog, n: u64) -> anyhow::Result<Seq> {
    let last = log.last().map_err(|e| log_error("tail", &e))?;
    Ok(match last {
        None => 0,
        Some(last) => (last + 1).saturating_sub(n),
    })
}

/// A flag set when SIGINT or SIGTERM arrives: the signals are blocked in this thread (and
/// every thread started after), and a thread waits for them.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let term = Termination::block().map_err(|e| log_error("tail", &e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = term.wait();
        flag.store(true, Ordering::Relaxed);
    });
    Ok(stop)
}

/// Writes records to stdout, raw or as JSON lines.
struct Printer {
    out: BufWriter<std::io::StdoutLock<'static>>,
    json: bool,
    buf: Vec<u8>,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
            json,
            buf: Vec::new(),
        }
    }

    /// Read `entry` (its checksum verified) and write it: the outer `Err` is the log's,
    /// the inner one the write's.
    fn record(&mut self, entry: &Entry<'_>) -> mmkit::Result<std::io::Result<()>> {
        entry.read_into(&mut self.buf)?;
        Ok(if self.json {
            let (encoding, data) = match std::str::from_utf8(&self.buf) {
                Ok(text) => ("utf8", text.to_string()),
                Err(_) => ("hex", hex(&self.buf)),
            };
            let line = JsonRecord {
                seq: entry.seq(),
                len: self.buf.len(),
                encoding,
                data,
            };
            serde_json::to_writer(&mut self.out, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| self.out.write_all(b"\n"))
        } else {
            self.out
                .write_all(&self.buf)
                .and_then(|()| self.out.write_all(b"\n"))
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// The log failed after some records were printed: flush them, then report. A
    /// damaged record exits 1, any other error 2.
    fn failed(mut self, cmd: &str, e: &mmkit::Error) -> anyhow::Result<ExitCode> {
        self.out.flush()?;
        let err = log_error(cmd, e);
        if e.kind() == ErrorKind::Corrupt {
            crate::report(&format!("{err:#}"));
            Ok(ExitCode::from(1))
        } else {
            Err(err)
        }
    }
}

/// A record as a JSON line, in this order.
#[derive(serde::Serialize)]
struct JsonRecord {
    seq: Seq,
    len: usize,
    encoding: &'static str,
    data: String,
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
