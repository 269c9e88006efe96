//! `ObjectSource` against a real S3 server (s3s-fs on 127.0.0.1, started here): random
//! reads from 8 threads byte for byte, what a scan and random reads fetch, the requests
//! before the first byte, a server that dies mid-scan or never answers, an object
//! replaced under its reader, wrong credentials and missing buckets and keys, and a
//! seekable zstd object mapped as its uncompressed bytes.
//!
//! Tests that need userfaultfd print `skipped: <reason>` where it is not allowed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mmkit::pager::{compress_seekable, ObjectOptions, ObjectSource, Pager, PagerOptions};
use mmkit::pager::{Source, ZstdSource};
use mmkit::ErrorKind;

// The servers on loopback: S3, one that hangs, plain HTTP, a faulty proxy.
use common::hang::HangServer;
use common::http::HttpServer;
use common::proxy::{Fault, FaultyProxy};
use common::s3::{fill_pattern, S3Server};
use mmkit::helpers::XorShift;
use mmkit_testkit as common;

use crate::pager_common;
use pager_common::build;

const PAGE: usize = 4096;
const MIB: u64 = 1 << 20;

/// Options reaching `s3` (set explicitly: tests run in parallel, each with its server),
/// with short timeouts so failures show quickly.
fn options(s3: &S3Server) -> ObjectOptions {
    let mut o = ObjectOptions::new();
    for (k, v) in s3.env() {
        o.set(&k.to_ascii_lowercase(), &v);
    }
    o.timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .retries(1);
    o
}

/// A server with bucket `data` holding `key` of `len` pattern bytes.
fn server_with(key: &str, len: u64) -> S3Server {
    let s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put_pattern("data", key, len);
    s3.reset_counts();
    s3
}

fn expected(at: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fill_pattern(at, &mut v);
    v
}

fn open(s3: &S3Server, key: &str) -> Arc<ObjectSource> {
    Arc::new(options(s3).open(&format!("s3://data/{key}")).expect("open"))
}

#[test]
fn random_reads_from_eight_threads_match_byte_for_byte() {
    let len = 48 * MIB + 123;
    let s3 = server_with("obj", len);
    let src = open(&s3, "obj");
    assert_eq!(src.len(), len);
    let Some(pager) = build(PagerOptions::new().threads(4), src.clone()) else {
        return;
    };
    let pager = &pager;
    std::thread::scope(|s| {
        for t in 0..8u64 {
            s.spawn(move || {
                let mut rng = XorShift::new(t + 11);
                let mut buf = vec![0u8; 3 * PAGE];
                for i in 0..150 {
                    let off = rng.next_u64() % len;
                    let n = (rng.next_u64() % (3 * PAGE as u64) + 1).min(len - off) as usize;
                    let want = expected(off, n);
                    if i % 2 == 0 {
                        let off = off as usize;
                        assert_eq!(&pager.as_slice()[off..off + n], &want[..], "at {off}");
                    } else {
                        pager.read_at(off as usize, &mut buf[..n]).expect("read_at");
                        assert_eq!(&buf[..n], &want[..], "at {off}");
                    }
                }
            });
        }
    });
    let st = src.stats();
    assert!(st.requests > 100, "{st:?}");
}

#[test]
fn a_scan_fetches_each_byte_once_and_ahead_of_the_reader() {
    let len = 40 * MIB;
    let s3 = server_with("obj", len);
    let src = open(&s3, "obj");
    let Some(pager) = build(&PagerOptions::new(), src.clone()) else {
        return;
    };
    let mut buf = vec![0u8; 1 << 20];
    for off in (0..len).step_by(buf.len()) {
        pager.read_at(off as usize, &mut buf).expect("scan");
        assert_eq!(buf, expected(off, buf.len()), "at {off}");
    }
    let (st, obj) = (pager.stats(), src.stats());
    assert_eq!(obj.bytes, len, "each byte fetched once: {obj:?} {st:?}");
    assert!(st.prefetched_pages > st.pages_filled / 2, "{st:?}");
    // Counted by the server too: what it sent is what the source received.
    assert_eq!(s3.counts().get_bytes, len, "{:?}", s3.counts());
}

