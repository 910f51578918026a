//! Listener: accepts control connections and starts one [`Session`] each.
//!
//! It owns the bound socket and the admission of sessions. Connections that
//! have not authenticated yet are counted apart from the others and capped
//! at [`MAX_UNAUTHENTICATED`]: when a new connection arrives and that many
//! are waiting for their hello, the oldest of them is closed ([`Evict`],
//! with `busy`). So idle connections that never say hello, however many,
//! cannot keep the operator out: a client that sends its hello at once is
//! always among the newest. Authenticated sessions are capped at
//! [`MAX_SESSIONS`]: beyond, a newcomer gets one `busy` error line and is
//! closed (at accept, or at its hello if the places filled meanwhile),
//! instead of hanging. Dropped connections are logged at most once per
//! [`EVICTION_LOG_EVERY`], with their count. An accept error pauses
//! accepting briefly rather than spinning.
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
//! Handles: `Accepted` (from its own accept loop). Sends: [`Evict`] to
//! the oldest unauthenticated session when one too many waits; starts
//! sessions. Stops when the Registry cancels its `accepting` token
//! (shutdown), which closes the socket; live sessions go on.

use crate::actors::registry::Registry;
use crate::actors::session::admission::{
    Admission, MAX_SESSIONS, MAX_UNAUTHENTICATED, SessionSlot, admission,
};
use crate::actors::session::{Evict, Session};
use crate::auth::Token;
use crate::sys::fd_reserve;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture,
};
use proto::{ErrorKind, MAX_LINE, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How often, at most, dropped unauthenticated connections are logged.
pub const EVICTION_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long to pause accepting after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The actor.
pub struct Listener {
    listener: Option<TcpListener>,
    token: Arc<Token>,
    registry: Addr<Registry>,
    /// Cancelled by the Registry at shutdown: stop accepting.
    accepting: CancellationToken,
    admission: Arc<Mutex<Admission>>,
    /// Unauthenticated connections dropped since the last log line.
    evicted: u64,
    evictions_logged: Option<Instant>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("admission", &*admission(&self.admission))
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
        accepting: CancellationToken,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Listener {
            listener: Some(TcpListener::from_std(listener)?),
            token,
            registry,
            accepting,
            admission: Arc::default(),
            evicted: 0,
            evictions_logged: None,
        })
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        // Shutdown: the actor stops, its accept loop (a spawned future of
        // its context) with it, and the socket closes.
        let accepting = self.accepting.clone();
        ctx.spawn(
            async move { accepting.cancelled().await }
                .into_actor(self)
                .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
        );
        let me = ctx.address();
        let accept_loop = async move {
            let mut retry = false;
            loop {
                // Not right before a retry: that would retake the slot the
                // retry needs.
                if !retry {
                    fd_reserve::refill();
                }
                retry = false;
                match listener.accept().await {
                    Ok((stream, peer)) => me.do_send(Accepted { stream, peer }),
                    Err(e) => {
                        let out_of_fds =
                            matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                        // Closing the reserve frees the slot the retry takes.
                        if out_of_fds && fd_reserve::release() {
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
        let id = {
            let mut admission = admission(&self.admission);
            if admission.authenticated >= MAX_SESSIONS {
                drop(admission);
                tracing::warn!(peer = %msg.peer, limit = MAX_SESSIONS,
                    "too many control sessions; refusing one");
                actix::spawn(refuse_busy(msg.stream));
                return;
            }
            admission.next_id += 1;
            admission.next_id
        };
        let slot = SessionSlot::new(Arc::clone(&self.admission), id);
        let session = Session::start_for(
            msg.stream,
            msg.peer,
            self.token.clone(),
            self.registry.clone(),
            slot,
        );
        let oldest = {
            let mut admission = admission(&self.admission);
            admission.waiting.push_back((id, session));
            if admission.waiting.len() > MAX_UNAUTHENTICATED {
                admission.waiting.pop_front()
            } else {
                None
            }
        };
        if let Some((_, oldest)) = oldest {
            oldest.do_send(Evict);
            self.evicted += 1;
            let due = self
                .evictions_logged
                .is_none_or(|at| at.elapsed() >= EVICTION_LOG_EVERY);
            if due {
                tracing::warn!(
                    dropped = self.evicted,
                    limit = MAX_UNAUTHENTICATED,
                    "too many connections waiting to authenticate: dropped the oldest"
                );
                self.evicted = 0;
                self.evictions_logged = Some(Instant::now());
            }
        }
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
    // Read what the client sent meanwhile (its hello), briefly: closing with
    // unread data sends a reset, which can destroy the reply before the
    // client reads it.
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < MAX_LINE {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
