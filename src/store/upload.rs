//! One backup file, written as a stream and read back as one: [`Upload`] hands the bytes to
//! `object_store`'s buffered writer (a multipart upload in parts of [`PART`], so a file never
//! has to fit in memory or on disk) and counts its size and SHA-256 on the way; [`Download`]
//! reads a file in [`PART`]-sized ranges.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::buffered::{BufReader, BufWriter};
use object_store::path::Path;
use ring::digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Store;
use super::manifest::File;
use crate::{Error, Result};

/// The size of one uploaded part and of one read: S3's smallest part is 5 MiB.
pub const PART: usize = 8 << 20;

/// Parts uploaded at once per file: one in flight while the next fills.
const CONCURRENCY: usize = 2;

/// A file being written.
pub struct Upload {
    writer: BufWriter,
    sha256: digest::Context,
    size: u64,
    name: String,
    store: Store,
}

impl Upload {
    /// Starts writing `file` of backup `backup`.
    pub fn new(store: &Store, backup: &str, file: &str) -> Upload {
        let path = store.path(backup, file);
        Upload {
            writer: BufWriter::with_capacity(store.objects.clone(), path, PART)
                .with_max_concurrency(CONCURRENCY),
            sha256: digest::Context::new(&digest::SHA256),
            size: 0,
            name: file.to_string(),
            store: store.clone(),
        }
    }

    /// Appends `bytes`; waits while earlier parts are still uploading (backpressure).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| self.io_failed(e))
    }

    /// Completes the upload; the file's entry for the manifest.
    pub async fn finish(mut self) -> Result<File> {
        self.writer
            .shutdown()
            .await
            .map_err(|e| self.io_failed(e))?;
        Ok(File {
            name: self.name,
            size: self.size,
            sha256: hex(self.sha256.finish().as_ref()),
        })
    }

    /// Gives the upload up (an error elsewhere): the parts already sent are discarded.
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
    }

    fn io_failed(&self, e: std::io::Error) -> Error {
        let text = format!(
            "write {} at BOOTSTRAP_BACKUP_URL={}: {}",
            self.name,
            self.store.location(),
            super::flat(&e.to_string())
        );
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Error::Config(format!(
                "{text} (check the AWS_* credentials and the bucket's permissions)"
            ))
        } else {
            Error::Storage(text)
        }
    }
}

/// A file being read.
pub struct Download {
    reader: BufReader,
}

impl Download {
    /// Opens `path`; `None` when it does not exist.
    pub async fn open(store: &Store, path: &Path) -> Result<Option<Download>> {
        let meta = match store.objects.head(path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store.failed("read", e)),
        };
        let objects: Arc<dyn ObjectStore> = store.objects.clone();
        Ok(Some(Download {
            reader: BufReader::with_capacity(objects, &meta, PART),
        }))
    }

    /// The reader.
    pub fn reader(&mut self) -> &mut (impl AsyncRead + Unpin + use<>) {
        &mut self.reader
    }

    /// Reads the file to its end: its size and SHA-256.
    pub async fn checksum(mut self) -> std::io::Result<(u64, String)> {
        let mut sha256 = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self.reader.read(&mut buf).await?;
            if n == 0 {
                return Ok((size, hex(sha256.finish().as_ref())));
            }
            sha256.update(&buf[..n]);
            size += n as u64;
        }
    }

    /// The reader, owned.
    pub fn into_reader(self) -> BufReader {
        self.reader
    }
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
