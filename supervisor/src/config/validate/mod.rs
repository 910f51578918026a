//! From a positioned YAML tree to a typed [`Config`], reporting every problem.
//!
//! Each section is checked key by key; a bad value becomes a [`Problem`] and
//! checking goes on with the next key, so one `--check` run shows everything
//! to fix. Unknown keys get a "did you mean" from the valid ones; the valid
//! program keys come from [`PROGRAM_KEYS`](super::PROGRAM_KEYS), so a key cannot be accepted
//! without having a reload class.
//!
//! Values are typed strictly (`numprocs: "2"` is a string, not a number), but
//! the messages say what was found and what to write instead. Where a key is
//! text by nature (`cmd`, paths, signal names), any scalar's text as written
//! is taken, so `cmd: true` runs `true`. Top-level keys starting with `x-`
//! are ignored: they hold anchors for `<<: *defaults`.
//!
//! The checks are split by section: [`values`] reads typed scalars (numbers,
//! booleans, paths, signals, umasks, …), [`program`] a program's keys,
//! [`ready`] its readiness keys (`ready`, `health`, `watchdog`,
//! `before_start`, `depends_on`), [`server`] the `server:` and `log:`
//! sections, [`email`] the `email:` section and `notify:` rules. This module holds the entry point, the
//! [`Ctx`] they all report into, and the helpers they share.

mod email;
mod program;
pub(in crate::config) mod ready;
mod server;
mod values;

#[cfg(test)]
pub(super) use program::resolve_user;

