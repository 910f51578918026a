//! `version`: the client and daemon versions; the client's alone (and the
//! reason, exit 3) when the daemon cannot be reached.

use super::{CommandSpec, Parsed, Verb, no_arguments, nothing};
use crate::Code;
use crate::render::Rendered;
use crate::run::{Context, Wait};
use proto::{Request, Response};
use std::io;

pub const SPEC: CommandSpec = CommandSpec {
    name: "version",
    usage: "version",
    about: "print the client and daemon versions",
    aliases: &[],
    parse,
    render,
    complete: nothing,
};

/// `version` (no arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Version;

fn parse(args: &[&str]) -> Parsed {
    no_arguments(SPEC.name, args)?;
    Ok(Box::new(Version))
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Version(v) = reply else {
        return None;
    };
    Some(Rendered::out(
        format!(
            "taskmasterctl {}\ntaskmasterd {} (protocol {})\n",
            proto::SUITE_VERSION,
            v.daemon_version,
            v.protocol_version
        ),
        Code::Ok,
    ))
}

impl Verb for Version {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(Request::Version)
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        match cx.call(&Request::Version, Wait::Quick) {
            Ok(reply) => cx.reply(&SPEC, &reply),
            Err(e) => {
                // What the client knows without the daemon.
                if !cx.json {
                    writeln!(cx.out, "taskmasterctl {}", proto::SUITE_VERSION)?;
                }
                cx.report(&e)
            }
        }
    }
}
