//! Dependency order at run time (`depends_on: {db: ready}`): the pure parts
//! the Registry and the ProgramActors share.
//!
//! A program's dependency on `NAME` is *met* when every instance of `NAME`
//! is in the condition: `started` and `ready` mean RUNNING (an instance only
//! becomes RUNNING once its `ready` probe passed, so both are the same
//! state here), `completed` means EXITED with a code in `exitcodes`. A
//! program with `numprocs: 0` meets every condition.
//!
//! How the facts travel, without polling:
//! - each ProcessActor calls its [`StateHook`](super::process::StateHook)
//!   after every batch of events; the hook updates the program's
//!   [`Tracker`] (counts per state, O(1)) and, when the program's
//!   [`Summary`] changed, writes it on the [`Board`] (shared by the
//!   Registry and every ProgramActor, like the status snapshots: one
//!   thread, `Rc<RefCell<..>>`) and tells the Registry
//!   (`registry::ProgramStateChanged`);
//! - the Registry tells the program's direct dependents
//!   (`program::DependenciesChanged`), which re-check their [`gate`].
//!
//! The hook runs synchronously in the instance's event loop, so the Board
//! is already up to date when the outcome of a start reaches anyone: the
//! Registry can start `api` as soon as `db`'s start answered, and `api`
//! reads `db` RUNNING, never a stale FATAL.
//!
//! A dependency that will not get there by itself (an instance FATAL, or
//! EXITED with an unexpected code) fails the gate; a program waiting on a
//! failed gate publishes the root cause ([`Summary::blocked_by`]), so its
//! own dependents say `waiting for db (FATAL)` too.
//!
//! [`start_plan`] and [`stop_plan`] order a client's `start`/`stop` (and
//! the shutdown): `start web` also starts what `web` depends on,
//! transitively, each after its own dependencies answered; `stop db` (and
//! `stop all`, the shutdown) stops what depends on `db` first.

use crate::config::{DependCondition, DependsOn, ProgramConfig};
use proto::ProcessState;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

/// Every program's [`Summary`], by name: written by the programs, read by
/// their dependents and the Registry.
pub type Board = Rc<RefCell<BTreeMap<String, Summary>>>;

/// What one program's instances are doing, as its dependents see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Instances (`numprocs`).
    pub total: u32,
    /// RUNNING.
    pub running: u32,
    /// EXITED with an expected code.
    pub completed: u32,
    /// FATAL, or EXITED with an unexpected code: stuck until someone acts.
    pub failed: u32,
    /// The state named in a dependent's `waiting for NAME (STATE)`: the
    /// least advanced state an instance is in.
    pub shown: ProcessState,
    /// The program waits for a dependency that failed: its name and state
    /// (the root cause, passed along to this program's own dependents).
    pub blocked_by: Option<(String, ProcessState)>,
}

impl Summary {
    /// `total` instances, all STOPPED (a program just created).
    pub fn stopped(total: u32) -> Self {
        Summary {
            total,
            running: 0,
            completed: 0,
            failed: 0,
            shown: ProcessState::Stopped,
            blocked_by: None,
        }
    }

    /// Every instance is in `condition` (true without instances).
    pub fn meets(&self, condition: DependCondition) -> bool {
        match condition {
            DependCondition::Started | DependCondition::Ready => self.running == self.total,
            DependCondition::Completed => self.completed == self.total,
        }
    }
}

/// Whether a program may be spawned, given its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Every dependency is met (or there is none).
    Open,
    /// `on` is not there yet (`waiting for db (STARTING)`).
    Waiting { on: String, state: ProcessState },
    /// `on` will not get there by itself (`waiting for db (FATAL)`).
    Failed { on: String, state: ProcessState },
}

impl Gate {
    /// `waiting for db (STARTING)`; `None` when open.
    pub fn describe(&self) -> Option<String> {
        match self {
            Gate::Open => None,
            Gate::Waiting { on, state } | Gate::Failed { on, state } => {
                Some(format!("waiting for {on} ({state})"))
            }
        }
    }
}

