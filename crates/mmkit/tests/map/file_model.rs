//! Model test of `MappedFile`: random operation sequences run against the real object and
//! against an in-memory model with Python's `mmap` semantics (a `Vec<u8>` and a position).
//! Every result, the position and the length are compared after each step, and the file on
//! disk after each `flush` and at the end. Both growable and fixed-size objects, files that
//! cross page boundaries, and a prefix before the mapped offset.

use std::io::{BufRead, Read, SeekFrom, Write};

use mmkit::file::Access;
use mmkit::helpers::XorShift;
use mmkit::{ErrorKind, MappedFile};
use proptest::prelude::*;

/// A number resolved against the current length at run time, so that ranges are often
/// valid and sometimes just past the end.
#[derive(Debug, Clone, Copy)]
struct Frac(u16);

impl Frac {
    fn of(self, len: usize, slack: usize) -> usize {
        self.0 as usize * (len + slack) / u16::MAX as usize
    }
}

#[derive(Debug, Clone)]
enum OpSpec {
    Write(Vec<u8>),
    WriteByte(u8),
    Read(Option<u16>),
    ReadByte,
    Readline,
    SeekStart(Frac),
    SeekCurrent(Frac),
    SeekEnd(Frac),
    Find(Vec<u8>, Option<(Frac, Frac)>),
    Rfind(Vec<u8>, Option<(Frac, Frac)>),
    Resize(Frac),
    Move(Frac, Frac, Frac),
    Flush,
    FlushRange(Frac, Frac),
    Set(Frac, Frac, i8),
    Get(Frac, Frac),
    IoRead(u16),
    IoReadLine,
    IoWrite(Vec<u8>),
}

/// The result of one operation, comparable between model and object.
#[derive(Debug, PartialEq)]
enum Out {
    Unit,
    Size(usize),
    Bytes(Vec<u8>),
    Byte(Option<u8>),
    Found(Option<usize>),
    Err(Option<ErrorKind>),
}

fn from<T>(r: mmkit::Result<T>, f: impl FnOnce(T) -> Out) -> Out {
    match r {
        Ok(v) => f(v),
        Err(e) => Out::Err(Some(e.kind())),
    }
}

fn model<T>(r: Result<T, ErrorKind>, f: impl FnOnce(T) -> Out) -> Out {
    match r {
        Ok(v) => f(v),
        Err(k) => Out::Err(Some(k)),
    }
}

fn from_io<T>(r: std::io::Result<T>, f: impl FnOnce(T) -> Out) -> Out {
    match r {
        Ok(v) => f(v),
        Err(_) => Out::Err(None),
    }
}

/// Python's `mmap` semantics over a vector, plus growth when `growable`.
struct Model {
    data: Vec<u8>,
    pos: usize,
    growable: bool,
}

impl Model {
    fn oob<T>() -> Result<T, ErrorKind> {
        Err(ErrorKind::OutOfRange)
    }

    fn write(&mut self, d: &[u8]) -> Result<usize, ErrorKind> {
        let end = self.pos + d.len();
        if end > self.data.len() {
            if !self.growable {
                return Self::oob();
            }
            if d.is_empty() {
                return Ok(0);
            }
            self.data.resize(end, 0);
        }
        self.data[self.pos..end].copy_from_slice(d);
        self.pos = end;
        Ok(d.len())
    }

