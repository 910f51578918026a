//! Notifier: the daemon's one mailer, sending the mails of `notify:` rules.
//!
//! Process actors of programs with rules send it an [`InstanceEvent`] when
//! their instance enters FATAL, BACKOFF, EXITED, RUNNING (started) or
//! STOPPED, or exits unexpectedly; programs without rules send nothing.
//! Each (program, rule) pair has a [`Throttle`]: the first event of a quiet
//! period is mailed at once, and later events within `throttle` seconds of a
//! mail are batched into one digest, sent when the window ends. Composing a
//! mail reads the last lines of the instance's stderr (after the output
//! pipe drained, bounded wait).
//!
//! Sending never holds up supervision. Everything here is a message or a
//! future on the actor's own context; mails wait in a bounded queue (the
//! oldest is dropped, and counted in the log, when it is full) and go out
//! one at a time through lettre's async SMTP transport (one connection per
//! mail: lettre's connection pool spawns a task when it is dropped, which
//! panics once the runtime is gone at exit), each attempt bounded
//! by `email.smtp.timeout` (lettre itself only bounds the connect), retried
//! with a doubling delay up to [`MAX_ATTEMPTS`] times. Every failed attempt
//! is one event-log line; then the daemon carries on. A server that is down
//! or that accepts and never answers costs one pending send, nothing more.
//!
//! The SMTP password is read from its source (environment variable or 0600
//! file) only to build the transport, at start and when a reload changes the
//! `email:` section; it lives in lettre's `Credentials` (whose `Debug` hides
//! it) and nowhere else. [`SecretEnv`] lists the variable that holds it, so
//! that children are spawned without it.
//!
//! Handles: [`InstanceEvent`] (from process actors), [`UpdateEmail`] and
//! [`NotifyTest`] (from the Registry). Sends: mail. Stops: with the System;
//! queued mails and open digests are dropped then.

use crate::actors::process::output::OutputSink;
use crate::actors::reaper::ExitStatus;
use crate::config::email::Secret;
use crate::config::{EmailConfig, NotifyEvent, NotifyRule, ProgramConfig, SmtpTls};
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Mails waiting to be sent; beyond this the oldest is dropped.
pub const QUEUE_CAPACITY: usize = 64;
/// Attempts per mail (the first and the retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// Delay before the first retry; doubled for each further one.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Lines of stderr in a mail, per instance.
pub const TAIL_LINES: usize = 20;
/// Events listed in one digest; more are counted, not kept.
pub const DIGEST_MAX_EVENTS: usize = 100;
/// Instances whose stderr tail a digest shows.
const DIGEST_MAX_TAILS: usize = 5;
/// How long composing a mail waits for an instance's output pipe to drain.
const TAIL_SETTLE: Duration = Duration::from_millis(250);
/// Longest throttle window honoured (a timer cannot wait for centuries).
const MAX_THROTTLE: Duration = Duration::from_secs(366 * 24 * 3600);

/// Names of the daemon's environment variables that hold secrets (the SMTP
/// password's `password_env`): children are spawned without them. Shared by
/// the Registry, which fills it from the config, and every process actor.
/// Names are only ever added: a variable that held the password is still in
/// the daemon's environment after a reload stops naming it.
#[derive(Clone, Default)]
pub struct SecretEnv(Arc<Mutex<Vec<String>>>);

impl SecretEnv {
    /// The names to remove from a child's environment.
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds the names `email` wants hidden (config loaded or reloaded).
    pub fn add(&self, email: Option<&EmailConfig>) {
        let mut names = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for name in email.map(EmailConfig::secret_env).unwrap_or_default() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }

    /// The names `email` wants hidden.
    pub fn of(email: Option<&EmailConfig>) -> Self {
        let env = SecretEnv::default();
        env.add(email);
        env
    }
}

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: the values are never read here.
        f.debug_tuple("SecretEnv").field(&self.names()).finish()
    }
}

// ----- events and the throttle (pure) ----------------------------------------

/// What a mail says about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    pub program: String,
    /// `NAME:INDEX`.
    pub instance: String,
    pub event: NotifyEvent,
    pub time: SystemTime,
    /// How the child ended, when the event is about an exit.
    pub exit: Option<ExitStatus>,
    pub restarts: u32,
    /// The status line's description (`exited too quickly …, 4 attempts`).
    pub detail: String,
}

