//! ProcessActor: one per process instance (`NAME:INDEX`).
//!
//! The actor is a thin executor around the pure [`state::Machine`]: every
//! request and every observed fact (spawned, exited, timer fired, process
//! group gone) becomes a [`state::Event`], and the [`state::Effect`]s the
//! machine returns are carried out here, in order: forking ([`spawn`]),
//! `killpg`, the one timer (`ctx.run_later`, its handle replaced on re-arm),
//! polling `killpg(pgid, 0)` every 10 ms while a stop waits for the group to
//! empty, event-log lines, and answering waiting requests.
//!
//! Nothing here blocks: requests that wait (`Start`, `Stop`, `Restart`,
//! `Retire`) park a oneshot sender in a waiter list and return a future; the
//! machine's `Resolve` effects complete them. Two concurrent starts therefore
//! share one spawn and one outcome. A failed start's outcome carries the last
//! lines of the program's stderr (stdout if stderr is discarded), read after
//! the output readers have drained the pipe (bounded wait).
//!
//! Descendants (see `descendants.rs`): with cgroups, the child joins its
//! instance's cgroup before `exec`; a stop completes when the cgroup is
//! empty, the stop timer kills the whole cgroup, and a leader's exit kills
//! the rest of it, the respawn being deferred (later events held in the
//! queue) until it is empty. Without cgroups, the same rules apply to the
//! leader's descendants found by walking its process tree and to the
//! orphans it leaves to the daemon, known by pid and start time.
//!
//! The child's pid is registered with the Reaper's [`ChildTable`] in the same
//! handler that forked it, so its exit always comes back as [`ChildExited`].
//! If the actor stops with waiters pending they are answered (failed), and a
//! process group still alive is SIGKILLed: an instance never outlives its
//! actor unsupervised.
//!
//! Readiness: the machine says when probes start and stop
//! ([`Effect::StartReadyProbe`], [`Effect::StartHealth`],
//! [`Effect::StopProbes`]); the actor runs them as futures on its own
//! context, never a thread and never two at once: one probe in flight, then
//! a `run_later` for the next, both held in one [`SpawnHandle`] that
//! `StopProbes` cancels (dropping a probe in flight closes its socket or
//! kills its `exec` group). A ready probe has [`READY_PROBE_BUDGET`] (or
//! `interval` when longer, never more than `timeout`), a health probe its
//! `timeout`; the first health check comes one `interval` after RUNNING.
//! `log` waits for its line instead of polling; `notify` needs no probe:
//! a program that uses notify (ready, health or `watchdog`) gets a fresh
//! `NOTIFY_SOCKET` before each spawn ([`probe::notify::NotifySocket`]),
//! read by one future per spawn that turns `READY=1`, `STATUS=`,
//! `WATCHDOG=1` and `EXTEND_TIMEOUT_USEC=` into events (pid-tagged, so a
//! late datagram of a previous child is ignored) and logs `STOPPING=1` and
//! `ERRNO=`. `before_start` runs through the [`helper`] (its turn taken at
//! the program's [`helper::HookGate`]), its output to the program's stderr
//! log.
//!
//! For a program with `notify` rules, each event's outcome (a state entered,
//! an unexpected exit) is also sent to the Notifier, fire and forget; the
//! SMTP password's variable ([`SecretEnv`]) is kept from every child.
//!
//! After every event it applies, the actor copies its machine into a
//! [`SharedInfo`] snapshot its ProgramActor holds, so `status` of thousands
//! of instances is answered by reading memory rather than by one
//! [`GetInfo`] message per instance. Every actor runs on the one System
//! thread, hence `Rc<RefCell<..>>`; borrows never outlive a call. For the
//! same reason a [`StateHook`] (the ProgramActor's dependency bookkeeping)
//! is called synchronously with the state each batch of events left.

pub mod helper;
pub mod pacer;
pub mod spawn;
pub mod state;
mod vfork;

use crate::actors::notifier::{InstanceEvent, Noted, SecretEnv};
use crate::actors::reaper::{ChildExited, ChildTable};
use crate::config::{OutputTarget, Probe, ProgramConfig};
use crate::descendants::{self, InstanceCgroup, Known, fallback};
use crate::output::{self, OutputSink};
use crate::probe::{self, notify::NotifySocket};
use crate::sys::exit::ExitStatus;
use crate::sys::{pgroup, procfs};
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    ResponseActFuture, ResponseFuture, SpawnHandle, WrapFuture,
};
use nix::errno::Errno;
use nix::sys::signal::Signal as NixSignal;
use proto::{ErrorKind, Outcome, OutputStream, ProcessInfo, ProcessState, Signal, TailReply};
use state::{Effect, Event, Level, Machine, Policy, Resolve};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, oneshot};

/// How often a stop checks whether the process group is empty.
const GROUP_POLL: Duration = Duration::from_millis(10);
/// Every this many polls, a group that still answers `killpg` is checked
/// for members that are not zombies (see [`procfs::group_has_live_members`]).
const ZOMBIE_CHECK_EVERY: u32 = 50;
/// Lines of output shown with a failed start.
const FAILURE_TAIL_LINES: usize = 20;
/// How long a failed start's answer waits for the output pipes to drain.
const FAILURE_TAIL_SETTLE: Duration = Duration::from_millis(250);
/// Without cgroups, how often a running instance's process tree is walked
/// (and recorded in the state file).
const TREE_WALK_EVERY: Duration = Duration::from_secs(2);
/// How long a respawn waits for the killed remnants of the previous run
/// to leave the cgroup; past it (a process stuck in the kernel), it spawns
/// anyway and says so.
const REMNANTS_WAIT: Duration = Duration::from_secs(5);
/// The budget of one ready probe (`interval` when longer; never more than
/// the ready `timeout`): a connect or a GET that takes longer is a failure,
/// and the next one starts an interval later.
pub const READY_PROBE_BUDGET: Duration = Duration::from_secs(1);

/// One probe's answer: ok, or why not (`connection refused`).
type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// Which probe loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probing {
    Ready,
    Health,
}

/// What a process actor needs from the outside.
#[derive(Debug, Clone)]
pub struct InstanceContext {
    pub program: Arc<ProgramConfig>,
    pub index: u32,
    pub children: ChildTable,
    /// Where state changes go when the program has `notify` rules (the
    /// Notifier); `None` sends nothing.
    pub events: Option<Recipient<InstanceEvent>>,
    /// Variables of the daemon's environment children must not inherit.
    pub secret_env: SecretEnv,
    /// The program's `before_start` turn: one hook at a time across its
    /// instances (shared by all of them).
    pub hooks: helper::HookGate,
}

