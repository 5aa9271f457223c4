//! A stream's value: its entries (a radix tree of listpacks, saved as pairs of a 16-byte node key
//! and a listpack), its metadata, and its consumer groups with their pending entries (PEL) and
//! consumers.
//!
//! Three versions, each adding fields (Redis's `rdbLoadObject`):
//! - `STREAM_LISTPACKS` (Redis 5.0 to 6.2);
//! - `_2` (Redis 7.0): the first ID, the largest deleted ID and the count of entries ever added;
//!   each group's `entries-read`;
//! - `_3` (Redis 7.2, Valkey 8.0): each consumer's active time.

use tokio::io::AsyncRead;

use super::header::kind;
use super::input::Input;
use super::{Error, length, string};

/// A stream ID in a PEL: two big-endian 64-bit numbers.
const RAW_ID: u64 = 16;
/// A millisecond time: 8 bytes, little-endian.
const TIME: u64 = 8;

/// Consumes a stream of type `version` (one of the three `STREAM_LISTPACKS` types).
pub(super) async fn copy<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    version: u8,
) -> Result<(), Error> {
    let nodes = length::read(input, "the number of stream nodes").await?;
    for _ in 0..nodes {
        string::skip(input, "a stream node's key").await?;
        string::skip(input, "a stream node's listpack").await?;
    }
    length::read(input, "the stream's length").await?;
    skip_id(input, "the stream's last ID").await?;
    if version >= kind::STREAM_LISTPACKS_2 {
        skip_id(input, "the stream's first ID").await?;
        skip_id(input, "the stream's largest deleted ID").await?;
        length::read(input, "the stream's count of entries added").await?;
    }
    let groups = length::read(input, "the number of consumer groups").await?;
    for _ in 0..groups {
        string::skip(input, "a consumer group's name").await?;
        skip_id(input, "a consumer group's last delivered ID").await?;
        if version >= kind::STREAM_LISTPACKS_2 {
            length::read(input, "a consumer group's entries read").await?;
        }
        let pending = length::read(input, "the size of a group's PEL").await?;
        for _ in 0..pending {
            input.skip(RAW_ID, "a pending entry's ID").await?;
            input.skip(TIME, "a pending entry's delivery time").await?;
            length::read(input, "a pending entry's delivery count").await?;
        }
        let consumers = length::read(input, "the number of consumers").await?;
        for _ in 0..consumers {
            string::skip(input, "a consumer's name").await?;
            input.skip(TIME, "a consumer's seen time").await?;
            if version >= kind::STREAM_LISTPACKS_3 {
                input.skip(TIME, "a consumer's active time").await?;
            }
            let owned = length::read(input, "the size of a consumer's PEL").await?;
            for _ in 0..owned {
                input.skip(RAW_ID, "a consumer's pending entry ID").await?;
            }
        }
    }
    Ok(())
}

/// A stream ID saved as two lengths (milliseconds, sequence).
async fn skip_id<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    expected: &'static str,
) -> Result<(), Error> {
    length::read(input, expected).await?;
    length::read(input, expected).await?;
    Ok(())
}