/// An instance's state change or unexpected exit, from its process actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct InstanceEvent {
    /// The instance's program config, for its rules.
    pub program: Arc<ProgramConfig>,
    pub noted: Noted,
    /// When it happened, for throttling.
    pub at: Instant,
    /// The instance's stderr, for the tail in the mail.
    pub stderr: Option<Arc<OutputSink>>,
}

/// Events of one rule batched into one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest<E> {
    /// At most [`DIGEST_MAX_EVENTS`], oldest first.
    pub events: Vec<E>,
    /// Events beyond those, counted only.
    pub omitted: usize,
}

/// What to do with an event offered to a [`Throttle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer<E> {
    /// A quiet period: mail it now.
    Now(E),
    /// Batched into the open window; `arm` is set for the first event of a
    /// window's batch: flush at that instant.
    Batched { arm: Option<Instant> },
}

/// One rule's throttle: the first event after a quiet period is mailed at
/// once and opens a window of `throttle`; events within the window are
/// batched and flushed as one digest when it ends, which opens the next
/// window. A window that ends with nothing batched ends the cycle.
#[derive(Debug)]
pub struct Throttle<E> {
    window_end: Option<Instant>,
    pending: Vec<E>,
    omitted: usize,
}

impl<E> Default for Throttle<E> {
    fn default() -> Self {
        Throttle {
            window_end: None,
            pending: Vec::new(),
            omitted: 0,
        }
    }
}

impl<E> Throttle<E> {
    pub fn offer(&mut self, event: E, now: Instant, throttle: Duration) -> Offer<E> {
        match self.window_end {
            Some(end) if now < end => {
                if self.pending.len() < DIGEST_MAX_EVENTS {
                    self.pending.push(event);
                } else {
                    self.omitted += 1;
                }
                let first = self.pending.len() + self.omitted == 1;
                Offer::Batched {
                    arm: first.then_some(end),
                }
            }
            _ => {
                self.window_end = Some(window_end(now, throttle));
                Offer::Now(event)
            }
        }
    }

    /// The window has ended: the batch as a digest (and a new window), or
    /// `None` when nothing was batched.
    pub fn flush(&mut self, now: Instant, throttle: Duration) -> Option<Digest<E>> {
        if self.pending.is_empty() && self.omitted == 0 {
            return None;
        }
        self.window_end = Some(window_end(now, throttle));
        Some(Digest {
            events: std::mem::take(&mut self.pending),
            omitted: std::mem::take(&mut self.omitted),
        })
    }
}

fn window_end(now: Instant, throttle: Duration) -> Instant {
    let throttle = throttle.min(MAX_THROTTLE);
    now.checked_add(throttle).unwrap_or(now)
}

/// The mails one rule sends for `events` (time offsets, in order), as
/// (send offset, digest): the throttle as a pure function of events and
/// times. The actor runs the same [`Throttle`], with a timer per window.
pub fn schedule<E: Clone>(
    throttle: Duration,
    events: &[(Duration, E)],
) -> Vec<(Duration, Digest<E>)> {
    let base = Instant::now();
    let mut rule = Throttle::default();
    let mut timer: Option<Instant> = None;
    let mut mails = Vec::new();
    let fire = |rule: &mut Throttle<E>, at: Instant, mails: &mut Vec<(Duration, Digest<E>)>| {
        if let Some(digest) = rule.flush(at, throttle) {
            mails.push((at - base, digest));
        }
    };
    for (offset, event) in events {
        let now = base + *offset;
        if let Some(at) = timer.filter(|at| *at <= now) {
            timer = None;
            fire(&mut rule, at, &mut mails);
        }
        match rule.offer(event.clone(), now, throttle) {
            Offer::Now(e) => mails.push((
                *offset,
                Digest {
                    events: vec![e],
                    omitted: 0,
                },
            )),
            Offer::Batched { arm: Some(at) } => timer = Some(at),
            Offer::Batched { arm: None } => {}
        }
    }
    if let Some(at) = timer {
        fire(&mut rule, at, &mut mails);
    }
    mails
}

// ----- mail text (pure) ------------------------------------------------------

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<Address>,
    pub subject: String,
    pub body: String,
}

/// The last lines of one instance's stderr, as a mail shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub instance: String,
    pub path: Option<PathBuf>,
    /// The lines, or why there are none.
    pub lines: Result<Vec<String>, String>,
}

