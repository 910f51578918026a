//! The dependency graph of `depends_on`, as pure functions of the programs.
//!
//! An edge goes from a program to each program it depends on. The validator
//! rejects unknown names and cycles ([`find_cycle`]), so the actors only ever
//! see a graph without them; these functions still ignore names that are not
//! programs and never loop on a cycle, so a caller cannot hang the daemon's
//! one thread by asking about a bad graph.
//!
//! Every order is deterministic: among programs free to go at the same time,
//! the one whose name sorts first goes first (Kahn's algorithm with a sorted
//! set as the queue), so start and stop orders in the event log are the same
//! on every run.

use super::ProgramConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

type Programs = BTreeMap<String, Arc<ProgramConfig>>;

/// The programs `name` depends on directly, that exist.
fn direct<'p>(programs: &'p Programs, name: &str) -> impl Iterator<Item = &'p str> {
    programs
        .get(name)
        .into_iter()
        .flat_map(|p| p.depends_on.keys())
        .filter(|dep| programs.contains_key(dep.as_str()))
        .map(String::as_str)
}

/// A cycle of `depends_on`, as the path that walks it: `[api, web, api]`; a
/// program that depends on itself is `[a, a]`. `None` when there is none.
/// The first cycle found from the program whose name sorts first is given,
/// so the message is the same on every run.
pub fn find_cycle(programs: &Programs) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = programs
        .keys()
        .map(|k| (k.as_str(), Mark::Unseen))
        .collect();
    for root in programs.keys() {
        if marks.get(root.as_str()) != Some(&Mark::Unseen) {
            continue;
        }
        // An explicit stack (node, its remaining dependencies) rather than
        // recursion: a long chain in a large config cannot overflow it.
        let mut path: Vec<&str> = vec![root];
        let mut stack: Vec<std::vec::IntoIter<&str>> =
            vec![direct(programs, root).collect::<Vec<_>>().into_iter()];
        marks.insert(root, Mark::OnPath);
        while let Some(next) = stack.last_mut().map(Iterator::next) {
            match next {
                None => {
                    stack.pop();
                    if let Some(done) = path.pop() {
                        marks.insert(done, Mark::Done);
                    }
                }
                Some(dep) => match marks.get(dep).copied().unwrap_or(Mark::Done) {
                    Mark::Done => {}
                    Mark::OnPath => {
                        let start = path.iter().position(|n| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|n| n.to_string()).collect();
                        cycle.push(dep.to_string());
                        return Some(cycle);
                    }
                    Mark::Unseen => {
                        marks.insert(dep, Mark::OnPath);
                        path.push(dep);
                        stack.push(direct(programs, dep).collect::<Vec<_>>().into_iter());
                    }
                },
            }
        }
    }
    None
}

/// The programs of `subset` in a valid start order: each after everything it
/// depends on (within `subset`), ties by name. Programs left on a cycle come
/// last, by name, rather than being lost.
fn order_of(programs: &Programs, subset: &BTreeSet<&str>) -> Vec<String> {
    // How many dependencies (in `subset`) each program still waits for, and
    // who waits for each.
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waiters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &name in subset {
        let deps: BTreeSet<&str> = direct(programs, name)
            .filter(|d| subset.contains(d))
            .collect();
        waiting.insert(name, deps.len());
        for dep in deps {
            waiters.entry(dep).or_default().push(name);
        }
    }
    let mut free: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut order = Vec::with_capacity(subset.len());
    while let Some(name) = free.pop_first() {
        order.push(name.to_string());
        for &waiter in waiters.get(name).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(n) = waiting.get_mut(waiter) {
                *n -= 1;
                if *n == 0 {
                    free.insert(waiter);
                }
            }
        }
    }
    if order.len() < subset.len() {
        let placed: BTreeSet<String> = order.iter().cloned().collect();
        order.extend(
            subset
                .iter()
                .filter(|n| !placed.contains(**n))
                .map(|n| n.to_string()),
        );
    }
    order
}

/// Everything reachable from `name` along `step`, without `name`.
fn reachable<'p, I>(
    programs: &'p Programs,
    name: &str,
    step: impl Fn(&'p str) -> I,
) -> BTreeSet<&'p str>
where
    I: Iterator<Item = &'p str>,
{
    let Some((start, _)) = programs.get_key_value(name) else {
        return BTreeSet::new();
    };
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut todo = vec![start.as_str()];
    while let Some(n) = todo.pop() {
        for next in step(n) {
            if seen.insert(next) {
                todo.push(next);
            }
        }
    }
    seen.remove(name);
    seen
}

/// Everything `name` depends on, transitively, in a valid start order
/// (dependencies first, ties by name), without `name` itself. Empty for an
/// unknown name.
pub fn dependencies(programs: &Programs, name: &str) -> Vec<String> {
    let set = reachable(programs, name, |n| direct(programs, n));
    order_of(programs, &set)
}

/// Everything that depends on `name`, transitively, in a valid stop order:
/// the farthest dependents first, so each is stopped before what it depends
/// on. Without `name` itself; empty for an unknown name.
pub fn dependents(programs: &Programs, name: &str) -> Vec<String> {
    // Reverse edges, built once.
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in programs.keys() {
        for dep in direct(programs, p) {
            users.entry(dep).or_default().push(p);
        }
    }
    let set = reachable(programs, name, |n| {
        users.get(n).into_iter().flatten().copied()
    });
    let mut order = order_of(programs, &set);
    order.reverse();
    order
}

