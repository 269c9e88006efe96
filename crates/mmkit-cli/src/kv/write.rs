//! `mmkit kv set` and `mmkit kv del`.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{key_bytes, kv_error, open};

/// The largest record the log takes (1 GiB less a frame and its padding).
const MAX_RECORD: u64 = (1 << 30) - 24;
/// The bytes a record holds before the key (the operation and the key's length).
const RECORD_PREFIX: u64 = 3;

/// Arguments of `mmkit kv set`.
#[derive(Debug, clap::Args)]
pub(crate) struct SetArgs {
    /// The store; created when missing (only where no file is: an existing empty file,
    /// such as mktemp's, is refused as not a store).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The key (any bytes but NUL, at most 65535).
    #[arg(value_name = "KEY")]
    key: OsString,
    /// The value; `-` reads it from stdin (every byte, up to the end).
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    value: OsString,
    /// Durability::Sync: the value is on storage (fdatasync) before the command returns,
    /// safe from a power loss. Without it (Durability::Process), it is safe from any
    /// process's crash once the command returns, not from a power loss.
    #[arg(long)]
    sync: bool,
}

/// Arguments of `mmkit kv del`.
#[derive(Debug, clap::Args)]
pub(crate) struct DelArgs {
    /// The store (not created: a missing store is an error).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The key.
    #[arg(value_name = "KEY")]
    key: OsString,
    /// Durability::Sync: the deletion is on storage before the command returns.
    #[arg(long)]
    sync: bool,
}

pub(crate) fn set(args: &SetArgs) -> anyhow::Result<ExitCode> {
    let key = key_bytes("set", &args.key)?;
    let limit = MAX_RECORD - RECORD_PREFIX - key.len() as u64;
    let value = if args.value == "-" {
        let mut value = Vec::new();
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut value)
            .map_err(|e| anyhow::anyhow!("kv set: reading stdin: {e}"))?;
        value
    } else {
        args.value.as_bytes().to_vec()
    };
    if value.len() as u64 > limit {
        anyhow::bail!("kv set: the value is over the largest this key can take ({limit} bytes)");
    }
    let kv = open("set", &args.file, true, args.sync)?;
    kv.put(key, &value).map_err(|e| kv_error("set", &e))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn del(args: &DelArgs) -> anyhow::Result<ExitCode> {
    let key = key_bytes("del", &args.key)?;
    let kv = open("del", &args.file, false, args.sync)?;
    let deleted = kv.delete(key).map_err(|e| kv_error("del", &e))?;
    Ok(crate::code(deleted, 1))
}
