//! The command language of `taskmasterctl`: words -> a [`Verb`] -> [`proto::Request`].
//!
//! One parser serves the three modes (argv in one-shot mode, a line from a
//! pipe, a line typed in the shell), so a command means the same everywhere.
//! Everything that can be checked without the daemon is checked here (missing
//! targets, malformed `NAME:INDEX`, unknown signal names, bad `-n`), so a
//! typo is a usage error (exit 2) and never reaches the wire.
//!
//! This file is what the verbs share: tokenizing, the name lookup (with its
//! "did you mean"), [`Invocation`] and [`UsageError`]. Each verb's spec,
//! argument parsing and parsed form (a [`Verb`]) is in its own file under
//! [`crate::commands`], found through the registry there.

use std::fmt;

pub use crate::commands::{COMMANDS, CommandSpec, Verb, spec};

/// What `TARGET` means, shown under the command list.
pub const TARGET_HELP: &str =
    "TARGET is NAME (every instance of a program), NAME:INDEX (one instance) or all.";

/// The command closest to a mistyped one (`stauts` -> `status`), if any is
/// close enough to be what was meant.
fn closest_command(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    COMMANDS
        .iter()
        .map(|c| (strsim::osa_distance(&name, c.name), c.name))
        .filter(|(d, _)| *d <= 2 && *d < name.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A command plus how its result should be printed.
#[derive(Debug)]
pub struct Invocation {
    pub command: Box<dyn Verb>,
    /// `--json` was given (on the command line or after the command).
    pub json: bool,
}

// Not derived: the derive would compare the boxes by moving out of them
// (rust-lang/rust#31740).
impl PartialEq for Invocation {
    fn eq(&self, other: &Self) -> bool {
        *self.command == *other.command && self.json == other.json
    }
}

/// A command that cannot be run as typed. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    /// The command it is about, to print its usage line.
    pub command: Option<&'static str>,
}

impl UsageError {
    pub(crate) fn new(command: &'static str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            command: Some(command),
        }
    }

    /// `usage: start [--no-wait] TARGET...` when the command is known.
    pub fn usage(&self) -> Option<&'static str> {
        self.command.and_then(spec).map(|s| s.usage)
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Parses one line as typed in the shell or read from a pipe. Blank lines and
/// `#` comments are `Ok(None)`. Quoting follows the shell (`shlex`).
pub fn parse_line(line: &str) -> Result<Option<Invocation>, UsageError> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let words = shlex::split(trimmed).ok_or_else(|| UsageError {
        message: "unbalanced quotes".into(),
        command: None,
    })?;
    if words.is_empty() {
        return Ok(None);
    }
    parse_words(&words).map(Some)
}

