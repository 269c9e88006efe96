//! The tests' S3 server (`mmkit_testkit::s3`) checked on its own, through `object_store`
//! directly (not through mmkit): what goes in comes out byte for byte, whole and by range;
//! multipart uploads; authentication; the delay; an abrupt stop; a server that never
//! answers. The remote pillar's tests rely on each of these.

use mmkit_testkit as common;

use std::time::{Duration, Instant};

use common::note;
use hang::HangServer;
use mmkit_testkit::{hang, s3};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use s3::{fill_pattern, S3Server};

/// `len` bytes of the generated pattern from offset `at`.
fn pattern_at(at: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill_pattern(at, &mut buf);
    buf
}

/// A client for `bucket` that fails at once (no retry) and gives up after `timeout`.
fn quick_client(builder: object_store::aws::AmazonS3Builder, timeout: Duration) -> AmazonS3 {
    let retry = RetryConfig {
        max_retries: 0,
        retry_timeout: timeout,
        ..RetryConfig::default()
    };
    builder
        .with_retry(retry)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_timeout(timeout)
                .with_connect_timeout(timeout),
        )
        .build()
        .unwrap()
}

#[test]
fn fill_pattern_is_the_tests_pattern() {
    // From 0: `common::pattern`, which the local tests use; anywhere else: its formula.
    assert_eq!(pattern_at(0, 3 << 20), common::pattern(3 << 20));
    for at in [1, 4095, 4096, 12_345, (1 << 32) - 7, (5 << 30) + 3] {
        let want: Vec<u8> = (at..at + 3 * 4096 + 17)
            .map(|i| ((i % 251) as u8 ^ (i / 4096) as u8) | 1)
            .collect();
        assert_eq!(pattern_at(at, want.len()), want, "at {at}");
    }
    let mut empty = [];
    fill_pattern(7, &mut empty);
}

