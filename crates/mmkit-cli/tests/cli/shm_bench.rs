//! `mmkit shm bench` through the real binary: every transport measured at every size,
//! figures that are internally consistent, and clear errors for impossible settings.

use std::process::Command;

use crate::common;

fn bench(args: &[&str]) -> std::process::Output {
    common::mmkit()
        .args(["shm", "bench"])
        .args(args)
        .output()
        .expect("run mmkit")
}

#[test]
fn json_report_has_every_transport_and_size_with_ordered_percentiles() {
    let out = bench(&[
        "--sizes", "64,4K", "--bytes", "1M", "--rounds", "500", "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    // The spin limit, then ring, pipe and unix socket at each size.
    assert_eq!(rows.len(), 1 + 2 * 3, "{v}");
    assert_eq!(rows[0]["transport"], "spin_limit");
    for size in [64u64, 4096] {
        for t in ["ring", "pipe", "unix_socket"] {
            let r = rows
                .iter()
                .find(|r| r["transport"] == t && r["size"] == size)
                .unwrap_or_else(|| panic!("no {t} row at {size}: {v}"));
            // 1 MiB over the size, at least 2000 messages.
            let want = (1u64 << 20) / size;
            assert_eq!(r["messages"].as_u64().unwrap(), want.max(2000), "{r}");
            let per_sec = r["msgs_per_sec"].as_f64().unwrap();
            let bytes_per_sec = r["bytes_per_sec"].as_f64().unwrap();
            assert!(per_sec > 0.0, "{r}");
            assert!(
                (bytes_per_sec / per_sec - size as f64).abs() < 1e-6 * size as f64,
                "{r}"
            );
            let rtt = &r["rtt"];
            let p = |k: &str| rtt[k].as_f64().unwrap();
            assert!(p("min_ns") > 0.0, "{r}");
            assert!(
                p("min_ns") <= p("p50_ns") && p("p50_ns") <= p("p99_ns"),
                "{r}"
            );
            assert!(p("p99_ns") <= p("p999_ns"), "{r}");
        }
    }
}

#[test]
fn table_names_the_ratios_against_a_pipe_and_the_spin_limit() {
    let out = bench(&["--sizes", "64", "--bytes", "512K", "--rounds", "300"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for word in [
        "spin limit",
        "ring",
        "pipe",
        "unix socket",
        "rtt p50",
        "p99.9",
    ] {
        assert!(stdout.contains(word), "{word}: {stdout}");
    }
    assert!(
        stdout.contains("64 B: ring") && stdout.contains("the messages/s of a pipe"),
        "{stdout}"
    );
    assert!(stdout.contains("the spin limit's round trip"), "{stdout}");
    // The note says where the two ends ran, from what was measured.
    assert!(
        stdout.contains("note: ") && stdout.contains("CPU"),
        "{stdout}"
    );
}

#[test]
fn messages_too_large_for_the_ring_and_bad_capacities_are_errors() {
    let out = bench(&["--sizes", "64K", "--capacity", "64K", "--rounds", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("need a ring of at least 512 KiB"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = bench(&["--sizes", "64", "--capacity", "5000", "--rounds", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("power of two"), "{stderr}");
}

/// The CPUs this process may run on, from the `Cpus_allowed_list` of /proc/self/status.
fn allowed_cpus() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

fn json(args: &[&str], taskset: Option<&str>) -> serde_json::Value {
    let mut cmd = match taskset {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, env!("CARGO_BIN_EXE_mmkit")]);
            c
        }
        None => common::mmkit(),
    };
    let out = cmd
        .args(["shm", "bench", "--sizes", "64", "--bytes", "64K", "--json"])
        .args(args)
        .output()
        .expect("run mmkit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn one_cpu_is_said_only_when_true() {
    // Restricted to one CPU (as `taskset -c 0` does): the note says one CPU, also with
    // --pin, which needs two.
    if common::peer("taskset", "util-linux") {
        for pin in [&[][..], &["--pin"][..]] {
            let v = json(&[&["--rounds", "50"][..], pin].concat(), Some("0"));
            assert_eq!(v["cpus"], 1, "{v}");
            assert_eq!(v["placement"], "one_cpu", "{v}");
            assert_eq!(v["pinned"], false, "{v}");
            let note = v["note"].as_str().unwrap();
            assert!(note.starts_with("one CPU"), "{note}");
        }
    }

    let cpus = allowed_cpus();
    if cpus < 2 {
        common::skip("needs two CPUs");
        return;
    }
    // Unpinned on several CPUs: "one CPU" only if the measured spin limit says the two
    // ends shared one; the note follows the spin row of the same report.
    let v = json(&["--rounds", "300"], None);
    assert_eq!(v["cpus"].as_u64().unwrap() as usize, cpus, "{v}");
    assert_eq!(v["pinned"], false, "{v}");
    let spin = v["rows"][0]["rtt"]["p50_ns"].as_f64().unwrap();
    let note = v["note"].as_str().unwrap();
    assert!(!note.contains("one CPU available"), "{note}");
    let want = if spin >= 1000.0 {
        "shared_cpu"
    } else {
        "separate_cpus"
    };
    assert_eq!(v["placement"], want, "{v}");
    assert!(
        note.contains(&format!("{cpus} CPUs available, not pinned")),
        "{note}"
    );

    // Pinned: the two CPUs are named.
    let v = json(&["--rounds", "300", "--pin"], None);
    assert_eq!(v["placement"], "pinned", "{v}");
    assert_eq!(v["pinned"], true, "{v}");
    let pins = v["pinned_cpus"].as_array().unwrap();
    assert_eq!(pins.len(), 2, "{v}");
    assert_ne!(pins[0], pins[1], "{v}");
    let note = v["note"].as_str().unwrap();
    assert!(note.contains("pinned to CPU"), "{note}");
}

#[test]
fn the_ring_row_reports_its_waits_next_to_the_spin_limit() {
    let v = json(&["--rounds", "50", "--spin-us", "7"], None);
    assert_eq!(v["ring_spin_ns"], 7_000, "{v}");
    let rows = v["rows"].as_array().unwrap();
    let ring = rows.iter().find(|r| r["transport"] == "ring").unwrap();
    let w = &ring["waits"];
    for k in [
        "consumer_sleeps_per_msg",
        "producer_wakes_per_msg",
        "producer_sleeps_per_msg",
        "consumer_wakes_per_msg",
        "consumer_spun_per_msg",
    ] {
        assert!(w[k].as_f64().unwrap() >= 0.0, "{k}: {w}");
    }
    // At most one wake a message (a commit wakes only a side that raised its flag).
    assert!(w["producer_wakes_per_msg"].as_f64().unwrap() <= 1.0, "{w}");
    // The adaptive spin stays between a 32nd of the limit and the limit.
    let spin = w["consumer_spin_ns"].as_u64().unwrap();
    assert!((7_000 / 32..=7_000).contains(&spin), "{w}");
    let pipe = rows.iter().find(|r| r["transport"] == "pipe").unwrap();
    assert!(pipe["waits"].is_null(), "{pipe}");

    let out = bench(&["--sizes", "64", "--bytes", "64K", "--rounds", "50"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ring waits: spin limit 20.0 µs"),
        "{stdout}"
    );
    assert!(stdout.contains("CPU each end got"), "{stdout}");
    let share = ring["cpu_share"].as_array().unwrap();
    assert_eq!(share.len(), 2, "{ring}");
    assert!(share.iter().all(|c| c.as_f64().unwrap() >= 0.0), "{ring}");
}

#[test]
fn wake_reports_the_shared_waiters_latency() {
    let out = bench(&["--wake", "--runs", "5", "--hold-ms", "1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], 5, "{v}");
    assert_eq!(v["hold_ns"], 1_000_000, "{v}");
    let p = |k: &str| v[k].as_f64().unwrap();
    assert!(
        p("min_ns") <= p("p50_ns") && p("p50_ns") <= p("p90_ns"),
        "{v}"
    );
    assert!(p("p90_ns") <= p("max_ns"), "{v}");
    assert!(v["waiter"].as_str().unwrap().contains("FUTEX_WAIT"), "{v}");

    let out = bench(&["--wake", "--runs", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("wake latency") && stdout.contains("3 runs"),
        "{stdout}"
    );

    let out = bench(&["--wake", "--runs", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("runs must be from 1"), "{stderr}");
}
