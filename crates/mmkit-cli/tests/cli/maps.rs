//! `mmkit maps` through the real binary: against `pmap -X` on a live Python process that
//! holds one mapping of each kind, and its errors, filters and JSON.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common;
use common::mmkit;

/// Kills the child when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Maps a file shared and private, anonymous memory shared and private, writes to every
/// page of each, prints their addresses and sleeps.
const SCRIPT: &str = r#"
import ctypes, mmap, sys, time
path, n = sys.argv[1], 64 * mmap.PAGESIZE
f = open(path, "r+b")
maps = {
    "file-shared": mmap.mmap(f.fileno(), n, flags=mmap.MAP_SHARED),
    "file-private": mmap.mmap(f.fileno(), n, flags=mmap.MAP_PRIVATE),
    "anon-shared": mmap.mmap(-1, n, flags=mmap.MAP_SHARED),
    "anon-private": mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE),
}
for m in maps.values():
    for i in range(0, n, mmap.PAGESIZE):
        m[i] = 1
addrs = {k: ctypes.addressof(ctypes.c_char.from_buffer(m)) for k, m in maps.items()}
print("ready " + " ".join(f"{k}={a}" for k, a in addrs.items()), flush=True)
time.sleep(600)
"#;

struct Python {
    child: KillOnDrop,
    /// (kind, address) of each mapping the script made.
    addrs: Vec<(String, u64)>,
    path: String,
    _dir: tempfile::TempDir,
}

fn python_with_mappings() -> Option<Python> {
    if !common::peer("python3", "python3") {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mapped");
    std::fs::write(&path, vec![0u8; 64 * 65536]).expect("write file");
    let mut child = KillOnDrop(
        Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read python's line");
    let rest = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("python did not get ready: {line:?}"));
    let addrs = rest
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("kind=addr");
            (k.to_string(), v.parse().expect("address"))
        })
        .collect();
    Some(Python {
        child,
        addrs,
        path: path.display().to_string(),
        _dir: dir,
    })
}

