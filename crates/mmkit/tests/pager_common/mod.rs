//! Shared by the pager tests: building a pager that may be refused.

#![allow(dead_code)]

use std::sync::Arc;

use mmkit::pager::{Pager, PagerOptions, Source};

#[path = "../common/peer.rs"]
mod peer;

#[allow(unused_imports)] // Not every pager test runs a peer.
pub(crate) use peer::{peer, skip};

/// Build a pager, or print why userfaultfd is not usable here and return `None`.
pub(crate) fn build(opts: &PagerOptions, src: Arc<dyn Source>) -> Option<Pager> {
    match opts.build(src) {
        Ok(p) => Some(p),
        Err(e) if e.op() == mmkit::Op::Pager && e.errno() == Some(libc::EPERM) => {
            skip(&format!("userfaultfd not allowed here: {e}"));
            None
        }
        Err(e) => panic!("build: {e}"),
    }
}
