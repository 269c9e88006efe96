//! The crash backend (test builds only): it watches the calls of every [`StoreFile`]
//! made on this thread, keeps what each file's last completed flush left on storage
//! apart from what was written since, and makes the images a power cut can leave.
//!
//! A store writes through its mappings, into the page cache, without a call this seam
//! sees; so the written bytes are read back from the file when an image is made. What a
//! power cut leaves is the durable bytes with any subset of the pages (or sectors)
//! written since the last flush: [`Image::cut`] makes one for each [`Loss`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;

use super::StoreFile;

/// A call of the seam: the image is taken after it (before it, for `Sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Reserve,
    Punch,
    Write,
    SetLen,
    Sync,
}

/// The durable and the written bytes of one file at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) event: Event,
    /// What the last completed flush left on storage (empty before the first).
    pub(crate) durable: Vec<u8>,
    /// What the file holds now (the page cache).
    pub(crate) written: Vec<u8>,
}

/// Which of the bytes written since the last flush a power cut let reach storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loss {
    /// None of them.
    All,
    /// All of them (the cut came after writeback, before the flush returned).
    None,
    /// The header page only (the page every commit dirties).
    AllButHeader,
    /// Each 4 KiB page, or not, at random.
    Pages,
    /// Each 512-byte sector, or not, at random (a disk that tears pages).
    Sectors,
}

impl Loss {
    pub(crate) const EVERY: [Loss; 5] = [
        Loss::All,
        Loss::None,
        Loss::AllButHeader,
        Loss::Pages,
        Loss::Sectors,
    ];
}

impl Image {
    /// The file's content after a power cut losing what `loss` says; `coin` draws the
    /// random choices. The file's size is the written one or the durable one (a size
    /// change is metadata, which may or may not have reached the journal).
    pub(crate) fn cut(&self, loss: Loss, coin: &mut impl FnMut() -> bool) -> Vec<u8> {
        let len = match loss {
            Loss::All => self.durable.len(),
            Loss::None | Loss::AllButHeader => self.written.len(),
            Loss::Pages | Loss::Sectors => {
                if coin() {
                    self.written.len()
                } else {
                    self.durable.len()
                }
            }
        };
        let unit = if loss == Loss::Sectors { 512 } else { 4096 };
        let mut out = vec![0u8; len];
        for (i, chunk) in out.chunks_mut(unit).enumerate() {
            let at = i * unit;
            let written = match loss {
                Loss::All => false,
                Loss::None => true,
                Loss::AllButHeader => at == 0,
                Loss::Pages | Loss::Sectors => coin(),
            };
            let from = if written {
                &self.written
            } else {
                &self.durable
            };
            if at < from.len() {
                let n = chunk.len().min(from.len() - at);
                chunk[..n].copy_from_slice(&from[at..at + n]);
            }
        }
        out
    }
}

/// A file's identity: a store created under a temporary name and linked into place
/// keeps it.
type Id = (u64, u64);

#[derive(Default)]
struct Recorder {
    durable: HashMap<Id, Vec<u8>>,
    calls: u64,
    cut_at: Option<fn(u64) -> bool>,
    images: Vec<(u64, Image)>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Watch this thread's store files from now on; take an image at each call whose
/// number (counted from 0) `cut_at` picks.
pub(crate) fn install(cut_at: fn(u64) -> bool) {
    RECORDER.with(|r| {
        *r.borrow_mut() = Some(Recorder {
            cut_at: Some(cut_at),
            ..Recorder::default()
        })
    });
}

/// The calls seen so far.
pub(crate) fn calls() -> u64 {
    RECORDER.with(|r| r.borrow().as_ref().map_or(0, |rec| rec.calls))
}

/// Take `file`'s present content for what storage holds (a file the test flushed).
pub(crate) fn assume_durable(file: &File) {
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.durable.insert(id(file), read_all(file));
        }
    });
}

/// Stop watching; returns the images taken, each with its call's number.
pub(crate) fn finish() -> Vec<(u64, Image)> {
    RECORDER.with(|r| {
        r.borrow_mut()
            .take()
            .map(|rec| rec.images)
            .unwrap_or_default()
    })
}

pub(super) fn after(event: Event, file: &StoreFile) {
    record(event, file);
}

pub(super) fn before_sync(file: &StoreFile) {
    record(Event::Sync, file);
}

pub(super) fn synced(file: &StoreFile) {
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.durable.insert(id(file), read_all(file));
        }
    });
}

fn record(event: Event, file: &StoreFile) {
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let Some(rec) = r.as_mut() else { return };
        if rec.cut_at.is_some_and(|cut| cut(rec.calls)) {
            let image = Image {
                event,
                durable: rec.durable.get(&id(file)).cloned().unwrap_or_default(),
                written: read_all(file),
            };
            rec.images.push((rec.calls, image));
        }
        rec.calls += 1;
    });
}

fn id(file: &File) -> Id {
    file.metadata().map_or((0, 0), |m| (m.dev(), m.ino()))
}

fn read_all(file: &File) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().map_or(0, |m| m.len()) as usize;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)
        .expect("read the store's file back");
    buf
}
