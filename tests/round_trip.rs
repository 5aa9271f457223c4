//! Several commands to one node in one round trip (how the form phase sends each node its
//! slots and epoch): every command runs, each gets its own result, and the one that failed is
//! named, so the audit trail can log exactly the commands that changed the node.

mod common;

use common::*;
use redis_cluster_bootstrap::client::Client;
use redis_cluster_bootstrap::node::Node;

fn cluster(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("CLUSTER");
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}

#[tokio::test]
async fn each_command_of_a_round_trip_has_its_own_result() {
    let server = RedisNode::start("127.0.30.1", &Options::default());
    let node = Node::new("redis-app-0", server.addr);
    let client = Client::connect(&node, None, None).await.unwrap();

    let results = client
        .each(vec![
            (
                cluster(&["ADDSLOTSRANGE", "0", "99"]),
                "CLUSTER ADDSLOTSRANGE",
            ),
            (
                cluster(&["SET-CONFIG-EPOCH", "not-a-number"]),
                "CLUSTER SET-CONFIG-EPOCH",
            ),
            (
                cluster(&["ADDSLOTSRANGE", "100", "199"]),
                "CLUSTER ADDSLOTSRANGE",
            ),
        ])
        .await
        .unwrap();

    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    let error = results[1].as_ref().unwrap_err().to_string();
    assert!(
        error.contains("redis-app-0") && error.contains("`CLUSTER SET-CONFIG-EPOCH`"),
        "{error}"
    );
    // The command after the failed one ran too: both ranges are the node's.
    let info = server.cli(&["CLUSTER", "INFO"]);
    assert!(info.contains("cluster_slots_assigned:200"), "{info}");
}
