//! Session: one per control connection, from hello to close.
//!
//! A connection must authenticate first: its first line must be a `hello`
//! with the protocol version and the token (compared in constant time). A
//! wrong or missing token, or silence for [`AUTH_TIMEOUT`], gets an `auth`
//! error after [`AUTH_FAILURE_DELAY`] and the connection is closed; nothing
//! is executed before authentication. Until then the session is one of the
//! few unauthenticated ones the [`Listener`](crate::actors::listener) allows:
//! [`Evict`] closes it (with `busy`) when a newer connection needs its place,
//! and a session that authenticates while every authenticated place is taken
//! gets `busy` too.
//!
//! After that, requests are answered one at a time, in order: a request is
//! forwarded to the [`Registry`] and its (possibly long: `start` waits for
//! RUNNING) future runs in `ctx.spawn`, never `.wait`. A bad line gets a
//! `bad_request` reply in its turn and the session goes on; an overlong line
//! gets `too_large` and a close, because framing is lost. `tail -f` turns
//! the session into a stream of chunks until the client closes.
//!
//! Nothing a client does (or fails to do) grows the daemon. Replies go into
//! the session's own outgoing buffer, written to the socket by one write at
//! a time (a future on the write half); the buffer is bounded by
//! [`OUTBOX_LIMIT`] in these ways:
//! - requests are read one line at a time, and only while fewer than
//!   [`MAX_PIPELINED`] wait and the buffer is under its bound; otherwise the
//!   socket is left unread and TCP holds the client back;
//! - a client that takes no byte for [`STALL_TIMEOUT`] while replies wait
//!   is disconnected, and the event log says why;
//! - a `tail -f` follower never waits: while the buffer is full, output is
//!   dropped, and the newest output follows a `[… 2.3 MB skipped]` line
//!   once the client has caught up (`session/follow.rs`).
//!
//! (actix's `FramedWrite` is not used: its back-pressure never engages on
//! tokio sockets, whose writes return `Pending`, not `WouldBlock`, so its
//! buffer grew without bound.)
//!
//! Handles: the socket's lines, output chunks when following, [`Evict`].
//! Sends: [`Control`] and [`ExitNow`] to the Registry. Stops: on EOF (after
//! answering what was asked), on a write error or stall, or after a closing
//! reply.

pub mod admission;
mod follow;

use admission::{MAX_SESSIONS, MAX_UNAUTHENTICATED, SessionSlot};

