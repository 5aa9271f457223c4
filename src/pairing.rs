//! Who masters which shard and which shard each pod belongs to, by pod index: the one value the
//! layout holds and the planner's placement chooses, so it lives below both.

/// Who masters which shard, and which shard each pod belongs to, by pod index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// The master of shard k, as a pod index; shard k owns the k-th slot range of the split.
    pub masters: Vec<usize>,
    /// The shard of each pod: the one it masters, or the one whose master it follows.
    pub shard: Vec<usize>,
}

impl Pairing {
    /// The guide's layout: masters `0..M`; pod `M + k` follows master `k mod M`.
    pub fn guide(nodes: usize, masters: usize) -> Pairing {
        Pairing {
            masters: (0..masters).collect(),
            shard: (0..nodes).map(|i| i % masters).collect(),
        }
    }

    /// The master `pod` follows, or `None` when it is a master.
    pub fn master_of(&self, pod: usize) -> Option<usize> {
        let master = self.masters[self.shard[pod]];
        (master != pod).then_some(master)
    }

    /// Each shard's master and its replicas, in shard order.
    pub fn shards(&self) -> Vec<(usize, Vec<usize>)> {
        let mut shards: Vec<(usize, Vec<usize>)> =
            self.masters.iter().map(|&m| (m, Vec::new())).collect();
        for pod in 0..self.shard.len() {
            if self.master_of(pod).is_some() {
                shards[self.shard[pod]].1.push(pod);
            }
        }
        shards
    }

    /// True if no replica is in its master's domain.
    pub(crate) fn separates(&self, domains: &[usize]) -> bool {
        (0..self.shard.len()).all(|i| self.master_of(i).is_none_or(|m| domains[m] != domains[i]))
    }
}
