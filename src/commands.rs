//! Every command the tool may send, in one place, and the ACL rules built from it.
//!
//! [`SENT`] (the bootstrap and the pod commands), [`BACKUP`] and [`RESTORE`] are the whole
//! vocabulary of the tool, each for its own sender ([`Sender`]): [`crate::client::Client`] refuses
//! to send anything else (an internal error naming the command, before a byte leaves), so no code
//! path can send a command its production ACL user does not hold, nor one the Safety rules forbid
//! (`FLUSHALL`, `CLUSTER RESET`, ...). [`bootstrap_rules`], [`backup_rules`] and [`restore_rules`] turn each list into the rules
//! of its ACL user, and `redis-cluster-bootstrap --print-acl` prints them; manifest tests check
//! that `overlays/production` (bootstrap) and `overlays/backup` (backup, restore) grant exactly
//! these (tests/manifests_security.rs).
//!
//! One kind of command is not the tool's own: a restore replays the writes a backup recorded
//! between each master's snapshot and the cut (the application's `SET`, `HSET`, `XADD`, ... as
//! the master replicated them). Those are data: [`check_replayed`] lets them through, except what
//! a replay must never send ([`NEVER_REPLAYED`]), and the `restore` user's rules grant writes.
//!
//! [`WATCH`] lists what the pod-side `watch` sends its own node, and nothing else: it changes the
//! node's users and configuration, so only the pod-local user ([`pod_rules`]) holds those
//! commands, never `bootstrap` (which could otherwise raise its own rights), and only a client
//! made for `watch` sends them ([`Sender::Watch`]).
//!
//! Names are in ACL form: lowercase, a container command and its subcommand joined by `|`
//! (`cluster|meet`), the form `INFO commandstats` and `ACL LOG` print. Every rule here is known
//! to Redis 7.0, the oldest server supported, and to Valkey 8.0.

use crate::Error;

/// A command the tool sends, and why: (ACL name, what it is for).
pub type Entry = (&'static str, &'static str);

/// Every command the tool sends to a node, directly.
pub const SENT: &[Entry] = &[
    // Observe.
    (
        "info",
        "observe: role, replication link, cluster_enabled, key counts",
    ),
    ("cluster|myid", "observe: the node's ID"),
    ("cluster|nodes", "observe: the node's view of the cluster"),
    (
        "cluster|info",
        "observe and converge: cluster_state, known nodes, slots",
    ),
    (
        "cluster|count-failure-reports",
        "form: does the replica know its master's ID yet (O(1), unlike CLUSTER NODES)",
    ),
    (
        "ping",
        "connect: a liveness check that touches nothing; in plaintext, a node that drops it may \
         speak only TLS; over TLS, does a node that asked for a client certificate and got none \
         serve us (tls-auth-clients optional)",
    ),
    // Form, re-mesh, replace.
    ("cluster|addslotsrange", "form: give a master its slots"),
    (
        "cluster|set-config-epoch",
        "form: a distinct config epoch per fresh master",
    ),
    (
        "cluster|meet",
        "form and re-mesh: introduce nodes to each other",
    ),
    (
        "cluster|replicate",
        "form and re-point: make a node a replica",
    ),
    (
        "cluster|failover",
        "handover (preStop) and repair placement: a synced replica takes over from its master; \
         never FORCE or TAKEOVER, so the master pauses writes until the replica has caught up",
    ),
    (
        "cluster|forget",
        "replace and shrink: drop a lost node's ID (no slots, flagged fail)",
    ),
    // Slot migration (grow, drain).
    (
        "cluster|setslot",
        "migrate: IMPORTING, MIGRATING, NODE on every node; stabilize: STABLE on a master that \
         shows no state for the slot, which replicates it to clear a replica's stale open slot \
         (Valkey replicates SETSLOT; a replica can keep one its master never applied)",
    ),
    (
        "cluster|countkeysinslot",
        "migrate: how many keys a slot still holds",
    ),
    (
        "cluster|getkeysinslot",
        "migrate: the names of the next batch of keys",
    ),
    (
        "migrate",
        "migrate: move a batch of keys (never with REPLACE), authenticated with AUTH2 as this same user",
    ),
    (
        "function|list",
        "grow: does a master hold functions (copied only when it does)",
    ),
    (
        "function|dump",
        "grow: read the functions of an existing master",
    ),
    (
        "function|restore",
        "grow: load them on a new master before it takes slots",
    ),
];