/// What `status` shows of one instance, as of the last event it applied.
#[derive(Debug)]
pub struct InfoSnapshot {
    name: String,
    program: String,
    index: u32,
    machine: Machine,
}

impl InfoSnapshot {
    /// The status line at `now`, exactly as [`GetInfo`] answers it.
    pub fn info(&self, now: Instant) -> ProcessInfo {
        process_info(&self.name, &self.program, self.index, &self.machine, now)
    }

    /// The live leader's pid.
    pub fn pid(&self) -> Option<u32> {
        self.machine.pid()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An instance's snapshot, written by its actor, read by its program.
pub type SharedInfo = Rc<RefCell<InfoSnapshot>>;

/// Called with `(index, state, exit code)` after every batch of events the
/// actor applies, synchronously (so whoever the hook tells already sees the
/// state when a start's outcome arrives): the ProgramActor's dependency
/// bookkeeping (`program/deps.rs`).
#[derive(Clone)]
pub struct StateHook(pub Rc<dyn Fn(u32, ProcessState, Option<i32>)>);

impl std::fmt::Debug for StateHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateHook")
    }
}

/// The status line of an instance whose machine is `m`.
fn process_info(name: &str, program: &str, index: u32, m: &Machine, now: Instant) -> ProcessInfo {
    ProcessInfo {
        name: name.to_string(),
        program: program.to_string(),
        index,
        state: m.state(),
        pid: m.pid(),
        uptime_s: m.uptime(now).as_secs_f64(),
        exitcode: m.exitcode(),
        restarts: m.restarts(),
        description: m.describe(now),
        ready: m.is_ready(),
        health: m.health().map(str::to_string),
        status_text: m.status_text().map(str::to_string),
    }
}

/// The actor.
#[derive(Debug)]
pub struct ProcessActor {
    ctx: InstanceContext,
    /// Copy of `machine` for the program's `status`, refreshed by `apply`.
    info: SharedInfo,
    name: String,
    policy: Policy,
    machine: Machine,
    stdout: Option<Arc<OutputSink>>,
    stderr: Option<Arc<OutputSink>>,
    /// The machine's one timer.
    timer: Option<SpawnHandle>,
    /// The process-group poll of a stop.
    group_poll: Option<SpawnHandle>,
    /// The instance's cgroup, when the daemon uses cgroups.
    cgroup: Option<InstanceCgroup>,
    /// Remnants of the last run were killed: the next spawn waits until
    /// the cgroup is empty.
    remnants: bool,
    /// A spawn waiting for the remnants to go; events queue behind it.
    deferred_spawn: Option<SpawnHandle>,
    /// Without cgroups: the leader and the descendants found so far (pid
    /// and start time), for stops, crashes and the state file.
    leader: Option<Known>,
    known: Vec<Known>,
    /// pid of the latest child, for log lines after it exited.
    last_pid: Option<u32>,
    start_waiters: Vec<oneshot::Sender<Outcome>>,
    stop_waiters: Vec<oneshot::Sender<Outcome>>,
    /// `Retire` received: starts are refused.
    retiring: bool,
    /// Events waiting for the current one's effects to finish.
    queue: VecDeque<(Event, Instant)>,
    applying: bool,
    /// The probe loop that runs, and its probe in flight or its wait for
    /// the next (one handle: cancelling it stops the loop).
    probing: Option<Probing>,
    probe: Option<SpawnHandle>,
    /// `before_start` running for the pending spawn.
    hook: Option<SpawnHandle>,
    /// The current child's `NOTIFY_SOCKET` reader (holding the socket).
    notify: Option<SpawnHandle>,
    /// A `WATCHDOG=1` arrived since the last `health: {notify: true}` check.
    fed_since_check: bool,
    /// Told the state after every batch (see [`StateHook`]).
    on_state: Option<StateHook>,
}

impl ProcessActor {
    /// A STOPPED, never-started instance; nothing is spawned until [`Start`].
    pub fn new(ctx: InstanceContext) -> Self {
        let program = &ctx.program;
        let name = program.instance_name(ctx.index);
        ProcessActor {
            info: Rc::new(RefCell::new(InfoSnapshot {
                name: name.clone(),
                program: program.name.clone(),
                index: ctx.index,
                machine: Machine::new(),
            })),
            name,
            policy: Policy::of(program),
            machine: Machine::new(),
            stdout: output_sink(program, ctx.index, OutputStream::Stdout),
            stderr: output_sink(program, ctx.index, OutputStream::Stderr),
            timer: None,
            group_poll: None,
            cgroup: descendants::cgroup_root()
                .map(|root| InstanceCgroup::new(root, &program.name, ctx.index)),
            remnants: false,
            deferred_spawn: None,
            leader: None,
            known: Vec::new(),
            last_pid: None,
            start_waiters: Vec::new(),
            stop_waiters: Vec::new(),
            retiring: false,
            queue: VecDeque::new(),
            applying: false,
            probing: None,
            probe: None,
            hook: None,
            notify: None,
            fed_since_check: false,
            on_state: None,
            ctx,
        }
    }