#[test]
fn random_reads_of_one_percent_fetch_at_most_three_percent() {
    let len = 128 * MIB;
    let s3 = server_with("obj", len);
    let src = open(&s3, "obj");
    let Some(pager) = build(PagerOptions::new().threads(2), src.clone()) else {
        return;
    };
    let pages = len / PAGE as u64;
    let reads = pages / 100;
    let mut rng = XorShift::new(5);
    let mut buf = vec![0u8; PAGE];
    for _ in 0..reads {
        let off = (rng.next_u64() % pages) * PAGE as u64;
        pager.read_at(off as usize, &mut buf).expect("read");
        assert_eq!(buf, expected(off, PAGE));
    }
    let fetched = src.stats().bytes;
    assert!(
        fetched * 100 <= len * 3,
        "random 4 KiB reads of 1% fetched {fetched} of {len} bytes: {:?}",
        pager.stats()
    );
}

#[test]
fn the_first_byte_takes_two_requests() {
    let s3 = server_with("obj", 8 * MIB);
    let src = open(&s3, "obj");
    let Some(pager) = build(&PagerOptions::new(), src.clone()) else {
        return;
    };
    let mut b = [0u8; 1];
    pager.read_at(12345, &mut b).expect("read");
    assert_eq!(b[0], expected(12345, 1)[0]);
    // HEAD at open, one ranged GET for the page.
    assert_eq!(s3.counts().requests, 2, "{:?}", s3.counts());
    assert_eq!(src.stats().requests, 2);
}

