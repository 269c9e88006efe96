//! Differential test against real Python: the same file and the same sequence of
//! `find`/`rfind`/`readline`/`seek`/`read`/`read_byte`/slices/`write`/`move`/`resize` run
//! through Python's `mmap` and through `MappedFile`, each printing one line per operation;
//! the transcripts and the final files must be equal.
//!
//! Skipped (with a message) when `python3` is not installed.

use std::io::SeekFrom;
use std::process::Command;

use mmkit::MappedFile;

use mmkit_testkit as common;

/// Python's side: apply each line of the ops file, print one result line each.
const SCRIPT: &str = r#"
import mmap, sys
path, ops = sys.argv[1], sys.argv[2]
f = open(path, "r+b")
m = mmap.mmap(f.fileno(), 0)
out = []
def err(fn):
    try:
        return fn()
    except (ValueError, IndexError):
        return "ERR"
for line in open(ops):
    w = line.split()
    op, a = w[0], w[1:]
    if op in ("find", "rfind"):
        needle = bytes.fromhex(a[0]) if a[0] != "-" else b""
        args = [int(x) for x in a[1:]]
        r = (m.find if op == "find" else m.rfind)(needle, *args)
    elif op == "readline":
        r = m.readline().hex()
    elif op == "read":
        r = (m.read() if a[0] == "-" else m.read(int(a[0]))).hex()
    elif op == "read_byte":
        r = err(m.read_byte)
    elif op == "seek":
        r = err(lambda: m.seek(int(a[0]), int(a[1])))
        r = "ERR" if r == "ERR" else "ok"
    elif op == "tell":
        r = m.tell()
    elif op == "get":
        r = m[int(a[0]):int(a[1])].hex()
    elif op == "write":
        data = bytes.fromhex(a[0]) if a[0] != "-" else b""
        r = err(lambda: m.write(data))
    elif op == "move":
        r = err(lambda: m.move(int(a[0]), int(a[1]), int(a[2])))
        r = "ERR" if r == "ERR" else "ok"
    elif op == "resize":
        m.resize(int(a[0]))
        r = "ok"
    elif op == "len":
        r = len(m)
    else:
        r = "unknown op " + op
    out.append("%s -> %s" % (line.strip(), r))
m.flush()
m.close()
f.close()
sys.stdout.write("\n".join(out) + "\n")
"#;