    /// Reports every state the instance enters to `hook`.
    pub fn with_state_hook(mut self, hook: StateHook) -> Self {
        self.on_state = Some(hook);
        self
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    /// The snapshot this actor keeps up to date; take it before `start`.
    pub fn shared_info(&self) -> SharedInfo {
        self.info.clone()
    }

    /// Feeds one event to the machine and carries out its effects. Events
    /// raised while effects run (spawned, group already gone) are queued, so
    /// each event's effects complete, in order, before the next is decided.
    /// A spawn that waits for the previous run's remnants (see
    /// [`Effect::Spawn`] in `execute`) holds the queue until it is done.
    fn apply(&mut self, ev: Event, now: Instant, ctx: &mut Context<Self>) {
        self.queue.push_back((ev, now));
        self.drain(ctx);
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.applying {
            return;
        }
        self.applying = true;
        while self.deferred_spawn.is_none()
            && let Some((ev, now)) = self.queue.pop_front()
        {
            let before = self.machine.state();
            let exit = match &ev {
                Event::Exited { pid, status } if self.machine.pid() == Some(*pid) => Some(*status),
                _ => None,
            };
            for effect in self.machine.on_event(ev, &self.policy, now) {
                self.execute(effect, ctx);
            }
            self.notify(before, exit, now);
        }
        // The notify socket lives as long as a child may.
        if !self.machine.state().is_alive()
            && let Some(reader) = self.notify.take()
        {
            ctx.cancel_future(reader);
        }
        // Once per batch: nothing else runs on this thread in between.
        self.info.borrow_mut().machine.clone_from(&self.machine);
        if let Some(hook) = &self.on_state {
            (hook.0)(
                self.ctx.index,
                self.machine.state(),
                self.machine.exitcode(),
            );
        }
        self.applying = false;
    }

    /// `FATAL: exited too quickly (…), 4 attempts`, `STARTING`.
    fn state_line(&self, now: Instant) -> String {
        let state = self.machine.state();
        let described = self.machine.describe(now);
        if described.is_empty() || described.eq_ignore_ascii_case(state.name()) {
            state.name().to_string()
        } else {
            format!("{state}: {described}")
        }
    }

    /// Reports what the last event did to the Notifier, when the program
    /// has rules: the state entered (FATAL, BACKOFF, EXITED, RUNNING,
    /// STOPPED) and an unexpected exit, as the pure
    /// [`state::notifications`] decides. A program without rules pays one
    /// `is_empty`.
    fn notify(&self, before: ProcessState, exit: Option<ExitStatus>, at: Instant) {
        let Some(events) = &self.ctx.events else {
            return;
        };
        if self.ctx.program.notify.is_empty() {
            return;
        }
        let happened = state::notifications(
            before,
            self.machine.state(),
            exit,
            self.machine.last_exit(),
            &self.policy,
        );
        let program = &self.ctx.program;
        for (event, exit) in happened {
            if !program.notify.iter().any(|r| r.wants(event)) {
                continue;
            }
            let stderr = self.stderr.clone();
            events.do_send(InstanceEvent {
                program: program.clone(),
                noted: Noted {
                    program: program.name.clone(),
                    instance: self.name(),
                    event,
                    time: SystemTime::now(),
                    exit,
                    restarts: self.machine.restarts(),
                    detail: self.state_line(at),
                },
                at,
                stderr,
            });
        }
    }

    fn execute(&mut self, effect: Effect, ctx: &mut Context<Self>) {
        match effect {
            Effect::Spawn => {
                if std::mem::take(&mut self.remnants) && self.members_alive() {
                    self.defer_spawn(ctx);
                } else {
                    let ev = self.spawn_child(ctx);
                    self.queue.push_back((ev, Instant::now()));
                }
            }
            Effect::SignalGroup { pgid, signal } => {
                // A stop: what the leader started, before it can go.
                self.walk_tree();
                self.signal_group(pgid, signal);
                // A stopped group (`signal STOP`, Ctrl-Z) would keep the
                // stop signal pending until the SIGKILL: continue it so its
                // handler runs, as supervisord does.
                if signal != Signal::Cont {
                    self.signal_group(pgid, Signal::Cont);
                }
            }
            Effect::KillGroup { pgid } => {
                self.signal_group(pgid, Signal::Kill);
                self.kill_cgroup();
                self.kill_known();
            }
            Effect::KillRemnants { pgid } => {
                if pgroup::alive(pgid) {
                    tracing::warn!(process = %self.name, pgid,
                        "leader exited; killing what is left of its process group");
                    self.signal_group(pgid, Signal::Kill);
                }
                if self.cgroup_populated() {
                    tracing::warn!(process = %self.name,
                        "leader exited; killing what is left of its cgroup");
                    self.kill_cgroup();
                    self.remnants = true;
                }
                self.adopt_orphans();
                if self.known_alive() {
                    tracing::warn!(process = %self.name,
                        "leader exited; killing the descendants it left");
                    self.kill_known();
                    self.remnants = true;
                }
            }
            Effect::SetTimer { generation, after } => {
                if let Some(old) = self.timer.take() {
                    ctx.cancel_future(old);
                }
                self.timer = Some(ctx.run_later(after, move |act, ctx| {
                    act.timer = None;
                    act.apply(Event::TimerFired { generation }, Instant::now(), ctx);
                }));
            }
            Effect::CancelTimer => {
                if let Some(old) = self.timer.take() {
                    ctx.cancel_future(old);
                }
            }
            Effect::WatchGroup { pgid } => {
                if let Some(old) = self.group_poll.take() {
                    ctx.cancel_future(old);
                }
                if self.cgroup.is_some() {
                    self.watch_cgroup(pgid, ctx);
                    return;
                }
                if descendants::fallback_active() {
                    self.watch_known(pgid, ctx);
                    return;
                }
                if !pgroup::alive(pgid) {
                    self.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
                    return;
                }
                let mut polls = 0u32;
                self.group_poll = Some(ctx.run_interval(GROUP_POLL, move |act, ctx| {
                    polls = polls.wrapping_add(1);
                    let gone = !pgroup::alive(pgid)
                        || (polls % ZOMBIE_CHECK_EVERY == 0
                            && !procfs::group_has_live_members(pgid)
                            && {
                                tracing::warn!(process = %act.name, pgid,
                                "only zombies left in the process group; treating it as gone \
                                 (orphans are not being reaped: is the daemon a child subreaper?)");
                                true
                            });
                    if gone {
                        if let Some(poll) = act.group_poll.take() {
                            ctx.cancel_future(poll);
                        }
                        act.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
                    }
                }));
            }
            Effect::RunBeforeStart => self.run_before_start(ctx),
            Effect::CancelBeforeStart => {
                // Dropping the hook's future SIGKILLs its group.
                if let Some(hook) = self.hook.take() {
                    ctx.cancel_future(hook);
                }
            }
            Effect::StartReadyProbe => {
                self.stop_probes(ctx);
                self.probing = Some(Probing::Ready);
                self.probe_ready(ctx);
            }
            Effect::StartHealth => {
                self.stop_probes(ctx);
                self.probing = Some(Probing::Health);
                self.fed_since_check = false;
                self.next_health(ctx);
            }
            Effect::StopProbes => self.stop_probes(ctx),
            Effect::Log(level, message) => self.log(level, &message),
            Effect::Resolve(resolve) => self.resolve(resolve, ctx),
        }
    }

    /// True while the instance's cgroup holds a process (false without
    /// cgroups, or when it cannot be read: logged).
    fn cgroup_populated(&self) -> bool {
        let Some(cgroup) = &self.cgroup else {
            return false;
        };
        cgroup.populated().unwrap_or_else(|e| {
            tracing::error!(process = %self.name, cgroup = %cgroup.dir().display(), error = %e,
                "cannot read the cgroup's state");
            false
        })
    }

    /// Anything of the instance left: its cgroup is populated, or (without
    /// cgroups) a known descendant lives.
    fn members_alive(&self) -> bool {
        self.cgroup_populated() || self.known_alive()
    }

    fn known_alive(&self) -> bool {
        self.known.iter().any(Known::alive)
    }

    fn kill_known(&self) {
        for k in &self.known {
            k.signal(NixSignal::SIGKILL);
        }
    }

    /// Without cgroups: adds the leader's live descendants to what is
    /// known (pruning the dead) and records it for the state file.
    fn walk_tree(&mut self) {
        if !descendants::fallback_active() {
            return;
        }
        self.known.retain(Known::alive);
        let mut roots: Vec<u32> = self.known.iter().map(|k| k.pid).collect();
        if let Some(leader) = self.leader.filter(Known::alive) {
            roots.push(leader.pid);
        }
        for k in fallback::descendants_of(&roots) {
            if !self.known.contains(&k) {
                self.known.push(k);
            }
        }
        self.record();
    }

    /// The leader exited: its children were re-parented to the daemon (a
    /// subreaper). The daemon's children that are no instance's leader,
    /// started after ours and recorded for no other instance are its
    /// orphans; they and their descendants become known.
    fn adopt_orphans(&mut self) {
        if !descendants::fallback_active() {
            return;
        }
        let Some(leader) = self.leader.take() else {
            return;
        };
        let orphans: Vec<Known> = fallback::children_of(std::process::id())
            .into_iter()
            .filter(|&pid| !self.ctx.children.is_watched(pid))
            .filter_map(Known::of)
            .filter(|k| k.start >= leader.start)
            .filter(|k| self.known.contains(k) || !fallback::recorded_elsewhere(&self.name, k.pid))
            .collect();
        for k in orphans {
            if !self.known.contains(&k) {
                self.known.push(k);
            }
        }
        self.walk_tree();
    }

    /// The state file's entry for this instance.
    fn record(&self) {
        if descendants::fallback_active() {
            let leader = self.leader.filter(Known::alive);
            let all = leader.iter().chain(self.known.iter()).copied().collect();
            fallback::record(&self.name, all);
        }
    }

    /// A stop without cgroups: done when the process group is gone and no
    /// known descendant lives; those get the stop signal once the group is
    /// gone (they left it).
    fn watch_known(&mut self, pgid: u32, ctx: &mut Context<Self>) {
        self.walk_tree();
        let mut signalled = false;
        let mut polls = 0u32;
        let mut check = move |act: &mut Self| -> bool {
            polls = polls.wrapping_add(1);
            let group_gone = !pgroup::alive(pgid)
                || (polls % ZOMBIE_CHECK_EVERY == 0 && !procfs::group_has_live_members(pgid));
            if !group_gone {
                return false;
            }
            act.known.retain(Known::alive);
            if act.known.is_empty() {
                act.record();
                return true;
            }
            if !signalled {
                signalled = true;
                let signal = act.policy.stopsignal;
                let pids: Vec<u32> = act.known.iter().map(|k| k.pid).collect();
                tracing::info!(process = %act.name, pids = ?pids,
                    "descendants outside the process group are still running: sending them SIG{signal}");
                if let Ok(sig) = NixSignal::try_from(signal.number()) {
                    for k in &act.known {
                        k.signal(sig);
                    }
                }
            }
            false
        };
        if check(self) {
            self.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
            return;
        }
        self.group_poll = Some(ctx.run_interval(GROUP_POLL, move |act, ctx| {
            if check(act) {
                if let Some(poll) = act.group_poll.take() {
                    ctx.cancel_future(poll);
                }
                act.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
            }
        }));
    }

    /// SIGKILL to every process of the cgroup (not only the process group).
    fn kill_cgroup(&self) {
        if let Some(cgroup) = &self.cgroup
            && let Err(e) = cgroup.kill()
        {
            tracing::error!(process = %self.name, cgroup = %cgroup.dir().display(), error = %e,
                "cannot kill the cgroup");
        }
    }

    /// A stop whose leader has exited completes when the cgroup is empty.
    /// Members still there once the leader's process group is gone left the
    /// group (`setsid`) and never got the stop signal: they get it then,
    /// once; the stop timer's SIGKILL covers the whole cgroup.
    fn watch_cgroup(&mut self, pgid: u32, ctx: &mut Context<Self>) {
        let events = match self.cgroup.as_ref().map(InstanceCgroup::events) {
            Some(Ok(events)) => events,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                self.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
                return;
            }
            Some(Err(e)) => {
                tracing::error!(process = %self.name, error = %e,
                    "cannot watch the cgroup; waiting for the process group only");
                self.cgroup = None;
                self.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
                return;
            }
            None => return,
        };
        let mut signalled = false;
        let mut check = move |act: &mut Self| -> bool {
            match descendants::events_populated(&events) {
                Ok(false) => true,
                Ok(true) => {
                    if !signalled && !pgroup::alive(pgid) {
                        signalled = true;
                        act.signal_escaped();
                    }
                    false
                }
                Err(e) => {
                    tracing::error!(process = %act.name, error = %e, "cannot read cgroup.events");
                    !pgroup::alive(pgid)
                }
            }
        };
        if check(self) {
            self.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
            return;
        }
        self.group_poll = Some(ctx.run_interval(GROUP_POLL, move |act, ctx| {
            if check(act) {
                if let Some(poll) = act.group_poll.take() {
                    ctx.cancel_future(poll);
                }
                act.apply(Event::GroupGone { pgid }, Instant::now(), ctx);
            }
        }));
    }

