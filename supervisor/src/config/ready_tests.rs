//! The readiness keys as `taskmasterd --check` users see them: `ready`,
//! `health`, `watchdog`, `before_start` and `depends_on` read with their
//! defaults, and every mistake reported at its line with an actionable
//! message. The probe texts' parsers are tested by tables.

use super::tests::{FILE, problem, problems, valid, web, web_with};
use super::*;
use crate::config::ready::{
    BEFORE_START_TIMEOUT, HEALTH_FAILURES, HEALTH_INTERVAL, HEALTH_TIMEOUT, READY_INTERVAL,
    READY_TIMEOUT,
};
use crate::config::validate::ready::{http_url, log_pattern, tcp_address};
use std::collections::BTreeSet;

/// `web` with the YAML lines `lines` (indented as program keys) from line 4.
fn web_lines(lines: &[&str]) -> String {
    let mut text = String::from("programs:\n  web:\n    cmd: sleep 1\n");
    for l in lines {
        text.push_str(&format!("    {l}\n"));
    }
    text
}

#[test]
fn tcp_addresses_are_host_colon_port_with_ipv6_in_brackets() {
    let ok: &[(&str, &str, u16)] = &[
        ("127.0.0.1:5433", "127.0.0.1", 5433),
        ("localhost:1", "localhost", 1),
        ("db.internal-1_x:65535", "db.internal-1_x", 65535),
        ("[::1]:8080", "[::1]", 8080),
        ("[fe80::1:2]:80", "[fe80::1:2]", 80),
    ];
    for (text, host, port) in ok {
        assert_eq!(tcp_address(text), Ok((host.to_string(), *port)), "{text}");
    }
    let bad: &[(&str, &str)] = &[
        ("localhost", "the port is missing"),
        (":80", "the host is missing"),
        ("db:0", "from 1 to 65535"),
        ("db:65536", "from 1 to 65535"),
        ("db:http", "from 1 to 65535"),
        ("db:", "from 1 to 65535"),
        ("::1:80", "in brackets: [::1]:80"),
        ("[::1]", "expected [IPV6]:PORT"),
        ("[db]:80", "is not an IPv6 address"),
        ("http://db:80", "a URL is an `http:` probe"),
        ("d b:80", "is not a host name"),
    ];
    for (text, words) in bad {
        match tcp_address(text) {
            Err(why) => assert!(why.contains(words), "{text}: {why}"),
            Ok(got) => panic!("{text} accepted as {got:?}"),
        }
    }
}

#[test]
fn http_urls_are_plain_http_split_once() {
    let ok: &[(&str, &str, u16, &str)] = &[
        (
            "http://127.0.0.1:8080/healthz",
            "127.0.0.1",
            8080,
            "/healthz",
        ),
        ("http://localhost", "localhost", 80, "/"),
        ("http://[::1]:81/a?b=c#frag", "::1", 81, "/a?b=c"),
        ("HTTP://Example.COM/x", "example.com", 80, "/x"),
    ];
    for (text, host, port, path) in ok {
        let url = http_url(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            (
                url.text.as_str(),
                url.host.as_str(),
                url.port,
                url.path.as_str()
            ),
            (*text, *host, *port, *path)
        );
    }
    let bad: &[(&str, &str)] = &[
        ("https://127.0.0.1/", "plain http only"),
        ("127.0.0.1:8080/healthz", "is not a valid URL"),
        ("localhost:8080", "expected an http:// URL"),
        ("ftp://host/", "scheme `ftp`"),
        ("http://", "is not a valid URL"),
        ("http://a b/", "is not a valid URL"),
        ("http://host:99999/", "is not a valid URL"),
        ("http://u:p@host/", "sends no credentials"),
    ];
    for (text, words) in bad {
        match http_url(text) {
            Err(why) => assert!(why.contains(words), "{text}: {why}"),
            Ok(got) => panic!("{text} accepted as {got:?}"),
        }
    }
}

#[test]
fn a_log_pattern_that_does_not_compile_says_why_on_one_line() {
    assert!(log_pattern("listening on :\\d+").is_ok());
    for (pattern, words) in [("(abc", "unclosed group"), ("a{2,1}", "invalid")] {
        match log_pattern(pattern) {
            Err(why) => {
                assert!(why.contains(words), "{pattern}: {why}");
                assert!(!why.contains('\n'), "{why:?}");
                assert!(why.contains(pattern), "{why}");
            }
            Ok(_) => panic!("{pattern} compiled"),
        }
    }
}

