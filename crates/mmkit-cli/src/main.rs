//! `mmkit`: the command-line face of the mmkit library.
//!
//! Parses arguments, calls the library, presents the result. Errors print in one or two
//! lines and exit non-zero; a closed stdout (`mmkit tour | head`) is not an error.

#![forbid(unsafe_code)]

mod tour;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mmkit: map files and memory, and see what the kernel does with them.
#[derive(Debug, Parser)]
#[command(name = "mmkit", version, about, long_about = None)]
#[command(
    after_help = "Start with `mmkit tour`: it checks what the Linux docs claim about mmap, live."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the claims the Linux docs make about mmap, live on this machine.
    ///
    /// Each claim is an experiment on files created in a temporary directory, measured
    /// with the kernel's own counters (smaps, getrusage, cachestat, mincore) and real child
    /// processes. The report gives the claim, what was measured, and a verdict: holds,
    /// differs, or skipped (with the reason). Exits 0 whenever the tour ran.
    Tour(tour::TourArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tour(args) => tour::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmkit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
