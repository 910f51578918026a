//! Signals during shutdown: a second SIGTERM does not wait for `stoptime`.

use crate::SOON;
use integration::{TestDaemon, TestResult, procfs, wait_until};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn a_second_sigterm_during_a_slow_shutdown_kills_everything_and_exits() -> TestResult {
    // Both ignore SIGTERM (sh and, inheriting it, its sleep): without the
    // second signal the shutdown would take the whole minute of stoptime.
    let mut daemon = TestDaemon::start(
        r#"
programs:
  slow:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    numprocs: 2
    starttime: 0
    stoptime: 60
"#,
    )?;
    let mut groups = Vec::new();
    for name in ["slow:0", "slow:1"] {
        let pid = daemon.running_pid(name)?;
        assert!(wait_until(SOON, || procfs::group_members(pid).len() == 2));
        groups.push(pid);
    }
    let _ = daemon.descendants();
    daemon.signal(Signal::SIGTERM)?;
    assert!(
        wait_until(SOON, || daemon.event_log().contains("daemon stopping")),
        "{}",
        daemon.event_log()
    );
    assert!(
        daemon.wait_exit(Duration::from_millis(300)).is_none(),
        "did not wait for stoptime"
    );
    let second = Instant::now();
    daemon.signal(Signal::SIGTERM)?;
    let status = daemon.wait_exit(SOON).ok_or("daemon did not exit")?;
    let took = second.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} after the second SIGTERM"
    );
    assert_eq!(status.code(), Some(0), "{status}");
    for pgid in groups {
        assert_eq!(
            procfs::group_members(pgid),
            Vec::<u32>::new(),
            "group {pgid}"
        );
    }
    assert_eq!(procfs::session_members(daemon.pid()), Vec::<u32>::new());
    Ok(())
}

/// Every signal whose default action would end the daemon, but that means
/// nothing to it (faults aside), and SIGPIPE.
fn stray_signals() -> Vec<i32> {
    let mut all = vec![
        libc::SIGUSR1,
        libc::SIGQUIT,
        libc::SIGALRM,
        libc::SIGPIPE,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
    ];
    all.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    all
}

#[test]
fn stray_signals_are_logged_and_ignored_and_the_fleet_keeps_its_pids() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0
"#,
    )?;
    let before = [daemon.running_pid("web:0")?, daemon.running_pid("web:1")?];
    for sig in stray_signals() {
        // SAFETY: kill(2) to the daemon's pid; real-time signals have no
        // `nix` `Signal`.
        assert_eq!(unsafe { libc::kill(daemon.pid() as i32, sig) }, 0);
        assert!(
            daemon.status().is_ok(),
            "no answer after signal {sig}: {}",
            daemon.diagnostics()
        );
    }
    let me = std::process::id();
    assert!(
        wait_until(SOON, || daemon
            .event_log()
            .contains(&format!("ignoring SIGUSR1 from pid {me}"))),
        "{}",
        daemon.event_log()
    );
    assert!(daemon.event_log().contains("ignoring SIGRTMIN+"));
    assert_eq!(
        [daemon.running_pid("web:0")?, daemon.running_pid("web:1")?],
        before
    );
    // Handled in the daemon, default in the child.
    for pid in before {
        assert_eq!(procfs::signal_mask(pid, "SigIgn"), Some(0));
        assert_eq!(procfs::signal_mask(pid, "SigBlk"), Some(0));
        assert_eq!(procfs::signal_mask(pid, "SigCgt"), Some(0));
    }
    Ok(())
}

/// A program whose grandchild ignores SIGTERM: after `kill -9` of the
/// daemon it is a leftover the next start waits `stoptime` (2 s) for.
const STUBBORN: &str = r#"
programs:
  stubborn:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0
    stoptime: 2
"#;

/// Kills the daemon, leaving the stubborn grandchild, and starts the next
/// one, which returns while it is sweeping that leftover.
fn restart_into_a_slow_sweep(daemon: &mut TestDaemon) -> TestResult {
    let leader = daemon.running_pid("stubborn:0")?;
    daemon.group_of(leader, 2)?;
    daemon.kill9()?;
    assert!(wait_until(SOON, || !procfs::is_alive(leader)));
    daemon.restart()?;
    assert!(
        wait_until(SOON, || daemon
            .stderr_text()
            .contains("leftover of an earlier taskmasterd")),
        "{}",
        daemon.stderr_text()
    );
    Ok(())
}

#[test]
fn sighup_and_sigterm_during_a_slow_start_up_are_applied_not_fatal() -> TestResult {
    let mut daemon = TestDaemon::start(STUBBORN)?;

    restart_into_a_slow_sweep(&mut daemon)?;
    daemon.signal(Signal::SIGHUP)?;
    assert!(
        !daemon.stderr_text().contains("config loaded"),
        "start-up was over before the signal: the test would prove nothing"
    );
    assert!(
        wait_until(Duration::from_secs(20), || daemon
            .stderr_text()
            .contains("config reloaded")),
        "{}",
        daemon.stderr_text()
    );
    let text = daemon.stderr_text();
    assert!(
        text.find("config loaded") < text.find("config reloaded"),
        "the reload was not applied after start-up:\n{text}"
    );
    assert!(daemon.wait_exit(Duration::ZERO).is_none());
    daemon.running_pid("stubborn:0")?;

    restart_into_a_slow_sweep(&mut daemon)?;
    daemon.signal(Signal::SIGTERM)?;
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .ok_or("the daemon did not exit")?;
    assert_eq!(status.code(), Some(0), "{status}: {}", daemon.stderr_text());
    let text = daemon.stderr_text();
    assert!(
        text.contains("shutdown requested during start-up"),
        "{text}"
    );
    assert!(!text.contains("spawned"), "it started programs:\n{text}");
    Ok(())
}