    fn read(&mut self, n: Option<usize>) -> Vec<u8> {
        let rest = self.data.len().saturating_sub(self.pos);
        let n = n.map_or(rest, |n| n.min(rest));
        if n == 0 {
            return Vec::new();
        }
        let out = self.data[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    fn readline(&mut self) -> Vec<u8> {
        if self.pos >= self.data.len() {
            return Vec::new();
        }
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        self.read(Some(n))
    }

    fn seek(&mut self, target: i128) -> Result<usize, ErrorKind> {
        if target < 0 || (target > self.data.len() as i128 && !self.growable) {
            return Self::oob();
        }
        self.pos = target as usize;
        Ok(self.pos)
    }

    fn clamp(&self, s: usize, e: usize) -> (usize, usize) {
        (s.min(self.data.len()), e.min(self.data.len()))
    }

    fn find(&self, needle: &[u8], range: Option<(usize, usize)>, rev: bool) -> Option<usize> {
        let (s, e) = range.unwrap_or((self.pos, self.data.len()));
        let (s, e) = self.clamp(s, e);
        if s > e {
            return None;
        }
        if needle.is_empty() {
            return Some(if rev { e } else { s });
        }
        if e - s < needle.len() {
            return None;
        }
        let mut hits =
            (s..=e - needle.len()).filter(|&i| &self.data[i..i + needle.len()] == needle);
        if rev {
            hits.next_back()
        } else {
            hits.next()
        }
    }
}

/// Run one operation on both; returns (model result, object result).
fn step(op: &OpSpec, m: &mut Model, f: &mut MappedFile) -> (Out, Out) {
    let len = m.data.len();
    match op {
        OpSpec::Write(d) => (model(m.write(d), Out::Size), from(f.write(d), Out::Size)),
        OpSpec::WriteByte(b) => (
            model(m.write(&[*b]), |_| Out::Unit),
            from(f.write_byte(*b), |_| Out::Unit),
        ),
        OpSpec::Read(n) => {
            let n = n.map(|n| n as usize);
            (Out::Bytes(m.read(n)), from(f.read(n), Out::Bytes))
        }
        OpSpec::ReadByte => {
            let b = m.read(Some(1)).first().copied();
            (Out::Byte(b), from(f.read_byte(), Out::Byte))
        }
        OpSpec::Readline => (Out::Bytes(m.readline()), from(f.readline(), Out::Bytes)),
        OpSpec::Find(n, r) | OpSpec::Rfind(n, r) => {
            let rev = matches!(op, OpSpec::Rfind(..));
            let r = r.map(|(a, b)| (a.of(len, 8), b.of(len, 8)));
            let got = match (rev, r) {
                (false, None) => f.find(n),
                (true, None) => f.rfind(n),
                (false, Some((a, b))) => f.find_in(n, a..b),
                (true, Some((a, b))) => f.rfind_in(n, a..b),
            };
            (Out::Found(m.find(n, r, rev)), from(got, Out::Found))
        }
        OpSpec::SeekStart(_) | OpSpec::SeekCurrent(_) | OpSpec::SeekEnd(_) => step_seek(op, m, f),
        OpSpec::Move(..) | OpSpec::FlushRange(..) | OpSpec::Set(..) | OpSpec::Get(..) => {
            step_range(op, m, f)
        }
        OpSpec::IoRead(_) | OpSpec::IoReadLine | OpSpec::IoWrite(_) => step_io(op, m, f),
        OpSpec::Resize(x) => {
            let n = x.of(3 * page() + 100, 0);
            m.data.resize(n, 0);
            (Out::Unit, from(f.resize(n), |_| Out::Unit))
        }
        OpSpec::Flush => (Out::Unit, from(f.flush(), |_| Out::Unit)),
    }
}

/// `step` for the seeks.
fn step_seek(op: &OpSpec, m: &mut Model, f: &mut MappedFile) -> (Out, Out) {
    let len = m.data.len();
    match op {
        OpSpec::SeekStart(x) => {
            let t = x.of(len, 64);
            (
                model(m.seek(t as i128), Out::Size),
                from(f.seek(SeekFrom::Start(t as u64)), Out::Size),
            )
        }
        OpSpec::SeekCurrent(x) => {
            let d = x.of(2 * len, 64) as i64 - len as i64 - 32;
            (
                model(m.seek(m.pos as i128 + d as i128), Out::Size),
                from(f.seek(SeekFrom::Current(d)), Out::Size),
            )
        }
        OpSpec::SeekEnd(x) => {
            let d = 16 - x.of(len, 32) as i64;
            (
                model(m.seek(len as i128 + d as i128), Out::Size),
                from(f.seek(SeekFrom::End(d)), Out::Size),
            )
        }
        _ => unreachable!("not a step_seek operation: {op:?}"),
    }
}

/// `step` for the operations on a range: move, flush_range, set, get.
fn step_range(op: &OpSpec, m: &mut Model, f: &mut MappedFile) -> (Out, Out) {
    let len = m.data.len();
    match op {
        OpSpec::Move(d, s, c) => {
            let (d, s, c) = (d.of(len, 4), s.of(len, 4), c.of(len, 4));
            let ok = s + c <= len && d + c <= len;
            let want = if ok {
                m.data.copy_within(s..s + c, d);
                Out::Unit
            } else {
                Out::Err(Some(ErrorKind::OutOfRange))
            };
            (want, from(f.move_within(d, s, c), |_| Out::Unit))
        }
        OpSpec::FlushRange(o, n) => {
            let (o, n) = (o.of(len, 4), n.of(len, 4));
            let want = if o + n <= len {
                Out::Unit
            } else {
                Out::Err(Some(ErrorKind::OutOfRange))
            };
            (want, from(f.flush_range(o, n), |_| Out::Unit))
        }
        OpSpec::Set(a, b, skew) => {
            let (a, b) = (a.of(len, 8), b.of(len, 8));
            let (s, e) = m.clamp(a, b);
            let e = e.max(s);
            let n = (e - s) as isize + *skew as isize;
            let data: Vec<u8> = (0..n.max(0)).map(|i| (i % 7) as u8 + b'0').collect();
            let want = if data.len() == e - s {
                m.data[s..e].copy_from_slice(&data);
                Out::Unit
            } else {
                Out::Err(Some(ErrorKind::OutOfRange))
            };
            (want, from(f.set(a..b, &data), |_| Out::Unit))
        }
        OpSpec::Get(a, b) => {
            let (a, b) = (a.of(len, 8), b.of(len, 8));
            let (s, e) = m.clamp(a, b);
            let want = m.data[s..e.max(s)].to_vec();
            (Out::Bytes(want), from(f.get(a..b), Out::Bytes))
        }
        _ => unreachable!("not a step_range operation: {op:?}"),
    }
}

/// `step` for the `std::io` traits.
fn step_io(op: &OpSpec, m: &mut Model, f: &mut MappedFile) -> (Out, Out) {
    let len = m.data.len();
    match op {
        OpSpec::IoRead(n) => {
            let mut buf = vec![0u8; *n as usize];
            let got = from_io(Read::read(f, &mut buf), |k| Out::Bytes(buf[..k].to_vec()));
            (Out::Bytes(m.read(Some(*n as usize))), got)
        }
        OpSpec::IoReadLine => {
            let mut line = Vec::new();
            let got = from_io(f.read_until(b'\n', &mut line), |_| Out::Bytes(line.clone()));
            (Out::Bytes(m.readline()), got)
        }
        OpSpec::IoWrite(d) => {
            let want = if d.is_empty() {
                Out::Size(0)
            } else if m.growable {
                Out::Size(m.write(d).unwrap())
            } else {
                let room = len.saturating_sub(m.pos).min(d.len());
                if room == 0 {
                    Out::Err(None)
                } else {
                    Out::Size(m.write(&d[..room]).unwrap())
                }
            };
            (want, from_io(Write::write(f, d), Out::Size))
        }
        _ => unreachable!("not a step_io operation: {op:?}"),
    }
}

fn page() -> usize {
    mmkit::page_size()
}

fn content(len: usize, seed: u64) -> Vec<u8> {
    let alphabet = b"ab\n\0xyz";
    let mut rng = XorShift::new(seed | 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len())])
        .collect()
}