    /// The stop signal to every process left in the cgroup.
    fn signal_escaped(&self) {
        let Some(cgroup) = &self.cgroup else {
            return;
        };
        let pids = cgroup.pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        let signal = self.policy.stopsignal;
        tracing::info!(process = %self.name, pids = ?pids,
            "descendants outside the process group are still running: sending them SIG{signal}");
        if let Ok(sig) = NixSignal::try_from(signal.number()) {
            cgroup.signal(&pids, sig);
        }
    }

    /// The previous run's remnants were killed but are still in the cgroup:
    /// spawn once they are gone (SIGKILL takes a moment), holding every
    /// later event until then, so the machine sees the spawn complete first.
    fn defer_spawn(&mut self, ctx: &mut Context<Self>) {
        let deadline = Instant::now() + REMNANTS_WAIT;
        self.deferred_spawn = Some(ctx.run_interval(GROUP_POLL, move |act, ctx| {
            let empty = !act.members_alive();
            if !empty && Instant::now() < deadline {
                return;
            }
            if !empty {
                tracing::error!(process = %act.name, wait = ?REMNANTS_WAIT,
                    "killed remnants are still in the cgroup; spawning beside them");
            }
            if let Some(poll) = act.deferred_spawn.take() {
                ctx.cancel_future(poll);
            }
            let ev = act.spawn_child(ctx);
            act.queue.push_front((ev, Instant::now()));
            act.drain(ctx);
        }));
    }