#[tokio::test]
async fn put_get_and_range_get_byte_for_byte() {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let bytes = pattern_at(0, 1 << 20);
    let etag = s3.put("data", "dir/obj", &bytes);
    let empty_etag = s3.put("data", "empty", b"");
    // What s3s-fs stored is the object, in a file named like the key.
    assert_eq!(std::fs::read(s3.dir().join("data/dir/obj")).unwrap(), bytes);

    let store = s3.client("data").build().unwrap();
    let path = Path::from("dir/obj");
    let got = store.get(&path).await.unwrap();
    assert_eq!(got.meta.size, bytes.len() as u64);
    assert_eq!(got.meta.e_tag.as_deref(), Some(etag.as_str()));
    assert_eq!(got.bytes().await.unwrap(), bytes);
    // One PUT: the ETag is the quoted MD5 of the bytes (32 hex digits).
    assert_eq!(etag.len(), 34, "{etag}");

    for range in [0..1, 4095..4097, 1000..70_000, (1 << 20) - 5..1 << 20] {
        let part = store.get_range(&path, range.clone()).await.unwrap();
        let want = &bytes[range.start as usize..range.end as usize];
        assert_eq!(part, want, "range {range:?}");
    }
    let meta = store.head(&path).await.unwrap();
    assert_eq!(meta.size, 1 << 20);
    assert_eq!(meta.e_tag.as_deref(), Some(etag.as_str()));

    let empty = store.get(&Path::from("empty")).await.unwrap();
    assert_eq!(empty.meta.e_tag.as_deref(), Some(empty_etag.as_str()));
    assert!(empty.bytes().await.unwrap().is_empty());

    // A range past the end, a missing key: errors, not empty answers.
    assert!(store
        .get_range(&path, (2 << 20)..(2 << 20) + 1)
        .await
        .is_err());
    let missing = store.get(&Path::from("nope")).await.unwrap_err();
    assert!(
        matches!(missing, object_store::Error::NotFound { .. }),
        "{missing}"
    );

    s3.delete("data", "dir/obj");
    assert!(matches!(
        store.head(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn multipart_upload_reads_back_by_range() {
    let s3 = S3Server::start();
    s3.create_bucket("big");
    let len: u64 = 40 << 20;
    let etag = s3.put_pattern("big", "obj", len);
    // Five 8 MiB parts: S3's multipart ETag, the MD5 of the parts' MD5s and their count.
    assert!(etag.ends_with("-5\""), "{etag}");

    let store = s3.client("big").build().unwrap();
    let path = Path::from("obj");
    let meta = store.head(&path).await.unwrap();
    assert_eq!(meta.size, len);
    assert_eq!(meta.e_tag.as_deref(), Some(etag.as_str()));
    let part = 8u64 << 20;
    for range in [
        0..4096,
        part - 10..part + 10,
        3 * part - 4096..3 * part + 4096 * 3,
        len - 100..len,
        12_345_678..12_345_678 + (3 << 20),
    ] {
        let got = store.get_range(&path, range.clone()).await.unwrap();
        let want = pattern_at(range.start, (range.end - range.start) as usize);
        assert!(got == want, "range {range:?} differs");
    }
    let all = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(all == pattern_at(0, len as usize), "whole object differs");
}

#[tokio::test]
async fn wrong_secret_is_refused_with_403() {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put("data", "obj", b"secret");
    let store = s3
        .client("data")
        .with_secret_access_key("not-the-secret")
        .build()
        .unwrap();
    let err = store.get(&Path::from("obj")).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("403"), "{err}");
    let store = s3
        .client("data")
        .with_access_key_id("nobody")
        .build()
        .unwrap();
    assert!(store.get(&Path::from("obj")).await.is_err());
}

#[tokio::test]
async fn etag_preconditions_are_answered_as_s3_does() {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let old = s3.put("data", "obj", b"first version");
    let store = s3.client("data").build().unwrap();
    let path = Path::from("obj");
    let opts = |if_match: Option<&str>, if_none_match: Option<&str>, head: bool| GetOptions {
        if_match: if_match.map(str::to_string),
        if_none_match: if_none_match.map(str::to_string),
        // (s3s-fs ignores a Range on HEAD, which object_store then rejects: NotPartial.)
        range: (!head).then(|| (0..5).into()),
        head,
        ..GetOptions::default()
    };
    let got = store.get_opts(&path, opts(Some(&old), None, false)).await;
    assert_eq!(got.unwrap().bytes().await.unwrap(), &b"first"[..]);
    store
        .get_opts(&path, opts(Some("*"), None, true))
        .await
        .unwrap();

    // The object changes: a reader pinned to the old ETag is refused, as by S3.
    let new = s3.put("data", "obj", b"second version");
    assert_ne!(old, new);
    for head in [false, true] {
        let err = store
            .get_opts(&path, opts(Some(&old), None, head))
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::Precondition { .. }),
            "head {head}: {err}"
        );
    }
    let err = store
        .get_opts(&path, opts(None, Some(&new), false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotModified { .. }),
        "{err}"
    );
    let got = store
        .get_opts(&path, opts(Some(&new), Some(&old), false))
        .await;
    assert_eq!(got.unwrap().bytes().await.unwrap(), &b"secon"[..]);
}

#[tokio::test]
async fn every_request_waits_the_delay_and_is_counted() {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put("data", "obj", &pattern_at(0, 100_000));
    let store = s3.client("data").build().unwrap();
    let path = Path::from("obj");
    store.head(&path).await.unwrap(); // Connected: the delay below is the server's.

    s3.set_delay(Duration::from_millis(50));
    assert_eq!(s3.delay(), Duration::from_millis(50));
    s3.reset_counts();
    let start = Instant::now();
    let got = store.get_range(&path, 10..20_010).await.unwrap();
    let took = start.elapsed();
    assert_eq!(got, pattern_at(10, 20_000));
    // A check of the helper (the sleep happened), not a performance claim.
    assert!(took >= Duration::from_millis(50), "{took:?}");
    let counts = s3.counts();
    assert_eq!((counts.requests, counts.gets), (1, 1), "{counts:?}");
    assert_eq!(counts.get_bytes, 20_000);

    s3.set_delay(Duration::ZERO);
    store.head(&path).await.unwrap();
    let counts = s3.counts();
    assert_eq!((counts.requests, counts.gets), (2, 1), "a HEAD is no GET");
}

#[tokio::test]
async fn stop_mid_stream_fails_the_client_fast() {
    let mut s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put_pattern("data", "obj", 64 << 20);
    let store = quick_client(s3.client("data"), Duration::from_secs(20));
    let path = Path::from("obj");
    // The response has begun: headers read, the body not. The client reads nothing more
    // until after the stop, so the server can have sent no more than the sockets hold.
    let got = store.get(&path).await.unwrap();
    assert_eq!(got.meta.size, 64 << 20);
    // An idle connection of another client must not hold the stop up either.
    let _idle = std::net::TcpStream::connect(s3.addr()).unwrap();

    let start = Instant::now();
    s3.stop();
    assert!(s3.is_stopped());
    let stop_took = start.elapsed();
    let body = tokio::time::timeout(Duration::from_secs(10), got.bytes()).await;
    let failed = start.elapsed();
    let err = body
        .expect("the body read hung after stop()")
        .expect_err("the whole body arrived from a stopped server");
    note(&format!(
        "s3_server: stop took {stop_took:?}; the body read failed {failed:?} after: {err}"
    ));

    // New connections are refused, at once.
    assert!(std::net::TcpStream::connect(s3.addr()).is_err());
    let err = tokio::time::timeout(Duration::from_secs(10), store.head(&path))
        .await
        .expect("a request to a stopped server hung")
        .expect_err("a stopped server answered");
    note(&format!("s3_server: a request after stop(): {err}"));
}

#[tokio::test]
async fn stop_while_a_request_waits_its_delay() {
    let mut s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put("data", "obj", b"late");
    s3.set_delay(Duration::from_secs(30));
    let store = quick_client(s3.client("data"), Duration::from_secs(20));
    let pending = tokio::spawn(async move { store.get(&Path::from("obj")).await });
    while s3.counts().gets == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s3.stop();
    let res = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("a request waiting its delay hung after stop()")
        .unwrap();
    assert!(res.is_err(), "a stopped server answered");
}

#[tokio::test]
async fn a_server_that_never_answers_times_the_client_out() {
    let hang = HangServer::start();
    let store = quick_client(hang.client("data"), Duration::from_millis(500));
    let start = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(10), store.get(&Path::from("obj")))
        .await
        .expect("the client's own timeout did not fire");
    let took = start.elapsed();
    let err = res.expect_err("a hanging server answered");
    assert!(took >= Duration::from_millis(500), "{took:?}: {err}");
    assert!(took < Duration::from_secs(5), "{took:?}: {err}");
    let env = hang.env();
    assert!(env.contains(&("AWS_ENDPOINT".into(), hang.endpoint())));
}