fn frac() -> impl Strategy<Value = Frac> {
    any::<u16>().prop_map(Frac)
}

fn needle() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"ab\nx".to_vec()), 0..4)
}

fn range() -> impl Strategy<Value = Option<(Frac, Frac)>> {
    prop::option::of((frac(), frac()))
}

fn op() -> impl Strategy<Value = OpSpec> {
    let data = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 0..(2 * 4096 + 10)),
    ];
    prop_oneof![
        data.clone().prop_map(OpSpec::Write),
        any::<u8>().prop_map(OpSpec::WriteByte),
        prop::option::of(0u16..200).prop_map(OpSpec::Read),
        Just(OpSpec::ReadByte),
        Just(OpSpec::Readline),
        frac().prop_map(OpSpec::SeekStart),
        frac().prop_map(OpSpec::SeekCurrent),
        frac().prop_map(OpSpec::SeekEnd),
        (needle(), range()).prop_map(|(n, r)| OpSpec::Find(n, r)),
        (needle(), range()).prop_map(|(n, r)| OpSpec::Rfind(n, r)),
        frac().prop_map(OpSpec::Resize),
        (frac(), frac(), frac()).prop_map(|(a, b, c)| OpSpec::Move(a, b, c)),
        Just(OpSpec::Flush),
        (frac(), frac()).prop_map(|(a, b)| OpSpec::FlushRange(a, b)),
        (frac(), frac(), prop_oneof![4 => Just(0i8), 1 => -2i8..3])
            .prop_map(|(a, b, s)| OpSpec::Set(a, b, s)),
        (frac(), frac()).prop_map(|(a, b)| OpSpec::Get(a, b)),
        (0u16..300).prop_map(OpSpec::IoRead),
        Just(OpSpec::IoReadLine),
        data.prop_map(OpSpec::IoWrite),
    ]
}

