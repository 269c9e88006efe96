//! Liveness and ownership with one side in another PID namespace (issue 22, item 9).
//!
//! Every decision "is the process at the other end alive?" must be made by what the
//! kernel ties to that process (an OFD lock), never by a pid or TID number: a pid read in
//! one namespace names another process, or none, in the next. Each test runs a real
//! second process under `unshare --pid --fork --mount-proc` — a re-exec of this test
//! binary that runs only the test at hand, in the role named by `MMKIT_PIDNS_ROLE` — and
//! checks the three ring defects of the issue, the robust mutex over a store's lock word
//! after a "reboot" and with its holder in another namespace, `Shared<T>`'s initialiser,
//! and a segment's creator (whose sizing lock was an `flock` already).
//!
//! The child in the namespace can be given a chosen pid (through
//! `/proc/sys/kernel/ns_last_pid` of its new namespace): one that no process has in the
//! test's namespace, so a pid check would call a live child dead, or pid 1, which the
//! test's namespace has too, so a pid check would call a dead child alive.
//!
//! Needs root and `unshare` (util-linux): otherwise each test prints
//! `skipped: <reason>` and passes, or fails under `MMKIT_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mmkit::shm::ring::Ring;
use mmkit::shm::sync::{LockResult, RobustMutex};
use mmkit::shm::typed::SharedOptions;
use mmkit::ErrorKind;

use common::Name;
use mmkit_testkit as common;

const ROLE: &str = "MMKIT_PIDNS_ROLE";
const ARG: &str = "MMKIT_PIDNS_ARG";

/// Whether this machine can run the tests: root and `unshare` on `PATH`. Otherwise
/// prints why and returns false, or panics under `MMKIT_REQUIRE_PEERS=1`.
fn can_unshare() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
                .unwrap_or(false)
        })
        .unwrap_or(false);
    if !root {
        let reason = "not root: another PID namespace needs CAP_SYS_ADMIN";
        assert!(
            !std::env::var_os("MMKIT_REQUIRE_PEERS").is_some_and(|v| v == "1"),
            "{reason}, and MMKIT_REQUIRE_PEERS=1"
        );
        common::skip(reason);
        return false;
    }
    common::peer("unshare", "util-linux")
}

/// The role this process plays, when it is a re-exec'd child.
fn role() -> Option<(String, String)> {
    Some((
        std::env::var(ROLE).ok()?,
        std::env::var(ARG).unwrap_or_default(),
    ))
}

/// A pid no process has in this namespace (and `pid - 1` is free too, so the child's
/// namespace can hand it out next).
fn free_pid() -> u32 {
    (300..30_000)
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}

/// A second process in a new PID namespace: this test binary, running only `test` as
/// `role` with `arg`; with `pid`, the role runs as that pid in the new namespace.
struct NsChild {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl NsChild {
    fn spawn(test: &str, role: &str, arg: &str, pid: Option<u32>) -> NsChild {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"]);
        let test = mmkit_testkit::serial::test_name(module_path!(), test);
        let test_args = ["--exact", test.as_str(), "--nocapture", "--test-threads=1"];
        match pid {
            // The namespace's init (a shell) sets the next pid and forks the role; it is
            // not its last command, so the shell cannot exec it in place (pid 1).
            Some(p) => {
                cmd.args([
                    "sh",
                    "-c",
                    &format!(
                        "echo {} > /proc/sys/kernel/ns_last_pid && \"$0\" \"$@\"; rc=$?; exit $rc",
                        p - 1
                    ),
                ]);
                cmd.arg(&exe).args(test_args);
            }
            None => {
                cmd.arg(&exe).args(test_args);
            }
        }
        let mut child = cmd
            .env(ROLE, role)
            .env(ARG, arg)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare");
        let out = BufReader::new(child.stdout.take().unwrap());
        NsChild { child, out }
    }

