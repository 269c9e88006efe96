//! `mmkit cat`: write files to stdout straight from their mappings.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mmkit cat`.
#[derive(Debug, clap::Args)]
pub(crate) struct CatArgs {
    /// Files to write out, in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Write each file; on a bad file, say so in one line and go on. Exits 0 when every file
/// was written, 1 otherwise (`main` maps an `Err` to 1 too).
pub(crate) fn run(args: &CatArgs) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut failed = 0;
    for path in &args.files {
        let result = mmkit::MapOptions::new()
            .map_path(path)
            .and_then(|map| map.write_to(0, map.len(), stdout.as_fd()));
        match result {
            Ok(_) => {}
            Err(e) if crate::is_epipe(e.errno()) => break, // the reader went away
            Err(e) => {
                crate::report(&format!("cat: {}", crate::first_line(&e.to_string())));
                failed += 1;
            }
        }
    }
    Ok(crate::code(failed == 0, 1))
}
