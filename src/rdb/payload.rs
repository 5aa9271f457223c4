//! The `DUMP` payload: a value's bytes (its type byte first) followed by the RDB version they
//! were written in (2 bytes, little-endian) and the CRC-64 of all that (8 bytes, little-endian).
//! `RESTORE` and `FUNCTION RESTORE` check both: a server refuses a version newer than its own
//! (Redis 7.0 takes up to 10; Redis 7.2 and Valkey 8.0 up to 11) and a CRC that does not match.

use super::checksum::crc64;

/// The bytes after a value: version and CRC.
const TRAILER: usize = 10;

/// Makes the payload of a value read from a file of RDB `version`.
pub(super) fn seal(mut value: Vec<u8>, version: u16) -> Vec<u8> {
    value.reserve_exact(TRAILER);
    value.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(&value);
    value.extend_from_slice(&crc.to_le_bytes());
    value
}

/// The RDB version of a payload whose CRC-64 matches, as `RESTORE` checks it; `None` for a
/// payload too short or damaged.
pub fn verify_payload(payload: &[u8]) -> Option<u16> {
    let body = payload.len().checked_sub(8)?;
    if body < 2 {
        return None;
    }
    let (data, crc) = payload.split_at(body);
    if crc64(data).to_le_bytes() != crc {
        return None;
    }
    Some(u16::from_le_bytes([data[body - 2], data[body - 1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DUMP` of the string "bar" on Redis 7.0.
    const REDIS_7_0_BAR: &[u8] = b"\x00\x03bar\x0a\x00\xe6\xbe\x49\x60\xee\x66\xfd\x17";
    /// `DUMP` of the same on Valkey 8.0 (RDB 11).
    const VALKEY_8_0_BAR: &[u8] = b"\x00\x03bar\x0b\x00\x8f\x61\xf4\x13\x13\xf9\x14\x9e";

    #[test]
    fn sealing_a_value_gives_what_dump_gives() {
        assert_eq!(seal(b"\x00\x03bar".to_vec(), 10), REDIS_7_0_BAR);
        assert_eq!(seal(b"\x00\x03bar".to_vec(), 11), VALKEY_8_0_BAR);
    }

    #[test]
    fn a_payload_is_verified_as_restore_does() {
        assert_eq!(verify_payload(REDIS_7_0_BAR), Some(10));
        assert_eq!(verify_payload(VALKEY_8_0_BAR), Some(11));
        let mut flipped = REDIS_7_0_BAR.to_vec();
        flipped[3] ^= 1;
        assert_eq!(verify_payload(&flipped), None);
        assert_eq!(verify_payload(&REDIS_7_0_BAR[..9]), None);
        assert_eq!(verify_payload(b""), None);
    }
}