/// Every command `backup` sends: it observes like the bootstrap, opens one replication
/// connection to each master as a replica would, and pauses writes for the cut.
pub const BACKUP: &[Entry] = &[
    (
        "info",
        "observe; at the cut: master_repl_offset and the key count",
    ),
    ("cluster|myid", "observe: the node's ID"),
    ("cluster|nodes", "observe: topology, slot map, open slots"),
    ("cluster|info", "observe: cluster_state"),
    ("ping", "connect: a liveness check that touches nothing"),
    (
        "replconf",
        "replication connection: capabilities (eof, psync2) and ACKs of the offset read",
    ),
    (
        "psync",
        "replication connection: PSYNC ? -1 asks for a snapshot (an RDB) and the stream after it",
    ),
    (
        "client|pause",
        "the cut: CLIENT PAUSE <ms> WRITE on every master at once, for milliseconds",
    ),
    (
        "client|unpause",
        "the cut: end the pause as soon as the offsets are read",
    ),
    (
        "time",
        "the cut: each master's own clock when its pause began and ended (the pause, measured on the node)",
    ),
];

/// Every command `restore` sends itself (the replayed writes are [`check_replayed`]'s).
pub const RESTORE: &[Entry] = &[
    (
        "info",
        "observe; verification: the key count of every master",
    ),
    ("cluster|myid", "observe: the node's ID"),
    ("cluster|nodes", "observe: topology, slot map, open slots"),
    ("cluster|info", "observe: cluster_state"),
    ("ping", "connect: a liveness check that touches nothing"),
    (
        "restore",
        "write each key of a snapshot with its value and absolute TTL; never with REPLACE, so a \
         key already there (a resumed restore) is left as it is (BUSYKEY)",
    ),
    (
        "multi",
        "one transaction per slot: the recorded writes of that slot and its done-marker",
    ),
    ("exec", "ends that transaction"),
    (
        "command|getkeys",
        "route a recorded write to the master that owns its key's slot",
    ),
    (
        "function|restore",
        "load the backup's function libraries on every master (a library already there is left)",
    ),
    (
        "get",
        "read the restore's progress key (which backup, which phase) when resuming",
    ),
    (
        "set",
        "write the restore's progress key and the per-slot done-markers (its own keys only)",
    ),
    (
        "exists",
        "was a slot's recorded writes already applied (its done-marker)",
    ),
    (
        "del",
        "remove the restore's own progress key and done-markers once it is complete",
    ),
];

/// What a replayed write may never be: the commands that would destroy or move data rather than
/// write it (a `FLUSHALL` or `FLUSHDB` recorded in a backup is resolved before sending: that
/// shard's earlier state is dropped), and the ones that change a node rather than its data.
pub const NEVER_REPLAYED: &[&str] = &[
    "flushall",
    "flushdb",
    "swapdb",
    "migrate",
    "move",
    "shutdown",
    "debug",
    "config",
    "acl",
    "cluster",
    "replicaof",
    "slaveof",
    "failover",
    "save",
    "bgsave",
    "bgrewriteaof",
    "module",
    "script",
    "client",
];

/// What a source node runs on the target, as the user named in `MIGRATE ... AUTH2`: the tool
/// never sends these itself (the client refuses them), but the user must hold them. Measured on
/// Redis 7.0 and Valkey 8.0: the target sees `AUTH`, `SELECT` and `RESTORE-ASKING`, nothing else.
pub const RUN_BY_MIGRATE: &[Entry] = &[
    (
        "select",
        "MIGRATE selects the database on its connection to the target",
    ),
    (
        "restore-asking",
        "MIGRATE writes each key on the target with it",
    ),
];

/// Everything the pod-side `watch` (and `synced`) sends its own node, as the pod-local user:
/// password hashes in, password hashes out, `masterauth`, and the TLS files set again so the node
/// reloads them.
pub const WATCH: &[Entry] = &[
    (
        "ping",
        "connect: does the node answer (and the liveness probe of production's Redis container)",
    ),
    (
        "acl|getuser",
        "watch: the password hashes a user has now, to add and remove only the difference",
    ),
    (
        "acl|setuser",
        "watch: add and remove password hashes (#<hash>, !<hash>); never a rule",
    ),
    (
        "config|get",
        "watch: masteruser and masterauth, and the TLS files the node serves from",
    ),
    (
        "config|set",
        "watch: masterauth once every node accepts the new password; the TLS files again, which \
         makes the node reload them",
    ),
];

