//! The dependency graph between services: one place for the walks the reader and the heal loop
//! need (the cycle check, dependencies-first order, everything a service needs).
//!
//! Nodes are indices; an edge `i -> j` means node `i` depends on node `j`.

use std::collections::HashMap;

/// Direct dependencies by node index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Graph {
    direct: Vec<Vec<usize>>,
}

impl Graph {
    /// A graph from direct dependencies by index (indices out of range are ignored).
    pub(crate) fn new(direct: Vec<Vec<usize>>) -> Self {
        let n = direct.len();
        Graph {
            direct: direct
                .into_iter()
                .map(|deps| deps.into_iter().filter(|&j| j < n).collect())
                .collect(),
        }
    }

    /// A graph from named nodes, each with the names it depends on; a name that is no node
    /// (e.g. the substrate, when it is not among them) is not an edge.
    pub(crate) fn from_named<'a, D>(nodes: impl IntoIterator<Item = (&'a str, D)>) -> Self
    where
        D: IntoIterator<Item = &'a str>,
    {
        let nodes: Vec<(&str, Vec<&str>)> = nodes
            .into_iter()
            .map(|(name, deps)| (name, deps.into_iter().collect()))
            .collect();
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, i))
            .collect();
        Graph::new(
            nodes
                .iter()
                .map(|(_, deps)| deps.iter().filter_map(|d| index.get(d).copied()).collect())
                .collect(),
        )
    }

    /// The first cycle found by a depth-first walk in index order, as the path of nodes it
    /// goes through: each depends on the next, and the last on the first.
    pub(crate) fn find_cycle(&self) -> Option<Vec<usize>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        fn visit(
            i: usize,
            direct: &[Vec<usize>],
            marks: &mut [Mark],
            path: &mut Vec<usize>,
        ) -> Option<usize> {
            marks[i] = Mark::Active;
            path.push(i);
            for &j in &direct[i] {
                match marks[j] {
                    Mark::Active => return Some(j),
                    Mark::New => {
                        if let Some(found) = visit(j, direct, marks, path) {
                            return Some(found);
                        }
                    }
                    Mark::Done => {}
                }
            }
            path.pop();
            marks[i] = Mark::Done;
            None
        }
        let mut marks = vec![Mark::New; self.direct.len()];
        for i in 0..self.direct.len() {
            if marks[i] != Mark::New {
                continue;
            }
            let mut path = Vec::new();
            if let Some(closes_at) = visit(i, &self.direct, &mut marks, &mut path) {
                let start = path.iter().position(|&p| p == closes_at).unwrap_or(0);
                return Some(path.split_off(start));
            }
        }
        None
    }

    /// Every node once, each after the nodes it depends on (ties in index order). On a cycle
    /// the order inside it is the walk's.
    pub(crate) fn dependency_order(&self) -> Vec<usize> {
        fn place(i: usize, direct: &[Vec<usize>], done: &mut [bool], order: &mut Vec<usize>) {
            if done[i] {
                return;
            }
            done[i] = true;
            for &j in &direct[i] {
                place(j, direct, done, order);
            }
            order.push(i);
        }
        let mut done = vec![false; self.direct.len()];
        let mut order = Vec::with_capacity(self.direct.len());
        for i in 0..self.direct.len() {
            place(i, &self.direct, &mut done, &mut order);
        }
        order
    }

    /// Everything node `i` needs, directly or through others (not `i` itself).
    pub(crate) fn dependencies_of(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.direct.len()];
        let mut stack = self.direct[i].clone();
        let mut out = Vec::new();
        while let Some(d) = stack.pop() {
            if d == i || seen[d] {
                continue;
            }
            seen[d] = true;
            out.push(d);
            stack.extend(self.direct[d].iter().copied());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(nodes: &[(&'static str, &[&'static str])]) -> Graph {
        Graph::from_named(nodes.iter().map(|(n, d)| (*n, d.iter().copied())))
    }

    #[test]
    fn order_puts_dependencies_first_and_ignores_unknown_names() {
        let g = named(&[
            ("worker", &["redis", "substrate"]),
            ("redis", &[]),
            ("gateway", &["worker"]),
        ]);
        assert_eq!(g.dependency_order(), vec![1, 0, 2]);
        assert_eq!(g.find_cycle(), None);
        let mut deps = g.dependencies_of(2);
        deps.sort_unstable();
        assert_eq!(deps, vec![0, 1]);
        assert!(g.dependencies_of(1).is_empty());
    }

    #[test]
    fn a_cycle_is_found_as_the_path_around_it() {
        let g = named(&[("x", &[]), ("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        assert_eq!(g.find_cycle(), Some(vec![1, 2, 3]));
        // Every node still appears once in the order, and a node is not its own dependency.
        let mut order = g.dependency_order();
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2, 3]);
        let mut deps = g.dependencies_of(1);
        deps.sort_unstable();
        assert_eq!(deps, vec![2, 3]);
        assert_eq!(named(&[("a", &["a"])]).find_cycle(), Some(vec![0]));
    }
}