/// The gate of a program with `depends_on`, from the board. A failed
/// dependency wins over one that is merely not there yet (the program will
/// not start either way, and the failure is what to act on); otherwise the
/// first unmet dependency by name. A name missing from the board (not a
/// program: the config validator's error) is ignored.
pub fn gate(depends_on: &DependsOn, board: &BTreeMap<String, Summary>) -> Gate {
    let mut waiting = None;
    for (name, &condition) in depends_on {
        let Some(s) = board.get(name) else { continue };
        if s.meets(condition) {
            continue;
        }
        if let Some((on, state)) = &s.blocked_by {
            return Gate::Failed {
                on: on.clone(),
                state: *state,
            };
        }
        if s.failed > 0 {
            return Gate::Failed {
                on: name.clone(),
                state: s.shown,
            };
        }
        waiting.get_or_insert_with(|| Gate::Waiting {
            on: name.clone(),
            state: s.shown,
        });
    }
    waiting.unwrap_or(Gate::Open)
}

/// The order in which [`Summary::shown`] picks a state: the first present.
const SHOWN_ORDER: [ProcessState; 7] = [
    ProcessState::Fatal,
    ProcessState::Backoff,
    ProcessState::Stopping,
    ProcessState::Starting,
    ProcessState::Stopped,
    ProcessState::Exited,
    ProcessState::Running,
];

fn slot_of(state: ProcessState) -> usize {
    SHOWN_ORDER.iter().position(|s| *s == state).unwrap_or(0)
}

/// What one instance last reported.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Which actor holds the index now: an instance scaled away may still
    /// report while a new one has its index.
    id: u64,
    state: ProcessState,
    exitcode: Option<i32>,
}

/// One program's instance states, counted as they are reported: an update
/// is O(1), whatever `numprocs`.
#[derive(Debug, Default)]
pub struct Tracker {
    entries: Vec<Entry>,
    counts: [u32; 7],
    completed: u32,
    failed: u32,
    exitcodes: Vec<i32>,
    next_id: u64,
}

impl Tracker {
    /// `total` STOPPED instances, exits judged by `exitcodes`.
    pub fn new(total: u32, exitcodes: &[i32]) -> Self {
        let mut t = Tracker {
            exitcodes: exitcodes.to_vec(),
            ..Tracker::default()
        };
        t.resize(total);
        t
    }

    /// Gives index `index` to a new actor; its reports carry the id
    /// returned, older holders of the index are ignored from now on.
    pub fn claim(&mut self, index: u32) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        if let Some(e) = self.entries.get(index as usize).copied() {
            self.count(e, -1);
            let fresh = Entry {
                id,
                state: ProcessState::Stopped,
                exitcode: None,
            };
            self.entries[index as usize] = fresh;
            self.count(fresh, 1);
        }
        id
    }

    /// Grows (new STOPPED instances) or shrinks (the highest go) to `total`.
    pub fn resize(&mut self, total: u32) {
        let total = total as usize;
        while self.entries.len() > total {
            if let Some(e) = self.entries.pop() {
                self.count(e, -1);
            }
        }
        while self.entries.len() < total {
            let e = Entry {
                id: 0,
                state: ProcessState::Stopped,
                exitcode: None,
            };
            self.entries.push(e);
            self.count(e, 1);
        }
    }

    /// A reload changed `exitcodes`: the exits are judged again.
    pub fn set_exitcodes(&mut self, exitcodes: &[i32]) {
        if self.exitcodes == exitcodes {
            return;
        }
        let entries = std::mem::take(&mut self.entries);
        for &e in &entries {
            self.count(e, -1);
        }
        self.exitcodes = exitcodes.to_vec();
        for &e in &entries {
            self.count(e, 1);
        }
        self.entries = entries;
    }

    /// Instance `index` (held by `id`) is now in `state`; false when that
    /// changed nothing (or `id` no longer holds the index).
    pub fn report(
        &mut self,
        id: u64,
        index: u32,
        state: ProcessState,
        exitcode: Option<i32>,
    ) -> bool {
        let Some(old) = self.entries.get(index as usize).copied() else {
            return false;
        };
        if old.id != id || (old.state == state && old.exitcode == exitcode) {
            return false;
        }
        self.count(old, -1);
        let new = Entry {
            id,
            state,
            exitcode,
        };
        self.entries[index as usize] = new;
        self.count(new, 1);
        true
    }

    fn count(&mut self, e: Entry, delta: i32) {
        let apply = |n: &mut u32| *n = n.saturating_add_signed(delta);
        apply(&mut self.counts[slot_of(e.state)]);
        match e.state {
            ProcessState::Fatal => apply(&mut self.failed),
            ProcessState::Exited => {
                if e.exitcode.is_some_and(|c| self.exitcodes.contains(&c)) {
                    apply(&mut self.completed);
                } else {
                    apply(&mut self.failed);
                }
            }
            _ => {}
        }
    }

    /// The summary, without `blocked_by` (the program's gate adds it).
    pub fn summary(&self) -> Summary {
        let shown = SHOWN_ORDER
            .iter()
            .zip(self.counts)
            .find(|(_, n)| *n > 0)
            .map_or(ProcessState::Stopped, |(s, _)| *s);
        Summary {
            total: self.entries.len() as u32,
            running: self.counts[slot_of(ProcessState::Running)],
            completed: self.completed,
            failed: self.failed,
            shown,
            blocked_by: None,
        }
    }
}