#[test]
fn a_server_that_dies_mid_scan_gives_an_error_not_a_hang() {
    let len = 64 * MIB;
    let mut s3 = server_with("obj", len);
    s3.set_delay(Duration::from_millis(3));
    let src = open(&s3, "obj");
    let Some(pager) = build(PagerOptions::new().readahead(16), src) else {
        return;
    };
    let mut buf = vec![0u8; PAGE];
    for off in (0..4 * MIB).step_by(PAGE) {
        pager
            .read_at(off as usize, &mut buf)
            .expect("scan before the stop");
    }
    s3.stop();
    let t = Instant::now();
    let mut err = None;
    for off in (4 * MIB..len).step_by(PAGE) {
        if let Err(e) = pager.read_at(off as usize, &mut buf) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("a read after the server died fails");
    assert_eq!(e.kind(), ErrorKind::StorageFault, "{e}");
    assert!(e.to_string().contains("s3://data/obj"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let hang = HangServer::start();
    let mut o = ObjectOptions::new();
    o.set("aws_endpoint", &hang.endpoint())
        .set("aws_allow_http", "true")
        .set("aws_access_key_id", "k")
        .set("aws_secret_access_key", "s")
        .set("aws_region", "us-east-1")
        .timeout(Duration::from_millis(300))
        .retries(1);
    let t = Instant::now();
    let e = o.open("s3://data/obj").expect_err("no answer");
    assert_eq!(e.kind(), ErrorKind::StorageFault, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn an_object_replaced_under_its_reader_is_an_error_not_mixed_bytes() {
    // Refused by the store (412 to If-Match), and noticed by the source itself when the
    // store ignores If-Match (as s3s-fs alone does): the size and ETag of every answer.
    for ignore in [false, true] {
        replaced_object(ignore);
    }
}

fn replaced_object(store_ignores_if_match: bool) {
    let s3 = server_with("obj", 4 * MIB);
    s3.ignore_preconditions(store_ignores_if_match);
    s3.put_pattern("data", "same-size", 4 * MIB);
    let grown = open(&s3, "obj");
    let same = open(&s3, "same-size");
    let mut page = vec![0u8; PAGE];
    grown.read_at(0, &mut page).expect("before the change");
    // A larger object under the same key; and one of the same size, other bytes.
    s3.put_pattern("data", "obj", 6 * MIB);
    s3.put("data", "same-size", &vec![7u8; 4 * MIB as usize]);
    for src in [grown, same] {
        let e = src.read_at(MIB, &mut page).expect_err("changed");
        assert_eq!(e.kind(), ErrorKind::StorageFault, "{e}");
        assert!(e.to_string().contains("changed since it was opened"), "{e}");
        assert_ne!(page, vec![7u8; PAGE]);
    }
}

#[test]
fn wrong_credentials_and_missing_buckets_and_keys_say_so() {
    let s3 = server_with("obj", MIB);
    let mut bad = options(&s3);
    bad.set("aws_secret_access_key", "wrong");
    let e = bad.open("s3://data/obj").expect_err("wrong secret");
    assert_eq!(e.errno(), Some(libc::EACCES), "{e}");
    assert!(e.to_string().contains("s3://data/obj"), "{e}");
    for url in ["s3://nobucket/obj", "s3://data/nokey"] {
        let e = options(&s3).open(url).expect_err(url);
        assert_eq!(e.kind(), ErrorKind::NotFound, "{url}: {e}");
        assert!(e.to_string().contains(url), "{e}");
    }
    for url in ["not a url", "nope://x/y", "s3://"] {
        let e = options(&s3).open(url).expect_err(url);
        assert!(
            matches!(e.kind(), ErrorKind::Format | ErrorKind::NotFound),
            "{url}: {e}"
        );
    }
}

#[test]
fn a_seekable_zstd_object_maps_as_its_uncompressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let len = 24 * MIB as usize;
    let plain = expected(0, len);
    let zst = dir.path().join("data.zst");
    let mut out = std::fs::File::create(&zst).unwrap();
    compress_seekable(&mut &plain[..], &mut out, 256 << 10, 3).expect("compress");
    drop(out);
    let s3 = S3Server::start();
    s3.create_bucket("data");
    s3.put_file("data", "obj.zst", &zst);
    let compressed = std::fs::metadata(&zst).unwrap().len();
    let obj = open(&s3, "obj.zst");
    let src = Arc::new(ZstdSource::from_source(obj.clone()).expect("index"));
    assert_eq!(src.len(), len as u64);
    let Some(pager): Option<Pager> = build(PagerOptions::new().readahead(1), src) else {
        return;
    };
    let before = obj.stats().bytes;
    let mut rng = XorShift::new(3);
    let mut buf = vec![0u8; PAGE];
    for _ in 0..8 {
        let off = (rng.next_u64() % (len - PAGE) as u64) as usize;
        pager.read_at(off, &mut buf).expect("read");
        assert_eq!(&buf[..], &plain[off..off + PAGE], "at {off}");
    }
    let fetched = obj.stats().bytes - before;
    assert!(
        fetched < compressed / 4,
        "8 pages fetched {fetched} of {compressed} compressed bytes"
    );
}

#[test]
fn a_store_shedding_load_is_retried_and_past_the_retries_is_an_error() {
    let s3 = server_with("obj", 4 * MIB);
    let src = open(&s3, "obj");
    let Some(pager) = build(PagerOptions::new().readahead(1), src.clone()) else {
        return;
    };
    let mut page = vec![0u8; PAGE];
    // One 503 (the options allow one retry): the read goes through.
    s3.fail_next(1);
    pager.read_at(0, &mut page).expect("retried");
    assert_eq!(page, expected(0, PAGE));
    // Three in a row: past the retry, the page fails, and stays failed.
    s3.fail_next(3);
    let e = pager
        .read_at(MIB as usize, &mut page)
        .expect_err("503 thrice");
    assert_eq!(e.kind(), ErrorKind::StorageFault, "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    assert!(pager.read_at(MIB as usize, &mut page).is_err());
    // Other pages read on.
    pager
        .read_at(2 * MIB as usize, &mut page)
        .expect("a later page");
    assert_eq!(page, expected(2 * MIB, PAGE));
}

/// Issue 22, item 10: through a proxy that resets connections, cuts bodies short and
/// stalls past the timeout, every read is retried to the right bytes, with the options
/// `mmkit page --timeout 1s` sets (and the default count of retries).
#[test]
fn resets_cut_bodies_and_stalls_are_retried_to_the_right_bytes() {
    use Fault::{Pass, Reset, Stall, Truncate};
    let len = 4 * MIB;
    let s3 = server_with("obj", len);
    // At most three faults in a row: each GET has a first try and three retries.
    let schedule = [
        Reset, Pass, Truncate, Pass, Stall, Pass, Reset, Truncate, Pass, Stall, Reset, Pass,
        Truncate, Stall, Reset, Pass,
    ];
    let proxy = FaultyProxy::start(s3.addr(), &schedule);
    let mut o = ObjectOptions::new();
    for (k, v) in proxy.env() {
        o.set(&k.to_ascii_lowercase(), &v);
    }
    let timeout = Duration::from_secs(1);
    o.timeout(timeout)
        .connect_timeout(timeout)
        .retries(3)
        .part_size(256 << 10);
    let src = o
        .open("s3://data/obj")
        .expect("open (a HEAD, never spoiled)");
    let mut rng = XorShift::new(5);
    let mut reads = 0;
    while proxy.pending() > 0 && reads < 64 {
        let n = (rng.next_u64() % (3 * PAGE as u64)) as usize + 1;
        let at = rng.next_u64() % (len - n as u64);
        let mut buf = vec![0u8; n];
        src.read_at(at, &mut buf).unwrap_or_else(|e| {
            panic!(
                "read {n} bytes at {at} (faults so far {:?}): {e}",
                proxy.applied()
            )
        });
        assert!(buf == expected(at, n), "{n} bytes at {at} differ");
        reads += 1;
    }
    assert_eq!(
        proxy.pending(),
        0,
        "every fault was met: {:?}",
        proxy.applied()
    );
    // A read of several parts at once, through the same faults once more.
    drop(src);
    let proxy2 = FaultyProxy::start(s3.addr(), &[Reset, Truncate, Stall, Pass, Reset]);
    let mut o2 = o.clone();
    for (k, v) in proxy2.env() {
        o2.set(&k.to_ascii_lowercase(), &v);
    }
    let src = o2.open("s3://data/obj").expect("open");
    let mut big = vec![0u8; MIB as usize];
    src.read_at(MIB / 2, &mut big)
        .expect("a read of four parts");
    assert!(big == expected(MIB / 2, MIB as usize), "the parts differ");
    assert_eq!(proxy2.pending(), 0, "{:?}", proxy2.applied());
}

/// `n` bytes that do not compress (zstd stores them as raw blocks, so a flipped byte
/// decodes to a flipped byte, not to a decoding error).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

/// Where each frame of a seekable zstd file lies: its compressed offset and size, from
/// its seek table.
fn frames_of(zst: &[u8]) -> Vec<(usize, usize)> {
    let foot = &zst[zst.len() - 9..];
    let count = le32(foot) as usize;
    let entry = if foot[4] & 0x80 != 0 { 12 } else { 8 };
    let table = zst.len() - 9 - count * entry;
    let mut at = 0;
    (0..count)
        .map(|i| {
            let csize = le32(&zst[table + i * entry..]) as usize;
            at += csize;
            (at - csize, csize)
        })
        .collect()
}

/// `plain` as a seekable zstd file the way the seekable format's reference compressor
/// writes one: frames without a checksum of their own, each frame's checksum (the low 32
/// bits of the XXH64 of its bytes) in the seek table. zstd computes that checksum for a
/// frame that carries one: the last 4 bytes of the same data compressed with it.
fn seekable_with_table_checksums(plain: &[u8], frame: usize) -> Vec<u8> {
    let compressor = |checksum: bool| {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.include_checksum(checksum).unwrap();
        c.include_contentsize(true).unwrap();
        c
    };
    let (mut bare, mut summed) = (compressor(false), compressor(true));
    let (mut out, mut entries) = (Vec::new(), Vec::new());
    let mut count = 0u32;
    for chunk in plain.chunks(frame) {
        let c = bare.compress(chunk).unwrap();
        let with = summed.compress(chunk).unwrap();
        entries.extend_from_slice(&(c.len() as u32).to_le_bytes());
        entries.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        entries.extend_from_slice(&with[with.len() - 4..]);
        out.extend_from_slice(&c);
        count += 1;
    }
    out.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32 + 9).to_le_bytes());
    out.extend_from_slice(&entries);
    out.extend_from_slice(&count.to_le_bytes());
    out.push(0x80); // descriptor: entries carry checksums
    out.extend_from_slice(&0x8F92_EAB1u32.to_le_bytes());
    out
}

/// Issue 22, item 12: a byte flipped in a ranged body (plain HTTP, as a faulty proxy or
/// disk would) is returned as good data where nothing covers it with a checksum (S3 and
/// HTTP give none for a range: the docs say so), and is an error for the pages it falls
/// in where something does: a seekable zstd object's frame checksums, or its seek
/// table's.
#[test]
fn a_byte_flipped_in_a_ranged_body_is_an_error_where_a_checksum_covers_it() {
    let frame = 64 << 10;
    let plain = noise(5 * frame + 1234, 9);
    // A plain object: the range comes through with the flipped byte.
    let http = HttpServer::start(plain.clone());
    http.flip(1000);
    let obj = ObjectSource::open(&http.url("plain.bin")).expect("open over http");
    let mut page = vec![0u8; PAGE];
    obj.read_at(0, &mut page).expect("a range is not verified");
    assert_eq!(page[1000], !plain[1000]);
    assert_eq!(http.flipped(), 1);

    let mut framed = Vec::new();
    compress_seekable(&mut &plain[..], &mut framed, frame, 3).expect("compress");
    for (what, zst) in [
        ("checksums in the frames", framed),
        (
            "checksums in the seek table",
            seekable_with_table_checksums(&plain, frame),
        ),
    ] {
        let frames = frames_of(&zst);
        assert_eq!(frames.len(), 6, "{what}");
        let http = HttpServer::start(zst.clone());
        // In the middle of the second frame, among its raw bytes.
        let (coff, csize) = frames[1];
        http.flip((coff + csize / 2) as u64);
        let obj = Arc::new(ObjectSource::open(&http.url("data.zst")).expect("open"));
        let src = Arc::new(ZstdSource::from_source(obj).expect("index"));
        src.read_at(0, &mut page).expect("the first frame");
        assert_eq!(page, plain[..PAGE], "{what}");
        let r = src.read_at(frame as u64 + 100, &mut page);
        assert!(http.flipped() > 0, "{what}: the second frame was fetched");
        let e = r.expect_err(&format!("{what}: the second frame was damaged on the way"));
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        assert!(e.to_string().contains("checksum"), "{what}: {e}");
        src.read_at(2 * frame as u64, &mut page)
            .expect("the third frame");
        assert_eq!(page, plain[2 * frame..2 * frame + PAGE], "{what}");
        // Through a pager: an error for the damaged frame's pages, never its bytes.
        let Some(pager) = build(PagerOptions::new().readahead(1), src) else {
            continue;
        };
        let e = pager
            .read_at(frame + 5 * PAGE, &mut page)
            .expect_err(&format!("{what}: a damaged page through the pager"));
        assert_eq!(e.kind(), ErrorKind::StorageFault, "{what}: {e}");
        assert!(e.to_string().contains("checksum"), "{what}: {e}");
        pager
            .read_at(3 * frame, &mut page)
            .expect("the fourth frame");
        assert_eq!(page, plain[3 * frame..3 * frame + PAGE], "{what}");
    }
}
