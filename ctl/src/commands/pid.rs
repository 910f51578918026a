//! `pid [TARGET]`: the daemon's pid, or the pids of a target.

use super::{CommandSpec, targets};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "pid",
    usage: "pid [TARGET]",
    about: "print the daemon's pid, or the pids of a target",
    aliases: &[],
    parse,
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
