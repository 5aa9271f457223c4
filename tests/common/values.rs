//! A key's value as a client reads it, in a form that compares across servers and restores: what
//! a test of backups and restores checks for every type.

use redis::aio::ConnectionLike;
use redis::{Cmd, Value};

/// The key's type (`TYPE`) and its value: a string, a list in order, the members of a set and
/// the fields of a hash sorted, a sorted set with its scores, a stream's entries and its
/// `XINFO STREAM ... FULL` (groups, PELs with delivery times and counts, consumers with seen
/// times) without `active-time`, which Redis 7.0 does not keep.
pub async fn value_of<C: ConnectionLike + Send>(c: &mut C, key: &[u8]) -> (String, Value) {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(c).await.unwrap();
    let read = |name: &str| redis::cmd(name).arg(key).clone();
    let value = match kind.as_str() {
        "string" => query(c, &read("GET")).await,
        "list" => query(c, read("LRANGE").arg(0).arg(-1)).await,
        "set" => sorted(query(c, &read("SMEMBERS")).await, 1),
        "zset" => query(c, read("ZRANGE").arg(0).arg(-1).arg("WITHSCORES")).await,
        "hash" => sorted(query(c, &read("HGETALL")).await, 2),
        "stream" => {
            let entries = query(c, read("XRANGE").arg("-").arg("+")).await;
            let info = redis::cmd("XINFO")
                .arg("STREAM")
                .arg(key)
                .arg("FULL")
                .clone();
            let info = without_active_time(query(c, &info).await);
            Value::Array(vec![entries, info])
        }
        other => panic!("{}: unexpected type {other}", key.escape_ascii()),
    };
    (kind, value)
}

async fn query<C: ConnectionLike + Send>(c: &mut C, cmd: &Cmd) -> Value {
    cmd.query_async(c).await.unwrap()
}

/// An array's items sorted in groups of `n` (members, or field-value pairs).
fn sorted(value: Value, n: usize) -> Value {
    let Value::Array(items) = value else {
        panic!("not an array: {value:?}")
    };
    let mut groups: Vec<Vec<Value>> = items.chunks(n).map(<[Value]>::to_vec).collect();
    groups.sort_by_key(|g| format!("{g:?}"));
    Value::Array(groups.concat())
}

/// A reply without its `active-time` fields (at even positions of flat field-value arrays).
fn without_active_time(value: Value) -> Value {
    let Value::Array(items) = value else {
        return value;
    };
    let mut kept = Vec::with_capacity(items.len());
    let mut items = items.into_iter().enumerate();
    while let Some((i, item)) = items.next() {
        if i % 2 == 0 && item == Value::BulkString(b"active-time".to_vec()) {
            items.next();
        } else {
            kept.push(without_active_time(item));
        }
    }
    Value::Array(kept)
}
