//! The readiness keys of a program: `ready`, `health`, `watchdog`,
//! `before_start` (with `before_start_timeout`) and `depends_on`.
//!
//! `ready` and `health` are one probe each, written the same way (exactly
//! one of `tcp`, `http`, `exec`, `log`, `notify`, plus timings), so one
//! reader serves both. The checks that need more than one key (`watchdog`
//! needs `ready: {notify: true}`, a `log` probe needs some output to read,
//! `status` only goes with `http`) run once the program's keys are all read,
//! so their order in the file does not matter. The checks that need every
//! program (`depends_on` names a program that exists, no cycle) run once
//! `programs:` is read: [`Ctx::depends_on_graph`].
//!
//! The parsers of a probe's text ([`tcp_address`], [`http_url`],
//! [`log_pattern`]) are pure functions returning the message to report, so
//! they are tested by tables.

use super::{Ctx, join, to_u32};
use crate::config::graph;
use crate::config::ready::{
    BEFORE_START_TIMEOUT, DependCondition, DependsOn, HEALTH_FAILURES, HEALTH_INTERVAL,
    HEALTH_TIMEOUT, HealthConfig, Hook, HttpUrl, LogPattern, Probe, READY_INTERVAL, READY_TIMEOUT,
    ReadyConfig,
};
use crate::config::yaml::{Kind, Node, Pos, Value, quote};
use crate::config::{OutputTarget, ProgramConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

/// The probe kinds, as written.
const KINDS: &[&str] = &["tcp", "http", "exec", "log", "notify"];
/// Every key of `ready:`.
const READY_KEYS: &[&str] = &[
    "tcp", "http", "exec", "log", "notify", "status", "interval", "timeout",
];
/// Every key of `health:`.
const HEALTH_KEYS: &[&str] = &[
    "tcp", "http", "exec", "log", "notify", "status", "interval", "timeout", "failures",
];

/// One `depends_on` entry and where it is written, kept until every program
/// is read.
pub(super) struct DependEdge {
    pub program: String,
    pub dependency: String,
    pub pos: Pos,
}

/// What a program's readiness keys said, with the positions the checks
/// across keys report at.
#[derive(Default)]
pub(super) struct Readiness {
    /// `ready:` and where its probe kind is written.
    pub ready: Option<(ReadyConfig, Pos)>,
    /// `ready:` is written but has a problem of its own: what it would have
    /// been is unknown, so `watchdog` is not judged against it.
    pub ready_invalid: bool,
    pub health: Option<(HealthConfig, Pos)>,
    pub watchdog: Option<(Duration, Pos)>,
    pub before_start: Option<(String, Vec<String>)>,
    pub before_start_timeout: Option<(Duration, Pos)>,
    pub depends_on: Option<DependsOn>,
}

/// A probe section as read, before its defaults are applied.
struct ProbeRead {
    probe: Probe,
    kind_pos: Pos,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    failures: Option<u32>,
}

impl Ctx {
    /// `ready:` (`health` is false) or `health:`.
    fn probe_section(&mut self, node: &Node, at: &str, health: bool) -> Option<ProbeRead> {
        let section = if health { "health" } else { "ready" };
        if !node.is_null() && !matches!(node.kind, Kind::Map(_)) {
            self.report(
                node.pos,
                at,
                format!(
                    "expected a mapping with one probe (e.g. `{section}: {{tcp: 127.0.0.1:8080}}`), found {}",
                    node.describe()
                ),
            );
            return None;
        }
        let before = self.problems.len();
        let valid = if health { HEALTH_KEYS } else { READY_KEYS };
        let entries = self.entries(node, at, valid);
        let unknown_keys = self.problems.len() > before;
        let mut kinds: Vec<(&str, Pos, Option<Probe>)> = Vec::new();
        let mut status: Option<(u16, Pos)> = None;
        let mut read = ProbeRead {
            probe: Probe::Notify,
            kind_pos: node.pos,
            interval: None,
            timeout: None,
            failures: None,
        };
        for (key, entry) in entries {
            let key_at = join(at, key);
            let v = &*entry.value;
            match key {
                "interval" => read.interval = self.seconds(v, &key_at, false),
                "timeout" => read.timeout = self.seconds(v, &key_at, false),
                "failures" => {
                    read.failures = self.int(v, &key_at, 1, i128::from(u32::MAX)).map(to_u32);
                }
                "status" => {
                    status = self
                        .int(v, &key_at, 100, 599)
                        .and_then(|n| u16::try_from(n).ok())
                        .map(|n| (n, entry.key.pos));
                }
                kind => {
                    let probe = self.probe(kind, v, &key_at);
                    kinds.push((kind, entry.key.pos, probe));
                }
            }
        }
        match kinds.as_slice() {
            [] if !unknown_keys => {
                self.report(
                    node.pos,
                    at,
                    format!(
                        "`{section}` needs a probe: one of {} (e.g. `{section}: {{tcp: 127.0.0.1:8080}}`)",
                        KINDS.join(", ")
                    ),
                );
            }
            [] => {}
            [(_, pos, probe)] => {
                read.kind_pos = *pos;
                if let Some(p) = probe {
                    read.probe = p.clone();
                }
            }
            [(first, ..), (second, pos, _), ..] => {
                self.report(
                    *pos,
                    &join(at, second),
                    format!(
                        "`{section}` is exactly one probe, found both `{first}` and `{second}`: keep one"
                    ),
                );
            }
        }
        if let Some((code, pos)) = status {
            match &mut read.probe {
                Probe::Http { status, .. } => *status = Some(code),
                _ if kinds.len() == 1 => self.report(
                    pos,
                    &join(at, "status"),
                    format!(
                        "`status` is the answer an `http` probe expects; this probe is `{}`: remove `status`",
                        kinds[0].0
                    ),
                ),
                _ => {}
            }
        }
        (self.problems.len() == before).then_some(read)
    }

    /// One probe kind's value.
    fn probe(&mut self, kind: &str, v: &Node, at: &str) -> Option<Probe> {
        match kind {
            "tcp" => {
                let text = self.text(v, at, "HOST:PORT (e.g. 127.0.0.1:5433)")?;
                match tcp_address(text) {
                    Ok((host, port)) => Some(Probe::Tcp { host, port }),
                    Err(why) => {
                        self.report(v.pos, at, why);
                        None
                    }
                }
            }
            "http" => {
                let text = self.text(v, at, "a URL (e.g. http://127.0.0.1:8080/healthz)")?;
                match http_url(text) {
                    Ok(url) => Some(Probe::Http { url, status: None }),
                    Err(why) => {
                        self.report(v.pos, at, why);
                        None
                    }
                }
            }
            "exec" => {
                let (cmd, argv) = self.command(v, at)?;
                Some(Probe::Exec { cmd, argv })
            }
            "log" => {
                let text = self.text(v, at, "a regular expression (e.g. \"listening on\")")?;
                match log_pattern(text) {
                    Ok(p) => Some(Probe::Log(p)),
                    Err(why) => {
                        self.report(v.pos, at, why);
                        None
                    }
                }
            }
            _ => match v.value() {
                Some(Value::Bool(true)) => Some(Probe::Notify),
                Some(Value::Bool(false)) => {
                    self.report(
                        v.pos,
                        at,
                        "`notify: false` is not a probe: write `notify: true` to wait for READY=1, or choose another probe",
                    );
                    None
                }
                _ => {
                    self.report(
                        v.pos,
                        at,
                        format!(
                            "expected `true` (the program says READY=1 on $NOTIFY_SOCKET), found {}",
                            v.describe()
                        ),
                    );
                    None
                }
            },
        }
    }

    /// One of a program's readiness keys, into `r`.
    pub(super) fn readiness_key(
        &mut self,
        r: &mut Readiness,
        key: &str,
        v: &Node,
        at: &str,
        program: &str,
    ) {
        match key {
            "ready" => {
                let read = self.probe_section(v, at, false);
                r.ready_invalid = read.is_none();
                if let Some(read) = read {
                    let ready = ReadyConfig {
                        probe: read.probe,
                        interval: read.interval.unwrap_or(READY_INTERVAL),
                        timeout: read.timeout.unwrap_or(READY_TIMEOUT),
                    };
                    r.ready = Some((ready, read.kind_pos));
                }
            }
            "health" => {
                if let Some(read) = self.probe_section(v, at, true) {
                    let health = HealthConfig {
                        probe: read.probe,
                        interval: read.interval.unwrap_or(HEALTH_INTERVAL),
                        timeout: read.timeout.unwrap_or(HEALTH_TIMEOUT),
                        failures: read.failures.unwrap_or(HEALTH_FAILURES),
                    };
                    r.health = Some((health, read.kind_pos));
                }
            }
            "watchdog" => {
                if let Some(d) = self.seconds(v, at, false) {
                    r.watchdog = Some((d, v.pos));
                }
            }
            "before_start" => r.before_start = self.command(v, at),
            "before_start_timeout" => {
                if let Some(d) = self.seconds(v, at, false) {
                    r.before_start_timeout = Some((d, v.pos));
                }
            }
            "depends_on" => {
                r.depends_on = self.depends_on(v, at, program);
            }
            // Only called with the keys above (see `Ctx::program`).
            _ => {}
        }
    }

    /// `depends_on:`: program name → `started`, `ready` or `completed`.
    /// Each entry is remembered with its position for the checks across
    /// programs ([`Ctx::depends_on_graph`]).
    pub(super) fn depends_on(&mut self, node: &Node, at: &str, program: &str) -> Option<DependsOn> {
        if let Kind::Seq(_) = node.kind {
            self.report(
                node.pos,
                at,
                "expected a mapping of program name to condition, found a list: write `depends_on: {db: ready, cache: started}` (conditions: started, ready, completed)",
            );
            return None;
        }
        let before = self.problems.len();
        let mut deps = DependsOn::new();
        for (name, entry) in self.mapping(node, at) {
            let key_at = join(at, name);
            let v = &*entry.value;
            let condition = match v.scalar().map(|s| s.text.as_str()) {
                Some("started") => Some(DependCondition::Started),
                Some("ready") => Some(DependCondition::Ready),
                Some("completed") => Some(DependCondition::Completed),
                _ => None,
            };
            match condition {
                Some(c) => {
                    deps.insert(name.to_string(), c);
                    self.depends_at.push(DependEdge {
                        program: program.to_string(),
                        dependency: name.to_string(),
                        pos: entry.key.pos,
                    });
                }
                None => self.report(
                    v.pos,
                    &key_at,
                    format!(
                        "expected one of `started` (running), `ready` (its ready probe passed), `completed` (exited as expected), found {}",
                        v.describe()
                    ),
                ),
            }
        }
        (self.problems.len() == before).then_some(deps)
    }

    /// The checks across a program's keys, then the readiness values onto `p`.
    pub(super) fn finish_readiness(&mut self, r: Readiness, p: &mut ProgramConfig, path: &str) {
        let nothing_to_read =
            p.stdout == OutputTarget::Discard && p.stderr == OutputTarget::Discard;
        let probes = [
            ("ready", r.ready.as_ref().map(|(c, pos)| (&c.probe, *pos))),
            ("health", r.health.as_ref().map(|(c, pos)| (&c.probe, *pos))),
        ];
        for (section, probe) in probes {
            if let Some((Probe::Log(_), pos)) = probe
                && nothing_to_read
            {
                self.report(
                    pos,
                    &join(&join(path, section), "log"),
                    "a `log` probe reads the program's output, but `stdout` and `stderr` are both null: nothing to read; send one of them to a file",
                );
            }
        }
        let notify = matches!(&r.ready, Some((c, _)) if c.probe == Probe::Notify);
        if let Some((d, pos)) = r.watchdog {
            if notify {
                p.watchdog = Some(d);
            } else if !r.ready_invalid {
                self.report(
                    pos,
                    &join(path, "watchdog"),
                    "`watchdog` is for programs that speak the notify protocol: it needs `ready: {notify: true}` (the program sends WATCHDOG=1 on $NOTIFY_SOCKET)",
                );
            }
        }
        let timeout = r.before_start_timeout.map(|(d, _)| d);
        match (r.before_start, r.before_start_timeout) {
            (Some((cmd, argv)), _) => {
                p.before_start = Some(Hook {
                    cmd,
                    argv,
                    timeout: timeout.unwrap_or(BEFORE_START_TIMEOUT),
                });
            }
            (None, Some((_, pos))) => self.warn(
                pos,
                &join(path, "before_start_timeout"),
                "`before_start_timeout` does nothing without `before_start`",
            ),
            (None, None) => {}
        }
        p.ready = r.ready.map(|(c, _)| c);
        p.health = r.health.map(|(c, _)| c);
        p.depends_on = r.depends_on.unwrap_or_default();
    }

    /// The `depends_on` checks that need every program: each name is a
    /// program, and there is no cycle. `names` is every program written
    /// (valid or not, so a program with its own problems is not also
    /// "unknown"); `programs` those that were read without problems.
    pub(super) fn depends_on_graph(
        &mut self,
        names: &BTreeSet<String>,
        programs: &BTreeMap<String, Arc<ProgramConfig>>,
    ) {
        let edges = std::mem::take(&mut self.depends_at);
        for edge in &edges {
            if !names.contains(&edge.dependency) {
                let closest = names
                    .iter()
                    .map(|n| (strsim::osa_distance(&edge.dependency, n), n))
                    .min_by_key(|(d, _)| *d)
                    .filter(|(d, n)| *d <= 2 || *d * 3 <= n.chars().count());
                let hint = match closest {
                    Some((_, n)) => format!(", did you mean `{n}`?"),
                    None => String::new(),
                };
                self.report(
                    edge.pos,
                    &format!("programs.{}.depends_on.{}", edge.program, edge.dependency),
                    format!("no program named {}{hint}", quote(&edge.dependency)),
                );
            }
        }
        if let Some(cycle) = graph::find_cycle(programs) {
            let (from, to) = (&cycle[0], &cycle[1]);
            let pos = edges
                .iter()
                .find(|e| &e.program == from && &e.dependency == to)
                .map_or(Pos { line: 0, col: 0 }, |e| e.pos);
            self.report(
                pos,
                &format!("programs.{from}.depends_on.{to}"),
                format!(
                    "depends_on cycle: {}: none of them could ever start; remove one of these dependencies",
                    cycle.join(" -> ")
                ),
            );
        }
    }
}

/// `HOST:PORT` of a `tcp:` probe: a name or an address (IPv6 in brackets,
/// kept as written) and a port from 1 to 65535.
pub(in crate::config) fn tcp_address(text: &str) -> Result<(String, u16), String> {
    let example = "(e.g. 127.0.0.1:5433 or [::1]:5433)";
    if text.contains("://") {
        return Err(format!(
            "expected HOST:PORT {example}, found the URL {}: a URL is an `http:` probe",
            quote(text)
        ));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, port)) = rest.split_once("]:") else {
            return Err(format!(
                "expected [IPV6]:PORT {example}, found {}",
                quote(text)
            ));
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "{} is not an IPv6 address (brackets hold one: [::1]:5433)",
                quote(inside)
            ));
        }
        (&text[..inside.len() + 2], port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!(
                "expected HOST:PORT {example}, found {}: the port is missing",
                quote(text)
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "an IPv6 address is written in brackets: [{host}]:{port}"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!(
            "expected HOST:PORT {example}, found {}: the host is missing",
            quote(text)
        ));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "{} is not a host name or address {example}",
            quote(host)
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host.to_string(), p)),
        _ => Err(format!(
            "the port must be from 1 to 65535, found {}",
            quote(port)
        )),
    }
}

