//! Validation of the `email:` section and of each program's `notify:` rules.
//!
//! A child of `validate`, so it uses the same [`Ctx`] and reports problems
//! the same way (every one, with its position). The rules need to know about
//! the `email:` section (a rule without `to:` takes `email.to`; rules without
//! any `email:` cannot be sent), so the section is read first and summarised
//! in [`EmailSeen`].
//!
//! Secrets stay out of problems: the password is never in the file (a
//! `password:` key is refused without echoing its value), and a password
//! file is only checked for existence and permissions, never read here.

use super::{Ctx, join, one_or_many, unknown_key_message};
use crate::config::email::{
    DEFAULT_SMTP_TIMEOUT, DEFAULT_THROTTLE, EmailConfig, NotifyEvent, NotifyRule, PasswordSource,
    SmtpConfig, SmtpTls, password_file_problem, read_ca_file,
};
use crate::config::yaml::{Kind, Node, Pos, Value, quote};
use lettre::Address;
use lettre::message::Mailbox;
use std::collections::BTreeSet;

const EMAIL_KEYS: &[&str] = &["smtp", "from", "to"];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "username",
    "password_env",
    "password_file",
    "timeout",
    "ca_file",
];
const RULE_KEYS: &[&str] = &["on", "to", "throttle"];
/// Longest `throttle` (a year): a mail must come some day.
const MAX_THROTTLE_SECS: u64 = 365 * 24 * 3600;
/// Longest `smtp.timeout`.
const MAX_TIMEOUT_SECS: u64 = 3600;

/// What the `email:` section means for notify rules.
#[derive(Debug, Clone, Default)]
pub(super) enum EmailSeen {
    /// No section: rules cannot be sent.
    #[default]
    Absent,
    /// The section has problems (already reported): do not pile on.
    Invalid,
    /// Valid, with these default recipients (maybe none).
    Valid(Vec<Address>),
}

