//! `mmkit cat`: write files to stdout without copying them through this process where the
//! kernel can help.
//!
//! Into a pipe, a socket or a file, each regular file goes through [`mmkit::copy`]
//! (`sendfile`, `splice` or `copy_file_range`, falling back to a mapping and `write`); to
//! anything else (a terminal, `/dev/null`), and for devices, straight from a mapping with
//! `write(2)`. A file truncated meanwhile is reported in one line, never a SIGBUS.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mmkit::copy::{CopyOptions, Destination};

/// Arguments of `mmkit cat`.
#[derive(Debug, clap::Args)]
pub(crate) struct CatArgs {
    /// Files to write out, in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Say on stderr how each file was written (the method and the bytes).
    #[arg(short, long)]
    verbose: bool,
}

/// Why one file was not written whole.
enum Failed {
    /// The library's error.
    Error(mmkit::Error),
    /// The file ended early: it was truncated while it was written out.
    Short(String),
}

impl From<mmkit::Error> for Failed {
    fn from(e: mmkit::Error) -> Failed {
        Failed::Error(e)
    }
}

/// Write each file; on a bad file, say so in one line and go on. Exits 0 when every file
/// was written, 1 otherwise (`main` maps an `Err` to 1 too).
pub(crate) fn run(args: &CatArgs) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let out = stdout.as_fd();
    let zero_copy = matches!(
        Destination::of(out),
        Ok(Destination::Pipe | Destination::Socket | Destination::File | Destination::AppendFile)
    );
    let mut failed = 0;
    for path in &args.files {
        let result = if zero_copy {
            copy_file(path, out, args.verbose)
        } else {
            map_file(path, out, args.verbose)
        };
        match result {
            Ok(()) => {}
            Err(Failed::Error(e)) if crate::is_epipe(e.errno()) => break, // the reader went away
            Err(Failed::Error(e)) => {
                crate::args::report_error("cat", e);
                failed += 1;
            }
            Err(Failed::Short(line)) => {
                crate::report(&format!("cat: {line}"));
                failed += 1;
            }
        }
    }
    Ok(crate::code(failed == 0, 1))
}

/// A regular file through `mmkit::copy`; a device through its mapping.
fn copy_file(path: &Path, out: BorrowedFd<'_>, verbose: bool) -> Result<(), Failed> {
    let file = mmkit::copy::open(path)?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return map_file(path, out, verbose);
    }
    let report = CopyOptions::new().path(path).copy(&file, out)?;
    if verbose {
        let refused: Vec<String> = report
            .refused
            .iter()
            .map(|r| format!("{} refused", r.method.name()))
            .collect();
        crate::report(&format!(
            "cat: {}: {} bytes by {}{}",
            path.display(),
            report.bytes,
            report.method.name(),
            if refused.is_empty() {
                String::new()
            } else {
                format!(" ({})", refused.join(", "))
            }
        ));
    }
    if report.truncated {
        return Err(Failed::Short(format!(
            "{}: the file was truncated while it was written out ({} of {} bytes written)",
            path.display(),
            report.bytes,
            report.requested.unwrap_or(report.bytes)
        )));
    }
    Ok(())
}

/// The file's mapping, written out with `write(2)` from its pages.
fn map_file(path: &Path, out: BorrowedFd<'_>, verbose: bool) -> Result<(), Failed> {
    let map = mmkit::MapOptions::new().map_path(path)?;
    let written = map.write_to(0, map.len(), out)?;
    if verbose {
        crate::report(&format!(
            "cat: {}: {written} bytes by write from the mapping",
            path.display()
        ));
    }
    Ok(())
}
