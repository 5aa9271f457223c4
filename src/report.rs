//! The result: a table like `CLUSTER NODES` but with pod names (pod, address, node ID, role,
//! master, slots), then one summary line with the outcome, the plan and each phase's duration.
//! In JSON mode each row and the summary are one JSON object per line. Written to stdout; logs
//! go to stderr.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::config::LogFormat;
use crate::node::Node;
use crate::observation::Observation;
use crate::plan::Decision;
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
}

/// One row of the table.
struct Row {
    pod: String,
    address: String,
    id: String,
    role: &'static str,
    master: String,
    slots: String,
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
            }
        })
        .collect()
}

/// The table as text, columns aligned.
pub fn table(nodes: &[Node], observations: &[Observation]) -> String {
    let mut lines = vec![[
        "POD".to_string(),
        "ADDRESS".into(),
        "NODE ID".into(),
        "ROLE".into(),
        "MASTER".into(),
        "SLOTS".into(),
    ]];
    for r in rows(nodes, observations) {
        lines.push([r.pod, r.address, r.id, r.role.into(), r.master, r.slots]);
    }
    let widths: Vec<usize> = (0..6)
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

/// Prints the table (when the nodes were observed) and the summary.
pub fn print(format: LogFormat, nodes: &[Node], observations: &[Observation], summary: &Summary) {
    match format {
        LogFormat::Text => {
            println!("{}", table(nodes, observations));
            println!("{}", summary_line(summary));
        }
        LogFormat::Json => {
            for r in rows(nodes, observations) {
                let row = json!({
                    "pod": r.pod, "address": r.address, "id": r.id,
                    "role": r.role, "master": r.master, "slots": r.slots,
                });
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
