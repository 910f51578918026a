//! ProgramActor: one per program (`programs.NAME`), owner of its instances.
//!
//! It creates `numprocs` [`ProcessActor`]s (`NAME:0` …), starts them when
//! `autostart` is set, and fans control requests out to the instances a
//! target selects, gathering their answers in index order. On reload it is
//! the one that scales in place (new indexes started, highest indexes
//! retired), applies policy-only changes to live instances, and restarts its
//! instances one by one when a spawn-affecting key changed.
//!
//! `status` and `pids` read the snapshot each instance keeps up to date
//! ([`SharedInfo`]) instead of messaging every instance: 10,000 futures per
//! request dominated the daemon's time.
//!
//! Dependency order (`depends_on`, see `actors/deps.rs`): each instance's
//! [`StateHook`] keeps the program's [`deps::Summary`] on the shared [`Board`] and
//! tells the Registry when it changed ([`ProgramStateChanged`]). A start
//! (autostart, a client's, a reload's) is carried out only once the
//! program's [`Gate`] is open; until then it waits here (`Pending`), and
//! `status` says why (`waiting for db (STARTING)`). The Registry tells the
//! program when one of its dependencies changed ([`DependenciesChanged`]).
//! A dependency that failed (FATAL, or EXITED with an unexpected code)
//! answers a waiting client at once (`waiting for db (FATAL)`), but the
//! start stays pending: it goes ahead if the dependency comes up later,
//! and a `stop` cancels it.
//!
//! Handles: [`Start`], [`Stop`], [`Restart`], [`SignalInstances`],
//! [`Status`], [`Pids`], [`TailInstance`], [`Apply`], [`Retire`],
//! [`KillAll`], [`ReopenOutput`], [`DependenciesChanged`] (from the
//! Registry). Sends: the process messages; [`ProgramStateChanged`] to the
//! Registry. Stops: after [`Retire`], once every instance is stopped.

use crate::actors::deps::{self, Board, Gate, Tracker};
use crate::actors::notifier::{InstanceEvent, SecretEnv};
use crate::actors::process::helper::HookGate;
use crate::actors::process::pacer::StartPacer;
use crate::actors::process::{
    self, InstanceContext, OutputFollower, ProcessActor, SharedInfo, StateHook,
};
use crate::actors::reaper::ChildTable;
use crate::config::ProgramConfig;
use crate::reload::Change;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    MessageResult, Recipient, ResponseActFuture, ResponseFuture, WrapFuture,
};
use futures::future::join_all;
use proto::{
    ErrorKind, Outcome, OutputStream, PidEntry, ProcessInfo, ProcessState, Signal, TailReply,
};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// The actor.
#[derive(Debug)]
pub struct ProgramActor {
    config: Arc<ProgramConfig>,
    instances: Vec<Addr<ProcessActor>>,
    /// `instances[i]`'s snapshot, for `status` without messages.
    infos: Vec<SharedInfo>,
    /// Instances scaled away, still stopping; listed in `status` until gone.
    retiring: Vec<(u32, Addr<ProcessActor>, SharedInfo)>,
    /// Indexes scaled back up while their predecessor is still retiring:
    /// their autostart waits until it is gone, so two processes never share
    /// a name (nor its log file), and `status` shows each index once.
    deferred: BTreeSet<u32>,
    children: ChildTable,
    /// The Notifier, handed to every instance (used if the program has
    /// `notify` rules, now or after a reload).
    events: Option<Recipient<InstanceEvent>>,
    secret_env: SecretEnv,
    /// Autostarts go through the daemon's one pacer (see [`StartPacer`]).
    pacer: StartPacer,
    /// One `before_start` hook at a time across the instances.
    hooks: HookGate,
    /// Dependency bookkeeping, shared with the instances' state hooks.
    deps: Rc<RefCell<DepShared>>,
    /// Starts waiting for the dependencies, oldest first.
    pending: Vec<Pending>,
}

