//! The reader: the header, then one item at a time until `EOF` and the checksum.
//!
//! An RDB is a flat series of items, each starting with a byte: an opcode (`AUX`, `SELECTDB`,
//! an expiry or LRU/LFU field for the next key, a function library, `EOF`, ...) or a value
//! type, which a key and its value follow. The fields that describe the next key are gathered
//! until its value type comes.

use tokio::io::AsyncRead;

use super::header::{self, kind, opcode};
use super::input::Input;
use super::item::{Entry, Item};
use super::{Error, checksum, length, module, payload, string, value};

/// Reads an RDB from any async input, one item at a time, holding only the current value.
pub struct Reader<R> {
    input: Input<R>,
    version: u16,
    /// The database of the keys that follow (`SELECTDB`).
    db: u32,
    state: State,
}

/// Where the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between items.
    Reading,
    /// `EOF` and the checksum were read.
    Done,
    /// An error stopped it where the bytes no longer make sense.
    Failed,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Starts reading `input`: reads and checks the header (`REDIS` and a known version).
    pub async fn new(input: R) -> Result<Reader<R>, Error> {
        let mut input = Input::new(input);
        let header = input.array("the REDIS header").await?;
        let version = header::parse(&header)?;
        Ok(Reader {
            input,
            version,
            db: 0,
            state: State::Reading,
        })
    }

    /// The file's RDB version: 10 for Redis 7.0, 11 for Redis 7.2 and Valkey 8.0. Every payload
    /// carries it, and a server refuses a payload newer than its own.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes read so far (for progress, and the size of the RDB once [`Reader::next`] returned
    /// `None`).
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// The next item; `None` once `EOF` is read and the file's checksum verified. After an error
    /// the reader stays failed: every later call is an error too.
    pub async fn next(&mut self) -> Result<Option<Item>, Error> {
        match self.state {
            State::Done => return Ok(None),
            State::Failed => {
                return Err(Error::Corrupt {
                    offset: self.input.offset(),
                    detail: "reading stopped at an earlier error".into(),
                    key: None,
                });
            }
            State::Reading => {}
        }
        let item = self.read_item().await;
        self.state = match &item {
            Err(_) => State::Failed,
            Ok(None) => State::Done,
            Ok(Some(_)) => State::Reading,
        };
        item
    }

    /// The input and the bytes read from it past the RDB's end, once [`Reader::next`] returned
    /// `None`: a replication stream goes on with commands after the RDB.
    pub fn into_inner(self) -> (R, Vec<u8>) {
        self.input.into_inner()
    }

    async fn read_item(&mut self) -> Result<Option<Item>, Error> {
        let input = &mut self.input;
        let mut expire_at_ms = None;
        let mut idle_seconds = None;
        let mut freq = None;
        loop {
            let at = input.offset();
            let byte = input.byte("an opcode or a value type").await?;
            if header::since(byte) > self.version {
                return Err(Error::Corrupt {
                    offset: at,
                    detail: format!(
                        "item {byte} is newer than the RDB version the header says ({})",
                        self.version
                    ),
                    key: None,
                });
            }
            match byte {
                opcode::AUX => {
                    let key = string::read(input, "an aux field's name").await?;
                    let value = string::read(input, "an aux field's value").await?;
                    return Ok(Some(Item::Aux { key, value }));
                }
                opcode::SELECTDB => {
                    let db = length::read(input, "a database number").await?;
                    self.db = u32::try_from(db).map_err(|_| Error::Corrupt {
                        offset: at,
                        detail: format!("database number {db}"),
                        key: None,
                    })?;
                }
                opcode::RESIZEDB => {
                    length::read(input, "a database size hint").await?;
                    length::read(input, "a database size hint").await?;
                }
                opcode::SLOT_INFO => {
                    for _ in 0..3 {
                        length::read(input, "a slot size hint").await?;
                    }
                }
                opcode::EXPIRETIME_MS => {
                    let ms = input.array("an expiry in milliseconds").await?;
                    expire_at_ms = Some(i64::from_le_bytes(ms));
                }
                opcode::EXPIRETIME => {
                    let s = input.array("an expiry in seconds").await?;
                    expire_at_ms = Some(i64::from(i32::from_le_bytes(s)) * 1000);
                }
                opcode::IDLE => idle_seconds = Some(length::read(input, "an LRU idle time").await?),
                opcode::FREQ => freq = Some(input.byte("an LFU counter").await?),
                opcode::MODULE_AUX => {
                    let module = module::skip_aux(input).await?;
                    return Ok(Some(Item::ModuleAux { module }));
                }
                opcode::FUNCTION2 => {
                    input.begin_capture(opcode::FUNCTION2);
                    let code = string::skip(input, "a function library").await;
                    let library = input.end_capture();
                    code?;
                    let payload = payload::seal(library, self.version);
                    return Ok(Some(Item::Function { payload }));
                }
                opcode::FUNCTION_PRE_GA => {
                    return Err(Error::Unsupported {
                        offset: at,
                        what: "a function library in the format of Redis 7.0's release \
                               candidates, which no released server restores"
                            .into(),
                        key: None,
                    });
                }
                opcode::EOF => {
                    checksum::verify_trailer(input, self.version).await?;
                    return Ok(None);
                }
                value_type if kind::name(value_type).is_some() => {
                    let key = string::read(input, "a key").await?;
                    input.begin_capture(value_type);
                    let copied = value::copy(input, value_type).await;
                    let value = input.end_capture();
                    let copied = copied.map_err(|e| e.in_key(&key))?;
                    return Ok(Some(Item::Key(Entry {
                        db: self.db,
                        key,
                        expire_at_ms,
                        idle_seconds,
                        freq,
                        payload: payload::seal(value, self.version),
                        module: copied.module,
                    })));
                }
                other => {
                    return Err(Error::Corrupt {
                        offset: at,
                        detail: format!("{other} is neither an opcode nor a value type"),
                        key: None,
                    });
                }
            }
        }
    }
}