fn file_len() -> impl Strategy<Value = usize> {
    let p = 4096;
    prop_oneof![
        prop::sample::select(vec![0, 1, 100, p - 1, p, p + 1, 2 * p + 7, 3 * p + 100]),
        0..(3 * p + 200),
    ]
}

fn run(len: usize, seed: u64, header: usize, growable: bool, ops: &[OpSpec]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let head = vec![b'H'; header];
    let body = content(len, seed);
    std::fs::write(&path, [head.clone(), body.clone()].concat()).unwrap();
    let mut f = MappedFile::options()
        .access(Access::Write)
        .offset(header as u64)
        .growable(growable)
        .open(&path)
        .unwrap();
    let mut m = Model {
        data: body,
        pos: 0,
        growable,
    };
    for (i, op) in ops.iter().enumerate() {
        let (want, got) = step(op, &mut m, &mut f);
        assert_eq!(got, want, "step {i}: {op:?}");
        assert_eq!(f.tell(), m.pos, "position after step {i}: {op:?}");
        assert_eq!(f.len(), m.data.len(), "length after step {i}: {op:?}");
        if matches!(op, OpSpec::Flush) {
            let disk = std::fs::read(&path).unwrap();
            assert_eq!(&disk[..header], &head[..], "header after flush, step {i}");
            assert!(disk[header..] == m.data[..], "file after flush, step {i}");
        }
    }
    f.close().unwrap();
    let disk = std::fs::read(&path).unwrap();
    assert_eq!(&disk[..header], &head[..]);
    assert_eq!(disk.len() - header, m.data.len(), "final length");
    assert!(disk[header..] == m.data[..], "final file contents");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fixed_size_matches_python_model(
        len in file_len(),
        seed in any::<u64>(),
        header in prop::sample::select(vec![0usize, 0, 5, 4096]),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(len, seed, header, false, &ops);
    }

    #[test]
    fn growable_matches_python_model(
        len in file_len(),
        seed in any::<u64>(),
        header in prop::sample::select(vec![0usize, 0, 5, 4096]),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(len, seed, header, true, &ops);
    }
}
