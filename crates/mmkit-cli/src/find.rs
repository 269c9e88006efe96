//! `mmkit find`: where a fixed string occurs in files, as `grep -b -o -F` (offsets),
//! `grep -n -F` (lines) or `grep -c -F` (counts) report it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mmkit find`.
#[derive(Debug, clap::Args)]
pub(crate) struct FindArgs {
    /// The fixed string to look for (not a regular expression).
    pattern: String,
    /// Files to search.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print each matching line with its number (LINE:TEXT), like `grep -n -F`.
    #[arg(short = 'n', long = "lines", conflicts_with = "count")]
    lines: bool,
    /// Print only the number of matching lines per file, like `grep -c -F`.
    #[arg(short = 'c', long)]
    count: bool,
    /// Print JSON lines: {"file", "offset"} per match (with -n also "line" and "text").
    #[arg(long)]
    json: bool,
}

/// Search each file; a bad file is reported in one line and the search goes on. Exits as
/// grep does: 0 when something matched, 1 when nothing did, 2 when any file failed (`main`
/// maps an `Err` from here to 2 as well).
pub(crate) fn run(args: &FindArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (mut failed, mut total) = (0, 0);
    let many = args.files.len() > 1;
    for path in &args.files {
        let name = path.display().to_string();
        let prefix = if many {
            format!("{name}:")
        } else {
            String::new()
        };
        // One pass in order: sequential read-ahead in 2 MiB folios on a cold file.
        let result = mmkit::MapOptions::new()
            .scan()
            .map_path(path)
            .map_err(std::io::Error::from)
            .and_then(|map| search(args, &map, &name, &prefix, &mut out));
        match result {
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit(failed, total)),
            Err(e) => {
                out.flush()?;
                crate::args::report_error("find", e);
                failed += 1;
            }
        }
    }
    out.flush()?;
    Ok(exit(failed, total))
}

/// grep's exit status: 2 on any failure, else 0 when something matched, 1 when not.
fn exit(failed: usize, found: u64) -> ExitCode {
    match (failed, found) {
        (0, 0) => ExitCode::from(1),
        (0, _) => ExitCode::SUCCESS,
        _ => ExitCode::from(2),
    }
}

fn search(
    args: &FindArgs,
    map: &mmkit::Mapping,
    name: &str,
    prefix: &str,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    let needle = args.pattern.as_bytes();
    if args.count {
        let n = mmkit::search::count_lines(map, needle)?;
        writeln!(out, "{prefix}{n}")?;
        return Ok(n);
    }
    if args.lines {
        return mmkit::search::lines(map, needle, |l| {
            if args.json {
                let text = String::from_utf8_lossy(l.text);
                let v = serde_json::json!({"file": name, "line": l.number, "offset": l.offset, "text": text});
                writeln!(out, "{v}")
            } else {
                write!(out, "{prefix}{}:", l.number)?;
                out.write_all(l.text)?;
                out.write_all(b"\n")
            }
        });
    }
    mmkit::search::offsets(map, needle, |off| {
        if args.json {
            writeln!(out, "{}", serde_json::json!({"file": name, "offset": off}))
        } else {
            writeln!(out, "{prefix}{off}")
        }
    })
}
