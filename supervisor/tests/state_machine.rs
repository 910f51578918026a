//! Property test of the pure process state machine
//! (`supervisor::actors::process::state`): random histories of requests,
//! process deaths, timers and policy updates never break its promises.
//!
//! A [`World`] plays both the ProcessActor and the OS around one
//! [`Machine`], as faithfully as the actor does it: effects are carried out
//! in order, events they raise (`Spawned`, `SpawnFailed`, an at-once
//! `GroupGone`) are queued and applied after them, a leader dies only while
//! it lives, its exit is reported once it is reaped, its process group can
//! hold other members, SIGKILL empties the group, and only the armed timer
//! fires (cancelled ones never do). The world also keeps its own count of
//! failed starts and of waiting requests, to check the machine against.
//!
//! Checked after every event and at the end of every history:
//! - `Spawn` only when no process of the instance exists (no leader, living
//!   or unreaped, and no other member of any of its groups): never two
//!   children at once;
//! - every signal, kill or watch names the instance's own process group;
//! - in STOPPED, EXITED, FATAL and BACKOFF no process of the instance lives,
//!   and the machine's pid is the world's leader;
//! - STOPPED, EXITED and FATAL are left only by a start request, and
//!   STOPPING turns into STARTING only when a start arrived after the last
//!   stop (nothing restarts by itself);
//! - a failed start is BACKOFF while failures ≤ `startretries` and FATAL
//!   once they exceed it; FATAL is entered no other way than by that or
//!   the restart rate limit;
//! - stale timers and exits of other pids change nothing;
//! - waiting requests are only pending in STARTING/STOPPING, and once the
//!   world settles (every spawn failing, every process dying) the machine
//!   is quiescent, every request has been answered, and a history that
//!   spawned while settling ends FATAL.

use proptest::collection::vec;
use proptest::prelude::*;
use proto::{ProcessState, Signal};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use supervisor::actors::process::state::{Effect, Event, Machine, Policy, Resolve};
use supervisor::config::AutoRestart;
use supervisor::sys::exit::ExitStatus;

/// One thing that happens to the instance, from outside the machine.
#[derive(Debug, Clone)]
enum Action {
    /// `start` (a waiter, then `Event::Start`).
    Start,
    /// `stop` (a waiter, then `Event::Stop`).
    Stop,
    /// `restart`, as the actor does it: `Stop`, a start waiter, `Start`.
    Restart,
    /// `signal`: sent to the group when the machine has one and is alive;
    /// `kills` says whether the program dies of it (every member does).
    Signal { kills: bool },
    /// The live leader exits and is reaped at once.
    Exit(ExitStatus),
    /// The live leader exits; the Reaper has not reported it yet.
    Die(ExitStatus),
    /// The Reaper reports the dead leader.
    Reap,
    /// The live leader forks a child that stays in its process group.
    Fork,
    /// Every non-leader member of every group exits.
    RemnantsExit,
    /// The group watch polls: `GroupGone` if the watched group is empty.
    Poll,
    /// The armed timer fires.
    FireTimer,
    /// A timer fires whose generation is not the armed one.
    StaleTimer(u64),
    /// An exit report for a pid that is not the leader.
    StrayExit(u32, ExitStatus),
    /// A reload changed policy fields only.
    UpdatePolicy(Box<Policy>),
}

/// The leader: its pid, and how it ended if it is dead but not reaped.
#[derive(Debug, Clone, Copy)]
struct Leader {
    pid: u32,
    dead: Option<ExitStatus>,
}

/// The actor and the OS around one machine, and the test's own bookkeeping.
struct World {
    m: Machine,
    policy: Policy,
    now: Instant,
    next_pid: u32,
    leader: Option<Leader>,
    /// Process groups created, with how many members besides the leader live.
    groups: BTreeMap<u32, u32>,
    /// The armed timer's generation.
    timer: Option<u64>,
    /// The group a stop is waiting to see empty.
    watching: Option<u32>,
    /// Whether each spawn succeeds, in turn (cycled); settling fails all.
    spawn_ok: Vec<bool>,
    spawns: usize,
    settling: bool,
    /// The test's count of failed starts since the last user start or RUNNING.
    failures: u32,
    /// Requests not yet answered.
    start_waiters: u32,
    stop_waiters: u32,
    /// A start arrived while STOPPING, after the last stop.
    start_after_stop: bool,
    /// Spawns while settling (no request can have caused them).
    settle_spawns: u32,
}

type Check = Result<(), TestCaseError>;

