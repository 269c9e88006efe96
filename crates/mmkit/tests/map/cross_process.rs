//! Mappings seen from other processes: data written through a shared file mapping
//! survives `kill -9` of the writer with no flush; a Python peer using its own `mmap`
//! module and this crate see each other's writes; fork-related advice (`WipeOnFork`,
//! `DontFork`) changes what a forked child gets.

use mmkit_testkit as common;

use std::process::Command;
use std::time::Duration;

use common::{page, peer, TempFile};
use mmkit::process::{ChildLink, Exit};
use mmkit::{Advice, MapOptions};

const MARKER: &[u8] = b"survives kill -9";

#[test]
fn shared_write_survives_sigkill_of_the_writer_without_flush() {
    let tf = TempFile::new(&vec![0u8; 2 * page()]);
    let path = tf.path.clone();
    let at = page() + 3;
    // SAFETY: the child opens and maps the file, copies the marker in, reports over its
    // socket and sleeps until killed; it takes no lock another thread could hold.
    let mut child = unsafe {
        mmkit::process::fork(move |link| {
            let Ok(mut map) = MapOptions::new().write().map_path(&path) else {
                return 2;
            };
            if map.write_at(at, MARKER).is_err() {
                return 3;
            }
            link.send(1);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    }
    .unwrap();
    assert_eq!(child.recv(), Some(1), "the child did not report its write");
    child.signal(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGKILL));
    let got = tf.read();
    assert_eq!(&got[at..at + MARKER.len()], MARKER);
    assert!(got[..at]
        .iter()
        .chain(&got[at + MARKER.len()..])
        .all(|&b| b == 0));
}

fn python(script: &str, path: &std::path::Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_python_peer_and_this_crate_see_each_others_writes() {
    if !peer("python3", "python3") {
        return;
    }
    let tf = TempFile::new(&vec![b'.'; 3 * page()]);
    let file = tf.open_rw();
    let mut map = MapOptions::new().offset(4097).write().map(&file).unwrap();

    // Python writes through its own shared mapping; we see it in ours (no flush needed).
    python(
        "import mmap, sys\n\
         f = open(sys.argv[1], 'r+b')\n\
         m = mmap.mmap(f.fileno(), 0)\n\
         m[5000:5011] = b'from python'\n",
        &tf.path,
    );
    let mut buf = [0u8; 11];
    map.read_at(5000 - 4097, &mut buf).unwrap();
    assert_eq!(&buf, b"from python");

    // We write through ours (no flush); Python's mapping sees it.
    map.write_at(2 * page() - 4097, b"from rust").unwrap();
    let seen = python(
        "import mmap, sys\n\
         f = open(sys.argv[1], 'rb')\n\
         m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n\
         i = 2 * mmap.PAGESIZE\n\
         sys.stdout.write(m[i:i + 9].decode())\n",
        &tf.path,
    );
    assert_eq!(seen, "from rust");
}

#[test]
fn wipe_on_fork_gives_the_child_zeros() {
    let mut mem = MapOptions::new().len(2 * page()).map_anon().unwrap();
    mem.fill(7);
    mem.advise(Advice::WipeOnFork).unwrap();
    // SAFETY: the child only reads the memory and exits; no locks.
    let child =
        unsafe { mmkit::process::fork(|_| i32::from(mem.iter().any(|&b| b != 0))) }.unwrap();
    assert_eq!(
        child.wait().unwrap(),
        Exit::Code(0),
        "the child saw the parent's bytes"
    );
    assert!(mem.iter().all(|&b| b == 7), "the parent keeps its bytes");

    mem.advise(Advice::KeepOnFork).unwrap();
    // SAFETY: as above.
    let child =
        unsafe { mmkit::process::fork(|_| i32::from(mem.iter().any(|&b| b != 7))) }.unwrap();
    assert_eq!(
        child.wait().unwrap(),
        Exit::Code(0),
        "KeepOnFork: the child gets a copy"
    );
}

#[test]
fn dont_fork_leaves_the_range_unmapped_in_the_child() {
    let map = MapOptions::new().len(page()).map_anon_shared().unwrap();
    map.advise(Advice::DontFork).unwrap();
    let p = map.as_ptr();
    let read_dropped = move |_: &mut ChildLink| {
        common::no_core_dump();
        // SAFETY: deliberately faulting: the range was not copied into this child, and
        // nothing else was mapped there since the fork (the child maps nothing).
        i32::from(unsafe { p.read_volatile() })
    };
    // SAFETY: the child only reads one byte (and dies of it); it takes no locks.
    let child = unsafe { mmkit::process::fork(read_dropped) }.unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGSEGV));

    map.advise(Advice::DoFork).unwrap();
    let read_inherited = move |_: &mut ChildLink| {
        // SAFETY: `p` points into the shared mapping the child inherited (DoFork), alive
        // because the parent's `map` outlives the fork.
        i32::from(unsafe { p.read_volatile() })
    };
    // SAFETY: the child only reads one byte of the mapping and exits; no locks.
    let child = unsafe { mmkit::process::fork(read_inherited) }.unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}