use crate::actors::registry::{Control, ControlReply, ExitNow, Registry};
use crate::auth::Token;
use crate::output::FollowedChunk;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Running,
    SpawnHandle, StreamHandler, WrapFuture,
};
use bytes::{Buf, Bytes, BytesMut};
use follow::{Follower, Room};
use futures::StreamExt;
use proto::{
    CodecError, ErrorKind, JsonLinesCodec, MAX_LINE, PROTOCOL_VERSION, Request, Response,
    TailChunk, Welcome,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast;
use tokio_util::codec::{Encoder, FramedRead};

/// How long a new connection may take to present its token.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Delay before answering a failed authentication (slows down guessing).
pub const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Requests a client may queue before the session stops reading.
pub const MAX_PIPELINED: usize = 64;
/// Reply bytes a session holds for its client (beyond one reply, which is
/// always taken whole) before it stops reading requests or skips output.
pub const OUTBOX_LIMIT: usize = 1024 * 1024;
/// A follower that skipped output sends again once this little waits.
const FOLLOW_RESUME: usize = OUTBOX_LIMIT / 4;
/// How long a client may take nothing while replies wait for it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

type ServerCodec = JsonLinesCodec<Request, Response>;
type Line = Result<Result<Request, serde_json::Error>, CodecError>;
type Reader = FramedRead<OwnedReadHalf, ServerCodec>;

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

/// How one write of the outgoing buffer ended.
enum Written {
    Done(OwnedWriteHalf),
    /// The client took no byte for [`STALL_TIMEOUT`]; what is left.
    Stalled(OwnedWriteHalf, Bytes),
    Failed(std::io::Error),
}

/// The actor.
pub struct Session {
    registry: Addr<Registry>,
    token: Arc<Token>,
    peer: SocketAddr,
    /// `None` while a read is under way, and for good after the end of
    /// the stream.
    reader: Option<Reader>,
    reading: bool,
    /// `None` while a write is under way.
    writer: Option<OwnedWriteHalf>,
    /// Encoded replies not yet handed to a write.
    outbox: BytesMut,
    /// Bytes of the write under way.
    in_flight: usize,
    phase: Phase,
    queue: VecDeque<Pending>,
    busy: bool,
    /// The client closed its side; stop once everything asked is answered.
    eof: bool,
    exit_daemon_after_flush: bool,
    auth_timer: Option<SpawnHandle>,
    follower: Follower,
    slot: SessionSlot,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("phase", &self.phase)
            .field("pending", &self.pending())
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
        Session::create(move |_| Session {
            registry,
            token,
            peer,
            reader: Some(FramedRead::new(read, ServerCodec::new(MAX_LINE))),
            reading: false,
            writer: Some(write),
            outbox: BytesMut::new(),
            in_flight: 0,
            phase: Phase::AwaitingHello,
            queue: VecDeque::new(),
            busy: false,
            eof: false,
            exit_daemon_after_flush: false,
            auth_timer: None,
            follower: Follower::default(),
            slot,
        })
    }

    /// Reply bytes not yet taken by the client's socket.
    fn pending(&self) -> usize {
        self.outbox.len() + self.in_flight
    }

    fn room(&self) -> Room {
        match self.pending() {
            n if n >= OUTBOX_LIMIT => Room::None,
            n if n > FOLLOW_RESUME => Room::Some,
            _ => Room::Plenty,
        }
    }

    /// Queues a reply and starts writing it.
    fn send(&mut self, response: Response, ctx: &mut Context<Self>) {
        if let Err(e) = ServerCodec::new(MAX_LINE).encode(response, &mut self.outbox) {
            tracing::error!(peer = %self.peer, error = %e, "cannot encode a reply; dropped");
        }
        self.flush(ctx);
    }

    /// Hands the buffer to a write unless one is under way; once all is
    /// written in the closing phase, stops.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.outbox.is_empty() {
            if self.phase == Phase::Closing && self.in_flight == 0 {
                if self.exit_daemon_after_flush {
                    self.registry.do_send(ExitNow);
                }
                // Dropping the write half (with the actor) sends the FIN.
                ctx.stop();
            }
            return;
        }
        let Some(writer) = self.writer.take() else {
            return;
        };
        // Taken whole (not split): the next reply starts a fresh buffer, so
        // one huge reply's allocation is not kept for the session's life.
        let batch = std::mem::take(&mut self.outbox).freeze();
        self.in_flight = batch.len();
        self.write(writer, batch, ctx);
    }

    fn write(&mut self, writer: OwnedWriteHalf, batch: Bytes, ctx: &mut Context<Self>) {
        ctx.spawn(
            write_all(writer, batch)
                .into_actor(self)
                .map(|written, act, ctx| act.on_written(written, ctx)),
        );
    }

    fn on_written(&mut self, written: Written, ctx: &mut Context<Self>) {
        match written {
            Written::Done(writer) => {
                self.writer = Some(writer);
                self.in_flight = 0;
                self.flush(ctx);
                self.pump(ctx);
            }
            // A follower only loses output; it may stay paused (Ctrl-S).
            Written::Stalled(writer, rest) if self.phase == Phase::Following => {
                self.in_flight = rest.len();
                self.write(writer, rest, ctx);
            }
            Written::Stalled(_, rest) => {
                if self.phase != Phase::Closing {
                    tracing::warn!(peer = %self.peer, waiting_bytes = rest.len() + self.outbox.len(),
                        "control client does not read its replies (nothing taken for {} s); disconnecting",
                        STALL_TIMEOUT.as_secs());
                }
                ctx.stop();
            }
            Written::Failed(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "control connection failed");
                ctx.stop();
            }
        }
    }

    /// Reads the next line, if the session wants one and no read is under
    /// way.
    fn read_more(&mut self, ctx: &mut Context<Self>) {
        let wanted = match self.phase {
            Phase::AwaitingHello => true,
            Phase::Ready => self.queue.len() < MAX_PIPELINED && self.pending() < OUTBOX_LIMIT,
            // Only to notice the close: a following session answers nothing.
            Phase::Following => true,
            Phase::Rejecting | Phase::Closing => false,
        };
        if !wanted || self.reading {
            return;
        }
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        self.reading = true;
        let read = async move {
            let line = reader.next().await;
            (reader, line)
        };
        ctx.spawn(read.into_actor(self).map(|(reader, line), act, ctx| {
            act.reading = false;
            match line {
                Some(line) => {
                    act.reader = Some(reader);
                    act.on_line(line, ctx);
                }
                None => act.on_eof(ctx),
            }
            act.read_more(ctx);
        }));
    }

    /// Writes a last reply and closes once it is flushed.
    fn close_with(&mut self, response: Response, ctx: &mut Context<Self>) {
        self.phase = Phase::Closing;
        self.queue.clear();
        self.send(response, ctx);
    }

    fn reject(&mut self, ctx: &mut Context<Self>, why: &'static str) {
        tracing::warn!(peer = %self.peer, why, "control connection refused");
        self.phase = Phase::Rejecting;
        if let Some(timer) = self.auth_timer.take() {
            ctx.cancel_future(timer);
        }
        // Kept in `auth_timer`, so that an `Evict` meanwhile cancels it.
        self.auth_timer = Some(ctx.run_later(AUTH_FAILURE_DELAY, move |act, ctx| {
            if act.phase == Phase::Rejecting {
                act.close_with(Response::error(ErrorKind::Auth, why), ctx);
            }
        }));
    }

    fn on_line(&mut self, line: Line, ctx: &mut Context<Self>) {
        match line {
            Err(CodecError::TooLarge { max }) => {
                tracing::warn!(peer = %self.peer, max, "control line too long; closing");
                self.close_with(
                    Response::error(
                        ErrorKind::TooLarge,
                        format!("line longer than {max} bytes; closing the connection"),
                    ),
                    ctx,
                );
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "control connection failed");
                ctx.stop();
            }
            Ok(line) => match self.phase {
                Phase::AwaitingHello => self.on_hello_phase(line, ctx),
                Phase::Ready => {
                    self.queue.push_back(match line {
                        Ok(request) => Pending::Request(request),
                        Err(e) => Pending::Bad(format!("not a valid request: {e}")),
                    });
                    self.pump(ctx);
                }
                Phase::Following | Phase::Rejecting | Phase::Closing => {}
            },
        }
    }

    /// The client closed its side: answer what it asked, then go.
    fn on_eof(&mut self, ctx: &mut Context<Self>) {
        self.eof = true;
        match self.phase {
            Phase::Ready if self.busy || !self.queue.is_empty() => {}
            Phase::Ready | Phase::Following => {
                self.phase = Phase::Closing;
                self.flush(ctx);
            }
            Phase::AwaitingHello => ctx.stop(),
            Phase::Rejecting | Phase::Closing => {}
        }
    }

    fn on_hello_phase(
        &mut self,
        line: Result<Request, serde_json::Error>,
        ctx: &mut Context<Self>,
    ) {
        match line {
            Ok(Request::Hello(hello)) if hello.protocol_version != PROTOCOL_VERSION => {
                let message = format!(
                    "protocol version {} not supported: taskmasterd {} speaks version {PROTOCOL_VERSION}",
                    hello.protocol_version,
                    proto::SUITE_VERSION
                );
                self.close_with(Response::error(ErrorKind::Version, message), ctx);
            }
            Ok(Request::Hello(hello)) if self.token.matches(&hello.token) => {
                if let Some(timer) = self.auth_timer.take() {
                    ctx.cancel_future(timer);
                }
                if !self.slot.authenticate() {
                    tracing::warn!(peer = %self.peer, limit = MAX_SESSIONS,
                        "too many control sessions; refusing one");
                    self.close_with(
                        Response::error(
                            ErrorKind::Busy,
                            format!(
                                "too many control sessions (limit {MAX_SESSIONS}); try again later"
                            ),
                        ),
                        ctx,
                    );
                    return;
                }
                self.phase = Phase::Ready;
                tracing::debug!(peer = %self.peer, "control session authenticated");
                self.send(
                    Response::Welcome(Welcome {
                        protocol_version: PROTOCOL_VERSION,
                        daemon_version: proto::SUITE_VERSION.to_string(),
                        daemon_pid: std::process::id(),
                    }),
                    ctx,
                );
            }
            Ok(Request::Hello(_)) => self.reject(ctx, "wrong token"),
            _ => self.reject(ctx, "authenticate first: send a hello with the token"),
        }
    }

    /// Answers queued requests one at a time, in order, while the client
    /// takes its replies.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while !self.busy && self.phase == Phase::Ready && self.pending() < OUTBOX_LIMIT {
            match self.queue.pop_front() {
                None => break,
                Some(Pending::Bad(why)) => {
                    self.send(Response::error(ErrorKind::BadRequest, why), ctx)
                }
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
            self.phase = Phase::Closing;
            self.flush(ctx);
        }
        self.read_more(ctx);
    }

    fn on_reply(
        &mut self,
        reply: Result<ControlReply, actix::MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        match reply {
            Ok(ControlReply::Response(r)) => self.send(r, ctx),
            Ok(ControlReply::Follow(first, follower)) => {
                self.send(Response::Tail(first), ctx);
                self.phase = Phase::Following;
                ctx.add_stream(followed_chunks(follower));
            }
            Ok(ControlReply::ShutdownDone(r)) => {
                self.exit_daemon_after_flush = true;
                self.close_with(r, ctx);
            }
            Err(e) => self.send(
                Response::error(ErrorKind::Internal, format!("request failed: {e}")),
                ctx,
            ),
        }
    }
}

