//! The lab's tests, one binary: the read bench ([`read`]) and the remote pager bench over
//! `file://` URLs ([`pager_remote`]). No timing is asserted.

mod pager_remote;
mod read;
