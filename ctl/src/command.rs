//! The command language of `taskmasterctl`: words -> [`Command`] -> [`proto::Request`].
//!
//! One parser serves the three modes (argv in one-shot mode, a line from a
//! pipe, a line typed in the shell), so a command means the same everywhere.
//! Everything that can be checked without the daemon is checked here (missing
//! targets, malformed `NAME:INDEX`, unknown signal names, bad `-n`), so a
//! typo is a usage error (exit 2) and never reaches the wire.

use proto::{
    NotifyTestRequest, OutputStream, PidRequest, Request, RestartRequest, Signal, StartRequest,
    StatusRequest, StopRequest, TailRequest, Target,
};
use std::fmt;

/// A command the user can type, with its `help` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "status",
        usage: "status [TARGET...]",
        about: "show the state of processes (every process without a target)",
    },
    CommandSpec {
        name: "start",
        usage: "start [--no-wait] [--timeout SECONDS] TARGET...",
        about: "start processes and wait until they run or are FATAL (through retries)",
    },
    CommandSpec {
        name: "stop",
        usage: "stop [--no-wait] TARGET...",
        about: "stop processes and wait until they are gone",
    },
    CommandSpec {
        name: "restart",
        usage: "restart [--no-wait] TARGET...",
        about: "stop, then start processes",
    },
    CommandSpec {
        name: "signal",
        usage: "signal SIG TARGET...",
        about: "send a signal (TERM, HUP, USR1, ...) to processes",
    },
    CommandSpec {
        name: "pid",
        usage: "pid [TARGET]",
        about: "print the daemon's pid, or the pids of a target",
    },
    CommandSpec {
        name: "tail",
        usage: "tail [-f] [-n N] TARGET [stdout|stderr]",
        about: "print the last output lines of a process (-f: keep following)",
    },
    CommandSpec {
        name: "reload",
        usage: "reload [--wait] [--timeout SECONDS] | update",
        about: "re-read the config file and apply what changed",
    },
    CommandSpec {
        name: "avail",
        usage: "avail",
        about: "list the configured programs with their numprocs and autostart",
    },
    CommandSpec {
        name: "shutdown",
        usage: "shutdown",
        about: "stop every process, then the daemon",
    },
    CommandSpec {
        name: "version",
        usage: "version",
        about: "print the client and daemon versions",
    },
    CommandSpec {
        name: "notify-test",
        usage: "notify-test PROGRAM",
        about: "send a test notification through a program's rules",
    },
    CommandSpec {
        name: "help",
        usage: "help [COMMAND]",
        about: "list the commands, or show one command's usage",
    },
    CommandSpec {
        name: "quit",
        usage: "quit | exit",
        about: "leave the shell (Ctrl-D too)",
    },
];

/// What `TARGET` means, shown under the command list.
pub const TARGET_HELP: &str =
    "TARGET is NAME (every instance of a program), NAME:INDEX (one instance) or all.";

/// The spec of a command name, in any case (`STATUS`; `exit` is `quit`,
/// `update` is `reload`).
pub fn spec(name: &str) -> Option<&'static CommandSpec> {
    let name = name.to_ascii_lowercase();
    // supervisorctl's words for ours.
    let name = match name.as_str() {
        "exit" => "quit",
        "update" => "reload",
        other => other,
    };
    COMMANDS.iter().find(|c| c.name == name)
}

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

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Status {
        targets: Vec<String>,
    },
    Start {
        targets: Vec<String>,
        wait: bool,
        /// `--timeout`: give up waiting (exit 1) after this long; `None`:
        /// until RUNNING or FATAL, which the program's retry policy bounds.
        timeout: Option<std::time::Duration>,
    },
    Stop {
        targets: Vec<String>,
        wait: bool,
    },
    Restart {
        targets: Vec<String>,
        wait: bool,
    },
    Signal {
        signal: Signal,
        targets: Vec<String>,
    },
    Pid {
        target: Option<String>,
    },
    Tail {
        target: String,
        stream: OutputStream,
        lines: usize,
        follow: bool,
    },
    Reload {
        /// `--wait`: until every restarted or added process runs or failed.
        wait: bool,
        timeout: Option<std::time::Duration>,
    },
    Shutdown,
    Version,
    Avail,
    NotifyTest {
        program: String,
    },
    /// Local: `help [COMMAND]`.
    Help {
        command: Option<String>,
    },
    /// Local: leave the shell.
    Quit,
}

