//! `avail`: the configured programs, with their numprocs and autostart.

use super::{CommandSpec, no_arguments};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "avail",
    usage: "avail",
    about: "list the configured programs with their numprocs and autostart",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Avail)
}