use mmkit::helpers::XorShift as Rng;

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    common::hex(b)
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Text-like content: lines of words from a small alphabet, so needles repeat, about 200 KB
/// (several of the 64 KiB search windows), no trailing newline.
fn content(rng: &mut Rng) -> Vec<u8> {
    let words: [&[u8]; 6] = [b"alpha", b"beta", b"ab", b"gamma", b"a", b"\x00\xff"];
    let mut out = Vec::new();
    while out.len() < 200_000 {
        for _ in 0..rng.below(12) {
            out.extend_from_slice(words[rng.below(words.len())]);
            out.push(b' ');
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"no newline at the end");
    out
}

/// A position: often near a 64 KiB window edge or the ends, sometimes past the end.
fn pos(rng: &mut Rng, len: usize) -> usize {
    let edge = 65_536 * (1 + rng.below(3));
    match rng.below(5) {
        0 => edge.saturating_sub(8) + rng.below(16),
        1 => len.saturating_sub(rng.below(40)),
        2 => len + rng.below(20),
        _ => rng.below(len + 1),
    }
}

fn ops(rng: &mut Rng, data: &[u8]) -> Vec<String> {
    let mut len = data.len();
    let mut out = Vec::new();
    for _ in 0..3000 {
        let op = match rng.below(16) {
            0..=3 => {
                let name = if rng.below(2) == 0 { "find" } else { "rfind" };
                let needle = match rng.below(6) {
                    0 => Vec::new(),
                    1 => b"zzz".to_vec(),
                    _ => {
                        let at = rng.below(data.len() - 12);
                        data[at..at + 1 + rng.below(10)].to_vec()
                    }
                };
                match rng.below(3) {
                    0 => format!("{name} {}", hex(&needle)),
                    1 => format!("{name} {} {}", hex(&needle), pos(rng, len)),
                    _ => {
                        let (a, b) = (pos(rng, len), pos(rng, len));
                        format!("{name} {} {a} {b}", hex(&needle))
                    }
                }
            }
            4 | 5 => "readline".into(),
            6 => match rng.below(3) {
                0 => "read -".into(),
                _ => format!("read {}", rng.below(300)),
            },
            7 => "read_byte".into(),
            8..=10 => {
                let whence = rng.below(3);
                let off: i64 = match whence {
                    0 => pos(rng, len) as i64,
                    1 => rng.below(2000) as i64 - 1000,
                    _ => -(rng.below(len + 10) as i64) + 5,
                };
                format!("seek {off} {whence}")
            }
            11 => "tell".into(),
            12 => format!("get {} {}", pos(rng, len), pos(rng, len)),
            13 => format!("write {}", hex(&data[..rng.below(30)])),
            14 => format!(
                "move {} {} {}",
                pos(rng, len),
                pos(rng, len),
                rng.below(70_000)
            ),
            _ => {
                if rng.below(8) == 0 {
                    len = 150_000 + rng.below(100_000);
                    format!("resize {len}")
                } else {
                    "len".into()
                }
            }
        };
        out.push(op);
    }
    out
}

fn run_rust(f: &mut MappedFile, ops: &[String]) -> Vec<String> {
    let show = |r: Option<usize>| r.map_or("-1".to_string(), |v| v.to_string());
    ops.iter()
        .map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            let int = |i: usize| w[i].parse::<usize>().unwrap();
            let r = match w[0] {
                "find" | "rfind" => {
                    let needle = unhex(w[1]);
                    let rev = w[0] == "rfind";
                    let r = match (w.len(), rev) {
                        (2, false) => f.find(&needle),
                        (2, true) => f.rfind(&needle),
                        (3, false) => f.find_in(&needle, int(2)..),
                        (3, true) => f.rfind_in(&needle, int(2)..),
                        (_, false) => f.find_in(&needle, int(2)..int(3)),
                        (_, true) => f.rfind_in(&needle, int(2)..int(3)),
                    };
                    show(r.unwrap())
                }
                "readline" => hex_py(&f.readline().unwrap()),
                "read" => {
                    let n = (w[1] != "-").then(|| int(1));
                    hex_py(&f.read(n).unwrap())
                }
                "read_byte" => f
                    .read_byte()
                    .unwrap()
                    .map_or("ERR".into(), |b| b.to_string()),
                "seek" => {
                    let off: i64 = w[1].parse().unwrap();
                    let to = match w[2] {
                        "0" => SeekFrom::Start(off as u64),
                        "1" => SeekFrom::Current(off),
                        _ => SeekFrom::End(off),
                    };
                    f.seek(to).map_or("ERR".into(), |_| "ok".into())
                }
                "tell" => f.tell().to_string(),
                "get" => hex_py(&f.get(int(1)..int(2)).unwrap()),
                "write" => f
                    .write(&unhex(w[1]))
                    .map_or("ERR".into(), |n| n.to_string()),
                "move" => f
                    .move_within(int(1), int(2), int(3))
                    .map_or("ERR".into(), |_| "ok".into()),
                "resize" => {
                    f.resize(int(1)).unwrap();
                    "ok".into()
                }
                "len" => f.len().to_string(),
                other => format!("unknown op {other}"),
            };
            format!("{} -> {r}", line.trim())
        })
        .collect()
}

/// Python's `bytes.hex()`: empty for no bytes.
fn hex_py(b: &[u8]) -> String {
    if b.is_empty() {
        String::new()
    } else {
        hex(b)
    }
}

#[test]
fn matches_python_mmap() {
    if !common::peer("python3", "python3") {
        return;
    }
    for seed in [0x9e37_79b9_7f4a_7c15u64, 42, 7_777_777] {
        let mut rng = Rng::new(seed);
        let data = content(&mut rng);
        let ops = ops(&mut rng, &data);
        let dir = tempfile::tempdir().unwrap();
        let (py_path, rs_path) = (dir.path().join("py"), dir.path().join("rs"));
        std::fs::write(&py_path, &data).unwrap();
        std::fs::write(&rs_path, &data).unwrap();
        let ops_path = dir.path().join("ops");
        std::fs::write(&ops_path, ops.join("\n") + "\n").unwrap();

        let py = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&py_path)
            .arg(&ops_path)
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&py.stderr)
        );
        let py_out = String::from_utf8(py.stdout).unwrap();
        let py_lines: Vec<&str> = py_out.lines().collect();

        let mut f = MappedFile::open_rw(&rs_path).unwrap();
        let rs_lines = run_rust(&mut f, &ops);
        f.close().unwrap();

        assert_eq!(py_lines.len(), rs_lines.len(), "seed {seed}");
        for (i, (p, r)) in py_lines.iter().zip(&rs_lines).enumerate() {
            assert_eq!(r, p, "seed {seed}, op {i}");
        }
        assert!(
            std::fs::read(&py_path).unwrap() == std::fs::read(&rs_path).unwrap(),
            "seed {seed}: final files differ"
        );
    }
}