impl Ctx {
    /// `email:`; `None` when absent (null) or invalid.
    pub(super) fn email(&mut self, node: &Node) -> Option<EmailConfig> {
        if node.is_null() {
            return None;
        }
        let before = self.problems.len();
        let mut smtp = None;
        let mut from = None;
        let mut to = Vec::new();
        let mut have_smtp = false;
        let mut have_from = false;
        for (key, entry) in self.entries(node, "email", EMAIL_KEYS) {
            let at = join("email", key);
            let v = &*entry.value;
            match key {
                "smtp" => {
                    have_smtp = true;
                    smtp = self.smtp(v, entry.key.pos);
                }
                "from" => {
                    have_from = true;
                    from = self.mailbox(v, &at);
                }
                "to" => {
                    if let Some(list) = self.addresses(v, &at) {
                        to = list;
                    }
                }
                _ => {}
            }
        }
        let pos = node.pos;
        if !have_smtp && matches!(node.kind, Kind::Map(_)) {
            self.report(
                pos,
                "email.smtp",
                "missing required key `smtp` (e.g. `smtp: {host: localhost, tls: none}`)",
            );
        }
        if !have_from && matches!(node.kind, Kind::Map(_)) {
            self.report(
                pos,
                "email.from",
                "missing required key `from` (the sender, e.g. `from: taskmaster@example.com`)",
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(EmailConfig {
            smtp: smtp?,
            from: from?,
            to,
        })
    }

    fn smtp(&mut self, node: &Node, key_pos: Pos) -> Option<SmtpConfig> {
        let before = self.problems.len();
        let mut host = None;
        let mut port = None;
        let mut tls = SmtpTls::StartTls;
        let mut username: Option<(String, Pos)> = None;
        let mut password: Option<(PasswordSource, Pos)> = None;
        let mut timeout = DEFAULT_SMTP_TIMEOUT;
        let mut ca_file = None;
        for (key, entry) in self.mapping(node, "email.smtp") {
            let at = join("email.smtp", key);
            let v = &*entry.value;
            if key == "password" {
                // The value is not quoted back: it may be the password.
                self.report(
                    entry.key.pos,
                    &at,
                    "the password never goes in the config file: name an environment variable \
                     with `password_env` or a file readable only by you with `password_file`",
                );
                continue;
            }
            if !SMTP_KEYS.contains(&key) {
                let message = unknown_key_message(key, SMTP_KEYS);
                self.report(entry.key.pos, &at, message);
                continue;
            }
            match key {
                "host" => {
                    if let Some(text) = self.text(v, &at, "a host name or IP address") {
                        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c == '\0') {
                            self.report(v.pos, &at, format!("{} is not a host name", quote(text)));
                        } else {
                            host = Some(text.to_string());
                        }
                    }
                }
                "port" => {
                    if let Some(n) = self.int(v, &at, 1, 65535) {
                        port = u16::try_from(n).ok();
                    }
                }
                "tls" => match v.scalar().map(|s| s.text.as_str()) {
                    Some("none") => tls = SmtpTls::None,
                    Some("starttls") => tls = SmtpTls::StartTls,
                    Some("tls") => tls = SmtpTls::Tls,
                    _ => self.report(
                        v.pos,
                        &at,
                        format!(
                            "expected one of `none`, `starttls`, `tls`, found {}",
                            v.describe()
                        ),
                    ),
                },
                "username" => {
                    if let Some(text) = self.text(v, &at, "a user name") {
                        username = Some((text.to_string(), entry.key.pos));
                    }
                }
                "password_env" => {
                    if let Some(name) = self.text(v, &at, "an environment variable name") {
                        if name.is_empty() || name.contains(['=', '\0']) {
                            self.report(
                                v.pos,
                                &at,
                                format!("{} is not an environment variable name", quote(name)),
                            );
                        } else {
                            password = self.one_password(
                                password,
                                PasswordSource::Env(name.to_string()),
                                entry.key.pos,
                                &at,
                            );
                        }
                    }
                }
                "password_file" => {
                    if let Some(path) = self.path(v, &at) {
                        match password_file_problem(&path) {
                            Ok(()) => {
                                password = self.one_password(
                                    password,
                                    PasswordSource::File(path),
                                    entry.key.pos,
                                    &at,
                                );
                            }
                            Err(e) => self.report(v.pos, &at, e.to_string()),
                        }
                    }
                }
                "ca_file" => {
                    if let Some(path) = self.path(v, &at) {
                        match read_ca_file(&path) {
                            Ok(_) => ca_file = Some(path),
                            Err(e) => self.report(v.pos, &at, e.to_string()),
                        }
                    }
                }
                "timeout" => {
                    if let Some(d) = self.seconds(v, &at, false) {
                        if d.as_secs() > MAX_TIMEOUT_SECS {
                            self.report(
                                v.pos,
                                &at,
                                format!(
                                    "at most {MAX_TIMEOUT_SECS} seconds, found {}",
                                    v.describe()
                                ),
                            );
                        } else {
                            timeout = d;
                        }
                    }
                }
                _ => {}
            }
        }
        if host.is_none() && matches!(node.kind, Kind::Map(_)) && self.problems.len() == before {
            self.report(
                key_pos,
                "email.smtp.host",
                "missing required key `host` (the SMTP server, e.g. `host: localhost`)",
            );
        }
        match (&username, &password) {
            (Some((_, pos)), None) if self.problems.len() == before => self.report(
                *pos,
                "email.smtp.username",
                "a username needs `password_env` or `password_file` (the password never goes in this file)",
            ),
            (None, Some((_, pos))) => self.report(
                *pos,
                "email.smtp",
                "a password needs a `username` to log in with",
            ),
            _ => {}
        }
        if self.problems.len() > before {
            return None;
        }
        Some(SmtpConfig {
            host: host?,
            port: port.unwrap_or(tls.default_port()),
            tls,
            username: username.map(|(u, _)| u),
            password: password.map(|(p, _)| p),
            timeout,
            ca_file,
        })
    }

    fn one_password(
        &mut self,
        current: Option<(PasswordSource, Pos)>,
        new: PasswordSource,
        pos: Pos,
        at: &str,
    ) -> Option<(PasswordSource, Pos)> {
        if current.is_some() {
            self.report(
                pos,
                at,
                "set one of `password_env` or `password_file`, not both",
            );
            return current;
        }
        Some((new, pos))
    }

    fn mailbox(&mut self, node: &Node, at: &str) -> Option<Mailbox> {
        let text = self.text(node, at, "an email address")?;
        match text.parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "{} is not an email address ({e}); write `taskmaster@example.com` or `Taskmaster <taskmaster@example.com>`",
                        quote(text)
                    ),
                );
                None
            }
        }
    }

    /// One address or a list of them; never empty.
    fn addresses(&mut self, node: &Node, at: &str) -> Option<Vec<Address>> {
        let items = one_or_many(node, at);
        if items.is_empty() {
            self.report(
                node.pos,
                at,
                "the list of recipients is empty; name at least one address",
            );
            return None;
        }
        let before = self.problems.len();
        let mut list = Vec::new();
        for (path, n) in items {
            let Some(text) = self.text(n, &path, "an email address") else {
                continue;
            };
            match text.trim().parse::<Address>() {
                Ok(a) => {
                    if !list.contains(&a) {
                        list.push(a);
                    }
                }
                Err(e) => self.report(
                    n.pos,
                    &path,
                    format!(
                        "{} is not an email address ({e}); write it as `ops@example.com`",
                        quote(text)
                    ),
                ),
            }
        }
        (self.problems.len() == before).then_some(list)
    }

    /// A program's `notify:` list.
    pub(super) fn notify(&mut self, node: &Node, at: &str) -> Option<Vec<NotifyRule>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Kind::Seq(items) = &node.kind else {
            self.report(
                node.pos,
                at,
                format!(
                    "expected a list of rules (`- on: [fatal]`), found {}",
                    node.describe()
                ),
            );
            return None;
        };
        let before = self.problems.len();
        if !items.is_empty() && matches!(self.email_seen, EmailSeen::Absent) {
            self.report(
                node.pos,
                at,
                "notify rules need an `email:` section (smtp server, from, to) to send with",
            );
        }
        let mut rules = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(rule) = self.rule(item, &format!("{at}[{i}]")) {
                rules.push(rule);
            }
        }
        (self.problems.len() == before).then_some(rules)
    }

    fn rule(&mut self, node: &Node, at: &str) -> Option<NotifyRule> {
        if !matches!(node.kind, Kind::Map(_)) {
            self.report(
                node.pos,
                at,
                format!(
                    "expected a rule such as `{{on: [fatal], throttle: 300}}`, found {}",
                    node.describe()
                ),
            );
            return None;
        }
        let before = self.problems.len();
        let mut on = None;
        let mut to = None;
        let mut throttle = DEFAULT_THROTTLE;
        for (key, entry) in self.entries(node, at, RULE_KEYS) {
            let path = join(at, key);
            let v = &*entry.value;
            match key {
                "on" => on = self.events(v, &path),
                "to" => to = self.addresses(v, &path),
                "throttle" => {
                    if let Some(d) = self.seconds(v, &path, true) {
                        if d.as_secs() > MAX_THROTTLE_SECS {
                            self.report(
                                v.pos,
                                &path,
                                format!(
                                    "at most {MAX_THROTTLE_SECS} seconds (a year), found {}",
                                    v.describe()
                                ),
                            );
                        } else {
                            throttle = d;
                        }
                    }
                }
                _ => {}
            }
        }
        if on.is_none() && self.problems.len() == before {
            let events = NotifyEvent::ALL.map(NotifyEvent::key).join(", ");
            self.report(
                node.pos,
                &join(at, "on"),
                format!("missing required key `on`: the events to mail about, among {events}"),
            );
        }
        let to = match to {
            Some(to) => Some(to),
            None => match &self.email_seen {
                EmailSeen::Valid(default) if !default.is_empty() => Some(default.clone()),
                EmailSeen::Valid(_) => {
                    self.report(
                        node.pos,
                        &join(at, "to"),
                        "no recipients: give this rule a `to:` or set `email.to`",
                    );
                    None
                }
                // Already reported (missing or invalid `email:`).
                EmailSeen::Absent | EmailSeen::Invalid => None,
            },
        };
        if self.problems.len() > before {
            return None;
        }
        Some(NotifyRule {
            on: on?,
            to: to?,
            throttle,
        })
    }

    /// `on:`: one event name or a list; never empty.
    fn events(&mut self, node: &Node, at: &str) -> Option<BTreeSet<NotifyEvent>> {
        let items = one_or_many(node, at);
        let names = NotifyEvent::ALL.map(NotifyEvent::key).join(", ");
        if items.is_empty() {
            self.report(
                node.pos,
                at,
                format!("the list of events is empty; name at least one of {names}"),
            );
            return None;
        }
        let before = self.problems.len();
        let mut set = BTreeSet::new();
        for (path, n) in items {
            let found = match n.value() {
                Some(Value::Str(s)) => NotifyEvent::from_key(&s.to_ascii_lowercase()),
                _ => None,
            };
            match found {
                Some(event) => {
                    set.insert(event);
                }
                None => self.report(
                    n.pos,
                    &path,
                    format!("expected one of {names}, found {}", n.describe()),
                ),
            }
        }
        (self.problems.len() == before).then_some(set)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{
        Config, ConfigError, NotifyEvent, PasswordSource, Problem, SmtpTls, parse,
    };
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    const FILE: &str = "/srv/tm/taskmaster.yaml";
    const EMAIL: &str = "email:\n  smtp:\n    host: mail.example.com\n  from: \"Taskmaster <tm@example.com>\"\n  to: [ops@example.com, dev@example.com]\n";

    fn valid(text: &str) -> Result<Config, String> {
        parse(text, Path::new(FILE)).map_err(|e| e.to_string())
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, Path::new(FILE)) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems for {text:?}, got {other:?}"),
        }
    }

    /// The one problem of `text`, which must be at `key` and say `words`.
    fn problem_at(text: &str, key: &str, words: &str) -> Problem {
        let all = problems(text);
        assert_eq!(all.len(), 1, "{text}\ngave {all:#?}");
        let p = all
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no problem"));
        assert_eq!(p.key, key, "{p}");
        assert!(p.message.contains(words), "{p} lacks {words:?}");
        p
    }

    fn web_notify(rules: &str) -> String {
        format!("programs:\n  web:\n    cmd: sleep 1\n    notify: {rules}\n")
    }

    #[test]
    fn an_email_section_with_defaults() -> Result<(), String> {
        let config = valid(&format!("{EMAIL}programs: {{}}\n"))?;
        let email = config.email.ok_or("no email")?;
        assert_eq!(email.smtp.host, "mail.example.com");
        assert_eq!(email.smtp.tls, SmtpTls::StartTls);
        assert_eq!(email.smtp.port, 587);
        assert_eq!(email.smtp.timeout, Duration::from_secs(10));
        assert_eq!(email.smtp.username, None);
        assert_eq!(email.from.to_string(), "Taskmaster <tm@example.com>");
        assert_eq!(email.to.len(), 2);
        let plain = valid(
            "email: {smtp: {host: localhost, tls: none, timeout: 0.5}, from: a@b.c}\nprograms: {}\n",
        )?
        .email
        .ok_or("no email")?;
        assert_eq!((plain.smtp.port, plain.smtp.tls), (25, SmtpTls::None));
        assert_eq!(plain.smtp.timeout, Duration::from_millis(500));
        assert!(plain.to.is_empty());
        let tls =
            valid("email: {smtp: {host: h, tls: tls, port: 2465}, from: a@b.c}\nprograms: {}\n")?;
        assert_eq!(tls.email.map(|e| e.smtp.port), Some(2465));
        assert!(valid("programs: {}\nemail:\n")?.email.is_none());
        Ok(())
    }

    #[test]
    fn rules_take_their_defaults_from_the_email_section() -> Result<(), String> {
        let config = valid(&format!(
            "{EMAIL}{}",
            web_notify(
                "\n      - on: fatal\n      - on: [unexpected_exit, BACKOFF]\n        to: boss@example.com\n        throttle: 2"
            )
        ))?;
        let web = config.programs.get("web").ok_or("no web")?;
        let [first, second] = web.notify.as_slice() else {
            return Err(format!("{:?}", web.notify));
        };
        assert!(first.wants(NotifyEvent::Fatal) && first.on.len() == 1);
        assert_eq!(first.to.len(), 2, "email.to by default");
        assert_eq!(first.throttle, Duration::from_secs(300));
        assert!(second.wants(NotifyEvent::UnexpectedExit) && second.wants(NotifyEvent::Backoff));
        assert_eq!(second.to.len(), 1);
        assert_eq!(second.to[0].to_string(), "boss@example.com");
        assert_eq!(second.throttle, Duration::from_secs(2));
        // No rules, no cost.
        let plain = valid(&format!("{EMAIL}programs:\n  web:\n    cmd: sleep 1\n"))?;
        assert!(
            plain
                .programs
                .get("web")
                .is_some_and(|p| p.notify.is_empty())
        );
        Ok(())
    }

    #[test]
    fn rules_need_an_email_section_and_recipients() {
        problem_at(
            &web_notify("[{on: fatal, to: a@b.c}]"),
            "programs.web.notify",
            "need an `email:` section",
        );
        problem_at(
            &format!(
                "email: {{smtp: {{host: h}}, from: a@b.c}}\n{}",
                web_notify("[{on: fatal}]")
            ),
            "programs.web.notify[0].to",
            "set `email.to`",
        );
        // Rules that name their recipients need no `email.to`.
        assert!(
            valid(&format!(
                "email: {{smtp: {{host: h}}, from: a@b.c}}\n{}",
                web_notify("[{on: fatal, to: [x@y.z]}]")
            ))
            .is_ok()
        );
        // A broken email section is reported once, not again at each rule.
        let all = problems(&format!(
            "email: {{smtp: {{host: h}}, from: nobody}}\n{}",
            web_notify("[{on: fatal}]")
        ));
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(all[0].key, "email.from");
    }

    #[test]
    fn bad_rules_are_reported_with_their_path() {
        let with_email = |rules: &str| format!("{EMAIL}{}", web_notify(rules));
        problem_at(
            &with_email("[{on: [fatal, crashed]}]"),
            "programs.web.notify[0].on[1]",
            "fatal, unexpected_exit, backoff, exited, started, stopped",
        );
        problem_at(
            &with_email("[{on: []}]"),
            "programs.web.notify[0].on",
            "empty",
        );
        problem_at(
            &with_email("[{to: a@b.c}]"),
            "programs.web.notify[0].on",
            "missing required key `on`",
        );
        problem_at(
            &with_email("[{on: fatal, throttle: -1}]"),
            "programs.web.notify[0].throttle",
            "seconds >= 0",
        );
        problem_at(
            &with_email("[{on: fatal, throttle: 1e12}]"),
            "programs.web.notify[0].throttle",
            "a year",
        );
        problem_at(
            &with_email("[{on: fatal, to: [ok@b.c, \"not an address\"]}]"),
            "programs.web.notify[0].to[1]",
            "not an email address",
        );
        problem_at(
            &with_email("{on: fatal}"),
            "programs.web.notify",
            "a list of rules",
        );
        problem_at(
            &with_email("[fatal]"),
            "programs.web.notify[0]",
            "expected a rule",
        );
        problem_at(
            &with_email("[{on: fatal, every: 5}]"),
            "programs.web.notify[0].every",
            "unknown key",
        );
    }

    #[test]
    fn bad_email_sections_are_reported() {
        let section =
            |smtp: &str, rest: &str| format!("email:\n  smtp: {smtp}\n{rest}programs: {{}}\n");
        let from = "  from: tm@example.com\n";
        problem_at(
            &section("{tls: none}", from),
            "email.smtp.host",
            "missing required key `host`",
        );
        problem_at(
            &section("{host: h, tls: ssl}", from),
            "email.smtp.tls",
            "`none`, `starttls`, `tls`",
        );
        problem_at(
            &section("{host: h, port: 0}", from),
            "email.smtp.port",
            "from 1 to 65535",
        );
        problem_at(
            &section("{host: h, timeout: 0}", from),
            "email.smtp.timeout",
            "> 0",
        );
        problem_at(
            &section("{host: h, user: x}", from),
            "email.smtp.user",
            "unknown key",
        );
        problem_at(
            &section("{host: h}", ""),
            "email.from",
            "missing required key `from`",
        );
        problem_at(
            &section("{host: h}", "  from: \"a@@b\"\n"),
            "email.from",
            "not an email address",
        );
        problem_at(
            &section("{host: h}", &format!("{from}  to: [ok@b.c, bad]\n")),
            "email.to[1]",
            "not an email address",
        );
        problem_at(
            "email: {from: a@b.c}\nprograms: {}\n",
            "email.smtp",
            "missing required key `smtp`",
        );
        problem_at(
            &section("{host: h, username: me}", from),
            "email.smtp.username",
            "needs `password_env` or `password_file`",
        );
        problem_at(
            &section("{host: h, password_env: PW}", from),
            "email.smtp",
            "needs a `username`",
        );
        problem_at(
            &section("{host: h, username: me, password_env: \"A=B\"}", from),
            "email.smtp.password_env",
            "not an environment variable name",
        );
    }

    #[test]
    fn a_password_in_the_file_is_refused_without_repeating_it() {
        let text = "email:\n  smtp: {host: h, username: me, password: hunter2-in-yaml}\n  from: a@b.c\nprograms: {}\n";
        let p = problem_at(text, "email.smtp.password", "never goes in the config file");
        assert!(!p.to_string().contains("hunter2"), "{p}");
    }

    #[test]
    fn a_ca_file_must_hold_a_pem_certificate_and_is_kept_by_path()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tm.yaml");
        let ca = dir.path().join("ca.pem");
        let text = "email:\n  smtp: {host: h, ca_file: ca.pem}\n  from: a@b.c\nprograms: {}\n";
        let err = parse(text, &file)
            .err()
            .ok_or("a missing CA file was accepted")?;
        assert!(err.to_string().contains("email.smtp.ca_file"), "{err}");
        std::fs::write(&ca, "not a certificate\n")?;
        let err = parse(text, &file)
            .err()
            .ok_or("a CA file without PEM was accepted")?;
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )?;
        let config = parse(text, &file)?;
        assert_eq!(config.email.ok_or("no email")?.smtp.ca_file, Some(ca));
        Ok(())
    }

    #[test]
    fn password_files_must_exist_and_be_private() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tm.yaml");
        let pw = dir.path().join("smtp.pw");
        std::fs::write(&pw, "file-secret-value\n")?;
        let text = "email:\n  smtp: {host: h, username: me, password_file: smtp.pw}\n  from: a@b.c\nprograms: {}\n";
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644))?;
        let err = parse(text, &file)
            .err()
            .ok_or("a 0644 password file was accepted")?;
        let shown = err.to_string();
        assert!(
            shown.contains("email.smtp.password_file") && shown.contains("chmod 600"),
            "{shown}"
        );
        assert!(!shown.contains("file-secret-value"), "{shown}");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600))?;
        let config = parse(text, &file)?;
        let email = config.email.clone().ok_or("no email")?;
        assert_eq!(email.smtp.password, Some(PasswordSource::File(pw.clone())));
        // The config names the file; it never holds what is in it.
        assert!(!format!("{config:?}").contains("file-secret-value"));
        assert_eq!(
            email.password()?.map(|s| s.expose().to_string()),
            Some("file-secret-value".into())
        );
        let both = "email:\n  smtp: {host: h, username: me, password_file: smtp.pw, password_env: PW}\n  from: a@b.c\nprograms: {}\n";
        let err = parse(both, &file).err().ok_or("two sources accepted")?;
        assert!(err.to_string().contains("not both"), "{err}");
        let missing = text.replace("smtp.pw", "nope.pw");
        let err = parse(&missing, &file)
            .err()
            .ok_or("a missing file was accepted")?;
        assert!(err.to_string().contains("nope.pw"), "{err}");
        Ok(())
    }

    #[test]
    fn an_unset_password_variable_is_not_a_config_problem() -> Result<(), String> {
        // `--check` may run where the daemon's environment is not: the
        // daemon reports it when it builds its transport.
        let config = valid(
            "email:\n  smtp: {host: h, username: me, password_env: TASKMASTER_SURELY_UNSET_PW}\n  from: a@b.c\nprograms: {}\n",
        )?;
        let email = config.email.ok_or("no email")?;
        assert_eq!(
            email.secret_env(),
            vec!["TASKMASTER_SURELY_UNSET_PW".to_string()]
        );
        assert!(email.password().is_err());
        Ok(())
    }

    #[test]
    fn a_changed_email_section_is_a_reload_note() -> Result<(), String> {
        let old = valid(&format!("{EMAIL}programs: {{}}\n"))?;
        let new = valid(&format!(
            "{}programs: {{}}\n",
            EMAIL.replace("mail.example.com", "relay.example.com")
        ))?;
        let notes = crate::reload::plan(&old, &new).notes;
        assert!(
            notes.iter().any(|n| n.contains("relay.example.com:587")),
            "{notes:?}"
        );
        assert!(crate::reload::plan(&old, &old).notes.is_empty());
        Ok(())
    }
}
