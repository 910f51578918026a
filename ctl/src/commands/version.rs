//! `version`: the client and daemon versions.

use super::{CommandSpec, no_arguments, nothing};
use crate::Code;
use crate::command::{Command, UsageError};
use crate::render::Rendered;
use proto::Request;
use proto::Response;

pub const SPEC: CommandSpec = CommandSpec {
    name: "version",
    usage: "version",
    about: "print the client and daemon versions",
    aliases: &[],
    parse,
    request,
    render,
    complete: nothing,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Version)
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Version(v) = reply else {
        return None;
    };
    Some(Rendered::out(
        format!(
            "taskmasterctl {}\ntaskmasterd {} (protocol {})\n",
            proto::SUITE_VERSION,
            v.daemon_version,
            v.protocol_version
        ),
        Code::Ok,
    ))
}

fn request(_: &Command) -> Option<Request> {
    Some(Request::Version)
}
