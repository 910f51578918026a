//! `shutdown`: stop every process, then the daemon. A connection the daemon
//! closes before its goodbye arrives counts as the goodbye.

use super::{CommandSpec, Parsed, Verb, no_arguments, nothing};
use crate::Code;
use crate::render::{self, Rendered};
use crate::run::{CallError, Context, Wait};
use proto::{ClientError, Request, Response};
use std::io;

pub const SPEC: CommandSpec = CommandSpec {
    name: "shutdown",
    usage: "shutdown",
    about: "stop every process, then the daemon",
    aliases: &[],
    parse,
    render,
    complete: nothing,
};

/// `shutdown` (no arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Shutdown;

fn parse(args: &[&str]) -> Parsed {
    no_arguments(SPEC.name, args)?;
    Ok(Box::new(Shutdown))
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Done(d) = reply else {
        return None;
    };
    Some(render::done(d))
}

impl Verb for Shutdown {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(Request::Shutdown)
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        let reply = match cx.call(&Request::Shutdown, Wait::Quick) {
            Ok(reply) => reply,
            // The daemon may close before its goodbye reaches us.
            Err(CallError::Lost(ClientError::Closed)) => Response::Done(proto::Done {
                message: "taskmasterd is shutting down".into(),
            }),
            Err(e) => return cx.report(&e),
        };
        let code = cx.reply(&SPEC, &reply)?;
        // The daemon is going: a next command must not reuse this connection.
        cx.disconnect();
        Ok(code)
    }
}
