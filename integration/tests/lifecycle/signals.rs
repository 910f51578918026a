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