/// A start that waits for the program's dependencies.
#[derive(Debug)]
struct Pending {
    indexes: Option<Vec<u32>>,
    /// Which instances it leaves alone (see [`Start::for_dependents`]).
    for_dependents: Option<Keep>,
    /// An automatic start: through the pacer, nobody waits for it.
    paced: bool,
    /// The client waiting for the outcomes; taken when answered early (a
    /// failed dependency).
    reply: Option<oneshot::Sender<Vec<Outcome>>>,
}

/// Merges the pending starts nobody waits for (any more) into at most two
/// (one paced, one not), so that `start --no-wait` repeated while a
/// dependency is down, or clients that gave up, cannot grow the list: it
/// holds at most the starts clients still wait for, plus two.
fn compact(pending: &mut Vec<Pending>) {
    let mut merged: [Option<Pending>; 2] = [None, None];
    let mut kept = Vec::new();
    for mut p in pending.drain(..) {
        if p.reply.as_ref().is_some_and(|r| !r.is_closed()) {
            kept.push(p);
            continue;
        }
        p.reply = None;
        let slot = &mut merged[usize::from(p.paced)];
        *slot = Some(match slot.take() {
            None => p,
            Some(m) => Pending {
                indexes: match (m.indexes, p.indexes) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        a.sort_unstable();
                        a.dedup();
                        Some(a)
                    }
                    _ => None,
                },
                // The merged start leaves alone only what both would.
                for_dependents: match (m.for_dependents, p.for_dependents) {
                    (Some(Keep::UpOrCompleted), Some(Keep::UpOrCompleted)) => {
                        Some(Keep::UpOrCompleted)
                    }
                    (Some(_), Some(_)) => Some(Keep::Up),
                    _ => None,
                },
                paced: p.paced,
                reply: None,
            },
        });
    }
    kept.extend(merged.into_iter().flatten());
    *pending = kept;
}

/// The program's side of the dependency board: what its instance hooks
/// update, and what it publishes.
#[derive(Debug)]
struct DepShared {
    name: String,
    tracker: Tracker,
    /// Set while starts wait for a failed dependency: the root cause.
    blocked_by: Option<(String, ProcessState)>,
    board: Board,
    changed: Option<Recipient<ProgramStateChanged>>,
    /// Retired: its line on the board is no longer its own.
    retired: bool,
}

impl DepShared {
    /// Writes the summary on the board; when it changed, tells the Registry.
    fn publish(&self) {
        if self.retired {
            return;
        }
        let mut summary = self.tracker.summary();
        summary.blocked_by.clone_from(&self.blocked_by);
        {
            let mut board = self.board.borrow_mut();
            if board.get(&self.name) == Some(&summary) {
                return;
            }
            board.insert(self.name.clone(), summary);
        }
        if let Some(changed) = &self.changed {
            changed.do_send(ProgramStateChanged {
                name: self.name.clone(),
            });
        }
    }
}

impl ProgramActor {
    pub fn new(config: Arc<ProgramConfig>, children: ChildTable, pacer: StartPacer) -> Self {
        let deps = DepShared {
            name: config.name.clone(),
            tracker: Tracker::new(config.numprocs, &config.exitcodes),
            blocked_by: None,
            board: Board::default(),
            changed: None,
            retired: false,
        };
        ProgramActor {
            deps: Rc::new(RefCell::new(deps)),
            pending: Vec::new(),
            config,
            instances: Vec::new(),
            infos: Vec::new(),
            retiring: Vec::new(),
            deferred: BTreeSet::new(),
            children,
            events: None,
            secret_env: SecretEnv::default(),
            pacer,
            hooks: HookGate::new(),
        }
    }

    /// Instances report to `events` and spawn children without the
    /// variables of `secret_env`.
    pub fn with_notifier(
        mut self,
        events: Option<Recipient<InstanceEvent>>,
        secret_env: SecretEnv,
    ) -> Self {
        self.events = events;
        self.secret_env = secret_env;
        self
    }

