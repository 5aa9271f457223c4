//! The users' passwords on the local node, kept equal to the files of `BOOTSTRAP_USERS_DIR`.
//!
//! For each file, the node's password set for that user becomes the file's: the hashes the file
//! adds are added and those it no longer lists removed, in one `ACL SETUSER` (`#<hash>` and
//! `!<hash>`, never a rule), so a client is never refused between the two. `masterauth` follows
//! the first password of the user the node replicates as (`masteruser`): it only matters when a
//! replica connects to its master, and the documented procedure puts the new password first only
//! once every node accepts it.
//!
//! A file that lists no password, and a user that the node does not define (it had no rules when
//! it started), are left alone and said once: removing every password would lock the user out,
//! and rules are given at start only.

use std::collections::BTreeMap;
use std::path::Path;

use std::path::PathBuf;
use std::time::Instant;

use tracing::info;

use super::files::{Digest, Settled};
use super::metrics::Metrics;
use super::said::Said;
use super::{RECHECK, config_get};
use crate::client::Client;
use crate::passwords;
use crate::{Error, Result, one_line};

/// What makes a user's passwords on the node those of its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Hashes the file lists and the node does not accept yet.
    pub add: Vec<String>,
    /// Hashes the node accepts and the file no longer lists.
    pub remove: Vec<String>,
}

impl Change {
    /// From the file's passwords and the node's hashes.
    pub fn between(listed: &[String], held: &[String]) -> Change {
        let mut wanted: Vec<String> = Vec::new();
        for hash in listed.iter().map(|p| passwords::hash(p)) {
            if !wanted.contains(&hash) {
                wanted.push(hash);
            }
        }
        Change {
            add: wanted
                .iter()
                .filter(|h| !held.contains(h))
                .cloned()
                .collect(),
            remove: held
                .iter()
                .filter(|h| !wanted.contains(h))
                .cloned()
                .collect(),
        }
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// The `ACL SETUSER` rules: additions first, in the file's order.
    pub fn rules(&self) -> Vec<String> {
        let add = self.add.iter().map(|h| format!("#{h}"));
        let remove = self.remove.iter().map(|h| format!("!{h}"));
        add.chain(remove).collect()
    }
}

/// Where one user stands on the node against its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The node accepts exactly the file's passwords: how many, and the fingerprint of the one
    /// in use ([`fingerprint`]).
    InSync(usize, String),
    /// The node's set differs: this change makes it the file's.
    Differs(Change),
    /// The node does not define the user.
    Undefined,
    /// The file lists no password.
    Empty,
}

/// The password hashes of `user` on the node (`ACL GETUSER`), `None` when it does not exist.
pub async fn held(client: &Client, user: &str) -> Result<Option<Vec<String>>> {
    let reply: redis::Value = client
        .query(redis::cmd("ACL").arg("GETUSER").arg(user), "ACL GETUSER")
        .await?;
    let fields = match reply {
        redis::Value::Nil => return Ok(None),
        redis::Value::Array(fields) => fields,
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => {
            return Err(Error::Internal(format!(
                "ACL GETUSER {user}: unexpected reply {other:?}"
            )));
        }
    };
    let mut fields = fields.into_iter();
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        let key: String = redis::from_redis_value(key).unwrap_or_default();
        if key == "passwords" {
            return redis::from_redis_value(value).map(Some).map_err(|e| {
                Error::Internal(format!("ACL GETUSER {user}: passwords not a list: {e}"))
            });
        }
    }
    Err(Error::Internal(format!(
        "ACL GETUSER {user}: no passwords field"
    )))
}

/// Where every user of the directory stands on the node.
pub async fn standings(
    client: &Client,
    users: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Standing>> {
    let mut out = BTreeMap::new();
    for (user, listed) in users {
        let standing = if listed.is_empty() {
            Standing::Empty
        } else {
            match held(client, user).await? {
                None => Standing::Undefined,
                Some(held) => match Change::between(listed, &held) {
                    change if change.is_empty() => {
                        Standing::InSync(held.len(), fingerprint(&listed[0]))
                    }
                    change => Standing::Differs(change),
                },
            }
        };
        out.insert(user.clone(), standing);
    }
    Ok(out)
}

/// Applies one user's change (one `ACL SETUSER`).
pub async fn apply(client: &Client, user: &str, change: &Change) -> Result<()> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg(user).arg(change.rules());
    client.query::<()>(&cmd, "ACL SETUSER").await
}

