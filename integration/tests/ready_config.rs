//! `taskmasterd --check` on the readiness keys (`ready`, `health`,
//! `watchdog`, `before_start`, `depends_on`): each mistake the issue lists is
//! rejected with exit 1 and one `FILE:LINE:COL: key: why` line that says
//! what to fix; a config using every key is accepted.

use integration::{TestResult, check_config};
use std::path::PathBuf;

/// A config file `taskmaster.yaml` with `text` in a fresh directory.
fn config_file(text: &str) -> TestResult<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("taskmaster.yaml");
    std::fs::write(&path, text)?;
    Ok((dir, path))
}

/// `--check` of `programs.web` with `lines` from line 4 (and `db` after it)
/// exits 1 with exactly one problem line: at `line`, naming `key`, saying
/// `words`.
fn rejects(lines: &[&str], line: usize, key: &str, words: &str) -> TestResult {
    let mut text = String::from("programs:\n  web:\n    cmd: \"sleep 1\"\n");
    for l in lines {
        text.push_str(&format!("    {l}\n"));
    }
    text.push_str("  db:\n    cmd: \"sleep 1\"\n");
    let (_dir, path) = config_file(&text)?;
    let out = check_config(&path)?;
    let all = out.combined();
    assert_eq!(out.code, Some(1), "{lines:?} accepted:\n{all}");
    let problems: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&path.display().to_string()))
        .collect();
    assert_eq!(problems.len(), 1, "{lines:?}:\n{all}");
    let expected = format!("{}:{line}:", path.display());
    assert!(
        problems[0].starts_with(&expected),
        "{lines:?}: {:?} is not at line {line}",
        problems[0]
    );
    assert!(
        problems[0].contains(&format!(": {key}: ")),
        "{lines:?}: {:?} does not name {key}",
        problems[0]
    );
    assert!(
        problems[0].contains(words),
        "{lines:?}: {:?} does not say {words:?}",
        problems[0]
    );
    Ok(())
}

#[test]
fn two_probe_kinds_at_once_are_rejected() -> TestResult {
    rejects(
        &[
            "ready:",
            "  tcp: 127.0.0.1:5433",
            "  http: \"http://127.0.0.1/\"",
        ],
        6,
        "programs.web.ready.http",
        "exactly one probe, found both `tcp` and `http`: keep one",
    )
}

#[test]
fn an_unknown_probe_kind_is_rejected_with_a_suggestion() -> TestResult {
    rejects(
        &["ready: {tpc: 127.0.0.1:5433}"],
        4,
        "programs.web.ready.tpc",
        "unknown key `tpc`, did you mean `tcp`?",
    )
}

#[test]
fn a_bad_url_is_rejected() -> TestResult {
    rejects(
        &["health: {http: \"127.0.0.1:8080/healthz\"}"],
        4,
        "programs.web.health.http",
        "is not a valid URL",
    )
}

#[test]
fn an_https_url_is_rejected_as_plain_http_only() -> TestResult {
    rejects(
        &["ready: {http: \"https://127.0.0.1/\"}"],
        4,
        "programs.web.ready.http",
        "plain http only",
    )
}

#[test]
fn zero_failures_are_rejected() -> TestResult {
    rejects(
        &["health: {tcp: 127.0.0.1:5433, failures: 0}"],
        4,
        "programs.web.health.failures",
        "expected a whole number >= 1, found the integer 0",
    )
}

#[test]
fn a_negative_interval_is_rejected() -> TestResult {
    rejects(
        &["ready: {tcp: 127.0.0.1:5433, interval: -0.5}"],
        4,
        "programs.web.ready.interval",
        "expected a number of seconds > 0",
    )
}

#[test]
fn a_watchdog_without_notify_is_rejected() -> TestResult {
    rejects(
        &["ready: {tcp: 127.0.0.1:5433}", "watchdog: 10"],
        5,
        "programs.web.watchdog",
        "needs `ready: {notify: true}`",
    )
}

#[test]
fn a_log_regex_that_does_not_compile_is_rejected_with_the_reason() -> TestResult {
    rejects(
        &["ready: {log: \"listening (on\"}"],
        4,
        "programs.web.ready.log",
        "invalid regular expression \"listening (on\": unclosed group",
    )
}

#[test]
fn a_log_probe_with_no_output_to_read_is_rejected() -> TestResult {
    rejects(
        &["stdout: null", "stderr: null", "ready: {log: ready}"],
        6,
        "programs.web.ready.log",
        "nothing to read",
    )
}

#[test]
fn a_dependency_on_an_unknown_program_is_rejected_with_a_suggestion() -> TestResult {
    rejects(
        &["depends_on: {dbb: ready}"],
        4,
        "programs.web.depends_on.dbb",
        "no program named \"dbb\", did you mean `db`?",
    )
}

#[test]
fn a_dependency_cycle_is_rejected_naming_the_cycle() -> TestResult {
    let (_dir, path) = config_file(
        "programs:\n  api:\n    cmd: sleep 1\n    depends_on: {web: ready}\n  \
         web:\n    cmd: sleep 1\n    depends_on: {api: started}\n",
    )?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.combined().contains(&format!(
            "{}:4:18: programs.api.depends_on.web: depends_on cycle: api -> web -> api",
            path.display()
        )),
        "{}",
        out.combined()
    );
    Ok(())
}

#[test]
fn a_program_that_depends_on_itself_is_a_cycle() -> TestResult {
    rejects(
        &["depends_on: {web: started}"],
        4,
        "programs.web.depends_on.web",
        "depends_on cycle: web -> web",
    )
}

#[test]
fn every_readiness_key_together_is_accepted() -> TestResult {
    let (_dir, path) = config_file(
        r#"
programs:
  db:
    cmd: sleep 100
    starttime: 0.5
    ready: {tcp: "[::1]:5433", interval: 0.2, timeout: 30}
  api:
    cmd: sleep 100
    depends_on: {db: ready, migrate: completed}
    before_start: sh -c 'echo migrating'
    before_start_timeout: 5
    ready: {http: "http://127.0.0.1:8080/healthz", status: 204}
    health: {exec: "test -e /", interval: 5, timeout: 1, failures: 3}
  migrate:
    cmd: "true"
    autorestart: never
  worker:
    cmd: sleep 100
    depends_on: {api: started}
    ready: {notify: true}
    watchdog: 10
    health: {log: "ERROR|panic"}
"#,
    )?;
    let out = check_config(&path)?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    Ok(())
}
