//! Unit tests of the pairing by placement: the guide kept when safe, pairings found where the
//! guide (or a greedy choice) fails, zones, impossible placements, pins, and an exhaustive check
//! against brute force on small placements.

use super::*;

/// Pods on these Kubernetes nodes, zones unknown.
fn on(nodes: &[&str]) -> Vec<Place> {
    nodes
        .iter()
        .map(|n| Place {
            node: Some(n.to_string()),
            zone: None,
        })
        .collect()
}

/// Pods on these `(node, zone)` pairs.
fn zoned(places: &[(&str, &str)]) -> Vec<Place> {
    places
        .iter()
        .map(|(n, z)| Place {
            node: Some(n.to_string()),
            zone: Some(z.to_string()),
        })
        .collect()
}

fn free(n: usize) -> Vec<Option<Pin>> {
    vec![None; n]
}

fn named(places: &[Place]) -> Vec<Node> {
    places
        .iter()
        .enumerate()
        .map(|(i, p)| Node {
            place: p.clone(),
            ..Node::new(
                format!("redis-app-{i}"),
                format!("127.0.0.{}:6379", i + 1).parse().unwrap(),
            )
        })
        .collect()
}

/// True if no replica shares `key` with its master, checking the pairing's shape on the way.
fn separated(
    pairing: &Pairing,
    places: &[Place],
    r: usize,
    key: fn(&Place) -> &Option<String>,
) -> bool {
    let m = places.len() / (1 + r);
    assert_eq!(pairing.masters.len(), m);
    let mut followers = vec![0; m];
    for (i, &k) in pairing.shard.iter().enumerate() {
        if pairing.masters[k] != i {
            followers[k] += 1;
        }
    }
    assert!(followers.iter().all(|&f| f == r), "{pairing:?}");
    (0..places.len()).all(|i| {
        pairing
            .master_of(i)
            .is_none_or(|m| key(&places[m]).is_none() || key(&places[m]) != key(&places[i]))
    })
}

fn node(p: &Place) -> &Option<String> {
    &p.node
}

fn zone(p: &Place) -> &Option<String> {
    &p.zone
}

/// Most masters on one node.
fn most_masters_on_a_node(pairing: &Pairing, places: &[Place]) -> usize {
    let mut load: HashMap<&str, usize> = HashMap::new();
    for &m in &pairing.masters {
        *load.entry(places[m].node.as_deref().unwrap()).or_default() += 1;
    }
    load.into_values().max().unwrap()
}

#[test]
fn the_guides_layout_is_kept_when_it_is_already_safe() {
    // One pod per node, and 3 nodes where pod M+k lands away from pod k.
    for places in [
        on(&["a", "b", "c", "d", "e", "f"]),
        on(&["a", "b", "c", "b", "c", "a"]),
    ] {
        let choice = choose(&places, 1, &free(6));
        assert!(choice.guide, "{choice:?}");
        assert_eq!(choice.pairing, Pairing::guide(6, 3));
        assert_eq!(choice.separation, Separation::Nodes);
    }
    // Static mode: nothing known, nothing to separate: the guide's layout.
    let unknown = vec![Place::default(); 9];
    assert_eq!(choose(&unknown, 2, &free(9)).pairing, Pairing::guide(9, 3));
}

#[test]
fn three_nodes_with_two_pods_each_where_the_guide_pairs_pods_on_one_node() {
    // The scheduler spread 0,1,2 and then 3,4,5 over the same three nodes: 3 lands with 0.
    let places = on(&["a", "b", "c", "a", "b", "c"]);
    assert!(!Pairing::guide(6, 3).separates(&[0, 1, 2, 0, 1, 2]));

    let choice = choose(&places, 1, &free(6));

    assert_eq!(choice.separation, Separation::Nodes);
    assert!(!choice.guide);
    assert!(separated(&choice.pairing, &places, 1, node), "{choice:?}");
    // Masters stay 0, 1, 2 (one per node, slots in pod order); only the replicas rotate.
    assert_eq!(choice.pairing.masters, [0, 1, 2]);
    assert_eq!(most_masters_on_a_node(&choice.pairing, &places), 1);
}

