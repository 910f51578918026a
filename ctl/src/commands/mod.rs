//! The registry of `taskmasterctl`'s verbs, one file each, and the pieces
//! they share.
//!
//! A verb's file holds everything about it: its [`CommandSpec`] (name,
//! usage, about, aliases such as `update` for `reload` or `exit` for `quit`,
//! its argument parsing, how its reply is rendered as text, what its
//! arguments complete to), the type of its parsed arguments, and that type's
//! [`Verb`] implementation: the request it sends, how long the reply may take
//! ([`Wait`]), and, when sending one request and printing its reply is not
//! all, how it runs ([`Verb::execute`]: `start` waits through BACKOFF,
//! `reload --wait` polls, `tail -f` follows, `shutdown` takes a closed
//! connection for its answer, `version` prints the client's version offline,
//! `help` and `quit` send nothing); and its tests. [`COMMANDS`] lists the
//! verbs, one line each (in `registry!`), in the order `help` shows them; the parser
//! ([`crate::command::parse_words`]), [`crate::run::Runner`], `help` and the
//! shell's completion all go through it.
//!
//! What stays shared: tokenizing and the name lookup (`command.rs`), the
//! connection, errors and the line loop of the three modes (`run.rs`),
//! `--json` and the tables (`render.rs`), and the polling of instances until
//! they settle (`wait.rs`, for `start` and `reload --wait`).
//!
//! # Adding a verb
//!
//! 1. Write `commands/<verb>.rs`: a `pub const SPEC: CommandSpec`, a type
//!    for its parsed arguments (`#[derive(Debug, PartialEq)]`) and
//!    `impl Verb` for it (`spec`, `request`; `wait` or `execute` if the
//!    default, one request and its reply rendered, is not enough), with its
//!    tests. Copy the closest existing verb.
//! 2. Add `<verb>,` to the `registry!` below (it declares the module and
//!    lists its `SPEC` in [`COMMANDS`]; the place is the one `help` shows it
//!    at). That is all: help, usage errors, `--help`, completion and the
//!    three modes follow; `every_verb_has_help_and_parses_its_own_usage_example`
//!    and `every_verb_is_completed_by_name_and_completes_its_arguments` check
//!    the new entry.
//!
//! A new request or reply type is a change to `proto`, not to the client.

use crate::Code;
use crate::command::UsageError;
use crate::render::Rendered;
use crate::run::{Context, Wait};
use crate::shell::Names;
use proto::{Request, Response, Target};
use std::any::Any;
use std::fmt;
use std::io;

/// Declares each verb's module and lists its spec in [`COMMANDS`], so a verb
/// is one line of `registry!`'s invocation.
macro_rules! registry {
    ($($verb:ident),* $(,)?) => {
        $(pub mod $verb;)*

        /// Every command, in the order `help` lists them.
        pub const COMMANDS: &[CommandSpec] = &[$($verb::SPEC),*];
    };
}

// The registry: one line per verb, in `help` order.
registry! {
    status,
    start,
    stop,
    restart,
    signal,
    pid,
    tail,
    reload,
    avail,
    shutdown,
    version,
    notify_test,
    help,
    quit,
}

/// A command the user can type: its `help` text, its parser, its renderer
/// and its completion.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    pub usage: &'static str,
    pub about: &'static str,
    /// Other words for it (supervisorctl's: `update` for `reload`).
    pub aliases: &'static [&'static str],
    /// Its arguments (after the name, `--json` removed) to its parsed form.
    pub parse: fn(&[&str]) -> Parsed,
    /// Its reply as text (`--json` and errors are rendered the same for
    /// every verb); `None` when the reply does not answer this verb.
    pub render: fn(&Response) -> Option<Rendered>,
    /// What the shell offers for the word being typed after its name.
    pub complete: fn(&Completion<'_>) -> Vec<String>,
}

/// What a verb's parser makes of its arguments.
pub type Parsed = Result<Box<dyn Verb>, UsageError>;

/// A parsed command: what it sends and how it runs.
pub trait Verb: fmt::Debug + AnyEq {
    /// Its entry in [`COMMANDS`].
    fn spec(&self) -> &'static CommandSpec;

    /// The request it sends; `None` for the local verbs (`help`, `quit`).
    fn request(&self) -> Option<Request>;