    /// The program's summary goes on `board` (now, so that dependents
    /// created after it never miss it), and `changed` hears when it changes.
    pub fn with_deps(self, board: Board, changed: Option<Recipient<ProgramStateChanged>>) -> Self {
        {
            let mut deps = self.deps.borrow_mut();
            deps.board = board;
            deps.changed = changed;
            let summary = deps.tracker.summary();
            deps.board.borrow_mut().insert(deps.name.clone(), summary);
        }
        self
    }

    fn spawn_instance(&self, index: u32) -> (Addr<ProcessActor>, SharedInfo) {
        let id = self.deps.borrow_mut().tracker.claim(index);
        let deps = self.deps.clone();
        let hook = StateHook(Rc::new(move |index, state, exitcode| {
            let mut deps = deps.borrow_mut();
            if deps.tracker.report(id, index, state, exitcode) {
                deps.publish();
            }
        }));
        let actor = ProcessActor::new(InstanceContext {
            program: self.config.clone(),
            index,
            children: self.children.clone(),
            events: self.events.clone(),
            secret_env: self.secret_env.clone(),
            hooks: self.hooks.clone(),
        })
        .with_state_hook(hook);
        let info = actor.shared_info();
        (actor.start(), info)
    }

    /// The dependencies' verdict (open without `depends_on`).
    fn gate(&self) -> Gate {
        if self.config.depends_on.is_empty() {
            return Gate::Open;
        }
        let board = self.deps.borrow().board.clone();
        let board = board.borrow();
        deps::gate(&self.config.depends_on, &board)
    }

    /// Carries out the pending starts if the gate is open; answers their
    /// clients if a dependency failed. Publishes whether the program waits
    /// for a failed dependency (its dependents then wait for that too).
    fn check_gate(&mut self) {
        let gate = self.gate();
        match &gate {
            Gate::Open => {
                for pending in std::mem::take(&mut self.pending) {
                    self.release(pending);
                }
            }
            Gate::Failed { .. } => {
                let why = gate.describe().unwrap_or_default();
                for i in 0..self.pending.len() {
                    if let Some(reply) = self.pending[i].reply.take() {
                        let outcomes = self.not_started(&self.pending[i].indexes, false, &why);
                        let _ = reply.send(outcomes);
                    }
                }
            }
            Gate::Waiting { .. } => {}
        }
        let blocked = match gate {
            Gate::Failed { on, state } if !self.pending.is_empty() => Some((on, state)),
            _ => None,
        };
        let mut deps = self.deps.borrow_mut();
        if deps.blocked_by != blocked {
            deps.blocked_by = blocked;
            deps.publish();
        }
    }

    /// Starts what a pending start selected, now that the gate is open.
    fn release(&self, pending: Pending) {
        let targets = self.start_targets(&pending.indexes, pending.for_dependents);
        if pending.paced {
            for (_, instance) in targets {
                self.pacer.start(instance);
            }
            return;
        }
        match pending.reply {
            Some(reply) => {
                let outcomes = self.start_each(targets);
                actix::spawn(async move {
                    let _ = reply.send(outcomes.await);
                });
            }
            None => {
                for (_, instance) in targets {
                    instance.do_send(process::Start);
                }
            }
        }
    }

    /// The instances a start selects; one for dependents leaves those
    /// already up (or done, see [`Keep`]) alone.
    fn start_targets(
        &self,
        indexes: &Option<Vec<u32>>,
        for_dependents: Option<Keep>,
    ) -> Vec<(u32, Addr<ProcessActor>)> {
        let mut targets = self.select(indexes);
        if let Some(keep) = for_dependents {
            targets.retain(|(i, _)| {
                let Some(info) = self.infos.get(*i as usize) else {
                    return false;
                };
                let info = info.borrow().info(Instant::now());
                !keep.leaves(info.state, info.exitcode, &self.config.exitcodes)
            });
        }
        targets
    }

