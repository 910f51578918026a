//! Registry: the root actor. It owns the running configuration and one
//! [`ProgramActor`] per program, and is the only door into them.
//!
//! Every client request arrives here as [`Control`] (from a session actor):
//! targets are parsed ([`proto::Target`]: `NAME`, `NAME:INDEX`, `all`) and resolved against the running
//! config, the work is fanned out to the program actors, and the answers are
//! gathered into one [`proto::Response`]. Signals arrive as [`Shutdown`] (and,
//! later, reload). Shutdown is phased: stop accepting sessions, retire every
//! program (stop signal, SIGKILL after `stoptime`), wait for all of them, let
//! the Notifier flush its mail (`notifier::Flush`, at most
//! `email.smtp.timeout`), then stop the System with exit code 0.
//!
//! Dependency order (`depends_on`, see `actors/deps.rs`): `start` of a
//! program also starts what it depends on, transitively, each program's
//! `program::Start` sent once its dependencies' starts answered; `stop`
//! (and the shutdown, and programs a reload removes) stops what depends on
//! a program before it. The Registry relays each program's
//! [`program::ProgramStateChanged`] to its direct dependents
//! (`program::DependenciesChanged`). At daemon start, the dependencies of
//! an `autostart` program are started with it even without `autostart`.
//!
//! Handles: [`Control`], [`Reload`], [`ReopenLogs`], [`Shutdown`],
//! [`ExitNow`], `program::ProgramStateChanged`. Sends: program messages;
//! cancels `accepting` (the Listener then stops) at shutdown;
//! the Notifier's `UpdateEmail` and `NotifyTest`.
//! Stops: last, by stopping the System.

use crate::actors::blocking::off_thread;
use crate::actors::deps::{self, Board, Step};
use crate::actors::notifier::{self, Notifier, SecretEnv};
use crate::actors::process::OutputFollower;
use crate::actors::process::pacer::StartPacer;
use crate::actors::program::{self, Keep, ProgramActor};
use crate::actors::reaper::ChildTable;
use crate::config::{self, Config, DependCondition, ProgramConfig};
use crate::eventlog::EventLog;
use crate::reload;
use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, System,
    WrapFuture,
};
use futures::FutureExt;
use futures::future::{LocalBoxFuture, Shared, join_all};
use proto::{
    AvailEntry, Done, ErrorKind, ErrorReply, Outcome, PidEntry, ProcessInfo, ProcessState,
    ReloadSummary, Request, Response, TailReply, Target, VersionInfo,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How long a reload may take to read and validate the config file.
pub const RELOAD_READ_LIMIT: Duration = Duration::from_secs(10);

/// How long a client's `shutdown` reply may take to flush before the daemon
/// exits anyway.
const SHUTDOWN_FLUSH_GRACE: Duration = Duration::from_secs(1);

/// What the Registry needs to start.
#[derive(Debug)]
pub struct RegistryInit {
    pub config: Config,
    pub children: ChildTable,
    /// Cancelled when the daemon stops accepting control connections
    /// (shutdown). A token rather than a message to the Listener: the
    /// Registry does not depend on the front end that depends on it.
    pub accepting: CancellationToken,
    pub event_log: Option<EventLog>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    ShuttingDown,
}

/// The root actor.
pub struct Registry {
    config: Arc<Config>,
    /// One actor per program of `config` (which holds their configs).
    programs: BTreeMap<String, Addr<ProgramActor>>,
    children: ChildTable,
    /// Paces every automatic start (see [`StartPacer`]).
    pacer: StartPacer,
    accepting: CancellationToken,
    /// Programs removed by a reload whose instances are still stopping;
    /// shutdown waits for them too.
    retiring: Vec<Addr<ProgramActor>>,
    event_log: Option<EventLog>,
    phase: Phase,
    shutdown_waiters: Vec<oneshot::Sender<usize>>,
    /// Sends the mails of `notify` rules; started with the Registry.
    notifier: Option<Addr<Notifier>>,
    /// The SMTP password's variable, kept from every child.
    secret_env: SecretEnv,
    /// Who waits for the reload whose file is being read (`None`: no read
    /// under way).
    reloading: Option<Vec<ReloadDone>>,
    /// Reloads asked for during that read: the file is read again for them
    /// once it is applied (it may have changed since the read began).
    reload_next: Vec<ReloadDone>,
    /// Every program's dependency summary (see `actors/deps.rs`).
    board: Board,
    /// program → the programs that name it in `depends_on`, from `config`.
    dependents: BTreeMap<String, Vec<String>>,
}

/// Told the outcome of one reload request.
type ReloadDone = Box<dyn FnOnce(Result<ReloadSummary, Vec<String>>)>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("programs", &self.programs.len())
            .field("phase", &self.phase)
            .finish()
    }
}

