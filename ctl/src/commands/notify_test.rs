//! `notify-test PROGRAM`: send a test notification through a program's rules.

use super::{CommandSpec, no_options};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "notify-test",
    usage: "notify-test PROGRAM",
    about: "send a test notification through a program's rules",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let err = |m: String| UsageError::new(SPEC.name, m);
    no_options(SPEC.name, args)?;
    match args {
        [program] if !program.is_empty() && !program.contains(':') => Ok(Command::NotifyTest {
            program: program.to_string(),
        }),
        [program] => Err(err(format!("bad program name {program:?}"))),
        [] => Err(err("missing program name".into())),
        _ => Err(err("notify-test takes one program name".into())),
    }
}
