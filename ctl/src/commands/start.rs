//! `start [--no-wait] [--timeout SECONDS] TARGET...`: start processes and wait
//! until they run or are FATAL.

use super::{CommandSpec, Completion, outcomes, wait_targets, words};
use crate::command::{Command, UsageError};
use proto::Request;
use proto::StartRequest;

pub const SPEC: CommandSpec = CommandSpec {
    name: "start",
    usage: "start [--no-wait] [--timeout SECONDS] TARGET...",
    about: "start processes and wait until they run or are FATAL (through retries)",
    aliases: &[],
    parse,
    request,
    render: outcomes,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let (targets, wait, timeout) = wait_targets(SPEC.name, args, true)?;
    Ok(Command::Start {
        targets,
        wait,
        timeout,
    })
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.option() {
        words(&["--no-wait"])
    } else {
        c.names.targets(true)
    }
}

fn request(command: &Command) -> Option<Request> {
    let Command::Start { targets, wait, .. } = command else {
        return None;
    };
    Some(
        StartRequest {
            targets: targets.clone(),
            wait: *wait,
        }
        .into(),
    )
}
