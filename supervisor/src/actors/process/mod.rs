//! ProcessActor: one per process instance (`NAME:INDEX`).
//!
//! STUB: the interface is final, the behaviour is being built (see
//! `state.rs` for the pure state machine this actor will drive).

pub mod state;

use crate::actors::reaper::{ChildExited, ChildTable};
use crate::config::ProgramConfig;
use actix::{Actor, Context, Handler, Message, ResponseFuture};
use bytes::Bytes;
use proto::{ErrorKind, Outcome, OutputStream, ProcessInfo, ProcessState, Signal, TailReply};
use std::sync::Arc;
use tokio::sync::broadcast;

/// What a process actor needs from the outside.
#[derive(Debug, Clone)]
pub struct InstanceContext {
    pub program: Arc<ProgramConfig>,
    pub index: u32,
    pub children: ChildTable,
}

/// The actor.
#[derive(Debug)]
pub struct ProcessActor {
    ctx: InstanceContext,
}

impl ProcessActor {
    pub fn new(ctx: InstanceContext) -> Self {
        ProcessActor { ctx }
    }

    fn name(&self) -> String {
        self.ctx.program.instance_name(self.ctx.index)
    }
}

impl Actor for ProcessActor {
    type Context = Context<Self>;
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
pub type OutputFollower = broadcast::Receiver<Bytes>;

/// The last lines of an output stream, and optionally a follower.
#[derive(Debug, Message)]
#[rtype(result = "Result<(TailReply, Option<OutputFollower>), (ErrorKind, String)>")]
pub struct Tail {
    pub stream: OutputStream,
    pub lines: usize,
    pub follow: bool,
}

fn not_ready(name: String) -> Outcome {
    Outcome {
        name,
        ok: false,
        state: ProcessState::Stopped,
        message: "process actor not implemented".into(),
        output_tail: Vec::new(),
    }
}

macro_rules! stub_outcome {
    ($($msg:ty),*) => {$(
        impl Handler<$msg> for ProcessActor {
            type Result = ResponseFuture<Outcome>;
            fn handle(&mut self, _: $msg, _: &mut Self::Context) -> Self::Result {
                let name = self.name();
                Box::pin(async move { not_ready(name) })
            }
        }
    )*};
}
stub_outcome!(Start, Stop, Restart, Retire, SendSignal);

impl Handler<GetInfo> for ProcessActor {
    type Result = actix::MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(ProcessInfo {
            name: self.name(),
            program: self.ctx.program.name.clone(),
            index: self.ctx.index,
            state: ProcessState::Stopped,
            pid: None,
            uptime_s: 0.0,
            exitcode: None,
            restarts: 0,
            description: "Not started".into(),
        })
    }
}

impl Handler<UpdatePolicy> for ProcessActor {
    type Result = ();
    fn handle(&mut self, msg: UpdatePolicy, _: &mut Self::Context) {
        self.ctx.program = msg.0;
    }
}

impl Handler<Tail> for ProcessActor {
    type Result = Result<(TailReply, Option<OutputFollower>), (ErrorKind, String)>;
    fn handle(&mut self, _: Tail, _: &mut Self::Context) -> Self::Result {
        Err((ErrorKind::Internal, "not implemented".into()))
    }
}

impl Handler<ChildExited> for ProcessActor {
    type Result = ();
    fn handle(&mut self, _: ChildExited, _: &mut Self::Context) {}
}
