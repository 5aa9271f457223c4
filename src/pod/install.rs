//! `install DIR`: the init container's step. The bootstrap image is distroless (no shell, no
//! `cp`), so the binary copies itself into an `emptyDir` that the Redis container mounts, where
//! the `preStop` hook, the readiness probe and `rejoin` run it.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The file name the Redis container runs.
pub const BINARY: &str = "redis-cluster-bootstrap";

/// Copies the running binary to `dir/redis-cluster-bootstrap`, executable, replacing an earlier
/// copy atomically (a restarted init container finds its previous copy there).
pub fn install(dir: &Path) -> Result<PathBuf> {
    let fail = |what: &str, e: std::io::Error| {
        Error::Config(format!(
            "install: cannot {what} in {}: {e}; expected a writable directory (an emptyDir)",
            dir.display()
        ))
    };
    let me = std::env::current_exe().map_err(|e| fail("find this binary", e))?;
    let target = dir.join(BINARY);
    let partial = dir.join(format!(".{BINARY}.partial"));
    std::fs::copy(&me, &partial).map_err(|e| fail("copy the binary", e))?;
    set_executable(&partial).map_err(|e| fail("make the copy executable", e))?;
    std::fs::rename(&partial, &target).map_err(|e| fail("rename the copy", e))?;
    Ok(target)
}

#[cfg(unix)]
fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_copies_itself_executable() {
        let dir = tempfile::tempdir().unwrap();
        let copied = install(dir.path()).unwrap();
        assert_eq!(copied, dir.path().join(BINARY));
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(std::fs::read(&copied).unwrap(), me);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&copied).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111);
        }
        // Again, over the first copy.
        install(dir.path()).unwrap();
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let e = install(Path::new("/nonexistent/bootstrap")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bootstrap"), "{e}");
    }
}
