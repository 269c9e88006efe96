//! `kv-peers`: the key-value workload of the `mmkit::store::Kv` issue run against LMDB
//! (heed), redb, SQLite (rusqlite, WAL) and the `LogHashToy` baseline over
//! `mmkit::store::Log`. See the README beside `Cargo.toml`.
//!
//! `mmkit::store::Kv` is `src/mmkit_kv.rs`, the first store in [`STORES`].

#![deny(unsafe_code)]

mod lmdb;
#[allow(unsafe_code)] // get_with: zero-copy reads, as LMDB's (see the module docs)
mod mmkit_kv;
mod redb_store;
mod sqlite;
mod store;
mod toy;
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;

use workload::{Plan, Sample};

/// Every store the harness knows, by its command-line name.
const STORES: &[&str] = &["mmkit", "lmdb", "redb", "sqlite", "toy"];

fn run_one(store: &str, root: &Path, plan: &Plan) -> Result<Sample> {
    match store {
        "mmkit" => workload::run::<mmkit_kv::MmkitKv>(root, store, plan),
        "lmdb" => workload::run::<lmdb::Lmdb>(root, store, plan),
        "redb" => workload::run::<redb_store::Redb>(root, store, plan),
        "sqlite" => workload::run::<sqlite::Sqlite>(root, store, plan),
        "toy" => workload::run::<toy::LogHashToy>(root, store, plan),
        other => bail!("unknown store {other:?} (known: {})", STORES.join(", ")),
    }
}

fn display_name(store: &str) -> &str {
    match store {
        "mmkit" => "mmkit Kv",
        "lmdb" => "LMDB (heed)",
        "redb" => "redb",
        "sqlite" => "SQLite WAL",
        "toy" => "LogHashToy (mmkit Log)",
        other => other,
    }
}

/// Compare key-value stores on the mmkit::store::Kv issue's workload.
#[derive(Debug, Parser)]
#[command(name = "kv-peers")]
struct Args {
    /// Keys stored (16 bytes each, random order).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// 100,000 keys and 500 sync puts (overrides --keys and --sync-puts).
    #[arg(long)]
    quick: bool,
    /// Value sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,256")]
    values: Vec<usize>,
    /// Stores to run, comma-separated: mmkit, lmdb, redb, sqlite, toy (the Log plus a
    /// HashMap, for reference).
    #[arg(long, value_delimiter = ',', default_value = "mmkit,lmdb,redb,sqlite")]
    stores: Vec<String>,
    /// Random gets timed (default: as many as keys).
    #[arg(long)]
    gets: Option<u64>,
    /// Puts per transaction in the batched phase, and gets per read transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Puts in the sync phase, one fdatasync'ed commit each.
    #[arg(long, default_value_t = 2000)]
    sync_puts: u64,
    /// Runs of everything; each figure is the median.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Where the stores' files go (default: a new directory under /tmp, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the keys and of the get order.
    #[arg(long, default_value_t = 0x6b76)]
    seed: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    store: String,
    value_len: usize,
    runs: Vec<Sample>,
    median: Sample,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    keys: u64,
    gets: u64,
    batch: usize,
    sync_puts: u64,
    rows: Vec<Row>,
    /// Runs that failed (a store that ran out of its size cap, say), one line each.
    errors: Vec<String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_sample(runs: &[Sample]) -> Sample {
    let f = |g: fn(&Sample) -> f64| median(runs.iter().map(g).collect());
    let u = |g: fn(&Sample) -> u64| median(runs.iter().map(|s| g(s) as f64).collect()) as u64;
    let o = |g: fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(g).collect();
        (!v.is_empty()).then(|| median(v))
    };
    Sample {
        put_nosync_1: f(|s| s.put_nosync_1),
        put_nosync_batch: f(|s| s.put_nosync_batch),
        put_sync_1: f(|s| s.put_sync_1),
        get: f(|s| s.get),
        open_s: f(|s| s.open_s),
        disk_full: u(|s| s.disk_full),
        len_full: u(|s| s.len_full),
        disk_deleted: u(|s| s.disk_deleted),
        len_deleted: u(|s| s.len_deleted),
        disk_compacted: o(|s| s.disk_compacted.map(|b| b as f64)).map(|b| b as u64),
        len_compacted: o(|s| s.len_compacted.map(|b| b as f64)).map(|b| b as u64),
        compact_s: o(|s| s.compact_s),
    }
}