/// Parses a command and its arguments (argv after the global options, or a
/// split line). `--json` may appear anywhere among the arguments.
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Invocation, UsageError> {
    let mut json = false;
    let mut rest: Vec<&str> = Vec::with_capacity(words.len());
    for w in words {
        match w.as_ref() {
            "--json" => json = true,
            other => rest.push(other),
        }
    }
    let Some((&name, args)) = rest.split_first() else {
        return Err(UsageError {
            message: "no command given".into(),
            command: None,
        });
    };
    if crate::commands::is_option(name) {
        return Err(UsageError {
            message: format!("unknown option {name:?} (see taskmasterctl --help)"),
            command: None,
        });
    }
    let Some(spec) = spec(name) else {
        return Err(UsageError {
            message: match closest_command(name) {
                Some(c) => format!("unknown command {name:?}, did you mean {c}?"),
                None => format!("unknown command {name:?}"),
            },
            command: None,
        });
    };
    // `start --help` is the usage of start, whatever else was typed.
    if args.iter().any(|a| *a == "--help" || *a == "-h") {
        return Ok(Invocation {
            command: Box::new(crate::commands::help::Help {
                command: Some(spec.name.to_string()),
            }),
            json,
        });
    }
    let command = (spec.parse)(args)?;
    Ok(Invocation { command, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::commands::help::Help;
    use crate::commands::notify_test::NotifyTest;
    use crate::commands::quit::Quit;
    use crate::commands::reload::Reload;
    use crate::commands::restart::Restart;
    use crate::commands::shutdown::Shutdown;
    use crate::commands::start::Start;
    use crate::commands::status::Status;
    use crate::commands::stop::Stop;
    use crate::commands::test_support::{cmd, parses, usage_err, v};
    use crate::commands::version::Version;
    use crate::commands::{Verb, avail::Avail};
    use proto::{NotifyTestRequest, OutputStream, Request, StartRequest, TailRequest};

    #[test]
    fn start_stop_restart_wait_unless_no_wait() {
        parses(
            "start web",
            Start {
                targets: v(&["web"]),
                wait: true,
                timeout: None,
            },
        );
        parses(
            "stop --no-wait web:1 db",
            Stop {
                targets: v(&["web:1", "db"]),
                wait: false,
            },
        );
        parses(
            "restart all --no-wait",
            Restart {
                targets: v(&["all"]),
                wait: false,
            },
        );
    }

    #[test]
    fn targets_are_required_and_well_formed() {
        for line in ["start", "stop --no-wait", "restart", "signal TERM"] {
            assert!(usage_err(line).message.contains("missing target"), "{line}");
        }
        for bad in ["web:", ":0", "web:x", "web:-1"] {
            let e = usage_err(&format!("stop {bad}"));
            assert!(e.message.contains("bad target"), "{bad}: {e}");
            assert_eq!(e.usage(), Some("stop [--no-wait] TARGET..."));
        }
    }

    #[test]
    fn argumentless_commands_refuse_arguments() {
        let reload = Reload {
            wait: false,
            timeout: None,
        };
        parses("reload", reload.clone());
        parses("update", reload); // supervisorctl's word
        parses(
            "reload --wait --timeout 2.5",
            Reload {
                wait: true,
                timeout: Some(std::time::Duration::from_millis(2500)),
            },
        );
        parses(
            "start --timeout 1 web",
            Start {
                targets: v(&["web"]),
                wait: true,
                timeout: Some(std::time::Duration::from_secs(1)),
            },
        );
        assert!(
            usage_err("start --timeout web")
                .message
                .contains("--timeout")
        );
        parses("avail", Avail);
        assert_eq!(Avail.request(), Some(Request::Avail));
        parses("shutdown", Shutdown);
        parses("version", Version);
        parses("quit", Quit);
        parses("exit", Quit);
        let e = usage_err("reload now");
        assert!(e.message.contains("unexpected argument"), "{e}");
        assert_eq!(
            e.usage(),
            Some("reload [--wait] [--timeout SECONDS] | update")
        );
        let e = usage_err("shutdown now");
        assert!(e.message.contains("takes no arguments"), "{e}");
    }

    #[test]
    fn notify_test_and_help() {
        parses(
            "notify-test web",
            NotifyTest {
                program: "web".into(),
            },
        );
        assert!(usage_err("notify-test").message.contains("missing program"));
        assert!(
            usage_err("notify-test web:0")
                .message
                .contains("bad program")
        );
        parses("help", Help { command: None });
        parses(
            "help exit",
            Help {
                command: Some("quit".into()),
            },
        );
        parses(
            "start --help",
            Help {
                command: Some("start".into()),
            },
        );
        assert!(usage_err("help nope").message.contains("no command"));
    }

    #[test]
    fn command_names_ignore_case_and_typos_get_a_suggestion() {
        parses("STATUS", Status { targets: v(&[]) });
        parses(
            "Stop web",
            Stop {
                targets: v(&["web"]),
                wait: true,
            },
        );
        let e = usage_err("stauts");
        assert_eq!(
            e.message,
            "unknown command \"stauts\", did you mean status?"
        );
        assert_eq!(
            usage_err("RESTRAT web").message,
            "unknown command \"RESTRAT\", did you mean restart?"
        );
        assert_eq!(usage_err("xyzzy").message, "unknown command \"xyzzy\"");
    }

    #[test]
    fn unknown_commands_quotes_blanks_and_json() {
        let e = usage_err("frobnicate web");
        assert!(e.message.contains("unknown command"), "{e}");
        assert_eq!(e.usage(), None);
        assert!(usage_err("status \"web").message.contains("quotes"));
        assert_eq!(parse_line("   "), Ok(None));
        assert_eq!(parse_line("# a comment"), Ok(None));
        let inv = parse_words(&["status", "--json", "web"]);
        assert_eq!(
            inv,
            Ok(Invocation {
                command: Box::new(Status {
                    targets: v(&["web"])
                }),
                json: true
            })
        );
        assert!(parse_words::<&str>(&[]).is_err());
    }

    #[test]
    fn every_command_maps_to_its_request() {
        assert_eq!(
            cmd("start --no-wait web").request(),
            Some(Request::Start(StartRequest {
                targets: v(&["web"]),
                wait: false
            }))
        );
        assert_eq!(
            cmd("tail -n 2 web stderr").request(),
            Some(Request::Tail(TailRequest {
                target: "web".into(),
                stream: OutputStream::Stderr,
                lines: 2,
                follow: false
            }))
        );
        assert_eq!(cmd("reload").request(), Some(Request::Reload));
        assert_eq!(
            cmd("notify-test web").request(),
            Some(Request::NotifyTest(NotifyTestRequest {
                program: "web".into()
            }))
        );
        assert_eq!(cmd("help").request(), None);
        assert_eq!(cmd("quit").request(), None);
    }
}
