//! `mmkit page` against a real S3 server (s3s-fs on 127.0.0.1, started here), the way a
//! user runs it: the server's address and credentials in the environment. `cat` of an
//! object and of a seekable zstd object byte for byte, `stats --json` fetching no more
//! than a random pattern touches, `bench --url` rows, and the errors for wrong
//! credentials, a missing key and a server that died, in one line naming the URL.

use std::process::{Command, Output};

use mmkit::helpers::XorShift;

use crate::common;
use common::uffd_allowed;
use common::{
    assert_code, assert_refused, fill_pattern, mmkit, run_command, seekable_zstd, Fault,
    FaultyProxy, S3Server,
};

/// `mmkit ARGS` with `env` (and nothing of the caller's AWS_* environment).
fn mmkit_env(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd: Command = mmkit();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().cloned()).args(args);
    run_command(cmd, b"")
}

fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(0, &mut v);
    v
}

/// A server with bucket `data` holding `obj` (`len` bytes of the pattern).
fn server(len: usize) -> S3Server {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put_pattern("data", "obj", len as u64);
    s3
}

#[test]
fn cat_of_an_s3_object_is_its_bytes() {
    if !uffd_allowed() {
        return;
    }
    let len = 5 * 1024 * 1024 + 333;
    let s3 = server(len);
    let out = mmkit_env(&s3.env(), &["page", "cat", "s3://data/obj"]);
    assert_code(&out, 0);
    assert!(out.stdout == pattern(len), "page cat s3://data/obj differs");
}

#[test]
fn cat_zstd_of_an_s3_object_is_the_uncompressed_bytes() {
    if !uffd_allowed() {
        return;
    }
    let plain = pattern(3 * 1024 * 1024 + 5);
    let zst = seekable_zstd(&plain, 128 << 10);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put("data", "obj.zst", &zst);
    let out = mmkit_env(&s3.env(), &["page", "cat", "--zstd", "s3://data/obj.zst"]);
    common::assert_prints(&out, &plain, "page cat --zstd");
}

#[test]
fn random_stats_fetch_no_more_than_they_touch() {
    if !uffd_allowed() {
        return;
    }
    let len = 64 * 1024 * 1024;
    let s3 = server(len);
    let out = mmkit_env(&s3.env(), &common::random_stats("200", "s3://data/obj"));
    assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let obj = &v["object"];
    let (touched, fetched) = (
        obj["bytes_touched"].as_u64().unwrap(),
        obj["bytes_fetched"].as_u64().unwrap(),
    );
    assert!(touched > 0 && fetched >= touched, "{v}");
    // Unaligned 4 KiB reads touch up to two pages each; a window grows on a run of two.
    assert!(fetched <= 3 * touched, "{v}");
    // What the server sent is what the CLI says it fetched.
    assert_eq!(s3.counts().get_bytes, fetched, "{v}");
}

#[test]
fn bench_url_on_s3_reports_every_pass() {
    if !uffd_allowed() {
        return;
    }
    let s3 = server(8 * 1024 * 1024);
    let out = mmkit_env(
        &s3.env(),
        &[
            "page",
            "bench",
            "--url",
            "s3://data/obj",
            "--runs",
            "1",
            "--json",
        ],
    );
    assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["first_byte"]["requests"], 2, "HEAD and one GET: {v}");
    let methods: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    for m in ["download", "random 4 KiB"] {
        assert!(methods.contains(&m), "{m}: {methods:?}");
    }
    assert!(v["random"]["fetched_over_touched"].as_f64().unwrap() >= 1.0);
}

#[test]
fn wrong_credentials_a_missing_key_and_a_dead_server_say_so() {
    if !uffd_allowed() {
        return;
    }
    let mut s3 = server(1024 * 1024);
    let mut env = s3.env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "wrong".into();
        }
    }
    let out = mmkit_env(&env, &["page", "cat", "s3://data/obj"]);
    assert_refused(&out, "s3://data/obj", "EACCES");
    let out = mmkit_env(&s3.env(), &["page", "cat", "s3://data/nokey"]);
    assert_refused(&out, "s3://data/nokey", "not found");
    let out = mmkit_env(&s3.env(), &["page", "cat", "s3://nobucket/obj"]);
    assert_refused(&out, "s3://nobucket/obj", "not found");
    let env = s3.env();
    s3.stop();
    let out = mmkit_env(
        &env,
        &[
            "page",
            "cat",
            "--timeout",
            "2s",
            "--retries",
            "1",
            "s3://data/obj",
        ],
    );
    assert_refused(&out, "s3://data/obj", "error");
}

#[test]
fn random_reads_through_cat_and_stats_agree_with_the_object() {
    if !uffd_allowed() {
        return;
    }
    // Several objects of odd sizes, one server: every byte of each through `cat`.
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let mut rng = XorShift::new(17);
    for i in 0..4 {
        let len = (rng.next_u64() % (3 << 20)) as usize + 1;
        let key = format!("obj{i}");
        s3.put_pattern("data", &key, len as u64);
        let url = format!("s3://data/{key}");
        let out = mmkit_env(&s3.env(), &["page", "cat", &url]);
        assert_code(&out, 0);
        assert!(out.stdout == pattern(len), "{url} ({len} bytes) differs");
    }
}

/// Issue 22, item 10: `--timeout 1s` through a proxy that resets the first GET, stalls
/// its first retry past the timeout and cuts the second's body short: the default three
/// retries bring the object's bytes.
#[test]
fn cat_through_a_proxy_that_resets_stalls_and_cuts_is_the_objects_bytes() {
    if !uffd_allowed() {
        return;
    }
    let len = 3 * 1024 * 1024 + 77;
    let s3 = server(len);
    let proxy = FaultyProxy::start(
        s3.addr(),
        &[
            Fault::Reset,
            Fault::Stall,
            Fault::Truncate,
            Fault::Pass,
            Fault::Stall,
        ],
    );
    let out = mmkit_env(
        &proxy.env(),
        &["page", "cat", "--timeout", "1s", "s3://data/obj"],
    );
    assert_code(&out, 0);
    assert!(
        out.stdout == pattern(len),
        "page cat through the proxy differs"
    );
    assert_eq!(proxy.pending(), 0, "{:?}", proxy.applied());
}
