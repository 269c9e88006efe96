//! `mmkit kv` through the real binary: values set and read back byte for byte (stdin
//! values with NUL and non-UTF-8 bytes, non-UTF-8 keys), exit codes, JSON output, stats
//! against `ls`, compaction shrinking the file, check and recovery on a store damaged by
//! a bit flip, and two processes setting keys at once.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Output;

use crate::common;
use common::{assert_code, flip, mmkit, p, run, run_with, stderr, stdout};

/// `mmkit kv set STORE KEY VALUE`, which must succeed quietly.
#[track_caller]
fn set(store: &Path, key: &str, value: &str) {
    let o = run(&["kv", "set", p(store), key, value]);
    assert_code(&o, 0);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", stderr(&o));
}

/// `mmkit kv get STORE KEY`'s output, which must succeed.
#[track_caller]
fn get(store: &Path, key: &str) -> Vec<u8> {
    let o = run(&["kv", "get", p(store), key]);
    assert_code(&o, 0);
    o.stdout
}

/// Each line of `o`'s stdout as JSON.
fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The bytes the record of a put of `key` and `value` takes: a 16-byte frame and the
/// payload (op, key length, key, value) padded to 8.
fn put_record_size(key: &str, value: &str) -> u64 {
    16 + ((3 + key.len() + value.len()) as u64).div_ceil(8) * 8
}

#[test]
fn values_come_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.kv");
    set(&store, "theme", "dark");
    // No newline added: the bytes as set.
    assert_eq!(get(&store, "theme"), b"dark");
    set(&store, "theme", "light");
    assert_eq!(get(&store, "theme"), b"light");

    // A value from stdin: NUL, non-UTF-8, newlines, and a literal `-` by a pipe.
    let blob: Vec<u8> = b"a\0b\xff\xfe\n\nend\n".to_vec();
    let o = run_with(&["kv", "set", p(&store), "blob", "-"], &blob);
    assert_code(&o, 0);
    assert_eq!(get(&store, "blob"), blob);
    let o = run_with(&["kv", "set", p(&store), "dash", "-"], b"-");
    assert_code(&o, 0);
    assert_eq!(get(&store, "dash"), b"-");
    // Empty values and the empty key.
    let o = run_with(&["kv", "set", p(&store), "empty", "-"], b"");
    assert_code(&o, 0);
    assert_eq!(get(&store, "empty"), b"");
    set(&store, "", "the empty key");
    assert_eq!(get(&store, ""), b"the empty key");
    // A key that is not UTF-8 (an OsStr argument).
    let raw_key = OsStr::from_bytes(b"k\xff\xfe");
    let args = [
        OsStr::new("kv"),
        OsStr::new("set"),
        store.as_os_str(),
        raw_key,
        OsStr::new("raw"),
    ];
    assert_code(&run(&args), 0);
    let o = run(&[
        OsStr::new("kv"),
        OsStr::new("get"),
        store.as_os_str(),
        raw_key,
    ]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"raw");

    // ls: sorted by bytes, one per line; --values as KEY<TAB>VALUE.
    let o = run(&["kv", "ls", p(&store)]);
    assert_code(&o, 0);
    let mut expected: Vec<u8> = b"\nblob\ndash\nempty\nk\xff\xfe\ntheme\n".to_vec();
    assert_eq!(o.stdout, expected);
    let o = run(&["kv", "ls", "--values", p(&store)]);
    assert_code(&o, 0);
    expected = b"\tthe empty key\nblob\t".to_vec();
    expected.extend_from_slice(&blob);
    expected.extend_from_slice(b"\ndash\t-\nempty\t\nk\xff\xfe\traw\ntheme\tlight\n");
    assert_eq!(o.stdout, expected);

    // del: 0 when deleted, then 1; get then exits 1 printing nothing.
    assert_code(&run(&["kv", "del", p(&store), "theme"]), 0);
    let o = run(&["kv", "del", p(&store), "theme"]);
    assert_code(&o, 1);
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let o = run(&["kv", "get", p(&store), "theme"]);
    assert_code(&o, 1);
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_code(&run(&["kv", "get", "--json", p(&store), "theme"]), 1);

    // --sync works the same.
    let o = run(&["kv", "set", "--sync", p(&store), "synced", "yes"]);
    assert_code(&o, 0);
    assert_eq!(get(&store, "synced"), b"yes");
    assert_code(&run(&["kv", "del", "--sync", p(&store), "synced"]), 0);
}

