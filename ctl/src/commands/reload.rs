//! `reload [--wait] [--timeout SECONDS]` (supervisorctl's `update`): re-read
//! the config file and apply what changed; `--wait` until every restarted or
//! added process runs or failed.

use super::{CommandSpec, nothing, seconds};
use crate::Code;
use crate::command::{Command, UsageError};
use crate::render::{self, Rendered};
use proto::Request;
use proto::Response;

pub const SPEC: CommandSpec = CommandSpec {
    name: "reload",
    usage: "reload [--wait] [--timeout SECONDS] | update",
    about: "re-read the config file and apply what changed",
    aliases: &["update"],
    parse,
    request,
    render,
    complete: nothing,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
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
    Ok(Command::Reload { wait, timeout })
}

fn render(reply: &Response) -> Option<Rendered> {
    match reply {
        Response::Reload(summary) => Some(Rendered::out(render::reload_text(summary), Code::Ok)),
        Response::Done(d) => Some(render::done(d)),
        _ => None,
    }
}

fn request(_: &Command) -> Option<Request> {
    Some(Request::Reload)
}
