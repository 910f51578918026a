//! `shutdown`: stop every process, then the daemon.

use super::{CommandSpec, no_arguments, nothing};
use crate::command::{Command, UsageError};
use crate::render::{self, Rendered};
use proto::Request;
use proto::Response;

pub const SPEC: CommandSpec = CommandSpec {
    name: "shutdown",
    usage: "shutdown",
    about: "stop every process, then the daemon",
    aliases: &[],
    parse,
    request,
    render,
    complete: nothing,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Shutdown)
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Done(d) = reply else {
        return None;
    };
    Some(render::done(d))
}

fn request(_: &Command) -> Option<Request> {
    Some(Request::Shutdown)
}
