//! `restart [--no-wait] TARGET...`: stop, then start processes.

use super::{CommandSpec, wait_targets};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "restart",
    usage: "restart [--no-wait] TARGET...",
    about: "stop, then start processes",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let (targets, wait, _) = wait_targets(SPEC.name, args, false)?;
    Ok(Command::Restart { targets, wait })
}
