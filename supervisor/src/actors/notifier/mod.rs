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
//! Handles: [`InstanceEvent`] (from process actors), [`UpdateEmail`],
//! [`NotifyTest`] and [`Flush`] (from the Registry). Sends: mail. Stops:
//! with the System, after the Registry's [`Flush`] at shutdown mailed the
//! open digests and the queue (bounded by `email.smtp.timeout`).
//!
//! The pure parts live beside it: `throttle` (which events go at once,
//! which wait for a digest), `mail` (the text, the lettre message and
//! transport), `queue` (the bounded queue).

mod mail;
mod queue;
mod throttle;

pub use mail::{Mail, Noted, Tail, body, host_name, subject, utc};
use mail::{SendError, Transport, build_message, list, transport};
pub use queue::MailQueue;
use queue::Outgoing;
pub use throttle::{DIGEST_MAX_EVENTS, Digest, Offer, Throttle, schedule};

use crate::actors::blocking::off_thread;
use crate::config::email::{Secret, read_ca_file};
use crate::config::{EmailConfig, NotifyRule, ProgramConfig};
use crate::output::OutputSink;
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use lettre::{Address, AsyncTransport};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Mails waiting to be sent; beyond this the oldest is dropped.
pub const QUEUE_CAPACITY: usize = 64;
/// How long reading the SMTP password (`password_file`) may take.
pub const PASSWORD_READ_LIMIT: Duration = Duration::from_secs(5);
/// Attempts per mail (the first and the retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// Delay before the first retry; doubled for each further one.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Lines of stderr in a mail, per instance.
pub const TAIL_LINES: usize = 20;
/// Instances whose stderr tail a digest shows.
const DIGEST_MAX_TAILS: usize = 5;
/// How long composing a mail waits for an instance's output pipe to drain.
const TAIL_SETTLE: Duration = Duration::from_millis(250);

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

// ----- the actor ---------------------------------------------------------------

/// A batched event and the stderr to show with it.
type Batched = (Noted, Option<Arc<OutputSink>>);

