//! `mmkit cache`: page-cache residency of files and trees (like `vmtouch` and `fincore`),
//! and touch, evict, lock. The walking and measuring is `mmkit::probe::cache`; this
//! module presents.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::progress::Progress;
use mmkit::probe::cache::{
    Action, ByteRange, CacheOptions, CacheReport, FileEntry, LockedSet, Summary, Termination,
};
use mmkit::LockMode;

/// Arguments of `mmkit cache`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Resident pages come from mincore(2) on a read-only mapping of each file; dirty, writeback \
and recently evicted pages from cachestat(2) (Linux 6.5+, left out before). Directories \
are walked recursively, staying on one file system, not following symlinks; FIFOs, \
sockets and devices are skipped.

Examples:
  mmkit cache /var/lib/db
  mmkit cache -v big.file --range 0-64M
  mmkit cache --touch --include '*.idx' data/
  mmkit cache --evict big.file
  mmkit cache --lock --daemon hot.file     # hold until SIGTERM/SIGINT")]
pub(crate) struct CacheArgs {
    /// Files and directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Walk directories recursively (the default; accepted for vmtouch habits).
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Only files whose name or path below the root matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out files and directories matching GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Descend into other file systems mounted below a directory.
    #[arg(long)]
    cross_mounts: bool,
    /// Follow symbolic links.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Print each file with a residency bar ('#' mostly resident, '.' not).
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Load the pages into the page cache.
    #[arg(short = 't', long, conflicts_with_all = ["evict", "lock"])]
    touch: bool,
    /// Write back dirty pages and drop the pages from the page cache.
    #[arg(short = 'e', long, conflicts_with = "lock")]
    evict: bool,
    /// Lock the pages in memory (mmap + mlock); released on exit unless --daemon.
    #[arg(short = 'l', long)]
    lock: bool,
    /// With --lock: lock only pages resident now or touched later (mlock2 MLOCK_ONFAULT).
    #[arg(long, requires = "lock")]
    on_fault: bool,
    /// With --lock: keep running, holding the locks, until SIGTERM or SIGINT.
    #[arg(short = 'd', long, requires = "lock")]
    daemon: bool,
    /// Only this byte range of each file: A-B, A- or -B, with K/M/G suffixes.
    // Parsed in `run`, so a bad range is one line like every other error; hyphen values
    // let `-B` through.
    #[arg(short = 'p', long, value_name = "A-B", allow_hyphen_values = true)]
    range: Option<String>,
    /// Print JSON: {action, summary, files, errors}; sizes in bytes, counts in pages.
    #[arg(long)]
    json: bool,
}

/// The arguments resolved once: the action the flags choose, and the library's options
/// (the range parsed, the lock mode chosen).
fn resolve(args: &CacheArgs) -> Result<(Action, CacheOptions), String> {
    let range = args
        .range
        .as_deref()
        .map(str::parse::<ByteRange>)
        .transpose()
        .map_err(|e| e.to_string())?;
    let action = match (args.touch, args.evict, args.lock) {
        (true, _, _) => Action::Touch,
        (_, true, _) => Action::Evict,
        (_, _, true) => Action::Lock,
        _ => Action::Query,
    };
    let mut opts = CacheOptions::new();
    opts.follow(args.follow)
        .cross_mounts(args.cross_mounts)
        .range(range)
        .keep_pages(args.verbose)
        .lock_mode(if args.on_fault {
            LockMode::OnFault
        } else {
            LockMode::Now
        });
    for g in &args.include {
        opts.include(g);
    }
    for g in &args.exclude {
        opts.exclude(g);
    }
    Ok((action, opts))
}

pub(crate) fn run(args: &CacheArgs) -> anyhow::Result<ExitCode> {
    let (action, opts) = match resolve(args) {
        Ok(resolved) => resolved,
        Err(e) => {
            crate::report(&format!("cache: {e}"));
            return Ok(ExitCode::from(2));
        }
    };
    // Block SIGTERM/SIGINT before anything else, so a signal sent as soon as the
    // "holding" line shows is waited for, not fatal.
    let term = if args.daemon {
        Some(Termination::block()?)
    } else {
        None
    };
    let progress = Progress::spinner();
    let start = Instant::now();
    let (report, locked) = opts.run(&args.paths, action, &mut |s: &Summary| {
        if s.files % 512 == 0 {
            progress.message(format!(
                "{} files, {} directories, {}/{} pages resident",
                s.files, s.directories, s.resident, s.pages
            ));
        }
    });
    drop(progress);
    let elapsed = start.elapsed().as_secs_f64();
    print_report(args, action, &report, elapsed)?;
    let code = crate::code(report.errors.is_empty(), 1);
    match term {
        Some(term) => hold(term, locked, code),
        None => Ok(code),
    }
}