#[test]
fn masters_spread_over_nodes_even_when_the_guides_pairs_are_safe() {
    // The guide's pairs are on different nodes, but masters 0 and 1 share node a: losing it
    // would leave one master of three, too few to vote a failover.
    let places = on(&["a", "a", "b", "b", "c", "c"]);
    assert!(separated(&Pairing::guide(6, 3), &places, 1, node));

    let choice = choose(&places, 1, &free(6));

    assert!(separated(&choice.pairing, &places, 1, node), "{choice:?}");
    assert_eq!(most_masters_on_a_node(&choice.pairing, &places), 1);
    assert_eq!(choice.pairing.masters, [0, 2, 4]);
}

#[test]
fn a_first_fit_assignment_fails_where_augmenting_paths_succeed() {
    // Masters 0 (a), 1 (b), 2 (b) are pinned (an interrupted formation). First fit gives replica
    // 3 (c) to master 0, and then replica 4 (b) has nowhere to go; the only answer is 4 -> 0.
    let places = on(&["a", "b", "b", "c", "b", "a"]);
    let pins = [
        Some(Pin::Master(0)),
        Some(Pin::Master(1)),
        Some(Pin::Master(2)),
        None,
        None,
        None,
    ];

    let choice = choose(&places, 1, &pins);

    assert_eq!(choice.separation, Separation::Nodes);
    assert!(choice.pairing.keeps(&pins));
    assert!(separated(&choice.pairing, &places, 1, node), "{choice:?}");
    assert_eq!(choice.pairing.master_of(4), Some(0));
}

#[test]
fn spreading_masters_one_per_node_fails_where_bounds_per_node_succeed() {
    // 9 pods, R = 2: six on node a. A master on a would leave five replicas on a for two other
    // masters (four places): every master must be off a, two of them on b.
    let places = on(&["a", "a", "a", "a", "a", "a", "b", "b", "c"]);

    let choice = choose(&places, 2, &free(9));

    assert_eq!(choice.separation, Separation::Nodes);
    assert!(separated(&choice.pairing, &places, 2, node), "{choice:?}");
    assert_eq!(choice.pairing.masters, [6, 7, 8]);
}

#[test]
fn zones_are_separated_when_there_are_enough_of_them() {
    // Six nodes in three zones; the guide's pairs are on different nodes but 3 is in 0's zone.
    let places = zoned(&[
        ("n1", "z1"),
        ("n2", "z2"),
        ("n3", "z3"),
        ("n4", "z1"),
        ("n5", "z2"),
        ("n6", "z3"),
    ]);
    assert!(separated(&Pairing::guide(6, 3), &places, 1, node));

    let choice = choose(&places, 1, &free(6));

    assert_eq!(choice.separation, Separation::Zones);
    assert!(separated(&choice.pairing, &places, 1, zone), "{choice:?}");

    // Two zones are enough for R = 2 when every master's replicas sit in the other zone...
    let two = zoned(&[
        ("n1", "z1"),
        ("n2", "z2"),
        ("n3", "z1"),
        ("n4", "z2"),
        ("n5", "z2"),
        ("n6", "z1"),
        ("n7", "z2"),
        ("n8", "z2"),
        ("n9", "z1"),
    ]);
    let choice = choose(&two, 2, &free(9));
    assert_eq!(choice.separation, Separation::Zones, "{choice:?}");
    assert!(separated(&choice.pairing, &two, 2, zone));

    // ...but not when one zone holds more than half the pods (R = 1): nodes only.
    let lopsided = zoned(&[
        ("n1", "z1"),
        ("n2", "z1"),
        ("n3", "z1"),
        ("n4", "z1"),
        ("n5", "z2"),
        ("n6", "z2"),
    ]);
    let choice = choose(&lopsided, 1, &free(6));
    assert_eq!(choice.separation, Separation::Nodes);
    assert!(separated(&choice.pairing, &lopsided, 1, node));
}

