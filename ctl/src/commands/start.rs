//! `start [--no-wait] [--timeout SECONDS] TARGET...`: start processes and wait
//! until they run or are FATAL.

use super::{CommandSpec, wait_targets};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "start",
    usage: "start [--no-wait] [--timeout SECONDS] TARGET...",
    about: "start processes and wait until they run or are FATAL (through retries)",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let (targets, wait, timeout) = wait_targets(SPEC.name, args, true)?;
    Ok(Command::Start {
        targets,
        wait,
        timeout,
    })
}