fn machine(dir: &Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    // The file system of the longest mount point that holds `dir`.
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let fs = std::fs::read_to_string("/proc/mounts")
        .ok()
        .and_then(|m| {
            m.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (_, at, kind) = (f.next()?, f.next()?, f.next()?);
                    dir.starts_with(at).then(|| (at.len(), kind.to_owned()))
                })
                .max()
                .map(|(_, k)| k)
        })
        .unwrap_or_else(|| "?".into());
    format!(
        "{cpus} CPU {cpu}, Linux {kernel}, {fs} at {}",
        dir.display()
    )
}

fn free_bytes(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir).with_context(|| format!("statvfs {}", dir.display()))?;
    Ok(st.f_bavail * st.f_frsize)
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn table(r: &Report) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "store",
        "value",
        "put/s no-sync 1/txn",
        &format!("put/s no-sync {}/txn", r.batch),
        "put/s sync 1/txn",
        "get/s",
        "open",
        "size full",
        "after 50% del",
        "compacted",
    ]);
    for row in &r.rows {
        let m = &row.median;
        let cells = vec![
            Cell::new(display_name(&row.store)),
            Cell::new(format!("{} B", row.value_len)),
            Cell::new(rate(m.put_nosync_1)),
            Cell::new(rate(m.put_nosync_batch)),
            Cell::new(rate(m.put_sync_1)),
            Cell::new(rate(m.get)),
            Cell::new(format!("{:.1} ms", m.open_s * 1e3)),
            Cell::new(mib(m.disk_full)),
            Cell::new(mib(m.disk_deleted)),
            Cell::new(m.disk_compacted.map_or("n/a".into(), mib)),
        ];
        t.add_row(cells.into_iter().enumerate().map(|(i, c)| {
            if i >= 2 {
                c.set_alignment(CellAlignment::Right)
            } else {
                c
            }
        }));
    }
    t
}

fn main() -> Result<()> {
    let mut a = Args::parse();
    if a.quick {
        a.keys = 100_000;
        a.sync_puts = 500;
    }
    if a.keys < 2 || a.runs == 0 || a.batch == 0 {
        bail!("--keys must be at least 2, --runs and --batch at least 1");
    }
    for s in &a.stores {
        if !STORES.contains(&s.as_str()) {
            bail!("unknown store {s:?} (known: {})", STORES.join(", "));
        }
    }
    let gets = a.gets.unwrap_or(a.keys);
    let (_tmp, root) = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("kv-peers-")
                .tempdir_in("/tmp")?;
            let p = t.path().to_owned();
            (Some(t), p)
        }
    };
    // The largest phase holds one store's files: the raw data a few times over at most.
    let max_value = a.values.iter().copied().max().unwrap_or(0) as u64;
    let need = a.keys * (16 + max_value + 64) * 4;
    let free = free_bytes(&root)?;
    if free < need {
        bail!(
            "{} has {} free; the run needs about {} (fewer --keys, or --dir elsewhere)",
            root.display(),
            mib(free),
            mib(need)
        );
    }
    let mut report = Report {
        machine: machine(&root),
        keys: a.keys,
        gets,
        batch: a.batch,
        sync_puts: a.sync_puts,
        rows: Vec::new(),
        errors: Vec::new(),
    };
    let mut errors = Vec::new();
    eprintln!("{}", report.machine);
    for &value_len in &a.values {
        for store in &a.stores {
            let mut runs = Vec::new();
            for run in 0..a.runs {
                eprint!(
                    "{} {value_len} B run {}/{} ... ",
                    display_name(store),
                    run + 1,
                    a.runs
                );
                let _ = std::io::stderr().flush();
                let plan = Plan {
                    keys: a.keys,
                    value_len,
                    gets,
                    batch: a.batch,
                    sync_puts: a.sync_puts,
                    seed: a.seed.wrapping_add(run as u64),
                };
                let start = std::time::Instant::now();
                match run_one(store, &root, &plan) {
                    Ok(s) => {
                        eprintln!("{:.1?}", start.elapsed());
                        eprintln!("  {}", serde_json::to_string(&s)?);
                        runs.push(s);
                    }
                    Err(e) => {
                        eprintln!("failed: {e:#}");
                        errors.push(format!("{} {value_len} B: {e:#}", display_name(store)));
                    }
                }
            }
            if runs.is_empty() {
                continue;
            }
            report.rows.push(Row {
                store: store.clone(),
                value_len,
                median: median_sample(&runs),
                runs,
            });
        }
    }
    report.errors = errors;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.machine);
        println!(
            "{} keys of 16 B; {} gets; sync phase {} puts; medians of {} run(s)",
            report.keys, report.gets, report.sync_puts, a.runs
        );
        println!("{}", table(&report));
        for e in &report.errors {
            println!("failed: {e}");
        }
    }
    Ok(())
}
