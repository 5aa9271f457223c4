//! Which nodes belong together: groups linked by knowing each other's node IDs.

use std::collections::HashMap;

use crate::observation::Observation;

/// Groups of nodes linked by knowing each other's IDs (each group sorted, lowest index first).
pub(super) fn components(observations: &[Observation]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let mut parent: Vec<usize> = (0..observations.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, o) in observations.iter().enumerate() {
        for line in o.nodes.iter().filter(|l| !l.flags.handshake) {
            if let Some(&j) = index.get(line.id.as_str()) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..observations.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort();
    groups
}
