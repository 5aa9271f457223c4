//! Where backups live: `BOOTSTRAP_BACKUP_URL` parsed into a [`Location`] (a directory or an S3
//! bucket and prefix), opened as a [`Store`] over `object_store` (one API for both), and the
//! backups under it: each a folder named by its UTC start time, so the newest sorts last, holding
//! its files and, written last, its [`manifest`]. A folder without a manifest is an incomplete
//! backup: never restored, never counted by retention, never deleted by it.
//!
//! - [`manifest`]: what a backup holds, as JSON;
//! - [`upload`]: one file written as a stream (multipart), with its size and SHA-256.

pub mod manifest;
pub mod upload;

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::{Error, Result};

pub use manifest::Manifest;
pub use upload::{Download, Upload};

/// The file every complete backup holds, written last.
pub const MANIFEST: &str = "manifest.json";

/// `BOOTSTRAP_BACKUP_URL`, parsed: a directory or an S3 bucket and prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The value as written, for messages and for the URL of each backup.
    written: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A local directory (a PVC in a pod).
    Directory(std::path::PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parses `BOOTSTRAP_BACKUP_URL`: a path, `file:///path` or `s3://bucket[/prefix]`.
    pub fn parse(value: &str) -> Result<Location> {
        let value = value.trim();
        // Trailing slashes go, but not those of a bare scheme (`s3://` is no bucket, not `s3:`).
        let written = match value.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.trim_end_matches('/')),
            None => value.trim_end_matches('/').to_string(),
        };
        let bad = |why: &str| {
            Error::Config(format!(
                "BOOTSTRAP_BACKUP_URL={value:?} is not valid: {why}; expected a directory (/backups \
                 or file:///backups) or s3://bucket/prefix"
            ))
        };
        let kind = if let Some(rest) = written.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the bucket is missing"));
            }
            Kind::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            }
        } else if let Some(path) = written.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path (file:///backups)",
                ));
            }
            Kind::Directory(path.into())
        } else if written.contains("://") {
            return Err(bad("only s3:// and file:// URLs are supported"));
        } else if written.is_empty() {
            return Err(bad("it is empty"));
        } else {
            Kind::Directory(written.clone().into())
        };
        // "/" alone trims to "": keep it.
        let written = if written.is_empty() {
            "/".into()
        } else {
            written
        };
        Ok(Location { written, kind })
    }

    /// The URL (or path) of `name` under this location, in the form the user wrote.
    pub fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.written)
    }

    /// The location as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written)
    }
}

/// An opened [`Location`]: the object store and the prefix every path is under.
#[derive(Clone)]
pub struct Store {
    /// The backend.
    pub objects: Arc<dyn ObjectStore>,
    prefix: Path,
    location: Location,
}