impl Registry {
    pub fn new(init: RegistryInit) -> Self {
        let secret_env = SecretEnv::of(init.config.email.as_ref());
        let dependents = deps::direct_dependents(&init.config.programs);
        Registry {
            board: Board::default(),
            dependents,
            config: Arc::new(init.config),
            programs: BTreeMap::new(),
            children: init.children,
            pacer: StartPacer::default(),
            accepting: init.accepting,
            retiring: Vec::new(),
            event_log: init.event_log,
            phase: Phase::Running,
            reloading: None,
            reload_next: Vec::new(),
            shutdown_waiters: Vec::new(),
            notifier: None,
            secret_env,
        }
    }

    fn add_program(&mut self, config: Arc<ProgramConfig>, ctx: &mut Context<Self>) {
        let events = self.notifier.as_ref().map(|n| n.clone().recipient());
        let changed = ctx.address().recipient();
        let addr = ProgramActor::new(config.clone(), self.children.clone(), self.pacer.clone())
            .with_notifier(events, self.secret_env.clone())
            .with_deps(self.board.clone(), Some(changed))
            .start();
        self.programs.insert(config.name.clone(), addr);
    }

    /// Starts the dependencies of the `autostart` programs among `names`
    /// that have no `autostart` of their own (they would wait forever
    /// otherwise); their own gates order them.
    fn start_needed(&self, names: &[String]) {
        let programs = &self.config.programs;
        let wanted: BTreeSet<String> = names
            .iter()
            .filter(|n| programs.get(*n).is_some_and(|p| p.autostart))
            .cloned()
            .collect();
        if wanted.is_empty() || !deps::any(programs) {
            return;
        }
        for step in deps::start_plan(programs, &wanted) {
            let Some(config) = programs.get(&step.name) else {
                continue;
            };
            if step.asked || config.autostart {
                continue;
            }
            if let Some(addr) = self.programs.get(&step.name) {
                addr.do_send(program::Start {
                    indexes: None,
                    wait: false,
                    for_dependents: Some(keep_for(programs, &step.name)),
                });
            }
        }
    }

    /// Resolves user targets into (program, instance indexes); `None` selects
    /// every instance. Duplicates are merged; order follows program names.
    fn resolve(&self, targets: &[String]) -> Result<Vec<Selection>, TargetError> {
        let mut chosen: BTreeMap<String, Option<Vec<u32>>> = BTreeMap::new();
        for target in targets {
            let target = target.trim();
            let parsed = target
                .parse::<Target>()
                .map_err(|e| TargetError(ErrorKind::UnknownTarget, e.to_string()))?;
            let (name, index) = match &parsed {
                Target::All => {
                    for name in self.programs.keys() {
                        chosen.insert(name.clone(), None);
                    }
                    continue;
                }
                Target::Program(name) => (name.as_str(), None),
                Target::Instance(name, index) => (name.as_str(), Some(*index)),
            };
            let Some(numprocs) = self.numprocs(name) else {
                return Err(TargetError(
                    ErrorKind::UnknownTarget,
                    unknown_program(name, &self.programs),
                ));
            };
            match index {
                None => {
                    chosen.insert(name.to_string(), None);
                }
                Some(i) if i >= numprocs => {
                    return Err(TargetError(
                        ErrorKind::UnknownTarget,
                        format!(
                            "no such process: {target} ({name} has {} instance(s), {name}:0 to {name}:{})",
                            numprocs,
                            numprocs.saturating_sub(1)
                        ),
                    ));
                }
                Some(i) => {
                    // `None` in the map already means every instance.
                    if let Some(list) = chosen
                        .entry(name.to_string())
                        .or_insert_with(|| Some(Vec::new()))
                    {
                        if !list.contains(&i) {
                            list.push(i);
                        }
                    }
                }
            }
        }
        Ok(chosen
            .into_iter()
            .filter_map(|(name, indexes)| {
                Some(Selection {
                    addr: self.programs.get(&name)?.clone(),
                    numprocs: self.numprocs(&name)?,
                    indexes: indexes.map(sorted),
                    name,
                })
            })
            .collect())
    }

