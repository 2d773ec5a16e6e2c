//! Ordering the objects of a clone. Pure: unit-tested without a server.
//!
//! Every object the clone creates before the data is a node; `pg_depend`
//! gives the edges. Among the objects whose dependencies are all met, the
//! order is pg_dump's kind order and then the name, so a clone is repeatable.

pub mod assemble;
pub mod units;

use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub key: String,
    /// Kind order, as pg_dump sorts: lower first when nothing else decides.
    pub rank: u8,
    pub name: String,
}

/// The nodes in an order that puts every node after everything it depends
/// on. Edges naming unknown nodes, or a node itself, are ignored. On a cycle,
/// `Err` carries the nodes caught in it.
pub fn order(nodes: &[Node], deps: &[(String, String)]) -> Result<Vec<String>, Vec<String>> {
    let index: HashMap<&str, &Node> = nodes.iter().map(|n| (n.key.as_str(), n)).collect();
    let mut waiting_on: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (from, to) in deps {
        let (Some(f), Some(t)) = (index.get(from.as_str()), index.get(to.as_str())) else {
            continue;
        };
        if f.key == t.key {
            continue;
        }
        if waiting_on.entry(&f.key).or_default().insert(&t.key) {
            dependents.entry(&t.key).or_default().push(&f.key);
        }
    }
    let sort_key = |k: &str| {
        let n = index[k];
        (n.rank, n.name.clone(), n.key.clone())
    };
    let mut ready: BTreeSet<(u8, String, String)> = nodes
        .iter()
        .filter(|n| waiting_on.get(n.key.as_str()).is_none_or(|w| w.is_empty()))
        .map(|n| sort_key(&n.key))
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    let mut done: HashSet<String> = HashSet::new();
    while let Some(first) = ready.iter().next().cloned() {
        ready.remove(&first);
        let key = first.2;
        if !done.insert(key.clone()) {
            continue;
        }
        for d in dependents.get(key.as_str()).into_iter().flatten() {
            if let Some(w) = waiting_on.get_mut(d) {
                w.remove(key.as_str());
                if w.is_empty() {
                    ready.insert(sort_key(d));
                }
            }
        }
        out.push(key);
    }
    if out.len() == nodes.len() {
        Ok(out)
    } else {
        let mut stuck: Vec<String> = nodes
            .iter()
            .filter(|n| !done.contains(&n.key))
            .map(|n| n.name.clone())
            .collect();
        stuck.sort();
        Err(stuck)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn n(key: &str, rank: u8) -> Node {
        Node {
            key: key.into(),
            rank,
            name: key.into(),
        }
    }

    fn e(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn dependencies_beat_kind_and_name_order() {
        // a view (rank 5) that a function (rank 2) does not need, a function
        // the view calls, a table the function reads
        let nodes = vec![
            n("view:v", 5),
            n("proc:f", 2),
            n("rel:t", 4),
            n("type:a", 1),
        ];
        let deps = vec![e("view:v", "proc:f"), e("proc:f", "rel:t")];
        let got = order(&nodes, &deps).unwrap();
        assert_eq!(got, vec!["type:a", "rel:t", "proc:f", "view:v"]);
    }

    #[test]
    fn view_on_view_and_unknown_edges() {
        let nodes = vec![n("rel:v2", 5), n("rel:v1", 5), n("rel:t", 4)];
        let deps = vec![
            e("rel:v1", "rel:v2"),
            e("rel:v2", "rel:t"),
            e("rel:v1", "ext:plpgsql"),
            e("rel:t", "rel:t"),
        ];
        assert_eq!(
            order(&nodes, &deps).unwrap(),
            vec!["rel:t", "rel:v2", "rel:v1"]
        );
    }

    #[test]
    fn ties_are_broken_by_rank_then_name() {
        let nodes = vec![n("b", 3), n("a", 3), n("z", 1)];
        assert_eq!(order(&nodes, &[]).unwrap(), vec!["z", "a", "b"]);
    }

    #[test]
    fn a_cycle_is_reported_with_its_members() {
        let nodes = vec![n("x", 1), n("y", 1), n("free", 1), n("after", 2)];
        let deps = vec![e("x", "y"), e("y", "x"), e("after", "x")];
        assert_eq!(order(&nodes, &deps).unwrap_err(), vec!["after", "x", "y"]);
    }
}
