//! `help [COMMAND]`: the list of commands, or one command's usage. Local:
//! sends nothing (`render::help` writes the text from the registry).

use super::{CommandSpec, spec};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "help",
    usage: "help [COMMAND]",
    about: "list the commands, or show one command's usage",
    aliases: &[],
    parse,
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
