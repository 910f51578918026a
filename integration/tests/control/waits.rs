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
    startretries: 0
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

/// A program that fails its first `fails` attempts (counted in a file),
/// then runs.
fn fails_then_runs(fails: u32) -> String {
    format!(
        r#"
programs:
  flaky:
    cmd: "sh -c 'n=$(cat {{dir}}/attempts 2>/dev/null || echo 0); n=$((n+1)); echo $n > {{dir}}/attempts; [ $n -gt {fails} ] || exit 1; exec sleep 1000'"
    autostart: false
    starttime: 0.3
    startretries: 5
"#
    )
}

#[test]
fn start_waits_through_failed_attempts_until_running_and_prints_each() -> TestResult {
    let daemon = TestDaemon::start(&fails_then_runs(2))?;
    let out = ctl_expect(&daemon, &["start", "flaky"], 0)?;
    assert_eq!(
        out.stderr.matches("flaky:0: attempt failed").count(),
        2,
        "{out:?}"
    );
    assert!(out.stdout.contains("flaky:0: started"), "{out:?}");
    assert_eq!(daemon.state_of("flaky:0")?, Some(ProcessState::Running));
    Ok(())
}

#[test]
fn start_of_a_program_that_always_fails_exits_1_at_fatal() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  broken:
    cmd: "sh -c 'echo broken-marker >&2; exit 1'"
    autostart: false
    startretries: 1
"#,
    )?;
    let out = ctl_expect(&daemon, &["start", "broken"], 1)?;
    assert!(out.stdout.contains("broken:0: ERROR ("), "{out:?}");
    assert!(out.stdout.contains("broken-marker"), "{out:?}");
    assert_eq!(out.stderr.matches("attempt failed").count(), 1, "{out:?}");
    assert_eq!(daemon.state_of("broken:0")?, Some(ProcessState::Fatal));
    Ok(())
}

#[test]
fn start_with_a_timeout_gives_up_with_exit_1_and_says_so() -> TestResult {
    let daemon = TestDaemon::start(&fails_then_runs(100))?;
    let out = ctl_expect(&daemon, &["start", "--timeout", "1", "flaky"], 1)?;
    assert!(out.stdout.contains("timed out after 1s"), "{out:?}");
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    Ok(())
}

#[test]
fn reload_wait_returns_when_restarted_and_added_programs_run_or_fail() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sleep 1000"
    starttime: 0.5
"#,
    )?;
    let old = daemon.running_pid("web:0")?;
    let server = "server:\n  listen: \"127.0.0.1:0\"\n";
    std::fs::write(
        daemon.config_path(),
        format!(
            "programs:\n  web:\n    cmd: \"sleep 1001\"\n    starttime: 0.5\n  \
             api:\n    cmd: \"sleep 1000\"\n    starttime: 0.5\n{server}"
        ),
    )?;
    ctl_expect(&daemon, &["reload", "--wait"], 0)?;
    // Returned only once both run: the new web and the added api.
    let web = daemon.info("web:0")?.ok_or("no web:0")?;
    assert_eq!(web.state, ProcessState::Running);
    assert_ne!(web.pid, Some(old), "web was not restarted yet");
    assert_eq!(daemon.state_of("api:0")?, Some(ProcessState::Running));

    std::fs::write(
        daemon.config_path(),
        format!(
            "programs:\n  web:\n    cmd: \"sleep 1001\"\n    starttime: 0.5\n  \
             api:\n    cmd: \"sleep 1000\"\n    starttime: 0.5\n  \
             bad:\n    cmd: \"sh -c 'exit 1'\"\n    startretries: 0\n{server}"
        ),
    )?;
    let out = ctl_expect(&daemon, &["reload", "--wait"], 1)?;
    assert!(out.stdout.contains("bad:0: ERROR"), "{out:?}");
    Ok(())
}

/// A long `stop` says, after a second, what it waits for and when SIGKILL
/// comes; `status` shows the same countdown.
#[test]
fn a_long_stop_says_what_it_waits_for() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  slow:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0
    stoptime: 4
"#,
    )?;
    let pid = daemon.running_pid("slow:0")?;
    daemon.group_of(pid, 2)?;
    let out = ctl_expect(&daemon, &["stop", "slow"], 0)?;
    assert!(
        out.stderr.contains("waiting for slow:0 (SIGKILL in "),
        "{out:?}"
    );
    assert!(out.stdout.contains("slow:0: stopped"), "{out:?}");
    Ok(())
}