    /// `process::Start` to each target, the outcomes in order.
    fn start_each(
        &self,
        targets: Vec<(u32, Addr<ProcessActor>)>,
    ) -> impl Future<Output = Vec<Outcome>> + 'static {
        let lost: Vec<Outcome> = targets.iter().map(|(i, _)| self.lost(*i)).collect();
        async move {
            let answers = join_all(targets.iter().map(|(_, a)| a.send(process::Start))).await;
            answers
                .into_iter()
                .zip(lost)
                .map(|(answer, lost)| answer.unwrap_or(lost))
                .collect()
        }
    }

    /// One outcome per selected instance for a start that did not happen
    /// (yet): STOPPED, `why`.
    fn not_started(&self, indexes: &Option<Vec<u32>>, ok: bool, why: &str) -> Vec<Outcome> {
        self.select(indexes)
            .into_iter()
            .map(|(i, _)| Outcome {
                name: self.config.instance_name(i),
                ok,
                state: ProcessState::Stopped,
                message: why.to_string(),
                output_tail: Vec::new(),
            })
            .collect()
    }

    /// Cancels every pending start (a stop, a retire): waiting clients are
    /// told.
    fn cancel_pending(&mut self) {
        for pending in std::mem::take(&mut self.pending) {
            if let Some(reply) = pending.reply {
                let outcomes = self.not_started(
                    &pending.indexes,
                    false,
                    "stopped before its dependencies were up",
                );
                let _ = reply.send(outcomes);
            }
        }
        self.check_gate();
    }

    /// An automatic start of `indexes` (autostart, a scale-up): paced, and
    /// after the dependencies.
    fn autostart(&mut self, indexes: Option<Vec<u32>>) {
        if self.gate() == Gate::Open {
            for (_, instance) in self.select(&indexes) {
                self.pacer.start(instance);
            }
            return;
        }
        self.wait_for_dependencies(Pending {
            indexes,
            for_dependents: None,
            paced: true,
            reply: None,
        });
    }

    /// Holds a start until the gate opens (see [`compact`]).
    fn wait_for_dependencies(&mut self, pending: Pending) {
        self.pending.push(pending);
        compact(&mut self.pending);
        self.check_gate();
    }

    /// The snapshots an optional index list selects (all when `None`, then
    /// followed by the retiring instances), in order, each index once: an
    /// index scaled back up while its predecessor is still stopping shows
    /// the predecessor (alive) until it is gone.
    fn select_infos(&self, indexes: &Option<Vec<u32>>) -> Vec<&SharedInfo> {
        let retiring = |i: u32| {
            self.retiring
                .iter()
                .find(|(r, _, _)| *r == i)
                .map(|(_, _, info)| info)
        };
        let current = |i: u32| retiring(i).or_else(|| self.infos.get(i as usize));
        match indexes {
            None => (0..self.infos.len() as u32)
                .filter_map(current)
                .chain(
                    self.retiring
                        .iter()
                        .filter(|(i, _, _)| *i as usize >= self.infos.len())
                        .map(|(_, _, info)| info),
                )
                .collect(),
            Some(list) => list.iter().filter_map(|&i| current(i)).collect(),
        }
    }

    /// The instances an optional index list selects (all when `None`).
    fn select(&self, indexes: &Option<Vec<u32>>) -> Vec<(u32, Addr<ProcessActor>)> {
        match indexes {
            None => (0..).zip(self.instances.iter().cloned()).collect(),
            Some(list) => list
                .iter()
                .filter_map(|&i| self.instances.get(i as usize).map(|a| (i, a.clone())))
                .collect(),
        }
    }

    fn lost(&self, index: u32) -> Outcome {
        Outcome {
            name: self.config.instance_name(index),
            ok: false,
            state: ProcessState::Stopped,
            message: "instance went away while handling the request".into(),
            output_tail: Vec::new(),
        }
    }
}

impl Actor for ProgramActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        (self.instances, self.infos) = (0..self.config.numprocs)
            .map(|i| self.spawn_instance(i))
            .unzip();
        if self.config.autostart {
            self.autostart(None);
        }
    }
}

