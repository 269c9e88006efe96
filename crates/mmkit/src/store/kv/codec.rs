//! How a key-value operation is written as a log record.
//!
//! ```text
//! 0  op u8: 1 put, 2 delete
//! 1  key length u16 (little-endian)
//! 3  key, then (for a put) the value: the rest of the record
//! ```

use crate::{Error, ErrorKind, Op, Result};

pub(crate) const PUT: u8 = 1;
pub(crate) const DELETE: u8 = 2;
/// The bytes before the key.
pub(crate) const PREFIX: usize = 3;
/// The longest key.
pub(crate) const MAX_KEY: usize = u16::MAX as usize;

/// One operation, as the store writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operation<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

impl Operation<'_> {
    /// The record's bytes.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let (op, key, value): (u8, &[u8], &[u8]) = match *self {
            Operation::Put(k, v) => (PUT, k, v),
            Operation::Delete(k) => (DELETE, k, &[]),
        };
        if key.len() > MAX_KEY {
            return Err(Error::new(Op::Append, ErrorKind::TooLarge)
                .detail(format!(
                    "a key of {} bytes is over the limit of {MAX_KEY}",
                    key.len()
                ))
                .hint("use a shorter key (a hash of a long one)"));
        }
        let mut rec = Vec::with_capacity(PREFIX + key.len() + value.len());
        rec.push(op);
        rec.extend_from_slice(&(key.len() as u16).to_le_bytes());
        rec.extend_from_slice(key);
        rec.extend_from_slice(value);
        Ok(rec)
    }
}

/// A record's operation, key and value (empty for a delete); `None` when the bytes are
/// not an operation (a record some other program appended to the log).
pub(crate) fn decode(rec: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&op, rest) = rec.split_first()?;
    let klen = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let key = rest.get(2..2 + klen)?;
    let value = &rest[2 + klen..];
    match op {
        PUT => Some((op, key, value)),
        DELETE if value.is_empty() => Some((op, key, value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip() {
        let rec = Operation::Put(b"key", b"value").encode().unwrap();
        assert_eq!(decode(&rec), Some((PUT, &b"key"[..], &b"value"[..])));
        let rec = Operation::Delete(b"").encode().unwrap();
        assert_eq!(decode(&rec), Some((DELETE, &b""[..], &b""[..])));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[PUT, 9, 0, b'a']), None, "a key past the record");
        assert_eq!(decode(&[7, 0, 0]), None, "an unknown op");
        let long = vec![0u8; MAX_KEY + 1];
        assert_eq!(
            Operation::Delete(&long).encode().unwrap_err().kind(),
            ErrorKind::TooLarge
        );
    }
}
