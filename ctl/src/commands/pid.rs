//! `pid [TARGET]`: the daemon's pid, or the pids of a target.

use super::{CommandSpec, Completion, Parsed, Verb, targets};
use crate::Code;
use crate::command::UsageError;
use crate::render::{self, Rendered};
use proto::{PidRequest, Request, Response};

pub const SPEC: CommandSpec = CommandSpec {
    name: "pid",
    usage: "pid [TARGET]",
    about: "print the daemon's pid, or the pids of a target",
    aliases: &[],
    parse,
    render,
    complete,
};

/// `pid`'s argument: `None` for the daemon's own pid.
#[derive(Debug, Clone, PartialEq)]
pub struct Pid {
    pub target: Option<String>,
}

fn parse(args: &[&str]) -> Parsed {
    let mut targets = targets(SPEC.name, args, false)?;
    if targets.len() > 1 {
        return Err(UsageError::new(SPEC.name, "pid takes at most one target"));
    }
    Ok(Box::new(Pid {
        target: targets.pop(),
    }))
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.positional(&[]) == 0 {
        c.names.targets(true)
    } else {
        Vec::new()
    }
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Pids(pids) = reply else {
        return None;
    };
    Some(Rendered::out(render::pids_text(pids), Code::Ok))
}

impl Verb for Pid {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(
            PidRequest {
                target: self.target.clone(),
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Pid;
    use crate::commands::test_support::{parses, usage_err};

    #[test]
    fn pid_takes_zero_or_one_target() {
        parses("pid", Pid { target: None });
        parses(
            "pid web:0",
            Pid {
                target: Some("web:0".into()),
            },
        );
        assert!(usage_err("pid a b").message.contains("at most one"));
    }
}
