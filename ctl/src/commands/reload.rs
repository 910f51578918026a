//! `reload [--wait] [--timeout SECONDS]` (supervisorctl's `update`): re-read
//! the config file and apply what changed; `--wait` until every restarted or
//! added process runs or failed.

use super::{CommandSpec, seconds};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "reload",
    usage: "reload [--wait] [--timeout SECONDS] | update",
    about: "re-read the config file and apply what changed",
    aliases: &["update"],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let mut wait = false;
    let mut timeout = None;
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match *a {
            "--wait" => wait = true,
            "--timeout" => timeout = Some(seconds(SPEC.name, args.next().copied())?),
            other => {
                return Err(UsageError::new(
                    SPEC.name,
                    format!("unexpected argument {other:?}"),
                ));
            }
        }
    }
    Ok(Command::Reload { wait, timeout })
}