/// The SMTP side as configured: a transport, or why there is none.
enum Smtp {
    /// No `email:` section.
    Off,
    /// The section is there but unusable (e.g. the password variable is
    /// not set); every mail fails with this.
    Broken(String),
    /// The password is being read; mails wait in the queue.
    Loading,
    Ready {
        /// Boxed: the transport is large, the other variants tiny.
        transport: Box<Transport>,
        /// To tell a changed password on reload.
        password: Option<Secret>,
        /// To tell a changed CA file on reload.
        ca: Option<Vec<u8>>,
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
    /// Mails being composed (their stderr tails read), not queued yet.
    composing: usize,
    /// [`Flush`] callers, told when nothing is left to send.
    flush_waiters: Vec<oneshot::Sender<()>>,
    next_id: u64,
    /// Of the latest [`Notifier::configure`]: an older read is ignored.
    generation: u64,
    /// `notify-test`s waiting for the password being read.
    loaded_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
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
            composing: 0,
            flush_waiters: Vec::new(),
            next_id: 1,
            generation: 0,
            loaded_waiters: Vec::new(),
        }
    }

    /// Reads the password off the actor thread (a `password_file` may sit
    /// on a slow or hung file system), bounded by [`PASSWORD_READ_LIMIT`],
    /// then (re)builds the transport. Mails wait meanwhile (`Loading`),
    /// except on a reload, where the old transport serves until then. A
    /// later call supersedes a read still under way.
    fn configure(&mut self, reloaded: bool, ctx: &mut Context<Self>) {
        let Some(email) = self.email.clone() else {
            self.smtp = Smtp::Off;
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        if !reloaded || !matches!(self.smtp, Smtp::Ready { .. }) {
            self.smtp = Smtp::Loading;
        }
        let read = async move {
            let read = off_thread("password-reader", PASSWORD_READ_LIMIT, move || {
                email.password()
            });
            match read.await {
                Ok(read) => read.map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot read the SMTP password: {e}")),
            }
        };
        ctx.spawn(read.into_actor(self).map(move |password, act, ctx| {
            if act.generation == generation {
                act.build_transport(password, reloaded);
                for waiter in act.loaded_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                act.pump(ctx);
            }
        }));
    }

    /// The second half of [`Notifier::configure`]; logs the outcome.
    fn build_transport(&mut self, password: Result<Option<Secret>, String>, reloaded: bool) {
        let Some(email) = &self.email else {
            self.smtp = Smtp::Off;
            return;
        };
        let password = match password {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "email notifications cannot be sent: {e}");
                self.smtp = Smtp::Broken(e);
                return;
            }
        };
        let ca = match email.smtp.ca_file.as_deref().map(read_ca_file).transpose() {
            Ok(ca) => ca,
            Err(e) => {
                tracing::error!(error = %e, "email notifications cannot be sent: {e}");
                self.smtp = Smtp::Broken(e.to_string());
                return;
            }
        };
        if reloaded
            && let Smtp::Ready {
                password: current,
                ca: current_ca,
                ..
            } = &self.smtp
            && *current == password
            && *current_ca == ca
        {
            // Same settings (the caller compared them), password and CA.
            return;
        }
        match transport(email, password.as_ref(), ca.as_deref()) {
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
                    transport: Box::new(transport),
                    password,
                    ca,
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
        self.composing += 1;
        ctx.spawn(read.into_actor(self).map(|mail, act, ctx| {
            act.composing -= 1;
            act.enqueue(mail, ctx);
        }));
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
        if self.in_flight || matches!(self.smtp, Smtp::Loading) {
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
            act.tell_flushed();
        }));
    }

    /// One bounded send attempt of `mail`.
    fn send(&self, mail: &Mail) -> impl Future<Output = Result<(), SendError>> + use<> {
        let prepared = match (&self.email, &self.smtp) {
            (Some(email), Smtp::Ready { transport, .. }) => build_message(email, mail)
                .map(|m| (Transport::clone(transport), m, email.smtp.timeout))
                .map_err(SendError::Permanent),
            (_, Smtp::Broken(why)) => Err(SendError::Permanent(why.clone())),
            (_, Smtp::Loading) => Err(SendError::Transient(
                "the SMTP password is still being read".into(),
            )),
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
impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.configure(false, ctx);
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

impl Notifier {
    /// Mails not sent yet: composing, queued or in flight.
    fn unsent(&self) -> usize {
        self.composing + self.queue.len() + usize::from(self.in_flight)
    }

    /// Answers the [`Flush`] callers once nothing is left to send.
    fn tell_flushed(&mut self) {
        if self.unsent() == 0 {
            for waiter in self.flush_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// The daemon is stopping (from the Registry, once every program is
/// stopped): mail every open digest now, and answer when every queued mail
/// is sent or has failed, or after `email.smtp.timeout`, whichever comes
/// first, so a hung mail server delays the exit by that bound at most.
/// Retries still pending at the bound are abandoned (logged).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for Notifier {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        let keys: Vec<_> = self.throttles.keys().cloned().collect();
        for key in keys {
            self.flush(key, ctx);
        }
        let bound = self
            .email
            .as_ref()
            .map_or(Duration::ZERO, |e| e.smtp.timeout);
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        let unsent = self.unsent();
        if unsent > 0 {
            tracing::info!(
                mails = unsent,
                "daemon stopping: sending {unsent} pending mail(s), waiting {}s at most (email.smtp.timeout)",
                bound.as_secs_f64()
            );
        }
        self.tell_flushed();
        let wait = async move { tokio::time::timeout(bound, rx).await.is_ok() };
        Box::pin(wait.into_actor(self).map(|done, act, _| {
            let unsent = act.unsent();
            if !done && unsent > 0 {
                tracing::warn!(
                    mails = unsent,
                    "daemon stopping: {unsent} mail(s) not sent within email.smtp.timeout; dropped"
                );
            }
        }))
    }
}

/// Apply a reloaded `email:` section (new transport if it, or the password,
/// changed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UpdateEmail(pub Option<EmailConfig>);

impl Handler<UpdateEmail> for Notifier {
    type Result = ();

    fn handle(&mut self, msg: UpdateEmail, ctx: &mut Self::Context) {
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
        self.configure(same, ctx);
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
        // Right after start or a reload the password may still be being
        // read: wait for it (at most PASSWORD_READ_LIMIT).
        let loaded = if matches!(self.smtp, Smtp::Loading) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.loaded_waiters.push(tx);
            Some(rx)
        } else {
            None
        };
        let wait = async move {
            if let Some(rx) = loaded {
                let _ = rx.await;
            }
        };
        let send = wait
            .into_actor(self)
            .then(move |(), act, _| actix::fut::wrap_future(act.send(&mail)));
        Box::pin(send.map(move |result, _, _| match result {
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
