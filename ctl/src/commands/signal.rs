//! `signal SIG TARGET...`: send a signal to processes; the name is checked
//! here, so a typo never reaches the daemon.

use super::{CommandSpec, Completion, no_options, outcomes, targets};
use crate::command::{Command, UsageError};
use proto::Request;
use proto::Signal;
use proto::SignalRequest;

pub const SPEC: CommandSpec = CommandSpec {
    name: "signal",
    usage: "signal SIG TARGET...",
    about: "send a signal (TERM, HUP, USR1, ...) to processes",
    aliases: &[],
    parse,
    request,
    render: outcomes,
    complete,
};

fn parse(args: &[&str]) -> Result<Command, UsageError> {
    let err = |m: String| UsageError::new(SPEC.name, m);
    no_options(SPEC.name, args)?;
    let Some((sig, rest)) = args.split_first() else {
        return Err(err("missing signal name and target".into()));
    };
    let signal = sig.parse::<Signal>().map_err(|e| err(e.to_string()))?;
    Ok(Command::Signal {
        signal,
        targets: targets(SPEC.name, rest, true)?,
    })
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.positional(&[]) == 0 {
        Signal::ALL.iter().map(|s| s.name().into()).collect()
    } else {
        c.names.targets(true)
    }
}

fn request(command: &Command) -> Option<Request> {
    let Command::Signal { signal, targets } = command else {
        return None;
    };
    Some(
        SignalRequest {
            signal: *signal,
            targets: targets.clone(),
        }
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use crate::command::Command;
    use crate::commands::test_support::{cmd, usage_err, v};
    use proto::Signal;

    #[test]
    fn signal_names_are_checked_client_side() {
        assert_eq!(
            cmd("signal SIGusr1 web"),
            Command::Signal {
                signal: Signal::Usr1,
                targets: v(&["web"])
            }
        );
        assert_eq!(
            cmd("signal term web:0 db"),
            Command::Signal {
                signal: Signal::Term,
                targets: v(&["web:0", "db"])
            }
        );
        let e = usage_err("signal FOO web");
        assert!(e.message.contains("unknown signal"), "{e}");
        assert!(usage_err("signal").message.contains("missing signal"));
    }
}
