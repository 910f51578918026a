//! Runs one [`Invocation`]: sends its request, prints the reply, returns the
//! exit code. Shared by the three modes.
//!
//! Connection trouble is handled here so every mode behaves alike: an
//! unreachable daemon is exit code 3 with the reason; a connection that went
//! stale between two commands (the daemon restarted under a long shell) is
//! retried once on a fresh connection; in the shell, `tail -f` and the waits
//! of `start`/`stop`/`restart` can be interrupted with Ctrl-C (see
//! [`crate::interrupt`]).

use crate::Code;
use crate::command::{COMMANDS, Command, Invocation};
use crate::connect::{ConnectError, ConnectOptions, Session};
use crate::interrupt;
use crate::progress::Progress;
use crate::render::{self, Rendered};
use proto::{
    Client, ClientError, Outcome, ProcessInfo, ProcessState, ReloadSummary, Request, Response,
    StatusRequest,
};
use serde_json::json;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// Between two looks at the processes `start` or `reload --wait` waits for.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// How often a blocked read wakes up to look for Ctrl-C (shell mode only).
const INTERRUPT_POLL: Duration = Duration::from_millis(200);

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("lost connection to taskmasterd: {0}")]
    Lost(ClientError),
    /// Ctrl-C in the shell; what the daemon goes on doing, if known.
    #[error("{}", .0.as_deref().unwrap_or("interrupted"))]
    Interrupted(Option<String>),
}

impl CallError {
    fn kind(&self) -> &'static str {
        match self {
            CallError::Connect(ConnectError::Token { .. }) => "token",
            CallError::Connect(ConnectError::Client(ClientError::Auth(_))) => "auth",
            CallError::Connect(ConnectError::ConfigRead { .. })
            | CallError::Connect(ConnectError::ConfigSyntax { .. }) => "config",
            CallError::Connect(_) | CallError::Lost(_) => "unreachable",
            CallError::Interrupted(_) => "interrupted",
        }
    }

    fn code(&self) -> Code {
        match self {
            CallError::Interrupted(_) => Code::Failed,
            _ => Code::Unreachable,
        }
    }
}

/// Runs commands against one daemon over one (re)used connection.
#[derive(Debug)]
pub struct Runner {
    session: Session,
    /// Shell mode: blocked reads poll for Ctrl-C instead of dying with it.
    interruptible: bool,
}

impl Runner {
    pub fn new(options: ConnectOptions, interruptible: bool) -> Self {
        Self {
            session: Session::new(options),
            interruptible,
        }
    }