#[test]
fn errors_exit_2_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.kv");
    for args in [
        vec!["kv", "get", p(&missing), "k"],
        vec!["kv", "del", p(&missing), "k"],
        vec!["kv", "ls", p(&missing)],
        vec!["kv", "stats", p(&missing)],
        vec!["kv", "compact", p(&missing)],
        vec!["kv", "check", p(&missing)],
    ] {
        let o = run(&args);
        assert_code(&o, 2);
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("mmkit: kv {}: ", args[1])) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(err.contains("missing.kv"), "{err}");
    }
    assert!(!missing.exists(), "only set creates a store");

    // A key over 65535 bytes is refused before the store is opened (or created).
    let store = dir.path().join("s.kv");
    let long = "k".repeat(65536);
    let o = run(&["kv", "set", p(&store), &long, "v"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("over the limit of 65535"),
        "{}",
        stderr(&o)
    );
    assert!(!store.exists());
    let longest = "k".repeat(65535);
    set(&store, &longest, "v");
    assert_eq!(get(&store, &longest), b"v");
    assert_code(&run(&["kv", "get", p(&store), &long]), 2);

    // A file that is not a store is refused and left as it was.
    let text = dir.path().join("text");
    std::fs::write(&text, b"not a store\n".repeat(1000)).unwrap();
    let before = std::fs::read(&text).unwrap();
    for args in [
        vec!["kv", "set", p(&text), "k", "v"],
        vec!["kv", "get", p(&text), "k"],
        vec!["kv", "check", p(&text)],
    ] {
        let o = run(&args);
        assert_code(&o, 2);
        assert_eq!(stderr(&o).lines().next().map(|_| ()), Some(()));
    }
    assert_eq!(std::fs::read(&text).unwrap(), before);
}

#[test]
fn json_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("j.kv");
    set(&store, "name", "Ada \"Countess\" Lovelace");
    let o = run_with(&["kv", "set", p(&store), "bin", "-"], b"\x00\xff");
    assert_code(&o, 0);

    let o = run(&["kv", "get", "--json", p(&store), "name"]);
    assert_code(&o, 0);
    assert_eq!(
        json_lines(&o),
        vec![serde_json::json!({"key": "name", "key_encoding": "utf8",
            "value": "Ada \"Countess\" Lovelace", "encoding": "utf8"})]
    );
    let o = run(&["kv", "get", "--json", p(&store), "bin"]);
    assert_eq!(json_lines(&o)[0]["value"], "00ff");
    assert_eq!(json_lines(&o)[0]["encoding"], "hex");

    let o = run(&["kv", "ls", "--json", p(&store)]);
    assert_code(&o, 0);
    assert_eq!(
        json_lines(&o),
        vec![
            serde_json::json!({"key": "bin", "key_encoding": "utf8"}),
            serde_json::json!({"key": "name", "key_encoding": "utf8"}),
        ]
    );
    let o = run(&["kv", "ls", "--json", "--values", p(&store)]);
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["value"], "00ff");
    assert_eq!(lines[1]["value"], "Ada \"Countess\" Lovelace");

    let o = run(&["kv", "check", "--json", p(&store)]);
    assert_code(&o, 0);
    let v = &json_lines(&o)[0];
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], 2);
}