    /// Wait for the child's line `want` (libtest prints its own lines first); the
    /// child's pid in its namespace comes after it.
    fn expect(&mut self, want: &str) -> u32 {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "the child ended before saying {want:?}");
            // libtest's "test NAME ... " has no newline: the word may follow it.
            if let Some((_, rest)) = line.split_once(&format!("ready-{want}:")) {
                return rest.trim().parse().unwrap_or(0);
            }
        }
    }

    /// Kill everything in the child's namespace: SIGKILL its init (the kernel then
    /// kills the rest) and reap `unshare`.
    fn kill(mut self) {
        let me = self.child.id();
        let kids =
            std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        for pid in kids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = self.child.wait();
    }

    /// Close the child's stdin (its cue to finish) and wait for its exit status.
    fn finish(mut self) -> i32 {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// In a child: say `word` and this process's pid (as its namespace sees it).
fn say(word: &str) {
    println!("ready-{word}: {}", std::process::id());
}

/// In a child that the test kills: wait for the kill (not for stdin's end, which the
/// kill may deliver first).
fn wait_for_kill() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// In a child: wait until the parent closes stdin.
fn wait_for_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// Run `f` on another thread; `None` if it has not finished after `limit` (the thread
/// is left behind: the test fails rather than hangs).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Defect 1: a live producer whose pid does not exist in the consumer's namespace was
/// reported dead (`PeerDied`) about 10 ms into every wait.
#[test]
fn ring_live_producer_in_another_pidns_is_not_reported_dead() {
    if let Some((role, name)) = role() {
        // SAFETY: both processes use the segment only through `Ring`.
        let ring = unsafe { Ring::open_named(&name) }.unwrap();
        let mut tx = ring.producer().unwrap();
        tx.send(b"first").unwrap();
        say(&role);
        // Long enough for several of the consumer's liveness checks.
        std::thread::sleep(Duration::from_millis(300));
        tx.send(b"second").unwrap();
        wait_for_eof();
        drop(tx);
        std::process::exit(0);
    }
    if !can_unshare() {
        return;
    }
    let name = Name::new("pidns-live");
    // SAFETY: both processes use the segment only through `Ring`.
    let ring = unsafe { Ring::create_named(&name.0, 64 * 1024) }.unwrap();
    let mut rx = ring.consumer().unwrap();
    let pid = free_pid();
    let mut child = NsChild::spawn(
        "ring_live_producer_in_another_pidns_is_not_reported_dead",
        "producer",
        &name.0,
        Some(pid),
    );
    assert_eq!(
        child.expect("producer"),
        pid,
        "the child runs as the chosen pid"
    );
    assert_eq!(&*rx.recv().unwrap(), b"first");
    let second = rx.recv_timeout(Duration::from_secs(10));
    let second = second.map(|m| m.map(|m| m.to_vec()));
    assert_eq!(child.finish(), 0);
    match second {
        Ok(Some(m)) => assert_eq!(m, b"second"),
        other => panic!(
            "a live producer (pid {pid} in its namespace, no such pid here) sent a second \
             message after 300 ms; the consumer got {other:?}"
        ),
    }
}

/// Defect 2: a killed producer that was pid 1 in its namespace was never detected
/// (pid 1 lives in every namespace), and its role was never freed.
#[test]
fn ring_killed_producer_that_was_pid_1_is_detected_and_its_role_freed() {
    if let Some((role, name)) = role() {
        // SAFETY: both processes use the segment only through `Ring`.
        let ring = unsafe { Ring::open_named(&name) }.unwrap();
        let mut tx = ring.producer().unwrap();
        tx.send(b"last words").unwrap();
        say(&role);
        wait_for_kill();
    }
    if !can_unshare() {
        return;
    }
    let name = Name::new("pidns-pid1");
    // SAFETY: both processes use the segment only through `Ring`.
    let ring = unsafe { Ring::create_named(&name.0, 64 * 1024) }.unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut child = NsChild::spawn(
        "ring_killed_producer_that_was_pid_1_is_detected_and_its_role_freed",
        "producer",
        &name.0,
        None,
    );
    assert_eq!(
        child.expect("producer"),
        1,
        "the producer is its namespace's init"
    );
    assert_eq!(&*rx.recv().unwrap(), b"last words");
    child.kill();
    let got = rx.recv_timeout(Duration::from_secs(5)).map(|m| m.is_some());
    match got {
        Err(e) => assert_eq!(e.kind(), ErrorKind::PeerDied, "{e}"),
        Ok(m) => panic!("a producer killed with SIGKILL was not detected in 5 s (got {m:?})"),
    }
    let mut tx = ring
        .producer()
        .expect("the dead producer's role is free for a new producer");
    tx.send(b"after").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"after");
}

/// Defect 3: a second consumer could attach while the live consumer's pid did not
/// exist in its namespace, and both received the same messages.
#[test]
fn ring_second_consumer_is_refused_while_one_in_another_pidns_lives() {
    if let Some((role, name)) = role() {
        // SAFETY: both processes use the segment only through `Ring`.
        let ring = unsafe { Ring::open_named(&name) }.unwrap();
        let rx = ring.consumer().unwrap();
        say(&role);
        wait_for_eof();
        drop(rx);
        std::process::exit(0);
    }
    if !can_unshare() {
        return;
    }
    let name = Name::new("pidns-cons");
    // SAFETY: both processes use the segment only through `Ring`.
    let ring = unsafe { Ring::create_named(&name.0, 64 * 1024) }.unwrap();
    let pid = free_pid();
    let mut child = NsChild::spawn(
        "ring_second_consumer_is_refused_while_one_in_another_pidns_lives",
        "consumer",
        &name.0,
        Some(pid),
    );
    assert_eq!(child.expect("consumer"), pid);
    let second = ring.consumer().map(|_| ());
    let after_close = {
        drop(child.child.stdin.take());
        let status = child.finish();
        assert_eq!(status, 0);
        ring.consumer().map(|_| ())
    };
    match second {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Busy, "{e}"),
        Ok(()) => panic!(
            "a second consumer attached while the first (pid {pid} in another namespace) lived"
        ),
    }
    after_close.expect("the role is free once the first consumer closed");
}