#[test]
fn every_probe_kind_reads_with_its_defaults() -> Result<(), String> {
    let cases: &[(&str, Probe)] = &[
        (
            "tcp: 127.0.0.1:5433",
            Probe::Tcp {
                host: "127.0.0.1".into(),
                port: 5433,
            },
        ),
        (
            "http: \"http://127.0.0.1:8080/healthz\"",
            Probe::Http {
                url: http_url("http://127.0.0.1:8080/healthz")?,
                status: None,
            },
        ),
        (
            "exec: \"test -f ready\"",
            Probe::Exec {
                cmd: "test -f ready".into(),
                argv: vec!["test".into(), "-f".into(), "ready".into()],
            },
        ),
        (
            "log: \"listening on\"",
            Probe::Log(log_pattern("listening on")?),
        ),
        ("notify: true", Probe::Notify),
    ];
    for (line, probe) in cases {
        let config = valid(&web_with(&format!("ready: {{{line}}}")))?;
        let p = web(&config)?;
        assert_eq!(
            p.ready,
            Some(ReadyConfig {
                probe: probe.clone(),
                interval: READY_INTERVAL,
                timeout: READY_TIMEOUT,
            }),
            "{line}"
        );
        let config = valid(&web_with(&format!("health: {{{line}}}")))?;
        assert_eq!(
            web(&config)?.health,
            Some(HealthConfig {
                probe: probe.clone(),
                interval: HEALTH_INTERVAL,
                timeout: HEALTH_TIMEOUT,
                failures: HEALTH_FAILURES,
            }),
            "{line}"
        );
    }
    // Without the keys: nothing, as before.
    let p = valid(&web_with("numprocs: 1"))?;
    let p = web(&p)?;
    assert_eq!(
        (&p.ready, &p.health, p.watchdog, &p.before_start),
        (&None, &None, None, &None)
    );
    assert!(p.depends_on.is_empty() && !p.starttime_explicit);
    Ok(())
}

#[test]
fn timings_status_watchdog_hook_and_dependencies_read_as_written() -> Result<(), String> {
    let text = "programs:\n  db:\n    cmd: sleep 1\n    ready: {notify: true, interval: 0.5, timeout: 3}\n    \
                watchdog: 2.5\n    starttime: 1\n  \
                web:\n    cmd: sleep 1\n    depends_on: {db: ready, job: completed, cache: started}\n    \
                health: {http: \"http://[::1]:81/h\", status: 204, interval: 5, timeout: 0.25, failures: 1}\n    \
                before_start: ./migrate.sh --all\n    before_start_timeout: 7\n  \
                job: {cmd: \"true\"}\n  cache: {cmd: \"true\", before_start: \"echo hi\"}\n";
    let config = valid(text)?;
    let db = config.programs.get("db").ok_or("no db")?;
    assert_eq!(
        db.ready.as_ref().map(|r| (r.interval, r.timeout)),
        Some((Duration::from_millis(500), Duration::from_secs(3)))
    );
    assert_eq!(db.watchdog, Some(Duration::from_millis(2500)));
    assert!(db.starttime_explicit);
    let web = web(&config)?;
    let health = web.health.as_ref().ok_or("no health")?;
    assert_eq!(
        (
            &health.probe,
            health.interval,
            health.timeout,
            health.failures
        ),
        (
            &Probe::Http {
                url: http_url("http://[::1]:81/h")?,
                status: Some(204)
            },
            Duration::from_secs(5),
            Duration::from_millis(250),
            1
        )
    );
    assert_eq!(
        web.before_start,
        Some(Hook {
            cmd: "./migrate.sh --all".into(),
            argv: vec!["./migrate.sh".into(), "--all".into()],
            timeout: Duration::from_secs(7),
        })
    );
    let deps: Vec<(&str, DependCondition)> = web
        .depends_on
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        deps,
        [
            ("cache", DependCondition::Started),
            ("db", DependCondition::Ready),
            ("job", DependCondition::Completed),
        ]
    );
    let cache = config.programs.get("cache").ok_or("no cache")?;
    assert_eq!(
        cache.before_start.as_ref().map(|h| h.timeout),
        Some(BEFORE_START_TIMEOUT)
    );
    Ok(())
}

