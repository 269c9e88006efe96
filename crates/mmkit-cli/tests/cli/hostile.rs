//! Hostile input against every subcommand: each numeric option at 0, 1, -1, the type's
//! maximum and past it; every kind of path (missing, directory, FIFO, socket, symlinks,
//! `/proc` and `/sys` files, devices, a file without permission, a file that shrinks and
//! grows during the call); segment names that are not names; files that are not logs or
//! key-value stores, and keys over the limit.
//!
//! Each case runs `mmkit` as a child under a time limit and asserts what the tool promises
//! for any input: no panic (exit 101 or "panicked at"), no signal, no hang, and when it
//! refuses, a one-line error (an optional `hint:` line, or clap's usage lines, may follow)
//! with a non-zero exit. Cases that may also succeed (a `1` is often valid) are marked so;
//! cases that must be refused are marked so. The counts print at the end.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common;

/// How long one case may run before it counts as a hang. Every case is a short run (the
/// benches get one run of a small file), but `cargo test` runs the four tests and other
/// test binaries' builds alongside on two cores, so the limit leaves room.
const LIMIT: Duration = Duration::from_secs(60);

/// What a case may end with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Must be refused: non-zero exit with a one-line error.
    Refused,
    /// Success, or a refusal as above.
    Either,
}

/// One run of `mmkit` with `args`.
struct Case {
    args: Vec<String>,
    expect: Expect,
    /// Run as user nobody (needs root).
    as_nobody: bool,
    stdin: Vec<u8>,
}

fn case(expect: Expect, args: &[&str]) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        expect,
        as_nobody: false,
        stdin: Vec::new(),
    }
}

/// What a run ended with.
struct Ran {
    status: ExitStatus,
    stderr: String,
    elapsed: Duration,
}

/// Run one case; `Err` says why it broke the contract.
fn run(c: &Case) -> Result<Ran, String> {
    let mut cmd = if c.as_nobody {
        common::mmkit_as_nobody()
    } else {
        common::mmkit()
    };
    let mut child = cmd
        .args(&c.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = c.stdin.clone();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let status = common::wait_or_kill(&mut child, LIMIT)
        .ok_or_else(|| format!("hung: still running after {LIMIT:?}"))?;
    let _ = feeder.join();
    let stderr = reader.join().unwrap_or_default();
    Ok(Ran {
        status,
        stderr,
        elapsed: start.elapsed(),
    })
}

/// Check a finished run against the contract.
fn judge(c: &Case, r: &Ran) -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = r.status.signal() {
        return Err(format!("killed by signal {sig}"));
    }
    if r.status.code() == Some(101) || r.stderr.contains("panicked at") {
        return Err("panicked".into());
    }
    let find = c.args.first().is_some_and(|a| a == "find");
    // find exits 1 when nothing matched (as grep): an answer, not an error.
    if find && r.status.code() == Some(1) && r.stderr.is_empty() && c.expect == Expect::Either {
        return Ok(());
    }
    if find && r.status.code() != Some(2) && !r.status.success() {
        return Err(format!("find failed with {:?}, not 2", r.status.code()));
    }
    if r.status.success() {
        return match c.expect {
            Expect::Either => Ok(()),
            Expect::Refused => Err("succeeded, but must be refused".into()),
        };
    }
    one_line_error(&r.stderr)
}

/// A refusal says why in one line: `mmkit: ...` or clap's `error: ...`, followed only
/// by an indented `hint:` line or clap's usage and help pointers.
fn one_line_error(stderr: &str) -> Result<(), String> {
    let mut lines = stderr.lines().filter(|l| !l.trim().is_empty());
    let Some(first) = lines.next() else {
        return Err("non-zero exit with nothing on stderr".into());
    };
    if !(first.starts_with("mmkit: ") || first.starts_with("error: ")) {
        return Err(format!("error line does not say who speaks: {first:?}"));
    }
    for rest in lines {
        let t = rest.trim_start();
        let allowed = ["hint:", "tip:", "Usage:", "For more information"];
        if !allowed.iter().any(|a| t.starts_with(a)) {
            return Err(format!("more than one error line: {rest:?}"));
        }
    }
    Ok(())
}

