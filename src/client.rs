//! One connection to one node: a timeout on connecting and on every command, AUTH when a password
//! is set (with the ACL user when one is set), TLS when `BOOTSTRAP_TLS_CA_FILE` is set
//! ([`crate::tls`]), errors that name the node, and nothing sent that is not in the list of
//! [`crate::commands`].

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo,
};
use tracing::warn;

use crate::commands::{self, Sender};
use crate::credentials::{Credentials, Login};
use crate::node::Node;
use crate::tls::Tls;
use crate::{Error, Result};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long any one command may take. `CLUSTER NODES` of a 500-node cluster still answers in ms.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one node. Cheap to clone: clones share the multiplexed connection.
#[derive(Clone)]
pub struct Client {
    /// The node this connection reaches.
    pub node: Node,
    conn: MultiplexedConnection,
    credentials: Option<Credentials>,
    login: Option<Login>,
    tls: Option<Tls>,
    sender: Sender,
}

impl Client {
    /// Connects (and authenticates) once, over TLS when `tls` is set; see [`connect_all`] for
    /// retries. With a password file, its passwords are tried in order until the node accepts one
    /// (the first is the one in use; a node that has not applied a step of a change yet accepts a
    /// later one).
    pub async fn connect(
        node: &Node,
        credentials: Option<&Credentials>,
        tls: Option<&Tls>,
    ) -> Result<Client> {
        let logins: Vec<Option<Login>> = match credentials {
            None => vec![None],
            Some(credentials) => credentials.logins()?.into_iter().map(Some).collect(),
        };
        let last = logins.len() - 1;
        for (i, login) in logins.into_iter().enumerate() {
            match Client::connect_as(node, credentials, login, tls).await {
                Err(Error::Rejected(_)) if i < last => continue,
                Ok(client) if i > 0 => {
                    warn!(
                        node = %node,
                        "{node} refused the first password of BOOTSTRAP_PASSWORD_FILE and accepted \
                         the one on line {}: a step of the password change has not reached that \
                         node yet (wait for every node between two steps: docs/security.md)",
                        i + 1
                    );
                    return Ok(client);
                }
                result => return result,
            }
        }
        unreachable!("at least one login is tried")
    }

