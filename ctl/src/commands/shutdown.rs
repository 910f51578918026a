//! `shutdown`: stop every process, then the daemon.

use super::{CommandSpec, no_arguments};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "shutdown",
    usage: "shutdown",
    about: "stop every process, then the daemon",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Shutdown)
}