/// Writes `batch` to the socket. Each write waits at most [`STALL_TIMEOUT`]
/// for the client to make room.
async fn write_all(mut writer: OwnedWriteHalf, mut batch: Bytes) -> Written {
    while !batch.is_empty() {
        match tokio::time::timeout(STALL_TIMEOUT, writer.write(&batch)).await {
            Err(_) => return Written::Stalled(writer, batch),
            Ok(Ok(0)) => return Written::Failed(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => batch.advance(n),
            Ok(Err(e)) => return Written::Failed(e),
        }
    }
    Written::Done(writer)
}

/// Turns a broadcast receiver into a stream of chunks. A receiver that
/// lagged behind the channel just goes on: the next chunk's offset tells
/// the [`Follower`] how much was lost.
fn followed_chunks(
    rx: broadcast::Receiver<FollowedChunk>,
) -> impl futures::Stream<Item = FollowedChunk> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(chunk) => return Some((chunk, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.auth_timer = Some(ctx.run_later(AUTH_TIMEOUT, |act, ctx| {
            if act.phase == Phase::AwaitingHello {
                tracing::warn!(peer = %act.peer, "control connection refused: no hello within 10 s");
                act.close_with(
                    Response::error(
                        ErrorKind::Auth,
                        "authentication timeout: no hello within 10 s",
                    ),
                    ctx,
                );
            }
        }));
        self.read_more(ctx);
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        Running::Stop
    }
}

impl StreamHandler<FollowedChunk> for Session {
    fn handle(&mut self, chunk: FollowedChunk, ctx: &mut Self::Context) {
        if self.phase != Phase::Following {
            return;
        }
        if let Some(data) = self
            .follower
            .on_chunk(chunk.offset, &chunk.bytes, self.room())
        {
            self.send(Response::TailChunk(TailChunk { data }), ctx);
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The output sink went away (the program was removed): nothing more
        // will come, so end the stream rather than leave the client hanging.
        if self.phase != Phase::Following {
            return;
        }
        if let Some(data) = self.follower.finish() {
            self.send(Response::TailChunk(TailChunk { data }), ctx);
        }
        self.phase = Phase::Closing;
        self.flush(ctx);
    }
}

/// The Listener needs this session's place for a newer connection: close
/// now, unless authenticated (or already closing).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Evict;

impl Handler<Evict> for Session {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
        // A rejected one too: everything unauthenticated must stay within
        // the cap, and its answer would be no news (a right token gets its
        // welcome at once).
        if !matches!(self.phase, Phase::AwaitingHello | Phase::Rejecting) {
            return;
        }
        if let Some(timer) = self.auth_timer.take() {
            ctx.cancel_future(timer);
        }
        tracing::debug!(peer = %self.peer, "unauthenticated control connection dropped for a newer one");
        self.close_with(
            Response::error(
                ErrorKind::Busy,
                format!(
                    "too many connections waiting to authenticate (limit {MAX_UNAUTHENTICATED}); this one waited longest"
                ),
            ),
            ctx,
        );
    }
}
