//! `avail`: the configured programs, with their numprocs and autostart.

use super::{CommandSpec, no_arguments, nothing};
use crate::Code;
use crate::command::{Command, UsageError};
use crate::render::{self, Rendered};
use proto::Request;
use proto::Response;

pub const SPEC: CommandSpec = CommandSpec {
    name: "avail",
    usage: "avail",
    about: "list the configured programs with their numprocs and autostart",
    aliases: &[],
    parse,
    request,
    render,
    complete: nothing,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Avail)
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Avail(programs) = reply else {
        return None;
    };
    Some(Rendered::out(render::avail_table(programs), Code::Ok))
}

fn request(_: &Command) -> Option<Request> {
    Some(Request::Avail)
}
