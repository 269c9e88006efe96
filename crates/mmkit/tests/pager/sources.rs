//! The pager's data sources against real files: `FileSource` (short last page, errors,
//! write-back), `FnSource`, `MemSource`, and `ZstdSource` differential against the
//! `zstd` command line (our seekable output decodes with `zstd -dc`; files made by
//! `zstd` in one frame, streamed without a content size, or concatenated read back
//! equal to the input; damaged files give errors). `ZstdSource::from_source` (zstd bytes
//! read through another source) is tested in `zstd_from_source/`.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use mmkit::helpers::XorShift;
use mmkit::pager::{compress_seekable, FileSource, FnSource, MemSource, Source, ZstdSource};
use mmkit::{ErrorKind, Op};

use mmkit_testkit as common;
mod zstd_from_source;

const PAGE: usize = 4096;

/// Deterministic bytes: an incompressible (xorshift) half, then a compressible half.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed | 1);
    let mut v = Vec::with_capacity(len);
    for i in 0..len {
        if i < len / 2 {
            v.push(rng.next_u64() as u8);
        } else {
            v.push(b"the quick brown fox "[i % 20] ^ (i / 100_000) as u8);
        }
    }
    v
}

/// Read `len` bytes at `off` through the source.
fn read(src: &dyn Source, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0xa5; len];
    src.read_at(off, &mut buf).unwrap();
    buf
}

/// `data[off..off+len]`, zero-filled past its end.
fn expect(data: &[u8], off: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    if off < data.len() {
        let n = (data.len() - off).min(len);
        v[..n].copy_from_slice(&data[off..off + n]);
    }
    v
}

/// Check every page, and a few multi-page reads, against `data`.
fn check_all(src: &dyn Source, data: &[u8]) {
    assert_eq!(src.len(), data.len() as u64, "{}", src.describe());
    for off in (0..data.len() + PAGE).step_by(PAGE) {
        assert!(
            read(src, off as u64, PAGE) == expect(data, off, PAGE),
            "page at {off}"
        );
    }
    check_random(src, data, 50, 7);
}

/// Reads of 1..=40 pages at pseudo-random page-aligned offsets, in random order.
fn check_random(src: &dyn Source, data: &[u8], n: usize, seed: u64) {
    let mut x = seed;
    let pages = data.len() / PAGE + 2;
    for _ in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = ((x >> 33) as usize % pages) * PAGE;
        let len = ((x >> 20) as usize % 40 + 1) * PAGE;
        assert!(
            read(src, off as u64, len) == expect(data, off, len),
            "{len} bytes at {off}"
        );
    }
}

fn zstd_cli() -> bool {
    common::peer("zstd", "zstd")
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn file_source_reads_and_zero_fills_the_last_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let data = sample(3 * PAGE + 123, 1);
    std::fs::write(&path, &data).unwrap();
    let src = FileSource::open(&path).unwrap();
    assert!(!src.writable());
    assert_eq!(src.describe(), format!("file {}", path.display()));
    check_all(&src, &data);
    // An unaligned read across the end.
    assert_eq!(
        read(&src, 3 * PAGE as u64 + 100, 50),
        expect(&data, 3 * PAGE + 100, 50)
    );
    let err = src.write_at(0, b"x").unwrap_err();
    assert_eq!((err.kind(), err.op()), (ErrorKind::Unsupported, Op::Write));
}

#[test]
fn file_source_of_a_shrunk_file_reads_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let data = sample(5 * PAGE, 2);
    std::fs::write(&path, &data).unwrap();
    let src = FileSource::open(&path).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(PAGE as u64 + 10)
        .unwrap();
    assert_eq!(src.len(), 5 * PAGE as u64);
    assert_eq!(
        read(&src, 0, 2 * PAGE),
        expect(&data[..PAGE + 10], 0, 2 * PAGE)
    );
    assert_eq!(read(&src, 3 * PAGE as u64, PAGE), vec![0; PAGE]);
}

#[test]
fn file_source_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = FileSource::open(&missing).unwrap_err();
    assert_eq!((err.op(), err.errno()), (Op::Open, Some(libc::ENOENT)));
    assert_eq!(err.path(), Some(missing.as_path()));

    let err = FileSource::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
    assert!(err.to_string().contains("directory"), "{err}");
    let err = FileSource::open_rw(dir.path()).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EISDIR), "{err}");

    // A FIFO with no writer: refused at once, not waited on.
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let err = FileSource::open(&fifo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
    assert!(err.to_string().contains("pipe"), "{err}");
    let err = ZstdSource::open(&fifo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
}

#[test]
fn file_source_writes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut data = sample(2 * PAGE + 77, 3);
    std::fs::write(&path, &data).unwrap();
    let src = FileSource::open_rw(&path).unwrap();
    assert!(src.writable());
    let page = vec![0x5a; PAGE];
    src.write_at(PAGE as u64, &page).unwrap();
    src.write_at(2 * PAGE as u64, &[0x11; 77]).unwrap();
    src.sync().unwrap();
    data[PAGE..2 * PAGE].fill(0x5a);
    data[2 * PAGE..].fill(0x11);
    assert!(std::fs::read(&path).unwrap() == data);
    assert!(read(&src, 0, 3 * PAGE) == expect(&data, 0, 3 * PAGE));

    // The source never grows the file.
    let err = src.write_at(2 * PAGE as u64, &page).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), data.len() as u64);
    let err = src.write_at(u64::MAX, b"xy").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LengthOverflow);
}