/// One program's part in an ordered start or stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    /// The programs of the plan this step waits for: its dependencies
    /// (start) or its dependents (stop).
    pub after: Vec<String>,
    /// Named by the client; `false`: pulled in by the dependencies.
    pub asked: bool,
}

/// `start` of `asked`: those and everything they depend on, transitively,
/// in start order, each step after its direct dependencies.
pub fn start_plan(
    programs: &BTreeMap<String, Arc<ProgramConfig>>,
    asked: &BTreeSet<String>,
) -> Vec<Step> {
    let set = closure(asked, |name| {
        programs
            .get(name)
            .map(|p| p.depends_on.keys().cloned().collect())
            .unwrap_or_default()
    });
    crate::config::graph::start_order(programs)
        .into_iter()
        .filter(|name| set.contains(name))
        .map(|name| Step {
            after: programs[&name]
                .depends_on
                .keys()
                .filter(|d| set.contains(*d) && **d != name)
                .cloned()
                .collect(),
            asked: asked.contains(&name),
            name,
        })
        .collect()
}

/// `stop` of `asked`: those and everything that depends on them,
/// transitively, in stop order (dependents first), each step after its
/// direct dependents.
pub fn stop_plan(
    programs: &BTreeMap<String, Arc<ProgramConfig>>,
    asked: &BTreeSet<String>,
) -> Vec<Step> {
    let reverse = direct_dependents(programs);
    let set = closure(asked, |name| reverse.get(name).cloned().unwrap_or_default());
    let mut order = crate::config::graph::start_order(programs);
    order.reverse();
    order
        .into_iter()
        .filter(|name| set.contains(name))
        .map(|name| Step {
            after: reverse
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|d| set.contains(*d))
                .cloned()
                .collect(),
            asked: asked.contains(&name),
            name,
        })
        .collect()
}

/// `from` and everything reachable from it through `next`, each name
/// visited once: O(programs + edges) for `start all` too (one
/// `graph::dependencies` per name would be quadratic).
fn closure(from: &BTreeSet<String>, next: impl Fn(&str) -> Vec<String>) -> BTreeSet<String> {
    let mut set = from.clone();
    let mut todo: Vec<String> = from.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        for n in next(&name) {
            if set.insert(n.clone()) {
                todo.push(n);
            }
        }
    }
    set
}

