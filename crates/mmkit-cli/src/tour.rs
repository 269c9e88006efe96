//! `mmkit tour`: presents the library's tour as a readable report or as JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use mmkit_lab::tour::{Finding, Verdict};

#[derive(Debug, clap::Args)]
pub(crate) struct TourArgs {
    /// Print a JSON array of {id, claim, measured, verdict, reason} instead of the report.
    #[arg(long)]
    json: bool,
    /// Create the tour's files under DIR (default: $TMPDIR or /tmp). Use a disk file
    /// system: on tmpfs the page cache cannot be evicted and claim 2 is skipped.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Run the tour and print it; exits 0 whenever the tour ran, whatever the verdicts.
pub(crate) fn run(args: &TourArgs) -> anyhow::Result<ExitCode> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("mmkit-tour-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create the tour's directory in {}", parent.display()))?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "mmkit tour: {} claims about mmap, checked live",
            mmkit_lab::tour::claim_count()
        )?;
        writeln!(out, "{}; files in {}\n", machine(), dir.path().display())?;
    }
    let mut io_result = Ok(());
    let findings = mmkit_lab::tour::run(dir.path(), |f| {
        if !args.json && io_result.is_ok() {
            io_result = print_finding(&mut out, f);
        }
    })?;
    io_result?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&findings)?)?;
    } else {
        let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
        writeln!(
            out,
            "summary: {} hold, {} differ, {} skipped",
            count(Verdict::Holds),
            count(Verdict::Differs),
            count(Verdict::Skipped)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_finding(out: &mut impl Write, f: &Finding) -> std::io::Result<()> {
    let verdict = match f.verdict {
        Verdict::Holds => "holds",
        Verdict::Differs => "DIFFERS",
        Verdict::Skipped => "skipped",
    };
    let indent = " ".repeat(14);
    writeln!(
        out,
        "{:>4}  {verdict:<7} {}",
        f.id,
        wrap(&f.claim, 86, &indent)
    )?;
    if !f.measured.is_empty() {
        writeln!(
            out,
            "{indent}{}",
            wrap(&format!("measured: {}", f.measured), 86, &indent)
        )?;
    }
    if let Some(r) = &f.reason {
        writeln!(
            out,
            "{indent}{}",
            wrap(&format!("reason: {r}"), 86, &indent)
        )?;
    }
    writeln!(out)
}

/// Wrap `text` at `width` columns, continuing lines with `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("non-empty");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join(&format!("\n{indent}"))
}

fn machine() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Linux {} {}, {cpus} CPUs, {} KiB pages",
        release.trim(),
        std::env::consts::ARCH,
        mmkit::page_size() / 1024
    )
}
