//! Typed values: the scalar and small-structure parsers every section uses
//! (text, booleans, bounded integers, seconds, commands, exit codes, signals,
//! paths, output targets, working directories, umasks, environments). Each
//! reports what it found and what to write instead, and returns `None` then.

use super::{Ctx, join, one_or_many};
use crate::config::yaml::{Kind, Node, Value, quote};
use crate::config::{AutoRestart, OutputTarget};
use proto::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Ctx {
    /// Any scalar's text as written, for keys that are text by nature.
    pub(super) fn text<'n>(&mut self, node: &'n Node, at: &str, what: &str) -> Option<&'n str> {
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

    pub(super) fn boolean(&mut self, node: &Node, at: &str) -> Option<bool> {
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
    pub(super) fn int(&mut self, node: &Node, at: &str, min: i128, max: i128) -> Option<i128> {
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
    pub(super) fn seconds(&mut self, node: &Node, at: &str, allow_zero: bool) -> Option<Duration> {
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

    pub(super) fn command(&mut self, node: &Node, at: &str) -> Option<(String, Vec<String>)> {
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

    pub(super) fn autorestart(&mut self, node: &Node, at: &str) -> Option<AutoRestart> {
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

    pub(super) fn exitcodes(&mut self, node: &Node, at: &str) -> Option<Vec<i32>> {
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

    pub(super) fn stopsignal(&mut self, node: &Node, at: &str) -> Option<Signal> {
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
    pub(super) fn path(&mut self, node: &Node, at: &str) -> Option<PathBuf> {
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

    pub(super) fn output(&mut self, node: &Node, at: &str) -> Option<OutputTarget> {
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
        let default_logs = self.dir.join(crate::config::DEFAULT_LOGS_DIR);
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
    pub(super) fn workingdir(&mut self, node: &Node, at: &str) -> Option<PathBuf> {
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
    pub(super) fn umask(&mut self, node: &Node, at: &str) -> Option<u32> {
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

    pub(super) fn env(&mut self, node: &Node, at: &str) -> Option<BTreeMap<String, String>> {
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
}
