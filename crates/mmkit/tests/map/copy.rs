//! `mmkit::copy`: every method to every kind of destination (a file, a pipe, a Unix
//! socket pair, a loopback TCP connection), byte for byte; the fall-back when the kernel
//! refuses a method; hostile sources and ranges; and a file truncated while it is copied,
//! many times over, in every method.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use mmkit::copy::{self, CopyOptions, CopyReport, Destination, Method};
use mmkit::ErrorKind;

use common::random_nonzero;
use mmkit_testkit as common;

/// The methods that can write into a pipe.
const TO_A_PIPE: [Method; 4] = [
    Method::Sendfile,
    Method::Splice,
    Method::MmapWrite,
    Method::ReadWrite,
];

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The kinds of destination a copy is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    File,
    Pipe,
    UnixSocket,
    Tcp,
}

const SINKS: [Sink; 4] = [Sink::File, Sink::Pipe, Sink::UnixSocket, Sink::Tcp];

/// A destination being written, and what it received once closed.
struct Open {
    writer: OwnedFd,
    collect: Collect,
}

enum Collect {
    File(PathBuf),
    Reader(JoinHandle<Vec<u8>>),
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    })
}

fn open_sink(sink: Sink, dir: &Path) -> Open {
    match sink {
        Sink::File => {
            let path = dir.join(format!("sink-{}", rand_name()));
            let f = File::create(&path).unwrap();
            Open {
                writer: f.into(),
                collect: Collect::File(path),
            }
        }
        Sink::Pipe => {
            let (r, w) = rustix::pipe::pipe().unwrap();
            Open {
                writer: w,
                collect: Collect::Reader(drain(File::from(r))),
            }
        }
        Sink::UnixSocket => {
            let (a, b) = UnixStream::pair().unwrap();
            Open {
                writer: a.into(),
                collect: Collect::Reader(drain(b)),
            }
        }
        Sink::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let tx = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (rx, _) = listener.accept().unwrap();
            Open {
                writer: tx.into(),
                collect: Collect::Reader(drain(rx)),
            }
        }
    }
}

