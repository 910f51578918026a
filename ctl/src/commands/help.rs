//! `help [COMMAND]`: the list of commands, or one command's usage. Local:
//! sends nothing (`render::help` writes the text from the registry).

use super::{CommandSpec, Completion, command_names, local, no_reply, spec};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "help",
    usage: "help [COMMAND]",
    about: "list the commands, or show one command's usage",
    aliases: &[],
    parse,
    request: local,
    render: no_reply,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    match args {
        [] => Ok(Command::Help { command: None }),
        [cmd] => match spec(cmd) {
            Some(s) => Ok(Command::Help {
                command: Some(s.name.to_string()),
            }),
            None => Err(UsageError::new(SPEC.name, format!("no command {cmd:?}"))),
        },
        _ => Err(UsageError::new(SPEC.name, "help takes at most one command")),
    }
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.positional(&[]) == 0 {
        command_names()
    } else {
        Vec::new()
    }
}
