//! Argument values resolved in one place: the value parsers clap calls (sizes, octal
//! modes), the hex the JSON outputs use for bytes that are not UTF-8, and the one
//! `"{cmd}: {error}"` prefix every subcommand puts on a library error.
//!
//! As in ripgrep's `flags` (`LowArgs` → `HiArgs`), a value is checked and turned into its
//! type once, when the arguments are parsed; the subcommands get numbers, never text. A
//! value that does not parse is refused by clap with exit status 2 before anything runs.

use std::fmt::Display;

use mmkit::size::parse_bytes;

/// A byte count, zero included: `0`, `4096`, `64K`, `1MiB`, `2 G` (units are powers of
/// 1024; see [`mmkit::size::parse_bytes`]). For offsets and lengths.
pub(crate) fn bytes(s: &str) -> Result<u64, String> {
    parse_bytes(s).map_err(|_| {
        format!("`{s}` is not a byte count (a number, optionally with K, M, G, KiB, MiB or GiB)")
    })
}

/// A size: a byte count above zero that fits in `T` (`u64`, or `usize` for a buffer),
/// as [`bytes`] reads it. The one size parser of the CLI: `value_parser = args::size::<u64>`.
pub(crate) fn size<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    match bytes(s)? {
        0 => Err(format!("`{s}` is not a size: it must be at least 1 byte")),
        n => T::try_from(n).map_err(|_| format!("`{s}` is too large a size for this machine")),
    }
}

/// Permission bits in octal: `600`, `0600` or `0o600`.
pub(crate) fn mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("`{s}` is not an octal mode like 0600 or 0644")),
    }
}

/// Bytes as lowercase hex, two digits a byte: how the JSON outputs (`log cat --json`,
/// `kv get --json`, …) carry data that is not UTF-8 (encoding `"hex"`).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// FILE and `--json`: the arguments of `log check`, `log stats`, `kv stats`, `kv compact`
/// and `kv check`, whose help says what the JSON holds.
#[derive(Debug, clap::Args)]
pub(crate) struct FileReport {
    /// The log or key-value store.
    #[arg(value_name = "FILE")]
    pub(crate) file: std::path::PathBuf,
    /// Print the report as one JSON object (`--help` lists its fields).
    #[arg(long)]
    pub(crate) json: bool,
}

/// The error of subcommand `cmd` (`"log append"`, `"kv get"`, `"cat"`) as the CLI prints
/// it, `mmkit: CMD: ERROR`: all of the error's text (a library error's hint follows on
/// a second line).
pub(crate) fn cmd_error(cmd: impl Display, e: impl Display) -> anyhow::Error {
    anyhow::anyhow!("{cmd}: {e}")
}

/// As [`cmd_error`], in one line: only the first line of the error's text (where a
/// one-line report is the contract, the library's hint is left out).
pub(crate) fn cmd_error_line(cmd: impl Display, e: impl Display) -> anyhow::Error {
    cmd_error(cmd, crate::first_line(&e.to_string()))
}

/// Print the error of subcommand `cmd` in one line to stderr (see [`cmd_error_line`]),
/// for a subcommand that goes on or chooses its own exit status.
pub(crate) fn report_error(cmd: impl Display, e: impl Display) {
    crate::report(&cmd_error_line(cmd, e).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_byte_counts() {
        assert_eq!(bytes("0K"), Ok(0));
        assert_eq!(bytes("2MiB"), Ok(2 << 20));
        assert!(bytes("-1").unwrap_err().contains("not a byte count"));
        assert!(size::<u64>("0").is_err());
        assert_eq!(size::<u64>("123"), Ok(123));
        assert_eq!(size::<usize>("4K"), Ok(4096));
        assert!(size::<usize>("0").is_err());
        assert!(size::<u32>("4G").unwrap_err().contains("too large"));
    }

    #[test]
    fn modes() {
        assert_eq!(mode("0600"), Ok(0o600));
        assert_eq!(mode("644"), Ok(0o644));
        assert_eq!(mode("0o1777"), Ok(0o1777));
        assert!(mode("0800").is_err());
        assert!(mode("17777").is_err());
    }

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn errors_carry_their_command() {
        let e = cmd_error("kv get", "no such key\nhint: look");
        assert_eq!(e.to_string(), "kv get: no such key\nhint: look");
        let e = cmd_error_line("kv get", "no such key\nhint: look");
        assert_eq!(e.to_string(), "kv get: no such key");
    }
}
