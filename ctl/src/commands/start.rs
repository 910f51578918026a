//! `start [--no-wait] [--timeout SECONDS] TARGET...`: start processes and wait
//! until they run or are FATAL.
//!
//! The daemon answers a waiting `start` at the first failed attempt; the
//! instances then in BACKOFF will be retried, so the client waits through the
//! retries ([`crate::wait::settle`]), printing each failed attempt on stderr
//! (`web:0: attempt failed: …; retrying`), until RUNNING, FATAL or
//! `--timeout`.

use super::{CommandSpec, Completion, Parsed, Verb, outcomes, wait_targets, words};
use crate::Code;
use crate::run::{Context, Wait};
use crate::wait::{Waited, settle};
use proto::{Outcome, ProcessState, Request, Response, StartRequest};
use std::io;
use std::time::Duration;

pub const SPEC: CommandSpec = CommandSpec {
    name: "start",
    usage: "start [--no-wait] [--timeout SECONDS] TARGET...",
    about: "start processes and wait until they run or are FATAL (through retries)",
    aliases: &[],
    parse,
    render: outcomes,
    complete,
};

/// `start`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub targets: Vec<String>,
    pub wait: bool,
    /// `--timeout`: give up waiting (exit 1) after this long; `None`: until
    /// RUNNING or FATAL, which the program's retry policy bounds.
    pub timeout: Option<Duration>,
}

fn parse(args: &[&str]) -> Parsed {
    let (targets, wait, timeout) = wait_targets(SPEC.name, args, true)?;
    Ok(Box::new(Start {
        targets,
        wait,
        timeout,
    }))
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.option() {
        words(&["--no-wait"])
    } else {
        c.names.targets(true)
    }
}

impl Start {
    fn to_request(&self) -> Request {
        StartRequest {
            targets: self.targets.clone(),
            wait: self.wait,
        }
        .into()
    }
}

impl Verb for Start {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(self.to_request())
    }

    fn wait(&self) -> Wait<'_> {
        if self.wait { Wait::Long } else { Wait::Quick }
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        let reply = match cx.call(&self.to_request(), self.wait()) {
            Ok(reply) => reply,
            Err(e) => return cx.report(&e),
        };
        match reply {
            Response::Outcomes(outcomes)
                if self.wait
                    && outcomes
                        .iter()
                        .any(|o| !o.ok && o.state == ProcessState::Backoff) =>
            {
                let outcomes = through_backoff(cx, outcomes, self.timeout);
                cx.reply(&SPEC, &Response::Outcomes(outcomes))
            }
            reply => cx.reply(&SPEC, &reply),
        }
    }
}

/// After a failed first attempt: the outcomes of those in BACKOFF are
/// replaced by how their retries end. Each failed attempt's reason goes to
/// stderr as it happens (not with `--json`).
fn through_backoff(
    cx: &mut Context<'_>,
    outcomes: Vec<Outcome>,
    timeout: Option<Duration>,
) -> Vec<Outcome> {
    let mut waited = Vec::new();
    for o in &outcomes {
        if !o.ok && o.state == ProcessState::Backoff {
            if !cx.json {
                let _ = writeln!(
                    cx.err,
                    "{}: attempt failed: {}; retrying",
                    o.name, o.message
                );
            }
            waited.push(Waited::new(o.name.clone()));
        }
    }
    let mut settled = settle(cx, waited, timeout, false);
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