impl World {
    fn new(policy: Policy, spawn_ok: Vec<bool>) -> Self {
        World {
            m: Machine::new(),
            policy,
            now: Instant::now(),
            next_pid: 100,
            leader: None,
            groups: BTreeMap::new(),
            timer: None,
            watching: None,
            spawn_ok,
            spawns: 0,
            settling: false,
            failures: 0,
            start_waiters: 0,
            stop_waiters: 0,
            start_after_stop: false,
            settle_spawns: 0,
        }
    }

    fn live_leader(&self) -> Option<u32> {
        self.leader.filter(|l| l.dead.is_none()).map(|l| l.pid)
    }

    /// No process of the instance exists at all.
    fn empty(&self) -> bool {
        self.leader.is_none() && self.groups.values().all(|&n| n == 0)
    }

    /// No member of group `pgid` is left (a dead, unreaped leader counts).
    fn group_empty(&self, pgid: u32) -> bool {
        self.groups.get(&pgid).copied().unwrap_or(0) == 0
            && self.leader.is_none_or(|l| l.pid != pgid)
    }

    /// The group of the last spawned child: the only one effects may name.
    fn own_group(&self, pgid: u32) -> Check {
        let last = self.groups.keys().next_back().copied();
        prop_assert_eq!(
            Some(pgid),
            last,
            "effect names a group not the instance's own"
        );
        Ok(())
    }

    fn act(&mut self, action: Action) -> Check {
        let before = self.m.state();
        let spawns = self.spawns;
        let requested = matches!(action, Action::Start | Action::Restart);
        match action {
            Action::Start => {
                self.start_waiters += 1;
                self.apply(Event::Start)?;
            }
            Action::Stop => {
                self.stop_waiters += 1;
                self.apply(Event::Stop)?;
            }
            Action::Restart => {
                self.apply(Event::Stop)?;
                self.start_waiters += 1;
                self.apply(Event::Start)?;
            }
            Action::Signal { kills } => {
                if let Some(pgid) = self.m.pgid()
                    && self.m.state().is_alive()
                {
                    self.own_group(pgid)?;
                    if kills {
                        self.kill_group(pgid, 15);
                    }
                }
            }
            Action::Exit(status) => {
                if let Some(pid) = self.live_leader() {
                    self.leader = None;
                    self.apply(Event::Exited { pid, status })?;
                }
            }
            Action::Die(status) => {
                if let Some(l) = self.leader.as_mut()
                    && l.dead.is_none()
                {
                    l.dead = Some(status);
                }
            }
            Action::Reap => {
                if let Some(Leader {
                    pid,
                    dead: Some(status),
                }) = self.leader
                {
                    self.leader = None;
                    self.apply(Event::Exited { pid, status })?;
                }
            }
            Action::Fork => {
                if let Some(pid) = self.live_leader() {
                    *self.groups.entry(pid).or_default() += 1;
                }
            }
            Action::RemnantsExit => self.groups.values_mut().for_each(|n| *n = 0),
            Action::Poll => {
                if let Some(pgid) = self.watching
                    && self.group_empty(pgid)
                {
                    self.watching = None;
                    self.apply(Event::GroupGone { pgid })?;
                }
            }
            Action::FireTimer => {
                if let Some(generation) = self.timer.take() {
                    self.apply(Event::TimerFired { generation })?;
                }
            }
            Action::StaleTimer(generation) => {
                if self.timer != Some(generation) {
                    self.ignored(Event::TimerFired { generation })?;
                }
            }
            Action::StrayExit(pid, status) => {
                if self.leader.is_none_or(|l| l.pid != pid) {
                    self.ignored(Event::Exited { pid, status })?;
                }
            }
            Action::UpdatePolicy(policy) => self.policy = *policy,
        }
        let after = self.m.state();
        if matches!(
            before,
            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
        ) && !requested
        {
            prop_assert_eq!(after, before, "left {} without a request", before);
            prop_assert_eq!(self.spawns, spawns, "spawned from {} unasked", before);
        }
        // The queue is drained: the machine's pid is the world's leader.
        prop_assert_eq!(
            self.m.pid(),
            self.leader.map(|l| l.pid),
            "the machine's pid is not the leader"
        );
        Ok(())
    }

