//! Saying a repeated failure once: the watcher polls every second, and a node that does not
//! answer, or a file that cannot be read, would otherwise fill the log.

use tracing::{error, warn};

/// What was said about one matter: a failure that repeats every poll is logged once, until the
/// matter clears (the node answers again, the files change).
#[derive(Default)]
pub struct Said(std::collections::BTreeSet<String>);

impl Said {
    /// Logs `text` as a warning unless it was said already.
    pub fn warn(&mut self, text: String) {
        if !self.0.contains(&text) {
            warn!("{text}");
            self.0.insert(text);
        }
    }

    /// Logs `text` as an error unless it was said already.
    pub fn error(&mut self, text: String) {
        if !self.0.contains(&text) {
            error!("{text}");
            self.0.insert(text);
        }
    }

    /// Forgets what was said: the next failure is said again.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}
