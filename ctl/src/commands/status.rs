//! `status [TARGET...]`: the state of processes, every one without a target.

use super::{CommandSpec, Completion, Parsed, Verb, targets};
use crate::Code;
use crate::render::{self, Rendered};
use proto::{Request, Response, StatusRequest};

pub const SPEC: CommandSpec = CommandSpec {
    name: "status",
    usage: "status [TARGET...]",
    about: "show the state of processes (every process without a target)",
    aliases: &[],
    parse,
    render,
    complete,
};

/// `status`'s targets: none for every process.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub targets: Vec<String>,
}

fn parse(args: &[&str]) -> Parsed {
    Ok(Box::new(Status {
        targets: targets(SPEC.name, args, false)?,
    }))
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

impl Verb for Status {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(
            StatusRequest {
                targets: self.targets.clone(),
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Status;
    use crate::commands::test_support::{parses, v};

    #[test]
    fn status_takes_any_number_of_targets_of_every_form() {
        parses("status", Status { targets: vec![] });
        parses(
            "status web web:0 all",
            Status {
                targets: v(&["web", "web:0", "all"]),
            },
        );
    }
}