/// `[taskmaster HOST] web:0 FATAL`, or `[taskmaster HOST] web: 7 events`.
pub fn subject(host: &str, program: &str, events: &[Noted], omitted: usize) -> String {
    let total = events.len() + omitted;
    match events {
        [one] if total == 1 => format!("[taskmaster {host}] {} {}", one.instance, one.event),
        _ => format!("[taskmaster {host}] {program}: {total} events"),
    }
}

/// The body: the facts of each event, then the stderr tails.
pub fn body(host: &str, program: &str, events: &[Noted], omitted: usize, tails: &[Tail]) -> String {
    let mut b = String::new();
    match events {
        [one] if omitted == 0 => {
            let _ = writeln!(b, "taskmaster on {host}: {} {}\n", one.instance, one.event);
            let _ = writeln!(b, "host:      {host}");
            let _ = writeln!(b, "program:   {}", one.program);
            let _ = writeln!(b, "instance:  {}", one.instance);
            let _ = writeln!(b, "event:     {}", one.event);
            let _ = writeln!(b, "time:      {}", utc(one.time));
            let _ = writeln!(b, "exit:      {}", exit_text(one.exit));
            let _ = writeln!(b, "restarts:  {}", one.restarts);
            let _ = writeln!(b, "state:     {}", one.detail);
        }
        _ => {
            let total = events.len() + omitted;
            let _ = writeln!(b, "taskmaster on {host}: {total} events for {program}\n");
            let _ = writeln!(b, "host:      {host}");
            let _ = writeln!(b, "program:   {program}\n");
            for e in events {
                let _ = writeln!(
                    b,
                    "{}  {}  {}  exit: {}  restarts: {}",
                    utc(e.time),
                    e.instance,
                    e.event,
                    exit_text(e.exit),
                    e.restarts
                );
                if e.event == NotifyEvent::Fatal {
                    let _ = writeln!(b, "    {}", e.detail);
                }
            }
            if omitted > 0 {
                let _ = writeln!(b, "... and {omitted} more event(s), not listed");
            }
        }
    }
    for tail in tails {
        b.push('\n');
        match (&tail.lines, &tail.path) {
            (Ok(lines), Some(path)) => {
                let _ = writeln!(
                    b,
                    "Last {} line(s) of {}'s stderr ({}):",
                    lines.len(),
                    tail.instance,
                    path.display()
                );
                for line in lines {
                    let _ = writeln!(b, "    {line}");
                }
            }
            (Ok(_), None) => {
                let _ = writeln!(b, "{}'s stderr is discarded (stderr: null).", tail.instance);
            }
            (Err(why), _) => {
                let _ = writeln!(b, "{}'s stderr cannot be shown: {why}", tail.instance);
            }
        }
    }
    b
}

fn exit_text(exit: Option<ExitStatus>) -> String {
    exit.map_or_else(|| "-".to_string(), |e| e.to_string())
}

