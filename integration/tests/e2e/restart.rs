//! Restart policy: autorestart, exitcodes, start retries with backoff, and
//! the restart rate limit.

use crate::{SOON, running};
use integration::{TestDaemon, TestResult, procfs, wait_until, wait_until_every};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::ProcessState;
use std::time::{Duration, Instant};

/// How long a process that should stay down is watched: restarts happen "at
/// once", so one that was coming would show well within this.
const STAYS_DOWN: Duration = Duration::from_millis(500);

#[test]
fn sigkilled_child_is_restarted_within_50ms() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  victim:
    cmd: "sleep 1000"
    starttime: 0.1
    maxrestarts: 100
    restartwindow: 1
"#,
    )?;
    // Best of three, so that one unlucky scheduling hiccup on a loaded
    // machine does not decide; every round must restart, though.
    let mut best = Duration::MAX;
    for round in 0..3 {
        let old = daemon.running_pid("victim:0")?;
        kill(Pid::from_raw(old as i32), Signal::SIGKILL)?;
        let killed = Instant::now();
        let mut new = None;
        let restarted = wait_until_every(Duration::from_secs(5), Duration::from_millis(1), || {
            new = procfs::live_children(daemon.pid())
                .into_iter()
                .map(|p| p.pid)
                .find(|p| *p != old);
            new.is_some()
        });
        let took = killed.elapsed();
        assert!(restarted, "round {round}: no new child after SIGKILL");
        best = best.min(took);
        let info = daemon.wait_for("victim:0", SOON, "restarted", |p| {
            p.pid.is_some() && p.pid != Some(old)
        })?;
        assert_eq!(info.pid, new, "round {round}: status shows another pid");
    }
    assert!(
        best < Duration::from_millis(50),
        "fastest restart took {best:?}"
    );
    assert!(
        wait_until(SOON, || daemon.zombie_children() == 0),
        "killed children were never reaped"
    );
    Ok(())
}

#[test]
fn expected_exit_stays_exited() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  listed:
    cmd: "sh -c 'sleep 0.4; exit 3'"
    starttime: 0.1
    exitcodes: [0, 3]
  single:
    cmd: "sh -c 'sleep 0.4; exit 3'"
    starttime: 0.1
    exitcodes: 3
"#,
    )?;
    for name in ["listed:0", "single:0"] {
        let info = daemon.wait_for_state(name, ProcessState::Exited, SOON)?;
        assert_eq!(info.exitcode, Some(3), "{info:?}");
    }
    let restarted = wait_until(STAYS_DOWN, || {
        ["listed:0", "single:0"].iter().any(|n| {
            daemon.count_events(n, "spawned") > 1
                || daemon
                    .state_of(n)
                    .map_or(true, |s| s != Some(ProcessState::Exited))
        })
    });
    assert!(
        !restarted,
        "an expected exit was restarted:\n{}",
        daemon.event_log()
    );
    assert!(daemon.live_children().is_empty());
    Ok(())
}

#[test]
fn always_restarts_after_an_expected_exit() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  loop:
    cmd: "sh -c 'sleep 0.3; exit 0'"
    starttime: 0.1
    autorestart: always
    maxrestarts: 100
"#,
    )?;
    let first = daemon.running_pid("loop:0")?;
    let next = daemon.wait_for("loop:0", SOON, "running again", |p| {
        p.state == ProcessState::Running && p.pid.is_some() && p.pid != Some(first)
    })?;
    assert!(next.restarts >= 1, "{next:?}");
    assert!(daemon.count_events("loop:0", "spawned") >= 2);
    Ok(())
}

#[test]
fn never_does_not_restart_after_an_unexpected_exit() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  once:
    cmd: "sh -c 'sleep 0.3; exit 7'"
    starttime: 0.1
    autorestart: never
"#,
    )?;
    running(&daemon, "once:0")?;
    let info = daemon.wait_for_state("once:0", ProcessState::Exited, SOON)?;
    assert_eq!(info.exitcode, Some(7));
    let restarted = wait_until(STAYS_DOWN, || {
        daemon.count_events("once:0", "spawned") > 1 || !daemon.live_children().is_empty()
    });
    assert!(
        !restarted,
        "restarted despite never:\n{}",
        daemon.event_log()
    );
    assert_eq!(daemon.state_of("once:0")?, Some(ProcessState::Exited));
    Ok(())
}

#[test]
fn startretries_2_means_3_attempts_then_fatal() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  crash:
    cmd: "sh -c 'exit 1'"
    starttime: 1
    startretries: 2
"#,
    )?;
    // Backoff 1 s then 2 s: FATAL after about 3 s.
    daemon.wait_for_state("crash:0", ProcessState::Fatal, Duration::from_secs(20))?;
    let log = daemon.event_log();
    assert_eq!(daemon.count_events("crash:0", "spawned"), 3, "{log}");
    assert!(daemon.count_events("crash:0", "BACKOFF") >= 2, "{log}");
    assert!(daemon.count_events("crash:0", "FATAL") >= 1, "{log}");
    assert!(daemon.live_children().is_empty());
    Ok(())
}

#[test]
fn restarting_too_often_is_fatal() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  flap:
    cmd: "sh -c 'exit 1'"
    starttime: 0
    maxrestarts: 2
    restartwindow: 5
"#,
    )?;
    let info = daemon.wait_for_state("flap:0", ProcessState::Fatal, SOON)?;
    let log = daemon.event_log();
    assert_eq!(daemon.count_events("flap:0", "spawned"), 3, "{log}");
    let said = info.description.contains("too often")
        || daemon
            .events("flap:0", "FATAL")
            .iter()
            .any(|l| l.contains("too often"));
    assert!(said, "FATAL without \"too often\": {info:?}\n{log}");
    Ok(())
}
