//! The commands of a replication stream, parsed: a master sends its replicas every write as a RESP
//! array of bulk strings (`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n`). A backup's tail is such a
//! stream; [`Commands`] cuts it into whole commands as bytes arrive, keeping at most one partial
//! command in memory. Pure code.

/// One command: its arguments, the name first.
pub type Command = Vec<Vec<u8>>;

/// A RESP stream cut into commands.
#[derive(Debug, Default)]
pub struct Commands {
    buf: Vec<u8>,
    start: usize,
}

impl Commands {
    /// An empty stream.
    pub fn new() -> Commands {
        Commands::default()
    }

    /// Appends bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 20) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole command with its length in bytes, `None` until one has fully arrived; an
    /// error when the bytes are not RESP commands.
    pub fn next_command(&mut self) -> Result<Option<(Command, usize)>, String> {
        let rest = &self.buf[self.start..];
        match parse(rest)? {
            None => Ok(None),
            Some((command, used)) => {
                self.start += used;
                Ok(Some((command, used)))
            }
        }
    }

    /// Bytes received that are not yet a whole command.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Parses one command at the start of `bytes`: the command and the bytes it took, `None` when it is
/// not complete yet. A bare `\n` (a master's keepalive before the snapshot) is skipped.
pub fn parse(bytes: &[u8]) -> Result<Option<(Command, usize)>, String> {
    let mut at = 0;
    let Some((header, next)) = line(bytes, at)? else {
        return Ok(None);
    };
    let count = match header.strip_prefix(b"*") {
        Some(n) => number(n)?,
        None => {
            return Err(format!(
                "expected a command (*<count>), found {:?}",
                String::from_utf8_lossy(&header[..header.len().min(40)])
            ));
        }
    };
    at = next;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let Some((size, next)) = line(bytes, at)? else {
            return Ok(None);
        };
        let len = match size.strip_prefix(b"$") {
            Some(n) => number(n)?,
            None => return Err("expected a bulk string ($<len>) in a command".into()),
        };
        if bytes.len() < next + len + 2 {
            return Ok(None);
        }
        if &bytes[next + len..next + len + 2] != b"\r\n" {
            return Err("a bulk string is not followed by CRLF".into());
        }
        args.push(bytes[next..next + len].to_vec());
        at = next + len + 2;
    }
    Ok(Some((args, at)))
}

/// The line at `at` (without CRLF) and where the next one starts.
fn line(bytes: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, String> {
    let rest = &bytes[at..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&rest[..end], at + end + 2))),
        None if rest.len() > 64 => Err("a RESP header line is longer than 64 bytes".into()),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Result<usize, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("{:?} is not a length", String::from_utf8_lossy(text)))
}

/// The RESP encoding of a command, as a master sends it.
pub fn encode(command: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", command.len()).into_bytes();
    for arg in command {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_cut_as_bytes_arrive() {
        let stream = [
            encode(&[b"SELECT", b"0"]),
            encode(&[b"SET", b"k", b"v\r\nwith crlf"]),
        ]
        .concat();
        let mut commands = Commands::new();
        let mut seen = Vec::new();
        for byte in &stream {
            commands.push(std::slice::from_ref(byte));
            while let Some((cmd, _)) = commands.next_command().unwrap() {
                seen.push(cmd);
            }
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1][2], b"v\r\nwith crlf");
        assert_eq!(commands.pending(), 0);
    }

    #[test]
    fn what_is_not_a_command_is_an_error() {
        assert!(parse(b"+OK\r\n").is_err());
        assert!(parse(b"*1\r\n$3\r\nSETxx").is_err());
        assert_eq!(parse(b"*2\r\n$3\r\nGET").unwrap(), None);
    }
}
