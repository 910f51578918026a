//! `help [COMMAND]`: the list of commands, or one command's usage, written
//! from the registry; with `--json`, the same as an array of
//! `{name, usage, about}`. Local: sends nothing.

use super::{COMMANDS, CommandSpec, Completion, Parsed, Verb, command_names, no_reply, spec};
use crate::Code;
use crate::command::{TARGET_HELP, UsageError};
use crate::render;
use crate::run::Context;
use proto::Request;
use serde_json::json;
use std::fmt::Write as _;
use std::io;

pub const SPEC: CommandSpec = CommandSpec {
    name: "help",
    usage: "help [COMMAND]",
    about: "list the commands, or show one command's usage",
    aliases: &[],
    parse,
    render: no_reply,
    complete,
};

/// `help`'s argument: a command's name (aliases resolved), or `None` for
/// all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Help {
    pub command: Option<String>,
}

fn parse(args: &[&str]) -> Parsed {
    match args {
        [] => Ok(Box::new(Help { command: None })),
        [cmd] => match spec(cmd) {
            Some(s) => Ok(Box::new(Help {
                command: Some(s.name.to_string()),
            })),
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

impl Verb for Help {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        None
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        let text = if cx.json {
            let commands: Vec<_> = COMMANDS
                .iter()
                .filter(|c| self.command.as_deref().is_none_or(|n| n == c.name))
                .map(|c| json!({"name": c.name, "usage": c.usage, "about": c.about}))
                .collect();
            render::json_line(&json!(commands))
        } else {
            text(self.command.as_deref())
        };
        cx.out.write_all(text.as_bytes())?;
        Ok(Code::Ok)
    }
}

/// `help` (every command) or `help CMD` (its usage and description).
pub fn text(command: Option<&str>) -> String {
    match command.and_then(spec) {
        Some(c) => format!("usage: {}\n  {}\n", c.usage, c.about),
        None => {
            let width = COMMANDS.iter().map(|c| c.usage.len()).max().unwrap_or(0);
            let mut s = String::from("commands:\n");
            for c in COMMANDS {
                let _ = writeln!(s, "  {:<width$}  {}", c.usage, c.about);
            }
            let _ = writeln!(s, "{TARGET_HELP}");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command_and_one_usage() {
        let all = text(None);
        for c in COMMANDS {
            assert!(all.contains(c.usage), "{} missing from help", c.name);
        }
        assert_eq!(
            text(Some("start")),
            "usage: start [--no-wait] [--timeout SECONDS] TARGET...\n  \
             start processes and wait until they run or are FATAL (through retries)\n"
        );
    }
}