#[test]
fn env_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let s3 = s3::S3Options::new()
        .dir(&root)
        .delay(Duration::from_millis(3))
        .start()
        .unwrap();
    assert_eq!(s3.dir(), root);
    assert_eq!(s3.delay(), Duration::from_millis(3));
    assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
    let env = s3.env();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", s3.access_key()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", &s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        assert!(env.contains(&(k.into(), v.into())), "{k} in {env:?}");
    }
    s3.create_bucket("kept");
    s3.put("kept", "k", b"x");
    drop(s3);
    // A directory given is the caller's: still there, with the object, after the stop.
    assert_eq!(std::fs::read(root.join("kept/k")).unwrap(), b"x");
}

/// Throughput of s3s-fs over loopback, for the record (not a test of anything): a 256 MiB
/// object read whole in one GET, and in 8 MiB ranges 4 at a time, with no delay and with
/// 5 ms. `cargo test -p mmkit --release --test s3_server -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn throughput_256mib() {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    let len: u64 = 256 << 20;
    s3.put_pattern("data", "obj", len);
    let store = std::sync::Arc::new(s3.client("data").build().unwrap());
    let path = Path::from("obj");
    for delay_ms in [0, 5] {
        s3.set_delay(Duration::from_millis(delay_ms));
        for round in 0..3 {
            let start = Instant::now();
            let all = store.get(&path).await.unwrap().bytes().await.unwrap();
            let whole = start.elapsed();
            assert_eq!(all.len() as u64, len);
            drop(all);

            let start = Instant::now();
            let chunk = 8u64 << 20;
            let mut at = 0;
            while at < len {
                let tasks: Vec<_> = (0..4)
                    .map(|i| at + i * chunk)
                    .filter(|&o| o < len)
                    .map(|o| {
                        let (store, path) = (store.clone(), path.clone());
                        tokio::spawn(async move { store.get_range(&path, o..o + chunk).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap().unwrap();
                }
                at += 4 * chunk;
            }
            let ranged = start.elapsed();
            let mibs = |d: Duration| 256.0 / d.as_secs_f64();
            note(&format!(
                "s3_server: delay {delay_ms} ms, round {round}: one GET {whole:?} ({:.0} MiB/s); \
                 8 MiB ranges x4 {ranged:?} ({:.0} MiB/s)",
                mibs(whole),
                mibs(ranged)
            ));
        }
    }
}
