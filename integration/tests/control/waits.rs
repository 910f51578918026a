//! What the waiting commands wait for, judged by the clock and by `/proc`
//! right after they return: `start` (RUNNING after `starttime`, or the
//! failure with the program's own words), `stop` (the whole process group
//! gone, SIGKILL after `stoptime`), `shutdown` (everything gone, daemon exits
//! 0), and concurrent starts (one spawn).

use crate::{SOON, TestResult, ctl_expect};
use integration::{TestDaemon, procfs, wait_until};
use proto::ProcessState;
use std::time::Duration;

#[test]
fn a_failing_start_exits_1_with_the_programs_last_stderr() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  boom:
    cmd: "sh -c 'echo first-words >&2; echo boom-marker >&2; exit 3'"
    autostart: false
"#,
    )?;
    let out = ctl_expect(&daemon, &["start", "boom"], 1)?;
    assert!(out.stdout.starts_with("boom:0: ERROR ("), "{out:?}");
    assert!(out.stdout.contains("last output of boom:0:"), "{out:?}");
    assert!(out.stdout.contains("    boom-marker\n"), "{out:?}");
    // Not RUNNING: the attempt failed, and the daemon says so too.
    let state = daemon.state_of("boom:0")?;
    assert!(
        matches!(
            state,
            Some(ProcessState::Backoff | ProcessState::Fatal | ProcessState::Starting)
        ),
        "{state:?}"
    );
    Ok(())
}

#[test]
fn start_waits_for_starttime() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  slow:
    cmd: "sleep 100"
    starttime: 2
    autostart: false
"#,
    )?;
    let out = ctl_expect(&daemon, &["start", "slow"], 0)?;
    assert_eq!(out.stdout, "slow:0: started\n");
    let took = out.elapsed.as_secs_f64();
    assert!((2.0..3.5).contains(&took), "start took {took:.3} s");
    // It really was RUNNING when the command returned.
    assert_eq!(daemon.state_of("slow:0")?, Some(ProcessState::Running));
    // --no-wait returns at once.
    ctl_expect(&daemon, &["stop", "slow"], 0)?;
    let out = ctl_expect(&daemon, &["start", "--no-wait", "slow"], 0)?;
    assert!(out.elapsed < Duration::from_secs(2), "{:?}", out.elapsed);
    assert_eq!(daemon.state_of("slow:0")?, Some(ProcessState::Starting));
    Ok(())
}

#[test]
fn two_clients_starting_at_once_both_succeed_and_spawn_once() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  slow:
    cmd: "sleep 1000"
    starttime: 1
    autostart: false
"#,
    )?;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| daemon.ctl(["start", "slow"]));
        let b = s.spawn(|| daemon.ctl(["start", "slow:0"]));
        (a.join(), b.join())
    });
    let (a, b) = (
        a.map_err(|_| "client thread panicked")??,
        b.map_err(|_| "client thread panicked")??,
    );
    // Both joined the same pending start and were answered at RUNNING
    // (a client arriving after it would be told "already running").
    for out in [&a, &b] {
        crate::assert_code(out, 0);
        assert_eq!(out.stdout, "slow:0: started\n");
    }
    assert_eq!(daemon.state_of("slow:0")?, Some(ProcessState::Running));
    assert_eq!(
        daemon.count_events("slow:0", "spawned"),
        1,
        "{}",
        daemon.event_log()
    );
    let sleeps = daemon
        .live_children()
        .into_iter()
        .filter(|p| p.comm == "sleep")
        .count();
    assert_eq!(sleeps, 1);
    Ok(())
}

#[test]
fn stop_returns_when_the_group_is_gone() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sh -c 'sleep 1000 & wait'"
    starttime: 0
"#,
    )?;
    let pid = daemon.running_pid("web:0")?;
    let group = daemon.group_of(pid, 2)?;
    ctl_expect(&daemon, &["stop", "web"], 0)?;
    // No polling: gone the moment stop returned.
    for p in &group {
        assert!(!procfs::is_alive(*p), "pid {p} alive after stop returned");
    }
    assert!(procfs::group_members(pid).is_empty());
    Ok(())
}

#[test]
fn stop_of_a_term_ignoring_group_takes_stoptime_then_kills() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  stubborn:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0
    stoptime: 1
"#,
    )?;
    let pid = daemon.running_pid("stubborn:0")?;
    let group = daemon.group_of(pid, 2)?;
    let out = ctl_expect(&daemon, &["stop", "stubborn"], 0)?;
    assert!(
        out.elapsed >= Duration::from_secs(1),
        "stop returned after {:?}, before stoptime",
        out.elapsed
    );
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    for p in &group {
        assert!(!procfs::is_alive(*p), "pid {p} alive after stop returned");
    }
    assert!(daemon.count_events("stubborn:0", "killed") >= 1);
    Ok(())
}

#[test]
fn tail_of_a_discarded_stream_is_a_clear_error() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  quiet:
    cmd: "sleep 1000"
    starttime: 0
    stdout: null
"#,
    )?;
    daemon.running_pid("quiet:0")?;
    let out = ctl_expect(&daemon, &["tail", "quiet"], 1)?;
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr.contains("quiet:0 stdout is discarded"),
        "{out:?}"
    );
    let out = ctl_expect(&daemon, &["tail", "-f", "quiet"], 1)?;
    assert!(out.stderr.contains("discarded"), "{out:?}");
    // The other stream is kept.
    ctl_expect(&daemon, &["tail", "quiet", "stderr"], 0)?;
    Ok(())
}

#[test]
fn shutdown_returns_when_everything_is_gone_and_the_daemon_exits_0() -> TestResult {
    let mut daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sh -c 'sleep 1000 & wait'"
    numprocs: 2
    starttime: 0
  stubborn:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0
    stoptime: 0.5
"#,
    )?;
    for name in ["web:0", "web:1", "stubborn:0"] {
        daemon.running_pid(name)?;
    }
    let mut tree = Vec::new();
    assert!(wait_until(SOON, || {
        tree = daemon.descendants();
        tree.iter().filter(|p| p.is_alive()).count() == 6
    }));
    let out = ctl_expect(&daemon, &["shutdown"], 0)?;
    assert!(out.stdout.contains("stopped"), "{out:?}");
    assert!(
        out.elapsed >= Duration::from_millis(500),
        "{:?}",
        out.elapsed
    );
    for p in &tree {
        assert!(
            !procfs::is_alive(p.pid),
            "{p:?} alive after shutdown returned"
        );
    }
    let status = daemon.wait_exit(SOON).ok_or("the daemon did not exit")?;
    assert_eq!(status.code(), Some(0), "{status}");
    Ok(())
}