/// Each mistake, written from line 4 of `web`, and the one problem it gives:
/// (lines, line of the problem, its key, words of its message).
type Rejection<'a> = (&'a [&'a str], usize, &'a str, &'a str);

#[test]
fn every_readiness_mistake_is_one_problem_at_its_line() {
    let cases: &[Rejection] = &[
        (
            &["ready: {tcp: \"127.0.0.1:1\", http: \"http://a/\"}"],
            4,
            "programs.web.ready.http",
            "exactly one probe, found both `tcp` and `http`",
        ),
        (
            &["ready:", "  tpc: 127.0.0.1:1"],
            5,
            "programs.web.ready.tpc",
            "unknown key `tpc`, did you mean `tcp`?",
        ),
        (
            &["health: {htp: \"http://a/\"}"],
            4,
            "programs.web.health.htp",
            "did you mean `http`?",
        ),
        (
            &["ready: {failures: 2, tcp: \"a:1\"}"],
            4,
            "programs.web.ready.failures",
            "unknown key `failures`",
        ),
        (
            &["ready: {http: \"https://a/\"}"],
            4,
            "programs.web.ready.http",
            "plain http only",
        ),
        (
            &["ready: {http: \"not a url\"}"],
            4,
            "programs.web.ready.http",
            "is not a valid URL",
        ),
        (
            &["health: {tcp: \"a:1\", failures: 0}"],
            4,
            "programs.web.health.failures",
            "expected a whole number >= 1, found the integer 0",
        ),
        (
            &["ready: {tcp: \"a:1\", interval: -1}"],
            4,
            "programs.web.ready.interval",
            "seconds > 0",
        ),
        (
            &["health: {tcp: \"a:1\", timeout: 0}"],
            4,
            "programs.web.health.timeout",
            "seconds > 0",
        ),
        (
            &["watchdog: 10"],
            4,
            "programs.web.watchdog",
            "needs `ready: {notify: true}`",
        ),
        (
            &["ready: {tcp: \"a:1\"}", "watchdog: 10"],
            5,
            "programs.web.watchdog",
            "needs `ready: {notify: true}`",
        ),
        // A `ready` with its own problem is that problem only.
        (
            &["ready: {notify: false}", "watchdog: 10"],
            4,
            "programs.web.ready.notify",
            "`notify: false` is not a probe",
        ),
        (
            &["ready: {notify: true}", "watchdog: 0"],
            5,
            "programs.web.watchdog",
            "seconds > 0",
        ),
        (
            &["ready: {tcp: \"a:1\", status: 200}"],
            4,
            "programs.web.ready.status",
            "remove `status`",
        ),
        (
            &["ready: {http: \"http://a/\", status: 99}"],
            4,
            "programs.web.ready.status",
            "from 100 to 599",
        ),
        (
            &["ready: {notify: false}"],
            4,
            "programs.web.ready.notify",
            "`notify: false` is not a probe",
        ),
        (
            &["ready: {notify: yes}"],
            4,
            "programs.web.ready.notify",
            "expected `true`",
        ),
        (
            &["ready: {exec: \" \"}"],
            4,
            "programs.web.ready.exec",
            "the command is empty",
        ),
        (
            &["ready: {log: \"(abc\"}"],
            4,
            "programs.web.ready.log",
            "unclosed group",
        ),
        (
            &["stdout: null", "stderr: null", "health: {log: ready}"],
            6,
            "programs.web.health.log",
            "nothing to read",
        ),
        (
            &["ready: {log: ready}", "stdout: null", "stderr: null"],
            4,
            "programs.web.ready.log",
            "nothing to read",
        ),
        (&["ready: {}"], 4, "programs.web.ready", "needs a probe"),
        (&["ready:"], 4, "programs.web.ready", "needs a probe"),
        (
            &["ready: \"tcp 127.0.0.1:1\""],
            4,
            "programs.web.ready",
            "expected a mapping with one probe",
        ),
        (
            &["ready: {tcp: 127.0.0.1}"],
            4,
            "programs.web.ready.tcp",
            "the port is missing",
        ),
        (
            &["before_start: \"'oops\""],
            4,
            "programs.web.before_start",
            "unbalanced quote",
        ),
        (
            &["before_start: \"true\"", "before_start_timeout: -1"],
            5,
            "programs.web.before_start_timeout",
            "seconds > 0",
        ),
        (
            &["depends_on: [db]"],
            4,
            "programs.web.depends_on",
            "found a list: write `depends_on: {db: ready",
        ),
        (
            &["depends_on: {web: healthy}"],
            4,
            "programs.web.depends_on.web",
            "expected one of `started`",
        ),
        (
            &["depends_on: {wbe: started}"],
            4,
            "programs.web.depends_on.wbe",
            "no program named \"wbe\", did you mean `web`?",
        ),
        (
            &["depends_on: {postgres: started}"],
            4,
            "programs.web.depends_on.postgres",
            "no program named \"postgres\"",
        ),
        (
            &["depends_on: {web: ready}"],
            4,
            "programs.web.depends_on.web",
            "depends_on cycle: web -> web",
        ),
    ];
    for (lines, line, key, words) in cases {
        let text = web_lines(lines);
        let all = problems(&text);
        assert_eq!(all.len(), 1, "{lines:?} gave {all:#?}");
        let p = &all[0];
        assert_eq!((p.line, p.key.as_str()), (*line, *key), "{lines:?}: {p}");
        assert!(p.message.contains(words), "{lines:?}: {p}");
    }
}

#[test]
fn a_cycle_is_named_once_at_the_dependency_that_closes_it() {
    let text = "programs:\n  api:\n    cmd: x\n    depends_on: {web: started}\n  \
                web:\n    cmd: x\n    depends_on: {db: ready, api: ready}\n  \
                db: {cmd: x}\n";
    let p = problem(text);
    assert_eq!(
        p.to_string(),
        format!(
            "{FILE}:4:18: programs.api.depends_on.web: depends_on cycle: api -> web -> api: none of them could ever start; remove one of these dependencies"
        )
    );
    // A program with its own problem is not also an unknown name.
    let all = problems(
        "programs:\n  web:\n    cmd: x\n    depends_on: {db: ready}\n  db: {numprocs: x}\n",
    );
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all.iter().all(|p| !p.message.contains("no program")),
        "{all:#?}"
    );
}