#[test]
fn impossible_placements_keep_the_guides_layout_and_warn_once_per_shard_sharing_a_node() {
    // A laptop cluster: every pod on one node.
    let laptop = on(&["kind"; 6]);
    let choice = choose(&laptop, 1, &free(6));
    assert_eq!(choice.separation, Separation::Shared);
    assert!(choice.guide);
    assert_eq!(choice.pairing, Pairing::guide(6, 3));
    let warnings = choice.warnings(&named(&laptop));
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert_eq!(
        warnings[0],
        "shared failure domain: master redis-app-0: its replica redis-app-3 is on the same \
         Kubernetes node kind; losing it loses the shard"
    );

    // Two nodes, four pods on one: some replica of a must follow a master on a. Only the
    // guide's shards that actually share a node are named.
    let two = on(&["a", "a", "b", "a", "b", "a"]);
    let choice = choose(&two, 1, &free(6));
    assert_eq!(choice.separation, Separation::Shared);
    assert!(choice.guide);
    let warnings = choice.warnings(&named(&two));
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("master redis-app-0: its replica redis-app-3"));
}

#[test]
fn an_observed_partial_formation_that_fits_a_safe_pairing_is_finished_not_reshuffled() {
    // An earlier run gave masters 0, 1, 2 their slots and attached 3 to 0; then pods moved, so
    // that the placement alone would now choose other masters.
    let places = on(&["a", "a", "b", "b", "c", "c"]);
    let pins = [
        Some(Pin::Master(0)),
        Some(Pin::Master(1)),
        Some(Pin::Master(2)),
        Some(Pin::Replica(0)),
        None,
        None,
    ];
    assert!(!choose(&places, 1, &free(6)).pairing.keeps(&pins));

    let choice = choose(&places, 1, &pins);

    assert!(choice.pairing.keeps(&pins), "{choice:?}");
    assert_eq!(choice.separation, Separation::Nodes);
    assert!(separated(&choice.pairing, &places, 1, node));
}

#[test]
fn a_rerun_after_an_interruption_makes_the_same_choice() {
    let places = on(&["a", "b", "c", "a", "b", "c", "a", "b", "c"]);
    let first = choose(&places, 2, &free(9));
    // Interrupted after the masters got their slots and one replica attached.
    let mut pins = free(9);
    for (k, &m) in first.pairing.masters.iter().enumerate() {
        pins[m] = Some(Pin::Master(k));
    }
    let attached = (0..9)
        .find(|&i| first.pairing.master_of(i).is_some())
        .unwrap();
    pins[attached] = Some(Pin::Replica(first.pairing.shard[attached]));

    assert_eq!(choose(&places, 2, &pins), first);
    assert_eq!(choose(&places, 2, &free(9)), first);
}

#[test]
fn pins_that_fit_no_safe_pairing_are_kept_and_warned_about() {
    // An old formation put 3 under 0 on node a; nothing can undo that without moving data, but
    // the other two shards can still be kept apart.
    let places = on(&["a", "b", "c", "a", "b", "c"]);
    let pins = [
        Some(Pin::Master(0)),
        None,
        None,
        Some(Pin::Replica(0)),
        None,
        None,
    ];
    let choice = choose(&places, 1, &pins);
    assert!(choice.pairing.keeps(&pins));
    assert_eq!(choice.separation, Separation::Shared);
    assert_eq!(choice.warnings(&named(&places)).len(), 1);
}

