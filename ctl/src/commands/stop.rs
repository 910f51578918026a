//! `stop [--no-wait] TARGET...`: stop processes and wait until they are gone.

use super::{CommandSpec, Completion, outcomes, wait_targets, words};
use crate::command::{Command, UsageError};
use proto::Request;
use proto::StopRequest;

pub const SPEC: CommandSpec = CommandSpec {
    name: "stop",
    usage: "stop [--no-wait] TARGET...",
    about: "stop processes and wait until they are gone",
    aliases: &[],
    parse,
    request,
    render: outcomes,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let (targets, wait, _) = wait_targets(SPEC.name, args, false)?;
    Ok(Command::Stop { targets, wait })
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.option() {
        words(&["--no-wait"])
    } else {
        c.names.targets(true)
    }
}

fn request(command: &Command) -> Option<Request> {
    let Command::Stop { targets, wait } = command else {
        return None;
    };
    Some(
        StopRequest {
            targets: targets.clone(),
            wait: *wait,
        }
        .into(),
    )
}
