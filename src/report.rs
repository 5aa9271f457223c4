//! The result: a table like `CLUSTER NODES` but with pod names (pod, address, node ID, role,
//! master, slots, and in Kubernetes mode the pod's Kubernetes node and zone), then one summary
//! line with the outcome, the plan and each phase's duration. In JSON mode each row and the
//! summary are one JSON object per line. Written to stdout; logs go to stderr, where each shard
//! whose master shares a node or zone with a replica gets a warning.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tracing::warn;

use crate::config::LogFormat;
use crate::node::Node;
use crate::observation::Observation;
use crate::plan::Decision;
use crate::plan::placement;
use crate::slots;

/// What the run did, for the summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `formed` or `dry-run`.
    pub outcome: &'static str,
    /// What the planner found.
    pub decision: Decision,
    /// N.
    pub nodes: usize,
    /// M.
    pub masters: usize,
    /// R.
    pub replicas_per_master: usize,
    /// Number of changes made (or planned, in a dry run).
    pub steps: usize,
    /// Each phase and how long it took, in order.
    pub phases: Vec<(&'static str, Duration)>,
    /// One line per shard whose master shares a Kubernetes node or zone with a replica.
    pub shared_failure_domains: Vec<String>,
    /// One line per move of a placement repair: the shard, the pods and their nodes.
    pub repairs: Vec<String>,
}

/// One row of the table.
struct Row {
    pod: String,
    address: String,
    id: String,
    role: &'static str,
    master: String,
    slots: String,
    node: Option<String>,
    zone: Option<String>,
}

fn rows(nodes: &[Node], observations: &[Observation]) -> Vec<Row> {
    let names: HashMap<&str, &str> = observations
        .iter()
        .zip(nodes)
        .map(|(o, n)| (o.id.as_str(), n.name.as_str()))
        .collect();
    nodes
        .iter()
        .zip(observations)
        .map(|(node, o)| {
            let me = o.myself();
            let replica = me.is_some_and(|m| m.flags.replica);
            let master = me
                .and_then(|m| m.master_id.as_deref())
                .filter(|_| replica)
                .map(|id| names.get(id).map_or(id.to_string(), |n| n.to_string()))
                .unwrap_or_else(|| "-".into());
            let ranges = me.map(|m| m.slots.clone()).unwrap_or_default();
            Row {
                pod: node.name.clone(),
                address: node.addr.to_string(),
                id: o.id.clone(),
                role: if replica { "replica" } else { "master" },
                master,
                slots: if ranges.is_empty() {
                    "-".into()
                } else {
                    format!("{} ({})", slots::format(&ranges), slots::count(&ranges))
                },
                node: node.place.node.clone(),
                zone: node.place.zone.clone(),
            }
        })
        .collect()
}

/// The table as text, columns aligned. NODE and ZONE appear when some pod's are known.
pub fn table(nodes: &[Node], observations: &[Observation]) -> String {
    let rows = rows(nodes, observations);
    let with_node = rows.iter().any(|r| r.node.is_some());
    let with_zone = rows.iter().any(|r| r.zone.is_some());
    let optional = |on: bool, cell: String| on.then_some(cell);
    let mut lines: Vec<Vec<String>> = vec![
        [
            Some("POD".to_string()),
            Some("ADDRESS".into()),
            Some("NODE ID".into()),
            Some("ROLE".into()),
            Some("MASTER".into()),
            Some("SLOTS".into()),
            optional(with_node, "NODE".into()),
            optional(with_zone, "ZONE".into()),
        ]
        .into_iter()
        .flatten()
        .collect(),
    ];
    for r in rows {
        let unknown = || "-".to_string();
        lines.push(
            [
                Some(r.pod),
                Some(r.address),
                Some(r.id),
                Some(r.role.into()),
                Some(r.master),
                Some(r.slots),
                optional(with_node, r.node.unwrap_or_else(unknown)),
                optional(with_zone, r.zone.unwrap_or_else(unknown)),
            ]
            .into_iter()
            .flatten()
            .collect(),
        );
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    lines
        .iter()
        .map(|l| {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .map(|(s, w)| format!("{s:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The summary as one `key=value` line.
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "outcome={} decision={} nodes={} masters={} replicas_per_master={} steps={}",
        s.outcome, s.decision, s.nodes, s.masters, s.replicas_per_master, s.steps
    );
    for (phase, took) in &s.phases {
        line.push_str(&format!(" {phase}={:.3}s", took.as_secs_f64()));
    }
    line
}

/// Prints the summary of a run that left the StatefulSet alone because its pods were not Ready
/// (`BOOTSTRAP_WHEN_NOT_READY=skip`): `why` says what it waited for.
pub fn print_skipped(format: LogFormat, why: &str) {
    match format {
        LogFormat::Text => println!("outcome=skipped reason={why:?}"),
        LogFormat::Json => println!("{}", json!({ "outcome": "skipped", "reason": why })),
    }
}

/// Prints the table (when the nodes were observed) and the summary, and warns about every shard
/// whose master shares a Kubernetes node or zone with one of its replicas (a warning only: the
/// run still succeeds and moves nothing).
pub fn print(format: LogFormat, nodes: &[Node], observations: &[Observation], summary: &Summary) {
    for line in placement::shared(&placement::observed_shards(observations), nodes) {
        warn!(reason = placement::SHARED_FAILURE_DOMAIN, "{line}");
    }
    match format {
        LogFormat::Text => {
            println!("{}", table(nodes, observations));
            println!("{}", summary_line(summary));
        }
        LogFormat::Json => {
            for r in rows(nodes, observations) {
                let mut row = json!({
                    "pod": r.pod, "address": r.address, "id": r.id,
                    "role": r.role, "master": r.master, "slots": r.slots,
                });
                for (key, value) in [("node", r.node), ("zone", r.zone)] {
                    if let Some(value) = value {
                        row[key] = json!(value);
                    }
                }
                println!("{row}");
            }
            let phases: serde_json::Map<String, serde_json::Value> = summary
                .phases
                .iter()
                .map(|(p, d)| (format!("{p}_ms"), json!(d.as_millis() as u64)))
                .collect();
            let line = json!({
                "outcome": summary.outcome,
                "decision": summary.decision.to_string(),
                "nodes": summary.nodes,
                "masters": summary.masters,
                "replicas_per_master": summary.replicas_per_master,
                "steps": summary.steps,
                "phases": phases,
            });
            println!("{line}");
        }
    }
}