    /// Runs `inv`, printing to `out` and `err`. An `Err` is a failed write to
    /// `out` (e.g. a closed pipe); the caller decides what that means.
    pub fn run(
        &mut self,
        inv: &Invocation,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<Code> {
        let json = inv.json;
        let request = match &inv.command {
            Command::Help { command } => {
                let text = if json {
                    let commands: Vec<_> = COMMANDS
                        .iter()
                        .filter(|c| command.as_deref().is_none_or(|n| n == c.name))
                        .map(|c| json!({"name": c.name, "usage": c.usage, "about": c.about}))
                        .collect();
                    render::json_line(&json!(commands))
                } else {
                    render::help(command.as_deref())
                };
                out.write_all(text.as_bytes())?;
                return Ok(Code::Ok);
            }
            Command::Quit => return Ok(Code::Ok),
            other => match other.request() {
                Some(r) => r,
                None => return Ok(Code::Ok),
            },
        };
        // `reload --wait` tells restarted processes by their new pid.
        let before = match &inv.command {
            Command::Reload { wait: true, .. } => self.instances(),
            _ => None,
        };
        let reply = match self.call(&request) {
            Ok(reply) => reply,
            Err(CallError::Lost(ClientError::Closed)) if request == Request::Shutdown => {
                // The daemon may close before its goodbye reaches us.
                Response::Done(proto::Done {
                    message: "taskmasterd is shutting down".into(),
                })
            }
            Err(e) => {
                if matches!(inv.command, Command::Version) && !json {
                    writeln!(out, "taskmasterctl {}", proto::SUITE_VERSION)?;
                }
                return self.report(&e, json, out, err);
            }
        };
        // The daemon answers `start` at the first failed attempt; the
        // instances in BACKOFF are retried: wait for RUNNING or FATAL.
        if let (
            Command::Start {
                wait: true,
                timeout,
                ..
            },
            Response::Outcomes(outcomes),
        ) = (&inv.command, &reply)
            && outcomes
                .iter()
                .any(|o| !o.ok && o.state == ProcessState::Backoff)
        {
            let outcomes = self.through_backoff(outcomes.clone(), *timeout, json, err);
            let rendered = render::response(&inv.command, &Response::Outcomes(outcomes), json);
            return emit(&rendered, out, err);
        }
        let rendered = render::response(&inv.command, &reply, json);
        let code = emit(&rendered, out, err)?;
        match (&inv.command, &reply) {
            (
                Command::Reload {
                    wait: true,
                    timeout,
                },
                Response::Reload(summary),
            ) => {
                let waited = reloaded_instances(summary, before.as_deref(), self.instances());
                let outcomes = self.settle(waited, *timeout, true, json, err);
                if !json {
                    out.write_all(render::outcomes_text(&outcomes).as_bytes())?;
                }
                Ok(if outcomes.iter().all(|o| o.ok) {
                    code
                } else {
                    Code::Failed
                })
            }
            (Command::Tail { follow: true, .. }, Response::Tail(_)) => self.follow(json, out, err),
            (Command::Shutdown, _) => {
                self.session.disconnect();
                Ok(code)
            }
            _ => Ok(code),
        }
    }

    /// `start` after a failed first attempt: the outcomes of those in
    /// BACKOFF are replaced by how their retries end. Each failed attempt's
    /// reason goes to `err` as it happens (not with `--json`).
    fn through_backoff(
        &mut self,
        outcomes: Vec<Outcome>,
        timeout: Option<Duration>,
        json: bool,
        err: &mut dyn Write,
    ) -> Vec<Outcome> {
        let mut waited = Vec::new();
        for o in &outcomes {
            if !o.ok && o.state == ProcessState::Backoff {
                if !json {
                    let _ = writeln!(err, "{}: attempt failed: {}; retrying", o.name, o.message);
                }
                waited.push(Waited {
                    name: o.name.clone(),
                    old_pid: None,
                    seen: None,
                });
            }
        }
        let mut settled = self.settle(waited, timeout, false, json, err);
        outcomes
            .into_iter()
            .map(|o| match settled.iter().position(|s| s.name == o.name) {
                Some(i) => {
                    let mut end = settled.swap_remove(i);
                    if !end.ok {
                        // The program's own last words, from the first failure.
                        end.output_tail = o.output_tail;
                    }
                    end
                }
                None => o,
            })
            .collect()
    }

    /// Polls `status` until every waited instance is RUNNING (with a pid
    /// other than its old one) or failed (FATAL; STOPPED or EXITED too,
    /// unless `down_is_done`), or `timeout` passed. Reports each new
    /// BACKOFF (a failed attempt) on `err`.
    fn settle(
        &mut self,
        mut waited: Vec<Waited>,
        timeout: Option<Duration>,
        down_is_done: bool,
        json: bool,
        err: &mut dyn Write,
    ) -> Vec<Outcome> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut done = Vec::new();
        let mut last: Vec<Option<ProcessState>> = vec![None; waited.len()];
        while !waited.is_empty() {
            if deadline.is_some_and(|d| Instant::now() >= d)
                || (self.interruptible && interrupt::take())
            {
                let why = match timeout {
                    Some(t) if deadline.is_some_and(|d| Instant::now() >= d) => {
                        format!("timed out after {}s", t.as_secs_f64())
                    }
                    _ => "interrupted".to_string(),
                };
                for (w, state) in waited.drain(..).zip(last.drain(..)) {
                    let state = state.unwrap_or(ProcessState::Starting);
                    done.push(outcome(
                        &w.name,
                        false,
                        state,
                        format!("{why} waiting for RUNNING (still {})", state.name()),
                    ));
                }
                break;
            }
            std::thread::sleep(WAIT_POLL);
            let targets = waited.iter().map(|w| w.name.clone()).collect();
            let infos = match self.call(&StatusRequest { targets }.into()) {
                Ok(Response::Status(infos)) => infos,
                Ok(other) => {
                    let why = match other {
                        Response::Error(e) => e.message,
                        other => format!("unexpected reply {other:?}"),
                    };
                    for w in waited.drain(..) {
                        done.push(outcome(&w.name, false, ProcessState::Stopped, why.clone()));
                    }
                    break;
                }
                Err(e) => {
                    for w in waited.drain(..) {
                        done.push(outcome(
                            &w.name,
                            false,
                            ProcessState::Stopped,
                            e.to_string(),
                        ));
                    }
                    break;
                }
            };
            let mut i = 0;
            while i < waited.len() {
                let w = &mut waited[i];
                let Some(info) = infos.iter().find(|p| p.name == w.name) else {
                    done.push(outcome(
                        &w.name,
                        false,
                        ProcessState::Stopped,
                        "removed".into(),
                    ));
                    waited.remove(i);
                    last.remove(i);
                    continue;
                };
                last[i] = Some(info.state);
                let ended = match info.state {
                    ProcessState::Running if info.pid != w.old_pid => {
                        Some(outcome(&w.name, true, info.state, "started".into()))
                    }
                    ProcessState::Fatal => Some(outcome(
                        &w.name,
                        false,
                        info.state,
                        info.description.clone(),
                    )),
                    ProcessState::Stopped | ProcessState::Exited if w.old_pid.is_none() => {
                        Some(if down_is_done {
                            outcome(&w.name, true, info.state, "not started".into())
                        } else {
                            outcome(
                                &w.name,
                                false,
                                info.state,
                                format!("{} while starting", info.state.name()),
                            )
                        })
                    }
                    ProcessState::Backoff => {
                        // One BACKOFF per failed attempt; each retry counts
                        // as a restart. The first one seen may be the
                        // failure already reported.
                        if w.seen != Some(info.restarts) {
                            if w.seen.is_some() && !json {
                                let _ = writeln!(
                                    err,
                                    "{}: attempt failed: {}; retrying",
                                    w.name, info.description
                                );
                            }
                            w.seen = Some(info.restarts);
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(o) = ended {
                    done.push(o);
                    waited.remove(i);
                    last.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        done
    }

    /// Every instance, for the shell's completion. Quiet: `None` when the
    /// daemon cannot tell.
    pub fn instances(&mut self) -> Option<Vec<ProcessInfo>> {
        match self.call(&StatusRequest::default().into()) {
            Ok(Response::Status(infos)) => Some(infos),
            _ => None,
        }
    }

    /// Connects now (the shell does at start, to say early if it cannot).
    pub fn connect(&mut self) -> Result<(), String> {
        self.session.client().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Prints `tail -f` chunks until the daemon closes, or Ctrl-C (shell).
    fn follow(&mut self, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Code> {
        out.flush()?;
        let result = loop {
            let chunk = match self.session.client() {
                Ok((client, _)) => recv(client, self.interruptible, None),
                Err(e) => Err(CallError::Connect(e)),
            };
            match chunk {
                Ok(Response::TailChunk(c)) => {
                    if json {
                        out.write_all(render::json_line(&json!(c)).as_bytes())?;
                    } else {
                        out.write_all(c.data.as_bytes())?;
                    }
                    out.flush()?;
                }
                Ok(Response::Error(e)) => {
                    break emit(&render::error_reply(&e, json), out, err);
                }
                Ok(other) => {
                    let _ = writeln!(err, "error: unexpected reply from taskmasterd: {other:?}");
                    break Ok(Code::Failed);
                }
                Err(CallError::Interrupted(_)) => break Ok(Code::Ok),
                // The daemon ended the stream: it stopped, or the program
                // was removed by a reload. A new connection tells which.
                Err(CallError::Lost(ClientError::Closed)) => {
                    self.session.disconnect();
                    let (why, kind, code) = match self.session.client() {
                        Ok(_) => (
                            "taskmasterd is still running: the program was removed",
                            "stream_ended",
                            Code::Failed,
                        ),
                        Err(_) => ("taskmasterd stopped", "unreachable", Code::Unreachable),
                    };
                    let why = format!("the daemon closed the stream: {why}");
                    if json {
                        out.write_all(render::error_json(kind, &why).as_bytes())?;
                    } else {
                        let _ = writeln!(err, "{why}");
                    }
                    break Ok(code);
                }
                Err(e) => break self.report(&e, json, out, err),
            }
        };
        // The connection is still streaming: it cannot carry another request.
        self.session.disconnect();
        result
    }

    fn report(
        &mut self,
        e: &CallError,
        json: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<Code> {
        self.session.disconnect();
        // One rule for every error: with --json, one JSON document on
        // stdout and nothing on stderr; without, text on stderr.
        if json {
            out.write_all(render::error_json(e.kind(), &e.to_string()).as_bytes())?;
        } else if let CallError::Interrupted(_) = e {
            // The terminal shows `^C` where the cursor was: a line of its
            // own, and not an error of the daemon's.
            let _ = writeln!(err, "\n{e}");
        } else {
            let _ = writeln!(err, "error: {e}");
        }
        Ok(e.code())
    }

    /// Sends `request` and reads its reply, retrying once on a fresh
    /// connection when a reused one turns out to be dead.
    fn call(&mut self, request: &Request) -> Result<Response, CallError> {
        let interruptible = self.interruptible && may_wait_long(request);
        if interruptible {
            interrupt::take();
        }
        let mut progress = Progress::for_request(request, self.session.options());
        let mut retried = false;
        loop {
            let (client, fresh) = self.session.client()?;
            let result = client
                .send(request)
                .map_err(CallError::Lost)
                .and_then(|()| recv(client, interruptible, progress.as_mut()));
            match result {
                Err(CallError::Lost(ClientError::Closed | ClientError::Io(_)))
                    if !fresh && !retried =>
                {
                    self.session.disconnect();
                    retried = true;
                }
                Err(e) => {
                    self.session.disconnect();
                    return Err(e);
                }
                Ok(reply) => return Ok(reply),
            }
        }
    }
}

/// Requests whose reply may take long (waiting for processes, following
/// output): only those poll for Ctrl-C. A read timeout that fires in the
/// middle of a line loses that line's start (the client's buffer is not
/// ours), so quick replies, which can be megabytes (`status`), never risk it;
/// the replies that do are small and written in one piece.
fn may_wait_long(request: &Request) -> bool {
    match request {
        Request::Start(r) => r.wait,
        Request::Stop(r) => r.wait,
        Request::Restart(r) => r.wait,
        Request::Tail(t) => t.follow,
        _ => false,
    }
}

/// One reply; when `interruptible`, wakes up regularly to see whether Ctrl-C
/// was hit.
fn recv(
    client: &mut Client,
    interruptible: bool,
    mut progress: Option<&mut Progress>,
) -> Result<Response, CallError> {
    let wake = interruptible || progress.is_some();
    let timeout = wake.then_some(INTERRUPT_POLL);
    client.set_read_timeout(timeout).map_err(CallError::Lost)?;
    if !wake {
        return client.recv().map_err(CallError::Lost);
    }
    loop {
        match client.recv() {
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if interruptible && interrupt::take() {
                    let note = progress.as_deref_mut().map(Progress::interrupted);
                    return Err(CallError::Interrupted(note));
                }
                if let Some(p) = progress.as_deref_mut() {
                    p.tick(&mut io::stderr());
                }
            }
            other => return other.map_err(CallError::Lost),
        }
    }
}

/// Writes a rendered reply; stderr failures are ignored (nowhere to report them).
pub fn emit(r: &Rendered, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Code> {
    out.write_all(r.stdout.as_bytes())?;
    out.flush()?;
    if !r.stderr.is_empty() {
        let _ = err.write_all(r.stderr.as_bytes());
        let _ = err.flush();
    }
    Ok(r.code)
}

/// An instance `start` or `reload --wait` waits for.
#[derive(Debug)]
struct Waited {
    name: String,
    /// Its pid before a reload restarted it: RUNNING with this pid is the
    /// old process, not yet replaced.
    old_pid: Option<u32>,
    /// The restart count of the last BACKOFF seen (one per failed attempt).
    seen: Option<u32>,
}

fn outcome(name: &str, ok: bool, state: ProcessState, message: String) -> Outcome {
    Outcome {
        name: name.to_string(),
        ok,
        state,
        message,
        output_tail: Vec::new(),
    }
}

/// What `reload --wait` waits for: the instances of added, restarted and
/// scaled programs that are new, or were up before (a restarted one must get
/// a new pid); instances that were down stay down.
fn reloaded_instances(
    summary: &ReloadSummary,
    before: Option<&[ProcessInfo]>,
    after: Option<Vec<ProcessInfo>>,
) -> Vec<Waited> {
    let touched = |program: &str| {
        summary.added.iter().any(|p| p == program)
            || summary.restarted.iter().any(|p| p == program)
            || summary.scaled.iter().any(|p| p == program)
    };
    let before = before.unwrap_or_default();
    let mut waited = Vec::new();
    for info in after.unwrap_or_default() {
        if !touched(&info.program) {
            continue;
        }
        match before.iter().find(|b| b.name == info.name) {
            None => waited.push(Waited {
                name: info.name,
                old_pid: None,
                seen: None,
            }),
            Some(old) if summary.restarted.contains(&info.program) => {
                if matches!(
                    old.state,
                    ProcessState::Running | ProcessState::Starting | ProcessState::Backoff
                ) {
                    waited.push(Waited {
                        name: info.name,
                        old_pid: old.pid,
                        seen: None,
                    });
                }
            }
            Some(_) => {}
        }
    }
    waited
}