    /// Connects once with one login; `credentials` is where it came from (for the errors).
    async fn connect_as(
        node: &Node,
        credentials: Option<&Credentials>,
        login: Option<Login>,
        tls: Option<&Tls>,
    ) -> Result<Client> {
        // No CLIENT SETINFO: it is not in the list, and Redis 7.0 does not know it.
        let mut redis = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(login) = &login {
            redis = redis.set_password(login.password());
            if let Some(user) = login.username() {
                redis = redis.set_username(user);
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let conn = match tls {
            Some(tls) => connect_tls(node, tls, &redis, config, credentials).await?,
            None => {
                let info = ConnectionAddr::Tcp(node.addr.ip().to_string(), node.addr.port())
                    .into_connection_info()
                    .map_err(|e| unreachable(node, e))?
                    .set_redis_settings(redis);
                let client = redis::Client::open(info).map_err(|e| unreachable(node, e))?;
                // One PING: a node that listens only for TLS drops the connection here.
                let connected = match client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(mut conn) => {
                        let ping = redis::cmd("PING");
                        commands::check(&ping)?;
                        match ping.query_async::<()>(&mut conn).await {
                            // Any reply is a Redis talking plaintext; a node still loading its
                            // data says LOADING, and the commands that follow will tell.
                            Err(e) if e.code().is_some_and(|c| c != "NOAUTH" && c != "NOPERM") => {
                                Ok(conn)
                            }
                            result => result.map(|()| conn),
                        }
                    }
                    Err(e) => Err(e),
                };
                match connected {
                    Ok(conn) => conn,
                    Err(e) => return Err(plaintext_refused(node, credentials, e).await),
                }
            }
        };
        Ok(Client {
            node: node.clone(),
            conn,
            credentials: credentials.cloned(),
            login,
            tls: tls.cloned(),
            sender: Sender::Bootstrap,
        })
    }

    /// This connection for the pod-side `watch`: it may also send [`commands::WATCH`] (as the
    /// pod-local user, whose ACL holds them).
    pub fn for_watch(mut self) -> Client {
        self.sender = Sender::Watch;
        self
    }

    /// This connection for `backup` or `restore`: it may send only their list
    /// ([`commands::BACKUP`], [`commands::RESTORE`]), which their ACL users hold.
    pub fn sending(mut self, sender: Sender) -> Client {
        self.sender = sender;
        self
    }

    /// A second connection to the same node (same credentials, same TLS), for one large reply,
    /// closed when dropped. The redis crate keeps a connection's read buffer at the size of the
    /// largest reply it ever read; a view of a 300-node cluster grows it to 64 KB, and 300
    /// connections holding one were most of the binary's memory. So a view is read on a
    /// connection of its own, and the node's long-lived one stays at its 8 KB.
    pub async fn once(&self) -> Result<Client> {
        let mut client =
            Client::connect(&self.node, self.credentials.as_ref(), self.tls.as_ref()).await?;
        client.sender = self.sender;
        Ok(client)
    }

    /// Sends one command; `what` names it in errors (never includes a secret).
    /// Refused before sending (an internal error) when the command is not in
    /// [`commands::SENT`].
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd, what: &str) -> Result<T> {
        commands::check_as(cmd, self.sender)?;
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| self.classify(what, e))
    }

    /// Sends a pipeline in one round trip; nothing at all when one of its commands is not in
    /// [`commands::SENT`].
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        what: &str,
    ) -> Result<T> {
        pipe.cmd_iter()
            .try_for_each(|cmd| commands::check_as(cmd, self.sender))?;
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn)
            .await
            .map_err(|e| self.classify(what, e))
    }

    /// Sends a pipeline of a restore's replayed writes (and its own commands), in one round
    /// trip: each command is the tool's own ([`commands::check`]) or a recorded write that may be
    /// replayed ([`commands::check_replayed`]); nothing at all is sent otherwise.
    pub async fn replay<T: FromRedisValue>(&self, pipe: &redis::Pipeline, what: &str) -> Result<T> {
        pipe.cmd_iter().try_for_each(|cmd| {
            commands::check_as(cmd, self.sender).or_else(|_| commands::check_replayed(cmd))
        })?;
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn)
            .await
            .map_err(|e| self.classify(what, e))
    }

    /// The user and password this connection authenticated with (`MIGRATE` authenticates to its
    /// target with the ones its connection to the target was accepted with).
    pub fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    fn classify(&self, what: &str, e: redis::RedisError) -> Error {
        classify(&self.node, what, self.credentials.as_ref(), e)
    }

    /// Sends several commands in one round trip. Redis runs every one of them, so each gets its
    /// own result, and an error names its own command; the outer error is the connection's.
    /// Nothing at all is sent when one of them is not in [`commands::SENT`].
    pub async fn each(&self, commands: Vec<(redis::Cmd, &str)>) -> Result<Vec<Result<()>>> {
        self.each_within(commands, COMMAND_TIMEOUT).await
    }

    /// [`Client::each`], waiting `timeout` for the replies instead of [`COMMAND_TIMEOUT`]: for
    /// commands the server may hold longer. Giving up early is no option for those: the
    /// connection then closes with commands still queued on the node, and a node that had sent a
    /// command on to its replicas drops it unapplied while they keep it.
    pub async fn each_within(
        &self,
        commands: Vec<(redis::Cmd, &str)>,
        timeout: Duration,
    ) -> Result<Vec<Result<()>>> {
        let replies = self.replies_within(commands, timeout).await?;
        Ok(replies.into_iter().map(|r| r.map(drop)).collect())
    }

    /// [`Client::each`], keeping each command's reply.
    pub async fn replies(
        &self,
        commands: Vec<(redis::Cmd, &str)>,
    ) -> Result<Vec<Result<redis::Value>>> {
        self.replies_within(commands, COMMAND_TIMEOUT).await
    }

    async fn replies_within(
        &self,
        commands: Vec<(redis::Cmd, &str)>,
        timeout: Duration,
    ) -> Result<Vec<Result<redis::Value>>> {
        let mut pipe = redis::pipe();
        let mut names = Vec::with_capacity(commands.len());
        for (cmd, what) in commands {
            commands::check_as(&cmd, self.sender)?;
            pipe.add_command(cmd);
            names.push(what);
        }
        pipe.ignore_errors();
        let mut conn = self.conn.clone();
        conn.set_response_timeout(timeout);
        let results: Vec<redis::RedisResult<redis::Value>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.classify(&names.join(", "), e))?;
        Ok(results
            .into_iter()
            .zip(names)
            .map(|(result, what)| result.map_err(|e| self.classify(what, e)))
            .collect())
    }
}

/// Why a plaintext connection failed: a node that drops it without a Redis reply and answers a
/// TLS handshake with a certificate speaks TLS only, which no retry fixes (exit 2, naming
/// `BOOTSTRAP_TLS_CA_FILE`); anything else as [`classify`] says.
async fn plaintext_refused(
    node: &Node,
    credentials: Option<&Credentials>,
    e: redis::RedisError,
) -> Error {
    let no_reply =
        e.is_connection_dropped() || e.is_io_error() || e.kind() == redis::ErrorKind::Parse;
    if no_reply && crate::tls_probe::speaks_tls(node.addr).await {
        return Error::Config(format!(
            "BOOTSTRAP_TLS_CA_FILE is not set, but {node} speaks TLS (it drops plaintext connections \
             and presents a certificate): set BOOTSTRAP_TLS_CA_FILE to the CA bundle that signed the \
             nodes' certificates"
        ));
    }
    classify(node, "connect", credentials, e)
}

