//! End-to-end tests of `depends_on`: the real daemon starts `db`, then
//! `api`, then `web` (each only once what it depends on is in its
//! condition), stops them in the reverse order, pulls dependencies in on
//! `start`, and leaves dependents STOPPED with `waiting for db (FATAL)`
//! when a dependency fails.
//!
//! Order is judged from the event log, whose lines are written in the order
//! things happened. Each ordering test is built so that the wrong order is
//! what would happen without the feature: `db` takes a second to become
//! RUNNING (a dependent spawned at once would log `spawned` first), and
//! `web` and `api` take half a second to stop (a dependency stopped at the
//! same time would be asked to stop before they are gone).

use integration::{SOON, TestDaemon, TestResult, line_mentions, wait_until};
use proto::ProcessState;
use std::time::Duration;

/// A program that takes `delay` to stop after SIGTERM.
fn slow_stopper(delay: &str) -> String {
    format!(r#"sh -c 'trap "sleep {delay}; exit 0" TERM; while :; do sleep 0.05; done'"#)
}

/// `db` (RUNNING one second after its spawn) ← `api` ← `web`.
fn chain(autostart: bool) -> String {
    format!(
        r#"
programs:
  db:
    cmd: "sleep 1000"
    starttime: 1
    autostart: {autostart}
  api:
    cmd: "{api}"
    starttime: 0
    stoptime: 5
    autostart: {autostart}
    depends_on: {{db: ready}}
  web:
    cmd: "{web}"
    starttime: 0
    stoptime: 5
    autostart: {autostart}
    depends_on: {{api: started}}
"#,
        api = slow_stopper("0.5").replace('"', "\\\""),
        web = slow_stopper("0.5").replace('"', "\\\""),
    )
}

/// The index of the first event-log line that names `instance` and
/// contains `word`.
fn line_of(log: &str, instance: &str, word: &str) -> Result<usize, String> {
    log.lines()
        .position(|l| line_mentions(l, instance) && l.contains(word))
        .ok_or_else(|| format!("no `{word}` line for {instance} in the event log:\n{log}"))
}

/// Asserts that `first` happened before `then`, by event-log lines.
fn before(log: &str, first: (&str, &str), then: (&str, &str)) -> TestResult {
    let a = line_of(log, first.0, first.1)?;
    let b = line_of(log, then.0, then.1)?;
    assert!(
        a < b,
        "{} `{}` (line {a}) should come before {} `{}` (line {b}):\n{log}",
        first.0,
        first.1,
        then.0,
        then.1
    );
    Ok(())
}

/// Each program is spawned only after the one it depends on is RUNNING.
fn assert_start_order(log: &str) -> TestResult {
    before(log, ("db:0", "entered RUNNING"), ("api:0", "spawned"))?;
    before(log, ("api:0", "entered RUNNING"), ("web:0", "spawned"))?;
    Ok(())
}

fn wait_running(daemon: &TestDaemon, names: &[&str]) -> TestResult {
    for name in names {
        daemon.wait_for_state(name, ProcessState::Running, SOON)?;
    }
    Ok(())
}

#[test]
fn autostart_spawns_each_program_only_once_its_dependencies_run() -> TestResult {
    let daemon = TestDaemon::start(&chain(true))?;
    wait_running(&daemon, &["db:0", "api:0", "web:0"])?;
    assert_start_order(&daemon.event_log())
}

#[test]
fn stop_all_stops_dependents_before_what_they_depend_on() -> TestResult {
    let daemon = TestDaemon::start(&chain(true))?;
    wait_running(&daemon, &["db:0", "api:0", "web:0"])?;
    let out = daemon.ctl(["stop", "all"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    let log = daemon.event_log();
    before(&log, ("web:0", "stopped"), ("api:0", "stop requested"))?;
    before(&log, ("api:0", "stopped"), ("db:0", "stop requested"))?;
    Ok(())
}

#[test]
fn shutdown_stops_dependents_before_what_they_depend_on() -> TestResult {
    let mut daemon = TestDaemon::start(&chain(true))?;
    wait_running(&daemon, &["db:0", "api:0", "web:0"])?;
    daemon.signal(nix::sys::signal::Signal::SIGTERM)?;
    assert!(
        daemon.wait_exit(SOON).is_some(),
        "the daemon did not exit\n{}",
        daemon.diagnostics()
    );
    let log = daemon.event_log();
    before(&log, ("web:0", "stopped"), ("api:0", "stop requested"))?;
    before(&log, ("api:0", "stopped"), ("db:0", "stop requested"))?;
    Ok(())
}

#[test]
fn start_of_a_program_starts_what_it_depends_on_first_and_answers_once_it_runs() -> TestResult {
    let daemon = TestDaemon::start(&chain(false))?;
    let out = daemon.ctl(["start", "web"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    // The answer came once web was up, not before.
    assert_eq!(daemon.state_of("web:0")?, Some(ProcessState::Running));
    assert_eq!(daemon.state_of("api:0")?, Some(ProcessState::Running));
    assert_eq!(daemon.state_of("db:0")?, Some(ProcessState::Running));
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "start web answered in {:?}, before db could be up",
        out.elapsed
    );
    assert_start_order(&daemon.event_log())
}

#[test]
fn a_fatal_dependency_leaves_its_dependents_stopped_waiting_for_it() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  db:
    cmd: "sh -c 'exit 3'"
    starttime: 1
    startretries: 0
  api:
    cmd: "sleep 1000"
    starttime: 0
    depends_on: {db: ready}
  web:
    cmd: "sleep 1000"
    starttime: 0
    depends_on: {api: started}
"#,
    )?;
    daemon.wait_for_state("db:0", ProcessState::Fatal, SOON)?;
    for name in ["api:0", "web:0"] {
        let info = daemon.wait_for(name, SOON, "waiting for db (FATAL)", |p| {
            p.description == "waiting for db (FATAL)"
        })?;
        assert_eq!(info.state, ProcessState::Stopped);
    }
    let status = daemon.ctl(["status"])?;
    assert!(
        status.stdout.contains("waiting for db (FATAL)"),
        "{}",
        status.combined()
    );
    // A client start is answered (failed), not left waiting.
    let out = daemon.ctl(["start", "web"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.combined().contains("waiting for db (FATAL)"),
        "{}",
        out.combined()
    );
    assert_eq!(daemon.count_events("api:0", "spawned"), 0);
    assert_eq!(daemon.count_events("web:0", "spawned"), 0);
    Ok(())
}

#[test]
fn a_completed_one_shot_job_lets_its_dependent_start_after_it_exits() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  migrate:
    cmd: "sh -c 'while [ ! -e go ]; do sleep 0.05; done'"
    starttime: 0
    autorestart: never
  api:
    cmd: "sleep 1000"
    starttime: 0
    depends_on: {migrate: completed}
"#,
    )?;
    daemon.wait_for_state("migrate:0", ProcessState::Running, SOON)?;
    let info = daemon.wait_for("api:0", SOON, "waiting for migrate", |p| {
        p.description == "waiting for migrate (RUNNING)"
    })?;
    assert_eq!(info.state, ProcessState::Stopped);
    std::fs::write(daemon.path("go"), "")?;
    daemon.wait_for_state("api:0", ProcessState::Running, SOON)?;
    assert_eq!(daemon.state_of("migrate:0")?, Some(ProcessState::Exited));
    before(
        &daemon.event_log(),
        ("migrate:0", "exited"),
        ("api:0", "spawned"),
    )?;
    // Starting api again does not run the finished job again.
    let out = daemon.ctl(["stop", "api"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    let out = daemon.ctl(["start", "api"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(wait_until(SOON, || daemon
        .state_of("api:0")
        .is_ok_and(|s| s == Some(ProcessState::Running))));
    assert_eq!(daemon.count_events("migrate:0", "spawned"), 1);
    Ok(())
}
