//! Session: one per control connection, from hello to close.
//!
//! Reads JSON lines through [`JsonLinesCodec`] (64 KiB cap) and writes replies
//! through actix's `FramedWrite`. A connection must authenticate first: its
//! first line must be a `hello` with the protocol version and the token
//! (compared in constant time). A wrong or missing token, or silence for
//! [`AUTH_TIMEOUT`], gets an `auth` error after [`AUTH_FAILURE_DELAY`] and the
//! connection is closed; nothing is executed before authentication.
//!
//! After that, requests are answered one at a time, in order: a request is
//! forwarded to the [`Registry`] and its (possibly long: `start` waits for
//! RUNNING) future runs in `ctx.spawn`, never `.wait`, so the session keeps
//! reading (and queueing, up to [`MAX_PIPELINED`]) meanwhile. A bad line gets
//! a `bad_request` reply in its turn and the session goes on; an overlong line
//! gets `too_large` and a close, because framing is lost. `tail -f` turns the
//! session into a stream of chunks until the client closes.
//!
//! Handles: the socket's lines and, when following, output chunks. Sends:
//! [`Control`] and [`ExitNow`] to the Registry. Stops: on EOF (after
//! answering what was asked), on a write error, or after a closing reply.

use crate::actors::listener::SessionSlot;
use crate::actors::registry::{Control, ControlReply, ExitNow, Registry};
use crate::auth::Token;
use actix::io::{FramedWrite, WriteHandler};
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Running, SpawnHandle,
    StreamHandler, WrapFuture,
};
use bytes::Bytes;
use proto::{
    CodecError, ErrorKind, JsonLinesCodec, MAX_LINE, PROTOCOL_VERSION, Request, Response,
    TailChunk, Welcome,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::broadcast;
use tokio_util::codec::FramedRead;

/// How long a new connection may take to present its token.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Delay before answering a failed authentication (slows down guessing).
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Requests a client may queue before getting answers.
pub const MAX_PIPELINED: usize = 64;

type ServerCodec = JsonLinesCodec<Request, Response>;
type Line = Result<Result<Request, serde_json::Error>, CodecError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    /// Authentication failed; the delayed reply is pending.
    Rejecting,
    Ready,
    /// Streaming `tail -f` chunks.
    Following,
    /// A final reply is being flushed.
    Closing,
}

enum Pending {
    Request(Request),
    Bad(String),
}

/// The actor.
pub struct Session {
    registry: Addr<Registry>,
    token: Arc<Token>,
    peer: SocketAddr,
    writer: FramedWrite<Response, OwnedWriteHalf, ServerCodec>,
    phase: Phase,
    queue: VecDeque<Pending>,
    busy: bool,
    /// The client closed its side; stop once everything asked is answered.
    eof: bool,
    exit_daemon_after_flush: bool,
    auth_timer: Option<SpawnHandle>,
    _slot: SessionSlot,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .finish()
    }
}

impl Session {
    /// Starts a session actor for an accepted connection.
    pub fn start_for(
        stream: TcpStream,
        peer: SocketAddr,
        token: Arc<Token>,
        registry: Addr<Registry>,
        slot: SessionSlot,
    ) -> Addr<Session> {
        let (read, write) = stream.into_split();
        Session::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, ServerCodec::new(MAX_LINE)));
            let writer = FramedWrite::new(write, ServerCodec::new(MAX_LINE), ctx);
            Session {
                registry,
                token,
                peer,
                writer,
                phase: Phase::AwaitingHello,
                queue: VecDeque::new(),
                busy: false,
                eof: false,
                exit_daemon_after_flush: false,
                auth_timer: None,
                _slot: slot,
            }
        })
    }

    /// Writes a last reply and closes once it is flushed.
    fn close_with(&mut self, response: Response) {
        self.phase = Phase::Closing;
        self.queue.clear();
        self.writer.write(response);
        self.writer.close();
    }

    fn reject(&mut self, ctx: &mut Context<Self>, why: &'static str) {
        tracing::warn!(peer = %self.peer, why, "control connection refused");
        self.phase = Phase::Rejecting;
        if let Some(timer) = self.auth_timer.take() {
            ctx.cancel_future(timer);
        }
        ctx.run_later(AUTH_FAILURE_DELAY, move |act, _| {
            act.close_with(Response::error(ErrorKind::Auth, why));
        });
    }

    fn on_hello_phase(
        &mut self,
        line: Result<Request, serde_json::Error>,
        ctx: &mut Context<Self>,
    ) {
        match line {
            Ok(Request::Hello(hello)) if hello.protocol_version != PROTOCOL_VERSION => {
                self.close_with(Response::error(
                    ErrorKind::Version,
                    format!(
                        "protocol version {} not supported: taskmasterd {} speaks version {PROTOCOL_VERSION}",
                        hello.protocol_version,
                        proto::SUITE_VERSION
                    ),
                ));
            }
            Ok(Request::Hello(hello)) if self.token.matches(&hello.token) => {
                self.phase = Phase::Ready;
                if let Some(timer) = self.auth_timer.take() {
                    ctx.cancel_future(timer);
                }
                tracing::debug!(peer = %self.peer, "control session authenticated");
                self.writer.write(Response::Welcome(Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    daemon_version: proto::SUITE_VERSION.to_string(),
                    daemon_pid: std::process::id(),
                }));
            }
            Ok(Request::Hello(_)) => self.reject(ctx, "wrong token"),
            _ => self.reject(ctx, "authenticate first: send a hello with the token"),
        }
    }

    /// Answers queued requests one at a time, in order.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while !self.busy && self.phase == Phase::Ready {
            match self.queue.pop_front() {
                None => break,
                Some(Pending::Bad(why)) => self
                    .writer
                    .write(Response::error(ErrorKind::BadRequest, why)),
                Some(Pending::Request(request)) => {
                    self.busy = true;
                    let call = self.registry.send(Control(request));
                    ctx.spawn(call.into_actor(self).map(|reply, act, ctx| {
                        act.busy = false;
                        act.on_reply(reply, ctx);
                        act.pump(ctx);
                    }));
                }
            }
        }
        if self.eof && !self.busy && self.queue.is_empty() && self.phase == Phase::Ready {
            self.writer.close();
        }
    }

    fn on_reply(
        &mut self,
        reply: Result<ControlReply, actix::MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        match reply {
            Ok(ControlReply::Response(r)) => self.writer.write(r),
            Ok(ControlReply::Follow(first, follower)) => {
                self.writer.write(Response::Tail(first));
                self.phase = Phase::Following;
                ctx.add_stream(follow(follower));
            }
            Ok(ControlReply::ShutdownDone(r)) => {
                self.exit_daemon_after_flush = true;
                self.close_with(r);
            }
            Err(e) => self.writer.write(Response::error(
                ErrorKind::Internal,
                format!("request failed: {e}"),
            )),
        }
    }
}

