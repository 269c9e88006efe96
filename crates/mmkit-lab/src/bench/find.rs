//! `mmkit bench find`: `mmkit find` against ripgrep and GNU grep on a warm text file,
//! each a process of its own, side by side in one run.
//!
//! The text is generated: lines of 5 to 20 pseudo-random words, with the needle planted
//! about once every 53 KB (about 20,000 times a GiB). Two modes are timed, counting the
//! lines that match (`mmkit find -c`, `rg -F -c`, `grep -F -c`) and printing every
//! match's byte offset (`mmkit find`, `rg -F -b -o`, `grep -F -b -o`). Before timing,
//! every tool runs once with its output read back: their counts, and their offsets, must
//! agree, or the bench fails. Then the tools take turns in each run, output to a file
//! (not `/dev/null`, where GNU grep stops at the first match); each run's wall time and the child's user and system CPU time
//! (`getrusage(RUSAGE_CHILDREN)` across its `wait`) are kept, and the medians reported
//! with the ratio of ripgrep's median time over the tool's (above 1: faster than
//! ripgrep). A peer not installed is a row that says so.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::report::Machine;
use super::runner::{check_count, check_free_space, Scratch};
use super::{Progress, MAX_RUNS};
use crate::bench::cpu_time;
use mmkit::helpers::median;
use mmkit::helpers::XorShift;
use mmkit::lab_seam::ErrorExt;
use mmkit::probe::CpuOf as Who;
use mmkit::{Error, ErrorKind, Op, Result};

/// The needle the generated text holds.
pub const NEEDLE: &str = "NEEDLE-mmkit";

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindOptions {
    /// The size of the generated text, in bytes.
    pub size: u64,
    /// Timed runs (the median is reported).
    pub runs: usize,
    /// Where to generate the text (a fresh subdirectory, removed afterwards); default
    /// the system temporary directory.
    pub dir: Option<PathBuf>,
    /// The `mmkit` executable to time (the CLI passes its own path).
    pub mmkit: PathBuf,
}

impl FindOptions {
    /// 1 GiB, 5 runs, timing `mmkit` at `mmkit`.
    pub fn new(mmkit: PathBuf) -> FindOptions {
        FindOptions {
            size: 1 << 30,
            runs: 5,
            dir: None,
            mmkit,
        }
    }
}

/// One tool in one mode.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FindResult {
    /// `count` or `offsets`.
    pub mode: &'static str,
    /// `mmkit`, `ripgrep` or `grep`.
    pub tool: &'static str,
    /// The command line, the file's path shortened to `FILE`.
    pub command: String,
    /// Why it was not measured (`rg not installed`); `None` when it was.
    pub skipped: Option<String>,
    /// Median wall time of a run, in nanoseconds.
    pub median_ns: Option<f64>,
    /// Fastest run, in nanoseconds.
    pub min_ns: Option<f64>,
    /// Slowest run, in nanoseconds.
    pub max_ns: Option<f64>,
    /// Median user CPU seconds of the process.
    pub user_s: Option<f64>,
    /// Median system CPU seconds of the process.
    pub sys_s: Option<f64>,
    /// Ripgrep's median time over this tool's, same mode (above 1: faster).
    pub vs_ripgrep: Option<f64>,
    /// Each run's wall time in nanoseconds, in run order.
    pub run_ns: Vec<f64>,
}

/// A whole find bench run.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FindReport {
    /// Where it ran.
    pub machine: Machine,
    /// The text's size in bytes.
    pub size: u64,
    /// The needle searched for.
    pub needle: &'static str,
    /// How many lines hold it (every tool agreed).
    pub lines: u64,
    /// How many times it occurs (every tool agreed).
    pub matches: u64,
    /// One entry per mode × tool: count then offsets; mmkit, ripgrep, grep.
    pub results: Vec<FindResult>,
}

/// A tool's arguments for one mode.
type Args = fn(&Tool) -> &'static [&'static str];

struct Tool {
    name: &'static str,
    program: PathBuf,
    count: &'static [&'static str],
    offsets: &'static [&'static str],
}

