//! `quit` (or `exit`): leave the shell, like Ctrl-D, or stop reading a pipe.
//! Local: sends nothing; on the command line it is a usage error.

use super::{CommandSpec, Parsed, Verb, no_arguments, no_reply, nothing};
use crate::Code;
use crate::command::UsageError;
use crate::run::{Context, Mode};
use proto::Request;
use std::io;

pub const SPEC: CommandSpec = CommandSpec {
    name: "quit",
    usage: "quit | exit",
    about: "leave the shell (Ctrl-D too)",
    aliases: &["exit"],
    parse,
    render: no_reply,
    complete: nothing,
};

/// `quit` (no arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Quit;

fn parse(args: &[&str]) -> Parsed {
    no_arguments(SPEC.name, args)?;
    Ok(Box::new(Quit))
}

impl Verb for Quit {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        None
    }

    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        if cx.mode() == Mode::OneShot {
            let e = UsageError::new(SPEC.name, "quit and exit only make sense in the shell");
            return cx.usage(&e);
        }
        cx.leave();
        Ok(Code::Ok)
    }
}