    /// Instances of a running program, from the running config.
    fn numprocs(&self, name: &str) -> Option<u32> {
        self.programs.get(name)?;
        self.config.programs.get(name).map(|p| p.numprocs)
    }

    fn selection_or_all(&self, targets: &[String]) -> Result<Vec<Selection>, TargetError> {
        if targets.is_empty() {
            return self.resolve(&["all".to_string()]);
        }
        self.resolve(targets)
    }

    /// Begins the shutdown sequence once; `done` is told how many programs
    /// were retired when everything is gone.
    fn begin_shutdown(&mut self, ctx: &mut Context<Self>, done: Option<oneshot::Sender<usize>>) {
        if let Some(done) = done {
            self.shutdown_waiters.push(done);
        }
        if self.phase == Phase::ShuttingDown {
            return;
        }
        self.phase = Phase::ShuttingDown;
        tracing::info!(
            programs = self.programs.len(),
            "daemon stopping: stopping every program"
        );
        self.accepting.cancel();
        // Programs a reload removed may still be stopping: wait for them too
        // (a second Retire joins the stop in progress). Dependents stop
        // before what they depend on.
        let all: BTreeSet<String> = self.programs.keys().cloned().collect();
        let ordered = self.retire_in_order(&self.config.programs, &all);
        let retiring: Vec<_> = self
            .retiring
            .iter()
            .map(|addr| addr.send(program::Retire))
            .collect();
        let count = all.len() + retiring.len();
        let stopped = futures::future::join(ordered, join_all(retiring));
        let stopped = stopped.into_actor(self).then(move |_, act, _| {
            act.programs.clear();
            tracing::info!(programs = count, "daemon stopped: every program is stopped");
            // Queued mails and open digests go out first, within
            // email.smtp.timeout.
            let notifier = act.notifier.clone();
            async move {
                if let Some(notifier) = notifier {
                    let _ = notifier.send(notifier::Flush).await;
                }
            }
            .into_actor(act)
        });
        ctx.spawn(stopped.map(move |_, act, ctx| {
            let waiters = std::mem::take(&mut act.shutdown_waiters);
            if waiters.is_empty() {
                System::current().stop_with_code(0);
                return;
            }
            for w in waiters {
                let _ = w.send(count);
            }
            // The client that asked gets its reply flushed first (ExitNow);
            // never wait for it forever.
            ctx.run_later(SHUTDOWN_FLUSH_GRACE, |_, _| {
                System::current().stop_with_code(0)
            });
        }));
    }

