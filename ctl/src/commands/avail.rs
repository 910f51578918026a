//! `avail`: the configured programs, with their numprocs and autostart.

use super::{CommandSpec, Parsed, Verb, no_arguments, nothing};
use crate::Code;
use crate::render::{self, Rendered};
use proto::{Request, Response};

pub const SPEC: CommandSpec = CommandSpec {
    name: "avail",
    usage: "avail",
    about: "list the configured programs with their numprocs and autostart",
    aliases: &[],
    parse,
    render,
    complete: nothing,
};

/// `avail` (no arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Avail;

fn parse(args: &[&str]) -> Parsed {
    no_arguments(SPEC.name, args)?;
    Ok(Box::new(Avail))
}

fn render(reply: &Response) -> Option<Rendered> {
    let Response::Avail(programs) = reply else {
        return None;
    };
    Some(Rendered::out(render::avail_table(programs), Code::Ok))
}

impl Verb for Avail {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(Request::Avail)
    }
}
