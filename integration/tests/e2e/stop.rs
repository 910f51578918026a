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