    /// How long its reply may take: only a long wait listens for Ctrl-C in
    /// the shell (see [`Wait`]).
    fn wait(&self) -> Wait<'_> {
        Wait::Quick
    }

    /// Runs it: by default sends [`Verb::request`] and prints the reply as
    /// [`CommandSpec::render`] makes it. An `Err` is output that could not
    /// be written.
    fn execute(&self, cx: &mut Context<'_>) -> io::Result<Code> {
        match self.request() {
            Some(request) => cx.ask(self.spec(), &request, self.wait()),
            None => Ok(Code::Ok),
        }
    }
}

/// Comparison of parsed commands of any verb (for the tests, and so an
/// [`crate::command::Invocation`] compares): implemented for every
/// `PartialEq` type, nothing to write per verb.
pub trait AnyEq: Any {
    /// Itself, to be downcast to its verb's type.
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is of the same type and equal.
    fn eq_any(&self, other: &dyn Any) -> bool;
}

impl<T: Any + PartialEq> AnyEq for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eq_any(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|o| self == o)
    }
}

impl PartialEq for dyn Verb {
    fn eq(&self, other: &dyn Verb) -> bool {
        self.eq_any(other.as_any())
    }
}

/// What a verb's completion knows: the words typed after the verb's name, the
/// start of the word under the cursor, and the names last seen from the daemon.
#[derive(Debug)]
pub struct Completion<'a> {
    pub args: &'a [&'a str],
    pub prefix: &'a str,
    pub names: &'a Names,
}

impl Completion<'_> {
    /// How many positional words are already typed, skipping options and the
    /// value after each option of `with_value` (`-n 5`).
    pub fn positional(&self, with_value: &[&str]) -> usize {
        let mut positional = 0;
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if with_value.contains(a) {
                it.next();
            } else if !a.starts_with('-') {
                positional += 1;
            }
        }
        positional
    }

    /// Whether the word under the cursor is an option.
    pub fn option(&self) -> bool {
        self.prefix.starts_with('-')
    }
}

/// Candidates from a fixed list.
pub(crate) fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// For the local verbs, which get no reply.
pub(crate) fn no_reply(_: &Response) -> Option<Rendered> {
    None
}

/// The reply of the verbs that act on processes: outcomes, or a message.
pub(crate) fn outcomes(reply: &Response) -> Option<Rendered> {
    match reply {
        Response::Outcomes(o) => Some(crate::render::outcomes(o)),
        Response::Done(d) => Some(crate::render::done(d)),
        _ => None,
    }
}

/// The wait of `stop` and `restart`: reported after a second, unless
/// `--no-wait`.
pub(crate) fn reported(wait: bool, targets: &[String]) -> Wait<'_> {
    if wait {
        Wait::Reported(targets)
    } else {
        Wait::Quick
    }
}

/// For the verbs whose arguments have nothing to complete.
pub(crate) fn nothing(_: &Completion<'_>) -> Vec<String> {
    Vec::new()
}

/// Every command name and alias, in `help` order: what the first word completes to.
pub fn command_names() -> Vec<String> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
        .map(str::to_string)
        .collect()
}

/// The spec of a command name or alias, in any case (`STATUS`, `exit`).
pub fn spec(name: &str) -> Option<&'static CommandSpec> {
    let name = name.to_ascii_lowercase();
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name.as_str()))
}

/// Whether a word is an option (`-f`, `--wait`), not `-` alone.
pub(crate) fn is_option(a: &str) -> bool {
    a.len() > 1 && a.starts_with('-')
}

/// Refuses any option: for the verbs that take none.
pub(crate) fn no_options(name: &'static str, args: &[&str]) -> Result<(), UsageError> {
    match args.iter().find(|a| is_option(a)) {
        Some(a) => Err(UsageError::new(name, format!("unknown option {a:?}"))),
        None => Ok(()),
    }
}

/// The words of `args` as targets, each checked by [`check_target`].
pub(crate) fn targets(
    name: &'static str,
    args: &[&str],
    required: bool,
) -> Result<Vec<String>, UsageError> {
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

/// The value of `--timeout`: a positive number of seconds.
pub(crate) fn seconds(
    name: &'static str,
    value: Option<&str>,
) -> Result<std::time::Duration, UsageError> {
    let err = |m: String| UsageError::new(name, m);
    let value = value.ok_or_else(|| err("--timeout needs a number of seconds".into()))?;
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(err(format!(
            "--timeout takes a positive number of seconds, not {value:?}"
        ))),
    }
}