/// Connects to every node at once, each retried with backoff until `timeout`: a pod that was
/// just rescheduled may take a moment to listen. Wrong passwords and certificates that do not
/// verify fail at once.
pub async fn connect_all(
    nodes: &[Node],
    credentials: Option<&Credentials>,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Vec<Client>> {
    let attempts = nodes.iter().map(|node| {
        retry_unreachable(node, timeout, move || {
            Client::connect(node, credentials, tls)
        })
    });
    futures::future::join_all(attempts)
        .await
        .into_iter()
        .collect()
}

/// The TLS path: our own TCP connection to the resolved IP, the handshake checking the name the
/// node is expected to have ([`Tls::handshake`]), then the redis crate's connection over that
/// stream (AUTH and the response timeout as on the plaintext path). A certificate that does not
/// verify, or that the node refuses, is [`Error::Config`]: retrying cannot fix it.
async fn connect_tls(
    node: &Node,
    tls: &Tls,
    redis: &RedisConnectionInfo,
    config: AsyncConnectionConfig,
    credentials: Option<&Credentials>,
) -> Result<MultiplexedConnection> {
    let setup = async {
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect(node.addr).await?;
            tcp.set_nodelay(true)?;
            tls.handshake(node, tcp).await
        };
        let stream = handshake.await.map_err(|e| {
            tls.handshake_failure(node, &e)
                .unwrap_or_else(|| unreachable(node, e.into()))
        })?;
        let seen = stream.seen();
        let asked = stream.asked_for_a_certificate();
        let for_want_of_a_certificate = || tls.refused_for_want_of_a_certificate(node, asked);
        // rustls's reason when there is one, else what a refusal for want of a certificate looks
        // like with TLS 1.3 (a reset), else the Redis error as on the plaintext path.
        let explain = |e: redis::RedisError| {
            let tls_error = seen.lock().unwrap_or_else(|p| p.into_inner()).take();
            tls_error
                .and_then(|tls_error| tls.refusal(node, &tls_error))
                .or_else(for_want_of_a_certificate)
                .unwrap_or_else(|| classify(node, "connect", credentials, e))
        };
        let (mut conn, driver) = MultiplexedConnection::new_with_config(redis, stream, config)
            .await
            .map_err(explain)?;
        let driver = tokio::spawn(driver);
        // The node asked for a client certificate and got none: it refuses the connection on its
        // first command (tls-auth-clients yes) or serves it (optional). Ask now, not mid-plan.
        if for_want_of_a_certificate().is_some() {
            let ping = redis::cmd("PING");
            commands::check(&ping)?;
            if let Err(e) = ping.query_async::<()>(&mut conn).await {
                driver.abort();
                return Err(explain(e));
            }
        }
        // The driver ends when the last clone of the connection is dropped.
        Ok(conn)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, setup)
        .await
        .unwrap_or_else(|_| {
            let late = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS connection not established within the connect timeout",
            );
            Err(unreachable(node, late.into()))
        })
}

fn unreachable(node: &Node, source: redis::RedisError) -> Error {
    Error::Unreachable {
        node: node.name.clone(),
        addr: node.addr.to_string(),
        source,
    }
}

/// Sorts a Redis error into: our configuration (password, user, its ACL), the node being
/// unreachable, or the node refusing a command.
fn classify(
    node: &Node,
    what: &str,
    credentials: Option<&Credentials>,
    e: redis::RedisError,
) -> Error {
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
        let vars = credentials.map_or("BOOTSTRAP_PASSWORD", Credentials::variables);
        return Error::Rejected(match credentials.and_then(Credentials::username) {
            Some(user) => format!(
                "{vars} are rejected by {node}: set them to an ACL user of the nodes (is user \
                 {user:?} defined and `on` there, with this password?)"
            ),
            None => format!("{vars} is rejected by {node}: set it to the nodes' requirepass"),
        });
    }
    // The user exists but its ACL lacks a command the tool sends: configuration, not a retry.
    if e.code() == Some("NOPERM") {
        let vars = credentials.map_or("BOOTSTRAP_USERNAME", Credentials::variables);
        return Error::Config(format!(
            "{vars}: {node} denies `{what}` to this user ({}): grant it the rules printed by \
             `redis-cluster-bootstrap --print-acl`",
            e.detail().unwrap_or("NOPERM")
        ));
    }
    if e.code() == Some("NOAUTH") {
        return Error::Config(format!(
            "{node} requires a password: set BOOTSTRAP_PASSWORD to the nodes' requirepass"
        ));
    }
    if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped() {
        return unreachable(node, e);
    }
    Error::Command {
        node: node.name.clone(),
        addr: node.addr.to_string(),
        command: what.to_string(),
        source: e,
    }
}

/// Runs `attempt` until it succeeds, retrying with backoff (100 ms up to 2 s apart) while it fails
/// with [`Error::Unreachable`] (a node not listening or not answering yet) until `timeout`; any
/// other error at once.
pub async fn retry_unreachable<T, F, Fut>(node: &Node, timeout: Duration, attempt: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(2),
        max_elapsed_time: Some(timeout),
        ..Default::default()
    };
    backoff::future::retry(policy, || async {
        attempt().await.map_err(|e| match e {
            Error::Unreachable { .. } => {
                tracing::debug!(node = %node, error = %e, "not answering yet, retrying");
                backoff::Error::transient(e)
            }
            other => backoff::Error::permanent(other),
        })
    })
    .await
}