/// For each program, the programs whose `depends_on` names it (directly).
pub fn direct_dependents(
    programs: &BTreeMap<String, Arc<ProgramConfig>>,
) -> BTreeMap<String, Vec<String>> {
    let mut reverse: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, p) in programs {
        for dep in p.depends_on.keys() {
            if dep != name && programs.contains_key(dep) {
                reverse.entry(dep.clone()).or_default().push(name.clone());
            }
        }
    }
    reverse
}

/// Whether any program has a `depends_on` (without any, plans are skipped).
pub fn any(programs: &BTreeMap<String, Arc<ProgramConfig>>) -> bool {
    programs.values().any(|p| !p.depends_on.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DependCondition::{Completed, Ready, Started};
    use ProcessState::{Exited, Fatal, Running, Starting, Stopped};
    use std::path::Path;

    fn programs(
        edges: &[(&str, &[(&str, DependCondition)])],
    ) -> BTreeMap<String, Arc<ProgramConfig>> {
        edges
            .iter()
            .map(|(name, deps)| {
                let mut p = ProgramConfig::with_defaults(name, "true", Path::new("/tmp"));
                p.depends_on = deps.iter().map(|(d, c)| (d.to_string(), *c)).collect();
                (name.to_string(), Arc::new(p))
            })
            .collect()
    }

    /// db ← api ← web, and a lone `cache`.
    fn chain() -> BTreeMap<String, Arc<ProgramConfig>> {
        programs(&[
            ("web", &[("api", Started)]),
            ("api", &[("db", Ready)]),
            ("db", &[]),
            ("cache", &[]),
        ])
    }

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn step(name: &str, after: &[&str], asked: bool) -> Step {
        Step {
            name: name.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            asked,
        }
    }

    fn summary(total: u32, reports: &[(ProcessState, Option<i32>)]) -> Summary {
        let mut t = Tracker::new(total, &[0]);
        for (i, (state, code)) in reports.iter().enumerate() {
            let id = t.claim(i as u32);
            t.report(id, i as u32, *state, *code);
        }
        t.summary()
    }

    fn board(entries: &[(&str, Summary)]) -> BTreeMap<String, Summary> {
        entries
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    fn depends(entries: &[(&str, DependCondition)]) -> DependsOn {
        entries.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn started_and_ready_are_met_when_every_instance_runs() {
        let two_up = summary(2, &[(Running, None), (Running, None)]);
        let one_up = summary(2, &[(Running, None), (Starting, None)]);
        for condition in [Started, Ready] {
            assert!(two_up.meets(condition));
            assert!(!one_up.meets(condition));
        }
        assert!(!two_up.meets(Completed));
    }

    #[test]
    fn completed_is_met_by_expected_exits_only() {
        assert!(summary(1, &[(Exited, Some(0))]).meets(Completed));
        let failed = summary(1, &[(Exited, Some(3))]);
        assert!(!failed.meets(Completed));
        assert_eq!(
            failed.failed, 1,
            "an unexpected exit will not complete by itself"
        );
    }

    #[test]
    fn a_program_without_instances_meets_every_condition() {
        let none = Summary::stopped(0);
        for condition in [Started, Ready, Completed] {
            assert!(none.meets(condition));
        }
    }

    #[test]
    fn the_gate_waits_naming_the_dependency_and_its_least_advanced_state() {
        let b = board(&[("db", summary(2, &[(Running, None), (Starting, None)]))]);
        let gate = gate(&depends(&[("db", Ready)]), &b);
        assert_eq!(
            gate,
            Gate::Waiting {
                on: "db".into(),
                state: Starting
            }
        );
        assert_eq!(
            gate.describe().as_deref(),
            Some("waiting for db (STARTING)")
        );
    }

    #[test]
    fn the_gate_opens_when_every_dependency_is_met_and_ignores_unknown_names() {
        let b = board(&[
            ("db", summary(1, &[(Running, None)])),
            ("migrate", summary(1, &[(Exited, Some(0))])),
        ]);
        let d = depends(&[("db", Started), ("migrate", Completed), ("ghost", Started)]);
        assert_eq!(gate(&d, &b), Gate::Open);
        assert_eq!(gate(&DependsOn::new(), &b), Gate::Open);
    }

    #[test]
    fn a_fatal_dependency_fails_the_gate_even_when_another_is_only_waiting() {
        let b = board(&[
            ("cache", summary(1, &[(Starting, None)])),
            ("db", summary(1, &[(Fatal, None)])),
        ]);
        let gate = gate(&depends(&[("cache", Started), ("db", Started)]), &b);
        assert_eq!(gate.describe().as_deref(), Some("waiting for db (FATAL)"));
        assert!(matches!(gate, Gate::Failed { .. }));
    }

    #[test]
    fn a_dependency_blocked_by_a_failure_passes_the_root_cause_on() {
        let mut api = Summary::stopped(1);
        api.blocked_by = Some(("db".into(), Fatal));
        let b = board(&[("api", api)]);
        assert_eq!(
            gate(&depends(&[("api", Started)]), &b),
            Gate::Failed {
                on: "db".into(),
                state: Fatal
            }
        );
    }

    #[test]
    fn the_tracker_ignores_an_instance_that_no_longer_holds_its_index() {
        let mut t = Tracker::new(1, &[0]);
        let old = t.claim(0);
        assert!(t.report(old, 0, Running, None));
        // Scaled away and back: a new actor holds index 0.
        let new = t.claim(0);
        assert_eq!(t.summary().running, 0);
        assert!(
            !t.report(old, 0, Stopped, None),
            "the old holder is ignored"
        );
        assert!(t.report(new, 0, Starting, None));
        assert!(!t.report(new, 0, Starting, None), "no change, no report");
        assert_eq!(t.summary().shown, Starting);
        assert!(!t.report(new, 5, Running, None), "an index scaled away");
    }

    #[test]
    fn the_tracker_counts_follow_scaling_and_exitcodes() {
        let mut t = Tracker::new(3, &[0]);
        for i in 0..3 {
            let id = t.claim(i);
            t.report(id, i, Exited, Some(2));
        }
        assert_eq!((t.summary().completed, t.summary().failed), (0, 3));
        t.set_exitcodes(&[0, 2]);
        assert_eq!((t.summary().completed, t.summary().failed), (3, 0));
        t.resize(1);
        assert_eq!((t.summary().total, t.summary().completed), (1, 1));
        t.resize(2);
        let s = t.summary();
        assert_eq!((s.total, s.completed, s.shown), (2, 1, Stopped));
    }

    #[test]
    fn start_of_a_program_pulls_in_its_dependencies_first_transitively() {
        let plan = start_plan(&chain(), &names(&["web"]));
        assert_eq!(
            plan,
            vec![
                step("db", &[], false),
                step("api", &["db"], false),
                step("web", &["api"], true),
            ]
        );
    }

    #[test]
    fn stop_of_a_program_stops_its_dependents_first_transitively() {
        let plan = stop_plan(&chain(), &names(&["db"]));
        assert_eq!(
            plan,
            vec![
                step("web", &[], false),
                step("api", &["web"], false),
                step("db", &["api"], true),
            ]
        );
    }

    #[test]
    fn stop_all_runs_in_the_reverse_of_the_start_order() {
        let all = names(&["web", "api", "db", "cache"]);
        let start: Vec<String> = start_plan(&chain(), &all)
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut stop: Vec<String> = stop_plan(&chain(), &all)
            .into_iter()
            .map(|s| s.name)
            .collect();
        stop.reverse();
        assert_eq!(start, stop);
        let db = start.iter().position(|n| n == "db");
        let web = start.iter().position(|n| n == "web");
        assert!(db < web, "{start:?}");
    }

    #[test]
    fn direct_dependents_are_the_programs_naming_one() {
        let reverse = direct_dependents(&chain());
        assert_eq!(reverse.get("db"), Some(&vec!["api".to_string()]));
        assert_eq!(reverse.get("api"), Some(&vec!["web".to_string()]));
        assert_eq!(reverse.get("web"), None);
    }
}
