//! From a positioned YAML tree to a typed [`Config`], reporting every problem.
//!
//! Each section is checked key by key; a bad value becomes a [`Problem`] and
//! checking goes on with the next key, so one `--check` run shows everything
//! to fix. Unknown keys get a "did you mean" from the valid ones; the valid
//! program keys come from [`PROGRAM_KEYS`], so a key cannot be accepted
//! without having a reload class.
//!
//! Values are typed strictly (`numprocs: "2"` is a string, not a number), but
//! the messages say what was found and what to write instead. Where a key is
//! text by nature (`cmd`, paths, signal names), any scalar's text as written
//! is taken, so `cmd: true` runs `true`. Top-level keys starting with `x-`
//! are ignored: they hold anchors for `<<: *defaults`.

mod email;

use super::yaml::{self, Entry, Kind, Node, Pos, Value, quote};
use super::{
    AutoRestart, Config, DEFAULT_LOG_FILE, DEFAULT_LOGS_DIR, DEFAULT_MAX_PROCESSES,
    DEFAULT_PIDFILE, LogConfig, LogLevel, MAX_NUMPROCS, OutputTarget, PROGRAM_KEYS, Problem,
    ProgramConfig, RunAs, ServerConfig,
};
use proto::Signal;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TOP_KEYS: &[&str] = &["programs", "server", "log", "email"];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "token_file",
    "allow_remote",
    "pidfile",
    "max_processes",
];
const LOG_KEYS: &[&str] = &["file", "level"];

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
    fn warn(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn report(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn config(&mut self, root: &Node, absolute: &Path) -> Option<Config> {
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
    fn total_processes(
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
    fn entries<'n>(
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
    fn mapping<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(&'n str, &'n Entry)> {
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

    fn programs(&mut self, node: &Node) -> Option<BTreeMap<String, Arc<ProgramConfig>>> {
        let before = self.problems.len();
        let logs_dir = self.dir.join(DEFAULT_LOGS_DIR);
        let valid: Vec<&'static str> = PROGRAM_KEYS.iter().map(|(k, _)| *k).collect();
        let mut programs = BTreeMap::new();
        for (name, entry) in self.mapping(node, "programs") {
            let path = join("programs", name);
            let name_ok = valid_program_name(name);
            if !name_ok {
                let why = if proto::Target::is_reserved(name) {
                    "`all` is reserved: the control shell uses it to mean every program".to_string()
                } else {
                    format!(
                        "invalid program name {}: use only letters, digits, `_`, `.` and `-` (it is typed in `start NAME:INDEX`)",
                        quote(name)
                    )
                };
                self.report(entry.key.pos, &path, why);
            }
            // Checked even under a bad name, so that every problem shows.
            if let Some(program) = self.program(&valid, name, &entry.key, &entry.value, &logs_dir)
                && name_ok
            {
                programs.insert(name.to_string(), Arc::new(program));
            }
        }
        (self.problems.len() == before).then_some(programs)
    }

    fn program(
        &mut self,
        valid: &[&'static str],
        name: &str,
        name_node: &Node,
        body: &Node,
        logs_dir: &Path,
    ) -> Option<ProgramConfig> {
        let path = join("programs", name);
        let before = self.problems.len();
        let mut p = ProgramConfig::with_defaults(name, "", logs_dir);
        let mut have_cmd = false;
        for (key, entry) in self.entries(body, &path, valid) {
            let at = join(&path, key);
            let v = &*entry.value;
            match key {
                "cmd" => {
                    have_cmd = true;
                    if let Some((cmd, argv)) = self.command(v, &at) {
                        p.cmd = cmd;
                        p.argv = argv;
                    }
                }
                "numprocs" => {
                    if let Some(n) = self.int(v, &at, 0, i128::from(MAX_NUMPROCS)) {
                        p.numprocs = to_u32(n);
                        if n == 0 {
                            self.warn(v.pos, &at, "numprocs is 0: this program will run nothing");
                        }
                    }
                }
                "autostart" => {
                    if let Some(b) = self.boolean(v, &at) {
                        p.autostart = b;
                    }
                }
                "autorestart" => {
                    if let Some(a) = self.autorestart(v, &at) {
                        p.autorestart = a;
                    }
                }
                "exitcodes" => {
                    if let Some(codes) = self.exitcodes(v, &at) {
                        p.exitcodes = codes;
                    }
                }
                "starttime" => {
                    if let Some(d) = self.seconds(v, &at, true) {
                        p.starttime = d;
                    }
                }
                "startretries" => {
                    if let Some(n) = self.int(v, &at, 0, i128::from(u32::MAX)) {
                        p.startretries = to_u32(n);
                    }
                }
                "stopsignal" => {
                    if let Some(s) = self.stopsignal(v, &at) {
                        p.stopsignal = s;
                    }
                }
                "stoptime" => {
                    if let Some(d) = self.seconds(v, &at, true) {
                        p.stoptime = d;
                    }
                }
                "stdout" => {
                    if let Some(t) = self.output(v, &at) {
                        p.stdout = t;
                    }
                }
                "stderr" => {
                    if let Some(t) = self.output(v, &at) {
                        p.stderr = t;
                    }
                }
                "env" => {
                    if let Some(env) = self.env(v, &at) {
                        p.env = env;
                    }
                }
                "workingdir" => {
                    if let Some(dir) = self.workingdir(v, &at) {
                        p.workingdir = Some(dir);
                    }
                }
                "umask" => {
                    if let Some(mask) = self.umask(v, &at) {
                        p.umask = Some(mask);
                    }
                }
                "user" => {
                    if let Some(text) = self.text(v, &at, "a user name or uid (e.g. nobody)") {
                        match resolve_user(text, nix::unistd::geteuid().as_raw()) {
                            Ok(run_as) => p.user = Some(run_as),
                            Err(why) => self.report(v.pos, &at, why),
                        }
                    }
                }
                "maxrestarts" => {
                    if let Some(n) = self.int(v, &at, 0, i128::from(u32::MAX)) {
                        p.maxrestarts = to_u32(n);
                    }
                }
                "restartwindow" => {
                    if let Some(d) = self.seconds(v, &at, false) {
                        p.restartwindow = d;
                    }
                }
                "notify" => {
                    if let Some(rules) = self.notify(v, &at) {
                        p.notify = rules;
                    }
                }
                other => {
                    // Only reachable if PROGRAM_KEYS gains a key without a
                    // match arm here; a unit test sets every key.
                    self.report(
                        entry.key.pos,
                        &at,
                        format!("internal error: key `{other}` is classified but never read"),
                    );
                }
            }
        }
        if !have_cmd && (body.is_null() || matches!(body.kind, Kind::Map(_))) {
            self.report(
                name_node.pos,
                &join(&path, "cmd"),
                "missing required key `cmd` (the command to run, e.g. `cmd: sleep 60`)",
            );
        }
        (self.problems.len() == before).then_some(p)
    }

    // ----- typed values -------------------------------------------------

    /// Any scalar's text as written, for keys that are text by nature.
    fn text<'n>(&mut self, node: &'n Node, at: &str, what: &str) -> Option<&'n str> {
        match node.scalar() {
            Some(s) if !node.is_null() => Some(s.text.as_str()),
            _ => {
                self.report(
                    node.pos,
                    at,
                    format!("expected {what}, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, at: &str) -> Option<bool> {
        match node.value() {
            Some(Value::Bool(b)) => Some(b),
            Some(Value::Str(s))
                if ["yes", "no", "on", "off", "y", "n"]
                    .contains(&s.to_ascii_lowercase().as_str()) =>
            {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "expected true or false, found {}: YAML 1.2 reads yes/no/on/off as strings",
                        node.describe()
                    ),
                );
                None
            }
            Some(Value::Str(s)) if ["true", "false"].contains(&s.to_ascii_lowercase().as_str()) => {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "expected true or false, found {}: remove the quotes",
                        node.describe()
                    ),
                );
                None
            }
            _ => {
                self.report(
                    node.pos,
                    at,
                    format!("expected true or false, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    fn int(&mut self, node: &Node, at: &str, min: i128, max: i128) -> Option<i128> {
        // Built only for a message: this runs for every integer in the file.
        let range = || {
            if max >= i128::from(u32::MAX) {
                format!("a whole number >= {min}")
            } else {
                format!("a whole number from {min} to {max}")
            }
        };
        match node.value() {
            Some(Value::Int(n)) if (min..=max).contains(&n) => Some(n),
            Some(Value::Int(_)) => {
                self.report(
                    node.pos,
                    at,
                    format!("expected {}, found {}", range(), node.describe()),
                );
                None
            }
            Some(Value::Str(s))
                if !node.scalar().is_some_and(|sc| sc.plain) && s.parse::<i128>().is_ok() =>
            {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "expected {}, found {}: remove the quotes",
                        range(),
                        node.describe()
                    ),
                );
                None
            }
            _ => {
                self.report(
                    node.pos,
                    at,
                    format!("expected {}, found {}", range(), node.describe()),
                );
                None
            }
        }
    }

    /// Seconds, fractions allowed; `allow_zero` says whether 0 is.
    fn seconds(&mut self, node: &Node, at: &str, allow_zero: bool) -> Option<Duration> {
        let expected = if allow_zero {
            "a number of seconds >= 0 (e.g. 10 or 0.5)"
        } else {
            "a number of seconds > 0 (e.g. 5 or 0.5)"
        };
        let secs = match node.value() {
            // i128 to f64 is exact for any duration that could matter.
            Some(Value::Int(n)) => n as f64,
            Some(Value::Float(f)) => f,
            _ => {
                self.report(
                    node.pos,
                    at,
                    format!("expected {expected}, found {}", node.describe()),
                );
                return None;
            }
        };
        let in_range = secs.is_finite() && if allow_zero { secs >= 0.0 } else { secs > 0.0 };
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if in_range => Some(d),
            _ => {
                self.report(
                    node.pos,
                    at,
                    format!("expected {expected}, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn command(&mut self, node: &Node, at: &str) -> Option<(String, Vec<String>)> {
        let cmd = self.text(node, at, "a command line (e.g. `sleep 60`)")?;
        if cmd.contains('\0') {
            self.report(node.pos, at, "the command contains a NUL byte");
            return None;
        }
        match shlex::split(cmd) {
            None => {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "cannot split {} into arguments: unbalanced quote or trailing backslash",
                        quote(cmd)
                    ),
                );
                None
            }
            Some(argv) if argv.is_empty() => {
                self.report(node.pos, at, "the command is empty");
                None
            }
            Some(argv) => Some((cmd.to_string(), argv)),
        }
    }

    fn autorestart(&mut self, node: &Node, at: &str) -> Option<AutoRestart> {
        let found = node.describe();
        match node.scalar().map(|s| s.text.as_str()) {
            Some("always") => Some(AutoRestart::Always),
            Some("never") => Some(AutoRestart::Never),
            Some("unexpected") => Some(AutoRestart::Unexpected),
            _ => {
                self.report(
                    node.pos,
                    at,
                    format!("expected one of `always`, `never`, `unexpected`, found {found}"),
                );
                None
            }
        }
    }

    fn exitcodes(&mut self, node: &Node, at: &str) -> Option<Vec<i32>> {
        let items = one_or_many(node, at);
        let before = self.problems.len();
        let codes: Vec<i32> = items
            .into_iter()
            .filter_map(|(path, n)| {
                if matches!(n.kind, Kind::Scalar(_)) {
                    self.int(n, &path, 0, 255)
                } else {
                    self.report(
                        n.pos,
                        &path,
                        format!(
                            "expected an exit code from 0 to 255 or a list of them, found {}",
                            n.describe()
                        ),
                    );
                    None
                }
            })
            // 0..=255 fits.
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
            .collect();
        (self.problems.len() == before).then_some(codes)
    }

    fn stopsignal(&mut self, node: &Node, at: &str) -> Option<Signal> {
        let text = self.text(node, at, "a signal name (e.g. TERM)")?;
        match text.parse::<Signal>() {
            Ok(sig) if Signal::STOP_SIGNALS.contains(&sig) => Some(sig),
            _ => {
                let allowed = Signal::STOP_SIGNALS
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ");
                self.report(
                    node.pos,
                    at,
                    format!(
                        "{} is not a stop signal; use one of {allowed} (the SIG prefix and case do not matter)",
                        quote(text)
                    ),
                );
                None
            }
        }
    }

    /// A path, relative ones resolved against the config's directory.
    fn path(&mut self, node: &Node, at: &str) -> Option<PathBuf> {
        let text = self.text(node, at, "a path")?;
        if text.is_empty() {
            self.report(node.pos, at, "the path is empty");
            return None;
        }
        if text.contains('\0') {
            self.report(node.pos, at, "the path contains a NUL byte");
            return None;
        }
        Some(self.dir.join(text))
    }

    fn output(&mut self, node: &Node, at: &str) -> Option<OutputTarget> {
        if node.is_null() {
            return Some(OutputTarget::Discard);
        }
        let path = self.path(node, at)?;
        // The daemon writes only regular files; `/dev/null` is how many
        // configs (and supervisord's) spell "discard".
        if path == Path::new("/dev/null") {
            return Some(OutputTarget::Discard);
        }
        if path.is_dir() {
            self.report(
                node.pos,
                at,
                format!("{} is a directory; name a file in it", path.display()),
            );
            return None;
        }
        // `symlink_metadata`: a FIFO is not opened, a symlink not followed.
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && !meta.file_type().is_file()
        {
            self.warn(
                node.pos,
                at,
                format!(
                    "{} is not a regular file (a symlink, FIFO, socket or device): the daemon refuses to write to it, so this program's starts will fail; name a regular file, or `null` to discard",
                    path.display()
                ),
            );
        }
        // `logs/` next to the config is created by the daemon at start, so a
        // file in it is fine even before the first run.
        let default_logs = self.dir.join(super::DEFAULT_LOGS_DIR);
        match path.parent() {
            Some(parent) if !parent.is_dir() && parent != default_logs => {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "directory {} does not exist; create it or choose another file",
                        parent.display()
                    ),
                );
                None
            }
            _ => Some(OutputTarget::File(path)),
        }
    }

    /// A directory that is missing (or not one) is a warning, not an error:
    /// it may be created later (a mount, a deploy), and one program's
    /// directory must not keep the whole fleet down. Its spawns fail with the
    /// OS error (BACKOFF, then FATAL), as the core contract says.
    fn workingdir(&mut self, node: &Node, at: &str) -> Option<PathBuf> {
        let path = self.path(node, at)?;
        let problem = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some(format!("{} is not a directory", path.display())),
            Err(e) => Some(format!("{}: {e}", path.display())),
        };
        if let Some(problem) = problem {
            self.warn(
                node.pos,
                at,
                format!("{problem}: its spawns will fail until it is a directory"),
            );
        }
        Some(path)
    }

    /// Octal digits as written: `022`, `"022"`, `0o22` and `22` are 0o022.
    fn umask(&mut self, node: &Node, at: &str) -> Option<u32> {
        let expected = "an octal umask from 000 to 777 (e.g. 022)";
        let text = match node.value() {
            Some(Value::Int(_) | Value::Str(_)) => node.scalar().map(|s| s.text.as_str()),
            _ => None,
        };
        let Some(text) = text else {
            self.report(
                node.pos,
                at,
                format!("expected {expected}, found {}", node.describe()),
            );
            return None;
        };
        let digits = text
            .strip_prefix("0o")
            .or_else(|| text.strip_prefix("0O"))
            .unwrap_or(text);
        let mask = if !digits.is_empty() && digits.chars().all(|c| c.is_digit(8)) {
            u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
        } else {
            None
        };
        if mask.is_none() {
            let why = if digits.chars().any(|c| c == '8' || c == '9') {
                ": octal digits are 0-7"
            } else {
                ""
            };
            self.report(
                node.pos,
                at,
                format!("expected {expected}, found {}{why}", node.describe()),
            );
        }
        mask
    }

    fn env(&mut self, node: &Node, at: &str) -> Option<BTreeMap<String, String>> {
        let before = self.problems.len();
        let mut env = BTreeMap::new();
        for (name, entry) in self.mapping(node, at) {
            let path = join(at, name);
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.report(
                    entry.key.pos,
                    &path,
                    format!(
                        "invalid environment variable name {}: it must be non-empty, without `=` or NUL",
                        quote(name)
                    ),
                );
                continue;
            }
            let v = &entry.value;
            let value = match v.value() {
                Some(Value::Str(s)) => Some(s.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                // Numbers as written: `0755` stays "0755", not "755".
                Some(Value::Int(_) | Value::Float(_)) => v.scalar().map(|s| s.text.clone()),
                _ => None,
            };
            match value {
                Some(value) if value.contains('\0') => {
                    self.report(v.pos, &path, "the value contains a NUL byte");
                }
                Some(value) => {
                    env.insert(name.to_string(), value);
                }
                None => self.report(
                    v.pos,
                    &path,
                    format!(
                        "expected a string, number or boolean, found {} (write \"\" for an empty value)",
                        v.describe()
                    ),
                ),
            }
        }
        (self.problems.len() == before).then_some(env)
    }

    // ----- server and log -------------------------------------------------

    fn server_defaults(&self) -> ServerConfig {
        ServerConfig {
            listen: proto::DEFAULT_LISTEN.to_string(),
            token_file: self.dir.join(proto::DEFAULT_TOKEN_FILE),
            allow_remote: false,
            pidfile: self.dir.join(DEFAULT_PIDFILE),
            max_processes: DEFAULT_MAX_PROCESSES,
        }
    }

    fn server(&mut self, node: &Node) -> Option<ServerConfig> {
        let before = self.problems.len();
        let mut server = self.server_defaults();
        let mut listen_at = None;
        let mut allow_remote_ok = true;
        for (key, entry) in self.entries(node, "server", SERVER_KEYS) {
            let at = join("server", key);
            let v = &*entry.value;
            match key {
                "listen" => {
                    if let Some(text) = self.text(v, &at, "`host:port` (e.g. 127.0.0.1:4242)") {
                        match check_listen(text) {
                            Ok(loopback) => {
                                server.listen = text.to_string();
                                listen_at = Some((v.pos, loopback));
                            }
                            Err(why) => self.report(v.pos, &at, why),
                        }
                    }
                }
                "token_file" => {
                    if let Some(p) = self.path(v, &at) {
                        server.token_file = p;
                    }
                }
                "allow_remote" => match self.boolean(v, &at) {
                    Some(b) => server.allow_remote = b,
                    None => allow_remote_ok = false,
                },
                "pidfile" => {
                    if let Some(p) = self.path(v, &at) {
                        server.pidfile = p;
                    }
                }
                "max_processes" => {
                    if let Some(n) = self.int(v, &at, 1, i128::from(u32::MAX)) {
                        server.max_processes = to_u32(n);
                    }
                }
                _ => {}
            }
        }
        // Only judged when allow_remote itself is readable, not to report the
        // same mistake twice.
        if let Some((pos, false)) = listen_at
            && allow_remote_ok
            && !server.allow_remote
        {
            self.report(
                pos,
                "server.listen",
                format!(
                    "refusing to listen on non-loopback address {}: anyone who can reach it may try the token; set server.allow_remote: true",
                    server.listen
                ),
            );
        }
        (self.problems.len() == before).then_some(server)
    }

    fn log_defaults(&self) -> LogConfig {
        LogConfig {
            file: self.dir.join(DEFAULT_LOG_FILE),
            level: LogLevel::Info,
        }
    }

    fn log(&mut self, node: &Node) -> Option<LogConfig> {
        let before = self.problems.len();
        let mut log = self.log_defaults();
        for (key, entry) in self.entries(node, "log", LOG_KEYS) {
            let at = join("log", key);
            let v = &*entry.value;
            match key {
                "file" => {
                    if let Some(p) = self.path(v, &at) {
                        log.file = p;
                    }
                }
                "level" => {
                    let levels = [
                        LogLevel::Error,
                        LogLevel::Warn,
                        LogLevel::Info,
                        LogLevel::Debug,
                        LogLevel::Trace,
                    ];
                    let text = v.scalar().map(|s| s.text.to_ascii_lowercase());
                    match levels
                        .into_iter()
                        .find(|l| Some(l.as_str()) == text.as_deref())
                    {
                        Some(level) => log.level = level,
                        None => self.report(
                            v.pos,
                            &at,
                            format!(
                                "expected one of error, warn, info, debug, trace, found {}",
                                v.describe()
                            ),
                        ),
                    }
                }
                _ => {}
            }
        }
        (self.problems.len() == before).then_some(log)
    }
}

/// `user:` as written (a name, or a uid) to the account it names, with its
/// groups. A daemon that is not root can only run programs as itself
/// (`euid` is the daemon's effective uid).
pub(super) fn resolve_user(text: &str, euid: u32) -> Result<RunAs, String> {
    use nix::unistd::{Uid, User, getgrouplist};
    let text = text.trim();
    let found = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        match text.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => return Err(format!("uid {text} is out of range")),
        }
    } else {
        User::from_name(text)
    };
    let user = match found {
        Ok(Some(user)) => user,
        Ok(None) => return Err(format!("no user {} on this host", quote(text))),
        Err(e) => return Err(format!("cannot look up user {}: {e}", quote(text))),
    };
    let uid = user.uid.as_raw();
    if euid != 0 && uid != euid {
        return Err(format!(
            "taskmasterd runs as uid {euid}, not root, so it can only run programs as itself; remove `user` or start taskmasterd as root"
        ));
    }
    let name = std::ffi::CString::new(user.name.as_str())
        .map_err(|_| format!("user name {} contains a NUL byte", quote(&user.name)))?;
    let groups = getgrouplist(&name, user.gid)
        .map_err(|e| format!("cannot list the groups of user {}: {e}", quote(&user.name)))?;
    Ok(RunAs {
        name: user.name,
        uid,
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(|g| g.as_raw()).collect(),
        home: user.dir,
    })
}

fn to_u32(n: i128) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `NAME`, `NAME:INDEX` and `all` are control-shell targets
/// ([`proto::Target`]), so names stay simple (no `:`, no spaces) and `all` is
/// taken.
fn valid_program_name(name: &str) -> bool {
    !name.is_empty()
        && !proto::Target::is_reserved(name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
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
        "supervisord's `priority` has no equivalent: programs start together",
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

/// Checks `host:port` and says whether it is loopback only. Host names other
/// than `localhost` count as not loopback: what they resolve to can change.
fn check_listen(text: &str) -> Result<bool, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr.ip().is_loopback());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "expected `host:port` (e.g. 127.0.0.1:4242), found {}",
            quote(text)
        ));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "port {} is not a number from 0 to 65535",
            quote(port)
        ));
    }
    if host.is_empty() {
        return Err("missing host: write 127.0.0.1:PORT to listen locally".to_string());
    }
    if host.contains(':') || host.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "IPv6 addresses need brackets, e.g. [::1]:{port}; found {}",
            quote(text)
        ));
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("{} is not a valid IPv4 address", quote(host)));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !host.split('.').all(valid_label) {
        return Err(format!("{} is not a valid host name", quote(host)));
    }
    Ok(host.eq_ignore_ascii_case("localhost"))
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
