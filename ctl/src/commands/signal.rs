//! `signal SIG TARGET...`: send a signal to processes; the name is checked
//! here, so a typo never reaches the daemon.

use super::{CommandSpec, Completion, Parsed, Verb, no_options, outcomes, targets};
use crate::command::UsageError;
use proto::{Request, Signal, SignalRequest};

pub const SPEC: CommandSpec = CommandSpec {
    name: "signal",
    usage: "signal SIG TARGET...",
    about: "send a signal (TERM, HUP, USR1, ...) to processes",
    aliases: &[],
    parse,
    render: outcomes,
    complete,
};

/// `signal`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct SendSignal {
    pub signal: Signal,
    pub targets: Vec<String>,
}

fn parse(args: &[&str]) -> Parsed {
    let err = |m: String| UsageError::new(SPEC.name, m);
    no_options(SPEC.name, args)?;
    let Some((sig, rest)) = args.split_first() else {
        return Err(err("missing signal name and target".into()));
    };
    let signal = sig.parse::<Signal>().map_err(|e| err(e.to_string()))?;
    Ok(Box::new(SendSignal {
        signal,
        targets: targets(SPEC.name, rest, true)?,
    }))
}

fn complete(c: &Completion<'_>) -> Vec<String> {
    if c.positional(&[]) == 0 {
        Signal::ALL.iter().map(|s| s.name().into()).collect()
    } else {
        c.names.targets(true)
    }
}

impl Verb for SendSignal {
    fn spec(&self) -> &'static CommandSpec {
        &SPEC
    }

    fn request(&self) -> Option<Request> {
        Some(
            SignalRequest {
                signal: self.signal,
                targets: self.targets.clone(),
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::SendSignal;
    use crate::commands::test_support::{parses, usage_err, v};
    use proto::Signal;

    #[test]
    fn signal_names_are_checked_client_side() {
        parses(
            "signal SIGusr1 web",
            SendSignal {
                signal: Signal::Usr1,
                targets: v(&["web"]),
            },
        );
        parses(
            "signal term web:0 db",
            SendSignal {
                signal: Signal::Term,
                targets: v(&["web:0", "db"]),
            },
        );
        let e = usage_err("signal FOO web");
        assert!(e.message.contains("unknown signal"), "{e}");
        assert!(usage_err("signal").message.contains("missing signal"));
    }
}
