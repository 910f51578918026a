//! `version`: the client and daemon versions.

use super::{CommandSpec, no_arguments};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "version",
    usage: "version",
    about: "print the client and daemon versions",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Version)
}