#[test]
fn stats_match_ls() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.kv");
    for i in 0..12 {
        set(&store, &format!("key{i}"), &format!("value {i}"));
    }
    set(&store, "key0", "overwritten");
    assert_code(&run(&["kv", "del", p(&store), "key1"]), 0);

    let o = run(&["kv", "ls", p(&store)]);
    assert_code(&o, 0);
    let listed = stdout(&o).lines().count() as u64;
    assert_eq!(listed, 11);
    let o = run(&["kv", "stats", "--json", p(&store)]);
    assert_code(&o, 0);
    let s = &json_lines(&o)[0];
    assert_eq!(s["keys"], listed);
    let (live, total) = (
        s["live_bytes"].as_u64().unwrap(),
        s["total_bytes"].as_u64().unwrap(),
    );
    assert!(live < total, "{s}");
    assert_eq!(
        s["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(&store).unwrap().len()
    );
    // The table says the same, in sizes.
    let o = run(&["kv", "stats", p(&store)]);
    assert_code(&o, 0);
    let table = stdout(&o);
    let keys_row = table.lines().find(|l| l.trim_start().starts_with("keys"));
    assert!(keys_row.unwrap().trim_end().ends_with(" 11"), "{table}");
    assert!(table.contains("allocated"), "{table}");
}

#[test]
fn compact_shrinks_the_file_and_keeps_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("big.kv");
    // 3 keys overwritten with 64 KiB values (3 MiB in all, under the 4 MiB of the
    // automatic compaction), and a few small keys.
    let value = |round: u8, k: u8| vec![b'a' + (round + k) % 26; 64 * 1024];
    for round in 0..16u8 {
        for k in 0..3u8 {
            let o = run_with(
                &["kv", "set", p(&store), &format!("big{k}"), "-"],
                &value(round, k),
            );
            assert_code(&o, 0);
        }
    }
    for i in 0..5 {
        set(&store, &format!("small{i}"), &i.to_string());
    }
    let before = std::fs::metadata(&store).unwrap().len();
    assert!(before > 3 << 20, "{before}");

    let o = run(&["kv", "compact", "--json", p(&store)]);
    assert_code(&o, 0);
    let r = &json_lines(&o)[0];
    let after = std::fs::metadata(&store).unwrap().len();
    assert!(after < before / 8, "{before} -> {after}");
    assert_eq!(r["keys"], 8);
    assert_eq!(r["file_before"], before);
    assert_eq!(r["file_after"], after);
    assert!(
        r["bytes_after"].as_u64() < r["bytes_before"].as_u64(),
        "{r}"
    );
    assert!(r["seconds"].as_f64().unwrap() >= 0.0);

    for k in 0..3u8 {
        assert_eq!(get(&store, &format!("big{k}")), value(15, k));
    }
    for i in 0..5 {
        assert_eq!(get(&store, &format!("small{i}")), i.to_string().as_bytes());
    }
    assert_code(&run(&["kv", "check", p(&store)]), 0);
    // The table form names the sizes before and after.
    let o = run(&["kv", "compact", p(&store)]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(
        text.contains("compacted in") && text.contains("8 keys kept"),
        "{text}"
    );
    assert!(text.contains("before") && text.contains("after"), "{text}");
}

#[test]
fn check_finds_a_flipped_bit_and_the_other_keys_survive() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("d.kv");
    let keys = [("alpha", "one"), ("beta", "two"), ("gamma", "three")];
    for (k, v) in keys {
        set(&store, k, v);
    }
    let o = run(&["kv", "check", p(&store)]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("intact: 3 records"), "{}", stdout(&o));

    // Data starts at 4096; flip a byte of beta's key, inside its record's payload.
    let second = 4096 + put_record_size("alpha", "one");
    flip(&store, second + 16 + 3, 0x10);

    let o = run(&["kv", "check", p(&store)]);
    assert_code(&o, 1);
    let text = stdout(&o);
    assert!(text.contains("damaged"), "{text}");
    assert!(text.contains(&format!("bytes {second}..")), "{text}");
    let o = run(&["kv", "check", "--json", p(&store)]);
    assert_code(&o, 1);
    let v = &json_lines(&o)[0];
    assert_eq!(v["intact"], false);
    assert_eq!(v["damage"][0]["offset"], second);

    // The other keys still read, and opening says in one line what it skipped.
    let o = run(&["kv", "get", p(&store), "alpha"]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"one");
    let err = stderr(&o);
    assert!(
        err.starts_with("mmkit: kv get: ") && err.contains("skipped") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(get(&store, "gamma"), b"three");
    assert_code(&run(&["kv", "get", p(&store), "beta"]), 1);
    let o = run(&["kv", "ls", p(&store)]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"alpha\ngamma\n");
    // The store works on, and the skipped damage is marked: check finds it intact now.
    set(&store, "beta", "again");
    assert_eq!(get(&store, "beta"), b"again");
    assert_code(&run(&["kv", "check", p(&store)]), 0);
}

