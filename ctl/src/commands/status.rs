//! `status [TARGET...]`: the state of processes, every one without a target.

use super::{CommandSpec, Completion, targets};
use crate::Code;
use crate::command::{Command, UsageError};
use crate::render::{self, Rendered};
use proto::Request;
use proto::Response;
use proto::StatusRequest;

pub const SPEC: CommandSpec = CommandSpec {
    name: "status",
    usage: "status [TARGET...]",
    about: "show the state of processes (every process without a target)",
    aliases: &[],
    parse,
    request,
    render,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    Ok(Command::Status {
        targets: targets(SPEC.name, args, false)?,
    })
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    c.names.targets(true)
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Status(infos) = reply else {
        return None;
    };
    Some(if infos.is_empty() {
        Rendered::err("no processes\n".into(), Code::Ok)
    } else {
        Rendered::out(render::status_table(infos), Code::Ok)
    })
}

fn request(command: &Command) -> Option<Request> {
    let Command::Status { targets } = command else {
        return None;
    };
    Some(
        StatusRequest {
            targets: targets.clone(),
        }
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::commands::test_support::{cmd, v};

    #[test]
    fn status_takes_any_number_of_targets_of_every_form() {
        assert_eq!(cmd("status"), Command::Status { targets: vec![] });
        assert_eq!(
            cmd("status web web:0 all"),
            Command::Status {
                targets: v(&["web", "web:0", "all"])
            }
        );
    }
}
