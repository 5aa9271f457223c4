//! Who the tool is to every node: `BOOTSTRAP_USERNAME` (an ACL user, optional) and its password,
//! given by `BOOTSTRAP_PASSWORD` or read from `BOOTSTRAP_PASSWORD_FILE`. The one place that holds
//! them: the client's `AUTH` on connect and `MIGRATE`'s own authentication to the target node both
//! come from here, so a migration authenticates as the same least-privilege user as everything
//! else.
//!
//! A password file ([`crate::passwords`]) may list several passwords while one is being changed.
//! It is read again for every connection, so a long run follows a change, and its passwords are
//! tried in order: the first is the one in use, and a node that has not applied a step of the
//! change yet still accepts it. [`Login`] is the one a node accepted.

use std::path::PathBuf;

use crate::Result;
use crate::passwords;

/// An ACL user (or none) and where its password comes from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: Password,
}

/// Where the password comes from.
#[derive(Clone, PartialEq, Eq)]
enum Password {
    /// `BOOTSTRAP_PASSWORD`.
    Given(String),
    /// `BOOTSTRAP_PASSWORD_FILE`.
    File(PathBuf),
}

/// One user and password, as sent with `AUTH`: what a node accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    username: Option<String>,
    password: String,
}

impl Credentials {
    /// A password alone (`AUTH password`), or with an ACL user (`AUTH username password`).
    pub fn new(username: Option<String>, password: String) -> Credentials {
        Credentials {
            username,
            password: Password::Given(password),
        }
    }

    /// The passwords of a file, one per line (see [`crate::passwords`]), read on every connection.
    pub fn from_file(username: Option<String>, path: PathBuf) -> Credentials {
        Credentials {
            username,
            password: Password::File(path),
        }
    }

    /// The ACL user, when one is set.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password file, when the password comes from one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.password {
            Password::File(path) => Some(path),
            Password::Given(_) => None,
        }
    }

    /// The logins to try, in order: the password given, or every password of the file now (the
    /// one in use first). An unreadable or empty file is [`Error::Config`].
    pub fn logins(&self) -> Result<Vec<Login>> {
        let passwords = match &self.password {
            Password::Given(password) => vec![password.clone()],
            Password::File(path) => passwords::read(path, "BOOTSTRAP_PASSWORD_FILE")?,
        };
        Ok(passwords
            .into_iter()
            .map(|password| Login {
                username: self.username.clone(),
                password,
            })
            .collect())
    }

    /// Names the variables to fix when the nodes reject these credentials.
    pub fn variables(&self) -> &'static str {
        match (&self.username, &self.password) {
            (Some(_), Password::Given(_)) => "BOOTSTRAP_USERNAME/BOOTSTRAP_PASSWORD",
            (Some(_), Password::File(_)) => "BOOTSTRAP_USERNAME/BOOTSTRAP_PASSWORD_FILE",
            (None, Password::Given(_)) => "BOOTSTRAP_PASSWORD",
            (None, Password::File(_)) => "BOOTSTRAP_PASSWORD_FILE",
        }
    }
}

impl Login {
    /// The ACL user, when one is set.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The authentication arguments of `MIGRATE` (after its `timeout`, before `KEYS`): `AUTH2
    /// username password`, or `AUTH password` for a password alone. Never logged.
    pub fn migrate_args(&self) -> Vec<&str> {
        match &self.username {
            Some(user) => vec!["AUTH2", user, &self.password],
            None => vec!["AUTH", &self.password],
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written out by hand so the password never reaches a log line.
        let password = match &self.password {
            Password::Given(_) => "<set>".to_string(),
            Password::File(path) => format!("<in {}>", path.display()),
        };
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &password)
            .finish()
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<set>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_authenticates_as_the_same_user() {
        let acl = Credentials::new(Some("bootstrap".into()), "hunter2".into());
        let login = acl.logins().unwrap().remove(0);
        assert_eq!(login.migrate_args(), ["AUTH2", "bootstrap", "hunter2"]);
        let plain = Credentials::new(None, "hunter2".into()).logins().unwrap();
        assert_eq!(plain[0].migrate_args(), ["AUTH", "hunter2"]);
        assert!(!format!("{acl:?}{login:?}").contains("hunter2"));
    }

    #[test]
    fn a_file_is_read_for_every_connection_its_first_password_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bootstrap");
        std::fs::write(&file, "old\nnew\n").unwrap();
        let credentials = Credentials::from_file(Some("bootstrap".into()), file.clone());
        let passwords = |c: &Credentials| -> Vec<String> {
            c.logins()
                .unwrap()
                .iter()
                .map(|l| l.password().to_string())
                .collect()
        };
        assert_eq!(passwords(&credentials), ["old", "new"]);
        std::fs::write(&file, "new\n").unwrap();
        assert_eq!(passwords(&credentials), ["new"]);
        assert_eq!(
            credentials.variables(),
            "BOOTSTRAP_USERNAME/BOOTSTRAP_PASSWORD_FILE"
        );
        assert!(!format!("{credentials:?}").contains("new\""));
        std::fs::remove_file(&file).unwrap();
        let err = credentials.logins().unwrap_err().to_string();
        assert!(err.starts_with("BOOTSTRAP_PASSWORD_FILE: "), "{err}");
    }
}