    /// Spawns the child; returns the event saying how it went.
    fn spawn_child(&mut self, ctx: &mut Context<Self>) -> Event {
        let cgroup_procs = match self.cgroup.as_ref().map(InstanceCgroup::prepare) {
            None => None,
            Some(Ok(fd)) => Some(fd),
            Some(Err(e)) => {
                let dir = self.cgroup.as_ref().map(|c| c.dir().display().to_string());
                return Event::SpawnFailed {
                    error: format!("cannot prepare cgroup {}: {e}", dir.unwrap_or_default()),
                };
            }
        };
        if let Some(reader) = self.notify.take() {
            ctx.cancel_future(reader);
        }
        let socket = if uses_notify(&self.ctx.program) {
            match self.bind_notify() {
                Ok(socket) => Some(socket),
                Err(e) => {
                    return Event::SpawnFailed {
                        error: format!("cannot create its NOTIFY_SOCKET: {e}"),
                    };
                }
            }
        } else {
            None
        };
        let env: Vec<(OsString, OsString)> = socket
            .iter()
            .map(|s| (OsString::from("NOTIFY_SOCKET"), s.path().into()))
            .collect();
        let spawned = spawn::spawn(
            &self.ctx.program,
            self.ctx.index,
            self.stdout.as_deref(),
            self.stderr.as_deref(),
            &self.ctx.secret_env.names(),
            cgroup_procs.as_ref().map(AsRawFd::as_raw_fd),
            spawn::SpawnOptions {
                env: &env,
                ..spawn::SpawnOptions::default()
            },
        );
        drop(cgroup_procs);
        match spawned {
            Ok(child) => {
                if let Some(socket) = socket {
                    self.read_notify(Rc::new(socket), child.pid, ctx);
                }
                // Before anything can yield, so the Reaper knows who to tell.
                self.ctx
                    .children
                    .watch(child.pid, ctx.address().recipient());
                self.last_pid = Some(child.pid);
                if let (Some(fd), Some(sink)) = (child.stdout, &self.stdout) {
                    sink.pump(fd, &self.name);
                }
                if let (Some(fd), Some(sink)) = (child.stderr, &self.stderr) {
                    sink.pump(fd, &self.name);
                }
                self.leader = Known::of(child.pid);
                self.known.retain(Known::alive);
                self.record();
                Event::Spawned { pid: child.pid }
            }
            Err(e) => Event::SpawnFailed {
                error: e.to_string(),
            },
        }
    }

    /// Runs `before_start` (after its turn at the program's gate); answers
    /// with `BeforeStartDone`.
    fn run_before_start(&mut self, ctx: &mut Context<Self>) {
        let output = self.stderr.clone().or_else(|| self.stdout.clone());
        let Some(helper) = helper::Helper::before_start(&self.ctx, output) else {
            let done = Event::BeforeStartDone { result: Ok(()) };
            self.queue.push_back((done, Instant::now()));
            return;
        };
        let run = helper::run(helper, self.ctx.children.clone());
        self.hook = Some(ctx.spawn(run.into_actor(self).map(|result, act, ctx| {
            act.hook = None;
            let result = result.map_err(|f| helper_error(&f));
            act.apply(Event::BeforeStartDone { result }, Instant::now(), ctx);
        })));
    }

    fn stop_probes(&mut self, ctx: &mut Context<Self>) {
        self.probing = None;
        if let Some(probe) = self.probe.take() {
            ctx.cancel_future(probe);
        }
    }

    /// One probe of `probe` within `budget`; `None` for the kinds that are
    /// not polled (`log` waits, `notify` listens).
    fn probe_once(&self, probe: &Probe, budget: Duration) -> Option<ProbeFuture> {
        match probe {
            Probe::Tcp { host, port } => {
                let (host, port) = (host.clone(), *port);
                Some(Box::pin(
                    async move { probe::tcp(&host, port, budget).await },
                ))
            }
            Probe::Http { url, status } => {
                let (url, status) = (url.clone(), *status);
                Some(Box::pin(
                    async move { probe::http(&url, status, budget).await },
                ))
            }
            Probe::Exec { argv, .. } => {
                let helper = helper::Helper {
                    argv: argv.clone(),
                    timeout: budget,
                    ..helper::Helper::like(&self.ctx, None)
                };
                let run = helper::run(helper, self.ctx.children.clone());
                Some(Box::pin(
                    async move { run.await.map_err(|f| helper_error(&f)) },
                ))
            }
            Probe::Log(_) | Probe::Notify => None,
        }
    }

