//! One replication connection to one master, opened as a replica opens it: `AUTH` as the backup
//! user, `REPLCONF capa eof capa psync2`, `PSYNC ? -1`. The master answers `+FULLRESYNC <replid>
//! <offset>` when it forks (the snapshot is the data at that offset, X), then sends the RDB as
//! `$<len>` (from disk) or `$EOF:<40-byte mark>` (diskless), then its replication stream: every
//! write after X, as commands. [`Link::snapshot`] copies the RDB out as it arrives;
//! [`Link::stream_to`] copies the stream up to an offset, answering `REPLCONF GETACK` on the way.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::client::CONNECT_TIMEOUT;
use crate::commands;
use crate::credentials::Credentials;
use crate::node::Node;
use crate::resp::Commands;
use crate::tls::Tls;
use crate::{Error, Result};

/// How long the master may take to fork (`repl-diskless-sync-delay` is 5 s by default) or to send
/// the next bytes.
pub const SILENCE: Duration = Duration::from_secs(60);

/// How often a silent link ACKs the offset it reached, as a replica does.
const ACK_EVERY: Duration = Duration::from_millis(500);

/// A byte stream to a node, plaintext or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A replication connection after `+FULLRESYNC`.
pub struct Link {
    node: Node,
    io: BufReader<Box<dyn Stream>>,
    /// The master's replication ID.
    pub replid: String,
    /// The snapshot's offset: X.
    pub offset: u64,
}

/// How the snapshot's end is known.
enum Length {
    Bytes(u64),
    Mark([u8; 40]),
}

