//! Power loss on a real file system (root only): a writer appends to a log or a
//! key-value store on ext4 on a loop device over a tmpfs file, with periodic writeback
//! off. At a random moment the writer is stopped (`SIGSTOP`), the kernel writes back a
//! chosen subset of the file's dirty pages (none, all, the header only, or random ones,
//! with `sync_file_range`), a journal commit is forced (an `fsync` of another file), and
//! the device's bytes are copied, as a power cut would leave them. The copy is mounted
//! (its journal replayed) and opened in a fresh PID namespace, as after a reboot: read
//! first, then by a writer, then once more.
//!
//! Checked at every cut: no open refused or blocked; every append or put acknowledged
//! before the stop is there; every batch whole or absent; every record one that was
//! written; the recovered store reopens clean. The counts are printed.
//!
//! The file system is mounted `data=writeback,commit=600`: its journal commits only when
//! something flushes, and data is never written back for the journal's sake, so what
//! reaches the image is what the writer's flushes and this test's `sync_file_range`
//! chose. Every system setting changed (writeback, loop devices, mounts) is restored on
//! every way out, panics included.

use mmkit_testkit as common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mmkit::helpers::XorShift;
use mmkit::process::fork;
use mmkit::store::{Batch, Durability, KvOptions, Log, LogOptions};
use mmkit::MapOptions;

use common::{is_root, note, skip};

/// A record's payload: a function of its number (some over a page, some of zeros).
fn payload(seq: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    if seq % 13 == 0 {
        return vec![0; 1500];
    }
    let len = match seq % 3 {
        0 => 3000 + rng.below(6000),
        _ => 1 + rng.below(600),
    };
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// The size of batch number `b` (1 to 6 records, or keys).
fn batch_len(b: u64) -> u64 {
    1 + (b.wrapping_mul(2_654_435_761) >> 7) % 6
}

/// Append batch number `b`, whose first record is number `seq`; the next batch's first.
fn append_batch_no(log: &Log, b: u64, seq: u64) -> u64 {
    let n = batch_len(b);
    let recs: Vec<Vec<u8>> = (seq..seq + n).map(payload).collect();
    log.append_batch(&recs).unwrap();
    seq + n
}

/// Where the role child (in its own PID namespace) finds its work.
const ROLE: &str = "MMKIT_POWER_ROLE";
const ROLE_PATH: &str = "MMKIT_POWER_PATH";
const ROLE_OUT: &str = "MMKIT_POWER_OUT";

/// Run a command; `Err` with its output when it fails.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A sysctl file set for the test, restored on drop.
struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Option<Sysctl> {
        let old = std::fs::read_to_string(path).ok()?;
        std::fs::write(path, value).ok()?;
        Some(Sysctl {
            path,
            old: old.trim().to_string(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, &self.old);
    }
}

/// An ext4 file system on a loop device over `image`, mounted on `dir`; unmounted and
/// detached on drop.
struct Mounted {
    dir: tempfile::TempDir,
    loopdev: String,
}

impl Mounted {
    fn new(image: &Path, opts: &str) -> Result<Mounted, String> {
        let loopdev = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(image))?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mounted = Mounted { dir, loopdev };
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", opts, &mounted.loopdev])
            .arg(mounted.dir.path()))?;
        Ok(mounted)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

/// What the test needs; `None` (with the reason printed) where it cannot run.
fn setup(scratch: &Path) -> Option<(Mounted, Vec<Sysctl>, PathBuf)> {
    if !is_root() {
        skip("power-loss images need root (loop devices, mounts, sysctls)");
        return None;
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "unshare"] {
        if !common::on_path(tool) {
            skip(&format!(
                "{tool} not installed (apt-get install util-linux e2fsprogs)"
            ));
            return None;
        }
    }
    let image = scratch.join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(96 << 20)
        .unwrap();
    if let Err(e) = run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image)) {
        skip(&format!("mkfs.ext4 failed: {e}"));
        return None;
    }
    // Periodic writeback off: only flushes and this test write dirty pages back.
    let settings: Vec<Sysctl> = [
        ("/proc/sys/vm/dirty_writeback_centisecs", "0"),
        ("/proc/sys/vm/dirty_expire_centisecs", "360000"),
    ]
    .into_iter()
    .filter_map(|(p, v)| Sysctl::set(p, v))
    .collect();
    match Mounted::new(&image, "data=writeback,commit=600") {
        Ok(m) => Some((m, settings, image)),
        Err(e) => {
            skip(&format!("could not mount a loop device here: {e}"));
            None
        }
    }
}

