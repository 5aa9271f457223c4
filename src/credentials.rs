//! Who the tool is to every node: `BOOTSTRAP_USERNAME` (an ACL user, optional) and
//! `BOOTSTRAP_PASSWORD`. The one place that holds them: the client's `AUTH` on connect and
//! `MIGRATE`'s own authentication to the target node both come from here, so a migration
//! authenticates as the same least-privilege user as everything else.

/// An ACL user and its password, or a password alone (`requirepass`, the `default` user).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: String,
}

impl Credentials {
    /// A password alone (`AUTH password`), or with an ACL user (`AUTH username password`).
    pub fn new(username: Option<String>, password: String) -> Credentials {
        Credentials { username, password }
    }

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

    /// Names the variables to fix when the nodes reject these credentials.
    pub fn variables(&self) -> &'static str {
        match self.username {
            Some(_) => "BOOTSTRAP_USERNAME/BOOTSTRAP_PASSWORD",
            None => "BOOTSTRAP_PASSWORD",
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written out by hand so the password never reaches a log line.
        f.debug_struct("Credentials")
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
        assert_eq!(acl.migrate_args(), ["AUTH2", "bootstrap", "hunter2"]);
        let plain = Credentials::new(None, "hunter2".into());
        assert_eq!(plain.migrate_args(), ["AUTH", "hunter2"]);
        assert!(!format!("{acl:?}").contains("hunter2"));
    }
}