/// Where `masterauth` stands against the file of the user the node replicates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masterauth {
    /// `masteruser` is no user of the directory (or has no password there): not ours to set.
    NotOurs,
    /// It is the first password of this user's file.
    InSync(String),
    /// It is not: set it to the first password of this user's file.
    Differs(String, String),
}

/// Where `masterauth` stands (`CONFIG GET masteruser masterauth`).
pub async fn masterauth(
    client: &Client,
    users: &BTreeMap<String, Vec<String>>,
) -> Result<Masterauth> {
    let settings = config_get(client, &["masteruser", "masterauth"]).await?;
    let user = settings.get("masteruser").cloned().unwrap_or_default();
    let Some(first) = users.get(&user).and_then(|listed| listed.first()) else {
        return Ok(Masterauth::NotOurs);
    };
    Ok(
        if settings.get("masterauth").map(String::as_str) == Some(first.as_str()) {
            Masterauth::InSync(user)
        } else {
            Masterauth::Differs(user, first.clone())
        },
    )
}

/// Sets `masterauth` (the password is never logged: `what` names the command only).
pub async fn set_masterauth(client: &Client, password: &str) -> Result<()> {
    client
        .query::<()>(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("masterauth")
                .arg(password),
            "CONFIG SET masterauth",
        )
        .await
}

/// What tells a password apart in what people read, without showing it: the first 8 hex digits
/// of its SHA-256 (the hash `ACL GETUSER` shows; `printf %s PASSWORD | sha256sum | cut -c1-8`).
/// Whoever can read it can read the password's file anyway.
pub fn fingerprint(password: &str) -> String {
    passwords::hash(password)[..8].to_string()
}

/// One line for a person about a user's standing (no secret: counts, the file's path, the
/// fingerprint of the password in use).
pub fn describe(user: &str, standing: &Standing, dir: &Path) -> String {
    let file = dir.join(user);
    match standing {
        Standing::InSync(n, in_use) => format!(
            "user {user}: the node accepts the {n} password(s) of {}, no other; in use: {in_use}",
            file.display()
        ),
        Standing::Differs(change) => format!(
            "user {user}: the node does not accept {} password(s) of {} yet, and still accepts {} \
             it no longer lists",
            change.add.len(),
            file.display(),
            change.remove.len()
        ),
        Standing::Undefined => format!(
            "user {user}: {} lists passwords, but the node does not define the user (it had no \
             ACL rules when it started: add them to the ConfigMap redis-acl, then the pod \
             restarts with them)",
            file.display()
        ),
        Standing::Empty => format!(
            "user {user}: {} lists no password; the node's are left as they are (a user is never \
             locked out by an empty file)",
            file.display()
        ),
    }
}

/// The users' passwords: the directory's files against the node.
pub struct UsersWatch {
    /// `BOOTSTRAP_USERS_DIR`.
    pub dir: PathBuf,
    settled: Settled,
    last_check: Option<Instant>,
    /// Said once until the files change: users the node does not define, empty files.
    said: Said,
    /// Whether the first check passed (said once, with the users' names).
    checked_once: bool,
}

impl UsersWatch {
    pub fn new(dir: PathBuf) -> UsersWatch {
        UsersWatch {
            dir,
            settled: Settled::default(),
            last_check: None,
            said: Said::default(),
            checked_once: false,
        }
    }

    pub fn recheck(&mut self) {
        self.last_check = None;
    }

