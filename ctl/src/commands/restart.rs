//! `restart [--no-wait] TARGET...`: stop, then start processes, telling
//! after a second what it still waits for.

use super::{CommandSpec, Completion, Parsed, Verb, outcomes, reported, wait_targets, words};
use crate::run::Wait;
use proto::{Request, RestartRequest};

pub const SPEC: CommandSpec = CommandSpec {
    name: "restart",
    usage: "restart [--no-wait] TARGET...",
    about: "stop, then start processes",
    aliases: &[],
    parse,
    render: outcomes,
    complete,
};

/// `restart`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub targets: Vec<String>,
    pub wait: bool,
}

fn parse(args: &[&str]) -> Parsed {
    let (targets, wait, _) = wait_targets(SPEC.name, args, false)?;
    Ok(Box::new(Restart { targets, wait }))
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.option() {
        words(&["--no-wait"])
    } else {
        c.names.targets(true)
    }
}

impl Verb for Restart {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(
            RestartRequest {
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