use super::yaml::{self, Entry, Kind, Node, Pos};
use super::{Config, Problem, ProgramConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TOP_KEYS: &[&str] = &["programs", "server", "log", "email"];

/// Parses and validates `text`; `file` is how problems name the file,
/// `absolute` and `dir` are what the config records and resolves against.
pub(super) fn validate(
    text: &str,
    file: &Path,
    absolute: &Path,
    dir: &Path,
) -> Result<Config, Vec<Problem>> {
    let doc = yaml::parse(text);
    let mut ctx = Ctx {
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        warnings: Vec::new(),
        problems: doc
            .problems
            .into_iter()
            .map(|p| Problem {
                file: file.to_path_buf(),
                line: p.pos.line,
                col: p.pos.col,
                key: p.key,
                message: p.message,
            })
            .collect(),
        email_seen: email::EmailSeen::Absent,
        depends_at: Vec::new(),
    };
    let config = doc.root.and_then(|root| ctx.config(&root, absolute));
    if ctx.problems.is_empty()
        && let Some(mut config) = config
    {
        ctx.warnings.sort_by_key(|p| (p.line, p.col));
        config.warnings = ctx.warnings;
        return Ok(config);
    }
    if ctx.problems.is_empty() {
        // No root and no problem: the file is empty or only comments.
        ctx.report(
            Pos { line: 1, col: 1 },
            "programs",
            "the file is empty; it needs at least `programs: {}`",
        );
    }
    // Stable: problems at one spot keep the order they were found in.
    ctx.problems.sort_by_key(|p| (p.line, p.col));
    Err(ctx.problems)
}

struct Ctx {
    file: PathBuf,
    dir: PathBuf,
    problems: Vec<Problem>,
    /// Valid, but worth saying (see [`Config::warnings`]).
    warnings: Vec<Problem>,
    /// The `email:` section as notify rules need it; read before programs.
    email_seen: email::EmailSeen,
    /// Every `depends_on` entry read, checked once all programs are.
    depends_at: Vec<ready::DependEdge>,
}

/// `path.key`, or `key` at the top.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Ctx {
    pub(super) fn warn(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn report(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn config(&mut self, root: &Node, absolute: &Path) -> Option<Config> {
        if root.is_null() {
            return None; // Reported by the caller as an empty file.
        }
        if !matches!(root.kind, Kind::Map(_)) {
            self.report(
                root.pos,
                "",
                format!(
                    "a config file is a mapping with a `programs:` key, found {}",
                    root.describe()
                ),
            );
            return None;
        }
        let top = self.entries(root, "", TOP_KEYS);
        let before = self.problems.len();
        let mut programs = None;
        let mut server = None;
        let mut log = None;
        // Before the programs: their notify rules default to `email.to`.
        let email = top
            .iter()
            .find(|(k, _)| *k == "email")
            .and_then(|(_, entry)| {
                let before = self.problems.len();
                let email = self.email(&entry.value);
                self.email_seen = match &email {
                    Some(e) => email::EmailSeen::Valid(e.to.clone()),
                    None if self.problems.len() > before => email::EmailSeen::Invalid,
                    None => email::EmailSeen::Absent,
                };
                email
            });
        for (key, entry) in &top {
            match *key {
                "programs" => programs = self.programs(&entry.value),
                "server" => server = self.server(&entry.value),
                "log" => log = self.log(&entry.value),
                _ => {}
            }
        }
        if !top.iter().any(|(k, _)| *k == "programs") {
            self.report(
                root.pos,
                "programs",
                "missing required key `programs` (write `programs: {}` for none)",
            );
        }
        let server = match server {
            Some(s) => s,
            None => self.server_defaults(),
        };
        let log = match log {
            Some(l) => l,
            None => self.log_defaults(),
        };
        if let (Some(programs), Some((_, entry))) =
            (&programs, top.iter().find(|(k, _)| *k == "programs"))
        {
            self.total_processes(programs, entry.key.pos, server.max_processes);
        }
        if self.problems.len() > before {
            return None;
        }
        Some(Config {
            file: absolute.to_path_buf(),
            dir: self.dir.clone(),
            programs: programs?,
            server,
            log,
            email,
            warnings: Vec::new(),
        })
    }

    /// Every instance costs the daemon memory and a few descriptors: the sum
    /// of `numprocs` is capped (`server.max_processes`), so a small file
    /// cannot ask for millions of processes.
    pub(super) fn total_processes(
        &mut self,
        programs: &BTreeMap<String, Arc<ProgramConfig>>,
        pos: Pos,
        max: u32,
    ) {
        let total: u64 = programs.values().map(|p| u64::from(p.numprocs)).sum();
        if total > u64::from(max) {
            self.report(
                pos,
                "programs",
                format!(
                    "{total} processes in all (the sum of numprocs) is more than server.max_processes ({max}); lower numprocs or raise server.max_processes"
                ),
            );
        }
    }

    /// The entries of a mapping whose keys are in `valid`; reports the others.
    /// `null` counts as an empty mapping (a section whose keys are all
    /// commented out); anything else that is not a mapping is reported.
    pub(super) fn entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        valid: &[&'static str],
    ) -> Vec<(&'static str, &'n Entry)> {
        let mut known = Vec::new();
        for (key, entry) in self.mapping(node, path) {
            if path.is_empty() && key.starts_with("x-") {
                // Free space for anchors (`x-defaults: &defaults`), as in
                // docker-compose.
                continue;
            }
            match valid.iter().find(|v| **v == key) {
                Some(k) => known.push((*k, entry)),
                None => {
                    let message = unknown_key_message(key, valid);
                    self.report(entry.key.pos, &join(path, key), message);
                }
            }
        }
        known
    }

    /// A mapping's entries with their key text; reports non-scalar keys and
    /// non-mapping nodes.
    pub(super) fn mapping<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(&'n str, &'n Entry)> {
        match &node.kind {
            Kind::Map(entries) => entries
                .iter()
                .filter_map(|entry| match entry.key.scalar() {
                    Some(k) => Some((k.text.as_str(), entry)),
                    None => {
                        self.report(
                            entry.key.pos,
                            path,
                            format!("keys must be plain text, found {}", entry.key.describe()),
                        );
                        None
                    }
                })
                .collect(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.report(
                    node.pos,
                    path,
                    format!(
                        "expected a mapping of `key: value`, found {}",
                        node.describe()
                    ),
                );
                Vec::new()
            }
        }
    }
}

fn to_u32(n: i128) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
/// supervisord's `[program:x]` option names, with what to write here instead.
/// Edit distance cannot find these (`command` is far from `cmd`), and users
/// coming from supervisord type them first.
const SUPERVISORD_PROGRAM_KEYS: &[(&str, &str)] = &[
    ("command", "did you mean `cmd`? (supervisord's `command`)"),
    (
        "environment",
        "did you mean `env`? (supervisord's `environment`; a mapping here: `env: {KEY: value}`)",
    ),
    (
        "directory",
        "did you mean `workingdir`? (supervisord's `directory`)",
    ),
    (
        "stopwaitsecs",
        "did you mean `stoptime`? (supervisord's `stopwaitsecs`)",
    ),
    (
        "startsecs",
        "did you mean `starttime`? (supervisord's `startsecs`)",
    ),
    (
        "stdout_logfile",
        "did you mean `stdout`? (supervisord's `stdout_logfile`)",
    ),
    (
        "stderr_logfile",
        "did you mean `stderr`? (supervisord's `stderr_logfile`)",
    ),
    (
        "redirect_stderr",
        "supervisord's `redirect_stderr` is written here as `stderr:` set to the same file as `stdout:`",
    ),
    (
        "priority",
        "supervisord's `priority` is written here as `depends_on: {NAME: started}`: a program starts after what it depends on, and stops before it",
    ),
    // Not supervisord's (it has no readiness), but what users of systemd,
    // docker-compose and Kubernetes type first.
    ("depends", "did you mean `depends_on`?"),
    (
        "requires",
        "did you mean `depends_on`? (systemd's `Requires=`)",
    ),
    ("after", "did you mean `depends_on`? (systemd's `After=`)"),
    (
        "healthcheck",
        "did you mean `health`? (docker-compose's `healthcheck`)",
    ),
    (
        "readiness_probe",
        "did you mean `ready`? (Kubernetes' `readinessProbe`)",
    ),
    (
        "readinessprobe",
        "did you mean `ready`? (Kubernetes' `readinessProbe`)",
    ),
    (
        "liveness_probe",
        "did you mean `health`? (Kubernetes' `livenessProbe`)",
    ),
    (
        "livenessprobe",
        "did you mean `health`? (Kubernetes' `livenessProbe`)",
    ),
    (
        "execstartpre",
        "did you mean `before_start`? (systemd's `ExecStartPre=`)",
    ),
    (
        "watchdogsec",
        "did you mean `watchdog`? (systemd's `WatchdogSec=`)",
    ),
    (
        "process_name",
        "supervisord's `process_name` has no equivalent: instances are named `NAME:INDEX`",
    ),
    (
        "stopasgroup",
        "supervisord's `stopasgroup` is always on here: stops signal the whole process group",
    ),
    (
        "killasgroup",
        "supervisord's `killasgroup` is always on here: SIGKILL goes to the whole process group",
    ),
];

/// "unknown key `numproc`, did you mean `numprocs`?", or the list of valid
/// keys when none is close. A supervisord program option gets the name of
/// ours.
fn unknown_key_message(key: &str, valid: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    if valid.contains(&"cmd")
        && let Some((_, hint)) = SUPERVISORD_PROGRAM_KEYS.iter().find(|(k, _)| *k == lower)
    {
        return format!("unknown key `{key}`, {hint}");
    }
    let closest = valid
        .iter()
        .map(|v| (strsim::osa_distance(&lower, v), *v))
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((d, v)) if d <= 2 || d * 3 <= key.chars().count() => {
            format!("unknown key `{key}`, did you mean `{v}`?")
        }
        _ => format!("unknown key `{key}`; valid keys are: {}", valid.join(", ")),
    }
}

/// A key that takes one value or a list of them (`exitcodes: 0`,
/// `exitcodes: [0, 2]`): each item with its own key path (`at[1]`).
pub(super) fn one_or_many<'n>(node: &'n Node, at: &str) -> Vec<(String, &'n Node)> {
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{at}[{i}]"), &**n))
            .collect(),
        _ => vec![(at.to_string(), node)],
    }
}
