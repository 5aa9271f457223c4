//! The CRC-64 Redis uses (Jones' polynomial, reflected, as `crc64.c`), for `DUMP` payloads and
//! the 8 bytes that end an RDB file (since RDB 5), and the check of that trailer.

use crc::{CRC_64_REDIS, Crc, Table};
use tokio::io::AsyncRead;

use super::Error;
use super::input::Input;

/// Redis's CRC-64, sliced by 16: the whole file goes through it once and every payload once more.
pub(super) static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// The CRC-64 of `bytes`, as Redis computes it (`crc64(0, bytes, len)`).
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

/// The first RDB version with a checksum after `EOF`.
const FIRST_VERSION_WITH_CHECKSUM: u16 = 5;

/// Reads the trailer after `EOF` (none before RDB 5) and checks it against what was read; a
/// trailer of 0 means the server saved with `rdbchecksum no`, and is accepted as it is by Redis.
pub(super) async fn verify_trailer<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    version: u16,
) -> Result<(), Error> {
    if version < FIRST_VERSION_WITH_CHECKSUM {
        return Ok(());
    }
    let actual = input.checksum();
    let expected = u64::from_le_bytes(input.array("the checksum after EOF").await?);
    if expected != 0 && expected != actual {
        return Err(Error::Checksum { expected, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_redis_crc64() {
        // The check value of redis/src/crc64.c's own test ("123456789").
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        // `DUMP` of the string "bar" on Redis 7.0: type 0, "\x03bar", version 10, then the
        // CRC-64 of those 7 bytes, little-endian.
        let dump = b"\x00\x03bar\x0a\x00\xe6\xbe\x49\x60\xee\x66\xfd\x17";
        assert_eq!(
            crc64(&dump[..7]).to_le_bytes(),
            dump[7..],
            "the CRC of a real DUMP"
        );
    }
}