/// Turns a broadcast receiver into a stream of chunks; lagging followers are
/// told how much they missed instead of growing a buffer.
fn follow(rx: broadcast::Receiver<Bytes>) -> impl futures::Stream<Item = FollowItem> {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(bytes) => Some((FollowItem::Chunk(bytes), rx)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some((FollowItem::Skipped(n), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// A piece of followed output.
#[derive(Debug)]
pub enum FollowItem {
    Chunk(Bytes),
    Skipped(u64),
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.auth_timer = Some(ctx.run_later(AUTH_TIMEOUT, |act, _| {
            if act.phase == Phase::AwaitingHello {
                tracing::warn!(peer = %act.peer, "control connection refused: no hello within 10 s");
                act.close_with(Response::error(
                    ErrorKind::Auth,
                    "authentication timeout: no hello within 10 s",
                ));
            }
        }));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        Running::Stop
    }
}

impl StreamHandler<Line> for Session {
    fn handle(&mut self, line: Line, ctx: &mut Self::Context) {
        match line {
            Err(CodecError::TooLarge { max }) => {
                tracing::warn!(peer = %self.peer, max, "control line too long; closing");
                self.close_with(Response::error(
                    ErrorKind::TooLarge,
                    format!("line longer than {max} bytes; closing the connection"),
                ));
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "control connection failed");
                ctx.stop();
            }
            Ok(line) => match self.phase {
                Phase::AwaitingHello => self.on_hello_phase(line, ctx),
                Phase::Ready | Phase::Following => {
                    if self.queue.len() >= MAX_PIPELINED {
                        self.close_with(Response::error(
                            ErrorKind::Busy,
                            format!("more than {MAX_PIPELINED} requests waiting; closing"),
                        ));
                        return;
                    }
                    self.queue.push_back(match line {
                        Ok(request) => Pending::Request(request),
                        Err(e) => Pending::Bad(format!("not a valid request: {e}")),
                    });
                    self.pump(ctx);
                }
                Phase::Rejecting | Phase::Closing => {}
            },
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The client closed its side: answer what it asked, then go.
        self.eof = true;
        match self.phase {
            Phase::Ready if self.busy || !self.queue.is_empty() => {}
            // Close, not stop: a reply may still sit in the write buffer;
            // the writer flushes it, then `WriteHandler::finished` stops us.
            Phase::Ready | Phase::Following => {
                self.phase = Phase::Closing;
                self.writer.close();
            }
            Phase::AwaitingHello => ctx.stop(),
            Phase::Rejecting | Phase::Closing => {}
        }
    }
}

impl StreamHandler<FollowItem> for Session {
    fn handle(&mut self, item: FollowItem, _: &mut Self::Context) {
        let data = match item {
            FollowItem::Chunk(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            FollowItem::Skipped(n) => {
                format!("\n[taskmasterd: {n} chunk(s) skipped: client too slow]\n")
            }
        };
        self.writer.write(Response::TailChunk(TailChunk { data }));
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The output sink went away (the program was removed): nothing more
        // will come, so end the stream rather than leave the client hanging.
        self.phase = Phase::Closing;
        self.writer.close();
    }
}

impl WriteHandler<CodecError> for Session {
    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.exit_daemon_after_flush {
            self.registry.do_send(ExitNow);
        }
        ctx.stop();
    }
}
