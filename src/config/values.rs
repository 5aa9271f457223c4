//! The checks of one value each: a name, a domain, a port, a duration, a flag, the node list, the
//! credentials. Each error names its variable and what it accepts.

use std::time::Duration;

use crate::Error;
use crate::credentials::Credentials;
use crate::node::HostPort;

pub(super) fn dns_label(var: &str, value: String) -> Result<String, Error> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value)
    } else {
        Err(Error::Config(format!(
            "{var}={value:?} is not valid: expected a Kubernetes name (lowercase letters, digits and '-', at most 63)"
        )))
    }
}

pub(super) fn domain(var: &str, value: String) -> Result<String, Error> {
    let trimmed = value.trim_end_matches('.').to_string();
    let ok = !trimmed.is_empty()
        && trimmed
            .split('.')
            .all(|label| dns_label(var, label.to_string()).is_ok());
    if ok {
        Ok(trimmed)
    } else {
        Err(Error::Config(format!(
            "{var}={value:?} is not valid: expected a DNS domain such as cluster.local"
        )))
    }
}

/// A user needs a password: without one, `AUTH` cannot name the user at all. The password is
/// given (`BOOTSTRAP_PASSWORD`) or in a file (`BOOTSTRAP_PASSWORD_FILE`, read on every
/// connection), not both.
pub(super) fn credentials(
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
) -> Result<Option<Credentials>, Error> {
    let username = username
        .map(|user| {
            let user = user.trim().to_string();
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::Config(format!(
                    "BOOTSTRAP_USERNAME={user:?} is not valid: expected an ACL user name without spaces"
                )));
            }
            Ok(user)
        })
        .transpose()?;
    match (username, password, password_file) {
        (_, Some(_), Some(_)) => Err(Error::Config(
            "BOOTSTRAP_PASSWORD and BOOTSTRAP_PASSWORD_FILE are both set: expected one of them \
             (the file is re-read on every connection and may list several passwords)"
                .into(),
        )),
        (None, None, None) => Ok(None),
        (Some(_), None, None) => Err(Error::Config(
            "BOOTSTRAP_USERNAME is set but neither BOOTSTRAP_PASSWORD nor BOOTSTRAP_PASSWORD_FILE \
             is: expected the user's password in one of them"
                .into(),
        )),
        (user, Some(password), None) => Ok(Some(Credentials::new(user, password))),
        (user, None, Some(file)) => Ok(Some(Credentials::from_file(user, path(&file)))),
    }
}

/// A file or directory path as given (leading and trailing spaces are a typo).
pub(super) fn path(value: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(value.trim())
}

/// A `true`/`false` variable (also `1`/`0`, `yes`/`no`), `default` when unset.
pub(super) fn boolean(name: &str, value: Option<String>, default: bool) -> Result<bool, Error> {
    match value
        .as_deref()
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(Error::Config(format!(
            "{name}={:?} is not valid: expected true or false",
            value.unwrap_or_default()
        ))),
    }
}

/// `BOOTSTRAP_DRAIN_TO`: whole shards (a multiple of 1+R), at least 3 masters' worth.
pub(super) fn drain_to(value: &str, replicas_per_master: usize) -> Result<usize, Error> {
    let group = replicas_per_master + 1;
    let n = value.trim().parse::<usize>().map_err(|_| {
        Error::Config(format!(
            "BOOTSTRAP_DRAIN_TO={value:?} is not valid: expected a whole number of nodes, e.g. 6"
        ))
    })?;
    if !n.is_multiple_of(group) || n < 3 * group {
        return Err(Error::Config(format!(
            "BOOTSTRAP_DRAIN_TO={n} is not valid: expected a multiple of 1+{replicas_per_master} \
             (whole shards) of at least {} (3 masters with {replicas_per_master} replica(s) each)",
            3 * group
        )));
    }
    Ok(n)
}

pub(super) fn port(var: &str, value: &str) -> Result<u16, Error> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            Error::Config(format!(
                "{var}={value:?} is not valid: expected a port from 1 to 65535"
            ))
        })
}

pub(super) fn duration(var: &str, value: Option<String>, default: &str) -> Result<Duration, Error> {
    let text = value.unwrap_or_else(|| default.to_string());
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "{var}={text:?} is not valid: expected a positive duration such as 90s, 10m or 1h"
            ))
        })
}

pub(super) fn node_list(value: &str) -> Result<Vec<HostPort>, Error> {
    let mut nodes = Vec::new();
    if value.trim().is_empty() {
        return Err(Error::Config(
            "BOOTSTRAP_NODES is empty: expected host:port,host:port,... or leave it unset for Kubernetes mode"
                .into(),
        ));
    }
    for (position, item) in value.split(',').map(str::trim).enumerate() {
        // `a,,b` or a trailing comma is a typo (a node left out?), not a shorter list.
        if item.is_empty() {
            return Err(Error::Config(format!(
                "BOOTSTRAP_NODES={value:?} has an empty entry at position {}: expected host:port,host:port,... \
                 with no empty entries",
                position + 1
            )));
        }
        let node = item.parse::<HostPort>().map_err(|why| {
            Error::Config(format!(
                "BOOTSTRAP_NODES has {item:?}: {why}; expected host:port,host:port,... (IPv6 as [::1]:6379)"
            ))
        })?;
        if nodes.contains(&node) {
            return Err(Error::Config(format!(
                "BOOTSTRAP_NODES lists {item} twice: expected every node once"
            )));
        }
        nodes.push(node);
    }
    Ok(nodes)
}
