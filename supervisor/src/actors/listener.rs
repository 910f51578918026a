//! Listener: accepts control connections and starts one [`Session`] each.
//!
//! It owns the bound socket and the session count: beyond [`MAX_SESSIONS`]
//! live sessions a newcomer gets one `busy` error line and is closed, instead
//! of hanging. An accept error pauses accepting briefly rather than spinning.
//!
//! Out of file descriptors (a fleet that holds them all, its other instances
//! failing to spawn into BACKOFF), the operator must still be able to connect
//! and stop something: the Listener keeps one descriptor in reserve (open on
//! `/dev/null`), and when `accept` fails with EMFILE or ENFILE it closes the
//! reserve and accepts again at once, in the slot just freed. The reserve is
//! taken back as soon as a descriptor is free again: at the next accept, and
//! right after a session ends (its socket's slot), before anything else can
//! take that slot. One connection is guaranteed; more as descriptors free
//! up.
//!
//! Handles: [`StopAccepting`] (shutdown). Sends: nothing; starts sessions.
//! Stops: on [`StopAccepting`], which closes the socket.

use crate::actors::registry::Registry;
use crate::actors::session::Session;
use crate::auth::Token;
use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use proto::{ErrorKind, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Live sessions allowed at once.
pub const MAX_SESSIONS: usize = 256;

/// How long to pause accepting after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The actor.
pub struct Listener {
    listener: Option<TcpListener>,
    token: Arc<Token>,
    registry: Addr<Registry>,
    sessions: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("sessions", &self.sessions.load(Ordering::Relaxed))
            .finish()
    }
}

impl Listener {
    /// Takes an already-bound std listener (bound before anything else can
    /// fail, so bind errors end the start cleanly).
    pub fn new(
        listener: std::net::TcpListener,
        token: Arc<Token>,
        registry: Addr<Registry>,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Listener {
            listener: Some(TcpListener::from_std(listener)?),
            token,
            registry,
            sessions: Arc::new(AtomicUsize::new(0)),
        })
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let me = ctx.address();
        let accept_loop = async move {
            let mut retry = false;
            loop {
                // Not right before a retry: that would retake the slot the
                // retry needs.
                if !retry {
                    refill_reserve();
                }
                retry = false;
                match listener.accept().await {
                    Ok((stream, peer)) => me.do_send(Accepted { stream, peer }),
                    Err(e) => {
                        let out_of_fds =
                            matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                        // Closing the reserve frees the slot the retry takes.
                        if out_of_fds && release_reserve() {
                            tracing::warn!(error = %e,
                                "out of file descriptors: using the reserved one for a control connection");
                            retry = true;
                        } else {
                            tracing::warn!(error = %e, "accept failed; pausing");
                            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        }
                    }
                }
            }
        };
        ctx.spawn(accept_loop.into_actor(self));
    }
}

/// The descriptor kept for a control connection when every other is taken.
static RESERVE: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

fn reserve() -> std::sync::MutexGuard<'static, Option<std::fs::File>> {
    RESERVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes a descriptor back into the reserve, if it is empty and one is free.
fn refill_reserve() {
    let mut reserve = reserve();
    if reserve.is_none() {
        *reserve = std::fs::File::open("/dev/null").ok();
    }
}

/// Closes the reserve (its slot is free now); false if it was empty.
fn release_reserve() -> bool {
    reserve().take().is_some()
}

/// A new connection.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
}

impl Handler<Accepted> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Accepted, _: &mut Self::Context) {
        let _ = msg.stream.set_nodelay(true);
        let live = self.sessions.load(Ordering::Relaxed);
        if live >= MAX_SESSIONS {
            tracing::warn!(peer = %msg.peer, live, "too many control sessions; refusing one");
            actix::spawn(refuse_busy(msg.stream));
            return;
        }
        let slot = SessionSlot::take(&self.sessions);
        Session::start_for(
            msg.stream,
            msg.peer,
            self.token.clone(),
            self.registry.clone(),
            slot,
        );
    }
}

async fn refuse_busy(mut stream: TcpStream) {
    let reply = Response::error(
        ErrorKind::Busy,
        format!("too many control sessions (limit {MAX_SESSIONS}); try again later"),
    );
    if let Ok(mut line) = serde_json::to_vec(&reply) {
        line.push(b'\n');
        // Bounded: a client that does not read must not hold this task.
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&line)).await;
    }
    let _ = stream.shutdown().await;
}

/// Stop accepting; the socket closes. Live sessions go on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

impl Handler<StopAccepting> for Listener {
    type Result = ();

    fn handle(&mut self, _: StopAccepting, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// One counted session; the count drops when the session actor goes away.
#[derive(Debug)]
pub struct SessionSlot(Arc<AtomicUsize>);

impl SessionSlot {
    fn take(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        SessionSlot(count.clone())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        // Once the session is gone its socket is closed: refill the reserve
        // with that slot. Deferred to the next turn (the socket closes with
        // the actor's context, after this field); no arbiter, no refill (the
        // daemon is exiting).
        if reserve().is_none()
            && let Some(arbiter) = actix::Arbiter::try_current()
        {
            arbiter.spawn(async { refill_reserve() });
        }
    }
}