#[test]
fn a_stray_before_start_timeout_is_a_warning() -> Result<(), String> {
    let config = valid(&web_with("before_start_timeout: 5"))?;
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0]
            .message
            .contains("does nothing without `before_start`")
    );
    assert_eq!(web(&config)?.before_start, None);
    Ok(())
}

#[test]
fn other_tools_names_for_the_readiness_keys_get_ours() {
    for (theirs, ours) in [
        ("depends: {db: ready}", "`depends_on`"),
        ("requires: db", "`depends_on`"),
        ("after: db", "`depends_on`"),
        ("healthcheck: {}", "`health`"),
        ("readinessProbe: {}", "`ready`"),
        ("livenessProbe: {}", "`health`"),
        ("ExecStartPre: x", "`before_start`"),
        ("WatchdogSec: 5", "`watchdog`"),
        ("priority: 10", "`depends_on: {NAME: started}`"),
        ("befor_start: x", "did you mean `before_start`?"),
        ("dependson: {}", "did you mean `depends_on`?"),
    ] {
        let p = problem(&web_with(theirs));
        assert!(p.message.contains(ours), "{theirs}: {p}");
    }
}

#[test]
fn starttime_written_is_explicit_even_at_its_default() -> Result<(), String> {
    let config = valid(&web_with("starttime: 1"))?;
    let written = web(&config)?;
    let config = valid(&web_with("numprocs: 1"))?;
    let default = web(&config)?;
    assert_eq!(written.starttime, default.starttime);
    assert!(written.starttime_explicit && !default.starttime_explicit);
    assert_eq!(changed_keys(default, written), vec!["starttime"]);
    Ok(())
}

#[test]
fn the_readiness_example_shows_every_probe_kind_and_condition() -> Result<(), String> {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/readiness.yaml"
    ));
    let config = load(path).map_err(|e| e.to_string())?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let kinds: BTreeSet<&str> = config
        .programs
        .values()
        .filter_map(|p| p.ready.as_ref().map(|r| r.probe.kind()))
        .collect();
    assert_eq!(
        kinds,
        ["exec", "http", "log", "notify", "tcp"]
            .into_iter()
            .collect()
    );
    let conditions: BTreeSet<DependCondition> = config
        .programs
        .values()
        .flat_map(|p| p.depends_on.values().copied())
        .collect();
    assert_eq!(conditions.len(), 3, "{conditions:?}");
    let program = |name: &str| config.programs.get(name).ok_or(format!("no {name}"));
    assert!(program("api")?.health.is_some());
    assert_eq!(program("worker")?.watchdog, Some(Duration::from_secs(10)));
    assert!(program("cache")?.before_start.is_some());
    assert_eq!(
        graph::dependencies(&config.programs, "web"),
        ["cache", "db", "api"]
    );
    Ok(())
}
