//! `taskmasterctl` as a library: everything but `main`, testable without a
//! terminal or a daemon.
//!
//! - [`args`]: the command line (clap).
//! - [`command`]: words -> [`command::Command`] -> [`proto::Request`], usage errors.
//! - [`commands`]: one file per verb (its help, parsing, request, text
//!   rendering and completion) and the registry of verbs.
//! - [`connect`]: the config's `server:` section, the token, the connection.
//! - [`run`]: one command against the daemon, with its exit [`Code`].
//! - [`render`]: replies -> text or JSON (errors, `--json`, the tables).
//! - [`shell`]: the interactive reedline shell and its completion.
//! - [`interrupt`]: Ctrl-C handling for the shell.
//!
//! The three modes (one command, commands piped on stdin, the shell) all go
//! through [`run::Runner`], so they print and fail alike.

pub mod args;
pub mod command;
pub mod commands;
pub mod connect;
pub mod interrupt;
pub mod progress;
pub mod render;
pub mod run;
pub mod shell;

use command::{Command, Invocation};
use std::io::{self, BufRead, IsTerminal, Write};

/// Exit codes, ordered by gravity: piped mode exits with the worst one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The command did what was asked (`status` whatever the states).
    #[default]
    Ok = 0,
    /// The daemon answered that the command failed.
    Failed = 1,
    /// The command is malformed; nothing was sent.
    Usage = 2,
    /// The daemon could not be reached or refused us (token, auth, config).
    Unreachable = 3,
}

impl Code {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Runs `taskmasterctl` as the command line asks and returns its exit code.
pub fn main_with(cli: args::Cli) -> Code {
    let options = cli.connect_options();
    if !cli.command.is_empty() {
        return one_shot(&cli, options);
    }
    if io::stdin().is_terminal() {
        shell::run(options, cli.json)
    } else {
        piped(options, cli.json, io::stdin().lock())
    }
}

fn one_shot(cli: &args::Cli, options: connect::ConnectOptions) -> Code {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let inv = match command::parse_words(&cli.command) {
        Ok(mut inv) => {
            inv.json |= cli.json;
            inv
        }
        Err(e) => return usage(&e, cli.json, &mut out, &mut err),
    };
    if inv.command == Command::Quit {
        let e = command::UsageError {
            message: "quit and exit only make sense in the shell".into(),
            command: Some("quit"),
        };
        return usage(&e, inv.json, &mut out, &mut err);
    }
    let mut runner = run::Runner::new(options, false);
    finish(runner.run(&inv, &mut out, &mut err))
}

/// Commands from a pipe, one per line, no prompt; the worst exit code wins.
pub fn piped(options: connect::ConnectOptions, json: bool, mut input: impl BufRead) -> Code {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let mut runner = run::Runner::new(options, false);
    let mut worst = Code::Ok;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "error: cannot read commands from stdin: {e}");
                return worst.max(Code::Usage);
            }
        }
        let line = String::from_utf8_lossy(&buf);
        let inv = match command::parse_line(&line) {
            Ok(None) => continue,
            Ok(Some(mut inv)) => {
                inv.json |= json;
                inv
            }
            Err(e) => {
                worst = worst.max(usage(&e, json, &mut out, &mut err));
                continue;
            }
        };
        if inv.command == Command::Quit {
            break;
        }
        match runner.run(&inv, &mut out, &mut err) {
            Ok(code) => worst = worst.max(code),
            Err(e) => {
                return worst.max(finish(Err(e)));
            }
        }
    }
    worst
}

fn usage(e: &command::UsageError, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> Code {
    finish(run::emit(&render::usage_error(e, json), out, err))
}

/// A closed stdout (`taskmasterctl status | head -1`) is success: the reader
/// had what it wanted.
fn finish(result: io::Result<Code>) -> Code {
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Code::Ok,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: cannot write output: {e}");
            Code::Failed
        }
    }
}

/// Runs a parsed invocation the way the shell does; exposed for the shell.
pub(crate) fn run_in_shell(runner: &mut run::Runner, inv: &Invocation) -> Code {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    finish(runner.run(inv, &mut out, &mut err))
}
