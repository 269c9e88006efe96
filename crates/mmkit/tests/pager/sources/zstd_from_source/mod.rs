//! `ZstdSource::from_source`: zstd bytes read through another `Source` (a `MemSource`
//! or a `FileSource` here, standing in for an object in a store) read back equal to the
//! input, a failing source gives errors and never a panic, and a counting source shows
//! how few calls and bytes opening and reading a page take.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mmkit::pager::{compress_seekable, FileSource, MemSource, Source, ZstdSource};
use mmkit::ErrorKind;

use super::{check_all, check_random, expect, read, sample, PAGE};

/// `data` as a seekable zstd file in memory, and the size of its seek table.
fn seekable_bytes(data: &[u8], frame: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let stats = compress_seekable(&mut &data[..], &mut out, frame, 3).unwrap();
    (out, stats.seek_table_bytes as usize)
}

fn from_mem(bytes: Vec<u8>) -> ZstdSource {
    ZstdSource::from_source(Arc::new(MemSource::new(bytes))).unwrap()
}

#[test]
fn from_source_reads_seekable_walked_and_single_frame_data() {
    let data = sample((3 << 20) + 123, 21);
    let (zst, table) = seekable_bytes(&data, 64 << 10);

    // Over memory, with the seek table.
    let src = from_mem(zst.clone());
    assert!(src.has_seek_table());
    assert_eq!((src.frames(), src.path()), (49, None));
    assert!(
        src.describe().starts_with("zstd memory (") && src.describe().ends_with("(49 frames)"),
        "{}",
        src.describe()
    );
    check_all(&src, &data);

    // Over a file source: the same index and bytes as opening the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.zst");
    std::fs::write(&path, &zst).unwrap();
    let src = ZstdSource::from_source(Arc::new(FileSource::open(&path).unwrap())).unwrap();
    let direct = ZstdSource::open(&path).unwrap();
    assert_eq!(direct.path(), Some(path.as_path()));
    assert_eq!(src.path(), None);
    assert_eq!((src.frames(), src.len()), (direct.frames(), direct.len()));
    assert_eq!(
        src.describe(),
        format!("zstd file {} (49 frames)", path.display())
    );
    check_random(&src, &data, 100, 5);

    // Without the seek table the frames are walked through the source.
    let src = from_mem(zst[..zst.len() - table].to_vec());
    assert!(!src.has_seek_table());
    assert_eq!(src.frames(), 49);
    check_random(&src, &data, 100, 6);
}

#[test]
fn from_source_reads_plain_single_frame_streams() {
    // Over 4 MiB in one frame with its content size: read with the streaming decoder.
    let data = sample((6 << 20) + 77, 22);
    let one = ::zstd::bulk::compress(&data, 3).unwrap();
    let src = from_mem(one);
    assert_eq!((src.frames(), src.unsized_frames()), (1, 0));
    assert!(!src.has_seek_table());
    check_random(&src, &data, 40, 7);
    // Forward through the whole frame, as the pager reads a file in order.
    for off in (0..data.len()).step_by(256 << 10) {
        assert!(
            read(&src, off as u64, PAGE) == expect(&data, off, PAGE),
            "{off}"
        );
    }

    // Streamed, no content size: measured at open, through the source.
    let streamed = ::zstd::stream::encode_all(&data[..], 3).unwrap();
    let src = from_mem(streamed);
    assert_eq!((src.frames(), src.unsized_frames()), (1, 1));
    check_random(&src, &data, 20, 8);

    // A small one, decoded whole.
    let small = ::zstd::bulk::compress(&data[..5000], 3).unwrap();
    check_all(&from_mem(small), &data[..5000]);
}

#[test]
fn from_source_edge_cases() {
    // Empty data: no frames, nothing to read.
    let src = from_mem(Vec::new());
    assert!(src.is_empty());
    assert_eq!(read(&src, 0, PAGE), vec![0; PAGE]);

    // Not zstd: the error names the source.
    let err =
        ZstdSource::from_source(Arc::new(MemSource::new(b"plain text".to_vec()))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert_eq!(err.path(), Some(Path::new("memory (10 bytes)")), "{err}");

    // Truncated: the walk finds the last frame ending past the end.
    let data = sample(1 << 20, 23);
    let (zst, _) = seekable_bytes(&data, 128 << 10);
    let err = ZstdSource::from_source(Arc::new(MemSource::new(zst[..zst.len() / 2].to_vec())))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("truncated"), "{err}");

    // A seek table longer than the one read at the end (over 8000 frames).
    let data = sample(9000 * 16, 24);
    let (zst, table) = seekable_bytes(&data, 16);
    assert!(table > 64 << 10, "{table}");
    let counted = Arc::new(Counting::new(MemSource::new(zst)));
    let src = ZstdSource::from_source(counted.clone()).unwrap();
    assert!(src.has_seek_table());
    assert_eq!(src.frames(), 9000);
    assert_eq!(counted.calls(), 2, "the end, then the whole table");
    check_random(&src, &data, 20, 9);
}

/// A source that counts the calls to `read_at` and the bytes they asked for.
struct Counting<S> {
    inner: S,
    calls: AtomicU64,
    bytes: AtomicU64,
}

impl<S: Source> Counting<S> {
    fn new(inner: S) -> Self {
        Counting {
            inner,
            calls: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }
}

impl<S: Source> Source for Counting<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_at(offset, buf)
    }

    fn describe(&self) -> String {
        format!("counted {}", self.inner.describe())
    }
}

