//! Typed values (MMKV's encode/decode): integers, floats, booleans and strings, stored
//! as their little-endian bytes (strings as UTF-8).

use super::{Kv, ReadOnlyKv};
use crate::{Error, ErrorKind, Op, Result};

macro_rules! typed_get {
    ($get:ident, $t:ty) => {
        #[doc = concat!("The `", stringify!($t), "` at `key`.")]
        ///
        /// # Errors
        /// `Layout` when the value's length is not the type's; as [`ReadOnlyKv::get`].
        pub fn $get(&self, key: &[u8]) -> Result<Option<$t>> {
            match self.get(key)? {
                None => Ok(None),
                Some(v) => match <[u8; std::mem::size_of::<$t>()]>::try_from(&v[..]) {
                    Ok(b) => Ok(Some(<$t>::from_le_bytes(b))),
                    Err(_) => Err(wrong_type(self, key, v.len(), stringify!($t))),
                },
            }
        }
    };
}

macro_rules! typed_put {
    ($put:ident, $t:ty) => {
        #[doc = concat!("Set `key` to a `", stringify!($t), "` (little-endian bytes).")]
        ///
        /// # Errors
        /// As [`Kv::put`].
        pub fn $put(&self, key: &[u8], value: $t) -> Result<()> {
            self.put(key, &value.to_le_bytes())
        }
    };
}

impl Kv {
    typed_put!(put_u64, u64);
    typed_put!(put_i64, i64);
    typed_put!(put_u32, u32);
    typed_put!(put_i32, i32);
    typed_put!(put_f64, f64);
    typed_put!(put_f32, f32);

    /// Set `key` to a boolean (one byte, 0 or 1).
    ///
    /// # Errors
    /// As [`Kv::put`].
    pub fn put_bool(&self, key: &[u8], value: bool) -> Result<()> {
        self.put(key, &[value as u8])
    }

    /// Set `key` to a string (its UTF-8 bytes).
    ///
    /// # Errors
    /// As [`Kv::put`].
    pub fn put_str(&self, key: &[u8], value: &str) -> Result<()> {
        self.put(key, value.as_bytes())
    }
}

impl ReadOnlyKv {
    typed_get!(get_u64, u64);
    typed_get!(get_i64, i64);
    typed_get!(get_u32, u32);
    typed_get!(get_i32, i32);
    typed_get!(get_f64, f64);
    typed_get!(get_f32, f32);

    /// The boolean at `key`.
    ///
    /// # Errors
    /// `Layout` when the value is not one byte of 0 or 1; as [`ReadOnlyKv::get`].
    pub fn get_bool(&self, key: &[u8]) -> Result<Option<bool>> {
        match self.get(key)?.as_deref() {
            None => Ok(None),
            Some([0]) => Ok(Some(false)),
            Some([1]) => Ok(Some(true)),
            Some(v) => Err(wrong_type(self, key, v.len(), "bool")),
        }
    }

    /// The string at `key`.
    ///
    /// # Errors
    /// `Layout` when the value is not UTF-8; as [`ReadOnlyKv::get`].
    pub fn get_string(&self, key: &[u8]) -> Result<Option<String>> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => String::from_utf8(v)
                .map(Some)
                .map_err(|e| wrong_type(self, key, e.as_bytes().len(), "UTF-8 string")),
        }
    }
}

fn wrong_type(kv: &ReadOnlyKv, key: &[u8], len: usize, what: &str) -> Error {
    Error::new(Op::Read, ErrorKind::Layout)
        .with_path(Some(kv.path()))
        .detail(format!(
            "the value of key {:?} ({len} bytes) is not a {what}",
            String::from_utf8_lossy(key)
        ))
}
