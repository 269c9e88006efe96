//! The examples run as a user runs them (`cargo run --example`), and check themselves: each
//! prints a `verified:` line only when what it demonstrates held.

use std::process::Command;

/// Run `cargo run --example NAME` as a user would; its stdout, after checking it exited 0.
fn run_example(name: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--offline",
            "-p",
            "mmkit",
            "--features",
            "shm",
            "--example",
            name,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stdout}\n{stderr}");
    stdout
}

#[test]
#[cfg_attr(miri, ignore)]
fn student_records_example_verifies_itself() {
    let stdout = run_example("student_records");
    // The writer is a second process with its own pid.
    let pids = |who: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(who))
            .map(|rest| rest.split(']').next().unwrap_or("").to_string())
            .collect()
    };
    let (parent, writer) = (pids("[parent sees pid "), pids("[writer sees pid "));
    assert_eq!((parent.len(), writer.len()), (3, 3), "{stdout}");
    assert_ne!(parent[0], writer[0], "{stdout}");
    assert!(
        stdout.contains("verified: the parent saw all 3 updates of the writer"),
        "{stdout}"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn producer_consumer_example_verifies_itself() {
    let stdout = run_example("producer_consumer");
    let pids: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(pids.len(), 2, "{stdout}");
    assert_ne!(pids[0], pids[1], "two processes: {stdout}");
    assert!(stdout.contains("consumer got #75000: sensor"), "{stdout}");
    assert!(
        stdout.contains("producer ended with exit code 0"),
        "{stdout}"
    );
    assert!(stdout.contains("verified: 100000 readings"), "{stdout}");
}
