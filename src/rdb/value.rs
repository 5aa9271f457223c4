//! A key's value, consumed by its type so that every byte of it lands in the capture that becomes
//! its `DUMP` payload. Nothing is decoded or re-encoded: the structure is followed only to find
//! where the value ends (`RESTORE` checks and loads the bytes themselves).

use tokio::io::AsyncRead;

use super::header::kind;
use super::input::Input;
use super::{Error, length, module, stream, string};

/// What the value was, beyond its type byte.
#[derive(Debug, Default)]
pub(super) struct Copied {
    /// For a module value: the module's type name (`ReJSON-RL`, `MBbloom--`, ...).
    pub module: Option<String>,
}

/// Consumes the value of type `kind` that follows.
pub(super) async fn copy<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    kind: u8,
) -> Result<Copied, Error> {
    let offset = input.offset();
    match kind {
        kind::STRING => string::skip(input, "a string value").await?,
        kind::LIST | kind::SET => {
            let n = length::read(input, "the number of elements").await?;
            for _ in 0..n {
                string::skip(input, "an element").await?;
            }
        }
        kind::ZSET => {
            let n = length::read(input, "the number of members").await?;
            for _ in 0..n {
                string::skip(input, "a member").await?;
                skip_string_double(input).await?;
            }
        }
        kind::HASH => {
            let n = length::read(input, "the number of fields").await?;
            for _ in 0..n {
                string::skip(input, "a field").await?;
                string::skip(input, "a field's value").await?;
            }
        }
        kind::ZSET_2 => {
            let n = length::read(input, "the number of members").await?;
            for _ in 0..n {
                string::skip(input, "a member").await?;
                input.skip(8, "a score").await?;
            }
        }
        kind::MODULE_PRE_GA | kind::MODULE_2 => {
            let name = module::copy_value(input, kind).await?;
            return Ok(Copied { module: Some(name) });
        }
        // One blob each: the whole value as a ziplist, zipmap, intset or listpack.
        kind::HASH_ZIPMAP
        | kind::LIST_ZIPLIST
        | kind::SET_INTSET
        | kind::ZSET_ZIPLIST
        | kind::HASH_ZIPLIST
        | kind::HASH_LISTPACK
        | kind::ZSET_LISTPACK
        | kind::SET_LISTPACK => string::skip(input, "an encoded collection").await?,
        kind::LIST_QUICKLIST => {
            let n = length::read(input, "the number of quicklist nodes").await?;
            for _ in 0..n {
                string::skip(input, "a quicklist node").await?;
            }
        }
        kind::LIST_QUICKLIST_2 => {
            let n = length::read(input, "the number of quicklist nodes").await?;
            for _ in 0..n {
                let container_at = input.offset();
                // 1: a plain node (one large element), 2: a listpack of small ones.
                let container = length::read(input, "a quicklist node's container").await?;
                if !(1..=2).contains(&container) {
                    return Err(Error::Corrupt {
                        offset: container_at,
                        detail: format!("quicklist node container {container} (1 or 2 expected)"),
                        key: None,
                    });
                }
                string::skip(input, "a quicklist node").await?;
            }
        }
        kind::STREAM_LISTPACKS | kind::STREAM_LISTPACKS_2 | kind::STREAM_LISTPACKS_3 => {
            stream::copy(input, kind).await?
        }
        kind::HASH_METADATA_FIRST..=kind::HASH_METADATA_LAST => {
            return Err(Error::Unsupported {
                offset,
                what: format!(
                    "a hash with field expirations (value type {kind}, Redis 7.4 and later), \
                     which servers before Redis 7.4 cannot restore and this reader does not copy"
                ),
                key: None,
            });
        }
        other => {
            return Err(Error::Corrupt {
                offset,
                detail: format!("unknown value type {other}"),
                key: None,
            });
        }
    }
    Ok(Copied::default())
}

/// A score of the old sorted set format: a 1-byte length and that many ASCII digits, or 253,
/// 254, 255 alone for NaN, +inf and -inf.
async fn skip_string_double<R: AsyncRead + Unpin>(input: &mut Input<R>) -> Result<(), Error> {
    let len = input.byte("a score").await?;
    if len < 253 {
        input.skip(u64::from(len), "a score").await?;
    }
    Ok(())
}