impl Command {
    /// The request this command sends, `None` for the local ones.
    pub fn request(&self) -> Option<Request> {
        Some(match self {
            Command::Status { targets } => StatusRequest {
                targets: targets.clone(),
            }
            .into(),
            Command::Start { targets, wait, .. } => StartRequest {
                targets: targets.clone(),
                wait: *wait,
            }
            .into(),
            Command::Stop { targets, wait } => StopRequest {
                targets: targets.clone(),
                wait: *wait,
            }
            .into(),
            Command::Restart { targets, wait } => RestartRequest {
                targets: targets.clone(),
                wait: *wait,
            }
            .into(),
            Command::Signal { signal, targets } => proto::SignalRequest {
                signal: *signal,
                targets: targets.clone(),
            }
            .into(),
            Command::Pid { target } => PidRequest {
                target: target.clone(),
            }
            .into(),
            Command::Tail {
                target,
                stream,
                lines,
                follow,
            } => TailRequest {
                target: target.clone(),
                stream: *stream,
                lines: *lines,
                follow: *follow,
            }
            .into(),
            Command::Reload { .. } => Request::Reload,
            Command::Shutdown => Request::Shutdown,
            Command::Version => Request::Version,
            Command::Avail => Request::Avail,
            Command::NotifyTest { program } => NotifyTestRequest {
                program: program.clone(),
            }
            .into(),
            Command::Help { .. } | Command::Quit => return None,
        })
    }
}

/// A command plus how its result should be printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub command: Command,
    /// `--json` was given (on the command line or after the command).
    pub json: bool,
}

/// A command that cannot be run as typed. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    /// The command it is about, to print its usage line.
    pub command: Option<&'static str>,
}

impl UsageError {
    fn new(command: &'static str, message: impl Into<String>) -> Self {
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
    if is_option(name) {
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
            command: Command::Help {
                command: Some(spec.name.to_string()),
            },
            json,
        });
    }
    let command = parse_command(spec.name, args)?;
    Ok(Invocation { command, json })
}

/// The value of `--timeout`: a positive number of seconds.
fn seconds(name: &'static str, value: Option<&str>) -> Result<std::time::Duration, UsageError> {
    let err = |m: String| UsageError::new(name, m);
    let value = value.ok_or_else(|| err("--timeout needs a number of seconds".into()))?;
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(err(format!(
            "--timeout takes a positive number of seconds, not {value:?}"
        ))),
    }
}

fn parse_command(name: &'static str, args: &[&str]) -> Result<Command, UsageError> {
    let err = |m: String| UsageError::new(name, m);
    match name {
        "status" => Ok(Command::Status {
            targets: targets(name, args, false)?,
        }),
        "start" | "stop" | "restart" => {
            let mut wait = true;
            let mut timeout = None;
            let mut rest = Vec::new();
            let mut args = args.iter();
            while let Some(a) = args.next() {
                if *a == "--no-wait" {
                    wait = false;
                } else if *a == "--timeout" && name == "start" {
                    timeout = Some(seconds(name, args.next().copied())?);
                } else {
                    rest.push(*a);
                }
            }
            let targets = targets(name, &rest, true)?;
            Ok(match name {
                "start" => Command::Start {
                    targets,
                    wait,
                    timeout,
                },
                "stop" => Command::Stop { targets, wait },
                _ => Command::Restart { targets, wait },
            })
        }
        "signal" => {
            no_options(name, args)?;
            let Some((sig, rest)) = args.split_first() else {
                return Err(err("missing signal name and target".into()));
            };
            let signal = sig.parse::<Signal>().map_err(|e| err(e.to_string()))?;
            Ok(Command::Signal {
                signal,
                targets: targets(name, rest, true)?,
            })
        }
        "pid" => {
            let mut targets = targets(name, args, false)?;
            if targets.len() > 1 {
                return Err(err("pid takes at most one target".into()));
            }
            Ok(Command::Pid {
                target: targets.pop(),
            })
        }
        "tail" => parse_tail(args),
        "notify-test" => {
            no_options(name, args)?;
            match args {
                [program] if !program.is_empty() && !program.contains(':') => {
                    Ok(Command::NotifyTest {
                        program: program.to_string(),
                    })
                }
                [program] => Err(err(format!("bad program name {program:?}"))),
                [] => Err(err("missing program name".into())),
                _ => Err(err("notify-test takes one program name".into())),
            }
        }
        "help" => match args {
            [] => Ok(Command::Help { command: None }),
            [cmd] => match spec(cmd) {
                Some(s) => Ok(Command::Help {
                    command: Some(s.name.to_string()),
                }),
                None => Err(err(format!("no command {cmd:?}"))),
            },
            _ => Err(err("help takes at most one command".into())),
        },
        "reload" => {
            let mut wait = false;
            let mut timeout = None;
            let mut args = args.iter();
            while let Some(a) = args.next() {
                match *a {
                    "--wait" => wait = true,
                    "--timeout" => timeout = Some(seconds(name, args.next().copied())?),
                    other => return Err(err(format!("unexpected argument {other:?}"))),
                }
            }
            Ok(Command::Reload { wait, timeout })
        }
        _ => {
            // The commands without arguments.
            if let Some(extra) = args.first() {
                return Err(err(format!("{name} takes no arguments (got {extra:?})")));
            }
            Ok(match name {
                "shutdown" => Command::Shutdown,
                "version" => Command::Version,
                "avail" => Command::Avail,
                _ => Command::Quit,
            })
        }
    }
}