/// A small deterministic random generator (xorshift), so failures replay.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Whether any pairing puts every replica off its master's domain, by trying them all.
fn brute_force(domains: &[usize], r: usize) -> bool {
    let n = domains.len();
    let m = n / (1 + r);
    fn assign(
        i: usize,
        roles: &[bool],
        masters: &[usize],
        places: &mut [usize],
        d: &[usize],
    ) -> bool {
        if i == roles.len() {
            return true;
        }
        if roles[i] {
            return assign(i + 1, roles, masters, places, d);
        }
        for (k, &master) in masters.iter().enumerate() {
            if places[k] > 0 && d[master] != d[i] {
                places[k] -= 1;
                if assign(i + 1, roles, masters, places, d) {
                    return true;
                }
                places[k] += 1;
            }
        }
        false
    }
    (0u32..1 << n)
        .filter(|set| set.count_ones() as usize == m)
        .any(|set| {
            let roles: Vec<bool> = (0..n).map(|i| set & (1 << i) != 0).collect();
            let masters: Vec<usize> = (0..n).filter(|&i| roles[i]).collect();
            assign(0, &roles, &masters, &mut vec![r; m], domains)
        })
}

#[test]
fn finds_a_safe_pairing_exactly_when_brute_force_does() {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let mut checked = [0, 0];
    for round in 0..1500 {
        let (n, r) = [(6, 1), (8, 1), (9, 2), (8, 3), (10, 1)][round % 5];
        let node_count = 1 + random.below(5);
        let zone_count = 1 + random.below(3);
        let zone_of: Vec<usize> = (0..node_count).map(|_| random.below(zone_count)).collect();
        let nodes: Vec<usize> = (0..n).map(|_| random.below(node_count)).collect();
        let places: Vec<Place> = nodes
            .iter()
            .map(|&x| Place {
                node: Some(format!("n{x}")),
                zone: Some(format!("z{}", zone_of[x])),
            })
            .collect();
        let zones: Vec<usize> = nodes.iter().map(|&x| zone_of[x]).collect();

        let choice = choose(&places, r, &free(n));

        let expected = if brute_force(&zones, r) {
            Separation::Zones
        } else if brute_force(&nodes, r) {
            Separation::Nodes
        } else {
            Separation::Shared
        };
        assert_eq!(choice.separation, expected, "{places:?} R={r}: {choice:?}");
        match expected {
            Separation::Zones => assert!(separated(&choice.pairing, &places, r, zone)),
            Separation::Nodes => assert!(separated(&choice.pairing, &places, r, node)),
            Separation::Shared => assert_eq!(choice.pairing, Pairing::guide(n, n / (1 + r))),
        }
        assert_eq!(choose(&places, r, &free(n)), choice, "not deterministic");
        checked[usize::from(expected != Separation::Shared)] += 1;
    }
    // Both outcomes were exercised.
    assert!(checked[0] > 50 && checked[1] > 50, "{checked:?}");
}

/// Whether a pairing that keeps `pins` puts every replica off its master's domain, by trying
/// them all.
fn brute_force_pinned(domains: &[usize], r: usize, pins: &[Option<Pin>]) -> bool {
    let n = domains.len();
    let m = n / (1 + r);
    let pinned_master = |k: usize| pins.iter().position(|p| *p == Some(Pin::Master(k)));
    (0u32..1 << n)
        .filter(|set| set.count_ones() as usize == m)
        .any(|set| {
            let is_master = |i: usize| set & (1 << i) != 0;
            let fits_pins = pins.iter().enumerate().all(|(i, pin)| match pin {
                Some(Pin::Master(_)) => is_master(i),
                Some(Pin::Replica(k)) => {
                    !is_master(i) && pinned_master(*k).is_some_and(|p| domains[p] != domains[i])
                }
                None => true,
            });
            if !fits_pins {
                return false;
            }
            let masters: Vec<usize> = (0..n).filter(|&i| is_master(i)).collect();
            let mut places: Vec<usize> = masters
                .iter()
                .map(|&p| {
                    let taken = match pins[p] {
                        Some(Pin::Master(k)) => {
                            pins.iter().filter(|x| **x == Some(Pin::Replica(k))).count()
                        }
                        _ => 0,
                    };
                    r - taken
                })
                .collect();
            let roles: Vec<bool> = (0..n).map(|i| is_master(i) || pins[i].is_some()).collect();
            fn assign(
                i: usize,
                roles: &[bool],
                masters: &[usize],
                places: &mut [usize],
                d: &[usize],
            ) -> bool {
                if i == roles.len() {
                    return true;
                }
                if roles[i] {
                    return assign(i + 1, roles, masters, places, d);
                }
                for (k, &master) in masters.iter().enumerate() {
                    if places[k] > 0 && d[master] != d[i] {
                        places[k] -= 1;
                        if assign(i + 1, roles, masters, places, d) {
                            return true;
                        }
                        places[k] += 1;
                    }
                }
                false
            }
            assign(0, &roles, &masters, &mut places, domains)
        })
}

