//! `users`, run by the Redis container's startup before `redis-server`: prints the node's ACL
//! users as configuration directives for redis-server's stdin, from two directories:
//!
//! - `BOOTSTRAP_ACL_DIR` (the ConfigMap `redis-acl`): one file per user, its ACL rules and no
//!   password; `#` starts a comment line, rules may span lines;
//! - `BOOTSTRAP_USERS_DIR` (the Secret `redis-users`): one file per user, its passwords, one per
//!   line ([`crate::passwords`]).
//!
//! Each user with rules becomes `user NAME on #<sha256> ... RULES`: every listed password is
//! accepted from the start, and no password is written anywhere but as a hash. `default` is off
//! unless it has rules of its own. The user named `replication` is the one replicas log in as:
//! `masteruser replication` and `masterauth` with its first password (the one in use).
//!
//! `BOOTSTRAP_USERNAME`, when it names no user of the rules, is the pod-local user: each start
//! makes it a new random password, written to `BOOTSTRAP_PASSWORD_FILE` (a memory volume shared
//! with the `watch` sidecar only), and defines it with [`commands::pod_rules`]. `watch` and the
//! liveness probe log in as it; it never leaves the pod and is in no Secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use tracing::info;

use crate::commands;
use crate::config::Settings;
use crate::passwords;
use crate::{Error, Result};

/// The user replicas log in as, by convention: the Secret's key `replication`.
pub const REPLICATION_USER: &str = "replication";

/// The pod-local user: its name and its new password.
pub struct PodUser<'a> {
    /// `BOOTSTRAP_USERNAME`.
    pub name: &'a str,
    /// The password just made.
    pub password: &'a str,
}

/// Prints the directives on stdout (made into the Redis container's configuration by its startup).
pub fn run(settings: &Settings) -> Result<()> {
    let acl_dir = settings.acl_dir.as_deref().ok_or_else(|| {
        Error::Config(
            "BOOTSTRAP_ACL_DIR is not set: `users` needs the users' rules (the ConfigMap \
             redis-acl mounted as a directory)"
                .into(),
        )
    })?;
    let users_dir = settings.users_dir.as_deref().ok_or_else(|| {
        Error::Config(
            "BOOTSTRAP_USERS_DIR is not set: `users` needs the users' passwords (the Secret \
             redis-users mounted as a directory)"
                .into(),
        )
    })?;
    let rules = read_rules(acl_dir)?;
    let passwords = passwords::read_dir(users_dir, "BOOTSTRAP_USERS_DIR")?;
    let pod_user = match &settings.credentials {
        Some(c) => match (c.username(), c.file()) {
            (Some(name), Some(file)) if !rules.contains_key(name) => Some((name, file)),
            _ => None,
        },
        None => None,
    };
    let pod_password = match pod_user {
        Some((_, file)) => Some(write_new_password(file)?),
        None => None,
    };
    let pod = pod_user
        .zip(pod_password.as_deref())
        .map(|((name, _), password)| PodUser { name, password });
    let text = directives(&rules, &passwords, pod.as_ref(), users_dir)?;
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::Internal(format!("users: cannot write to stdout: {e}")))?;
    info!(
        users = rules.len(),
        "users: {} user(s) defined from {} and {}{}",
        rules.len(),
        acl_dir.display(),
        users_dir.display(),
        pod.map_or_else(String::new, |p| format!(
            ", and the pod-local user {}",
            p.name
        ))
    );
    Ok(())
}

/// The directives: `user default off` (unless `default` has rules), one `user` line per user
/// with rules, the pod-local user, and `masteruser`/`masterauth` when there is a `replication`
/// user. Pure, for the tests; `users_dir` only names files in errors.
pub fn directives(
    rules: &BTreeMap<String, String>,
    passwords: &BTreeMap<String, Vec<String>>,
    pod: Option<&PodUser<'_>>,
    users_dir: &Path,
) -> Result<String> {
    let mut text = String::from(
        "# The ACL users, from redis-cluster-bootstrap users (passwords as their SHA-256).\n",
    );
    if !rules.contains_key("default") {
        text.push_str("user default off\n");
    }
    for (user, rules) in rules {
        let listed = passwords.get(user).filter(|p| !p.is_empty()).ok_or_else(|| {
            Error::Config(format!(
                "user {user} has ACL rules but no password: {} is missing or empty; add the key \
                 {user:?} to the Secret redis-users (one password per line)",
                users_dir.join(user).display()
            ))
        })?;
        let hashes: Vec<String> = listed
            .iter()
            .map(|p| format!("#{}", passwords::hash(p)))
            .collect();
        text.push_str(&format!("user {user} on {} {rules}\n", hashes.join(" ")));
    }
    if let Some(pod) = pod {
        text.push_str(&format!(
            "user {} on #{} {}\n",
            pod.name,
            passwords::hash(pod.password),
            commands::pod_rules()
        ));
    }
    if rules.contains_key(REPLICATION_USER) {
        let first = &passwords[REPLICATION_USER][0];
        text.push_str(&format!(
            "masteruser {REPLICATION_USER}\nmasterauth {}\n",
            quoted(first)
        ));
    }
    Ok(text)
}

