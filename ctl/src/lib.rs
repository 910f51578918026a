//! `taskmasterctl` as a library: everything but `main`, testable without a
//! terminal or a daemon.
//!
//! - [`args`]: the command line (clap).
//! - [`command`]: words -> a [`commands::Verb`] -> [`proto::Request`], usage errors.
//! - [`commands`]: one file per verb (its help, parsing, request, how it
//!   runs, text rendering and completion) and the registry of verbs. How to
//!   add a verb is told there: a new file and one line in the registry.
//! - [`connect`]: the config's `server:` section, the token, the connection.
//! - [`run`]: the line loop and the running of one command against the
//!   daemon, with its exit [`Code`]; what a verb runs with ([`run::Context`]).
//! - [`wait`]: polling instances until they run or fail (`start`, `reload --wait`).
//! - [`progress`]: what a long `stop`/`restart` is waiting for.
//! - [`render`]: replies -> text or JSON (errors, `--json`, the tables).
//! - [`shell`]: the interactive reedline shell and its completion.
//! - [`interrupt`]: Ctrl-C handling for the shell.
//!
//! The three modes (one command, commands piped on stdin, the shell) all go
//! through [`run::Runner`], so they print and fail alike; piped mode and the
//! shell run each line with the same [`run::Runner::line`].

pub mod args;
pub mod command;
pub mod commands;
pub mod connect;
pub mod interrupt;
pub mod progress;
pub mod render;
pub mod run;
pub mod shell;
pub mod wait;

use run::{Mode, Step};
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
        Err(e) => {
            return finish(run::emit(
                &render::usage_error(&e, cli.json),
                &mut out,
                &mut err,
            ));
        }
    };
    let mut runner = run::Runner::new(options, Mode::OneShot);
    finish(runner.run(&inv, &mut out, &mut err))
}

/// Commands from a pipe, one per line, no prompt; the worst exit code wins.
pub fn piped(options: connect::ConnectOptions, json: bool, mut input: impl BufRead) -> Code {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let mut runner = run::Runner::new(options, Mode::Piped);
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
        match runner.line(&line, json, &mut out, &mut err) {
            Step::Empty => {}
            Step::Quit => break,
            Step::Ran {
                result: Ok(code), ..
            } => worst = worst.max(code),
            Step::Ran { result: Err(e), .. } => return worst.max(finish(Err(e))),
        }
    }
    worst
}

/// A closed stdout (`taskmasterctl status | head -1`) is success: the reader
/// had what it wanted.
pub(crate) fn finish(result: io::Result<Code>) -> Code {
    match result {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Code::Ok,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: cannot write output: {e}");
            Code::Failed
        }
    }
}
