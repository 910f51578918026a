//! No orphans and no zombies: grandchildren are reaped or killed with their
//! group, and a SIGKILLed daemon's processes are stopped by the next one.

use crate::{SOON, tag_of};
use integration::{TestDaemon, TestResult, procfs, wait_until, wait_until_every};
use proto::ProcessState;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn a_grandchild_left_by_an_exiting_leader_leaves_no_zombie() -> TestResult {
    // The leader exits (once the escaper is out of its group), leaving a
    // sleeper in its group (killed with the group's remnants) and one in a
    // session of its own (which exits by itself later, re-parented to the
    // daemon, a subreaper, which must reap it).
    let daemon = TestDaemon::start(
        r#"
programs:
  forker:
    cmd: "sh -c 'sleep 1000 & echo $! > {dir}/in-group.pid; setsid sh -c \"echo \\$\\$ > {dir}/escaped.pid; sleep 0.3\" & while [ ! -s {dir}/escaped.pid ]; do :; done; exit 0'"
    starttime: 0
    autorestart: never
"#,
    )?;
    daemon.wait_for_state("forker:0", ProcessState::Exited, SOON)?;
    let read_pid = |name: &str| -> Option<u32> {
        std::fs::read_to_string(daemon.path(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let mut pids = (None, None);
    assert!(wait_until(SOON, || {
        pids = (read_pid("in-group.pid"), read_pid("escaped.pid"));
        pids.0.is_some() && pids.1.is_some()
    }));
    let (Some(in_group), Some(escaped)) = pids else {
        return Err("no pid files".into());
    };
    // Nothing of it may remain, not even as a zombie of the daemon.
    let mut left = Vec::new();
    let gone = wait_until(SOON, || {
        left = daemon.descendants();
        left.is_empty()
    });
    assert!(gone, "still under the daemon: {left:?}");
    assert!(!procfs::is_alive(in_group) && !procfs::is_alive(escaped));
    assert_eq!(daemon.zombie_children(), 0);
    Ok(())
}

#[test]
fn stop_leaves_nothing_of_a_group_whose_grandchild_ignores_sigterm() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  stubborn:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0
    stoptime: 0.3
"#,
    )?;
    let pid = daemon.running_pid("stubborn:0")?;
    assert!(wait_until(SOON, || procfs::group_members(pid).len() == 2));
    let _ = daemon.descendants();
    let out = daemon.ctl(["stop", "stubborn"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    // `stop` returns once the group is gone: nothing to wait for.
    assert_eq!(procfs::group_members(pid), Vec::<u32>::new());
    assert_eq!(daemon.state_of("stubborn:0")?, Some(ProcessState::Stopped));
    Ok(())
}

/// What a generation of daemon runs: 2 `web` groups of sh + sleep, a group
/// that ignores SIGTERM, and a grandchild in a session of its own (found
/// only by its environment tag).
const FLEET: &str = r#"
programs:
  web:
    cmd: "sh -c 'sleep 1000 & wait'"
    numprocs: 2
    starttime: 0
  stubborn:
    cmd: "sh -c 'trap \"\" TERM; sleep 1000 & wait'"
    starttime: 0
    stoptime: 0.3
  escaper:
    cmd: "sh -c 'setsid sleep 1000 & wait'"
    starttime: 0
"#;
const INSTANCES: [&str; 4] = ["web:0", "web:1", "stubborn:0", "escaper:0"];
/// Four shells and their four sleepers.
const FLEET_PROCESSES: usize = 8;

/// Every instance RUNNING and exactly the fleet's processes carrying `tag`,
/// all of them under the current daemon. Returns the instances' pids.
fn fleet_settled(daemon: &TestDaemon, tag: &str) -> TestResult<Vec<u32>> {
    let mut leaders = Vec::new();
    for name in INSTANCES {
        leaders.push(daemon.running_pid(name)?);
    }
    let mut tagged = Vec::new();
    let mut under = BTreeSet::new();
    let settled = wait_until_every(SOON, Duration::from_millis(20), || {
        tagged = procfs::with_env(crate::SUPERVISOR_ENV, tag);
        under = daemon.descendants().iter().map(|p| p.pid).collect();
        tagged.len() == FLEET_PROCESSES && tagged.iter().all(|p| under.contains(&p.pid))
    });
    if !settled {
        return Err(format!(
            "expected {FLEET_PROCESSES} tagged processes, all under daemon {}; found {tagged:#?}\n--- event log ---\n{}",
            daemon.pid(),
            daemon.event_log()
        )
        .into());
    }
    Ok(leaders)
}

fn kill9_loop(rounds: usize) -> TestResult {
    let mut daemon = TestDaemon::start(FLEET)?;
    let tag = tag_of(daemon.running_pid("web:0")?)?;
    let mut everything_before: BTreeSet<u32> = BTreeSet::new();
    for round in 0..rounds {
        let leaders = fleet_settled(&daemon, &tag)?;
        let generation: Vec<u32> = procfs::with_env(crate::SUPERVISOR_ENV, &tag)
            .iter()
            .map(|p| p.pid)
            .collect();
        for pid in &everything_before {
            assert!(
                !procfs::is_alive(*pid),
                "round {round}: pid {pid} of an earlier daemon lives"
            );
        }
        everything_before.extend(generation.iter().copied());

        daemon.kill9()?;
        // The kernel kills the direct children (parent-death signal)...
        assert!(
            wait_until(SOON, || leaders.iter().all(|p| !procfs::is_alive(*p))),
            "round {round}: a child outlived the SIGKILLed daemon"
        );
        // ...while grandchildren live on until the next daemon starts.
        let orphans = procfs::with_env(crate::SUPERVISOR_ENV, &tag);
        assert!(
            !orphans.is_empty(),
            "round {round}: no orphan left to find; the test would prove nothing"
        );
        daemon.restart()?;
    }
    fleet_settled(&daemon, &tag)?;
    for pid in &everything_before {
        assert!(
            !procfs::is_alive(*pid),
            "pid {pid} of an earlier daemon lives"
        );
    }
    let stopped = daemon
        .event_log()
        .lines()
        .filter(|l| l.contains("leftover of an earlier taskmasterd"))
        .count();
    // Each round leaves four sleepers.
    assert!(
        stopped >= 4 * rounds,
        "{stopped} leftovers logged:\n{}",
        daemon.event_log()
    );
    Ok(())
}

#[test]
fn kill_9_then_restart_leaves_exactly_one_fleet_5_times() -> TestResult {
    kill9_loop(5)
}

#[test]
#[ignore = "slow: run by integration/soak.sh"]
fn kill_9_then_restart_leaves_exactly_one_fleet_20_times() -> TestResult {
    kill9_loop(20)
}

/// The child-side check (`/proc/$$/fd` listed by the child) is the unit test
/// `child_sees_only_stdio_descriptors` (a descriptor leaked inside the
/// daemon); e2e `child_has_only_stdio_its_own_group_and_clean_signal_state`
/// checks from outside. This one starts the daemon itself with an extra
/// inherited descriptor.
#[test]
fn a_descriptor_inherited_by_the_daemon_does_not_reach_children() -> TestResult {
    let daemon = TestDaemon::builder()?
        .leak_fd(40)
        .config(
            r#"
programs:
  fds:
    cmd: "sh -c 'ls /proc/$$/fd; exec sleep 1000'"
    starttime: 0
"#,
        )
        .start()?;
    assert!(
        procfs::fds(daemon.pid()).is_some_and(|fds| fds.contains(&40)),
        "the daemon did not get fd 40: the test would prove nothing"
    );
    let pid = daemon.running_pid("fds:0")?;
    let listed = crate::file_until(&daemon.path("logs/fds-0.stdout.log"), "listed fds", |b| {
        b.ends_with(b"\n")
    })?;
    assert_eq!(String::from_utf8_lossy(&listed), "0\n1\n2\n");
    assert!(wait_until(SOON, || procfs::fds(pid) == Some(BTreeSet::from([0, 1, 2]))));
    Ok(())
}