    /// The ready probe, once; the next one an `interval` after a failure,
    /// while the machine still waits (no `StopProbes` in between).
    fn probe_ready(&mut self, ctx: &mut Context<Self>) {
        self.probe = None;
        let (Some(ready), Some(pid)) = (self.ctx.program.ready.clone(), self.machine.pid()) else {
            return;
        };
        if self.probing != Some(Probing::Ready) {
            return;
        }
        let fut: ProbeFuture = match &ready.probe {
            // READY=1 comes through the notify socket.
            Probe::Notify => return,
            Probe::Log(pattern) => {
                let followers = self.log_followers();
                let pattern = pattern.clone();
                Box::pin(async move { probe::log(&pattern, followers).await })
            }
            probe => {
                let budget = READY_PROBE_BUDGET.max(ready.interval).min(ready.timeout);
                match self.probe_once(probe, budget) {
                    Some(fut) => fut,
                    None => return,
                }
            }
        };
        let interval = ready.interval;
        self.probe = Some(ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.probe = None;
            let ev = match result {
                Ok(()) => Event::Ready { pid },
                Err(error) => Event::NotReady { pid, error },
            };
            act.apply(ev, Instant::now(), ctx);
            if act.probing == Some(Probing::Ready) && act.machine.pid() == Some(pid) {
                act.probe = Some(ctx.run_later(interval, |act, ctx| act.probe_ready(ctx)));
            }
        })));
    }

    /// Followers of this spawn's captured streams, for a `log` probe.
    fn log_followers(&self) -> Vec<probe::log::Follower> {
        [&self.stdout, &self.stderr]
            .into_iter()
            .flatten()
            .map(|sink| probe::log::Follower::of(sink))
            .collect()
    }

    /// The next health check, an `interval` from now.
    fn next_health(&mut self, ctx: &mut Context<Self>) {
        let Some(health) = &self.ctx.program.health else {
            return;
        };
        self.probe = Some(ctx.run_later(health.interval, |act, ctx| act.probe_health(ctx)));
    }

    fn probe_health(&mut self, ctx: &mut Context<Self>) {
        self.probe = None;
        let (Some(health), Some(pid)) = (self.ctx.program.health.clone(), self.machine.pid())
        else {
            return;
        };
        if self.probing != Some(Probing::Health) {
            return;
        }
        let fut: ProbeFuture = match &health.probe {
            // Alive when it sent WATCHDOG=1 since the last check.
            Probe::Notify => {
                let fed = std::mem::take(&mut self.fed_since_check);
                let missed = format!("no WATCHDOG=1 in {}", state::secs(health.interval));
                Box::pin(async move { if fed { Ok(()) } else { Err(missed) } })
            }
            // A matching line within the check's budget.
            Probe::Log(pattern) => {
                let followers = self.log_followers();
                let pattern = pattern.clone();
                let budget = health.timeout;
                Box::pin(async move {
                    match tokio::time::timeout(budget, probe::log(&pattern, followers)).await {
                        Ok(result) => result,
                        Err(_) => Err(format!("no line matched in {}", state::secs(budget))),
                    }
                })
            }
            probe => match self.probe_once(probe, health.timeout) {
                Some(fut) => fut,
                None => return,
            },
        };
        self.probe = Some(ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.probe = None;
            act.apply(Event::Health { pid, result }, Instant::now(), ctx);
            if act.probing == Some(Probing::Health) && act.machine.pid() == Some(pid) {
                act.next_health(ctx);
            }
        })));
    }

    /// A fresh `NOTIFY_SOCKET` for the next child, given to the program's
    /// user when it runs as another one.
    fn bind_notify(&self) -> std::io::Result<NotifySocket> {
        let root = probe::notify::runtime_dir()?;
        let owner = self.ctx.program.user.as_ref().map(|u| (u.uid, u.gid));
        NotifySocket::bind(&root, owner)
    }

    /// Reads child `pid`'s notifications until the socket is dropped (the
    /// next spawn, or no child left): one datagram at a time.
    fn read_notify(&mut self, socket: Rc<NotifySocket>, pid: u32, ctx: &mut Context<Self>) {
        let reading = Rc::clone(&socket);
        let recv = async move {
            reading
                .recv(|sender| sender == pid || probe::notify::descends_from(sender, pid))
                .await
        };
        self.notify = Some(
            ctx.spawn(recv.into_actor(self).map(move |received, act, ctx| {
                act.notify = None;
                match received {
                    Ok(probe::notify::Received::Message(message)) => {
                        act.on_notify(message, pid, ctx);
                    }
                    Ok(probe::notify::Received::Refused(why)) => {
                        tracing::warn!(process = %act.name, "notify message refused: {why}");
                    }
                    Err(e) => {
                        tracing::error!(process = %act.name, "cannot read NOTIFY_SOCKET: {e}");
                        return;
                    }
                }
                // Unless the child is gone (or replaced) meanwhile.
                if act.machine.pid() == Some(pid) && act.notify.is_none() {
                    act.read_notify(socket, pid, ctx);
                }
            })),
        );
    }

    fn on_notify(&mut self, message: probe::notify::Message, pid: u32, ctx: &mut Context<Self>) {
        use probe::notify::Notification as N;
        for why in &message.ignored {
            tracing::warn!(process = %self.name, "notify: {why}");
        }
        let ready_by_notify = self
            .ctx
            .program
            .ready
            .as_ref()
            .is_some_and(|r| r.probe == Probe::Notify);
        for notification in message.notifications {
            let now = Instant::now();
            match notification {
                N::Ready if ready_by_notify => self.apply(Event::Ready { pid }, now, ctx),
                N::Ready => {}
                N::Status(text) => self.apply(Event::StatusText { pid, text }, now, ctx),
                N::Watchdog => {
                    self.fed_since_check = true;
                    self.apply(Event::Watchdog { pid }, now, ctx);
                }
                N::Stopping => {
                    tracing::info!(process = %self.name, pid, "the program says it is stopping (STOPPING=1)");
                }
                N::Errno(errno) => {
                    let text = Errno::from_raw(errno).desc();
                    tracing::warn!(process = %self.name, pid, "the program reports ERRNO={errno} ({text})");
                }
                N::ExtendTimeout(by) => self.apply(Event::ExtendTimeout { pid, by }, now, ctx),
            }
        }
    }

    fn signal_group(&self, pgid: u32, signal: Signal) {
        if let Err(e) = pgroup::send(pgid, signal)
            && e != Errno::ESRCH
        {
            tracing::error!(process = %self.name, pgid, signal = %signal, error = %e,
                "cannot signal process group");
        }
    }

    fn log(&self, level: Level, message: &str) {
        let (name, pid) = (&self.name, self.last_pid);
        match level {
            Level::Info => tracing::info!(process = %name, pid, "{message}"),
            Level::Warn => tracing::warn!(process = %name, pid, "{message}"),
            Level::Error => tracing::error!(process = %name, pid, "{message}"),
        }
    }

    fn outcome(&self, ok: bool, message: String) -> Outcome {
        Outcome {
            name: self.name(),
            ok,
            state: self.machine.state(),
            message,
            output_tail: Vec::new(),
        }
    }

    fn resolve(&mut self, resolve: Resolve, ctx: &mut Context<Self>) {
        match resolve {
            Resolve::Started(message) => {
                let outcome = self.outcome(true, message);
                for w in self.start_waiters.drain(..) {
                    let _ = w.send(outcome.clone());
                }
            }
            Resolve::Stopped(message) => {
                let outcome = self.outcome(true, message);
                for w in self.stop_waiters.drain(..) {
                    let _ = w.send(outcome.clone());
                }
            }
            Resolve::StartFailed(reason) => {
                let waiters = std::mem::take(&mut self.start_waiters);
                if waiters.is_empty() {
                    return;
                }
                let mut outcome = self.outcome(false, reason);
                let sink = self.stderr.clone().or_else(|| self.stdout.clone());
                let name = self.name();
                // Answered once the pipes are drained, so the tail shows the
                // program's last words.
                ctx.spawn(
                    async move {
                        if let Some(sink) = sink {
                            sink.settle(FAILURE_TAIL_SETTLE).await;
                            match sink.tail(FAILURE_TAIL_LINES) {
                                Ok(lines) => outcome.output_tail = lines,
                                Err(e) if e.is_not_found() => {}
                                Err(e) => tracing::warn!(process = %name,
                                    "cannot show the output of the failed start: {e}"),
                            }
                        }
                        for w in waiters {
                            let _ = w.send(outcome.clone());
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }

    /// Parks a start waiter; the returned future yields its outcome.
    fn wait_start(&mut self) -> impl Future<Output = Outcome> + 'static {
        let (tx, rx) = oneshot::channel();
        self.start_waiters.push(tx);
        self.waiting(rx)
    }

    fn wait_stop(&mut self) -> impl Future<Output = Outcome> + 'static {
        let (tx, rx) = oneshot::channel();
        self.stop_waiters.push(tx);
        self.waiting(rx)
    }

    fn waiting(&self, rx: oneshot::Receiver<Outcome>) -> impl Future<Output = Outcome> + 'static {
        let name = self.name();
        async move {
            rx.await.unwrap_or_else(|_| Outcome {
                name,
                ok: false,
                state: ProcessState::Stopped,
                message: "instance removed before the request completed".into(),
                output_tail: Vec::new(),
            })
        }
    }

    fn refuse_start(&self) -> ResponseFuture<Outcome> {
        let outcome = self.outcome(false, "instance is being removed".into());
        Box::pin(async move { outcome })
    }
}

/// The sink of one stream, or `None` when it is discarded.
fn output_sink(
    program: &ProgramConfig,
    index: u32,
    stream: OutputStream,
) -> Option<Arc<OutputSink>> {
    let path = program.output_path(stream, index)?;
    let create_dir = match (stream, &program.stdout, &program.stderr) {
        (OutputStream::Stdout, OutputTarget::InstanceFileIn(dir), _)
        | (OutputStream::Stderr, _, OutputTarget::InstanceFileIn(dir)) => Some(dir.clone()),
        _ => None,
    };
    Some(OutputSink::new(&program.name, stream, path, create_dir))
}

/// Whether `program` talks the notification protocol: a `notify` probe or
/// a watchdog.
fn uses_notify(program: &ProgramConfig) -> bool {
    program
        .ready
        .as_ref()
        .is_some_and(|r| r.probe == Probe::Notify)
        || program
            .health
            .as_ref()
            .is_some_and(|h| h.probe == Probe::Notify)
        || program.watchdog.is_some()
}

/// A hook's or exec probe's failure in one line: why, and its last line
/// (`exited with status 3: migration 7 failed`).
fn helper_error(failure: &helper::HelperFailure) -> String {
    match failure
        .last_lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
    {
        Some(line) => format!("{}: {}", failure.reason, line.trim()),
        None => failure.reason.to_string(),
    }
}

impl Actor for ProcessActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if descendants::fallback_active() {
            ctx.run_interval(TREE_WALK_EVERY, |act, _| {
                if act.leader.is_some_and(|l| l.alive()) {
                    act.walk_tree();
                }
            });
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(pgid) = self.machine.pgid()
            && pgroup::alive(pgid)
        {
            tracing::warn!(process = %self.name, pgid, "actor stopped with a live process group; killing it");
            self.signal_group(pgid, Signal::Kill);
        }
        if self.known_alive() {
            tracing::warn!(process = %self.name, "actor stopped with live descendants; killing them");
            self.kill_known();
        }
        if descendants::fallback_active() {
            fallback::record(&self.name, Vec::new());
        }
        if self.cgroup_populated() {
            tracing::warn!(process = %self.name, "actor stopped with a live cgroup; killing it");
            self.kill_cgroup();
        } else if let Some(cgroup) = &self.cgroup
            && let Err(e) = cgroup.remove()
        {
            tracing::debug!(process = %self.name, error = %e, "cannot remove the cgroup");
        }
        let outcome = self.outcome(
            false,
            "instance removed before the request completed".into(),
        );
        for w in self
            .start_waiters
            .drain(..)
            .chain(self.stop_waiters.drain(..))
        {
            let _ = w.send(outcome.clone());
        }
    }
}