#[test]
fn with_pins_finds_a_safe_completion_exactly_when_brute_force_does() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut safe = 0;
    for round in 0..600 {
        let (n, r) = [(6, 1), (8, 1), (9, 2)][round % 3];
        let m = n / (1 + r);
        let node_count = 2 + random.below(3);
        let nodes: Vec<usize> = (0..n).map(|_| random.below(node_count)).collect();
        let places: Vec<Place> = nodes
            .iter()
            .map(|&x| Place {
                node: Some(format!("n{x}")),
                zone: None,
            })
            .collect();
        // An interrupted formation of some pairing: a random half of its masters and replicas.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, random.below(i + 1));
        }
        let mut pins = free(n);
        for (k, &p) in order[..m].iter().enumerate() {
            if random.below(2) == 0 {
                pins[p] = Some(Pin::Master(k));
            }
        }
        for (j, &p) in order[m..].iter().enumerate() {
            let k = j % m;
            if pins[order[k]].is_some() && random.below(2) == 0 {
                pins[p] = Some(Pin::Replica(k));
            }
        }

        let choice = choose(&places, r, &pins);

        assert!(
            choice.pairing.keeps(&pins),
            "{places:?} {pins:?}: {choice:?}"
        );
        let exists = brute_force_pinned(&nodes, r, &pins);
        assert_eq!(
            choice.separation != Separation::Shared,
            exists,
            "{places:?} R={r} {pins:?}: {choice:?}"
        );
        if exists {
            assert!(separated(&choice.pairing, &places, r, node));
            safe += 1;
        }
    }
    assert!(safe > 100 && safe < 550, "{safe}");
}

#[test]
fn large_placements_pair_quickly() {
    // N = 100, R = 2 on 10 nodes in 3 zones, and N = 200, R = 3 on 7 nodes, with the pods
    // scattered: the search is polynomial, so this takes milliseconds.
    let mut random = Random(42);
    for (n, r, node_count) in [(99, 2, 10), (100, 1, 10), (200, 3, 7), (200, 1, 3)] {
        let places: Vec<Place> = (0..n)
            .map(|_| {
                let x = random.below(node_count);
                Place {
                    node: Some(format!("n{x}")),
                    zone: Some(format!("z{}", x % 3)),
                }
            })
            .collect();
        let choice = choose(&places, r, &free(n));
        assert_ne!(choice.separation, Separation::Shared, "{n} {r}");
        assert!(separated(&choice.pairing, &places, r, node));
    }
}

#[test]
fn report_warnings_name_shared_zones_only_when_the_pods_span_two() {
    let places = zoned(&[
        ("n1", "z1"),
        ("n2", "z2"),
        ("n3", "z1"),
        ("n4", "z1"),
        ("n5", "z1"),
        ("n6", "z1"),
    ]);
    let nodes = named(&places);
    let guide = Pairing::guide(6, 3).shards();
    assert_eq!(
        shared(&guide, &nodes),
        [
            "shared failure domain: master redis-app-0: its replica redis-app-3 is in the same \
             zone z1; losing it loses the shard",
            "shared failure domain: master redis-app-2: its replica redis-app-5 is in the same \
             zone z1; losing it loses the shard"
        ]
    );
    let one_zone = named(&zoned(&[
        ("n1", "z"),
        ("n2", "z"),
        ("n3", "z"),
        ("n4", "z"),
        ("n5", "z"),
        ("n6", "z"),
    ]));
    assert!(shared(&guide, &one_zone).is_empty());
}