/// `2026-11-24 14:22:21.042 UTC` (milliseconds tell a digest's events apart).
pub fn utc(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (since.as_secs(), since.subsec_millis());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The name this host gives itself (in EHLO and in subjects).
pub fn host_name() -> String {
    match ClientId::default() {
        ClientId::Domain(name) => name,
        other => other.to_string(),
    }
}

// ----- the bounded queue -------------------------------------------------------

/// A mail and how often it was tried.
#[derive(Debug, Clone)]
struct Outgoing {
    id: u64,
    mail: Mail,
    attempt: u32,
}

/// Mails waiting to be sent: at most `capacity`, the oldest dropped first.
#[derive(Debug)]
pub struct MailQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> MailQueue<T> {
    pub fn new(capacity: usize) -> Self {
        MailQueue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds `item`; returns the one dropped to make room, if any.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() >= self.capacity {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

// ----- the actor ---------------------------------------------------------------

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A batched event and the stderr to show with it.
type Batched = (Noted, Option<Arc<OutputSink>>);

/// The SMTP side as configured: a transport, or why there is none.
enum Smtp {
    /// No `email:` section.
    Off,
    /// The section is there but unusable (e.g. the password variable is
    /// not set); every mail fails with this.
    Broken(String),
    Ready {
        transport: Transport,
        /// To tell a changed password on reload.
        password: Option<Secret>,
    },
}

/// The actor.
pub struct Notifier {
    host: String,
    email: Option<EmailConfig>,
    smtp: Smtp,
    /// One throttle per (program, rule); a rule changed by a reload is a new
    /// rule with a fresh throttle.
    throttles: HashMap<(String, NotifyRule), Throttle<Batched>>,
    queue: MailQueue<Outgoing>,
    /// The mail being sent or waiting to be retried.
    in_flight: bool,
    next_id: u64,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the transport: it holds the credentials.
        f.debug_struct("Notifier")
            .field("host", &self.host)
            .field("configured", &self.email.is_some())
            .field("queued", &self.queue.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl Notifier {
    /// A notifier for `email` (none: it drops every event). The transport is
    /// built when the actor starts (it needs the runtime).
    pub fn new(email: Option<EmailConfig>) -> Self {
        Notifier {
            host: host_name(),
            email,
            smtp: Smtp::Off,
            throttles: HashMap::new(),
            queue: MailQueue::new(QUEUE_CAPACITY),
            in_flight: false,
            next_id: 1,
        }
    }

    /// (Re)builds the transport from `self.email`; logs the outcome.
    fn configure(&mut self, reloaded: bool) {
        let Some(email) = &self.email else {
            self.smtp = Smtp::Off;
            return;
        };
        let password = match email.password() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "email notifications cannot be sent: {e}");
                self.smtp = Smtp::Broken(e.to_string());
                return;
            }
        };
        if reloaded
            && let Smtp::Ready {
                password: current, ..
            } = &self.smtp
            && *current == password
        {
            // Same settings (the caller compared them) and same password.
            return;
        }
        match transport(email, password.as_ref()) {
            Ok(transport) => {
                let smtp = &email.smtp;
                tracing::info!(
                    host = %smtp.host,
                    port = smtp.port,
                    tls = smtp.tls.as_str(),
                    auth = smtp.username.is_some(),
                    "email notifications ready"
                );
                self.smtp = Smtp::Ready {
                    transport,
                    password,
                };
            }
            Err(e) => {
                tracing::error!(error = %e, "email notifications cannot be sent: {e}");
                self.smtp = Smtp::Broken(e);
            }
        }
    }

    /// Composes a mail for `events` (reading stderr tails once the pipes
    /// drained) and queues it.
    fn compose(
        &mut self,
        program: String,
        to: Vec<Address>,
        digest: Digest<Batched>,
        ctx: &mut Context<Self>,
    ) {
        let mut sinks: Vec<(String, Option<Arc<OutputSink>>)> = Vec::new();
        // The latest sink of each instance, most recent instances first.
        for (noted, sink) in digest.events.iter().rev() {
            if sinks.len() < DIGEST_MAX_TAILS && !sinks.iter().any(|(i, _)| *i == noted.instance) {
                sinks.push((noted.instance.clone(), sink.clone()));
            }
        }
        sinks.reverse();
        let events: Vec<Noted> = digest.events.into_iter().map(|(n, _)| n).collect();
        let omitted = digest.omitted;
        let host = self.host.clone();
        let read = async move {
            let mut tails = Vec::new();
            for (instance, sink) in sinks {
                let Some(sink) = sink else {
                    tails.push(Tail {
                        instance,
                        path: None,
                        lines: Ok(Vec::new()),
                    });
                    continue;
                };
                sink.settle(TAIL_SETTLE).await;
                let lines = match sink.tail(TAIL_LINES) {
                    Ok(lines) => Ok(lines),
                    Err(e) if e.is_not_found() => Ok(Vec::new()),
                    Err(e) => Err(e.to_string()),
                };
                tails.push(Tail {
                    instance,
                    path: Some(sink.path().to_path_buf()),
                    lines,
                });
            }
            Mail {
                to,
                subject: subject(&host, &program, &events, omitted),
                body: body(&host, &program, &events, omitted, &tails),
            }
        };
        ctx.spawn(
            read.into_actor(self)
                .map(|mail, act, ctx| act.enqueue(mail, ctx)),
        );
    }

    fn enqueue(&mut self, mail: Mail, ctx: &mut Context<Self>) {
        let id = self.next_id;
        self.next_id += 1;
        let out = Outgoing {
            id,
            mail,
            attempt: 0,
        };
        if let Some(old) = self.queue.push(out) {
            tracing::warn!(
                mail = old.id,
                dropped = self.queue.dropped(),
                subject = %old.mail.subject,
                "email queue full ({QUEUE_CAPACITY} waiting): dropped the oldest mail ({} dropped so far)",
                self.queue.dropped()
            );
        }
        self.pump(ctx);
    }

    /// Starts sending the next mail, unless one is already under way.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        let Some(out) = self.queue.pop() else {
            return;
        };
        self.in_flight = true;
        self.attempt(out, ctx);
    }

    fn attempt(&mut self, mut out: Outgoing, ctx: &mut Context<Self>) {
        out.attempt += 1;
        let send = self.send(&out.mail);
        ctx.spawn(send.into_actor(self).map(move |result, act, ctx| {
            match result {
                Ok(()) => {
                    tracing::info!(mail = out.id, subject = %out.mail.subject,
                        to = %list(&out.mail.to), "email sent");
                }
                Err(SendError::Permanent(e)) => {
                    tracing::error!(mail = out.id, subject = %out.mail.subject,
                        "email not sent: {e}");
                }
                Err(SendError::Transient(e)) if out.attempt < MAX_ATTEMPTS => {
                    let delay = RETRY_BASE.saturating_mul(1 << (out.attempt - 1).min(16));
                    tracing::warn!(mail = out.id, attempt = out.attempt, subject = %out.mail.subject,
                        "email not sent (attempt {}/{MAX_ATTEMPTS}): {e}; retrying in {}s",
                        out.attempt, delay.as_secs());
                    // Still in flight: later mails wait behind this one.
                    ctx.run_later(delay, move |act, ctx| act.attempt(out, ctx));
                    return;
                }
                Err(SendError::Transient(e)) => {
                    tracing::error!(mail = out.id, attempt = out.attempt, subject = %out.mail.subject,
                        "email not sent (attempt {}/{MAX_ATTEMPTS}, giving up): {e}", out.attempt);
                }
            }
            act.in_flight = false;
            act.pump(ctx);
        }));
    }

    /// One bounded send attempt of `mail`.
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), SendError>> + 'static {
        let prepared = match (&self.email, &self.smtp) {
            (Some(email), Smtp::Ready { transport, .. }) => build_message(email, mail)
                .map(|m| (transport.clone(), m, email.smtp.timeout))
                .map_err(SendError::Permanent),
            (_, Smtp::Broken(why)) => Err(SendError::Permanent(why.clone())),
            _ => Err(SendError::Permanent(
                "no `email:` section in the config".into(),
            )),
        };
        async move {
            let (transport, message, limit) = prepared?;
            match tokio::time::timeout(limit, transport.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) if e.is_permanent() => {
                    Err(SendError::Permanent(format!("SMTP server refused it: {e}")))
                }
                Ok(Err(e)) => Err(SendError::Transient(format!("SMTP error: {e}"))),
                Err(_) => Err(SendError::Transient(format!(
                    "no answer from the SMTP server within {}s (email.smtp.timeout)",
                    limit.as_secs_f64()
                ))),
            }
        }
    }
}

