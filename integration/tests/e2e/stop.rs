//! Stopping: SIGKILL escalation after `stoptime` for a whole process group,
//! and the daemon's own shutdown on SIGTERM / SIGINT.

use crate::{SOON, running};
use integration::{TestDaemon, TestResult, procfs, wait_until};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn stop_sigkills_a_group_that_ignores_the_stop_signal() -> TestResult {
    // sh ignores TERM and so does its `sleep` (ignored dispositions are
    // inherited): only the SIGKILL after stoptime can end them.
    let mut daemon = TestDaemon::start(
        r#"
programs:
  stubborn:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0.2
    stoptime: 0.5
"#,
    )?;
    let pid = daemon.running_pid("stubborn:0")?;
    let group = daemon.group_of(pid, 2)?;
    daemon.signal(Signal::SIGTERM)?;
    let asked = Instant::now();
    let status = daemon.wait_exit(SOON).ok_or("daemon did not exit")?;
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    for p in &group {
        assert!(!procfs::is_alive(*p), "pid {p} of the group survived");
    }
    assert!(procfs::group_members(pid).is_empty());
    assert!(
        took >= Duration::from_millis(450),
        "exited after {took:?}, before stoptime: was anything waited for?"
    );
    assert!(
        daemon.count_events("stubborn:0", "killed") >= 1,
        "no `killed after stoptime` event:\n{}",
        daemon.event_log()
    );
    Ok(())
}

fn shutdown_on(signal: Signal) -> TestResult {
    let mut daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sh -c 'sleep 1000 & wait'"
    numprocs: 2
    starttime: 0.2
  worker:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
    )?;
    for name in ["web:0", "web:1", "worker:0"] {
        running(&daemon, name)?;
    }
    // 2 sh + their 2 sleeps + 1 sleep.
    let mut tree = Vec::new();
    assert!(wait_until(SOON, || {
        tree = daemon.descendants();
        tree.iter().filter(|p| p.is_alive()).count() == 5
    }));
    daemon.signal(signal)?;
    let status = daemon.wait_exit(SOON).ok_or("daemon did not exit")?;
    assert_eq!(status.code(), Some(0), "{status}");
    for p in &tree {
        assert!(!procfs::is_alive(p.pid), "{p:?} survived the shutdown");
    }
    assert!(procfs::session_members(daemon.pid()).is_empty());
    Ok(())
}

#[test]
fn sigterm_stops_everything_and_exits_0() -> TestResult {
    shutdown_on(Signal::SIGTERM)
}

#[test]
fn sigint_stops_everything_and_exits_0() -> TestResult {
    shutdown_on(Signal::SIGINT)
}

#[test]
fn stop_continues_a_stopped_program_so_its_term_handler_runs() -> TestResult {
    // Without a SIGCONT after the SIGTERM, the stopped shell would only get
    // the SIGKILL after the minute of stoptime, its trap never run.
    let daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sh -c 'trap \"echo bye > {dir}/termed; exit 0\" TERM; while :; do sleep 0.1; done'"
    starttime: 0
    stoptime: 60
"#,
    )?;
    let pid = running(&daemon, "web:0")?.pid.ok_or("no pid")?;
    let paused = daemon.ctl(["signal", "STOP", "web"])?;
    assert_eq!(paused.code, Some(0), "{paused:?}");
    assert!(
        wait_until(SOON, || procfs::stat(pid).is_some_and(|s| s.state == 'T')),
        "the program never stopped: the test would prove nothing"
    );
    let stopped = daemon.ctl(["stop", "web"])?;
    assert_eq!(stopped.code, Some(0), "{stopped:?}");
    assert!(
        stopped.elapsed < Duration::from_secs(9),
        "stop took {:?}",
        stopped.elapsed
    );
    let said = std::fs::read_to_string(daemon.path("termed")).unwrap_or_default();
    assert_eq!(said.trim(), "bye", "the TERM trap did not run");
    assert!(!procfs::is_alive(pid));
    Ok(())
}
