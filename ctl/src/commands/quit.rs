//! `quit` (or `exit`): leave the shell, like Ctrl-D. Local: sends nothing.

use super::{CommandSpec, local, no_arguments, no_reply, nothing};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "quit",
    usage: "quit | exit",
    about: "leave the shell (Ctrl-D too)",
    aliases: &["exit"],
    parse,
    request: local,
    render: no_reply,
    complete: nothing,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    no_arguments(SPEC.name, args)?;
    Ok(Command::Quit)
}
