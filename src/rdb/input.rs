//! The bytes of an RDB as they arrive: a bounded buffer over any `AsyncRead`, the offset of every
//! byte (for errors that say where), the running CRC-64 of the file (for its trailer), and the
//! capture of a value's bytes as they are read (for its `DUMP` payload).
//!
//! Every byte read goes through [`Input::consume`], so the offset, the checksum and the capture
//! cannot disagree about which bytes were read.

use crc::{Digest, Table};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Error;
use super::checksum::CRC64;

/// The buffer's size: large enough that a file is read in few system calls, small enough that
/// many readers (one per shard of a backup) cost little.
const BUFFER: usize = 64 * 1024;

/// How much of a length read from the file is allocated before its bytes arrive: a corrupt
/// length then fails at the end of the input instead of asking for exabytes up front.
const RESERVE: u64 = 1024 * 1024;

/// An RDB being read.
pub(super) struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes consumed since the start of the input.
    offset: u64,
    /// CRC-64 of the consumed bytes.
    digest: Digest<'static, u64, Table<16>>,
    /// While a value is read: its bytes so far.
    capture: Option<Vec<u8>>,
}

impl<R: AsyncRead + Unpin> Input<R> {
    /// Starts reading `inner` from its current position (offset 0).
    pub fn new(inner: R) -> Input<R> {
        Input {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            offset: 0,
            digest: CRC64.digest(),
            capture: None,
        }
    }

    /// Bytes consumed so far: the offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The CRC-64 of every byte consumed so far.
    pub fn checksum(&self) -> u64 {
        self.digest.clone().finalize()
    }

    /// One byte.
    pub async fn byte(&mut self, expected: &'static str) -> Result<u8, Error> {
        self.fill(expected).await?;
        let byte = self.buf[self.start];
        self.consume(1);
        Ok(byte)
    }

    /// `N` bytes.
    pub async fn array<const N: usize>(
        &mut self,
        expected: &'static str,
    ) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        let mut done = 0;
        while done < N {
            self.fill(expected).await?;
            let n = (N - done).min(self.end - self.start);
            out[done..done + n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.consume(n);
            done += n;
        }
        Ok(out)
    }

    /// `n` bytes, appended to `out`.
    pub async fn read_to(
        &mut self,
        n: u64,
        out: &mut Vec<u8>,
        expected: &'static str,
    ) -> Result<(), Error> {
        out.reserve(n.min(RESERVE) as usize);
        let mut left = n;
        while left > 0 {
            self.fill(expected).await?;
            let take = left.min((self.end - self.start) as u64) as usize;
            out.extend_from_slice(&self.buf[self.start..self.start + take]);
            self.consume(take);
            left -= take as u64;
        }
        Ok(())
    }

    /// Consumes `n` bytes (into the capture, when one is running).
    pub async fn skip(&mut self, n: u64, expected: &'static str) -> Result<(), Error> {
        if let Some(capture) = &mut self.capture {
            capture.reserve(n.min(RESERVE) as usize);
        }
        let mut left = n;
        while left > 0 {
            self.fill(expected).await?;
            let take = left.min((self.end - self.start) as u64) as usize;
            self.consume(take);
            left -= take as u64;
        }
        Ok(())
    }

    /// From now on, every byte consumed is also appended to a capture that starts with `first`.
    pub fn begin_capture(&mut self, first: u8) {
        self.capture = Some(vec![first]);
    }

    /// Ends the capture and returns it.
    pub fn end_capture(&mut self) -> Vec<u8> {
        self.capture.take().unwrap_or_default()
    }

    /// The input, and the bytes read from it but not consumed.
    pub fn into_inner(self) -> (R, Vec<u8>) {
        (self.inner, self.buf[self.start..self.end].to_vec())
    }

    /// Makes at least one unread byte available, or says that the input ended inside `expected`.
    async fn fill(&mut self, expected: &'static str) -> Result<(), Error> {
        if self.start < self.end {
            return Ok(());
        }
        self.start = 0;
        self.end = 0;
        let read = self
            .inner
            .read(&mut self.buf)
            .await
            .map_err(|source| Error::Io {
                offset: self.offset,
                source,
            })?;
        if read == 0 {
            return Err(Error::Truncated {
                offset: self.offset,
                expected,
                key: None,
            });
        }
        self.end = read;
        Ok(())
    }

    /// Marks the next `n` available bytes read.
    fn consume(&mut self, n: usize) {
        let bytes = &self.buf[self.start..self.start + n];
        self.digest.update(bytes);
        if let Some(capture) = &mut self.capture {
            capture.extend_from_slice(bytes);
        }
        self.start += n;
        self.offset += n as u64;
    }
}