impl Store {
    /// Opens `location`: creates the directory if needed, or builds the S3 client from the
    /// `AWS_*` environment (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`, ...).
    pub fn open(location: &Location) -> Result<Store> {
        let (objects, prefix): (Arc<dyn ObjectStore>, &str) = match &location.kind {
            Kind::Directory(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Config(format!(
                        "BOOTSTRAP_BACKUP_URL={location}: cannot create the directory: {e}"
                    ))
                })?;
                let local = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| Error::Config(format!("BOOTSTRAP_BACKUP_URL={location}: {e}")))?
                    .with_automatic_cleanup(true);
                (Arc::new(local), "")
            }
            Kind::S3 { bucket, prefix } => {
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| {
                        Error::Config(format!(
                            "BOOTSTRAP_BACKUP_URL={location}: the S3 client cannot be set up from \
                             the AWS_* variables: {e}"
                        ))
                    })?;
                (Arc::new(s3), prefix.as_str())
            }
        };
        Ok(Store {
            objects,
            prefix: Path::from(prefix),
            location: location.clone(),
        })
    }

    /// Where this store is, as written.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The path of `file` in backup `name`.
    pub fn path(&self, name: &str, file: &str) -> Path {
        let mut parts: Vec<object_store::path::PathPart> = self.prefix.parts().collect();
        parts.extend([name.into(), file.into()]);
        Path::from_iter(parts)
    }

    fn folder(&self, name: &str) -> Path {
        self.prefix.child(name)
    }

    /// Whether the location itself is one backup (it holds a manifest).
    pub async fn is_backup(&self) -> Result<bool> {
        self.exists(&self.prefix.child(MANIFEST)).await
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        match self.objects.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed("read", e)),
        }
    }

    /// The complete backups under this location (each has a manifest), oldest first.
    pub async fn backups(&self) -> Result<Vec<String>> {
        let listed = self
            .objects
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.failed("list", e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        let mut complete = Vec::with_capacity(names.len());
        for name in names {
            if self.exists(&self.path(&name, MANIFEST)).await? {
                complete.push(name);
            }
        }
        Ok(complete)
    }

    /// Reads the manifest of backup `name` (`""`: the location itself is the backup).
    pub async fn manifest(&self, name: &str) -> Result<Manifest> {
        let path = self.file(name, MANIFEST);
        let bytes = match self.objects.get(&path).await {
            Ok(got) => got.bytes().await.map_err(|e| self.failed("read", e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Refused(format!(
                    "{} has no {MANIFEST}: it is not a complete backup (an interrupted one is never \
                     restored)",
                    self.url(name)
                )));
            }
            Err(e) => return Err(self.failed("read", e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Refused(format!(
                "{}/{MANIFEST} is not a manifest this version reads: {e}",
                self.url(name)
            ))
        })
    }

    /// The path of `file` in backup `name`, or at the location itself when `name` is empty.
    pub fn file(&self, name: &str, file: &str) -> Path {
        if name.is_empty() {
            self.prefix.child(file)
        } else {
            self.path(name, file)
        }
    }

    /// The URL of backup `name` in the form the user wrote the location.
    pub fn url(&self, name: &str) -> String {
        if name.is_empty() {
            self.location.to_string()
        } else {
            self.location.child(name)
        }
    }

    /// Deletes every file of backup `name`, the manifest first, so that a deletion cut short
    /// leaves an incomplete backup (never restored) rather than a manifest without its files.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let manifest = self.path(name, MANIFEST);
        match self.objects.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed("delete", e)),
        }
        let files: Vec<Path> = self
            .objects
            .list(Some(&self.folder(name)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.failed("list", e))?;
        for file in files {
            match self.objects.delete(&file).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed("delete", e)),
            }
        }
        Ok(())
    }

    /// A storage failure naming the location and what was being done: credentials refused are
    /// configuration (exit 2), anything else retryable (exit 1).
    pub fn failed(&self, what: &str, e: object_store::Error) -> Error {
        let text = format!(
            "{what} at BOOTSTRAP_BACKUP_URL={}: {}",
            self.location,
            flat(&crate::one_line(&e))
        );
        match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Error::Config(format!(
                "{text} (check the AWS_* credentials and the bucket's permissions)"
            )),
            _ => Error::Storage(text),
        }
    }
}

/// A message on one line: a storage server's error body may hold XML over several lines.
pub fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The name of a backup started at `now`: its UTC time to the millisecond, which sorts in time
/// order as text (`20261207T211206.123Z`).
pub fn backup_name(now: jiff::Timestamp) -> String {
    now.strftime("%Y%m%dT%H%M%S.%3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_directory_or_a_bucket_and_prefix() {
        let s3 = Location::parse("s3://backups/redis/prod/").unwrap();
        assert_eq!(
            s3.kind,
            Kind::S3 {
                bucket: "backups".into(),
                prefix: "redis/prod".into()
            }
        );
        assert_eq!(s3.child("b"), "s3://backups/redis/prod/b");
        let file = Location::parse("file:///var/backups").unwrap();
        assert_eq!(file.kind, Kind::Directory("/var/backups".into()));
        assert_eq!(file.child("b"), "file:///var/backups/b");
        assert_eq!(
            Location::parse("/var/backups").unwrap().kind,
            Kind::Directory("/var/backups".into())
        );
        for bad in ["s3://", "gs://b/p", "file://relative", "  "] {
            let e = Location::parse(bad).unwrap_err();
            assert!(e.to_string().contains("BOOTSTRAP_BACKUP_URL"), "{e}");
            assert_eq!(e.exit_code(), crate::ExitCode::BadConfig);
        }
    }

    #[test]
    fn names_sort_in_time_order() {
        let a = backup_name("2026-12-07T09:05:06.007Z".parse().unwrap());
        let b = backup_name("2026-12-07T21:12:06.123Z".parse().unwrap());
        assert_eq!(a, "20261207T090506.007Z");
        assert!(a < b);
    }
}