#[test]
fn pins_come_from_the_slots_and_replication_the_nodes_report() {
    let id = |i: usize| format!("{:040x}", i + 1);
    let line = |i: usize, me: usize, (role, slots): (&str, &str)| {
        let myself = if i == me { "myself," } else { "" };
        format!(
            "{} 127.0.0.{}:6379@16379 {myself}{role} 0 0 1 connected {slots}",
            id(i),
            i + 1
        )
    };
    // 0 owns shard 1's slots; 3 replicates 0; 1 owns odd slots; 2 is empty.
    let replica_of_0 = format!("slave {}", id(0));
    let views = [
        ("master -", "5461-10922"),
        ("master -", "0-100"),
        ("master -", ""),
        (replica_of_0.as_str(), ""),
    ];
    let info = "# Cluster\r\ncluster_enabled:1\r\n";
    let observations: Vec<Observation> = (0..4)
        .map(|me| {
            let text: Vec<String> = (0..4).map(|i| line(i, me, views[i])).collect();
            Observation::parse(info, &id(me), &text.join("\n"), "cluster_state:fail\r\n").unwrap()
        })
        .collect();
    // Pods 4 and 5 are not observed here: only the first four matter.
    let layout = Layout::new(6, 1).unwrap();
    assert_eq!(
        pins(&observations, &layout),
        [Some(Pin::Master(1)), None, None, Some(Pin::Replica(1))]
    );
}

#[test]
fn the_planner_finishes_an_interrupted_formation_after_the_pods_moved() {
    // An earlier run gave pods 0, 1, 2 their slots and stopped. Since then the pods moved so that
    // the placement alone would make 0, 2, 4 the masters; the layout keeps 0, 1, 2 and the plan
    // finishes the formation instead of refusing it as "slots outside the plan".
    let id = |i: usize| format!("{:040x}", i + 1);
    let split = slots::split(3);
    let observations: Vec<Observation> = (0..6)
        .map(|i| {
            let (slots, epoch) = split.get(i).map_or((String::new(), 0), |r| {
                (format!("{}-{}", r.start(), r.end()), i + 1)
            });
            let line = format!(
                "{} :6379@16379 myself,master - 0 0 {epoch} connected {slots}",
                id(i)
            );
            let info = format!(
                "cluster_state:fail\r\ncluster_known_nodes:1\r\ncluster_my_epoch:{epoch}\r\n"
            );
            Observation::parse("# Cluster\r\ncluster_enabled:1\r\n", &id(i), &line, &info).unwrap()
        })
        .collect();
    let nodes = named(&on(&["a", "a", "b", "b", "c", "c"]));
    assert_eq!(
        choose(
            &nodes.iter().map(|n| n.place.clone()).collect::<Vec<_>>(),
            1,
            &free(6)
        )
        .pairing
        .masters,
        [0, 2, 4]
    );

    let (layout, choice) = arrange(Layout::new(6, 1).unwrap(), &nodes, &observations);

    assert_eq!(layout.pairing().masters, [0, 1, 2]);
    assert_eq!(choice.separation, Separation::Nodes);
    let plan = crate::plan::plan(&nodes, &layout, &observations).unwrap();
    assert_eq!(plan.decision, crate::plan::Decision::Partial);
    for step in &plan.steps {
        if let crate::plan::Step::Replicate { node, master, .. } = step {
            assert_ne!(
                nodes[*node].place.node, nodes[*master].place.node,
                "{plan:?}"
            );
        }
    }
}