/// The URL of an `http:` probe: plain `http://` only (the probe speaks no
/// TLS), no credentials (they would not be sent).
pub(in crate::config) fn http_url(text: &str) -> Result<HttpUrl, String> {
    let example = "e.g. http://127.0.0.1:8080/healthz";
    let url = url::Url::parse(text)
        .map_err(|e| format!("{} is not a valid URL ({example}): {e}", quote(text)))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(format!(
                "plain http only: the probe does not speak TLS, found {}; probe a plain-http port, or use `tcp:`",
                quote(text)
            ));
        }
        other => {
            return Err(format!(
                "expected an http:// URL ({example}), found {} (scheme `{other}`)",
                quote(text)
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{}: the probe sends no credentials; remove `user:password@` from the URL",
            quote(text)
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{} has no host ({example})", quote(text))),
    };
    let mut path = url.path().to_string();
    if path.is_empty() {
        path.push('/');
    }
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok(HttpUrl {
        text: text.to_string(),
        host,
        port: url.port_or_known_default().unwrap_or(80),
        path,
    })
}

/// The pattern of a `log:` probe, compiled once here. The message is the
/// regex crate's own, on one line.
pub(in crate::config) fn log_pattern(text: &str) -> Result<LogPattern, String> {
    regex::Regex::new(text).map(LogPattern).map_err(|e| {
        let full = e.to_string();
        // A syntax error is several lines (the pattern, a caret, then
        // `error: why`); the last one says what is wrong.
        let why = full
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map_or_else(
                || full.split_whitespace().collect::<Vec<_>>().join(" "),
                str::to_string,
            );
        format!("invalid regular expression {}: {why}", quote(text))
    })
}