/// `[--no-wait] [--timeout SECONDS] TARGET...` of start, stop and restart
/// (`--timeout` only where `timeout` is allowed): (targets, wait, timeout).
pub(crate) type WaitTargets = (Vec<String>, bool, Option<std::time::Duration>);

pub(crate) fn wait_targets(
    name: &'static str,
    args: &[&str],
    with_timeout: bool,
) -> Result<WaitTargets, UsageError> {
    let mut wait = true;
    let mut timeout = None;
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        if *a == "--no-wait" {
            wait = false;
        } else if *a == "--timeout" && with_timeout {
            timeout = Some(seconds(name, args.next().copied())?);
        } else {
            rest.push(*a);
        }
    }
    Ok((targets(name, &rest, true)?, wait, timeout))
}

/// Refuses any argument: for the verbs that take none.
pub(crate) fn no_arguments(name: &'static str, args: &[&str]) -> Result<(), UsageError> {
    match args.first() {
        Some(extra) => Err(UsageError::new(
            name,
            format!("{name} takes no arguments (got {extra:?})"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::command::{UsageError, parse_line};
    use crate::commands::Verb;

    pub fn cmd(line: &str) -> Box<dyn Verb> {
        match parse_line(line) {
            Ok(Some(inv)) => inv.command,
            other => panic!("{line:?} did not parse: {other:?}"),
        }
    }

    /// Asserts that `line` parses to `expected` (of its verb's type).
    #[track_caller]
    pub fn parses<T: Verb + PartialEq>(line: &str, expected: T) {
        let got = cmd(line);
        assert_eq!(
            got.as_ref().as_any().downcast_ref::<T>(),
            Some(&expected),
            "{line:?} parsed as {got:?}"
        );
    }

    pub fn usage_err(line: &str) -> UsageError {
        match parse_line(line) {
            Err(e) => e,
            other => panic!("{line:?} should be a usage error, got {other:?}"),
        }
    }

    pub fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_words;

    /// The usage line with its optional parts and alternatives taken out and
    /// its placeholders filled in: a command line that must parse.
    fn example(usage: &str) -> Vec<String> {
        let first = usage.split(" | ").next().unwrap_or(usage);
        let mut words = Vec::new();
        let mut depth = 0;
        for w in first.split_whitespace() {
            if w.starts_with('[') {
                depth += w.matches('[').count();
            }
            let closes = w.matches(']').count();
            if depth == 0 {
                words.push(match w.trim_end_matches("...") {
                    "TARGET" => "web:0".to_string(),
                    "SIG" => "TERM".to_string(),
                    "PROGRAM" => "web".to_string(),
                    other => other.to_string(),
                });
            }
            depth -= closes.min(depth);
        }
        words
    }

    #[test]
    fn every_verb_has_help_and_parses_its_own_usage_example() {
        let mut names = std::collections::BTreeSet::new();
        for c in COMMANDS {
            assert!(!c.about.is_empty(), "{}", c.name);
            assert!(c.usage.starts_with(c.name), "{}: {}", c.name, c.usage);
            for word in std::iter::once(&c.name).chain(c.aliases) {
                assert!(names.insert(*word), "{word} is taken twice");
            }
            let words = example(c.usage);
            match parse_words(&words) {
                // And the command knows its verb, to be rendered by it.
                Ok(inv) => assert_eq!(inv.command.spec().name, c.name),
                Err(e) => panic!("{}: {words:?} does not parse: {e}", c.name),
            }
            for alias in c.aliases {
                assert_eq!(spec(alias).map(|s| s.name), Some(c.name));
            }
        }
    }

    #[test]
    fn every_verb_is_completed_by_name_and_completes_its_arguments() {
        let first = command_names();
        let names = Names {
            programs: vec!["web".into()],
            instances: vec!["web:0".into()],
        };
        for c in COMMANDS {
            assert!(
                first.iter().any(|n| n == c.name),
                "{} does not complete",
                c.name
            );
            // Its completion answers for a first argument, with whole words.
            for word in (c.complete)(&Completion {
                args: &[],
                prefix: "",
                names: &names,
            }) {
                assert!(
                    !word.is_empty() && !word.contains(' '),
                    "{}: {word:?}",
                    c.name
                );
            }
            // And its help text names it.
            let help = help::text(Some(c.name));
            assert!(help.contains(c.usage) && help.contains(c.about), "{help}");
        }
    }
}
