//! The target layout: which pods are masters, which slots each owns, whom each replica follows.
//!
//! By default the guide's: masters are pods `0..M`; pod `M + k` replicates master `k mod M` (for 6
//! pods: 3→0, 4→1, 5→2). In Kubernetes mode the pairing may instead come from where the pods run
//! ([`crate::plan::placement`]), given with [`Layout::with_pairing`]; the planner only asks
//! [`Layout::role`], so both read the same. Pure code: nothing here does I/O.

use crate::pairing::Pairing;
use crate::slots::{self, SlotRange};

/// The shape of the cluster for N nodes and R replicas per master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Number of nodes (N).
    pub nodes: usize,
    /// Replicas per master (R).
    pub replicas_per_master: usize,
    /// Number of masters (M = N / (1 + R)).
    pub masters: usize,
    slots: Vec<SlotRange>,
    pairing: Pairing,
}

/// What the layout asks of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A master owning this slot range.
    Master(SlotRange),
    /// A replica of the master at this pod index.
    Replica(usize),
}

impl Layout {
    /// The layout for `nodes` nodes with `replicas_per_master` replicas each; refuses shapes Redis
    /// Cluster cannot run safely, with a message that says what to change.
    pub fn new(nodes: usize, replicas_per_master: usize) -> Result<Layout, String> {
        let group = replicas_per_master + 1;
        if !nodes.is_multiple_of(group) {
            return Err(format!(
                "{nodes} nodes cannot be split into masters with {replicas_per_master} replica(s) each \
                 ({nodes} is not divisible by 1+{replicas_per_master}): change the StatefulSet's replicas \
                 or BOOTSTRAP_REPLICAS_PER_MASTER"
            ));
        }
        let masters = nodes / group;
        if masters < 3 {
            return Err(format!(
                "{nodes} nodes with {replicas_per_master} replica(s) per master make {masters} master(s); \
                 a Redis Cluster needs at least 3: use at least {} nodes or lower BOOTSTRAP_REPLICAS_PER_MASTER",
                3 * group
            ));
        }
        if masters > slots::SLOTS as usize {
            return Err(format!(
                "{masters} masters is more than the {} hash slots",
                slots::SLOTS
            ));
        }
        Ok(Layout {
            nodes,
            replicas_per_master,
            masters,
            slots: slots::split(masters),
            pairing: Pairing::guide(nodes, masters),
        })
    }

    /// The same shape with another pairing of masters and replicas (one with M masters, each
    /// followed by R replicas).
    pub fn with_pairing(self, pairing: Pairing) -> Layout {
        assert_eq!(
            (pairing.masters.len(), pairing.shard.len()),
            (self.masters, self.nodes),
            "a pairing of the layout's shape"
        );
        Layout { pairing, ..self }
    }

    /// Who masters which shard and who follows whom.
    pub fn pairing(&self) -> &Pairing {
        &self.pairing
    }

    /// The role of the pod at `index`.
    pub fn role(&self, index: usize) -> Role {
        let shard = self.pairing.shard[index];
        match self.pairing.master_of(index) {
            None => Role::Master(self.slots[shard].clone()),
            Some(master) => Role::Replica(master),
        }
    }

    /// The slots of master `index`, or `None` for a replica.
    pub fn slots_of(&self, index: usize) -> Option<&SlotRange> {
        self.pairing
            .master_of(index)
            .is_none()
            .then(|| &self.slots[self.pairing.shard[index]])
    }

    /// The pod index of the planned owner of `slot`.
    pub fn owner_of(&self, slot: u16) -> usize {
        let shard = self
            .slots
            .partition_point(|r| *r.end() < slot)
            .min(self.masters - 1);
        self.pairing.masters[shard]
    }

    /// Number of replicas (N - M).
    pub fn replicas(&self) -> usize {
        self.nodes - self.masters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_pods_pair_3_to_0_4_to_1_5_to_2() {
        let l = Layout::new(6, 1).unwrap();
        assert_eq!(l.masters, 3);
        assert_eq!(l.role(0), Role::Master(0..=5460));
        assert_eq!(l.role(2), Role::Master(10923..=16383));
        let pairs: Vec<Role> = (3..6).map(|i| l.role(i)).collect();
        assert_eq!(
            pairs,
            [Role::Replica(0), Role::Replica(1), Role::Replica(2)]
        );
    }

    #[test]
    fn nine_pods_with_two_replicas_give_each_master_two() {
        let l = Layout::new(9, 2).unwrap();
        assert_eq!(l.masters, 3);
        let mut per_master = [0; 3];
        for i in 3..9 {
            match l.role(i) {
                Role::Replica(m) => per_master[m] += 1,
                other => panic!("pod {i} should be a replica, is {other:?}"),
            }
        }
        assert_eq!(per_master, [2, 2, 2]);
    }

    #[test]
    fn masters_only_when_r_is_zero() {
        let l = Layout::new(5, 0).unwrap();
        assert_eq!((l.masters, l.replicas()), (5, 0));
    }

    #[test]
    fn refuses_uneven_groups_and_fewer_than_three_masters() {
        assert!(Layout::new(7, 1).unwrap_err().contains("not divisible"));
        assert!(Layout::new(4, 1).unwrap_err().contains("at least 3"));
        assert!(Layout::new(0, 1).is_err());
    }

    #[test]
    fn a_pairing_by_placement_changes_roles_and_owners_not_the_split() {
        // Masters 0, 2, 4 own the slots in that order; 1 follows 2, 3 follows 4, 5 follows 0.
        let pairing = Pairing {
            masters: vec![0, 2, 4],
            shard: vec![0, 1, 1, 2, 2, 0],
        };
        let l = Layout::new(6, 1).unwrap().with_pairing(pairing);
        assert_eq!(l.role(2), Role::Master(5461..=10922));
        assert_eq!(
            [1, 3, 5].map(|i| l.role(i)),
            [Role::Replica(2), Role::Replica(4), Role::Replica(0)]
        );
        assert_eq!(l.slots_of(4), Some(&(10923..=16383)));
        assert_eq!(l.slots_of(1), None);
        assert_eq!([0, 5461, 16383].map(|s| l.owner_of(s)), [0, 2, 4]);
    }

    #[test]
    fn owner_of_follows_the_split() {
        let l = Layout::new(6, 1).unwrap();
        assert_eq!(
            [0, 5460, 5461, 10922, 10923, 16383].map(|s| l.owner_of(s)),
            [0, 0, 1, 1, 2, 2]
        );
    }
}
