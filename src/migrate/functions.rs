//! Copies the functions of an old master to a new one, as `redis-cli --cluster add-node` does:
//! `FUNCTION DUMP` there, `FUNCTION RESTORE` here, only when there are functions and the new master
//! has none yet (a resumed run does not restore twice).

use redis::Value;
use tracing::info;

use crate::Result;
use crate::client::Client;

/// True when the node has at least one function library.
async fn has_functions(client: &Client) -> Result<bool> {
    let libraries: Vec<Value> = client
        .query(redis::cmd("FUNCTION").arg("LIST"), "FUNCTION LIST")
        .await?;
    Ok(!libraries.is_empty())
}

/// Copies `from`'s functions to each of `to` that has none.
pub async fn copy(from: &Client, to: &[&Client]) -> Result<()> {
    if !has_functions(from).await? {
        return Ok(());
    }
    let payload: Vec<u8> = from
        .query(redis::cmd("FUNCTION").arg("DUMP"), "FUNCTION DUMP")
        .await?;
    for client in to {
        if has_functions(client).await? {
            continue;
        }
        client
            .query::<()>(
                redis::cmd("FUNCTION").arg("RESTORE").arg(&payload),
                "FUNCTION RESTORE",
            )
            .await?;
        info!(node = %client.node.name, "FUNCTION RESTORE (the functions of {})", from.node.name);
    }
    Ok(())
}
