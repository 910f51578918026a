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
use crate::render::{self, Rendered};
use proto::{Client, ClientError, ProcessInfo, Request, Response, StatusRequest};
use serde_json::json;
use std::io::{self, Write};
use std::time::Duration;

/// How often a blocked read wakes up to look for Ctrl-C (shell mode only).
const INTERRUPT_POLL: Duration = Duration::from_millis(200);

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("lost connection to taskmasterd: {0}")]
    Lost(ClientError),
    #[error("interrupted")]
    Interrupted,
}

impl CallError {
    fn kind(&self) -> &'static str {
        match self {
            CallError::Connect(ConnectError::Token { .. }) => "token",
            CallError::Connect(ConnectError::Client(ClientError::Auth(_))) => "auth",
            CallError::Connect(ConnectError::ConfigRead { .. })
            | CallError::Connect(ConnectError::ConfigSyntax { .. }) => "config",
            CallError::Connect(_) | CallError::Lost(_) => "unreachable",
            CallError::Interrupted => "interrupted",
        }
    }

    fn code(&self) -> Code {
        match self {
            CallError::Interrupted => Code::Failed,
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
        let rendered = render::response(&inv.command, &reply, json);
        let code = emit(&rendered, out, err)?;
        match (&inv.command, &reply) {
            (Command::Tail { follow: true, .. }, Response::Tail(_)) => self.follow(json, out, err),
            (Command::Shutdown, _) => {
                self.session.disconnect();
                Ok(code)
            }
            _ => Ok(code),
        }
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
                Ok((client, _)) => recv(client, self.interruptible),
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
                Err(CallError::Interrupted) => break Ok(Code::Ok),
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
        let mut retried = false;
        loop {
            let (client, fresh) = self.session.client()?;
            let result = client
                .send(request)
                .map_err(CallError::Lost)
                .and_then(|()| recv(client, interruptible));
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
fn recv(client: &mut Client, interruptible: bool) -> Result<Response, CallError> {
    let timeout = interruptible.then_some(INTERRUPT_POLL);
    client.set_read_timeout(timeout).map_err(CallError::Lost)?;
    if !interruptible {
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
                if interrupt::take() {
                    return Err(CallError::Interrupted);
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