    fn control(
        &mut self,
        request: Request,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<ControlReply> {
        // While shutting down, reading is fine (watch it progress); changing
        // the fleet is not.
        if self.phase == Phase::ShuttingDown
            && !matches!(
                request,
                Request::Version
                    | Request::Avail
                    | Request::Shutdown
                    | Request::Status(_)
                    | Request::Pid(_)
                    | Request::Tail(_)
            )
        {
            return ready(Response::error(
                ErrorKind::ShuttingDown,
                "taskmasterd is shutting down",
            ));
        }
        match request {
            Request::Hello(_) => ready(Response::error(
                ErrorKind::BadRequest,
                "already authenticated",
            )),
            Request::Version => ready(Response::Version(VersionInfo {
                daemon_version: proto::SUITE_VERSION.to_string(),
                protocol_version: proto::PROTOCOL_VERSION,
            })),
            Request::Status(r) => match self.selection_or_all(&r.targets) {
                Err(e) => ready(e.into()),
                Ok(sel) => Box::pin(async move {
                    let parts = join_all(
                        sel.into_iter()
                            .map(|s| s.addr.send(program::Status { indexes: s.indexes })),
                    )
                    .await;
                    let infos: Vec<ProcessInfo> = parts.into_iter().flatten().flatten().collect();
                    ControlReply::Response(Response::Status(infos))
                }),
            },
            Request::Start(r) if deps::any(&self.config.programs) => {
                self.ordered(&r.targets, r.wait, Direction::Start, ctx)
            }
            Request::Stop(r) if deps::any(&self.config.programs) => {
                self.ordered(&r.targets, r.wait, Direction::Stop, ctx)
            }
            Request::Start(r) => self.outcomes(&r.targets, move |s| {
                s.addr.send(program::Start {
                    indexes: s.indexes,
                    wait: r.wait,
                    for_dependents: None,
                })
            }),
            Request::Stop(r) => self.outcomes(&r.targets, move |s| {
                s.addr.send(program::Stop {
                    indexes: s.indexes,
                    wait: r.wait,
                    for_dependency: false,
                })
            }),
            Request::Restart(r) => self.outcomes(&r.targets, move |s| {
                s.addr.send(program::Restart {
                    indexes: s.indexes,
                    wait: r.wait,
                })
            }),
            Request::Signal(r) => {
                let signal = r.signal;
                self.outcomes(&r.targets, move |s| {
                    s.addr.send(program::SignalInstances {
                        indexes: s.indexes,
                        signal,
                    })
                })
            }
            Request::Pid(r) => match r.target {
                None => ready(Response::Pids(vec![PidEntry {
                    name: "taskmasterd".into(),
                    pid: Some(std::process::id()),
                }])),
                Some(target) => match self.resolve(&[target]) {
                    Err(e) => ready(e.into()),
                    Ok(sel) => Box::pin(async move {
                        let parts = join_all(
                            sel.into_iter()
                                .map(|s| s.addr.send(program::Pids { indexes: s.indexes })),
                        )
                        .await;
                        ControlReply::Response(Response::Pids(
                            parts.into_iter().flatten().flatten().collect(),
                        ))
                    }),
                },
            },
            Request::Tail(r) => {
                let (addr, index) = match self.one_instance(&r.target) {
                    Ok(x) => x,
                    Err(e) => return ready(e.into()),
                };
                Box::pin(async move {
                    let tail = program::TailInstance {
                        index,
                        stream: r.stream,
                        lines: r.lines,
                        follow: r.follow,
                    };
                    match addr.send(tail).await {
                        Ok(Ok((reply, Some(follower)))) => ControlReply::Follow(reply, follower),
                        Ok(Ok((reply, None))) => ControlReply::Response(Response::Tail(reply)),
                        Ok(Err((kind, message))) => {
                            ControlReply::Response(Response::error(kind, message))
                        }
                        Err(_) => ControlReply::Response(Response::error(
                            ErrorKind::Internal,
                            "program went away",
                        )),
                    }
                })
            }
            Request::Reload => {
                let (tx, rx) = oneshot::channel();
                let file = self.config.file.clone();
                self.reload(ctx, move |result| {
                    let _ = tx.send(result);
                });
                Box::pin(async move {
                    ControlReply::Response(match rx.await {
                        Ok(Ok(summary)) => Response::Reload(summary),
                        Ok(Err(problems)) => Response::Error(ErrorReply {
                            kind: ErrorKind::Failed,
                            message: format!(
                                "reload rejected: {} problem(s) in {}; the running config is unchanged",
                                problems.len(),
                                file.display()
                            ),
                            details: problems,
                        }),
                        Err(_) => Response::error(ErrorKind::Internal, "the reload was abandoned"),
                    })
                })
            }
            Request::NotifyTest(r) => self.notify_test(r.program.trim()),
            Request::Avail => ready(Response::Avail(
                self.config
                    .programs
                    .values()
                    .map(|p| AvailEntry {
                        name: p.name.clone(),
                        numprocs: p.numprocs,
                        autostart: p.autostart,
                        cmd: p.cmd.clone(),
                    })
                    .collect(),
            )),
            Request::Shutdown => {
                let (tx, rx) = oneshot::channel();
                self.begin_shutdown(ctx, Some(tx));
                Box::pin(async move {
                    let message = match rx.await {
                        Ok(n) => format!("taskmasterd stopped ({n} program(s) stopped)"),
                        Err(_) => "taskmasterd is stopping".to_string(),
                    };
                    ControlReply::ShutdownDone(Response::Done(Done { message }))
                })
            }
        }
    }

    /// Re-reads the config file and applies the difference, then calls
    /// `done` with the summary; on an invalid file nothing changes and every
    /// problem is given (and logged).
    ///
    /// Reading and validating the file may block (a slow disk, a FIFO, a
    /// user name resolved through the network by NSS, a password file's
    /// `stat`), so it runs on tokio's blocking pool, bounded by
    /// [`RELOAD_READ_LIMIT`]; the Registry goes on answering meanwhile.
    /// The difference is applied on the actor thread, one reload at a time.
    fn reload(
        &mut self,
        ctx: &mut Context<Self>,
        done: impl FnOnce(Result<ReloadSummary, Vec<String>>) + 'static,
    ) {
        match &mut self.reloading {
            Some(_) => self.reload_next.push(Box::new(done)),
            None => {
                self.reloading = Some(vec![Box::new(done)]);
                self.read_config(ctx);
            }
        }
    }

    fn read_config(&mut self, ctx: &mut Context<Self>) {
        let file = self.config.file.clone();
        let load = async move {
            let read = off_thread("config-reader", RELOAD_READ_LIMIT, move || {
                config::load(&file).map_err(|e| e.lines())
            });
            match read.await {
                Ok(loaded) => loaded,
                Err(e) => Err(vec![format!(
                    "reading the config: {e} (a FIFO, a hung file system or user lookup?)"
                )]),
            }
        };
        ctx.spawn(load.into_actor(self).map(|loaded, act, ctx| {
            let result = if act.phase == Phase::ShuttingDown {
                Err(vec!["the daemon is shutting down".to_string()])
            } else {
                act.apply_reload(loaded, ctx)
            };
            for done in act.reloading.take().unwrap_or_default() {
                done(result.clone());
            }
            if !act.reload_next.is_empty() {
                act.reloading = Some(std::mem::take(&mut act.reload_next));
                act.read_config(ctx);
            }
        }));
    }

    /// The second half of [`Registry::reload`], on the actor thread.
    fn apply_reload(
        &mut self,
        loaded: Result<Config, Vec<String>>,
        ctx: &mut Context<Self>,
    ) -> Result<ReloadSummary, Vec<String>> {
        let new = match loaded {
            Ok(new) => new,
            Err(problems) => {
                tracing::error!(
                    problems = problems.len(),
                    "reload rejected: keeping the running config"
                );
                for problem in &problems {
                    tracing::error!("reload rejected: {problem}");
                }
                return Err(problems);
            }
        };
        if let Err(e) = new.prepare_logs_dir() {
            // Not fatal: the spawns that need it fail into BACKOFF, with the
            // OS error in the log.
            tracing::error!(error = %e, "cannot create the logs directory");
        }
        let mut plan = reload::plan(&self.config, &new);
        for warning in &new.warnings {
            tracing::warn!("config: {warning}");
            plan.notes.push(format!("warning: {warning}"));
        }
        // Removed programs retire dependents first (by the old config);
        // each leaves `retiring` once stopped.
        let removed: BTreeSet<String> = plan
            .removed
            .iter()
            .filter(|name| self.programs.contains_key(*name))
            .cloned()
            .collect();
        let retire = self.retire_in_order(&self.config.programs, &removed);
        let gone: Vec<Addr<ProgramActor>> = removed
            .iter()
            .filter_map(|name| self.programs.get(name).cloned())
            .collect();
        for name in &removed {
            if let Some(addr) = self.programs.remove(name) {
                self.retiring.push(addr);
            }
            self.board.borrow_mut().remove(name);
        }
        ctx.spawn(retire.into_actor(self).map(move |_, act, _| {
            act.retiring.retain(|a| !gone.contains(a));
        }));
        for changed in &plan.changed {
            if let Some(addr) = self.programs.get(&changed.config.name) {
                addr.do_send(program::Apply {
                    config: changed.config.clone(),
                    change: changed.change,
                });
            }
        }
        for config in &plan.added {
            self.add_program(config.clone(), ctx);
        }
        self.secret_env.add(new.email.as_ref());
        if let Some(notifier) = &self.notifier {
            // Always: the Notifier also notices a changed password file.
            notifier.do_send(notifier::UpdateEmail(new.email.clone()));
        }
        if new.log != self.config.log {
            if let Some(log) = &self.event_log {
                if let Err(e) = log.apply(&new.log) {
                    plan.notes.push(format!("event log not changed: {e}"));
                }
            }
        }
        let summary = plan.summary();
        tracing::info!(
            added = ?summary.added,
            removed = ?summary.removed,
            restarted = ?summary.restarted,
            scaled = ?summary.scaled,
            updated = ?summary.updated,
            unchanged = summary.unchanged.len(),
            notes = ?summary.notes,
            "config reloaded"
        );
        self.config = Arc::new(new);
        self.dependents = deps::direct_dependents(&self.config.programs);
        let added: Vec<String> = plan.added.iter().map(|p| p.name.clone()).collect();
        self.start_needed(&added);
        Ok(summary)
    }

    /// `notify-test PROGRAM`: a test mail through the program's rules.
    fn notify_test(&self, name: &str) -> ResponseFuture<ControlReply> {
        let Some(program) = self.config.programs.get(name).cloned() else {
            return ready(Response::error(
                ErrorKind::UnknownTarget,
                unknown_program(name, &self.programs),
            ));
        };
        if program.notify.is_empty() {
            return ready(Response::error(
                ErrorKind::Failed,
                format!("no notify rules for {name}: add `notify:` to programs.{name}"),
            ));
        }
        let Some(notifier) = self.notifier.clone() else {
            return ready(Response::error(ErrorKind::Internal, "no notifier running"));
        };
        Box::pin(async move {
            ControlReply::Response(match notifier.send(notifier::NotifyTest(program)).await {
                Ok(Ok(message)) => Response::Done(Done { message }),
                Ok(Err(message)) => Response::error(ErrorKind::Failed, message),
                Err(_) => Response::error(ErrorKind::Internal, "the notifier went away"),
            })
        })
    }

    /// Resolves a target that must name exactly one instance.
    fn one_instance(&self, target: &str) -> Result<(Addr<ProgramActor>, u32), TargetError> {
        let sel = self.resolve(&[target.to_string()])?;
        let [s] = sel.as_slice() else {
            return Err(TargetError(
                ErrorKind::BadRequest,
                format!("{target:?} names several programs; name one instance, e.g. web:0"),
            ));
        };
        let numprocs = s.numprocs;
        match &s.indexes {
            Some(list) if list.len() == 1 => Ok((s.addr.clone(), list[0])),
            None if numprocs == 1 => Ok((s.addr.clone(), 0)),
            _ => Err(TargetError(
                ErrorKind::BadRequest,
                format!("{target} has {numprocs} instances; name one, e.g. {target}:0"),
            )),
        }
    }

    /// `start`/`stop` when some program has `depends_on`: the targets and
    /// what they pull in (their dependencies for a start, their dependents
    /// for a stop), each program told once the programs it comes after have
    /// answered. The reply lists every instance the plan told, in plan
    /// order. Without `wait` the plan still runs in order, in the
    /// background, and the reply (the targets only) comes at once.
    fn ordered(
        &mut self,
        targets: &[String],
        wait: bool,
        direction: Direction,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<ControlReply> {
        if targets.is_empty() {
            return ready(Response::error(
                ErrorKind::BadRequest,
                "name at least one target: NAME, NAME:INDEX or all",
            ));
        }
        let selection = match self.resolve(targets) {
            Ok(sel) => sel,
            Err(e) => return ready(e.into()),
        };
        let programs = &self.config.programs;
        let asked: BTreeMap<String, Option<Vec<u32>>> = selection
            .iter()
            .map(|s| (s.name.clone(), s.indexes.clone()))
            .collect();
        let names: BTreeSet<String> = asked.keys().cloned().collect();
        let plan = match direction {
            Direction::Start => deps::start_plan(programs, &names),
            Direction::Stop => deps::stop_plan(programs, &names),
        };
        let early = (!wait).then(|| {
            let (what, state) = match direction {
                Direction::Start => ("starting", ProcessState::Starting),
                Direction::Stop => ("stopping", ProcessState::Stopping),
            };
            selection
                .iter()
                .filter_map(|s| {
                    let config = programs.get(&s.name)?;
                    let indexes = s
                        .indexes
                        .clone()
                        .unwrap_or_else(|| (0..s.numprocs).collect());
                    Some(indexes.into_iter().map(move |i| Outcome {
                        name: config.instance_name(i),
                        ok: true,
                        state,
                        message: what.to_string(),
                        output_tail: Vec::new(),
                    }))
                })
                .flatten()
                .collect::<Vec<Outcome>>()
        });
        let addrs = self.programs.clone();
        let keep: BTreeMap<String, Keep> = plan
            .iter()
            .map(|step| (step.name.clone(), keep_for(programs, &step.name)))
            .collect();
        let run = run_plan(plan, move |step: Step| {
            let addr = addrs.get(&step.name).cloned();
            let indexes = asked.get(&step.name).cloned().flatten();
            let for_dependents =
                (!step.asked).then(|| keep.get(&step.name).copied().unwrap_or(Keep::Up));
            async move {
                let Some(addr) = addr else {
                    return Vec::new();
                };
                let answer = match direction {
                    Direction::Start => {
                        addr.send(program::Start {
                            indexes,
                            wait: true,
                            for_dependents,
                        })
                        .await
                    }
                    Direction::Stop => {
                        addr.send(program::Stop {
                            indexes,
                            wait: true,
                            for_dependency: !step.asked,
                        })
                        .await
                    }
                };
                answer.unwrap_or_default()
            }
        });
        match early {
            Some(outcomes) => {
                ctx.spawn(run.into_actor(self).map(|_, _, _| ()));
                ready(Response::Outcomes(outcomes))
            }
            None => Box::pin(async move { ControlReply::Response(Response::Outcomes(run.await)) }),
        }
    }

    /// `Retire` to the programs `names` (of `programs`), dependents first;
    /// the addresses are taken now.
    fn retire_in_order(
        &self,
        programs: &BTreeMap<String, Arc<ProgramConfig>>,
        names: &BTreeSet<String>,
    ) -> impl Future<Output = Vec<Outcome>> + 'static {
        let mut plan = deps::stop_plan(programs, names);
        // The plan pulls in dependents; a retire concerns only `names` (a
        // reload keeps a program that no longer depends on a removed one).
        plan.retain(|step| names.contains(&step.name));
        for step in &mut plan {
            step.after.retain(|n| names.contains(n));
        }
        // Programs the graph does not know (none, unless the config and the
        // actors disagree) retire at once.
        for name in names {
            if !plan.iter().any(|s| &s.name == name) {
                plan.push(Step {
                    name: name.clone(),
                    after: Vec::new(),
                    asked: true,
                });
            }
        }
        let addrs: BTreeMap<String, Addr<ProgramActor>> = names
            .iter()
            .filter_map(|n| Some((n.clone(), self.programs.get(n)?.clone())))
            .collect();
        run_plan(plan, move |step: Step| {
            let addr = addrs.get(&step.name).cloned();
            async move {
                match addr {
                    Some(addr) => addr.send(program::Retire).await.unwrap_or_default(),
                    None => Vec::new(),
                }
            }
        })
    }

    fn outcomes<F, Fut>(&self, targets: &[String], send: F) -> ResponseFuture<ControlReply>
    where
        F: Fn(Selection) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<Vec<proto::Outcome>, actix::MailboxError>>
            + 'static,
    {
        if targets.is_empty() {
            return ready(Response::error(
                ErrorKind::BadRequest,
                "name at least one target: NAME, NAME:INDEX or all",
            ));
        }
        match self.resolve(targets) {
            Err(e) => ready(e.into()),
            Ok(sel) => Box::pin(async move {
                let parts = join_all(sel.into_iter().map(send)).await;
                ControlReply::Response(Response::Outcomes(
                    parts.into_iter().flatten().flatten().collect(),
                ))
            }),
        }
    }
}

/// A target that cannot be served, as the reply to send.
#[derive(Debug)]
struct TargetError(ErrorKind, String);

impl From<TargetError> for Response {
    fn from(e: TargetError) -> Self {
        Response::error(e.0, e.1)
    }
}

struct Selection {
    name: String,
    addr: Addr<ProgramActor>,
    numprocs: u32,
    indexes: Option<Vec<u32>>,
}

/// Which way an ordered request goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// Dependencies first.
    Start,
    /// Dependents first.
    Stop,
}

