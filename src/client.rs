//! One connection to one node: a timeout on connecting and on every command, AUTH when a password
//! is set, and errors that name the node.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo,
};

use crate::node::Node;
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
}

impl Client {
    /// Connects (and authenticates) once; see [`connect_all`] for retries.
    pub async fn connect(node: &Node, password: Option<&str>) -> Result<Client> {
        let mut redis = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(pw) = password {
            redis = redis.set_password(pw);
        }
        let info = ConnectionAddr::Tcp(node.addr.ip().to_string(), node.addr.port())
            .into_connection_info()
            .map_err(|e| unreachable(node, e))?
            .set_redis_settings(redis);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let client = redis::Client::open(info).map_err(|e| unreachable(node, e))?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| classify(node, "connect", e))?;
        Ok(Client {
            node: node.clone(),
            conn,
        })
    }

    /// Sends one command; `what` names it in errors (never includes a secret).
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd, what: &str) -> Result<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| classify(&self.node, what, e))
    }

    /// Sends a pipeline in one round trip.
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        what: &str,
    ) -> Result<T> {
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn)
            .await
            .map_err(|e| classify(&self.node, what, e))
    }

    /// Sends several commands in one round trip. Redis runs every one of them, so each gets its
    /// own result, and an error names its own command; the outer error is the connection's.
    pub async fn each(&self, commands: Vec<(redis::Cmd, &str)>) -> Result<Vec<Result<()>>> {
        let mut pipe = redis::pipe();
        let mut names = Vec::with_capacity(commands.len());
        for (cmd, what) in commands {
            pipe.add_command(cmd);
            names.push(what);
        }
        pipe.ignore_errors();
        let mut conn = self.conn.clone();
        let results: Vec<redis::RedisResult<redis::Value>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(&self.node, &names.join(", "), e))?;
        Ok(results
            .into_iter()
            .zip(names)
            .map(|(result, what)| result.map(drop).map_err(|e| classify(&self.node, what, e)))
            .collect())
    }
}

/// Connects to every node at once, each retried with backoff until `timeout`: a pod that was
/// just rescheduled may take a moment to listen. Wrong passwords fail at once.
pub async fn connect_all(
    nodes: &[Node],
    password: Option<&str>,
    timeout: Duration,
) -> Result<Vec<Client>> {
    let attempts = nodes.iter().map(|node| async move {
        let policy = backoff::ExponentialBackoff {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(5),
            max_elapsed_time: Some(timeout),
            ..Default::default()
        };
        backoff::future::retry(policy, || async {
            Client::connect(node, password).await.map_err(|e| match e {
                Error::Unreachable { .. } => {
                    tracing::debug!(node = %node, error = %e, "not reachable yet, retrying");
                    backoff::Error::transient(e)
                }
                other => backoff::Error::permanent(other),
            })
        })
        .await
    });
    futures::future::join_all(attempts)
        .await
        .into_iter()
        .collect()
}

fn unreachable(node: &Node, source: redis::RedisError) -> Error {
    Error::Unreachable {
        node: node.name.clone(),
        addr: node.addr.to_string(),
        source,
    }
}

/// Sorts a Redis error into: our configuration (password), the node being unreachable, or the
/// node refusing a command.
fn classify(node: &Node, what: &str, e: redis::RedisError) -> Error {
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
        return Error::Config(format!(
            "BOOTSTRAP_PASSWORD is rejected by {node}: set it to the nodes' requirepass"
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