/// Who sends a command, hence the lists it must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The bootstrap and the pod commands: [`SENT`].
    Bootstrap,
    /// `backup`: [`BACKUP`] (its ACL user holds nothing else).
    Backup,
    /// `restore`: [`RESTORE`], and the recorded writes it replays ([`check_replayed`]).
    Restore,
    /// The pod-side `watch` and `synced`: [`WATCH`].
    Watch,
}

impl Sender {
    fn lists(self) -> &'static [&'static [Entry]] {
        match self {
            Sender::Bootstrap => &[SENT],
            Sender::Backup => &[BACKUP],
            Sender::Restore => &[RESTORE],
            Sender::Watch => &[WATCH],
        }
    }
}

/// Commands a replica sends its master, as `masteruser`.
pub const REPLICATION: &[Entry] = &[
    (
        "psync",
        "a replica asks its master for the stream (full or partial sync)",
    ),
    (
        "replconf",
        "a replica reports its port, capabilities and offset",
    ),
    ("ping", "a replica checks its link"),
];

/// Redis's container commands: their ACL name includes the subcommand.
const CONTAINERS: &[&str] = &[
    "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
    "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
];

/// The ACL rules of the `bootstrap` user, after `user bootstrap on >PASSWORD`.
///
/// Keys: `~*`, because `MIGRATE` (on the source) and `RESTORE-ASKING` (on the target) check key
/// permissions and Redis has no key rule for "only these commands". No other command of the list
/// reads or writes a key, so the user can move keys between nodes but cannot read or change one:
/// `GET`, `SET`, `KEYS`, `FLUSHALL` are `NOPERM`. No Pub/Sub channel.
pub fn bootstrap_rules() -> String {
    let commands = SENT
        .iter()
        .chain(RUN_BY_MIGRATE)
        .map(|(name, _)| format!("+{name}"));
    ["resetchannels", "~*", "-@all"]
        .into_iter()
        .map(str::to_string)
        .chain(commands)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ACL rules of the replication user (`masteruser` / `masterauth`), after `user NAME on
/// >PASSWORD`: no key, no channel, only what a replica sends its master.
pub fn replication_rules() -> String {
    ["resetchannels", "resetkeys", "-@all"]
        .into_iter()
        .map(str::to_string)
        .chain(REPLICATION.iter().map(|(name, _)| format!("+{name}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ACL rules of the pod-local user (`users` defines it at each start of a node, with a random
/// password that never leaves the pod), after `user NAME on #<hash>`: what `watch` sends
/// ([`WATCH`]), no key, no channel. `watch`, `synced` and the liveness probe log in as it; the
/// pod commands that reach other nodes too (`handover`, `rejoin`, `ready`) log in as `bootstrap`,
/// which every node knows. `ACL SETUSER` makes it the node's administrator in effect: it exists
/// only inside the pod, which runs the node anyway.
pub fn pod_rules() -> String {
    ["resetchannels", "resetkeys", "-@all"]
        .into_iter()
        .map(str::to_string)
        .chain(WATCH.iter().map(|(name, _)| format!("+{name}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ACL rules of the `backup` user: no key (a replica reads every key through the snapshot and
/// the stream, which key rules do not govern), no channel, only [`BACKUP`].
pub fn backup_rules() -> String {
    ["resetchannels", "resetkeys", "-@all"]
        .into_iter()
        .map(str::to_string)
        .chain(BACKUP.iter().map(|(name, _)| format!("+{name}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ACL rules of the `restore` user: every key (it writes all of them), the commands of
/// [`RESTORE`], and writes (`+@write`) for the replayed ones, minus what a replay never sends
/// ([`NEVER_REPLAYED`] that are writes).
pub fn restore_rules() -> String {
    let own = RESTORE.iter().map(|(name, _)| format!("+{name}"));
    let never = ["flushall", "flushdb", "swapdb", "migrate", "move"]
        .into_iter()
        .map(|name| format!("-{name}"));
    ["resetchannels", "~*", "-@all", "+@write"]
        .into_iter()
        .map(str::to_string)
        .chain(never)
        .chain(own)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of `--print-acl`: every user as `redis.conf` / ACL-file lines, passwords left as
/// placeholders to replace.
pub fn print_acl() -> String {
    format!(
        "# The bootstrap user (BOOTSTRAP_USERNAME): every command the tool sends, and what MIGRATE\n\
         # runs on the target as that user. Replace BOOTSTRAP_PASSWORD with the password.\n\
         user bootstrap on >BOOTSTRAP_PASSWORD {}\n\
         # The replication user: masteruser replication, masterauth REPLICATION_PASSWORD.\n\
         user replication on >REPLICATION_PASSWORD {}\n\
         # The pod-local user of `watch` (`redis-cluster-bootstrap users` defines it at each start\n\
         # of a node, with a random password kept inside the pod).\n\
         user pod on >POD_PASSWORD {}\n\
         # The backup user (BOOTSTRAP_USERNAME of `backup`): replication and the cut, no key.\n\
         user backup on >BACKUP_PASSWORD {}\n\
         # The restore user (BOOTSTRAP_USERNAME of `restore`): writes every key of a backup.\n\
         user restore on >RESTORE_PASSWORD {}\n",
        bootstrap_rules(),
        replication_rules(),
        pod_rules(),
        backup_rules(),
        restore_rules()
    )
}

/// The ACL name of a command: `cluster|meet`, `info`.
pub fn acl_name(cmd: &redis::Cmd) -> String {
    let mut args = cmd.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).to_ascii_lowercase(),
        _ => String::new(),
    });
    let name = args.next().unwrap_or_default();
    match args.next() {
        Some(sub) if CONTAINERS.contains(&name.as_str()) => format!("{name}|{sub}"),
        _ => name,
    }
}

/// Ok when `cmd` is in [`SENT`]; otherwise the internal error that stops the run before the
/// command is sent.
pub fn check(cmd: &redis::Cmd) -> Result<(), Error> {
    check_as(cmd, Sender::Bootstrap)
}

/// Ok when `cmd` is in the lists of `sender`; otherwise the internal error that stops the run
/// before the command is sent.
pub fn check_as(cmd: &redis::Cmd, sender: Sender) -> Result<(), Error> {
    let name = acl_name(cmd);
    // An ACL rule cannot tell a manual failover from `FAILOVER FORCE` or `TAKEOVER` (which skip
    // the master's consent and its last writes): only the bare form may leave.
    if name == "cluster|failover" && cmd.args_iter().count() > 2 {
        return Err(Error::Internal(
            "`cluster|failover` with an option (FORCE, TAKEOVER) is never sent: not sent; this is \
             a bug, please report it"
                .into(),
        ));
    }
    let listed = sender
        .lists()
        .iter()
        .any(|list| list.iter().any(|(allowed, _)| *allowed == name));
    if listed {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "`{name}` is not in the list of commands the tool may send (src/commands.rs): not sent; \
             this is a bug, please report it"
        )))
    }
}

/// Ok when `cmd`, a write recorded in a backup, may be replayed on a restore's target: any
/// command but [`NEVER_REPLAYED`]. Otherwise the refusal that stops the restore before it is sent.
pub fn check_replayed(cmd: &redis::Cmd) -> Result<(), Error> {
    let name = acl_name(cmd);
    let base = name.split('|').next().unwrap_or_default();
    if NEVER_REPLAYED.contains(&base) {
        Err(Error::Refused(format!(
            "the backup records `{name}` between a snapshot and the cut, which a restore never \
             replays: restore an earlier backup"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_commands_are_named_with_their_subcommand() {
        assert_eq!(
            acl_name(redis::cmd("CLUSTER").arg("MEET").arg("1.2.3.4")),
            "cluster|meet"
        );
        assert_eq!(acl_name(redis::cmd("INFO").arg("replication")), "info");
        assert_eq!(
            acl_name(redis::cmd("Function").arg("Dump")),
            "function|dump"
        );
        assert_eq!(acl_name(&redis::cmd("FLUSHALL")), "flushall");
    }

    #[test]
    fn what_safety_forbids_is_refused_before_it_is_sent() {
        for cmd in [
            redis::cmd("FLUSHALL"),
            redis::cmd("FLUSHDB"),
            redis::cmd("CLUSTER").arg("RESET").clone(),
            redis::cmd("CLUSTER").arg("DELSLOTS").arg(1).clone(),
            redis::cmd("CLUSTER").arg("FAILOVER").arg("FORCE").clone(),
            redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .arg("TAKEOVER")
                .clone(),
            redis::cmd("KEYS").arg("*").clone(),
            redis::cmd("RESTORE-ASKING").arg("k").clone(),
        ] {
            let err = check(&cmd).unwrap_err().to_string();
            assert!(err.contains(&format!("`{}`", acl_name(&cmd))), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(check(redis::cmd("CLUSTER").arg("MEET").arg("a").arg(1)).is_ok());
        // A manual failover (the handover, a placement repair): the bare form only.
        assert!(check(redis::cmd("CLUSTER").arg("FAILOVER")).is_ok());
    }

    #[test]
    fn only_watch_changes_users_and_configuration() {
        let setuser = redis::cmd("ACL").arg("SETUSER").arg("app").clone();
        let config = redis::cmd("CONFIG").arg("SET").arg("masterauth").clone();
        for cmd in [&setuser, &config] {
            assert!(check(cmd).is_err(), "{}", acl_name(cmd));
            assert!(check_as(cmd, Sender::Watch).is_ok(), "{}", acl_name(cmd));
        }
        assert!(check_as(&redis::cmd("FLUSHALL"), Sender::Watch).is_err());
        // Nor anything the bootstrap sends: `watch` only ever talks to its own node's users.
        assert!(check_as(redis::cmd("CLUSTER").arg("MEET"), Sender::Watch).is_err());
        let bootstrap = bootstrap_rules();
        assert!(
            !bootstrap
                .split(' ')
                .any(|rule| rule.starts_with("+acl") || rule.starts_with("+config")),
            "{bootstrap}"
        );
        let pod = pod_rules();
        assert_eq!(
            pod,
            "resetchannels resetkeys -@all +ping +acl|getuser +acl|setuser +config|get +config|set"
        );
        assert!(print_acl().contains(&format!("user pod on >POD_PASSWORD {pod}\n")));
    }

    #[test]
    fn each_command_is_listed_once_with_a_reason() {
        for list in [SENT, RUN_BY_MIGRATE, REPLICATION, WATCH, BACKUP, RESTORE] {
            let mut names: Vec<&str> = list.iter().map(|(name, _)| *name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), list.len());
            assert!(list.iter().all(|(name, why)| {
                !why.is_empty() && *name == name.to_ascii_lowercase() && !name.contains(' ')
            }));
        }
    }

    #[test]
    fn the_rules_deny_everything_first_then_grant_the_list() {
        let rules = bootstrap_rules();
        assert!(
            rules.starts_with("resetchannels ~* -@all +info "),
            "{rules}"
        );
        assert!(rules.contains(" +cluster|meet ") && rules.ends_with(" +restore-asking"));
        assert_eq!(
            replication_rules(),
            "resetchannels resetkeys -@all +psync +replconf +ping"
        );
        assert!(print_acl().contains(&format!("user bootstrap on >BOOTSTRAP_PASSWORD {rules}\n")));
        // The backup user reads no key and changes nothing but the pause.
        let backup = backup_rules();
        assert!(
            backup.starts_with("resetchannels resetkeys -@all +info "),
            "{backup}"
        );
        assert!(!rules.contains("client|pause") && !rules.contains("psync"));
        assert!(print_acl().contains(&format!("user backup on >BACKUP_PASSWORD {backup}\n")));
        let restore = restore_rules();
        assert!(restore.contains(" -flushall -flushdb ") && restore.contains(" +restore "));
        assert!(print_acl().contains(&format!("user restore on >RESTORE_PASSWORD {restore}\n")));
    }

    #[test]
    fn replayed_writes_pass_but_never_a_flush_or_a_node_change() {
        assert!(check_replayed(redis::cmd("SET").arg("k").arg("v")).is_ok());
        assert!(check_replayed(redis::cmd("XADD").arg("s").arg("1-1").arg("f").arg("v")).is_ok());
        for cmd in [
            redis::cmd("FLUSHALL"),
            redis::cmd("CLUSTER").arg("SETSLOT").arg(1).clone(),
            redis::cmd("CONFIG").arg("SET").clone(),
        ] {
            let err = check_replayed(&cmd).unwrap_err();
            assert_eq!(err.exit_code(), crate::ExitCode::Refused, "{err}");
        }
    }
}
