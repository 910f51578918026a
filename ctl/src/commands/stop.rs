//! `stop [--no-wait] TARGET...`: stop processes and wait until they are gone.

use super::{CommandSpec, wait_targets};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "stop",
    usage: "stop [--no-wait] TARGET...",
    about: "stop processes and wait until they are gone",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let (targets, wait, _) = wait_targets(SPEC.name, args, false)?;
    Ok(Command::Stop { targets, wait })
}
