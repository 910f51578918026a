//! `pid [TARGET]`: the daemon's pid, or the pids of a target.

use super::{CommandSpec, Completion, targets};
use crate::Code;
use crate::command::{Command, UsageError};
use crate::render::{self, Rendered};
use proto::PidRequest;
use proto::Request;
use proto::Response;

pub const SPEC: CommandSpec = CommandSpec {
    name: "pid",
    usage: "pid [TARGET]",
    about: "print the daemon's pid, or the pids of a target",
    aliases: &[],
    parse,
    request,
    render,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let mut targets = targets(SPEC.name, args, false)?;
    if targets.len() > 1 {
        return Err(UsageError::new(SPEC.name, "pid takes at most one target"));
    }
    Ok(Command::Pid {
        target: targets.pop(),
    })
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

fn request(command: &Command) -> Option<Request> {
    let Command::Pid { target } = command else {
        return None;
    };
    Some(
        PidRequest {
            target: target.clone(),
        }
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::commands::test_support::{cmd, usage_err};

    #[test]
    fn pid_takes_zero_or_one_target() {
        assert_eq!(cmd("pid"), Command::Pid { target: None });
        assert_eq!(
            cmd("pid web:0"),
            Command::Pid {
                target: Some("web:0".into())
            }
        );
        assert!(usage_err("pid a b").message.contains("at most one"));
    }
}