/// The numbers every numeric option is tried with; all but "1" must be refused or
/// clamped quickly, and "1" must work or be refused.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "16E",
    "99999999999G",
    "1.5",
    "abc",
    "",
];

/// Every (option, context) that takes a number, with the arguments that make the rest of
/// the run short. `{}` is the number, `{data}` a 64 KiB file, `{seg}` an existing segment,
/// `{name}` a free segment name, `{log}` a log of three records.
const NUMERIC_TEMPLATES: &[&str] = &[
    "page cat --readahead {} {data}",
    "page cat --budget {} {data}",
    "page cat --threads {} {data}",
    "page stats --readahead {} {data}",
    "page stats --budget {} {data}",
    "page stats --threads {} {data}",
    "page stats --pattern random --reads {} {data}",
    "page bench --runs 1 --size {}",
    "page bench --size 64K --runs {}",
    "page bench --size 64K --runs 1 --readahead {}",
    "page stats --timeout {} {url}",
    "page stats --retries {} {url}",
    "page cat --readahead {} {url}",
    "page bench --url {url} --runs {}",
    "page bench --url {url} --runs 1 --random-fraction {}",
    "page bench --url {url} --runs 1 --readahead {}",
    "cache --range {} {data}",
    "cache --range {}- {data}",
    "cache --range 0-{} {data}",
    "shm create {name} --size {}",
    "shm create {name} --size 4K --mode {}",
    "shm cat {seg} --offset {}",
    "shm cat {seg} --len {}",
    "shm write {seg} --offset {}",
    "shm write {seg} --grow --offset {}",
    "shm write {name} --create --offset {}",
    "bench {data} --runs {} --methods read --pattern seq --cache warm",
    "bench {data} --runs 1 --buffer {} --methods read,pread --cache warm",
    "bench {data} --runs 1 --random-reads {} --methods pread --pattern random --cache warm",
    "bench --sizes {} --runs 1 --methods read --cache warm",
    "shm bench --quick --bytes 64K --sizes {}",
    "shm bench --quick --bytes 64K --sizes 64 --rounds {}",
    "shm bench --quick --sizes 64 --bytes {}",
    "shm bench --quick --bytes 64K --sizes 64 --capacity {}",
    "maps {}",
    "log cat --from {} {log}",
    "log cat --json --from {} {log}",
    "log tail --from {} {log}",
    "log tail -n {} {log}",
];

/// The numbers `--from` takes: record numbers, 1 to u64's maximum. The rest (0, negative,
/// past u64, sizes, fractions, words) must be refused.
const RECORD_NUMBERS: &[&str] = &[
    "1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
];

fn numeric_cases(fx: &Fixture) -> Vec<Case> {
    let data = fx.path("data");
    let mut cases = Vec::new();
    for template in NUMERIC_TEMPLATES {
        // A 4 GiB file is a fair size for a benchmark that generates one: long work, but
        // not hostile (sizes past the free space are what must be refused at once).
        let generates = ["bench --sizes", "page bench --runs 1 --size"]
            .iter()
            .any(|t| template.starts_with(t));
        for n in NUMBERS {
            if generates && n.starts_with("429496729") {
                continue;
            }
            let from = template.contains("--from");
            let expect = if from && !RECORD_NUMBERS.contains(n) {
                Expect::Refused
            } else {
                Expect::Either
            };
            let mut c = case(expect, &[]);
            c.args = template
                .split_whitespace()
                .map(|a| {
                    a.replace("{}", n)
                        .replace("{url}", &format!("file://{}", data.display()))
                        .replace("{data}", data.to_str().unwrap())
                        .replace("{log}", fx.path("log").to_str().unwrap())
                        .replace("{name}", &fx.segment_name("new"))
                        .replace("{seg}", &fx.segment)
                })
                .collect();
            c.stdin = b"hostile".to_vec();
            cases.push(c);
        }
    }
    cases
}