    /// Feeds `ev` as the actor does: effects in order, raised events after.
    fn apply(&mut self, ev: Event) -> Check {
        let mut queue = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            let before = self.m.state();
            let pid_before = self.m.pid();
            let start_after_stop = self.start_after_stop;
            match ev {
                Event::Start if before == ProcessState::Stopping => self.start_after_stop = true,
                Event::Stop => self.start_after_stop = false,
                _ => {}
            }
            let failed_start = before == ProcessState::Starting
                && match &ev {
                    Event::SpawnFailed { .. } => pid_before.is_none(),
                    Event::Exited { pid, .. } => pid_before == Some(*pid),
                    _ => false,
                };
            let automatic = matches!(ev, Event::TimerFired { .. } | Event::Exited { .. });
            let from_running_exit =
                before == ProcessState::Running && matches!(ev, Event::Exited { .. });
            let label = format!("{before} + {ev:?}");
            let fx = self.m.on_event(ev, &self.policy, self.now);
            let after = self.m.state();
            let spawned = fx.contains(&Effect::Spawn);
            if spawned && !automatic {
                self.failures = 0;
            }
            for effect in fx {
                self.execute(effect, &mut queue)?;
            }

            if after == ProcessState::Running && before != ProcessState::Running {
                self.failures = 0;
            }
            if failed_start {
                self.failures += 1;
                let want = if self.failures > self.policy.startretries {
                    ProcessState::Fatal
                } else {
                    ProcessState::Backoff
                };
                prop_assert_eq!(
                    after,
                    want,
                    "{}: failure {} with startretries {}",
                    label,
                    self.failures,
                    self.policy.startretries
                );
            } else if after == ProcessState::Fatal && before != ProcessState::Fatal {
                prop_assert!(from_running_exit, "{label}: FATAL without failed starts");
            }
            if before == ProcessState::Stopping && after == ProcessState::Starting {
                prop_assert!(start_after_stop, "{label}: restarted without a start");
            }
            if after == ProcessState::Backoff && before != ProcessState::Backoff {
                prop_assert!(failed_start, "{label}: BACKOFF without a failed start");
            }
            if !after.is_alive() || after == ProcessState::Backoff {
                prop_assert!(self.empty(), "{label}: {after} while a process lives");
                prop_assert_eq!(self.m.pid(), None, "{}: pid kept in {}", label, after);
                prop_assert_eq!(self.m.pgid(), None, "{}: group kept in {}", label, after);
            }
            if self.start_waiters > 0 {
                prop_assert!(
                    matches!(after, ProcessState::Starting | ProcessState::Stopping),
                    "{label}: a start request waits in {after}"
                );
            }
            if self.stop_waiters > 0 {
                prop_assert_eq!(after, ProcessState::Stopping, "{}: a stop waits", label);
            }
        }
        Ok(())
    }

    /// An event the machine must ignore entirely.
    fn ignored(&mut self, ev: Event) -> Check {
        let before = self.m.state();
        let label = format!("{before} + {ev:?}");
        let fx = self.m.on_event(ev, &self.policy, self.now);
        prop_assert!(fx.is_empty(), "{label} had effects: {fx:?}");
        prop_assert_eq!(self.m.state(), before, "{}", label);
        Ok(())
    }

    fn execute(&mut self, effect: Effect, queue: &mut VecDeque<Event>) -> Check {
        match effect {
            Effect::Spawn => {
                prop_assert!(self.empty(), "Spawn while a process of the instance exists");
                prop_assert_eq!(self.m.pid(), None, "Spawn with a leader");
                let ok = !self.settling
                    && self
                        .spawn_ok
                        .get(self.spawns % self.spawn_ok.len().max(1))
                        .copied()
                        .unwrap_or(true);
                self.spawns += 1;
                if self.settling {
                    self.settle_spawns += 1;
                }
                if ok {
                    let pid = self.next_pid;
                    self.next_pid += 1;
                    self.leader = Some(Leader { pid, dead: None });
                    self.groups.insert(pid, 0);
                    queue.push_back(Event::Spawned { pid });
                } else {
                    queue.push_back(Event::SpawnFailed {
                        error: "/bin/x: Permission denied (os error 13)".into(),
                    });
                }
            }
            Effect::SignalGroup { pgid, .. } => self.own_group(pgid)?,
            Effect::KillGroup { pgid } => {
                self.own_group(pgid)?;
                self.kill_group(pgid, 9);
            }
            Effect::KillRemnants { pgid } => {
                self.own_group(pgid)?;
                prop_assert!(
                    self.leader.is_none_or(|l| l.pid != pgid),
                    "KillRemnants before the leader was reaped"
                );
                self.groups.insert(pgid, 0);
            }
            Effect::SetTimer { generation, .. } => self.timer = Some(generation),
            Effect::CancelTimer => {
                prop_assert!(self.timer.take().is_some(), "CancelTimer with none armed");
            }
            Effect::WatchGroup { pgid } => {
                self.own_group(pgid)?;
                prop_assert!(self.leader.is_none(), "WatchGroup before the leader's exit");
                if self.group_empty(pgid) {
                    queue.push_back(Event::GroupGone { pgid });
                } else {
                    self.watching = Some(pgid);
                }
            }
            // Readiness is not randomized here (the unit tests cover it).
            Effect::RunBeforeStart => queue.push_back(Event::BeforeStartDone { result: Ok(()) }),
            Effect::CancelBeforeStart
            | Effect::StartReadyProbe
            | Effect::StartHealth
            | Effect::StopProbes => {}
            Effect::Log(..) => {}
            Effect::Resolve(Resolve::Started(_) | Resolve::StartFailed(_)) => {
                self.start_waiters = 0;
            }
            Effect::Resolve(Resolve::Stopped(_)) => self.stop_waiters = 0,
        }
        Ok(())
    }

    /// A signal every member of `pgid` dies of.
    fn kill_group(&mut self, pgid: u32, signal: i32) {
        if let Some(l) = self.leader.as_mut()
            && l.pid == pgid
            && l.dead.is_none()
        {
            l.dead = Some(ExitStatus::Signaled {
                signal,
                core_dumped: false,
            });
        }
        self.groups.insert(pgid, 0);
    }

    /// Lets the world run down with no requests: every spawn fails, every
    /// process dies, every timer fires. Then the machine must be at rest.
    fn settle(&mut self) -> Check {
        self.settling = true;
        for _ in 0..1000 {
            let action = if self.live_leader().is_some() {
                Action::Exit(ExitStatus::Code(1))
            } else if self.leader.is_some() {
                Action::Reap
            } else if !self.empty() {
                Action::RemnantsExit
            } else if self.watching.is_some() {
                Action::Poll
            } else if self.timer.is_some() {
                Action::FireTimer
            } else {
                break;
            };
            self.now += Duration::from_secs(1);
            self.act(action)?;
        }
        let state = self.m.state();
        prop_assert!(
            matches!(
                state,
                ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
            ),
            "settled in {}",
            state
        );
        prop_assert!(self.empty() && self.timer.is_none() && self.watching.is_none());
        prop_assert_eq!(
            (self.start_waiters, self.stop_waiters),
            (0, 0),
            "unanswered"
        );
        if self.settle_spawns > 0 {
            prop_assert_eq!(
                state,
                ProcessState::Fatal,
                "failing spawns did not end FATAL"
            );
            prop_assert!(self.failures > self.policy.startretries);
        }
        Ok(())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn exit_status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        4 => (0..4i32).prop_map(ExitStatus::Code),
        1 => any::<i32>().prop_map(ExitStatus::Code),
        2 => (1..32i32, any::<bool>())
            .prop_map(|(signal, core_dumped)| ExitStatus::Signaled { signal, core_dumped }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![
            Just(AutoRestart::Always),
            Just(AutoRestart::Never),
            Just(AutoRestart::Unexpected)
        ],
        vec(0..4i32, 0..3),
        prop_oneof![Just(0u64), 1..3000u64],
        0..5u32,
        proptest::sample::select(Signal::ALL.to_vec()),
        0..20_000u64,
        0..5u32,
        0..20_000u64,
    )
        .prop_map(
            |(autorestart, exitcodes, start, startretries, stopsignal, stop, maxrestarts, win)| {
                Policy {
                    autorestart,
                    exitcodes,
                    starttime: ms(start),
                    startretries,
                    stopsignal,
                    stoptime: ms(stop),
                    maxrestarts,
                    restartwindow: ms(win),
                    ready: None,
                    starttime_explicit: false,
                    health: None,
                    watchdog: None,
                    before_start: false,
                }
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::Start),
        2 => Just(Action::Stop),
        1 => Just(Action::Restart),
        1 => any::<bool>().prop_map(|kills| Action::Signal { kills }),
        4 => exit_status().prop_map(Action::Exit),
        1 => exit_status().prop_map(Action::Die),
        2 => Just(Action::Reap),
        1 => Just(Action::Fork),
        2 => Just(Action::RemnantsExit),
        2 => Just(Action::Poll),
        5 => Just(Action::FireTimer),
        1 => (0..40u64).prop_map(Action::StaleTimer),
        1 => (0..120u32, exit_status()).prop_map(|(pid, s)| Action::StrayExit(pid, s)),
        1 => policy().prop_map(|p| Action::UpdatePolicy(Box::new(p))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_histories_never_double_spawn_restart_unasked_or_miss_fatal(
        policy in policy(),
        spawn_ok in vec(prop::bool::weighted(0.8), 1..8),
        steps in vec((0..4000u64, action()), 0..64),
    ) {
        let mut world = World::new(policy, spawn_ok);
        for (wait, action) in steps {
            world.now += ms(wait);
            world.act(action)?;
        }
        world.settle()?;
    }
}
