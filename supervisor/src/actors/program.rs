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
//! Handles: [`Start`], [`Stop`], [`Restart`], [`SignalInstances`],
//! [`Status`], [`Pids`], [`TailInstance`], [`Apply`], [`Retire`],
//! [`KillAll`], [`ReopenOutput`] (from the Registry).
//! Sends: the process messages. Stops: after [`Retire`], once every instance
//! is stopped.

use crate::actors::notifier::{InstanceEvent, SecretEnv};
use crate::actors::process::helper::HookGate;
use crate::actors::process::pacer::StartPacer;
use crate::actors::process::{self, InstanceContext, OutputFollower, ProcessActor, SharedInfo};
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
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

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
}

impl ProgramActor {
    pub fn new(config: Arc<ProgramConfig>, children: ChildTable, pacer: StartPacer) -> Self {
        ProgramActor {
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

    fn spawn_instance(&self, index: u32) -> (Addr<ProcessActor>, SharedInfo) {
        let actor = ProcessActor::new(InstanceContext {
            program: self.config.clone(),
            index,
            children: self.children.clone(),
            events: self.events.clone(),
            secret_env: self.secret_env.clone(),
            hooks: self.hooks.clone(),
        });
        let info = actor.shared_info();
        (actor.start(), info)
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
            for instance in &self.instances {
                self.pacer.start(instance.clone());
            }
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

waitable_request! {
    /// Start instances (`None`: all); with `wait`, resolves once each is
    /// RUNNING or has failed.
    Start => process::Start, "starting", ProcessState::Starting
}

waitable_request! {
    /// Stop instances; with `wait`, resolves once their process groups are gone.
    Stop => process::Stop, "stopping", ProcessState::Stopping
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
        MessageResult(
            self.select_infos(&msg.indexes)
                .into_iter()
                .map(|info| info.borrow().info(now))
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
    }
}

impl ProgramActor {
    /// Starts new indexes or retires the highest ones; the others are not
    /// touched (same pids).
    fn scale(&mut self, old: u32, ctx: &mut Context<Self>) {
        let new = self.config.numprocs;
        if new > old {
            for i in old..new {
                let (instance, info) = self.spawn_instance(i);
                if self.config.autostart {
                    if self.retiring.iter().any(|(r, _, _)| *r == i) {
                        self.deferred.insert(i);
                    } else {
                        self.pacer.start(instance.clone());
                    }
                }
                self.instances.push(instance);
                self.infos.push(info);
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
        if let Some(instance) = self.instances.get(i as usize) {
            self.pacer.start(instance.clone());
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
