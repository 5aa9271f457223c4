//! What can go wrong reading an RDB, each failure saying where: the byte offset in the file, what
//! was expected there, and the key when it happened inside one.

use std::fmt::Write;

/// A failure to read an RDB.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input failed (a disk, a network stream).
    #[error("reading the RDB failed at byte {offset}: {source}")]
    Io {
        /// Bytes read before the failure.
        offset: u64,
        /// What the input said.
        #[source]
        source: std::io::Error,
    },

    /// The input does not start like an RDB.
    #[error("not an RDB file: it starts with {found}, where `REDIS` and a 4-digit version belong")]
    NotRdb {
        /// The first bytes, escaped.
        found: String,
    },

    /// The header names an RDB version this reader does not know.
    #[error(
        "RDB version {version} is not supported: this reader knows versions 1 to {}",
        super::MAX_VERSION
    )]
    Version {
        /// The version in the header.
        version: u16,
    },

    /// The input ended inside an item.
    #[error(
        "the RDB ends at byte {offset} inside {expected}{}: the file is truncated",
        place(.key)
    )]
    Truncated {
        /// Bytes read before the end.
        offset: u64,
        /// What was being read.
        expected: &'static str,
        /// The key being read, escaped, when inside one.
        key: Option<String>,
    },

    /// The bytes cannot be what the format says is there.
    #[error("the RDB is corrupt at byte {offset}{}: {detail}", place(.key))]
    Corrupt {
        /// Where the bad bytes start.
        offset: u64,
        /// What is wrong.
        detail: String,
        /// The key being read, escaped, when inside one.
        key: Option<String>,
    },

    /// A well-formed item this reader cannot turn into something to restore.
    #[error("the RDB holds, at byte {offset}{}, {what}", place(.key))]
    Unsupported {
        /// Where the item starts.
        offset: u64,
        /// What it is and why it cannot be restored.
        what: String,
        /// The key, escaped, when the item is a key's value.
        key: Option<String>,
    },

    /// The file's trailing CRC-64 does not match its content.
    #[error(
        "the RDB's checksum does not match its content (trailer {expected:016x}, content \
         {actual:016x}): the file is corrupt"
    )]
    Checksum {
        /// The CRC-64 the file ends with.
        expected: u64,
        /// The CRC-64 of what was read.
        actual: u64,
    },
}

impl Error {
    /// The same error, said to have happened inside `key` (unless it already names one).
    pub(super) fn in_key(mut self, key: &[u8]) -> Error {
        if let Error::Truncated { key: slot, .. }
        | Error::Corrupt { key: slot, .. }
        | Error::Unsupported { key: slot, .. } = &mut self
        {
            slot.get_or_insert_with(|| escape(key));
        }
        self
    }

    /// The byte offset the error names, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Io { offset, .. }
            | Error::Truncated { offset, .. }
            | Error::Corrupt { offset, .. }
            | Error::Unsupported { offset, .. } => Some(*offset),
            Error::NotRdb { .. } | Error::Version { .. } | Error::Checksum { .. } => None,
        }
    }
}

/// ` in key "name"` when there is a key, else nothing.
fn place(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(" in key \"{k}\""))
        .unwrap_or_default()
}

/// Bytes as a person can read them in one line: printable ASCII as is, the rest escaped; a long
/// key cut at 100 bytes (`...` and its length).
pub(super) fn escape(bytes: &[u8]) -> String {
    const SHOWN: usize = 100;
    let mut text = bytes[..bytes.len().min(SHOWN)].escape_ascii().to_string();
    if bytes.len() > SHOWN {
        let _ = write!(text, "... ({} bytes)", bytes.len());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_and_cut_so_the_message_stays_one_line() {
        assert_eq!(escape(b"user:1\n\xff\""), "user:1\\n\\xff\\\"");
        let long = escape(&[b'a'; 300]);
        assert!(long.ends_with("aaa... (300 bytes)"), "{long}");
        let e = Error::Truncated {
            offset: 7,
            expected: "a string",
            key: None,
        }
        .in_key(b"k\n");
        assert_eq!(
            e.to_string(),
            "the RDB ends at byte 7 inside a string in key \"k\\n\": the file is truncated"
        );
        assert_eq!(e.offset(), Some(7));
    }
}