/// Start the instance. Resolves once it is RUNNING (passed `starttime`), or
/// its start failed (BACKOFF or FATAL), with the failure's reason and output
/// tail. Already RUNNING: resolves at once, ok. Concurrent starts share the
/// one outcome; nothing is spawned twice.
#[derive(Debug, Message)]
#[rtype(result = "Outcome")]
pub struct Start;

/// Stop the instance. Resolves once its whole process group is gone
/// (after SIGKILL escalation if needed).
#[derive(Debug, Message)]
#[rtype(result = "Outcome")]
pub struct Stop;

/// Stop (if alive) then start; resolves like [`Start`].
#[derive(Debug, Message)]
#[rtype(result = "Outcome")]
pub struct Restart;

/// Stop, then stop the actor (program removed or scaled down).
#[derive(Debug, Message)]
#[rtype(result = "Outcome")]
pub struct Retire;

/// Deliver a signal to the instance's process group.
#[derive(Debug, Message)]
#[rtype(result = "Outcome")]
pub struct SendSignal(pub Signal);

/// The instance's status line.
#[derive(Debug, Message)]
#[rtype(result = "ProcessInfo")]
pub struct GetInfo;

/// Apply a program config whose changes are policy-only (no respawn).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UpdatePolicy(pub Arc<ProgramConfig>);