#[test]
fn fn_source_sees_only_bytes_inside_its_length() {
    let src = FnSource::new(PAGE as u64 * 2 + 5, |off, buf| {
        assert!(off + buf.len() as u64 <= PAGE as u64 * 2 + 5);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = ((off + i as u64) % 253) as u8 + 1;
        }
    });
    let data: Vec<u8> = (0..2 * PAGE + 5).map(|i| (i % 253) as u8 + 1).collect();
    check_all(&src, &data);
    assert!(!src.writable());
    assert_eq!(
        src.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn mem_source_reads_writes_and_counts() {
    let data = sample(3 * PAGE + 1, 4);
    let src = MemSource::new(data.clone());
    check_all(&src, &data);
    src.write_at(PAGE as u64, &[9; PAGE]).unwrap();
    assert_eq!(read(&src, PAGE as u64, PAGE), vec![9; PAGE]);
    assert_eq!(
        src.write_at(3 * PAGE as u64, &[1; 2]).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    src.sync().unwrap();
    assert_eq!((src.writes(), src.syncs()), (1, 1));
    assert_eq!(src.to_vec()[PAGE..2 * PAGE], [9; PAGE]);
    assert_eq!(MemSource::zeroed(0).len(), 0);
}

/// Compress `data` with `compress_seekable` into `path`.
fn seekable(path: &Path, data: &[u8], frame: usize) -> mmkit::pager::CompressStats {
    let mut out = File::create(path).unwrap();
    compress_seekable(&mut &data[..], &mut out, frame, 3).unwrap()
}

#[test]
fn seekable_output_decodes_with_the_zstd_cli() {
    if !zstd_cli() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.zst");
    let data = sample((10 << 20) + 123, 5);
    let stats = seekable(&path, &data, 256 << 10);
    assert_eq!(stats.frames, 41);
    assert_eq!(stats.bytes_in, data.len() as u64);
    assert_eq!(stats.bytes_out, std::fs::metadata(&path).unwrap().len());
    assert!(run(Command::new("zstd").arg("-dc").arg(&path)) == data);

    let src = ZstdSource::open(&path).unwrap();
    assert!(src.has_seek_table());
    assert_eq!(src.frames(), 41);
    assert!(
        src.describe().ends_with("(41 frames)"),
        "{}",
        src.describe()
    );
    check_all(&src, &data);

    // Without the seek table the frames are walked, to the same index.
    let bytes = std::fs::read(&path).unwrap();
    let bare = dir.path().join("bare.zst");
    std::fs::write(
        &bare,
        &bytes[..bytes.len() - stats.seek_table_bytes as usize],
    )
    .unwrap();
    let src = ZstdSource::open(&bare).unwrap();
    assert!(!src.has_seek_table());
    assert_eq!(src.frames(), 41);
    check_random(&src, &data, 100, 11);
}

#[test]
fn seekable_edge_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.zst");
    for (len, frame) in [
        (0, 4096),
        (1, 4096),
        (4096, 4096),
        (8193, 4096),
        (100_000, 7),
    ] {
        let data = sample(len, len as u64 + 9);
        let stats = seekable(&path, &data, frame);
        assert_eq!(stats.frames, (len.div_ceil(frame)).max(1) as u64);
        let src = ZstdSource::open(&path).unwrap();
        assert_eq!(src.is_empty(), len == 0);
        check_random(&src, &data, 10, 3);
        assert!(read(&src, 0, len + PAGE) == expect(&data, 0, len + PAGE));
    }
    let mut out = Vec::new();
    for (frame, level) in [(0, 3), (4096, 99)] {
        let err = compress_seekable(&mut &b"x"[..], &mut out, frame, level).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfRange);
    }
}