/// Why a send attempt failed.
#[derive(Debug)]
enum SendError {
    /// Trying again cannot help (bad settings, a 5xx answer).
    Permanent(String),
    /// Worth a retry (unreachable, timeout, 4xx).
    Transient(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Permanent(e) | SendError::Transient(e) => f.write_str(e),
        }
    }
}

fn list(to: &[Address]) -> String {
    to.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The transport of `email`, with `password` as credentials.
fn transport(email: &EmailConfig, password: Option<&Secret>) -> Result<Transport, String> {
    let smtp = &email.smtp;
    let mut builder = Transport::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .timeout(Some(smtp.timeout));
    let tls = |host: &str| {
        TlsParameters::new(host.to_string())
            .map_err(|e| format!("cannot set up TLS for {host}: {e}"))
    };
    builder = match smtp.tls {
        SmtpTls::None => builder.tls(Tls::None),
        SmtpTls::StartTls => builder.tls(Tls::Required(tls(&smtp.host)?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(&smtp.host)?)),
    };
    if let (Some(user), Some(password)) = (&smtp.username, password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

fn build_message(email: &EmailConfig, mail: &Mail) -> Result<lettre::Message, String> {
    let mut builder = lettre::Message::builder()
        .from(email.from.clone())
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        builder = builder.to(to.clone().into());
    }
    builder
        .body(mail.body.clone())
        .map_err(|e| format!("cannot build the mail: {e}"))
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.configure(false);
    }
}

impl Handler<InstanceEvent> for Notifier {
    type Result = ();

    fn handle(&mut self, msg: InstanceEvent, ctx: &mut Self::Context) {
        if self.email.is_none() {
            return;
        }
        let InstanceEvent {
            program,
            noted,
            at,
            stderr,
        } = msg;
        for rule in program.notify.iter().filter(|r| r.wants(noted.event)) {
            let key = (program.name.clone(), rule.clone());
            let throttle = self.throttles.entry(key.clone()).or_default();
            match throttle.offer((noted.clone(), stderr.clone()), at, rule.throttle) {
                Offer::Now(first) => {
                    let digest = Digest {
                        events: vec![first],
                        omitted: 0,
                    };
                    self.compose(program.name.clone(), rule.to.clone(), digest, ctx);
                }
                Offer::Batched { arm: Some(end) } => {
                    let wait = end.saturating_duration_since(Instant::now());
                    ctx.run_later(wait, move |act, ctx| act.flush(key, ctx));
                }
                Offer::Batched { arm: None } => {}
            }
        }
    }
}

impl Notifier {
    /// A rule's window ended: mail its batch, if any.
    fn flush(&mut self, key: (String, NotifyRule), ctx: &mut Context<Self>) {
        let Some(throttle) = self.throttles.get_mut(&key) else {
            return;
        };
        if let Some(digest) = throttle.flush(Instant::now(), key.1.throttle) {
            let (program, rule) = key;
            self.compose(program, rule.to, digest, ctx);
        }
    }
}

/// Apply a reloaded `email:` section (new transport if it, or the password,
/// changed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UpdateEmail(pub Option<EmailConfig>);

impl Handler<UpdateEmail> for Notifier {
    type Result = ();

    fn handle(&mut self, msg: UpdateEmail, _: &mut Self::Context) {
        let same = self.email == msg.0;
        self.email = msg.0;
        if self.email.is_none() {
            if !same {
                tracing::info!("email notifications off (no `email:` section)");
            }
            self.smtp = Smtp::Off;
            return;
        }
        // Same settings: only a changed password means a new transport.
        self.configure(same);
    }
}

/// `notify-test PROGRAM`: send one test mail to every recipient of the
/// program's rules, now, and answer with the SMTP outcome.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, String>")]
pub struct NotifyTest(pub Arc<ProgramConfig>);

impl Handler<NotifyTest> for Notifier {
    type Result = ResponseActFuture<Self, Result<String, String>>;

    fn handle(&mut self, msg: NotifyTest, _: &mut Self::Context) -> Self::Result {
        let program = msg.0;
        let mut to: Vec<Address> = Vec::new();
        for address in program.notify.iter().flat_map(|r| r.to.iter()) {
            if !to.contains(address) {
                to.push(address.clone());
            }
        }
        let name = program.name.clone();
        let server = self
            .email
            .as_ref()
            .map(|e| format!("{}:{}", e.smtp.host, e.smtp.port))
            .unwrap_or_default();
        let events = program
            .notify
            .iter()
            .flat_map(|r| r.on.iter().map(|e| e.key()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
        let mail = Mail {
            subject: format!("[taskmaster {}] {name}: test notification", self.host),
            body: format!(
                "This is a test mail from taskmaster on {host}, sent by `taskmasterctl notify-test {name}`.\n\n\
                 host:      {host}\nprogram:   {name}\nevents:    {events}\nrecipients: {to}\ntime:      {time}\n",
                host = self.host,
                to = list(&to),
                time = utc(SystemTime::now()),
            ),
            to: to.clone(),
        };
        let send = self.send(&mail);
        Box::pin(send.into_actor(self).map(move |result, _, _| match result {
            Ok(()) => {
                tracing::info!(program = %name, to = %list(&to), "test email sent");
                Ok(format!("test mail sent to {} through {server}", list(&to)))
            }
            Err(e) => {
                tracing::warn!(program = %name, "test email not sent: {e}");
                Err(format!("test mail not sent: {e}"))
            }
        }))
    }
}

#[cfg(test)]
mod tests;
