//! `notify-test PROGRAM`: send a test notification through a program's rules.

use super::{CommandSpec, Completion, no_options, outcomes};
use crate::command::{Command, UsageError};
use proto::NotifyTestRequest;
use proto::Request;

pub const SPEC: CommandSpec = CommandSpec {
    name: "notify-test",
    usage: "notify-test PROGRAM",
    about: "send a test notification through a program's rules",
    aliases: &[],
    parse,
    request,
    render: outcomes,
    complete,
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

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.positional(&[]) == 0 {
        c.names.programs.clone()
    } else {
        Vec::new()
    }
}

fn request(command: &Command) -> Option<Request> {
    let Command::NotifyTest { program } = command else {
        return None;
    };
    Some(
        NotifyTestRequest {
            program: program.clone(),
        }
        .into(),
    )
}
