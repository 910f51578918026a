//! The `server:` and `log:` sections, and the check of a `listen` address.

use super::{Ctx, join, to_u32};
use crate::config::yaml::{Node, quote};
use crate::config::{
    DEFAULT_LOG_FILE, DEFAULT_MAX_PROCESSES, DEFAULT_PIDFILE, LogConfig, LogLevel, ServerConfig,
};
use std::net::{IpAddr, SocketAddr};

const SERVER_KEYS: &[&str] = &[
    "listen",
    "token_file",
    "allow_remote",
    "pidfile",
    "max_processes",
];
const LOG_KEYS: &[&str] = &["file", "level"];

impl Ctx {
    pub(super) fn server_defaults(&self) -> ServerConfig {
        ServerConfig {
            listen: proto::DEFAULT_LISTEN.to_string(),
            token_file: self.dir.join(proto::DEFAULT_TOKEN_FILE),
            allow_remote: false,
            pidfile: self.dir.join(DEFAULT_PIDFILE),
            max_processes: DEFAULT_MAX_PROCESSES,
        }
    }

    pub(super) fn server(&mut self, node: &Node) -> Option<ServerConfig> {
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

    pub(super) fn log_defaults(&self) -> LogConfig {
        LogConfig {
            file: self.dir.join(DEFAULT_LOG_FILE),
            level: LogLevel::Info,
        }
    }

    pub(super) fn log(&mut self, node: &Node) -> Option<LogConfig> {
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