/// A follow stream for `tail -f`: raw chunks as they are written.
pub type OutputFollower = broadcast::Receiver<output::FollowedChunk>;

/// The last lines of an output stream, and optionally a follower.
#[derive(Debug, Message)]
#[rtype(result = "Result<(TailReply, Option<OutputFollower>), (ErrorKind, String)>")]
pub struct Tail {
    pub stream: OutputStream,
    pub lines: usize,
    pub follow: bool,
}

impl Handler<Start> for ProcessActor {
    type Result = ResponseFuture<Outcome>;
    fn handle(&mut self, _: Start, ctx: &mut Self::Context) -> Self::Result {
        if self.retiring {
            return self.refuse_start();
        }
        let done = self.wait_start();
        self.apply(Event::Start, Instant::now(), ctx);
        Box::pin(done)
    }
}

impl Handler<Stop> for ProcessActor {
    type Result = ResponseFuture<Outcome>;
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) -> Self::Result {
        let done = self.wait_stop();
        self.apply(Event::Stop, Instant::now(), ctx);
        Box::pin(done)
    }
}

impl Handler<Restart> for ProcessActor {
    type Result = ResponseFuture<Outcome>;
    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) -> Self::Result {
        if self.retiring {
            return self.refuse_start();
        }
        // The stop half answers earlier starts; this request waits for the
        // start that follows (remembered while STOPPING).
        self.apply(Event::Stop, Instant::now(), ctx);
        let done = self.wait_start();
        self.apply(Event::Start, Instant::now(), ctx);
        Box::pin(done)
    }
}

impl Handler<Retire> for ProcessActor {
    type Result = ResponseActFuture<Self, Outcome>;
    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) -> Self::Result {
        self.retiring = true;
        let done = self.wait_stop();
        self.apply(Event::Stop, Instant::now(), ctx);
        Box::pin(done.into_actor(self).map(|outcome, _, ctx| {
            ctx.stop();
            outcome
        }))
    }
}

impl Handler<SendSignal> for ProcessActor {
    type Result = ResponseFuture<Outcome>;
    fn handle(&mut self, msg: SendSignal, _: &mut Self::Context) -> Self::Result {
        let signal = msg.0;
        let outcome = match self.machine.pgid() {
            Some(pgid) if self.machine.state().is_alive() => match pgroup::send(pgid, signal) {
                Ok(()) => {
                    tracing::info!(process = %self.name, pid = self.last_pid,
                        "sent SIG{signal}");
                    self.outcome(true, format!("sent SIG{signal}"))
                }
                Err(e) => self.outcome(false, format!("cannot send SIG{signal}: {e}")),
            },
            _ => self.outcome(false, "not running".into()),
        };
        Box::pin(async move { outcome })
    }
}

impl Handler<GetInfo> for ProcessActor {
    type Result = actix::MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(process_info(
            &self.name,
            &self.ctx.program.name,
            self.ctx.index,
            &self.machine,
            Instant::now(),
        ))
    }
}

impl Handler<UpdatePolicy> for ProcessActor {
    type Result = ();
    fn handle(&mut self, msg: UpdatePolicy, ctx: &mut Self::Context) {
        // Armed timers keep their deadline; the next decision uses these,
        // and a change of ready, health or watchdog applies at once.
        let old = std::mem::replace(&mut self.policy, Policy::of(&msg.0));
        // A moved output file takes effect at the next spawn: the running
        // child keeps writing through its pipe into the old sink.
        let index = self.ctx.index;
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let (old, new) = (
                self.ctx.program.output_path(stream, index),
                msg.0.output_path(stream, index),
            );
            if old != new {
                let sink = output_sink(&msg.0, index, stream);
                match stream {
                    OutputStream::Stdout => self.stdout = sink,
                    OutputStream::Stderr => self.stderr = sink,
                }
            }
        }
        self.ctx.program = msg.0;
        if old != self.policy {
            let ev = Event::PolicyChanged { old: Box::new(old) };
            self.apply(ev, Instant::now(), ctx);
        }
    }
}

/// SIGKILL the instance's whole process group now (second SIGTERM during a
/// shutdown). The state machine then sees the exit as usual.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Kill;

impl Handler<Kill> for ProcessActor {
    type Result = ();
    fn handle(&mut self, _: Kill, _: &mut Self::Context) {
        if let Some(pgid) = self.machine.pgid() {
            tracing::warn!(process = %self.name, pid = self.last_pid, "killed (forced shutdown)");
            self.signal_group(pgid, Signal::Kill);
        }
        self.kill_cgroup();
        self.kill_known();
    }
}

/// Reopen the output files at their paths (SIGUSR2, after log rotation).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReopenOutput;

impl Handler<ReopenOutput> for ProcessActor {
    type Result = ();
    fn handle(&mut self, _: ReopenOutput, _: &mut Self::Context) {
        for sink in self.stdout.iter().chain(self.stderr.iter()) {
            if let Err(e) = sink.open() {
                tracing::error!(process = %self.name, "cannot reopen output file: {e}");
            }
        }
    }
}

impl Handler<Tail> for ProcessActor {
    type Result = Result<(TailReply, Option<OutputFollower>), (ErrorKind, String)>;
    fn handle(&mut self, msg: Tail, _: &mut Self::Context) -> Self::Result {
        let sink = match msg.stream {
            OutputStream::Stdout => &self.stdout,
            OutputStream::Stderr => &self.stderr,
        };
        let Some(sink) = sink else {
            let stream = msg.stream;
            return Err((
                ErrorKind::Failed,
                format!("{} {stream} is discarded ({stream}: null)", self.name),
            ));
        };
        // Subscribed before reading, so nothing falls between tail and follow.
        let follower = msg.follow.then(|| sink.subscribe());
        let lines = match sink.tail(msg.lines) {
            Ok(lines) => lines,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => {
                return Err((ErrorKind::Failed, e.to_string()));
            }
        };
        Ok((
            TailReply {
                name: self.name(),
                stream: msg.stream,
                path: sink.path().display().to_string(),
                lines,
            },
            follower,
        ))
    }
}

impl Handler<ChildExited> for ProcessActor {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        let ev = Event::Exited {
            pid: msg.pid,
            status: msg.status,
        };
        self.apply(ev, msg.at, ctx);
    }
}

#[cfg(test)]
pub(crate) mod tests;