/// How a cut chooses the dirty pages that reach the disk.
#[derive(Debug, Clone, Copy)]
enum Writeback {
    None,
    All,
    HeaderOnly,
    Random,
}

/// Write back `file`'s dirty pages as `how` says, then force a journal commit (an
/// `fsync` of another file) so that the metadata of what was written is in the image.
fn write_back(file: &Path, other: &Path, how: Writeback, rng: &mut XorShift) {
    // The writer may not have created the store yet.
    let Ok(f) = std::fs::File::open(file) else {
        return;
    };
    let len = f.metadata().unwrap().len();
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let page = |at: u64, n: u64| {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on an open descriptor; no memory is passed.
        let r = unsafe { libc::sync_file_range(f.as_raw_fd(), at as i64, n as i64, flags) };
        assert_eq!(r, 0, "sync_file_range: {}", std::io::Error::last_os_error());
    };
    match how {
        Writeback::None => {}
        Writeback::All => page(0, len),
        Writeback::HeaderOnly => page(0, 4096),
        Writeback::Random => {
            for at in (0..len).step_by(4096) {
                if rng.next_u64() & 1 == 1 {
                    page(at, 4096);
                }
            }
        }
    }
    let o = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(other)
        .unwrap();
    o.write_all_at(&rng.next_u64().to_le_bytes(), 0).unwrap();
    o.sync_all().unwrap();
}

/// The writer's work: `log` appends batches of records; `kv` writes batches of keys.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    Log(Durability),
    /// A log whose writer stops itself between writing a batch and flushing it (appends
    /// of `Process` durability, then `sync`): every cut lands in that window.
    LogWindow,
    Kv,
}

/// Fork a writer doing `work` on `path` forever; the batches it had acknowledged are
/// counted in `acked` (shared memory).
fn start_writer(work: Work, path: &Path, acked: &AtomicU64) -> mmkit::process::Child {
    let path = path.to_path_buf();
    // SAFETY: the child only opens the store, appends, and stores to shared memory.
    unsafe {
        fork(move |_| {
            match work {
                Work::Log(durability) => {
                    let log = LogOptions::new()
                        .durability(durability)
                        .open(&path)
                        .unwrap();
                    let mut seq = 1;
                    for b in 0.. {
                        seq = append_batch_no(&log, b, seq);
                        acked.store(b + 1, Ordering::SeqCst);
                    }
                }
                Work::LogWindow => {
                    let log = LogOptions::new().open(&path).unwrap();
                    let me = rustix::process::getpid();
                    let mut seq = 1;
                    for b in 0.. {
                        seq = append_batch_no(&log, b, seq);
                        if b % 3 == 2 {
                            // Written and published, not flushed: the parent cuts here.
                            let _ =
                                rustix::process::kill_process(me, rustix::process::Signal::STOP);
                        }
                        log.sync().unwrap();
                        acked.store(b + 1, Ordering::SeqCst);
                    }
                }
                Work::Kv => {
                    let kv = KvOptions::new()
                        .durability(Durability::Sync)
                        .compact_below(0.5, 256 << 10)
                        .open(&path)
                        .unwrap();
                    for b in 0.. {
                        let mut batch = Batch::new();
                        for j in 0..batch_len(b) {
                            batch.put(format!("o{b}-{j}").as_bytes(), &payload(b * 8 + j));
                        }
                        // Overwrite older keys so that compactions run.
                        let old = b / 2;
                        batch.put(b"counter", &b.to_le_bytes());
                        batch.put(format!("o{old}-0").as_bytes(), &payload(old * 8));
                        kv.write(&batch).unwrap();
                        acked.store(b + 1, Ordering::SeqCst);
                    }
                }
            }
            0
        })
    }
    .unwrap()
}