/// What a start for dependents leaves alone in `name`: also its completed
/// instances when a program needs it `completed` (a one-shot job is not
/// run again).
fn keep_for(programs: &BTreeMap<String, Arc<ProgramConfig>>, name: &str) -> Keep {
    let completed = programs
        .values()
        .any(|p| p.depends_on.get(name) == Some(&DependCondition::Completed));
    match completed {
        true => Keep::UpOrCompleted,
        false => Keep::Up,
    }
}

type StepFuture = Shared<LocalBoxFuture<'static, Vec<Outcome>>>;

/// Runs a plan: each step is sent (`send`) once the steps it comes after
/// have answered; independent steps run at once. The outcomes in plan
/// order.
fn run_plan<F, Fut>(plan: Vec<Step>, send: F) -> impl Future<Output = Vec<Outcome>> + 'static
where
    F: Fn(Step) -> Fut + 'static,
    Fut: Future<Output = Vec<Outcome>> + 'static,
{
    let send = Rc::new(send);
    let mut steps: BTreeMap<String, StepFuture> = BTreeMap::new();
    let mut all = Vec::new();
    for step in plan {
        let before: Vec<StepFuture> = step
            .after
            .iter()
            .filter_map(|n| steps.get(n).cloned())
            .collect();
        let send = send.clone();
        let name = step.name.clone();
        let fut = async move {
            join_all(before).await;
            send(step).await
        }
        .boxed_local()
        .shared();
        steps.insert(name, fut.clone());
        all.push(fut);
    }
    async move { join_all(all).await.into_iter().flatten().collect() }
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

fn unknown_program(name: &str, programs: &BTreeMap<String, Addr<ProgramActor>>) -> String {
    // Damerau-Levenshtein catches transpositions (`wbe`) without suggesting
    // unrelated short names.
    let close = programs
        .keys()
        .map(|k| (strsim::normalized_damerau_levenshtein(name, k), k))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match close {
        Some((_, k)) => format!("no such program: {name} (did you mean {k}?)"),
        None => format!("no such program: {name}"),
    }
}

fn ready(response: Response) -> ResponseFuture<ControlReply> {
    Box::pin(async move { ControlReply::Response(response) })
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Sessions and signals use `send`/`do_send`; a roomy mailbox keeps a
        // burst of 256 sessions from queueing behind each other. (actix adds
        // the sender count to this, so it must stay far from usize::MAX.)
        ctx.set_mailbox_capacity(4096);
        self.notifier = Some(Notifier::new(self.config.email.clone()).start());
        let programs: Vec<_> = self.config.programs.values().cloned().collect();
        for program in programs {
            self.add_program(program, ctx);
        }
        let names: Vec<String> = self.config.programs.keys().cloned().collect();
        self.start_needed(&names);
        tracing::info!(
            programs = self.programs.len(),
            file = %self.config.file.display(),
            "config loaded"
        );
        for warning in &self.config.warnings {
            tracing::warn!("config: {warning}");
        }
    }
}