    pub async fn poll(&mut self, client: &Client, metrics: &Metrics) -> Result<()> {
        let users = match passwords::read_dir(&self.dir, "BOOTSTRAP_USERS_DIR") {
            Ok(users) => users,
            Err(e) => {
                self.said.error(format!("watch: {}", one_line(&e)));
                return Ok(());
            }
        };
        let digest = Digest::of_text(&listing(&users));
        let changed = self.settled.changed(&digest);
        let due = self.last_check.is_none_or(|at| at.elapsed() >= RECHECK);
        if !changed && !due {
            return Ok(());
        }
        self.last_check = Some(Instant::now());
        if changed {
            self.said.clear();
        }
        let mut applied = 0;
        for (user, standing) in standings(client, &users).await? {
            match standing {
                Standing::InSync(..) => metrics.user_in_sync(&user, true),
                Standing::Differs(change) => {
                    // Out of sync until the node takes the change: a change it refuses (or a
                    // node that stops answering) stays visible on /metrics, not the last `1`.
                    metrics.user_in_sync(&user, false);
                    apply(client, &user, &change).await?;
                    applied += 1;
                    info!(
                        user,
                        added = change.add.len(),
                        removed = change.remove.len(),
                        "watch: user {user}: the node now accepts the {} password(s) of {} \
                         ({} added, {} removed)",
                        users[&user].len(),
                        self.dir.join(&user).display(),
                        change.add.len(),
                        change.remove.len()
                    );
                    metrics.user_in_sync(&user, true);
                }
                standing @ (Standing::Undefined | Standing::Empty) => {
                    metrics.user_in_sync(&user, false);
                    self.said
                        .warn(describe(&user, &standing, &self.dir).to_string());
                }
            }
        }
        match masterauth(client, &users).await? {
            Masterauth::Differs(user, first) => {
                metrics.masterauth_in_sync.set(0);
                set_masterauth(client, &first).await?;
                applied += 1;
                info!(
                    "watch: masterauth is now the first password of {} (replicas log in with it \
                     from their next connection to their master)",
                    self.dir.join(&user).display()
                );
            }
            Masterauth::InSync(_) | Masterauth::NotOurs => {}
        }
        metrics.masterauth_in_sync.set(1);
        self.settled.applied(digest);
        if !self.checked_once && applied == 0 {
            info!(
                "watch: the node accepts exactly the passwords of {} ({})",
                self.dir.display(),
                users.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        self.checked_once = true;
        Ok(())
    }
}

/// What a directory of passwords says, as one text (for its digest; never logged).
fn listing(users: &BTreeMap<String, Vec<String>>) -> String {
    users
        .iter()
        .map(|(user, listed)| format!("{user}\0{}\n", listed.join("\0")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(passwords: &[&str]) -> Vec<String> {
        passwords.iter().map(|p| passwords::hash(p)).collect()
    }

    fn listed(passwords: &[&str]) -> Vec<String> {
        passwords.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn each_step_of_a_change_adds_or_removes_only_the_difference() {
        // Step 1: the new password appended.
        let step1 = Change::between(&listed(&["old", "new"]), &hashes(&["old"]));
        assert_eq!(step1.add, hashes(&["new"]));
        assert!(step1.remove.is_empty());
        assert_eq!(step1.rules(), [format!("#{}", passwords::hash("new"))]);
        // Step 2: reordered; the node's set is the same.
        assert!(Change::between(&listed(&["new", "old"]), &hashes(&["old", "new"])).is_empty());
        // Step 3: the old one removed.
        let step3 = Change::between(&listed(&["new"]), &hashes(&["old", "new"]));
        assert_eq!(step3.rules(), [format!("!{}", passwords::hash("old"))]);
        // A file written at once with a new set: additions first.
        let swap = Change::between(&listed(&["b", "b"]), &hashes(&["a"]));
        assert_eq!(
            swap.rules(),
            [
                format!("#{}", passwords::hash("b")),
                format!("!{}", passwords::hash("a"))
            ]
        );
    }

    #[test]
    fn lines_for_people_name_the_file_and_no_secret() {
        let dir = Path::new("/etc/redis-users");
        let change = Change::between(&listed(&["s3cret"]), &[]);
        let text = [
            describe("app", &Standing::InSync(2, fingerprint("s3cret")), dir),
            describe("app", &Standing::Differs(change), dir),
            describe("exporter", &Standing::Undefined, dir),
            describe("backup", &Standing::Empty, dir),
        ]
        .join("\n");
        assert!(text.contains("/etc/redis-users/app"), "{text}");
        assert!(
            text.contains("redis-acl")
                && !text.contains("s3cret")
                && text.contains("in use: 1ec1c26b"),
            "{text}"
        );
    }
}
