//! Noticing that watched files changed, and acting once they hold still.
//!
//! The kubelet replaces a mounted Secret atomically (a new `..<timestamp>` directory, then the
//! `..data` symlink renamed over), but other writers copy one file after another: a certificate
//! read between the copy of `tls.crt` and the copy of `tls.key` would not match its key. So a
//! change is acted upon only once two polls in a row (one [`super::POLL`] apart) saw the same
//! contents, and then once. What counts is the contents, not the paths or times: the kubelet's
//! renames alone change nothing.

use std::path::PathBuf;

/// What a set of files holds, as one SHA-256 (a missing or unreadable file counts as such).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(Vec<u8>);

impl Digest {
    /// The digest of `files`' contents, in order.
    pub fn of_files(files: &[PathBuf]) -> Digest {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for file in files {
            context.update(file.as_os_str().as_encoded_bytes());
            match std::fs::read(file) {
                Ok(bytes) => {
                    context.update(&(bytes.len() as u64).to_be_bytes());
                    context.update(&bytes);
                }
                Err(e) => context.update(format!("\0unreadable: {:?}", e.kind()).as_bytes()),
            }
        }
        Digest(context.finish().as_ref().to_vec())
    }

    /// The digest of some text (what a directory of passwords says, say).
    pub fn of_text(text: &str) -> Digest {
        Digest(
            ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
                .as_ref()
                .to_vec(),
        )
    }
}

/// Tells when to act on a set of files: after a change that held still for one poll, once.
#[derive(Debug, Default)]
pub struct Settled {
    /// What the previous poll saw.
    seen: Option<Digest>,
    /// What was last acted upon successfully.
    applied: Option<Digest>,
}

impl Settled {
    /// Feeds what this poll sees; true when it differs from what was applied and the previous
    /// poll saw the same.
    pub fn changed(&mut self, now: &Digest) -> bool {
        let still = self.seen.as_ref() == Some(now);
        self.seen = Some(now.clone());
        still && self.applied.as_ref() != Some(now)
    }

    /// Records that `digest` was acted upon.
    pub fn applied(&mut self, digest: Digest) {
        self.applied = Some(digest);
    }

    /// Forgets what was applied: the next settled poll acts again (a node that restarted, a
    /// periodic check).
    pub fn forget(&mut self) {
        self.applied = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_acted_upon_once_it_holds_still_and_then_once() {
        let (a, b) = (Digest::of_text("a"), Digest::of_text("b"));
        let mut s = Settled::default();
        assert!(!s.changed(&a), "the first poll only sees");
        assert!(s.changed(&a), "held still: act");
        s.applied(a.clone());
        assert!(!s.changed(&a), "done already");
        assert!(!s.changed(&b), "changed just now: wait a poll");
        assert!(!s.changed(&a), "changed again (a half-written pair)");
        assert!(!s.changed(&b));
        assert!(s.changed(&b), "held still");
        s.applied(b.clone());
        s.forget();
        assert!(s.changed(&b), "forgotten: act again");
    }

    #[test]
    fn contents_count_not_names_or_times() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tls.crt");
        let missing = Digest::of_files(std::slice::from_ref(&file));
        std::fs::write(&file, "one").unwrap();
        let one = Digest::of_files(std::slice::from_ref(&file));
        assert_ne!(missing, one);
        std::fs::write(&file, "one").unwrap();
        assert_eq!(one, Digest::of_files(std::slice::from_ref(&file)));
        std::fs::write(&file, "two").unwrap();
        assert_ne!(one, Digest::of_files(&[file]));
    }
}