#[test]
fn reading_a_page_fetches_about_one_frame() {
    const FRAME: usize = 64 << 10;
    // 128 frames; the first half incompressible, so each of those is about FRAME bytes.
    let data = sample(128 * FRAME, 25);
    let (zst, table) = seekable_bytes(&data, FRAME);
    let whole = zst.len() as u64;
    let counted = Arc::new(Counting::new(MemSource::new(zst.clone())));
    let src = ZstdSource::from_source(counted.clone()).unwrap();
    assert_eq!(src.frames(), 128);
    // Opening read the end once: footer and table together.
    assert_eq!(counted.calls(), 1);
    assert!(counted.bytes() <= 64 << 10);

    for off in [
        10 * FRAME + 3 * PAGE,
        100 * FRAME + PAGE,
        0,
        128 * FRAME - PAGE,
    ] {
        counted.reset();
        assert!(read(&src, off as u64, PAGE) == expect(&data, off, PAGE));
        let (calls, bytes) = (counted.calls(), counted.bytes());
        assert_eq!(calls, 1, "one call for the page at {off}");
        assert!(
            bytes <= 2 * (FRAME as u64 + 1024),
            "{bytes} bytes read for the page at {off} (the file is {whole} bytes)"
        );
        // Again: cached, no call.
        counted.reset();
        assert!(read(&src, off as u64, PAGE) == expect(&data, off, PAGE));
        assert_eq!(counted.calls(), 0);
    }
    assert!(whole > 20 * 2 * (FRAME as u64 + 1024), "{whole}");

    // Walking without the seek table: one call a frame (each is one block, whose header
    // is read with the frame's).
    let counted = Arc::new(Counting::new(MemSource::new(
        zst[..zst.len() - table].to_vec(),
    )));
    let src = ZstdSource::from_source(counted.clone()).unwrap();
    assert!(!src.has_seek_table());
    assert_eq!(
        counted.calls(),
        1 + 128,
        "the end (no seek table), then each frame"
    );
    assert!(
        counted.bytes() <= (64 << 10) + 128 * 21,
        "{}",
        counted.bytes()
    );
}

/// A source whose `read_at` fails from its `ok + 1`-th call on, with a real error
/// borrowed from opening a missing file.
struct Failing {
    inner: MemSource,
    ok: u64,
    calls: AtomicU64,
}

impl Failing {
    const MISSING: &'static str = "/nonexistent/mmkit-failing-source";
}

impl Source for Failing {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
        if self.calls.fetch_add(1, Ordering::Relaxed) >= self.ok {
            return FileSource::open(Failing::MISSING).map(|_| ());
        }
        self.inner.read_at(offset, buf)
    }

    fn describe(&self) -> String {
        "failing".into()
    }
}

/// Open `bytes` through a source failing after `ok` calls, then read `data` back at
/// random: every read gives the right bytes or the source's error, never a panic.
fn check_failing(bytes: &[u8], data: &[u8], ok: u64) -> (bool, usize) {
    let failing = Failing {
        inner: MemSource::new(bytes.to_vec()),
        ok,
        calls: AtomicU64::new(0),
    };
    let is_source_err = |e: &mmkit::Error| {
        e.errno() == Some(libc::ENOENT) && e.path() == Some(Path::new(Failing::MISSING))
    };
    let src = match ZstdSource::from_source(Arc::new(failing)) {
        Ok(src) => src,
        Err(e) => {
            assert!(is_source_err(&e), "open after {ok} calls: {e}");
            return (false, 0);
        }
    };
    let mut x = ok + 1;
    let mut errors = 0;
    for _ in 0..30 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let off = ((x >> 33) as usize % (data.len() / PAGE + 1)) * PAGE;
        let mut buf = vec![0u8; 2 * PAGE];
        match src.read_at(off as u64, &mut buf) {
            Ok(()) => assert!(buf == expect(data, off, 2 * PAGE), "{off} after {ok}"),
            Err(e) => {
                assert!(is_source_err(&e), "read at {off} after {ok} calls: {e}");
                errors += 1;
            }
        }
    }
    (true, errors)
}

#[test]
fn a_failing_source_gives_errors_never_a_panic() {
    let data = sample(1 << 20, 26);
    let (seekable, table) = seekable_bytes(&data, 64 << 10);
    let walked = seekable[..seekable.len() - table].to_vec();
    let big = sample((5 << 20) + 9, 27);
    let single = ::zstd::bulk::compress(&big, 3).unwrap();
    let streamed = ::zstd::stream::encode_all(&big[..], 3).unwrap();

    for (name, bytes, data) in [
        ("seekable", &seekable, &data),
        ("walked", &walked, &data),
        ("single frame", &single, &big),
        ("streamed", &streamed, &big),
    ] {
        // How many calls opening takes; fail before, at and after.
        let counted = Arc::new(Counting::new(MemSource::new(bytes.clone())));
        ZstdSource::from_source(counted.clone()).unwrap();
        let to_open = counted.calls();
        let (mut opened, mut failed) = (false, false);
        for ok in (0..3).chain(to_open.saturating_sub(3)..to_open + 12) {
            let (o, errors) = check_failing(bytes, data, ok);
            opened |= o;
            failed |= o && errors > 0;
        }
        assert!(
            opened && failed,
            "{name}: some opens succeed and their reads fail"
        );
    }
}