/// Every program, each after everything it depends on, ties by name.
pub fn start_order(programs: &Programs) -> Vec<String> {
    let all: BTreeSet<&str> = programs.keys().map(String::as_str).collect();
    order_of(programs, &all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DependCondition;
    use std::path::Path;

    /// `(name, [dependency, ...])` for each program.
    type Edges<'a> = &'a [(&'a str, &'a [&'a str])];

    /// Programs from their edges.
    fn graph(edges: Edges) -> Programs {
        edges
            .iter()
            .map(|(name, deps)| {
                let mut p = ProgramConfig::with_defaults(name, "true", Path::new("/tmp"));
                p.depends_on = deps
                    .iter()
                    .map(|d| (d.to_string(), DependCondition::Started))
                    .collect();
                (name.to_string(), Arc::new(p))
            })
            .collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A chain (web → api → db), a diamond (app → {left, right} → base), an
    /// unrelated program, and unknown names.
    const CHAIN: Edges = &[("web", &["api"]), ("api", &["db"]), ("db", &[])];
    const DIAMOND: Edges = &[
        ("app", &["right", "left"]),
        ("left", &["base"]),
        ("right", &["base"]),
        ("base", &[]),
        ("lone", &[]),
    ];
    const UNKNOWN: Edges = &[("a", &["ghost", "b"]), ("b", &["nobody"])];

    #[test]
    fn find_cycle_names_the_cycle_as_a_path_or_none() {
        let cases: &[(&str, Edges, Option<&[&str]>)] = &[
            ("empty", &[], None),
            ("chain", CHAIN, None),
            ("diamond", DIAMOND, None),
            ("unknown names", UNKNOWN, None),
            ("self", &[("a", &["a"])], Some(&["a", "a"])),
            (
                "two",
                &[("api", &["web"]), ("web", &["api"])],
                Some(&["api", "web", "api"]),
            ),
            (
                "three, entered from outside",
                &[("x", &["b"]), ("b", &["c"]), ("c", &["d"]), ("d", &["b"])],
                Some(&["b", "c", "d", "b"]),
            ),
            (
                "self among others",
                &[("a", &["b"]), ("b", &["b"])],
                Some(&["b", "b"]),
            ),
        ];
        for (what, edges, want) in cases {
            let got = find_cycle(&graph(edges));
            assert_eq!(got, want.map(strings), "{what}");
        }
    }

    #[test]
    fn dependencies_are_transitive_in_start_order_without_the_program() {
        let cases: &[(&str, Edges, &str, &[&str])] = &[
            ("chain top", CHAIN, "web", &["db", "api"]),
            ("chain middle", CHAIN, "api", &["db"]),
            ("chain bottom", CHAIN, "db", &[]),
            ("diamond", DIAMOND, "app", &["base", "left", "right"]),
            ("diamond side", DIAMOND, "left", &["base"]),
            ("unrelated", DIAMOND, "lone", &[]),
            ("unknown names ignored", UNKNOWN, "a", &["b"]),
            ("unknown program", CHAIN, "nope", &[]),
            ("self cycle", &[("a", &["a"])], "a", &[]),
        ];
        for (what, edges, name, want) in cases {
            assert_eq!(dependencies(&graph(edges), name), strings(want), "{what}");
        }
    }

    #[test]
    fn dependents_are_transitive_in_stop_order_farthest_first() {
        let cases: &[(&str, Edges, &str, &[&str])] = &[
            ("chain bottom", CHAIN, "db", &["web", "api"]),
            ("chain middle", CHAIN, "api", &["web"]),
            ("chain top", CHAIN, "web", &[]),
            ("diamond", DIAMOND, "base", &["app", "right", "left"]),
            ("diamond side", DIAMOND, "right", &["app"]),
            ("unrelated", DIAMOND, "lone", &[]),
            ("unknown names ignored", UNKNOWN, "b", &["a"]),
            ("unknown program", CHAIN, "nope", &[]),
        ];
        for (what, edges, name, want) in cases {
            assert_eq!(dependents(&graph(edges), name), strings(want), "{what}");
        }
    }

    #[test]
    fn start_order_puts_dependencies_first_and_ties_by_name() {
        let cases: &[(&str, Edges, &[&str])] = &[
            ("empty", &[], &[]),
            ("chain", CHAIN, &["db", "api", "web"]),
            (
                "diamond",
                DIAMOND,
                &["base", "left", "lone", "right", "app"],
            ),
            ("unknown names ignored", UNKNOWN, &["b", "a"]),
            // Still every program, once, on a graph the validator rejects.
            (
                "cycle",
                &[("a", &["b"]), ("b", &["a"]), ("c", &[])],
                &["c", "a", "b"],
            ),
        ];
        for (what, edges, want) in cases {
            assert_eq!(start_order(&graph(edges)), strings(want), "{what}");
        }
    }

    #[test]
    fn a_long_chain_needs_no_deep_stack() -> Result<(), String> {
        // 2000 programs, each depending on the one before, walked on a
        // 64 KiB stack: a recursive walk would need far more.
        let names: Vec<String> = (0..2_000).map(|i| format!("p{i:04}")).collect();
        let programs: Programs = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut p = ProgramConfig::with_defaults(name, "true", Path::new("/tmp"));
                if i > 0 {
                    p.depends_on
                        .insert(names[i - 1].clone(), DependCondition::Ready);
                }
                (name.clone(), Arc::new(p))
            })
            .collect();
        let walk = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                (
                    find_cycle(&programs),
                    start_order(&programs),
                    dependencies(&programs, "p1999").len(),
                    dependents(&programs, "p0000").first().cloned(),
                )
            })
            .map_err(|e| e.to_string())?;
        let (cycle, order, deps, farthest) = walk.join().map_err(|_| "the walk panicked")?;
        assert_eq!(cycle, None);
        assert_eq!(order, names);
        assert_eq!(deps, 1_999);
        assert_eq!(farthest.as_deref(), Some("p1999"));
        Ok(())
    }
}
