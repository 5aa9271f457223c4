//! Module data: a value of a module's type (a RedisJSON document, a Bloom filter, ...) and a
//! module's global data (`MODULE_AUX`).
//!
//! Since Redis 4.0 (`MODULE_2`) a module's bytes are a series of opcodes, each saying what
//! follows (an integer, a float, a double, a string) and ending with `EOF`: the reader can find
//! the end without the module, so a module value is copied like any other, and restores where
//! the same module is loaded. The first byte names the module: a 64-bit ID holding its 9-char
//! type name (6 bits a char) and its encoding version (10 bits). The release candidates of 4.0
//! (`MODULE_PRE_GA`) wrote no opcodes: only the module can find the end, so such a value is
//! refused, naming the module.

use tokio::io::AsyncRead;

use super::header::kind;
use super::input::Input;
use super::{Error, length, string};

/// The characters of a module type name, in the order of their 6-bit codes.
const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Opcodes of module data (`RDB_MODULE_OPCODE_*`).
const EOF: u64 = 0;
const SINT: u64 = 1;
const UINT: u64 = 2;
const FLOAT: u64 = 3;
const DOUBLE: u64 = 4;
const STRING: u64 = 5;

/// The type name a module ID holds (`moduleTypeNameByID`).
pub(super) fn name(id: u64) -> String {
    let mut rest = id >> 10;
    let mut name = [0u8; 9];
    for c in name.iter_mut().rev() {
        *c = CHARSET[(rest & 63) as usize];
        rest >>= 6;
    }
    name.iter().map(|&c| char::from(c)).collect()
}

/// Consumes a module value of type `kind` and returns the module's name.
pub(super) async fn copy_value<R: AsyncRead + Unpin>(
    input: &mut Input<R>,
    kind: u8,
) -> Result<String, Error> {
    let offset = input.offset();
    let name = name(length::read(input, "a module ID").await?);
    if kind == kind::MODULE_PRE_GA {
        return Err(Error::Unsupported {
            offset,
            what: format!(
                "a value of module `{name}` in the format of Redis 4.0's release candidates, \
                 which only that module can read"
            ),
            key: None,
        });
    }
    skip_opcodes(input).await?;
    Ok(name)
}

/// Consumes a module's global data (after the `MODULE_AUX` opcode) and returns the module's name.
pub(super) async fn skip_aux<R: AsyncRead + Unpin>(input: &mut Input<R>) -> Result<String, Error> {
    let name = name(length::read(input, "a module ID").await?);
    let at = input.offset();
    let when_opcode = length::read(input, "a module's aux phase").await?;
    if when_opcode != UINT {
        return Err(Error::Corrupt {
            offset: at,
            detail: format!("module `{name}`'s aux data starts with opcode {when_opcode}, not 2"),
            key: None,
        });
    }
    length::read(input, "a module's aux phase").await?;
    skip_opcodes(input).await?;
    Ok(name)
}

/// Consumes opcodes and their operands up to and including `EOF`.
async fn skip_opcodes<R: AsyncRead + Unpin>(input: &mut Input<R>) -> Result<(), Error> {
    loop {
        let at = input.offset();
        match length::read(input, "a module opcode").await? {
            EOF => return Ok(()),
            SINT | UINT => {
                length::read(input, "a module integer").await?;
            }
            FLOAT => input.skip(4, "a module float").await?,
            DOUBLE => input.skip(8, "a module double").await?,
            STRING => string::skip(input, "a module string").await?,
            other => {
                return Err(Error::Corrupt {
                    offset: at,
                    detail: format!("unknown module opcode {other}"),
                    key: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module ID as `moduleTypeEncodeId` makes it.
    fn encode(name: &str, version: u64) -> u64 {
        let id = name.bytes().fold(0u64, |id, c| {
            let code = CHARSET.iter().position(|&x| x == c).unwrap() as u64;
            id << 6 | code
        });
        id << 10 | version
    }

    #[test]
    fn a_module_id_gives_the_type_name() {
        assert_eq!(name(encode("ReJSON-RL", 3)), "ReJSON-RL");
        assert_eq!(name(encode("MBbloom--", 4)), "MBbloom--");
        assert_eq!(name(encode("_________", 1023)), "_________");
    }
}
