//! `status [TARGET...]`: the state of processes, every one without a target.

use super::{CommandSpec, targets};
use crate::command::{Command, UsageError};

pub const SPEC: CommandSpec = CommandSpec {
    name: "status",
    usage: "status [TARGET...]",
    about: "show the state of processes (every process without a target)",
    aliases: &[],
    parse,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    Ok(Command::Status {
        targets: targets(SPEC.name, args, false)?,
    })
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
