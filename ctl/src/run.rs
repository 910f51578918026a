//! Runs commands: the line loop of the three modes, the connection, and
//! what every verb shares when it runs.
//!
//! One-shot mode runs one [`Invocation`] with [`Runner::run`]; piped mode and
//! the shell hand each line to [`Runner::line`], so a line means and prints
//! the same in both (the shell only adds the prompt, history and
//! completion). Whatever the verb, running it is: parse, then the verb's
//! [`Verb::execute`], which sends its request(s) through a [`Context`] (and
//! may poll, follow a stream or stay offline), then its rendering and exit
//! code. Nothing here knows a particular verb: that is each verb's file in
//! [`crate::commands`].
//!
//! Connection trouble is handled here so every verb behaves alike: an
//! unreachable daemon is exit code 3 with the reason; a connection that went
//! stale between two commands (the daemon restarted under a long shell) is
//! retried once on a fresh connection; in the shell, a reply that may take
//! long ([`Wait::Long`]: `tail -f`, the waits of `start`/`stop`/`restart`)
//! can be interrupted with Ctrl-C (see [`crate::interrupt`]).
//!
//! [`Verb::execute`]: crate::commands::Verb::execute

use crate::Code;
use crate::command::{self, CommandSpec, Invocation, UsageError};
use crate::connect::{ConnectError, ConnectOptions, Session};
use crate::interrupt;
use crate::progress::Progress;
use crate::render::{self, Rendered};
use proto::{Client, ClientError, ProcessInfo, Request, Response, StatusRequest};
use std::io::{self, Write};
use std::time::Duration;

/// How often a blocked read wakes up to look for Ctrl-C (shell mode only).
const INTERRUPT_POLL: Duration = Duration::from_millis(200);

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
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

/// Where the commands come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One command from the command line (`quit` makes no sense there).
    OneShot,
    /// Lines from a pipe (and the shell completer's own connection, which
    /// only asks for names).
    Piped,
    /// The interactive shell: a long wait polls for Ctrl-C instead of
    /// dying with it.
    Shell,
}

/// How long a reply may take, which decides how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait<'a> {
    /// Answered at once. Read without a timeout: a read timeout that fires
    /// in the middle of a line loses that line's start (the client's buffer
    /// is not ours), and quick replies can be megabytes (`status`).
    Quick,
    /// Waits for processes or follows output: in the shell, Ctrl-C ends the
    /// wait (those replies are small and written in one piece).
    Long,
    /// As `Long`, and after a second says on stderr which of these targets
    /// it is still waiting for (`stop`, `restart`; see [`Progress`]).
    Reported(&'a [String]),
}

/// What one line did.
#[derive(Debug)]
pub enum Step {
    /// A blank line or a comment: nothing ran.
    Empty,
    /// The line ran, or was refused as malformed (exit 2). An `Err` is
    /// output that could not be written (e.g. a closed pipe).
    Ran {
        result: io::Result<Code>,
        /// Whether it talked to the daemon (the shell then refreshes the
        /// names it completes).
        asked: bool,
    },
    /// `quit` or `exit`.
    Quit,
}

/// Runs commands against one daemon over one (re)used connection.
#[derive(Debug)]
pub struct Runner {
    session: Session,
    mode: Mode,
    /// A request was sent during the current command.
    asked: bool,
    /// The current command asked to leave (`quit`).
    leaving: bool,
}

impl Runner {
    pub fn new(options: ConnectOptions, mode: Mode) -> Self {
        Self {
            session: Session::new(options),
            mode,
            asked: false,
            leaving: false,
        }
    }

