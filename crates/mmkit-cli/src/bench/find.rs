//! `mmkit bench find`: `mmkit find` against ripgrep and grep
//! ([`mmkit_lab::bench::run_find`] measures); progress, then a table or JSON.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::Table;
use mmkit::size::format_size;
use mmkit_lab::bench::{self, FindOptions, FindReport, FindResult};

/// Arguments of `mmkit bench find`.
#[derive(Debug, clap::Args)]
pub(crate) struct FindArgs {
    #[command(flatten)]
    sweep: super::Sweep,
    /// Options of `bench read` and `bench sink`, refused with a usage error that says so
    /// (a race of whole programs has no methods, sinks or cache states to choose).
    #[arg(long, hide = true, num_args = 1)]
    methods: Option<String>,
    #[arg(long, hide = true, num_args = 1)]
    to: Option<String>,
    #[arg(long, hide = true, num_args = 1)]
    cache: Option<String>,
}

impl FindArgs {
    /// Exit with a usage error (2) when an option of the other benches was given.
    fn refuse_others(&self) {
        let given = [
            ("--methods", self.methods.is_some()),
            ("--to", self.to.is_some()),
            ("--cache", self.cache.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
            super::usage_error(
                "find",
                format!(
                    "the argument '{flag}' cannot be used with `mmkit bench find`: it is an \
                     option of `mmkit bench read` and `mmkit bench sink`"
                ),
            )
        }
    }
}

fn options(args: &FindArgs) -> anyhow::Result<FindOptions> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own path to time it: {e}"))?;
    let mut o = FindOptions::new(exe);
    if args.sweep.quick {
        o.size = 256 << 20;
    }
    if let Some(&size) = args.sweep.sizes.first() {
        o.size = size;
    }
    if let Some(runs) = args.sweep.runs {
        o.runs = runs;
    }
    o.dir = args.sweep.dir.clone();
    Ok(o)
}

pub(super) fn run(args: &FindArgs) -> anyhow::Result<ExitCode> {
    args.refuse_others();
    let options = options(args)?;
    let Some(report) = super::with_progress(|p| bench::run_find(&options, p)) else {
        return Ok(ExitCode::from(1));
    };
    super::emit(args.sweep.json, &report, |out| {
        let m = &report.machine;
        writeln!(
            out,
            "machine: {} CPUs, {}, Linux {}; warm text of {}: {} lines hold {:?} ({} matches); \
         median of {} runs",
            m.cpus,
            m.cpu_model,
            m.kernel,
            format_size(report.size),
            report.lines,
            report.needle,
            report.matches,
            options.runs,
        )?;
        writeln!(out, "{}", table(&report))?;
        writeln!(
            out,
            "vs ripgrep: ripgrep's median time over the tool's (above 1 = faster); user and sys: \
         the process's CPU seconds (getrusage of the child)"
        )?;
        Ok(())
    })
}

fn ms(ns: Option<f64>) -> String {
    ns.map_or(String::new(), |ns| format!("{:.1} ms", ns / 1e6))
}

fn row(r: &FindResult) -> Vec<String> {
    let mut row = vec![r.mode.to_string(), r.tool.to_string(), r.command.clone()];
    if let Some(why) = &r.skipped {
        row.push(format!("skipped: {why}"));
        return row;
    }
    let secs = |s: Option<f64>| s.map_or(String::new(), |s| format!("{s:.3}"));
    row.extend([
        ms(r.median_ns),
        format!("{} – {}", ms(r.min_ns), ms(r.max_ns)),
        secs(r.user_s),
        secs(r.sys_s),
        r.vs_ripgrep.map_or("-".into(), |x| format!("{x:.2}x")),
    ]);
    row
}

fn table(report: &FindReport) -> Table {
    const HEADER: [&str; 8] = [
        "mode",
        "tool",
        "command",
        "median",
        "min – max",
        "user s",
        "sys s",
        "vs ripgrep",
    ];
    let mut table = crate::table::plain_table(&HEADER);
    for r in &report.results {
        table.add_row(row(r));
    }
    crate::table::align_right(&mut table, [3, 4, 5, 6, 7]);
    table
}
