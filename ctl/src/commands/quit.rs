//! `quit` (or `exit`): leave the shell, like Ctrl-D. Local: sends nothing.

use super::{CommandSpec, no_arguments};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "quit",
    usage: "quit | exit",
    about: "leave the shell (Ctrl-D too)",
    aliases: &["exit"],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Quit)
}
