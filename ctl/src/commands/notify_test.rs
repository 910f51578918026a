//! `notify-test PROGRAM`: send a test notification through a program's rules.

use super::{CommandSpec, Completion, Parsed, Verb, no_options, outcomes};
use crate::command::UsageError;
use proto::{NotifyTestRequest, Request};

pub const SPEC: CommandSpec = CommandSpec {
    name: "notify-test",
    usage: "notify-test PROGRAM",
    about: "send a test notification through a program's rules",
    aliases: &[],
    parse,
    render: outcomes,
    complete,
};

/// `notify-test`'s argument.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyTest {
    pub program: String,
}

fn parse(args: &[&str]) -> Parsed {
    let err = |m: String| UsageError::new(SPEC.name, m);
    no_options(SPEC.name, args)?;
    match args {
        [program] if !program.is_empty() && !program.contains(':') => Ok(Box::new(NotifyTest {
            program: program.to_string(),
        })),
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

impl Verb for NotifyTest {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(
            NotifyTestRequest {
                program: self.program.clone(),
            }
            .into(),
        )
    }
}