/// Every user's rules in `dir`, by user name: the file's lines without comments, joined. A rule
/// that sets or drops a password is refused: passwords come from the Secret only.
pub fn read_rules(dir: &Path) -> Result<BTreeMap<String, String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Config(format!(
            "BOOTSTRAP_ACL_DIR={}: cannot be read: {e}",
            dir.display()
        ))
    })?;
    let mut users = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Config(format!("BOOTSTRAP_ACL_DIR: {e}")))?;
        let user = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if user.starts_with('.') || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Config(format!(
                "BOOTSTRAP_ACL_DIR: {} cannot be read: {e}",
                path.display()
            ))
        })?;
        users.insert(user.clone(), rules(&user, &text)?);
    }
    Ok(users)
}

/// The rules of one file: comment lines (`#` first) dropped, the rest on one line.
pub fn rules(user: &str, text: &str) -> Result<String> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Config(format!(
            "BOOTSTRAP_ACL_DIR: {user:?} is not a user name: expected a name without spaces"
        )));
    }
    let tokens: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    if let Some(bad) = tokens.iter().find(|t| sets_a_password(t)) {
        return Err(Error::Config(format!(
            "BOOTSTRAP_ACL_DIR: the rules of user {user} hold {bad:?}: passwords come from the \
             Secret redis-users only (remove the rule)"
        )));
    }
    Ok(tokens.join(" "))
}

/// A rule that adds, removes or clears passwords (`reset` clears them too).
fn sets_a_password(rule: &str) -> bool {
    let lower = rule.to_ascii_lowercase();
    rule.starts_with(['>', '<', '#', '!'])
        || ["nopass", "resetpass", "reset"].contains(&lower.as_str())
}

/// A value as redis.conf reads it whatever it holds: double quotes, with `\\`, `\"` and every
/// byte outside printable ASCII as `\xHH`.
pub fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for byte in value.bytes() {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    out
}

/// A new random password, written to `file` whole (a temporary file renamed over it, readable by
/// its owner only), so `watch` never reads half of one.
fn write_new_password(file: &Path) -> Result<String> {
    let password = passwords::random()?;
    let temporary = file.with_extension("new");
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        f.write_all(password.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&temporary, file)
    };
    write().map_err(|e| {
        Error::Config(format!(
            "BOOTSTRAP_PASSWORD_FILE={}: cannot write the pod user's new password: {e} (it must \
             be on a writable volume, e.g. a memory emptyDir)",
            file.display()
        ))
    })?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn every_listed_password_is_accepted_as_a_hash_and_masterauth_is_the_first() {
        let rules = map(&[
            ("app", "~* &* +@all -@admin".to_string()),
            (
                "replication",
                "resetchannels resetkeys -@all +psync".to_string(),
            ),
        ]);
        let passwords = map(&[
            ("app", vec!["app-one".to_string(), "app-two".to_string()]),
            ("replication", vec!["r\"1".to_string(), "r2".to_string()]),
            // A key without rules (a user not installed): not defined.
            ("exporter", vec!["e".to_string()]),
        ]);
        let pod = PodUser {
            name: "pod",
            password: "p",
        };
        let text = directives(&rules, &passwords, Some(&pod), Path::new("/u")).unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines[0], "user default off");
        assert_eq!(
            lines[1],
            format!(
                "user app on #{} #{} ~* &* +@all -@admin",
                passwords::hash("app-one"),
                passwords::hash("app-two")
            )
        );
        assert!(lines[2].starts_with("user replication on #"), "{text}");
        assert_eq!(
            lines[3],
            format!(
                "user pod on #{} {}",
                passwords::hash("p"),
                commands::pod_rules()
            )
        );
        assert_eq!(
            lines[4..],
            ["masteruser replication", "masterauth \"r\\\"1\""]
        );
        assert!(
            !text.contains("app-one") && !text.contains("exporter"),
            "{text}"
        );
    }

    #[test]
    fn a_user_with_rules_and_no_password_stops_the_start_naming_the_key() {
        let rules = map(&[("backup", "+sync".to_string())]);
        for passwords in [map(&[]), map(&[("backup", Vec::<String>::new())])] {
            let err = directives(&rules, &passwords, None, Path::new("/etc/redis-users"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("/etc/redis-users/backup"), "{err}");
            assert!(err.contains("key \"backup\""), "{err}");
        }
    }

    #[test]
    fn rules_files_hold_rules_only() {
        assert_eq!(
            rules("app", "# the application\n~* &*\n  +@all -@admin\n").unwrap(),
            "~* &* +@all -@admin"
        );
        for bad in [">pw", "<pw", "#abc", "!abc", "nopass", "resetpass", "RESET"] {
            let err = rules("app", &format!("on {bad} +@all"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(rules("two words", "+ping").is_err());
    }

    #[test]
    fn masterauth_is_quoted_as_redis_conf_reads_it() {
        assert_eq!(quoted("plain-pw"), "\"plain-pw\"");
        assert_eq!(quoted("a\\b\"c"), "\"a\\\\b\\\"c\"");
        assert_eq!(quoted("new\nline é"), "\"new\\x0aline \\xc3\\xa9\"");
    }

    #[test]
    fn the_pod_users_password_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        let first = write_new_password(&file).unwrap();
        let second = write_new_password(&file).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{second}\n")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
