//! Strings: a length and its bytes, or one of the special encodings Redis uses to save space: an
//! integer of 1, 2 or 4 bytes (little-endian, written as its decimal digits when decoded) or an
//! LZF-compressed string (compressed length, original length, compressed bytes).
//!
//! [`read`] decodes a string (keys, aux fields); [`skip`] only consumes it, so a value's strings
//! are copied into its payload exactly as they were written, compressed or not.

use tokio::io::AsyncRead;

use super::Error;
use super::input::Input;
use super::length::{self, Length};

/// `RDB_ENC_INT8`: a signed byte.
const INT8: u8 = 0;
/// `RDB_ENC_INT16`: 2 bytes, little-endian.
const INT16: u8 = 1;
/// `RDB_ENC_INT32`: 4 bytes, little-endian.
const INT32: u8 = 2;
/// `RDB_ENC_LZF`: compressed.
const LZF: u8 = 3;

/// The most bytes LZF can produce from one compressed byte: a 3-byte back reference copies at
/// most 264 bytes. A larger claimed length is corrupt, and is refused before it is allocated.
const LZF_MAX_RATIO: u64 = 88;

/// Reads and decodes a string.
pub(super) async fn read<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    expected: &'static str,
) -> Result<Vec<u8>, Error> {
    let offset = input.offset();
    match length::read_prefix(input, expected).await? {
        Length::Plain(n) => {
            let mut out = Vec::new();
            input.read_to(n, &mut out, expected).await?;
            Ok(out)
        }
        Length::Special(INT8) => {
            let [b] = input.array(expected).await?;
            Ok(i8::from_le_bytes([b]).to_string().into_bytes())
        }
        Length::Special(INT16) => {
            let n = i16::from_le_bytes(input.array(expected).await?);
            Ok(n.to_string().into_bytes())
        }
        Length::Special(INT32) => {
            let n = i32::from_le_bytes(input.array(expected).await?);
            Ok(n.to_string().into_bytes())
        }
        Length::Special(LZF) => read_lzf(input, expected).await,
        Length::Special(other) => Err(unknown_encoding(offset, other, expected)),
    }
}

/// Consumes a string without decoding it.
pub(super) async fn skip<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    expected: &'static str,
) -> Result<(), Error> {
    let offset = input.offset();
    match length::read_prefix(input, expected).await? {
        Length::Plain(n) => input.skip(n, expected).await,
        Length::Special(INT8) => input.skip(1, expected).await,
        Length::Special(INT16) => input.skip(2, expected).await,
        Length::Special(INT32) => input.skip(4, expected).await,
        Length::Special(LZF) => {
            let compressed = length::read(input, expected).await?;
            length::read(input, expected).await?;
            input.skip(compressed, expected).await
        }
        Length::Special(other) => Err(unknown_encoding(offset, other, expected)),
    }
}

/// The rest of an LZF string, decompressed.
async fn read_lzf<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    expected: &'static str,
) -> Result<Vec<u8>, Error> {
    let offset = input.offset();
    let compressed_len = length::read(input, expected).await?;
    let len = length::read(input, expected).await?;
    let corrupt = |detail: String| Error::Corrupt {
        offset,
        detail,
        key: None,
    };
    if len == 0 || len > compressed_len.saturating_mul(LZF_MAX_RATIO) {
        return Err(corrupt(format!(
            "an LZF string of {compressed_len} bytes cannot hold {len} bytes ({expected})"
        )));
    }
    let mut compressed = Vec::new();
    input
        .read_to(compressed_len, &mut compressed, expected)
        .await?;
    let mut out = vec![0; len as usize];
    match lzf_rust::decompress(&compressed, &mut out) {
        Ok(written) if written as u64 == len => Ok(out),
        Ok(written) => Err(corrupt(format!(
            "an LZF string gave {written} bytes where it said {len} ({expected})"
        ))),
        Err(e) => Err(corrupt(format!(
            "an LZF string does not decompress: {e} ({expected})"
        ))),
    }
}

fn unknown_encoding(offset: u64, encoding: u8, expected: &'static str) -> Error {
    Error::Corrupt {
        offset,
        detail: format!("unknown string encoding {encoding} ({expected})"),
        key: None,
    }
}