/// A file standing for a store: the owner locks live on it.
fn store_file() -> (tempfile::TempDir, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("store"))
        .unwrap();
    file.set_len(4096).unwrap();
    (dir, file)
}

/// Item 3: after a power cut the lock word keeps a dead thread's TID, which a live
/// thread may have now; nobody holds the lock, so it must be taken over at once.
#[test]
fn file_mutex_with_a_live_tid_left_from_before_a_reboot_is_taken_over() {
    let (_dir, file) = store_file();
    // A live TID (this process's main thread: its TID is the pid), waiters bit set.
    let word = AtomicU32::new(std::process::id() | 0x8000_0000);
    let owner = mmkit::shm::sync::Owner::claim(&file).unwrap();
    let mutex = RobustMutex::with_owner(&word, &owner);
    let got = mutex.lock_timeout(Duration::from_secs(2));
    match got {
        Ok(LockResult::OwnerDied(mut g)) => g.mark_consistent(),
        other => panic!("a lock word left from before a reboot was not taken over: {other:?}"),
    }
    assert!(!mutex.is_locked());
    // And the same for a word naming an owner id nobody holds (another boot's owner).
    word.store(owner.id() ^ 1, Ordering::Relaxed);
    assert!(mutex.try_lock().unwrap().expect("free").is_owner_died());
}

/// Item 3 through the store: `Kv::open` of a file whose lock word holds a live TID
/// (written as a power cut would leave it) must not wait forever.
#[test]
fn kv_opens_when_its_lock_word_holds_a_live_tid_from_before_a_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv");
    {
        let kv = mmkit::store::Kv::open(&path).unwrap();
        kv.put(b"k", b"v").unwrap();
    }
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let tid = std::process::id() | 0x8000_0000;
        f.write_all_at(&tid.to_le_bytes(), 256).unwrap();
    }
    let p = path.clone();
    let opened = within(Duration::from_secs(10), move || {
        mmkit::store::Kv::open(&p).and_then(|kv| {
            kv.put(b"k2", b"v2")?;
            kv.get(b"k")
        })
    });
    match opened {
        Some(Ok(v)) => assert_eq!(v.as_deref(), Some(&b"v"[..])),
        Some(Err(e)) => panic!("Kv::open failed: {e}"),
        None => panic!("Kv::open waited 10 s on a lock word left from before a reboot"),
    }
}

