//! The passwords of ACL users as files: the Secret `redis-users` mounted as a directory, one file
//! per user named like the Secret's keys, each holding one password per line.
//!
//! Every line is a password the nodes accept; the first is the one in use (what the tool and the
//! replicas log in with). A change of password is three edits of one file, each applied by every
//! node before the next: the new password appended, then moved first, then the old one removed
//! (docs/security.md). Blank lines and the whitespace around a password are ignored, so an editor's
//! trailing newline or a `\r` changes nothing.
//!
//! Nodes are given SHA-256 hashes (`#<hex>` in an ACL rule), the form `ACL GETUSER` shows too, so
//! no password is ever written to a node's configuration but `masterauth`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;

/// The passwords of one file's text, in order, without blank lines.
pub fn parse(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// The passwords of the file at `path`, at least one; `what` names the file's origin in errors (a
/// variable, a Secret key).
pub fn read(path: &Path, what: &str) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{what}: {} cannot be read: {e}", path.display())))?;
    let passwords = parse(&text);
    if passwords.is_empty() {
        return Err(Error::Config(format!(
            "{what}: {} holds no password: expected one per line, the one in use first",
            path.display()
        )));
    }
    Ok(passwords)
}

/// Every user's passwords in `dir`, by user name (the file's name). Entries whose name starts with
/// `.` are the kubelet's (`..data`, `..2024_01_01_...`) and are skipped, as are directories. A file
/// without a password maps to an empty list: the caller decides what that means.
pub fn read_dir(dir: &Path, var: &str) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Config(format!("{var}={}: cannot be read: {e}", dir.display())))?;
    let mut users = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Config(format!("{var}={}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // The kubelet's own entries, and editors' hidden files.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `is_file` follows the symlinks the kubelet makes (`app -> ..data/app`).
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("{var}: {} cannot be read: {e}", path.display())))?;
        users.insert(name, parse(&text));
    }
    Ok(users)
}

/// The SHA-256 of a password in lowercase hex: how an ACL rule (`#<hash>`) and `ACL GETUSER` name
/// it.
pub fn hash(password: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
    hex(digest.as_ref())
}

/// A new random password: 32 bytes from the system's generator, in hex (64 characters).
pub fn random() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Internal("the system's random generator failed".into()))?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_a_password_the_first_is_in_use() {
        assert_eq!(parse("old\nnew\n"), ["old", "new"]);
        assert_eq!(parse("  only \r\n\n\n"), ["only"]);
        assert!(parse("\n \n").is_empty());
        // A password may hold any character but a line break.
        assert_eq!(parse("a \"q\" b\\c"), ["a \"q\" b\\c"]);
    }

    #[test]
    fn hashes_are_what_acl_getuser_shows() {
        // `ACL SETUSER u >old` then `ACL GETUSER u` on Redis 7.0 and Valkey 8.0.
        assert_eq!(
            hash("old"),
            "cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4"
        );
        let one = random().unwrap();
        assert_eq!(one.len(), 64);
        assert_ne!(one, random().unwrap());
    }

    #[test]
    fn a_directory_as_the_kubelet_mounts_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_12_07_21_00_00.1");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("app"), "a1\na2\n").unwrap();
        std::fs::write(data.join("empty"), "\n").unwrap();
        std::os::unix::fs::symlink("..2026_12_07_21_00_00.1", dir.path().join("..data")).unwrap();
        for user in ["app", "empty"] {
            std::os::unix::fs::symlink(format!("..data/{user}"), dir.path().join(user)).unwrap();
        }
        let users = read_dir(dir.path(), "BOOTSTRAP_USERS_DIR").unwrap();
        assert_eq!(users.len(), 2, "{users:?}");
        assert_eq!(users["app"], ["a1", "a2"]);
        assert!(users["empty"].is_empty());
        let err = read(&dir.path().join("empty"), "BOOTSTRAP_PASSWORD_FILE").unwrap_err();
        assert!(err.to_string().contains("holds no password"), "{err}");
        let err = read_dir(&dir.path().join("missing"), "BOOTSTRAP_USERS_DIR").unwrap_err();
        assert!(err.to_string().starts_with("BOOTSTRAP_USERS_DIR="), "{err}");
    }
}