impl Link {
    /// Connects and asks for a full synchronization; returns once the master has forked.
    pub async fn open(
        node: &Node,
        credentials: Option<&Credentials>,
        tls: Option<&Tls>,
    ) -> Result<Link> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(node.addr))
            .await
            .map_err(|_| io_failed(node, "connect", std::io::ErrorKind::TimedOut.into()))?
            .map_err(|e| io_failed(node, "connect", e))?;
        tcp.set_nodelay(true)
            .map_err(|e| io_failed(node, "connect", e))?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(tls.handshake(node, tcp).await.map_err(|e| {
                tls.handshake_failure(node, &e)
                    .unwrap_or_else(|| io_failed(node, "TLS handshake", e))
            })?),
        };
        let mut link = Link {
            node: node.clone(),
            io: BufReader::with_capacity(1 << 16, stream),
            replid: String::new(),
            offset: 0,
        };
        if let Some(credentials) = credentials {
            // AUTH is the connection's login, as the client's: not a command of the lists. The
            // passwords of a file in order, the next one on WRONGPASS (a password being changed).
            let logins = credentials.logins()?;
            let last = logins.len() - 1;
            for (i, login) in logins.iter().enumerate() {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = login.username() {
                    auth.arg(user);
                }
                auth.arg(login.password());
                link.send_unchecked(&auth).await?;
                let reply = link.reply_line("AUTH").await?;
                if reply == "+OK" {
                    break;
                }
                if i < last && reply.starts_with("-WRONGPASS") {
                    continue;
                }
                return Err(link.refused("AUTH", &reply, Some(credentials)));
            }
        }
        let capa = redis::cmd("REPLCONF")
            .arg("capa")
            .arg("eof")
            .arg("capa")
            .arg("psync2")
            .clone();
        link.send(&capa).await?;
        link.expect_ok("REPLCONF capa", credentials.unwrap_or(&anonymous()))
            .await?;
        link.send(redis::cmd("PSYNC").arg("?").arg("-1")).await?;
        let reply = link.reply_line("PSYNC").await?;
        let fields: Vec<&str> = reply.split(' ').collect();
        match fields[..] {
            ["+FULLRESYNC", replid, offset] => {
                link.replid = replid.to_string();
                link.offset = offset.parse().map_err(|_| link.protocol(&reply))?;
                Ok(link)
            }
            _ if reply.starts_with('-') => Err(link.refused("PSYNC", &reply, credentials)),
            _ => Err(link.protocol(&reply)),
        }
    }

    /// Copies the snapshot (the RDB) to `sink` as it arrives; then asks the master for the
    /// stream (a diskless master starts it only on the replica's first ACK).
    pub async fn snapshot<F>(&mut self, mut sink: F) -> Result<u64>
    where
        F: AsyncFnMut(&[u8]) -> Result<()>,
    {
        let header = self.reply_line("the snapshot").await?;
        let length = if let Some(mark) = header.strip_prefix("$EOF:") {
            let mark: [u8; 40] = mark
                .as_bytes()
                .try_into()
                .map_err(|_| self.protocol(&header))?;
            Length::Mark(mark)
        } else if let Some(len) = header.strip_prefix('$') {
            Length::Bytes(len.parse().map_err(|_| self.protocol(&header))?)
        } else {
            return Err(self.protocol(&header));
        };
        let mut buf = vec![0u8; 1 << 16];
        let mut copied = 0u64;
        match length {
            Length::Bytes(total) => {
                while copied < total {
                    let want = buf.len().min((total - copied) as usize);
                    let n = self.read(&mut buf[..want]).await?;
                    sink(&buf[..n]).await?;
                    copied += n as u64;
                }
            }
            Length::Mark(mark) => {
                // The last 40 bytes may be the mark: held back until more arrives.
                let mut held: Vec<u8> = Vec::with_capacity(buf.len() + 40);
                loop {
                    let n = self.read(&mut buf).await?;
                    held.extend_from_slice(&buf[..n]);
                    if held.len() >= 40 && held[held.len() - 40..] == mark {
                        let data = held.len() - 40;
                        sink(&held[..data]).await?;
                        copied += data as u64;
                        break;
                    }
                    if held.len() > 40 {
                        let data = held.len() - 40;
                        sink(&held[..data]).await?;
                        copied += data as u64;
                        held.drain(..data);
                    }
                }
            }
        }
        self.ack(self.offset).await?;
        Ok(copied)
    }

    /// Copies the replication stream from the snapshot's offset up to `cut` to `sink`, whole
    /// commands (the cut is read while writes are paused, so it falls between two commands);
    /// answers `REPLCONF GETACK` with the offset reached.
    pub async fn stream_to<F>(&mut self, cut: u64, mut sink: F) -> Result<()>
    where
        F: AsyncFnMut(&[u8]) -> Result<()>,
    {
        let mut reached = self.offset;
        let mut commands = Commands::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut silent = Duration::ZERO;
        while reached < cut {
            let want = buf.len().min((cut - reached) as usize);
            // A replica ACKs every second, and a diskless master starts the stream only on an ACK
            // that comes once it counts the replica online: so ACK while the stream is silent.
            let n = match tokio::time::timeout(ACK_EVERY, self.io.read(&mut buf[..want])).await {
                Err(_) if silent < SILENCE => {
                    silent += ACK_EVERY;
                    self.ack(reached - commands.pending() as u64).await?;
                    continue;
                }
                Err(_) => {
                    return Err(io_failed(
                        &self.node,
                        "read the replication stream",
                        std::io::ErrorKind::TimedOut.into(),
                    ));
                }
                Ok(Err(e)) => return Err(io_failed(&self.node, "read the replication stream", e)),
                Ok(Ok(0)) => {
                    return Err(io_failed(
                        &self.node,
                        "read the replication stream",
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Ok(Ok(n)) => n,
            };
            silent = Duration::ZERO;
            sink(&buf[..n]).await?;
            reached += n as u64;
            commands.push(&buf[..n]);
            let mut getack = false;
            while let Some((command, _)) = commands.next_command().map_err(|e| self.protocol(&e))? {
                getack |= is_getack(&command);
            }
            if getack {
                self.ack(reached - commands.pending() as u64).await?;
            }
        }
        if commands.pending() != 0 {
            return Err(self.protocol(&format!(
                "the stream at the cut ends inside a command ({} bytes of it)",
                commands.pending()
            )));
        }
        self.ack(reached).await
    }

    async fn ack(&mut self, offset: u64) -> Result<()> {
        self.send(redis::cmd("REPLCONF").arg("ACK").arg(offset))
            .await
    }

    async fn send(&mut self, cmd: &redis::Cmd) -> Result<()> {
        commands::check_as(cmd, commands::Sender::Backup)?;
        self.send_unchecked(cmd).await
    }

    async fn send_unchecked(&mut self, cmd: &redis::Cmd) -> Result<()> {
        let bytes = cmd.get_packed_command();
        let io = self.io.get_mut();
        io.write_all(&bytes)
            .await
            .map_err(|e| io_failed(&self.node, "write", e))?;
        io.flush()
            .await
            .map_err(|e| io_failed(&self.node, "write", e))
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        match tokio::time::timeout(SILENCE, self.io.read(buf)).await {
            Err(_) => Err(io_failed(
                &self.node,
                "read the replication stream",
                std::io::ErrorKind::TimedOut.into(),
            )),
            Ok(Err(e)) => Err(io_failed(&self.node, "read the replication stream", e)),
            Ok(Ok(0)) => Err(io_failed(
                &self.node,
                "read the replication stream",
                std::io::ErrorKind::UnexpectedEof.into(),
            )),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// The next line, skipping the bare newlines a master sends as keepalives.
    async fn reply_line(&mut self, what: &str) -> Result<String> {
        loop {
            let mut line = Vec::new();
            let read = async {
                loop {
                    let byte = self.io.read_u8().await?;
                    line.push(byte);
                    if byte == b'\n' || line.len() > 512 {
                        return Ok::<_, std::io::Error>(());
                    }
                }
            };
            match tokio::time::timeout(SILENCE, read).await {
                Err(_) => {
                    return Err(io_failed(
                        &self.node,
                        what,
                        std::io::ErrorKind::TimedOut.into(),
                    ));
                }
                Ok(Err(e)) => return Err(io_failed(&self.node, what, e)),
                Ok(Ok(())) => {}
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if !text.is_empty() {
                return Ok(text);
            }
        }
    }

    async fn expect_ok(&mut self, what: &str, credentials: &Credentials) -> Result<()> {
        let reply = self.reply_line(what).await?;
        if reply == "+OK" {
            Ok(())
        } else if reply.starts_with('-') {
            Err(self.refused(what, &reply, Some(credentials)))
        } else {
            Err(self.protocol(&reply))
        }
    }

    /// An error reply: wrong credentials or a missing grant are configuration; anything else
    /// (LOADING, NOMASTERLINK) is the node's, retryable.
    fn refused(&self, what: &str, reply: &str, credentials: Option<&Credentials>) -> Error {
        let node = &self.node;
        let vars = credentials.map_or("BOOTSTRAP_PASSWORD", Credentials::variables);
        if reply.starts_with("-WRONGPASS") || reply.starts_with("-ERR invalid password") {
            return Error::Config(format!("{vars} are rejected by {node}: {reply}"));
        }
        if reply.starts_with("-NOPERM") || reply.starts_with("-NOAUTH") {
            return Error::Config(format!(
                "{vars}: {node} denies `{what}` to this user ({reply}): grant it the rules of the \
                 backup user printed by `redis-cluster-bootstrap --print-acl`"
            ));
        }
        Error::Command {
            node: node.name.clone(),
            addr: node.addr.to_string(),
            command: what.to_string(),
            source: redis::RedisError::from((
                redis::ErrorKind::Client,
                "error reply",
                reply.to_string(),
            )),
        }
    }

    fn protocol(&self, what: &str) -> Error {
        Error::Command {
            node: self.node.name.clone(),
            addr: self.node.addr.to_string(),
            command: "PSYNC".into(),
            source: redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected replication data",
                what.chars().take(120).collect::<String>(),
            )),
        }
    }
}

fn anonymous() -> Credentials {
    Credentials::new(None, String::new())
}

fn is_getack(command: &[Vec<u8>]) -> bool {
    command.len() >= 2
        && command[0].eq_ignore_ascii_case(b"replconf")
        && command[1].eq_ignore_ascii_case(b"getack")
}

fn io_failed(node: &Node, what: &str, e: std::io::Error) -> Error {
    Error::Unreachable {
        node: node.name.clone(),
        addr: node.addr.to_string(),
        source: redis::RedisError::from((
            redis::ErrorKind::Io,
            "replication",
            format!("{what}: {e}"),
        )),
    }
}