/// Fans a process message out to the selected instances.
macro_rules! fan_out {
    ($self:ident, $indexes:expr, $msg:expr) => {{
        let targets = $self.select(&$indexes);
        let lost: Vec<Outcome> = targets.iter().map(|(i, _)| $self.lost(*i)).collect();
        async move {
            let answers = join_all(targets.iter().map(|(_, a)| a.send($msg))).await;
            answers
                .into_iter()
                .zip(lost)
                .map(|(answer, lost)| answer.unwrap_or(lost))
                .collect::<Vec<Outcome>>()
        }
    }};
}

/// Defines a `{indexes, wait}` request and its handler: with `wait` it
/// resolves with each instance's own outcome; without, at once, with `what`.
macro_rules! waitable_request {
    ($(#[$doc:meta])* $name:ident => $msg:expr, $what:literal, $state:expr) => {
        $(#[$doc])*
        #[derive(Debug, Message)]
        #[rtype(result = "Vec<Outcome>")]
        pub struct $name {
            pub indexes: Option<Vec<u32>>,
            pub wait: bool,
        }

        impl Handler<$name> for ProgramActor {
            type Result = ResponseFuture<Vec<Outcome>>;

            fn handle(&mut self, msg: $name, _: &mut Self::Context) -> Self::Result {
                if msg.wait {
                    return Box::pin(fan_out!(self, msg.indexes, $msg));
                }
                let targets = self.select(&msg.indexes);
                let outcomes = no_wait(&targets, &self.config, $what, $state, |a| a.do_send($msg));
                Box::pin(async move { outcomes })
            }
        }
    };
}

/// Which instances a start for dependents leaves alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// RUNNING, STARTING, BACKOFF: up, or on their way.
    Up,
    /// Those, and EXITED with an expected code: a one-shot job a dependent
    /// needs `completed` is not run again.
    UpOrCompleted,
}

impl Keep {
    fn leaves(self, state: ProcessState, exitcode: Option<i32>, exitcodes: &[i32]) -> bool {
        match state {
            ProcessState::Running | ProcessState::Starting | ProcessState::Backoff => true,
            ProcessState::Exited => {
                self == Keep::UpOrCompleted && exitcode.is_some_and(|c| exitcodes.contains(&c))
            }
            _ => false,
        }
    }
}

/// Start instances (`None`: all) once the program's dependencies are met;
/// with `wait`, resolves once each is RUNNING or has failed (or a
/// dependency failed).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Outcome>")]
pub struct Start {
    pub indexes: Option<Vec<u32>>,
    pub wait: bool,
    /// Started because programs the client named depend on it: what
    /// [`Keep`] says is left alone.
    pub for_dependents: Option<Keep>,
}

impl Handler<Start> for ProgramActor {
    type Result = ResponseFuture<Vec<Outcome>>;

    fn handle(&mut self, msg: Start, _: &mut Self::Context) -> Self::Result {
        let gate = self.gate();
        if gate == Gate::Open {
            let targets = self.start_targets(&msg.indexes, msg.for_dependents);
            if msg.wait {
                return Box::pin(self.start_each(targets));
            }
            let outcomes = no_wait(
                &targets,
                &self.config,
                "starting",
                ProcessState::Starting,
                |a| a.do_send(process::Start),
            );
            return Box::pin(async move { outcomes });
        }
        let why = gate.describe().unwrap_or_default();
        let early = (!msg.wait).then(|| self.not_started(&msg.indexes, true, &why));
        let (reply, answer) = match msg.wait {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let lost = self.not_started(&msg.indexes, false, "the program went away");
        self.wait_for_dependencies(Pending {
            indexes: msg.indexes,
            for_dependents: msg.for_dependents,
            paced: false,
            reply,
        });
        Box::pin(async move {
            match (early, answer) {
                (Some(outcomes), _) => outcomes,
                (None, Some(rx)) => rx.await.unwrap_or(lost),
                (None, None) => lost,
            }
        })
    }
}

/// Stop instances; with `wait`, resolves once their process groups are
/// gone. Cancels the starts waiting for dependencies.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Outcome>")]
pub struct Stop {
    pub indexes: Option<Vec<u32>>,
    pub wait: bool,
    /// Stopped because a program it depends on is being stopped: only live
    /// instances are told (no `not running` for the others).
    pub for_dependency: bool,
}

impl Handler<Stop> for ProgramActor {
    type Result = ResponseFuture<Vec<Outcome>>;

    fn handle(&mut self, msg: Stop, _: &mut Self::Context) -> Self::Result {
        self.cancel_pending();
        let mut targets = self.select(&msg.indexes);
        if msg.for_dependency {
            targets.retain(|(i, _)| {
                self.infos.get(*i as usize).is_some_and(|info| {
                    let state = info.borrow().info(Instant::now()).state;
                    !matches!(
                        state,
                        ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
                    )
                })
            });
        }
        if msg.wait {
            let lost: Vec<Outcome> = targets.iter().map(|(i, _)| self.lost(*i)).collect();
            return Box::pin(async move {
                let answers = join_all(targets.iter().map(|(_, a)| a.send(process::Stop))).await;
                answers
                    .into_iter()
                    .zip(lost)
                    .map(|(answer, lost)| answer.unwrap_or(lost))
                    .collect()
            });
        }
        let outcomes = no_wait(
            &targets,
            &self.config,
            "stopping",
            ProcessState::Stopping,
            |a| a.do_send(process::Stop),
        );
        Box::pin(async move { outcomes })
    }
}

waitable_request! {
    /// Restart instances: stop (if alive), then start, waiting like [`Start`].
    Restart => process::Restart, "restarting", ProcessState::Stopping
}

fn no_wait(
    targets: &[(u32, Addr<ProcessActor>)],
    config: &ProgramConfig,
    what: &str,
    state: ProcessState,
    send: impl Fn(&Addr<ProcessActor>),
) -> Vec<Outcome> {
    targets
        .iter()
        .map(|(i, a)| {
            send(a);
            Outcome {
                name: config.instance_name(*i),
                ok: true,
                state,
                message: what.to_string(),
                output_tail: Vec::new(),
            }
        })
        .collect()
}

/// Deliver a signal to the selected instances' process groups.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Outcome>")]
pub struct SignalInstances {
    pub indexes: Option<Vec<u32>>,
    pub signal: Signal,
}

impl Handler<SignalInstances> for ProgramActor {
    type Result = ResponseFuture<Vec<Outcome>>;

    fn handle(&mut self, msg: SignalInstances, _: &mut Self::Context) -> Self::Result {
        let signal = msg.signal;
        Box::pin(fan_out!(self, msg.indexes, process::SendSignal(signal)))
    }
}

/// Status lines of the selected instances, in index order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<ProcessInfo>")]
pub struct Status {
    pub indexes: Option<Vec<u32>>,
}

impl Handler<Status> for ProgramActor {
    type Result = MessageResult<Status>;

    fn handle(&mut self, msg: Status, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        // Instances a pending start holds back say what they wait for.
        let waiting = match self.pending.is_empty() {
            true => None,
            false => self.gate().describe(),
        };
        MessageResult(
            self.select_infos(&msg.indexes)
                .into_iter()
                .map(|info| {
                    let mut info = info.borrow().info(now);
                    if let Some(why) = &waiting
                        && matches!(
                            info.state,
                            ProcessState::Stopped | ProcessState::Exited | ProcessState::Fatal
                        )
                    {
                        info.description.clone_from(why);
                    }
                    info
                })
                .collect(),
        )
    }
}

/// Pids of the selected instances.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PidEntry>")]
pub struct Pids {
    pub indexes: Option<Vec<u32>>,
}

impl Handler<Pids> for ProgramActor {
    type Result = MessageResult<Pids>;

    fn handle(&mut self, msg: Pids, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.select_infos(&msg.indexes)
                .into_iter()
                .map(|info| {
                    let info = info.borrow();
                    PidEntry {
                        name: info.name().to_string(),
                        pid: info.pid(),
                    }
                })
                .collect(),
        )
    }
}

/// The tail (and optional follower) of one instance's output stream.
#[derive(Debug, Message)]
#[rtype(result = "Result<(TailReply, Option<OutputFollower>), (ErrorKind, String)>")]
pub struct TailInstance {
    pub index: u32,
    pub stream: OutputStream,
    pub lines: usize,
    pub follow: bool,
}

impl Handler<TailInstance> for ProgramActor {
    type Result = ResponseFuture<Result<(TailReply, Option<OutputFollower>), (ErrorKind, String)>>;

    fn handle(&mut self, msg: TailInstance, _: &mut Self::Context) -> Self::Result {
        let instance = self.instances.get(msg.index as usize).cloned();
        let name = self.config.instance_name(msg.index);
        Box::pin(async move {
            let Some(instance) = instance else {
                return Err((ErrorKind::UnknownTarget, format!("no such process: {name}")));
            };
            let tail = process::Tail {
                stream: msg.stream,
                lines: msg.lines,
                follow: msg.follow,
            };
            instance
                .send(tail)
                .await
                .unwrap_or_else(|_| Err((ErrorKind::Internal, format!("{name} went away"))))
        })
    }
}

/// Stop every instance, then stop this actor (program removed, or shutdown).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Outcome>")]
pub struct Retire;

impl Handler<Retire> for ProgramActor {
    type Result = ResponseActFuture<Self, Vec<Outcome>>;

    fn handle(&mut self, _: Retire, _: &mut Self::Context) -> Self::Result {
        self.cancel_pending();
        self.deps.borrow_mut().retired = true;
        let retire = fan_out!(self, None::<Vec<u32>>, process::Retire);
        Box::pin(retire.into_actor(self).map(|outcomes, act, ctx| {
            act.instances.clear();
            act.infos.clear();
            ctx.stop();
            outcomes
        }))
    }
}

/// Apply a reloaded config to this program.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Apply {
    pub config: Arc<ProgramConfig>,
    pub change: Change,
}