    /// Parses and runs one line (piped mode and the shell), printing to
    /// `out` and `err`; `json` is the command line's `--json`.
    pub fn line(
        &mut self,
        line: &str,
        json: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Step {
        let inv = match command::parse_line(line) {
            Ok(None) => return Step::Empty,
            Ok(Some(mut inv)) => {
                inv.json |= json;
                inv
            }
            Err(e) => {
                return Step::Ran {
                    result: emit(&render::usage_error(&e, json), out, err),
                    asked: false,
                };
            }
        };
        let result = self.run(&inv, out, err);
        if self.leaving {
            return Step::Quit;
        }
        Step::Ran {
            result,
            asked: self.asked,
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
        self.asked = false;
        self.leaving = false;
        let mut cx = Context {
            runner: self,
            json: inv.json,
            out,
            err,
        };
        inv.command.execute(&mut cx)
    }

    /// Every instance, for the shell's completion. Quiet: `None` when the
    /// daemon cannot tell.
    pub fn instances(&mut self) -> Option<Vec<ProcessInfo>> {
        match self.call(&StatusRequest::default().into(), Wait::Quick) {
            Ok(Response::Status(infos)) => Some(infos),
            _ => None,
        }
    }

    /// Connects now (the shell does at start, to say early if it cannot).
    pub fn connect(&mut self) -> Result<(), String> {
        self.session.client().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Sends `request` and reads its reply, retrying once on a fresh
    /// connection when a reused one turns out to be dead.
    fn call(&mut self, request: &Request, wait: Wait<'_>) -> Result<Response, CallError> {
        self.asked = true;
        let interruptible = self.mode == Mode::Shell && wait != Wait::Quick;
        if interruptible {
            interrupt::take();
        }
        let mut progress = match wait {
            Wait::Reported(targets) => Some(Progress::new(targets, self.session.options())),
            Wait::Quick | Wait::Long => None,
        };
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

/// What a verb runs with: the connection, `--json`, and where to print.
pub struct Context<'a> {
    runner: &'a mut Runner,
    /// `--json`: one JSON document on stdout per command, errors included.
    pub json: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("runner", &self.runner)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// Sends `request` and prints its reply as `spec` renders it, or the
    /// error that kept it from coming.
    pub fn ask(
        &mut self,
        spec: &CommandSpec,
        request: &Request,
        wait: Wait<'_>,
    ) -> io::Result<Code> {
        match self.call(request, wait) {
            Ok(reply) => self.reply(spec, &reply),
            Err(e) => self.report(&e),
        }
    }

    /// Sends `request` and returns its reply (retried once on a stale
    /// connection).
    pub fn call(&mut self, request: &Request, wait: Wait<'_>) -> Result<Response, CallError> {
        self.runner.call(request, wait)
    }

    /// The next message of a stream the last request opened (`tail -f`),
    /// interruptible in the shell.
    pub fn next_message(&mut self) -> Result<Response, CallError> {
        let interruptible = self.runner.mode == Mode::Shell;
        match self.runner.session.client() {
            Ok((client, _)) => recv(client, interruptible, None),
            Err(e) => Err(CallError::Connect(e)),
        }
    }

    /// Every instance, `None` when the daemon cannot tell.
    pub fn instances(&mut self) -> Option<Vec<ProcessInfo>> {
        self.runner.instances()
    }

    /// Prints `reply` as `spec` renders it (errors and `--json` alike for
    /// every verb).
    pub fn reply(&mut self, spec: &CommandSpec, reply: &Response) -> io::Result<Code> {
        self.emit(&render::response(spec, reply, self.json))
    }

    /// Prints a rendered result.
    pub fn emit(&mut self, r: &Rendered) -> io::Result<Code> {
        emit(r, self.out, self.err)
    }

    /// Prints a usage error (exit 2).
    pub fn usage(&mut self, e: &UsageError) -> io::Result<Code> {
        self.emit(&render::usage_error(e, self.json))
    }

    /// Prints why a request got no reply, and drops the connection.
    pub fn report(&mut self, e: &CallError) -> io::Result<Code> {
        self.disconnect();
        // One rule for every error: with --json, one JSON document on
        // stdout and nothing on stderr; without, text on stderr.
        if self.json {
            self.out
                .write_all(render::error_json(e.kind(), &e.to_string()).as_bytes())?;
        } else if let CallError::Interrupted(_) = e {
            // The terminal shows `^C` where the cursor was: a line of its
            // own, and not an error of the daemon's.
            let _ = writeln!(self.err, "\n{e}");
        } else {
            let _ = writeln!(self.err, "error: {e}");
        }
        Ok(e.code())
    }

    /// Forgets the connection: the next request opens a new one.
    pub fn disconnect(&mut self) {
        self.runner.session.disconnect();
    }

    /// Whether the daemon answers a new connection (after it closed one).
    pub fn reachable(&mut self) -> bool {
        self.runner.session.disconnect();
        self.runner.session.client().is_ok()
    }

    /// Whether Ctrl-C was hit in the shell since the last look (clears it).
    pub fn interrupted(&self) -> bool {
        self.runner.mode == Mode::Shell && interrupt::take()
    }

    /// The mode the command runs in.
    pub fn mode(&self) -> Mode {
        self.runner.mode
    }

    /// Ends the line loop after this command (`quit`).
    pub fn leave(&mut self) {
        self.runner.leaving = true;
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