/// What a session should do with the answer to its request.
#[derive(Debug)]
pub enum ControlReply {
    /// Write it.
    Response(Response),
    /// Write the reply, then stream the follower's chunks until the client
    /// goes away.
    Follow(TailReply, OutputFollower),
    /// Write it, flush, then send [`ExitNow`] so the daemon exits.
    ShutdownDone(Response),
}

/// A client request, after authentication.
#[derive(Debug, Message)]
#[rtype(result = "ControlReply")]
pub struct Control(pub Request);

impl Handler<Control> for Registry {
    type Result = ResponseFuture<ControlReply>;

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) -> Self::Result {
        self.control(msg.0, ctx)
    }
}

/// SIGHUP: reload the config file (problems are logged).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for Registry {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        if self.phase == Phase::ShuttingDown {
            return;
        }
        tracing::info!("reload requested (SIGHUP)");
        self.reload(ctx, |_| {});
    }
}

/// SIGTERM/SIGINT: stop everything and exit 0. A second one during the
/// shutdown SIGKILLs every process group and exits at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Registry {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        if self.phase != Phase::ShuttingDown {
            self.begin_shutdown(ctx, None);
            return;
        }
        tracing::warn!("second stop signal: killing every process group and exiting");
        let kills: Vec<_> = self
            .programs
            .values()
            .chain(self.retiring.iter())
            .map(|addr| addr.send(program::KillAll))
            .collect();
        ctx.spawn(join_all(kills).into_actor(self).map(|_, _, _| {
            tracing::info!("daemon stopped (forced)");
            System::current().stop_with_code(0);
        }));
    }
}