#[test]
fn cli_single_frame_and_streamed_files_read_back() {
    if !zstd_cli() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("data");
    let data = sample((10 << 20) + 123, 6);
    std::fs::write(&raw, &data).unwrap();

    // One frame with a content size: larger than a whole-frame decode, so it streams.
    run(Command::new("zstd").args(["-q", "-f"]).arg(&raw));
    let src = ZstdSource::open(dir.path().join("data.zst")).unwrap();
    assert_eq!((src.frames(), src.unsized_frames()), (1, 0));
    check_all(&src, &data);

    // From stdin: no content size in the header, measured at open.
    let streamed = dir.path().join("streamed.zst");
    let mut child = Command::new("zstd")
        .args(["-q", "-c", "-"])
        .stdin(Stdio::piped())
        .stdout(File::create(&streamed).unwrap())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(child.wait().unwrap().success());
    let src = ZstdSource::open(&streamed).unwrap();
    assert_eq!(src.unsized_frames(), 1);
    check_random(&src, &data, 60, 5);

    // Small, single-segment frame (content size in one byte, no window descriptor).
    std::fs::write(&raw, &data[..200]).unwrap();
    run(Command::new("zstd").args(["-q", "-f"]).arg(&raw));
    let src = ZstdSource::open(dir.path().join("data.zst")).unwrap();
    check_all(&src, &data[..200]);
}

#[test]
fn concatenated_cli_frames_and_skippable_frames() {
    if !zstd_cli() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = sample(3 << 20, 7);
    let mut joined = Vec::new();
    let cuts = [0, 1000, 700_000, 700_000, 2_500_000, data.len()];
    for (i, w) in cuts.windows(2).enumerate() {
        let part = dir.path().join(format!("part{i}"));
        std::fs::write(&part, &data[w[0]..w[1]]).unwrap();
        let mut cmd = Command::new("zstd");
        cmd.args(["-q", "-c", "--check"]).arg(&part);
        joined.extend(run(&mut cmd));
        // A skippable frame between parts (user metadata).
        joined.extend(0x184D_2A53u32.to_le_bytes());
        joined.extend(5u32.to_le_bytes());
        joined.extend(b"hello");
    }
    let path = dir.path().join("joined.zst");
    std::fs::write(&path, &joined).unwrap();
    assert!(run(Command::new("zstd").arg("-dc").arg(&path)) == data);
    let src = ZstdSource::open(&path).unwrap();
    assert_eq!(src.frames(), 5);
    check_all(&src, &data);
}

#[test]
fn damaged_zstd_files_give_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.zst");
    let data = sample(1 << 20, 8);
    seekable(&path, &data, 128 << 10);
    let good = std::fs::read(&path).unwrap();

    let open_err = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        ZstdSource::open(&path).unwrap_err()
    };
    // Not zstd at all.
    let err = open_err(b"plain text, not zstd");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("no zstd frame"), "{err}");
    // Truncated: the seek table is cut, so the frames are walked and the last one ends
    // past the end of the file.
    let err = open_err(&good[..good.len() / 2]);
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("truncated"), "{err}");
    // A seek table that does not add up.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 9] += 1; // one more frame than the table holds
    assert_eq!(open_err(&bad).kind(), ErrorKind::Corrupt);
    // Damage inside a compressed frame: opens (the index is fine), fails on read.
    let mut bad = good.clone();
    for b in &mut bad[40..4000] {
        *b = !*b;
    }
    std::fs::write(&path, &bad).unwrap();
    let src = ZstdSource::open(&path).unwrap();
    let mut buf = vec![0; PAGE];
    let err = src.read_at(0, &mut buf).unwrap_err();
    assert_eq!(
        (err.kind(), err.op()),
        (ErrorKind::Corrupt, Op::Read),
        "{err}"
    );
    assert_eq!(err.path(), Some(path.as_path()));
    // Other frames still read.
    src.read_at(512 << 10, &mut buf).unwrap();
    assert_eq!(buf, data[512 << 10..(512 << 10) + PAGE]);
    // A truncated file: empty.
    assert_eq!(
        ZstdSource::open(dir.path().join("none"))
            .unwrap_err()
            .errno(),
        Some(libc::ENOENT)
    );
    std::fs::write(&path, b"").unwrap();
    assert_eq!(ZstdSource::open(&path).unwrap().len(), 0);
}

#[test]
fn zstd_source_is_shared_between_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let data = sample((3 << 20) + 5, 9);
    seekable(&path, &data, 64 << 10);
    let src = ZstdSource::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (src, data) = (&src, &data);
            s.spawn(move || check_random(src, data, 200, t + 1));
        }
    });
}

#[test]
fn zstd_file_truncated_after_open_gives_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zst");
    let data = sample(1 << 20, 10);
    seekable(&path, &data, 128 << 10);
    let src = ZstdSource::open(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut buf = vec![0; PAGE];
    src.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, data[..PAGE]);
    let err = src
        .read_at(data.len() as u64 - PAGE as u64, &mut buf)
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.path()),
        (ErrorKind::Corrupt, Some(path.as_path()))
    );
    assert!(
        err.to_string().contains("truncated after it was opened"),
        "{err}"
    );
}