fn maps_json(args: &[&str]) -> Value {
    let out = mmkit().arg("maps").args(args).output().expect("run mmkit");
    assert!(
        out.status.success(),
        "mmkit maps {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// What `pmap -X PID` says: its total line and each mapping's row, as column → KiB.
#[derive(Debug)]
struct Pmap {
    totals: BTreeMap<String, u64>,
    /// Start address → the row's numeric columns.
    rows: BTreeMap<u64, BTreeMap<String, u64>>,
}

fn pmap_x(pid: u32) -> Pmap {
    let out = Command::new("pmap")
        .args(["-X", &pid.to_string()])
        .output()
        .expect("run pmap");
    assert!(out.status.success(), "pmap failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let header: Vec<&str> = lines
        .iter()
        .find(|l| l.trim_start().starts_with("Address"))
        .expect("pmap header")
        .split_whitespace()
        .collect();
    // Address Perm Offset Device Inode, then the numeric columns, then Mapping.
    let first = header.iter().position(|&h| h == "Size").expect("Size");
    assert_eq!(first, 5, "{header:?}");
    let names = &header[first..header.len() - 1];
    let numbers = |tokens: &[&str]| -> BTreeMap<String, u64> {
        names
            .iter()
            .zip(tokens)
            .map(|(n, v)| {
                let value = v.parse().unwrap_or_else(|_| panic!("{v:?} in {text}"));
                (n.to_string(), value)
            })
            .collect()
    };
    let total: Vec<&str> = lines
        .last()
        .expect("total line")
        .split_whitespace()
        .collect();
    assert_eq!(total.last(), Some(&"KB"), "{text}");
    assert_eq!(total.len() - 1, names.len(), "{text}");
    let mut rows = BTreeMap::new();
    for line in &lines {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < first + names.len() || t[1].len() != 4 {
            continue;
        }
        if let Ok(start) = u64::from_str_radix(t[0], 16) {
            rows.insert(start, numbers(&t[first..first + names.len()]));
        }
    }
    Pmap {
        totals: numbers(&total[..total.len() - 1]),
        rows,
    }
}

/// Compare one reading of mmkit with one of pmap. `Err` says what differs.
///
/// RSS, size, swap and locked do not depend on who reads, so they must match exactly,
/// per mapping and in total. PSS does: a page of libc that the reader maps too is
/// divided among one more process while it reads, and pmap maps libraries and locale
/// files mmkit does not. So PSS must match exactly for anonymous memory, the heap, the
/// stack and the test's own file, which no reader maps; and the total PSS must differ
/// from pmap's by exactly the difference on the other files (libraries, locale data,
/// glibc's gconv cache) and kernel areas, by at most half their RSS.
fn compare(ours: &Value, theirs: &Pmap, own_file: &str) -> Result<(), String> {
    let all = &ours["totals"]["all"];
    for (key, col) in [
        ("rss", "Rss"),
        ("size", "Size"),
        ("swap", "Swap"),
        ("locked", "Locked"),
    ] {
        let (a, b) = (all[key].as_u64().unwrap() / 1024, theirs.totals[col]);
        if a != b {
            return Err(format!("total {col}: mmkit {a} KiB, pmap {b} KiB"));
        }
    }
    let mappings = ours["mappings"].as_array().unwrap();
    let starts: Vec<u64> = mappings
        .iter()
        .map(|m| m["start"].as_u64().unwrap())
        .collect();
    if starts != theirs.rows.keys().copied().collect::<Vec<_>>() {
        return Err(format!(
            "different mappings: mmkit {} rows, pmap {} rows",
            starts.len(),
            theirs.rows.len()
        ));
    }
    let (mut reader_shared_diff, mut reader_shared_rss) = (0i64, 0u64);
    for m in mappings {
        let row = &theirs.rows[&m["start"].as_u64().unwrap()];
        let kib = |k: &str| m[k].as_u64().unwrap() / 1024;
        let kind = m["kind"].as_str().unwrap();
        for (key, col) in [("rss", "Rss"), ("size", "Size"), ("swap", "Swap")] {
            if kib(key) != row[col] {
                return Err(format!("{col} of {m}: pmap {}", row[col]));
            }
        }
        let readers_may_map = kind.starts_with("file-") && m["path"] != own_file;
        if readers_may_map || kind == "special" {
            reader_shared_diff += kib("pss") as i64 - row["Pss"] as i64;
            reader_shared_rss += kib("rss");
        } else if kib("pss") != row["Pss"] {
            return Err(format!("Pss of {m}: pmap {}", row["Pss"]));
        }
    }
    let total_diff = (all["pss"].as_u64().unwrap() / 1024) as i64 - theirs.totals["Pss"] as i64;
    if total_diff != reader_shared_diff {
        return Err(format!(
            "total PSS differs by {total_diff} KiB, the files readers map by {reader_shared_diff}"
        ));
    }
    if reader_shared_diff.unsigned_abs() > reader_shared_rss / 2 {
        return Err(format!(
            "PSS of files readers map differs by {reader_shared_diff} KiB, more than half their \
             RSS ({reader_shared_rss} KiB)"
        ));
    }
    println!("total PSS: mmkit - pmap = {total_diff} KiB, all in shared files the readers map too");
    Ok(())
}

#[test]
fn totals_match_pmap_and_kinds_are_right() {
    let Some(py) = python_with_mappings() else {
        return;
    };
    if !common::peer("pmap", "procps") {
        return;
    }
    let pid = py.child.0.id();
    let pid_arg = pid.to_string();

    // A Python process asleep does not change, but retry in case something did.
    let mut last = String::new();
    let mut matched = None;
    for _ in 0..3 {
        let ours = maps_json(&[&pid_arg, "--json"]);
        let theirs = pmap_x(pid);
        match compare(&ours, &theirs, &py.path) {
            Ok(()) => {
                matched = Some(ours);
                break;
            }
            Err(e) => last = e,
        }
    }
    let ours = matched.unwrap_or_else(|| panic!("mmkit maps and pmap -X disagree: {last}"));
    assert_eq!(ours["pid"].as_u64(), Some(u64::from(pid)));
    // Each mapping the script made is listed with its kind, resident and (where shared
    // and private differ) in the right columns.
    let mappings = ours["mappings"].as_array().expect("mappings");
    let entry_at = |addr: u64| {
        mappings
            .iter()
            .find(|m| m["start"].as_u64().unwrap() <= addr && addr < m["end"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("no mapping holds {addr:#x}"))
    };
    for (kind, addr) in &py.addrs {
        let m = entry_at(*addr);
        assert_eq!(m["kind"].as_str(), Some(kind.as_str()), "{m}");
        assert!(m["rss"].as_u64().unwrap() >= 64 * 4096, "{kind}: {m}");
        if kind.starts_with("file") {
            assert_eq!(m["path"].as_str(), Some(py.path.as_str()), "{m}");
        }
        if kind == "file-private" {
            assert!(m["private_dirty"].as_u64().unwrap() >= 64 * 4096, "{m}");
            assert!(m["perms"].as_str().unwrap().ends_with('p'), "{m}");
        }
        if kind.ends_with("-shared") {
            assert!(m["perms"].as_str().unwrap().ends_with('s'), "{m}");
        }
    }
    // Per-kind totals add up to the overall ones.
    let per_kind = ours["totals"]["per_kind"].as_object().expect("per_kind");
    for k in ["file-shared", "file-private", "anon-shared", "anon-private"] {
        assert!(per_kind.contains_key(k), "{per_kind:?}");
    }
    for col in ["rss", "pss", "size", "dirty"] {
        let sum: u64 = per_kind.values().map(|t| t[col].as_u64().unwrap()).sum();
        assert_eq!(Some(sum), ours["totals"]["all"][col].as_u64(), "{col}");
    }
}

#[test]
fn missing_pid_is_a_one_line_error() {
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    let pid = (pid_max + 1).to_string(); // never a live pid
    let out = mmkit().args(["maps", &pid]).output().expect("run mmkit");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("mmkit: maps: "), "{err}");
    assert!(err.contains(&pid), "error does not name the pid: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_arguments_are_clap_errors() {
    for args in [
        &["maps", "self", "--sort", "nonsense"][..],
        &["maps", "self", "--kind", "nonsense"][..],
        &["maps", "not-a-pid"][..],
        &["maps"][..],
    ] {
        let out = mmkit().args(args).output().expect("run mmkit");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn kind_filters_rows_and_totals() {
    let all = maps_json(&["self", "--json"]);
    let anon = maps_json(&["self", "--json", "--kind", "anon-private"]);
    let rows = anon["mappings"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|m| m["kind"] == "anon-private"), "{anon}");
    assert!(rows.len() < all["mappings"].as_array().unwrap().len());
    let per_kind = anon["totals"]["per_kind"].as_object().unwrap();
    assert_eq!(per_kind.keys().collect::<Vec<_>>(), ["anon-private"]);
    assert_eq!(
        anon["totals"]["all"]["count"].as_u64(),
        Some(rows.len() as u64)
    );

    // Two kinds; and the table shows only those kinds.
    let two = maps_json(&["self", "--json", "--kind", "heap", "--kind", "stack"]);
    let kinds: Vec<&str> = two["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"stack"), "{kinds:?}");
    assert!(
        kinds.iter().all(|k| ["heap", "stack"].contains(k)),
        "{kinds:?}"
    );

    let out = mmkit()
        .args(["maps", "self", "--kind", "file-private"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|a| a.split_once('-'))
                .is_some_and(|(s, e)| {
                    u64::from_str_radix(s, 16).is_ok() && u64::from_str_radix(e, 16).is_ok()
                })
        })
        .collect();
    assert!(!rows.is_empty(), "{text}");
    assert!(rows.iter().all(|l| l.contains(" file-private ")), "{text}");
    assert!(
        text.contains("mmkit"),
        "the binary's own file is listed: {text}"
    );
}

#[test]
fn json_shape_and_sorting() {
    let v = maps_json(&["self", "--json", "--sort", "rss"]);
    assert!(v["pid"].as_u64().is_some_and(|p| p > 0));
    let rows = v["mappings"].as_array().unwrap();
    let rss: Vec<u64> = rows.iter().map(|m| m["rss"].as_u64().unwrap()).collect();
    assert!(rss.windows(2).all(|w| w[0] >= w[1]), "{rss:?}");
    for key in [
        "start",
        "end",
        "perms",
        "offset",
        "path",
        "kind",
        "size",
        "rss",
        "pss",
        "shared_clean",
        "shared_dirty",
        "private_clean",
        "private_dirty",
        "swap",
        "locked",
        "anon_huge",
    ] {
        assert!(rows[0].get(key).is_some(), "no {key}: {}", rows[0]);
    }
    let total: u64 = rss.iter().sum();
    assert_eq!(v["totals"]["all"]["rss"].as_u64(), Some(total));

    let by_addr = maps_json(&["self", "--json"]);
    let starts: Vec<u64> = by_addr["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["start"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");

    let totals_only = maps_json(&["self", "--json", "--totals-only"]);
    assert_eq!(totals_only["mappings"].as_array().map(Vec::len), Some(0));
    assert!(totals_only["totals"]["all"]["rss"].as_u64().unwrap() > 0);
}

#[test]
fn table_has_rows_and_totals() {
    let out = mmkit().args(["maps", "self"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("pid "), "{text}");
    for col in ["Address", "RSS", "PSS", "Pr.Dirty", "AnonHuge", "Path"] {
        assert!(text.contains(col), "no {col}: {text}");
    }
    assert!(
        text.contains("[heap]") || text.contains("[stack]"),
        "{text}"
    );
    let last = text.lines().last().unwrap();
    assert!(
        last.trim_start().starts_with("total") && last.contains(" all "),
        "{text}"
    );

    let only = mmkit()
        .args(["maps", "self", "--totals-only"])
        .output()
        .unwrap();
    let only = String::from_utf8(only.stdout).unwrap();
    assert!(
        only.lines()
            .skip(2)
            .all(|l| l.trim_start().starts_with("total")),
        "{only}"
    );
}

#[test]
fn help_teaches() {
    let out = mmkit().args(["maps", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--sort",
        "--kind",
        "--json",
        "--totals-only",
        "PSS",
        "anon-shared",
        "self",
    ] {
        assert!(text.contains(needle), "no {needle}: {text}");
    }
}

#[test]
fn unreadable_process_says_why_and_what_to_do() {
    // As an unprivileged user, the smaps of pid 1 (root's init) cannot be read.
    if !common::can_run_as_nobody() {
        return;
    }
    let out = common::mmkit_as_nobody()
        .args(["maps", "1"])
        .output()
        .expect("run setpriv");
    let err = String::from_utf8(out.stderr).unwrap();
    if err.contains("Permission denied") && !err.starts_with("mmkit") {
        common::skip(&format!("nobody cannot run the test binary: {err}"));
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("mmkit: maps: "), "{err}");
    assert!(err.contains("EACCES") && err.contains("pid 1"), "{err}");
    assert!(err.contains("hint: run as root"), "{err}");
    assert!(out.stdout.is_empty());
}