/// SIGUSR2: reopen the event log and every output file at their paths
/// (after logrotate moved them away).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReopenLogs;

impl Handler<ReopenLogs> for Registry {
    type Result = ();

    fn handle(&mut self, _: ReopenLogs, _: &mut Self::Context) {
        if let Some(log) = &self.event_log
            && let Err(e) = log.reopen()
        {
            tracing::error!(error = %e, "cannot reopen the event log; still writing the old file");
        }
        for entry in self.programs.values() {
            entry.do_send(program::ReopenOutput);
        }
        tracing::info!("log files reopened (SIGUSR2)");
    }
}

/// A program's dependency summary changed: its direct dependents check
/// their gates again.
impl Handler<program::ProgramStateChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: program::ProgramStateChanged, _: &mut Self::Context) {
        for name in self.dependents.get(&msg.name).into_iter().flatten() {
            if let Some(addr) = self.programs.get(name) {
                addr.do_send(program::DependenciesChanged);
            }
        }
    }
}

/// The client that asked for `shutdown` has its reply; exit now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ExitNow;

impl Handler<ExitNow> for Registry {
    type Result = ();

    fn handle(&mut self, _: ExitNow, _: &mut Self::Context) {
        if self.phase == Phase::ShuttingDown && self.programs.is_empty() {
            System::current().stop_with_code(0);
        }
    }
}