impl Handler<Apply> for ProgramActor {
    type Result = ();

    fn handle(&mut self, msg: Apply, ctx: &mut Self::Context) {
        let old = std::mem::replace(&mut self.config, msg.config.clone());
        // Every live instance gets the new config first: policy takes effect
        // at the next decision, spawn keys at the next spawn.
        for instance in &self.instances {
            instance.do_send(process::UpdatePolicy(msg.config.clone()));
        }
        self.deps
            .borrow_mut()
            .tracker
            .set_exitcodes(&self.config.exitcodes);
        match msg.change {
            Change::Policy => {}
            Change::Scale => self.scale(old.numprocs, ctx),
            Change::Respawn => {
                if old.numprocs != self.config.numprocs {
                    self.scale(old.numprocs, ctx);
                }
                self.rolling_restart(ctx);
            }
        }
        // `depends_on` may have changed (a policy key), and the summary
        // with `numprocs` or `exitcodes`.
        self.check_gate();
        self.deps.borrow().publish();
    }
}

impl ProgramActor {
    /// Starts new indexes or retires the highest ones; the others are not
    /// touched (same pids).
    fn scale(&mut self, old: u32, ctx: &mut Context<Self>) {
        let new = self.config.numprocs;
        self.deps.borrow_mut().tracker.resize(new);
        if new > old {
            let mut autostart = Vec::new();
            for i in old..new {
                let (instance, info) = self.spawn_instance(i);
                if self.config.autostart {
                    if self.retiring.iter().any(|(r, _, _)| *r == i) {
                        self.deferred.insert(i);
                    } else {
                        autostart.push(i);
                    }
                }
                self.instances.push(instance);
                self.infos.push(info);
            }
            if !autostart.is_empty() {
                self.autostart(Some(autostart));
            }
        } else {
            let gone: Vec<_> = (new..)
                .zip(self.instances.drain(new as usize..))
                .zip(self.infos.drain(new as usize..))
                .collect();
            for ((i, instance), info) in gone {
                self.deferred.remove(&i);
                self.retiring.push((i, instance.clone(), info));
                ctx.spawn(
                    instance
                        .send(process::Retire)
                        .into_actor(self)
                        .map(move |_, act, _| {
                            act.retiring.retain(|(_, a, _)| *a != instance);
                            act.start_deferred(i);
                        }),
                );
            }
        }
    }