/// What the role child found in an image.
#[derive(Debug, Default)]
struct Found {
    /// Batches present whole (a prefix of those written).
    batches: u64,
    half: u64,
    wrong: u64,
    torn_cut: u64,
    reopened_clean: bool,
}

fn parse(text: &str) -> Result<Found, String> {
    let mut f = Found::default();
    for word in text.split_whitespace() {
        let (k, v) = word.split_once('=').ok_or(text.to_string())?;
        let n: u64 = v.parse().map_err(|_| text.to_string())?;
        match k {
            "batches" => f.batches = n,
            "half" => f.half = n,
            "wrong" => f.wrong = n,
            "torn" => f.torn_cut = n,
            "clean" => f.reopened_clean = n == 1,
            _ => return Err(text.to_string()),
        }
    }
    Ok(f)
}

/// Open the copy at `store` in a fresh PID namespace (the role below), within a time
/// limit; what it found, or why it failed.
fn open_as_after_reboot(work: Work, store: &Path, out: &Path) -> Result<Found, String> {
    let exe = std::env::current_exe().unwrap();
    let role = match work {
        Work::Log(_) | Work::LogWindow => "log",
        Work::Kv => "kv",
    };
    let _ = std::fs::remove_file(out);
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(exe)
        .args([
            "--exact",
            mmkit_testkit::serial::test_name(module_path!(), "role_in_a_fresh_pid_namespace")
                .as_str(),
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(ROLE_PATH, store)
        .env(ROLE_OUT, out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let text = std::fs::read_to_string(out).unwrap_or_default();
            if !status.success() || text.is_empty() {
                let mut err = String::new();
                use std::io::Read;
                let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut err));
                let err: String = err
                    .lines()
                    .filter(|l| l.contains("panicked") || l.starts_with("read") || l.contains(": "))
                    .take(6)
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(format!("{status}: {text}{err}"));
            }
            return parse(&text);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("blocked for 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait until process `pid` is stopped (its state in `/proc/PID/stat` is `T`).
fn wait_stopped(pid: i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        if state == Some("T") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never stopped: {stat}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The role (run by `open_as_after_reboot` in a fresh PID namespace; does nothing in a
/// plain test run).
#[test]
fn role_in_a_fresh_pid_namespace() {
    let (Some(role), Some(path), Some(out)) = (
        std::env::var_os(ROLE),
        std::env::var_os(ROLE_PATH),
        std::env::var_os(ROLE_OUT),
    ) else {
        return;
    };
    let path = PathBuf::from(path);
    let found = if !path.exists() {
        // The cut came before the store's name reached the disk: nothing to open, and
        // nothing was acknowledged (a `Sync` store is created whole and synced first).
        Ok(Found {
            reopened_clean: true,
            ..Found::default()
        })
    } else if role == "log" {
        check_log(&path)
    } else {
        check_kv(&path)
    };
    let line = match found {
        Ok(f) => format!(
            "batches={} half={} wrong={} torn={} clean={}",
            f.batches,
            f.half,
            f.wrong,
            f.torn_cut,
            u8::from(f.reopened_clean)
        ),
        Err(e) => panic!("{e}"),
    };
    std::fs::write(out, line).unwrap();
}

/// Read the log copy (read-only, then as a writer, then reopened) and count.
fn check_log(path: &Path) -> Result<Found, String> {
    let read = |log: &mmkit::store::ReadOnlyLog| -> Result<Vec<u64>, String> {
        let mut seqs = Vec::new();
        for e in log.iter() {
            let e = e.map_err(|e| e.to_string())?;
            let bytes = e.read().map_err(|e| e.to_string())?;
            if bytes != payload(e.seq()) {
                return Err(format!("record {} is not what was written", e.seq()));
            }
            seqs.push(e.seq());
        }
        Ok(seqs)
    };
    let reader = LogOptions::new()
        .open_read_only(path)
        .map_err(|e| format!("read-only open: {e}"))?;
    let seen = read(&reader)?;
    drop(reader);
    let log = LogOptions::new()
        .durability(Durability::Sync)
        .open(path)
        .map_err(|e| format!("writer's open: {e}"))?;
    let kept = read(&log)?;
    let mut f = Found {
        torn_cut: u64::from(log.recovery_report().cut.is_some()),
        ..Found::default()
    };
    drop(log);
    if !kept.starts_with(&seen) || kept.iter().copied().ne(1..=kept.len() as u64) {
        f.wrong += 1;
    }
    // Batches whole: the last record must end a batch.
    let (mut seq, mut b) = (1u64, 0u64);
    while seq + batch_len(b) - 1 <= kept.len() as u64 {
        seq += batch_len(b);
        b += 1;
    }
    f.batches = b;
    f.half = u64::from(seq != kept.len() as u64 + 1);
    f.reopened_clean = LogOptions::new()
        .open(path)
        .map_err(|e| format!("reopen: {e}"))?
        .recovery_report()
        .is_clean();
    Ok(f)
}

/// Read the key-value copy (read-only, then as a shared writer, then reopened) and count.
fn check_kv(path: &Path) -> Result<Found, String> {
    let count = |kv: &mmkit::store::ReadOnlyKv| -> Result<(u64, u64, u64), String> {
        let counter = kv
            .get(b"counter")
            .map_err(|e| e.to_string())?
            .map_or(0, |v| u64::from_le_bytes(v[..8].try_into().unwrap()) + 1);
        let (mut half, mut wrong) = (0, 0);
        for b in 0..counter + 8 {
            let mut there = 0;
            for j in 0..batch_len(b) {
                if let Some(v) = kv
                    .get(format!("o{b}-{j}").as_bytes())
                    .map_err(|e| e.to_string())?
                {
                    there += 1;
                    wrong += u64::from(v != payload(b * 8 + j));
                }
            }
            let whole = if b < counter { batch_len(b) } else { 0 };
            if there != whole {
                half += 1;
            }
        }
        Ok((counter, half, wrong))
    };
    let ro = KvOptions::new();
    let reader = ro
        .open_read_only(path)
        .map_err(|e| format!("read-only open: {e}"))?;
    let (_, half_r, wrong_r) = count(&reader)?;
    drop(reader);
    let mut w = KvOptions::new();
    w.durability(Durability::Sync);
    let kv = w.open(path).map_err(|e| format!("writer's open: {e}"))?;
    let (batches, half, wrong) = count(&kv)?;
    let torn = u64::from(kv.recovery_report().cut.is_some());
    kv.put(b"after", b"the cut")
        .map_err(|e| format!("a put after recovery: {e}"))?;
    drop(kv);
    let again = w.open(path).map_err(|e| format!("reopen: {e}"))?;
    Ok(Found {
        batches,
        half: half + half_r,
        wrong: wrong + wrong_r,
        torn_cut: torn,
        reopened_clean: again.recovery_report().is_clean(),
    })
}

// One power-cut run at a time: they change the same system settings, and fork writers
// (the lock every test of this binary takes, `common::serial::forks`).

/// Run `work` under `cuts` power cuts, and print the figures.
fn cuts(work: Work, cuts: u32) {
    let _one = common::serial::forks();
    let scratch = tempfile::tempdir_in("/dev/shm").unwrap();
    let Some((fs, _settings, image)) = setup(scratch.path()) else {
        return;
    };
    let store = fs.path().join("store");
    let acked_map = MapOptions::new().len(4096).map_anon_shared().unwrap();
    let acked = &acked_map.atomic_u64s(0, 1).unwrap()[0];
    let writer = start_writer(work, &store, acked);
    let mut rng = XorShift::new(0x90e2 ^ cuts as u64);
    let copy = scratch.path().join("copy.img");
    let out = scratch.path().join("found");
    let (mut refused, mut lost, mut half, mut wrong, mut torn, mut acked_checked) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    let signal = |sig| {
        rustix::process::kill_process(rustix::process::Pid::from_raw(writer.pid()).unwrap(), sig)
            .unwrap()
    };
    for cut in 0..cuts {
        // The writer runs between cuts only (its file stays small).
        signal(rustix::process::Signal::CONT);
        if work == Work::LogWindow {
            wait_stopped(writer.pid());
        } else {
            std::thread::sleep(Duration::from_millis(2 + rng.below(25) as u64));
            signal(rustix::process::Signal::STOP);
        }
        wait_stopped(writer.pid());
        let acked_now = acked.load(Ordering::SeqCst);
        // In the window between a write and its flush, random pages are what tear a
        // batch: half the cuts there.
        let how = match (work, cut % 4) {
            (Work::LogWindow, 0 | 2) => Writeback::Random,
            (_, 0) => Writeback::None,
            (_, 1) => Writeback::All,
            (_, 2) => Writeback::HeaderOnly,
            _ => Writeback::Random,
        };
        write_back(&store, &fs.path().join("other"), how, &mut rng);
        std::fs::copy(&image, &copy).unwrap();
        let after = match Mounted::new(&copy, "data=writeback") {
            Ok(m) => m,
            Err(e) => panic!("cut {cut}: mounting the image: {e}"),
        };
        let found = open_as_after_reboot(work, &after.path().join("store"), &out);
        drop(after);
        let ctx = format!("cut {cut} ({how:?}, {acked_now} batches acknowledged)");
        match found {
            Err(e) => {
                refused += 1;
                failures.push(format!("{ctx}: {e}"));
            }
            Ok(f) => {
                let promised = work != Work::Log(Durability::Process);
                if promised {
                    acked_checked += acked_now;
                    if f.batches < acked_now {
                        lost += acked_now - f.batches;
                        failures.push(format!("{ctx}: only {} batches there", f.batches));
                    }
                }
                half += f.half;
                wrong += f.wrong;
                torn += f.torn_cut;
                if f.half + f.wrong > 0 || !f.reopened_clean {
                    failures.push(format!("{ctx}: {f:?}"));
                }
            }
        }
    }
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(writer.pid()).unwrap(),
        rustix::process::Signal::KILL,
    );
    let _ = writer.wait();
    let line = format!(
        "power cuts on ext4 ({work:?}): {cuts} cuts, {acked_checked} acknowledged batches checked (summed over the cuts), {lost} lost, {half} half-applied batches, {refused} opens refused or blocked, {wrong} wrong records, {torn} torn tails cut"
    );
    note(&line);
    assert!(failures.is_empty(), "{line}\n{}", failures.join("\n"));
}

/// One test a workload: its name, the workload, and how many cuts.
macro_rules! power_cuts {
    ($($name:ident: $work:expr, $cuts:expr;)*) => {
        $(
            #[test]
            fn $name() {
                cuts($work, $cuts);
            }
        )*
    };
}

power_cuts! {
    a_sync_log_keeps_every_acknowledged_batch_whole_across_power_cuts: Work::Log(Durability::Sync), 24;
    a_log_cut_between_its_write_and_its_flush_keeps_every_flushed_batch_whole: Work::LogWindow, 24;
    a_process_log_opens_with_whole_batches_after_power_cuts: Work::Log(Durability::Process), 16;
    a_sync_kv_keeps_every_acknowledged_batch_and_never_wedges_after_power_cuts: Work::Kv, 24;
}