#[test]
fn two_processes_set_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("shared.kv");
    const EACH: usize = 200;
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let o = run(&[
                        "kv",
                        "set",
                        p(&store),
                        &format!("{who}{i}"),
                        &format!("{who}:{i}"),
                    ]);
                    assert_code(&o, 0);
                    assert!(o.stderr.is_empty(), "{}", stderr(&o));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("a writer failed");
    }
    let o = run(&["kv", "ls", "--values", p(&store)]);
    assert_code(&o, 0);
    let text = stdout(&o);
    let got: std::collections::BTreeMap<&str, &str> =
        text.lines().map(|l| l.split_once('\t').unwrap()).collect();
    assert_eq!(got.len(), 2 * EACH);
    for who in ["a", "b"] {
        for i in 0..EACH {
            assert_eq!(got[format!("{who}{i}").as_str()], format!("{who}:{i}"));
        }
    }
    let o = run(&["kv", "check", p(&store)]);
    assert_code(&o, 0);
}

/// Two processes set keys while a third compacts, over and over: every acknowledged key
/// must be there afterwards. (It found a library bug: a shared writer opening the store
/// read the file's length before it took the writers' lock, and cut a record another
/// writer committed past that length meanwhile as a "torn tail".)
#[test]
fn sets_survive_concurrent_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("compacted.kv");
    const EACH: usize = 150;
    set(&store, "seed", "0");
    let mut workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let o = run(&["kv", "set", p(&store), &format!("{who}{i}"), "v"]);
                    assert_code(&o, 0);
                }
            })
        })
        .collect();
    let compactor = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..80 {
                assert_code(&run(&["kv", "compact", "--json", p(&store)]), 0);
            }
        })
    };
    workers.push(compactor);
    for w in workers {
        w.join().expect("a process failed");
    }
    let o = run(&["kv", "ls", p(&store)]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 2 * EACH + 1, "{}", stderr(&o));
}

/// An empty file (what mktemp leaves) becomes a store with `set`; the commands that only
/// read refuse it and leave it empty.
#[test]
fn set_makes_a_store_of_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("made-by-mktemp");
    std::fs::write(&store, b"").unwrap();
    let out = mmkit()
        .args(["kv", "get"])
        .arg(&store)
        .arg("k")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0);
    set(&store, "k", "v");
    assert_eq!(get(&store, "k"), b"v");
}

/// A store this user may not write is read read-only: `get`, `ls` and `stats` work, and
/// writes are refused.
#[test]
fn a_store_this_user_cannot_write_is_read_read_only() {
    if !common::can_run_as_nobody() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("root-owned.kv");
    set(&store, "k", "v");
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let run = |args: &[&str]| common::mmkit_as_nobody().args(args).output().unwrap();
    let path = store.to_str().unwrap();
    let out = run(&["kv", "get", path, "k"]);
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"v"[..]),
        "{out:?}"
    );
    let out = run(&["kv", "ls", path]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"k\n");
    assert_eq!(run(&["kv", "stats", path]).status.code(), Some(0));
    let out = run(&["kv", "set", path, "k", "w"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(get(&store, "k"), b"v");
}
