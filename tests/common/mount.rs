//! A Secret mounted as the kubelet mounts it, changed as the kubelet changes it.
//!
//! The kubelet's atomic writer keeps a Secret volume as `..<timestamp>/` holding the files,
//! `..data -> ..<timestamp>`, and one symlink per key (`tls.crt -> ..data/tls.crt`). On a change
//! it writes a new timestamped directory, renames a new `..data` link over the old one (the one
//! atomic step: a reader sees every old file or every new one), adds links for new keys, removes
//! links of keys gone, and deletes the old directory.

use std::path::{Path, PathBuf};

/// One mounted Secret.
pub struct Mount {
    /// The mount point.
    pub dir: PathBuf,
    generation: u32,
}

impl Mount {
    /// An empty mount point at `dir` (created).
    pub fn new(dir: &Path) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        Mount {
            dir: dir.to_path_buf(),
            generation: 0,
        }
    }

    /// A key's file, as a container reads it.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Replaces the whole Secret at once with `files` (key, contents), as the kubelet does.
    pub fn write(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let stamp = format!("..2026_12_07_00_00_00.{}", self.generation);
        let fresh = self.dir.join(&stamp);
        std::fs::create_dir(&fresh).unwrap();
        for (key, contents) in files {
            std::fs::write(fresh.join(key), contents).unwrap();
        }
        let data = self.dir.join("..data");
        let old = std::fs::read_link(&data).ok();
        let link = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&stamp, &link).unwrap();
        std::fs::rename(&link, &data).unwrap();
        for (key, _) in files {
            let path = self.dir.join(key);
            if std::fs::symlink_metadata(&path).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(key), &path).unwrap();
            }
        }
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !files.iter().any(|(key, _)| *key == name) {
                std::fs::remove_file(self.dir.join(&name)).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}
