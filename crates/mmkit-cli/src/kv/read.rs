//! `mmkit kv get` and `mmkit kv ls`: values and keys to stdout, raw or as JSON lines.

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{encoded, key_bytes, kv_error, open_to_read};

/// Arguments of `mmkit kv get`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
JSON: {\"key\": ..., \"key_encoding\": ..., \"value\": ..., \"encoding\": ...}: key and \
value are strings when they are valid UTF-8 (encoding \"utf8\"), else their bytes in \
lowercase hex, two digits a byte (encoding \"hex\"), as in `mmkit log cat --json`.")]
pub(crate) struct GetArgs {
    /// The store.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The key.
    #[arg(value_name = "KEY")]
    key: OsString,
    /// Print a JSON line (see below) instead of the raw value.
    #[arg(long)]
    json: bool,
}

/// Arguments of `mmkit kv ls`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
JSON lines: {\"key\": ..., \"key_encoding\": ...}, with --values also \"value\" and \
\"encoding\", encoded as in `mmkit kv get --help`.

The keys are those held when the listing starts; a key another process deletes while \
the values are read is left out.")]
pub(crate) struct LsArgs {
    /// The store.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print each key's value after it: KEY<TAB>VALUE.
    #[arg(long)]
    values: bool,
    /// Print JSON lines (see below) instead of raw lines.
    #[arg(long)]
    json: bool,
}

pub(crate) fn get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let key = key_bytes("get", &args.key)?;
    let kv = open_to_read("get", &args.file)?;
    let Some(value) = kv.get(key).map_err(|e| kv_error("get", &e))? else {
        return Ok(ExitCode::from(1));
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&json_line(key, Some(&value)))?
        )?;
    } else {
        out.write_all(&value)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ls(args: &LsArgs) -> anyhow::Result<ExitCode> {
    let kv = open_to_read("ls", &args.file)?;
    let mut keys = kv.keys().map_err(|e| kv_error("ls", &e))?;
    keys.sort_unstable();
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    for key in &keys {
        let value = if args.values {
            match kv.get(key).map_err(|e| kv_error("ls", &e))? {
                Some(v) => Some(v),
                None => continue, // deleted by another process meanwhile
            }
        } else {
            None
        };
        if args.json {
            serde_json::to_writer(&mut out, &json_line(key, value.as_deref()))
                .map_err(std::io::Error::from)?;
        } else {
            out.write_all(key)?;
            if let Some(v) = &value {
                out.write_all(b"\t")?;
                out.write_all(v)?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A key (and its value) as a JSON line, in this order.
#[derive(serde::Serialize)]
struct JsonLine {
    key: String,
    key_encoding: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

fn json_line(key: &[u8], value: Option<&[u8]>) -> JsonLine {
    let (key_encoding, key) = encoded(key);
    let value = value.map(encoded);
    JsonLine {
        key,
        key_encoding,
        encoding: value.as_ref().map(|v| v.0),
        value: value.map(|v| v.1),
    }
}