fn tools(mmkit: &Path) -> Vec<(Tool, Option<String>)> {
    let peer = |name: &'static str, exe: &str, count, offsets| {
        let found = find_on_path(exe);
        let why = found.is_none().then(|| format!("{exe} not installed"));
        let program = found.unwrap_or_else(|| PathBuf::from(exe));
        let tool = Tool {
            name,
            program,
            count,
            offsets,
        };
        (tool, why)
    };
    let own = Tool {
        name: "mmkit",
        program: mmkit.to_path_buf(),
        count: &["find", "-c"],
        offsets: &["find"],
    };
    vec![
        (own, None),
        peer("ripgrep", "rg", &["-F", "-c"], &["-F", "-b", "-o"]),
        peer("grep", "grep", &["-F", "-c"], &["-F", "-b", "-o"]),
    ]
}

/// The executable file `exe` in a directory of `$PATH`.
fn find_on_path(exe: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(exe))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn failed(what: String) -> Error {
    Error::new(Op::Read, ErrorKind::Unsupported).detail(what)
}

/// Run the find bench; `progress` is called after each mode.
///
/// # Errors
/// Bad options (no runs, a size under 1 MiB); no room for the text; a tool that fails
/// or disagrees with the others about what the text holds.
pub fn run_find(options: &FindOptions, progress: &mut dyn FnMut(&Progress)) -> Result<FindReport> {
    check_count("runs", options.runs, MAX_RUNS)?;
    if options.size < 1 << 20 {
        return Err(
            failed("a text under 1 MiB measures process start-up, not search".into())
                .hint("give a size of 1M or more"),
        );
    }
    let parent = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    check_free_space(&parent, options.size)?;
    let dir = parent.join(format!("mmkit-find-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(Op::Open, &e).with_path(Some(&dir)))?;
    let scratch = Scratch(dir);
    let path = scratch.0.join("text.txt");
    write_text(&path, options.size)?;
    warm(&path)?;
    let tools = tools(&options.mmkit);
    let (lines, matches) = agree(&tools, &path)?;
    let mut results = Vec::new();
    let modes: [(&'static str, Args); 2] = [("count", |t| t.count), ("offsets", |t| t.offsets)];
    for (i, (mode, args)) in modes.into_iter().enumerate() {
        let out = scratch.0.join("out.txt");
        let mut rows = race(&tools, mode, args, (&path, &out), options.runs)?;
        let rg = rows
            .iter()
            .find(|r| r.tool == "ripgrep")
            .and_then(|r| r.median_ns);
        for r in &mut rows {
            r.vs_ripgrep = rg.zip(r.median_ns).map(|(rg, me)| rg / me);
        }
        results.extend(rows);
        progress(&Progress {
            done: i + 1,
            total: 2,
            case: format!("{} {mode}", mmkit::size::format_size(options.size)),
        });
    }
    Ok(FindReport {
        machine: Machine::current(),
        size: options.size,
        needle: NEEDLE,
        lines,
        matches,
        results,
    })
}

/// Write `size` bytes of text: lines of words from a fixed vocabulary, the needle
/// planted about once every 53 KB.
fn write_text(path: &Path, size: u64) -> Result<()> {
    let io = |e: std::io::Error| Error::io(Op::Write, &e).with_path(Some(path));
    let mut rng = XorShift::new(0x5EED_F1ED);
    let words: Vec<String> = (0..5000)
        .map(|_| {
            let len = 2 + rng.next_u64() % 9;
            (0..len)
                .map(|_| (b'a' + (rng.next_u64() % 26) as u8) as char)
                .collect()
        })
        .collect();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
    let (mut written, mut next_needle) = (0u64, 0u64);
    while written < size {
        let mut line = String::new();
        for w in 0..5 + rng.next_u64() % 16 {
            if w > 0 {
                line.push(' ');
            }
            if written + line.len() as u64 >= next_needle {
                line.push_str(NEEDLE);
                next_needle += 40_000 + rng.next_u64() % 26_000;
            } else {
                line.push_str(&words[(rng.next_u64() % words.len() as u64) as usize]);
            }
        }
        line.push('\n');
        let take = (size - written).min(line.len() as u64) as usize;
        out.write_all(&line.as_bytes()[..take]).map_err(io)?;
        written += take as u64;
    }
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

/// Read the text once so every tool finds it in the page cache.
fn warm(path: &Path) -> Result<()> {
    let mut f = File::open(path).map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    std::io::copy(&mut f, &mut std::io::sink())
        .map(drop)
        .map_err(|e| Error::io(Op::Read, &e).with_path(Some(path)))
}

fn command(tool: &Tool, args: &[&str], path: &Path) -> Command {
    let mut cmd = Command::new(&tool.program);
    cmd.args(args).arg(NEEDLE).arg(path).stdin(Stdio::null());
    cmd
}

/// Run every installed tool once in each mode with its output read back: the line
/// counts must agree, and so must the offsets. Returns (lines, matches).
fn agree(tools: &[(Tool, Option<String>)], path: &Path) -> Result<(u64, u64)> {
    let mut counts = Vec::new();
    let mut offsets = Vec::new();
    for (tool, _) in tools.iter().filter(|(_, why)| why.is_none()) {
        let run = |args: &[&str]| -> Result<String> {
            let out = command(tool, args, path)
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| failed(format!("cannot run {}: {e}", tool.program.display())))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(failed(format!(
                    "{} failed ({}): {}",
                    tool.name,
                    out.status,
                    err.trim()
                )));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let count: u64 = run(tool.count)?
            .trim()
            .parse()
            .map_err(|_| failed(format!("{} -c printed no count", tool.name)))?;
        // `OFFSET` (mmkit) or `OFFSET:MATCH` (rg, grep), one a line.
        let found: Vec<u64> = run(tool.offsets)?
            .lines()
            .filter_map(|l| l.split(':').next()?.parse().ok())
            .collect();
        counts.push((tool.name, count));
        offsets.push((tool.name, found));
    }
    let (first, count) = counts[0];
    if let Some((other, n)) = counts.iter().find(|(_, n)| *n != count) {
        return Err(failed(format!("{first} counts {count} lines, {other} {n}")));
    }
    let (_, ref mine) = offsets[0];
    if let Some((other, theirs)) = offsets.iter().find(|(_, o)| o != mine) {
        return Err(failed(format!(
            "{first} finds {} offsets, {other} {} (or others)",
            mine.len(),
            theirs.len()
        )));
    }
    Ok((count, mine.len() as u64))
}

/// One run of `tool` with `argv` on `path`, output to the file `out`: its wall time in
/// nanoseconds, its user and system CPU seconds.
fn time_one(tool: &Tool, argv: &[&str], (path, out): (&Path, &Path)) -> Result<(f64, f64, f64)> {
    // A file, not /dev/null: GNU grep stops at the first match when its output is
    // /dev/null.
    let sink = File::create(out).map_err(|e| Error::io(Op::Open, &e).with_path(Some(out)))?;
    let (u0, s0) = cpu_time(Who::Children);
    let start = Instant::now();
    let status = command(tool, argv, path)
        .stdout(sink)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| failed(format!("cannot run {}: {e}", tool.program.display())))?;
    let wall = start.elapsed().as_nanos() as f64;
    let (u1, s1) = cpu_time(Who::Children);
    if !status.success() {
        return Err(failed(format!("{} failed ({status})", tool.name)));
    }
    Ok((wall, (u1 - u0).as_secs_f64(), (s1 - s0).as_secs_f64()))
}

/// The tools in turn, `runs` times, output to the file `out`.
fn race(
    tools: &[(Tool, Option<String>)],
    mode: &'static str,
    args: Args,
    (path, out): (&Path, &Path),
    runs: usize,
) -> Result<Vec<FindResult>> {
    let mut times = vec![(Vec::new(), Vec::new(), Vec::new()); tools.len()];
    for _ in 0..runs {
        for ((tool, why), (wall, user, sys)) in tools.iter().zip(&mut times) {
            if why.is_some() {
                continue;
            }
            let (w, u, s) = time_one(tool, args(tool), (path, out))?;
            wall.push(w);
            user.push(u);
            sys.push(s);
        }
    }
    let shown = |tool: &Tool| {
        let program = tool
            .program
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        format!("{program} {} {NEEDLE} FILE", args(tool).join(" "))
    };
    Ok(tools
        .iter()
        .zip(times)
        .map(|((tool, why), (mut wall, mut user, mut sys))| {
            let measured = why.is_none();
            let pick = |v: f64| measured.then_some(v);
            FindResult {
                mode,
                tool: tool.name,
                command: shown(tool),
                skipped: why.clone(),
                median_ns: pick(median(&mut wall.clone())),
                min_ns: pick(wall.iter().copied().fold(f64::INFINITY, f64::min)),
                max_ns: pick(wall.iter().copied().fold(0.0, f64::max)),
                user_s: pick(median(&mut user)),
                sys_s: pick(median(&mut sys)),
                vs_ripgrep: None,
                run_ns: std::mem::take(&mut wall),
            }
        })
        .collect())
}
