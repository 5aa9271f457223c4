//! The length prefix of the RDB format: the top two bits of the first byte say how long it is.
//!
//! - `00xxxxxx`: 6 bits; `01xxxxxx xxxxxxxx`: 14 bits, big-endian;
//! - `10000000` then 4 bytes, `10000001` then 8 bytes: 32 or 64 bits, big-endian;
//! - `11xxxxxx`: not a length but a special string encoding (an integer, LZF) in the 6 bits.

use tokio::io::AsyncRead;

use super::Error;
use super::input::Input;

/// What a length prefix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Length {
    /// A length (or a count, or a number).
    Plain(u64),
    /// A special string encoding (`RDB_ENC_*`).
    Special(u8),
}

/// Reads a length prefix.
pub(super) async fn read_prefix<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    expected: &'static str,
) -> Result<Length, Error> {
    let offset = input.offset();
    let first = input.byte(expected).await?;
    Ok(match first >> 6 {
        0 => Length::Plain(u64::from(first & 0x3f)),
        1 => {
            let low = input.byte(expected).await?;
            Length::Plain(u64::from(first & 0x3f) << 8 | u64::from(low))
        }
        3 => Length::Special(first & 0x3f),
        _ => match first {
            0x80 => Length::Plain(u64::from(u32::from_be_bytes(input.array(expected).await?))),
            0x81 => Length::Plain(u64::from_be_bytes(input.array(expected).await?)),
            _ => {
                return Err(Error::Corrupt {
                    offset,
                    detail: format!("{first:#04x} does not start a length ({expected})"),
                    key: None,
                });
            }
        },
    })
}

/// Reads a length, where a special encoding is not allowed.
pub(super) async fn read<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    expected: &'static str,
) -> Result<u64, Error> {
    let offset = input.offset();
    match read_prefix(input, expected).await? {
        Length::Plain(n) => Ok(n),
        Length::Special(encoding) => Err(Error::Corrupt {
            offset,
            detail: format!("a string encoding ({encoding}) where {expected} belongs"),
            key: None,
        }),
    }
}
