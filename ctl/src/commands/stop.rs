//! `stop [--no-wait] TARGET...`: stop processes and wait until they are gone,
//! telling after a second what it still waits for.

use super::{CommandSpec, Completion, Parsed, Verb, outcomes, reported, wait_targets, words};
use crate::run::Wait;
use proto::{Request, StopRequest};

pub const SPEC: CommandSpec = CommandSpec {
    name: "stop",
    usage: "stop [--no-wait] TARGET...",
    about: "stop processes and wait until they are gone",
    aliases: &[],
    parse,
    render: outcomes,
    complete,
};

/// `stop`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub targets: Vec<String>,
    pub wait: bool,
}

fn parse(args: &[&str]) -> Parsed {
    let (targets, wait, _) = wait_targets(SPEC.name, args, false)?;
    Ok(Box::new(Stop { targets, wait }))
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.option() {
        words(&["--no-wait"])
    } else {
        c.names.targets(true)
    }
}

impl Verb for Stop {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(
            StopRequest {
                targets: self.targets.clone(),
                wait: self.wait,
            }
            .into(),
        )
    }

    fn wait(&self) -> Wait<'_> {
        reported(self.wait, &self.targets)
    }
}
