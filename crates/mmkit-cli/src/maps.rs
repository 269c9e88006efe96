//! `mmkit maps`: every mapping of a process with its memory, by kind (like `pmap -X`).
//! The reading and classifying is `mmkit::probe::maps`; this module sorts, filters and
//! presents.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::{Row, Table};
use mmkit::probe::maps::{process_maps, AreaKind, MapEntry, MapTotals, Totals, Usage};

/// Arguments of `mmkit maps`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Kinds: file-shared (a file mapped MAP_SHARED), file-private (program text, libraries, \
copy-on-write data), anon-shared (shared anonymous memory, /dev/zero, System V, memfd), \
anon-private (malloc arenas, thread stacks), heap ([heap]), stack ([stack]), special \
([vdso], [vvar], [vsyscall]).

RSS is what is resident; PSS divides each shared page among the processes that map it, \
so the PSS of all processes adds up to the memory in use. Reading another user's process \
needs root (ptrace read access).

Examples:
  mmkit maps self
  mmkit maps 1234 --sort rss
  mmkit maps 1234 --kind anon-private --kind heap --totals-only
  mmkit maps 1234 --json")]
pub(crate) struct MapsArgs {
    /// The process: a pid, or `self` for mmkit itself.
    #[arg(value_name = "PID|self", value_parser = parse_target)]
    pid: Target,
    /// Order the rows: by address (ascending), or by a size column (largest first).
    #[arg(long, value_enum, default_value_t = SortKey::Addr, value_name = "COLUMN")]
    sort: SortKey,
    /// Show only mappings of this kind; repeat for several kinds. Totals cover the
    /// mappings shown.
    #[arg(long = "kind", value_parser = kind_arg(), value_name = "KIND")]
    kinds: Vec<AreaKind>,
    /// Print JSON instead of the table: {pid, mappings: [...], totals: {per_kind, all}},
    /// sizes in bytes.
    #[arg(long)]
    json: bool,
    /// Print only the totals (per kind and overall), not each mapping.
    #[arg(long)]
    totals_only: bool,
}

/// Which process to read.
#[derive(Debug, Clone, Copy)]
enum Target {
    Myself,
    Pid(i32),
}

fn parse_target(s: &str) -> Result<Target, String> {
    if s == "self" {
        return Ok(Target::Myself);
    }
    s.parse::<i32>()
        .map(Target::Pid)
        .map_err(|_| format!("expected a process id or `self`, not {s:?}"))
}

/// A column to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SortKey {
    /// Start address, lowest first.
    Addr,
    /// Virtual size.
    Size,
    /// Resident memory.
    Rss,
    /// Proportional set size.
    Pss,
    /// Dirty memory (shared + private).
    Dirty,
    /// Swapped-out memory.
    Swap,
}

/// `--kind`'s parser: the library's own names of the kinds ([`AreaKind::name`], parsed
/// back with its `FromStr`), listed as clap's possible values.
fn kind_arg() -> impl clap::builder::TypedValueParser<Value = AreaKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(AreaKind::ALL.map(AreaKind::name))
        .try_map(|name| name.parse::<AreaKind>())
}

#[derive(Debug, serde::Serialize)]
struct JsonOut<'a> {
    pid: i32,
    mappings: &'a [MapEntry],
    totals: &'a Totals,
}

pub(crate) fn run(args: &MapsArgs) -> anyhow::Result<ExitCode> {
    let pid = match args.pid {
        Target::Myself => None,
        Target::Pid(p) => Some(p),
    };
    let maps = match process_maps(pid) {
        Ok(m) => m,
        Err(e) => {
            // One line (two with a hint), naming the process.
            crate::report(&format!("maps: {e}"));
            return Ok(ExitCode::from(1));
        }
    };
    let wanted = &args.kinds;
    let mut rows: Vec<&MapEntry> = maps
        .mappings
        .iter()
        .filter(|e| wanted.is_empty() || wanted.contains(&e.kind))
        .collect();
    sort_rows(&mut rows, args.sort);
    let totals = Totals::of(rows.iter().copied());

    let mut out = std::io::stdout().lock();
    if args.json {
        let mappings: Vec<MapEntry> = if args.totals_only {
            Vec::new()
        } else {
            rows.iter().map(|&e| e.clone()).collect()
        };
        let json = JsonOut {
            pid: maps.pid,
            mappings: &mappings,
            totals: &totals,
        };
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "pid {}: {} mappings{}; sizes in KiB",
        maps.pid,
        rows.len(),
        if wanted.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = wanted.iter().map(|k| k.name()).collect();
            format!(" of kind {}", names.join(", "))
        }
    )?;
    for line in table(&rows, &totals, args.totals_only).lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn sort_rows(rows: &mut [&MapEntry], key: SortKey) {
    let size = |e: &MapEntry| match key {
        SortKey::Addr => 0,
        SortKey::Size => e.usage.size,
        SortKey::Rss => e.usage.rss,
        SortKey::Pss => e.usage.pss,
        SortKey::Dirty => e.dirty(),
        SortKey::Swap => e.usage.swap,
    };
    // Sizes largest first; ties (and `addr`) by address.
    rows.sort_by(|a, b| size(b).cmp(&size(a)).then(a.start.cmp(&b.start)));
}

const HEADER: [&str; 15] = [
    "Address", "Perm", "Offset", "Kind", "Size", "RSS", "PSS", "Sh.Clean", "Sh.Dirty", "Pr.Clean",
    "Pr.Dirty", "Swap", "Locked", "AnonHuge", "Path",
];

/// The first size column; columns from here to the path are right-aligned numbers.
const FIRST_SIZE: usize = 4;

fn kib(bytes: u64) -> String {
    (bytes / 1024).to_string()
}

/// The size columns of a row, in KiB.
fn size_cells(u: &Usage) -> impl Iterator<Item = String> {
    u.columns().into_iter().map(kib)
}

fn entry_row(e: &MapEntry) -> Row {
    let mut cells = vec![
        format!("{:012x}-{:012x}", e.start, e.end),
        e.perms.clone(),
        format!("{:08x}", e.offset),
        e.kind.name().to_string(),
    ];
    cells.extend(size_cells(&e.usage));
    cells.push(e.path.clone());
    Row::from(cells)
}

fn totals_row(label: &str, t: &MapTotals) -> Row {
    let mut cells = vec![
        "total".to_string(),
        String::new(),
        String::new(),
        label.to_string(),
    ];
    cells.extend(size_cells(&t.usage));
    cells.push(format!(
        "{} mapping{}",
        t.count,
        if t.count == 1 { "" } else { "s" }
    ));
    Row::from(cells)
}

fn table(rows: &[&MapEntry], totals: &Totals, totals_only: bool) -> Table {
    let mut table = crate::table::plain_table(&HEADER);
    if !totals_only {
        for e in rows {
            table.add_row(entry_row(e));
        }
        table.add_row(Row::from(vec![String::new(); HEADER.len()]));
    }
    for kind in AreaKind::ALL {
        if let Some(t) = totals.per_kind.get(&kind) {
            table.add_row(totals_row(kind.name(), t));
        }
    }
    table.add_row(totals_row("all", &totals.all));
    crate::table::align_right(&mut table, FIRST_SIZE..FIRST_SIZE + 10);
    table
}
