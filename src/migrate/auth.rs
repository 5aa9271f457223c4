//! The credentials `MIGRATE` passes to the target node: the one place that knows how they are
//! spelled on the wire, so a username (ACL user) is one line here.

/// What the tool authenticates with; `MIGRATE` needs it again, for its own connection to the target.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// `BOOTSTRAP_PASSWORD`, when set.
    pub password: Option<String>,
    /// The ACL user, when set (`AUTH2 user pass`); `None` is the default user (`AUTH pass`).
    pub username: Option<String>,
}

impl Auth {
    /// The credentials the settings give every connection.
    pub fn from_settings(settings: &crate::config::Settings) -> Auth {
        let credentials = settings.credentials.as_ref();
        Auth {
            password: credentials.map(|c| c.password().to_string()),
            username: credentials.and_then(|c| c.username().map(str::to_string)),
        }
    }

    /// Appends `AUTH pass` or `AUTH2 user pass` to a `MIGRATE`, nothing without a password.
    pub fn append(&self, migrate: &mut redis::Cmd) {
        match (&self.username, &self.password) {
            (Some(user), Some(pass)) => {
                migrate.arg("AUTH2").arg(user).arg(pass);
            }
            (None, Some(pass)) => {
                migrate.arg("AUTH").arg(pass);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(auth: &Auth) -> Vec<String> {
        let mut cmd = redis::cmd("MIGRATE");
        auth.append(&mut cmd);
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn auth_or_auth2_only_with_a_password() {
        assert_eq!(args(&Auth::default()), ["MIGRATE"]);
        let pass = Auth {
            password: Some("p".into()),
            username: None,
        };
        assert_eq!(args(&pass), ["MIGRATE", "AUTH", "p"]);
        let user = Auth {
            username: Some("bootstrap".into()),
            ..pass
        };
        assert_eq!(args(&user), ["MIGRATE", "AUTH2", "bootstrap", "p"]);
    }
}
