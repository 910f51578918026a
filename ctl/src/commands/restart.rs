//! `restart [--no-wait] TARGET...`: stop, then start processes.

use super::{CommandSpec, Completion, outcomes, wait_targets, words};
use crate::command::{Command, UsageError};
use proto::Request;
use proto::RestartRequest;

pub const SPEC: CommandSpec = CommandSpec {
    name: "restart",
    usage: "restart [--no-wait] TARGET...",
    about: "stop, then start processes",
    aliases: &[],
    parse,
    request,
    render: outcomes,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let (targets, wait, _) = wait_targets(SPEC.name, args, false)?;
    Ok(Command::Restart { targets, wait })
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.option() {
        words(&["--no-wait"])
    } else {
        c.names.targets(true)
    }
}

fn request(command: &Command) -> Option<Request> {
    let Command::Restart { targets, wait } = command else {
        return None;
    };
    Some(
        RestartRequest {
            targets: targets.clone(),
            wait: *wait,
        }
        .into(),
    )
}