fn parse_tail(args: &[&str]) -> Result<Command, UsageError> {
    let err = |m: String| UsageError::new("tail", m);
    let mut follow = false;
    let mut lines = 10usize;
    let mut positional = Vec::new();
    let mut it = args.iter();
    let parse_n = |v: &str| {
        v.parse::<usize>()
            .map_err(|_| err(format!("-n wants a number of lines, got {v:?}")))
    };
    while let Some(a) = it.next() {
        match *a {
            "-f" | "--follow" => follow = true,
            "-n" | "--lines" => {
                let v = it.next().ok_or_else(|| err("-n wants a number".into()))?;
                lines = parse_n(v)?;
            }
            a if a.starts_with("--lines=") => lines = parse_n(&a["--lines=".len()..])?,
            a if a.starts_with("-n") && a.len() > 2 => lines = parse_n(&a[2..])?,
            a if is_option(a) => return Err(err(format!("unknown option {a:?}"))),
            a => positional.push(a),
        }
    }
    let (target, stream) = match positional.as_slice() {
        [] => return Err(err("missing target".into())),
        [t] => (*t, OutputStream::Stdout),
        [t, "stdout"] => (*t, OutputStream::Stdout),
        [t, "stderr"] => (*t, OutputStream::Stderr),
        [_, s] => return Err(err(format!("unknown stream {s:?} (stdout or stderr)"))),
        _ => return Err(err("tail takes one target".into())),
    };
    if check_target(target).map_err(err)? == Target::All {
        return Err(err("tail needs one process, not all".into()));
    }
    Ok(Command::Tail {
        target: target.to_string(),
        stream,
        lines,
        follow,
    })
}

fn is_option(a: &str) -> bool {
    a.len() > 1 && a.starts_with('-')
}

fn no_options(name: &'static str, args: &[&str]) -> Result<(), UsageError> {
    match args.iter().find(|a| is_option(a)) {
        Some(a) => Err(UsageError::new(name, format!("unknown option {a:?}"))),
        None => Ok(()),
    }
}

fn targets(name: &'static str, args: &[&str], required: bool) -> Result<Vec<String>, UsageError> {
    no_options(name, args)?;
    if required && args.is_empty() {
        return Err(UsageError::new(name, "missing target"));
    }
    args.iter()
        .map(|t| {
            check_target(t)
                .map(|_| t.to_string())
                .map_err(|m| UsageError::new(name, m))
        })
        .collect()
}

