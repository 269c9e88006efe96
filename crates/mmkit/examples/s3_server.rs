//! A local S3 server with a chosen round-trip delay: how a person measures
//! `mmkit page bench --url s3://…` (or anything else that reads S3) against a store that
//! answers like a real one, without a real one.
//!
//! It is the remote tests' server (`mmkit_testkit::s3`, `crates/mmkit-testkit/src/s3.rs`): s3s-fs, the S3 REST API over a
//! directory, on 127.0.0.1, every response delayed by `--delay-ms`, with fixed test
//! credentials and path-style URLs. It prints one line with the endpoint, then the
//! environment to export, then serves until killed.
//!
//! ```text
//! cargo run --release -p mmkit --example s3_server -- \
//!     --dir /tmp/s3 --delay-ms 5 --make bench/big=1G --put bench/notes=README.md
//! # in another shell, paste the export lines it printed, then:
//! mmkit page bench --url s3://bench/big
//! ```
//!
//! Options:
//!
//! - `--dir DIR` (required): the directory served, created if missing; a bucket is a
//!   subdirectory, an object a file. Objects from an earlier run stay served.
//! - `--delay-ms N`: delay every response by N ms (default 0).
//! - `--port P`: listen on 127.0.0.1:P (default 0: any free port).
//! - `--put BUCKET/KEY=FILE` (repeatable): upload FILE at start.
//! - `--make BUCKET/KEY=SIZE` (repeatable): upload SIZE bytes of generated data at start
//!   (`4096`, `64M`, `1G`, powers of 1024): byte `i` is `((i % 251) ^ (i / 4096)) | 1`,
//!   the tests' pattern. Objects over 16 MiB go up in 8 MiB parts, as a multipart upload.
//!
//! Buckets named by `--put` and `--make` are created; names follow S3's rules (3 to 63 of
//! `a-z 0-9 . -`). Uploads go through the S3 API, before the delay is turned on, so that
//! s3s-fs stores each object's ETag (for a file it did not receive, it computes the MD5 of
//! the whole file on every GET).

use mmkit_testkit::s3;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What to upload at start.
enum Upload {
    File(PathBuf),
    Make(u64),
}

struct Args {
    dir: PathBuf,
    delay: Duration,
    port: u16,
    uploads: Vec<(String, String, Upload)>,
}

const USAGE: &str = "usage: s3_server --dir DIR [--delay-ms N] [--port P] \
                     [--put BUCKET/KEY=FILE]... [--make BUCKET/KEY=SIZE]...";

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("s3_server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match s3::S3Options::new().dir(&args.dir).port(args.port).start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("s3_server: cannot serve {}: {e}", args.dir.display());
            return ExitCode::FAILURE;
        }
    };
    for (bucket, key, upload) in &args.uploads {
        server.create_bucket(bucket);
        let start = Instant::now();
        let etag = match upload {
            Upload::File(path) => server.put_file(bucket, key, path),
            Upload::Make(len) => server.put_pattern(bucket, key, *len),
        };
        eprintln!(
            "s3_server: put s3://{bucket}/{key} (ETag {etag}) in {:.1?}",
            start.elapsed()
        );
    }
    server.set_delay(args.delay);
    server.reset_counts();
    println!(
        "s3_server: serving {} at {} (delay {} ms); kill it to stop",
        server.dir().display(),
        server.endpoint(),
        args.delay.as_millis()
    );
    for (k, v) in server.env() {
        println!("export {k}={v}");
    }
    loop {
        std::thread::park();
    }
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut dir, mut delay, mut port, mut uploads) = (None, Duration::ZERO, 0, Vec::new());
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--delay-ms" => {
                let ms = value
                    .parse()
                    .map_err(|_| format!("bad --delay-ms {value}"))?;
                delay = Duration::from_millis(ms);
            }
            "--port" => port = value.parse().map_err(|_| format!("bad --port {value}"))?,
            "--put" | "--make" => {
                let (object, what) = value
                    .split_once('=')
                    .ok_or(format!("{flag} {value}: want BUCKET/KEY=..."))?;
                let (bucket, key) = object
                    .split_once('/')
                    .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                    .ok_or(format!("{flag} {value}: want BUCKET/KEY"))?;
                if !s3::check_bucket_name(bucket) {
                    return Err(format!(
                        "{bucket:?}: S3 bucket names are 3 to 63 of a-z 0-9 . -"
                    ));
                }
                let upload = if flag == "--put" {
                    std::fs::metadata(what).map_err(|e| format!("--put {what}: {e}"))?;
                    Upload::File(PathBuf::from(what))
                } else {
                    Upload::Make(size(what).ok_or(format!("bad size {what}"))?)
                };
                uploads.push((bucket.to_string(), key.to_string(), upload));
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let dir = dir.ok_or("--dir is required")?;
    Ok(Args {
        dir,
        delay,
        port,
        uploads,
    })
}

/// `4096`, `64K`, `64M`, `1G`, `2T` (powers of 1024; a trailing `B` or `iB` allowed).
fn size(s: &str) -> Option<u64> {
    let s = s.trim_end_matches("iB").trim_end_matches('B');
    let (digits, shift) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 10),
        'M' | 'm' => (&s[..s.len() - 1], 20),
        'G' | 'g' => (&s[..s.len() - 1], 30),
        'T' | 't' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}
