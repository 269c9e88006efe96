//! [`ByteRange`]: the part of each file `mmkit cache` works on, parsed as `vmtouch -p`
//! takes it.

use crate::size::SizeError;

/// A byte range `start..end` of each file; `end: None` means to the end of the file.
///
/// Parsed from `A-B`, `A-` or `-B`, with optional `K`, `M`, `G` suffixes (powers of 1024),
/// as `vmtouch -p` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte, or `None` for the end of the file.
    pub end: Option<u64>,
}

/// Why a byte range did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRangeError(String);

impl std::fmt::Display for ParseRangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseRangeError {}

fn parse_size(s: &str, whole: &str) -> std::result::Result<u64, ParseRangeError> {
    let s = s.trim();
    crate::size::parse_bytes(s).map_err(|e| {
        ParseRangeError(match e {
            SizeError::NotANumber => format!(
                "bad range {whole:?}: {s:?} is not a number of bytes (expected A-B, e.g. 0-4M)"
            ),
            SizeError::TooLarge => format!("bad range {whole:?}: {s:?} is too large"),
            e => format!("bad range {whole:?}: {e}"),
        })
    })
}

impl std::str::FromStr for ByteRange {
    type Err = ParseRangeError;

    fn from_str(s: &str) -> std::result::Result<ByteRange, ParseRangeError> {
        let Some((a, b)) = s.split_once('-') else {
            return Err(ParseRangeError(format!(
                "bad range {s:?}: expected A-B (bytes, K/M/G suffixes), A- or -B"
            )));
        };
        let start = if a.trim().is_empty() {
            0
        } else {
            parse_size(a, s)?
        };
        let end = if b.trim().is_empty() {
            None
        } else {
            Some(parse_size(b, s)?)
        };
        if let Some(e) = end {
            if e <= start {
                return Err(ParseRangeError(format!(
                    "bad range {s:?}: the end ({e}) must be after the start ({start})"
                )));
            }
        }
        Ok(ByteRange { start, end })
    }
}

impl ByteRange {
    /// The part of a file of `size` bytes this range covers: `(offset, len)`.
    pub fn clamp(&self, size: u64) -> (u64, u64) {
        let start = self.start.min(size);
        let end = self.end.unwrap_or(size).min(size);
        (start, end.saturating_sub(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        let r = |s: &str| s.parse::<ByteRange>();
        assert_eq!(
            r("10-20").unwrap(),
            ByteRange {
                start: 10,
                end: Some(20)
            }
        );
        assert_eq!(
            r("4K-1M").unwrap(),
            ByteRange {
                start: 4096,
                end: Some(1 << 20)
            }
        );
        assert_eq!(
            r("8k-").unwrap(),
            ByteRange {
                start: 8192,
                end: None
            }
        );
        assert_eq!(
            r("-2G").unwrap(),
            ByteRange {
                start: 0,
                end: Some(2 << 30)
            }
        );
        assert!(r("10-5").unwrap_err().to_string().contains("must be after"));
        assert!(r("10-10").is_err());
        assert!(r("10").is_err());
        assert!(r("x-5").is_err());
        assert!(r("1Q-5").unwrap_err().to_string().contains("suffix"));
        assert!(r("99999999999999999999-")
            .unwrap_err()
            .to_string()
            .contains("too large"));
        assert!(r("16777216T-")
            .unwrap_err()
            .to_string()
            .contains("too large"));
        assert!(r("-1-5").unwrap_err().to_string().contains("not a number"));
        assert!(r("--5").is_err());
        assert!(r("").is_err() && r("-").is_ok());
        assert_eq!(r("100-200").unwrap().clamp(150), (100, 50));
        assert_eq!(r("100-").unwrap().clamp(50), (50, 0));
    }
}