/// `NAME`, `NAME:INDEX` or `all` ([`Target`], the daemon's own parser);
/// anything else is a typo worth catching here.
pub fn check_target(t: &str) -> Result<Target, String> {
    t.parse::<Target>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        match parse_line(line) {
            Ok(Some(inv)) => inv.command,
            other => panic!("{line:?} did not parse: {other:?}"),
        }
    }

    fn usage_err(line: &str) -> UsageError {
        match parse_line(line) {
            Err(e) => e,
            other => panic!("{line:?} should be a usage error, got {other:?}"),
        }
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

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

    #[test]
    fn start_stop_restart_wait_unless_no_wait() {
        assert_eq!(
            cmd("start web"),
            Command::Start {
                targets: v(&["web"]),
                wait: true,
                timeout: None
            }
        );
        assert_eq!(
            cmd("stop --no-wait web:1 db"),
            Command::Stop {
                targets: v(&["web:1", "db"]),
                wait: false
            }
        );
        assert_eq!(
            cmd("restart all --no-wait"),
            Command::Restart {
                targets: v(&["all"]),
                wait: false
            }
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

    #[test]
    fn tail_options() {
        assert_eq!(
            cmd("tail web"),
            Command::Tail {
                target: "web".into(),
                stream: OutputStream::Stdout,
                lines: 10,
                follow: false
            }
        );
        assert_eq!(
            cmd("tail -f -n 3 web:1 stderr"),
            Command::Tail {
                target: "web:1".into(),
                stream: OutputStream::Stderr,
                lines: 3,
                follow: true
            }
        );
        assert_eq!(
            cmd("tail web stdout -n5 --follow"),
            Command::Tail {
                target: "web".into(),
                stream: OutputStream::Stdout,
                lines: 5,
                follow: true
            }
        );
        assert!(usage_err("tail").message.contains("missing target"));
        assert!(usage_err("tail -n x web").message.contains("number"));
        assert!(usage_err("tail -n").message.contains("number"));
        assert!(
            usage_err("tail web stdlog")
                .message
                .contains("unknown stream")
        );
        assert!(usage_err("tail -x web").message.contains("unknown option"));
        assert!(usage_err("tail all").message.contains("one process"));
        assert!(usage_err("tail a stdout b").message.contains("one target"));
    }

    #[test]
    fn argumentless_commands_refuse_arguments() {
        let reload = Command::Reload {
            wait: false,
            timeout: None,
        };
        assert_eq!(cmd("reload"), reload);
        assert_eq!(cmd("update"), reload, "supervisorctl's word");
        assert_eq!(
            cmd("reload --wait --timeout 2.5"),
            Command::Reload {
                wait: true,
                timeout: Some(std::time::Duration::from_millis(2500))
            }
        );
        assert_eq!(
            cmd("start --timeout 1 web"),
            Command::Start {
                targets: v(&["web"]),
                wait: true,
                timeout: Some(std::time::Duration::from_secs(1))
            }
        );
        assert!(
            usage_err("start --timeout web")
                .message
                .contains("--timeout")
        );
        assert_eq!(cmd("avail"), Command::Avail);
        assert_eq!(Command::Avail.request(), Some(Request::Avail));
        assert_eq!(cmd("shutdown"), Command::Shutdown);
        assert_eq!(cmd("version"), Command::Version);
        assert_eq!(cmd("quit"), Command::Quit);
        assert_eq!(cmd("exit"), Command::Quit);
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
        assert_eq!(
            cmd("notify-test web"),
            Command::NotifyTest {
                program: "web".into()
            }
        );
        assert!(usage_err("notify-test").message.contains("missing program"));
        assert!(
            usage_err("notify-test web:0")
                .message
                .contains("bad program")
        );
        assert_eq!(cmd("help"), Command::Help { command: None });
        assert_eq!(
            cmd("help exit"),
            Command::Help {
                command: Some("quit".into())
            }
        );
        assert_eq!(
            cmd("start --help"),
            Command::Help {
                command: Some("start".into())
            }
        );
        assert!(usage_err("help nope").message.contains("no command"));
    }

    #[test]
    fn command_names_ignore_case_and_typos_get_a_suggestion() {
        assert_eq!(cmd("STATUS"), Command::Status { targets: v(&[]) });
        assert_eq!(
            cmd("Stop web"),
            Command::Stop {
                targets: v(&["web"]),
                wait: true
            }
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
                command: Command::Status {
                    targets: v(&["web"])
                },
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