/// The file-backed robust mutex with its holder in another PID namespace (as a pid the
/// test's namespace lacks): never taken over while the holder lives, taken over
/// (`OwnerDied`) once it is killed. The word lives in a named segment.
#[test]
fn file_mutex_holder_in_another_pidns_is_waited_for_then_taken_over() {
    let open = |name: &str| {
        let (_seg, shared) = SharedOptions::new(1)
            .create_or_open_segment::<AtomicU32>(name, |_| Ok(()))
            .unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .unwrap();
        let owner = mmkit::shm::sync::Owner::claim(&file).unwrap();
        (shared, owner)
    };
    if let Some((role, name)) = role() {
        let (shared, owner) = open(&name);
        shared
            .with(|word| {
                let _guard = RobustMutex::with_owner(word, &owner).lock().unwrap();
                say(&role);
                wait_for_kill();
            })
            .unwrap();
        std::process::exit(0);
    }
    if !can_unshare() {
        return;
    }
    let name = Name::new("pidns-mutex");
    let (shared, owner) = open(&name.0);
    let pid = free_pid();
    let mut child = NsChild::spawn(
        "file_mutex_holder_in_another_pidns_is_waited_for_then_taken_over",
        "holder",
        &name.0,
        Some(pid),
    );
    assert_eq!(child.expect("holder"), pid);
    let (alive, dead) = shared
        .with(|word| {
            let mutex = RobustMutex::with_owner(word, &owner);
            let alive = mutex
                .lock_timeout(Duration::from_millis(300))
                .map(|r| r.is_owner_died());
            child.kill();
            let dead = match mutex.lock_timeout(Duration::from_secs(5)) {
                Ok(LockResult::OwnerDied(mut g)) => {
                    g.mark_consistent();
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            };
            (alive, dead)
        })
        .unwrap();
    match alive {
        Err(e) => assert_eq!(e.errno(), Some(libc_etimedout()), "{e}"),
        Ok(died) => {
            panic!("took the lock from a live holder in another namespace (owner died: {died})")
        }
    }
    dead.expect("a killed holder is taken over within 5 s");
}

fn libc_etimedout() -> i32 {
    110
}

/// `Shared<T>`'s initialiser in another PID namespace (as a pid the test's namespace
/// lacks): waited for while it lives — its half-written value is never taken over —
/// and taken over once it is killed.
#[test]
fn shared_initialiser_in_another_pidns_is_waited_for_then_taken_over() {
    if let Some((role, name)) = role() {
        let r = SharedOptions::new(1).create_or_open_segment::<AtomicU32>(&name, |s| {
            s.with(|v| v.store(1, Ordering::Relaxed))?;
            say(&role);
            wait_for_kill();
        });
        std::process::exit(i32::from(r.is_err()));
    }
    if !can_unshare() {
        return;
    }
    let name = Name::new("pidns-init");
    let pid = free_pid();
    let mut child = NsChild::spawn(
        "shared_initialiser_in_another_pidns_is_waited_for_then_taken_over",
        "initialiser",
        &name.0,
        Some(pid),
    );
    assert_eq!(child.expect("initialiser"), pid);
    let mut opts = SharedOptions::new(1);
    opts.timeout(Duration::from_millis(300));
    let ran = std::sync::atomic::AtomicBool::new(false);
    let while_alive = opts
        .create_or_open_segment::<AtomicU32>(&name.0, |s| {
            ran.store(true, Ordering::Relaxed);
            s.with(|v| v.store(2, Ordering::Relaxed))
        })
        .map(|_| ());
    child.kill();
    match while_alive {
        Err(e) => assert_eq!(e.errno(), Some(libc_etimedout()), "{e}"),
        Ok(()) => panic!(
            "took over the initialisation from a live initialiser in another namespace \
             (our initialiser ran: {})",
            ran.load(Ordering::Relaxed)
        ),
    }
    opts.timeout(Duration::from_secs(5));
    let (_seg, shared) = opts
        .create_or_open_segment::<AtomicU32>(&name.0, |s| s.with(|v| v.store(3, Ordering::Relaxed)))
        .expect("a killed initialiser is taken over");
    assert_eq!(shared.with(|v| v.load(Ordering::Relaxed)).unwrap(), 3);
}

/// Segments (audit: no pid involved): a creator in another PID namespace that holds the
/// sizing lock (`flock`) of its new, still empty segment is waited for, never robbed;
/// once it is killed the opener sizes the segment at once.
#[test]
fn segment_creator_in_another_pidns_is_waited_for_then_taken_over() {
    if let Some((role, name)) = role() {
        let _ = mmkit::shm::segment::SegmentOptions::new().create_pausing(&name, 8192, |at| {
            if at == "locked" {
                say(&role);
                wait_for_kill();
            }
        });
        std::process::exit(1);
    }
    if !can_unshare() {
        return;
    }
    let name = Name::new("pidns-seg");
    let pid = free_pid();
    let mut child = NsChild::spawn(
        "segment_creator_in_another_pidns_is_waited_for_then_taken_over",
        "creator",
        &name.0,
        Some(pid),
    );
    assert_eq!(child.expect("creator"), pid);
    let (tx, rx) = std::sync::mpsc::channel();
    let n = name.0.clone();
    std::thread::spawn(move || {
        let seg = mmkit::shm::segment::SegmentOptions::new()
            .open_or_create()
            .create(&n, 8192);
        let _ = tx.send(seg.and_then(|s| s.size()));
    });
    let early = rx.recv_timeout(Duration::from_millis(300));
    child.kill();
    assert!(
        early.is_err(),
        "the opener did not wait for a live creator holding the sizing lock: {early:?}"
    );
    let size = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the opener sizes the segment once its creator is killed")
        .unwrap();
    assert!(size >= 8192, "{size}");
}

/// A `fork` child shares its parent's owner lock (the descriptor is inherited), so it
/// may not lock as that owner: it must claim its own.
#[test]
fn a_fork_child_cannot_lock_as_its_parents_owner() {
    let (_dir, file) = store_file();
    let owner = mmkit::shm::sync::Owner::claim(&file).unwrap();
    let word = AtomicU32::new(0);
    let child = common::spawn(|| {
        let refused = RobustMutex::with_owner(&word, &owner)
            .try_lock()
            .is_err_and(|e| e.errno() == Some(22));
        let own = mmkit::shm::sync::Owner::claim(&file).unwrap();
        let locked = RobustMutex::with_owner(&word, &own)
            .try_lock()
            .is_ok_and(|g| g.is_some());
        i32::from(!refused) + 2 * i32::from(!locked)
    });
    assert_eq!(child.wait().unwrap(), mmkit::process::Exit::Code(0));
}