/// The report on stdout (JSON or text), then each error in one line on stderr.
fn print_report(
    args: &CacheArgs,
    action: Action,
    report: &CacheReport,
    elapsed: f64,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let v = serde_json::json!({
            "action": format!("{action:?}").to_lowercase(),
            "summary": report.summary,
            "files": report.files,
            "errors": report.errors,
        });
        writeln!(out, "{v}")?;
    } else {
        print_text(&mut out, args, action, report, elapsed)?;
    }
    out.flush()?;
    drop(out);
    for e in &report.errors {
        let text = e.error.to_string();
        if e.path.as_os_str().is_empty() {
            crate::report(&format!("cache: {text}"));
        } else {
            crate::report(&format!("cache: {}: {text}", e.path.display()));
        }
    }
    Ok(())
}

/// With `--daemon`: hold the locked pages until SIGTERM or SIGINT, then exit with `code`.
fn hold(term: Termination, locked: LockedSet, code: ExitCode) -> anyhow::Result<ExitCode> {
    if locked.is_empty() {
        crate::report("cache: nothing was locked; not holding");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "locked {} pages of {} files; holding until signalled",
        locked.pages(),
        locked.files()
    );
    term.wait()?;
    drop(locked);
    Ok(code)
}

fn print_text(
    out: &mut impl Write,
    args: &CacheArgs,
    action: Action,
    report: &CacheReport,
    elapsed: f64,
) -> std::io::Result<()> {
    let s = &report.summary;
    if s.files == 0 && !report.errors.is_empty() {
        return Ok(()); // nothing was measured: the errors say why, and no totals mislead
    }
    if args.verbose {
        print_files(out, &report.files)?;
    }
    let ps = s.page_size;
    writeln!(out, "{:>16}: {}", "Files", s.files)?;
    writeln!(out, "{:>16}: {}", "Directories", s.directories)?;
    let label = match action {
        Action::Touch => Some("Touched Pages"),
        Action::Evict => Some("Evicted Pages"),
        Action::Lock => Some("Locked Pages"),
        _ => None,
    };
    if let Some(label) = label {
        writeln!(
            out,
            "{label:>16}: {} ({})",
            s.acted,
            human(s.acted.saturating_mul(ps))
        )?;
    }
    // As vmtouch: no percentage of no pages.
    let share = s
        .percent()
        .map(|p| format!("  {}%", percent(p)))
        .unwrap_or_default();
    writeln!(
        out,
        "{:>16}: {}/{}  {}/{}{share}",
        "Resident Pages",
        s.resident,
        s.pages,
        human(s.resident_bytes()),
        human(s.pages.saturating_mul(ps)),
    )?;
    if let (Some(d), Some(w), Some(e)) = (s.dirty, s.writeback, s.evicted) {
        writeln!(
            out,
            "{:>16}: dirty {d}, writeback {w}, recently evicted {e}",
            "Cachestat Pages"
        )?;
    }
    writeln!(out, "{:>16}: {elapsed:.6} seconds", "Elapsed")
}

/// With `--verbose`: one line a file, its resident pages drawn as a bar.
fn print_files(out: &mut impl Write, files: &[FileEntry]) -> std::io::Result<()> {
    for f in files {
        let bar = f.bar(40);
        writeln!(
            out,
            "[{bar:<40}] {:>8}/{:<8} {}",
            f.resident,
            f.pages,
            f.path.display()
        )?;
    }
    if !files.is_empty() {
        writeln!(out)?;
    }
    Ok(())
}

/// Bytes as vmtouch shows them: 0, 512, 20K, 1.5M, 2G.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || (v - v.round()).abs() < 0.05 {
        format!("{:.0}{}", v, UNITS[u])
    } else {
        format!("{:.1}{}", v, UNITS[u])
    }
}

/// A percentage as vmtouch prints it (`%.3g`): 100, 50, 33.3, 0.244.
fn percent(p: f64) -> String {
    if p == 0.0 || p >= 100.0 || p.fract() == 0.0 {
        return format!("{p:.0}");
    }
    let digits = (2 - p.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{p:.digits$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