impl Open {
    /// Close the writing end; what the destination received.
    fn finish(self) -> Vec<u8> {
        drop(self.writer);
        match self.collect {
            Collect::File(path) => std::fs::read(path).unwrap(),
            Collect::Reader(h) => h.join().unwrap(),
        }
    }
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn copy_with(
    src: &File,
    sink: Sink,
    dir: &Path,
    opts: &CopyOptions,
) -> (mmkit::Result<CopyReport>, Vec<u8>) {
    let open = open_sink(sink, dir);
    let r = opts.copy(src, &open.writer);
    (r, open.finish())
}

#[test]
#[cfg_attr(miri, ignore)]
fn every_method_to_every_sink_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero((3 << 20) + 123, 1);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    let size = data.len() as u64;
    // (offset, len): the whole file, an unaligned middle, the last bytes, past the end.
    let ranges = [
        (0, size),
        (4097, 1_000_003),
        (size - 10, 10),
        (size - 5000, 1 << 20),
    ];
    for sink in SINKS {
        for method in Method::ALL {
            for (off, len) in ranges {
                let (r, got) = copy_with(
                    &src,
                    sink,
                    dir.path(),
                    CopyOptions::new().offset(off).len(len).method(method),
                );
                if method == Method::CopyFileRange && sink != Sink::File {
                    let e = r.expect_err("copy_file_range to a non-file");
                    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
                    assert!(e.to_string().contains("copy_file_range"), "{e}");
                    assert!(got.is_empty());
                    continue;
                }
                let r = r.unwrap_or_else(|e| panic!("{method:?} to {sink:?} at {off}+{len}: {e}"));
                let want = &data[off as usize..(off + len).min(size) as usize];
                assert_eq!(r.method, method);
                assert_eq!(r.bytes, want.len() as u64, "{method:?} {sink:?}");
                assert_eq!(r.requested, Some(want.len() as u64));
                assert!(!r.truncated && r.refused.is_empty(), "{r:?}");
                assert!(
                    got == want,
                    "{method:?} to {sink:?} at {off}+{len}: bytes differ"
                );
            }
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn auto_chooses_by_destination() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero(1 << 20, 2);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    for sink in SINKS {
        let (r, got) = copy_with(&src, sink, dir.path(), &CopyOptions::new());
        let r = r.unwrap();
        assert!(got == data, "{sink:?}");
        let first = match sink {
            Sink::File => Method::CopyFileRange,
            _ => Method::Sendfile,
        };
        // The first choice, unless this kernel or file system refused it.
        assert!(
            r.method == first || r.refused.first().map(|f| f.method) == Some(first),
            "{sink:?}: {r:?}"
        );
    }
    let open = open_sink(Sink::Pipe, dir.path());
    assert_eq!(Destination::of(&open.writer).unwrap(), Destination::Pipe);
    open.finish();
}

#[test]
#[cfg_attr(miri, ignore)]
fn append_file_keeps_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero(300_000, 3);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    let out = write_file(dir.path(), "log", b"before\n");
    let dst = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    assert_eq!(Destination::of(&dst).unwrap(), Destination::AppendFile);
    let r = copy::copy_range(&src, 0, u32::MAX as u64, &dst).unwrap();
    assert_eq!(r.method, Method::MmapWrite);
    // sendfile refuses an O_APPEND file: the next method goes on.
    let r = CopyOptions::new()
        .methods(&[Method::Sendfile, Method::ReadWrite])
        .copy(&src, &dst)
        .unwrap();
    assert_eq!(r.method, Method::ReadWrite);
    assert_eq!(r.refused.len(), 1, "{r:?}");
    assert_eq!(r.refused[0].method, Method::Sendfile);
    assert_eq!(r.refused[0].errno, rustix::io::Errno::INVAL.raw_os_error());
    let got = std::fs::read(&out).unwrap();
    assert_eq!(&got[..7], b"before\n");
    assert!(got[7..] == [&data[..], &data[..]].concat());
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_refused_method_hands_over_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero(200_000, 4);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    for sink in [Sink::Pipe, Sink::UnixSocket, Sink::Tcp] {
        let (r, got) = copy_with(
            &src,
            sink,
            dir.path(),
            CopyOptions::new().methods(&[Method::CopyFileRange, Method::Splice]),
        );
        let r = r.unwrap();
        assert_eq!(r.method, Method::Splice, "{sink:?}");
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].method, Method::CopyFileRange);
        assert_eq!(r.refused[0].bytes, 0);
        assert!(got == data, "{sink:?}");
        // Splice went through a pipe of its own except into a pipe.
        assert_eq!(r.pipe_size.is_some(), sink != Sink::Pipe, "{sink:?}");
    }
    // Forced alone, the refusal is the error.
    let (r, _) = copy_with(
        &src,
        Sink::Pipe,
        dir.path(),
        CopyOptions::new().method(Method::CopyFileRange),
    );
    let e = r.unwrap_err();
    assert_eq!(
        e.errno(),
        Some(rustix::io::Errno::INVAL.raw_os_error()),
        "{e}"
    );
    assert!(e.to_string().contains("src"), "names the file: {e}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_full_non_blocking_destination_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero(2 << 20, 5);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    for method in TO_A_PIPE {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        let reader = std::thread::spawn(move || {
            let mut r = File::from(r);
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_micros(200))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let report = CopyOptions::new().method(method).copy(&src, &w).unwrap();
        drop(w);
        assert_eq!(report.bytes, data.len() as u64);
        assert!(reader.join().unwrap() == data, "{method:?}");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_closed_destination_is_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero(1 << 20, 6);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    for method in TO_A_PIPE {
        let (r, w) = rustix::pipe::pipe().unwrap();
        drop(r);
        let e = CopyOptions::new()
            .method(method)
            .copy(&src, &w)
            .unwrap_err();
        assert_eq!(
            e.errno(),
            Some(rustix::io::Errno::PIPE.raw_os_error()),
            "{method:?}: {e}"
        );
    }
    // A file open read-only cannot be written: EBADF, from whichever method is tried last.
    let ro = File::open(write_file(dir.path(), "ro", b"x")).unwrap();
    let e = copy::copy_range(&src, 0, 10, &ro).unwrap_err();
    assert_eq!(
        e.errno(),
        Some(rustix::io::Errno::BADF.raw_os_error()),
        "{e}"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn hostile_ranges_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_nonzero(10_000, 7);
    let src = File::open(write_file(dir.path(), "src", &data)).unwrap();
    let sink = File::create(dir.path().join("sink")).unwrap();
    let e = copy::copy_range(&src, 10_001, 1, &sink).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OffsetPastEnd, "{e}");
    for (off, len) in [
        (1, u64::MAX),
        (u64::MAX, 1),
        (i64::MAX as u64, 1),
        (u64::MAX, 0),
    ] {
        let e = copy::copy_range(&src, off, len, &sink).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LengthOverflow, "{off}+{len}: {e}");
    }
    // The end of the file, and nothing: Ok with 0 bytes.
    for (off, len) in [(10_000, 5), (0, 0), (500, 0)] {
        let r = copy::copy_range(&src, off, len, &sink).unwrap();
        assert_eq!(r.bytes, 0);
        assert!(!r.truncated);
    }
    // A length past the end is clipped to the file.
    let r = copy::copy_range(&src, 9_000, 1 << 40, &sink).unwrap();
    assert_eq!((r.bytes, r.requested), (1000, Some(1000)));
    // An empty file: its size says nothing (as a /proc file's), the copy finds its end.
    let empty = File::open(write_file(dir.path(), "empty", b"")).unwrap();
    let r = copy::copy_range(&empty, 0, 100, &sink).unwrap();
    assert_eq!(r.bytes, 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn hostile_sources_are_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let sink = File::create(dir.path().join("sink")).unwrap();
    // A directory.
    let d = File::open(dir.path()).unwrap();
    let e = copy::copy_range(&d, 0, 10, &sink).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    assert!(copy::open(dir.path())
        .unwrap_err()
        .to_string()
        .contains("directory"));
    // A FIFO without a writer: opened without blocking, refused without reading.
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    let e = copy::open(&fifo).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotMappable, "{e}");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&fifo)
        .unwrap();
    let e = copy::copy_range(&f, 0, 10, &sink).unwrap_err();
    assert!(e.to_string().contains("pipe"), "{e}");
    // A socket, and a character device (endless: /dev/zero).
    let (a, _b) = UnixStream::pair().unwrap();
    let e = copy::copy_range(&a, 0, 10, &sink).unwrap_err();
    assert!(e.to_string().contains("socket"), "{e}");
    let zero = File::open("/dev/zero").unwrap();
    let e = copy::copy_range(&zero, 0, 10, &sink).unwrap_err();
    assert!(e.to_string().contains("character device"), "{e}");
    // A source open write-only: an error, whatever the method.
    let wo = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("sink"))
        .unwrap();
    for method in Method::ALL {
        let r = CopyOptions::new().method(method).copy(&wo, &sink);
        assert!(r.is_err(), "{method:?}");
    }
}

/// `/proc` files report size 0 and may refuse sendfile or splice: the copy goes to their end
/// with whatever works, and gives what `read` gives.
#[test]
#[cfg_attr(miri, ignore)]
fn proc_files_copy_to_their_end() {
    let dir = tempfile::tempdir().unwrap();
    for path in ["/proc/version", "/proc/self/cmdline", "/proc/filesystems"] {
        let want = std::fs::read(path).unwrap();
        let src = File::open(path).unwrap();
        for sink in SINKS {
            let (r, got) = copy_with(&src, sink, dir.path(), &CopyOptions::new());
            let r = r.unwrap_or_else(|e| panic!("{path} to {sink:?}: {e}"));
            assert_eq!(r.requested, None);
            assert!(got == want, "{path} to {sink:?}: {r:?}");
        }
        // Forced methods either work or are refused; a mapping needs a length.
        for method in Method::ALL {
            let (r, got) = copy_with(
                &src,
                Sink::Pipe,
                dir.path(),
                CopyOptions::new().method(method),
            );
            match r {
                Ok(_) => assert!(got == want, "{path} {method:?}"),
                Err(e) => assert!(e.errno().is_some(), "{path} {method:?}: {e}"),
            }
        }
    }
}
