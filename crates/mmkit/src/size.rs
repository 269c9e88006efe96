//! Byte sizes as people write and read them: `64K`, `1MiB`, `2 G` in; `64 KiB`,
//! `1.5 MiB` out. Units are powers of 1024.
//!
//! ```
//! use mmkit::size::{format_size, parse_bytes, parse_size};
//! assert_eq!(parse_size("64K"), Some(65536));
//! assert_eq!(parse_size("0"), None);
//! assert_eq!(parse_bytes("0"), Ok(0));
//! assert_eq!(format_size(3 << 19), "1.5 MiB");
//! ```

use std::fmt;

/// Why a byte count did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeError {
    /// No number of bytes: empty, or not digits followed by a unit.
    NotANumber,
    /// Digits followed by a unit that is not one of B, K, M, G, T (with `iB` or `B`).
    UnknownUnit(String),
    /// The count does not fit in 64 bits.
    TooLarge,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::NotANumber => f.write_str("not a number of bytes"),
            SizeError::UnknownUnit(u) => {
                write!(f, "unknown size suffix {u:?} (use K, M, G or T)")
            }
            SizeError::TooLarge => f.write_str("too large"),
        }
    }
}

impl std::error::Error for SizeError {}

/// Parse a byte count, zero included: digits, optionally followed by `K`, `M`, `G` or `T`
/// (also `KiB`, `KB`, `B`, any case, with or without a space).
///
/// # Errors
/// [`SizeError`] says what is wrong.
pub fn parse_bytes(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim();
    if num.is_empty() || !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(SizeError::NotANumber);
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(SizeError::UnknownUnit(unit.to_string())),
    };
    let n: u64 = num.parse().map_err(|_| SizeError::TooLarge)?;
    n.checked_mul(1u64 << shift).ok_or(SizeError::TooLarge)
}

/// Parse a size above zero, as [`parse_bytes`] reads it. `None` for anything else, or
/// zero.
///
/// ```
/// assert_eq!(mmkit::size::parse_size("64K"), Some(65536));
/// assert_eq!(mmkit::size::parse_size("1MiB"), Some(1 << 20));
/// assert_eq!(mmkit::size::parse_size("12x"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    parse_bytes(text).ok().filter(|&v| v > 0)
}

/// A size as people read it: `4 KiB`, `256 MiB`, `1.5 MiB`, `100 B`.
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("0K"), Ok(0));
        assert_eq!(parse_bytes(" 2 MiB "), Ok(2 << 20));
        assert_eq!(parse_bytes("1t"), Ok(1 << 40));
        assert_eq!(parse_bytes("K"), Err(SizeError::NotANumber));
        assert_eq!(parse_bytes("1-5"), Err(SizeError::NotANumber));
        assert_eq!(parse_bytes("1Q"), Err(SizeError::UnknownUnit("Q".into())));
        assert_eq!(parse_bytes("16777216T"), Err(SizeError::TooLarge));
        assert_eq!(
            parse_bytes("99999999999999999999"),
            Err(SizeError::TooLarge)
        );
        assert_eq!(parse_size("0"), None);
        assert_eq!(format_size(100), "100 B");
        assert_eq!(format_size(64 << 10), "64 KiB");
    }
}
