//! `reload [--wait] [--timeout SECONDS]` (supervisorctl's `update`): re-read
//! the config file and apply what changed; `--wait` until every restarted or
//! added process runs or failed.
//!
//! With `--wait`, the instances are listed before the reload, so a restarted
//! one is told by its new pid; after the summary, one line per waited
//! instance ([`crate::wait::settle`]), exit 1 when one failed.

use super::{CommandSpec, Parsed, Verb, nothing, seconds};
use crate::Code;
use crate::command::UsageError;
use crate::render::{self, Rendered};
use crate::run::{Context, Wait};
use crate::wait::{Waited, settle};
use proto::{ProcessInfo, ProcessState, ReloadSummary, Request, Response};
use std::io;
use std::time::Duration;

pub const SPEC: CommandSpec = CommandSpec {
    name: "reload",
    usage: "reload [--wait] [--timeout SECONDS] | update",
    about: "re-read the config file and apply what changed",
    aliases: &["update"],
    parse,
    render,
    complete: nothing,
};

/// `reload`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct Reload {
    /// `--wait`: until every restarted or added process runs or failed.
    pub wait: bool,
    pub timeout: Option<Duration>,
}

fn parse(args: &[&str]) -> Parsed {
    let mut wait = false;
    let mut timeout = None;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match *a {
            "--wait" => wait = true,
            "--timeout" => timeout = Some(seconds(SPEC.name, args.next().copied())?),
            other => {
                return Err(UsageError::new(
                    SPEC.name,
                    format!("unexpected argument {other:?}"),
                ));
            }
        }
    }
    Ok(Box::new(Reload { wait, timeout }))
}

fn render(reply: &Response) -> Option<Rendered> {
    match reply {
        Response::Reload(summary) => Some(Rendered::out(render::reload_text(summary), Code::Ok)),
        Response::Done(d) => Some(render::done(d)),
        _ => None,
    }
}

impl Verb for Reload {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(Request::Reload)
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        if !self.wait {
            return cx.ask(&SPEC, &Request::Reload, Wait::Quick);
        }
        let before = cx.instances();
        let reply = match cx.call(&Request::Reload, Wait::Quick) {
            Ok(reply) => reply,
            Err(e) => return cx.report(&e),
        };
        let code = cx.reply(&SPEC, &reply)?;
        let Response::Reload(summary) = &reply else {
            return Ok(code);
        };
        let after = cx.instances();
        let waited = reloaded_instances(summary, before.as_deref(), after);
        let outcomes = settle(cx, waited, self.timeout, true);
        if !cx.json {
            cx.out
                .write_all(render::outcomes_text(&outcomes).as_bytes())?;
        }
        Ok(if outcomes.iter().all(|o| o.ok) {
            code
        } else {
            Code::Failed
        })
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
            None => waited.push(Waited::new(info.name)),
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