    /// Starts index `i` if its autostart waited for a retiring predecessor
    /// and none is left.
    fn start_deferred(&mut self, i: u32) {
        if self.retiring.iter().any(|(r, _, _)| *r == i) || !self.deferred.remove(&i) {
            return;
        }
        if (i as usize) < self.instances.len() {
            self.autostart(Some(vec![i]));
        }
    }

    /// Restarts every instance that is meant to run, one after the other, so
    /// a program with several instances never goes fully down.
    fn rolling_restart(&mut self, ctx: &mut Context<Self>) {
        let instances = self.instances.clone();
        let restart = async move {
            for instance in instances {
                let Ok(info) = instance.send(process::GetInfo).await else {
                    continue;
                };
                // A stopped or exited instance stays down: the user put it
                // there or its policy did. It picks up the new config when it
                // next starts.
                if matches!(info.state, ProcessState::Stopped | ProcessState::Exited) {
                    continue;
                }
                let _ = instance.send(process::Restart).await;
            }
        };
        ctx.spawn(restart.into_actor(self));
    }
}

/// SIGKILL every instance's process group now (forced shutdown). Resolves
/// once every instance has sent its signal.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct KillAll;

impl Handler<KillAll> for ProgramActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: KillAll, _: &mut Self::Context) -> Self::Result {
        let all: Vec<_> = self
            .instances
            .iter()
            .chain(self.retiring.iter().map(|(_, a, _)| a))
            .cloned()
            .collect();
        Box::pin(async move {
            join_all(all.iter().map(|a| a.send(process::Kill))).await;
        })
    }
}