/// Paths that are not ordinary readable files.
fn hostile_paths(fx: &Fixture) -> Vec<(PathBuf, Expect)> {
    let mut paths = vec![
        (fx.path("missing"), Expect::Refused),
        (fx.path("dir"), Expect::Refused),
        (fx.path("fifo"), Expect::Refused),
        (fx.path("socket"), Expect::Refused),
        (fx.path("dangling"), Expect::Refused),
        (fx.path("loop"), Expect::Refused),
        (fx.path("data/below-a-file"), Expect::Refused),
        (fx.path("link-to-data"), Expect::Either),
        (fx.path("empty"), Expect::Either),
        (fx.path("changing"), Expect::Either),
        (PathBuf::from("/proc/self/status"), Expect::Either),
        (PathBuf::from("/proc/self/mem"), Expect::Either),
        (PathBuf::from("/dev/zero"), Expect::Either),
        (PathBuf::from("/dev/null"), Expect::Either),
        (PathBuf::from("/dev/full"), Expect::Either),
    ];
    for sys in [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/notes",
    ] {
        if Path::new(sys).exists() {
            paths.push((PathBuf::from(sys), Expect::Either));
        }
    }
    paths
}

/// Every subcommand that takes a path, given `p` (and `p` as a `file://` URL).
fn path_commands(p: &str) -> Vec<Vec<String>> {
    let url = format!("file://{p}");
    let url = url.as_str();
    [
        vec!["cat", p],
        vec!["find", "x", p],
        vec!["find", "-n", "x", p],
        vec!["find", "-c", "--json", "x", p],
        vec!["cache", p],
        vec!["cache", "-v", "--touch", p],
        vec!["cache", "--evict", p],
        vec!["cache", "--lock", p],
        vec!["page", "cat", p],
        vec!["page", "cat", "--zstd", p],
        vec!["page", "stats", "--pattern", "random", "--reads", "10", p],
        vec!["page", "cat", url],
        common::random_stats("10", url).to_vec(),
        vec!["page", "bench", "--url", url, "--runs", "1"],
        vec![
            "bench",
            p,
            "--runs",
            "1",
            "--methods",
            "read,mmap",
            "--cache",
            "warm",
        ],
        vec!["page", "bench", "--size", "64K", "--runs", "1", "--dir", p],
        vec![
            "bench", "--quick", "--runs", "1", "--sizes", "4K", "--dir", p,
        ],
        vec!["tour", "--json", "--dir", p],
        vec!["log", "cat", p],
        vec!["log", "cat", "--json", "--from", "2", p],
        vec!["log", "tail", p],
        vec!["log", "check", p],
        vec!["log", "check", "--json", p],
        vec!["log", "stats", "--json", p],
        vec!["kv", "get", p, "k"],
        vec!["kv", "ls", "--values", p],
        vec!["kv", "stats", "--json", p],
        vec!["kv", "check", p],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect()
}

fn path_cases(fx: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    for (p, expect) in hostile_paths(fx) {
        let p = p.to_str().unwrap().to_string();
        for args in path_commands(&p) {
            // --dir takes a directory, and cache walks one: there the rest may be refused.
            let takes_dir = args.contains(&"--dir".to_string()) || args[0] == "cache";
            let expect =
                if takes_dir && Path::new(&p).is_dir() || args.contains(&"--dir".to_string()) {
                    Expect::Either
                } else {
                    expect
                };
            // A store sees a FIFO or a socket as an empty object: nothing to page in.
            let special = ["fifo", "socket"].iter().any(|n| p.ends_with(n));
            let expect = if special && args.iter().any(|a| a.starts_with("file://")) {
                Expect::Either
            } else {
                expect
            };
            // The tour is slow: only the paths it must refuse at once.
            if args[0] == "tour" && expect == Expect::Either {
                continue;
            }
            let mut c = case(expect, &[]);
            c.args = args;
            cases.push(c);
        }
    }
    cases
}

/// A file root owns with mode 0600, read by user nobody.
fn permission_cases(fx: &Fixture) -> Vec<Case> {
    let secret = fx.path("secret");
    let secret = secret.to_str().unwrap();
    let mut cases: Vec<Case> = path_commands(secret)
        .into_iter()
        .filter(|a| !a.contains(&"--dir".to_string()))
        .map(|args| {
            let mut c = case(Expect::Refused, &[]);
            c.args = args;
            c.as_nobody = true;
            c
        })
        .collect();
    let mut maps = case(Expect::Refused, &["maps", "1"]);
    maps.as_nobody = true;
    cases.push(maps);
    // A log root owns with mode 0644: user nobody reads it, but cannot append.
    let readonly = fx.path("readonly.log");
    let readonly = readonly.to_str().unwrap();
    for (expect, args) in [
        (Expect::Refused, vec!["log", "append", readonly]),
        (Expect::Refused, vec!["log", "append", "--raw", readonly]),
        (Expect::Refused, vec!["log", "append", secret]),
        (Expect::Either, vec!["log", "cat", readonly]),
        (Expect::Either, vec!["log", "tail", "-n", "1", readonly]),
        (Expect::Either, vec!["log", "check", readonly]),
    ] {
        let mut c = case(expect, &args);
        c.as_nobody = true;
        c.stdin = b"x\n".to_vec();
        cases.push(c);
    }
    // A store root owns with mode 0644 (in a directory only root may write): user nobody
    // cannot change it; reading it read-only works (kv.rs checks that).
    let store = fx.path("readonly.kv");
    let store = store.to_str().unwrap();
    for (expect, args) in [
        (Expect::Refused, vec!["kv", "set", store, "k", "nobody"]),
        (
            Expect::Refused,
            vec!["kv", "set", "--sync", store, "new", "-"],
        ),
        (Expect::Refused, vec!["kv", "del", store, "k"]),
        (Expect::Refused, vec!["kv", "compact", store]),
        (Expect::Refused, vec!["kv", "set", secret, "k", "v"]),
        (Expect::Either, vec!["kv", "get", store, "k"]),
        (Expect::Either, vec!["kv", "ls", store]),
        (Expect::Either, vec!["kv", "stats", store]),
        (Expect::Either, vec!["kv", "check", store]),
    ] {
        let mut c = case(expect, &args);
        c.as_nobody = true;
        c.stdin = b"x".to_vec();
        cases.push(c);
    }
    for args in [
        vec!["shm", "cat", fx.segment.as_str()],
        vec!["shm", "write", fx.segment.as_str()],
        vec!["shm", "rm", fx.segment.as_str()],
    ] {
        let mut c = case(Expect::Refused, &args);
        c.as_nobody = true;
        c.stdin = b"x".to_vec();
        cases.push(c);
    }
    cases
}

/// Segment names that are not names, for every `shm` subcommand that takes one.
fn name_cases(fx: &Fixture) -> Vec<Case> {
    let long = "n".repeat(300);
    let names = [
        "",
        "/",
        "//",
        "a/b",
        "/a/b",
        ".",
        "..",
        "/..",
        long.as_str(),
        fx.planted.as_str(),
    ];
    let mut cases = Vec::new();
    for name in names {
        for args in [
            vec!["shm", "create", name, "--size", "4K"],
            vec!["shm", "cat", name],
            vec!["shm", "write", name, "--create"],
            vec!["shm", "rm", name],
        ] {
            // Removing the planted link is how one gets rid of it (shm.rs checks
            // that), and would let the other cases create a real segment of that name.
            if name == fx.planted && args[1] == "rm" {
                continue;
            }
            let expect = Expect::Refused;
            let mut c = case(expect, &args);
            c.stdin = b"x".to_vec();
            cases.push(c);
        }
    }
    cases
}

/// Paths no store may be made of: a directory, a FIFO, a socket, a symlink loop, a plain
/// file and a path below it, a file of zeros, `/proc` and device files; and `more` of
/// the fixture's.
fn not_a_store(fx: &Fixture, more: &[&str]) -> Vec<PathBuf> {
    let mine = [
        "dir",
        "fifo",
        "socket",
        "loop",
        "data",
        "data/below-a-file",
        "zeros",
    ];
    let special = [
        "/proc/self/status",
        "/proc/self/mem",
        "/dev/null",
        "/dev/zero",
    ];
    let fixture = mine.iter().chain(more).map(|name| fx.path(name));
    fixture.chain(special.iter().map(PathBuf::from)).collect()
}

/// Files that are not logs, for every `log` subcommand: appending must not make a log of
/// them (the non-log and the cut log keep their bytes), reading must refuse them.
fn log_cases(fx: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let paths = not_a_store(fx, &["cut-log"]);
    for path in &paths {
        let p = path.to_str().unwrap();
        for args in [
            vec!["log", "append", p],
            vec!["log", "append", "--raw", "--sync", p],
            vec!["log", "append", "--recover", "salvage", p],
            vec!["log", "cat", p],
            vec!["log", "tail", "-f", p],
            vec!["log", "check", p],
            vec!["log", "stats", p],
        ] {
            let mut c = case(Expect::Refused, &args);
            c.stdin = b"hostile\n".to_vec();
            cases.push(c);
        }
    }
    let log = fx.path("log");
    let log = log.to_str().unwrap();
    // (Clap's own multi-line refusals, of a missing FILE or a policy not listed, are
    // left out: their text is clap's.)
    for args in [
        vec!["log", "tail", "--from", "1", "-n", "2", log],
        vec!["log", "bogus", log],
    ] {
        cases.push(case(Expect::Refused, &args));
    }
    cases
}

/// Files that are not key-value stores, for every `kv` subcommand: nothing may make a
/// store of them (the non-store and the cut store keep their bytes); a missing file is
/// refused by all but `set`; a key over 65535 bytes is refused by every command taking
/// one.
fn kv_cases(fx: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let paths = not_a_store(fx, &["dangling", "cut-store", "empty"]);
    for path in &paths {
        let p = path.to_str().unwrap();
        for args in [
            vec!["kv", "set", p, "k", "v"],
            vec!["kv", "set", "--sync", p, "k", "-"],
            vec!["kv", "get", p, "k"],
            vec!["kv", "get", "--json", p, "k"],
            vec!["kv", "del", p, "k"],
            vec!["kv", "ls", "--values", "--json", p],
            vec!["kv", "stats", p],
            vec!["kv", "compact", p],
            vec!["kv", "check", "--json", p],
        ] {
            // `set` makes a store of an empty file (what mktemp leaves), as it makes one
            // of a missing file: kv.rs checks it; the other commands refuse it.
            if path.ends_with("empty") && args[1] == "set" {
                continue;
            }
            let mut c = case(Expect::Refused, &args);
            c.stdin = b"hostile".to_vec();
            cases.push(c);
        }
    }
    let missing = fx.path("missing");
    let missing = missing.to_str().unwrap();
    for cmd in ["get", "del"] {
        cases.push(case(Expect::Refused, &["kv", cmd, missing, "k"]));
    }
    for cmd in ["ls", "stats", "compact", "check"] {
        cases.push(case(Expect::Refused, &["kv", cmd, missing]));
    }
    let store = fx.path("store");
    let store = store.to_str().unwrap();
    let long = "k".repeat(65536);
    for args in [
        vec!["kv", "set", store, &long, "v"],
        vec!["kv", "set", store, &long, "-"],
        vec!["kv", "get", store, &long],
        vec!["kv", "del", store, &long],
        vec!["kv", "bogus", store],
    ] {
        let mut c = case(Expect::Refused, &args);
        c.stdin = b"hostile".to_vec();
        cases.push(c);
    }
    cases
}

/// The files and names the cases point at.
struct Fixture {
    dir: tempfile::TempDir,
    _socket: std::os::unix::net::UnixListener,
    /// An existing 4 KiB segment.
    segment: String,
    /// A segment name planted as a symlink to a file in `dir`.
    planted: String,
    /// Tells this fixture's names from those of fixtures in other tests.
    tag: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    changer: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n);
        let data: Vec<u8> = (0..64 * 1024).map(|i| b"hostile x\n"[i % 10]).collect();
        std::fs::write(p("data"), &data).unwrap();
        std::fs::write(p("empty"), b"").unwrap();
        std::fs::write(p("changing"), &data).unwrap();
        std::fs::write(p("secret"), &data).unwrap();
        std::fs::set_permissions(p("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
        // A log of three records, a copy cut inside its header, one only root may write,
        // and a file of zeros as long as a log.
        let made = common::mmkit()
            .args(["log", "append", p("log").to_str().unwrap()])
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"one\ntwo\nthree\n")?;
                child.wait()
            })
            .unwrap();
        assert!(made.success());
        let log = std::fs::read(p("log")).unwrap();
        std::fs::write(p("cut-log"), &log[..100]).unwrap();
        std::fs::write(p("readonly.log"), &log).unwrap();
        std::fs::set_permissions(p("readonly.log"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::write(p("zeros"), vec![0u8; log.len()]).unwrap();
        // A key-value store of two keys, a copy cut inside its header, and one only root
        // may write.
        for (key, value) in [("k", "v"), ("other", "w")] {
            let st = common::mmkit()
                .args(["kv", "set", p("store").to_str().unwrap(), key, value])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let store = std::fs::read(p("store")).unwrap();
        std::fs::write(p("cut-store"), &store[..100]).unwrap();
        std::fs::write(p("readonly.kv"), &store).unwrap();
        std::fs::set_permissions(p("readonly.kv"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(p("target"), b"must stay as it is").unwrap();
        std::fs::create_dir(p("dir")).unwrap();
        let fifo = Command::new("mkfifo").arg(p("fifo")).status().unwrap();
        assert!(fifo.success());
        let socket = std::os::unix::net::UnixListener::bind(p("socket")).unwrap();
        std::os::unix::fs::symlink(p("nowhere"), p("dangling")).unwrap();
        std::os::unix::fs::symlink(p("loop"), p("loop")).unwrap();
        std::os::unix::fs::symlink(p("data"), p("link-to-data")).unwrap();
        // Make the directory walkable by nobody, so `secret`'s own mode is what refuses.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

        let tag = unique_tag();
        let segment = format!("mmkit-hostile-{tag}");
        let st = common::mmkit()
            .args(["shm", "create", &segment, "--size", "4K"])
            .status()
            .unwrap();
        assert!(st.success());
        let planted = format!("mmkit-hostile-link-{tag}");
        std::os::unix::fs::symlink(p("target"), Path::new("/dev/shm").join(&planted)).unwrap();

        // A file that shrinks to nothing and grows back while the cases run.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let changer = {
            let stop = stop.clone();
            let path = p("changing");
            std::thread::spawn(move || {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    f.set_len(0).unwrap();
                    f.write_all_at(&data, 0).unwrap();
                }
            })
        };
        Fixture {
            dir,
            _socket: socket,
            segment,
            planted,
            tag,
            stop,
            changer: Some(changer),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn segment_name(&self, what: &str) -> String {
        format!("mmkit-hostile-{what}-{}", self.tag)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.changer.take() {
            let _ = t.join();
        }
        let shm = Path::new("/dev/shm");
        for name in [&self.segment, &self.planted, &self.segment_name("new")] {
            let _ = std::fs::remove_file(shm.join(name));
        }
    }
}

/// The process id and a count of fixtures made, for names no other test uses.
fn unique_tag() -> String {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Run all `cases` on two threads; return the failures.
fn run_all(cases: Vec<Case>) -> (usize, Vec<String>) {
    let total = cases.len();
    let queue = std::sync::Mutex::new(cases.into_iter());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().next();
                let Some(c) = next else { break };
                let verdict = run(&c).and_then(|r| judge(&c, &r).map(|()| r));
                match verdict {
                    Ok(r) if r.elapsed > LIMIT / 2 => {
                        let line = format!("hostile: slow ({:?}): {:?}\n", r.elapsed, c.args);
                        let _ = std::io::stderr().write_all(line.as_bytes());
                    }
                    Ok(_) => {}
                    Err(why) => failures.lock().unwrap().push(format!(
                        "mmkit {}{}: {why}",
                        if c.as_nobody { "(as nobody) " } else { "" },
                        shell_words(&c.args)
                    )),
                }
            });
        }
    });
    (total, failures.into_inner().unwrap())
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| !c.is_ascii_graphic()) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(what: &str, total: usize, failures: &[String]) {
    let line = format!(
        "hostile {what}: {total} cases, {} broke the contract\n",
        failures.len()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert!(
        failures.is_empty(),
        "{} of {total} {what} cases broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn numeric_options_at_their_edges() {
    let fx = Fixture::new();
    let (total, failures) = run_all(numeric_cases(&fx));
    report("numeric", total, &failures);
}

#[test]
fn paths_of_every_kind() {
    let fx = Fixture::new();
    let (total, failures) = run_all(path_cases(&fx));
    report("path", total, &failures);
    let target = std::fs::read(fx.path("target")).unwrap();
    assert_eq!(target, b"must stay as it is");
}

#[test]
fn segment_names_that_are_not_names() {
    let fx = Fixture::new();
    let (total, failures) = run_all(name_cases(&fx));
    report("segment name", total, &failures);
    let target = std::fs::read(fx.path("target")).unwrap();
    assert_eq!(target, b"must stay as it is", "a planted link was followed");
}

#[test]
fn log_files_that_are_not_logs() {
    let fx = Fixture::new();
    let data = std::fs::read(fx.path("data")).unwrap();
    let cut = std::fs::read(fx.path("cut-log")).unwrap();
    let (total, failures) = run_all(log_cases(&fx));
    report("log", total, &failures);
    assert_eq!(
        std::fs::read(fx.path("data")).unwrap(),
        data,
        "a non-log was changed"
    );
    assert_eq!(
        std::fs::read(fx.path("cut-log")).unwrap(),
        cut,
        "a cut log was changed"
    );
}

#[test]
fn kv_files_that_are_not_stores() {
    let fx = Fixture::new();
    let unchanged = ["data", "cut-store", "zeros", "empty", "store"]
        .map(|name| (name, std::fs::read(fx.path(name)).unwrap()));
    let (total, failures) = run_all(kv_cases(&fx));
    report("kv", total, &failures);
    for (name, bytes) in unchanged {
        assert_eq!(
            std::fs::read(fx.path(name)).unwrap(),
            bytes,
            "{name} was changed"
        );
    }
    assert!(!fx.path("missing").exists(), "a read made a store");
}

#[test]
fn files_and_processes_without_permission() {
    if !common::can_run_as_nobody() {
        return;
    }
    let fx = Fixture::new();
    let probe = common::mmkit_as_nobody().arg("--version").output().unwrap();
    if !probe.status.success() {
        common::skip("user nobody cannot run the test binary here");
        return;
    }
    let store = std::fs::read(fx.path("readonly.kv")).unwrap();
    let (total, failures) = run_all(permission_cases(&fx));
    report("permission", total, &failures);
    assert_eq!(
        std::fs::read(fx.path("readonly.kv")).unwrap(),
        store,
        "user nobody changed a store root owns"
    );
}