/// Reopen every instance's output files (SIGUSR2).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReopenOutput;

impl Handler<ReopenOutput> for ProgramActor {
    type Result = ();

    fn handle(&mut self, _: ReopenOutput, _: &mut Self::Context) {
        for instance in &self.instances {
            instance.do_send(process::ReopenOutput);
        }
    }
}

/// One of the program's dependencies changed: check the gate again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DependenciesChanged;

impl Handler<DependenciesChanged> for ProgramActor {
    type Result = ();

    fn handle(&mut self, _: DependenciesChanged, _: &mut Self::Context) {
        self.check_gate();
    }
}

/// The program `name`'s [`deps::Summary`] on the board changed (sent by the
/// program to the Registry, which tells its dependents).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ProgramStateChanged {
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(indexes: Option<Vec<u32>>, paced: bool) -> Pending {
        Pending {
            indexes,
            for_dependents: Some(Keep::UpOrCompleted),
            paced,
            reply: None,
        }
    }

    #[test]
    fn pending_starts_nobody_waits_for_are_merged_so_the_list_stays_bounded() {
        let mut list = Vec::new();
        for i in 0..1000 {
            list.push(pending(Some(vec![i % 3]), false));
            compact(&mut list);
        }
        list.push(pending(None, true));
        compact(&mut list);
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0].indexes, Some(vec![0, 1, 2]));
        assert_eq!(list[1].indexes, None);
    }

    #[test]
    fn a_start_a_client_waits_for_is_kept_until_the_client_goes_away() {
        let (tx, rx) = oneshot::channel();
        let mut list = vec![Pending {
            reply: Some(tx),
            ..pending(Some(vec![1]), false)
        }];
        list.push(pending(Some(vec![0]), false));
        list.push(pending(None, false));
        compact(&mut list);
        assert_eq!(list.len(), 2);
        assert!(list[0].reply.is_some());
        assert_eq!(list[1].indexes, None, "a start of every instance wins");
        drop(rx);
        compact(&mut list);
        assert_eq!(list.len(), 1, "the client went away: merged");
        assert!(list[0].reply.is_none());
    }
}
